/* File and directory operations in the current directory, with errno cases printed by name.
 * Legacy syscalls (open, stat, rename, ...) are made with syscall() so glibc and musl both reach them. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE 1
#define RENAME_EXCHANGE 2
#endif
#ifndef SYS_faccessat2
#define SYS_faccessat2 439
#endif

static const char *ename(int e) {
    switch (e) {
#define E(x) case x: return #x;
    E(ENOENT) E(EEXIST) E(ENOTDIR) E(EISDIR) E(ENOTEMPTY) E(EBADF) E(EINVAL) E(EACCES) E(EPERM)
    E(ELOOP) E(ERANGE) E(ENOSPC) E(EXDEV) E(EBUSY) E(ENAMETOOLONG) E(EFAULT) E(ESPIPE) E(ENXIO)
#undef E
    case 0: return "OK";
    default: return "E?";
    }
}

static void report(const char *what, long r) {
    if (r < 0) printf("%s: -1 %s\n", what, ename(errno));
    else printf("%s: %ld\n", what, r);
}
#define TRY(expr) report(#expr, (long)(expr))

static void write_file(const char *name, const char *text) {
    int fd = open(name, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) { perror(name); exit(1); }
    close(fd);
}

static long lstat_mode(const char *p) {
    struct stat st;
    if (syscall(SYS_lstat, p, &st) < 0) return -1;
    return st.st_mode;
}

int main(void) {
    char buf[256];
    struct stat st, st2;
    int fd, fd2;
    ssize_t n;

    /* create, write, read, lseek, pread */
    fd = syscall(SYS_open, "f1", O_CREAT | O_RDWR | O_TRUNC, 0644);
    printf("open f1: %s\n", fd >= 0 ? "ok" : ename(errno));
    TRY(write(fd, "hello world\n", 12));
    TRY(lseek(fd, 0, SEEK_SET));
    n = read(fd, buf, sizeof buf);
    printf("read %zd: %.*s", n, (int)n, buf);
    TRY(lseek(fd, 6, SEEK_SET));
    n = read(fd, buf, 5);
    printf("after lseek: %.*s\n", (int)n, buf);
    TRY(lseek(fd, 0, SEEK_END));
    n = pread(fd, buf, 4, 2);
    printf("pread: %.*s\n", (int)n, buf);
    TRY(fsync(fd));
    TRY(fdatasync(fd));
    TRY(syscall(SYS_fstat, fd, &st));
    printf("fstat: size=%ld mode=%o nlink=%ld reg=%d\n", (long)st.st_size, st.st_mode & 07777, (long)st.st_nlink,
           S_ISREG(st.st_mode));
    close(fd);

    /* errno cases */
    TRY(syscall(SYS_open, "f1", O_CREAT | O_EXCL | O_WRONLY, 0644));
    TRY(syscall(SYS_open, "missing", O_RDONLY));
    TRY(syscall(SYS_open, "f1/x", O_RDONLY));
    TRY(syscall(SYS_open, ".", O_WRONLY));
    TRY(syscall(SYS_open, "f1", O_RDONLY | O_DIRECTORY));
    TRY(read(99, buf, 1));
    TRY(syscall(SYS_fstat, 99, &st));
    TRY(fsync(99));
    TRY(syscall(SYS_open, "", O_RDONLY));
    memset(buf, 'a', 255); buf[255] = 0;
    TRY(syscall(SYS_open, buf, O_RDONLY));
    TRY(syscall(SYS_open, (char *)1, O_RDONLY));

    /* creat */
    fd = syscall(SYS_creat, "c1", 0600);
    printf("creat: %s\n", fd >= 0 ? "ok" : ename(errno));
    TRY(write(fd, "abc", 3));
    TRY(read(fd, buf, 1));
    close(fd);

    /* rename, link, symlink, readlink, unlink */
    TRY(syscall(SYS_rename, "f1", "f2"));
    TRY(syscall(SYS_stat, "f1", &st));
    TRY(syscall(SYS_link, "f2", "f3"));
    TRY(syscall(SYS_link, "f2", "f3"));
    TRY(syscall(SYS_stat, "f2", &st));
    printf("nlink after link: %ld\n", (long)st.st_nlink);
    TRY(syscall(SYS_symlink, "f2", "s1"));
    TRY(syscall(SYS_symlink, "f2", "s1"));
    TRY(syscall(SYS_symlink, "nowhere", "dangling"));
    n = syscall(SYS_readlink, "s1", buf, sizeof buf);
    printf("readlink s1: %zd %.*s\n", n, (int)(n > 0 ? n : 0), buf);
    n = syscall(SYS_readlink, "s1", buf, 1);
    printf("readlink s1 short: %zd %.*s\n", n, (int)(n > 0 ? n : 0), buf);
    TRY(syscall(SYS_readlink, "f2", buf, sizeof buf));
    TRY(syscall(SYS_readlink, "missing", buf, sizeof buf));
    TRY(syscall(SYS_readlink, "s1", buf, 0));
    printf("lstat s1 islnk=%d\n", S_ISLNK(lstat_mode("s1")));
    TRY(syscall(SYS_stat, "s1", &st));
    printf("stat s1 size=%ld\n", (long)st.st_size);
    TRY(syscall(SYS_stat, "dangling", &st));
    TRY(syscall(SYS_lstat, "dangling", &st));
    TRY(syscall(SYS_open, "s1", O_RDONLY | O_NOFOLLOW));
    TRY(syscall(SYS_open, "dangling", O_CREAT | O_EXCL | O_WRONLY, 0644));
    TRY(syscall(SYS_unlink, "f3"));
    TRY(syscall(SYS_unlink, "f3"));
    TRY(syscall(SYS_stat, "f2", &st));
    printf("nlink after unlink: %ld\n", (long)st.st_nlink);

    /* mkdir / rmdir */
    TRY(syscall(SYS_mkdir, "d1", 0755));
    TRY(syscall(SYS_mkdir, "d1", 0755));
    TRY(syscall(SYS_mkdir, "nope/d", 0755));
    write_file("d1/a", "A");
    TRY(syscall(SYS_rmdir, "d1"));
    TRY(syscall(SYS_rmdir, "f2"));
    TRY(syscall(SYS_rmdir, "."));
    TRY(syscall(SYS_rmdir, "d1/.."));
    TRY(syscall(SYS_unlink, "d1"));
    TRY(syscall(SYS_unlink, "d1/a"));
    TRY(syscall(SYS_rmdir, "d1"));
    TRY(syscall(SYS_rmdir, "d1"));
    TRY(syscall(SYS_stat, "f2/", &st));
    TRY(syscall(SYS_mkdir, "d2/", 0700));
    TRY(syscall(SYS_stat, "d2/", &st));
    printf("d2 mode %o isdir %d\n", st.st_mode & 07777, S_ISDIR(st.st_mode));

    /* chmod, fchmod, fchmodat */
    TRY(syscall(SYS_chmod, "f2", 0600));
    TRY(syscall(SYS_stat, "f2", &st));
    printf("mode after chmod: %o\n", st.st_mode & 07777);
    fd = open("f2", O_RDONLY);
    TRY(fchmod(fd, 04751));
    TRY(fstat(fd, &st));
    printf("mode after fchmod: %o\n", st.st_mode & 07777);
    TRY(syscall(SYS_fchmodat, AT_FDCWD, "f2", 0644));
    TRY(syscall(SYS_stat, "f2", &st));
    printf("mode after fchmodat: %o\n", st.st_mode & 07777);
    TRY(syscall(SYS_chmod, "missing", 0644));

    /* chown family: to our own ids is always allowed */
    TRY(syscall(SYS_chown, "f2", getuid(), getgid()));
    TRY(syscall(SYS_chown, "f2", -1, -1));
    TRY(syscall(SYS_lchown, "s1", getuid(), -1));
    TRY(fchown(fd, -1, getgid()));
    TRY(fchownat(AT_FDCWD, "s1", getuid(), getgid(), AT_SYMLINK_NOFOLLOW));
    TRY(fchownat(AT_FDCWD, "s1", getuid(), getgid(), 0x8000));
    TRY(syscall(SYS_chown, "missing", 0, 0));

    /* truncate, ftruncate */
    TRY(syscall(SYS_truncate, "f2", 3));
    TRY(syscall(SYS_stat, "f2", &st));
    printf("size after truncate: %ld\n", (long)st.st_size);
    TRY(syscall(SYS_truncate, "f2", -1L));
    TRY(syscall(SYS_truncate, "d2", 0));
    TRY(ftruncate(fd, 10));
    close(fd);
    fd = open("f2", O_RDWR);
    TRY(ftruncate(fd, 100));
    TRY(fstat(fd, &st));
    printf("size after ftruncate: %ld\n", (long)st.st_size);
    TRY(ftruncate(fd, -5));
    close(fd);

    /* utimensat / futimens */
    struct timespec ts[2] = {{1000000000, 123}, {1200000000, 456789}};
    TRY(utimensat(AT_FDCWD, "f2", ts, 0));
    TRY(syscall(SYS_stat, "f2", &st));
    printf("times: %ld.%ld %ld.%ld\n", (long)st.st_atim.tv_sec, st.st_atim.tv_nsec, (long)st.st_mtim.tv_sec,
           st.st_mtim.tv_nsec);
    ts[0].tv_nsec = UTIME_OMIT;
    ts[1].tv_sec = 1300000000; ts[1].tv_nsec = 0;
    fd = open("f2", O_RDONLY);
    TRY(futimens(fd, ts));
    TRY(fstat(fd, &st));
    printf("times: %ld.%ld %ld.%ld\n", (long)st.st_atim.tv_sec, st.st_atim.tv_nsec, (long)st.st_mtim.tv_sec,
           st.st_mtim.tv_nsec);
    close(fd);
    ts[0].tv_nsec = 5; ts[0].tv_sec = 7;
    TRY(utimensat(AT_FDCWD, "s1", ts, AT_SYMLINK_NOFOLLOW));
    TRY(syscall(SYS_lstat, "s1", &st));
    printf("link mtime: %ld\n", (long)st.st_mtim.tv_sec);
    ts[0].tv_nsec = 2000000000;
    TRY(utimensat(AT_FDCWD, "f2", ts, 0));
    TRY(utimensat(AT_FDCWD, "missing", NULL, 0));
    TRY(utimensat(AT_FDCWD, "f2", NULL, 0x4));

    /* access */
    TRY(syscall(SYS_access, "f2", R_OK | W_OK));
    TRY(syscall(SYS_access, "missing", F_OK));
    TRY(syscall(SYS_access, "f2", 8));
    TRY(syscall(SYS_access, "d2", X_OK));
    TRY(syscall(SYS_access, "f2", X_OK));
    TRY(syscall(SYS_faccessat, AT_FDCWD, "f2", R_OK));
    TRY(syscall(SYS_faccessat2, AT_FDCWD, "dangling", F_OK, AT_SYMLINK_NOFOLLOW));
    TRY(syscall(SYS_faccessat2, AT_FDCWD, "dangling", F_OK, 0));
    TRY(syscall(SYS_faccessat2, AT_FDCWD, "f2", R_OK, AT_EACCESS));
    TRY(syscall(SYS_faccessat2, AT_FDCWD, "f2", R_OK, 0x8000));

    /* umask */
    printf("umask old: %o\n", (unsigned)umask(027));
    fd = open("u1", O_CREAT | O_WRONLY, 0777);
    TRY(fstat(fd, &st));
    printf("u1 mode: %o\n", st.st_mode & 07777);
    close(fd);
    TRY(mkdir("u2", 0777));
    TRY(syscall(SYS_stat, "u2", &st));
    printf("u2 mode: %o\n", st.st_mode & 07777);
    printf("umask now: %o\n", (unsigned)umask(0));
    fd = open("u3", O_CREAT | O_WRONLY, 0777);
    TRY(fstat(fd, &st));
    printf("u3 mode: %o\n", st.st_mode & 07777);
    close(fd);
    umask(022);

    /* *at calls relative to a directory fd */
    int dfd = open("d2", O_RDONLY | O_DIRECTORY);
    printf("dirfd: %s\n", dfd >= 0 ? "ok" : ename(errno));
    fd = openat(dfd, "in", O_CREAT | O_WRONLY, 0644);
    TRY(write(fd, "inside", 6));
    close(fd);
    TRY(syscall(SYS_stat, "d2/in", &st));
    printf("d2/in size %ld\n", (long)st.st_size);
    TRY(mkdirat(dfd, "sub", 0755));
    TRY(renameat(dfd, "in", dfd, "sub/in2"));
    TRY(syscall(SYS_renameat2, dfd, "sub/in2", AT_FDCWD, "f2", RENAME_NOREPLACE));
    TRY(syscall(SYS_renameat2, dfd, "sub/in2", AT_FDCWD, "f2", RENAME_EXCHANGE));
    TRY(syscall(SYS_renameat2, dfd, "sub/in2", AT_FDCWD, "f2", 3));
    TRY(syscall(SYS_stat, "f2", &st));
    printf("f2 size after exchange %ld\n", (long)st.st_size);
    TRY(linkat(AT_FDCWD, "f2", dfd, "hard", 0));
    TRY(linkat(AT_FDCWD, "s1", dfd, "hardlink_to_link", 0));
    printf("hardlink_to_link is link: %d\n", S_ISLNK(lstat_mode("d2/hardlink_to_link")));
    TRY(linkat(AT_FDCWD, "s1", dfd, "hard_followed", AT_SYMLINK_FOLLOW));
    printf("hard_followed is reg: %d\n", S_ISREG(lstat_mode("d2/hard_followed")));
    TRY(symlinkat("../f2", dfd, "sl"));
    n = readlinkat(dfd, "sl", buf, sizeof buf);
    printf("readlinkat: %.*s\n", (int)(n > 0 ? n : 0), buf);
    TRY(fstatat(dfd, "sl", &st, 0));
    TRY(fstatat(dfd, "sl", &st2, AT_SYMLINK_NOFOLLOW));
    printf("sl: reg %d lnk %d\n", S_ISREG(st.st_mode), S_ISLNK(st2.st_mode));
    TRY(fstatat(dfd, "", &st, AT_EMPTY_PATH));
    printf("empty path isdir %d\n", S_ISDIR(st.st_mode));
    TRY(fstatat(dfd, "", &st, 0));
    TRY(fstatat(dfd, "x", &st, 0x4));
    TRY(unlinkat(dfd, "sub", 0));
    TRY(unlinkat(dfd, "sub/in2", 0));
    TRY(unlinkat(dfd, "sub", AT_REMOVEDIR));
    TRY(unlinkat(dfd, "sl", 0x1));
    fd = open("f2", O_RDONLY);
    TRY(openat(fd, "x", O_RDONLY));
    TRY(openat(77, "x", O_RDONLY));
    TRY(mkdirat(fd, "x", 0755));
    fd2 = openat(77, "/dev/null", O_RDONLY);
    printf("absolute ignores dirfd: %s\n", fd2 >= 0 ? "ok" : ename(errno));
    close(fd2);
    close(fd);
    TRY(syscall(SYS_renameat, AT_FDCWD, "d2", AT_FDCWD, "d2/inside"));
    TRY(syscall(SYS_rename, "f2", "d2"));
    TRY(syscall(SYS_rename, "d2", "f2"));
    TRY(syscall(SYS_rename, "missing", "x"));

    /* O_TMPFILE then link it in through /proc/self/fd */
    fd = open(".", O_TMPFILE | O_RDWR, 0600);
    if (fd >= 0) {
        char link[64];
        TRY(write(fd, "tmpdata", 7));
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        TRY(linkat(AT_FDCWD, link, AT_FDCWD, "tmpl", AT_SYMLINK_FOLLOW));
        TRY(syscall(SYS_stat, "tmpl", &st));
        printf("tmpl size %ld\n", (long)st.st_size);
        close(fd);
    } else {
        printf("O_TMPFILE: %s\n", ename(errno));
    }

    /* fd paths through /proc/self/fd and /dev/fd */
    fd = open("c1", O_RDONLY);
    char cwd[512], want[600], got[600], p[64];
    getcwd(cwd, sizeof cwd);
    snprintf(want, sizeof want, "%s/c1", cwd);
    snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
    n = readlink(p, got, sizeof got - 1);
    got[n > 0 ? n : 0] = 0;
    printf("fd link matches: %d\n", strcmp(got, want) == 0);
    snprintf(p, sizeof p, "/dev/fd/%d", fd);
    fd2 = open(p, O_RDONLY);
    n = read(fd2, buf, 10);
    printf("reopen via /dev/fd: %zd %.*s\n", n, (int)(n > 0 ? n : 0), buf);
    TRY(syscall(SYS_stat, p, &st));
    TRY(syscall(SYS_fstat, fd, &st2));
    printf("same inode: %d\n", st.st_ino == st2.st_ino && st.st_dev == st2.st_dev);
    close(fd2);
    close(fd);
    TRY(syscall(SYS_open, "/proc/self/fd/99", O_RDONLY));

    /* devices */
    fd = open("/dev/null", O_RDWR);
    TRY(write(fd, "x", 1));
    TRY(read(fd, buf, 10));
    close(fd);
    fd = open("/dev/zero", O_RDONLY);
    memset(buf, 1, 8);
    TRY(read(fd, buf, 8));
    printf("zero bytes: %d\n", buf[0] == 0 && buf[7] == 0);
    close(fd);
    fd = open("/dev/full", O_WRONLY);
    TRY(write(fd, "x", 1));
    close(fd);
    fd = open("/dev/urandom", O_RDONLY);
    TRY(read(fd, buf, 16));
    close(fd);
    return 0;
}
