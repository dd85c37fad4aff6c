/* Calls whose result the host writes into the guest's buffer itself where it can (fstat, fstatat with
 * AT_EMPTY_PATH, pread, recvfrom): the buffer in one page, across two pages, into a page not touched yet, a
 * read-only page, an unmapped page and a shared mapping. Each prints its result or errno and a digest of what
 * landed in the buffer. Usage: guest_buffers FILE (a regular file of at least 4 KiB). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#define PG 4096

static unsigned long digest(const unsigned char *p, size_t n)
{
    unsigned long h = 5381;
    for (size_t i = 0; i < n; i++)
        h = h * 33 + p[i];
    return h;
}

static void show(const char *what, long r, const void *buf, size_t n)
{
    if (r < 0)
        printf("%-34s %s\n", what, strerror(errno));
    else
        printf("%-34s %ld digest %lx\n", what, r, digest(buf, n));
}

/* The stat fields that do not change between two runs of the same file (not atime). */
static unsigned long stat_digest(const struct stat *st)
{
    unsigned long f[] = {st->st_dev, st->st_ino, st->st_nlink, st->st_mode, st->st_uid, st->st_gid, st->st_rdev,
                         (unsigned long)st->st_size, (unsigned long)st->st_blksize, (unsigned long)st->st_blocks,
                         (unsigned long)st->st_mtim.tv_sec, (unsigned long)st->st_mtim.tv_nsec};
    return digest((const unsigned char *)f, sizeof f);
}

static void stats(const char *where, int fd, void *buf)
{
    char what[64];
    snprintf(what, sizeof what, "fstat %s", where);
    long r = syscall(SYS_fstat, fd, buf);
    printf("%-34s %s", what, r < 0 ? strerror(errno) : "ok");
    if (r == 0) {
        struct stat st;
        memcpy(&st, buf, sizeof st);
        printf(" %lx", stat_digest(&st));
    }
    snprintf(what, sizeof what, "fstatat empty path %s", where);
    r = syscall(SYS_newfstatat, fd, "", buf, AT_EMPTY_PATH);
    printf("\n%-34s %s\n", what, r < 0 ? strerror(errno) : "ok");
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    int f = open(argc > 1 ? argv[1] : "/etc/services", O_RDONLY);
    if (f < 0)
        return 1;
    char *m = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(m, 1, 2 * PG);                        /* pages 0 and 1 touched; 2 not yet */
    munmap(m + 3 * PG, PG);                      /* page 3 unmapped */
    char *ro = mmap(NULL, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *shared = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    struct { const char *name; char *at; size_t len; } where[] = {
        {"in a page", m + 16, 0}, {"across two pages", m + PG - 40, 0}, {"in an untouched page", m + 2 * PG + 8, 0},
        {"read-only", ro + 8, 0}, {"across into unmapped", m + 3 * PG - 40, 0}, {"unmapped", m + 3 * PG + 8, 0},
        {"shared", shared + PG - 24, 0},
    };
    for (size_t i = 0; i < sizeof where / sizeof *where; i++)
        stats(where[i].name, f, where[i].at);

    for (size_t i = 0; i < sizeof where / sizeof *where; i++) {
        char what[64];
        for (size_t n = 100; n <= 3960; n += 3860) {
            snprintf(what, sizeof what, "pread %zu %s", n, where[i].name);
            long r = pread(f, where[i].at, n, 5);
            show(what, r, r > 0 ? where[i].at : "", r > 0 ? (size_t)r : 0);
        }
    }

    /* recvfrom on a TCP connection over loopback: what a failed receive leaves for the next one. */
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(ls, (void *)&a, sizeof a) || listen(ls, 1) || getsockname(ls, (void *)&a, &al))
        return 2;
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c, (void *)&a, sizeof a))
        return 3;
    int s = accept(ls, NULL, NULL);
    char msg[200];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (char)(i * 7 + 3);
    for (size_t i = 0; i < sizeof where / sizeof *where; i++) {
        char what[64];
        snprintf(what, sizeof what, "recvfrom %s", where[i].name);
        if (write(c, msg, sizeof msg) != sizeof msg)
            return 4;
        usleep(2000);
        long r = recvfrom(s, where[i].at, sizeof msg, MSG_DONTWAIT, NULL, NULL);
        show(what, r, r > 0 ? where[i].at : "", r > 0 ? (size_t)r : 0);
        char rest[512];
        long left = recv(s, rest, sizeof rest, MSG_DONTWAIT);
        printf("%-34s %ld\n", "  left in the socket", left < 0 ? -errno : left);
    }
    return 0;
}
