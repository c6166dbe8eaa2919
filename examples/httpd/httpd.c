/*
 * httpd: a small static-file HTTP/1.1 server for micro-containers.
 *
 * One thread, one epoll loop, non-blocking sockets: thousands of concurrent
 * keep-alive connections without a thread per connection. GET and HEAD of
 * files under $WWW_ROOT (default /www; "/" serves index.html), /healthz
 * answers "ok". Port from $PORT (default 8080). SIGTERM/SIGINT: stop
 * accepting, finish the requests in flight, close idle connections, exit 0.
 *
 * No libc: raw system calls through linux.h (musl would more than double the
 * binary). Errors come back from the kernel as -errno.
 */
#include "linux.h"

#define MAXFD 8192          /* connections are indexed by fd */
#define INBUF 4096          /* request head limit (431 beyond) */
#define OUTBUF 512          /* response head, or a small body */
#define IDLE_SECS 30        /* close connections silent for this long */
#define DRAIN_SECS 10       /* after SIGTERM, give in-flight requests this long */
#define LINGER_SECS 2       /* after our FIN, read and drop what the client still sends */

struct conn {
    char open, armed, close_after, lingering;
    int in_len, out_len, out_off, file;
    off64 file_off, file_end;
    long last, linger_start;
    char in[INBUF];
    char out[OUTBUF];
};

static struct conn conns[MAXFD];
static int ep, lfd = -1, rootfd = -1, nconns, draining;
static long now, drain_start;

