/* signals: dispositions, masks, pending signals, delivery and return through real signal frames, faults.
 *
 * With no argument every non-fatal check runs and prints deterministic facts; "fpu" checks the FPU/SSE state
 * around a handler, "illegal" a SIGILL handler for ud2. Any other argument names a single scenario that may end the process by a signal (the
 * differential harness compares exit 128+N).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fenv.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31)      /* linux/signal.h; glibc does not export it */
#endif

static const char *err_name(int e)
{
    switch (e) {
    case 0: return "OK";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case ESRCH: return "ESRCH";
    case EPERM: return "EPERM";
    case ENOMEM: return "ENOMEM";
    case EAGAIN: return "EAGAIN";
    case EINTR: return "EINTR";
    case EBADF: return "EBADF";
    case ENOENT: return "ENOENT";
    default: return "E?";
    }
}

/* Raw syscall: result and errno name, independent of what the C library checks itself. */
static const char *sys_result(long r)
{
    return r == -1 ? err_name(errno) : "OK";
}

struct ksigaction {
    void *handler;
    unsigned long flags;
    void *restorer;
    unsigned long mask;
};

static int is_blocked(int sig)
{
    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    return sigismember(&cur, sig);
}

static void install(int sig, void *handler, int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = flags;
    if (flags & SA_SIGINFO)
        sa.sa_sigaction = handler;
    else
        sa.sa_handler = handler;
    if (sigaction(sig, &sa, NULL) != 0)
        printf("sigaction(%d) failed: %s\n", sig, err_name(errno));
}

/* ---- basic delivery -------------------------------------------------------------------------- */
static volatile sig_atomic_t usr1_count, usr1_blocked_inside, usr2_blocked_inside;
static volatile int order[16], norder;   /* volatile: raise() is declared leaf */

static void on_usr1(int sig)
{
    usr1_count++;
    usr1_blocked_inside = is_blocked(SIGUSR1);
    usr2_blocked_inside = is_blocked(SIGUSR2);
    if (norder < 16)
        order[norder++] = sig;
}

static void on_record(int sig)
{
    if (norder < 16)
        order[norder++] = sig;
}

static void test_kill_self(void)
{
    install(SIGUSR1, on_usr1, 0);
    usr1_count = 0;
    int r = kill(getpid(), SIGUSR1);
    printf("kill self: r=%d handler ran before return=%d blocked inside=%d blocked after=%d\n", r, usr1_count,
           usr1_blocked_inside, is_blocked(SIGUSR1));
    r = raise(SIGUSR1);
    printf("raise: r=%d count=%d\n", r, usr1_count);
    r = syscall(SYS_tgkill, getpid(), gettid(), SIGUSR1);
    printf("tgkill self: r=%d count=%d\n", r, usr1_count);
    r = syscall(SYS_tkill, gettid(), SIGUSR1);
    printf("tkill self: r=%d count=%d\n", r, usr1_count);

    struct sigaction old;
    sigaction(SIGUSR1, NULL, &old);
    printf("old action: handler is on_usr1=%d flags=%#x\n", old.sa_handler == on_usr1, (unsigned)old.sa_flags);
    install(SIGUSR1, on_usr1, SA_SIGINFO | SA_RESTART | SA_ONSTACK);
    sigaction(SIGUSR1, NULL, &old);
    printf("flags recorded: %#x\n", (unsigned)old.sa_flags);
    struct ksigaction k = {0};
    syscall(SYS_rt_sigaction, SIGUSR2, NULL, &k, 8);
    printf("SIGUSR2 default: handler=%ld flags=%#lx mask=%#lx\n", (long)k.handler, k.flags, k.mask);
}

