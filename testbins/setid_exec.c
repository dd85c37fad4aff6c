/* execve of set-user-ID, set-group-ID and capability-carrying files (fs/exec.c bprm_fill_uid, security/commoncap.c
 * cap_bprm_creds_from_file): run as root, the program copies itself into a directory of its own in /tmp as files
 * owned by other users, with set-id bits or a security.capability xattr, then execs them from children in various
 * credential states. Each exec'd copy reports its ids, capability sets, AT_SECURE, dumpable flag, whether
 * LD_LIBRARY_PATH survived (glibc drops it in a secure exec) and whether the host let it read a root-only file.
 * Usage: setid_exec (as root; as another user it says so and exits 0);
 *        setid_exec report SECRET (what an exec'd copy prints);
 *        setid_exec regain (hermipy's own check: a guest that gave up root execs set-user-ID-root and file-capability
 *        copies; natively those give root or capabilities back, under hermipy they must not). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

struct cap_header { uint32_t version; int pid; };        /* linux/capability.h, which musl does not ship */
struct cap_data { uint32_t effective, permitted, inheritable; };
#define CAP_V3 0x20080522
#define CAP_DAC_OVERRIDE 1
#define CAP_DAC_READ_SEARCH 2
#define VFS_CAP_REVISION_2 0x02000000
#define VFS_CAP_FLAGS_EFFECTIVE 0x000001
#define NOBODY 65534

static char dir[64], secret[96];

static void report(const char *file)
{
    uid_t r, e, s;
    gid_t rg, eg, sg;
    getresuid(&r, &e, &s);
    getresgid(&rg, &eg, &sg);
    struct cap_header h = {CAP_V3, 0};
    struct cap_data d[2];
    syscall(SYS_capget, &h, d);
    uint64_t eff = d[0].effective | (uint64_t)d[1].effective << 32;
    uint64_t prm = d[0].permitted | (uint64_t)d[1].permitted << 32;
    int fd = open(file, O_RDONLY);
    printf("  uids %d %d %d, gids %d %d %d, permitted %#llx, effective %#llx, AT_SECURE %lu, dumpable %d, "
           "LD_LIBRARY_PATH %s, root-only file %s\n", (int)r, (int)e, (int)s, (int)rg, (int)eg, (int)sg,
           (unsigned long long)prm, (unsigned long long)eff, getauxval(AT_SECURE), prctl(PR_GET_DUMPABLE),
           getenv("LD_LIBRARY_PATH") ? "kept" : "gone", fd >= 0 ? "read" : strerror(errno));
    if (fd >= 0)
        close(fd);
    FILE *status = fopen("/proc/self/status", "r");      /* the same, as /proc says it */
    char line[256];
    while (status && fgets(line, sizeof line, status))
        if (!strncmp(line, "Uid:", 4) || !strncmp(line, "Gid:", 4) || !strncmp(line, "Cap", 3) ||
            !strncmp(line, "NoNewPrivs:", 11))
            printf("    %s", line);
    if (status)
        fclose(status);
}

static int copy_self(const char *name, uid_t owner, gid_t group, mode_t mode)
{
    char path[128], buf[65536];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int in = open("/proc/self/exe", O_RDONLY), out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0700);
    ssize_t n;
    if (in < 0 || out < 0)
        return -1;
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, n) != n)
            return -1;
    close(in);
    close(out);
    return chown(path, owner, group) || chmod(path, mode) ? -1 : 0;    /* chown clears set-id bits: chmod last */
}

static int give_caps(const char *name, uint32_t permitted, int effective)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    uint32_t caps[5] = {VFS_CAP_REVISION_2 | (effective ? VFS_CAP_FLAGS_EFFECTIVE : 0), permitted, 0, 0, 0};
    return setxattr(path, "security.capability", caps, sizeof caps, 0);
}

static void show(const char *what, int r)
{
    printf("  %s: %d%s%s\n", what, r, r < 0 ? " " : "", r < 0 ? strerror(errno) : "");
}

/* PR_CAP_AMBIENT's rules, then uid 65534 with CAP_DAC_OVERRIDE in its ambient set (kept across the drop with
 * PR_SET_KEEPCAPS, made inheritable, raised): a plain exec keeps it, a set-id exec loses it. */
static void ambient(void)
{
    show("raise, not inheritable", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_DAC_OVERRIDE, 0, 0));
    show("raise, bad capability", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, 1000, 0, 0));
    show("is set, arg4 given", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_DAC_OVERRIDE, 1, 0));
    show("clear all, arg3 given", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 1, 0, 0));
    show("operation 9", prctl(PR_CAP_AMBIENT, 9, CAP_DAC_OVERRIDE, 0, 0));
    prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0);
    setresuid(NOBODY, NOBODY, NOBODY);
    struct cap_header h = {CAP_V3, 0};
    struct cap_data d[2];
    syscall(SYS_capget, &h, d);
    d[0].inheritable = 1u << CAP_DAC_OVERRIDE | 1u << CAP_DAC_READ_SEARCH;
    show("capset inheritable", syscall(SYS_capset, &h, d));
    show("raise CAP_DAC_OVERRIDE", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_DAC_OVERRIDE, 0, 0));
    show("raise CAP_DAC_READ_SEARCH", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_DAC_READ_SEARCH, 0, 0));
    show("lower CAP_DAC_READ_SEARCH", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_LOWER, CAP_DAC_READ_SEARCH, 0, 0));
    show("is set CAP_DAC_OVERRIDE", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_DAC_OVERRIDE, 0, 0));
    show("is set CAP_DAC_READ_SEARCH", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_DAC_READ_SEARCH, 0, 0));
    fflush(stdout);
}

