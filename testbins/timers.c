/* timers: alarm, interval timers (setitimer/getitimer) and POSIX timers (timer_create & co.), alongside the sleeps
 * they interrupt and a timerfd.
 *
 * The argument names the section to run. Timings are printed as bounds only, never as values, each with a slack
 * that holds on a loaded 2-core machine:
 * - a real-time expiry is never early, and its handler runs within 250 ms of it (native runs were seen up to ~40 ms
 *   late there, hermipy up to ~100 ms: its signal pump is one more thread to schedule);
 * - a CPU-time expiry comes after at least 90% of the CPU time set on a CPU clock (timer_create), and after at
 *   least half of it for ITIMER_VIRTUAL/ITIMER_PROF, as the process's own CPU clock measures it: itimers count CPU
 *   time charged by whole ticks (4 ms at HZ=250), which under contention runs ahead of the precise clock (68%
 *   seen natively on a loaded 2-core machine);
 * - busy loops wait for a flag a handler sets (no system call inside); work is measured in CPU time, never in
 *   iterations, so that an emulated CPU only takes longer.
 * The "exec" section replaces the image with "exec_child", which checks what execve kept. The "ignored" section runs
 * interval timers whose signal is ignored: nothing interrupted, ITIMER_REAL stopped, queued once blocked.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

#define MS 1000000LL
#define LATENCY (250 * MS)                        /* from an expiry to its handler */

static const char *err_name(int e)
{
    switch (e) {
    case 0: return "0";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case EINTR: return "EINTR";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EPERM: return "EPERM";
    case EAGAIN: return "EAGAIN";
    default: return "E?";
    }
}

static const char *yes(int cond) { return cond ? "yes" : "no"; }

/* a raw system call's result: the value, or -1 and the errno's name */
#define SHOW(what, expr) do { long r_ = (long)(expr); \
        if (r_ < 0) printf("  %s: -1 %s\n", what, err_name(errno)); else printf("  %s: %ld\n", what, r_); } while (0)

