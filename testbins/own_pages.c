#define _GNU_SOURCE
/* For tests/test_isolation.py (issue 13 item 7): the guest's memory calls at the addresses hermipy keeps pages
 * of its own at (its KVM entry area, the answer page, the trampolines a rewritten getpid jumps to). Natively
 * nothing is there; under hermipy the calls must act as if nothing were there either.
 *
 *   own_pages NAME=HEXADDR...   each named page, and "trampolines": the page getpid's rewritten wrapper jumps
 *                               to (found in its code; not rewritten: the page below the program's first)
 *
 * One line per call: "NAME call: ok" or "errno N". Lines "fixed NAME [LO,HI) call" place a mapping at pages
 * [A+LO, A+HI) (A: the named address); the lines indented under one follow from it. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PAGE 4096UL
static const char *name;

static void say(const char *call, long result) {
    if (result < 0)
        printf("%s %s: errno %d\n", name, call, errno);
    else
        printf("%s %s: ok\n", name, call);
}

static int fixed(int lo, int hi, const char *call, long result) {
    if (result < 0)
        printf("fixed %s [%d,%d) %s: errno %d\n", name, lo, hi, call, errno);
    else
        printf("fixed %s [%d,%d) %s: ok\n", name, lo, hi, call);
    return result >= 0;
}

/* The protection /proc/self/maps shows at addr ("none": not mapped), and whether any line names hermipy. */
static const char *perms_at(uintptr_t addr) {
    static char perms[8];
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    strcpy(perms, "none");
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char p[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, p) == 3 && lo <= addr && addr < hi)
            strcpy(perms, p);
    }
    fclose(f);
    return perms;
}

static void check_getpid(const char *when) {
    char call[64];
    snprintf(call, sizeof call, "getpid %s", when);
    errno = EINVAL;
    say(call, getpid() == syscall(SYS_getpid) ? 0 : -1);
}

static void probe(uintptr_t a) {
    unsigned char vec[4];
    int fds[2];
    say("munmap", munmap((void *)a, PAGE));
    say("mprotect", mprotect((void *)a, PAGE, PROT_READ));
    say("madvise(MADV_DONTNEED)", madvise((void *)a, PAGE, MADV_DONTNEED));
    say("madvise(MADV_WILLNEED)", madvise((void *)a, PAGE, MADV_WILLNEED));
    say("mincore", mincore((void *)a, PAGE, vec));
    say("msync", msync((void *)a, PAGE, MS_SYNC));
    say("mlock", mlock((void *)a, PAGE));
    say("munlock", munlock((void *)a, PAGE));
    say("mremap", (long)mremap((void *)a, PAGE, 2 * PAGE, MREMAP_MAYMOVE) == -1 ? -1 : 0);
    pipe(fds);
    say("write(pipe, A)", write(fds[1], (void *)a, 1));
    write(fds[1], "x", 1);
    say("read(pipe, A)", read(fds[0], (void *)a, 1));
    close(fds[0]);
    close(fds[1]);
    char *hinted = mmap((void *)a, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    say("mmap(hint)", hinted == MAP_FAILED ? -1 : 0);
    printf("%s mmap(hint) at the hint: %d\n", name, hinted == (void *)a);
    if (hinted != MAP_FAILED) {
        hinted[0] = 7;
        say("mmap(hint) holds what was written", hinted[0] == 7 ? 0 : -1);
        munmap(hinted, PAGE);
    }

    /* a mapping of the guest's right below A, then calls over it and A */
    char *below = mmap((void *)(a - 2 * PAGE), 2 * PAGE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (fixed(-2, 0, "mmap(MAP_FIXED_NOREPLACE)", below == MAP_FAILED ? -1 : 0)) {
        below[0] = below[PAGE] = 1;
        printf("  %s mprotect over both: %s\n", name,
               mprotect(below, 3 * PAGE, PROT_READ) ? strerror(errno) : "ok");
        printf("  %s the mapping below is now %s\n", name, perms_at((uintptr_t)below));
        memset(vec, 9, sizeof vec);
        int r = mincore(below, 3 * PAGE, vec);
        printf("  %s mincore over both: %s, vector %d %d %d\n", name, r ? strerror(errno) : "ok", vec[0], vec[1],
               vec[2]);
        printf("  %s madvise over both: %s\n", name,
               madvise(below, 3 * PAGE, MADV_DONTNEED) ? strerror(errno) : "ok");
        printf("  %s zero after MADV_DONTNEED: %d\n", name, below[0]);
        printf("  %s mlock over both: %s\n", name, mlock(below, 3 * PAGE) ? strerror(errno) : "ok");
        printf("  %s munmap over both: %s\n", name, munmap(below, 3 * PAGE) ? strerror(errno) : "ok");
        printf("  %s below after munmap: %s\n", name, perms_at((uintptr_t)below));
    }

    /* mappings placed over A itself */
    char *at = mmap((void *)a, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (fixed(0, 1, "mmap(MAP_FIXED_NOREPLACE)", at == MAP_FAILED ? -1 : 0)) {
        at[0] = 5;
        printf("  %s holds %d, shown as %s\n", name, at[0], perms_at(a));
        munmap(at, PAGE);
    }
    at = mmap((void *)a, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (fixed(0, 1, "mmap(MAP_FIXED)", at == MAP_FAILED ? -1 : 0)) {
        at[0] = 6;
        printf("  %s holds %d, shown as %s\n", name, at[0], perms_at(a));
        munmap(at, PAGE);
    }
    char *moving = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    moving[0] = 4;
    at = mremap(moving, PAGE, PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)a);
    if (fixed(0, 1, "mremap(MREMAP_FIXED)", at == MAP_FAILED ? -1 : 0)) {
        printf("  %s holds %d\n", name, at[0]);
        munmap(at, PAGE);
    } else {
        munmap(moving, PAGE);
    }
    check_getpid("after");
}

/* The page a rewritten getpid wrapper (mov eax, 39; jmp short; ret; jmp rel32) jumps to, else the page below the
 * program's first one (the first line of /proc/self/maps). */
static uintptr_t trampoline_page(void) {
    const unsigned char *p = (const unsigned char *)getpid;
    for (int i = 0; i < 3; i++)
        getpid();
    if (p[0] == 0xb8 && p[5] == 0xeb && p[8] == 0xe9) {
        int32_t rel;
        memcpy(&rel, p + 9, 4);
        return ((uintptr_t)p + 13 + rel) & ~(PAGE - 1);
    }
    FILE *f = fopen("/proc/self/maps", "r");
    unsigned long first = 0;
    fscanf(f, "%lx", &first);
    fclose(f);
    return first - PAGE;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    uintptr_t tramp = trampoline_page();
    for (int i = 1; i <= argc; i++) {
        uintptr_t a;
        if (i == argc) {
            name = "trampolines";
            a = tramp;
        } else {
            char *eq = strchr(argv[i], '=');
            *eq = 0;
            name = argv[i];
            a = strtoul(eq + 1, NULL, 16);
        }
        probe(a);
    }
    name = "maps";
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int named = 0;
    while (fgets(line, sizeof line, f))
        named += strstr(line, "hermipy") != NULL;
    printf("maps lines naming hermipy: %d\n", named);
    check_getpid("at the end");
    return 0;
}
