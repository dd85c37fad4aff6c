/* compat: what the compatibility sweep (tests/sweep.py) found Debian's programs relying on -- close_range
 * (CPython's subprocess, lsof, ssh), one read(2) far larger than IOV_MAX pages (file(1), lz4), SIGPIPE on a
 * write to a pipe with no reader (`yes | head`), mlock* (gpg, pinentry), get_mempolicy and set_mempolicy
 * (libnuma in ps, memusagestat),
 * membarrier. Runs in a fresh temporary directory; prints only facts and errno names. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_mlock2
#define SYS_mlock2 325
#endif
#ifndef SYS_membarrier
#define SYS_membarrier 324
#endif
#ifndef SYS_set_mempolicy
#define SYS_set_mempolicy 238
#endif
#ifndef SYS_get_mempolicy
#define SYS_get_mempolicy 239
#endif
#define CLOSE_RANGE_CLOEXEC_ (1U << 2)

static const char *ename(int e)
{
    switch (e) {
    case 0: return "0";
    case EINVAL: return "EINVAL";
    case EBADF: return "EBADF";
    case EFAULT: return "EFAULT";
    case EPIPE: return "EPIPE";
    case ENOMEM: return "ENOMEM";
    case EPERM: return "EPERM";
    default: return "other";
    }
}

#define SHOW(label, expr) do { errno = 0; long r_ = (long)(expr); \
    if (r_ < 0) printf("%s: -1 %s\n", label, ename(errno)); else printf("%s: %ld\n", label, r_); } while (0)

static void section(const char *name) { printf("-- %s\n", name); fflush(stdout); }

static void test_close_range(void)
{
    section("close_range");
    int fds[6];
    for (int i = 0; i < 6; i++)
        fds[i] = open(".", O_RDONLY | O_DIRECTORY);
    printf("fds: %d..%d\n", fds[0], fds[5]);
    SHOW("close 2..3 of them", syscall(SYS_close_range, fds[2], fds[3], 0));
    SHOW("fd 2 after", fcntl(fds[2], F_GETFD));
    SHOW("fd 3 after", fcntl(fds[3], F_GETFD));
    SHOW("fd 4 after", fcntl(fds[4], F_GETFD));
    SHOW("cloexec 4..~0", syscall(SYS_close_range, fds[4], ~0U, CLOSE_RANGE_CLOEXEC_));
    SHOW("fd 4 flags", fcntl(fds[4], F_GETFD));
    SHOW("fd 5 flags", fcntl(fds[5], F_GETFD));
    SHOW("first > last", syscall(SYS_close_range, 10, 9, 0));
    SHOW("unknown flag", syscall(SYS_close_range, fds[0], fds[1], 1));
    SHOW("nothing open there", syscall(SYS_close_range, 900, 1000, 0));
    SHOW("close the rest", syscall(SYS_close_range, fds[0], ~0U, 0));
    SHOW("fd 0 after", fcntl(fds[0], F_GETFD));
    SHOW("fd 5 after", fcntl(fds[5], F_GETFD));
    SHOW("stdout still open", fcntl(1, F_GETFD));
}

static void test_big_reads(void)
{
    section("big reads");
    int fd = open("small", O_CREAT | O_RDWR | O_TRUNC, 0600);
    char text[3000];
    for (int i = 0; i < (int)sizeof text; i++)
        text[i] = 'a' + i % 26;
    write(fd, text, sizeof text);
    size_t big = 12 << 20;                        /* 3072 pages: three times IOV_MAX */
    char *buf = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    SHOW("read 12 MiB of a small file", pread(fd, buf, big, 0));
    lseek(fd, 0, SEEK_SET);
    SHOW("read(2) 12 MiB", read(fd, buf + 1, big - 1));
    printf("same bytes: %d\n", memcmp(buf + 1, text, sizeof text) == 0);
    struct iovec iov[2] = {{buf, 5}, {buf + 4096, big - 8192}};
    lseek(fd, 0, SEEK_SET);
    SHOW("readv 5 + 12 MiB", readv(fd, iov, 2));
    SHOW("preadv at 2990", preadv(fd, iov, 2, 2990));
    int big_fd = open("large", O_CREAT | O_RDWR | O_TRUNC, 0600);
    for (size_t i = 0; i < big; i++)
        buf[i] = (char)(i * 7 + i / 4096);
    SHOW("write 12 MiB", write(big_fd, buf, big));
    char *back = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    lseek(big_fd, 0, SEEK_SET);
    SHOW("read 12 MiB back", read(big_fd, back + 3, big - 3));
    printf("same bytes: %d\n", memcmp(back + 3, buf, big - 3) == 0);
    munmap(back + (8 << 20), 4 << 20);            /* the tail of the buffer is gone: a short read */
    lseek(big_fd, 0, SEEK_SET);
    SHOW("read into a buffer unmapped after 8 MiB", read(big_fd, back, big));
    SHOW("file offset after it", lseek(big_fd, 0, SEEK_CUR));
    int p[2];
    pipe(p);
    write(p[1], "pipe data", 9);
    SHOW("read 12 MiB from a pipe", read(p[0], buf, big));
    close(p[0]);
    close(p[1]);
    munmap(buf, big);
    munmap(back, 8 << 20);
    close(fd);
    close(big_fd);
}

