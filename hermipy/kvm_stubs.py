"""The KVM backend's tiny guest kernel: GDT, IDT, stubs, per-vCPU TSS and kernel stack, and a user window.

Supervisor pages (GDT, IDT, kernel stubs; one page per vCPU with its TSS and kernel stack) live in frames
allocated from guest RAM and are mapped in the upper half at ``KERNEL_BASE`` through the application's own
page table.
Segment selectors follow Linux (arch/x86/include/asm/segment.h), so ``sysretq`` works and CS/SS read as
the familiar 0x33/0x2b.

A user window (one PML4 slot, 512 GiB, at ``USER_AREA`` at first; hermipy's own area, memory.OwnArea, so that
nothing else is placed there, and moved to another slot when the guest wants the addresses: ``KernelArea.window``,
``VcpuArea.move``, KvmVm.move_window) holds what must be reachable at CPL3 -- on PVM ``syscall`` stays at CPL3,
and CPL3 cannot touch the upper half at all -- and, supervisor-only, the flush lists the kernel stub reads (the
addresses below are those of the window at ``USER_AREA``; each moves with it):

* one block per vCPU, ``VCPU_STRIDE`` apart downward from ``USER_STUB_VA`` (``vcpu_base(i)``; the
  addresses named below are vCPU 0's, and ``ANSWERS_VA``, ``TRAMPOLINE_STACK_TOP`` stay vCPU 0's for the
  trampolines, which run on every vCPU). In each block, at the same offsets:
* the user stub page (read-only at CPL3): the LSTAR entry and the `ud2` by which a vCPU at CPL3 enters CPL0
  for a page-table flush. Each vCPU has its own copy (the code is rip-relative but for ``seen_table``, which each
  copy gets pointing at its own block's seen-sites page, so a copy works at any base) and its LSTAR points at it;
* the flush list (supervisor-only, the vCPU's own): the addresses of the PTEs the kernel flush stub rewrites
  (each with an atomic ``lock or [pte], 0``, which writes back whatever the entry holds at that instant: Python
  may change it meanwhile, and a stored copy written back would resurrect an entry it has just cleared);
* the answer page (read-only, one frame shared by all vCPUs): what the LSTAR entry answers without leaving
  the guest, one 8-byte slot per syscall number below ``ANSWER_SLOTS`` (see ``_USER_ASM``), also read by
  the per-site trampolines of ``rewriter/trampoline.py``; a writable scratch page (the vCPU's own: the
  entry's saved rsp and syscall number, a 16-byte stack for its ``popfq`` and, in vCPU 0's, another for the
  trampolines' ``pushfq``: the application's stack, red zone included, is never touched); and the
  seen-sites page (read-only, shared): the return addresses of the sites Python has seen call an answered
  syscall, one slot per ``rcx & SEEN_MASK``.

The kernel half also holds the kernel's map of guest RAM (``DIRECT_MAP + physical``, 2 MiB pages, up to
``DIRECT_MAP_LIMIT``; supervisor-only) through which the kernel flush stub writes page-table entries: a write the
*guest* makes to a page table is one KVM's shadow MMU sees.

What the application can reach is only what it could harm itself with: the scratch page holds nothing but
its own thread's saved rsp and flags between two instructions of the entry; page tables, GDT, IDT, TSS,
kernel stacks, the flush lists and RAM as a whole are supervisor-only, and a CPL3 access to them is the page
fault Linux turns into SIGSEGV.

Each vCPU's kernel page holds its TSS (RSP0, I/O permission bitmap; TR's base is set per vCPU through
KVM_SET_SREGS, the GDT's one TSS descriptor is never loaded) and, at its top, the flush stub's parameters
(``FLUSH_SLOTS``) above RSP0, so that no stub reads a per-vCPU absolute address.

The stubs are assembled by keystone (cached per process).
"""
import struct
import zlib
from array import array

from hermipy.syscalls.memory import PTE_ADDR, PTE_NX, PTE_P, PTE_U, PTE_W

PTE_PS = 0x80                          # a 2 MiB page in a page-directory entry
PAGE = 0x1000
HUGE = 1 << 21
GIB = 1 << 30

KERNEL_BASE = 0xFFFF_8000_0000_0000     # first upper-half address: the guest kernel's pages
GDT_PAGE, IDT_PAGE, CODE_PAGE = 0, 1, 2
KERNEL_PAGES = 3                       # then one page per vCPU: its TSS and kernel stack (vcpu_kernel_va)

