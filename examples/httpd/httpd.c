/*
 * httpd: a small static-file HTTP/1.1 server for micro-containers.
 *
 * One thread, one epoll loop, non-blocking sockets: thousands of concurrent
 * keep-alive connections without a thread per connection. GET and HEAD of
 * files under $WWW_ROOT (default /www; "/" serves index.html), /healthz
 * answers "ok". Port from $PORT (default 8080). SIGTERM/SIGINT: stop
 * accepting, finish the requests in flight, close idle connections, exit 0.
 *
 * No stdio (it would triple the binary): output goes through write(2).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAXFD 8192          /* connections are indexed by fd */
#define INBUF 4096          /* request head limit (431 beyond) */
#define OUTBUF 512          /* response head, or a small body */
#define IDLE_SECS 30        /* close connections silent for this long */
#define DRAIN_SECS 10       /* after SIGTERM, give in-flight requests this long */

struct conn {
    char open, armed, close_after;
    int in_len, out_len, out_off, file;
    off_t file_off, file_end;
    time_t last;
    char in[INBUF];
    char out[OUTBUF];
};

static struct conn conns[MAXFD];
static int ep, lfd = -1, rootfd = -1, nconns, draining;
static time_t now, drain_start;

static void say(const char *a, const char *b)
{
    if (write(2, a, strlen(a)) < 0 || (b && write(2, b, strlen(b)) < 0) || write(2, "\n", 1) < 0)
        return;
}

static time_t mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

static char *put(char *p, const char *s)
{
    while (*s)
        *p++ = *s++;
    return p;
}

static char *putnum(char *p, unsigned long long n)
{
    char tmp[24];
    int i = 0;
    do
        tmp[i++] = (char)('0' + n % 10);
    while (n /= 10);
    while (i)
        *p++ = tmp[--i];
    return p;
}

static void close_conn(int fd)
{
    struct conn *c = &conns[fd];
    if (c->file >= 0)
        close(c->file);
    c->open = 0;
    close(fd); /* also removes it from the epoll set */
    nconns--;
}

static const char *content_type(const char *path)
{
    static const char *const types[] = {
        "html", "text/html; charset=utf-8", "htm", "text/html; charset=utf-8",
        "css", "text/css", "js", "text/javascript", "mjs", "text/javascript",
        "json", "application/json", "txt", "text/plain; charset=utf-8",
        "svg", "image/svg+xml", "png", "image/png", "jpg", "image/jpeg", "jpeg", "image/jpeg",
        "gif", "image/gif", "webp", "image/webp", "ico", "image/x-icon", "wasm", "application/wasm",
        "xml", "application/xml", "pdf", "application/pdf", "woff2", "font/woff2", 0};
    const char *dot = strrchr(path, '.');
    if (dot && !strchr(dot, '/'))
        for (int i = 0; types[i]; i += 2)
            if (!strcasecmp(dot + 1, types[i]))
                return types[i + 1];
    return "application/octet-stream";
}

/* The response head (and an optional small body) into c->out. */
static void head(struct conn *c, const char *status, const char *type, unsigned long long len,
                 const char *body, int with_body)
{
    char *p = put(c->out, "HTTP/1.1 ");
    p = put(p, status);
    p = put(p, "\r\nContent-Type: ");
    p = put(p, type);
    p = put(p, "\r\nContent-Length: ");
    p = putnum(p, len);
    if (c->close_after || draining) {
        c->close_after = 1;
        p = put(p, "\r\nConnection: close");
    }
    if (status[0] == '4' && status[2] == '5')
        p = put(p, "\r\nAllow: GET, HEAD");
    p = put(p, "\r\n\r\n");
    if (body && with_body)
        p = put(p, body);
    c->out_len = (int)(p - c->out);
    c->out_off = 0;
}