static long long now(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long mono(void) { return now(CLOCK_MONOTONIC); }
static long long cpu(void) { return now(CLOCK_PROCESS_CPUTIME_ID); }
static long long tv_ns(struct timeval tv) { return tv.tv_sec * 1000000000LL + tv.tv_usec * 1000LL; }
static long long ts_ns(struct timespec ts) { return ts.tv_sec * 1000000000LL + ts.tv_nsec; }
static pid_t gettid_(void) { return (pid_t)syscall(SYS_gettid); }

static const char *sig_name(int sig)
{
    static char buf[32];
    switch (sig) {
    case SIGALRM: return "SIGALRM";
    case SIGVTALRM: return "SIGVTALRM";
    case SIGPROF: return "SIGPROF";
    case SIGUSR1: return "SIGUSR1";
    case SIGUSR2: return "SIGUSR2";
    }
    if (sig >= SIGRTMIN && sig <= SIGRTMAX) {
        snprintf(buf, sizeof buf, "SIGRTMIN+%d", sig - SIGRTMIN);
        return buf;
    }
    snprintf(buf, sizeof buf, "signal %d", sig);
    return buf;
}

static const char *clock_name(clockid_t c)
{
    switch (c) {
    case CLOCK_REALTIME: return "CLOCK_REALTIME";
    case CLOCK_MONOTONIC: return "CLOCK_MONOTONIC";
    case CLOCK_BOOTTIME: return "CLOCK_BOOTTIME";
    case CLOCK_PROCESS_CPUTIME_ID: return "CLOCK_PROCESS_CPUTIME_ID";
    case CLOCK_THREAD_CPUTIME_ID: return "CLOCK_THREAD_CPUTIME_ID";
    }
    return "?";
}

/* what the last handler saw */
static volatile sig_atomic_t fired, fired_sig, fired_code, fired_value, fired_overrun, fired_timerid, fired_tid;
static volatile long long fired_at;               /* CLOCK_MONOTONIC in the handler */

static void on_signal(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    fired_at = mono();
    fired_sig = sig;
    fired_code = si->si_code;
    fired_value = si->si_value.sival_int;
    fired_overrun = si->si_code == SI_TIMER ? si->si_overrun : -1;
    fired_timerid = si->si_code == SI_TIMER ? si->si_timerid : -1;
    fired_tid = gettid_();
    fired++;
}

static void handle(int sig, int flags)
{
    struct sigaction sa = {.sa_sigaction = on_signal, .sa_flags = SA_SIGINFO | flags};
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

static void reset(void) { fired = fired_sig = fired_code = fired_value = fired_overrun = fired_timerid = 0; }

static void spin_until(int count)
{
    for (;;)                                      /* busy: no system call until the handler has run */
        if (fired >= count)
            return;
}

/* computes for ns nanoseconds of process CPU time */
static void burn(long long ns)
{
    long long start = cpu();
    do
        for (volatile int i = 0; i < 20000; i++)
            ;
    while (cpu() - start < ns);
}

static void set_itimer(int which, long long value_ns, long long interval_ns)
{
    struct itimerval it = {{interval_ns / 1000000000, interval_ns % 1000000000 / 1000},
                           {value_ns / 1000000000, value_ns % 1000000000 / 1000}};
    setitimer(which, &it, NULL);
}

static timer_t make_timer(clockid_t clock, int notify, int sig, int value)
{
    struct sigevent ev = {.sigev_notify = notify, .sigev_signo = sig};
    ev.sigev_value.sival_int = value;
    timer_t t;
    if (timer_create(clock, &ev, &t)) {
        printf("  timer_create(%s): %s\n", clock_name(clock), err_name(errno));
        exit(1);
    }
    return t;
}

static void arm(timer_t t, int flags, long long value_ns, long long interval_ns)
{
    struct itimerspec its = {{interval_ns / 1000000000, interval_ns % 1000000000},
                             {value_ns / 1000000000, value_ns % 1000000000}};
    if (timer_settime(t, flags, &its, NULL))
        printf("  timer_settime: %s\n", err_name(errno));
}

/* ---------------------------------------------------------------- SIGALRM in a busy loop */

static void sec_alarm(void)
{
    printf("alarm:\n");
    handle(SIGALRM, 0);
    reset();
    long long start = mono();
    alarm(1);
    spin_until(1);
    printf("  alarm(1) in a busy loop: handler ran %d time(s), signal %s, si_code SI_KERNEL %s\n", (int)fired,
           sig_name(fired_sig), yes(fired_code == SI_KERNEL));
    printf("  not before 1 s: %s, handler within 250 ms of the expiry: %s\n", yes(fired_at - start >= 1000 * MS),
           yes(fired_at - start - 1000 * MS < LATENCY));
    printf("  alarm(0) afterwards: %u\n", alarm(0));

    reset();
    start = mono();
    set_itimer(ITIMER_REAL, 50 * MS, 0);
    spin_until(1);
    printf("  setitimer(ITIMER_REAL, 50 ms) in a busy loop: handler ran %d time(s), signal %s\n", (int)fired,
           sig_name(fired_sig));
    printf("  not before 50 ms: %s, handler within 250 ms of the expiry: %s\n", yes(fired_at - start >= 50 * MS),
           yes(fired_at - start - 50 * MS < LATENCY));
    struct itimerval cur;
    getitimer(ITIMER_REAL, &cur);
    printf("  one-shot, disarmed after it fired: %s\n", yes(!tv_ns(cur.it_value) && !tv_ns(cur.it_interval)));
    signal(SIGALRM, SIG_DFL);
}

/* ---------------------------------------------------------------- ITIMER_VIRTUAL / ITIMER_PROF */

static void cpu_itimer(int which, int sig, const char *name)
{
    handle(sig, 0);
    reset();
    long long start = cpu();
    set_itimer(which, 100 * MS, 0);
    spin_until(1);
    long long used = cpu() - start;
    printf("  %s 100 ms in a busy loop: handler ran %d time(s), signal %s\n", name, (int)fired, sig_name(fired_sig));
    printf("  after >= 50 ms of CPU time: %s, before 1 s of it: %s\n", yes(used >= 50 * MS), yes(used < 1000 * MS));
    signal(sig, SIG_DFL);
}

static void sec_itimer_cpu(void)
{
    printf("itimer_cpu:\n");
    cpu_itimer(ITIMER_VIRTUAL, SIGVTALRM, "ITIMER_VIRTUAL");
    cpu_itimer(ITIMER_PROF, SIGPROF, "ITIMER_PROF");
}

/* ---------------------------------------------------------------- periodic itimers */

static void periodic_itimer(int which, int sig, const char *name, clockid_t clock)
{
    handle(sig, SA_RESTART);
    reset();
    long long start = now(clock);
    set_itimer(which, 20 * MS, 20 * MS);
    spin_until(5);
    set_itimer(which, 0, 0);
    long long took = now(clock) - start;
    int bound = clock == CLOCK_MONOTONIC ? 100 : 50;        /* real time exactly, CPU time by ticks */
    printf("  %s every 20 ms: 5 expiries in a busy loop, then disarmed; 5 x 20 ms took >= %d ms of %s time: %s\n",
           name, bound, clock == CLOCK_MONOTONIC ? "real" : "CPU", yes(took >= bound * MS));
    int seen = fired;
    burn(60 * MS);
    printf("  none after the disarm: %s\n", yes(fired == seen));
    signal(sig, SIG_DFL);
}

static void sec_itimer_periodic(void)
{
    printf("itimer_periodic:\n");
    periodic_itimer(ITIMER_REAL, SIGALRM, "ITIMER_REAL", CLOCK_MONOTONIC);
    periodic_itimer(ITIMER_VIRTUAL, SIGVTALRM, "ITIMER_VIRTUAL", CLOCK_PROCESS_CPUTIME_ID);
    periodic_itimer(ITIMER_PROF, SIGPROF, "ITIMER_PROF", CLOCK_PROCESS_CPUTIME_ID);
}

/* ---------------------------------------------------------------- a blocked SIGALRM holds ITIMER_REAL */

static void sleep_ms(long ms);

static void sec_blocked(void)
{
    printf("blocked:\n");
    sigset_t alrm;
    sigemptyset(&alrm);
    sigaddset(&alrm, SIGALRM);
    sigprocmask(SIG_BLOCK, &alrm, NULL);
    handle(SIGALRM, 0);
    reset();
    set_itimer(ITIMER_REAL, 10 * MS, 10 * MS);
    sleep_ms(50);
    struct itimerval cur, old;
    getitimer(ITIMER_REAL, &cur);
    /* Linux re-arms a periodic ITIMER_REAL only as its SIGALRM is dequeued: pending and blocked, it stands still */
    printf("  SIGALRM blocked, ITIMER_REAL every 10 ms, 50 ms later: value %lld, interval %lld us, handler ran %d "
           "time(s)\n", tv_ns(cur.it_value), tv_ns(cur.it_interval) / 1000, (int)fired);
    sleep_ms(30);
    getitimer(ITIMER_REAL, &cur);
    printf("  30 ms more: still value %lld\n", tv_ns(cur.it_value));
    long long unblocked = mono();
    sigprocmask(SIG_UNBLOCK, &alrm, NULL);
    printf("  unblocked: handler ran %d time(s)\n", (int)fired);
    getitimer(ITIMER_REAL, &cur);
    printf("  running again: value in (0, 10 ms] %s\n", yes(tv_ns(cur.it_value) > 0 && tv_ns(cur.it_value) <= 10 * MS));
    spin_until(2);
    printf("  the next expiry within 10 ms (+ latency) of the unblock: %s\n",
           yes(fired_at - unblocked <= 10 * MS + LATENCY));

    set_itimer(ITIMER_REAL, 100 * MS, 100 * MS);    /* (a period a loaded machine's delays stay well inside) */
    sigprocmask(SIG_BLOCK, &alrm, NULL);
    sleep_ms(120);
    siginfo_t si;
    struct timespec second = {1, 0};
    int got = sigtimedwait(&alrm, &si, &second);
    getitimer(ITIMER_REAL, &cur);
    printf("  blocked again, then sigtimedwait: %s; running again: %s\n", sig_name(got), yes(tv_ns(cur.it_value) > 0));
    set_itimer(ITIMER_REAL, 10 * MS, 10 * MS);
    sleep_ms(30);
    struct itimerval none = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &none, &old);
    printf("  stopped again, then disarmed: old value %lld, old interval %lld us\n", tv_ns(old.it_value),
           tv_ns(old.it_interval) / 1000);
    set_itimer(ITIMER_REAL, 10 * MS, 10 * MS);
    sleep_ms(30);
    printf("  stopped again, then alarm(0): %u\n", alarm(0));
    getitimer(ITIMER_REAL, &cur);
    printf("  after alarm(0): value %lld, interval %lld\n", tv_ns(cur.it_value), tv_ns(cur.it_interval));
    sigtimedwait(&alrm, &si, &(struct timespec){0, 0});
    sigprocmask(SIG_UNBLOCK, &alrm, NULL);
    signal(SIGALRM, SIG_DFL);
}

/* ---------------------------------------------------------------- ITIMER_VIRTUAL leaves out system time */

static void sec_user_time(void)
{
    printf("user_time:\n");
    static char byte;
    static struct iovec pieces[1024];
    for (int i = 0; i < 1024; i++)
        pieces[i] = (struct iovec){&byte, 1};
    int fd = open("/dev/null", O_WRONLY);
    handle(SIGVTALRM, 0);
    reset();
    long long start = cpu();
    set_itimer(ITIMER_VIRTUAL, 20 * MS, 0);
    while (!fired)                /* the kernel's work on 1024 pieces per call is system time: not counted */
        writev(fd, pieces, 1024);
    long long used = cpu() - start;   /* natively ~60x; under hermipy on KVM ~12x where an exit's world switch,
                                         counted as the guest's, costs ~45 us (PVM): 4x leaves room for load */
    printf("  ITIMER_VIRTUAL 20 ms in a loop of writev(1024 x 1 byte): handler ran %d time(s); the process's CPU "
           "time then more than 4x the timer's: %s\n", (int)fired, yes(used > 80 * MS));
    close(fd);
    signal(SIGVTALRM, SIG_DFL);
}

/* ---------------------------------------------------------------- getitimer, old values, errors */

static void sec_getitimer(void)
{
    printf("getitimer:\n");
    static const struct { int which; const char *name; } timers[] = {
        {ITIMER_REAL, "ITIMER_REAL"}, {ITIMER_VIRTUAL, "ITIMER_VIRTUAL"}, {ITIMER_PROF, "ITIMER_PROF"}};
    for (int i = 0; i < 3; i++) {
        struct itimerval a, b, old;
        getitimer(timers[i].which, &a);
        printf("  %s unset: value %lld interval %lld\n", timers[i].name, tv_ns(a.it_value), tv_ns(a.it_interval));
        set_itimer(timers[i].which, 10000 * MS, 250 * MS);
        getitimer(timers[i].which, &a);
        burn(30 * MS);
        getitimer(timers[i].which, &b);
        printf("  set to 10 s every 250 ms: decreased while computing 30 ms %s, interval %lld\n",
               yes(tv_ns(b.it_value) < tv_ns(a.it_value)), tv_ns(b.it_interval));
        struct timespec pause_ = {0, 100 * MS};
        getitimer(timers[i].which, &a);
        nanosleep(&pause_, NULL);
        getitimer(timers[i].which, &b);
        long long ran = tv_ns(a.it_value) - tv_ns(b.it_value);
        if (timers[i].which == ITIMER_REAL)
            printf("  ran down >= 100 ms during a 100 ms sleep: %s\n", yes(ran >= 100 * MS));
        else
            printf("  ran down < 20 ms during a 100 ms sleep: %s\n", yes(ran < 20 * MS));
        struct itimerval off = {{0, 0}, {0, 0}};
        setitimer(timers[i].which, &off, &old);
        /* (set_cpu_itimer adds a tick to a CPU timer's value: after less than a tick of user time it reads > 10 s) */
        printf("  disarmed: old value in (9 s, 10 s + a tick] %s, old interval %lld\n",
               yes(tv_ns(old.it_value) > 9000 * MS && tv_ns(old.it_value) <= 10010 * MS), tv_ns(old.it_interval));
        getitimer(timers[i].which, &a);
        printf("  now: value %lld interval %lld\n", tv_ns(a.it_value), tv_ns(a.it_interval));
    }
    struct itimerval it = {{0, 0}, {0, 1000000}};
    SHOW("setitimer tv_usec 1000000", syscall(SYS_setitimer, ITIMER_REAL, &it, NULL));
    it.it_value.tv_usec = -1;
    SHOW("setitimer tv_usec -1", syscall(SYS_setitimer, ITIMER_REAL, &it, NULL));
    it.it_value.tv_usec = 0;
    SHOW("setitimer which 3", syscall(SYS_setitimer, 3, &it, NULL));
    SHOW("setitimer which -1", syscall(SYS_setitimer, -1, &it, NULL));
    SHOW("getitimer which 3", syscall(SYS_getitimer, 3, &it));
    SHOW("setitimer bad value", syscall(SYS_setitimer, ITIMER_REAL, (void *)8, NULL));
    SHOW("getitimer bad value", syscall(SYS_getitimer, ITIMER_REAL, (void *)8));
    SHOW("setitimer NULL value (disarms)", syscall(SYS_setitimer, ITIMER_REAL, NULL, NULL));
    SHOW("alarm(0) with nothing set", alarm(0));
    alarm(100);
    SHOW("alarm(5) after alarm(100)", alarm(5));
    struct itimerval cur;
    getitimer(ITIMER_REAL, &cur);
    printf("  ITIMER_REAL after alarm(5): value in (4 s, 5 s] %s, interval %lld\n",
           yes(tv_ns(cur.it_value) > 4000 * MS && tv_ns(cur.it_value) <= 5000 * MS), tv_ns(cur.it_interval));
    SHOW("alarm(0)", alarm(0));
}

/* ---------------------------------------------------------------- timer_create on each clock, SIGEV_SIGNAL */

static void sec_posix_clocks(void)
{
    printf("posix_clocks:\n");
    static const clockid_t clocks[] = {CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_PROCESS_CPUTIME_ID,
                                       CLOCK_THREAD_CPUTIME_ID};
    int sig = SIGRTMIN + 2;
    handle(sig, 0);
    for (int i = 0; i < 5; i++) {
        int cpu_clock = clocks[i] == CLOCK_PROCESS_CPUTIME_ID || clocks[i] == CLOCK_THREAD_CPUTIME_ID;
        timer_t t = make_timer(clocks[i], SIGEV_SIGNAL, sig, 1000 + i);
        reset();
        long long start = now(cpu_clock ? clocks[i] : CLOCK_MONOTONIC);
        arm(t, 0, 30 * MS, 0);
        spin_until(1);
        long long took = now(cpu_clock ? clocks[i] : CLOCK_MONOTONIC) - start;
        printf("  %s: signal %s, si_code SI_TIMER %s, si_value %d, si_overrun %d, si_timerid the timer's %s\n",
               clock_name(clocks[i]), sig_name(fired_sig), yes(fired_code == SI_TIMER), (int)fired_value,
               (int)fired_overrun, yes(fired_timerid == (int)(intptr_t)t));
        if (cpu_clock)
            printf("  after >= 27 ms of CPU time: %s\n", yes(took >= 27 * MS));
        else
            printf("  not before 30 ms: %s, handler within 250 ms of the expiry: %s\n", yes(took >= 30 * MS),
                   yes(took - 30 * MS < LATENCY));
        struct itimerspec cur;
        timer_gettime(t, &cur);
        printf("  one-shot, disarmed after it fired: %s; timer_delete: %d\n",
               yes(!ts_ns(cur.it_value) && !ts_ns(cur.it_interval)), timer_delete(t));
    }
    handle(SIGALRM, 0);                           /* no sigevent: SIGALRM with the timer id as si_value */
    int id = -1;
    reset();
    SHOW("timer_create(CLOCK_MONOTONIC, NULL sigevent)", syscall(SYS_timer_create, CLOCK_MONOTONIC, NULL, &id));
    struct itimerspec its = {{0, 0}, {0, 10 * MS}};
    syscall(SYS_timer_settime, id, 0, &its, NULL);
    spin_until(1);
    printf("  default notification: signal %s, si_value is the timer id %s, si_timerid %s\n", sig_name(fired_sig),
           yes(fired_value == id), yes(fired_timerid == id));
    syscall(SYS_timer_delete, id);
    signal(SIGALRM, SIG_DFL);
}

/* ---------------------------------------------------------------- SIGEV_NONE */

static void sec_sigev_none(void)
{
    printf("sigev_none:\n");
    handle(SIGUSR1, 0);
    reset();
    timer_t t = make_timer(CLOCK_MONOTONIC, SIGEV_NONE, SIGUSR1, 0);
    arm(t, 0, 300 * MS, 0);
    struct itimerspec a, b;
    timer_gettime(t, &a);
    struct timespec pause_ = {0, 50 * MS};
    nanosleep(&pause_, NULL);
    timer_gettime(t, &b);
    printf("  counts down: first <= 300 ms %s, then 50 ms less or more %s\n", yes(ts_ns(a.it_value) <= 300 * MS),
           yes(ts_ns(a.it_value) - ts_ns(b.it_value) >= 50 * MS));
    pause_.tv_nsec = 300 * MS;
    nanosleep(&pause_, NULL);
    timer_gettime(t, &b);
    printf("  after its expiry: value %lld, no signal %s, overrun %d\n", ts_ns(b.it_value), yes(!fired),
           timer_getoverrun(t));
    arm(t, 0, 50 * MS, 20 * MS);
    nanosleep(&pause_, NULL);
    timer_gettime(t, &b);
    printf("  periodic: still counting %s (value in (0, 20 ms]), interval %lld, no signal %s\n",
           yes(ts_ns(b.it_value) > 0 && ts_ns(b.it_value) <= 20 * MS), ts_ns(b.it_interval), yes(!fired));
    timer_delete(t);
    signal(SIGUSR1, SIG_DFL);
}

/* ---------------------------------------------------------------- SIGEV_THREAD_ID, SIGEV_THREAD */

static volatile pid_t target_tid;
static volatile sig_atomic_t target_go;

static void *target_thread(void *arg)
{
    (void)arg;
    target_tid = gettid_();
    while (!target_go)
        ;
    spin_until(1);                                /* the timer's signal interrupts this thread's busy loop */
    return NULL;
}

static volatile int callback_value;
static volatile pid_t callback_tid;
static volatile sig_atomic_t callback_ran;

static void callback(union sigval v)
{
    callback_value = v.sival_int;
    callback_tid = gettid_();
    callback_ran = 1;
}

static void sec_thread_id(void)
{
    printf("thread_id:\n");
    int sig = SIGRTMIN + 3;
    handle(sig, 0);
    reset();
    pthread_t th;
    pthread_create(&th, NULL, target_thread, NULL);
    while (!target_tid)
        ;
    struct sigevent ev = {.sigev_notify = SIGEV_THREAD_ID, .sigev_signo = sig};
    ev.sigev_value.sival_int = 55;
    ev.sigev_notify_thread_id = target_tid;
    timer_t t;
    printf("  timer_create(SIGEV_THREAD_ID to the other thread): %d\n", timer_create(CLOCK_MONOTONIC, &ev, &t));
    arm(t, 0, 30 * MS, 0);
    target_go = 1;
    pthread_join(th, NULL);                       /* the main thread waits, not blocking the signal */
    printf("  handler ran %d time(s), in the target thread %s (not main %s), si_value %d, si_code SI_TIMER %s\n",
           (int)fired, yes(fired_tid == target_tid), yes(fired_tid != getpid()), (int)fired_value,
           yes(fired_code == SI_TIMER));
    arm(t, 0, 20 * MS, 0);                        /* its thread has ended: the expiry goes nowhere */
    struct timespec pause_ = {0, 100 * MS};
    nanosleep(&pause_, NULL);
    printf("  expiry after the target thread ended: handled %s\n", yes(fired != 1));
    timer_delete(t);

    ev.sigev_notify_thread_id = 1;                /* init: not a thread of this process */
    SHOW("timer_create(SIGEV_THREAD_ID, tid of another process)", timer_create(CLOCK_MONOTONIC, &ev, &t));
    ev.sigev_notify_thread_id = target_tid;       /* joined: gone */
    SHOW("timer_create(SIGEV_THREAD_ID, tid of an ended thread)", timer_create(CLOCK_MONOTONIC, &ev, &t));

    struct sigevent th_ev = {.sigev_notify = SIGEV_THREAD, .sigev_notify_function = callback};
    th_ev.sigev_value.sival_int = 77;
    printf("  timer_create(SIGEV_THREAD): %d\n", timer_create(CLOCK_MONOTONIC, &th_ev, &t));
    arm(t, 0, 20 * MS, 0);
    long long start = mono();
    while (!callback_ran && mono() - start < 10000 * MS) {
        struct timespec ms = {0, 1 * MS};
        nanosleep(&ms, NULL);
    }
    printf("  the callback ran %s, with value %d, in another thread %s\n", yes(callback_ran), callback_value,
           yes(callback_tid && callback_tid != getpid()));
    timer_delete(t);
    signal(sig, SIG_DFL);
}

/* ---------------------------------------------------------------- timer_settime: relative, absolute, periodic */

static void sec_settime(void)
{
    printf("settime:\n");
    int sig = SIGRTMIN + 1;
    handle(sig, 0);
    timer_t t = make_timer(CLOCK_MONOTONIC, SIGEV_SIGNAL, sig, 9);

    struct itimerspec its = {{0, 0}, {0, 40 * MS}}, old, cur;
    reset();
    long long start = mono();
    timer_settime(t, 0, &its, &old);
    timer_gettime(t, &cur);
    printf("  relative 40 ms: old value %lld interval %lld; gettime value in (0, 40 ms] %s\n", ts_ns(old.it_value),
           ts_ns(old.it_interval), yes(ts_ns(cur.it_value) > 0 && ts_ns(cur.it_value) <= 40 * MS));
    spin_until(1);
    printf("  fired not before 40 ms %s, within 250 ms of it %s\n", yes(fired_at - start >= 40 * MS),
           yes(fired_at - start - 40 * MS < LATENCY));

    reset();
    start = mono();
    long long deadline = start + 40 * MS;
    struct itimerspec abs_ = {{0, 0}, {deadline / 1000000000, deadline % 1000000000}};
    timer_settime(t, TIMER_ABSTIME, &abs_, NULL);
    timer_gettime(t, &cur);
    printf("  TIMER_ABSTIME now + 40 ms: gettime is relative, in (0, 40 ms] %s\n",
           yes(ts_ns(cur.it_value) > 0 && ts_ns(cur.it_value) <= 40 * MS));
    spin_until(1);
    printf("  fired not before the deadline %s, within 250 ms of it %s\n", yes(fired_at >= deadline),
           yes(fired_at - deadline < LATENCY));

    reset();
    start = mono();
    abs_.it_value.tv_sec -= 10;                   /* a deadline in the past: expires at once */
    timer_settime(t, TIMER_ABSTIME, &abs_, NULL);
    spin_until(1);
    printf("  TIMER_ABSTIME in the past: fired within 250 ms %s\n", yes(fired_at - start < LATENCY));

    reset();
    start = mono();
    arm(t, 0, 20 * MS, 20 * MS);
    spin_until(5);
    long long fifth = fired_at;
    struct itimerspec off = {{0, 0}, {0, 0}};
    timer_settime(t, 0, &off, &old);
    printf("  periodic 20 ms: 5 expiries not before 100 ms %s; disarm: old interval %lld, old value in (0, 20 ms] %s\n",
           yes(fifth - start >= 100 * MS), ts_ns(old.it_interval),
           yes(ts_ns(old.it_value) > 0 && ts_ns(old.it_value) <= 20 * MS));
    int seen = fired;
    struct timespec pause_ = {0, 60 * MS};
    nanosleep(&pause_, NULL);
    timer_gettime(t, &cur);
    printf("  none after the disarm %s; gettime value %lld interval %lld\n", yes(fired == seen), ts_ns(cur.it_value),
           ts_ns(cur.it_interval));
    its.it_value.tv_sec = 100;
    its.it_value.tv_nsec = 0;
    its.it_interval.tv_sec = 3;
    timer_settime(t, 0, &its, NULL);
    its.it_value.tv_sec = 0;
    its.it_value.tv_nsec = 0;
    timer_settime(t, 0, &its, &old);
    timer_gettime(t, &cur);
    printf("  value 0 with an interval disarms: old value in (99 s, 100 s] %s, old interval %lld; now %lld %lld\n",
           yes(ts_ns(old.it_value) > 99000 * MS && ts_ns(old.it_value) <= 100000 * MS), ts_ns(old.it_interval),
           ts_ns(cur.it_value), ts_ns(cur.it_interval));
    timer_delete(t);
    signal(sig, SIG_DFL);
}

/* ---------------------------------------------------------------- overruns while the signal is blocked */

static sem_t overrun_go;
static int overrun_sig;
static timer_t overrun_timer;                     /* set before overrun_go is posted */

/* takes the pending expiries of a timer on the main thread's CPU clock, which stands still meanwhile */
static void *overrun_taker(void *arg)
{
    (void)arg;
    sem_wait(&overrun_go);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, overrun_sig);
    siginfo_t si;
    int sig = sigwaitinfo(&set, &si);
    struct timespec zero = {0, 0};
    int more = sigtimedwait(&set, &si, &zero);
    printf("  CLOCK_THREAD_CPUTIME_ID every 20 ms, blocked while main computes 200 ms: sigwaitinfo %s, "
           "si_overrun >= 5 %s; another one queued: %s (one signal per timer)\n", sig_name(sig),
           yes(si.si_overrun >= 5), more < 0 ? err_name(errno) : "yes");
    timer_delete(overrun_timer);
    return NULL;
}

