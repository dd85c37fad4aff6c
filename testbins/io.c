/* io: file-descriptor control -- dup/dup2/dup3, fcntl (fd flags, status flags, locks, pipe sizes), flock,
 * ioctl (ttys through a pty, ENOTTY elsewhere), pipes, sendfile, copy_file_range, fadvise, readahead,
 * poll/ppoll/select/pselect6. Runs in a fresh temporary directory; prints only facts and errno names. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static const char *ename(int e)
{
    switch (e) {
    case 0: return "0";
    case EINVAL: return "EINVAL";
    case EBADF: return "EBADF";
    case EFAULT: return "EFAULT";
    case EFBIG: return "EFBIG";
    case ENOTTY: return "ENOTTY";
    case EAGAIN: return "EAGAIN";
    case ESPIPE: return "ESPIPE";
    case EMFILE: return "EMFILE";
    case EINTR: return "EINTR";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case EISDIR: return "EISDIR";
    case EXDEV: return "EXDEV";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EPIPE: return "EPIPE";
    default: return "other";
    }
}

/* print "label: <value>" for a non-negative result, "label: -1 ENAME" otherwise */
#define SHOW(label, expr) do { errno = 0; long r_ = (long)(expr); \
    if (r_ < 0) printf("%s: -1 %s\n", label, ename(errno)); else printf("%s: %ld\n", label, r_); } while (0)
#define BAD ((void *)16)

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void section(const char *name) { printf("-- %s\n", name); }

static void test_pipes(void)
{
    section("pipes");
    int p[2];
    SHOW("pipe", pipe(p));
    SHOW("write 5", write(p[1], "hello", 5));
    int n = -1;
    SHOW("FIONREAD", ioctl(p[0], FIONREAD, &n));
    printf("FIONREAD bytes: %d\n", n);
    char buf[16] = {0};
    SHOW("read", read(p[0], buf, sizeof buf));
    printf("read back: %s\n", buf);
    SHOW("F_GETFL read end", fcntl(p[0], F_GETFL));
    SHOW("F_GETFL write end", fcntl(p[1], F_GETFL));
    SHOW("F_GETFD", fcntl(p[0], F_GETFD));
    SHOW("lseek pipe", lseek(p[0], 0, SEEK_SET));
    SHOW("read on write end", read(p[1], buf, 1));
    SHOW("write on read end", write(p[0], "x", 1));
    SHOW("F_GETPIPE_SZ", fcntl(p[0], F_GETPIPE_SZ));
    SHOW("F_SETPIPE_SZ 8192", fcntl(p[0], F_SETPIPE_SZ, 8192));
    SHOW("F_GETPIPE_SZ after", fcntl(p[1], F_GETPIPE_SZ));
    int dot = open(".", O_RDONLY);
    SHOW("F_GETPIPE_SZ on directory", fcntl(dot, F_GETPIPE_SZ));
    close(dot);
    close(p[0]);
    close(p[1]);

    int q[2];
    SHOW("pipe2 O_CLOEXEC|O_NONBLOCK", pipe2(q, O_CLOEXEC | O_NONBLOCK));
    SHOW("F_GETFD", fcntl(q[0], F_GETFD));
    SHOW("F_GETFL read end", fcntl(q[0], F_GETFL));
    SHOW("read empty nonblocking", read(q[0], buf, 1));
    SHOW("pipe2 bad flags", pipe2(q, O_APPEND));
    SHOW("pipe bad pointer", syscall(SYS_pipe, BAD));
    int lowest = dup(0);
    printf("bad pipe used no fds: %d\n", lowest == q[1] + 1);
    close(lowest);
    /* fill a nonblocking pipe completely: EAGAIN, then writing end's POLLOUT disappears */
    char big[4096];
    memset(big, 'z', sizeof big);
    long total = 0, w;
    while ((w = write(q[1], big, sizeof big)) > 0)
        total += w;
    printf("filled pipe: %ld bytes, then %s\n", total, ename(errno));
    close(q[0]);
    SHOW("write after reader closed (SIGPIPE ignored)", (signal(SIGPIPE, SIG_IGN), write(q[1], "x", 1)));
    signal(SIGPIPE, SIG_DFL);
    close(q[1]);
}

