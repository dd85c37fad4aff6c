/* info: uname, sysinfo, resource limits, rusage, times, CPU affinity, getcpu, getrandom, priorities,
 * personality, and the set*id family (last: it gives up privileges). Prints facts and errno names only. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/times.h>
#include <sys/utsname.h>
#include <unistd.h>

static const char *ename(int e)
{
    switch (e) {
    case 0: return "0";
    case EINVAL: return "EINVAL";
    case EBADF: return "EBADF";
    case EFAULT: return "EFAULT";
    case EPERM: return "EPERM";
    case ESRCH: return "ESRCH";
    case EMFILE: return "EMFILE";
    case EACCES: return "EACCES";
    case EAGAIN: return "EAGAIN";
    default: return "other";
    }
}

#define SHOW(label, expr) do { errno = 0; long r_ = (long)(expr); \
    if (r_ == -1) printf("%s: -1 %s\n", label, ename(errno)); else printf("%s: %ld\n", label, r_); } while (0)
#define OK(label, expr) do { errno = 0; long r_ = (long)(expr); \
    printf("%s: %s\n", label, r_ == -1 ? ename(errno) : "ok"); } while (0)
#define BAD ((void *)16)
#define NOPID 0x3ffffff

static void ids(const char *when)
{
    uid_t r, e, s;
    gid_t gr, ge, gs;
    getresuid(&r, &e, &s);
    getresgid(&gr, &ge, &gs);
    gid_t groups[64];
    int n = getgroups(64, groups);
    printf("%s: uid %u %u %u gid %u %u %u groups", when, r, e, s, gr, ge, gs);
    for (int i = 0; i < n; i++)
        printf(" %u", groups[i]);
    printf("\n");
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct utsname u;
    OK("uname", uname(&u));
    printf("sysname=%s machine=%s\n", u.sysname, u.machine);
    char host[128];
    gethostname(host, sizeof host);
    printf("nodename is the hostname: %d\n", strcmp(host, u.nodename) == 0);
    printf("release nonempty: %d\n", u.release[0] != 0);
    OK("uname bad pointer", syscall(SYS_uname, BAD));

    struct sysinfo si;
    OK("sysinfo", sysinfo(&si));
    printf("mem_unit %u, totalram > 0: %d, freeram <= totalram: %d, uptime > 0: %d, procs > 0: %d\n", si.mem_unit,
           si.totalram > 0, si.freeram <= si.totalram, si.uptime > 0, si.procs > 0);
    OK("sysinfo bad pointer", syscall(SYS_sysinfo, BAD));

    struct rlimit rl, rl2;
    OK("getrlimit NOFILE", getrlimit(RLIMIT_NOFILE, &rl));
    OK("prlimit64 own pid", prlimit(getpid(), RLIMIT_NOFILE, NULL, &rl2));
    printf("prlimit == getrlimit: %d\n", rl.rlim_cur == rl2.rlim_cur && rl.rlim_max == rl2.rlim_max);
    OK("getrlimit bad resource", syscall(SYS_getrlimit, 99, &rl2));
    OK("getrlimit bad pointer", syscall(SYS_getrlimit, RLIMIT_NOFILE, BAD));
    OK("prlimit64 no such pid", prlimit(NOPID, RLIMIT_NOFILE, NULL, &rl2));
    OK("prlimit64 negative pid", syscall(SYS_prlimit64, -1, RLIMIT_NOFILE, NULL, &rl2));
    struct rlimit small = {64, rl.rlim_max};
    OK("setrlimit NOFILE soft 64", setrlimit(RLIMIT_NOFILE, &small));
    int last = -1, fd;
    while ((fd = dup(0)) >= 0)
        last = fd;
    printf("dup until %s, last fd %d\n", ename(errno), last);
    for (int i = 3; i <= last; i++)
        close(i);
    OK("dup2 to 64", dup2(0, 64));
    OK("F_DUPFD 64", fcntl(0, F_DUPFD, 64));
    OK("F_DUPFD 63", fcntl(0, F_DUPFD, 63));
    close(63);
    struct rlimit old;
    OK("prlimit64 set and get old", prlimit(0, RLIMIT_NOFILE, &rl, &old));
    printf("old soft was 64: %d\n", old.rlim_cur == 64);
    struct rlimit inverted = {10, 5};
    OK("setrlimit soft > hard", setrlimit(RLIMIT_NOFILE, &inverted));
    struct rlimit inf = {RLIM_INFINITY, RLIM_INFINITY};
    OK("setrlimit NOFILE infinity", setrlimit(RLIMIT_NOFILE, &inf));
    struct rlimit core;
    getrlimit(RLIMIT_CORE, &core);
    struct rlimit lower = {0, 0};
    OK("setrlimit CORE 0 0", setrlimit(RLIMIT_CORE, &lower));
    struct rlimit raise_ = {0, 1 << 20};
    old.rlim_cur = 12345;
    errno = 0;
    long r = prlimit(0, RLIMIT_CORE, &raise_, &old);
    printf("raise hard limit: %s, old untouched on failure: %d\n", r ? ename(errno) : "ok",
           r ? old.rlim_cur == 12345 : 1);
    OK("setrlimit bad pointer", syscall(SYS_setrlimit, RLIMIT_CORE, BAD));
    getrlimit(RLIMIT_CORE, &old);
    printf("CORE now %lu %lu\n", (unsigned long)old.rlim_cur, (unsigned long)old.rlim_max);

    struct rusage ru;
    OK("getrusage SELF", getrusage(RUSAGE_SELF, &ru));
    printf("maxrss > 0: %d\n", ru.ru_maxrss > 0);
    OK("getrusage CHILDREN", getrusage(RUSAGE_CHILDREN, &ru));
    OK("getrusage THREAD", getrusage(RUSAGE_THREAD, &ru));
    OK("getrusage bad who", getrusage(7, &ru));
    OK("getrusage bad pointer", syscall(SYS_getrusage, RUSAGE_SELF, BAD));
    struct tms tm;
    clock_t t = times(&tm);
    printf("times > 0: %d\n", t > 0);
    printf("times(NULL) > 0: %d\n", times(NULL) > 0);
    OK("times bad pointer", syscall(SYS_times, BAD));

    cpu_set_t set;
    CPU_ZERO(&set);
    long n = syscall(SYS_sched_getaffinity, 0, sizeof set, &set);
    printf("sched_getaffinity returns %ld bytes\n", n);
    printf("affinity count == nprocs: %d\n", CPU_COUNT(&set) == get_nprocs());
    printf("nprocs_conf >= nprocs: %d\n", get_nprocs_conf() >= get_nprocs());
    printf("sysconf(NPROCESSORS_ONLN) == nprocs: %d\n", sysconf(_SC_NPROCESSORS_ONLN) == get_nprocs());
    OK("sched_getaffinity size 4", syscall(SYS_sched_getaffinity, 0, 4, &set));
    OK("sched_getaffinity size 0", syscall(SYS_sched_getaffinity, 0, 0, &set));
    OK("sched_getaffinity size 12", syscall(SYS_sched_getaffinity, 0, 12, &set));
    OK("sched_getaffinity no such pid", syscall(SYS_sched_getaffinity, NOPID, sizeof set, &set));
    OK("sched_getaffinity bad pointer", syscall(SYS_sched_getaffinity, 0, sizeof set, BAD));
    OK("sched_setaffinity same mask", sched_setaffinity(0, sizeof set, &set));
    cpu_set_t none;
    CPU_ZERO(&none);
    OK("sched_setaffinity empty mask", sched_setaffinity(0, sizeof none, &none));
    OK("sched_setaffinity no such pid", sched_setaffinity(NOPID, sizeof set, &set));
    OK("sched_setaffinity bad pointer", syscall(SYS_sched_setaffinity, 0, sizeof set, BAD));
    OK("sched_yield", sched_yield());
    unsigned cpu = 999, node = 999;
    OK("getcpu", syscall(SYS_getcpu, &cpu, &node, NULL));
    printf("cpu < nprocs_conf: %d, node < 64: %d\n", (int)cpu < get_nprocs_conf(), node < 64);
    OK("getcpu bad pointer", syscall(SYS_getcpu, BAD, NULL, NULL));

    unsigned char rnd[64];
    SHOW("getrandom 64", getrandom(rnd, sizeof rnd, 0));
    SHOW("getrandom GRND_NONBLOCK", getrandom(rnd, 16, GRND_NONBLOCK));
    SHOW("getrandom GRND_RANDOM", getrandom(rnd, 16, GRND_RANDOM));
    SHOW("getrandom 0 bytes", getrandom(rnd, 0, 0));
    SHOW("getrandom bad flags", getrandom(rnd, 16, 0x40));
    SHOW("getrandom RANDOM|INSECURE", getrandom(rnd, 16, GRND_RANDOM | 4));
    SHOW("getrandom bad pointer", getrandom(BAD, 16, 0));
    unsigned char a[32], b[32];
    getrandom(a, 32, 0);
    getrandom(b, 32, 0);
    printf("two draws differ: %d\n", memcmp(a, b, 32) != 0);

    SHOW("getpriority raw", syscall(SYS_getpriority, PRIO_PROCESS, 0));
    SHOW("setpriority 5", setpriority(PRIO_PROCESS, 0, 5));
    SHOW("getpriority raw now", syscall(SYS_getpriority, PRIO_PROCESS, getpid()));
    SHOW("setpriority 100 (clamped to 19)", setpriority(PRIO_PROCESS, 0, 100));
    SHOW("getpriority raw now", syscall(SYS_getpriority, PRIO_PROCESS, 0));
    SHOW("getpriority bad which", syscall(SYS_getpriority, 9, 0));
    SHOW("setpriority bad which", setpriority(9, 0, 0));
    SHOW("getpriority no such pid", syscall(SYS_getpriority, PRIO_PROCESS, NOPID));
    SHOW("setpriority no such pid", setpriority(PRIO_PROCESS, NOPID, 1));

    SHOW("personality query", personality(0xffffffff));
    SHOW("personality set ADDR_NO_RANDOMIZE", personality(ADDR_NO_RANDOMIZE));
    SHOW("personality query", personality(0xffffffff));
    SHOW("personality back to PER_LINUX", personality(PER_LINUX));
    SHOW("personality query", personality(0xffffffff));

    /* credentials: what happens depends on whether we start privileged; last, since it drops privileges */
    ids("start");
    int privileged = geteuid() == 0;
    printf("privileged: %d\n", privileged);
    gid_t grp[3] = {30, 10, 20};
    OK("setgroups", setgroups(3, grp));
    OK("setgroups bad pointer", setgroups(2, BAD));
    OK("setgroups too many", syscall(SYS_setgroups, 70000, grp));
    ids("after setgroups");
    OK("setresgid 100 200 300", setresgid(100, 200, 300));
    ids("after setresgid");
    OK("setregid -1 300", setregid(-1, 300));
    ids("after setregid");
    SHOW("setfsgid 200", setfsgid(200));
    SHOW("setfsgid query", setfsgid(-1));
    OK("setgid 100", setgid(100));
    ids("after setgid");
    OK("setresuid 1000 1001 0", setresuid(1000, 1001, 0));
    ids("after setresuid");
    SHOW("setfsuid 1000", setfsuid(1000));
    SHOW("setfsuid 4242 (not allowed unprivileged)", setfsuid(4242));
    SHOW("setfsuid query", setfsuid(-1));
    OK("setuid 2000", setuid(2000));
    OK("setuid 1000", setuid(1000));
    ids("after setuid 1000");
    OK("setresuid -1 0 -1 (back to saved 0)", setresuid(-1, 0, -1));
    ids("after regaining euid 0");
    OK("setreuid 1000 1002", setreuid(1000, 1002));
    ids("after setreuid");
    OK("setreuid -1 1000", setreuid(-1, 1000));
    ids("after setreuid -1 1000");
    OK("setresuid 1000 1000 1000 (drop all)", setresuid(1000, 1000, 1000));
    OK("setresuid no-op", setresuid(-1, 1000, -1));
    ids("after dropping");
    OK("setuid 0", setuid(0));
    OK("seteuid 0", seteuid(0));
    OK("setgid 5", setgid(5));
    OK("setgroups unprivileged", setgroups(1, grp));
    OK("setresgid to saved", setresgid(-1, 300, -1));
    OK("setresgid 7 7 7", setresgid(7, 7, 7));
    OK("setuid -1", syscall(SYS_setuid, -1));
    SHOW("setpriority lower nice unprivileged", setpriority(PRIO_PROCESS, 0, 0));
    ids("end");
    return 0;
}
