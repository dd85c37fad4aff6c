/* Posting trampolines under KVM's exitless mode (rewriter/trampoline.py): a read loop whose site gets one while the
 * process is alone, with SIGALRM every 2 ms interrupting it (anywhere: in the trampoline, in the entry's spin, in the
 * application); then the same sites from three threads at once (the trampolines make the syscall themselves),
 * alone again, and in fork children and their parents. Every line is a count that must be exact.
 * Usage: posting */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
static volatile sig_atomic_t ticks;
static int zero, null;
static void on_alarm(int s) { ticks++; char c = 0; write(null, &c, 1); }
static long reads(long n) { char buf[8]; long got = 0; for (long i = 0; i < n; i++) { if (read(zero, buf, 8) == 8 && buf[3] == 0) got++; } return got; }
static void *worker(void *a) { return (void *)reads(1000); }
int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    zero = open("/dev/zero", O_RDONLY); null = open("/dev/null", O_WRONLY);
    struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_handler = on_alarm; sa.sa_flags = SA_RESTART; sigaction(SIGALRM, &sa, 0);
    struct itimerval it = {{0, 2000}, {0, 2000}}; setitimer(ITIMER_REAL, &it, 0);
    long total = 0, got = 0;
    while (total < 10000 || ticks < 3) {             /* until a few alarms interrupted it, natively too */
        got += reads(1000);
        total += 1000;
    }
    printf("single: %s\n", got == total ? "every read whole" : "a read came short");
    pthread_t t[2]; for (int i = 0; i < 2; i++) pthread_create(&t[i], 0, worker, 0);
    got = reads(1000);
    for (int i = 0; i < 2; i++) { void *r; pthread_join(t[i], &r); got += (long)r; }
    printf("threads: %ld\n", got);
    got = reads(3000);
    printf("single again: %ld\n", got);
    for (int k = 0; k < 3; k++) {
        pid_t p = fork();
        if (p == 0) { printf("child %d: %ld\n", k, reads(1000)); fflush(stdout); _exit(0); }
        long mine = reads(1000); int st; waitpid(p, &st, 0); printf("parent %d: %ld\n", k, mine);
    }
    it.it_value.tv_usec = it.it_interval.tv_usec = 0; setitimer(ITIMER_REAL, &it, 0);
    return 0;
}
