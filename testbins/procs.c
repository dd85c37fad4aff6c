/* procs: process creation -- fork, vfork, posix_spawn, execve (itself, a #! script, errors), wait4/waitpid/
 * waitid statuses (exit codes, signals), pipes and fds across fork and exec (close-on-exec), SIGCHLD
 * ignored (no zombies), getppid in the child. Runs in a fresh temporary directory; prints only facts. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char *ename(int e)
{
    switch (e) {
    case 0: return "0";
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case ENOEXEC: return "ENOEXEC";
    case ECHILD: return "ECHILD";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case ENOTDIR: return "ENOTDIR";
    case EBADF: return "EBADF";
    default: return "other";
    }
}

#define SHOW(label, expr) do { errno = 0; long r_ = (long)(expr); \
    if (r_ < 0) printf("%s: -1 %s\n", label, ename(errno)); else printf("%s: %ld\n", label, r_); } while (0)

static void describe(const char *what, int status)
{
    if (WIFEXITED(status))
        printf("%s: exited %d\n", what, WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        printf("%s: killed by signal %d\n", what, WTERMSIG(status));
    else
        printf("%s: status %#x\n", what, status);
}

/* the exec'd image: report what it inherited, exit with a code the parent checks */
static int child_mode(int argc, char **argv)
{
    printf("exec'd child: argc=%d argv1=%s env HERMI_T=%s\n", argc, argv[1], getenv("HERMI_T") ?: "(none)");
    int keep = atoi(argv[2]), gone = atoi(argv[3]);
    printf("inherited fd open: %d, close-on-exec fd open: %d\n", fcntl(keep, F_GETFD) >= 0,
           fcntl(gone, F_GETFD) >= 0);
    char buf[32];
    ssize_t n = read(keep, buf, sizeof buf);
    printf("read through inherited fd: %.*s\n", (int)(n > 0 ? n : 0), buf);
    struct sigaction usr1, usr2;
    sigaction(SIGUSR1, NULL, &usr1);
    sigaction(SIGUSR2, NULL, &usr2);
    printf("SIGUSR1 handler reset: %d, SIGUSR2 still ignored: %d\n", usr1.sa_handler == SIG_DFL,
           usr2.sa_handler == SIG_IGN);
    sigset_t set;
    sigprocmask(SIG_BLOCK, NULL, &set);
    printf("SIGHUP still blocked: %d\n", sigismember(&set, SIGHUP));
    return 42;
}

static void on_usr1(int sig) { (void)sig; }

static void forks(void)
{
    printf("-- fork\n");
    int p[2];
    pipe(p);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        char msg[64];
        int n = snprintf(msg, sizeof msg, "child sees parent: %d, own pid differs: %d",
                         getppid() == parent, getpid() != parent);
        write(p[1], msg, n);
        _exit(7);
    }
    close(p[1]);
    char buf[128];
    ssize_t n = read(p[0], buf, sizeof buf);
    printf("%.*s\n", (int)(n > 0 ? n : 0), buf);
    close(p[0]);
    int status;
    struct rusage ru;
    pid_t got = wait4(pid, &status, 0, &ru);
    printf("wait4 returned the child: %d\n", got == pid);
    describe("fork child", status);
    SHOW("wait with no children", wait(&status));
    SHOW("waitpid WNOHANG with no children", waitpid(-1, &status, WNOHANG));

    /* memory is copied, not shared */
    static int shared_looking = 1;
    pid = fork();
    if (pid == 0) {
        shared_looking = 99;
        _exit(shared_looking);
    }
    waitpid(pid, &status, 0);
    printf("child wrote its copy: exit %d, parent's value %d\n", WEXITSTATUS(status), shared_looking);

    /* deaths by signal */
    pid = fork();
    if (pid == 0) {
        kill(getpid(), SIGTERM);
        _exit(0);
    }
    waitpid(pid, &status, 0);
    describe("child sent itself SIGTERM", status);
    pid = fork();
    if (pid == 0) {
        *(volatile int *)8 = 1;
        _exit(0);
    }
    waitpid(pid, &status, 0);
    describe("child dereferenced NULL", status);
    pid = fork();
    if (pid == 0) {
        pause();
        _exit(0);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    describe("parent killed the child", status);

    /* WNOHANG while the child runs, then waitid */
    int go[2];
    pipe(go);
    pid = fork();
    if (pid == 0) {
        char c;
        read(go[0], &c, 1);
        _exit(3);
    }
    SHOW("waitpid WNOHANG while running", waitpid(pid, &status, WNOHANG));
    write(go[1], "x", 1);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    SHOW("waitid P_PID", waitid(P_PID, pid, &si, WEXITED));
    printf("waitid: pid matches %d, code CLD_EXITED %d, status %d\n", si.si_pid == pid, si.si_code == CLD_EXITED,
           si.si_status);
    close(go[0]);
    close(go[1]);
    SHOW("waitid bad idtype", waitid(7, 0, &si, WEXITED));
    SHOW("waitpid bad options", waitpid(-1, &status, 0x4000));

    /* clone3 straight: a fork with SIGCHLD as the exit signal; bad sizes and flags */
    struct { unsigned long long flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls; } ca =
        {.exit_signal = SIGCHLD};
    pid = syscall(SYS_clone3, &ca, sizeof ca);
    if (pid == 0)
        _exit(12);
    waitpid(pid, &status, 0);
    describe("clone3 child", status);
    SHOW("clone3 size too small", syscall(SYS_clone3, &ca, 8));
    ca.exit_signal = 1000;
    SHOW("clone3 bad exit signal", syscall(SYS_clone3, &ca, sizeof ca));

    /* several children, reaped in any order */
    int sum = 0;
    for (int i = 1; i <= 3; i++)
        if (fork() == 0)
            _exit(i * 10);
    for (int i = 0; i < 3; i++) {
        wait(&status);
        sum += WEXITSTATUS(status);
    }
    printf("three children's statuses sum to %d\n", sum);
}

