/* jobs: kill() to process groups, process groups and sessions of other processes, and job control as a
 * shell sees it: stops and continuations through wait4(WUNTRACED/WCONTINUED) and waitid(WSTOPPED/WCONTINUED),
 * SIGCHLD with CLD_STOPPED/CLD_CONTINUED unless SA_NOCLDSTOP, SA_NOCLDWAIT.
 *
 * With no argument every check runs in its own process group and prints deterministic facts (no pids); an
 * argument naming a check runs that one alone.
 * "killall" checks kill(-1): it runs only where -1 reaches nothing but this program's children: as pid 1 of
 * a fresh pid namespace (unshare --pid --fork --mount-proc), or with a second argument "confined" (under
 * hermipy, whose kill(-1) stays in its run); anywhere else it refuses.
 * Every wait is bounded: an alarm ends a stuck run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t handled[65];
static volatile sig_atomic_t chld_code, chld_status;

static void on_signal(int sig)
{
    handled[sig]++;
}

static void on_chld(int sig, siginfo_t *info, void *uc)
{
    (void)uc;
    handled[sig]++;
    chld_code = info->si_code;
    chld_status = info->si_status;
}

static void handle(int sig, void (*fn)(int), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sa.sa_flags = flags;
    sigaction(sig, &sa, NULL);
}

static void mask(int how, int sig)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(how, &set, NULL);
}

static int pending(int sig)
{
    sigset_t set;
    sigpending(&set);
    return sigismember(&set, sig);
}

static const char *err(int e)
{
    switch (e) {
    case 0: return "OK";
    case ESRCH: return "ESRCH";
    case EPERM: return "EPERM";
    case EINVAL: return "EINVAL";
    case ECHILD: return "ECHILD";
    case EINTR: return "EINTR";
    case EACCES: return "EACCES";
    default: return "E?";
    }
}

static const char *res(long r)
{
    return r < 0 ? err(errno) : "OK";
}

/* A child that waits for ``sig`` (blocked by the parent before the fork) and exits with ``code``. */
static pid_t waiter(int sig, int code)
{
    pid_t pid = fork();
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        while (!handled[sig])
            sigsuspend(&none);
        _exit(code);
    }
    return pid;
}

/* A child that waits until SIGTERM, then exits with 40 + the number of times its SIGCONT handler ran.
 * The handlers are in place before the fork, so that no signal can come before them. */
static pid_t sleeper(void)
{
    handle(SIGCONT, on_signal, 0);
    handle(SIGTERM, on_signal, 0);
    handled[SIGCONT] = handled[SIGTERM] = 0;
    mask(SIG_BLOCK, SIGCONT);
    mask(SIG_BLOCK, SIGTERM);
    pid_t pid = fork();
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        while (!handled[SIGTERM])
            sigsuspend(&none);
        _exit(40 + handled[SIGCONT]);
    }
    mask(SIG_UNBLOCK, SIGCONT);
    mask(SIG_UNBLOCK, SIGTERM);
    handle(SIGTERM, SIG_DFL, 0);
    return pid;
}

static const char *name(int sig)
{
    switch (sig) {
    case SIGSTOP: return "STOP";
    case SIGTSTP: return "TSTP";
    case SIGTTIN: return "TTIN";
    case SIGTTOU: return "TTOU";
    default: return "?";
    }
}

