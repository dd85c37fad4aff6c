/* MAP_SHARED memory as Linux shares it (mmap(2), memfd_create(2), futex(2)): anonymous and file mappings across
 * fork both ways, coherence of a mapping with read/write/pwrite of its file, MAP_SHARED of /dev/zero, SIGBUS past
 * the end of the file (after ftruncate, and for a grown mremap of shared anonymous memory), mremap moving a
 * shared mapping, mprotect(PROT_WRITE) of a file opened read-only (EACCES), msync, a futex wait in the child woken
 * by the parent, memfd with seals. Each step prints what it saw; a 10 s alarm guards against a lost wake-up.
 * Usage: shared_memory DIR (a scratch directory); shared_memory DIR watch: print "ready", then what another
 * process writes into DIR/watched (read through a shared mapping). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096
#define FUTEX_WAIT 0           /* linux/futex.h, which musl-gcc does not see */
#define FUTEX_WAKE 1

static char scratch[512];

static const char *path_in(const char *name)
{
    static char buf[600];
    snprintf(buf, sizeof buf, "%s/%s", scratch, name);
    return buf;
}

static void child_status(const char *what, pid_t pid)
{
    int status;
    if (waitpid(pid, &status, 0) != pid)
        printf("%s: waitpid: %s\n", what, strerror(errno));
    else if (WIFEXITED(status))
        printf("%s: child exited %d\n", what, WEXITSTATUS(status));
    else
        printf("%s: child killed by signal %d\n", what, WTERMSIG(status));
}

/* A pipe used as a one-byte semaphore between parent and child. */
static void post(int fd) { if (write(fd, "x", 1) != 1) _exit(90); }
static void await_(int fd) { char c; if (read(fd, &c, 1) != 1) _exit(91); }

static void both_ways(const char *what, volatile int *word)
{
    int to_child[2], to_parent[2];
    if (pipe(to_child) || pipe(to_parent)) { perror("pipe"); exit(1); }
    word[0] = 1;
    pid_t pid = fork();
    if (pid == 0) {
        int seen = word[0];
        word[1] = 2;                             /* the child writes, the parent reads */
        post(to_parent[1]);
        await_(to_child[0]);
        _exit(word[2] == 3 && seen == 1 ? 0 : 1); /* the parent's later write is seen */
    }
    await_(to_parent[0]);
    printf("%s: parent sees the child's write: %d\n", what, word[1]);
    word[2] = 3;
    post(to_child[1]);
    child_status(what, pid);
    close(to_child[0]); close(to_child[1]); close(to_parent[0]); close(to_parent[1]);
}

static void anonymous(void)
{
    int *m = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    both_ways("anonymous", m);
    both_ways("anonymous second page", m + PG / sizeof(int));
    munmap(m, 2 * PG);
}

static void dev_zero(void)
{
    int fd = open("/dev/zero", O_RDWR);
    int *m = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    printf("dev_zero: starts at %d\n", m[0]);
    both_ways("dev_zero", m);
    munmap(m, PG);
}

static void file_coherence(void)
{
    int fd = open(path_in("file"), O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (ftruncate(fd, 3 * PG)) perror("ftruncate");
    char *m = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    strcpy(m + 100, "written through the mapping");
    char buf[64] = {0};
    pread(fd, buf, 27, 100);
    printf("file: pread sees the mapping's write: %s\n", buf);
    pwrite(fd, "written by pwrite", 17, PG + 5);
    printf("file: the mapping sees pwrite: %.17s\n", m + PG + 5);
    both_ways("file", (volatile int *)(m + 2 * PG));
    /* another process's write() is seen through the mapping */
    pid_t pid = fork();
    if (pid == 0) {
        int fd2 = open(path_in("file"), O_WRONLY);
        pwrite(fd2, "from the child's pwrite", 23, 300);
        _exit(0);
    }
    child_status("file pwrite", pid);
    printf("file: the mapping sees the child's pwrite: %.23s\n", m + 300);
    printf("file: msync MS_SYNC %d, MS_ASYNC|MS_INVALIDATE %d\n", msync(m, 3 * PG, MS_SYNC),
           msync(m, PG, MS_ASYNC | MS_INVALIDATE));
    /* a second mapping of the same file at another offset sees the same page */
    char *second = mmap(NULL, PG, PROT_READ, MAP_SHARED, fd, PG);
    printf("file: second mapping at offset %d sees: %.17s\n", PG, second + 5);
    munmap(second, PG);
    munmap(m, 3 * PG);
    close(fd);
    fd = open(path_in("file"), O_RDONLY);
    read(fd, buf, 0);
    pread(fd, buf, 27, 100);
    printf("file: after munmap, read gives: %s\n", buf);
    close(fd);
}

static sigjmp_buf jump;
static volatile sig_atomic_t bus_code;

static void on_bus(int sig, siginfo_t *info, void *ctx)
{
    (void)ctx;
    bus_code = sig == SIGBUS ? info->si_code : -sig;
    siglongjmp(jump, 1);
}

static void probe(const char *what, volatile char *p)
{
    bus_code = 0;
    if (sigsetjmp(jump, 1) == 0) {
        char c = *p;
        printf("%s: read %d\n", what, c);
    } else {
        printf("%s: SIGBUS si_code %d\n", what, (int)bus_code);
    }
}

static void sigbus(void)
{
    struct sigaction sa = {0};
    sa.sa_sigaction = on_bus;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGBUS, &sa, NULL);
    sigaction(SIGSEGV, &sa, NULL);
    int fd = open(path_in("short"), O_RDWR | O_CREAT | O_TRUNC, 0600);
    write(fd, "abc", 3);
    char *m = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    probe("sigbus: within the last page, past the end", m + 100);
    probe("sigbus: the page after the end", m + PG);
    if (ftruncate(fd, 2 * PG)) perror("ftruncate");
    probe("sigbus: after growing the file", m + PG + 1);
    m[PG + 1] = 'z';
    if (ftruncate(fd, 10)) perror("ftruncate");
    probe("sigbus: after shrinking it again", m + PG + 1);
    munmap(m, 3 * PG);
    close(fd);

    char *a = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    a[0] = 'q';
    char *g = mremap(a, PG, 2 * PG, MREMAP_MAYMOVE);
    probe("sigbus: grown shared anonymous, old page", g);
    probe("sigbus: grown shared anonymous, new page", g + PG);
    munmap(g, 2 * PG);
    signal(SIGBUS, SIG_DFL);
    signal(SIGSEGV, SIG_DFL);
}

