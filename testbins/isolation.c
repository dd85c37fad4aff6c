/* Probes for tests/test_isolation.py (issue 13): each mode prints deterministic facts, natively and under hermipy.
 *
 *   exec PATH [ARGS...]  fork, execv PATH in the child; print its errno or how it ended
 *   hello [ARGS...]      print argc (a target for exec)
 *   maps                 print our mappings in [0x10000000, 0x10003000) (a test ELF's extra segment)
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int do_exec(char **argv) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        execv(argv[0], argv);
        printf("execve: errno %d (%s)\n", errno, strerror(errno));
        fflush(stdout);
        _exit(99);
    }
    int status;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status))
        printf("exited %d\n", WEXITSTATUS(status));
    else
        printf("killed by signal %d\n", WTERMSIG(status));
    return 0;
}

static int do_maps(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    while (fgets(line, sizeof line, f)) {
        unsigned long start = strtoul(line, NULL, 16);
        if (start >= 0x10000000 && start < 0x10003000)
            fputs(line, stdout);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    if (!strcmp(argv[1], "exec") && argc > 2)
        return do_exec(argv + 2);
    if (!strcmp(argv[1], "hello")) {
        printf("hello %d\n", argc);
        return 0;
    }
    if (!strcmp(argv[1], "maps"))
        return do_maps();
    return 2;
}
