/* interrupt: blocking calls meeting a signal, as signal(7) "Interruption of system calls and library functions by
 * signal handlers" lists them.
 *
 * Each case blocks in one call while SIGALRM arrives, from a timer (setitimer, 50 ms) or from another process
 * (kill). With a handler, the call is restarted (SA_RESTART, and the call is one Linux restarts) or fails with EINTR;
 * an ignored or a blocked signal interrupts nothing. Afterwards something makes the call complete: the restarted
 * call, or the same call made again after EINTR, returns what it waited for.
 *
 * The order of events never depends on timing. A "completer" child, forked per case, waits until every thread of
 * the caller sleeps (its /proc/PID/task/N/stat: 'S', twice in a row), sends the signal (kill), waits until the
 * handler has run (it writes to a pipe), waits until the caller sleeps again and then completes the call (writes to
 * the pipe, releases the lock, lets the waited-for child exit...). It is also the case's guard: if the handler does
 * not run or the call does not return within GUARD_MS, it says so on stderr and kills the caller.
 *
 * Usage: interrupt SECTION (pipe, socket, timeo, tty, wait, lock, futex, poll, sleep, ipc, nohandler, stop). Prints
 * deterministic facts only.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/select.h>
#include <sys/sem.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GUARD_MS 5000
#define TIMER_US 50000

/* linux/futex.h (not in musl's headers) */
#define FUTEX_WAIT 0
#define FUTEX_WAKE 1
#define FUTEX_WAIT_BITSET 9
#define FUTEX_BITSET_MATCH_ANY 0xffffffff

enum source { TIMER, KILL };
enum meets { HANDLER, IGNORED, BLOCKED };

struct call {
    const char *name;
    void (*setup)(void);            /* in the caller, before the completer is forked */
    long (*block)(void);            /* the blocking call: its result, errno set when -1 */
    void (*complete)(void);         /* in the completer: what makes the call return */
    void (*cleanup)(void);
    void (*detail)(long result);    /* prints more about the first result (NULL: nothing) */
    int again;                      /* after EINTR the call is made again and completes */
};

static volatile sig_atomic_t handled;
static int ack_w = -1;

static void on_alarm(int signo)
{
    (void)signo;
    handled++;
    if (ack_w >= 0)
        write(ack_w, "a", 1);
}

static const char *err_name(int e)
{
    switch (e) {
    case EINTR: return "EINTR";
    case EAGAIN: return "EAGAIN";
    case EALREADY: return "EALREADY";
    case ECHILD: return "ECHILD";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EINVAL: return "EINVAL";
    case EBADF: return "EBADF";
    case ENOSYS: return "ENOSYS";
    default: return "E?";
    }
}