static volatile sig_atomic_t caught;
static void on_sigpipe(int sig) { caught = sig; }

static void test_sigpipe(void)
{
    section("sigpipe");
    int p[2];
    pipe(p);
    close(p[0]);
    signal(SIGPIPE, SIG_IGN);
    SHOW("write, SIGPIPE ignored", write(p[1], "x", 1));
    signal(SIGPIPE, on_sigpipe);
    SHOW("write, SIGPIPE caught", write(p[1], "x", 1));
    printf("handler saw signal %d\n", (int)caught);
    caught = 0;
    struct iovec iov = {"y", 1};
    SHOW("writev, SIGPIPE caught", writev(p[1], &iov, 1));
    printf("handler saw signal %d\n", (int)caught);
    caught = 0;
    int source = open("/proc/self/exe", O_RDONLY);
    SHOW("sendfile, SIGPIPE caught", sendfile(p[1], source, NULL, 16));
    printf("handler saw signal %d\n", (int)caught);
    close(source);
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGPIPE);
    sigprocmask(SIG_BLOCK, &block, &old);
    SHOW("write, SIGPIPE blocked", write(p[1], "x", 1));
    sigset_t pending;
    sigpending(&pending);
    printf("pending afterwards: %d\n", sigismember(&pending, SIGPIPE));
    signal(SIGPIPE, SIG_IGN);                       /* discards the pending one */
    sigprocmask(SIG_SETMASK, &old, NULL);
    signal(SIGPIPE, SIG_DFL);
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        write(p[1], "x", 1);
        _exit(0);                                   /* not reached: SIGPIPE's default action */
    }
    int status;
    waitpid(child, &status, 0);
    printf("child: signaled %d, signal %d\n", WIFSIGNALED(status), WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    close(p[1]);
}

static void test_memory_policy(void)
{
    section("mlock");
    size_t len = 64 << 10;
    char *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char vec[16];
    SHOW("mlock 64 KiB", mlock(buf + 100, len - 200));
    mincore(buf, len, vec);
    printf("resident after mlock: %d %d\n", vec[0], vec[15]);
    SHOW("munlock", munlock(buf, len));
    SHOW("mlock2 ONFAULT", syscall(SYS_mlock2, buf, len, 1));
    SHOW("mlock2 bad flag", syscall(SYS_mlock2, buf, len, 2));
    munmap(buf + len / 2, len / 2);
    SHOW("mlock over a hole", mlock(buf, len));
    SHOW("munlock over a hole", munlock(buf, len));
    SHOW("mlock nothing", mlock(buf + len, 0));
    SHOW("mlockall 0", mlockall(0));
    SHOW("mlockall ONFAULT alone", mlockall(4));
    SHOW("mlockall bad flag", mlockall(8 | MCL_CURRENT));
    SHOW("mlockall current", mlockall(MCL_CURRENT));
    SHOW("munlockall", munlockall());
    munmap(buf, len / 2);

    section("get_mempolicy");
    int mode = -1;
    unsigned long mask[2] = {~0UL, ~0UL};
    SHOW("default", syscall(SYS_get_mempolicy, &mode, mask, 128, NULL, 0));
    printf("mode %d, mask %lx %lx\n", mode, mask[0], mask[1]);
    SHOW("mems allowed", syscall(SYS_get_mempolicy, &mode, mask, 64, NULL, 4));
    printf("mode %d, mask %lx %lx\n", mode, mask[0], mask[1]);
    SHOW("node of an address", syscall(SYS_get_mempolicy, &mode, NULL, 0, &mode, 3));
    printf("node %d\n", mode);
    SHOW("node without an address", syscall(SYS_get_mempolicy, &mode, NULL, 0, NULL, 1));
    SHOW("address without MPOL_F_ADDR", syscall(SYS_get_mempolicy, &mode, NULL, 0, &mode, 0));
    SHOW("unmapped address", syscall(SYS_get_mempolicy, &mode, NULL, 0, (void *)16, 2));
    SHOW("mems allowed with node", syscall(SYS_get_mempolicy, &mode, NULL, 0, NULL, 5));
    SHOW("unknown flag", syscall(SYS_get_mempolicy, &mode, NULL, 0, NULL, 8));
    SHOW("maxnode 0 with a mask", syscall(SYS_get_mempolicy, &mode, mask, 0, NULL, 0));
}

