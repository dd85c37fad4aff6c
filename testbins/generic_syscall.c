/* generic_syscall: the C library's syscall(3), whose number is only known at run time, for numbers the kernel
 * answers in the guest (getpid & co.) and for others, with errors, across fork, and while another thread is
 * blocked inside it when it first meets an answered number. Prints facts only.
 *   generic_syscall        the facts
 *   generic_syscall code   after a syscall(SYS_getppid), the 5 bytes before syscall()'s own `syscall` (glibc's:
 *                          18 bytes into the function), in hex: hermipy's rewriting replaces them */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FUTEX_WAIT_PRIVATE 128             /* linux/futex.h (not in musl-gcc's include path) */
#define FUTEX_WAKE_PRIVATE 129

static int word;
static volatile sig_atomic_t ticks;

static void tick(int sig)
{
    (void)sig;
    ticks++;
}

/* syscall(SYS_getppid) in a loop while a 1 kHz timer's handler interrupts it wherever it is (inside the
 * trampoline too): every answer right, the handler run many times. */
static void under_signals(void)
{
    struct sigaction sa = {.sa_handler = tick};
    sigaction(SIGALRM, &sa, 0);
    struct itimerval every_ms = {{0, 1000}, {0, 1000}}, off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &every_ms, 0);
    long right = 1;
    pid_t parent = getppid();
    while (ticks < 100)
        right &= syscall(SYS_getppid) == parent;
    setitimer(ITIMER_REAL, &off, 0);
    printf("syscall() under a 1 kHz timer: answers right %ld, handler ran 100 times: %d\n", right, ticks >= 100);
}

static void *waiter(void *arg)
{
    (void)arg;
    struct timespec limit = {5, 0};
    long r = syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, &limit, 0, 0);
    return (void *)(long)(r == 0 || errno == EAGAIN);
}

static int ids_agree(void)
{
    int ok = 1;
    for (int i = 0; i < 2000; i++)
        ok &= syscall(SYS_getpid) == getpid() && syscall(SYS_getppid) == getppid() &&
              syscall(SYS_getuid) == getuid() && syscall(SYS_geteuid) == geteuid() &&
              syscall(SYS_getgid) == getgid() && syscall(SYS_getegid) == getegid();
    return ok;
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "code")) {
        syscall(SYS_getppid);
        const unsigned char *code = (const unsigned char *)syscall + 18;
        for (int i = 0; i < 5; i++)
            printf("%02x", code[i]);
        printf("\n");
        return 0;
    }
    /* A thread blocks in syscall(SYS_futex) before the wrapper ever meets an answered number. */
    pthread_t thread;
    pthread_create(&thread, 0, waiter, 0);
    struct timespec pause = {0, 20000000};
    nanosleep(&pause, 0);
    printf("ids through syscall() agree with the wrappers: %d\n", ids_agree());
    __atomic_store_n(&word, 1, __ATOMIC_SEQ_CST);
    syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, 0, 0, 0);
    void *woke;
    pthread_join(thread, &woke);
    printf("a thread blocked in syscall() meanwhile returned normally: %d\n", woke != 0);

    printf("getpgrp: %d, gettid: %d\n", syscall(SYS_getpgrp) == getpgrp(), syscall(SYS_gettid) == gettid());
    errno = 0;
    long r = syscall(SYS_uselib, "/nonexistent");
    printf("syscall(SYS_uselib): %ld %s\n", r, strerror(errno));
    errno = 0;
    r = syscall(SYS_close, -1);
    printf("syscall(SYS_close, -1): %ld %s\n", r, strerror(errno));
    char buf[] = "written through syscall(SYS_write)\n";
    fflush(stdout);
    printf("write returned its length: %d\n", syscall(SYS_write, 1, buf, strlen(buf)) == (long)strlen(buf));

    pid_t child = fork();
    if (child == 0)
        _exit(ids_agree() && syscall(SYS_getppid) != syscall(SYS_getpid) ? 7 : 1);
    int status;
    waitpid(child, &status, 0);
    printf("in a fork child, ids through syscall() are the child's: %d\n", WIFEXITED(status) && WEXITSTATUS(status) == 7);
    printf("and the parent's again: %d\n", ids_agree());
    under_signals();
    return 0;
}
