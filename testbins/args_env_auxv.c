/* args_env_auxv: argv, selected environment variables and the auxiliary vector as a program sees it.
 * Prints only deterministic facts (relations between values, never addresses). */
#include <cpuid.h>
#include <elf.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

extern char **environ;
extern const ElfW(Ehdr) __ehdr_start;
extern char _start[];

#ifndef AT_MINSIGSTKSZ
#define AT_MINSIGSTKSZ 51
#endif

static const char *yes(int b) { return b ? "yes" : "no"; }

int main(int argc, char **argv, char **envp)
{
    printf("argc: %d\n", argc);
    for (int i = 0; i < argc; i++)
        printf("argv[%d]: \"%s\"\n", i == 0 ? 0 : i, i == 0 ? "<prog>" : argv[i]);
    printf("argv[argc] == NULL: %s\n", yes(argv[argc] == NULL));
    printf("envp == argv + argc + 1: %s\n", yes(envp == argv + argc + 1));
    printf("environ == envp: %s\n", yes(environ == envp));
    int nenv = 0;
    while (envp[nenv]) nenv++;
    printf("env count: %d\n", nenv);
    static const char *names[] = {"HERMI_A", "HERMI_EMPTY", "HERMI_SPACES", "HERMI_UNSET", "LANG"};
    for (unsigned i = 0; i < sizeof names / sizeof *names; i++) {
        const char *v = getenv(names[i]);
        printf("env %s: %s%s%s\n", names[i], v ? "\"" : "", v ? v : "(unset)", v ? "\"" : "");
    }
    /* auxv follows envp's NULL directly on the initial stack */
    ElfW(auxv_t) *auxv = (ElfW(auxv_t) *)(envp + nenv + 1);
    int n = 0, seen_null = 0;
    for (; n < 64; n++)
        if (auxv[n].a_type == AT_NULL) { seen_null = 1; break; }
    printf("auxv after envp, AT_NULL-terminated: %s\n", yes(seen_null));
    printf("auxv[AT_PAGESZ] == getauxval: %s\n", yes(({
        unsigned long v = 0; for (int i = 0; i < n; i++) if (auxv[i].a_type == AT_PAGESZ) v = auxv[i].a_un.a_val;
        v == getauxval(AT_PAGESZ); })));

    printf("AT_PAGESZ: %lu\n", getauxval(AT_PAGESZ));
    printf("AT_PAGESZ == sysconf: %s\n", yes(getauxval(AT_PAGESZ) == (unsigned long)sysconf(_SC_PAGESIZE)));
    printf("AT_PHENT: %lu\n", getauxval(AT_PHENT));
    printf("AT_PHENT == sizeof(Phdr): %s\n", yes(getauxval(AT_PHENT) == sizeof(ElfW(Phdr))));
    printf("AT_PHNUM == e_phnum: %s\n", yes(getauxval(AT_PHNUM) == __ehdr_start.e_phnum));
    printf("AT_PHDR == ehdr + e_phoff: %s\n",
           yes(getauxval(AT_PHDR) == (unsigned long)((const char *)&__ehdr_start + __ehdr_start.e_phoff)));
    printf("AT_ENTRY == _start: %s\n", yes(getauxval(AT_ENTRY) == (unsigned long)_start));
    printf("AT_BASE (static: 0): %lu\n", getauxval(AT_BASE));
    printf("AT_UID == getuid: %s\n", yes(getauxval(AT_UID) == getuid()));
    printf("AT_EUID == geteuid: %s\n", yes(getauxval(AT_EUID) == geteuid()));
    printf("AT_GID == getgid: %s\n", yes(getauxval(AT_GID) == getgid()));
    printf("AT_EGID == getegid: %s\n", yes(getauxval(AT_EGID) == getegid()));
    printf("AT_SECURE: %lu\n", getauxval(AT_SECURE));
    printf("AT_RANDOM != 0: %s\n", yes(getauxval(AT_RANDOM) != 0));
    const char *platform = (const char *)getauxval(AT_PLATFORM);
    printf("AT_PLATFORM: %s\n", platform ? platform : "(none)");
    const char *execfn = (const char *)getauxval(AT_EXECFN);
    printf("AT_EXECFN == argv[0]: %s\n", yes(execfn && strcmp(execfn, argv[0]) == 0));
    printf("AT_CLKTCK: %lu\n", getauxval(AT_CLKTCK));
    printf("AT_CLKTCK == sysconf: %s\n", yes(getauxval(AT_CLKTCK) == (unsigned long)sysconf(_SC_CLK_TCK)));
    /* glibc replaces getauxval(AT_HWCAP) with its own x86 feature bits; the kernel's value is in auxv */
    unsigned a, b, c, d, hwcap_found = 0;
    unsigned long hwcap = 0;
    __cpuid(1, a, b, c, d);
    for (int i = 0; i < n; i++)
        if (auxv[i].a_type == AT_HWCAP) { hwcap_found = 1; hwcap = auxv[i].a_un.a_val; }
    printf("AT_HWCAP present: %u\n", hwcap_found);
    printf("AT_HWCAP == cpuid(1).edx: %s\n", yes(hwcap == d));
    unsigned long minsig = 0;
    int present = 0;
    for (int i = 0; i < n; i++)
        if (auxv[i].a_type == AT_MINSIGSTKSZ) { present = 1; minsig = auxv[i].a_un.a_val; }
    printf("AT_MINSIGSTKSZ present: %d\n", present);
    printf("AT_MINSIGSTKSZ >= 1024: %s\n", yes(minsig >= 1024));
    /* strings live above the pointer arrays */
    printf("argv strings above auxv: %s\n", yes((char *)argv[0] > (char *)(auxv + n)));
    return argc == 1 ? 0 : 3;
}
