/* Credentials that bind: run as root, the program makes a directory of its own in /tmp with a file only root may
 * read, then gives up root step by step (groups, gids, the effective uid, then all of them) and prints what each
 * file access, chmod, kill and set*id call gives: EACCES/EPERM exactly where Linux gives them. A fork child after
 * the drop, and capset dropping CAP_DAC_OVERRIDE while still uid 0, are checked the same way; so are prctl's
 * capability options (the bounding set, PR_SET_KEEPCAPS across a drop, PR_SET_NO_NEW_PRIVS), in a child of their
 * own. A parent that stays root removes the directory at the end.
 * Usage: creds (as root; as another user it says so and exits 0). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <stdint.h>
#include <unistd.h>

struct cap_header { uint32_t version; int pid; };        /* linux/capability.h, which musl does not ship */
struct cap_data { uint32_t effective, permitted, inheritable; };
#define CAP_V3 0x20080522
#define CAP_DAC_OVERRIDE 1
#define CAP_DAC_READ_SEARCH 2

#define NOBODY 65534

static char dir[64], secret[96], open_file[96], sub[96];

static const char *err_name(int e)
{
    switch (e) {
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EINVAL: return "EINVAL";
    default: return strerror(e);
    }
}

static void show(const char *what, long r)
{
    if (r < 0)
        printf("  %s: -1 %s\n", what, err_name(errno));
    else
        printf("  %s: ok\n", what);
}

