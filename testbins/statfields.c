/* Deterministic stat fields (mode, type, size, nlink, rdev), stat/fstat/statx agreement, statfs f_type. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* struct statx as in include/uapi/linux/stat.h (musl's headers may lack it) */
struct xts { long long tv_sec; unsigned tv_nsec; int pad; };
struct xstat {
    unsigned stx_mask, stx_blksize; unsigned long long stx_attributes;
    unsigned stx_nlink, stx_uid, stx_gid; unsigned short stx_mode, pad0;
    unsigned long long stx_ino, stx_size, stx_blocks, stx_attributes_mask;
    struct xts stx_atime, stx_btime, stx_ctime, stx_mtime;
    unsigned stx_rdev_major, stx_rdev_minor, stx_dev_major, stx_dev_minor;
    unsigned long long spare[14];
};
#define XSTATX_TYPE 1
#define XSTATX_BASIC_STATS 0x7ff

static const char *type(mode_t m) {
    return S_ISREG(m) ? "reg" : S_ISDIR(m) ? "dir" : S_ISLNK(m) ? "lnk" : S_ISCHR(m) ? "chr" :
           S_ISFIFO(m) ? "fifo" : S_ISSOCK(m) ? "sock" : "blk";
}

static void show(const char *p, int follow) {
    struct stat st;
    long r = follow ? stat(p, &st) : lstat(p, &st);
    if (r < 0) { printf("%s: %s\n", p, strerror(errno)); return; }
    printf("%s: %s %o size=%ld nlink=%ld", p, type(st.st_mode), st.st_mode & 07777,
           S_ISDIR(st.st_mode) ? -1L : (long)st.st_size, S_ISDIR(st.st_mode) ? -1L : (long)st.st_nlink);
    if (S_ISCHR(st.st_mode)) printf(" rdev=%u,%u", major(st.st_rdev), minor(st.st_rdev));
    printf(" uid_ok=%d\n", st.st_uid == geteuid());
}

static void compare(const char *p) {
    struct stat a, b;
    struct xstat x;
    int fd = open(p, O_RDONLY);
    if (fd < 0) { printf("%s: open %s\n", p, strerror(errno)); return; }
    int ok = stat(p, &a) == 0 && fstat(fd, &b) == 0;
    long r = syscall(SYS_statx, AT_FDCWD, p, 0, XSTATX_BASIC_STATS, &x);
    printf("%s: stat/fstat same ino %d dev %d mode %d; statx %ld ino %d mode %d size %d nlink %d dev %d mask %d\n",
           p, ok && a.st_ino == b.st_ino, a.st_dev == b.st_dev, a.st_mode == b.st_mode, r,
           x.stx_ino == a.st_ino, x.stx_mode == a.st_mode, (long)x.stx_size == (long)a.st_size,
           x.stx_nlink == a.st_nlink, makedev(x.stx_dev_major, x.stx_dev_minor) == a.st_dev,
           (x.stx_mask & XSTATX_BASIC_STATS) == XSTATX_BASIC_STATS);
    r = syscall(SYS_statx, fd, "", AT_EMPTY_PATH, XSTATX_BASIC_STATS, &x);
    printf("  statx empty path %ld ino %d mtime %d\n", r, x.stx_ino == a.st_ino,
           x.stx_mtime.tv_sec == a.st_mtim.tv_sec && x.stx_mtime.tv_nsec == a.st_mtim.tv_nsec);
    close(fd);
}

static void fs(const char *p) {
    struct statfs s;
    int fd = open(p, O_RDONLY);
    long r = statfs(p, &s);
    struct statfs s2;
    long r2 = fstatfs(fd, &s2);
    printf("statfs %s: %ld type=%lx fstatfs %ld same %d namelen %ld\n", p, r, (long)s.f_type, r2,
           s.f_type == s2.f_type && s.f_bsize == s2.f_bsize, (long)s.f_namelen);
    close(fd);
}

int main(void) {
    int fd = open("file", O_CREAT | O_WRONLY, 0640);
    write(fd, "0123456789", 10);
    close(fd);
    mkdir("dir", 0751);
    symlink("file", "link");
    symlink("dir/../file", "link2");
    link("file", "hard");
    mkfifo("fifo", 0600);
    const char *paths[] = {".", "file", "dir", "link", "link2", "hard", "fifo", "dir/", "/dev/null", "/dev/zero",
                           "/dev/full", "/dev/urandom", "/proc/self/maps", "/proc/self/status", "/proc/self/exe",
                           "/proc/self", "/proc/self/fd", "/proc/self/fd/0", "/dev/stdin", "/dev/fd",
                           "/proc/self/cmdline", "missing", "file/", "link/", NULL};
    for (int i = 0; paths[i]; i++) {
        show(paths[i], 1);
        show(paths[i], 0);
    }
    compare("file");
    compare("dir");
    compare("link");
    compare("/dev/null");
    compare("/proc/self/exe");
    struct xstat x;
    long r = syscall(SYS_statx, AT_FDCWD, "file", 0x80000, 0, &x);
    printf("statx bad flags: %ld %s\n", r, strerror(errno));
    r = syscall(SYS_statx, AT_FDCWD, "missing", 0, 0, &x);
    printf("statx missing: %ld %s\n", r, strerror(errno));
    r = syscall(SYS_statx, AT_FDCWD, "file", 0, 0x80000000u, &x);
    printf("statx reserved mask: %ld %s\n", r, strerror(errno));
    printf("statx nofollow on link: %ld\n", syscall(SYS_statx, AT_FDCWD, "link", AT_SYMLINK_NOFOLLOW,
                                                     XSTATX_TYPE, &x));
    printf("  is link %d\n", S_ISLNK(x.stx_mode));
    fs(".");
    fs("/proc/self/maps");
    fs("/dev/null");
    struct statfs s;
    r = statfs("missing", &s);
    printf("statfs missing: %ld %s\n", r, strerror(errno));
    r = fstatfs(42, &s);
    printf("fstatfs bad: %ld %s\n", r, strerror(errno));
    char buf[512];
    long n = readlink("/proc/self/exe", buf, sizeof buf);
    printf("exe link absolute: %d\n", n > 0 && buf[0] == '/');
    fd = open("/proc/self/exe", O_RDONLY);
    char elf[4];
    read(fd, elf, 4);
    printf("exe opens: %d\n", memcmp(elf, "\177ELF", 4) == 0);
    close(fd);
    return 0;
}
