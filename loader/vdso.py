"""hermipy's vDSO: the shared object Linux maps into every process (arch/x86/entry/vdso, vdso(7)), so that glibc
and musl -- static or dynamic, found through AT_SYSINFO_EHDR, never by rewriting -- read the clocks without
a syscall.

One page of ELF, ``linux-vdso.so.1``, exporting what Linux's x86-64 vDSO exports, each as ``__vdso_NAME``
(global) and ``NAME`` (weak), version ``LINUX_2.6``: clock_gettime, gettimeofday and time answer from the
``[vvar]`` page right below it (its formula and refresh: syscalls/timekeeping.py) or, when that cannot
answer (another clock, a formula past its lifetime, a host whose TSC is not usable), make the syscall
itself, as Linux's vDSO falls back; clock_getres and getcpu always make it. Like Linux's, the functions
write the caller's buffers directly, so a bad pointer is the caller's SIGSEGV, and they use nothing but the
caller-saved registers and 8 bytes of stack.

The image is built here from its parts (ELF header, two program headers, SysV hash, dynamic symbols with
versions, section headers so that tools can read it); the code is assembled by keystone once and cached with
the KVM stubs (``python -m hermipy.kvm_stubs`` regenerates the cache).
"""
import functools
import struct

from hermipy.layout import PAGE_SIZE
from hermipy.syscalls import timekeeping as tk
from hermipy.syscalls.memory import MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_EXEC, PROT_READ

SONAME, VERSION = b"linux-vdso.so.1", b"LINUX_2.6"
FUNCTIONS = ("clock_gettime", "gettimeofday", "time", "clock_getres", "getcpu")
VVAR_SIZE = VDSO_SIZE = PAGE_SIZE          # [vvar] right below [vdso]
TEXT_OFFSET = 0x400                        # the code's place in the image (after the tables)
NSEC = 1_000_000_000
USEC_MAGIC, USEC_SHIFT = 0x10624DD3, 38    # n // 1000 == n * USEC_MAGIC >> USEC_SHIFT for every n < 2**32
NR = {"clock_gettime": 228, "gettimeofday": 96, "time": 201, "clock_getres": 229, "getcpu": 309}

# The reading, inlined in each function (a call and return cost ~30 ns under Unicorn): ecx = a clock id below
# 32; leaves rax = its seconds and rdx = its nanoseconds, or jumps to the function's syscall. Uses rax, rcx,
# rdx, r8, r9, r10; reaches [vvar] (right below the image) rip-relative from the image's first code byte. No
# division: the page holds each clock's base as seconds and nanoseconds, and what the TSC adds (less than the
# formula's lifetime, about a second) is carried into the seconds by subtraction.
_READ = """\
    lea r8, [rip + vdso_text - {vvar_distance:#x}]
    mov r10d, ecx
    shl r10d, 4
{fn}_retry:
    mov r9d, dword ptr [r8 + {seq}]
    test r9d, 1
    jnz {fn}_busy
    mov eax, dword ptr [r8 + {mask}]
    bt eax, ecx
    jnc {fn}_syscall
    lfence
    rdtsc
    shl rdx, 32
    or rax, rdx
    sub rax, qword ptr [r8 + {tsc_base}]
    cmp rax, qword ptr [r8 + {tsc_limit}]
    jae {fn}_syscall
    mul qword ptr [r8 + {mult}]
    shrd rax, rdx, 32
    add rax, qword ptr [r8 + r10 + {bases_nsec}]
    mov rdx, qword ptr [r8 + r10 + {bases_sec}]
    cmp r9d, dword ptr [r8 + {seq}]
    jne {fn}_retry
{fn}_carry:
    cmp rax, {nsec}
    jb {fn}_read
    sub rax, {nsec}
    inc rdx
    jmp {fn}_carry
{fn}_busy:
    pause
    jmp {fn}_retry
{fn}_read:
    xchg rax, rdx
"""
_ASM = """\
vdso_text:
vdso_clock_gettime:
    cmp edi, {clock_ids}
    jae clock_gettime_syscall
    mov ecx, edi
{read_clock_gettime}\
    mov qword ptr [rsi], rax
    mov qword ptr [rsi + 8], rdx
    xor eax, eax
    ret
clock_gettime_syscall:
    mov eax, {nr_clock_gettime}
    syscall
    ret
    .align 16
vdso_gettimeofday:
    xor ecx, ecx
{read_gettimeofday}\
    test rdi, rdi
    jz gettimeofday_tz
    mov qword ptr [rdi], rax
    imul rdx, rdx, {usec_magic:#x}
    shr rdx, {usec_shift}
    mov qword ptr [rdi + 8], rdx
gettimeofday_tz:
    test rsi, rsi
    jz gettimeofday_done
    mov rax, qword ptr [r8 + {tz}]
    mov qword ptr [rsi], rax
gettimeofday_done:
    xor eax, eax
    ret
gettimeofday_syscall:
    mov eax, {nr_gettimeofday}
    syscall
    ret
    .align 16
vdso_time:
    xor ecx, ecx
{read_time}\
    test rdi, rdi
    jz time_done
    mov qword ptr [rdi], rax
time_done:
    ret
time_syscall:
    mov eax, {nr_time}
    syscall
    ret
    .align 16
vdso_clock_getres:
    mov eax, {nr_clock_getres}
    syscall
    ret
    .align 16
vdso_getcpu:
    mov eax, {nr_getcpu}
    syscall
    ret
"""