static void fail(const char *what)
{
    printf("\nsetup failed: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* -- the completer ----------------------------------------------------------------------------------------- */
static int all_sleeping(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *dir = opendir(path);
    if (!dir)
        return 0;
    int threads = 0, sleeping = 0;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (e->d_name[0] == '.')
            continue;
        char stat_path[128], buf[512];
        snprintf(stat_path, sizeof stat_path, "%s/%s/stat", path, e->d_name);
        int fd = open(stat_path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
            continue;
        buf[n] = 0;
        char *end = strrchr(buf, ')');
        if (!end)
            continue;
        threads++;
        sleeping += end[2] == 'S';
    }
    closedir(dir);
    return threads && sleeping == threads;
}

static void guard_kill(pid_t parent, const char *why)
{
    fprintf(stderr, "guard: %s within %d ms: killing the caller\n", why, GUARD_MS);
    kill(parent, SIGKILL);
    _exit(1);
}

static void wait_sleeping(pid_t pid)
{
    for (int waited = 0; waited < GUARD_MS; waited += 2) {
        if (all_sleeping(pid)) {
            usleep(3000);
            if (all_sleeping(pid))
                return;
        }
        usleep(2000);
    }
    guard_kill(pid, "the caller did not block");
}

static int readable_within(int fd, int ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    int r;
    do
        r = poll(&p, 1, ms);
    while (r < 0 && errno == EINTR);
    return r == 1;
}

static void run_completer(pid_t parent, enum source source, enum meets meets, void (*complete)(void), int ack,
                          int done)
{
    wait_sleeping(parent);
    if (source == KILL)
        kill(parent, SIGALRM);
    if (meets == HANDLER) {
        if (!readable_within(ack, GUARD_MS))
            guard_kill(parent, "the handler did not run");
    } else {
        usleep(2 * TIMER_US);
    }
    if (complete) {
        wait_sleeping(parent);
        complete();
    }
    if (!readable_within(done, GUARD_MS))
        guard_kill(parent, "the call did not return");
    _exit(0);
}

/* -- one case ---------------------------------------------------------------------------------------------- */
static pid_t completer;
static int done_w = -1;

static int pending_within(int ms)
{
    for (int waited = 0; waited <= ms; waited += 5) {
        sigset_t set;
        sigpending(&set);
        if (sigismember(&set, SIGALRM))
            return 1;
        usleep(5000);
    }
    return 0;
}

static void show(long r, int e)
{
    if (r < 0)
        printf("-1 %s", err_name(e));
    else
        printf("%ld", r);
}

static void run(const struct call *c, int flags, enum source source, enum meets meets)
{
    const char *how = meets == IGNORED ? "SIG_IGN" : meets == BLOCKED ? "blocked" : flags ? "SA_RESTART" : "no SA_RESTART";
    printf("%s, %s, %s: ", c->name, how, source == TIMER ? "timer" : "kill");
    fflush(stdout);
    if (c->setup)
        c->setup();
    handled = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = meets == IGNORED ? SIG_IGN : on_alarm;
    sa.sa_flags = flags;
    sigaction(SIGALRM, &sa, NULL);
    sigset_t alrm;
    sigemptyset(&alrm);
    sigaddset(&alrm, SIGALRM);
    if (meets == BLOCKED)
        sigprocmask(SIG_BLOCK, &alrm, NULL);
    int ack[2], done[2];
    if (pipe2(ack, O_CLOEXEC) || pipe2(done, O_CLOEXEC))
        fail("pipe2");
    pid_t parent = getpid();
    completer = fork();
    if (completer < 0)
        fail("fork");
    if (completer == 0) {
        close(ack[1]);
        close(done[1]);
        run_completer(parent, source, meets, c->complete, ack[0], done[0]);
    }
    close(ack[0]);
    close(done[0]);
    ack_w = ack[1];
    done_w = done[1];
    if (source == TIMER) {
        struct itimerval it = {{0, 0}, {0, TIMER_US}};
        setitimer(ITIMER_REAL, &it, NULL);
    }

    errno = 0;
    long r = c->block();
    int e = errno;
    if (r >= 0 && handled && c->complete)
        printf("restarted, ");
    show(r, e);
    if (c->detail)
        c->detail(r);
    if (meets == HANDLER)
        printf(", handler ran %d", handled);
    if (r < 0 && e == EINTR && c->again) {
        errno = 0;
        r = c->block();
        printf(", then ");
        show(r, errno);
    }
    if (meets == BLOCKED) {
        int pending = pending_within(1000);
        sigprocmask(SIG_UNBLOCK, &alrm, NULL);
        printf(", pending %s, handler ran %d once unblocked", pending ? "yes" : "no", handled);
    }
    printf("\n");

    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    close(done_w);
    int status;
    waitpid(completer, &status, 0);
    close(ack_w);
    ack_w = done_w = -1;
    signal(SIGALRM, SIG_IGN);
    if (c->cleanup)
        c->cleanup();
    if (!WIFEXITED(status) || WEXITSTATUS(status))
        printf("  completer: status %#x\n", status);
}

static void run_with_handler(const struct call *c)
{
    run(c, SA_RESTART, TIMER, HANDLER);
    run(c, SA_RESTART, KILL, HANDLER);
    run(c, 0, TIMER, HANDLER);
    run(c, 0, KILL, HANDLER);
}

static void run_without_handler(const struct call *c)
{
    run(c, 0, TIMER, IGNORED);
    run(c, 0, KILL, IGNORED);
    run(c, 0, TIMER, BLOCKED);
    run(c, 0, KILL, BLOCKED);
}

/* -- pipes ------------------------------------------------------------------------------------------------- */
static int pfd[2];
static char buf[1 << 18];
static long filled;

static void make_pipe(void)
{
    if (pipe2(pfd, O_CLOEXEC))
        fail("pipe2");
}

static void close_pipe(void)
{
    close(pfd[0]);
    close(pfd[1]);
}

static void fill_pipe(void)
{
    make_pipe();
    fcntl(pfd[1], F_SETFL, O_NONBLOCK);
    filled = 0;
    for (;;) {
        ssize_t n = write(pfd[1], buf, 4096);
        if (n <= 0)
            break;
        filled += n;
    }
    fcntl(pfd[1], F_SETFL, 0);
}

static void write_hello(void) { write(pfd[1], "hello", 5); }

static void drain_filled(void)
{
    for (long got = 0; got < filled;) {
        ssize_t n = read(pfd[0], buf, filled - got < 4096 ? filled - got : 4096);
        if (n <= 0)
            break;
        got += n;
    }
}

static long read_pipe(void) { return read(pfd[0], buf, 64); }

static long readv_pipe(void)
{
    struct iovec iov[2] = {{buf, 2}, {buf + 2, 62}};
    return readv(pfd[0], iov, 2);
}

static long write_full_pipe(void) { return write(pfd[1], buf, 100); }

static long write_big(void) { return write(pfd[1], buf, 200000); }

static const struct call pipe_calls[] = {
    {"read pipe", make_pipe, read_pipe, write_hello, close_pipe, NULL, 1},
    {"readv pipe", make_pipe, readv_pipe, write_hello, close_pipe, NULL, 1},
    {"write 100 bytes to a full pipe", fill_pipe, write_full_pipe, drain_filled, close_pipe, NULL, 1},
    {"write 200000 bytes to an empty pipe (partial)", make_pipe, write_big, NULL, close_pipe, NULL, 0},
};

/* -- sockets ----------------------------------------------------------------------------------------------- */
static int sv[2];
static int listener = -1, client = -1, queued = -1;
static struct sockaddr_un addr;
static socklen_t addr_len;

static void make_pair(void)
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
        fail("socketpair");
}

static void close_pair(void)
{
    close(sv[0]);
    close(sv[1]);
}

static void fill_pair(void)
{
    make_pair();
    filled = 0;
    for (;;) {
        ssize_t n = send(sv[0], buf, 4096, MSG_DONTWAIT);
        if (n <= 0)
            break;
        filled += n;
    }
}

static void send_hello(void) { send(sv[1], "hello", 5, 0); }

static void drain_pair(void)
{
    for (long got = 0; got < filled;) {
        ssize_t n = recv(sv[1], buf, filled - got < 4096 ? filled - got : 4096, 0);
        if (n <= 0)
            break;
        got += n;
    }
}

static void make_listener(int backlog)
{
    listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    int len = snprintf(addr.sun_path + 1, sizeof addr.sun_path - 1, "hermipy-interrupt-%d", (int)getpid());
    addr_len = offsetof(struct sockaddr_un, sun_path) + 1 + len;
    if (listener < 0 || bind(listener, (struct sockaddr *)&addr, addr_len) || listen(listener, backlog))
        fail("listener");
}

static void setup_accept(void) { make_listener(8); }

static void connect_one(void)
{
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    connect(s, (struct sockaddr *)&addr, addr_len);
}

static long do_accept(void)
{
    int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0)
        close(fd);
    return fd >= 0 ? 0 : -1;
}

