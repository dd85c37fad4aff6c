/* events: eventfd counters, epoll (registrations, errors, edge/level/one-shot, timeouts, temporary signal
 * masks) over a pipe, an eventfd and a timerfd, and timerfd (relative, absolute, intervals, disarm). One
 * process, no threads, no fork. Prints deterministic facts only: timer readings are printed as bounds, never
 * as values. An argument runs one section; none runs them all. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_epoll_pwait2
#define SYS_epoll_pwait2 441
#endif

static const char *ename(int e)
{
    switch (e) {
    case 0: return "OK";
    case EAGAIN: return "EAGAIN";
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case EEXIST: return "EEXIST";
    case ENOENT: return "ENOENT";
    case EPERM: return "EPERM";
    case ELOOP: return "ELOOP";
    case EINTR: return "EINTR";
    case ENOSYS: return "ENOSYS";
    default: return "E?";
    }
}

#define CHECK(expr) do { errno = 0; long r_ = (long)(expr); \
    printf("%s = %s\n", #expr, r_ < 0 ? ename(errno) : "ok"); } while (0)
#define CHECKV(expr) do { errno = 0; long r_ = (long)(expr); \
    if (r_ < 0) printf("%s = %s\n", #expr, ename(errno)); else printf("%s = %ld\n", #expr, r_); } while (0)
#define MUST(expr) do { if ((long)(expr) < 0) { printf("FAILED %s: %s (line %d)\n", #expr, ename(errno), __LINE__); \
    exit(1); } } while (0)

static uint64_t u64;

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

static void rd(int fd)
{
    u64 = 0;
    errno = 0;
    ssize_t n = read(fd, &u64, sizeof u64);
    if (n < 0)
        printf("  read: %s\n", ename(errno));
    else
        printf("  read %zd: %#llx\n", n, (unsigned long long)u64);
}

static void wr(int fd, uint64_t v)
{
    errno = 0;
    ssize_t n = write(fd, &v, sizeof v);
    printf("  write %#llx: %s\n", (unsigned long long)v, n < 0 ? ename(errno) : "ok");
}

static void link_name(const char *what, int fd)
{
    char path[64], name[128];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, name, sizeof name - 1);
    printf("%s is %.*s\n", what, (int)(n < 0 ? 0 : n), name);
}

static int revents(int fd, short events)
{
    struct pollfd p = {.fd = fd, .events = events};
    MUST(poll(&p, 1, 0));
    return p.revents;
}

/* -- eventfd ---------------------------------------------------------------------------------------- */
static void eventfds(void)
{
    int fd = eventfd(3, 0);
    MUST(fd);
    link_name("eventfd", fd);
    printf("blocking eventfd(3):\n");
    rd(fd);
    printf("  fl=%#x fd=%#x\n", fcntl(fd, F_GETFL) & ~0100000, fcntl(fd, F_GETFD));
    close(fd);

    fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    MUST(fd);
    printf("nonblocking eventfd(0): fl=%#x fd=%#x\n", fcntl(fd, F_GETFL) & ~0100000, fcntl(fd, F_GETFD));
    printf("  poll in/out: %#x\n", revents(fd, POLLIN | POLLOUT));
    rd(fd);
    wr(fd, 5);
    wr(fd, 7);
    printf("  poll in/out: %#x\n", revents(fd, POLLIN | POLLOUT));
    rd(fd);
    rd(fd);
    wr(fd, UINT64_MAX);                       /* never a valid value: EINVAL */
    wr(fd, 0);
    rd(fd);                                    /* adding zero leaves it unreadable */
    wr(fd, 0xfffffffffffffffeULL);             /* the maximum */
    printf("  poll in/out at max: %#x\n", revents(fd, POLLIN | POLLOUT));
    wr(fd, 1);                                 /* would overflow: EAGAIN without blocking */
    rd(fd);
    char small[4], big[16];
    CHECK(read(fd, small, sizeof small));
    CHECK(write(fd, small, sizeof small));
    wr(fd, 9);
    memset(big, 0, sizeof big);
    CHECKV(read(fd, big, sizeof big));         /* a bigger buffer still moves 8 bytes */
    printf("  value %#llx\n", (unsigned long long)*(uint64_t *)big);
    *(uint64_t *)big = 4;
    CHECKV(write(fd, big, sizeof big));
    rd(fd);
    CHECKV(read(fd, NULL, 8));
    wr(fd, 1);
    CHECKV(read(fd, NULL, 8));                 /* ready: the copy-out faults */
    CHECKV(write(fd, NULL, 8));
    CHECK(lseek(fd, 0, SEEK_SET));
    close(fd);

    fd = eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK);
    MUST(fd);
    printf("semaphore eventfd(3):\n");
    rd(fd);
    rd(fd);
    wr(fd, 2);
    rd(fd);
    rd(fd);
    rd(fd);
    rd(fd);
    close(fd);

    printf("bad flags and old eventfd:\n");
    CHECK(eventfd(0, 0x10));
    CHECK(eventfd(0, O_APPEND));
    CHECK(syscall(SYS_eventfd2, 0, -1));
    fd = syscall(SYS_eventfd, 2);
    MUST(fd);
    printf("  eventfd(2) fl=%#x fd=%#x\n", fcntl(fd, F_GETFL) & ~0100000, fcntl(fd, F_GETFD));
    rd(fd);
    CHECK(fcntl(fd, F_SETFL, O_NONBLOCK));
    rd(fd);
    close(fd);
    fd = syscall(SYS_eventfd2, 0xffffffffu, 0);   /* initval is an unsigned int */
    MUST(fd);
    rd(fd);
    close(fd);
}