static void remap_and_protect(void)
{
    int *m = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    m[0] = 41;
    int *moved = mremap(m, 4 * PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_FIXED,
                        mmap(NULL, 2 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    both_ways("moved", moved);
    printf("moved: keeps %d\n", moved[0] + moved[1] + moved[2]);
    munmap(moved, 2 * PG);

    int fd = open(path_in("file"), O_RDONLY);
    char *ro = mmap(NULL, PG, PROT_READ, MAP_SHARED, fd, 0);
    printf("protect: PROT_WRITE on a read-only file's shared mapping: %s\n",
           mprotect(ro, PG, PROT_READ | PROT_WRITE) ? strerror(errno) : "allowed");
    printf("protect: a writable shared mapping of it: %s\n",
           mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED ? strerror(errno) : "allowed");
    printf("protect: a writable private mapping of it: %s\n",
           mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0) == MAP_FAILED ? strerror(errno) : "allowed");
    munmap(ro, PG);
    close(fd);
}

static long futex(volatile int *word, int op, int val)
{
    return syscall(SYS_futex, word, op, val, NULL, NULL, 0);
}

static void futex_across(void)
{
    volatile int *word = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pid_t pid = fork();
    if (pid == 0) {
        while (word[0] == 0)
            if (futex(word, FUTEX_WAIT, 0) && errno != EAGAIN && errno != EINTR)
                _exit(2);
        _exit(word[0] == 7 ? 0 : 1);
    }
    /* wake until the child has been woken: it may not be waiting yet */
    word[0] = 7;
    long woken = 0;
    for (int i = 0; i < 2000 && !woken; i++) {
        woken = futex(word, FUTEX_WAKE, 1);
        if (!woken) {
            int status;
            if (waitpid(pid, &status, WNOHANG) == pid) {
                /* it saw the word before it waited: as good an end, and which comes first is scheduling */
                printf("futex: child exited %d\n", WEXITSTATUS(status));
                return;
            }
            usleep(1000);
        }
    }
    child_status("futex", pid);
}

static void memfd(void)
{
    int fd = memfd_create("hermipy-test", MFD_ALLOW_SEALING | MFD_CLOEXEC);
    if (fd < 0) { printf("memfd: %s\n", strerror(errno)); return; }
    ftruncate(fd, PG);
    int *m = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    both_ways("memfd", m);
    printf("memfd: seals %#x\n", fcntl(fd, F_GET_SEALS));
    printf("memfd: F_SEAL_WRITE while mapped writable: %s\n",
           fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE) ? strerror(errno) : "sealed");
    munmap(m, PG);
    printf("memfd: F_SEAL_SHRINK|F_SEAL_GROW: %s\n",
           fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) ? strerror(errno) : "sealed");
    printf("memfd: ftruncate after the seals: %s\n", ftruncate(fd, 2 * PG) ? strerror(errno) : "allowed");
    printf("memfd: seals %#x\n", fcntl(fd, F_GET_SEALS));
    int plain = memfd_create("plain", 0);
    printf("memfd: F_ADD_SEALS without MFD_ALLOW_SEALING: %s\n",
           fcntl(plain, F_ADD_SEALS, F_SEAL_GROW) ? strerror(errno) : "sealed");
    printf("memfd: bad flags: %s\n", memfd_create("x", 0x100) < 0 ? strerror(errno) : "allowed");
    close(plain);
    close(fd);
}

/* "watch": another process (the test, on the host) writes the file while this one reads it through a mapping. */
static int watch(void)
{
    int fd = open(path_in("watched"), O_RDONLY);
    volatile char *m = mmap(NULL, PG, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) { perror("mmap"); return 1; }
    printf("ready\n");
    for (int i = 0; i < 10000 && m[0] == 0; i++)
        usleep(1000);
    printf("saw %c%c%c%c\n", m[0], m[1], m[2], m[3]);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: shared_memory DIR [watch]\n"); return 2; }
    snprintf(scratch, sizeof scratch, "%s", argv[1]);
    setvbuf(stdout, NULL, _IONBF, 0);
    alarm(10);
    if (argc > 2 && !strcmp(argv[2], "watch"))
        return watch();
    anonymous();
    dev_zero();
    file_coherence();
    sigbus();
    remap_and_protect();
    futex_across();
    memfd();
    printf("done\n");
    return 0;
}
