/* hello: write "ok\n" to stdout and exit 0 -- raw system calls, no libc, no startup code. */

static const char msg[3] __attribute__((used, section(".text.msg"))) = {'o', 'k', '\n'};

__attribute__((noreturn, used)) void _start(void)
{
#if defined(__x86_64__)
    __asm__ volatile("syscall" : : "a"(1), "D"(1), "S"(msg), "d"(3) : "rcx", "r11", "memory");
    __asm__ volatile("syscall" : : "a"(60), "D"(0));
#elif defined(__aarch64__)
    register long x0 __asm__("x0") = 1;
    register const char *x1 __asm__("x1") = msg;
    register long x2 __asm__("x2") = 3;
    register long x8 __asm__("x8") = 64;               /* write */
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x1), "r"(x2), "r"(x8) : "memory");
    x0 = 0;
    x8 = 93;                                            /* exit */
    __asm__ volatile("svc 0" : : "r"(x0), "r"(x8));
#elif defined(__arm__)
    register long r0 __asm__("r0") = 1;
    register const char *r1 __asm__("r1") = msg;
    register long r2 __asm__("r2") = 3;
    register long r7 __asm__("r7") = 4;                 /* write */
    __asm__ volatile("svc 0" : "+r"(r0) : "r"(r1), "r"(r2), "r"(r7) : "memory");
    r0 = 0;
    r7 = 1;                                             /* exit */
    __asm__ volatile("svc 0" : : "r"(r0), "r"(r7));
#elif defined(__riscv)
    register long a0 __asm__("a0") = 1;
    register const char *a1 __asm__("a1") = msg;
    register long a2 __asm__("a2") = 3;
    register long a7 __asm__("a7") = 64;                /* write */
    __asm__ volatile("ecall" : "+r"(a0) : "r"(a1), "r"(a2), "r"(a7) : "memory");
    a0 = 0;
    a7 = 93;                                            /* exit */
    __asm__ volatile("ecall" : : "r"(a0), "r"(a7));
#else
#error "hello: add the write/exit system calls for this architecture"
#endif
    __builtin_unreachable();
}