/* -- epoll ------------------------------------------------------------------------------------------ */
static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = ((const struct epoll_event *)a)->data.u64, y = ((const struct epoll_event *)b)->data.u64;
    return x < y ? -1 : x > y;
}

/* epoll_wait, the events sorted by data (the ready list's order is not part of the contract) */
static void wait_print(const char *what, int ep, int maxevents, int timeout)
{
    struct epoll_event out[8];
    memset(out, 0, sizeof out);
    errno = 0;
    int n = epoll_wait(ep, out, maxevents, timeout);
    if (n < 0) {
        printf("%s: %s\n", what, ename(errno));
        return;
    }
    qsort(out, n, sizeof out[0], cmp_u64);
    printf("%s: %d", what, n);
    for (int i = 0; i < n; i++)
        printf(" [%#x %#llx]", out[i].events, (unsigned long long)out[i].data.u64);
    printf("\n");
}

static int add(int ep, int fd, uint32_t events, uint64_t data)
{
    struct epoll_event ev = {.events = events, .data.u64 = data};
    return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static int mod(int ep, int fd, uint32_t events, uint64_t data)
{
    struct epoll_event ev = {.events = events, .data.u64 = data};
    return epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

static void epoll_basics(void)
{
    CHECK(epoll_create(0));
    CHECK(epoll_create(-1));
    int ep = epoll_create(1);
    MUST(ep);
    printf("epoll_create(1) fd=%#x\n", fcntl(ep, F_GETFD));
    close(ep);
    CHECK(epoll_create1(1));
    CHECK(epoll_create1(O_NONBLOCK));
    ep = epoll_create1(EPOLL_CLOEXEC);
    MUST(ep);
    link_name("epoll", ep);
    printf("epoll_create1(EPOLL_CLOEXEC) fl=%#x fd=%#x\n", fcntl(ep, F_GETFL) & ~0100000, fcntl(ep, F_GETFD));

    int p[2];
    MUST(pipe(p));
    wait_print("empty, timeout 0", ep, 8, 0);
    MUST(add(ep, p[0], EPOLLIN, 0x1122334455667788ULL));
    wait_print("pipe empty", ep, 8, 0);
    MUST(write(p[1], "x", 1));
    wait_print("pipe readable", ep, 8, 0);
    wait_print("level-triggered again", ep, 8, 0);
    MUST(mod(ep, p[0], EPOLLIN | EPOLLOUT, 0xfeedfacecafebeefULL));
    wait_print("after MOD (a read end is never writable)", ep, 8, 0);
    MUST(add(ep, p[1], EPOLLOUT, 2));
    wait_print("both ends", ep, 8, 0);
    wait_print("maxevents 1", ep, 1, 0);
    MUST(epoll_ctl(ep, EPOLL_CTL_DEL, p[1], NULL));
    wait_print("after DEL", ep, 8, 0);

    printf("errors:\n");
    struct epoll_event ev = {.events = EPOLLIN};
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));           /* EEXIST */
    CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, p[1], &ev));           /* ENOENT */
    CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, p[1], &ev));           /* ENOENT */
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, 999, &ev));            /* EBADF */
    CHECK(epoll_ctl(999, EPOLL_CTL_ADD, p[0], &ev));          /* EBADF */
    CHECK(epoll_ctl(p[0], EPOLL_CTL_ADD, p[1], &ev));         /* not an epoll fd: EINVAL */
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, ep, &ev));             /* itself: EINVAL */
    CHECK(epoll_ctl(ep, 99, p[1], &ev));                      /* bad op: EINVAL */
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, p[1], NULL));          /* EFAULT */
    CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, p[0], NULL));          /* EFAULT */
    int file = open("/proc/self/exe", O_RDONLY);
    MUST(file);
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, file, &ev));           /* a regular file: EPERM */
    close(file);
    ev.events = EPOLLIN | EPOLLEXCLUSIVE;
    CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev));           /* EPOLLEXCLUSIVE only with ADD */
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, p[1], &ev));
    CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, p[1], &ev));
    CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, p[1], NULL));
    struct epoll_event out[2];
    CHECK(epoll_wait(ep, out, 0, 0));
    CHECK(epoll_wait(ep, out, -1, 0));
    CHECK(epoll_wait(999, out, 1, 0));
    CHECK(epoll_wait(p[0], out, 1, 0));
    CHECK(epoll_wait(ep, NULL, 1, 0));                        /* an event is ready: EFAULT */
    CHECK(epoll_wait(ep, (struct epoll_event *)-4096L, 1, 0));

    printf("nested and loops:\n");
    int ep2 = epoll_create1(0), ep3 = epoll_create1(0);
    MUST(ep2);
    MUST(ep3);
    MUST(add(ep2, ep, EPOLLIN, 0xe9));
    wait_print("outer sees the inner one ready", ep2, 8, 0);
    printf("  poll on epoll fd: %#x\n", revents(ep, POLLIN | POLLOUT));
    CHECK(add(ep, ep2, EPOLLIN, 1));                          /* ELOOP */
    MUST(add(ep3, ep2, EPOLLIN, 3));
    CHECK(add(ep, ep3, EPOLLIN, 1));                          /* ELOOP through two levels */
    close(ep3);
    close(ep2);

    printf("timeouts:\n");
    char c;
    MUST(read(p[0], &c, 1));
    long t0 = now_ms();
    wait_print("  drained, timeout 30", ep, 8, 30);
    long dt = now_ms() - t0;
    printf("  waited >= 29ms: %d, < 1000ms: %d\n", dt >= 29, dt < 1000);
    sigset_t none;
    sigemptyset(&none);
    struct timespec ts = {0, 20 * 1000000};
    t0 = now_ms();
    CHECKV(syscall(SYS_epoll_pwait2, ep, out, 2, &ts, NULL, 8));
    dt = now_ms() - t0;
    printf("  pwait2 waited >= 19ms: %d\n", dt >= 19);
    ts.tv_nsec = 0;
    CHECKV(syscall(SYS_epoll_pwait2, ep, out, 2, &ts, NULL, 8));
    ts.tv_nsec = 1000000000;
    CHECKV(syscall(SYS_epoll_pwait2, ep, out, 2, &ts, NULL, 8));
    ts.tv_sec = -1;
    ts.tv_nsec = 0;
    CHECKV(syscall(SYS_epoll_pwait2, ep, out, 2, &ts, NULL, 8));
    CHECKV(syscall(SYS_epoll_pwait2, ep, out, 2, (void *)8, NULL, 8));
    ts.tv_sec = 0;
    CHECKV(syscall(SYS_epoll_pwait2, ep, out, 2, &ts, &none, 4));
    CHECKV(syscall(SYS_epoll_pwait, ep, out, 2, 0, &none, 16));
    CHECKV(syscall(SYS_epoll_pwait, ep, out, 0, 0, &none, 8));
    MUST(write(p[1], "y", 1));
    memset(out, 0, sizeof out);
    CHECKV(syscall(SYS_epoll_pwait2, ep, out, 2, NULL, NULL, 8));   /* NULL: forever, but it is ready */
    printf("  data %#llx\n", (unsigned long long)out[0].data.u64);
    CHECKV(epoll_pwait(ep, out, 2, -1, &none));

    printf("hangup:\n");
    close(p[1]);
    wait_print("writer closed", ep, 8, 0);
    close(p[0]);
    wait_print("reader closed", ep, 8, 0);
    close(ep);
}