static void test_errors(void)
{
    struct ksigaction k = {0};
    k.handler = SIG_IGN;
    printf("rt_sigaction SIGKILL: %s\n", sys_result(syscall(SYS_rt_sigaction, SIGKILL, &k, NULL, 8)));
    printf("rt_sigaction SIGSTOP: %s\n", sys_result(syscall(SYS_rt_sigaction, SIGSTOP, &k, NULL, 8)));
    printf("rt_sigaction SIGKILL query: %s\n", sys_result(syscall(SYS_rt_sigaction, SIGKILL, NULL, &k, 8)));
    printf("rt_sigaction 0: %s\n", sys_result(syscall(SYS_rt_sigaction, 0, NULL, &k, 8)));
    printf("rt_sigaction 65: %s\n", sys_result(syscall(SYS_rt_sigaction, 65, NULL, &k, 8)));
    printf("rt_sigaction size 4: %s\n", sys_result(syscall(SYS_rt_sigaction, SIGUSR2, NULL, &k, 4)));
    printf("rt_sigaction bad act: %s\n", sys_result(syscall(SYS_rt_sigaction, SIGUSR2, (void *)8, NULL, 8)));
    printf("rt_sigaction bad oact: %s\n", sys_result(syscall(SYS_rt_sigaction, SIGUSR2, NULL, (void *)8, 8)));
    /* the unknown flag bit SA_UNSUPPORTED (0x400) is cleared */
    struct ksigaction in = {SIG_IGN, 0x400 | SA_RESTART, NULL, ~0UL}, out = {0};
    syscall(SYS_rt_sigaction, SIGUSR2, &in, NULL, 8);
    syscall(SYS_rt_sigaction, SIGUSR2, NULL, &out, 8);
    printf("unknown flag cleared: flags=%#lx mask=%#lx\n", out.flags, out.mask);
    in.handler = SIG_DFL;
    in.flags = 0;
    in.mask = 0;
    syscall(SYS_rt_sigaction, SIGUSR2, &in, NULL, 8);

    unsigned long set = 0, old = 0;
    printf("rt_sigprocmask bad how: %s\n", sys_result(syscall(SYS_rt_sigprocmask, 7, &set, NULL, 8)));
    printf("rt_sigprocmask bad how no set: %s\n", sys_result(syscall(SYS_rt_sigprocmask, 7, NULL, &old, 8)));
    printf("rt_sigprocmask size 16: %s\n", sys_result(syscall(SYS_rt_sigprocmask, SIG_BLOCK, &set, NULL, 16)));
    printf("rt_sigprocmask bad set: %s\n", sys_result(syscall(SYS_rt_sigprocmask, SIG_BLOCK, (void *)8, NULL, 8)));
    printf("rt_sigprocmask bad oset: %s\n", sys_result(syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, (void *)8, 8)));
    set = ~0UL;
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &set, &old, 8);
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, &set, 8);
    printf("SIGKILL/SIGSTOP never blocked: kill=%d stop=%d usr1=%d\n", (int)((set >> (SIGKILL - 1)) & 1),
           (int)((set >> (SIGSTOP - 1)) & 1), (int)((set >> (SIGUSR1 - 1)) & 1));
    printf("rt_sigpending size 16: %s\n", sys_result(syscall(SYS_rt_sigpending, &set, 16)));
    printf("rt_sigpending size 4: %s\n", sys_result(syscall(SYS_rt_sigpending, &set, 4)));
    printf("rt_sigpending bad ptr: %s\n", sys_result(syscall(SYS_rt_sigpending, (void *)8, 8)));

    printf("kill sig 65: %s\n", sys_result(syscall(SYS_kill, getpid(), 65)));
    printf("kill sig -1: %s\n", sys_result(syscall(SYS_kill, getpid(), -1)));
    printf("kill self 0: %s\n", sys_result(syscall(SYS_kill, getpid(), 0)));
    printf("kill missing pid: %s\n", sys_result(syscall(SYS_kill, 0x3ffffff0, 0)));
    printf("tgkill tid 0: %s\n", sys_result(syscall(SYS_tgkill, getpid(), 0, 0)));
    printf("tgkill tgid -1: %s\n", sys_result(syscall(SYS_tgkill, -1, gettid(), 0)));
    printf("tgkill wrong tgid: %s\n", sys_result(syscall(SYS_tgkill, 0x3ffffff0, gettid(), 0)));
    printf("tgkill missing tid: %s\n", sys_result(syscall(SYS_tgkill, getpid(), 0x3ffffff0, 0)));
    printf("tgkill sig 65: %s\n", sys_result(syscall(SYS_tgkill, getpid(), gettid(), 65)));
    printf("tgkill self 0: %s\n", sys_result(syscall(SYS_tgkill, getpid(), gettid(), 0)));
    printf("tkill tid -1: %s\n", sys_result(syscall(SYS_tkill, -1, 0)));
    printf("tkill sig 65: %s\n", sys_result(syscall(SYS_tkill, gettid(), 65)));
    printf("tkill missing tid: %s\n", sys_result(syscall(SYS_tkill, 0x3ffffff0, 0)));
}

