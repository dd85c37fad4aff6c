#define _GNU_SOURCE
/* For tests/test_isolation.py (issue 13 item 2): what a program confined to a root may do to the /dev and /proc
 * files it shares with the host. Run in its root (needs /tmp); for each node: reads and writes, then every call
 * that would change its metadata, name or links, by path, by fd and through /proc/self/fd/N; one line each:
 * "NODE CALL: ok" or "errno N". */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <termios.h>
#include <unistd.h>

static const char *node;

static void say(const char *call, long result) {
    if (result < 0)
        printf("%s %s: errno %d\n", node, call, errno);
    else
        printf("%s %s: ok\n", node, call);
}

static long rename2(const char *old, const char *new, unsigned flags) {
    return syscall(SYS_renameat2, AT_FDCWD, old, AT_FDCWD, new, flags);
}

static void fresh(const char *path) {
    unlink(path);
    close(open(path, O_CREAT | O_WRONLY, 0644));
}

static void by_fd(int flags, const char *how) {
    int fd = open(node, flags);
    char call[64];
    snprintf(call, sizeof call, "open(%s)", how);
    say(call, fd);
    if (fd < 0)
        return;
    char magic[32];
    snprintf(magic, sizeof magic, "/proc/self/fd/%d", fd);
    say("fchmod", fchmod(fd, 0600));
    say("fchown", fchown(fd, 1, 1));
    say("futimens", futimens(fd, NULL));
    say("ftruncate", ftruncate(fd, 0));
    say("fsetxattr", fsetxattr(fd, "user.hermipy", "v", 1, 0));
    say("fremovexattr", fremovexattr(fd, "user.hermipy"));
    say("linkat(fd, \"\", AT_EMPTY_PATH)", linkat(fd, "", AT_FDCWD, "/tmp/linked", AT_EMPTY_PATH));
    unlink("/tmp/linked");
    say("chmod(/proc/self/fd/N)", chmod(magic, 0600));
    say("chown(/proc/self/fd/N)", chown(magic, 1, 1));
    say("utimensat(/proc/self/fd/N)", utimensat(AT_FDCWD, magic, NULL, 0));
    say("truncate(/proc/self/fd/N)", truncate(magic, 0));
    say("setxattr(/proc/self/fd/N)", setxattr(magic, "user.hermipy", "v", 1, 0));
    say("link(/proc/self/fd/N, AT_SYMLINK_FOLLOW)",
        linkat(AT_FDCWD, magic, AT_FDCWD, "/tmp/linked", AT_SYMLINK_FOLLOW));
    unlink("/tmp/linked");
    say("rename(/proc/self/fd/N)", rename(magic, "/tmp/renamed"));
    struct termios t;
    if (!(flags & O_PATH))
        say("ioctl(TCGETS)", ioctl(fd, TCGETS, &t));
    close(fd);
}

static void probe(void) {
    char buf[16];
    struct stat st;
    say("stat", stat(node, &st));
    printf("%s type %o\n", node, st.st_mode & S_IFMT);
    int fd = open(node, O_RDONLY);
    say("read", fd < 0 ? -1 : read(fd, buf, 1));
    close(fd);
    fd = open(node, O_WRONLY);
    say("open(O_WRONLY)", fd);
    if (fd >= 0) {
        say("write", write(fd, "x", 1));
        close(fd);
    }
    say("open(O_RDONLY|O_TRUNC)", fd = open(node, O_RDONLY | O_TRUNC));
    close(fd);
    say("open(O_CREAT|O_EXCL)", fd = open(node, O_CREAT | O_EXCL | O_WRONLY, 0600));
    close(fd);
    say("access(W_OK)", access(node, W_OK));
    say("access(R_OK)", access(node, R_OK));
    say("chmod", chmod(node, 0600));
    say("fchmodat", fchmodat(AT_FDCWD, node, 0600, 0));
    say("chown", chown(node, 1, 1));
    say("chown(-1, -1)", chown(node, -1, -1));
    say("lchown", lchown(node, 1, 1));
    say("utimensat(NULL)", utimensat(AT_FDCWD, node, NULL, 0));
    struct timespec ts[2] = {{1, 0}, {2, 0}};
    say("utimensat(times)", utimensat(AT_FDCWD, node, ts, AT_SYMLINK_NOFOLLOW));
    say("truncate", truncate(node, 0));
    say("setxattr", setxattr(node, "user.hermipy", "v", 1, 0));
    say("lsetxattr", lsetxattr(node, "user.hermipy", "v", 1, 0));
    say("removexattr", removexattr(node, "user.hermipy"));
    say("getxattr", getxattr(node, "user.hermipy", buf, sizeof buf));
    say("unlink", unlink(node));
    say("rmdir", rmdir(node));
    say("unlinkat(AT_REMOVEDIR)", unlinkat(AT_FDCWD, node, AT_REMOVEDIR));
    say("mkdir", mkdir(node, 0755));
    say("mknod(fifo)", mknod(node, S_IFIFO | 0600, 0));
    say("symlink", symlink("/tmp/f", node));
    say("rename(node, /tmp/renamed)", rename(node, "/tmp/renamed"));
    say("rename(node, itself)", rename(node, node));
    fresh("/tmp/f");
    say("rename(/tmp/f, node)", rename("/tmp/f", node));
    say("renameat2(/tmp/f, node, RENAME_NOREPLACE)", rename2("/tmp/f", node, 1));
    say("renameat2(/tmp/f, node, RENAME_EXCHANGE)", rename2("/tmp/f", node, 2));
    mkdir("/tmp/d", 0755);
    say("rename(/tmp/d, node)", rename("/tmp/d", node));
    rmdir("/tmp/d");
    say("link(node, /tmp/linked)", link(node, "/tmp/linked"));
    unlink("/tmp/linked");
    say("link(/tmp/f, node)", link("/tmp/f", node));
    say("stat after", stat(node, &st));
    by_fd(O_RDONLY, "O_RDONLY");
    by_fd(O_PATH, "O_PATH");
}

static const char *nodes[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty",
                              "/proc/cpuinfo", "/proc/meminfo", "/proc/version", "/proc/uptime", "/proc/loadavg",
                              "/proc/stat", "/proc/filesystems"};

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (unsigned i = 0; i < sizeof nodes / sizeof *nodes; i++) {
        node = nodes[i];
        probe();
    }
    node = "/dev";
    say("rename(/dev/null, /dev/moved)", rename("/dev/null", "/dev/moved"));
    say("link(/dev/null, /dev/linked)", link("/dev/null", "/dev/linked"));
    return 0;
}