def code_source() -> tuple[str, int]:
    """The vDSO's code and where it sits in the image (for kvm_stubs.cached_sources, which caches it)."""
    fields = dict(vvar_distance=VVAR_SIZE + TEXT_OFFSET, seq=tk.VVAR_SEQ, mask=tk.VVAR_MASK,
                  tsc_base=tk.VVAR_TSC_BASE, tsc_limit=tk.VVAR_TSC_LIMIT, mult=tk.VVAR_MULT,
                  bases_sec=tk.VVAR_BASES, bases_nsec=tk.VVAR_BASES + 8, nsec=NSEC)
    reads = {f"read_{fn}": _READ.format(fn=fn, **fields) for fn in ("clock_gettime", "gettimeofday", "time")}
    source = _ASM.format(tz=tk.VVAR_TZ, clock_ids=tk.CLOCK_IDS, usec_magic=USEC_MAGIC, usec_shift=USEC_SHIFT,
                         **reads, **{f"nr_{name}": nr for name, nr in NR.items()})
    return source, TEXT_OFFSET


def _elf_hash(name: bytes) -> int:
    """The SysV ABI's symbol hash (DT_HASH, vd_hash)."""
    h = 0
    for c in name:
        h = ((h << 4) + c) & 0xFFFFFFFF
        g = h & 0xF0000000
        if g:
            h ^= g >> 24
        h &= ~g & 0xFFFFFFFF
    return h


def _align(blob: bytearray, alignment: int) -> int:
    blob.extend(bytes(-len(blob) % alignment))
    return len(blob)


EHDR, PHDR, SHDR, SYM, DYN = (struct.Struct(f) for f in ("<16sHHIQQQIHHHHHH", "<IIQQQQQQ", "<IIQQQQIIQQ",
                                                           "<IBBHQQ", "<qQ"))