/* ---- masks and pending signals ----------------------------------------------------------------- */
static void test_pending(void)
{
    install(SIGUSR1, on_record, 0);
    install(SIGUSR2, on_record, 0);
    install(SIGRTMIN + 2, on_record, 0);
    sigset_t block, pend, old;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGUSR2);
    sigaddset(&block, SIGRTMIN + 2);
    sigprocmask(SIG_BLOCK, &block, &old);
    norder = 0;
    raise(SIGUSR2);
    raise(SIGUSR1);
    raise(SIGUSR1);               /* a standard signal is pending at most once */
    raise(SIGRTMIN + 2);
    raise(SIGRTMIN + 2);          /* real-time signals queue */
    sigpending(&pend);
    printf("pending: usr1=%d usr2=%d rt=%d term=%d; ran while blocked=%d\n", sigismember(&pend, SIGUSR1),
           sigismember(&pend, SIGUSR2), sigismember(&pend, SIGRTMIN + 2), sigismember(&pend, SIGTERM), norder);
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("delivered on unblock:");
    for (int i = 0; i < norder; i++)
        printf(" %s", order[i] == SIGUSR1 ? "USR1" : order[i] == SIGUSR2 ? "USR2" : "RT");
    printf("\n");
    sigpending(&pend);
    printf("pending after: usr1=%d usr2=%d\n", sigismember(&pend, SIGUSR1), sigismember(&pend, SIGUSR2));

    /* a blocked signal pending on an ignored disposition: setting SIG_IGN discards it */
    sigprocmask(SIG_BLOCK, &block, &old);
    raise(SIGUSR2);
    signal(SIGUSR2, SIG_IGN);
    sigpending(&pend);
    printf("SIG_IGN discards pending: usr2=%d\n", sigismember(&pend, SIGUSR2));
    /* ignored (explicitly or by default) and not blocked: dropped at once */
    sigprocmask(SIG_SETMASK, &old, NULL);
    raise(SIGUSR2);
    raise(SIGCHLD);
    raise(SIGURG);
    raise(SIGWINCH);
    printf("ignored signals survived\n");
    /* blocked but ignored by default: it stays pending */
    sigaddset(&block, SIGCHLD);
    sigprocmask(SIG_BLOCK, &block, &old);
    raise(SIGCHLD);
    sigpending(&pend);
    printf("blocked SIGCHLD pending=%d\n", sigismember(&pend, SIGCHLD));
    sigprocmask(SIG_SETMASK, &old, NULL);
    signal(SIGUSR2, SIG_DFL);

    /* sa_mask and SA_NODEFER */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR2);
    sigaction(SIGUSR1, &sa, NULL);
    raise(SIGUSR1);
    printf("sa_mask: usr1 blocked inside=%d usr2 blocked inside=%d, after: %d %d\n", usr1_blocked_inside,
           usr2_blocked_inside, is_blocked(SIGUSR1), is_blocked(SIGUSR2));
    sa.sa_flags = SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    raise(SIGUSR1);
    printf("SA_NODEFER: usr1 blocked inside=%d\n", usr1_blocked_inside);

    /* SA_RESETHAND: one-shot */
    usr1_count = 0;
    sa.sa_flags = SA_RESETHAND | SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    raise(SIGUSR1);
    struct sigaction now;
    sigaction(SIGUSR1, NULL, &now);
    printf("SA_RESETHAND: count=%d now SIG_DFL=%d flags kept=%d\n", usr1_count, now.sa_handler == SIG_DFL,
           (now.sa_flags & (SA_RESETHAND | SA_RESTART)) == (SA_RESETHAND | SA_RESTART));
    install(SIGUSR1, SIG_IGN, 0);
}

/* ---- nested delivery: a signal raised inside a handler ----------------------------------------- */
static void on_usr2_nested(int sig)
{
    (void)sig;
    order[norder++] = 2;
}

static void on_usr1_nested(int sig)
{
    (void)sig;
    static int calls;
    if (++calls > 1) {
        order[norder++] = 5;
        return;
    }
    order[norder++] = 1;
    raise(SIGUSR2);               /* runs at once, nested in this handler */
    order[norder++] = 3;
    raise(SIGUSR1);               /* blocked while in the handler: runs after it returns */
    order[norder++] = 4;
}

static void test_nested(void)
{
    install(SIGUSR1, on_usr1_nested, 0);
    install(SIGUSR2, on_usr2_nested, 0);
    norder = 0;
    raise(SIGUSR1);
    printf("nested:");
    for (int i = 0; i < norder; i++)
        printf(" %d", order[i]);
    printf("\n");
}

/* ---- faults -------------------------------------------------------------------------------------- */
static sigjmp_buf jump;
static volatile int got_signo, got_code;
static void *volatile got_addr;
static volatile uintptr_t got_rip;

static void on_fault_jump(int sig, siginfo_t *si, void *ctx)
{
    (void)ctx;
    got_signo = si->si_signo;
    got_code = si->si_code;
    got_addr = si->si_addr;
    siglongjmp(jump, 1);
}

static void on_fault_jump_nomask(int sig, siginfo_t *si, void *ctx)
{
    (void)ctx;
    got_signo = si->si_signo;
    got_code = si->si_code;
    got_addr = si->si_addr;
    longjmp(jump, 1);              /* a plain longjmp after sigsetjmp(.., 0): the mask is not restored */
}

