"""The KVM backend's tiny guest kernel: GDT, TSS, IDT, a kernel stack and a page of stubs.

It lives in frames allocated from guest RAM and is mapped in the upper half (``KERNEL_BASE``) through the
application's own page table, supervisor-only except the stub page (on PVM the LSTAR stub runs at CPL3).
Segment selectors follow Linux (arch/x86/include/asm/segment.h) so that ``sysretq`` and the values a
program can observe in CS/SS are the familiar 0x33/0x2b. The stubs are assembled by keystone once.
"""
import struct

from hermipy.syscalls.memory import PTE_ADDR, PTE_NX, PTE_P, PTE_U, PTE_W

PTE_PS = 0x80                          # a 2 MiB page in a page-directory entry

KERNEL_BASE = 0xFFFF_8000_0000_0000     # first upper-half address: the guest kernel's pages
# The stub page again, user-accessible, at the last page below the canonical hole (Linux leaves it unmapped:
# it is above STACK_TOP). On PVM `syscall` stays at CPL3 and CPL3 cannot reach the upper half at all.
USER_STUB_VA = 0x7FFF_FFFF_F000
PAGE = 0x1000
GDT_PAGE, IDT_PAGE, CODE_PAGE, STACK_PAGE, FLUSH_PAGE = 0, 1, 2, 3, 4
KERNEL_PAGES = 5
# All of guest RAM, supervisor-only, in 2 MiB pages (Linux's direct map address): how the flush stub
# reaches page-table entries by physical address.
DIRECT_MAP = 0xFFFF_8880_0000_0000
FLUSH_MAX = (PAGE - 8) // 16           # (va, PTE address) pairs in the flush page after its count

SEL_KERNEL_CS, SEL_KERNEL_DS, SEL_USER32_CS, SEL_USER_DS, SEL_USER_CS, SEL_TSS = 0x10, 0x18, 0x20, 0x28, 0x30, 0x40
GDT_ENTRIES = {SEL_KERNEL_CS: 0x00AF9B000000FFFF, SEL_KERNEL_DS: 0x00CF93000000FFFF,
               SEL_USER32_CS: 0x00CFFB000000FFFF, SEL_USER_DS: 0x00CFF3000000FFFF,
               SEL_USER_CS: 0x00AFFB000000FFFF}
GDT_SIZE = SEL_TSS + 16
TSS_OFFSET = 0x100                     # inside the GDT page
TSS_SIZE = 104
IOMAP_PORTS = 256                      # the I/O permission bitmap covers ports 0..255; beyond it: #GP

SYSCALL_PORT = 0xE0                    # `out` from the LSTAR stub: a syscall for Python
FAULT_PORT = 0xE1                      # `out` from an exception stub: vector, rax, CR2 on the kernel stack
KCALL_VECTOR = 6                       # #UD from the `ud2` of kcall_stub: how the backend reaches CPL0
                                       # from CPL3 (PVM answers any `int n` from CPL3 with #UD)
SPURIOUS_VECTOR = 0xFF                 # what any other software interrupt gate reports (never reached)
ERROR_CODE_VECTORS = frozenset({8, 10, 11, 12, 13, 14, 17, 21, 29, 30})   # Intel SDM vol. 3, table 6-1
USER_GATES = frozenset({3, 4})                                              # int3, into

_STUB_ASM = """
syscall_entry:
    out {syscall_port:#x}, al
    jmp rcx
sysret_stub:
    sysret
iret_stub:
    iretq
flush_iret_stub:
    push rax
    push rcx
    push rdx
    mov rdx, {flush_page:#x}
    mov rcx, qword ptr [rdx]
    add rdx, 8
flush_loop:
    test rcx, rcx
    jz flush_done
    mov rax, qword ptr [rdx + 8]
    push qword ptr [rax]
    pop qword ptr [rax]
    mov rax, qword ptr [rdx]
    invlpg [rax]
    add rdx, 16
    dec rcx
    jmp flush_loop
flush_done:
    mov rax, cr3
    mov cr3, rax
    pop rdx
    pop rcx
    pop rax
    iretq
kcall_stub:
    ud2
fault_common:
    push rax
    mov rax, cr2
    push rax
    out {fault_port:#x}, al
    hlt
    jmp fault_common
"""


def _vector_stub(vector: int) -> str:
    push_error = "" if vector in ERROR_CODE_VECTORS else "    push 0\n"
    return f"vector_{vector}:\n{push_error}    push {vector:#x}\n    jmp fault_common\n"


STUB_VECTORS = (*range(32), SPURIOUS_VECTOR)
_assembled: dict[int, tuple[bytes, dict[str, int]]] = {}


def assemble_stubs(base: int, flush_page: int) -> tuple[bytes, dict[str, int]]:
    """Machine code of the stubs placed at ``base``, and the address of each label (cached per base)."""
    if base in _assembled:
        return _assembled[base]
    from keystone import KS_ARCH_X86, KS_MODE_64, Ks
    source = _STUB_ASM.format(syscall_port=SYSCALL_PORT, fault_port=FAULT_PORT, flush_page=flush_page)
    source += "".join(_vector_stub(v) for v in STUB_VECTORS)
    names = [line[:-1] for line in source.splitlines() if line.endswith(":")]
    # keystone has no symbol-table API: a trailing table of `.quad label` gives every label's address.
    source += "".join(f".quad {name}\n" for name in names)
    blob = bytes(Ks(KS_ARCH_X86, KS_MODE_64).asm(source, base)[0])
    code = blob[:-8 * len(names)]
    labels = dict(zip(names, struct.unpack_from(f"<{len(names)}Q", blob, len(code))))
    if len(code) > PAGE:
        raise ValueError("kvm stubs exceed one page")
    _assembled[base] = code, labels
    return code, labels


