/* vdso: the vDSO as a program finds it (vdso(7)): AT_SYSINFO_EHDR, its ELF image and versioned symbols, its
 * [vdso]/[vvar] mappings, and the clocks read through it by the C library -- never back, coherent with the
 * syscalls and with the sleeps the kernel times (a TIMER_ABSTIME deadline taken from it is never seen as not
 * yet reached). Prints facts only.
 *   vdso            the facts
 *   vdso now N      spin reading the clocks for N ms, then print CLOCK_MONOTONIC and CLOCK_REALTIME in ns */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static long long ns(clockid_t clock)
{
    struct timespec t;
    clock_gettime(clock, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static long long raw_ns(clockid_t clock)
{
    struct timespec t;
    syscall(SYS_clock_gettime, clock, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* The vDSO's address of `name` at version `version`, looked up as musl's __vdsosym does. */
static void *vdso_symbol(const Elf64_Ehdr *eh, const char *name, const char *version)
{
    const Elf64_Phdr *ph = (const void *)((const char *)eh + eh->e_phoff);
    const Elf64_Dyn *dyn = 0;
    size_t base = (size_t)-1;
    for (int i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_type == PT_LOAD && base == (size_t)-1)
            base = (size_t)eh + ph[i].p_offset - ph[i].p_vaddr;
        else if (ph[i].p_type == PT_DYNAMIC)
            dyn = (const void *)((const char *)eh + ph[i].p_offset);
    }
    if (!dyn || base == (size_t)-1)
        return 0;
    const char *strings = 0;
    const Elf64_Sym *syms = 0;
    const Elf32_Word *hash = 0;
    const Elf64_Half *versym = 0;
    const Elf64_Verdef *verdef = 0;
    for (; dyn->d_tag; dyn++) {
        void *p = (void *)(base + dyn->d_un.d_ptr);
        switch (dyn->d_tag) {
        case DT_STRTAB: strings = p; break;
        case DT_SYMTAB: syms = p; break;
        case DT_HASH: hash = p; break;
        case DT_VERSYM: versym = p; break;
        case DT_VERDEF: verdef = p; break;
        }
    }
    if (!strings || !syms || !hash || !versym || !verdef)
        return 0;
    for (Elf32_Word i = 0; i < hash[1]; i++) {
        if (ELF64_ST_TYPE(syms[i].st_info) != STT_FUNC || !syms[i].st_shndx || strcmp(name, strings + syms[i].st_name))
            continue;
        for (const Elf64_Verdef *d = verdef;; d = (const void *)((const char *)d + d->vd_next)) {
            const Elf64_Verdaux *aux = (const void *)((const char *)d + d->vd_aux);
            if ((d->vd_ndx & 0x7fff) == (versym[i] & 0x7fff) && !strcmp(strings + aux->vda_name, version))
                return (void *)(base + syms[i].st_value);
            if (!d->vd_next)
                break;
        }
    }
    return 0;
}

static void maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int vdso = 0, vvar = 0;
    while (f && fgets(line, sizeof line, f)) {
        char perms[8];
        if (sscanf(line, "%*s %7s", perms) != 1)
            continue;
        if (strstr(line, "[vdso]"))
            vdso = !strcmp(perms, "r-xp");
        if (strstr(line, "[vvar]"))
            vvar = !strcmp(perms, "r--p");
    }
    if (f)
        fclose(f);
    printf("maps: [vdso] r-xp %d, [vvar] r--p %d\n", vdso, vvar);
}

/* Every clock the vDSO answers, read through it and through the syscall in turn for `ms`: none goes back. */
static void never_back(int ms)
{
    static const clockid_t clocks[] = {CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_TAI};
    long long last[4] = {0}, end = ns(CLOCK_MONOTONIC) + ms * 1000000LL;
    long long last_tv = 0;
    time_t last_time = 0;
    int back[4] = {0}, tv_back = 0, time_back = 0, reads = 0;
    while (ns(CLOCK_MONOTONIC) < end) {
        for (int c = 0; c < 4; c++) {
            long long a = ns(clocks[c]), b = raw_ns(clocks[c]), d = ns(clocks[c]);
            back[c] += a < last[c] || b < a || d < b;
            last[c] = d;
        }
        struct timeval tv;
        gettimeofday(&tv, 0);
        long long us = tv.tv_sec * 1000000LL + tv.tv_usec;
        tv_back += us < last_tv;
        last_tv = us;
        time_t t = time(0);
        time_back += t < last_time;
        last_time = t;
        reads++;
    }
    printf("clocks never go back (vDSO and syscall interleaved): REALTIME %d MONOTONIC %d BOOTTIME %d TAI %d, "
           "gettimeofday %d, time %d; reads > 100: %d\n", !back[0], !back[1], !back[2], !back[3], !tv_back,
           !time_back, reads > 100);
}

/* Sleeps the host times against readings from the vDSO: relative ones last at least as long, and after an
 * absolute one (a deadline computed from the vDSO's reading) the vDSO's reading is past the deadline. */
static void sleeps(void)
{
    int short_rel = 0, early_abs = 0;
    for (int i = 0; i < 100; i++) {
        struct timespec req = {0, 150000 + 1000 * i}, deadline;
        long long start = ns(CLOCK_MONOTONIC);
        clock_nanosleep(CLOCK_MONOTONIC, 0, &req, 0);
        short_rel += ns(CLOCK_MONOTONIC) - start < req.tv_nsec;
        clockid_t clock = i % 2 ? CLOCK_MONOTONIC : CLOCK_REALTIME;
        long long target = ns(clock) + 200000 + 997 * i;
        deadline.tv_sec = target / 1000000000LL;
        deadline.tv_nsec = target % 1000000000LL;
        clock_nanosleep(clock, TIMER_ABSTIME, &deadline, 0);
        early_abs += ns(clock) < target;
    }
    printf("relative sleeps long enough: %d; after an absolute deadline the clock is past it: %d\n", !short_rel,
           !early_abs);
}

static void coherent(void)
{
    struct timeval tv;
    struct timespec ts;
    time_t t0 = time(0);
    gettimeofday(&tv, 0);
    clock_gettime(CLOCK_REALTIME, &ts);
    time_t t1 = time(0);
    long long tv_ns = tv.tv_sec * 1000000000LL + tv.tv_usec * 1000LL, ts_ns = ts.tv_sec * 1000000000LL + ts.tv_nsec;
    printf("time <= gettimeofday <= clock_gettime(REALTIME) <= time + 1s: %d\n",
           t0 <= tv.tv_sec && tv_ns <= ts_ns + 1000 && ts.tv_sec <= t1);
    long long mono = ns(CLOCK_MONOTONIC), coarse = ns(CLOCK_MONOTONIC_COARSE), boot = ns(CLOCK_BOOTTIME);
    printf("MONOTONIC_COARSE within 10 ms of MONOTONIC: %d; BOOTTIME >= MONOTONIC: %d\n",
           llabs(coarse - mono) < 10000000, boot >= mono);
    struct timezone tz = {1, 1};
    gettimeofday(&tv, &tz);
    struct timezone host_tz = {2, 2};
    syscall(SYS_gettimeofday, 0, &host_tz);
    printf("timezone as the kernel's: %d\n", tz.tz_minuteswest == host_tz.tz_minuteswest &&
           tz.tz_dsttime == host_tz.tz_dsttime);
}

static void others(void)
{
    struct timespec res, cpu;
    for (clockid_t c = 0; c <= 11; c++) {
        errno = 0;
        int r = clock_getres(c, &res);
        printf("clock_getres(%d): %d %s %ld.%09ld\n", c, r, r ? strerror(errno) : "", r ? 0 : res.tv_sec,
               r ? 0 : res.tv_nsec);
    }
    for (int i = 0; i < 2; i++) {
        clockid_t bad = i ? -1 : 42;
        errno = 0;
        int r = clock_gettime(bad, &res);
        printf("clock_gettime(%d): %d %s\n", bad, r, strerror(errno));
    }
    printf("CPU-time clocks read: %d %d\n", clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu),
           clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu));
    int cpu_nr = sched_getcpu();
    printf("sched_getcpu: a CPU of this machine %d\n", cpu_nr >= 0 && cpu_nr < sysconf(_SC_NPROCESSORS_CONF));
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "now")) {
        never_back(atoi(argv[2]));
        printf("%lld %lld\n", ns(CLOCK_MONOTONIC), ns(CLOCK_REALTIME));
        return 0;
    }
    const Elf64_Ehdr *eh = (const void *)getauxval(AT_SYSINFO_EHDR);
    printf("AT_SYSINFO_EHDR: %d\n", eh != 0);
    if (!eh)
        return 1;
    printf("an x86-64 ELF shared object: %d\n", !memcmp(eh->e_ident, ELFMAG, SELFMAG) &&
           eh->e_ident[EI_CLASS] == ELFCLASS64 && eh->e_type == ET_DYN && eh->e_machine == EM_X86_64);
    static const char *names[] = {"__vdso_clock_gettime", "__vdso_gettimeofday", "__vdso_time",
                                  "__vdso_clock_getres", "__vdso_getcpu", "clock_gettime", "gettimeofday", "time",
                                  "clock_getres", "getcpu"};
    for (unsigned i = 0; i < sizeof names / sizeof *names; i++)
        printf("%s@LINUX_2.6: %d\n", names[i], vdso_symbol(eh, names[i], "LINUX_2.6") != 0);
    int (*cgt)(clockid_t, struct timespec *) = vdso_symbol(eh, "__vdso_clock_gettime", "LINUX_2.6");
    struct timespec direct;
    long long before = raw_ns(CLOCK_MONOTONIC);
    int r = cgt(CLOCK_MONOTONIC, &direct);
    long long after = raw_ns(CLOCK_MONOTONIC), got = direct.tv_sec * 1000000000LL + direct.tv_nsec;
    printf("__vdso_clock_gettime called directly: %d, between two syscalls: %d\n", r, before <= got && got <= after);
    maps();
    coherent();
    never_back(300);
    sleeps();
    others();
    return 0;
}
