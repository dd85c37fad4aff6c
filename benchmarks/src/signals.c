/* signals: signal delivery latency (issue 11).
 * usage: signals timer N   a POSIX timer (CLOCK_MONOTONIC, TIMER_ABSTIME) expires N times, 2 ms apart, while the
 *                          program computes; latency = the handler's first clock reading - the expiry time
 *        signals kill N    a child process kill()s the parent N times while the parent is blocked in read();
 *                          latency = the handler's clock reading - the child's reading just before kill()
 * Reports on stderr:  signals: MODE median NS ns p99 NS ns   (stdout holds only deterministic results) */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static volatile sig_atomic_t arrived;
static volatile long long arrived_at;

static void on_signal(int sig)
{
    (void)sig;
    arrived_at = now_ns();
    arrived = 1;
}

static int by_value(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static void report(const char *mode, long long *lat, long n)
{
    qsort(lat, n, sizeof *lat, by_value);
    printf("%s: %ld signals handled\n", mode, n);
    fprintf(stderr, "signals: %s median %lld ns p99 %lld ns\n", mode, lat[n / 2], lat[(n * 99) / 100]);
}

static int timer_latency(long n, long long *lat)
{
    struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
    sigaction(SIGALRM, &sa, NULL);
    struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGALRM };
    timer_t timer;
    if (timer_create(CLOCK_MONOTONIC, &sev, &timer)) {
        perror("timer_create");
        return 1;
    }
    for (long i = 0; i < n; i++) {
        long long deadline = now_ns() + 2000000;
        struct itimerspec its = { .it_value = { deadline / 1000000000, deadline % 1000000000 } };
        arrived = 0;
        timer_settime(timer, TIMER_ABSTIME, &its, NULL);
        while (!arrived)
            ;                                   /* computing: no syscall until the signal */
        lat[i] = arrived_at - deadline;
    }
    report("timer", lat, n);
    return 0;
}

static int kill_latency(long n, long long *lat)
{
    int go[2], sent[2];
    struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
    sigaction(SIGUSR1, &sa, NULL);
    if (pipe(go) || pipe(sent))
        return 1;
    pid_t child = fork();
    if (child == 0) {
        char c;
        close(go[1]);
        close(sent[0]);
        while (read(go[0], &c, 1) == 1) {
            long long t0 = now_ns();
            kill(getppid(), SIGUSR1);
            if (write(sent[1], &t0, sizeof t0) != sizeof t0)
                _exit(1);
        }
        _exit(0);
    }
    close(go[0]);
    close(sent[1]);
    for (long i = 0; i < n; i++) {
        long long t0;
        arrived = 0;
        if (write(go[1], "g", 1) != 1 || read(sent[0], &t0, sizeof t0) != sizeof t0)
            return 1;
        while (!arrived)
            ;
        lat[i] = arrived_at - t0;
    }
    close(go[1]);
    waitpid(child, NULL, 0);
    report("kill", lat, n);
    return 0;
}

int main(int argc, char **argv)
{
    long n = argc == 3 ? atol(argv[2]) : 0;
    long long *lat = n > 0 ? calloc(n, sizeof *lat) : NULL;
    if (lat && !strcmp(argv[1], "timer"))
        return timer_latency(n, lat);
    if (lat && !strcmp(argv[1], "kill"))
        return kill_latency(n, lat);
    fprintf(stderr, "usage: signals timer|kill N\n");
    return 2;
}