extern char fault_insn[], fault_after[], div_insn[], div_after[], ud2_insn[], ud2_after[], int3_after[];

__attribute__((noinline)) static long fault_and_skip(void)
{
    long rax;
    __asm__ volatile("xorl %%eax, %%eax\n"
                     "fault_insn: movl $1, (%%rax)\n"
                     "fault_after:\n"
                     : "=a"(rax) : : "memory");
    return rax;
}

__attribute__((noinline)) static int divide(int a, int b)
{
    int q;
    __asm__ volatile("cltd\n"
                     "div_insn: idivl %2\n"
                     "div_after:\n"
                     : "=a"(q) : "a"(a), "r"(b) : "rdx");
    return q;
}

__attribute__((noinline)) static void do_ud2(void)
{
    __asm__ volatile("ud2_insn: ud2\n ud2_after:\n");
}

__attribute__((noinline)) static void do_int3(void)
{
    __asm__ volatile("int3\n int3_after:\n");
}

static void on_fault_fix(int sig, siginfo_t *si, void *ctx)
{
    ucontext_t *uc = ctx;
    got_signo = si->si_signo;
    got_code = si->si_code;
    got_addr = si->si_addr;
    got_rip = uc->uc_mcontext.gregs[REG_RIP];
    if (got_rip == (uintptr_t)fault_insn) {
        uc->uc_mcontext.gregs[REG_RIP] = (uintptr_t)fault_after;
        uc->uc_mcontext.gregs[REG_RAX] = 1234;       /* a changed register comes back too */
    } else if (got_rip == (uintptr_t)div_insn) {
        uc->uc_mcontext.gregs[REG_RIP] = (uintptr_t)div_after;
        uc->uc_mcontext.gregs[REG_RAX] = -7;
    } else if (got_rip == (uintptr_t)ud2_insn) {
        uc->uc_mcontext.gregs[REG_RIP] = (uintptr_t)ud2_after;
    }
}

static void show_fault(const char *what, void *expected_addr)
{
    printf("%s: signo=%d code=%d addr==expected=%d\n", what, got_signo, got_code, got_addr == expected_addr);
}

static void test_illegal(void)
{
    install(SIGILL, on_fault_fix, SA_SIGINFO);
    do_ud2();
    show_fault("ud2", ud2_insn);
    printf("ILL_ILLOPN=%d\n", got_code == ILL_ILLOPN);
    do_ud2();
    printf("ud2 again: signo=%d\n", got_signo);
}

static void test_faults(void)
{
    install(SIGSEGV, on_fault_jump, SA_SIGINFO);
    if (sigsetjmp(jump, 1) == 0) {
        *(volatile int *)0x10 = 1;
        printf("not reached\n");
    }
    show_fault("NULL+0x10 write", (void *)0x10);
    printf("SIGSEGV blocked after siglongjmp=%d\n", is_blocked(SIGSEGV));

    char *page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (sigsetjmp(jump, 1) == 0) {
        page[100] = 1;
        printf("not reached\n");
    }
    show_fault("read-only page write", page + 100);
    munmap(page, 4096);
    if (sigsetjmp(jump, 1) == 0) {
        (void)*(volatile char *)(page + 5);
        printf("not reached\n");
    }
    show_fault("unmapped page read", page + 5);

    install(SIGSEGV, on_fault_jump_nomask, SA_SIGINFO);
    if (sigsetjmp(jump, 0) == 0) {
        *(volatile int *)0x20 = 1;
    }
    show_fault("longjmp out", (void *)0x20);
    printf("SIGSEGV blocked after longjmp=%d\n", is_blocked(SIGSEGV));
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGSEGV);
    sigprocmask(SIG_UNBLOCK, &s, NULL);

    install(SIGSEGV, on_fault_fix, SA_SIGINFO);
    long rax = fault_and_skip();
    show_fault("skip faulting store", (void *)0);
    printf("saved rip==fault_insn=%d rax from handler=%ld\n", got_rip == (uintptr_t)fault_insn, rax);

    install(SIGFPE, on_fault_fix, SA_SIGINFO);
    int q = divide(10, 0);
    show_fault("divide by zero", div_insn);
    printf("FPE_INTDIV=%d quotient from handler=%d\n", got_code == FPE_INTDIV, q);
    q = divide(-2147483647 - 1, -1);
    show_fault("INT_MIN / -1", div_insn);
    q = divide(42, 6);
    printf("divide still works: %d\n", q);


    install(SIGTRAP, on_fault_fix, SA_SIGINFO);
    do_int3();
    show_fault("int3", (void *)0);
    printf("int3: saved rip is after it=%d SI_KERNEL=%d\n", got_rip == (uintptr_t)int3_after, got_code == SI_KERNEL);

    /* a siginfo from kill/tgkill names the sender */
    install(SIGUSR1, on_fault_fix, SA_SIGINFO);
    got_rip = 0;
    kill(getpid(), SIGUSR1);
    printf("kill siginfo: signo=%d code=%d (SI_USER=%d)\n", got_signo, got_code, got_code == SI_USER);
    raise(SIGUSR1);
    printf("raise siginfo: signo=%d code=%d (SI_TKILL=%d)\n", got_signo, got_code, got_code == SI_TKILL);
    install(SIGUSR1, SIG_IGN, 0);
}

