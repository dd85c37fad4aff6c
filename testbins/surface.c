/* surface: the rest of the Linux surface (issue 14), success and error paths of each call, printed as facts and
 * errno names only: recvmmsg with a timeout; preadv/pwritev/preadv2/pwritev2 argument checks.
 * Usage: surface [SECTION...] (all sections without arguments). Runs in a fresh temporary directory. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *ename(int e)
{
    switch (e) {
    case 0: return "0";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EINTR: return "EINTR";
    case EIO: return "EIO";
    case EBADF: return "EBADF";
    case ECHILD: return "ECHILD";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case EXDEV: return "EXDEV";
    case ENODEV: return "ENODEV";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL";
    case EMFILE: return "EMFILE";
    case ENOTTY: return "ENOTTY";
    case EFBIG: return "EFBIG";
    case ENOSPC: return "ENOSPC";
    case ESPIPE: return "ESPIPE";
    case EPIPE: return "EPIPE";
    case ERANGE: return "ERANGE";
    case ENOSYS: return "ENOSYS";
    case ENOTSOCK: return "ENOTSOCK";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EOVERFLOW: return "EOVERFLOW";
    case E2BIG: return "E2BIG";
    default: {
        static char buf[32];
        snprintf(buf, sizeof buf, "errno %d", e);
        return buf;
    }
    }
}

#define SHOW(label, expr) do { errno = 0; long r_ = (long)(expr); \
    if (r_ < 0) printf("%s: -1 %s\n", label, ename(errno)); else printf("%s: %ld\n", label, r_); } while (0)

static void section(const char *name) { printf("-- %s\n", name); fflush(stdout); }

#define BAD ((void *)16)                   /* never mapped */
#define KERNEL_PTR ((void *)0xffff800000000000UL)

/* -- recvmmsg ------------------------------------------------------------------------------------ */
static void send_datagrams(int fd, int n)
{
    for (int i = 0; i < n; i++) {
        char c = 'a' + i;
        send(fd, &c, 1, 0);
    }
}

static void test_recvmmsg(void)
{
    section("recvmmsg");
    int sv[2];
    SHOW("socketpair", socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
    char bufs[4][8];
    struct iovec iov[4];
    struct mmsghdr msgs[4];
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < 4; i++) {
        iov[i].iov_base = bufs[i];
        iov[i].iov_len = sizeof bufs[i];
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    struct timespec ts = {5, 0};
    send_datagrams(sv[0], 2);
    SHOW("2 queued, vlen 4, timeout 5 s, MSG_DONTWAIT", recvmmsg(sv[1], msgs, 4, MSG_DONTWAIT, &ts));
    printf("lengths %u %u, data %c%c; time left: %s\n", msgs[0].msg_len, msgs[1].msg_len, bufs[0][0], bufs[1][0],
           ts.tv_sec < 5 && ts.tv_sec >= 0 && ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000 ? "under 5 s" : "wrong");
    ts.tv_sec = 0, ts.tv_nsec = 0;
    send_datagrams(sv[0], 3);
    SHOW("3 queued, timeout 0", recvmmsg(sv[1], msgs, 4, 0, &ts));
    printf("time left %ld.%09ld\n", (long)ts.tv_sec, ts.tv_nsec);
    ts.tv_sec = 1, ts.tv_nsec = 0;
    SHOW("2 left, MSG_WAITFORONE, timeout 1 s", recvmmsg(sv[1], msgs, 4, MSG_WAITFORONE, &ts));
    ts.tv_sec = 7, ts.tv_nsec = 5;
    SHOW("nothing queued, MSG_DONTWAIT", recvmmsg(sv[1], msgs, 4, MSG_DONTWAIT, &ts));
    printf("timeout untouched: %d\n", ts.tv_sec == 7 && ts.tv_nsec == 5);
    SHOW("vlen 0", recvmmsg(sv[1], msgs, 0, MSG_DONTWAIT, &ts));
    struct timespec bad_ns = {0, 1000000000}, negative = {-1, 0};
    SHOW("nsec 1e9", recvmmsg(sv[1], msgs, 4, MSG_DONTWAIT, &bad_ns));
    SHOW("negative seconds", recvmmsg(sv[1], msgs, 4, MSG_DONTWAIT, &negative));
    SHOW("nsec 1e9 on a bad fd", recvmmsg(-1, msgs, 4, MSG_DONTWAIT, &bad_ns));
    SHOW("bad timeout pointer on a bad fd", syscall(SYS_recvmmsg, -1, msgs, 4, MSG_DONTWAIT, BAD));
    SHOW("bad fd", recvmmsg(-1, msgs, 4, MSG_DONTWAIT, &ts));
    SHOW("not a socket, vlen 0", recvmmsg(1, msgs, 0, MSG_DONTWAIT, &ts));
    SHOW("not a socket, no timeout", recvmmsg(1, msgs, 1, MSG_DONTWAIT, NULL));
    send_datagrams(sv[0], 1);
    SHOW("bad mmsghdr array", syscall(SYS_recvmmsg, sv[1], BAD, 1, MSG_DONTWAIT, &ts));
    SHOW("datagram still there", recvmmsg(sv[1], msgs, 4, MSG_DONTWAIT, NULL));
    close(sv[0]);
    close(sv[1]);
}

/* -- main ---------------------------------------------------------------------------------------- */
struct section { const char *name; void (*run)(void); };
static const struct section sections[] = {
    {"recvmmsg", test_recvmmsg},
};

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    size_t n = sizeof sections / sizeof sections[0];
    for (size_t i = 0; i < n; i++) {
        int wanted = argc < 2;
        for (int a = 1; a < argc; a++)
            wanted |= strcmp(argv[a], sections[i].name) == 0;
        if (wanted)
            sections[i].run();
    }
    return 0;
}