static void epoll_modes(void)
{
    int ep = epoll_create1(0);
    MUST(ep);
    int p[2];
    MUST(pipe(p));
    printf("edge-triggered:\n");
    MUST(add(ep, p[0], EPOLLIN | EPOLLET, 1));
    wait_print("  empty", ep, 8, 0);
    MUST(write(p[1], "ab", 2));
    wait_print("  first", ep, 8, 0);
    wait_print("  no new data", ep, 8, 0);
    MUST(write(p[1], "c", 1));
    wait_print("  more data", ep, 8, 0);
    char buf[8];
    MUST(read(p[0], buf, 1));
    wait_print("  after a partial read", ep, 8, 0);
    MUST(mod(ep, p[0], EPOLLIN | EPOLLET, 2));
    wait_print("  MOD re-reports", ep, 8, 0);
    MUST(read(p[0], buf, sizeof buf));

    printf("one-shot:\n");
    MUST(mod(ep, p[0], EPOLLIN | EPOLLONESHOT, 3));
    wait_print("  empty", ep, 8, 0);
    MUST(write(p[1], "d", 1));
    wait_print("  fires", ep, 8, 0);
    wait_print("  disarmed", ep, 8, 0);
    MUST(write(p[1], "e", 1));
    wait_print("  still disarmed", ep, 8, 0);
    struct epoll_event ev = {.events = EPOLLIN};
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));           /* still registered */
    MUST(mod(ep, p[0], EPOLLIN | EPOLLONESHOT, 4));
    wait_print("  re-armed", ep, 8, 0);
    MUST(epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL));
    MUST(read(p[0], buf, sizeof buf));

    printf("dup and close:\n");
    int d = dup(p[0]);
    MUST(d);
    MUST(add(ep, p[0], EPOLLIN, 10));
    MUST(add(ep, d, EPOLLIN, 11));
    MUST(write(p[1], "f", 1));
    wait_print("  both fds of one file", ep, 8, 0);
    MUST(epoll_ctl(ep, EPOLL_CTL_DEL, d, NULL));
    wait_print("  one deleted", ep, 8, 0);
    MUST(add(ep, d, EPOLLIN, 12));
    close(p[0]);                                             /* the file lives on through d */
    wait_print("  one fd closed", ep, 8, 0);
    CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL));
    int again = dup2(d, p[0]);                               /* same number, same file: a new (fd, file) */
    MUST(again);
    struct epoll_event e2 = {.events = EPOLLIN};
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &e2));
    close(p[0]);
    close(d);                                                /* the last one: its registrations end */
    wait_print("  file released", ep, 8, 0);
    MUST(pipe(p));                                           /* probably the same numbers again */
    CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL));
    MUST(add(ep, p[0], EPOLLIN, 13));
    wait_print("  fresh pipe", ep, 8, 0);
    close(p[0]);
    close(p[1]);

    printf("eventfd and timerfd:\n");
    int efd = eventfd(0, EFD_NONBLOCK);
    MUST(efd);
    MUST(add(ep, efd, EPOLLIN | EPOLLOUT, 20));
    wait_print("  eventfd writable", ep, 8, 0);
    wr(efd, 3);
    wait_print("  eventfd readable", ep, 8, 0);
    rd(efd);
    MUST(mod(ep, efd, EPOLLIN, 21));
    wait_print("  eventfd drained", ep, 8, 0);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    MUST(tfd);
    MUST(add(ep, tfd, EPOLLIN, 22));
    wait_print("  timer unarmed", ep, 8, 0);
    struct itimerspec its = {.it_value = {0, 15 * 1000000}};
    MUST(timerfd_settime(tfd, 0, &its, NULL));
    wait_print("  timer armed", ep, 8, 0);
    wait_print("  timer fired", ep, 8, 2000);
    rd(tfd);
    wait_print("  timer read", ep, 8, 0);
    wr(efd, 1);
    MUST(timerfd_settime(tfd, 0, &its, NULL));
    struct pollfd pfd = {.fd = tfd, .events = POLLIN};
    MUST(poll(&pfd, 1, 2000));
    wait_print("  both", ep, 8, 0);
    close(tfd);
    close(efd);
    wait_print("  all closed", ep, 8, 0);
    close(ep);
}