static void setup_connect(void)
{
    make_listener(0);                  /* one connection waits in the queue, the next connect blocks */
    queued = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    client = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(queued, (struct sockaddr *)&addr, addr_len))
        fail("first connect");
}

static void accept_one(void)
{
    int fd = accept(listener, NULL, NULL);
    if (fd >= 0)
        close(fd);
}

static long do_connect(void) { return connect(client, (struct sockaddr *)&addr, addr_len); }

static void close_sockets(void)
{
    int *fds[] = {&listener, &client, &queued};
    for (int i = 0; i < 3; i++) {
        if (*fds[i] >= 0)
            close(*fds[i]);
        *fds[i] = -1;
    }
}

static long read_pair(void) { return read(sv[0], buf, 64); }
static long recv_pair(void) { return recv(sv[0], buf, 64, 0); }

static long recvmsg_pair(void)
{
    struct iovec iov = {buf, 64};
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    return recvmsg(sv[0], &msg, 0);
}

static long send_full(void) { return send(sv[0], buf, 100, 0); }
static long write_full(void) { return write(sv[0], buf, 100); }

static const struct call socket_calls[] = {
    {"read socket", make_pair, read_pair, send_hello, close_pair, NULL, 1},
    {"recv", make_pair, recv_pair, send_hello, close_pair, NULL, 1},
    {"recvmsg", make_pair, recvmsg_pair, send_hello, close_pair, NULL, 1},
    {"send 100 bytes to a full socket", fill_pair, send_full, drain_pair, close_pair, NULL, 1},
    {"write 100 bytes to a full socket", fill_pair, write_full, drain_pair, close_pair, NULL, 1},
    {"accept", setup_accept, do_accept, connect_one, close_sockets, NULL, 1},
    {"connect (listener's backlog full)", setup_connect, do_connect, accept_one, close_sockets, NULL, 1},
};

/* Sockets with SO_RCVTIMEO / SO_SNDTIMEO (5 s): never restarted. */
static void set_timeo(int fd, int option, long usec)
{
    struct timeval tv = {usec / 1000000, usec % 1000000};
    if (setsockopt(fd, SOL_SOCKET, option, &tv, sizeof tv))
        fail("setsockopt");
}

static void pair_rcvtimeo(void) { make_pair(); set_timeo(sv[0], SO_RCVTIMEO, 5000000); }
static void full_pair_sndtimeo(void) { fill_pair(); set_timeo(sv[0], SO_SNDTIMEO, 5000000); }
static void accept_rcvtimeo(void) { setup_accept(); set_timeo(listener, SO_RCVTIMEO, 5000000); }
static void connect_sndtimeo(void) { setup_connect(); set_timeo(client, SO_SNDTIMEO, 5000000); }

static const struct call timeo_calls[] = {
    {"read socket (SO_RCVTIMEO 5 s)", pair_rcvtimeo, read_pair, send_hello, close_pair, NULL, 1},
    {"recv (SO_RCVTIMEO 5 s)", pair_rcvtimeo, recv_pair, send_hello, close_pair, NULL, 1},
    {"recvmsg (SO_RCVTIMEO 5 s)", pair_rcvtimeo, recvmsg_pair, send_hello, close_pair, NULL, 1},
    {"send to a full socket (SO_SNDTIMEO 5 s)", full_pair_sndtimeo, send_full, drain_pair, close_pair, NULL, 1},
    {"write to a full socket (SO_SNDTIMEO 5 s)", full_pair_sndtimeo, write_full, drain_pair, close_pair, NULL, 1},
    {"accept (SO_RCVTIMEO 5 s)", accept_rcvtimeo, do_accept, connect_one, close_sockets, NULL, 1},
    {"connect (SO_SNDTIMEO 5 s)", connect_sndtimeo, do_connect, accept_one, close_sockets, NULL, 1},
};

