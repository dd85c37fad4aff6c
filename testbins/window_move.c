#define _GNU_SOURCE
/* For tests/test_isolation.py (issue 13 item 7): mappings placed, while other threads make syscalls, at addresses
 * where hermipy's KVM backend keeps its user window (the LSTAR entry of each vCPU, its answer and scratch pages).
 * Natively nothing is there; under hermipy each placement moves the window, and the threads' syscalls, answered in
 * the guest or not, must go on unharmed.
 *
 *   window_move HEXADDR... CHILDADDR   place two pages at each address in turn (MAP_FIXED), with THREADS threads
 *                            calling getpid (libc's and syscall()'s), write/read on a pipe and sched_yield
 *                            meanwhile; then a fork whose child places two pages at CHILDADDR and checks
 *
 *   window_move span LO HI   one PROT_NONE placement over [LO, HI) (several PML4 slots: the window must move
 *                            out of all of them), then two pages at HI - 0x20000 and getpid
 *
 * Prints one line per placement and per thread; on a hang (alarm) what each thread was doing, exit 99. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define THREADS 3
#define PAGES 2
#define PAGE 4096UL

static volatile int done;
static volatile const char *doing[THREADS + 1];
static pid_t pid;

static volatile const char *first_error[THREADS + 1];      /* what failed first, told on stderr */

static int checks(int t, int fds[2]) {
    int errors = 0;
    char c = 'x';
    if (getpid() != pid || syscall(SYS_getpid) != pid) {
        errors++;
        if (!first_error[t])
            first_error[t] = getpid() != pid ? "getpid()" : "syscall(SYS_getpid)";
    }
    if (write(fds[1], &c, 1) != 1 || read(fds[0], &c, 1) != 1 || c != 'x') {
        errors++;
        if (!first_error[t])
            first_error[t] = "pipe write/read";
    }
    sched_yield();
    return errors;
}

static void *worker(void *arg) {
    long t = (long)arg;
    int fds[2], errors = 0;
    long rounds = 0;
    doing[t] = "pipe";
    if (pipe(fds))
        return (void *)-1L;
    doing[t] = "checks";
    while (!done) {
        errors += checks(t, fds);
        rounds++;
    }
    if (rounds == 0)
        first_error[t] = "no round before the end";
    doing[t] = "finished";
    close(fds[0]);
    close(fds[1]);
    return (void *)(long)(errors + (rounds == 0));
}

static void on_alarm(int sig) {
    (void)sig;
    char line[128];
    for (int t = 0; t <= THREADS; t++) {
        int n = snprintf(line, sizeof line, "hung: thread %d %s\n", t, doing[t] ? (const char *)doing[t] : "-");
        write(2, line, n);
    }
    _exit(99);
}

static int span(unsigned long lo, unsigned long hi) {
    void *p = mmap((void *)lo, hi - lo, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
    printf("span: %s\n", p == (void *)lo ? "at the address" : strerror(errno));
    unsigned char *q = mmap((void *)(hi - 0x20000), 2 * PAGE, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (q == MAP_FAILED)
        return printf("inner: %s\n", strerror(errno)), 0;
    q[0] = 1;
    printf("inner: at the address %d, zero-filled %d, getpid right %d\n", q == (void *)(hi - 0x20000), q[1] == 0,
           getpid() == syscall(SYS_getpid));
    return 0;
}

int main(int argc, char **argv) {
    pthread_t threads[THREADS];
    if (argc == 4 && !strcmp(argv[1], "span"))
        return span(strtoul(argv[2], NULL, 16), strtoul(argv[3], NULL, 16));
    int fds[2];
    signal(SIGALRM, on_alarm);
    alarm(30);
    setvbuf(stdout, NULL, _IONBF, 0);
    pid = getpid();
    pipe(fds);
    for (long t = 1; t <= THREADS; t++)
        pthread_create(&threads[t - 1], NULL, worker, (void *)t);
    for (int i = 1; i < argc - 1; i++) {
        unsigned long a = strtoul(argv[i], NULL, 16);
        doing[0] = "mmap";
        unsigned char *p = mmap((void *)a, PAGES * PAGE, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        if (p == MAP_FAILED) {
            printf("placement %d: %s\n", i, strerror(errno));
            continue;
        }
        doing[0] = "touch";
        int zero = 1;
        for (unsigned long j = 0; j < PAGES * PAGE; j++)
            zero &= p[j] == 0;
        memset(p, i, PAGES * PAGE);
        doing[0] = "checks";
        int errors = checks(0, fds);
        usleep(2000);
        printf("placement %d: at the address %d, zero-filled %d, holds %d, checks %d\n", i, p == (void *)a, zero,
               p[PAGE + 7], errors);
    }
    doing[0] = "join";
    done = 1;
    for (int t = 0; t < THREADS; t++) {
        void *r;
        pthread_join(threads[t], &r);
        printf("thread %d: errors %ld\n", t + 1, (long)r);
        if (first_error[t + 1])
            fprintf(stderr, "thread %d: first error: %s\n", t + 1, first_error[t + 1]);
    }
    doing[0] = "fork";
    pid_t child = fork();
    if (child == 0) {
        pid = getpid();
        int errors = checks(0, fds);
        unsigned char *p = mmap((void *)strtoul(argv[argc - 1], NULL, 16), PAGES * PAGE, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        if (p == MAP_FAILED)
            _exit(50);
        p[0] = 1;
        _exit(errors + checks(0, fds) + (p[1] != 0));
    }
    int status;
    waitpid(child, &status, 0);
    printf("fork: child checks %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status));
    return 0;
}