static void test_dup(void)
{
    section("dup");
    int fd = open("dupfile", O_RDWR | O_CREAT | O_TRUNC, 0644);
    printf("open: %d\n", fd >= 0);
    int d = dup(fd);
    printf("dup is lowest free: %d\n", d == fd + 1);
    write(fd, "abcdef", 6);
    printf("dup shares offset: %d\n", lseek(d, 0, SEEK_CUR) == 6);
    SHOW("dup bad fd", dup(999));
    SHOW("dup2 to 10", dup2(fd, 10));
    SHOW("dup2 same fd", dup2(fd, fd));
    SHOW("dup2 same bad fd", dup2(777, 777));
    SHOW("dup2 bad old", dup2(999, 11));
    SHOW("dup2 new -1", dup2(fd, -1));
    SHOW("dup2 new too large", dup2(fd, 1 << 30));
    SHOW("F_GETFD after dup2", fcntl(10, F_GETFD));
    SHOW("dup3 O_CLOEXEC to 11", dup3(fd, 11, O_CLOEXEC));
    SHOW("F_GETFD after dup3", fcntl(11, F_GETFD));
    SHOW("dup3 same fd", syscall(SYS_dup3, fd, fd, 0));
    SHOW("dup3 bad flags", syscall(SYS_dup3, fd, 12, O_NONBLOCK));
    SHOW("dup3 bad old", dup3(999, 12, 0));
    SHOW("dup2 over open fd 11", dup2(d, 11));
    SHOW("F_GETFD of replaced fd", fcntl(11, F_GETFD));
    SHOW("F_DUPFD 20", fcntl(fd, F_DUPFD, 20));
    SHOW("F_DUPFD 20 again", fcntl(fd, F_DUPFD, 20));
    SHOW("F_DUPFD_CLOEXEC 30", fcntl(fd, F_DUPFD_CLOEXEC, 30));
    SHOW("F_GETFD 30", fcntl(30, F_GETFD));
    SHOW("F_DUPFD huge", fcntl(fd, F_DUPFD, 1 << 30));
    SHOW("F_DUPFD negative", fcntl(fd, F_DUPFD, -1));
    SHOW("F_SETFD 1", fcntl(20, F_SETFD, FD_CLOEXEC));
    SHOW("F_GETFD", fcntl(20, F_GETFD));
    SHOW("F_SETFD 0", fcntl(20, F_SETFD, 0));
    SHOW("F_GETFD", fcntl(20, F_GETFD));
    SHOW("FIOCLEX", ioctl(20, FIOCLEX));
    SHOW("F_GETFD", fcntl(20, F_GETFD));
    SHOW("FIONCLEX", ioctl(20, FIONCLEX));
    SHOW("F_GETFD", fcntl(20, F_GETFD));
    SHOW("F_DUPFD_QUERY same file", fcntl(fd, 1027, 20));
    SHOW("F_DUPFD_QUERY other file", fcntl(fd, 1027, 0));
    SHOW("F_DUPFD_QUERY bad fd", fcntl(fd, 1027, 999));
    SHOW("close 10", close(10));
    SHOW("close 10 again", close(10));
    close(11); close(20); close(21); close(30); close(d);

    /* dup2 of stdout into a file, then back */
    fflush(stdout);
    int saved = dup(1);
    int out = open("stdout.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out, 1);
    close(out);
    printf("this line went to the file\n");
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    char buf[64] = {0};
    int in = open("stdout.txt", O_RDONLY);
    read(in, buf, sizeof buf - 1);
    close(in);
    printf("file holds: %s", buf);
    close(fd);
}

static void test_fcntl_flags(void)
{
    section("fcntl flags");
    int fd = open("flags", O_RDWR | O_CREAT | O_APPEND, 0644);
    SHOW("F_GETFL O_RDWR|O_APPEND", fcntl(fd, F_GETFL));
    SHOW("F_SETFL O_NONBLOCK", fcntl(fd, F_SETFL, O_NONBLOCK));
    SHOW("F_GETFL", fcntl(fd, F_GETFL));
    SHOW("F_SETFL ignores access mode and creation flags", fcntl(fd, F_SETFL, O_WRONLY | O_TRUNC | O_APPEND));
    SHOW("F_GETFL", fcntl(fd, F_GETFL));
    write(fd, "12345", 5);
    lseek(fd, 0, SEEK_SET);
    write(fd, "67", 2);
    SHOW("O_APPEND appends (size)", lseek(fd, 0, SEEK_END));
    SHOW("FIONBIO on", ioctl(fd, FIONBIO, &(int){1}));
    SHOW("F_GETFL", fcntl(fd, F_GETFL));
    SHOW("FIONBIO off", ioctl(fd, FIONBIO, &(int){0}));
    SHOW("F_GETFL", fcntl(fd, F_GETFL));
    SHOW("FIONBIO bad pointer", ioctl(fd, FIONBIO, BAD));
    int ro = open("flags", O_RDONLY | O_CLOEXEC);
    SHOW("F_GETFL O_RDONLY|O_CLOEXEC", fcntl(ro, F_GETFL));
    SHOW("F_GETFD", fcntl(ro, F_GETFD));
    int path = open("flags", O_PATH);
    SHOW("F_GETFL O_PATH", fcntl(path, F_GETFL));
    SHOW("F_SETFL on O_PATH", fcntl(path, F_SETFL, O_NONBLOCK));
    SHOW("F_GETLK on O_PATH", fcntl(path, F_GETLK, &(struct flock){.l_type = F_RDLCK}));
    SHOW("F_DUPFD on O_PATH", fcntl(path, F_DUPFD, 40));
    close(40);
    SHOW("unknown cmd", fcntl(fd, 0x7777));
    SHOW("bad fd", fcntl(999, F_GETFL));
    SHOW("F_GETOWN", fcntl(fd, F_GETOWN));
    SHOW("F_GETSIG", fcntl(fd, F_GETSIG));
    SHOW("F_GETLEASE", fcntl(ro, F_GETLEASE));
    int dir = open(".", O_RDONLY | O_DIRECTORY);
    SHOW("F_GETFL directory", fcntl(dir, F_GETFL));
    close(dir);
    close(path);
    close(ro);
    close(fd);
}

static void test_locks(void)
{
    section("locks");
    int a = open("lockfile", O_RDWR | O_CREAT | O_TRUNC, 0644);
    int b = open("lockfile", O_RDWR);
    write(a, "0123456789", 10);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 5};
    SHOW("F_SETLK write lock", fcntl(a, F_SETLK, &fl));
    struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
    SHOW("F_GETLK own process", fcntl(b, F_GETLK, &q));
    printf("own lock does not conflict: %d\n", q.l_type == F_UNLCK);
    struct flock o = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 5, .l_len = 5};
    SHOW("F_OFD_SETLK", fcntl(a, F_OFD_SETLK, &o));
    struct flock g = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    SHOW("F_OFD_GETLK from other description", fcntl(b, F_OFD_GETLK, &g));
    printf("conflict: type %s start %ld len %ld pid is ours: %d\n", g.l_type == F_WRLCK ? "F_WRLCK" : "other",
           (long)g.l_start, (long)g.l_len, g.l_pid == getpid());
    struct flock c = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 6, .l_len = 1};
    SHOW("F_OFD_SETLK conflicting", fcntl(b, F_OFD_SETLK, &c));
    struct flock bad_pid = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1, .l_pid = 5};
    SHOW("F_OFD_SETLK l_pid != 0", fcntl(b, F_OFD_SETLK, &bad_pid));
    struct flock bad = {.l_type = 99, .l_whence = SEEK_SET};
    SHOW("F_SETLK bad type", fcntl(a, F_SETLK, &bad));
    struct flock badw = {.l_type = F_RDLCK, .l_whence = 7};
    SHOW("F_SETLK bad whence", fcntl(a, F_SETLK, &badw));
    SHOW("F_GETLK bad pointer", fcntl(a, F_GETLK, BAD));
    SHOW("F_SETLK bad pointer", fcntl(a, F_SETLK, BAD));
    int ro = open("lockfile", O_RDONLY);
    struct flock wl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 20, .l_len = 1};
    SHOW("F_SETLK write lock on read-only fd", fcntl(ro, F_SETLK, &wl));
    struct flock un = {.l_type = F_UNLCK, .l_whence = SEEK_SET};
    SHOW("F_OFD_SETLK unlock", fcntl(a, F_OFD_SETLK, &un));
    SHOW("F_SETLKW unlock", fcntl(a, F_SETLKW, &un));

    SHOW("flock LOCK_EX", flock(a, LOCK_EX));
    SHOW("flock LOCK_EX|LOCK_NB other description", flock(b, LOCK_EX | LOCK_NB));
    SHOW("flock LOCK_SH|LOCK_NB other description", flock(b, LOCK_SH | LOCK_NB));
    int d = dup(a);
    SHOW("flock LOCK_UN through dup", flock(d, LOCK_UN));
    SHOW("flock LOCK_EX|LOCK_NB now", flock(b, LOCK_EX | LOCK_NB));
    SHOW("flock bad op", flock(a, 0));
    SHOW("flock bad fd", flock(999, LOCK_SH));
    close(d); close(ro); close(b); close(a);

    struct flock whole = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    int e = open("lockfile", O_RDWR), e2 = dup(e);
    SHOW("F_SETLK the whole file", fcntl(e, F_SETLK, &whole));
    close(e2);                 /* closing any fd of the file drops the process's POSIX locks on it */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0)
        _exit(fcntl(open("lockfile", O_RDWR), F_SETLK, &whole) == 0 ? 0 : 1);
    int status;
    waitpid(pid, &status, 0);
    printf("after closing a dup of it, another process can lock the file: %d\n", WEXITSTATUS(status) == 0);
    close(e);
}