static void timeouts_expire(void)
{
    struct timespec t0, t1;
    make_pair();
    set_timeo(sv[0], SO_RCVTIMEO, 30000);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    errno = 0;
    long r = read(sv[0], buf, 64);
    printf("read socket, SO_RCVTIMEO 30 ms, no data: ");
    show(r, errno);
    r = recv(sv[0], buf, 64, 0);
    printf("; recv: ");
    show(r, errno);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    printf("; both took >= 60 ms: %s\n", ms >= 60 ? "yes" : "no");
    close_pair();
}

/* -- a terminal -------------------------------------------------------------------------------------------- */
static int master = -1, slave = -1;

static void open_pty(void)
{
    master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0 || grantpt(master) || unlockpt(master))
        fail("posix_openpt");
    slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0)
        fail("open the pty slave");
}

static void close_pty(void)
{
    close(slave);
    close(master);
}

static void type_line(void) { write(master, "hello\n", 6); }
static long read_tty(void) { return read(slave, buf, 64); }

static const struct call tty_calls[] = {
    {"read pty slave (canonical)", open_pty, read_tty, type_line, close_pty, NULL, 1},
};

/* -- waiting for a child ----------------------------------------------------------------------------------- */
static pid_t waitee;
static int release[2] = {-1, -1};

static void fork_waitee(void)
{
    if (pipe2(release, O_CLOEXEC))
        fail("pipe2");
    waitee = fork();
    if (waitee == 0) {
        char c;
        close(release[1]);
        read(release[0], &c, 1);
        _exit(7);
    }
    close(release[0]);
}

static void let_waitee_exit(void) { write(release[1], "x", 1); }

static void reap_waitee(void)
{
    close(release[1]);
    waitpid(waitee, NULL, 0);          /* after a wait that never completed */
}

static long do_wait4(void)
{
    int status = 0;
    pid_t pid = wait4(waitee, &status, 0, NULL);
    if (pid < 0)
        return -1;
    return pid == waitee && WIFEXITED(status) ? WEXITSTATUS(status) : 1000;
}

static long do_waitid(void)
{
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid(P_PID, waitee, &info, WEXITED))
        return -1;
    return info.si_pid == waitee && info.si_code == CLD_EXITED ? info.si_status : 1000;
}

static const struct call wait_calls[] = {
    {"wait4 (the child's exit status)", fork_waitee, do_wait4, let_waitee_exit, reap_waitee, NULL, 1},
    {"waitid (the child's exit status)", fork_waitee, do_waitid, let_waitee_exit, reap_waitee, NULL, 1},
};

/* -- locks ------------------------------------------------------------------------------------------------- */
static char lock_path[64];
static int lock_fd = -1;
static pid_t holder;

enum lock_kind { FLOCK, POSIX_LOCK, OFD_LOCK };

static struct flock whole_file(void)
{
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    return fl;
}

static void take_lock(int fd, enum lock_kind kind)
{
    struct flock fl = whole_file();
    int r = kind == FLOCK ? flock(fd, LOCK_EX) : fcntl(fd, kind == POSIX_LOCK ? F_SETLK : F_OFD_SETLK, &fl);
    if (r)
        fail("lock");
}

/* Another process holds the lock until the completer releases it (its release pipe). */
static void hold_lock(enum lock_kind kind)
{
    snprintf(lock_path, sizeof lock_path, "/tmp/hermipy-interrupt-lock-%d", (int)getpid());
    lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    int ready[2];
    if (lock_fd < 0 || pipe2(ready, O_CLOEXEC) || pipe2(release, O_CLOEXEC))
        fail("lock setup");
    holder = fork();
    if (holder == 0) {
        char c;
        int fd = open(lock_path, O_RDWR | O_CLOEXEC);
        take_lock(fd, kind);
        write(ready[1], "L", 1);
        close(release[1]);
        read(release[0], &c, 1);
        _exit(0);
    }
    char c;
    close(ready[1]);
    read(ready[0], &c, 1);
    close(ready[0]);
    close(release[0]);
}

static void hold_flock(void) { hold_lock(FLOCK); }
static void hold_posix(void) { hold_lock(POSIX_LOCK); }
static void hold_ofd(void) { hold_lock(OFD_LOCK); }

static void release_lock(void) { write(release[1], "x", 1); }

static void drop_lock(void)
{
    close(release[1]);
    waitpid(holder, NULL, 0);
    close(lock_fd);
    unlink(lock_path);
}

static long do_flock(void) { return flock(lock_fd, LOCK_EX); }

static long do_setlkw(void)
{
    struct flock fl = whole_file();
    return fcntl(lock_fd, F_SETLKW, &fl);
}

static long do_ofd_setlkw(void)
{
    struct flock fl = whole_file();
    return fcntl(lock_fd, F_OFD_SETLKW, &fl);
}