static void sec_overrun(void)
{
    printf("overrun:\n");
    int sig = SIGRTMIN + 4;                       /* a queued signal: still one per timer */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_BLOCK, &set, NULL);
    timer_t t = make_timer(CLOCK_MONOTONIC, SIGEV_SIGNAL, sig, 3);
    arm(t, 0, 10 * MS, 10 * MS);
    struct timespec pause_ = {0, 150 * MS};
    nanosleep(&pause_, NULL);                     /* 15 periods with the signal blocked */
    sigset_t pending;
    sigpending(&pending);
    printf("  CLOCK_MONOTONIC every 10 ms, blocked for 150 ms: pending %s, timer_getoverrun before it is taken %d\n",
           yes(sigismember(&pending, sig)), timer_getoverrun(t));
    siginfo_t si;
    int got = sigwaitinfo(&set, &si);
    printf("  sigwaitinfo: %s, si_value %d, si_overrun >= 5 %s, timer_getoverrun the same %s\n", sig_name(got),
           si.si_value.sival_int, yes(si.si_overrun >= 5), yes(timer_getoverrun(t) == si.si_overrun));
    timer_delete(t);

    overrun_sig = sig;
    sem_init(&overrun_go, 0, 0);
    pthread_t taker;
    pthread_create(&taker, NULL, overrun_taker, NULL);
    overrun_timer = make_timer(CLOCK_THREAD_CPUTIME_ID, SIGEV_SIGNAL, sig, 4);
    arm(overrun_timer, 0, 20 * MS, 20 * MS);
    burn(200 * MS);
    sem_post(&overrun_go);
    pthread_join(taker, NULL);                    /* this thread's CPU clock stands still meanwhile */


    handle(sig, 0);
    reset();
    t = make_timer(CLOCK_MONOTONIC, SIGEV_SIGNAL, sig, 5);
    /* a queued expiry of a timer set again, or deleted, since is dropped (Linux 6.13+) */
    arm(t, 0, 5 * MS, 0);
    pause_.tv_nsec = 50 * MS;
    nanosleep(&pause_, NULL);
    arm(t, 0, 10000 * MS, 0);
    sigpending(&pending);
    printf("  expired while blocked, then set again: still pending %s", yes(sigismember(&pending, sig)));
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    printf(", delivered on unblocking %d time(s)\n", (int)fired);
    sigprocmask(SIG_BLOCK, &set, NULL);
    arm(t, 0, 5 * MS, 0);
    nanosleep(&pause_, NULL);
    printf("  expired while blocked, then deleted: timer_delete %d", timer_delete(t));
    sigpending(&pending);
    printf(", still pending %s", yes(sigismember(&pending, sig)));
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    printf(", delivered on unblocking %d time(s)\n", (int)fired);
    signal(sig, SIG_DFL);
}

