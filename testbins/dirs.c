/* Directory listing and the current directory: getdents64 / getdents records, resuming across calls,
 * rewinding, telldir/seekdir, large directories, getcwd/chdir/fchdir. Output is sorted or counted. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

struct d64 { unsigned long long ino; long long off; unsigned short reclen; unsigned char type; char name[]; };
struct dold { unsigned long ino; unsigned long off; unsigned short reclen; char name[]; };

static const char *ename(int e) {
    switch (e) {
#define E(x) case x: return #x;
    E(ENOENT) E(EEXIST) E(ENOTDIR) E(EISDIR) E(ENOTEMPTY) E(EBADF) E(EINVAL) E(ERANGE) E(EACCES)
#undef E
    default: return "E?";
    }
}
#define TRY(expr) do { long r_ = (long)(expr); if (r_ < 0) printf("%s: -1 %s\n", #expr, ename(errno)); \
                       else printf("%s: %ld\n", #expr, r_); } while (0)

static int cmp(const void *a, const void *b) { return strcmp(*(char **)a, *(char **)b); }

static char *names[2000];
static int nnames;

static void add(const char *name, int type) {
    char *s = malloc(strlen(name) + 4);
    sprintf(s, "%s:%d", name, type);
    names[nnames++] = s;
}

static void dump(const char *title) {
    qsort(names, nnames, sizeof *names, cmp);
    printf("%s (%d):", title, nnames);
    for (int i = 0; i < nnames && i < 12; i++) printf(" %s", names[i]);
    printf("\n");
    for (int i = 0; i < nnames; i++) free(names[i]);
    nnames = 0;
}

/* list with raw getdents64 and a buffer of bufsz bytes; check records are well formed */
static int list64(int fd, int bufsz) {
    char buf[65536];
    int calls = 0, bad = 0;
    long long last_off = -1;
    for (;;) {
        long n = syscall(SYS_getdents64, fd, buf, bufsz);
        if (n < 0) { printf("getdents64: %s\n", ename(errno)); return -1; }
        if (n == 0) break;
        calls++;
        for (long pos = 0; pos < n;) {
            struct d64 *d = (struct d64 *)(buf + pos);
            if (d->reclen % 8 || d->reclen < 20 || strlen(d->name) + 20 > d->reclen) bad++;
            if (d->off == last_off) bad++;
            last_off = d->off;
            add(d->name, d->type);
            pos += d->reclen;
        }
    }
    if (bad) printf("malformed records: %d\n", bad);
    return calls;
}

static void listold(int fd) {
    char buf[4096];
    for (;;) {
        long n = syscall(SYS_getdents, fd, buf, sizeof buf);
        if (n < 0) { printf("getdents: %s\n", ename(errno)); return; }
        if (n == 0) break;
        for (long pos = 0; pos < n;) {
            struct dold *d = (struct dold *)(buf + pos);
            add(d->name, buf[pos + d->reclen - 1]);
            pos += d->reclen;
        }
    }
}

int main(void) {
    char buf[4096], path[64];
    int fd;

    mkdir("small", 0755);
    close(open("small/file", O_CREAT | O_WRONLY, 0644));
    mkdir("small/sub", 0755);
    symlink("file", "small/link");
    mkfifo("small/fifo", 0644);

    fd = open("small", O_RDONLY | O_DIRECTORY);
    TRY(syscall(SYS_getdents64, fd, buf, 10));
    list64(fd, sizeof buf);
    dump("getdents64 small");
    TRY(lseek(fd, 0, SEEK_SET));
    list64(fd, sizeof buf);
    dump("after rewind");
    close(fd);

    fd = open("small", O_RDONLY | O_DIRECTORY);
    listold(fd);
    dump("getdents small");
    close(fd);

    /* a large directory, listed with a small buffer so every call resumes where the last stopped */
    mkdir("big", 0755);
    for (int i = 0; i < 600; i++) {
        snprintf(path, sizeof path, "big/entry-with-a-longish-name-%04d", i);
        close(open(path, O_CREAT | O_WRONLY, 0644));
    }
    fd = open("big", O_RDONLY | O_DIRECTORY);
    int calls = list64(fd, 512);
    printf("calls > 30: %d\n", calls > 30);
    dump("big");
    close(fd);

    /* readdir, telldir, seekdir */
    DIR *d = opendir("big");
    struct dirent *e;
    long mark = -1;
    char at_mark[300] = "";
    int count = 0;
    while ((e = readdir(d))) {
        if (++count == 300) { mark = telldir(d); }
        if (count == 301) strcpy(at_mark, e->d_name);
    }
    seekdir(d, mark);
    e = readdir(d);
    printf("readdir count %d, seekdir resumes: %d\n", count, e && strcmp(e->d_name, at_mark) == 0);
    rewinddir(d);
    count = 0;
    while (readdir(d)) count++;
    printf("after rewinddir: %d\n", count);
    closedir(d);

    /* errors */
    fd = open("small/file", O_RDONLY);
    TRY(syscall(SYS_getdents64, fd, buf, sizeof buf));
    TRY(read(open("small", O_RDONLY), buf, 10));
    close(fd);
    TRY(syscall(SYS_getdents64, 55, buf, sizeof buf));
    fd = open("small", O_PATH);
    TRY(syscall(SYS_getdents64, fd, buf, sizeof buf));
    close(fd);

    /* cwd */
    char start[1024], now[1024];
    getcwd(start, sizeof start);
    TRY(chdir("small/sub"));
    getcwd(now, sizeof now);
    printf("cwd suffix: %s\n", now + strlen(start));
    TRY(chdir(".."));
    getcwd(now, sizeof now);
    printf("cwd suffix: %s\n", now + strlen(start));
    close(open("here", O_CREAT | O_WRONLY, 0644));
    TRY(access("file", F_OK));
    TRY(access("here", F_OK));
    TRY(chdir("missing"));
    TRY(chdir("file"));
    TRY(chdir("link"));
    symlink("sub", "sublink");
    TRY(chdir("sublink"));
    getcwd(now, sizeof now);
    printf("cwd through symlink: %s\n", now + strlen(start));
    fd = open(start, O_RDONLY | O_DIRECTORY);
    TRY(fchdir(fd));
    close(fd);
    getcwd(now, sizeof now);
    printf("fchdir back: %d\n", strcmp(now, start) == 0);
    fd = open("small/file", O_RDONLY);
    TRY(fchdir(fd));
    close(fd);
    TRY(fchdir(99));
    TRY(syscall(SYS_getcwd, now, 1));
    long len = syscall(SYS_getcwd, now, sizeof now);
    printf("getcwd length right: %d\n", len == (long)strlen(start) + 1);
    TRY(chdir("/"));
    getcwd(now, sizeof now);
    printf("cwd: %s\n", now);
    TRY(chdir(start));

    /* listing /proc/self/fd shows our descriptors */
    int extra = open("small/file", O_RDONLY);
    d = opendir("/proc/self/fd");
    int saw_extra = 0;
    while ((e = readdir(d))) if (atoi(e->d_name) == extra && e->d_type == DT_LNK) saw_extra = 1;
    closedir(d);
    printf("/proc/self/fd lists fd: %d\n", saw_extra);
    return 0;
}