static const struct call lock_calls[] = {
    {"flock LOCK_EX", hold_flock, do_flock, release_lock, drop_lock, NULL, 1},
    {"fcntl F_SETLKW", hold_posix, do_setlkw, release_lock, drop_lock, NULL, 1},
    {"fcntl F_OFD_SETLKW", hold_ofd, do_ofd_setlkw, release_lock, drop_lock, NULL, 1},
};

/* -- futex ------------------------------------------------------------------------------------------------- */
/* The word is private memory of the caller's (hermipy copies MAP_SHARED memory at fork), so a thread of its own
 * changes and wakes it when the completer writes to the thread's pipe. The thread blocks SIGALRM: the caller's
 * thread takes the signal. */
static uint32_t word;
static int waker_pipe[2] = {-1, -1};
static pthread_t waker;

static void *wake_word(void *unused)
{
    char c;
    (void)unused;
    if (read(waker_pipe[0], &c, 1) == 1) {
        __atomic_store_n(&word, 1, __ATOMIC_SEQ_CST);
        syscall(SYS_futex, &word, FUTEX_WAKE, 1, NULL, NULL, 0);
    }
    return NULL;
}

static void start_waker(void)
{
    word = 0;
    if (pipe2(waker_pipe, O_CLOEXEC))
        fail("pipe2");
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    if (pthread_create(&waker, NULL, wake_word, NULL))
        fail("pthread_create");
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void tell_waker(void) { write(waker_pipe[1], "w", 1); }

static void join_waker(void)
{
    close(waker_pipe[1]);
    pthread_join(waker, NULL);
    close(waker_pipe[0]);
}

/* Woken, or the word already changed (EAGAIN): both are the wait completing. */
static long futex_result(long r)
{
    return r == 0 || (errno == EAGAIN && __atomic_load_n(&word, __ATOMIC_SEQ_CST) == 1) ? 0 : -1;
}

static long futex_wait(void) { return futex_result(syscall(SYS_futex, &word, FUTEX_WAIT, 0, NULL, NULL, 0)); }

static long futex_wait_timed(void)
{
    struct timespec ts = {5, 0};
    return futex_result(syscall(SYS_futex, &word, FUTEX_WAIT, 0, &ts, NULL, 0));
}

static long futex_wait_bitset(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += 5;
    return futex_result(syscall(SYS_futex, &word, FUTEX_WAIT_BITSET, 0, &ts, NULL, FUTEX_BITSET_MATCH_ANY));
}

static const struct call futex_calls[] = {
    {"futex FUTEX_WAIT", start_waker, futex_wait, tell_waker, join_waker, NULL, 1},
    {"futex FUTEX_WAIT (timeout 5 s)", start_waker, futex_wait_timed, tell_waker, join_waker, NULL, 1},
    {"futex FUTEX_WAIT_BITSET (absolute timeout)", start_waker, futex_wait_bitset, tell_waker, join_waker, NULL, 1},
};

/* -- poll, select, epoll: never restarted ------------------------------------------------------------------ */
static int epfd = -1;
static struct timeval select_tv;

static long do_poll(void)
{
    struct pollfd p = {pfd[0], POLLIN, 0};
    return poll(&p, 1, -1);
}

static struct timespec ppoll_ts;

static void setup_ppoll(void)
{
    make_pipe();
    ppoll_ts.tv_sec = 5;
    ppoll_ts.tv_nsec = 0;
}

static long do_ppoll(void)
{
    struct pollfd p = {pfd[0], POLLIN, 0};
    return syscall(SYS_ppoll, &p, 1, &ppoll_ts, NULL, 8);      /* glibc's ppoll passes a copy of the timeout */
}

static void ppoll_left(long r)
{
    (void)r;
    long long ns = ppoll_ts.tv_sec * 1000000000LL + ppoll_ts.tv_nsec;
    printf(" (timespec counted down: %s)", ns > 0 && ns < 5000000000LL ? "yes" : "no");
}

static void setup_select(void)
{
    make_pipe();
    select_tv.tv_sec = 5;
    select_tv.tv_usec = 0;
}

static long do_select(void)
{
    fd_set in;
    FD_ZERO(&in);
    FD_SET(pfd[0], &in);
    return syscall(SYS_select, pfd[0] + 1, &in, NULL, NULL, &select_tv);
}

static void select_left(long r)
{
    (void)r;
    long us = select_tv.tv_sec * 1000000L + select_tv.tv_usec;
    printf(" (timeval counted down: %s)", us > 0 && us < 5000000 ? "yes" : "no");
}

static long do_pselect(void)
{
    fd_set in;
    FD_ZERO(&in);
    FD_SET(pfd[0], &in);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR2);
    return pselect(pfd[0] + 1, &in, NULL, NULL, NULL, &mask);
}

static void setup_epoll(void)
{
    make_pipe();
    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {EPOLLIN, {0}};
    if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, pfd[0], &ev))
        fail("epoll");
}

static void close_epoll(void)
{
    close(epfd);
    close_pipe();
}

static long do_epoll_wait(void)
{
    struct epoll_event ev;
    return epoll_wait(epfd, &ev, 1, -1);
}

