/*
 * linux.h: just enough of Linux for a freestanding server -- raw system calls,
 * the process entry point, and the few memory functions the compiler may call.
 * x86_64, aarch64, arm (EABI) and riscv64. The system call numbers are the
 * kernel's (checked against musl's bits/syscall.h for each target); the flag
 * values further down are the same on these four architectures.
 */
#ifndef KILOBOX_LINUX_H
#define KILOBOX_LINUX_H

/*                      x86_64  generic(aarch64, riscv64)  arm */
#if defined(__x86_64__)
#define NR(x86, gen, arm) x86
#elif defined(__aarch64__) || defined(__riscv)
#define NR(x86, gen, arm) gen
#elif defined(__arm__)
#define NR(x86, gen, arm) arm
#endif
#define __NR_read            NR(0, 63, 3)
#define __NR_write           NR(1, 64, 4)
#define __NR_close           NR(3, 57, 6)
#define __NR_lseek           NR(8, 62, 19)
#define __NR_rt_sigprocmask  NR(14, 135, 175)
#define __NR_sendfile_64     NR(40, 71, 239)      /* sendfile64 on arm */
#define __NR_socket          NR(41, 198, 281)
#define __NR_connect         NR(42, 203, 283)
#define __NR_shutdown        NR(48, 210, 293)
#define __NR_sendto          NR(44, 206, 290)
#define __NR_recvfrom        NR(45, 207, 292)
#define __NR_bind            NR(49, 200, 282)
#define __NR_listen          NR(50, 201, 284)
#define __NR_setsockopt      NR(54, 208, 294)
#define __NR_fstat_64       NR(5, 80, 197)       /* fstat64 on arm */
#define __NR_timerfd_create  NR(283, 85, 350)
#define __NR_timerfd_settime NR(286, 86, 353)     /* 32-bit timespec on arm */
#define __NR_exit_group      NR(231, 94, 248)
#define __NR_epoll_ctl       NR(233, 21, 251)
#define __NR_openat          NR(257, 56, 322)
#define __NR_epoll_pwait     NR(281, 22, 346)
#define __NR_accept4         NR(288, 242, 366)
#define __NR_signalfd4       NR(289, 74, 355)
#define __NR_epoll_create1   NR(291, 20, 357)

typedef unsigned long size_t;
typedef long ssize_t;
typedef long long off64;

/* -- system calls ---------------------------------------------------------- */
#if defined(__x86_64__)
static inline long sys6(long n, long a, long b, long c, long d, long e, long f)
{
    register long r10 __asm__("r10") = d, r8 __asm__("r8") = e, r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}
__asm__(".text\n.global _start\n_start:\n xor %rbp,%rbp\n mov %rsp,%rdi\n and $-16,%rsp\n call start_c\n hlt\n");
#elif defined(__aarch64__)
static inline long sys6(long n, long a, long b, long c, long d, long e, long f)
{
    register long x8 __asm__("x8") = n, x0 __asm__("x0") = a, x1 __asm__("x1") = b, x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d, x4 __asm__("x4") = e, x5 __asm__("x5") = f;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
    return x0;
}
__asm__(".text\n.global _start\n_start:\n mov x29, #0\n mov x30, #0\n mov x0, sp\n bl start_c\n");
#elif defined(__arm__)
static inline long sys6(long n, long a, long b, long c, long d, long e, long f)
{
    register long r7 __asm__("r7") = n, r0 __asm__("r0") = a, r1 __asm__("r1") = b, r2 __asm__("r2") = c;
    register long r3 __asm__("r3") = d, r4 __asm__("r4") = e, r5 __asm__("r5") = f;
    __asm__ volatile("svc 0" : "+r"(r0) : "r"(r7), "r"(r1), "r"(r2), "r"(r3), "r"(r4), "r"(r5) : "memory");
    return r0;
}
#if defined(__thumb__)
#define THUMB_FUNC ".thumb_func\n"
#else
#define THUMB_FUNC ""
#endif
__asm__(".text\n.global _start\n.type _start,%function\n" THUMB_FUNC "_start:\n mov r0, #0\n mov fp, r0\n"
        " mov lr, r0\n mov r0, sp\n mov r1, sp\n bic r1, r1, #15\n mov sp, r1\n bl start_c\n");
#elif defined(__riscv) && __riscv_xlen == 64
static inline long sys6(long n, long a, long b, long c, long d, long e, long f)
{
    register long a7 __asm__("a7") = n, a0 __asm__("a0") = a, a1 __asm__("a1") = b, a2 __asm__("a2") = c;
    register long a3 __asm__("a3") = d, a4 __asm__("a4") = e, a5 __asm__("a5") = f;
    __asm__ volatile("ecall" : "+r"(a0) : "r"(a7), "r"(a1), "r"(a2), "r"(a3), "r"(a4), "r"(a5) : "memory");
    return a0;
}
__asm__(".text\n.global _start\n_start:\n mv a0, sp\n andi sp, sp, -16\n call start_c\n");
#else
#error "linux.h: add the system call convention for this architecture"
#endif

