/* kilobox test probe: reports what a process can see and do from inside a container.
 *
 * Build: python -m ziglang cc -target x86_64-linux-musl -static -Os -o probe probe.c
 * Each argument is one action, run in order; results are printed as key=value lines:
 *   report            uid gid groups capeff capbnd nonewprivs seccomp pid hostname
 *   hostpid=N         hostpid=visible|hidden   (can this process see /proc/N?)
 *   write=PATH        write=ok|<errno name>    (create and write PATH)
 *   read=PATH         read=ok:<first line>|<errno name>
 *   connect=IP:PORT   connect=ok|<errno name>
 *   env=NAME          env.NAME=<value>|<unset>
 *   cwd               cwd=<dir>
 *   args              argc=N then arg0=... lines
 *   trap              exit 100+signo on SIGTERM/SIGINT (installs handlers)
 *   pause             wait for a signal
 *   sleep=MS          sleep for MS milliseconds
 *   cat               copy stdin to stdout
 *   serve=PORT        answer HTTP GET with 200 "ok\n" on 0.0.0.0:PORT until SIGTERM (then exit 0)
 *   exit=N            exit with status N
 *   setuid            setuid(0)=ok|<errno>  (should fail without privileges)
 *   iouring           iouring=<errno> of io_uring_setup(0, NULL): ENOSYS under the default seccomp profile
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static const char *ename(int e) {
    switch (e) {
    case EACCES: return "EACCES"; case EPERM: return "EPERM"; case EROFS: return "EROFS";
    case ENOENT: return "ENOENT"; case ECONNREFUSED: return "ECONNREFUSED";
    case ENETUNREACH: return "ENETUNREACH"; case ETIMEDOUT: return "ETIMEDOUT";
    case EHOSTUNREACH: return "EHOSTUNREACH"; case ENOSYS: return "ENOSYS";
    case EEXIST: return "EEXIST"; case ENOTDIR: return "ENOTDIR"; case ELOOP: return "ELOOP";
    case EINVAL: return "EINVAL"; case EFAULT: return "EFAULT";
    default: return "EOTHER";
    }
}

static void status_field(const char *key, const char *out) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[512];
    size_t n = strlen(key);
    if (!f) { printf("%s=unknown\n", out); return; }
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, n) == 0 && line[n] == ':') {
            char *v = line + n + 1;
            while (*v == ' ' || *v == '\t') v++;
            v[strcspn(v, "\n")] = 0;
            printf("%s=%s\n", out, v);
            fclose(f);
            return;
        }
    }
    fclose(f);
    printf("%s=unknown\n", out);
}

static void report(void) {
    char host[256] = "";
    gid_t groups[64];
    int ng = getgroups(64, groups);
    printf("uid=%d\ngid=%d\neuid=%d\n", (int)getuid(), (int)getgid(), (int)geteuid());
    printf("groups=");
    for (int i = 0; i < ng; i++) printf(i ? ",%d" : "%d", (int)groups[i]);
    printf("\n");
    status_field("CapEff", "capeff");
    status_field("CapPrm", "capprm");
    status_field("CapBnd", "capbnd");
    status_field("CapAmb", "capamb");
    status_field("NoNewPrivs", "nonewprivs");
    status_field("Seccomp", "seccomp");
    printf("pid=%d\n", (int)getpid());
    gethostname(host, sizeof host - 1);
    printf("hostname=%s\n", host);
}

static void on_term(int sig) {
    if (sig == SIGTERM || sig == SIGINT) {
        char msg[32];
        int n = snprintf(msg, sizeof msg, "signal=%d\n", sig);
        write(1, msg, n);
        _exit(100 + sig);
    }
}

static volatile sig_atomic_t stop_serving;
static void on_stop(int sig) { (void)sig; stop_serving = 1; }

static int serve(int port) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;           /* no SA_RESTART: accept() returns EINTR */
    sigaction(SIGTERM, &sa, 0);
    sigaction(SIGINT, &sa, 0);
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 64)) {
        printf("serve=%s\n", ename(errno));
        return 1;
    }
    printf("serve=listening:%d\n", port);
    fflush(stdout);
    static const char resp[] = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
    while (!stop_serving) {
        int c = accept(s, 0, 0);
        if (c < 0) continue;
        char buf[1024];
        read(c, buf, sizeof buf);
        write(c, resp, sizeof resp - 1);
        close(c);
    }
    printf("serve=stopped\n");
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, 0, _IOLBF, 0);
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (!strcmp(a, "report")) report();
        else if (!strncmp(a, "hostpid=", 8)) {
            char p[64];
            struct stat st;
            snprintf(p, sizeof p, "/proc/%s", a + 8);
            printf("hostpid=%s\n", stat(p, &st) == 0 ? "visible" : "hidden");
        } else if (!strncmp(a, "write=", 6)) {
            int fd = open(a + 6, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0644);
            if (fd >= 0 && write(fd, "x\n", 2) == 2) { printf("write=ok\n"); close(fd); }
            else printf("write=%s\n", ename(errno));
        } else if (!strncmp(a, "read=", 5)) {
            FILE *f = fopen(a + 5, "r");
            char line[256] = "";
            if (!f) { printf("read=%s\n", ename(errno)); continue; }
            if (!fgets(line, sizeof line, f)) line[0] = 0;
            line[strcspn(line, "\n")] = 0;
            printf("read=ok:%s\n", line);
            fclose(f);
        } else if (!strncmp(a, "connect=", 8)) {
            char host[64];
            int port = 0;
            struct sockaddr_in sa;
            if (sscanf(a + 8, "%63[^:]:%d", host, &port) != 2) { printf("connect=EINVAL\n"); continue; }
            memset(&sa, 0, sizeof sa);
            sa.sin_family = AF_INET;
            sa.sin_port = htons(port);
            inet_pton(AF_INET, host, &sa.sin_addr);
            int s = socket(AF_INET, SOCK_STREAM, 0);
            if (s >= 0 && connect(s, (struct sockaddr *)&sa, sizeof sa) == 0) printf("connect=ok\n");
            else printf("connect=%s\n", ename(errno));
            if (s >= 0) close(s);
        } else if (!strncmp(a, "env=", 4)) {
            const char *v = getenv(a + 4);
            printf("env.%s=%s\n", a + 4, v ? v : "<unset>");
        } else if (!strcmp(a, "cwd")) {
            char d[512];
            printf("cwd=%s\n", getcwd(d, sizeof d) ? d : "?");
        } else if (!strcmp(a, "args")) {
            printf("argc=%d\n", argc);
            for (int j = 0; j < argc; j++) printf("arg%d=%s\n", j, argv[j]);
        } else if (!strcmp(a, "trap")) {
            signal(SIGTERM, on_term);
            signal(SIGINT, on_term);
            printf("trap=ready\n");
        } else if (!strcmp(a, "pause")) {
            pause();
        } else if (!strncmp(a, "sleep=", 6)) {
            long ms = atol(a + 6);
            struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
            while (nanosleep(&ts, &ts) && errno == EINTR) {}
        } else if (!strcmp(a, "cat")) {
            char buf[4096];
            ssize_t n;
            while ((n = read(0, buf, sizeof buf)) > 0) write(1, buf, n);
        } else if (!strncmp(a, "serve=", 6)) {
            return serve(atoi(a + 6));
        } else if (!strncmp(a, "exit=", 5)) {
            return atoi(a + 5);
        } else if (!strcmp(a, "iouring")) {
            long r = syscall(425 /* io_uring_setup on x86_64 */, 0, 0);
            printf("iouring=%s\n", r == 0 ? "ok" : ename(errno));
        } else if (!strcmp(a, "setuid")) {
            printf("setuid=%s\n", setuid(0) == 0 ? "ok" : ename(errno));
        } else {
            printf("unknown=%s\n", a);
            return 2;
        }
    }
    return 0;
}