static volatile sig_atomic_t got_usr1;

static void on_usr1(int sig)
{
    (void)sig;
    got_usr1++;
}

static void epoll_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    MUST(sigaction(SIGUSR1, &sa, NULL));
    sigset_t usr1, none, cur;
    sigemptyset(&usr1);
    sigemptyset(&none);
    sigaddset(&usr1, SIGUSR1);
    MUST(sigprocmask(SIG_BLOCK, &usr1, NULL));
    int ep = epoll_create1(0), p[2];
    MUST(ep);
    MUST(pipe(p));
    MUST(add(ep, p[0], EPOLLIN, 5));
    struct epoll_event out[2];

    CHECKV(epoll_pwait(ep, out, 2, 0, &none));
    MUST(sigprocmask(SIG_BLOCK, NULL, &cur));
    printf("mask restored after a plain return: %d\n", sigismember(&cur, SIGUSR1));
    struct timespec zero = {0, 0};
    CHECKV(syscall(SYS_epoll_pwait2, ep, out, 2, &zero, &none, 8));
    MUST(sigprocmask(SIG_BLOCK, NULL, &cur));
    printf("mask restored after pwait2: %d\n", sigismember(&cur, SIGUSR1));

    raise(SIGUSR1);
    printf("pending, handler ran: %d\n", got_usr1);
    CHECKV(epoll_pwait(ep, out, 2, 0, &usr1));               /* still blocked: a plain wait */
    MUST(write(p[1], "z", 1));
    CHECKV(epoll_pwait(ep, out, 2, 5000, &none));            /* ready: the events win, no EINTR */
    printf("handler ran: %d\n", got_usr1);
    MUST(sigprocmask(SIG_BLOCK, NULL, &cur));
    printf("still blocked: %d\n", sigismember(&cur, SIGUSR1));
    char c;
    MUST(read(p[0], &c, 1));
    CHECKV(epoll_pwait(ep, out, 2, 5000, &none));            /* nothing ready: EINTR, the handler runs */
    printf("handler ran: %d\n", got_usr1);
    MUST(sigprocmask(SIG_BLOCK, NULL, &cur));
    printf("blocked again after the handler: %d\n", sigismember(&cur, SIGUSR1));
    raise(SIGUSR1);
    struct timespec ts = {5, 0};
    CHECKV(syscall(SYS_epoll_pwait2, ep, out, 2, &ts, &none, 8));
    printf("handler ran: %d\n", got_usr1);
    sigset_t urg;                                            /* default action: ignore */
    sigemptyset(&urg);
    sigaddset(&urg, SIGURG);
    MUST(sigprocmask(SIG_BLOCK, &urg, NULL));
    raise(SIGURG);
    CHECKV(epoll_pwait(ep, out, 2, 5000, &none));            /* EINTR, no handler runs */
    MUST(sigprocmask(SIG_BLOCK, NULL, &cur));
    printf("after an ignored signal: usr1 blocked %d, urg blocked %d\n", sigismember(&cur, SIGUSR1),
           sigismember(&cur, SIGURG));
    MUST(sigprocmask(SIG_UNBLOCK, &urg, NULL));
    MUST(sigprocmask(SIG_UNBLOCK, &usr1, NULL));
    close(p[0]);
    close(p[1]);
    close(ep);
}