USER_AREA = 0x7F00_0000_0000           # PML4 slot 254: far below the stack and mmap_base (0x7ffff7fff000)
USER_AREA_SIZE = 1 << 39
USER_STUB_VA = USER_AREA + USER_AREA_SIZE - 0x20000
FLUSH_LIST_VA = USER_STUB_VA + PAGE
FLUSH_LIST_PAGES = 16
FLUSH_MAX = FLUSH_LIST_PAGES * PAGE // 8      # PTE addresses
ANSWERS_VA = USER_STUB_VA + 0x12000          # read-only at CPL3: answers the kernel keeps current
SCRATCH_VA = USER_STUB_VA + 0x13000          # writable at CPL3: the LSTAR entry's saved rsp and popfq stack
SEEN_VA = USER_STUB_VA + 0x14000             # read-only at CPL3: sites whose answered syscalls Python has seen
SEEN_MASK = 0xFF8                            # rcx bits that pick a slot of the seen-sites page
ANSWER_SLOTS = 187                           # syscall numbers 0..186 (gettid is 186)
NOT_ANSWERED = 1 << 63                       # slot n holds NOT_ANSWERED | n: "ask Python"
SCRATCH_STACK_TOP = 0x100                    # in the scratch page; the saved rsp is at offset 0
SCRATCH_NR = 0x8                             # in the scratch page: the syscall number, kept by the entry
TRAMPOLINE_STACK_TOP = SCRATCH_VA + 0x200    # the trampolines' pushfq stack (rewriter/trampoline.py)
# Exitless mode (KvmCpu.exitless_server): a mailbox in the scratch page, 8-byte words from MAIL_OFFSET. The
# entry posts a syscall there when the server word is set, and spins until Python answers it.
MAIL_OFFSET = SCRATCH_VA - USER_STUB_VA + 0x400   # from the entry's base (rip-relative)
MAIL_IN_PAGE = 0x400                              # in the scratch frame
MAIL_SERVER, MAIL_STATE, MAIL_NR, MAIL_ARGS, MAIL_RESULT = 0, 1, 2, 3, 9   # words: MAIL_ARGS.. the 6 arguments
MAIL_RETURN = 10      # the post's return address (rcx): its site, for a posting trampoline (rewriter/trampoline.py)
MAIL_FROM_TRAMPOLINE = 11   # rcx of the last entry by trampoline_post (whose IF is set: no `syscall` cleared it)
MAIL_WORDS = 12
MAIL_POSTED, MAIL_DONE, MAIL_REDO, MAIL_CHECK = 1, 2, 3, 4     # MAIL_STATE: 0 is idle
EXITLESS_SPINS = 0x1000                      # `pause` rounds before the entry exits to wait (~30-150 µs)
POST_ENTRY_SLOT = PAGE // 8 - 1              # answer page word: the only vCPU's trampoline_post, or 0
VCPU_STRIDE = 0x20000                        # vCPU i's block is at vcpu_base(i): USER_STUB_VA - i * VCPU_STRIDE
MAX_VCPUS = 1024                             # live vCPUs per VM (closed ones are reused)
DIRECT_MAP = KERNEL_BASE + GIB               # the kernel's map of guest RAM: DIRECT_MAP + physical, supervisor-only
DIRECT_MAP_LIMIT = (1 << 39) - GIB           # guest RAM it can map (the rest of the kernel half's first PML4 slot)
# Top of each vCPU's kernel page: the kernel flush stub's list address, entry count and "more" flag
# (FLUSH_PORT asks Python for the next batch), then RSP0 below them; Python's iret frame sits right under RSP0.
FLUSH_SLOTS = 32
TSS_IN_PAGE = 0                              # the vCPU's TSS, at the bottom of its kernel page

SEL_KERNEL_CS, SEL_KERNEL_DS, SEL_USER32_CS, SEL_USER_DS, SEL_USER_CS, SEL_TSS = 0x10, 0x18, 0x20, 0x28, 0x30, 0x40
GDT_ENTRIES = {SEL_KERNEL_CS: 0x00AF9B000000FFFF, SEL_KERNEL_DS: 0x00CF93000000FFFF,
               SEL_USER32_CS: 0x00CFFB000000FFFF, SEL_USER_DS: 0x00CFF3000000FFFF,
               SEL_USER_CS: 0x00AFFB000000FFFF}
GDT_SIZE = SEL_TSS + 16
TSS_OFFSET = 0x100                     # inside the GDT page
TSS_SIZE = 104
IOMAP_PORTS = 256                      # the I/O permission bitmap covers ports 0..255; beyond it: #GP
TSS_LIMIT = TSS_SIZE + IOMAP_PORTS // 8   # inclusive: covers the bitmap's terminating 0xFF byte