static void test_ioctl(void)
{
    section("ioctl");
    int fd = open("ioctlfile", O_RDWR | O_CREAT | O_TRUNC, 0644);
    write(fd, "0123456789", 10);
    lseek(fd, 3, SEEK_SET);
    struct termios t;
    struct winsize ws;
    int n = -1;
    SHOW("TCGETS on file", ioctl(fd, TCGETS, &t));
    SHOW("isatty(file)", isatty(fd));
    SHOW("TIOCGWINSZ on file", ioctl(fd, TIOCGWINSZ, &ws));
    SHOW("TCSETS bad pointer on file", ioctl(fd, TCSETS, BAD));
    SHOW("FIONREAD on file", ioctl(fd, FIONREAD, &n));
    printf("FIONREAD file bytes: %d\n", n);
    SHOW("unknown request", ioctl(fd, 0x1234, 0));
    SHOW("bad fd", ioctl(999, TCGETS, &t));
    int p[2];
    pipe(p);
    SHOW("TCGETS on pipe", ioctl(p[0], TCGETS, &t));
    SHOW("TIOCGPGRP on pipe", ioctl(p[0], TIOCGPGRP, &n));
    close(p[0]); close(p[1]);
    int null = open("/dev/null", O_RDWR);
    SHOW("isatty(/dev/null)", isatty(null));
    close(null);

    int m = posix_openpt(O_RDWR | O_NOCTTY);
    printf("posix_openpt: %d\n", m >= 0);
    if (m < 0) return;
    SHOW("grantpt", grantpt(m));
    SHOW("unlockpt", unlockpt(m));
    char *name = ptsname(m);
    printf("ptsname under /dev/pts/: %d\n", name && strncmp(name, "/dev/pts/", 9) == 0);
    int s = open(name, O_RDWR | O_NOCTTY);
    printf("open slave: %d\n", s >= 0);
    SHOW("isatty(slave)", isatty(s));
    SHOW("isatty(master)", isatty(m));
    SHOW("TCGETS", tcgetattr(s, &t));
    printf("ICANON and ECHO on: %d\n", (t.c_lflag & ICANON) && (t.c_lflag & ECHO));
    cfmakeraw(&t);
    SHOW("TCSETS raw", tcsetattr(s, TCSANOW, &t));
    struct termios t2;
    tcgetattr(s, &t2);
    printf("raw now: %d\n", !(t2.c_lflag & ICANON) && !(t2.c_lflag & ECHO));
    SHOW("TCSETSF", tcsetattr(s, TCSAFLUSH, &t2));
    SHOW("TCSETSW", tcsetattr(s, TCSADRAIN, &t2));
    SHOW("TCGETS bad pointer", ioctl(s, TCGETS, BAD));
    SHOW("TCSETS bad pointer", ioctl(s, TCSETS, BAD));
    struct winsize set = {.ws_row = 24, .ws_col = 80, .ws_xpixel = 0, .ws_ypixel = 0};
    SHOW("TIOCSWINSZ", ioctl(m, TIOCSWINSZ, &set));
    memset(&ws, 0, sizeof ws);
    SHOW("TIOCGWINSZ on slave", ioctl(s, TIOCGWINSZ, &ws));
    printf("winsize %dx%d\n", ws.ws_row, ws.ws_col);
    SHOW("TIOCGWINSZ bad pointer", ioctl(s, TIOCGWINSZ, BAD));
    SHOW("tcdrain", tcdrain(s));
    SHOW("tcflush", tcflush(s, TCIOFLUSH));
    SHOW("tcflush bad queue", tcflush(s, 77));
    SHOW("TIOCGPGRP (not our controlling tty)", ioctl(s, TIOCGPGRP, &n));
    SHOW("write slave", write(s, "ping", 4));
    char buf[8] = {0};
    struct pollfd mp = {.fd = m, .events = POLLIN};
    SHOW("poll master for input", poll(&mp, 1, 5000));
    SHOW("FIONREAD master", (ioctl(m, FIONREAD, &n), n));
    SHOW("read master", read(m, buf, sizeof buf));
    printf("master read: %s\n", buf);
    SHOW("write master", write(m, "pong", 4));
    memset(buf, 0, sizeof buf);
    SHOW("read slave", read(s, buf, 4));
    printf("slave read: %s\n", buf);
    struct pollfd pf = {.fd = m, .events = POLLIN};
    SHOW("poll master (nothing pending)", poll(&pf, 1, 0));
    close(s);
    close(m);
    close(fd);
}