static size_t len(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

static void say(const char *a, const char *b)
{
    sys3(__NR_write, 2, a, len(a));
    if (b)
        sys3(__NR_write, 2, b, len(b));
    sys3(__NR_write, 2, "\n", 1);
}

static int lower(int ch)
{
    return ch >= 'A' && ch <= 'Z' ? ch + 32 : ch;
}

/* Case-insensitive: does s start with prefix p? */
static int iprefix(const char *s, const char *p)
{
    while (*p)
        if (lower(*s++) != lower(*p++))
            return 0;
    return 1;
}

static int same(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

static char *find(char *p, char *end, char ch)
{
    for (; p < end; p++)
        if (*p == ch)
            return p;
    return 0;
}

static char *put(char *p, const char *s)
{
    while (*s)
        *p++ = *s++;
    return p;
}

/* Decimal, without division (no libgcc/compiler-rt helpers on 32-bit arm). */
static char *putnum(char *p, unsigned long long n)
{
    static const unsigned long long tens[] = {10000000000000000000ull, 1000000000000000000ull,
        100000000000000000ull, 10000000000000000ull, 1000000000000000ull, 100000000000000ull,
        10000000000000ull, 1000000000000ull, 100000000000ull, 10000000000ull, 1000000000ull,
        100000000ull, 10000000ull, 1000000ull, 100000ull, 10000ull, 1000ull, 100ull, 10ull, 1ull};
    int started = 0;
    for (int i = 0; i < 20; i++) {
        char d = '0';
        while (n >= tens[i])
            n -= tens[i], d++;
        if (d != '0' || started || i == 19)
            *p++ = d, started = 1;
    }
    return p;
}

static void close_conn(int fd)
{
    struct conn *c = &conns[fd];
    if (c->file >= 0)
        sys1(__NR_close, c->file);
    c->open = 0;
    sys1(__NR_close, fd); /* also removes it from the epoll set */
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
    const char *dot = 0;
    for (const char *p = path; *p; p++)
        if (*p == '.')
            dot = p;
        else if (*p == '/')
            dot = 0;
    if (dot)
        for (int i = 0; types[i]; i += 2)
            if (iprefix(dot + 1, types[i]) && !dot[1 + len(types[i])])
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
    for (size_t k = 0; k + 1 < o; k++)
        if (out[k] == '.' && out[k + 1] == '.' && (k == 0 || out[k - 1] == '/') && (k + 2 == o || out[k + 2] == '/'))
            return 0;
    if (o == 0 || out[o - 1] == '/') {
        if (o + 11 > cap)
            return 0;
        for (const char *ix = "index.html"; (out[o++] = *ix); ix++)
            ;
    }
    return 1;
}

/* Case-insensitive search of a header's value in the request head; returns its start or 0. */
static const char *header(char *h, char *end, const char *name)
{
    size_t n = len(name);
    char *p = h;
    while (p < end) {
        if ((size_t)(end - p) > n && iprefix(p, name) && p[n] == ':') {
            p += n + 1;
            while (*p == ' ' || *p == '\t')
                p++;
            return p;
        }
        p = find(p, end, '\n');
        if (!p)
            break;
        p++;
    }
    return 0;
}

static void serve_file(struct conn *c, const char *rel, int with_body)
{
    int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    long fd = rootfd < 0 ? -1 : sys4(__NR_openat, rootfd, rel, flags, 0);
    unsigned mode = 0;
    off64 size = 0;
    if (fd >= 0 && !file_info(fd, &mode, &size) && mode == S_IFDIR) { /* a directory: its index.html */
        long idx = sys4(__NR_openat, fd, "index.html", flags, 0);
        sys1(__NR_close, fd);
        fd = idx;
        rel = "index.html";
        mode = 0;
        if (fd >= 0)
            file_info(fd, &mode, &size);
    }
    if (mode != S_IFREG) { /* missing, unreadable, or not a regular file */
        if (fd >= 0)
            sys1(__NR_close, fd);
        reply_error(c, "404 Not Found", with_body);
        return;
    }
    head(c, "200 OK", content_type(rel), (unsigned long long)size, 0, 0);
    if (with_body && size > 0) {
        c->file = (int)fd;
        c->file_off = 0;
        c->file_end = size;
    } else {
        sys1(__NR_close, fd);
    }
}

/* One complete request head in req[0..len): prepare the response. */
static void handle(struct conn *c, char *req, size_t len)
{
    char path[1024];
    char *end = req + len, *sp1 = find(req, end, ' '), *sp2, *eol;
    if (!sp1 || !(eol = find(req, end, '\n')) || eol < sp1 || !(sp2 = find(sp1 + 1, eol, ' '))) {
        reply_error(c, "400 Bad Request", 1);
        return;
    }
    size_t mlen = (size_t)(sp1 - req);
    int get = mlen == 3 && iprefix(req, "GET") && req[0] == 'G';
    int head_only = mlen == 4 && iprefix(req, "HEAD") && req[0] == 'H';
    const char *ver = sp2 + 1;
    int v11 = iprefix(ver, "HTTP/1.1"), v10 = iprefix(ver, "HTTP/1.0");
    if (!v11 && !v10) {
        reply_error(c, "400 Bad Request", !head_only);
        return;
    }
    const char *conn = header(eol + 1, end, "connection");
    if (v10 ? !(conn && iprefix(conn, "keep-alive")) : (conn && iprefix(conn, "close")))
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
    if (same(path, "healthz")) {
        head(c, "200 OK", "text/plain; charset=utf-8", 3, "ok\n", get);
        return;
    }
    serve_file(c, path, get);
}

static void arm(int fd, int out)
{
    struct epoll_event ev = {.events = out ? EPOLLOUT : EPOLLIN, .data = (unsigned long long)fd};
    conns[fd].armed = (char)out;
    sys4(__NR_epoll_ctl, ep, EPOLL_CTL_MOD, fd, &ev);
}

/* Write what is pending. 1: done and still open; 0: waiting for EPOLLOUT, or closed. */
static int flush(int fd)
{
    struct conn *c = &conns[fd];
    while (c->out_off < c->out_len) {
        long w = sys6(__NR_sendto, fd, (long)(c->out + c->out_off), c->out_len - c->out_off,
                      MSG_NOSIGNAL | (c->file >= 0 ? MSG_MORE : 0), 0, 0);
        if (w == -EINTR)
            continue;
        if (w == -EAGAIN)
            goto wait;
        if (w <= 0)
            goto fail;
        c->out_off += (int)w;
    }
    while (c->file >= 0 && c->file_off < c->file_end) {
        off64 left = c->file_end - c->file_off;
        long w = sys4(__NR_sendfile_64, fd, c->file, &c->file_off, left > (1 << 30) ? (1 << 30) : left);
        if (w == -EINTR)
            continue;
        if (w == -EAGAIN)
            goto wait;
        if (w <= 0)
            goto fail; /* error, or the file shrank under us */
    }
    if (c->file >= 0) {
        sys1(__NR_close, c->file);
        c->file = -1;
    }
    c->out_len = c->out_off = 0;
    if (c->armed)
        arm(fd, 0);
    if (c->close_after) {
        /* lingering close: send our FIN, drain the client's leftovers, then close; closing
           with unread input would send a RST that can destroy the response in flight */
        sys2(__NR_shutdown, fd, SHUT_WR);
        c->lingering = 1;
        c->linger_start = now;
        c->in_len = 0;
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
        if (c->in_len)
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
    if (c->lingering) {
        long r = sys6(__NR_recvfrom, fd, (long)c->in, INBUF, 0, 0, 0);
        if (r != -EAGAIN && r != -EINTR && r <= 0)
            close_conn(fd);
        return;
    }
    long r = sys6(__NR_recvfrom, fd, (long)(c->in + c->in_len), INBUF - c->in_len, 0, 0, 0);
    if (r == -EAGAIN || r == -EINTR)
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
        long fd = sys4(__NR_accept4, lfd, 0, 0, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or out of fds: try again on the next event */
        if (fd >= MAXFD) {
            sys1(__NR_close, fd);
            continue;
        }
        int one = 1;
        sys5(__NR_setsockopt, fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = &conns[fd];
        c->open = 1;
        c->armed = c->close_after = c->lingering = 0;
        c->in_len = c->out_len = c->out_off = 0;
        c->file = -1;
        c->last = now;
        struct epoll_event ev = {.events = EPOLLIN, .data = (unsigned long long)fd};
        sys4(__NR_epoll_ctl, ep, EPOLL_CTL_ADD, fd, &ev);
        nconns++;
    }
}

static void start_drain(void)
{
    if (draining)
        return;
    draining = 1;
    drain_start = now;
    sys1(__NR_close, lfd); /* stop accepting: new connections are refused */
    lfd = -1;
    say("httpd: stopping: finishing requests in flight", 0);
    for (int fd = 0; fd < MAXFD; fd++)
        if (conns[fd].open) {
            if (!conns[fd].in_len && !conns[fd].out_len && !conns[fd].lingering)
                close_conn(fd); /* idle keep-alive */
            else
                conns[fd].close_after = 1;
        }
}

static void sweep(void)
{
    for (int fd = 0; fd < MAXFD; fd++)
        if (conns[fd].open && (now - conns[fd].last > IDLE_SECS || (draining && now - drain_start >= DRAIN_SECS) ||
                               (conns[fd].lingering && now - conns[fd].linger_start >= LINGER_SECS)))
            close_conn(fd);
}

static int main_env(char **envp)
{
    const char *ps = env_get(envp, "PORT"), *root = env_get(envp, "WWW_ROOT");
    long port = ps && *ps ? 0 : 8080;
    for (const char *p = ps; p && *p && port <= 65535; p++)
        port = *p >= '0' && *p <= '9' ? port * 10 + (*p - '0') : 65536;
    if (port < 1 || port > 65535) {
        say("httpd: PORT must be 1-65535, not ", ps);
        return 2;
    }
    if (!root || !*root)
        root = "/www";
    rootfd = (int)sys4(__NR_openat, AT_FDCWD, root, O_RDONLY | O_CLOEXEC, 0);
    if (rootfd < 0)
        say("httpd: warning: cannot open the document root ", root);

    unsigned long long set = (1ull << (SIGTERM - 1)) | (1ull << (SIGINT - 1));
    sys4(__NR_rt_sigprocmask, SIG_BLOCK, &set, 0, 8);
    int sfd = (int)sys4(__NR_signalfd4, -1, &set, 8, O_NONBLOCK | O_CLOEXEC);

    lfd = (int)sys3(__NR_socket, AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    sys5(__NR_setsockopt, lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.family = AF_INET, .port = htons((unsigned short)port)};
    if (lfd < 0 || sys3(__NR_bind, lfd, &sa, sizeof sa) || sys2(__NR_listen, lfd, 4096)) {
        say("httpd: cannot listen on port ", ps ? ps : "8080");
        return 1;
    }
    ep = (int)sys1(__NR_epoll_create1, O_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data = (unsigned long long)lfd};
    sys4(__NR_epoll_ctl, ep, EPOLL_CTL_ADD, lfd, &ev);
    ev.data = (unsigned long long)sfd;
    sys4(__NR_epoll_ctl, ep, EPOLL_CTL_ADD, sfd, &ev);
    /* a 1 s tick drives the idle and drain timeouts (no clock reads on the hot path) */
    int tfd = (int)sys2(__NR_timerfd_create, CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct itimerspec_native tick = {1, 0, 1, 0};
    sys4(__NR_timerfd_settime, tfd, 0, &tick, 0);
    ev.data = (unsigned long long)tfd;
    sys4(__NR_epoll_ctl, ep, EPOLL_CTL_ADD, tfd, &ev);
    say("httpd: listening on port ", ps ? ps : "8080");

    static struct epoll_event evs[256];
    while (!draining || nconns > 0) {
        long n = sys6(__NR_epoll_pwait, ep, (long)evs, 256, -1, 0, 8);
        for (long i = 0; i < n; i++) {
            int fd = (int)evs[i].data;
            if (fd == lfd)
                accept_all();
            else if (fd == sfd) {
                char si[128];
                while (sys3(__NR_read, sfd, si, sizeof si) == sizeof si)
                    start_drain();
            } else if (fd == tfd) {
                unsigned long long ticks = 0;
                if (sys3(__NR_read, tfd, &ticks, sizeof ticks) == sizeof ticks) {
                    now += (long)ticks;
                    sweep();
                }
            } else if (fd >= 0 && fd < MAXFD && conns[fd].open)
                on_event(fd, evs[i].events);
        }
    }
    say("httpd: stopped", 0);
    return 0;
}
