#define _GNU_SOURCE
/* Probes for tests/test_isolation.py (issue 13): each mode prints deterministic facts, natively and under hermipy.
 *
 *   exec PATH [ARGS...]  fork, execv PATH in the child; print its errno or how it ended
 *   hello [ARGS...]      print argc (a target for exec)
 *   maps                 print our mappings in [0x10000000, 0x10003000) (a test ELF's extra segment)
 *   open_mode            open/openat/creat with garbage in the mode argument
 *   munmap               munmap of ranges reaching beyond user space
 *   ports                `in`/`out` to hermipy's ports and others: each is a #GP, SIGSEGV with SI_KERNEL
 *   mknod                make device nodes, a whiteout, a FIFO, a socket and a file in the cwd
 *   kill PID             signal PID (a process outside this program's tree) every way there is, then a child
 *   nofile               RLIMIT_NOFILE against the fds one can open: soft, raised to hard, lowered
 *   fuzz SEED ROUNDS NR...  call each syscall NR ROUNDS times with arguments drawn from extreme and plausible
 *                        values (seeded), in a child process of its own; print how each child ended
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

static int do_exec(char **argv) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        execv(argv[0], argv);
        printf("execve: errno %d (%s)\n", errno, strerror(errno));
        fflush(stdout);
        _exit(99);
    }
    int status;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status))
        printf("exited %d\n", WEXITSTATUS(status));
    else
        printf("killed by signal %d\n", WTERMSIG(status));
    return 0;
}

static int do_maps(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    while (fgets(line, sizeof line, f)) {
        unsigned long start = strtoul(line, NULL, 16);
        if (start >= 0x10000000 && start < 0x10003000)
            fputs(line, stdout);
    }
    return 0;
}

static unsigned char scratch[65536];
static unsigned long long seed;

static unsigned long long next_random(void) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return seed >> 33;
}

static void on_alarm(int sig) { (void)sig; }

/* One child per syscall: a blocking call is interrupted by SIGALRM (no SA_RESTART: EINTR), re-armed before each
 * call since the call may be setitimer or alarm itself; one that blocks SIGALRM too is killed by the parent. */
static void fuzz_one(long nr, int rounds, int fd) {
    const unsigned long long pool[] = {
        0, 1, 2, 3, (unsigned long long)fd, (unsigned long long)scratch, (unsigned long long)scratch + 64,
        (unsigned long long)scratch + 4095,
        -1ULL, -100ULL, 0x7fffffffULL, 0x80000000ULL, 0xffffffffULL, 0x100000000ULL, 1ULL << 63,
        (1ULL << 63) - 1, 0x100000000000ULL, 4096, 65536};
    const int n = sizeof pool / sizeof pool[0];
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval tick = {{0, 0}, {0, 20000}};
    for (int i = 0; i < rounds; i++) {
        unsigned long long a[6];
        for (int j = 0; j < 6; j++)
            a[j] = pool[next_random() % n];
        memset(scratch, 0, sizeof scratch);         /* a path, 256 bytes of ones, then zeros */
        strcpy((char *)scratch, "fuzz.tmp");
        memset(scratch + 64, 0xff, 256);
        setitimer(ITIMER_REAL, &tick, NULL);
        syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    }
    _exit(0);
}

static int do_fuzz(int argc, char **argv) {
    seed = strtoull(argv[0], NULL, 0);
    int rounds = atoi(argv[1]);
    for (int i = 2; i < argc; i++) {
        long nr = strtol(argv[i], NULL, 0);
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            /* What the calls write goes to a scratch file of the cwd, never to /dev/null: fchmod(0, 3) or
             * fchown(1, ...) on a shared device node would change the host's own (it did: /dev/null mode 0003). */
            int sink = open("fuzz.std", O_RDWR | O_CREAT | O_TRUNC, 0600);
            for (int std = 0; std < 3; std++)
                dup2(sink, std);
            int fd = open("fuzz.tmp", O_RDWR | O_CREAT | O_TRUNC, 0600);
            seed += nr;
            fuzz_one(nr, rounds, fd);
        }
        int status, waited = 0;
        struct timespec poll_interval = {0, 10000000};
        while (waitpid(pid, &status, WNOHANG) == 0) {
            if (++waited == 1000)                           /* 10 s */
                kill(pid, SIGKILL);
            nanosleep(&poll_interval, NULL);
        }
        if (waited >= 1000)
            printf("%ld: timed out\n", nr);
        else if (WIFEXITED(status))
            printf("%ld: exited %d\n", nr, WEXITSTATUS(status));
        else
            printf("%ld: killed by signal %d\n", nr, WTERMSIG(status));
    }
    return 0;
}

static void report(const char *what, long result) {
    if (result < 0)
        printf("%s: errno %d\n", what, errno);
    else
        printf("%s: ok\n", what);
}

static void show_mode(const char *path) {
    struct stat st;
    if (stat(path, &st) == 0)
        printf("%s: mode %o\n", path, st.st_mode & 07777);
}