static void test_copies(void)
{
    section("sendfile/copy_file_range");
    int src = open("src", O_RDWR | O_CREAT | O_TRUNC, 0644);
    write(src, "The quick brown fox jumps over the lazy dog", 43);
    int dst = open("dst", O_RDWR | O_CREAT | O_TRUNC, 0644);
    off_t off = 4;
    SHOW("sendfile with offset", sendfile(dst, src, &off, 11));
    printf("offset now %ld, src position %ld\n", (long)off, (long)lseek(src, 0, SEEK_CUR));
    lseek(src, 0, SEEK_SET);
    SHOW("sendfile from position", sendfile(dst, src, NULL, 4));
    printf("src position %ld\n", (long)lseek(src, 0, SEEK_CUR));
    SHOW("sendfile bad offset pointer", sendfile(dst, src, BAD, 4));
    int wo = open("src", O_WRONLY);
    SHOW("sendfile from write-only", sendfile(dst, wo, NULL, 4));
    int ro = open("src", O_RDONLY);
    SHOW("sendfile to read-only", sendfile(ro, src, NULL, 4));
    SHOW("sendfile bad fd", sendfile(dst, 999, NULL, 4));
    off_t neg = -1;
    SHOW("sendfile negative offset", sendfile(dst, src, &neg, 4));
    loff_t in = 16, outo = 100;
    SHOW("copy_file_range with offsets", copy_file_range(src, &in, dst, &outo, 5, 0));
    printf("offsets now %ld %ld\n", (long)in, (long)outo);
    SHOW("copy_file_range flags", copy_file_range(src, &in, dst, &outo, 5, 1));
    SHOW("copy_file_range to read-only", copy_file_range(src, NULL, ro, NULL, 5, 0));
    SHOW("copy_file_range bad fd", copy_file_range(999, NULL, dst, NULL, 5, 0));
    SHOW("copy_file_range bad offset", copy_file_range(src, BAD, dst, NULL, 5, 0));
    int dir = open(".", O_RDONLY);
    SHOW("copy_file_range from directory", copy_file_range(dir, NULL, dst, NULL, 5, 0));
    close(dir);
    char buf[128] = {0};
    pread(dst, buf, 127, 0);
    printf("dst prefix: %.15s\n", buf);
    pread(dst, buf, 5, 100);
    printf("dst at 100: %.5s\n", buf);
    SHOW("dst size", lseek(dst, 0, SEEK_END));

    section("fadvise/readahead");
    SHOW("fadvise SEQUENTIAL", syscall(SYS_fadvise64, src, 0, 0, POSIX_FADV_SEQUENTIAL));
    SHOW("fadvise bad advice", syscall(SYS_fadvise64, src, 0, 0, 99));
    SHOW("fadvise negative len", syscall(SYS_fadvise64, src, 0, -1, POSIX_FADV_NORMAL));
    int p[2];
    pipe(p);
    SHOW("fadvise pipe", syscall(SYS_fadvise64, p[0], 0, 0, POSIX_FADV_NORMAL));
    SHOW("fadvise bad fd", syscall(SYS_fadvise64, 999, 0, 0, POSIX_FADV_NORMAL));
    SHOW("readahead", readahead(src, 0, 4096));
    SHOW("readahead pipe", readahead(p[0], 0, 10));
    SHOW("readahead write-only", readahead(wo, 0, 10));
    close(p[0]); close(p[1]);
    close(wo); close(ro); close(src); close(dst);
}

