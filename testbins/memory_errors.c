/* The memory calls' argument checks and errnos as Linux gives them (mm/mmap.c do_mmap, mm/mprotect.c, mm/madvise.c,
 * mm/msync.c, mm/mremap.c, mm/mincore.c): each call prints ok or strerror(errno); madvise's every advice on a private
 * and a shared anonymous page. Usage: memory_errors FILE (a regular file to map). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#define PG 4096
#define R(what, expr) do { long _r = (long)(expr); printf("%-40s %s\n", what, _r == -1 ? strerror(errno) : "ok"); } while (0)
#define P(what, expr) do { void *_r = (expr); printf("%-40s %s\n", what, _r == MAP_FAILED ? strerror(errno) : "ok"); } while (0)

static void advice(void)
{
    for (int a = 0; a < 30; a++) {      /* (100 and up: hwpoison and guard pages, which depend on the kernel) */
        char *m = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        char *s = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        int r = madvise(m, PG, a), e = errno;
        int r2 = madvise(s, PG, a), e2 = errno;
        printf("madvise %2d: private %s, shared %s\n", a, r ? strerror(e) : "ok", r2 ? strerror(e2) : "ok");
        munmap(m, PG);
        munmap(s, PG);
    }
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "/etc/hostname";
    setvbuf(stdout, NULL, _IONBF, 0);

    char *m;
    P("mmap prot 0x8 (PROT_SEM)", mmap(NULL, PG, 0x8 | PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    P("mmap prot 0x10", mmap(NULL, PG, 0x10 | PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    P("mmap prot 0x80000000", mmap(NULL, PG, 0x80000000 | PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    P("mmap PROT_GROWSDOWN", mmap(NULL, PG, PROT_GROWSDOWN | PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    P("mmap flags 0", mmap(NULL, PG, PROT_READ, MAP_ANONYMOUS, -1, 0));
    P("mmap unknown flag 0x800000", mmap(NULL, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | 0x800000, -1, 0));
    P("mmap SHARED_VALIDATE unknown flag", mmap(NULL, PG, PROT_READ, MAP_SHARED_VALIDATE | MAP_ANONYMOUS | 0x800000, -1, 0));
    P("mmap len 0", mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    P("mmap len -1", mmap(NULL, (size_t)-1, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    P("mmap bad fd", mmap(NULL, PG, PROT_READ, MAP_PRIVATE, 999, 0));
    int p[2]; pipe(p);
    P("mmap pipe", mmap(NULL, PG, PROT_READ, MAP_PRIVATE, p[0], 0));
    P("mmap unaligned offset", mmap(NULL, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 1));
    P("mmap fixed unaligned", mmap((void *)0x10001, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
    int d = open("/tmp", O_RDONLY | O_DIRECTORY);
    P("mmap directory", mmap(NULL, PG, PROT_READ, MAP_PRIVATE, d, 0));
    int f = open(path, O_RDONLY);
    P("mmap file offset huge", mmap(NULL, PG, PROT_READ, MAP_PRIVATE, f, 0x7ffffffffffff000));
    m = mmap(NULL, 64 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(m + 2 * PG, PG);
    munmap(m + 4 * PG, 60 * PG);
    R("mprotect unaligned", mprotect(m + 1, PG, PROT_READ));
    R("mprotect prot 0x8", mprotect(m, PG, 0x8 | PROT_READ));
    R("mprotect prot 0x10", mprotect(m, PG, 0x10 | PROT_READ));
    R("mprotect hole", mprotect(m, 4 * PG, PROT_READ));
    R("mprotect len 0", mprotect(m, 0, PROT_READ));
    R("mprotect unmapped", mprotect((void *)0x10000, PG, PROT_READ));
    R("mprotect GROWSDOWN non-stack", mprotect(m, PG, PROT_GROWSDOWN | PROT_READ));
    R("mprotect GROWSDOWN|GROWSUP", mprotect(m, PG, PROT_GROWSDOWN | PROT_GROWSUP | PROT_READ));
    R("madvise unmapped", madvise((void *)0x10000, PG, MADV_DONTNEED));
    R("madvise hole", madvise(m, 4 * PG, MADV_DONTNEED));
    R("madvise bad advice", madvise(m, PG, 999));
    R("madvise unaligned", madvise(m + 1, PG, MADV_DONTNEED));
    R("madvise len 0", madvise(m, 0, MADV_DONTNEED));
    R("madvise MADV_NORMAL hole", madvise(m, 4 * PG, MADV_NORMAL));
    R("madvise WILLNEED hole", madvise(m, 4 * PG, MADV_WILLNEED));
    R("madvise neg len", madvise(m, (size_t)-4096, MADV_DONTNEED));
    R("msync unaligned", msync(m + 1, PG, MS_SYNC));
    R("msync hole", msync(m, 4 * PG, MS_SYNC));
    R("msync unmapped", msync((void *)0x10000, PG, MS_SYNC));
    R("msync both", msync(m, PG, MS_SYNC | MS_ASYNC));
    R("msync bad flag", msync(m, PG, 8));
    R("msync len 0", msync(m, 0, MS_SYNC));
    P("mremap unaligned", mremap(m + 1, PG, PG, 0));
    P("mremap new 0", mremap(m, PG, 0, 0));
    P("mremap unmapped", mremap((void *)0x10000, PG, 2 * PG, MREMAP_MAYMOVE));
    P("mremap across hole", mremap(m, 4 * PG, 8 * PG, MREMAP_MAYMOVE));
    P("mremap bad flags", mremap(m, PG, PG, 8));
    P("mremap FIXED without MAYMOVE", mremap(m, PG, PG, MREMAP_FIXED, m + 8 * PG));
    P("mremap grow no room no move", mremap(m, PG, 2 * PG, 0));
    P("mremap DONTUNMAP unaligned new_addr", mremap(m, PG, PG, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, (void *)1));
    P("mremap DONTUNMAP grow", mremap(m, PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, NULL));
    char *old = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    old[0] = 42;
    char *kept = mremap(old, PG, PG, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, NULL);
    printf("mremap DONTUNMAP: moved %s, new page %d, old page %d\n", kept == MAP_FAILED ? strerror(errno) : "ok",
           kept == MAP_FAILED ? -1 : kept[0], old[0]);
    P("mremap old 0 private", mremap(m, 0, PG, MREMAP_MAYMOVE));
    R("munmap unaligned", munmap(m + 1, PG));
    R("munmap len 0", munmap(m, 0));
    R("munmap unmapped", munmap((void *)0x10000, PG));
    R("mlock unmapped", mlock((void *)0x10000, PG));
    R("mincore unmapped", mincore((void *)0x10000, PG, (unsigned char *)m));
    R("mincore unaligned", mincore(m + 1, PG, (unsigned char *)m));
    R("mincore bad vec", mincore(m, PG, (unsigned char *)8));
    
    P("anon SHARED_VALIDATE", mmap(NULL, 4096, PROT_READ, MAP_SHARED_VALIDATE | MAP_ANONYMOUS, -1, 0));
    f = open(path, O_RDONLY);
    P("file SHARED_VALIDATE", mmap(NULL, 4096, PROT_READ, MAP_SHARED_VALIDATE, f, 0));
    P("file SHARED_VALIDATE unknown", mmap(NULL, 4096, PROT_READ, MAP_SHARED_VALIDATE | 0x800000, f, 0));
    P("file SHARED_VALIDATE MAP_SYNC", mmap(NULL, 4096, PROT_READ, MAP_SHARED_VALIDATE | 0x80000, f, 0));
    P("file PRIVATE MAP_SYNC", mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | 0x80000, f, 0));
    P("anon GROWSDOWN shared", mmap(NULL, 4096, PROT_READ, MAP_SHARED | MAP_ANONYMOUS | MAP_GROWSDOWN, -1, 0));
    int z = open("/dev/null", O_RDWR);
    P("/dev/null private", mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, z, 0));
    P("/proc/self/stat private", mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, open("/proc/self/stat", O_RDONLY), 0));
    P("/proc/cpuinfo private", mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, open("/proc/cpuinfo", O_RDONLY), 0));
    P("/dev/urandom private", mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, open("/dev/urandom", O_RDONLY), 0));
        advice();
    return 0;
}