/* ---------------------------------------------------------------- errors */

static void sec_errors(void)
{
    printf("errors:\n");
    int id = -1;
    struct sigevent ev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1};
    SHOW("timer_create clock 99", syscall(SYS_timer_create, 99, &ev, &id));
    SHOW("timer_create clock -1", syscall(SYS_timer_create, -1, &ev, &id));
    SHOW("timer_create CLOCK_MONOTONIC_RAW", syscall(SYS_timer_create, CLOCK_MONOTONIC_RAW, &ev, &id));
    SHOW("timer_create CLOCK_MONOTONIC_COARSE", syscall(SYS_timer_create, CLOCK_MONOTONIC_COARSE, &ev, &id));
    ev.sigev_notify = 99;
    SHOW("timer_create sigev_notify 99, CLOCK_MONOTONIC_RAW",
         syscall(SYS_timer_create, CLOCK_MONOTONIC_RAW, &ev, &id));
    SHOW("timer_create sigev_notify 99", syscall(SYS_timer_create, CLOCK_MONOTONIC, &ev, &id));
    ev.sigev_notify = SIGEV_THREAD_ID | SIGEV_NONE;
    SHOW("timer_create SIGEV_THREAD_ID|SIGEV_NONE", syscall(SYS_timer_create, CLOCK_MONOTONIC, &ev, &id));
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = 0;
    SHOW("timer_create signal 0", syscall(SYS_timer_create, CLOCK_MONOTONIC, &ev, &id));
    ev.sigev_signo = 65;
    SHOW("timer_create signal 65", syscall(SYS_timer_create, CLOCK_MONOTONIC, &ev, &id));
    ev.sigev_notify = SIGEV_NONE;
    SHOW("timer_create SIGEV_NONE, signal 65", syscall(SYS_timer_create, CLOCK_MONOTONIC, &ev, &id));
    SHOW("  timer_delete it", syscall(SYS_timer_delete, id));
    ev.sigev_notify = SIGEV_THREAD;               /* the kernel takes it as SIGEV_SIGNAL (the C library's job) */
    ev.sigev_signo = SIGUSR1;
    SHOW("timer_create raw SIGEV_THREAD", syscall(SYS_timer_create, CLOCK_MONOTONIC, &ev, &id));
    SHOW("  timer_delete it", syscall(SYS_timer_delete, id));
    ev.sigev_notify = SIGEV_SIGNAL;
    SHOW("timer_create bad sigevent", syscall(SYS_timer_create, CLOCK_MONOTONIC, (void *)8, &id));
    SHOW("timer_create bad sigevent, clock 99", syscall(SYS_timer_create, 99, (void *)8, &id));
    SHOW("timer_create bad timer id pointer", syscall(SYS_timer_create, CLOCK_MONOTONIC, &ev, (void *)8));
    SHOW("timer_create", syscall(SYS_timer_create, CLOCK_MONOTONIC, &ev, &id));
    struct itimerspec its = {{0, 0}, {5, 0}}, cur;
    SHOW("timer_settime bad id", syscall(SYS_timer_settime, id + 1000, 0, &its, NULL));
    SHOW("timer_settime id -1", syscall(SYS_timer_settime, -1, 0, &its, NULL));
    SHOW("timer_settime NULL value", syscall(SYS_timer_settime, id, 0, NULL, NULL));
    SHOW("timer_settime NULL value, bad id", syscall(SYS_timer_settime, id + 1000, 0, NULL, NULL));
    SHOW("timer_settime bad value pointer", syscall(SYS_timer_settime, id, 0, (void *)8, NULL));
    its.it_value.tv_nsec = 1000000000;
    SHOW("timer_settime tv_nsec 1e9", syscall(SYS_timer_settime, id, 0, &its, NULL));
    its.it_value.tv_nsec = -1;
    SHOW("timer_settime tv_nsec -1", syscall(SYS_timer_settime, id, 0, &its, NULL));
    its.it_value.tv_nsec = 0;
    its.it_value.tv_sec = -1;
    SHOW("timer_settime tv_sec -1", syscall(SYS_timer_settime, id, 0, &its, NULL));
    its.it_value.tv_sec = 5;
    its.it_interval.tv_nsec = 1000000000;
    SHOW("timer_settime interval tv_nsec 1e9", syscall(SYS_timer_settime, id, 0, &its, NULL));
    its.it_interval.tv_nsec = 0;
    SHOW("timer_settime flags 0xfe (not TIMER_ABSTIME)", syscall(SYS_timer_settime, id, 0xfe, &its, NULL));
    syscall(SYS_timer_gettime, id, &cur);
    printf("  then: relative, value in (4 s, 5 s] %s\n", yes(ts_ns(cur.it_value) > 4000 * MS &&
                                                             ts_ns(cur.it_value) <= 5000 * MS));
    SHOW("timer_settime bad old value pointer", syscall(SYS_timer_settime, id, 0, &its, (void *)8));
    syscall(SYS_timer_gettime, id, &cur);
    printf("  then: set all the same %s\n", yes(ts_ns(cur.it_value) > 4000 * MS));
    SHOW("timer_gettime bad id", syscall(SYS_timer_gettime, id + 1000, &cur));
    SHOW("timer_gettime NULL", syscall(SYS_timer_gettime, id, NULL));
    SHOW("timer_gettime NULL, bad id", syscall(SYS_timer_gettime, id + 1000, NULL));
    SHOW("timer_getoverrun bad id", syscall(SYS_timer_getoverrun, id + 1000));
    SHOW("timer_getoverrun", syscall(SYS_timer_getoverrun, id));
    SHOW("timer_delete bad id", syscall(SYS_timer_delete, id + 1000));
    SHOW("timer_delete", syscall(SYS_timer_delete, id));
    SHOW("timer_delete again", syscall(SYS_timer_delete, id));
    SHOW("timer_gettime after delete", syscall(SYS_timer_gettime, id, &cur));
}

