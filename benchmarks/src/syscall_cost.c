/* syscall_cost: N calls of one syscall through its libc wrapper, as programs make them (neither glibc nor musl
 * caches getppid).
 * usage: syscall_cost getppid|read|write|clock_gettime|syscall_getppid N
 *   getppid        getppid()
 *   syscall_getppid  syscall(SYS_getppid): the C library's generic syscall(3), number known at run time
 *   read           read 1 byte from /dev/zero
 *   write          write 1 byte to /dev/null
 *   clock_gettime  clock_gettime(CLOCK_MONOTONIC): the vDSO's, where there is one
 * The loop times itself with clock_gettime(CLOCK_MONOTONIC) and reports on stderr (stdout stays the same for
 * every runner, so the harness can compare it):  syscall_cost: MODE N calls in NS ns
 * The harness also derives the cost from wall times: `syscall_cost getppid 0` measures everything but the
 * loop (read/write add one open and one close to it). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: syscall_cost getppid|read|write|clock_gettime|syscall_getppid N\n");
        return 2;
    }
    const char *mode = argv[1];
    long n = atol(argv[2]), ok = 0, nr = SYS_getppid, expect;
    int fd = -1;
    char byte = 'x';
    struct timespec now;
    int generic = !strcmp(mode, "syscall_getppid");
    if (!strcmp(mode, "getppid") || generic) {
        expect = syscall(SYS_getppid);
    } else if (!strcmp(mode, "clock_gettime")) {
        nr = SYS_clock_gettime;
        expect = 0;
    } else if (!strcmp(mode, "read") || !strcmp(mode, "write")) {
        int reading = mode[0] == 'r';
        fd = open(reading ? "/dev/zero" : "/dev/null", reading ? O_RDONLY : O_WRONLY);
        if (fd < 0) {
            perror("open");
            return 1;
        }
        nr = reading ? SYS_read : SYS_write;
        expect = 1;
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (generic)
        for (long i = 0; i < n; i++) ok += syscall(SYS_getppid) == expect;
    else if (nr == SYS_clock_gettime)
        for (long i = 0; i < n; i++) ok += clock_gettime(CLOCK_MONOTONIC, &now) == expect;
    else if (fd < 0)
        for (long i = 0; i < n; i++) ok += getppid() == expect;
    else if (nr == SYS_read)
        for (long i = 0; i < n; i++) ok += read(fd, &byte, 1) == expect;
    else
        for (long i = 0; i < n; i++) ok += write(fd, &byte, 1) == expect;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (fd >= 0) close(fd);
    printf("%s %ld of %ld\n", mode, ok, n);
    fprintf(stderr, "syscall_cost: %s %ld calls in %lld ns\n", mode, n,
            (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec));
    return ok != n;
}
