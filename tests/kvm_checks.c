/* Freestanding checks of what a CPU backend must get right (no libc: only write, mmap, munmap, mprotect,
 * madvise, exit_group). argv[1] picks the check; each prints facts, or dies by the signal it provokes. */
typedef unsigned long u64;

static long sys(long nr, long a, long b, long c, long d, long e, long f)
{
    register long r10 __asm__("r10") = d, r8 __asm__("r8") = e, r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

enum { SYS_write = 1, SYS_mmap = 9, SYS_mprotect = 10, SYS_munmap = 11, SYS_madvise = 28, SYS_exit_group = 231 };
#define PAGE 4096L

static long len(const char *s) { long n = 0; while (s[n]) n++; return n; }
static void put(const char *s) { sys(SYS_write, 1, (long)s, len(s), 0, 0, 0); }
static void putnum(u64 v)
{
    char buf[24]; int i = 23; buf[i] = 0;
    do { buf[--i] = '0' + v % 10; v /= 10; } while (v);
    put(buf + i);
}
static void fact(const char *what, int ok) { put(what); put(ok ? ": yes\n" : ": no\n"); }
static int eq(const char *a, const char *b) { while (*a && *a == *b) a++, b++; return *a == *b; }

static char *map(long size, int prot)
{
    return (char *)sys(SYS_mmap, 0, size, prot, 0x22 /* MAP_PRIVATE|MAP_ANONYMOUS */, -1, 0);
}

static void touch(volatile char *p, long size, char v) { for (long i = 0; i < size; i += PAGE) p[i] = v; }

/* munmap, then reuse the same addresses many times: a stale translation would show old data. */
static void reuse(void)
{
    long bad = 0, sizes[] = {PAGE, 3 * PAGE, 16 * PAGE, 64 * PAGE, 300 * PAGE};
    for (int round = 0; round < 60; round++) {
        long size = sizes[round % 5];
        volatile char *p = map(size, 3);
        for (long i = 0; i < size; i += PAGE)
            if (p[i] != 0) bad++;
        touch(p, size, (char)(round + 1));
        for (long i = 0; i < size; i += PAGE)
            if (p[i] != (char)(round + 1)) bad++;
        if (round % 3 == 0)
            sys(SYS_madvise, (long)p, size, 4 /* MADV_DONTNEED */, 0, 0, 0);
        if (round % 3 == 1)
            sys(SYS_mprotect, (long)p, size, 1, 0, 0, 0);
        sys(SYS_munmap, (long)p, size, 0, 0, 0, 0);
    }
    put("stale values: "); putnum(bad); put("\n");
}

/* Every register but rax, rcx, r11 survives a syscall that changes the page table; the flags too
 * (sysret restores them from r11); and a page fault in the middle of a computation changes nothing. */
u64 kc_in[12] = {0x1111, 0x2222, 0x3333, 0x4444, 0x5555, 0x6666, 0x7777, 0x8888, 0x9999, 0xaaaa};
u64 kc_out[12];
char *kc_addr;

static void regs(void)
{
    char *p = map(64 * PAGE, 3);
    touch(p, 64 * PAGE, 1);
    kc_addr = p;
    __asm__ volatile(
        "push %%rbp\n"
        "mov kc_in+0(%%rip), %%rbx\n mov kc_in+8(%%rip), %%rbp\n mov kc_in+16(%%rip), %%r8\n mov kc_in+24(%%rip), %%r9\n"
        "mov kc_in+32(%%rip), %%r10\n mov kc_in+40(%%rip), %%r12\n mov kc_in+48(%%rip), %%r13\n mov kc_in+56(%%rip), %%r14\n"
        "mov kc_in+64(%%rip), %%r15\n mov kc_in+72(%%rip), %%rdx\n"
        "mov $11, %%eax\n mov kc_addr(%%rip), %%rdi\n mov $262144, %%esi\n"
        "stc\n syscall\n"
        "setc %%cl\n movzbl %%cl, %%ecx\n mov %%rcx, kc_out+88(%%rip)\n"
        "mov %%rbx, kc_out+0(%%rip)\n mov %%rbp, kc_out+8(%%rip)\n mov %%r8, kc_out+16(%%rip)\n mov %%r9, kc_out+24(%%rip)\n"
        "mov %%r10, kc_out+32(%%rip)\n mov %%r12, kc_out+40(%%rip)\n mov %%r13, kc_out+48(%%rip)\n mov %%r14, kc_out+56(%%rip)\n"
        "mov %%r15, kc_out+64(%%rip)\n mov %%rdx, kc_out+72(%%rip)\n mov %%rdi, kc_out+80(%%rip)\n"
        "pop %%rbp\n"
        : : : "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
          "memory", "cc");
    int same = 1;
    for (int i = 0; i < 10; i++) same &= kc_out[i] == kc_in[i];
    fact("registers kept across munmap", same);
    fact("rdi kept across munmap", kc_out[10] == (u64)p);
    fact("carry flag kept across munmap", kc_out[11] == 1);

    volatile char *fresh = map(PAGE, 3);
    u64 before = 0x123456789abcdef0UL, after = 0, flag = 0;
    __asm__ volatile("mov %[v], %%rbx\n stc\n movb $7, (%[p])\n setc %%al\n movzbl %%al, %%eax\n mov %%rax, %[f]\n"
                     "mov %%rbx, %[a]\n"
                     : [a] "=m"(after), [f] "=m"(flag) : [v] "r"(before), [p] "r"(fresh) : "rax", "rbx", "memory", "cc");
    fact("registers kept across a page fault", after == before);
    fact("carry flag kept across a page fault", flag == 1);
    fact("faulting store done", fresh[0] == 7);

    double x = 1.5;
    __asm__ volatile("movsd %[x], %%xmm7\n movsd %%xmm7, %%xmm12" : : [x] "m"(x) : "xmm7", "xmm12");
    sys(SYS_munmap, (long)fresh, PAGE, 0, 0, 0, 0);
    double y, z;
    __asm__ volatile("movsd %%xmm7, %[y]\n movsd %%xmm12, %[z]" : [y] "=m"(y), [z] "=m"(z));
    fact("xmm registers kept", y == 1.5 && z == 1.5);
}

static void auxv(u64 *sp)
{
    u64 argc = sp[0], *p = sp + 1 + argc + 1;
    while (*p) p++;
    u64 hwcap = 0;
    for (p++; p[0]; p += 2)
        if (p[0] == 16) hwcap = p[1];
    unsigned a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
    fact("AT_HWCAP == cpuid(1).edx", hwcap == d);
    fact("sse2", d >> 26 & 1);
}

void cmain(u64 *sp)
{
    char **argv = (char **)(sp + 1);
    const char *what = sp[0] > 1 ? argv[1] : "";
    char *p;
    if (eq(what, "reuse")) reuse();
    else if (eq(what, "regs")) regs();
    else if (eq(what, "auxv")) auxv(sp);
    else if (eq(what, "unmap")) {
        p = map(256 * PAGE, 3); touch(p, 256 * PAGE, 9);
        sys(SYS_munmap, (long)p, 256 * PAGE, 0, 0, 0, 0);
        put("unmapped\n");
        put(((volatile char *)p)[PAGE] ? "still readable\n" : "reads zero\n");
    } else if (eq(what, "readonly")) {
        p = map(16 * PAGE, 3); touch(p, 16 * PAGE, 9);
        sys(SYS_mprotect, (long)p, 16 * PAGE, 1, 0, 0, 0);
        put(((volatile char *)p)[PAGE] == 9 ? "readable\n" : "lost\n");
        ((volatile char *)p)[PAGE] = 1;
        put("written\n");
    } else if (eq(what, "none")) {
        p = map(16 * PAGE, 3); touch(p, 16 * PAGE, 9);
        sys(SYS_mprotect, (long)p, 16 * PAGE, 0, 0, 0, 0);
        put("protected\n");
        put(((volatile char *)p)[PAGE] ? "still readable\n" : "reads zero\n");
    } else if (eq(what, "dontneed")) {
        p = map(16 * PAGE, 3); touch(p, 16 * PAGE, 9);
        sys(SYS_madvise, (long)p, 16 * PAGE, 4, 0, 0, 0);
        put(((volatile char *)p)[PAGE] == 0 ? "zero after MADV_DONTNEED\n" : "stale after MADV_DONTNEED\n");
    } else if (eq(what, "ud2")) __asm__ volatile("ud2");
    else if (eq(what, "int3")) __asm__ volatile("int3");
    else if (eq(what, "hlt")) __asm__ volatile("hlt");
    else if (eq(what, "null")) put((const char *)*(char *volatile *)0);
    else if (eq(what, "div")) { volatile int z = 0; putnum(10 / z); }
    else if (eq(what, "kernel")) { put("reading the upper half\n"); putnum(*(volatile char *)0xffff800000000000UL); }
    else { put("usage: kvm_checks reuse|regs|auxv|unmap|readonly|none|dontneed|ud2|int3|hlt|null|div|kernel\n");
           sys(SYS_exit_group, 2, 0, 0, 0, 0, 0); }
    sys(SYS_exit_group, 0, 0, 0, 0, 0, 0);
}

__asm__(".globl _start\n_start:\n xor %ebp, %ebp\n mov %rsp, %rdi\n and $-16, %rsp\n call cmain\n hlt\n");
