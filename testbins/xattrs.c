/* xattrs: extended attributes -- set/get/list/remove on paths, links and fds; size queries, ERANGE,
 * XATTR_CREATE/XATTR_REPLACE, missing attributes and files, bad names and pointers, /proc files.
 * Runs in a fresh temporary directory; prints only facts and errno names. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

static const char *ename(int e)
{
    switch (e) {
    case 0: return "0";
    case ENOENT: return "ENOENT";
    case EBADF: return "EBADF";
    case EFAULT: return "EFAULT";
    case EEXIST: return "EEXIST";
    case ENODATA: return "ENODATA";
    case ERANGE: return "ERANGE";
    case E2BIG: return "E2BIG";
    case EINVAL: return "EINVAL";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ENOTDIR: return "ENOTDIR";
    default: return "other";
    }
}

#define SHOW(label, expr) do { errno = 0; long r_ = (long)(expr); \
    if (r_ < 0) printf("%s: -1 %s\n", label, ename(errno)); else printf("%s: %ld\n", label, r_); } while (0)

static void *volatile bad_ptr = (void *)16;

/* listxattr output, sorted, so that the host file system's order does not matter */
static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void show_list(const char *label, const char *buf, ssize_t n)
{
    const char *names[64];
    int count = 0;
    for (ssize_t off = 0; off < n && count < 64; off += strlen(buf + off) + 1)
        if (strncmp(buf + off, "security.", 9) != 0)      /* e.g. SELinux labels the host may add */
            names[count++] = buf + off;
    qsort(names, count, sizeof *names, cmp);
    printf("%s:", label);
    for (int i = 0; i < count; i++)
        printf(" %s", names[i]);
    printf("\n");
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    int fd = open("file", O_RDWR | O_CREAT, 0644);
    if (fd < 0 || symlink("file", "link") < 0 || mkdir("dir", 0755) < 0) {
        perror("setup");
        return 1;
    }
    errno = 0;
    if (setxattr("file", "user.probe", "x", 1, 0) < 0 && errno == EOPNOTSUPP) {
        printf("no user xattrs on this file system\n");   /* the same natively and under hermipy */
        return 0;
    }
    removexattr("file", "user.probe");

    SHOW("setxattr user.color", setxattr("file", "user.color", "blue", 4, 0));
    SHOW("setxattr XATTR_CREATE existing", setxattr("file", "user.color", "red", 3, XATTR_CREATE));
    SHOW("setxattr XATTR_REPLACE missing", setxattr("file", "user.size", "1", 1, XATTR_REPLACE));
    SHOW("setxattr XATTR_REPLACE", setxattr("file", "user.color", "green", 5, XATTR_REPLACE));
    SHOW("setxattr both flags", setxattr("file", "user.color", "x", 1, XATTR_CREATE | XATTR_REPLACE));
    SHOW("setxattr bad flags", setxattr("file", "user.color", "x", 1, 4));
    SHOW("setxattr empty value", setxattr("file", "user.empty", "", 0, 0));
    SHOW("fsetxattr", fsetxattr(fd, "user.via_fd", "fd-value", 8, 0));
    SHOW("setxattr on dir", setxattr("dir", "user.d", "dirval", 6, 0));
    SHOW("setxattr unknown namespace", setxattr("file", "bogus.name", "x", 1, 0));
    SHOW("setxattr no namespace", setxattr("file", "plain", "x", 1, 0));
    SHOW("setxattr too big", setxattr("file", "user.big", "x", 65537, 0));
    SHOW("lsetxattr user on symlink", lsetxattr("link", "user.l", "x", 1, 0));

    char buf[256];
    SHOW("getxattr size query", getxattr("file", "user.color", NULL, 0));
    ssize_t n = getxattr("file", "user.color", buf, sizeof buf);
    printf("getxattr: %zd %.*s\n", n, (int)(n > 0 ? n : 0), buf);
    SHOW("getxattr buffer too small", getxattr("file", "user.color", buf, 2));
    SHOW("getxattr empty value", getxattr("file", "user.empty", buf, sizeof buf));
    SHOW("getxattr missing", getxattr("file", "user.nothing", buf, sizeof buf));
    n = lgetxattr("link", "user.color", buf, sizeof buf);
    printf("lgetxattr on symlink: %zd %s\n", n, n < 0 ? ename(errno) : "");
    n = getxattr("link", "user.color", buf, sizeof buf);
    printf("getxattr through symlink: %zd %.*s\n", n, (int)(n > 0 ? n : 0), buf);
    n = fgetxattr(fd, "user.via_fd", buf, sizeof buf);
    printf("fgetxattr: %zd %.*s\n", n, (int)(n > 0 ? n : 0), buf);
    n = getxattr("dir", "user.d", buf, sizeof buf);
    printf("getxattr on dir: %zd %.*s\n", n, (int)(n > 0 ? n : 0), buf);
    SHOW("getxattr missing file", getxattr("nofile", "user.color", buf, sizeof buf));
    SHOW("getxattr missing file, bad name", getxattr("nofile", "", buf, sizeof buf));
    SHOW("getxattr empty name", getxattr("file", "", buf, sizeof buf));
    char longname[300];
    memset(longname, 'a', sizeof longname);
    memcpy(longname, "user.", 5);
    longname[299] = 0;
    SHOW("getxattr long name", getxattr("file", longname, buf, sizeof buf));
    SHOW("getxattr bad name pointer", getxattr("file", (const char *)bad_ptr, buf, sizeof buf));
    SHOW("getxattr bad value pointer", getxattr("file", "user.color", bad_ptr, sizeof buf));
    SHOW("getxattr bad path pointer", getxattr((const char *)bad_ptr, "user.color", buf, sizeof buf));
    SHOW("fgetxattr bad fd", fgetxattr(99, "user.color", buf, sizeof buf));
    SHOW("getxattr under a file", getxattr("file/x", "user.color", buf, sizeof buf));

    char list[512];
    n = listxattr("file", list, sizeof list);
    show_list("listxattr", list, n);
    ssize_t need = listxattr("file", NULL, 0);
    printf("listxattr size query matches: %d\n", need == n);
    SHOW("listxattr buffer too small", listxattr("file", list, 3));
    n = flistxattr(fd, list, sizeof list);
    show_list("flistxattr", list, n);
    n = llistxattr("link", list, sizeof list);
    show_list("llistxattr", list, n);
    SHOW("listxattr missing file", listxattr("nofile", list, sizeof list));
    SHOW("flistxattr bad fd", flistxattr(99, list, sizeof list));

    SHOW("removexattr", removexattr("file", "user.color"));
    SHOW("removexattr again", removexattr("file", "user.color"));
    SHOW("fremovexattr", fremovexattr(fd, "user.via_fd"));
    SHOW("lremovexattr on symlink", lremovexattr("link", "user.empty"));
    SHOW("removexattr through symlink", removexattr("link", "user.empty"));
    n = listxattr("file", list, sizeof list);
    show_list("after removal", list, n);

    SHOW("getxattr /proc/self/status", getxattr("/proc/self/status", "user.x", buf, sizeof buf));
    close(fd);
    return 0;
}
