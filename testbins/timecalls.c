/* timecalls: clock_gettime/clock_getres for every clock, clock_nanosleep (relative and TIMER_ABSTIME),
 * nanosleep, gettimeofday, time, and the refused setters. Raw syscalls throughout (glibc's vDSO path would
 * not show the kernel's errors). Prints facts (ordering, bounds) and errno names only. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *ename(int e)
{
    switch (e) {
    case 0: return "0";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case EPERM: return "EPERM";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    default: return "other";
    }
}

#define SHOW(label, expr) do { errno = 0; long r_ = (long)(expr); \
    if (r_ == -1) printf("%s: -1 %s\n", label, ename(errno)); else printf("%s: %ld\n", label, r_); } while (0)
#define BAD ((void *)16)

static long ns(const struct timespec *t) { return t->tv_sec * 1000000000L + t->tv_nsec; }

static long gettime(clockid_t c, struct timespec *t) { return syscall(SYS_clock_gettime, c, t); }

static long mono_ns(void)
{
    struct timespec t;
    gettime(CLOCK_MONOTONIC, &t);
    return ns(&t);
}

static const struct { clockid_t id; const char *name; } clocks[] = {
    {CLOCK_REALTIME, "REALTIME"}, {CLOCK_MONOTONIC, "MONOTONIC"}, {CLOCK_PROCESS_CPUTIME_ID, "PROCESS_CPUTIME_ID"},
    {CLOCK_THREAD_CPUTIME_ID, "THREAD_CPUTIME_ID"}, {CLOCK_MONOTONIC_RAW, "MONOTONIC_RAW"},
    {CLOCK_REALTIME_COARSE, "REALTIME_COARSE"}, {CLOCK_MONOTONIC_COARSE, "MONOTONIC_COARSE"},
    {CLOCK_BOOTTIME, "BOOTTIME"}, {CLOCK_REALTIME_ALARM, "REALTIME_ALARM"}, {CLOCK_BOOTTIME_ALARM, "BOOTTIME_ALARM"},
    {10, "clock 10"}, {CLOCK_TAI, "TAI"}, {12, "clock 12"}, {99, "clock 99"}, {-1, "clock -1"},
};

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (unsigned i = 0; i < sizeof clocks / sizeof clocks[0]; i++) {
        struct timespec a = {0, -1}, b = {0, -1}, res = {0, -1};
        errno = 0;
        long r1 = gettime(clocks[i].id, &a);
        int e1 = errno;
        long r2 = gettime(clocks[i].id, &b);
        errno = 0;
        long r3 = syscall(SYS_clock_getres, clocks[i].id, &res);
        int e3 = errno;
        printf("%s: gettime %s", clocks[i].name, r1 ? ename(e1) : "ok");
        if (!r1 && !r2)
            printf(", nsec in range %d, never goes back %d", a.tv_nsec >= 0 && a.tv_nsec < 1000000000, ns(&b) >= ns(&a));
        printf("; getres %s", r3 ? ename(e3) : "ok");
        if (!r3)
            printf(" %ld.%09ld", (long)res.tv_sec, res.tv_nsec);
        printf("\n");
    }
    struct timespec t;
    SHOW("clock_gettime bad pointer", gettime(CLOCK_MONOTONIC, BAD));
    SHOW("clock_gettime bad clock and bad pointer", gettime(99, BAD));
    SHOW("clock_getres NULL", syscall(SYS_clock_getres, CLOCK_MONOTONIC, NULL));
    SHOW("clock_getres bad pointer", syscall(SYS_clock_getres, CLOCK_MONOTONIC, BAD));
    struct timespec m1, m2;
    gettime(CLOCK_MONOTONIC, &m1);
    for (volatile int i = 0; i < 1000000; i++) {}
    gettime(CLOCK_MONOTONIC, &m2);
    printf("monotonic increases: %d\n", ns(&m2) > ns(&m1));
    struct timespec c1, c2;
    gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    for (volatile int i = 0; i < 3000000; i++) {}
    gettime(CLOCK_PROCESS_CPUTIME_ID, &c2);
    printf("process cputime increases with work: %d\n", ns(&c2) > ns(&c1));
    clockid_t cid;
    SHOW("clock_getcpuclockid(0)", clock_getcpuclockid(0, &cid));
    SHOW("own CPU clock via its dynamic id", gettime(cid, &t));
    clockid_t own = (clockid_t)((~(unsigned)getpid()) << 3) | 2;   /* MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED) */
    SHOW("own CPU clock by pid", gettime(own, &t));
    SHOW("dynamic clock of an unused pid", gettime((clockid_t)((~0x3ffffffu) << 3) | 2, &t));
    SHOW("dynamic clock of a bad fd", gettime((clockid_t)((~999u) << 3) | 3, &t));

    struct timespec rt, mono;
    gettime(CLOCK_REALTIME, &rt);
    long tt = syscall(SYS_time, NULL);
    printf("time() close to REALTIME: %d\n", tt - rt.tv_sec >= -1 && tt - rt.tv_sec <= 2);   /* time() is the coarse clock */
    time_t stored = 0;
    long tt2 = syscall(SYS_time, &stored);
    printf("time(&t) stores its result: %d\n", stored == tt2);
    SHOW("time bad pointer", syscall(SYS_time, BAD));
    struct timeval tv;
    struct timezone tz = {-1, -1};
    SHOW("gettimeofday", syscall(SYS_gettimeofday, &tv, &tz));
    printf("gettimeofday close to REALTIME: %d, usec in range: %d, tz %d %d\n", tv.tv_sec - rt.tv_sec >= 0 &&
           tv.tv_sec - rt.tv_sec <= 2, tv.tv_usec >= 0 && tv.tv_usec < 1000000, tz.tz_minuteswest, tz.tz_dsttime);
    SHOW("gettimeofday NULL NULL", syscall(SYS_gettimeofday, NULL, NULL));
    SHOW("gettimeofday bad tv", syscall(SYS_gettimeofday, BAD, NULL));
    SHOW("gettimeofday bad tz", syscall(SYS_gettimeofday, &tv, BAD));
    gettime(CLOCK_MONOTONIC, &mono);
    struct timespec boot;
    gettime(CLOCK_BOOTTIME, &boot);
    printf("BOOTTIME >= MONOTONIC: %d\n", ns(&boot) >= ns(&mono));

    /* sleeping */
    long t0 = mono_ns();
    struct timespec req = {0, 20000000}, rem = {7, 7};
    SHOW("nanosleep 20ms", syscall(SYS_nanosleep, &req, &rem));
    printf("slept >= 20ms: %d, rem untouched: %d\n", mono_ns() - t0 >= 20000000, rem.tv_sec == 7 && rem.tv_nsec == 7);
    req.tv_nsec = 1000000000;
    SHOW("nanosleep nsec 1e9", syscall(SYS_nanosleep, &req, NULL));
    req.tv_sec = -1; req.tv_nsec = 0;
    SHOW("nanosleep negative", syscall(SYS_nanosleep, &req, NULL));
    SHOW("nanosleep bad pointer", syscall(SYS_nanosleep, BAD, NULL));
    req.tv_sec = 0; req.tv_nsec = 0;
    SHOW("nanosleep 0", syscall(SYS_nanosleep, &req, NULL));

    t0 = mono_ns();
    req.tv_sec = 0; req.tv_nsec = 15000000;
    SHOW("clock_nanosleep MONOTONIC relative 15ms", syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, &req, NULL));
    printf("slept >= 15ms: %d\n", mono_ns() - t0 >= 15000000);
    struct timespec abs;
    gettime(CLOCK_MONOTONIC, &abs);
    abs.tv_nsec += 25000000;
    if (abs.tv_nsec >= 1000000000) { abs.tv_sec++; abs.tv_nsec -= 1000000000; }
    SHOW("clock_nanosleep MONOTONIC TIMER_ABSTIME +25ms",
         syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, TIMER_ABSTIME, &abs, NULL));
    printf("woke after the deadline: %d\n", mono_ns() >= ns(&abs));
    struct timespec past = {1, 0};
    SHOW("clock_nanosleep absolute in the past", syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, TIMER_ABSTIME, &past, NULL));
    gettime(CLOCK_REALTIME, &abs);
    abs.tv_nsec += 10000000;
    if (abs.tv_nsec >= 1000000000) { abs.tv_sec++; abs.tv_nsec -= 1000000000; }
    SHOW("clock_nanosleep REALTIME TIMER_ABSTIME +10ms",
         syscall(SYS_clock_nanosleep, CLOCK_REALTIME, TIMER_ABSTIME, &abs, NULL));
    req.tv_nsec = 1000000;
    SHOW("clock_nanosleep BOOTTIME 1ms", syscall(SYS_clock_nanosleep, CLOCK_BOOTTIME, 0, &req, NULL));
    SHOW("clock_nanosleep TAI 1ms", syscall(SYS_clock_nanosleep, CLOCK_TAI, 0, &req, NULL));
    SHOW("clock_nanosleep THREAD_CPUTIME", syscall(SYS_clock_nanosleep, CLOCK_THREAD_CPUTIME_ID, 0, &req, NULL));
    SHOW("clock_nanosleep MONOTONIC_RAW", syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC_RAW, 0, &req, NULL));
    SHOW("clock_nanosleep MONOTONIC_COARSE", syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC_COARSE, 0, &req, NULL));
    SHOW("clock_nanosleep REALTIME_ALARM", syscall(SYS_clock_nanosleep, CLOCK_REALTIME_ALARM, 0, &req, NULL));
    SHOW("clock_nanosleep bad clock", syscall(SYS_clock_nanosleep, 99, 0, &req, NULL));
    SHOW("clock_nanosleep bad pointer", syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, BAD, NULL));
    SHOW("clock_nanosleep bad clock and bad pointer", syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC_RAW, 0, BAD, NULL));
    struct timespec inval = {0, -1};
    SHOW("clock_nanosleep bad nsec", syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, &inval, NULL));
    SHOW("clock_nanosleep via libc (returns the error)", clock_nanosleep(CLOCK_MONOTONIC, 0, &inval, NULL));

    /* setters: only the checks that come before the privilege check (never actually set a clock) */
    struct timespec st = {0, 1000000000};
    SHOW("clock_settime MONOTONIC", syscall(SYS_clock_settime, CLOCK_MONOTONIC, &st));
    SHOW("clock_settime bad clock", syscall(SYS_clock_settime, 99, &st));
    SHOW("clock_settime REALTIME bad nsec", syscall(SYS_clock_settime, CLOCK_REALTIME, &st));
    SHOW("clock_settime REALTIME bad pointer", syscall(SYS_clock_settime, CLOCK_REALTIME, BAD));
    st.tv_nsec = 0;
    SHOW("clock_settime PROCESS_CPUTIME_ID", syscall(SYS_clock_settime, CLOCK_PROCESS_CPUTIME_ID, &st));
    SHOW("clock_settime own dynamic CPU clock", syscall(SYS_clock_settime, own, &st));
    struct timeval stv = {0, 2000000};
    SHOW("settimeofday bad usec", syscall(SYS_settimeofday, &stv, NULL));
    stv.tv_usec = -1;
    SHOW("settimeofday negative usec", syscall(SYS_settimeofday, &stv, NULL));
    SHOW("settimeofday bad tv pointer", syscall(SYS_settimeofday, BAD, NULL));
    stv.tv_usec = 5;
    SHOW("settimeofday bad tz pointer", syscall(SYS_settimeofday, &stv, BAD));
    return 0;
}