/* Linux ignores open's mode unless a file is created (O_CREAT, O_TMPFILE), and then keeps its low 12 bits. */
static int do_open_mode(void) {
    umask(022);
    long fd = syscall(SYS_open, "/dev/null", O_RDONLY, -1L);
    report("open O_RDONLY mode ~0", fd);
    close(fd);
    fd = syscall(SYS_openat, AT_FDCWD, "/dev/null", O_WRONLY, 0x8000000000000000UL);
    report("openat O_WRONLY mode 1<<63", fd);
    close(fd);
    fd = syscall(SYS_openat, AT_FDCWD, ".", O_RDONLY | O_DIRECTORY, 0xffffffffUL);
    report("openat O_DIRECTORY mode 0xffffffff", fd);
    close(fd);
    fd = syscall(SYS_open, "made", O_RDWR | O_CREAT, 0xfffff1edUL);
    report("open O_CREAT mode 0xfffff1ed", fd);
    close(fd);
    show_mode("made");
    fd = syscall(SYS_creat, "creat", 0xffffffffffff0755UL);
    report("creat mode 0xffffffffffff0755", fd);
    close(fd);
    show_mode("creat");
    return 0;
}

static int do_munmap(void) {
    report("munmap(0x200000000000, 1<<63)", syscall(SYS_munmap, 0x200000000000UL, 1UL << 63));
    report("munmap(0x7ffffffff000, 0x2000)", syscall(SYS_munmap, 0x7ffffffff000UL, 0x2000UL));
    report("munmap(-4096, 4096)", syscall(SYS_munmap, -4096L, 4096L));
    report("munmap(0x800000000000, 4096)", syscall(SYS_munmap, 0x800000000000UL, 4096L));
    report("munmap(0x200000000000, -4096)", syscall(SYS_munmap, 0x200000000000UL, -4096L));
    printf("still running\n");
    return 0;
}

static int do_mknod(void) {
    report("mknod char 1:3", mknod("null", S_IFCHR | 0666, makedev(1, 3)));
    report("mknod block 7:0", mknod("loop", S_IFBLK | 0600, makedev(7, 0)));
    report("mknodat char 1:11", mknodat(AT_FDCWD, "kmsg", S_IFCHR | 0600, makedev(1, 11)));
    report("mknod char 0:0 (whiteout)", mknod("whiteout", S_IFCHR, 0));
    report("mknod fifo", mknod("fifo", S_IFIFO | 0600, 0));
    report("mknod socket", mknod("socket", S_IFSOCK | 0600, 0));
    report("mknod file", mknod("file", S_IFREG | 0600, 0));
    report("mknod char over an existing name", mknod("file", S_IFCHR | 0600, makedev(1, 3)));
    report("mknod char in a missing directory", mknod("none/null", S_IFCHR | 0600, makedev(1, 3)));
    return 0;
}

static int do_kill(pid_t other) {
    union sigval value = {0};
    report("kill(other, SIGTERM)", kill(other, SIGTERM));
    report("kill(other, 0)", kill(other, 0));
    report("kill(-other, SIGTERM)", kill(-other, SIGTERM));
    report("tkill(other, SIGTERM)", syscall(SYS_tkill, other, SIGTERM));
    report("tgkill(other, other, SIGTERM)", syscall(SYS_tgkill, other, other, SIGTERM));
    report("sigqueue(other, SIGTERM)", sigqueue(other, SIGTERM, value));
    report("kill(parent, 0)", kill(getppid(), 0));
    report("kill(0, 0)", kill(0, 0));
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        pause();
        _exit(0);
    }
    report("kill(child, 0)", kill(child, 0));
    report("kill(child, SIGKILL)", kill(child, SIGKILL));
    int status;
    waitpid(child, &status, 0);
    printf("child killed by signal %d\n", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return 0;
}

/* Open /dev/null until EMFILE; the highest fd opened (every lower one is open too), all closed again after. */
static long fill_fds(void) {
    long highest = -1;
    for (;;) {
        int fd = open("/dev/null", O_RDONLY);
        if (fd < 0) {
            if (errno != EMFILE)
                printf("open: errno %d\n", errno);
            break;
        }
        highest = fd;
    }
    for (long fd = 3; fd <= highest; fd++)
        close(fd);
    return highest;
}

static int do_nofile(void) {
    struct rlimit rl;
    report("getrlimit", getrlimit(RLIMIT_NOFILE, &rl));
    printf("soft <= hard: %s\n", rl.rlim_cur <= rl.rlim_max ? "yes" : "no");
    printf("EMFILE at the soft limit: %s\n", fill_fds() == (long)rl.rlim_cur - 1 ? "yes" : "no");
    rl.rlim_cur = rl.rlim_max;
    report("setrlimit soft = hard", setrlimit(RLIMIT_NOFILE, &rl));
    printf("EMFILE at the hard limit: %s\n", fill_fds() == (long)rl.rlim_max - 1 ? "yes" : "no");
    rl.rlim_max += 1;
    report("setrlimit hard + 1", setrlimit(RLIMIT_NOFILE, &rl));
    rl.rlim_max -= 1;
    int half = rl.rlim_max / 2;
    rl.rlim_cur = half;
    report("setrlimit soft = hard / 2", setrlimit(RLIMIT_NOFILE, &rl));
    printf("EMFILE at hard / 2: %s\n", fill_fds() == half - 1 ? "yes" : "no");
    report("dup2(0, hard / 2)", dup2(0, half));
    report("dup2(0, hard / 2 - 1)", dup2(0, half - 1));
    report("fcntl(0, F_DUPFD, hard / 2)", fcntl(0, F_DUPFD, half));
    return 0;
}