static void show_status(const char *what, int status)
{
    if (WIFEXITED(status))
        printf("%s: exited %d\n", what, WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        printf("%s: killed by %d\n", what, WTERMSIG(status));
    else if (WIFSTOPPED(status))
        printf("%s: stopped by %d\n", what, WSTOPSIG(status));
    else if (WIFCONTINUED(status))
        printf("%s: continued\n", what);
    else
        printf("%s: status %#x\n", what, status);
}

static void reap(pid_t pid, const char *what)
{
    int status = 0;
    pid_t got = waitpid(pid, &status, 0);
    if (got != pid)
        printf("%s: waitpid %s\n", what, res(got));
    else
        show_status(what, status);
}

static void kill_zero_self(void)
{
    handle(SIGUSR1, on_signal, 0);
    handled[SIGUSR1] = 0;
    long r = kill(0, SIGUSR1);
    int seen = handled[SIGUSR1];                        /* Linux delivers to the caller before kill returns */
    printf("kill(0, USR1) alone: %s, handled before return %d\n", res(r), seen);
    r = kill(-getpgrp(), SIGUSR1);
    seen = handled[SIGUSR1];
    printf("kill(-own pgrp, USR1): %s, handled before return %d\n", res(r), seen);
    handle(SIGFPE, on_signal, 0);
    r = kill(0, SIGFPE);
    printf("kill(0, FPE) alone: %s, handled %d\n", res(r), handled[SIGFPE]);
    r = kill(0, 0);
    printf("kill(0, 0): %s\n", res(r));
    handle(SIGUSR1, SIG_DFL, 0);
    handle(SIGFPE, SIG_DFL, 0);
}

static void kill_zero_group(void)
{
    handle(SIGUSR1, on_signal, 0);
    handled[SIGUSR1] = 0;
    mask(SIG_BLOCK, SIGUSR1);
    pid_t a = waiter(SIGUSR1, 10), b = waiter(SIGUSR1, 11);
    mask(SIG_UNBLOCK, SIGUSR1);
    long r = kill(0, SIGUSR1);
    int seen = handled[SIGUSR1];
    printf("kill(0, USR1) with two children: %s, handled before return %d\n", res(r), seen);
    reap(a, "first child");
    reap(b, "second child");
    handle(SIGUSR1, SIG_DFL, 0);
}

static void other_group(void)
{
    handle(SIGUSR2, on_signal, 0);
    handled[SIGUSR2] = 0;
    mask(SIG_BLOCK, SIGUSR2);
    int sync[2];
    if (pipe(sync))
        return;
    pid_t child = fork();
    if (child == 0) {
        char c;
        setpgid(0, 0);
        close(sync[1]);
        if (read(sync[0], &c, 1) != 0)
            _exit(99);
        sigset_t none;
        sigemptyset(&none);
        while (!handled[SIGUSR2])
            sigsuspend(&none);
        _exit(7);
    }
    close(sync[0]);
    long r = setpgid(child, child);                     /* as a shell does, racing the child's own call */
    printf("setpgid(child, child): %s\n", res(r));
    printf("getpgid(child) is the child: %d, same session: %d\n", getpgid(child) == child,
           getsid(child) == getsid(0));
    printf("getpgid(0) is getpgrp: %d, getsid(0) is getsid(own pid): %d\n", getpgid(0) == getpgrp(),
           getsid(0) == getsid(getpid()));
    close(sync[1]);                                     /* the child's group is set: let it wait */
    r = kill(-child, 0);
    printf("kill(-child pgrp, 0): %s\n", res(r));
    r = kill(-child, SIGUSR2);
    printf("kill(-child pgrp, USR2): %s, caller got it: %d\n", res(r), pending(SIGUSR2) || handled[SIGUSR2]);
    reap(child, "child in its own group");
    r = kill(-child, 0);
    printf("kill(-reaped pgrp, 0): %s\n", res(r));
    r = getpgid(child);
    printf("getpgid(reaped): %s\n", res(r));
    r = getsid(child);
    printf("getsid(reaped): %s\n", res(r));
    r = setpgid(child, child);
    printf("setpgid(reaped, itself): %s\n", res(r));
    r = setpgid(0, -1);
    printf("setpgid(0, -1): %s\n", res(r));
    mask(SIG_UNBLOCK, SIGUSR2);
    handle(SIGUSR2, SIG_DFL, 0);
}

static void stop_and_continue(int sig)
{
    pid_t child = sleeper();
    char what[64];
    int status = 0;
    kill(child, sig);
    pid_t got = waitpid(child, &status, WUNTRACED);
    snprintf(what, sizeof what, "%s: wait4(WUNTRACED)", name(sig));
    if (got == child)
        show_status(what, status);
    else
        printf("%s %s\n", what, res(got));
    got = waitpid(child, &status, WNOHANG | WUNTRACED);
    printf("%s: again, WNOHANG: %d\n", name(sig), (int)got);
    kill(child, SIGCONT);
    got = waitpid(child, &status, WCONTINUED);
    snprintf(what, sizeof what, "%s: wait4(WCONTINUED)", name(sig));
    if (got == child)
        show_status(what, status);
    else
        printf("%s %s\n", what, res(got));
    kill(child, SIGTERM);
    reap(child, "after SIGTERM");                       /* its SIGCONT handler ran once: it exits 41 */
}

static void waitid_stop_continue(void)
{
    pid_t child = sleeper();
    siginfo_t si;
    kill(child, SIGTSTP);
    memset(&si, 0, sizeof si);
    long r = waitid(P_PID, child, &si, WSTOPPED);
    printf("waitid(WSTOPPED): %s, code %d (CLD_STOPPED %d), status %d, pid ok %d\n", res(r), si.si_code,
           CLD_STOPPED, si.si_status, si.si_pid == child);
    kill(child, SIGCONT);
    memset(&si, 0, sizeof si);
    r = waitid(P_PID, child, &si, WCONTINUED);
    printf("waitid(WCONTINUED): %s, code %d (CLD_CONTINUED %d), status %d, pid ok %d\n", res(r), si.si_code,
           CLD_CONTINUED, si.si_status, si.si_pid == child);
    kill(child, SIGTERM);
    memset(&si, 0, sizeof si);
    r = waitid(P_PID, child, &si, WEXITED);
    printf("waitid(WEXITED): %s, code %d (CLD_EXITED %d), status %d\n", res(r), si.si_code, CLD_EXITED,
           si.si_status);
}

static int wait_chld(void)
{
    sigset_t set;
    siginfo_t si;
    struct timespec limit = {5, 0};
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    int sig = sigtimedwait(&set, &si, &limit);
    if (sig != SIGCHLD) {
        printf("  no SIGCHLD: %s\n", res(sig));
        return -1;
    }
    printf("  SIGCHLD: code %d, status %d\n", si.si_code, si.si_status);
    return 0;
}

static void sigchld_reports(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_chld;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGCHLD, &sa, NULL);
    mask(SIG_BLOCK, SIGCHLD);
    int status;
    pid_t child = sleeper();
    printf("SIGCHLD without SA_NOCLDSTOP:\n");
    kill(child, SIGSTOP);
    wait_chld();
    waitpid(child, &status, WUNTRACED);
    kill(child, SIGCONT);
    wait_chld();
    waitpid(child, &status, WCONTINUED);
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
    wait_chld();

    sa.sa_flags = SA_SIGINFO | SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    child = sleeper();
    printf("SIGCHLD with SA_NOCLDSTOP:\n");
    kill(child, SIGSTOP);
    waitpid(child, &status, WUNTRACED);
    usleep(100000);
    printf("  pending after a stop: %d\n", pending(SIGCHLD));
    kill(child, SIGCONT);
    waitpid(child, &status, WCONTINUED);
    usleep(100000);
    printf("  pending after a continue: %d\n", pending(SIGCHLD));
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
    printf("  pending as wait4 returns a killed child: %d\n", pending(SIGCHLD));
    wait_chld();

    /* A handler that runs: SIGCHLD pending as wait returns is delivered on the way out. */
    handled[SIGCHLD] = 0;
    mask(SIG_UNBLOCK, SIGCHLD);
    child = fork();
    if (child == 0)
        _exit(5);
    mask(SIG_BLOCK, SIGCHLD);
    sigset_t none;
    sigemptyset(&none);
    while (!handled[SIGCHLD])
        sigsuspend(&none);
    printf("handler: code %d, status %d\n", chld_code, chld_status);
    reap(child, "exited child");
    mask(SIG_UNBLOCK, SIGCHLD);
    handle(SIGCHLD, SIG_DFL, 0);
}