static long do_epoll_pwait(void)
{
    struct epoll_event ev;
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR2);
    return epoll_pwait(epfd, &ev, 1, -1, &mask);
}

static const struct call poll_calls[] = {
    {"poll (no timeout)", make_pipe, do_poll, write_hello, close_pipe, NULL, 1},
    {"ppoll (timeout 5 s)", setup_ppoll, do_ppoll, write_hello, close_pipe, ppoll_left, 1},
    {"select (timeout 5 s)", setup_select, do_select, write_hello, close_pipe, select_left, 1},
    {"pselect (no timeout)", make_pipe, do_pselect, write_hello, close_pipe, NULL, 1},
    {"epoll_wait (no timeout)", setup_epoll, do_epoll_wait, write_hello, close_epoll, NULL, 1},
    {"epoll_pwait (no timeout)", setup_epoll, do_epoll_pwait, write_hello, close_epoll, NULL, 1},
};

/* -- sleeping and waiting for signals: never restarted ----------------------------------------------------- */
static struct timespec left;

static void sleep_left(long r)
{
    if (r == 0)
        return;
    long long ns = left.tv_sec * 1000000000LL + left.tv_nsec;
    printf(" (time left in (0, 5 s): %s)", ns > 0 && ns < 5000000000LL ? "yes" : "no");
}

static long do_nanosleep(void)
{
    struct timespec ts = {5, 0};
    left.tv_sec = left.tv_nsec = 0;
    return nanosleep(&ts, &left);
}

static long do_clock_nanosleep(void)
{
    struct timespec ts = {5, 0};
    left.tv_sec = left.tv_nsec = 0;
    int e = clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &left);
    errno = e;
    return e ? -1 : 0;
}

static long do_pause(void) { return pause(); }

static long do_sigsuspend(void)
{
    sigset_t mask;
    sigprocmask(SIG_BLOCK, NULL, &mask);
    return sigsuspend(&mask);
}

static void send_usr2(void) { kill(getppid(), SIGUSR2); }

static long do_sigtimedwait(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    struct timespec ts = {5, 0};
    return syscall(SYS_rt_sigtimedwait, &set, NULL, &ts, 8);     /* musl's sigtimedwait retries on EINTR */
}

static const struct call sleep_calls[] = {
    {"nanosleep 5 s", NULL, do_nanosleep, NULL, NULL, sleep_left, 0},
    {"clock_nanosleep 5 s", NULL, do_clock_nanosleep, NULL, NULL, sleep_left, 0},
    {"pause", NULL, do_pause, NULL, NULL, NULL, 0},
    {"sigsuspend", NULL, do_sigsuspend, NULL, NULL, NULL, 0},
    {"sigtimedwait SIGUSR2 (timeout 5 s)", NULL, do_sigtimedwait, send_usr2, NULL, NULL, 1},
};

/* -- System V IPC: semop/semtimedop never restart (-EINTR); msgrcv/msgsnd are EINTR after a handler, restarted
 * after a stop (-ERESTARTNOHAND). The objects are IPC_PRIVATE, removed by the cleanup. ------------------------ */
static int sem_id = -1, msq_id = -1;
struct small_msg { long mtype; char mtext[100]; };

static void make_sem(void)
{
    if ((sem_id = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600)) < 0)
        fail("semget");
}

static void remove_sem(void) { semctl(sem_id, 0, IPC_RMID); }

static long sem_down(void)
{
    struct sembuf op = {0, -1, 0};
    return semop(sem_id, &op, 1);
}

static long sem_down_timed(void)
{
    struct sembuf op = {0, -1, 0};
    struct timespec ts = {5, 0};
    return semtimedop(sem_id, &op, 1, &ts);
}

static void sem_up(void)
{
    struct sembuf op = {0, 1, 0};
    semop(sem_id, &op, 1);
}

static void make_queue(void)
{
    if ((msq_id = msgget(IPC_PRIVATE, IPC_CREAT | 0600)) < 0)
        fail("msgget");
}

/* A queue that holds one 100-byte message, holding it. */
static void make_full_queue(void)
{
    make_queue();
    struct msqid_ds ds;
    msgctl(msq_id, IPC_STAT, &ds);
    ds.msg_qbytes = 100;
    struct small_msg m = {1, "full"};
    if (msgctl(msq_id, IPC_SET, &ds) || msgsnd(msq_id, &m, sizeof m.mtext, 0))
        fail("filling a queue");
}

static void remove_queue(void) { msgctl(msq_id, IPC_RMID, NULL); }

static long msg_receive(void)
{
    struct small_msg m;
    return msgrcv(msq_id, &m, sizeof m.mtext, 0, 0);
}

static long msg_send(void)
{
    struct small_msg m = {2, "more"};
    return msgsnd(msq_id, &m, sizeof m.mtext, 0);
}

static void msg_post(void)
{
    struct small_msg m = {1, "hello"};
    msgsnd(msq_id, &m, 5, 0);
}

static void msg_take(void)
{
    struct small_msg m;
    msgrcv(msq_id, &m, sizeof m.mtext, 0, 0);
}