/* ---------------------------------------------------------------- execve keeps alarm and itimers, not POSIX timers */

static void sec_exec(char *self)
{
    printf("exec:\n");
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    sigprocmask(SIG_BLOCK, &set, NULL);           /* the new image must not die of it before its handler is set */
    long long start = mono();
    set_itimer(ITIMER_REAL, 400 * MS, 0);
    set_itimer(ITIMER_VIRTUAL, 50000 * MS, 0);
    timer_t t = make_timer(CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGUSR1, 0);
    arm(t, 0, 10000 * MS, 0);
    char id[32], when[32];
    snprintf(id, sizeof id, "%d", (int)(intptr_t)t);
    snprintf(when, sizeof when, "%lld", start);
    fflush(stdout);
    execl("/proc/self/exe", self, "exec_child", id, when, (char *)NULL);
    printf("  execl: %s\n", err_name(errno));
}

static void exec_child(int id, long long start)
{
    printf("exec_child:\n");
    struct itimerval cur;
    getitimer(ITIMER_VIRTUAL, &cur);
    printf("  ITIMER_VIRTUAL kept: value in (40 s, 50.1 s] %s\n",   /* a CPU timer reads up to a tick high */
           yes(tv_ns(cur.it_value) > 40000 * MS && tv_ns(cur.it_value) <= 50100 * MS));
    set_itimer(ITIMER_VIRTUAL, 0, 0);
    struct itimerspec its;
    SHOW("timer_gettime of the old image's timer", syscall(SYS_timer_gettime, id, &its));
    SHOW("timer_delete of it", syscall(SYS_timer_delete, id));
    handle(SIGALRM, 0);
    reset();
    sigset_t none;
    sigemptyset(&none);
    sigsuspend(&none);                            /* SIGALRM, blocked since before execve, pending or soon */
    printf("  the old image's setitimer(ITIMER_REAL, 400 ms) fired in the new image: %s, %s, not before 400 ms %s\n",
           yes(fired == 1), sig_name(fired_sig), yes(fired_at - start >= 400 * MS));
}

