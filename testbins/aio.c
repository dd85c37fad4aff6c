/* Linux native AIO through the raw system calls (no libaio): io_setup, io_submit of each operation, the ring in
 * the caller's memory, io_getevents (min_nr, timeouts, a signal), io_pgetevents, io_cancel, io_destroy, the
 * eventfd of IOCB_FLAG_RESFD, and the errors of each. Runs in a fresh temporary directory. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef unsigned long aio_context_t;
struct io_event { uint64_t data, obj; int64_t res, res2; };
struct iocb {
    uint64_t aio_data;
    uint32_t aio_key;
    int32_t aio_rw_flags;
    uint16_t aio_lio_opcode;
    int16_t aio_reqprio;
    uint32_t aio_fildes;
    uint64_t aio_buf, aio_nbytes;
    int64_t aio_offset;
    uint64_t aio_reserved2;
    uint32_t aio_flags, aio_resfd;
};
struct aio_ring { unsigned id, nr, head, tail, magic, compat_features, incompat_features, header_length; };
enum { PREAD = 0, PWRITE = 1, FSYNC = 2, FDSYNC = 3, POLL = 5, NOOP = 6, PREADV = 7, PWRITEV = 8 };
#define RESFD 1
#define BAD ((void *)16)

static const char *ename(int e)
{
    switch (e) {
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case EINTR: return "EINTR";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ESPIPE: return "ESPIPE";
    default: {
        static char buf[32];
        snprintf(buf, sizeof buf, "errno %d", e);
        return buf;
    }
    }
}

#define SHOW(label, expr) do { errno = 0; long r_ = (long)(expr); \
    if (r_ < 0) printf("%s: -1 %s\n", label, ename(errno)); else printf("%s: %ld\n", label, r_); } while (0)

static long io_setup(unsigned nr, aio_context_t *ctx) { return syscall(SYS_io_setup, nr, ctx); }
static long io_destroy(aio_context_t ctx) { return syscall(SYS_io_destroy, ctx); }
static long io_submit(aio_context_t ctx, long n, struct iocb **v) { return syscall(SYS_io_submit, ctx, n, v); }
static long io_getevents(aio_context_t ctx, long min, long max, struct io_event *ev, struct timespec *ts)
{
    return syscall(SYS_io_getevents, ctx, min, max, ev, ts);
}

static struct iocb make(int op, int fd, void *buf, size_t n, long long off, uint64_t data)
{
    struct iocb cb;
    memset(&cb, 0, sizeof cb);
    cb.aio_lio_opcode = op;
    cb.aio_fildes = fd;
    cb.aio_buf = (uintptr_t)buf;
    cb.aio_nbytes = n;
    cb.aio_offset = off;
    cb.aio_data = data;
    return cb;
}

static void show_events(struct io_event *ev, long n, struct iocb **cbs, int ncbs)
{
    for (long i = 0; i < n; i++) {
        int which = -1;
        for (int j = 0; j < ncbs; j++)
            if (ev[i].obj == (uintptr_t)cbs[j])
                which = j;
        printf("  event data %llu, iocb #%d, res %lld%s%s\n", (unsigned long long)ev[i].data, which,
               (long long)ev[i].res, ev[i].res < 0 ? " " : "", ev[i].res < 0 ? ename((int)-ev[i].res) : "");
    }
}

static volatile sig_atomic_t alarms;
static void on_alarm(int sig) { alarms++; }

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    aio_context_t ctx = 0;
    SHOW("io_setup 0 events", io_setup(0, &ctx));
    SHOW("io_setup bad pointer", io_setup(8, BAD));
    ctx = 12345;
    SHOW("io_setup with *ctxp set", io_setup(8, &ctx));
    ctx = 0;
    SHOW("io_setup 8", io_setup(8, &ctx));
    struct aio_ring *ring = (struct aio_ring *)ctx;
    printf("ring: magic %#x, header %u, nr >= 16 %s, head %u tail %u\n", ring->magic, ring->header_length,
           ring->nr >= 16 ? "yes" : "no", ring->head, ring->tail);

    int fd = open("data", O_RDWR | O_CREAT | O_TRUNC, 0644);
    char out[] = "hello, aio world\n";
    char in[64] = "", in2[8] = "", in3[8] = "";
    struct iocb w = make(PWRITE, fd, out, sizeof out - 1, 0, 1);
    struct iocb s = make(FSYNC, fd, NULL, 0, 0, 2);
    struct iocb r = make(PREAD, fd, in, 5, 7, 3);
    struct iovec iov[2] = {{in2, 3}, {in3, 4}};
    struct iocb rv = make(PREADV, fd, iov, 2, 0, 4);
    struct iocb *cbs[] = {&w, &r, &rv, &s};
    SHOW("io_submit 3", io_submit(ctx, 3, cbs));
    printf("ring now holds %u events\n", (ring->tail - ring->head) % ring->nr);
    struct io_event ev[8];
    long n = io_getevents(ctx, 1, 8, ev, NULL);
    printf("io_getevents: %ld\n", n);
    show_events(ev, n, cbs, 4);
    printf("read \"%s\", preadv \"%.3s\" \"%.4s\"\n", in, in2, in3);
    printf("ring head == tail: %s\n", ring->head == ring->tail ? "yes" : "no");
    SHOW("io_submit fsync", io_submit(ctx, 1, &cbs[3]));      /* Linux completes it from a workqueue */
    n = io_getevents(ctx, 1, 8, ev, NULL);
    printf("io_getevents: %ld\n", n);
    show_events(ev, n, cbs, 4);

    struct timespec zero = {0, 0}, short_wait = {0, 50 * 1000 * 1000};
    SHOW("io_getevents, none, timeout 0", io_getevents(ctx, 1, 8, ev, &zero));
    SHOW("io_getevents, none, 50 ms", io_getevents(ctx, 1, 8, ev, &short_wait));
    SHOW("io_getevents min_nr > nr", io_getevents(ctx, 3, 2, ev, &zero));
    SHOW("io_getevents min_nr < 0", io_getevents(ctx, -1, 2, ev, &zero));
    SHOW("io_getevents bad timeout", io_getevents(ctx, 1, 2, ev, BAD));
    SHOW("io_getevents bad context", io_getevents(999, 1, 2, ev, &zero));

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 0}, {0, 100000}};
    setitimer(ITIMER_REAL, &it, NULL);
    SHOW("io_getevents waiting, SIGALRM", io_getevents(ctx, 1, 8, ev, NULL));
    printf("alarms %d\n", alarms);

    /* errors at submission, and results of failed operations */
    int ro = open("data", O_RDONLY);
    struct iocb wro = make(PWRITE, ro, out, 4, 0, 10);
    struct iocb badfd = make(PREAD, 999, in, 4, 0, 11);
    struct iocb noop = make(NOOP, fd, NULL, 0, 0, 12);
    struct iocb resv = make(PREAD, fd, in, 4, 0, 13);
    resv.aio_reserved2 = 1;
    struct iocb negoff = make(PREAD, fd, in, 4, -1, 14);
    struct iocb syncbuf = make(FSYNC, fd, in, 0, 0, 15);
    struct iocb flags = make(PREAD, fd, in, 4, 0, 16);
    flags.aio_rw_flags = 0x40000000;
    struct iocb efault = make(PREAD, fd, BAD, 4, 0, 17);
    struct iocb *one[1];
    struct iocb *errs[] = {&wro, &badfd, &noop, &resv, &negoff, &syncbuf, &flags};
    const char *names[] = {"pwrite on a read-only fd", "a bad fd", "IOCB_CMD_NOOP", "aio_reserved2 set",
                           "a negative offset", "fsync with a buffer", "unknown aio_rw_flags"};
    for (int i = 0; i < 7; i++) {
        one[0] = errs[i];
        char label[80];
        snprintf(label, sizeof label, "io_submit %s", names[i]);
        SHOW(label, io_submit(ctx, 1, one));
    }
    one[0] = &efault;
    SHOW("io_submit a read into a bad buffer", io_submit(ctx, 1, one));
    n = io_getevents(ctx, 1, 8, ev, &zero);
    printf("its event: %ld\n", n);
    show_events(ev, n, one, 1);
    struct iocb *mixed[] = {&r, &badfd, &r};
    SHOW("io_submit good, bad, good", io_submit(ctx, 3, mixed));
    n = io_getevents(ctx, 0, 8, ev, &zero);
    printf("events: %ld\n", n);
    SHOW("io_submit nr < 0", io_submit(ctx, -1, cbs));
    SHOW("io_submit 0", io_submit(ctx, 0, cbs));
    SHOW("io_submit bad context", io_submit(999, 1, cbs));
    SHOW("io_submit bad array", io_submit(ctx, 1, BAD));
    struct iocb *badptr[] = {BAD};
    SHOW("io_submit bad iocb", io_submit(ctx, 1, badptr));

    /* IOCB_FLAG_RESFD */
    int efd = eventfd(0, 0);
    struct iocb notify = make(PREAD, fd, in, 5, 0, 20);
    notify.aio_flags = RESFD;
    notify.aio_resfd = efd;
    one[0] = &notify;
    SHOW("io_submit with an eventfd", io_submit(ctx, 1, one));
    uint64_t count = 0;
    SHOW("read the eventfd", read(efd, &count, 8));
    printf("eventfd count %llu\n", (unsigned long long)count);
    notify.aio_resfd = fd;
    SHOW("io_submit with RESFD not an eventfd", io_submit(ctx, 1, one));
    n = io_getevents(ctx, 1, 8, ev, &zero);
    printf("events: %ld\n", n);

    /* io_pgetevents with a mask that blocks SIGALRM: the alarm does not end it; io_cancel; io_destroy */
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGALRM);
    struct { const sigset_t *sigmask; size_t size; } aio_sig = {&block, 8};
    alarms = 0;
    it.it_value.tv_usec = 20000;
    setitimer(ITIMER_REAL, &it, NULL);
    SHOW("io_pgetevents, SIGALRM blocked, 100 ms", syscall(SYS_io_pgetevents, ctx, 1, 8, ev,
                                                          &(struct timespec){0, 100000000}, &aio_sig));
    printf("alarms during it %d\n", alarms);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    printf("alarms after %d\n", alarms);
    aio_sig.size = 4;
    SHOW("io_pgetevents sigsetsize 4", syscall(SYS_io_pgetevents, ctx, 1, 8, ev, &zero, &aio_sig));
    struct io_event result;
    one[0] = &r;
    io_submit(ctx, 1, one);
    SHOW("io_cancel a completed request", syscall(SYS_io_cancel, ctx, &r, &result));
    r.aio_key = 7;
    SHOW("io_cancel a wrong key", syscall(SYS_io_cancel, ctx, &r, &result));
    SHOW("io_cancel bad context", syscall(SYS_io_cancel, 999, &r, &result));
    pid_t pid = fork();
    if (pid == 0) {
        SHOW("child: io_submit on the parent's context", io_submit(ctx, 1, one));
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    SHOW("io_destroy", io_destroy(ctx));
    SHOW("io_destroy again", io_destroy(ctx));
    SHOW("io_getevents after io_destroy", io_getevents(ctx, 0, 1, ev, &zero));
    return 0;
}
