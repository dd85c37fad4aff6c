/* clone(2) with CLONE_VM but without CLONE_THREAD or CLONE_VFORK: a process sharing its parent's memory
 * (LinuxThreads-style runtimes, raw clone users). One section per argument, "all" for every one but exec.
 * Pids are never printed (they differ between runs); only what they mean. The children print with write(2):
 * stdio's buffers are shared memory here. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#ifndef FUTEX_WAIT
#define FUTEX_WAIT 0
#endif
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef __WCLONE
#define __WCLONE 0x80000000
#endif
#define STACK_SIZE (256 * 1024)

static volatile int shared_value;
static volatile int child_fd = -1;
static volatile sig_atomic_t got_usr1, chld_code, chld_pid_ok, chld_status;
static pid_t parent_pid;
static char *self_path;

static void say(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (write(1, buf, n) < 0)
        _exit(99);
}

static pid_t spawn(int (*fn)(void *), int flags, void *arg, pid_t *ptid, pid_t *ctid)
{
    char *stack = malloc(STACK_SIZE);
    pid_t pid = clone(fn, stack + STACK_SIZE, flags, arg, ptid, NULL, ctid);
    if (pid < 0) {
        say("clone: %s\n", strerror(errno));
        exit(1);
    }
    return pid;
}

static int status_of(pid_t pid, int options)
{
    int st = 0;
    pid_t got = waitpid(pid, &st, options);
    if (got != pid) {
        say("waitpid: %s\n", got < 0 ? strerror(errno) : "another pid");
        exit(1);
    }
    return st;
}

static void report(const char *what, int st)
{
    if (WIFEXITED(st))
        say("%s: exited %d\n", what, WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        say("%s: killed by %s\n", what, strsignal(WTERMSIG(st)));
}

/* -- basic: memory is shared, ids are the child's own ---------------------------------------------------- */
static int basic_child(void *arg)
{
    shared_value = 42;
    say("child: getpid differs from the parent's %s, getppid is the parent %s, gettid is getpid %s\n",
        getpid() != parent_pid ? "yes" : "no", getppid() == parent_pid ? "yes" : "no",
        syscall(SYS_gettid) == getpid() ? "yes" : "no");
    return 7;
}

static void basic(void)
{
    shared_value = 0;
    pid_t pid = spawn(basic_child, CLONE_VM | SIGCHLD, NULL, NULL, NULL);
    report("basic", status_of(pid, 0));
    say("basic: the child's write seen %d, its pid was the clone's result %s\n", shared_value,
        pid > 0 ? "yes" : "no");
}

/* -- files: CLONE_FILES shares the fd table, without it the child has a copy ---------------------------- */
static int files_child(void *arg)
{
    child_fd = open("/dev/null", O_RDONLY);
    return 0;
}

static void files(void)
{
    for (int share = 1; share >= 0; share--) {
        child_fd = -1;
        pid_t pid = spawn(files_child, CLONE_VM | (share ? CLONE_FILES : 0) | SIGCHLD, NULL, NULL, NULL);
        status_of(pid, 0);
        int ok = fcntl(child_fd, F_GETFD) >= 0;
        say("files %s: the child's fd is open in the parent: %s\n", share ? "shared" : "copied",
            ok ? "yes" : strerror(errno));
        if (ok)
            close(child_fd);
    }
}

/* -- signals: handlers of its own without CLONE_SIGHAND, a signal from the parent runs the child's -------- */
static void on_usr1(int sig) { got_usr1 = 1; }

static int signal_child(void *arg)
{
    sigset_t usr1, old;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, &old);     /* until sigsuspend: no signal between check and wait */
    signal(SIGUSR1, on_usr1);
    shared_value = 1;                        /* ready */
    while (!got_usr1)
        sigsuspend(&old);
    return 3;
}

static void signals_section(void)
{
    got_usr1 = 0;
    shared_value = 0;
    pid_t pid = spawn(signal_child, CLONE_VM | SIGCHLD, NULL, NULL, NULL);
    while (!shared_value)
        sched_yield();
    struct sigaction sa;
    sigaction(SIGUSR1, NULL, &sa);
    say("signals: the parent's SIGUSR1 is still SIG_DFL: %s\n", sa.sa_handler == SIG_DFL ? "yes" : "no");
    kill(pid, SIGUSR1);
    report("signals: after kill(SIGUSR1)", status_of(pid, 0));
}

/* -- killed: a fatal signal ends the child alone; the parent's SIGCHLD handler gets its siginfo ----------- */
static void on_chld(int sig, siginfo_t *info, void *ctx)
{
    chld_code = info->si_code;
    chld_status = info->si_status;
    chld_pid_ok = info->si_pid > 0;
}

static int killed_child(void *arg)
{
    kill(getpid(), SIGTERM);
    return 0;
}

static void killed(void)
{
    struct sigaction sa = {0};
    sa.sa_sigaction = on_chld;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGCHLD, &sa, NULL);
    chld_code = 0;
    pid_t pid = spawn(killed_child, CLONE_VM | SIGCHLD, NULL, NULL, NULL);
    report("killed", status_of(pid, 0));
    while (!chld_code)
        sched_yield();
    say("killed: SIGCHLD si_code %s, si_status %s, si_pid set %s\n", chld_code == CLD_KILLED ? "CLD_KILLED" : "?",
        strsignal(chld_status), chld_pid_ok ? "yes" : "no");
    signal(SIGCHLD, SIG_DFL);
    say("killed: the parent goes on\n");
}

/* -- wclone: an exit signal other than SIGCHLD makes a clone child, waited only with __WCLONE or __WALL ---- */
static int quiet_child(void *arg) { return 5; }