static void reply_error(struct conn *c, const char *status, int with_body)
{
    char body[64];
    char *p = put(body, status);
    p = put(p, "\n");
    *p = 0;
    if (status[0] != '4' || status[2] != '4')
        c->close_after = 1; /* after a 400/405/431... the stream may be out of sync */
    head(c, status, "text/plain; charset=utf-8", (unsigned long long)(p - body), body, with_body);
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    ch |= 0x20;
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Percent-decode the request target into a path relative to the root; 0 = refuse. */
static int clean_path(const char *t, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    if (!n || t[0] != '/')
        return 0;
    size_t i = 1;
    while (i < n && t[i] == '/')
        i++; /* "//etc/passwd" must not become an absolute path */
    for (; i < n && t[i] != '?' && t[i] != '#'; i++) {
        int ch = (unsigned char)t[i];
        if (ch == '%') {
            int hi = i + 2 < n ? hexval(t[i + 1]) : -1, lo = hi >= 0 ? hexval(t[i + 2]) : -1;
            if (lo < 0)
                return 0;
            ch = hi * 16 + lo;
            i += 2;
        }
        if (ch == 0 || o + 1 >= cap || (o == 0 && ch == '/'))
            return 0;
        out[o++] = (char)ch;
    }
    out[o] = 0;
    /* refuse any ".." path segment: no way out of the root */
    for (const char *s = out; (s = strstr(s, "..")); s += 2)
        if ((s == out || s[-1] == '/') && (s[2] == 0 || s[2] == '/'))
            return 0;
    if (o == 0 || out[o - 1] == '/') {
        if (o + 11 > cap)
            return 0;
        memcpy(out + o, "index.html", 11);
    }
    return 1;
}

/* Case-insensitive search of a header's value in the request head; returns its start or 0. */
static const char *header(const char *h, const char *end, const char *name)
{
    size_t n = strlen(name);
    const char *p = h;
    while (p < end) {
        if ((size_t)(end - p) > n && !strncasecmp(p, name, n) && p[n] == ':') {
            p += n + 1;
            while (*p == ' ' || *p == '\t')
                p++;
            return p;
        }
        p = memchr(p, '\n', (size_t)(end - p));
        if (!p)
            break;
        p++;
    }
    return 0;
}

static void serve_file(struct conn *c, const char *rel, int with_body)
{
    struct stat st;
    int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    int fd = rootfd < 0 ? -1 : openat(rootfd, rel, flags);
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        int idx = openat(fd, "index.html", flags);
        close(fd);
        fd = idx;
        rel = "index.html";
    }
    if (fd >= 0 && fstat(fd, &st) != 0) {
        close(fd);
        fd = -1;
    }
    if (fd < 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        reply_error(c, "404 Not Found", with_body);
        return;
    }
    head(c, "200 OK", content_type(rel), (unsigned long long)st.st_size, 0, 0);
    if (with_body && st.st_size > 0) {
        c->file = fd;
        c->file_off = 0;
        c->file_end = st.st_size;
    } else {
        close(fd);
    }
}

/* One complete request head in req[0..len): prepare the response. */
static void handle(struct conn *c, char *req, size_t len)
{
    char path[1024];
    char *end = req + len, *sp1 = memchr(req, ' ', len), *sp2, *eol;
    if (!sp1 || !(eol = memchr(req, '\n', len)) || !(sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)))) {
        reply_error(c, "400 Bad Request", 1);
        return;
    }
    size_t mlen = (size_t)(sp1 - req);
    int get = mlen == 3 && !memcmp(req, "GET", 3), head_only = mlen == 4 && !memcmp(req, "HEAD", 4);
    const char *ver = sp2 + 1;
    int v11 = !strncmp(ver, "HTTP/1.1", 8), v10 = !strncmp(ver, "HTTP/1.0", 8);
    if (!v11 && !v10) {
        reply_error(c, "400 Bad Request", !head_only);
        return;
    }
    const char *conn = header(eol + 1, end, "connection");
    if (v10 ? !(conn && !strncasecmp(conn, "keep-alive", 10)) : (conn && !strncasecmp(conn, "close", 5)))
        c->close_after = 1;
    const char *cl = header(eol + 1, end, "content-length");
    if ((cl && *cl != '0') || header(eol + 1, end, "transfer-encoding"))
        c->close_after = 1; /* a body we will not read: answer, then close */
    if (!get && !head_only) {
        reply_error(c, "405 Method Not Allowed", 1);
        return;
    }
    if (!clean_path(sp1 + 1, (size_t)(sp2 - sp1 - 1), path, sizeof path)) {
        reply_error(c, "400 Bad Request", get);
        return;
    }
    if (!strcmp(path, "healthz")) {
        head(c, "200 OK", "text/plain; charset=utf-8", 3, "ok\n", get);
        return;
    }
    serve_file(c, path, get);
}