SYSCALL_PORT = 0xE0                    # `out` from the LSTAR stub: a syscall for Python
FAULT_PORT = 0xE1                      # `out` from an exception stub: vector, rax, CR2 on the kernel stack (CPL0
                                       # only: from CPL3 a #GP, as every port but SYSCALL_PORT is)
PROBE_PORT = 0xE2                      # `out` after the CPUID probe (CPL0 only, not in the I/O bitmap)
FLUSH_PORT = 0xE3                      # `out` from the kernel flush stub: the next batch, please (CPL0 only)
SPURIOUS_VECTOR = 0xFF                 # what any other software interrupt gate reports (never reached)
ERROR_CODE_VECTORS = frozenset({8, 10, 11, 12, 13, 14, 17, 21, 29, 30})   # Intel SDM vol. 3, table 6-1
USER_GATES = frozenset({3, 4})                                              # int3, into
# Vectors delivered on IST1 (= RSP0) also from CPL0: on VMX/SVM the LSTAR entry runs at CPL0 on the application's
# rsp, and its first instruction reads the application's code ([rcx - 2]), whose page another thread may have
# unmapped; the #PF's frame then goes to the kernel stack, not below the application's rsp (or into a double fault).
IST_VECTORS = frozenset({14})

# Supervisor stubs, at CPL0. The flush stub is entered with rsp at the iret frame Python wrote under RSP0;
# above that frame are its parameters (FLUSH_SLOTS: list address, count, more). It runs the list as the user
# loop does, asks Python for the next batch while "more" is set, then reloads CR3 and returns.
_KERNEL_ASM = """
sysret_stub:
    sysret
iret_stub:
    iretq
flush_iret_stub:
    push rax
    push rbx
    push rcx
    push rdx
flush_batch:
    mov rdx, qword ptr [rsp + 72]
    mov rcx, qword ptr [rsp + 80]
    test rcx, rcx
    jz flush_done
flush_loop:
    mov rax, qword ptr [rdx]
    lock or qword ptr [rax], 0
    add rdx, 8
    dec rcx
    jnz flush_loop
flush_done:
    cmp qword ptr [rsp + 88], 0
    je flush_reload
    out {flush_port:#x}, al
    jmp flush_batch
flush_reload:
    mov rax, cr3
    mov cr3, rax
    pop rdx
    pop rcx
    pop rbx
    pop rax
flush_iretq:
    iretq
cpuid_probe:
    cpuid
    out {probe_port:#x}, al
    hlt
fault_common:
    push rax
    mov rax, cr2
    push rax
    out {fault_port:#x}, al
    hlt
    jmp fault_common
"""

