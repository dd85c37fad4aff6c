/* spawn: run one command and report its wall time, peak RSS and wait status.
 * usage: spawn FD PROGRAM ARGS...   writes "WALL_NS MAXRSS_KIB WAIT_STATUS\n" to file descriptor FD.
 *
 * The harness measures through this small static process rather than forking itself: exec(2) keeps the
 * peak RSS of the image it replaces, so a child forked from a Python parent would report the parent's
 * tens of MiB as its own peak. Here the replaced image is this program's, well under 1 MiB. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: spawn FD PROGRAM ARGS...\n");
        return 2;
    }
    int fd = atoi(argv[1]);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        close(fd);
        execvp(argv[2], argv + 2);
        perror(argv[2]);
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) {
        perror("wait4");
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long long ns = (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
    dprintf(fd, "%lld %ld %d\n", ns, ru.ru_maxrss, status);
    return 0;
}