static void show_policy(void)
{
    int mode = -1;
    unsigned long mask[2] = {~0UL, ~0UL};
    long r = syscall(SYS_get_mempolicy, &mode, mask, 128, NULL, 0);
    printf("  policy: %ld mode %#x mask %lx %lx\n", r, mode, mask[0], mask[1]);
    mode = -1;
    SHOW("  interleave node", syscall(SYS_get_mempolicy, &mode, NULL, 0, NULL, 1));
}

static void test_set_mempolicy(void)
{
    section("set_mempolicy");
    unsigned long node0 = 1, node1 = 2, both = 3, none = 0;
    char label[64];
    for (int mode = 0; mode < 8; mode++) {
        sprintf(label, "mode %d, node 0", mode);
        SHOW(label, syscall(SYS_set_mempolicy, mode, &node0, 64));
        show_policy();
        sprintf(label, "mode %d, no node", mode);
        SHOW(label, syscall(SYS_set_mempolicy, mode, &none, 64));
        show_policy();
        sprintf(label, "mode %d, node 1 only", mode);
        SHOW(label, syscall(SYS_set_mempolicy, mode, &node1, 64));
    }
    SHOW("bind static node 1", syscall(SYS_set_mempolicy, 2 | (1 << 15), &node1, 64));
    SHOW("bind static nodes 0,1", syscall(SYS_set_mempolicy, 2 | (1 << 15), &both, 64));
    show_policy();
    SHOW("bind relative node 1", syscall(SYS_set_mempolicy, 2 | (1 << 14), &node1, 64));
    show_policy();
    SHOW("static and relative", syscall(SYS_set_mempolicy, 2 | (1 << 14) | (1 << 15), &node0, 64));
    SHOW("numa balancing bind", syscall(SYS_set_mempolicy, 2 | (1 << 13), &node0, 64));
    show_policy();
    SHOW("numa balancing interleave", syscall(SYS_set_mempolicy, 3 | (1 << 13), &node0, 64));
    SHOW("maxnode 1", syscall(SYS_set_mempolicy, 2, &node0, 1));
    SHOW("no mask", syscall(SYS_set_mempolicy, 2, NULL, 64));
    SHOW("maxnode too large", syscall(SYS_set_mempolicy, 2, &node0, 40000));
    SHOW("preferred static, no node", syscall(SYS_set_mempolicy, 1 | (1 << 15), &none, 64));
    SHOW("back to default", syscall(SYS_set_mempolicy, 0, NULL, 0));
    show_policy();
}

static void test_membarrier(void)
{
    section("membarrier");
    long query = syscall(SYS_membarrier, 0, 0, 0);
    printf("query answers: %d\n", query > 0);
    SHOW("global", syscall(SYS_membarrier, 1, 0, 0));
    SHOW("private expedited, unregistered", syscall(SYS_membarrier, 8, 0, 0));
    SHOW("registrations", syscall(SYS_membarrier, 512, 0, 0));
    SHOW("register private expedited", syscall(SYS_membarrier, 16, 0, 0));
    SHOW("private expedited", syscall(SYS_membarrier, 8, 0, 0));
    SHOW("sync core, unregistered", syscall(SYS_membarrier, 32, 0, 0));
    SHOW("register sync core", syscall(SYS_membarrier, 64, 0, 0));
    SHOW("sync core", syscall(SYS_membarrier, 32, 0, 0));
    SHOW("rseq on cpu 0, unregistered", syscall(SYS_membarrier, 128, 1, 0));
    SHOW("register rseq", syscall(SYS_membarrier, 256, 0, 0));
    SHOW("rseq on cpu 0", syscall(SYS_membarrier, 128, 1, 0));
    SHOW("rseq on a cpu that is not there", syscall(SYS_membarrier, 128, 1, 100000));
    SHOW("register global expedited", syscall(SYS_membarrier, 4, 0, 0));
    SHOW("global expedited", syscall(SYS_membarrier, 2, 0, 0));
    SHOW("registrations", syscall(SYS_membarrier, 512, 0, 0));
    SHOW("flag on a plain command", syscall(SYS_membarrier, 8, 1, 0));
    SHOW("two commands at once", syscall(SYS_membarrier, 8 | 16, 0, 0));
    SHOW("unknown command", syscall(SYS_membarrier, 1 << 12, 0, 0));
    SHOW("negative command", syscall(SYS_membarrier, -1, 0, 0));
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        SHOW("child's registrations", syscall(SYS_membarrier, 512, 0, 0));
        SHOW("child's private expedited", syscall(SYS_membarrier, 8, 0, 0));
        _exit(0);
    }
    waitpid(child, NULL, 0);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_close_range();
    test_big_reads();
    test_sigpipe();
    test_memory_policy();
    test_set_mempolicy();
    test_membarrier();
    return 0;
}