static void wclone(void)
{
    pid_t pid = spawn(quiet_child, CLONE_VM, NULL, NULL, NULL);           /* exit signal 0 */
    usleep(100000);
    int st;
    pid_t got = waitpid(pid, &st, WNOHANG);
    say("wclone: without __WCLONE: %s\n", got < 0 ? strerror(errno) : got == 0 ? "0" : "the child");
    report("wclone: with __WCLONE", status_of(pid, __WCLONE));
    signal(SIGUSR2, SIG_IGN);
    pid = spawn(quiet_child, CLONE_VM | SIGUSR2, NULL, NULL, NULL);
    report("wclone: exit signal SIGUSR2 (ignored here), with __WALL", status_of(pid, __WALL));
}

/* -- cleartid: CLONE_PARENT_SETTID and CLONE_CHILD_CLEARTID, woken as pthread_join is ------------------- */
static pid_t ptid, ctid;

static int cleartid_child(void *arg)
{
    usleep(50000);
    _exit(0);                                /* exit_group: the memory lives on in the parent, cleared too */
}

static void cleartid(void)
{
    pid_t pid = spawn(cleartid_child, CLONE_VM | CLONE_PARENT_SETTID | CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID
                      | SIGCHLD, NULL, &ptid, &ctid);
    say("cleartid: parent tid word is the pid %s\n", ptid == pid ? "yes" : "no");
    while (ctid != 0)
        syscall(SYS_futex, &ctid, FUTEX_WAIT, pid, NULL, NULL, 0);
    say("cleartid: cleared and woken\n");
    report("cleartid", status_of(pid, 0));
}

/* -- many: several children at once, waited in any order ------------------------------------------------- */
static int many_child(void *arg)
{
    __sync_fetch_and_add(&shared_value, (int)(long)arg);
    return (int)(long)arg;
}

static void many(void)
{
    shared_value = 0;
    int sum = 0;
    for (long i = 1; i <= 8; i++)
        spawn(many_child, CLONE_VM | CLONE_FS | CLONE_FILES | SIGCHLD, (void *)i, NULL, NULL);
    for (int i = 0; i < 8; i++) {
        int st;
        if (wait(&st) < 0)
            say("wait: %s\n", strerror(errno));
        sum += WEXITSTATUS(st);
    }
    int st;
    say("many: sum of statuses %d, shared total %d, then wait: %s\n", sum, shared_value,
        wait(&st) < 0 ? strerror(errno) : "a child");
}

/* -- waitid: P_PID, P_ALL with WNOHANG and WNOWAIT, the siginfo it fills ------------------------------------ */
static void waitid_section(void)
{
    pid_t pid = spawn(quiet_child, CLONE_VM | SIGCHLD, NULL, NULL, NULL);
    siginfo_t info;
    memset(&info, 0xff, sizeof info);
    int r = waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT);
    while (r == 0 && info.si_pid == 0) {      /* not ended yet: the fields are zero */
        usleep(10000);
        r = waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT);
    }
    say("waitid: WNOWAIT %d, si_signo SIGCHLD %s, si_code CLD_EXITED %s, si_status %d, si_pid the child %s\n", r,
        info.si_signo == SIGCHLD ? "yes" : "no", info.si_code == CLD_EXITED ? "yes" : "no", info.si_status,
        info.si_pid == pid ? "yes" : "no");
    memset(&info, 0, sizeof info);
    r = waitid(P_PID, pid, &info, WEXITED);
    say("waitid: P_PID %d, si_code CLD_EXITED %s, si_pid the child %s, si_status %d\n", r,
        info.si_code == CLD_EXITED ? "yes" : "no", info.si_pid == pid ? "yes" : "no", info.si_status);
    memset(&info, 0xff, sizeof info);
    r = waitid(P_ALL, 0, &info, WEXITED);
    say("waitid: then %s, with si_signo %d si_pid %d si_status %d\n", r < 0 ? strerror(errno) : "a child",
        info.si_signo, info.si_pid, info.si_status);   /* waitid writes them even when it fails */
}

/* -- exec: the child execs; the parent waits for it by the clone's pid ----------------------------------- */
static int exec_child(void *arg)
{
    shared_value = 9;
    execl(self_path, self_path, "exec-target", (char *)NULL);
    say("execl: %s\n", strerror(errno));
    return 1;
}

static void exec_section(void)
{
    shared_value = 0;
    pid_t pid = spawn(exec_child, CLONE_VM | SIGCHLD, NULL, NULL, NULL);
    report("exec", status_of(pid, 0));
    say("exec: the child's write before its exec seen %d\n", shared_value);
}

int main(int argc, char **argv)
{
    self_path = argv[0];
    parent_pid = getpid();
    const char *what = argc > 1 ? argv[1] : "all";
    if (!strcmp(what, "exec-target")) {
        say("exec-target: running, parent is %s\n", getppid() > 1 ? "there" : "gone");
        return 11;
    }
    int all = !strcmp(what, "all");
    if (all || !strcmp(what, "basic")) basic();
    if (all || !strcmp(what, "files")) files();
    if (all || !strcmp(what, "signals")) signals_section();
    if (all || !strcmp(what, "killed")) killed();
    if (all || !strcmp(what, "wclone")) wclone();
    if (all || !strcmp(what, "cleartid")) cleartid();
    if (all || !strcmp(what, "many")) many();
    if (all || !strcmp(what, "waitid")) waitid_section();
    if (!strcmp(what, "exec")) exec_section();
    say("done\n");
    return 0;
}
