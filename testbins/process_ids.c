/* process_ids: identity syscalls and prctl, compared against what the program itself can check.
 * Prints relations and errno names only (no pids or ids). */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *ename(int e)
{
    switch (e) {
    case 0: return "0";
    case EINVAL: return "EINVAL";
    case ESRCH: return "ESRCH";
    case EPERM: return "EPERM";
    case EFAULT: return "EFAULT";
    default: return "other";
    }
}

#define RESULT(label, expr) do { errno = 0; long r_ = (long)(expr); \
    printf("%s: %s\n", label, r_ == -1 ? ename(errno) : "ok"); } while (0)

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    pid_t pid = getpid();
    printf("gettid == getpid: %d\n", (pid_t)syscall(SYS_gettid) == pid);
    printf("getppid > 0: %d\n", getppid() > 0);
    uid_t r, e, s;
    gid_t gr, ge, gs;
    RESULT("getresuid", getresuid(&r, &e, &s));
    printf("getresuid matches: %d\n", r == getuid() && e == geteuid() && s == geteuid());
    RESULT("getresgid", getresgid(&gr, &ge, &gs));
    printf("getresgid matches: %d\n", gr == getgid() && ge == getegid() && gs == getegid());
    RESULT("getresuid bad pointer", syscall(SYS_getresuid, (void *)8, &e, &s));
    int n = getgroups(0, NULL);
    gid_t groups[256];
    int m = getgroups(256, groups);
    printf("getgroups count stable: %d\n", n == m);
    printf("getgroups count: %d\n", n);
    if (n > 1) RESULT("getgroups too small", getgroups(n - 1, groups));
    RESULT("getgroups negative", syscall(SYS_getgroups, -1, groups));
    printf("getpgrp == getpgid(0): %d\n", getpgrp() == getpgid(0));
    printf("getpgid(self) == getpgid(0): %d\n", getpgid(pid) == getpgid(0));
    printf("getsid(0) == getsid(self): %d\n", getsid(0) == getsid(pid));
    RESULT("getpgid(-1)", getpgid(-1));
    RESULT("getsid(-5)", getsid(-5));
    RESULT("getpgid(no such pid)", getpgid(0x3ffffff));
    RESULT("setpgid(-1)", setpgid(0, -1));
    RESULT("setpgid(no such pid)", setpgid(0x3ffffff, 0));
    RESULT("setpgid(0, 0)", setpgid(0, 0));
    printf("now group leader: %d\n", getpgrp() == pid);
    RESULT("setsid as group leader", setsid());

    char name[32] = {0};
    RESULT("PR_GET_NAME", prctl(PR_GET_NAME, name));
    printf("comm == basename(argv[0])[:15]: %d\n", strncmp(name, strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0], 15) == 0);
    RESULT("PR_SET_NAME", prctl(PR_SET_NAME, "a-rather-long-thread-name"));
    prctl(PR_GET_NAME, name);
    printf("name now: %s\n", name);
    printf("PR_GET_DUMPABLE: %d\n", prctl(PR_GET_DUMPABLE));
    RESULT("PR_SET_DUMPABLE 5", prctl(PR_SET_DUMPABLE, 5));
    RESULT("PR_SET_DUMPABLE 0", prctl(PR_SET_DUMPABLE, 0));
    printf("PR_GET_DUMPABLE: %d\n", prctl(PR_GET_DUMPABLE));
    int sig = -1;
    RESULT("PR_SET_PDEATHSIG 9", prctl(PR_SET_PDEATHSIG, 9));
    RESULT("PR_GET_PDEATHSIG", prctl(PR_GET_PDEATHSIG, &sig));
    printf("pdeathsig: %d\n", sig);
    RESULT("PR_SET_PDEATHSIG 99", prctl(PR_SET_PDEATHSIG, 99));
    RESULT("unknown prctl", prctl(0x7fff0000, 0, 0, 0, 0));
    return 0;
}
