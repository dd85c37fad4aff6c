/* mmap_patterns: the memory-management syscalls and their error paths, as a program uses them.
 * Prints facts and errno names only (never addresses). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define PG 4096UL

static const char *ename(int e)
{
    switch (e) {
    case 0: return "0";
    case EINVAL: return "EINVAL";
    case ENOMEM: return "ENOMEM";
    case EEXIST: return "EEXIST";
    case EACCES: return "EACCES";
    case EBADF: return "EBADF";
    case EFAULT: return "EFAULT";
    case ENODEV: return "ENODEV";
    default: return "other";
    }
}

#define CHECK(label, expr) do { errno = 0; long r_ = (long)(expr); \
    printf("%s: %s\n", label, r_ == -1 ? ename(errno) : "ok"); } while (0)

static void *map_anon(void *hint, size_t len, int prot, int extra)
{
    return mmap(hint, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | extra, -1, 0);
}

static unsigned sum(const unsigned char *p, size_t n)
{
    unsigned s = 0;
    for (size_t i = 0; i < n; i++) s = s * 31 + p[i];
    return s;
}

static void anon_basic(void)
{
    unsigned char *p = map_anon(NULL, 10 * PG, PROT_READ | PROT_WRITE, 0);
    printf("anon mmap: %s\n", p == MAP_FAILED ? ename(errno) : "ok");
    int zero = 1;
    for (size_t i = 0; i < 10 * PG; i++) zero &= p[i] == 0;
    printf("anon zeroed: %d\n", zero);
    for (size_t i = 0; i < 10 * PG; i += 100) p[i] = (unsigned char)i;
    printf("anon sum: %u\n", sum(p, 10 * PG));
    printf("page aligned: %d\n", ((uintptr_t)p % PG) == 0);
    /* munmap the middle: the two halves survive */
    CHECK("munmap middle", munmap(p + 3 * PG, 4 * PG));
    printf("halves intact: %u %u\n", sum(p, 3 * PG), sum(p + 7 * PG, 3 * PG));
    unsigned char vec[10];
    CHECK("mincore hole", mincore(p, 10 * PG, vec));
    CHECK("mincore head", mincore(p, 3 * PG, vec));
    CHECK("mincore unaligned", mincore(p + 1, PG, vec));
    CHECK("munmap unaligned", munmap(p + 1, PG));
    CHECK("munmap zero length", munmap(p, 0));
    CHECK("munmap hole again", munmap(p + 3 * PG, 4 * PG));
    CHECK("mprotect unmapped", mprotect(p + 3 * PG, PG, PROT_READ));
    CHECK("mprotect unaligned", mprotect(p + 1, PG, PROT_READ));
    CHECK("mprotect bad prot", mprotect(p, PG, 0x80));
    CHECK("mmap zero length", mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    CHECK("mmap no type", mmap(NULL, PG, PROT_READ, MAP_ANONYMOUS, -1, 0));
    CHECK("mmap unaligned offset", mmap(NULL, PG, PROT_READ, MAP_PRIVATE, 0, 1));
    CHECK("mmap bad fd", mmap(NULL, PG, PROT_READ, MAP_PRIVATE, 999, 0));
    CHECK("mmap fixed unaligned", mmap(p + 1, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
    CHECK("munmap rest", munmap(p, 10 * PG));
}

static void fixed_patterns(void)
{
    unsigned char *p = map_anon(NULL, 8 * PG, PROT_READ | PROT_WRITE, 0);
    memset(p, 0xAA, 8 * PG);
    unsigned char *q = map_anon(p + 2 * PG, 2 * PG, PROT_READ | PROT_WRITE, MAP_FIXED);
    printf("MAP_FIXED at requested address: %d\n", q == p + 2 * PG);
    printf("MAP_FIXED replaced contents: %d %d %d\n", p[PG], p[2 * PG], p[4 * PG]);
    errno = 0;
    void *r = map_anon(p + 4 * PG, PG, PROT_READ, MAP_FIXED_NOREPLACE);
    printf("MAP_FIXED_NOREPLACE over mapping: %s\n", r == MAP_FAILED ? ename(errno) : "mapped");
    CHECK("munmap tail", munmap(p + 6 * PG, 2 * PG));
    r = map_anon(p + 6 * PG, PG, PROT_READ | PROT_WRITE, MAP_FIXED_NOREPLACE);
    printf("MAP_FIXED_NOREPLACE into hole: %s\n", r == p + 6 * PG ? "at address" : r == MAP_FAILED ? ename(errno) : "elsewhere");
    munmap(p, 8 * PG);
    /* Executable mappings never run, each replaced by the next (its code dropped), then a fresh page touched. */
    unsigned char *x = map_anon(NULL, 16 * PG, PROT_READ | PROT_EXEC, 0);
    for (int i = 0; i < 3; i++)
        map_anon(x, 16 * PG, i < 2 ? PROT_READ | PROT_EXEC : PROT_READ | PROT_WRITE, MAP_FIXED);
    x[5 * PG] = 7;
    printf("touched after replacing executable mappings: %d\n", x[5 * PG]);
    munmap(x, 16 * PG);
}

static void reserve_then_commit(void)
{
    size_t len = 64 * PG;
    unsigned char *p = map_anon(NULL, len + 8 * PG, PROT_NONE, MAP_NORESERVE);
    printf("PROT_NONE reservation: %s\n", p == MAP_FAILED ? ename(errno) : "ok");
    CHECK("munmap guard after it", munmap(p + len, 8 * PG));
    CHECK("mprotect middle RW", mprotect(p + 16 * PG, 8 * PG, PROT_READ | PROT_WRITE));
    for (size_t i = 16 * PG; i < 24 * PG; i++) p[i] = (unsigned char)(i * 7);
    printf("committed sum: %u\n", sum(p + 16 * PG, 8 * PG));
    unsigned char vec[64];
    CHECK("mincore reservation", mincore(p, len, vec));
    CHECK("mprotect read-only", mprotect(p + 16 * PG, 8 * PG, PROT_READ));
    printf("read-only still readable: %u\n", sum(p + 16 * PG, 8 * PG));
    CHECK("mprotect back to none", mprotect(p + 16 * PG, 8 * PG, PROT_NONE));
    CHECK("mprotect RW again", mprotect(p + 16 * PG, 8 * PG, PROT_READ | PROT_WRITE));
    printf("contents kept across PROT_NONE: %u\n", sum(p + 16 * PG, 8 * PG));
    CHECK("mprotect beyond end", mprotect(p + 60 * PG, 8 * PG, PROT_READ));
    CHECK("munmap reservation", munmap(p, len));
}

static void remap_patterns(void)
{
    unsigned char *p = map_anon(NULL, 4 * PG, PROT_READ | PROT_WRITE, 0);
    for (size_t i = 0; i < 4 * PG; i++) p[i] = (unsigned char)(i ^ (i >> 8));
    unsigned before = sum(p, 4 * PG);
    /* make room right after it so that growing in place is possible */
    munmap(p + 4 * PG, 4 * PG);
    unsigned char *g = mremap(p, 4 * PG, 6 * PG, 0);
    printf("mremap grow in place: %s\n", g == MAP_FAILED ? ename(errno) : g == p ? "same address" : "moved");
    if (g != MAP_FAILED) {
        printf("grown contents kept: %d\n", sum(g, 4 * PG) == before);
        int z = 1;
        for (size_t i = 4 * PG; i < 6 * PG; i++) z &= g[i] == 0;
        printf("grown tail zero: %d\n", z);
        g[6 * PG - 1] = 9;
        p = g;
    }
    /* block growth with a neighbouring mapping, then grow without and with MREMAP_MAYMOVE */
    void *block = map_anon(p + 6 * PG, PG, PROT_READ, MAP_FIXED_NOREPLACE);
    printf("blocker placed: %d\n", block == p + 6 * PG);
    errno = 0;
    void *n = mremap(p, 6 * PG, 16 * PG, 0);
    printf("mremap grow blocked: %s\n", n == MAP_FAILED ? ename(errno) : "grew");
    unsigned char *m = mremap(p, 6 * PG, 16 * PG, MREMAP_MAYMOVE);
    printf("mremap maymove: %s\n", m == MAP_FAILED ? ename(errno) : m == p ? "same address" : "moved");
    if (m != MAP_FAILED) {
        printf("moved contents kept: %d %d\n", sum(m, 4 * PG) == before, m[6 * PG - 1]);
        unsigned char vec[1];
        errno = 0;
        int r = mincore(p, PG, vec);
        printf("old address unmapped: %s\n", r == -1 ? ename(errno) : "still mapped");
        unsigned char *s = mremap(m, 16 * PG, 2 * PG, 0);
        printf("mremap shrink: %s\n", s == m ? "same address" : s == MAP_FAILED ? ename(errno) : "moved");
        printf("shrunk contents kept: %d\n", sum(s, 2 * PG) == sum(m, 2 * PG));
        r = mincore(m + 2 * PG, PG, vec);
        printf("shrunk tail unmapped: %s\n", r == -1 ? ename(errno) : "still mapped");
        CHECK("mremap unaligned", mremap(m + 1, PG, 2 * PG, MREMAP_MAYMOVE));
        CHECK("mremap zero new size", mremap(m, PG, 0, MREMAP_MAYMOVE));
        CHECK("mremap bad flags", mremap(m, PG, 2 * PG, 0x80));
        CHECK("mremap fixed without maymove", mremap(m, PG, 2 * PG, MREMAP_FIXED, m + 64 * PG));
        munmap(m, 2 * PG);
    }
    munmap(block, PG);
}

static void madvise_dontneed(void)
{
    unsigned char *p = map_anon(NULL, 4 * PG, PROT_READ | PROT_WRITE, 0);
    memset(p, 0x5A, 4 * PG);
    CHECK("madvise DONTNEED", madvise(p + PG, 2 * PG, MADV_DONTNEED));
    printf("after DONTNEED: %d %d %d %d\n", p[0], p[PG], p[3 * PG - 1], p[3 * PG]);
    CHECK("madvise unaligned", madvise(p + 1, PG, MADV_DONTNEED));
    CHECK("madvise WILLNEED", madvise(p, 4 * PG, MADV_WILLNEED));
    munmap(p, 4 * PG);
}

static void big_sparse(void)
{
    size_t len = 256UL << 20;
    unsigned char *p = map_anon(NULL, len, PROT_READ | PROT_WRITE, 0);
    printf("256 MiB mapping: %s\n", p == MAP_FAILED ? ename(errno) : "ok");
    unsigned long s = 0;
    for (size_t off = 0; off < len; off += 1 << 20) p[off] = (unsigned char)(off >> 20);
    for (size_t off = 0; off < len; off += 1 << 20) s += p[off] + p[off + 4095];
    printf("sparse sum: %lu\n", s);
    CHECK("munmap 256 MiB", munmap(p, len));
    /* the overcommit heuristic refuses one request larger than RAM + swap, unless MAP_NORESERVE */
    size_t huge = 64UL << 40;
    CHECK("64 TiB private RW", map_anon(NULL, huge, PROT_READ | PROT_WRITE, 0));
    p = map_anon(NULL, huge, PROT_READ | PROT_WRITE, MAP_NORESERVE);
    printf("64 TiB NORESERVE: %s\n", p == MAP_FAILED ? ename(errno) : "ok");
    p[huge / 2] = 1;
    printf("touched middle: %d\n", p[huge / 2]);
    CHECK("munmap 64 TiB", munmap(p, huge));
    CHECK("64 TiB PROT_NONE", munmap(map_anon(NULL, huge, PROT_NONE, 0), huge));
    CHECK("200 TiB NORESERVE", map_anon(NULL, 200UL << 40, PROT_READ, MAP_NORESERVE));
}

static void file_mappings(void)
{
    const char *path = "mmap_patterns.tmp";
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        printf("open: %s\n", ename(errno));
        return;
    }
    unsigned char buf[3 * 4096];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)('a' + i % 26);
    if (write(fd, buf, 2 * PG + 100) != (ssize_t)(2 * PG + 100)) puts("short write");
    unsigned char *priv = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    printf("private file map: %s\n", priv == MAP_FAILED ? ename(errno) : "ok");
    printf("private reads file: %d\n", memcmp(priv, buf, 2 * PG + 100) == 0);
    int z = 1;
    for (size_t i = 2 * PG + 100; i < 3 * PG; i++) z &= priv[i] == 0;
    printf("past EOF in last page is zero: %d\n", z);
    priv[0] = 'X';
    unsigned char c;
    pread(fd, &c, 1, 0);
    printf("private write not in file: %c\n", c);
    munmap(priv, 3 * PG);
    /* a page wholly past the end of the file: SIGBUS to touch, EFAULT to a syscall (mm/filemap.c) */
    unsigned char *past = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    fflush(stdout);
    pid_t toucher = fork();
    if (toucher == 0) {
        past[3 * PG] = 1;
        _exit(0);
    }
    int status;
    waitpid(toucher, &status, 0);
    printf("touch past EOF: %s %d\n", WIFSIGNALED(status) ? "signal" : "exit",
           WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    printf("write() from past EOF: %s\n", write(1, past + 3 * PG, 1) < 0 ? ename(errno) : "ok");
    munmap(past, 4 * PG);

    unsigned char *sh = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    printf("shared file map: %s\n", sh == MAP_FAILED ? ename(errno) : "ok");
    memcpy(sh + 10, "SHARED-WRITE", 12);
    sh[PG + 5] = '#';
    CHECK("msync", msync(sh, 2 * PG, MS_SYNC));
    CHECK("msync bad flags", msync(sh, PG, MS_SYNC | MS_ASYNC));
    CHECK("msync unaligned", msync(sh + 1, PG, MS_SYNC));
    char back[16] = {0};
    lseek(fd, 10, SEEK_SET);
    read(fd, back, 12);
    printf("read() sees shared write: %s\n", back);
    pread(fd, &c, 1, PG + 5);
    printf("second page: %c\n", c);
    CHECK("munmap shared", munmap(sh, 2 * PG));
    /* map at an offset */
    unsigned char *off = mmap(NULL, PG, PROT_READ, MAP_PRIVATE, fd, PG);
    printf("offset map: %s %c\n", off == MAP_FAILED ? ename(errno) : "ok", off == MAP_FAILED ? '?' : off[5]);
    munmap(off, PG);
    close(fd);

    int ro = open(path, O_RDONLY);
    errno = 0;
    void *r = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0);
    printf("shared RW of read-only fd: %s\n", r == MAP_FAILED ? ename(errno) : "mapped");
    r = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, ro, 0);
    printf("private RW of read-only fd: %s\n", r == MAP_FAILED ? ename(errno) : "ok");
    munmap(r, PG);
    close(ro);
    int wo = open(path, O_WRONLY);
    errno = 0;
    r = mmap(NULL, PG, PROT_READ, MAP_PRIVATE, wo, 0);
    printf("map of write-only fd: %s\n", r == MAP_FAILED ? ename(errno) : "mapped");
    close(wo);
    int pfd[2];
    pipe(pfd);
    errno = 0;
    r = mmap(NULL, PG, PROT_READ, MAP_PRIVATE, pfd[0], 0);
    printf("map of a pipe: %s\n", r == MAP_FAILED ? ename(errno) : "mapped");
    close(pfd[0]);
    close(pfd[1]);
    unlink(path);
}