static const struct call ipc_calls[] = {
    {"semop", make_sem, sem_down, sem_up, remove_sem, NULL, 1},
    {"semtimedop (timeout 5 s)", make_sem, sem_down_timed, sem_up, remove_sem, NULL, 1},
    {"msgrcv", make_queue, msg_receive, msg_post, remove_queue, NULL, 1},
    {"msgsnd to a full queue", make_full_queue, msg_send, msg_take, remove_queue, NULL, 1},
};

/* -- no handler: an ignored or blocked signal interrupts nothing ------------------------------------------- */
static long short_nanosleep(void)
{
    struct timespec ts = {0, 300000000};
    return nanosleep(&ts, NULL);
}

static const struct call quiet_calls[] = {
    {"read pipe", make_pipe, read_pipe, write_hello, close_pipe, NULL, 1},
    {"recv (SO_RCVTIMEO 5 s)", pair_rcvtimeo, recv_pair, send_hello, close_pair, NULL, 1},
    {"accept", setup_accept, do_accept, connect_one, close_sockets, NULL, 1},
    {"wait4", fork_waitee, do_wait4, let_waitee_exit, reap_waitee, NULL, 1},
    {"flock LOCK_EX", hold_flock, do_flock, release_lock, drop_lock, NULL, 1},
    {"futex FUTEX_WAIT (timeout 5 s)", start_waker, futex_wait_timed, tell_waker, join_waker, NULL, 1},
    {"poll (no timeout)", make_pipe, do_poll, write_hello, close_pipe, NULL, 1},
    {"epoll_wait (no timeout)", setup_epoll, do_epoll_wait, write_hello, close_epoll, NULL, 1},
    {"nanosleep 300 ms", NULL, short_nanosleep, NULL, NULL, NULL, 0},
    {"sigtimedwait SIGUSR2 (timeout 5 s)", NULL, do_sigtimedwait, send_usr2, NULL, NULL, 1},
    {"semop", make_sem, sem_down, sem_up, remove_sem, NULL, 1},
    {"msgrcv", make_queue, msg_receive, msg_post, remove_queue, NULL, 1},
};

/* -- stopped and continued, no handler: signal(7) "Interruption of system calls and library functions by stop
 * signals". The completer stops the caller (SIGSTOP, or SIGTSTP whose action is the default: stop), waits until it
 * has stopped, continues it (SIGCONT) and completes the call once the caller sleeps again. Most calls go on as if
 * nothing happened; those that Linux fails with EINTR whenever a signal wakes them (epoll_wait, sigtimedwait,
 * socket calls with SO_RCVTIMEO/SO_SNDTIMEO...) fail with EINTR, a handler or not. The caller runs in a process
 * group of its own whose parent is in another group of the session, so that SIGTSTP stops it (Linux discards it
 * in an orphaned process group). ---------------------------------------------------------------------------- */