# User stubs, at CPL3 (also the LSTAR target on VMX/SVM, where it runs at CPL0).
#
# syscall_entry first checks that it was entered by `syscall`: rcx, the return address `syscall` sets, must
# follow a `syscall` instruction (the two bytes at rcx - 2 are 0f 05). On PVM `syscall` stays at CPL3, where a
# plain `jmp` to this page runs it too; a jump with any other rcx goes to bad_entry, and one whose rcx cannot be
# read faults on that first instruction: either way the backend gives the application the SIGSEGV Linux gives
# for a jump to an address where nothing is mapped (KvmCpu._jumped_in). That is one load, compare and branch on
# every syscall. A jump whose rcx does follow a `syscall` (or any bytes 0f 05 it can read) passes; the backend
# then refuses its `out` by IF, which `syscall` clears (SFMASK, PVM included) and CPL3 code cannot, and by r11,
# which must be an application's rflags (KvmCpu.run). What remains is no more than the code that jumped could do
# by running `syscall` itself: an answer read here from the answer page (which it can read anyway) for a site
# Python has seen, and on PVM, after such an answer (whose popfq at CPL3 cannot set IF back), the syscall it
# asks for. A genuine syscall meets bad_entry only when its site changed after the `syscall` ran (hermipy
# rewrote it meanwhile, from another vCPU): the backend runs the site again.
#
# It then answers from the answer page when slot rax holds a value (getpid & co., see
# KvmCpu.answer_in_guest) and the seen-sites page holds the return address rcx (Python has had its chance to
# give the site a trampoline, see KvmCpu._new_answered_site), else exits to Python with `out` (rax = nr).
# rcx and r11 are what `syscall` made them; rax is
# the answer; rflags is restored from r11 as sysretq would (popfq on the scratch stack at CPL3: a CPL3
# popfq leaves IF/IOPL alone; sysretq itself at CPL0: the CPL is CS's low bits, so that no setting, and no
# jump into the page at CPL3, makes it run sysretq there or return to the application at CPL0). No other
# register, and no byte of the application's memory, changes. `out` leaves rax = nr (flags are Python's to
# restore from r11).
#
# flush_trap is where the backend sends a vCPU that is at CPL3 (on PVM, after a syscall) when page-table entries
# are stale: its #UD is the way into CPL0, where the kernel flush stub rewrites them through the supervisor-only
# map of RAM and reloads CR3 before the application resumes.
_USER_ASM = """
syscall_entry:
    cmp word ptr [rcx - 2], 0x050f
    jne bad_entry
    cmp rax, {slots:#x}
    jae to_python
    mov qword ptr [rip + syscall_entry + {scratch:#x}], rsp
    mov qword ptr [rip + syscall_entry + {scratch_nr:#x}], rax
    lea rsp, [rip + syscall_entry + {answers:#x}]
    mov rax, qword ptr [rsp + rax*8]
    btr rax, 63
    jc not_answered
    mov rsp, rcx
    and esp, {seen_mask:#x}
    add rsp, qword ptr [rip + seen_table]
    cmp rcx, qword ptr [rsp]
    jne new_site
answer_return:
    mov esp, cs
    test esp, 3
    jz answer_sysret
    lea rsp, [rip + syscall_entry + {stack_top:#x}]
    push r11
    popfq
    mov rsp, qword ptr [rip + syscall_entry + {scratch:#x}]
    jmp rcx
answer_sysret:
    mov rsp, qword ptr [rip + syscall_entry + {scratch:#x}]
    sysret
new_site:
    mov rax, qword ptr [rip + syscall_entry + {scratch_nr:#x}]
not_answered:
    mov rsp, qword ptr [rip + syscall_entry + {scratch:#x}]
to_python:
    cmp qword ptr [rip + syscall_entry + {mail_server:#x}], 0
    jne exitless
out_to_python:
    out {syscall_port:#x}, al
entry_return:
    jmp rcx
bad_entry:
    out {syscall_port:#x}, al
bad_entry_return:
    ud2
flush_trap:
    ud2
exitless:
    mov qword ptr [rip + syscall_entry + {mail_nr:#x}], rax
    mov qword ptr [rip + syscall_entry + {mail_nr:#x} + 8], rdi
    mov qword ptr [rip + syscall_entry + {mail_nr:#x} + 16], rsi
    mov qword ptr [rip + syscall_entry + {mail_nr:#x} + 24], rdx
    mov qword ptr [rip + syscall_entry + {mail_nr:#x} + 32], r10
    mov qword ptr [rip + syscall_entry + {mail_nr:#x} + 40], r8
    mov qword ptr [rip + syscall_entry + {mail_nr:#x} + 48], r9
    mov qword ptr [rip + syscall_entry + {mail_return:#x}], rcx
    mov qword ptr [rip + syscall_entry + {mail_state:#x}], {posted}
exitless_wait_return:
    mov eax, {spins:#x}
exitless_spin:
    pause
    cmp qword ptr [rip + syscall_entry + {mail_state:#x}], {posted}
    jne exitless_answered
    dec eax
    jnz exitless_spin
    out {syscall_port:#x}, al
exitless_waited:
    jmp exitless_wait_return
exitless_answered:
    cmp qword ptr [rip + syscall_entry + {mail_state:#x}], {done}
    jne exitless_exit
    mov rax, qword ptr [rip + syscall_entry + {mail_result:#x}]
    mov qword ptr [rip + syscall_entry + {mail_state:#x}], 0
    mov qword ptr [rip + syscall_entry + {scratch:#x}], rsp
    jmp answer_return
exitless_exit:
    cmp qword ptr [rip + syscall_entry + {mail_state:#x}], {redo}
    mov rax, qword ptr [rip + syscall_entry + {mail_nr:#x}]
    mov qword ptr [rip + syscall_entry + {mail_state:#x}], 0
    je out_to_python
    out {syscall_port:#x}, al
exitless_check_return:
    jmp rcx
trampoline_post:
    mov qword ptr [rip + syscall_entry + {scratch:#x}], rsp
    lea rsp, [rip + syscall_entry + {stack_top:#x}]
    pushfq
    mov rcx, r11
    pop r11
    mov rsp, qword ptr [rip + syscall_entry + {scratch:#x}]
    mov qword ptr [rip + syscall_entry + {mail_from:#x}], rcx
    jmp to_python
seen_table:
    .quad {seen_va:#x}
"""


def _vector_stub(vector: int) -> str:
    push_error = "" if vector in ERROR_CODE_VECTORS else "    push 0\n"
    return f"vector_{vector}:\n{push_error}    push {vector:#x}\n    jmp fault_common\n"


