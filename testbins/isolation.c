/* Probes for tests/test_isolation.py (issue 13): each mode prints deterministic facts, natively and under hermipy.
 *
 *   exec PATH [ARGS...]  fork, execv PATH in the child; print its errno or how it ended
 *   hello [ARGS...]      print argc (a target for exec)
 *   maps                 print our mappings in [0x10000000, 0x10003000) (a test ELF's extra segment)
 *   open_mode            open/openat/creat with garbage in the mode argument
 *   munmap               munmap of ranges reaching beyond user space
 *   fuzz SEED ROUNDS NR...  call each syscall NR ROUNDS times with arguments drawn from extreme and plausible
 *                        values (seeded), in a child process of its own; print how each child ended
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
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
            int null = open("/dev/null", O_RDWR);          /* what the calls write goes nowhere */
            for (int std = 0; std < 3; std++)
                dup2(null, std);
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
    if (!strcmp(argv[1], "fuzz") && argc > 3)
        return do_fuzz(argc - 2, argv + 2);
    return 2;
}
