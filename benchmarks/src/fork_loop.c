/* fork_loop N: N times fork(), the child _exit(0)s, the parent waits for it; reports
 * "N calls in NS ns" on stderr (the loop's own CLOCK_MONOTONIC time). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) { perror("fork"); return 1; }
        if (pid == 0) _exit(0);
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) { perror("waitpid"); return 1; }
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    fprintf(stderr, "%ld calls in %lld ns\n", n, (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec));
    return 0;
}