/* -- timerfd ---------------------------------------------------------------------------------------- */
static void print_its(const char *what, int fd)
{
    struct itimerspec cur;
    errno = 0;
    if (timerfd_gettime(fd, &cur) < 0) {
        printf("%s: %s\n", what, ename(errno));
        return;
    }
    printf("%s: value %s, interval %lld.%09ld\n", what,
           cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec == 0 ? "0" : "armed",
           (long long)cur.it_interval.tv_sec, cur.it_interval.tv_nsec);
}

static void timerfds(void)
{
    printf("create:\n");
    CHECK(timerfd_create(99, 0));
    CHECK(timerfd_create(-1, 0));
    CHECK(timerfd_create(CLOCK_PROCESS_CPUTIME_ID, 0));
    CHECK(timerfd_create(CLOCK_MONOTONIC_RAW, 0));
    CHECK(timerfd_create(CLOCK_MONOTONIC, 1));
    CHECK(timerfd_create(CLOCK_MONOTONIC, O_APPEND));
    int fds[3] = {timerfd_create(CLOCK_REALTIME, 0), timerfd_create(CLOCK_BOOTTIME, TFD_CLOEXEC),
                  timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK)};
    for (int i = 0; i < 3; i++) {
        MUST(fds[i]);
        printf("  fl=%#x fd=%#x\n", fcntl(fds[i], F_GETFL) & ~0100000, fcntl(fds[i], F_GETFD));
    }
    close(fds[0]);
    close(fds[1]);
    int fd = fds[2];
    link_name("timerfd", fd);

    printf("unarmed:\n");
    print_its("  gettime", fd);
    rd(fd);
    printf("  poll: %#x\n", revents(fd, POLLIN | POLLOUT));
    char small[4];
    CHECK(read(fd, small, sizeof small));
    CHECK(write(fd, &u64, 8));

    printf("relative one-shot:\n");
    struct itimerspec its = {.it_value = {0, 40 * 1000000}}, old;
    long t0 = now_ms();
    MUST(timerfd_settime(fd, 0, &its, &old));
    printf("  old value %lld.%09ld\n", (long long)old.it_value.tv_sec, old.it_value.tv_nsec);
    struct itimerspec cur;
    MUST(timerfd_gettime(fd, &cur));
    printf("  remaining in (0, 40ms]: %d\n", cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec > 0
                                           && cur.it_value.tv_nsec <= 40 * 1000000);
    rd(fd);                                                   /* not yet */
    MUST(fcntl(fd, F_SETFL, 0));
    rd(fd);                                                   /* blocks until it fires */
    printf("  waited >= 39ms: %d\n", now_ms() - t0 >= 39);
    print_its("  gettime after it fired", fd);
    MUST(fcntl(fd, F_SETFL, O_NONBLOCK));
    rd(fd);

    printf("interval:\n");
    its.it_value.tv_nsec = 1000000;
    its.it_interval.tv_nsec = 2000000;
    MUST(timerfd_settime(fd, 0, &its, NULL));
    struct timespec nap = {0, 30 * 1000000};
    nanosleep(&nap, NULL);
    u64 = 0;
    MUST(read(fd, &u64, 8));
    printf("  expirations >= 1: %d\n", u64 >= 1);
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    MUST(poll(&pfd, 1, 2000));
    printf("  poll: %#x\n", pfd.revents);
    MUST(read(fd, &u64, 8));
    printf("  expirations >= 1: %d\n", u64 >= 1);
    print_its("  gettime while running", fd);
    struct itimerspec off = {{0, 0}, {0, 0}};
    MUST(timerfd_settime(fd, 0, &off, &old));
    printf("  old interval %lld.%09ld\n", (long long)old.it_interval.tv_sec, old.it_interval.tv_nsec);
    print_its("  gettime after disarm", fd);
    rd(fd);

    printf("absolute:\n");
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    its.it_interval.tv_nsec = 0;
    its.it_value = now;
    its.it_value.tv_nsec += 30 * 1000000;
    if (its.it_value.tv_nsec >= 1000000000) {
        its.it_value.tv_sec++;
        its.it_value.tv_nsec -= 1000000000;
    }
    t0 = now_ms();
    MUST(timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL));
    MUST(timerfd_gettime(fd, &cur));                          /* gettime is always relative */
    printf("  remaining in (0, 30ms]: %d\n", cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec > 0
                                           && cur.it_value.tv_nsec <= 30 * 1000000);
    MUST(poll(&pfd, 1, 2000));
    printf("  poll: %#x, waited >= 28ms: %d\n", pfd.revents, now_ms() - t0 >= 28);
    rd(fd);
    its.it_value.tv_sec = 1;                                  /* long past */
    its.it_value.tv_nsec = 0;
    MUST(timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL));
    MUST(poll(&pfd, 1, 2000));
    rd(fd);
    print_its("  gettime", fd);

    printf("settime errors:\n");
    its.it_value.tv_nsec = 1000000000;
    CHECK(timerfd_settime(fd, 0, &its, NULL));
    its.it_value.tv_nsec = -1;
    CHECK(timerfd_settime(fd, 0, &its, NULL));
    its.it_value = (struct timespec){-1, 0};
    CHECK(timerfd_settime(fd, 0, &its, NULL));
    its.it_value = (struct timespec){0, 0};
    its.it_interval = (struct timespec){0, 1000000000};
    CHECK(timerfd_settime(fd, 0, &its, NULL));
    its.it_interval = (struct timespec){0, 0};
    CHECK(timerfd_settime(fd, 4, &its, NULL));
    CHECK(timerfd_settime(fd, TFD_TIMER_CANCEL_ON_SET, &its, NULL));
    CHECK(timerfd_settime(fd, 0, NULL, NULL));
    CHECK(timerfd_settime(fd, 0, &its, (struct itimerspec *)8));
    CHECK(timerfd_settime(999, 0, &its, NULL));
    CHECK(timerfd_gettime(999, &cur));
    CHECK(timerfd_gettime(fd, NULL));
    int p[2];
    MUST(pipe(p));
    CHECK(timerfd_settime(p[0], 0, &its, NULL));
    CHECK(timerfd_gettime(p[0], &cur));
    close(p[0]);
    close(p[1]);
    close(fd);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *only = argc > 1 ? argv[1] : NULL;
#define SECTION(name, call) if (!only || !strcmp(only, name)) { printf("== %s\n", name); call; }
    SECTION("eventfd", eventfds());
    SECTION("epoll", epoll_basics());
    SECTION("modes", epoll_modes());
    SECTION("signals", epoll_signals());
    SECTION("timerfd", timerfds());
    printf("done\n");
    return 0;
}
