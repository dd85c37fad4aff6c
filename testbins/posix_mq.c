/* POSIX message queues, differentially: open/create/exclusive, attributes, priorities, non-blocking and timed
 * calls, errors, a parent and a child exchanging messages, poll on a queue descriptor, mq_notify with a signal
 * (its siginfo) and with a thread (SIGEV_THREAD), EBUSY, and a blocked receive interrupted by a handler.
 * Usage: posix_mq SECTION (basic, notify, intr). Names carry the pid and are unlinked; nothing variable is
 * printed. Built with -lrt where the C library needs it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *err(long r)
{
    static const struct { int e; const char *name; } names[] = {
        {EINVAL, "EINVAL"}, {EEXIST, "EEXIST"}, {ENOENT, "ENOENT"}, {EACCES, "EACCES"}, {EAGAIN, "EAGAIN"},
        {ETIMEDOUT, "ETIMEDOUT"}, {EMSGSIZE, "EMSGSIZE"}, {EBADF, "EBADF"}, {EBUSY, "EBUSY"}, {EINTR, "EINTR"},
        {EFAULT, "EFAULT"}, {ENAMETOOLONG, "ENAMETOOLONG"}, {ENOSYS, "ENOSYS"}, {EMFILE, "EMFILE"},
    };
    static char buf[32];
    if (r >= 0)
        return "ok";
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].e == errno)
            return snprintf(buf, sizeof buf, "-1 %s", names[i].name), buf;
    snprintf(buf, sizeof buf, "-1 errno %d", errno);
    return buf;
}

static void show(const char *what, long r) { printf("%s: %s\n", what, err(r)); }

static char qname[64];

static struct timespec in_ms(int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)ms * 1000000;
    ts.tv_sec += ts.tv_nsec / 1000000000;
    ts.tv_nsec %= 1000000000;
    return ts;
}

static void basic(void)
{
    struct mq_attr attr = {0, 4, 32, 0};
    mqd_t q = mq_open(qname, O_CREAT | O_EXCL | O_RDWR, 0600, &attr);
    show("mq_open create", q);
    show("mq_open O_EXCL again", mq_open(qname, O_CREAT | O_EXCL | O_RDWR, 0600, &attr));
    show("mq_open missing", mq_open("/hermipy-no-such-queue", O_RDONLY));
    show("mq_open no slash", mq_open("noslash", O_RDONLY));
    struct mq_attr bad = {0, 0, 32, 0};
    show("mq_open maxmsg 0", mq_open("/hermipy-bad-attr", O_CREAT | O_RDWR, 0600, &bad));
    char longname[300];
    memset(longname, 'a', sizeof longname);
    longname[0] = '/';
    longname[299] = 0;
    show("mq_open long name", mq_open(longname, O_RDONLY));
    struct mq_attr got;
    mq_getattr(q, &got);
    printf("attr: flags %ld maxmsg %ld msgsize %ld curmsgs %ld\n", got.mq_flags, got.mq_maxmsg, got.mq_msgsize,
           got.mq_curmsgs);
    show("send prio 1", mq_send(q, "low", 4, 1));
    show("send prio 9", mq_send(q, "high", 5, 9));
    show("send prio 5", mq_send(q, "middle", 7, 5));
    show("send too long", mq_send(q, "0123456789012345678901234567890123", 35, 0));
    show("send prio too high", mq_send(q, "x", 2, 1u << 20));
    show("send on a bad fd", mq_send(12345, "x", 2, 0));
    show("send on a pipe", ({ int p[2]; pipe(p); mq_send(p[1], "x", 2, 0); }));
    mq_getattr(q, &got);
    printf("curmsgs %ld\n", got.mq_curmsgs);
    struct pollfd pfd = {q, POLLIN | POLLOUT, 0};
    int ready = poll(&pfd, 1, 0);
    printf("poll: %d revents %#x\n", ready, pfd.revents);
    char buf[64];
    unsigned prio;
    show("receive with a small buffer", mq_receive(q, buf, 8, &prio));
    for (int i = 0; i < 3; i++) {
        long n = mq_receive(q, buf, sizeof buf, &prio);
        printf("received %ld '%s' prio %u\n", n, n > 0 ? buf : "", prio);
    }
    struct mq_attr nb = {O_NONBLOCK, 0, 0, 0}, old;
    show("setattr O_NONBLOCK", mq_setattr(q, &nb, &old));
    printf("old flags %ld\n", old.mq_flags);
    show("receive empty non-blocking", mq_receive(q, buf, sizeof buf, &prio));
    nb.mq_flags = 0;
    mq_setattr(q, &nb, NULL);
    struct timespec ts = in_ms(50);
    show("timedreceive 50 ms", mq_timedreceive(q, buf, sizeof buf, &prio, &ts));
    ts.tv_nsec = -1;
    show("timedreceive bad timespec", mq_timedreceive(q, buf, sizeof buf, &prio, &ts));
    for (int i = 0; i < 4; i++)
        mq_send(q, "fill", 5, 0);
    ts = in_ms(50);
    show("timedsend full 50 ms", mq_timedsend(q, "more", 5, 0, &ts));
    for (int i = 0; i < 4; i++)
        mq_receive(q, buf, sizeof buf, NULL);

    /* A child waits for a message; the parent sends it. */
    pid_t pid = fork();
    if (pid == 0) {
        long n = mq_receive(q, buf, sizeof buf, &prio);
        printf("child received %ld '%s' prio %u\n", n, buf, prio);
        mq_send(q, "answer", 7, 3);
        _exit(0);
    }
    usleep(50000);
    mq_send(q, "to the child", 13, 2);
    int status;
    waitpid(pid, &status, 0);
    long n = mq_receive(q, buf, sizeof buf, &prio);
    printf("parent received %ld '%s' prio %u\n", n, buf, prio);

    mqd_t ro = mq_open(qname, O_RDONLY);
    show("send on a read-only descriptor", mq_send(ro, "x", 2, 0));
    printf("close-on-exec: %d\n", fcntl(ro, F_GETFD));
    mq_close(ro);
    show("mq_unlink", mq_unlink(qname));
    show("mq_unlink again", mq_unlink(qname));
    show("still usable after unlink", mq_send(q, "x", 2, 0));
    show("mq_close", mq_close(q));
    show("mq_close again", mq_close(q));
}