/* ---------------------------------------------------------------- a fork child inherits no timer */

static void sec_fork(void)
{
    printf("fork:\n");
    alarm(100);
    set_itimer(ITIMER_VIRTUAL, 50000 * MS, 0);
    set_itimer(ITIMER_PROF, 50000 * MS, 0);
    timer_t t = make_timer(CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGUSR1, 0);
    arm(t, 0, 10000 * MS, 0);
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        struct itimerval r, v, p;
        getitimer(ITIMER_REAL, &r);
        getitimer(ITIMER_VIRTUAL, &v);
        getitimer(ITIMER_PROF, &p);
        printf("  child: ITIMER_REAL %lld, ITIMER_VIRTUAL %lld, ITIMER_PROF %lld\n", tv_ns(r.it_value),
               tv_ns(v.it_value), tv_ns(p.it_value));
        printf("  child: alarm(0) %u\n", alarm(0));
        struct itimerspec its;
        SHOW("child: timer_gettime of the parent's timer", syscall(SYS_timer_gettime, (int)(intptr_t)t, &its));
        fflush(stdout);
        _exit(0);
    }
    int status;
    waitpid(child, &status, 0);
    printf("  child exited %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    unsigned left = alarm(0);
    printf("  parent: alarm(0) 99 or 100 %s\n", yes(left == 99 || left == 100));
    struct itimerval v;
    getitimer(ITIMER_VIRTUAL, &v);
    printf("  parent: ITIMER_VIRTUAL still set %s\n", yes(tv_ns(v.it_value) > 0));
    set_itimer(ITIMER_VIRTUAL, 0, 0);
    set_itimer(ITIMER_PROF, 0, 0);
    struct itimerspec its;
    printf("  parent: its timer still there %d\n", timer_gettime(t, &its));
    timer_delete(t);
}