static void no_zombies(void)
{
    handle(SIGCHLD, SIG_DFL, SA_NOCLDWAIT);
    pid_t child = fork();
    if (child == 0) {
        usleep(100000);
        _exit(3);
    }
    int status;
    long r = waitpid(-1, &status, 0);                   /* waits for the child, then there is none */
    const char *result = res(r);
    int gone = 0;                                       /* no zombie left: released, at most a moment later */
    for (int i = 0; i < 100 && !gone; i++) {
        gone = kill(child, 0) < 0 && errno == ESRCH;
        if (!gone)
            usleep(10000);
    }
    printf("SA_NOCLDWAIT: wait %s, child gone %d\n", result, gone);
    handle(SIGCHLD, SIG_IGN, 0);
    child = fork();
    if (child == 0)
        _exit(3);
    r = waitpid(child, &status, 0);
    printf("SIGCHLD ignored: wait %s\n", res(r));
    handle(SIGCHLD, SIG_DFL, 0);
    child = fork();
    if (child == 0)
        _exit(3);
    reap(child, "SIGCHLD default again");
}

static void self_stop(void)
{
    pid_t child = fork();
    if (child == 0) {
        raise(SIGTSTP);                                 /* default action: stop until SIGCONT */
        _exit(5);
    }
    int status;
    waitpid(child, &status, WUNTRACED);
    show_status("raise(TSTP)", status);
    kill(child, SIGCONT);
    reap(child, "raise(TSTP), continued");

    child = fork();
    if (child == 0) {
        mask(SIG_BLOCK, SIGTSTP);
        raise(SIGTSTP);
        raise(SIGCONT);                                 /* discards the pending stop signal */
        int was = pending(SIGTSTP);
        mask(SIG_UNBLOCK, SIGTSTP);
        _exit(was);
    }
    waitpid(child, &status, WUNTRACED);
    show_status("TSTP pending then CONT", status);

    handle(SIGCONT, on_signal, 0);
    handle(SIGTSTP, on_signal, 0);
    handled[SIGCONT] = handled[SIGTSTP] = 0;
    mask(SIG_BLOCK, SIGCONT);
    raise(SIGCONT);
    raise(SIGTSTP);                                     /* a stop signal discards a pending SIGCONT */
    printf("CONT pending then TSTP: CONT still pending %d, TSTP handled %d\n", pending(SIGCONT),
           handled[SIGTSTP]);
    mask(SIG_UNBLOCK, SIGCONT);
    printf("CONT handled %d\n", handled[SIGCONT]);
    handle(SIGCONT, SIG_DFL, 0);
    handle(SIGTSTP, SIG_DFL, 0);
}