/* ---- alternate stack ---------------------------------------------------------------------------- */
static char *alt_base;
static size_t alt_size;
static volatile int on_alt, alt_flags_inside, uc_ss_flags, alt_change_err, rsp_mod16;

static void on_alt_handler(int sig, siginfo_t *si, void *ctx)
{
    ucontext_t *uc = ctx;
    char local;
    uintptr_t sp;
    __asm__ volatile("mov %%rsp, %0" : "=r"(sp));
    (void)sig;
    (void)si;
    on_alt = &local >= alt_base && &local < alt_base + alt_size;
    stack_t cur;
    sigaltstack(NULL, &cur);
    alt_flags_inside = cur.ss_flags;
    uc_ss_flags = uc->uc_stack.ss_flags;
    stack_t other = {.ss_sp = alt_base, .ss_size = alt_size, .ss_flags = 0};
    alt_change_err = sigaltstack(&other, NULL) == 0 ? 0 : errno;
    rsp_mod16 = (int)(sp & 15);
}

static volatile int rsp_entry_mod16;

__attribute__((naked)) static void on_entry_probe(int sig)
{
    __asm__ volatile("mov %rsp, %rax\n"
                     "and $15, %eax\n"
                     "mov %eax, rsp_entry_mod16(%rip)\n"
                     "ret\n");
}

static int depth_sink;

__attribute__((noinline)) static int recurse(int n)
{
    volatile char buf[1024];
    buf[0] = (char)n;
    return recurse(n + 1) + buf[0];
}

static void test_altstack(void)
{
    stack_t ss, old;
    sigaltstack(NULL, &old);
    printf("initial altstack: flags=%d size=%zu\n", old.ss_flags, old.ss_size);
    alt_size = 65536;
    alt_base = malloc(alt_size);
    ss.ss_sp = alt_base;
    ss.ss_flags = 0;
    ss.ss_size = 1024;
    printf("too small: %s\n", sigaltstack(&ss, NULL) == 0 ? "OK" : err_name(errno));
    ss.ss_size = alt_size;
    ss.ss_flags = 5;
    printf("bad flags: %s\n", sigaltstack(&ss, NULL) == 0 ? "OK" : err_name(errno));
    ss.ss_flags = 0;
    printf("set: %s\n", sigaltstack(&ss, NULL) == 0 ? "OK" : err_name(errno));
    sigaltstack(NULL, &old);
    printf("query: flags=%d size==%d sp==%d\n", old.ss_flags, old.ss_size == alt_size, old.ss_sp == alt_base);
    printf("bad pointer: %s\n", syscall(SYS_sigaltstack, (void *)8, NULL) == 0 ? "OK" : err_name(errno));

    install(SIGUSR1, on_alt_handler, SA_SIGINFO | SA_ONSTACK);
    raise(SIGUSR1);
    printf("handler on altstack=%d query flags inside=%d uc_stack.ss_flags=%d change inside=%s\n", on_alt,
           alt_flags_inside, uc_ss_flags, err_name(alt_change_err));
    install(SIGUSR1, on_alt_handler, SA_SIGINFO);
    raise(SIGUSR1);
    printf("without SA_ONSTACK on altstack=%d\n", on_alt);

    install(SIGUSR1, on_entry_probe, 0);
    raise(SIGUSR1);
    printf("rsp %% 16 at handler entry=%d\n", rsp_entry_mod16);
    install(SIGUSR1, on_entry_probe, SA_ONSTACK);
    raise(SIGUSR1);
    printf("rsp %% 16 at handler entry on altstack=%d\n", rsp_entry_mod16);

    /* stack overflow caught on the alternate stack */
    install(SIGSEGV, on_fault_jump, SA_SIGINFO | SA_ONSTACK);
    if (sigsetjmp(jump, 1) == 0)
        depth_sink = recurse(0);
    printf("stack overflow caught: signo=%d\n", got_signo);

    ss.ss_flags = SS_AUTODISARM;
    printf("autodisarm: %s\n", sigaltstack(&ss, NULL) == 0 ? "OK" : err_name(errno));
    install(SIGUSR1, on_alt_handler, SA_SIGINFO | SA_ONSTACK);
    raise(SIGUSR1);
    printf("autodisarm: on altstack=%d query flags inside=%d uc_stack.ss_flags=%#x change inside=%s\n", on_alt,
           alt_flags_inside, (unsigned)uc_ss_flags, err_name(alt_change_err));
    sigaltstack(NULL, &old);
    printf("autodisarm after return: flags=%#x size==%d\n", (unsigned)old.ss_flags, old.ss_size == alt_size);
    ss.ss_flags = SS_DISABLE;
    printf("disable: %s\n", sigaltstack(&ss, NULL) == 0 ? "OK" : err_name(errno));
    sigaltstack(NULL, &old);
    printf("after disable: flags=%d size=%zu\n", old.ss_flags, old.ss_size);
    install(SIGUSR1, SIG_IGN, 0);
    install(SIGSEGV, SIG_DFL, 0);
}