static volatile int usr1_seen;
static void on_usr1(int sig) { (void)sig; usr1_seen++; }

static void test_poll(void)
{
    section("poll");
    int p[2];
    pipe(p);
    struct pollfd f[4] = {{.fd = p[0], .events = POLLIN}, {.fd = p[1], .events = POLLOUT},
                          {.fd = -1, .events = POLLIN}, {.fd = 200, .events = POLLIN}};
    SHOW("poll 2 fds, nothing to read", poll(f, 2, 0));
    printf("revents %#x %#x\n", f[0].revents, f[1].revents);
    f[2].revents = 0x55;
    SHOW("poll with negative fd and closed fd", poll(f, 4, 1000));
    printf("revents %#x %#x %#x %#x\n", f[0].revents, f[1].revents, f[2].revents, f[3].revents);
    write(p[1], "x", 1);
    SHOW("poll after write", poll(f, 2, -1));
    printf("revents %#x %#x\n", f[0].revents, f[1].revents);
    struct pollfd same[2] = {{.fd = p[0], .events = POLLIN}, {.fd = p[0], .events = POLLOUT}};
    SHOW("poll same fd twice", poll(same, 2, 0));
    printf("revents %#x %#x\n", same[0].revents, same[1].revents);
    double t0 = now();
    struct pollfd w = {.fd = p[1], .events = POLLIN};
    SHOW("poll timeout 60ms", poll(&w, 1, 60));
    printf("waited at least 60ms: %d\n", now() - t0 >= 0.059);
    SHOW("poll no fds 10ms", poll(NULL, 0, 10));
    SHOW("poll bad pointer", poll(BAD, 1, 0));
    SHOW("poll too many fds", syscall(SYS_poll, f, 1 << 24, 0));
    close(p[1]);
    SHOW("poll after writer closed", poll(f, 1, 0));
    printf("revents %#x\n", f[0].revents);
    char c;
    read(p[0], &c, 1);
    SHOW("poll after draining", poll(f, 1, 0));
    printf("revents %#x\n", f[0].revents);
    close(p[0]);

    section("ppoll");
    pipe(p);
    struct pollfd r = {.fd = p[0], .events = POLLIN};
    struct timespec ts = {0, 0};
    SHOW("ppoll zero timeout", ppoll(&r, 1, &ts, NULL));
    ts.tv_nsec = 1000000000;
    SHOW("ppoll bad timespec", syscall(SYS_ppoll, &r, 1, &ts, NULL, 8));
    ts.tv_sec = -1; ts.tv_nsec = 0;
    SHOW("ppoll negative timespec", syscall(SYS_ppoll, &r, 1, &ts, NULL, 8));
    struct timespec left = {0, 30000000};
    t0 = now();
    SHOW("ppoll 30ms", syscall(SYS_ppoll, &r, 1, &left, NULL, 8));
    printf("waited: %d, time left written: %d\n", now() - t0 >= 0.029, left.tv_sec == 0 && left.tv_nsec == 0);
    struct timespec plenty = {5, 0};
    struct pollfd wr = {.fd = p[1], .events = POLLOUT};
    SHOW("ppoll ready at once", syscall(SYS_ppoll, &wr, 1, &plenty, NULL, 8));
    printf("time left shrank a little: %d\n", plenty.tv_sec == 4 && plenty.tv_nsec > 0);
    sigset_t set;
    sigemptyset(&set);
    SHOW("ppoll bad sigsetsize", syscall(SYS_ppoll, &r, 1, &ts, &set, 4));
    SHOW("ppoll bad timespec pointer", syscall(SYS_ppoll, &r, 1, BAD, NULL, 8));
    signal(SIGUSR1, on_usr1);
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, &old);
    raise(SIGUSR1);
    printf("pending, not delivered: %d\n", usr1_seen == 0);
    struct timespec t1 = {1, 0};
    SHOW("ppoll unblocking a pending signal", ppoll(&r, 1, &t1, &old));
    printf("handler ran: %d\n", usr1_seen);
    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    printf("mask restored (SIGUSR1 blocked): %d\n", sigismember(&cur, SIGUSR1));
    raise(SIGUSR1);
    SHOW("ppoll with a signal pending but an fd ready", ppoll(&wr, 1, &t1, &old));
    printf("handler ran: %d\n", usr1_seen);
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("handler ran after unblocking: %d\n", usr1_seen);

    section("select");
    fd_set rs, ws, es;
    FD_ZERO(&rs); FD_ZERO(&ws); FD_ZERO(&es);
    FD_SET(p[0], &rs); FD_SET(p[1], &ws); FD_SET(p[0], &es);
    struct timeval tv = {0, 0};
    SHOW("select nothing to read", select(p[1] + 1, &rs, &ws, &es, &tv));
    printf("read %d write %d except %d\n", FD_ISSET(p[0], &rs), FD_ISSET(p[1], &ws), FD_ISSET(p[0], &es));
    write(p[1], "y", 1);
    FD_ZERO(&rs); FD_ZERO(&ws);
    FD_SET(p[0], &rs); FD_SET(p[1], &ws);
    SHOW("select after write", select(p[1] + 1, &rs, &ws, NULL, NULL));
    printf("read %d write %d\n", FD_ISSET(p[0], &rs), FD_ISSET(p[1], &ws));
    FD_ZERO(&rs);
    FD_SET(p[0], &rs);
    SHOW("select nfds too small to see the fd", select(p[0], &rs, NULL, NULL, &tv));
    FD_ZERO(&rs);
    FD_SET(150, &rs);
    SHOW("select closed fd", select(151, &rs, NULL, NULL, &tv));
    SHOW("select negative nfds", select(-1, NULL, NULL, NULL, &tv));
    tv.tv_usec = 2000000;
    SHOW("select bad timeval", syscall(SYS_select, 1, NULL, NULL, NULL, &tv));
    SHOW("select bad timeval pointer", syscall(SYS_select, 1, NULL, NULL, NULL, BAD));
    SHOW("select bad set pointer", select(p[0] + 1, BAD, NULL, NULL, NULL));
    tv.tv_sec = 0; tv.tv_usec = 40000;
    FD_ZERO(&rs);
    FD_SET(p[1], &rs);
    t0 = now();
    SHOW("select 40ms", syscall(SYS_select, p[1] + 1, &rs, NULL, NULL, &tv));
    printf("waited: %d, timeval now %ld.%06ld, set cleared: %d\n", now() - t0 >= 0.039, (long)tv.tv_sec,
           (long)tv.tv_usec, !FD_ISSET(p[1], &rs));
    SHOW("select no fds 10ms", select(0, NULL, NULL, NULL, &(struct timeval){0, 10000}));
    SHOW("select huge nfds", select(100000, NULL, NULL, NULL, &(struct timeval){0, 0}));

    section("pselect6");
    FD_ZERO(&rs);
    FD_SET(p[0], &rs);
    struct timespec pts = {1, 0};
    SHOW("pselect ready", pselect(p[0] + 1, &rs, NULL, NULL, &pts, NULL));
    printf("read %d\n", FD_ISSET(p[0], &rs));
    read(p[0], &c, 1);
    sigprocmask(SIG_BLOCK, &block, &old);
    raise(SIGUSR1);
    FD_ZERO(&rs);
    FD_SET(p[0], &rs);
    SHOW("pselect unblocking a pending signal", pselect(p[0] + 1, &rs, NULL, NULL, &pts, &old));
    printf("handler ran: %d\n", usr1_seen);
    sigprocmask(SIG_SETMASK, &old, NULL);
    struct { void *ss; size_t len; } sm = {&old, 4};
    SHOW("pselect6 bad sigsetsize", syscall(SYS_pselect6, p[0] + 1, &rs, NULL, NULL, &pts, &sm));
    SHOW("pselect6 bad sigmask struct", syscall(SYS_pselect6, p[0] + 1, &rs, NULL, NULL, &pts, BAD));
    struct timespec badts = {0, -5};
    SHOW("pselect6 bad timespec", syscall(SYS_pselect6, 0, NULL, NULL, NULL, &badts, NULL));
    close(p[0]); close(p[1]);
}