static void kill_all(void)
{
    handle(SIGUSR1, on_signal, 0);
    handled[SIGUSR1] = 0;
    mask(SIG_BLOCK, SIGUSR1);
    pid_t a = waiter(SIGUSR1, 20), b = waiter(SIGUSR1, 21);
    mask(SIG_UNBLOCK, SIGUSR1);
    long r = kill(-1, SIGUSR1);
    printf("kill(-1, USR1): %s, caller got it %d\n", res(r), handled[SIGUSR1]);
    reap(a, "first child");
    reap(b, "second child");
    r = kill(-1, 0);
    printf("kill(-1, 0) with no other process: %s\n", res(r));
}

typedef void (*check)(void);

static void in_own_group(const char *name, check fn)
{
    /* Each check in a fresh process group of its own: kill(0) must never reach the test harness. */
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        printf("== %s\n", name);
        fn();
        fflush(stdout);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status))
        printf("%s ended with status %#x\n", name, status);
    fflush(stdout);
}

static void stops(void)
{
    int sigs[] = {SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU};
    for (unsigned i = 0; i < sizeof sigs / sizeof *sigs; i++)
        stop_and_continue(sigs[i]);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    alarm(60);
    if (argc > 1 && !strcmp(argv[1], "killall")) {
        /* Natively kill(-1) reaches every process of the user: only as init of a fresh pid namespace, or
         * where the caller says -1 is confined (hermipy's run). */
        if (getpid() != 1 && (argc < 3 || strcmp(argv[2], "confined"))) {
            fprintf(stderr, "jobs killall: refused outside a pid namespace of its own\n");
            return 2;
        }
        kill_all();
        return 0;
    }
    static const struct { const char *name; check fn; } checks[] = {
        {"kill(0) alone", kill_zero_self}, {"kill(0) to a group", kill_zero_group},
        {"another group", other_group}, {"stop and continue", stops}, {"waitid", waitid_stop_continue},
        {"SIGCHLD", sigchld_reports}, {"SA_NOCLDWAIT", no_zombies}, {"self stop", self_stop},
    };
    for (unsigned i = 0; i < sizeof checks / sizeof *checks; i++)
        if (argc < 2 || !strcmp(argv[1], checks[i].name))
            in_own_group(checks[i].name, checks[i].fn);
    printf("done\n");
    return 0;
}