/* ---- FPU/SSE state and errno across a handler ---------------------------------------------------- */
static volatile int round_inside;
static volatile double handler_result;

static void on_fpu(int sig)
{
    (void)sig;
    round_inside = fegetround() == FE_TONEAREST;
    double x = 1.0;
    for (int i = 0; i < 50; i++)
        x = x * 1.1 + 0.3;
    handler_result = x;
    __asm__ volatile("pxor %%xmm9, %%xmm9\n pcmpeqd %%xmm10, %%xmm10" ::: "xmm9", "xmm10");
    int saved = errno;
    if (write(-1, "", 0) < 0 && errno == EBADF)
        errno = saved;
    close(-1);                     /* errno changes in the handler: the C library does not save it */
    errno = saved;
}

static void test_fpu(void)
{
    install(SIGUSR1, on_fpu, 0);
    double a = 3.0, b = 7.0;
    double before = a / b, kept;
    fesetround(FE_UPWARD);
    double up1 = a / b;
    __asm__ volatile("movsd %1, %%xmm9\n"
                     "mov %2, %%edi\n"
                     "mov %3, %%esi\n"
                     "mov $62, %%eax\n"          /* kill(getpid(), SIGUSR1) with a value live in xmm9 */
                     "syscall\n"
                     "movsd %%xmm9, %0\n"
                     : "=x"(kept) : "x"(before), "r"(getpid()), "r"(SIGUSR1)
                     : "rax", "rdi", "rsi", "rcx", "r11", "xmm9", "memory");
    double up2 = a / b;
    printf("xmm9 kept=%d rounding in handler to-nearest=%d rounding after upward=%d same result=%d\n",
           kept == before, round_inside, fegetround() == FE_UPWARD, up1 == up2);
    fesetround(FE_TONEAREST);
    printf("handler double=%.6f\n", handler_result);
    long double ld = 1.0L / 3.0L;
    raise(SIGUSR1);
    printf("long double kept=%d\n", ld == 1.0L / 3.0L);

    close(-1);
    raise(SIGUSR1);
    printf("errno after handler=%s\n", err_name(errno));
    install(SIGUSR1, SIG_IGN, 0);
}

/* ---- sigqueue: the sender's siginfo ------------------------------------------------------------- */
static volatile int q_code, q_value, q_pid_ok;

static void on_queued(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    (void)ctx;
    q_code = si->si_code;
    q_value = si->si_value.sival_int;
    q_pid_ok = si->si_pid == getpid();
}

static void test_queue(void)
{
    install(SIGUSR2, on_queued, SA_SIGINFO);
    union sigval v = {.sival_int = 42};
    int r = sigqueue(getpid(), SIGUSR2, v);
    printf("sigqueue: r=%d code SI_QUEUE=%d value=%d pid ok=%d\n", r, q_code == SI_QUEUE, q_value, q_pid_ok);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    si.si_code = SI_QUEUE;
    si.si_value.sival_int = 7;
    r = syscall(SYS_rt_tgsigqueueinfo, getpid(), gettid(), SIGUSR2, &si);
    printf("rt_tgsigqueueinfo: r=%d value=%d\n", r, q_value);
    si.si_code = SI_USER;
    printf("posing as kill to another pid: %s\n", sys_result(syscall(SYS_rt_sigqueueinfo, 0x3ffffff0, SIGUSR2, &si)));
    si.si_code = SI_QUEUE;
    printf("missing pid: %s\n", sys_result(syscall(SYS_rt_sigqueueinfo, 0x3ffffff0, SIGUSR2, &si)));
    printf("bad info: %s\n", sys_result(syscall(SYS_rt_sigqueueinfo, getpid(), SIGUSR2, (void *)8)));
    printf("bad signal: %s\n", sys_result(syscall(SYS_rt_sigqueueinfo, getpid(), 99, &si)));
    printf("tgsigqueueinfo tid 0: %s\n", sys_result(syscall(SYS_rt_tgsigqueueinfo, getpid(), 0, SIGUSR2, &si)));
    install(SIGUSR2, SIG_DFL, 0);
}