/* ---------------------------------------------------------------- sleeps a timer interrupts */

static void sec_sleep(void)
{
    printf("sleep:\n");
    handle(SIGALRM, SA_RESTART);                  /* a sleep is never restarted after a handler, SA_RESTART or not */
    struct timespec req = {1, 0}, rem = {12345, 678};
    reset();
    set_itimer(ITIMER_REAL, 100 * MS, 0);
    int r = nanosleep(&req, &rem);
    printf("  nanosleep 1 s, SIGALRM at 100 ms: %d %s, handler ran %d, remaining in [0.5 s, 1 s) %s\n", r,
           err_name(r ? errno : 0), (int)fired, yes(ts_ns(rem) >= 500 * MS && ts_ns(rem) < 1000 * MS));

    rem = (struct timespec){12345, 678};
    reset();
    set_itimer(ITIMER_REAL, 100 * MS, 0);
    r = clock_nanosleep(CLOCK_MONOTONIC, 0, &req, &rem);
    printf("  clock_nanosleep relative 1 s: %s, remaining in [0.5 s, 1 s) %s\n", err_name(r),
           yes(ts_ns(rem) >= 500 * MS && ts_ns(rem) < 1000 * MS));

    rem = (struct timespec){12345, 678};
    reset();
    set_itimer(ITIMER_REAL, 100 * MS, 0);
    long long deadline = now(CLOCK_REALTIME) + 5000 * MS;    /* far enough that a stalled machine still sees EINTR */
    struct timespec abs_ = {deadline / 1000000000, deadline % 1000000000};
    r = clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &abs_, &rem);
    printf("  clock_nanosleep TIMER_ABSTIME now + 5 s: %s, remaining untouched %s\n", err_name(r),
           yes(rem.tv_sec == 12345 && rem.tv_nsec == 678));
    set_itimer(ITIMER_REAL, 0, 0);                /* nothing of it left for the sleeps below */

    int sig = SIGRTMIN + 5;
    handle(sig, 0);
    timer_t t = make_timer(CLOCK_MONOTONIC, SIGEV_SIGNAL, sig, 0);
    reset();
    arm(t, 0, 100 * MS, 0);
    rem = (struct timespec){12345, 678};
    r = clock_nanosleep(CLOCK_MONOTONIC, 0, &req, &rem);
    printf("  clock_nanosleep relative 1 s, POSIX timer at 100 ms: %s, handler ran %d, remaining in [0.5 s, 1 s) "
           "%s\n", err_name(r), (int)fired, yes(ts_ns(rem) >= 500 * MS && ts_ns(rem) < 1000 * MS));

    /* SIGURG is ignored by default: its expiry does not end the sleep */
    timer_t quiet = make_timer(CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGURG, 0);
    arm(quiet, 0, 20 * MS, 0);
    req = (struct timespec){0, 150 * MS};
    long long start = mono();
    r = nanosleep(&req, NULL);
    printf("  nanosleep 150 ms, an ignored signal's timer at 20 ms: %d, slept it all %s\n", r,
           yes(mono() - start >= 150 * MS));
    timer_delete(quiet);
    timer_delete(t);
    signal(sig, SIG_DFL);
    signal(SIGALRM, SIG_DFL);
}

/* ---------------------------------------------------------------- timerfd alongside a POSIX timer */

static void sec_timerfd(void)
{
    printf("timerfd:\n");
    int sig = SIGRTMIN + 6;
    handle(sig, SA_RESTART);                      /* the blocking read goes on after each handler */
    timer_t t = make_timer(CLOCK_MONOTONIC, SIGEV_SIGNAL, sig, 0);
    int fd = timerfd_create(CLOCK_MONOTONIC, 0);
    struct itimerspec its = {{0, 0}, {0, 150 * MS}};
    reset();
    long long start = mono();
    timerfd_settime(fd, 0, &its, NULL);
    arm(t, 0, 10 * MS, 10 * MS);
    uint64_t expirations = 0;
    ssize_t n = read(fd, &expirations, sizeof expirations);
    long long took = mono() - start;
    arm(t, 0, 0, 0);
    int ran = fired;
    printf("  blocking timerfd read (150 ms) with a 10 ms periodic timer: read %zd, expirations %llu, "
           "not before 150 ms %s, the timer's handler ran meanwhile %s\n", n, (unsigned long long)expirations,
           yes(took >= 150 * MS), yes(ran >= 1));
    struct itimerspec cur;
    timer_gettime(t, &cur);
    timerfd_gettime(fd, &its);
    printf("  both disarmed: timer %lld, timerfd %lld\n", ts_ns(cur.it_value), ts_ns(its.it_value));
    close(fd);
    timer_delete(t);
    signal(sig, SIG_DFL);
}

/* ---------------------------------------------------------------- an itimer whose signal is ignored */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, ms % 1000 * MS};
    while (nanosleep(&ts, &ts))
        ;
}

