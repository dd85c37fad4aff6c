/* signalfd: signals read as struct signalfd_siginfo records (signalfd(2)).
 *
 * Records and their siginfo fields by sender (raise, sigqueue, kill from another process, SIGCHLD), several
 * records per read, readiness seen by poll, select and epoll, SFD_NONBLOCK / SFD_CLOEXEC, a new mask for an
 * existing fd, errors, a blocking read woken by another process or interrupted by a handler, and a fork child
 * reading its own signals through the fd it inherited. Prints deterministic facts only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/signalfd.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *err_name(int e)
{
    switch (e) {
    case EINVAL: return "EINVAL";
    case EAGAIN: return "EAGAIN";
    case EINTR: return "EINTR";
    case EBADF: return "EBADF";
    default: return "E?";
    }
}

#define SHOW(what, expr) do { long r_ = (long)(expr); \
        if (r_ < 0) printf("%s: -1 %s\n", what, err_name(errno)); else printf("%s: %ld\n", what, r_); } while (0)

static sigset_t set_of(int a, int b)
{
    sigset_t s;
    sigemptyset(&s);
    if (a) sigaddset(&s, a);
    if (b) sigaddset(&s, b);
    return s;
}

static int readable(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static void show_record(const struct signalfd_siginfo *si, pid_t sender)
{
    printf("  signo %u code %d errno %d pid-is-sender %d uid %u", si->ssi_signo, si->ssi_code, si->ssi_errno,
           (pid_t)si->ssi_pid == sender, si->ssi_uid);
    if (si->ssi_code == SI_QUEUE)
        printf(" int %d ptr %llu", si->ssi_int, (unsigned long long)si->ssi_ptr);
    if (si->ssi_signo == SIGCHLD)
        printf(" status %d", si->ssi_status);
    printf("\n");
}

static void test_basics(void)
{
    printf("-- basics\n");
    sigset_t all = set_of(SIGUSR1, SIGUSR2);
    sigaddset(&all, SIGRTMIN);
    sigprocmask(SIG_BLOCK, &all, NULL);
    sigset_t mask = set_of(SIGUSR1, SIGRTMIN);
    int blocking = signalfd(-1, &mask, 0);
    int fl = fcntl(blocking, F_GETFL);
    fcntl(blocking, F_SETFL, fl | O_NONBLOCK);
    printf("signalfd without flags: O_NONBLOCK %d, then set: %d\n", !!(fl & O_NONBLOCK),
           !!(fcntl(blocking, F_GETFL) & O_NONBLOCK));
    close(blocking);
    int fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    printf("fd valid: %d, cloexec %d, nonblock %d\n", fd >= 0, !!(fcntl(fd, F_GETFD) & FD_CLOEXEC),
           !!(fcntl(fd, F_GETFL) & O_NONBLOCK));
    char link[64] = "";
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    readlink(path, link, sizeof link - 1);
    printf("link: %s\n", link);
    struct signalfd_siginfo si[4];
    SHOW("read with nothing pending", read(fd, si, sizeof si));
    printf("readable: %d\n", readable(fd));
    raise(SIGUSR1);
    printf("readable after raise: %d\n", readable(fd));
    SHOW("read into 127 bytes", read(fd, si, 127));
    SHOW("read", read(fd, si, sizeof si));
    show_record(&si[0], getpid());
    sigset_t pending;
    sigpending(&pending);
    printf("still pending: %d, readable: %d\n", sigismember(&pending, SIGUSR1), readable(fd));

    union sigval v = {.sival_int = 42};
    for (int i = 0; i < 3; i++) {
        v.sival_int = 40 + i;
        sigqueue(getpid(), SIGRTMIN, v);
    }
    SHOW("read of 3 queued into 2 records", read(fd, si, 2 * sizeof *si));
    show_record(&si[0], getpid());
    show_record(&si[1], getpid());
    SHOW("read the third", read(fd, si, sizeof si));
    show_record(&si[0], getpid());

    raise(SIGUSR2);
    SHOW("SIGUSR2 (not in the mask)", read(fd, si, sizeof si));
    sigset_t usr2 = set_of(SIGUSR2, 0);
    SHOW("new mask, same fd", signalfd(fd, &usr2, 0) == fd);
    SHOW("read after the new mask", read(fd, si, sizeof si));
    show_record(&si[0], getpid());
    SHOW("write", write(fd, "12345678", 8));
    SHOW("signalfd on a pipe", ({ int p[2]; pipe(p); signalfd(p[0], &mask, 0); }));
    SHOW("bad flags", signalfd(-1, &mask, 1));
    SHOW("sizemask 4", syscall(289, -1, &mask, 4, 0));
    SHOW("signalfd on a closed fd", signalfd(999, &mask, 0));
    close(fd);
}

static void test_readiness(void)
{
    printf("-- readiness\n");
    sigset_t mask = set_of(SIGUSR1, 0);
    int fd = signalfd(-1, &mask, SFD_NONBLOCK);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 77};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    struct epoll_event out[2];
    SHOW("epoll_wait, nothing pending", epoll_wait(ep, out, 2, 0));
    kill(getpid(), SIGUSR1);
    int n = epoll_wait(ep, out, 2, 1000);
    printf("epoll_wait after kill: %d, events %#x, data %llu\n", n, n > 0 ? out[0].events : 0,
           n > 0 ? (unsigned long long)out[0].data.u64 : 0);
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(fd, &rd);
    struct timeval tv = {0, 0};
    printf("select: %d\n", select(fd + 1, &rd, NULL, NULL, &tv));
    struct signalfd_siginfo si;
    SHOW("read", read(fd, &si, sizeof si));
    show_record(&si, getpid());
    SHOW("epoll_wait after read", epoll_wait(ep, out, 2, 0));
    close(ep);
    close(fd);
}

static void test_from_other_process(void)
{
    printf("-- from another process\n");
    sigset_t mask = set_of(SIGUSR1, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int fd = signalfd(-1, &mask, 0);
    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0) {
        usleep(50 * 1000);
        kill(parent, SIGUSR1);
        _exit(7);
    }
    struct signalfd_siginfo si;
    SHOW("blocking read", read(fd, &si, sizeof si));
    show_record(&si, child);
    SHOW("blocking read", read(fd, &si, sizeof si));
    show_record(&si, child);
    printf("  code is CLD_EXITED: %d\n", si.ssi_code == CLD_EXITED);
    waitpid(child, NULL, 0);
    close(fd);
    sigset_t chld = set_of(SIGCHLD, 0);
    sigprocmask(SIG_UNBLOCK, &chld, NULL);
}

static volatile sig_atomic_t alarms;
static void on_alarm(int sig) { (void)sig; alarms++; }

static void test_interrupted(void)
{
    printf("-- interrupted\n");
    struct sigaction sa = {.sa_handler = on_alarm};
    sigaction(SIGALRM, &sa, NULL);
    sigset_t mask = set_of(SIGUSR1, 0);
    int fd = signalfd(-1, &mask, 0);
    struct itimerval it = {.it_value = {0, 50 * 1000}};
    setitimer(ITIMER_REAL, &it, NULL);
    struct signalfd_siginfo si;
    SHOW("blocking read, SIGALRM handled", read(fd, &si, sizeof si));
    printf("handler ran: %d\n", (int)alarms);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0) {
        usleep(150 * 1000);
        kill(parent, SIGUSR1);
        _exit(0);
    }
    setitimer(ITIMER_REAL, &it, NULL);
    SHOW("blocking read, SA_RESTART handler, then SIGUSR1", read(fd, &si, sizeof si));
    printf("signo %u, handler ran: %d\n", si.ssi_signo, (int)alarms);
    waitpid(child, NULL, 0);
    close(fd);
}

static void test_fork_child(void)
{
    printf("-- fork child\n");
    sigset_t mask = set_of(SIGUSR1, SIGUSR2);
    int fd = signalfd(-1, &mask, SFD_NONBLOCK);
    raise(SIGUSR1);
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        struct signalfd_siginfo si;
        printf("child: readable %d\n", readable(fd));
        SHOW("child: read", read(fd, &si, sizeof si));
        raise(SIGUSR2);
        printf("child: readable after raise %d\n", readable(fd));
        SHOW("child: read", read(fd, &si, sizeof si));
        printf("child: signo %u\n", si.ssi_signo);
        fflush(stdout);
        _exit(0);
    }
    waitpid(child, NULL, 0);
    struct signalfd_siginfo si;
    printf("parent: readable %d\n", readable(fd));
    SHOW("parent: read", read(fd, &si, sizeof si));
    printf("parent: signo %u\n", si.ssi_signo);
    close(fd);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    alarm(20);                                  /* nothing here may hang */
    test_basics();
    test_readiness();
    test_from_other_process();
    test_interrupted();
    test_fork_child();
    printf("done\n");
    return 0;
}