/* brk straight through the syscall: musl's sbrk() refuses to move the break */
static char *brk_at(char *addr) { return (char *)syscall(SYS_brk, addr); }

static void brk_patterns(void)
{
    char *start = brk_at(0);
    char *a = brk_at(start + 64 * 1024);
    printf("brk grow: %d\n", a == start + 64 * 1024);
    memset(start, 7, 64 * 1024);
    char *b = brk_at(start + 32 * 1024);
    printf("brk shrink: %d\n", b == start + 32 * 1024);
    printf("heap kept: %d\n", start[100] == 7 && start[32 * 1024 - 1] == 7);
    char *c = brk_at(start + (1 << 20));
    printf("brk regrow: %d\n", c == start + (1 << 20));
    int z = 1;
    for (long i = 32 * 1024; i < (1 << 20); i++) z &= start[i] == 0;
    printf("regrown part is zero: %d\n", z);
    memset(start, 1, 1 << 20);
    char *d = brk_at(start - (64L << 30));
    printf("brk below start refused: %d\n", d == start + (1 << 20));
    char *e = brk_at(start + (1L << 46));
    printf("huge brk refused: %d\n", e == start + (1 << 20));
    printf("brk back to start: %d\n", brk_at(start) == start);
}

/* mlock & co: what /proc/self/status (VmLck) and smaps (Locked, VmFlags lo) say, mincore after MLOCK_ONFAULT */
static long vm_locked_kb(void)
{
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmLck: %ld", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

static void smaps_of(const char *label, void *addr, int exact)
{
    char line[512];
    unsigned long a = (unsigned long)addr, lo, hi;
    FILE *f = fopen("/proc/self/smaps", "r");
    int in = 0;
    while (f && fgets(line, sizeof line, f)) {
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
            in = lo <= a && a < hi;       /* the area holding addr (Linux may have merged it with a neighbour) */
        else if (in && !strncmp(line, "Locked:", 7) && exact)
            printf("%s smaps %s", label, line);
        else if (in && !strncmp(line, "Locked:", 7))      /* the area may be merged with a neighbour */
            printf("%s smaps Locked nonzero: %d\n", label, atol(line + 7) > 0);
        else if (in && !strncmp(line, "VmFlags:", 8))
            printf("%s VmFlags has lo: %d\n", label, strstr(line, " lo") != NULL);
    }
    if (f)
        fclose(f);
}

static void lock_patterns(void)
{
    long base = vm_locked_kb();
    printf("VmLck at start: %ld kB\n", base);
    char *p = mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK("mlock 4 pages", mlock(p, 4 * PG));
    printf("VmLck grew by %ld kB\n", vm_locked_kb() - base);
    smaps_of("the locked half", p, 1);
    smaps_of("the other half", p + 4 * PG, 1);
    CHECK("munlock 2 pages", munlock(p, 2 * PG));
    printf("VmLck grew by %ld kB\n", vm_locked_kb() - base);
    munmap(p, 8 * PG);
    printf("VmLck after munmap grew by %ld kB\n", vm_locked_kb() - base);
    char *q = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED, -1, 0);
    printf("MAP_LOCKED: VmLck grew by %ld kB\n", vm_locked_kb() - base);
    munmap(q, 4 * PG);
    char *s = mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    memset(s, 1, 2 * PG);
    CHECK("mlock2 MLOCK_ONFAULT", syscall(SYS_mlock2, s, 8 * PG, 1));
    unsigned char vec[8];
    mincore(s, 8 * PG, vec);
    int resident = 0;
    for (int i = 0; i < 8; i++)
        resident += vec[i] & 1;
    printf("resident after MLOCK_ONFAULT: %d of 8\n", resident);
    CHECK("mlock the rest in", mlock(s, 8 * PG));
    mincore(s, 8 * PG, vec);
    resident = 0;
    for (int i = 0; i < 8; i++)
        resident += vec[i] & 1;
    printf("resident after mlock: %d of 8\n", resident);
    munmap(s, 8 * PG);
    CHECK("mlockall", mlockall(MCL_CURRENT | MCL_FUTURE));
    printf("VmLck after mlockall is more: %d\n", vm_locked_kb() > base);
    char *r = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    smaps_of("a mapping after MCL_FUTURE", r, 0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        printf("a fork child's VmLck: %ld kB\n", vm_locked_kb());
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    CHECK("munlockall", munlockall());
    printf("VmLck after munlockall: %ld kB\n", vm_locked_kb());
    munmap(r, PG);
}

static const struct { const char *name; void (*run)(void); } SECTIONS[] = {
    {"anon", anon_basic}, {"fixed", fixed_patterns}, {"reserve", reserve_then_commit},
    {"remap", remap_patterns}, {"madvise", madvise_dontneed}, {"big", big_sparse},
    {"file", file_mappings}, {"brk", brk_patterns}, {"locks", lock_patterns},
};

/* usage: mmap_patterns [SECTION...] (default: all) */
int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (unsigned i = 0; i < sizeof SECTIONS / sizeof *SECTIONS; i++) {
        int wanted = argc == 1;
        for (int a = 1; a < argc; a++) wanted |= strcmp(argv[a], SECTIONS[i].name) == 0;
        if (wanted) {
            printf("== %s\n", SECTIONS[i].name);
            SECTIONS[i].run();
        }
    }
    puts("done");
    return 0;
}