static void vforks(void)
{
    printf("-- vfork and posix_spawn\n");
    static volatile int written_by_child;           /* vfork shares memory: the parent sees the child's writes */
    volatile int on_stack = 0;
    pid_t pid = vfork();
    if (pid == 0) {
        written_by_child = 7;
        on_stack = 8;
        _exit(5);
    }
    int status;
    waitpid(pid, &status, 0);
    describe("vfork child", status);
    printf("after vfork: static %d, stack %d\n", written_by_child, on_stack);
    char *missing[] = {"nope", NULL};
    printf("posix_spawn of a missing program: %s\n",         /* glibc's child reports it through shared memory */
           ename(posix_spawn(&pid, "/nonexistent/nope", NULL, NULL, missing, environ)));
    printf("posix_spawnp of a missing program: %s\n",
           ename(posix_spawnp(&pid, "hermipy-no-such-program", NULL, NULL, missing, environ)));
    char *argv[] = {"sh", "-c", "exit 9", NULL};
    int r = posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ);
    printf("posix_spawn: %s\n", ename(r));
    waitpid(pid, &status, 0);
    describe("spawned sh", status);
    fflush(stdout);
    char *echo[] = {"echo", "spawned echo writes to our stdout", NULL};
    r = posix_spawnp(&pid, "echo", NULL, NULL, echo, environ);
    waitpid(pid, &status, 0);
    describe("spawned echo", status);
}

static void execs(const char *self)
{
    printf("-- execve\n");
    SHOW("execve missing", execve("./does-not-exist", (char *[]){"x", NULL}, environ));
    int fd = open("plain.txt", O_WRONLY | O_CREAT, 0644);
    write(fd, "not a program\n", 14);
    close(fd);
    SHOW("execve non-executable", execve("./plain.txt", (char *[]){"x", NULL}, environ));
    chmod("plain.txt", 0755);
    SHOW("execve garbage", execve("./plain.txt", (char *[]){"x", NULL}, environ));
    SHOW("execve a directory", execve(".", (char *[]){"x", NULL}, environ));
    SHOW("execve bad path pointer", syscall(SYS_execve, (char *)8, NULL, NULL));
    SHOW("execve under a file", execve("./plain.txt/x", (char *[]){"x", NULL}, environ));
    fd = open("script.sh", O_WRONLY | O_CREAT, 0755);
    dprintf(fd, "#!/bin/sh -e\necho \"script: \\$0=$0 args=$*\"\nexit 4\n");
    close(fd);
    fd = open("noshell.sh", O_WRONLY | O_CREAT, 0755);
    dprintf(fd, "#!/no/such/interpreter\necho never\n");
    close(fd);
    SHOW("execve script with a missing interpreter", execve("./noshell.sh", (char *[]){"x", NULL}, environ));

    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        execve("./script.sh", (char *[]){"script.sh", "a", "b", NULL}, environ);
        _exit(100);
    }
    int status;
    waitpid(pid, &status, 0);
    describe("script", status);
    int dir = open(".", O_RDONLY | O_DIRECTORY);
    SHOW("execveat bad flags", syscall(SYS_execveat, dir, "script.sh", (char *[]){"x", NULL}, environ, 0x4));
    SHOW("execveat empty path without AT_EMPTY_PATH", syscall(SYS_execveat, dir, "", (char *[]){"x", NULL}, environ, 0));
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        syscall(SYS_execveat, dir, "/bin/sh", (char *[]){"sh", "-c", "exit 6", NULL}, environ, 0);
        _exit(100);
    }
    waitpid(pid, &status, 0);
    describe("sh through execveat", status);
    close(dir);

    int p[2], q[2];
    pipe(p);
    pipe2(q, O_CLOEXEC);
    write(p[1], "through exec", 12);
    signal(SIGUSR1, on_usr1);
    signal(SIGUSR2, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        char a[16], b[16];
        snprintf(a, sizeof a, "%d", p[0]);
        snprintf(b, sizeof b, "%d", q[0]);
        char *env[] = {"HERMI_T=yes", NULL};
        execve(self, (char *[]){"procs", "child-mode", a, b, NULL}, env);
        _exit(101);
    }
    waitpid(pid, &status, 0);
    describe("exec'd self", status);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    signal(SIGUSR1, SIG_DFL);
    signal(SIGUSR2, SIG_DFL);
}

static void ignored_sigchld(void)
{
    printf("-- SIGCHLD ignored\n");
    signal(SIGCHLD, SIG_IGN);
    pid_t pid = fork();
    if (pid == 0)
        _exit(1);
    int status;
    SHOW("wait with SIGCHLD ignored", waitpid(pid, &status, 0));
    signal(SIGCHLD, SIG_DFL);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "child-mode") == 0)
        return child_mode(argc, argv);
    setvbuf(stdout, NULL, _IOLBF, 0);
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = 0;
    forks();
    vforks();
    execs(self);
    ignored_sigchld();
    printf("done\n");
    return 0;
}