#define sys0(n) sys6(n, 0, 0, 0, 0, 0, 0)
#define sys1(n, a) sys6(n, (long)(a), 0, 0, 0, 0, 0)
#define sys2(n, a, b) sys6(n, (long)(a), (long)(b), 0, 0, 0, 0)
#define sys3(n, a, b, c) sys6(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define sys4(n, a, b, c, d) sys6(n, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define sys5(n, a, b, c, d, e) sys6(n, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

/* errors come back as -errno */
#define EINTR 4
#define EAGAIN 11
#define ENOTDIR 20

#define O_RDONLY 0
#define O_NONBLOCK 04000
#define O_NOCTTY 0400
#define O_CLOEXEC 02000000
#define AT_FDCWD (-100)
#define SEEK_END 2

#define AF_INET 2
#define SOCK_STREAM 1
#define SOCK_NONBLOCK O_NONBLOCK
#define SOCK_CLOEXEC O_CLOEXEC
#define SHUT_WR 1
#define SOL_SOCKET 1
#define SO_REUSEADDR 2
#define IPPROTO_TCP 6
#define TCP_NODELAY 1
#define MSG_NOSIGNAL 0x4000
#define MSG_MORE 0x8000

#define EPOLLIN 0x1
#define EPOLLOUT 0x4
#define EPOLLERR 0x8
#define EPOLL_CTL_ADD 1
#define EPOLL_CTL_MOD 3

#define S_IFMT 0170000
#define S_IFREG 0100000
#define S_IFDIR 0040000
/* struct stat (stat64 on arm) as the kernel fills it: where st_mode and st_size are */
#if defined(__x86_64__)
#define STAT_MODE_OFF 24
#else
#define STAT_MODE_OFF 16
#endif
#define STAT_SIZE_OFF 48

#define SIG_BLOCK 0
#define SIGINT 2
#define SIGTERM 15
#define CLOCK_MONOTONIC 1
#define TFD_NONBLOCK O_NONBLOCK
#define TFD_CLOEXEC O_CLOEXEC

struct sockaddr_in {
    unsigned short family, port; /* port in network byte order */
    unsigned int addr;
    unsigned char zero[8];
};

struct epoll_event {
    unsigned int events;
    unsigned long long data;
}
#if defined(__x86_64__)
__attribute__((packed)) /* x86_64 alone packs it (12 bytes) */
#endif
;

struct itimerspec_native {
    long interval_sec, interval_nsec, value_sec, value_nsec; /* 32-bit fields on arm */
};

/* fstat: the file type bits and the size; -errno on failure. */
static inline long file_info(long fd, unsigned *mode, off64 *size)
{
    union {
        unsigned char b[160];
        unsigned long long align;
    } st;
    long r = sys6(__NR_fstat_64, fd, (long)st.b, 0, 0, 0, 0);
    if (r < 0)
        return r;
    *mode = *(unsigned *)(st.b + STAT_MODE_OFF) & S_IFMT;
    *size = *(off64 *)(st.b + STAT_SIZE_OFF);
    return 0;
}

static inline unsigned short htons(unsigned short v)
{
    return (unsigned short)((v << 8) | (v >> 8));
}

/* -- memory functions the compiler may emit calls to ------------------------ */
void *memset(void *d, int c, size_t n)
{
    unsigned char *p = d;
    while (n--)
        *p++ = (unsigned char)c;
    return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
    unsigned char *p = d;
    const unsigned char *q = s;
    while (n--)
        *p++ = *q++;
    return d;
}

void *memmove(void *d, const void *s, size_t n)
{
    unsigned char *p = d;
    const unsigned char *q = s;
    if (p < q)
        while (n--)
            *p++ = *q++;
    else
        while (n--)
            p[n] = q[n];
    return d;
}

static int main_env(char **envp);

__attribute__((noreturn, used)) void start_c(long *sp)
{
    long argc = sp[0];
    char **envp = (char **)(sp + argc + 2);
    sys1(__NR_exit_group, main_env(envp));
    __builtin_unreachable();
}

/* The value of NAME in envp, or 0. */
static const char *env_get(char **envp, const char *name)
{
    for (; *envp; envp++) {
        const char *e = *envp, *n = name;
        while (*n && *e == *n)
            e++, n++;
        if (!*n && *e == '=')
            return e + 1;
    }
    return 0;
}

#endif