static long read_secret(void)
{
    int fd = open(secret, O_RDONLY);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

static void accesses(const char *stage)
{
    printf("%s (uid %d euid %d, gid %d egid %d):\n", stage, (int)getuid(), (int)geteuid(), (int)getgid(),
           (int)getegid());
    show("open the root-only file", read_secret());
    show("open a world-readable file", open(open_file, O_RDONLY) < 0 ? -1 : 0);
    show("create in the root-owned directory", open(sub, O_WRONLY | O_CREAT, 0644) < 0 ? -1 : 0);
    unlink(sub);
    show("chmod the root-only file", chmod(secret, 0600));
    show("kill(1, 0)", kill(1, 0));
    printf("  dumpable %d\n", prctl(PR_GET_DUMPABLE));
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 3 && !strcmp(argv[1], "caps")) {   /* after an execve; argv[2]: the root-only file */
        struct cap_header h = {CAP_V3, 0};
        struct cap_data d[2];
        syscall(SYS_capget, &h, d);
        printf("  after execve: permitted %s, PR_GET_KEEPCAPS %d\n", d[0].permitted || d[1].permitted ? "kept" : "none",
               prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0));
        show("open the root-only file", open(argv[2], O_RDONLY) < 0 ? -1 : 0);
        return 0;
    }
    if (geteuid() != 0) {
        printf("not root: nothing to give up\n");
        return 0;
    }
    snprintf(dir, sizeof dir, "/tmp/creds.XXXXXX");
    if (!mkdtemp(dir) || chmod(dir, 0755))
        return 1;
    snprintf(secret, sizeof secret, "%s/secret", dir);
    snprintf(open_file, sizeof open_file, "%s/open", dir);
    snprintf(sub, sizeof sub, "%s/new", dir);
    close(open(secret, O_WRONLY | O_CREAT, 0600));
    close(open(open_file, O_WRONLY | O_CREAT, 0644));
    pid_t dropper = fork();            /* this process stays root, to clean up */
    if (dropper) {
        int status;
        waitpid(dropper, &status, 0);
        unlink(secret);
        unlink(open_file);
        rmdir(dir);
        return WEXITSTATUS(status);
    }

    pid_t keeper = fork();             /* prctl's capability options, in a child of their own */
    if (keeper == 0) {
        printf("prctl:\n");
        printf("  PR_CAPBSET_READ CAP_NET_RAW: %d\n", prctl(PR_CAPBSET_READ, 13, 0, 0, 0));
        show("PR_CAPBSET_DROP CAP_NET_RAW", prctl(PR_CAPBSET_DROP, 13, 0, 0, 0));
        printf("  PR_CAPBSET_READ CAP_NET_RAW: %d\n", prctl(PR_CAPBSET_READ, 13, 0, 0, 0));
        show("PR_CAPBSET_READ 1000", prctl(PR_CAPBSET_READ, 1000, 0, 0, 0));
        show("PR_SET_KEEPCAPS 2", prctl(PR_SET_KEEPCAPS, 2, 0, 0, 0));
        show("PR_SET_KEEPCAPS 1", prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0));
        printf("  PR_GET_KEEPCAPS: %d\n", prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0));
        show("setresuid 65534 keeping capabilities", setresuid(NOBODY, NOBODY, NOBODY));
        struct cap_header kh = {CAP_V3, 0};
        struct cap_data kd[2];
        syscall(SYS_capget, &kh, kd);
        printf("  permitted kept %s, effective cleared %s\n", kd[0].permitted ? "yes" : "no",
               kd[0].effective ? "no" : "yes");
        kd[0].effective = 1u << CAP_DAC_OVERRIDE;      /* raised again from the permitted set */
        show("capset effective CAP_DAC_OVERRIDE", syscall(SYS_capset, &kh, kd));
        show("open the root-only file with it", read_secret());
        pid_t execer = fork();                      /* execve as uid 65534: the kept capabilities go */
        if (execer == 0) {
            execl("/proc/self/exe", "creds", "caps", secret, (char *)NULL);
            _exit(127);
        }
        waitpid(execer, NULL, 0);
        show("PR_SET_NO_NEW_PRIVS 2", prctl(PR_SET_NO_NEW_PRIVS, 2, 0, 0, 0));
        show("PR_SET_NO_NEW_PRIVS 1", prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
        printf("  PR_GET_NO_NEW_PRIVS: %d\n", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
        fflush(stdout);
        _exit(0);
    }
    waitpid(keeper, NULL, 0);

    accesses("root");

    /* capset: CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH dropped from the effective set, still uid 0 */
    struct cap_header h = {CAP_V3, 0};
    struct cap_data d[2];
    syscall(SYS_capget, &h, d);
    struct cap_data saved[2] = {d[0], d[1]};
    d[0].effective &= ~((1u << CAP_DAC_OVERRIDE) | (1u << CAP_DAC_READ_SEARCH));
    chmod(secret, 0000);
    show("capset without CAP_DAC_OVERRIDE", syscall(SYS_capset, &h, d));
    show("open a mode-0 file as uid 0 without it", read_secret());
    show("capset back", syscall(SYS_capset, &h, saved));
    show("open a mode-0 file as uid 0 with it", read_secret());
    chmod(secret, 0600);

    gid_t none[1] = {NOBODY};
    show("setgroups [65534]", setgroups(1, none));
    show("setresgid 65534", setresgid(NOBODY, NOBODY, NOBODY));
    show("seteuid 65534", setresuid(-1, NOBODY, -1));
    accesses("effective uid 65534, saved uid 0");
    show("seteuid 0 again (the saved uid)", setresuid(-1, 0, -1));
    accesses("effective uid 0 again");

    show("setresuid 65534 for good", setresuid(NOBODY, NOBODY, NOBODY));
    accesses("uid 65534");
    show("setuid 0", setuid(0));
    show("setresuid -1, 0, -1", setresuid(-1, 0, -1));
    show("setgroups [0]", setgroups(1, (gid_t[]){0}));

    pid_t child = fork();
    if (child == 0) {
        printf("fork child:\n");
        show("open the root-only file", read_secret());
        show("setuid 0", setuid(0));
        _exit(0);
    }
    int status;
    waitpid(child, &status, 0);
    printf("child exited %d\n", WEXITSTATUS(status));
    fflush(stdout);
    _exit(0);
}