/* ---- waiting ------------------------------------------------------------------------------------- */
static void test_wait(void)
{
    sigset_t set, old, none;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, &old);
    install(SIGUSR1, on_record, 0);
    raise(SIGUSR1);
    int sig = 0;
    int r = sigwait(&set, &sig);
    printf("sigwait: r=%d sig is USR1=%d\n", r, sig == SIGUSR1);
    struct timespec zero = {0, 0};
    siginfo_t si;
    r = sigtimedwait(&set, &si, &zero);
    printf("sigtimedwait nothing: %s\n", r < 0 ? err_name(errno) : "OK");
    struct timespec bad = {0, 2000000000};
    r = sigtimedwait(&set, &si, &bad);
    printf("sigtimedwait bad timeout: %s\n", r < 0 ? err_name(errno) : "OK");
    raise(SIGUSR1);
    r = sigtimedwait(&set, &si, &zero);
    printf("sigtimedwait: is USR1=%d code SI_TKILL=%d\n", r == SIGUSR1, si.si_code == SI_TKILL);

    norder = 0;
    raise(SIGUSR1);
    sigemptyset(&none);
    r = sigsuspend(&none);
    printf("sigsuspend: r=%d %s handler ran=%d usr1 blocked again=%d\n", r, err_name(errno), norder,
           is_blocked(SIGUSR1));
    sigprocmask(SIG_SETMASK, &old, NULL);
    install(SIGUSR1, SIG_IGN, 0);

    /* An ignored signal that is blocked is kept, also while sigwaitinfo waits for it (real_blocked). */
    sigset_t usr2;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    signal(SIGUSR2, SIG_IGN);
    sigprocmask(SIG_BLOCK, &usr2, &old);
    pid_t parent = getpid();
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        usleep(50000);                      /* the parent is waiting by then */
        kill(parent, SIGUSR2);
        _exit(0);
    }
    struct timespec five = {5, 0};
    r = sigtimedwait(&usr2, &si, &five);
    printf("sigtimedwait for an ignored blocked SIGUSR2 from a child: %s, from the child %d\n",
           r == SIGUSR2 ? "USR2" : err_name(errno), si.si_pid == pid);
    waitpid(pid, NULL, 0);
    sigprocmask(SIG_SETMASK, &old, NULL);
    signal(SIGUSR2, SIG_DFL);
}

/* Fault signals sent by another process with kill(): a handler runs; without one, the default action. */
static volatile sig_atomic_t sent_fault;
static void on_sent_fault(int sig) { sent_fault = sig; }

static void test_sent_faults(void)
{
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE};
    for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        for (int handled = 1; handled >= 0; handled--) {
            int p[2];
            pipe(p);
            fflush(stdout);
            pid_t pid = fork();
            if (pid == 0) {
                sigset_t none, only;
                sigemptyset(&none);
                sigemptyset(&only);
                sigaddset(&only, sigs[i]);
                sigprocmask(SIG_SETMASK, &only, NULL);   /* until sigsuspend: no signal between check and wait */
                signal(sigs[i], handled ? on_sent_fault : SIG_DFL);
                alarm(10);                   /* never a hang */
                write(p[1], "r", 1);
                while (!sent_fault)
                    sigsuspend(&none);
                _exit(sent_fault == sigs[i] ? 42 : 1);
            }
            char c;
            read(p[0], &c, 1);
            close(p[0]), close(p[1]);
            kill(pid, sigs[i]);
            int status;
            waitpid(pid, &status, 0);
            printf("kill %s to a child %s: %s %d\n", strsignal(sigs[i]), handled ? "with a handler" : "without",
                   WIFSIGNALED(status) ? "killed by" : "exit", WIFSIGNALED(status) ? WTERMSIG(status)
                   : WEXITSTATUS(status));
        }
    }
}