static volatile int got_signo, got_code, got_value;

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    got_signo = sig;
    got_code = si->si_code;
    got_value = si->si_value.sival_int;
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int thread_value;

static void on_message(union sigval v)
{
    pthread_mutex_lock(&lock);
    thread_value = v.sival_int;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&lock);
}

static void notify(void)
{
    struct mq_attr attr = {0, 4, 32, 0};
    mqd_t q = mq_open(qname, O_CREAT | O_EXCL | O_RDWR, 0600, &attr);
    struct sigaction sa = {0};
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, NULL);
    struct sigevent ev = {0};
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGUSR1;
    ev.sigev_value.sival_int = 4242;
    show("mq_notify SIGEV_SIGNAL", mq_notify(q, &ev));
    show("mq_notify again (registered)", mq_notify(q, &ev));
    pid_t pid = fork();
    if (pid == 0) {
        show("child's mq_notify", mq_notify(q, &ev));
        mq_send(q, "ring", 5, 0);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    for (int i = 0; i < 1000 && !got_signo; i++)
        usleep(1000);
    printf("signal %d si_code SI_MESGQ %d value %d\n", got_signo, got_code == SI_MESGQ, got_value);
    char buf[64];
    mq_receive(q, buf, sizeof buf, NULL);
    show("registration gone: mq_notify again", mq_notify(q, &ev));
    show("unregister", mq_notify(q, NULL));
    ev.sigev_notify = SIGEV_NONE;
    show("mq_notify SIGEV_NONE", mq_notify(q, &ev));
    mq_notify(q, NULL);
    ev.sigev_notify = 99;
    show("mq_notify bad sigev_notify", mq_notify(q, &ev));

    ev.sigev_notify = SIGEV_THREAD;
    ev.sigev_notify_function = on_message;
    ev.sigev_notify_attributes = NULL;
    ev.sigev_value.sival_int = 77;
    show("mq_notify SIGEV_THREAD", mq_notify(q, &ev));
    mq_send(q, "wake a thread", 14, 0);
    pthread_mutex_lock(&lock);
    struct timespec until = in_ms(5000);
    while (!thread_value && pthread_cond_timedwait(&cond, &lock, &until) == 0)
        ;
    pthread_mutex_unlock(&lock);
    printf("thread notified with %d\n", thread_value);
    mq_close(q);
    mq_unlink(qname);
}

static volatile int handled;
static void on_alarm(int sig) { (void)sig; handled++; }

static void intr(void)
{
    struct mq_attr attr = {0, 4, 32, 0};
    mqd_t q = mq_open(qname, O_CREAT | O_EXCL | O_RDWR, 0600, &attr);
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    char buf[64];
    alarm(1);
    show("receive interrupted without SA_RESTART", mq_receive(q, buf, sizeof buf, NULL));
    printf("handler ran %d\n", handled);
    /* With SA_RESTART the call goes on after the handler; a child's message ends it. */
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    pid_t pid = fork();
    if (pid == 0) {
        usleep(1500 * 1000);
        mq_send(q, "late", 5, 0);
        _exit(0);
    }
    alarm(1);
    long n = mq_receive(q, buf, sizeof buf, NULL);
    printf("with SA_RESTART: %ld '%s', handler ran %d\n", n, n > 0 ? buf : "", handled);
    waitpid(pid, NULL, 0);
    mq_close(q);
    mq_unlink(qname);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    snprintf(qname, sizeof qname, "/hermipy-test-%d", (int)getpid());
    if (argc != 2)
        return 2;
    if (!strcmp(argv[1], "basic"))
        basic();
    else if (!strcmp(argv[1], "notify"))
        notify();
    else if (!strcmp(argv[1], "intr"))
        intr();
    else
        return 2;
    return 0;
}