STUB_VECTORS = (*range(32), SPURIOUS_VECTOR)
_assembled: dict[tuple, tuple[bytes, dict[str, int]]] = {}


def _key(source: str, base: int) -> str:
    """The cache key of one stub: CRC-32 and length of its source at its base (hashlib costs ~7 ms to import;
    a stale cache is caught by tests/test_kvm.py, which compares it with what keystone assembles)."""
    text = f"{base:#x}\n{source}".encode()
    return f"{zlib.crc32(text):08x}-{len(text):x}"


def assemble(source: str, base: int, cached: bool = True) -> tuple[bytes, dict[str, int]]:
    """Machine code of ``source`` placed at ``base``, and the address of each label.

    Taken from ``kvm_stub_cache`` when it holds this exact source (keystone costs ~10 ms to import);
    otherwise assembled with keystone. ``python -m hermipy.kvm_stubs`` rewrites the cache.
    """
    key = _key(source, base)
    if cached and key in _assembled:
        return _assembled[key]
    try:
        from hermipy.kvm_stub_cache import STUBS
    except ImportError:
        STUBS = {}
    if cached and key in STUBS:
        code_hex, labels = STUBS[key]
        _assembled[key] = bytes.fromhex(code_hex), dict(labels)
        return _assembled[key]
    from keystone import KS_ARCH_X86, KS_MODE_64, Ks
    names = [line[:-1] for line in source.splitlines() if line.endswith(":")]
    # keystone has no symbol-table API: a trailing table of `.quad label` gives every label's address.
    blob = bytes(Ks(KS_ARCH_X86, KS_MODE_64).asm(source + "".join(f".quad {n}\n" for n in names), base)[0])
    code = blob[:-8 * len(names)]
    if len(code) > PAGE:
        raise ValueError("kvm stubs exceed one page")
    labels = dict(zip(names, struct.unpack_from(f"<{len(names)}Q", blob, len(code))))
    _assembled[key] = code, labels
    return code, labels


def stub_sources() -> list[tuple[str, int]]:
    """Every (source, base) the backend assembles: its user stub page and its kernel code."""
    user = _USER_ASM.format(syscall_port=SYSCALL_PORT, slots=ANSWER_SLOTS, scratch=SCRATCH_VA - USER_STUB_VA,
                            scratch_nr=SCRATCH_VA - USER_STUB_VA + SCRATCH_NR, answers=ANSWERS_VA - USER_STUB_VA,
                            stack_top=SCRATCH_VA - USER_STUB_VA + SCRATCH_STACK_TOP,
                            seen_mask=SEEN_MASK, seen_va=SEEN_VA, mail_server=MAIL_OFFSET + MAIL_SERVER * 8,
                            mail_state=MAIL_OFFSET + MAIL_STATE * 8, mail_nr=MAIL_OFFSET + MAIL_NR * 8,
                            mail_result=MAIL_OFFSET + MAIL_RESULT * 8, posted=MAIL_POSTED, done=MAIL_DONE,
                            mail_return=MAIL_OFFSET + MAIL_RETURN * 8,
                            mail_from=MAIL_OFFSET + MAIL_FROM_TRAMPOLINE * 8,
                            redo=MAIL_REDO, spins=EXITLESS_SPINS)
    kernel = _KERNEL_ASM.format(fault_port=FAULT_PORT, probe_port=PROBE_PORT, flush_port=FLUSH_PORT) + "".join(
        _vector_stub(v) for v in STUB_VECTORS)
    return [(user, USER_STUB_VA), (kernel, KERNEL_BASE + CODE_PAGE * PAGE)]


def cached_sources() -> list[tuple[str, int]]:
    """Every (source, base) kvm_stub_cache.py holds: the backend's stubs and the vDSO's code (loader/vdso.py)."""
    from hermipy.loader.vdso import code_source
    return [*stub_sources(), code_source()]


def render_cache() -> str:
    """The text of kvm_stub_cache.py for the current stub sources."""
    lines = ['"""Generated by `python -m hermipy.kvm_stubs`: the KVM stubs and the vDSO code, pre-assembled '
             '(see kvm_stubs.assemble)."""',
             "STUBS = {"]
    for source, base in cached_sources():
        code, labels = assemble(source, base)
        lines.append(f"    {_key(source, base)!r}: (")
        lines.extend(f"        {code[i:i + 48].hex()!r}" for i in range(0, len(code), 48))
        lines.append(f"        , {labels!r}),")
    lines.append("}")
    return "\n".join(lines) + "\n"