/* Port I/O at CPL3 with no I/O permission is a #GP: SIGSEGV, si_code SI_KERNEL, trap 13, at the instruction.
 * Only `out 0xe0, al` is hermipy's (a rewritten syscall site), so every other form is probed. */
#define PORT_PROBE(name, insn) extern char name[]; asm(".text\n.globl " #name "\n" #name ":\n" insn "\nret\n");
PORT_PROBE(probe_out_e1, "outb %al, $0xe1")
PORT_PROBE(probe_out_e2, "outb %al, $0xe2")
PORT_PROBE(probe_out_e3, "outb %al, $0xe3")
PORT_PROBE(probe_out_80, "outb %al, $0x80")
PORT_PROBE(probe_in_e0, "inb $0xe0, %al")
PORT_PROBE(probe_in_e1, "inb $0xe1, %al")
PORT_PROBE(probe_inl_e0, "inl $0xe0, %eax")
PORT_PROBE(probe_outw_e0, "outw %ax, $0xe0")
PORT_PROBE(probe_outl_e0, "outl %eax, $0xe0")
PORT_PROBE(probe_out_dx, "outb %al, %dx")
PORT_PROBE(probe_in_dx, "inb %dx, %al")
PORT_PROBE(probe_insb, "insb")
PORT_PROBE(probe_outsb, "outsb")

static sigjmp_buf port_back;
static void *port_insn;

static void on_port_fault(int sig, siginfo_t *si, void *ctx) {
    ucontext_t *uc = ctx;
    (void)sig;
    printf("signal %d code %d addr %p trap %lld error %lld, at the instruction: %s, rax %#llx\n", si->si_signo,
           si->si_code, si->si_addr, (long long)uc->uc_mcontext.gregs[REG_TRAPNO],
           (long long)uc->uc_mcontext.gregs[REG_ERR],
           (void *)uc->uc_mcontext.gregs[REG_RIP] == port_insn ? "yes" : "no",
           (long long)uc->uc_mcontext.gregs[REG_RAX]);
    siglongjmp(port_back, 1);
}

static int do_ports(void) {
    static char buf[16];
    struct { const char *name; char *code; unsigned short dx; } probes[] = {
        {"out 0xe1, al", probe_out_e1}, {"out 0xe2, al", probe_out_e2}, {"out 0xe3, al", probe_out_e3},
        {"out 0x80, al", probe_out_80}, {"in al, 0xe0", probe_in_e0}, {"in al, 0xe1", probe_in_e1},
        {"in eax, 0xe0", probe_inl_e0}, {"out 0xe0, ax", probe_outw_e0}, {"out 0xe0, eax", probe_outl_e0},
        {"out dx=0x3f8, al", probe_out_dx, 0x3f8}, {"out dx=0xe1, al", probe_out_dx, 0xe1},
        {"in al, dx=0xe0", probe_in_dx, 0xe0}, {"in al, dx=0x3f8", probe_in_dx, 0x3f8},
        {"insb dx=0xe0", probe_insb, 0xe0}, {"outsb dx=0xe1", probe_outsb, 0xe1}};
    struct sigaction sa = {0};
    sa.sa_sigaction = on_port_fault;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, NULL);
    for (unsigned i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        port_insn = probes[i].code;
        printf("%s: ", probes[i].name);
        fflush(stdout);
        if (!sigsetjmp(port_back, 1)) {
            asm volatile("call *%0" :: "r"(probes[i].code), "d"(probes[i].dx), "a"(0x1234), "D"(buf), "S"(buf)
                         : "memory", "rcx", "r8", "r9", "r10", "r11");
            printf("no signal\n");
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    if (!strcmp(argv[1], "exec") && argc > 2)
        return do_exec(argv + 2);
    if (!strcmp(argv[1], "hello")) {
        printf("hello %d\n", argc);
        return 0;
    }
    if (!strcmp(argv[1], "maps"))
        return do_maps();
    if (!strcmp(argv[1], "open_mode"))
        return do_open_mode();
    if (!strcmp(argv[1], "munmap"))
        return do_munmap();
    if (!strcmp(argv[1], "mknod"))
        return do_mknod();
    if (!strcmp(argv[1], "kill") && argc > 2)
        return do_kill(atoi(argv[2]));
    if (!strcmp(argv[1], "nofile"))
        return do_nofile();
    if (!strcmp(argv[1], "ports"))
        return do_ports();
    if (!strcmp(argv[1], "fuzz") && argc > 3)
        return do_fuzz(argc - 2, argv + 2);
    return 2;
}