static char state_of(pid_t pid)
{
    char path[64], stat[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return '?';
    ssize_t n = read(fd, stat, sizeof stat - 1);
    close(fd);
    if (n <= 0)
        return '?';
    stat[n] = 0;
    char *end = strrchr(stat, ')');
    return end ? end[2] : '?';
}

static void stop_and_continue(pid_t parent, int stopsig, void (*complete)(void), int done)
{
    wait_sleeping(parent);
    kill(parent, stopsig);
    int waited = 0;
    while (state_of(parent) != 'T') {
        if ((waited += 2) > GUARD_MS)
            guard_kill(parent, "the caller did not stop");
        usleep(2000);
    }
    kill(parent, SIGCONT);
    if (complete) {
        wait_sleeping(parent);
        complete();
    }
    if (!readable_within(done, GUARD_MS))
        guard_kill(parent, "the call did not return");
    _exit(0);
}

static void run_stopped(const struct call *c, int stopsig)
{
    printf("%s, %s then SIGCONT: ", c->name, stopsig == SIGSTOP ? "SIGSTOP" : "SIGTSTP");
    fflush(stdout);
    if (c->setup)
        c->setup();
    int done[2];
    if (pipe2(done, O_CLOEXEC))
        fail("pipe2");
    pid_t parent = getpid();
    completer = fork();
    if (completer < 0)
        fail("fork");
    if (completer == 0) {
        close(done[1]);
        stop_and_continue(parent, stopsig, c->complete, done[0]);
    }
    close(done[0]);
    errno = 0;
    long r = c->block();
    int e = errno;
    if (r >= 0 && c->complete)
        printf("went on, ");
    show(r, e);
    if (c->detail)
        c->detail(r);
    if (r < 0 && e == EINTR && c->again) {
        errno = 0;
        r = c->block();
        printf(", then ");
        show(r, errno);
    }
    printf("\n");
    close(done[1]);
    int status;
    waitpid(completer, &status, 0);
    if (c->cleanup)
        c->cleanup();
    if (!WIFEXITED(status) || WEXITSTATUS(status))
        printf("  completer: status %#x\n", status);
}

static void run_stopped_both(const struct call *c)
{
    run_stopped(c, SIGSTOP);
    run_stopped(c, SIGTSTP);
}

static long do_sigwaitinfo(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    return syscall(SYS_rt_sigtimedwait, &set, NULL, NULL, 8);
}

static long sleep_300ms(void)
{
    struct timespec ts = {0, 300000000};
    return nanosleep(&ts, NULL);
}

static const struct call stop_calls[] = {
    {"read pipe", make_pipe, read_pipe, write_hello, close_pipe, NULL, 1},
    {"recv", make_pair, recv_pair, send_hello, close_pair, NULL, 1},
    {"recv (SO_RCVTIMEO 5 s)", pair_rcvtimeo, recv_pair, send_hello, close_pair, NULL, 1},
    {"send to a full socket (SO_SNDTIMEO 5 s)", full_pair_sndtimeo, send_full, drain_pair, close_pair, NULL, 1},
    {"accept (SO_RCVTIMEO 5 s)", accept_rcvtimeo, do_accept, connect_one, close_sockets, NULL, 1},
    {"wait4", fork_waitee, do_wait4, let_waitee_exit, reap_waitee, NULL, 1},
    {"futex FUTEX_WAIT (timeout 5 s)", start_waker, futex_wait_timed, tell_waker, join_waker, NULL, 1},
    {"poll (no timeout)", make_pipe, do_poll, write_hello, close_pipe, NULL, 1},
    {"pselect (no timeout)", make_pipe, do_pselect, write_hello, close_pipe, NULL, 1},
    {"epoll_wait (no timeout)", setup_epoll, do_epoll_wait, write_hello, close_epoll, NULL, 1},
    {"epoll_pwait (no timeout)", setup_epoll, do_epoll_pwait, write_hello, close_epoll, NULL, 1},
    {"nanosleep 300 ms", NULL, sleep_300ms, NULL, NULL, NULL, 0},
    {"sigtimedwait SIGUSR2 (timeout 5 s)", NULL, do_sigtimedwait, send_usr2, NULL, NULL, 1},
    {"sigwaitinfo SIGUSR2", NULL, do_sigwaitinfo, send_usr2, NULL, NULL, 1},
    {"semop", make_sem, sem_down, sem_up, remove_sem, NULL, 1},
    {"semtimedop (timeout 5 s)", make_sem, sem_down_timed, sem_up, remove_sem, NULL, 1},
    {"msgrcv", make_queue, msg_receive, msg_post, remove_queue, NULL, 1},
    {"msgsnd to a full queue", make_full_queue, msg_send, msg_take, remove_queue, NULL, 1},
};

/* The "stop" section: the caller in a process group of its own, its parent (in the group it was started in)
 * waiting for it. */
static int in_own_group(void (*section)(void))
{
    pid_t child = fork();
    if (child < 0)
        fail("fork");
    if (child == 0) {
        if (setpgid(0, 0))
            fail("setpgid");
        section();
        exit(0);
    }
    int status;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status)) {
        printf("caller: status %#x\n", status);
        return 1;
    }
    printf("done\n");
    return 0;
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void stop_section(void)
{
    for (size_t j = 0; j < COUNT(stop_calls); j++)
        run_stopped_both(&stop_calls[j]);
}

struct section {
    const char *name;
    const struct call *calls;
    size_t count;
    void (*runner)(const struct call *);
};

static const struct section sections[] = {
    {"pipe", pipe_calls, COUNT(pipe_calls), run_with_handler},
    {"socket", socket_calls, COUNT(socket_calls), run_with_handler},
    {"timeo", timeo_calls, COUNT(timeo_calls), run_with_handler},
    {"tty", tty_calls, COUNT(tty_calls), run_with_handler},
    {"wait", wait_calls, COUNT(wait_calls), run_with_handler},
    {"lock", lock_calls, COUNT(lock_calls), run_with_handler},
    {"futex", futex_calls, COUNT(futex_calls), run_with_handler},
    {"poll", poll_calls, COUNT(poll_calls), run_with_handler},
    {"sleep", sleep_calls, COUNT(sleep_calls), run_with_handler},
    {"ipc", ipc_calls, COUNT(ipc_calls), run_with_handler},
    {"nohandler", quiet_calls, COUNT(quiet_calls), run_without_handler},
};

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 2) {
        fprintf(stderr, "usage: interrupt SECTION\n");
        return 2;
    }
    sigset_t usr2;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    sigprocmask(SIG_BLOCK, &usr2, NULL);       /* sigtimedwait's signal; pselect/epoll_pwait keep it blocked */
    signal(SIGPIPE, SIG_IGN);
    if (!strcmp(argv[1], "stop"))
        return in_own_group(stop_section);
    for (size_t i = 0; i < COUNT(sections); i++) {
        if (strcmp(argv[1], sections[i].name))
            continue;
        if (!strcmp(argv[1], "timeo"))
            timeouts_expire();
        for (size_t j = 0; j < sections[i].count; j++)
            sections[i].runner(&sections[i].calls[j]);
        printf("done\n");
        return 0;
    }
    fprintf(stderr, "interrupt: no section %s\n", argv[1]);
    return 2;
}