def vcpu_base(index: int, window: int) -> int:
    """Where vCPU ``index``'s block of the user window at ``window`` starts (its user stub page)."""
    return window + (USER_STUB_VA - USER_AREA) - index * VCPU_STRIDE


def vcpu_kernel_va(index: int) -> int:
    """vCPU ``index``'s kernel page: its TSS at the bottom, its kernel stack (and FLUSH_SLOTS) at the top."""
    return KERNEL_BASE + (KERNEL_PAGES + index) * PAGE


def tss_with_io_bitmap(rsp0: int) -> bytes:
    """A 64-bit TSS (SDM vol. 3, 8.7) with RSP0, IST1 (the same stack: see IST_VECTORS) and an I/O permission
    bitmap that opens SYSCALL_PORT alone to CPL3 (every other `in`/`out` is a #GP, as for a Linux process: ioperm
    was never called)."""
    tss = bytearray(TSS_LIMIT + 1)
    struct.pack_into("<Q", tss, 4, rsp0)
    struct.pack_into("<Q", tss, 36, rsp0)                     # IST1
    struct.pack_into("<H", tss, 102, TSS_SIZE)                 # I/O map base
    tss[TSS_SIZE:] = b"\xff" * (IOMAP_PORTS // 8 + 1)
    tss[TSS_SIZE + SYSCALL_PORT // 8] &= ~(1 << (SYSCALL_PORT % 8))
    return bytes(tss)


def store_answers(ram, frame: int, answers: dict[int, int]) -> None:
    """Fill the answer page at guest-physical ``frame`` (both backends' layout): slot n holds ``answers[n]``, else
    NOT_ANSWERED | n. Other vCPUs read the page while it changes, so only the slots that change are written, each
    as one aligned 8-byte store: struct.pack_into clears its whole destination first, and a read in that window
    took 0 as the answer (a thread's getpid() was 0 while another thread was being created)."""
    words, base = ram.words, frame >> 3
    for nr in range(ANSWER_SLOTS):
        value = answers.get(nr, NOT_ANSWERED | nr)
        if words[base + nr] != value:
            words[base + nr] = value


class KernelArea:
    """The VM-wide part of the guest kernel: GDT, IDT, kernel code, the answer and seen-sites pages, the RAM
    direct map. Allocates, fills and maps them; ``VcpuArea`` does the same for each vCPU's own pages."""

    def __init__(self, ram, page_table):
        self.ram = ram
        self.page_table = page_table
        self.words = page_table.words
        if ram.size > DIRECT_MAP_LIMIT:
            raise OSError(f"kvm: guest RAM above {DIRECT_MAP_LIMIT >> 30} GiB is not supported")
        self.frames = [ram.alloc() for _ in range(KERNEL_PAGES)]
        self.answer_frame = ram.alloc()
        self.seen_frame = ram.alloc()
        self.gdt_va = KERNEL_BASE + GDT_PAGE * PAGE
        self.gdt_limit = GDT_SIZE - 1
        self.tss_limit = TSS_LIMIT
        self.idt_va = KERNEL_BASE + IDT_PAGE * PAGE
        self.idt_limit = 256 * 16 - 1
        self.window = USER_AREA                 # where the user window is (KvmVm.move_window changes it)

        (user_source, user_base), (kernel_source, kernel_base) = stub_sources()
        self.user_code, self.user_labels = assemble(user_source, user_base)
        kernel_code, labels = assemble(kernel_source, kernel_base)
        self.labels = labels
        self.sysret_stub = labels["sysret_stub"]
        self.iret_stub = labels["iret_stub"]
        self.flush_iret_stub = labels["flush_iret_stub"]
        self.iretq_sites = (labels["iret_stub"], labels["flush_iretq"])
        self.cpuid_probe = labels["cpuid_probe"]

        self._fill_gdt()
        self._fill_idt()
        self._poke(self.frames[CODE_PAGE], kernel_code)
        self.forget_answers()
        self._map(page_table)

    def _poke(self, phys: int, data: bytes) -> None:
        self.ram.buf[phys:phys + len(data)] = data

    @property
    def answers_va(self) -> int:
        """The answer page in vCPU 0's block, where the trampolines read it."""
        return self.window + (ANSWERS_VA - USER_AREA)

    @property
    def trampoline_stack_top(self) -> int:
        return self.window + (TRAMPOLINE_STACK_TOP - USER_AREA)

    def _fill_gdt(self) -> None:
        gdt = bytearray(GDT_SIZE)
        for selector, descriptor in GDT_ENTRIES.items():
            struct.pack_into("<Q", gdt, selector, descriptor)
        # Never loaded (each vCPU's TR comes from KVM_SET_SREGS): vCPU 0's TSS, for the record.
        base, limit = vcpu_kernel_va(0) + TSS_IN_PAGE, self.tss_limit
        low = ((limit & 0xFFFF) | (base & 0xFFFFFF) << 16 | 0x8B << 40 | ((limit >> 16) & 0xF) << 48
               | ((base >> 24) & 0xFF) << 56)
        struct.pack_into("<QQ", gdt, SEL_TSS, low, base >> 32)
        self._poke(self.frames[GDT_PAGE], bytes(gdt))

    def _fill_idt(self) -> None:
        idt = bytearray(256 * 16)
        for vector in range(256):
            stub = self.labels.get(f"vector_{vector}", self.labels[f"vector_{SPURIOUS_VECTOR}"])
            attributes = 0xEE if vector in USER_GATES else 0x8E        # present, 64-bit interrupt gate
            ist = 1 if vector in IST_VECTORS else 0
            struct.pack_into("<HHBBHIxxxx", idt, vector * 16, stub & 0xFFFF, SEL_KERNEL_CS, ist, attributes,
                             (stub >> 16) & 0xFFFF, stub >> 32)
        self._poke(self.frames[IDT_PAGE], bytes(idt))

    def _map(self, page_table) -> None:
        flags = {GDT_PAGE: PTE_P | PTE_W | PTE_NX, IDT_PAGE: PTE_P | PTE_NX, CODE_PAGE: PTE_P}
        for page, frame in enumerate(self.frames):
            page_table.set(KERNEL_BASE + page * PAGE, frame | flags[page])
        self._map_direct(page_table)

    def _map_direct(self, page_table) -> None:
        """DIRECT_MAP + p -> physical p for all of RAM, with 2 MiB pages (PS in the page directory)."""
        words, ram = self.words, self.ram
        flags = PTE_P | PTE_W | PTE_PS | PTE_NX          # supervisor-only: the application never reaches it
        for start in range(0, ram.size, GIB):                  # one page directory (512 entries) per GiB
            va, table = DIRECT_MAP + start, page_table.root
            for shift in (39, 30):
                slot = (table >> 3) + ((va >> shift) & 511)
                if not words[slot] & PTE_P:
                    words[slot] = ram.alloc() | PTE_P | PTE_W | PTE_U
                table = words[slot] & PTE_ADDR
            first = (table >> 3) + ((va >> 21) & 511)
            entries = array("Q", range(start | flags, min(start + GIB, ram.size) | flags, HUGE))
            words[first:first + len(entries)] = memoryview(entries)

    def forget_answers(self) -> None:
        """As a new area's: nothing answered, no site seen, no post entry (a fork child's VM, which takes over its
        parent's)."""
        self.write_answers({})
        self.set_post_entry(0)
        self._poke(self.seen_frame, bytes(PAGE))

    def set_post_entry(self, va: int) -> None:
        """Where posting trampolines enter (rewriter/trampoline.py): the trampoline_post of the VM's only vCPU in
        exitless mode, or 0: they make the `syscall` themselves."""
        self.ram.words[(self.answer_frame >> 3) + POST_ENTRY_SLOT] = va

    @property
    def post_entry_va(self) -> int:
        """The address of the answer page's post-entry word, as trampolines read it."""
        return self.answers_va + 8 * POST_ENTRY_SLOT

    def write_answers(self, answers: dict[int, int]) -> None:
        """Fill the answer page: ``answers`` maps syscall numbers below ANSWER_SLOTS to their result."""
        store_answers(self.ram, self.answer_frame, answers)

    def remember_site(self, rcx: int) -> None:
        """Let the LSTAR entry answer the syscalls of the site returning to ``rcx`` without asking Python."""
        self.ram.words[(self.seen_frame + (rcx & SEEN_MASK)) >> 3] = rcx


class VcpuArea:
    """One vCPU's own pages: its kernel page (TSS, kernel stack, flush parameters) and its user block (a copy
    of the user stub page, its scratch page and flush list; the VM's answer and seen frames mapped again)."""

    def __init__(self, area: KernelArea, index: int):
        if not 0 <= index < MAX_VCPUS:
            raise OSError("kvm: too many threads")
        ram, page_table = area.ram, area.page_table
        self.ram, self.words, self.index = ram, area.words, index
        self.kernel_frame = ram.alloc()
        self.user_frame = ram.alloc()
        self.scratch_frame = ram.alloc()
        self.list_frames = [ram.alloc() for _ in range(FLUSH_LIST_PAGES)]
        self.kernel = area
        self.kernel_va = vcpu_kernel_va(index)
        self.tss_va = self.kernel_va + TSS_IN_PAGE
        self.tss_limit = area.tss_limit
        self.stack_top = self.kernel_va + PAGE
        self.rsp0 = self.stack_top - FLUSH_SLOTS
        self.iret_frame_va = self.rsp0 - 40

        buf = ram.buf
        buf[self.user_frame:self.user_frame + len(area.user_code)] = area.user_code
        buf[self.scratch_frame:self.scratch_frame + PAGE] = bytes(PAGE)
        mail = self.scratch_frame + MAIL_IN_PAGE
        self.mail = ram.view[mail:mail + MAIL_WORDS * 8].cast("Q")      # exitless mode's mailbox
        self._fill_tss()
        page_table.set(self.kernel_va, self.kernel_frame | PTE_P | PTE_W | PTE_NX)
        self._place(area.window)

    def _place(self, window: int) -> None:
        """Put the block where it belongs in the user window at ``window``: its addresses, its page-table entries,
        and its stub copy's pointer to the seen-sites page (the one absolute address in it)."""
        area, page_table = self.kernel, self.kernel.page_table
        base = self.base = vcpu_base(self.index, window)
        shift = base - USER_STUB_VA
        self.flush_list_va = FLUSH_LIST_VA + shift
        self.scratch_va = SCRATCH_VA + shift
        user = area.user_labels
        self.syscall_entry = user["syscall_entry"] + shift
        self.entry_return = user["entry_return"] + shift
        self.bad_entry_return = user["bad_entry_return"] + shift
        self.flush_trap = user["flush_trap"] + shift
        self.exitless_waited = user["exitless_waited"] + shift
        self.exitless_check_return = user["exitless_check_return"] + shift
        self.trampoline_post = user["trampoline_post"] + shift
        page_table.set(base, self.user_frame | PTE_P | PTE_U)
        page_table.set(ANSWERS_VA + shift, area.answer_frame | PTE_P | PTE_U | PTE_NX)
        page_table.set(self.scratch_va, self.scratch_frame | PTE_P | PTE_W | PTE_U | PTE_NX)
        page_table.set(SEEN_VA + shift, area.seen_frame | PTE_P | PTE_U | PTE_NX)
        for i, frame in enumerate(self.list_frames):
            page_table.set(self.flush_list_va + i * PAGE, frame | PTE_P | PTE_NX)      # the kernel stub's
        seen_table = self.user_frame + user["seen_table"] - USER_STUB_VA     # (once the page it names is mapped)
        struct.pack_into("<Q", self.ram.buf, seen_table, SEEN_VA + shift)

    def move(self, window: int) -> list[int]:
        """Map the block in the user window at ``window`` (no vCPU running); returns the addresses of its pages
        where it was, which the caller clears (KvmVm.move_window)."""
        shift = self.base - USER_STUB_VA
        old = [self.base, ANSWERS_VA + shift, self.scratch_va, SEEN_VA + shift,
               *(self.flush_list_va + i * PAGE for i in range(FLUSH_LIST_PAGES))]
        self._place(window)
        return old

    def _fill_tss(self) -> None:
        page = bytearray(PAGE)
        page[TSS_IN_PAGE:TSS_IN_PAGE + TSS_LIMIT + 1] = tss_with_io_bitmap(self.rsp0)
        self.ram.buf[self.kernel_frame:self.kernel_frame + PAGE] = bytes(page)

    def write_flush_list(self, entries: list[int]) -> int:
        """Store the PTEs' addresses in the guest's window on RAM; return their number."""
        buf = self.ram.buf
        data = struct.pack(f"<{len(entries)}Q", *(DIRECT_MAP + pte for pte in entries))
        for i, frame in enumerate(self.list_frames):
            chunk = data[i * PAGE:(i + 1) * PAGE]
            if not chunk:
                break
            buf[frame:frame + len(chunk)] = chunk
        return len(entries)

    def set_flush_slots(self, count: int, more: bool) -> None:
        """The kernel flush stub's parameters, above RSP0: this vCPU's list, ``count`` entries, more to come."""
        struct.pack_into("<QQQ", self.ram.buf, self.stack_offset(self.rsp0), self.flush_list_va, count, int(more))

    def stack_offset(self, va: int) -> int:
        """Offset in guest RAM of an address in this vCPU's kernel page."""
        return self.kernel_frame + (va - self.kernel_va)


if __name__ == "__main__":
    import os
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kvm_stub_cache.py")
    with open(path, "w") as f:
        f.write(render_cache())
    print(f"wrote {path}")