static void sec_ignored(void)
{
    printf("ignored:\n");
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigemptyset(&ign.sa_mask);
    sigaction(SIGALRM, &ign, NULL);
    set_itimer(ITIMER_REAL, 2 * MS, 2 * MS);
    struct timespec ts = {0, 100 * MS};
    int r = nanosleep(&ts, NULL);
    struct itimerval cur;
    getitimer(ITIMER_REAL, &cur);
    /* Linux re-arms ITIMER_REAL when its SIGALRM is dequeued: an ignored one is dropped as sent, the timer stops */
    printf("  SIGALRM ignored, ITIMER_REAL every 2 ms: a 100 ms nanosleep returns %d; value %lld, interval %lld us\n",
           r, tv_ns(cur.it_value), tv_ns(cur.it_interval) / 1000);
    reset();
    handle(SIGALRM, 0);
    sleep_ms(50);
    printf("  then a handler for 50 ms: handler ran %d time(s)\n", (int)fired);

    sigaction(SIGALRM, &ign, NULL);
    set_itimer(ITIMER_REAL, 20 * MS, 0);
    sleep_ms(50);
    reset();
    handle(SIGALRM, 0);
    sleep_ms(50);
    printf("  a one-shot expiry while ignored, then a handler: handler ran %d time(s)\n", (int)fired);

    sigaction(SIGALRM, &ign, NULL);
    sigset_t alrm, pending;
    sigemptyset(&alrm);
    sigaddset(&alrm, SIGALRM);
    sigprocmask(SIG_BLOCK, &alrm, NULL);          /* a blocked signal is queued, ignored or not */
    set_itimer(ITIMER_REAL, 2 * MS, 2 * MS);
    sleep_ms(20);
    sigpending(&pending);
    printf("  ignored and blocked for 20 ms: pending %s\n", yes(sigismember(&pending, SIGALRM)));
    siginfo_t si;
    struct timespec second = {1, 0};
    int got = sigtimedwait(&alrm, &si, &second);
    printf("  sigtimedwait: %s, si_code SI_KERNEL %s\n", sig_name(got), yes(si.si_code == SI_KERNEL));
    set_itimer(ITIMER_REAL, 0, 0);
    sigprocmask(SIG_UNBLOCK, &alrm, NULL);

    sigaction(SIGPROF, &ign, NULL);               /* ITIMER_PROF re-arms as it expires: it runs on */
    set_itimer(ITIMER_PROF, 1 * MS, 1 * MS);
    burn(50 * MS);
    getitimer(ITIMER_PROF, &cur);
    printf("  SIGPROF ignored, ITIMER_PROF every 1 ms, 50 ms of CPU time: still running %s\n",
           yes(tv_ns(cur.it_value) > 0));
    reset();
    handle(SIGPROF, 0);
    spin_until(2);
    set_itimer(ITIMER_PROF, 0, 0);
    printf("  then a handler: 2 expiries handled\n");
}

static void sec_ignored_posix(void)
{
    printf("ignored_posix:\n");
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigemptyset(&ign.sa_mask);
    sigaction(SIGUSR1, &ign, NULL);
    timer_t t = make_timer(CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGUSR1, 7);
    arm(t, 0, 100 * MS, 100 * MS);               /* periods long enough for a loaded machine's delays */
    sleep_ms(550);
    reset();
    handle(SIGUSR1, 0);                           /* Linux 6.13+: the timer waited for a handler; queued now */
    int at_once = fired, overrun = fired_overrun, getoverrun = timer_getoverrun(t);
    printf("  SIGUSR1 ignored, a timer every 100 ms, 550 ms later a handler: it ran at once %s, si_overrun >= 3 %s, "
           "si_value %d\n", yes(at_once == 1), yes(overrun >= 3), at_once ? (int)fired_value : -1);
    printf("  timer_getoverrun is that overrun: %s\n", yes(getoverrun == overrun));
    spin_until(3);
    printf("  then on every 100 ms: 2 more expiries handled\n");
    arm(t, 0, 0, 0);

    sigaction(SIGUSR1, &ign, NULL);
    arm(t, 0, 10 * MS, 0);
    sleep_ms(100);
    reset();
    handle(SIGUSR1, 0);
    sleep_ms(20);
    printf("  a one-shot expiry while ignored, then a handler: it ran %d time(s)\n", (int)fired);

    sigaction(SIGUSR1, &ign, NULL);
    arm(t, 0, 5 * MS, 5 * MS);
    sleep_ms(20);
    arm(t, 0, 0, 0);
    reset();
    handle(SIGUSR1, 0);
    sleep_ms(20);
    printf("  periodic while ignored, disarmed, then a handler: it ran %d time(s)\n", (int)fired);
    timer_delete(t);
    signal(SIGUSR1, SIG_DFL);
}

/* ---------------------------------------------------------------- main */

struct section { const char *name; void (*run)(void); };

/* A periodic POSIX timer whose first expiry lies far in the past and whose interval is the clock's resolution:
 * its overrun caps at INT_MAX (timer_settime03's case), and the handler can disarm it although every expiry
 * re-arms it at once. */
static timer_t tiny_timer;
static volatile int tiny_called, tiny_overrun;

static void on_tiny(int sig)
{
    (void)sig;
    if (tiny_called)
        return;
    tiny_overrun = timer_getoverrun(tiny_timer);
    struct itimerspec off = {{0, 0}, {0, 0}};
    timer_settime(tiny_timer, 0, &off, NULL);
    tiny_called = 1;
}

static void sec_tiny_interval(void)
{
    struct sigevent sev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1};
    signal(SIGUSR1, on_tiny);
    timer_create(CLOCK_REALTIME, &sev, &tiny_timer);
    struct timespec res;
    clock_getres(CLOCK_REALTIME, &res);
    struct itimerspec spec = {{0, res.tv_nsec}, {0, 0}};
    clock_gettime(CLOCK_REALTIME, &spec.it_value);
    spec.it_value.tv_sec -= 30;                       /* 30 s of 1 ns intervals: far more than INT_MAX */
    timer_settime(tiny_timer, TIMER_ABSTIME, &spec, NULL);
    time_t give_up = time(NULL) + 10;
    while (!tiny_called && time(NULL) < give_up)
        ;
    printf("a 1 ns timer 30 s overdue: handled %d, overrun INT_MAX %d\n", tiny_called, tiny_overrun == INT_MAX);
    timer_delete(tiny_timer);
}

static const struct section sections[] = {
    { "alarm", sec_alarm },
    { "itimer_cpu", sec_itimer_cpu },
    { "itimer_periodic", sec_itimer_periodic },
    { "getitimer", sec_getitimer },
    { "posix_clocks", sec_posix_clocks },
    { "sigev_none", sec_sigev_none },
    { "thread_id", sec_thread_id },
    { "settime", sec_settime },
    { "overrun", sec_overrun },
    { "errors", sec_errors },
    { "fork", sec_fork },
    { "sleep", sec_sleep },
    { "timerfd", sec_timerfd },
    { "ignored", sec_ignored },
    { "ignored_posix", sec_ignored_posix },
    { "user_time", sec_user_time },
    { "blocked", sec_blocked },
    { "tiny_interval", sec_tiny_interval },
};

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);             /* a run that hangs has shown every finished line */
    if (argc == 2 && !strcmp(argv[1], "exec")) {
        sec_exec(argv[0]);
        return 1;
    }
    if (argc == 4 && !strcmp(argv[1], "exec_child")) {
        exec_child(atoi(argv[2]), atoll(argv[3]));
        return 0;
    }
    for (size_t i = 0; argc == 2 && i < sizeof sections / sizeof sections[0]; i++)
        if (!strcmp(argv[1], sections[i].name)) {
            sections[i].run();
            return 0;
        }
    fprintf(stderr, "usage: timers SECTION (alarm, itimer_cpu, ..., exec)\n");
    return 2;
}