PT_LOAD, PT_DYNAMIC, PF_X, PF_R = 1, 2, 1, 4
STB_GLOBAL, STB_WEAK, STT_OBJECT, STT_FUNC, SHN_ABS = 1, 2, 1, 2, 0xFFF1
DT_NULL, DT_HASH, DT_STRTAB, DT_SYMTAB, DT_STRSZ, DT_SYMENT, DT_SONAME = 0, 4, 5, 6, 10, 11, 14
DT_VERSYM, DT_VERDEF, DT_VERDEFNUM = 0x6FFFFFF0, 0x6FFFFFFC, 0x6FFFFFFD
SHT_PROGBITS, SHT_STRTAB, SHT_HASH, SHT_DYNAMIC, SHT_DYNSYM = 1, 3, 5, 6, 11
SHT_GNU_VERDEF, SHT_GNU_VERSYM = 0x6FFFFFFD, 0x6FFFFFFF
SHF_ALLOC, SHF_EXECINSTR = 2, 4
VER_FLG_BASE = 1
@functools.cache
def image() -> bytes:
    """The vDSO's bytes (built once per process)."""
    from hermipy.kvm_stubs import assemble
    code, labels = assemble(*code_source())
    strings = bytearray(b"\0")

    def string(s: bytes) -> int:
        strings.extend(s + b"\0")
        return len(strings) - len(s) - 1
    soname, version = string(SONAME), string(VERSION)
    symbols = [SYM.pack(0, 0, 0, 0, 0, 0)]
    starts = sorted(labels[f"vdso_{name}"] for name in FUNCTIONS) + [TEXT_OFFSET + len(code)]
    for name in FUNCTIONS:
        start = labels[f"vdso_{name}"]
        size = starts[starts.index(start) + 1] - start
        for symbol, bind in ((b"__vdso_" + name.encode(), STB_GLOBAL), (name.encode(), STB_WEAK)):
            symbols.append(SYM.pack(string(symbol), bind << 4 | STT_FUNC, 0, 7, start, size))
    symbols.append(SYM.pack(version, STB_GLOBAL << 4 | STT_OBJECT, 0, SHN_ABS, 0, 0))
    names = [bytes(strings[SYM.unpack(s)[0]:]).split(b"\0", 1)[0] for s in symbols]

    blob = bytearray(EHDR.size + 2 * PHDR.size)
    sections = []                                 # (name, type, flags, offset, size, link, info, align, entsize)
    hash_at = _align(blob, 8)
    buckets = [0] * len(symbols)
    chains = [0] * len(symbols)
    for index in range(1, len(symbols)):
        bucket = _elf_hash(names[index]) % len(buckets)
        chains[index], buckets[bucket] = buckets[bucket], index
    blob += struct.pack(f"<{2 + 2 * len(symbols)}I", len(buckets), len(symbols), *buckets, *chains)
    sections.append((b".hash", SHT_HASH, SHF_ALLOC, hash_at, len(blob) - hash_at, 2, 0, 8, 4))
    dynsym_at = _align(blob, 8)
    blob += b"".join(symbols)
    sections.append((b".dynsym", SHT_DYNSYM, SHF_ALLOC, dynsym_at, len(blob) - dynsym_at, 3, 1, 8, SYM.size))
    dynstr_at = len(blob)
    blob += strings
    sections.append((b".dynstr", SHT_STRTAB, SHF_ALLOC, dynstr_at, len(strings), 0, 0, 1, 0))
    versym_at = _align(blob, 2)
    blob += struct.pack(f"<{len(symbols)}H", 0, *[2] * (len(symbols) - 1))
    sections.append((b".gnu.version", SHT_GNU_VERSYM, SHF_ALLOC, versym_at, len(blob) - versym_at, 2, 0, 2, 2))
    verdef_at = _align(blob, 8)
    for ndx, (flags, name, offset, last) in enumerate(((VER_FLG_BASE, SONAME, soname, False),
                                                       (0, VERSION, version, True)), start=1):
        blob += struct.pack("<HHHHIII", 1, flags, ndx, 1, _elf_hash(name), 20, 0 if last else 28)
        blob += struct.pack("<II", offset, 0)
    sections.append((b".gnu.version_d", SHT_GNU_VERDEF, SHF_ALLOC, verdef_at, len(blob) - verdef_at, 3, 2, 8, 0))
    dynamic_at = _align(blob, 8)
    for tag, value in ((DT_SONAME, soname), (DT_HASH, hash_at), (DT_STRTAB, dynstr_at), (DT_SYMTAB, dynsym_at),
                       (DT_STRSZ, len(strings)), (DT_SYMENT, SYM.size), (DT_VERSYM, versym_at),
                       (DT_VERDEF, verdef_at), (DT_VERDEFNUM, 2), (DT_NULL, 0)):
        blob += DYN.pack(tag, value)
    dynamic_size = len(blob) - dynamic_at
    sections.append((b".dynamic", SHT_DYNAMIC, SHF_ALLOC, dynamic_at, dynamic_size, 3, 0, 8, DYN.size))
    if len(blob) > TEXT_OFFSET:
        raise ValueError("vdso: the tables overlap the code")
    blob += bytes(TEXT_OFFSET - len(blob)) + code
    sections.append((b".text", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, TEXT_OFFSET, len(code), 0, 0, 16, 0))
    loaded = len(blob)
    shstrtab_at = len(blob)
    section_names = bytearray(b"\0")
    name_offsets = []
    for section in sections + [(b".shstrtab",)]:
        name_offsets.append(len(section_names))
        section_names += section[0] + b"\0"
    blob += section_names
    sections.append((b".shstrtab", SHT_STRTAB, 0, shstrtab_at, len(section_names), 0, 0, 1, 0))
    shdrs_at = _align(blob, 8)
    blob += bytes(SHDR.size)
    for (name, kind, flags, offset, size, link, info, align, entsize), name_at in zip(sections, name_offsets):
        blob += SHDR.pack(name_at, kind, flags, offset if flags & SHF_ALLOC else 0, offset, size, link, info,
                          align, entsize)
    if len(blob) > VDSO_SIZE:
        raise ValueError("vdso: larger than its page")
    EHDR.pack_into(blob, 0, b"\x7fELF\x02\x01\x01", 3, 62, 1, 0, EHDR.size, shdrs_at, 0, EHDR.size, PHDR.size, 2,
                   SHDR.size, len(sections) + 1, len(sections))
    PHDR.pack_into(blob, EHDR.size, PT_LOAD, PF_R | PF_X, 0, 0, 0, loaded, loaded, PAGE_SIZE)
    PHDR.pack_into(blob, EHDR.size + PHDR.size, PT_DYNAMIC, PF_R, dynamic_at, dynamic_at, dynamic_at,
                   dynamic_size, dynamic_size, 8)
    return bytes(blob)


def map_vdso(k) -> int:
    """arch_setup_additional_pages(): ``[vvar]`` and ``[vdso]`` above it, top-down in the mmap area (below the
    interpreter, as on Linux); returns the vDSO's address, the initial stack's AT_SYSINFO_EHDR."""
    mem = k.mem
    base = mem.find_free(VVAR_SIZE + VDSO_SIZE)
    fixed = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
    mem.map(base, VVAR_SIZE, PROT_READ, fixed, name="[vvar]")
    mem.map(base + VVAR_SIZE, VDSO_SIZE, PROT_READ | PROT_EXEC, fixed, name="[vdso]")
    mem.poke(base + VVAR_SIZE, image())
    mem.vdso_clock = tk.VdsoClock(mem, base)
    return base + VVAR_SIZE
