#define _GNU_SOURCE
/* Probes for tests/test_isolation.py (issue 13): each mode prints deterministic facts, natively and under hermipy.
 *
 *   exec PATH [ARGS...]  fork, execv PATH in the child; print its errno or how it ended
 *   hello [ARGS...]      print argc (a target for exec)
 *   maps                 print our mappings in [0x10000000, 0x10003000) (a test ELF's extra segment)
 *   open_mode            open/openat/creat with garbage in the mode argument
 *   munmap               munmap of ranges reaching beyond user space
 *   ports                `in`/`out` to hermipy's ports and others: each is a #GP, SIGSEGV with SI_KERNEL
 *   insns NAME...        run each named instruction probe (privileged instructions, software interrupts, icebp,
 *                        the trap flag, hermipy's entry area); print the signal and what its frame says.
 *                        jump_to=HEX jumps to address HEX (rcx 0x10)
 *   int80                the i386 syscall ABI from a 64-bit process: write, getpid, an unknown number, exit
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

/* errnos NR...: each syscall NR, in a child of its own, with ERRNO_VECTORS fixed argument vectors (zeros, -1,
 * a valid fd with a buffer, an unmapped pointer, a path, a bad fd and huge sizes, flags with every bit, AT_FDCWD
 * with a path, a zero size with every flag, INT_MAX with unmapped pointers, an empty name with small values): one line per NR, "NR:" then "ok" or E and the errno for each vector (then how the child ended when
 * it did not finish), so that a native run and a hermipy run can be compared line by line. */
/* In a sweep's child: what the calls write goes to a scratch file of the cwd, never to /dev/null (fchmod(0, 3) or
 * fchown(1, ...) on a shared device node would change the host's own: it did, /dev/null mode 0003); returns the fd
 * of fuzz.tmp, the calls' valid file. */
static int sweep_child_files(void) {
    int sink = open("fuzz.std", O_RDWR | O_CREAT | O_TRUNC, 0600);
    for (int std = 0; std < 3; std++)
        dup2(sink, std);
    return open("fuzz.tmp", O_RDWR | O_CREAT | O_TRUNC, 0600);
}

/* The child's wait status, or -1 when it had not ended after `limit` hundredths of a second (it is killed). */
static int wait_bounded(pid_t pid, int limit) {
    int status, waited = 0;
    struct timespec poll_interval = {0, 10000000};
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (++waited == limit)
            kill(pid, SIGKILL);
        nanosleep(&poll_interval, NULL);
    }
    return waited >= limit ? -1 : status;
}

#define ERRNO_VECTORS 11
static void errnos_one(long nr, int fd, int out) {
    const unsigned long long S = (unsigned long long)scratch, BAD = 0x1000, HUGE = 1ULL << 62;
    const unsigned long long vectors[ERRNO_VECTORS][6] = {
        {0, 0, 0, 0, 0, 0},
        {-1ULL, -1ULL, -1ULL, -1ULL, -1ULL, -1ULL},
        {(unsigned long long)fd, S, 16, 0, 0, 0},
        {(unsigned long long)fd, BAD, 16, 0, 0, 0},
        {S, S + 64, 0xffffffffULL, -1ULL, 0, 0},
        {1000, S, HUGE, 0x7fffffffULL, S, 0},
        {(unsigned long long)fd, S, -1ULL, 0x80000000ULL, -100ULL, 1ULL << 63},
        {-100ULL, S, 0x7fffffffULL, 0777, S + 64, 0},
        {(unsigned long long)fd, S, 0, -1ULL, 0, 0},
        {0x7fffffffULL, BAD, -1ULL, 0, -1ULL, BAD},
        {(unsigned long long)fd, S + 4095, 4097, 1, 1, 1}};
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval tick = {{0, 0}, {0, 50000}};
    for (int i = 0; i < ERRNO_VECTORS; i++) {
        memset(scratch, 0, sizeof scratch);
        strcpy((char *)scratch, "fuzz.tmp");
        memset(scratch + 64, 0xff, 256);
        setitimer(ITIMER_REAL, &tick, NULL);
        long r = syscall(nr, vectors[i][0], vectors[i][1], vectors[i][2], vectors[i][3], vectors[i][4],
                         vectors[i][5]);
        int e = errno;
        struct itimerval off = {{0, 0}, {0, 0}};
        setitimer(ITIMER_REAL, &off, NULL);
        char word[32];
        int len = r == -1 ? snprintf(word, sizeof word, " E%d", e) : snprintf(word, sizeof word, " ok");
        if (write(out, word, len) != len)
            _exit(3);
    }
    _exit(0);
}