/* Core dumps (run in an empty directory; core_pattern a plain file name): WCOREDUMP, CLD_DUMPED, the core file. */
static int core_dumps(void)
{
    struct rlimit unlimited = {RLIM_INFINITY, RLIM_INFINITY}, none = {0, RLIM_INFINITY};
    setrlimit(RLIMIT_CORE, &unlimited);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0)
        abort();
    int status;
    waitpid(pid, &status, 0);
    printf("abort: killed by %d, core dumped %d\n", WTERMSIG(status), !!WCOREDUMP(status));
    pid = fork();
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL);
        *(volatile int *)8 = 1;
        _exit(0);
    }
    siginfo_t si;
    memset(&si, 0, sizeof si);
    waitid(P_PID, pid, &si, WEXITED);
    printf("SIGSEGV: waitid si_code CLD_DUMPED %d, si_status %d\n", si.si_code == CLD_DUMPED, si.si_status);
    pid = fork();
    if (pid == 0) {
        setrlimit(RLIMIT_CORE, &none);
        abort();
    }
    waitpid(pid, &status, 0);
    printf("with RLIMIT_CORE 0: core dumped %d\n", !!WCOREDUMP(status));
    int cores = 0, elf_cores = 0;
    DIR *dir = opendir(".");
    for (struct dirent *e; dir && (e = readdir(dir));) {
        if (strncmp(e->d_name, "core", 4))
            continue;
        cores++;
        unsigned char head[20] = {0};
        int fd = open(e->d_name, O_RDONLY);
        read(fd, head, sizeof head);
        close(fd);
        elf_cores += !memcmp(head, "\x7f" "ELF", 4) && head[16] == 4;              /* ET_CORE */
    }
    if (dir)
        closedir(dir);
    printf("core files %d, ELF cores %d\n", cores, elf_cores);
    return 0;
}

/* ---- fatal scenarios ---------------------------------------------------------------------------- */
static void on_abort(int sig)
{
    (void)sig;
    printf("SIGABRT handler ran\n");
}

static int fatal(const char *what)
{
    sigset_t set;
    if (!strcmp(what, "usr1")) {
        kill(getpid(), SIGUSR1);
    } else if (!strcmp(what, "term")) {
        raise(SIGTERM);
    } else if (!strcmp(what, "kill9")) {
        kill(getpid(), SIGKILL);
    } else if (!strcmp(what, "pending_term")) {
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigprocmask(SIG_BLOCK, &set, NULL);
        raise(SIGTERM);
        printf("SIGTERM pending while blocked\n");
        sigprocmask(SIG_UNBLOCK, &set, NULL);
    } else if (!strcmp(what, "blocked_segv")) {
        sigemptyset(&set);
        sigaddset(&set, SIGSEGV);
        install(SIGSEGV, on_fault_jump, SA_SIGINFO);
        sigprocmask(SIG_BLOCK, &set, NULL);
        *(volatile int *)0 = 1;
    } else if (!strcmp(what, "ignored_segv")) {
        signal(SIGSEGV, SIG_IGN);
        *(volatile int *)0 = 1;
    } else if (!strcmp(what, "ud2")) {
        do_ud2();
    } else if (!strcmp(what, "fpe")) {
        divide(1, 0);
    } else if (!strcmp(what, "int3")) {
        do_int3();
    } else if (!strcmp(what, "abort_handler")) {
        signal(SIGABRT, on_abort);
        abort();
    } else if (!strcmp(what, "abort_ignored")) {
        signal(SIGABRT, SIG_IGN);
        abort();
    } else if (!strcmp(what, "resethand_twice")) {
        install(SIGUSR1, on_record, SA_RESETHAND);
        raise(SIGUSR1);
        printf("first SIGUSR1 handled\n");
        raise(SIGUSR1);
    } else if (!strcmp(what, "segv_in_handler")) {
        install(SIGSEGV, on_fault_fix, SA_SIGINFO | SA_NODEFER);
        install(SIGUSR1, on_record, 0);
        sigemptyset(&set);
        sigaddset(&set, SIGSEGV);
        struct sigaction sa = {0};
        sa.sa_handler = (void (*)(int))0x10;          /* a handler at a bad address faults */
        sa.sa_flags = 0;
        sigaction(SIGUSR1, &sa, NULL);
        install(SIGSEGV, SIG_DFL, 0);
        raise(SIGUSR1);
    } else {
        printf("unknown scenario %s\n", what);
        return 2;
    }
    printf("survived %s\n", what);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && !strcmp(argv[1], "fpu")) {
        test_fpu();
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "core"))
        return core_dumps();
    if (argc > 1 && !strcmp(argv[1], "illegal")) {
        test_illegal();
        return 0;
    }
    if (argc > 1)
        return fatal(argv[1]);
    test_kill_self();
    test_errors();
    test_pending();
    test_nested();
    test_faults();
    test_altstack();
    test_queue();
    test_wait();
    test_sent_faults();
    printf("done\n");
    return 0;
}