class KernelArea:
    """Allocates, fills and maps the guest kernel's pages; knows every address the backend needs."""

    def __init__(self, ram, page_table, base: int = KERNEL_BASE):
        self.ram = ram
        self.base = base
        self.frames = [ram.alloc() for _ in range(KERNEL_PAGES)]
        self.gdt_va = base + GDT_PAGE * PAGE
        self.gdt_limit = GDT_SIZE - 1
        self.tss_va = self.gdt_va + TSS_OFFSET
        self.tss_limit = TSS_SIZE + IOMAP_PORTS // 8       # inclusive: covers the terminating 0xFF byte
        self.idt_va = base + IDT_PAGE * PAGE
        self.idt_limit = 256 * 16 - 1
        self.stack_va = base + STACK_PAGE * PAGE
        self.stack_top = self.stack_va + PAGE
        self.iret_frame_va = self.stack_top - 40
        code_va = base + CODE_PAGE * PAGE
        self.flush_va = base + FLUSH_PAGE * PAGE
        code, labels = assemble_stubs(code_va, self.flush_va)
        self.labels = labels
        self.user_stub_va = USER_STUB_VA
        self.syscall_entry = labels["syscall_entry"] - code_va + USER_STUB_VA
        self.kcall_stub = labels["kcall_stub"] - code_va + USER_STUB_VA
        self.sysret_stub = labels["sysret_stub"]
        self.iret_stub = labels["iret_stub"]
        self.flush_iret_stub = labels["flush_iret_stub"]
        self._fill_gdt_tss()
        self._fill_idt()
        self._write(CODE_PAGE, 0, code)
        self._map(page_table)

    def _write(self, page: int, offset: int, data: bytes) -> None:
        start = self.frames[page] + offset
        self.ram.buf[start:start + len(data)] = data

    def _fill_gdt_tss(self) -> None:
        gdt = bytearray(GDT_SIZE)
        for selector, descriptor in GDT_ENTRIES.items():
            struct.pack_into("<Q", gdt, selector, descriptor)
        base, limit = self.tss_va, self.tss_limit
        low = ((limit & 0xFFFF) | (base & 0xFFFFFF) << 16 | 0x8B << 40 | ((limit >> 16) & 0xF) << 48
               | ((base >> 24) & 0xFF) << 56)
        struct.pack_into("<QQ", gdt, SEL_TSS, low, base >> 32)
        self._write(GDT_PAGE, 0, bytes(gdt))
        tss = bytearray(TSS_SIZE + IOMAP_PORTS // 8 + 1)
        struct.pack_into("<Q", tss, 4, self.stack_top)             # RSP0
        struct.pack_into("<H", tss, 102, TSS_SIZE)                 # I/O map base
        bitmap = bytearray(b"\xff" * (IOMAP_PORTS // 8 + 1))
        for port in (SYSCALL_PORT, FAULT_PORT):
            bitmap[port // 8] &= ~(1 << (port % 8))
        tss[TSS_SIZE:] = bitmap
        self._write(GDT_PAGE, TSS_OFFSET, bytes(tss))

    def _fill_idt(self) -> None:
        idt = bytearray(256 * 16)
        for vector in range(256):
            stub = self.labels.get(f"vector_{vector}", self.labels[f"vector_{SPURIOUS_VECTOR}"])
            attributes = 0xEE if vector in USER_GATES else 0x8E        # present, 64-bit interrupt gate
            struct.pack_into("<HHBBHIxxxx", idt, vector * 16, stub & 0xFFFF, SEL_KERNEL_CS, 0, attributes,
                             (stub >> 16) & 0xFFFF, stub >> 32)
        self._write(IDT_PAGE, 0, bytes(idt))

    def _map(self, page_table) -> None:
        flags = {GDT_PAGE: PTE_P | PTE_W | PTE_NX, IDT_PAGE: PTE_P | PTE_NX,
                 CODE_PAGE: PTE_P, STACK_PAGE: PTE_P | PTE_W | PTE_NX, FLUSH_PAGE: PTE_P | PTE_NX}
        for page, frame in enumerate(self.frames):
            page_table.set(self.base + page * PAGE, frame | flags[page])
        page_table.set(USER_STUB_VA, self.frames[CODE_PAGE] | PTE_P | PTE_U)
        self._map_direct(page_table)

    def _map_direct(self, page_table) -> None:
        """DIRECT_MAP + p -> physical p for all of RAM, with 2 MiB pages (PS in the page directory)."""
        words, ram = page_table.words, self.ram
        huge = 1 << 21
        for phys in range(0, ram.size, huge):
            va = DIRECT_MAP + phys
            table = page_table.root
            for shift in (39, 30):
                slot = (table >> 3) + ((va >> shift) & 511)
                if not words[slot] & PTE_P:
                    words[slot] = ram.alloc() | PTE_P | PTE_W
                table = words[slot] & PTE_ADDR
            words[(table >> 3) + ((va >> 21) & 511)] = phys | PTE_P | PTE_W | PTE_PS | PTE_NX

    def write_flush_list(self, pairs: list[tuple[int, int]]) -> None:
        """The (virtual address, PTE physical address) pairs the flush stub rewrites and invalidates."""
        data = struct.pack(f"<Q{2 * len(pairs)}Q", len(pairs),
                           *(x for va, pte_phys in pairs for x in (va, DIRECT_MAP + pte_phys)))
        self._write(FLUSH_PAGE, 0, data)

    def stack_offset(self, va: int) -> int:
        """Offset in guest RAM of a kernel stack address."""
        return self.frames[STACK_PAGE] + (va - self.stack_va)