static int do_errnos(int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        long nr = strtol(argv[i], NULL, 0);
        int pipefd[2];
        if (pipe(pipefd))
            return 1;
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            close(pipefd[0]);
            dup2(pipefd[1], 1001);             /* (1000 is the vectors' bad fd) */
            close(pipefd[1]);
            errnos_one(nr, sweep_child_files(), 1001);
        }
        close(pipefd[1]);
        int status = wait_bounded(pid, 300);               /* 3 s */
        char words[512];
        ssize_t got = read(pipefd[0], words, sizeof words - 1);
        words[got > 0 ? got : 0] = 0;
        close(pipefd[0]);
        printf("%ld:%s", nr, words);
        if (status == -1)
            printf(" (timed out)\n");
        else if (WIFEXITED(status))
            printf(WEXITSTATUS(status) ? " (exited %d)\n" : "\n", WEXITSTATUS(status));
        else
            printf(" (killed by signal %d)\n", WTERMSIG(status));
    }
    return 0;
}

static int do_fuzz(int argc, char **argv) {
    seed = strtoull(argv[0], NULL, 0);
    int rounds = atoi(argv[1]);
    for (int i = 2; i < argc; i++) {
        long nr = strtol(argv[i], NULL, 0);
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            int fd = sweep_child_files();
            seed += nr;
            fuzz_one(nr, rounds, fd);
        }
        int status = wait_bounded(pid, 1000);              /* 10 s */
        if (status == -1)
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

/* Instructions a CPL3 process may not run, or that trap: each probe starts at its label and returns if it
 * raised nothing. The handler prints the signal, si_code, si_addr, trap number, error code and rip, addresses
 * as offsets from the probe's label. */
#define INSN_PROBE(name, insn) extern char insn_##name[]; \
    asm(".text\n.globl insn_" #name "\ninsn_" #name ":\n" insn "\nret\n");
INSN_PROBE(int3, "int3")
INSN_PROBE(int_3, "int $3")
INSN_PROBE(int_4, "int $4")
INSN_PROBE(int_0, "int $0")
INSN_PROBE(int_1, "int $1")
INSN_PROBE(int_6, "int $6")
INSN_PROBE(int_13, "int $13")
INSN_PROBE(int_14, "int $14")
INSN_PROBE(int_0x81, "int $0x81")
INSN_PROBE(int_0xff, "int $0xff")
INSN_PROBE(icebp, ".byte 0xf1")
INSN_PROBE(trap_flag, "pushfq\norq $0x100, (%rsp)\npopfq\nnop\nnop")
INSN_PROBE(ud2, "ud2")
INSN_PROBE(into, ".byte 0xce")
INSN_PROBE(cli, "cli")
INSN_PROBE(sti, "sti")
INSN_PROBE(hlt, "hlt")
INSN_PROBE(rdmsr, "mov $0x10, %ecx\nrdmsr")
INSN_PROBE(wrmsr, "mov $0xc0000100, %ecx\nxor %eax, %eax\nxor %edx, %edx\nwrmsr")
INSN_PROBE(lgdt, "lgdt (%rdi)")
INSN_PROBE(lidt, "lidt (%rdi)")
INSN_PROBE(lldt, "xor %eax, %eax\nlldt %ax")
INSN_PROBE(ltr, "xor %eax, %eax\nltr %ax")
INSN_PROBE(invlpg, "invlpg (%rdi)")
INSN_PROBE(read_cr0, "mov %cr0, %rax")
INSN_PROBE(read_cr3, "mov %cr3, %rax")
INSN_PROBE(write_cr3, "xor %eax, %eax\nmov %rax, %cr3")
INSN_PROBE(read_cr4, "mov %cr4, %rax")
INSN_PROBE(read_dr7, "mov %dr7, %rax")
INSN_PROBE(clts, "clts")
INSN_PROBE(invd, "invd")
INSN_PROBE(wbinvd, "wbinvd")
INSN_PROBE(swapgs, "swapgs")
INSN_PROBE(sysret, "sysretq")
INSN_PROBE(sysexit, "sysexitq")
INSN_PROBE(sysenter, "sysenter")
INSN_PROBE(rdpmc, "xor %ecx, %ecx\nrdpmc")
INSN_PROBE(monitor, "mov %rdi, %rax\nxor %ecx, %ecx\nxor %edx, %edx\nmonitor")
INSN_PROBE(mwait, "xor %eax, %eax\nxor %ecx, %ecx\nmwait")
INSN_PROBE(rdtsc, "rdtsc")
INSN_PROBE(cpuid, "xor %eax, %eax\ncpuid")
INSN_PROBE(kernel_half, "movabs $0xffff800000000000, %rax\nmov (%rax), %rax")
INSN_PROBE(jump_to_kernel_half, "movabs $0xffff800000002000, %rax\njmp *%rax")
/* hermipy's KVM window (kvm_stubs.USER_AREA): its map of guest RAM, and a vCPU's flush list */
INSN_PROBE(read_ram_map, "movabs $0x7f0000001000, %rax\nmov (%rax), %rax")
INSN_PROBE(write_ram_map, "movabs $0x7f0000001000, %rax\nmovq $0, (%rax)")
INSN_PROBE(write_flush_list, "movabs $0x7f7ffffe1000, %rax\nmovq $0, (%rax)")
INSN_PROBE(write_entry_area, "movabs $0x7f7ffffe0000, %rax\nmovq $0, (%rax)")
/* Jumps to vCPU 0's LSTAR entry (kvm_stubs.USER_STUB_VA), where nothing is mapped natively. On PVM `syscall` runs
 * that entry at CPL3, so a jump runs it too; it must not act as a syscall: rcx unreadable, rcx readable but not
 * after a `syscall` instruction, rcx after one (bytes 0f 05 the probe never runs) but r11 not an application's
 * rflags (IOPL 3), rcx after one and r11 the flags (IF still set: no `syscall` ran). */
INSN_PROBE(jump_entry_area, "mov $0x10, %ecx\nmovabs $0x7f7ffffe0000, %rax\njmp *%rax")
INSN_PROBE(jump_entry_area_rcx_code, "lea 0(%rip), %rcx\nmovabs $0x7f7ffffe0000, %rax\njmp *%rax")
INSN_PROBE(jump_entry_area_iopl, "lea 1f(%rip), %rcx\nmov $0x3202, %r11d\nmov $39, %eax\n"
           "movabs $0x7f7ffffe0000, %rdx\njmp *%rdx\n.byte 0x0f, 0x05\n1:")
INSN_PROBE(jump_entry_area_after_syscall, "lea 1f(%rip), %rcx\npushfq\npop %r11\nmov $39, %eax\n"
           "movabs $0x7f7ffffe0000, %rdx\njmp *%rdx\n.byte 0x0f, 0x05\n1:")
unsigned long insn_jump_target;
INSN_PROBE(jump_to, "mov $0x10, %ecx\nmov insn_jump_target(%rip), %rax\njmp *%rax")

static sigjmp_buf insn_back;
static char *insn_label;

static void print_offset(const char *what, unsigned long long value) {
    long long offset = (long long)(value - (unsigned long long)insn_label);
    if (value == 0)
        printf(" %s 0", what);
    else if (offset >= 0 && offset < 64)
        printf(" %s +%lld", what, offset);
    else
        printf(" %s %#llx", what, value);
}

static void on_insn_signal(int sig, siginfo_t *si, void *ctx) {
    ucontext_t *uc = ctx;
    printf("signal %d code %d", sig, si->si_code);
    print_offset("addr", (unsigned long long)si->si_addr);
    printf(" trap %lld error %#llx", (long long)uc->uc_mcontext.gregs[REG_TRAPNO],
           (long long)uc->uc_mcontext.gregs[REG_ERR]);
    print_offset("rip", uc->uc_mcontext.gregs[REG_RIP]);
    printf("\n");
    siglongjmp(insn_back, 1);
}

static int do_insns(int argc, char **argv) {
    static char area[64] __attribute__((aligned(16)));
    struct { const char *name; char *code; } probes[] = {
        {"int3", insn_int3}, {"int_3", insn_int_3}, {"int_4", insn_int_4}, {"int_0", insn_int_0},
        {"int_1", insn_int_1}, {"int_6", insn_int_6}, {"int_13", insn_int_13}, {"int_14", insn_int_14},
        {"int_0x81", insn_int_0x81}, {"int_0xff", insn_int_0xff}, {"icebp", insn_icebp},
        {"trap_flag", insn_trap_flag}, {"ud2", insn_ud2}, {"into", insn_into}, {"cli", insn_cli},
        {"sti", insn_sti}, {"hlt", insn_hlt}, {"rdmsr", insn_rdmsr}, {"wrmsr", insn_wrmsr}, {"lgdt", insn_lgdt},
        {"lidt", insn_lidt}, {"lldt", insn_lldt}, {"ltr", insn_ltr}, {"invlpg", insn_invlpg},
        {"read_cr0", insn_read_cr0}, {"read_cr3", insn_read_cr3}, {"write_cr3", insn_write_cr3},
        {"read_cr4", insn_read_cr4}, {"read_dr7", insn_read_dr7}, {"clts", insn_clts}, {"invd", insn_invd},
        {"wbinvd", insn_wbinvd}, {"swapgs", insn_swapgs}, {"sysret", insn_sysret}, {"sysexit", insn_sysexit},
        {"sysenter", insn_sysenter}, {"rdpmc", insn_rdpmc}, {"monitor", insn_monitor}, {"mwait", insn_mwait},
        {"rdtsc", insn_rdtsc}, {"cpuid", insn_cpuid}, {"kernel_half", insn_kernel_half},
        {"jump_to_kernel_half", insn_jump_to_kernel_half}, {"read_ram_map", insn_read_ram_map},
        {"write_ram_map", insn_write_ram_map}, {"write_flush_list", insn_write_flush_list},
        {"write_entry_area", insn_write_entry_area}, {"jump_entry_area", insn_jump_entry_area},
        {"jump_entry_area_rcx_code", insn_jump_entry_area_rcx_code},
        {"jump_entry_area_iopl", insn_jump_entry_area_iopl},
        {"jump_entry_area_after_syscall", insn_jump_entry_area_after_syscall}};
    struct sigaction sa = {0};
    sa.sa_sigaction = on_insn_signal;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    int signals[] = {SIGSEGV, SIGILL, SIGTRAP, SIGBUS, SIGFPE};
    for (unsigned i = 0; i < sizeof signals / sizeof signals[0]; i++)
        sigaction(signals[i], &sa, NULL);
    for (int a = 0; a < argc; a++) {
        char *code = NULL;
        for (unsigned i = 0; i < sizeof probes / sizeof probes[0]; i++)
            if (!strcmp(probes[i].name, argv[a]))
                code = probes[i].code;
        if (!strncmp(argv[a], "jump_to=", 8)) {
            insn_jump_target = strtoul(argv[a] + 8, NULL, 16);
            code = insn_jump_to;
        }
        if (!code) {
            printf("%s: no such probe\n", argv[a]);
            continue;
        }
        insn_label = code;
        printf("%s: ", argv[a]);
        fflush(stdout);
        if (!sigsetjmp(insn_back, 1)) {
            asm volatile("call *%0" :: "r"(code), "D"(area) : "memory", "rax", "rcx", "rdx", "rsi", "r8", "r9",
                         "r10", "r11");
            printf("no signal\n");
        }
    }
    return 0;
}

/* `int 0x80` with i386 numbers: the result is rax, sign-extended; rcx, r11, r8-r15 survive. */
static long int80(long nr, long b, long c, long d) {
    long result;
    asm volatile("int $0x80" : "=a"(result) : "a"(nr), "b"(b), "c"(c), "d"(d) : "memory");
    return result;
}

static int do_int80(void) {
    static const char message[] = "written through int 0x80\n";
    fflush(stdout);
    printf("write: %ld\n", int80(4, 1, (long)message, sizeof message - 1));
    printf("getpid: %s\n", int80(20, 0, 0, 0) == getpid() ? "same" : "differs");
    printf("write to fd -1: %ld\n", int80(4, -1, (long)message, 1));
    printf("unknown 9999: %ld\n", int80(9999, 0, 0, 0));
    long r8 = 0x1122334455667788, r11_kept;
    asm volatile("mov %1, %%r8\nmov $20, %%eax\nint $0x80\nmov %%r8, %0" : "=r"(r11_kept) : "r"(r8)
                 : "rax", "r8", "memory");
    printf("r8 kept: %s\n", r11_kept == r8 ? "yes" : "no");
    fflush(stdout);
    int80(1, 7, 0, 0);
    return 1;
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
    if (!strcmp(argv[1], "insns"))
        return do_insns(argc - 2, argv + 2);
    if (!strcmp(argv[1], "int80"))
        return do_int80();
    if (!strcmp(argv[1], "fuzz") && argc > 3)
        return do_fuzz(argc - 2, argv + 2);
    if (!strcmp(argv[1], "errnos"))
        return do_errnos(argc - 2, argv + 2);
    return 2;
}