static void arm(int fd, int out)
{
    struct epoll_event ev = {.events = out ? EPOLLOUT : EPOLLIN, .data.fd = fd};
    conns[fd].armed = (char)out;
    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

/* Write what is pending. 1: done and still open; 0: waiting for EPOLLOUT, or closed. */
static int flush(int fd)
{
    struct conn *c = &conns[fd];
    while (c->out_off < c->out_len) {
        ssize_t w = send(fd, c->out + c->out_off, (size_t)(c->out_len - c->out_off),
                         MSG_NOSIGNAL | (c->file >= 0 ? MSG_MORE : 0));
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            goto wait;
        if (w <= 0)
            goto fail;
        c->out_off += (int)w;
    }
    while (c->file >= 0 && c->file_off < c->file_end) {
        ssize_t w = sendfile(fd, c->file, &c->file_off, (size_t)(c->file_end - c->file_off));
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            goto wait;
        if (w <= 0)
            goto fail; /* error, or the file shrank under us */
    }
    if (c->file >= 0) {
        close(c->file);
        c->file = -1;
    }
    c->out_len = c->out_off = 0;
    if (c->armed)
        arm(fd, 0);
    if (c->close_after) {
        close_conn(fd);
        return 0;
    }
    return 1;
wait:
    if (!c->armed)
        arm(fd, 1);
    return 0;
fail:
    close_conn(fd);
    return 0;
}

/* Answer every complete request in the buffer (pipelining), as long as writes keep up. */
static void process(int fd)
{
    struct conn *c = &conns[fd];
    while (c->open && !c->out_len) {
        char *end = 0;
        for (int i = 3; i < c->in_len; i++)
            if (c->in[i] == '\n' && c->in[i - 1] == '\r' && c->in[i - 2] == '\n' && c->in[i - 3] == '\r') {
                end = c->in + i + 1;
                break;
            }
        if (!end) {
            if (c->in_len == INBUF) {
                c->in_len = 0;
                reply_error(c, "431 Request Header Fields Too Large", 1);
                flush(fd);
            }
            return;
        }
        size_t len = (size_t)(end - c->in);
        handle(c, c->in, len);
        c->in_len -= (int)len;
        memmove(c->in, end, (size_t)c->in_len);
        if (!flush(fd))
            return;
    }
}

static void on_event(int fd, unsigned events)
{
    struct conn *c = &conns[fd];
    c->last = now;
    if (events & EPOLLERR) {
        close_conn(fd);
        return;
    }
    if (c->out_len) {
        if (flush(fd))
            process(fd);
        return;
    }
    ssize_t r = recv(fd, c->in + c->in_len, (size_t)(INBUF - c->in_len), 0);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r <= 0) {
        close_conn(fd);
        return;
    }
    c->in_len += (int)r;
    process(fd);
}

static void accept_all(void)
{
    for (;;) {
        int fd = accept4(lfd, 0, 0, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or out of fds: try again on the next event */
        if (fd >= MAXFD) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = &conns[fd];
        c->open = 1;
        c->armed = c->close_after = 0;
        c->in_len = c->out_len = c->out_off = 0;
        c->file = -1;
        c->last = now;
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        nconns++;
    }
}

static void start_drain(void)
{
    if (draining)
        return;
    draining = 1;
    drain_start = now;
    close(lfd); /* stop accepting: new connections are refused */
    lfd = -1;
    say("httpd: stopping: finishing requests in flight", 0);
    for (int fd = 0; fd < MAXFD; fd++)
        if (conns[fd].open) {
            if (!conns[fd].in_len && !conns[fd].out_len)
                close_conn(fd); /* idle keep-alive */
            else
                conns[fd].close_after = 1;
        }
}

static void sweep(void)
{
    for (int fd = 0; fd < MAXFD; fd++)
        if (conns[fd].open && (now - conns[fd].last > IDLE_SECS || (draining && now - drain_start >= DRAIN_SECS)))
            close_conn(fd);
}

int main(void)
{
    const char *ps = getenv("PORT"), *root = getenv("WWW_ROOT");
    long port = ps && *ps ? strtol(ps, 0, 10) : 8080;
    if (port < 1 || port > 65535) {
        say("httpd: PORT must be 1-65535, not ", ps);
        return 2;
    }
    if (!root || !*root)
        root = "/www";
    rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        say("httpd: warning: cannot open the document root ", root);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, 0);
    int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);

    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) || listen(lfd, 4096)) {
        say("httpd: cannot listen on port ", ps ? ps : "8080");
        return 1;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    ev.data.fd = sfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
    say("httpd: listening on port ", ps ? ps : "8080");

    time_t swept = now = mono();
    struct epoll_event evs[256];
    while (!draining || nconns > 0) {
        int n = epoll_wait(ep, evs, 256, 1000);
        now = mono();
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd)
                accept_all();
            else if (fd == sfd) {
                struct signalfd_siginfo si;
                while (read(sfd, &si, sizeof si) == sizeof si)
                    start_drain();
            } else if (fd >= 0 && fd < MAXFD && conns[fd].open)
                on_event(fd, evs[i].events);
        }
        if (now != swept) {
            swept = now;
            sweep();
        }
    }
    say("httpd: stopped", 0);
    return 0;
}