/* In a child: set the credentials ``how`` says, then exec the copy ``name``. */
static void exec_in_child(const char *title, const char *how, const char *name)
{
    printf("%s:\n", title);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (!strcmp(how, "seteuid"))
            setresuid(-1, NOBODY, -1);
        else if (!strcmp(how, "saved-root"))
            setresuid(NOBODY, NOBODY, 0);
        else if (!strcmp(how, "dropped"))
            setresuid(NOBODY, NOBODY, NOBODY);
        else if (!strcmp(how, "keepcaps")) {
            prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0);
            setresuid(NOBODY, NOBODY, NOBODY);
        } else if (!strcmp(how, "ambient")) {
            ambient();
        } else if (!strcmp(how, "no-new-privs"))
            prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        char path[128];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        execl(path, name, "report", secret, (char *)NULL);
        printf("  execl: %s\n", strerror(errno));
        fflush(stdout);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status))
        printf("  status %#x\n", status);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 3 && !strcmp(argv[argc - 2], "report")) {      /* a script's interpreter gets the script first */
        report(argv[argc - 1]);
        return 0;
    }
    if (geteuid() != 0) {
        printf("not root: no file of another owner to make\n");
        return 0;
    }
    setenv("LD_LIBRARY_PATH", "/nonexistent", 1);
    snprintf(dir, sizeof dir, "/tmp/setid.XXXXXX");
    if (!mkdtemp(dir) || chmod(dir, 0755))
        return 1;
    snprintf(secret, sizeof secret, "%s/secret", dir);
    close(open(secret, O_WRONLY | O_CREAT, 0600));
    if (copy_self("plain", 0, 0, 0755) || copy_self("setuid-nobody", NOBODY, 0, 04755) ||
        copy_self("setgid-nobody", 0, NOBODY, 02755) || copy_self("setgid-no-gx", 0, NOBODY, 02745) ||
        copy_self("setuid-root", 0, 0, 04755) || copy_self("caps", 0, 0, 0755) ||
        give_caps("caps", 1u << CAP_DAC_OVERRIDE | 1u << CAP_DAC_READ_SEARCH, 1)) {
        printf("setting up: %s\n", strerror(errno));
        return 1;
    }
    char script[128];                   /* a set-user-ID script: Linux ignores the bit of a #! file */
    snprintf(script, sizeof script, "%s/setuid-script", dir);
    FILE *f = fopen(script, "w");
    fprintf(f, "#!%s/plain\n", dir);
    fclose(f);
    chown(script, NOBODY, 0);
    chmod(script, 04755);

    if (argc == 2 && !strcmp(argv[1], "regain")) {
        exec_in_child("uid 65534 for good execs a set-user-ID-root file", "dropped", "setuid-root");
        exec_in_child("uid 65534 for good execs a file with capabilities", "dropped", "caps");
    } else {
        exec_in_child("root execs a plain file", "root", "plain");
        exec_in_child("root execs a set-user-ID file of uid 65534", "root", "setuid-nobody");
        exec_in_child("root execs a set-group-ID file of gid 65534", "root", "setgid-nobody");
        exec_in_child("root execs a set-group-ID file without g+x", "root", "setgid-no-gx");
        exec_in_child("root execs a set-user-ID script", "root", "setuid-script");
        exec_in_child("root with no_new_privs execs a set-user-ID file", "no-new-privs", "setuid-nobody");
        exec_in_child("effective uid 65534, saved 0, execs a plain file", "seteuid", "plain");
        exec_in_child("uid 65534, saved 0, execs a set-user-ID-root file", "saved-root", "setuid-root");
        exec_in_child("uid 65534 for good execs a plain file", "dropped", "plain");
        exec_in_child("uid 65534 keeping capabilities execs a file with capabilities", "keepcaps", "caps");
        exec_in_child("uid 65534 keeping capabilities execs a plain file", "keepcaps", "plain");
        exec_in_child("uid 65534 with an ambient capability execs a plain file", "ambient", "plain");
        exec_in_child("uid 65534 with an ambient capability execs a set-group-ID file", "ambient", "setgid-nobody");
        exec_in_child("uid 65534 with an ambient capability execs a file with capabilities", "ambient", "caps");
    }
    const char *names[] = {"plain", "setuid-nobody", "setgid-nobody", "setgid-no-gx", "setuid-root", "caps",
                           "setuid-script", "secret"};
    for (unsigned i = 0; i < sizeof names / sizeof *names; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
    return 0;
}