static volatile int xfsz_signals, xcpu_signals;
static void on_xcpu(int sig) { (void)sig; xcpu_signals++; }
static void on_xfsz(int sig) { (void)sig; xfsz_signals++; }

static void test_fsize(void)
{
    section("RLIMIT_FSIZE");                 /* in a child: the limit stays with it */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, on_xfsz);
        struct rlimit r = {4096, 4096};
        SHOW("setrlimit RLIMIT_FSIZE 4096", setrlimit(RLIMIT_FSIZE, &r));
        static char block[8192];
        int fd = open("fsizefile", O_CREAT | O_RDWR | O_TRUNC, 0644);
        SHOW("write 8192 bytes", write(fd, block, sizeof block));
        SHOW("write past the limit", write(fd, block, 10));
        SHOW("ftruncate past the limit", ftruncate(fd, 10000));
        SHOW("pwrite below the limit", pwrite(fd, block, 10, 0));
        printf("SIGXFSZ handled %d times\n", xfsz_signals);
        signal(SIGXFSZ, SIG_DFL);
        fflush(stdout);
        write(fd, block, 10);                /* the default action: the process ends (core) */
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    printf("then killed by signal %d\n", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    unlink("fsizefile");

    section("RLIMIT_CPU");
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        signal(SIGXCPU, on_xcpu);
        struct rlimit r = {1, 60};
        SHOW("setrlimit RLIMIT_CPU 1 s", setrlimit(RLIMIT_CPU, &r));
        time_t give_up = time(NULL) + 20;
        while (!xcpu_signals && time(NULL) < give_up)
            ;                                /* computes until the soft limit's SIGXCPU */
        printf("SIGXCPU after a second of CPU time: %d\n", xcpu_signals);
        _exit(0);
    }
    waitpid(pid, &status, 0);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_pipes();
    test_dup();
    test_fcntl_flags();
    test_locks();
    test_ioctl();
    test_copies();
    test_poll();
    test_fsize();
    return 0;
}
