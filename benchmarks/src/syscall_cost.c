/* syscall_cost: N calls of one trivial syscall, made through syscall(2) so no libc cache can skip them.
 * usage: syscall_cost getppid|read|write N
 *   getppid  getppid()
 *   read     read 1 byte from /dev/zero
 *   write    write 1 byte to /dev/null
 * `syscall_cost getppid 0` measures everything but the loop (read/write add one open and one close to it):
 * the harness subtracts its wall time from a loop of N calls and divides by N to get the cost of one call. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: syscall_cost getppid|read|write N\n");
        return 2;
    }
    const char *mode = argv[1];
    long n = atol(argv[2]), ok = 0;
    char byte = 'x';
    if (!strcmp(mode, "getppid")) {
        long parent = syscall(SYS_getppid);
        for (long i = 0; i < n; i++) ok += syscall(SYS_getppid) == parent;
    } else if (!strcmp(mode, "read") || !strcmp(mode, "write")) {
        int reading = mode[0] == 'r';
        int fd = open(reading ? "/dev/zero" : "/dev/null", reading ? O_RDONLY : O_WRONLY);
        if (fd < 0) {
            perror("open");
            return 1;
        }
        for (long i = 0; i < n; i++)
            ok += syscall(reading ? SYS_read : SYS_write, fd, &byte, 1) == 1;
        close(fd);
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    printf("%s %ld of %ld\n", mode, ok, n);
    return ok != n;
}
