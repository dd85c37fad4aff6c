"""Find every ``syscall`` instruction of an ELF object and resolve its number where that is statically known.

1. Linear sweep (capstone, no detail) over the executable sections that lie in PF_X segments, restarted
   at every function symbol (so data between functions cannot desynchronise the sweep for long); an
   undecodable byte is skipped and counted as a resync. Direct jump targets and call targets are recorded.
2. For each site a backward data-flow walk for rax: within the basic block, and through its predecessors
   (fall-through and direct jumps, up to ``MAX_DEPTH`` merges) while they agree. Understood writes:
   ``mov r, imm``, ``mov r, r2``, ``xor/sub r, r``, ``lea r, [r2 + disp]``; any other write to the tracked
   register, or a call that clobbers it, makes the site "unknown". Reaching a function entry while tracking
   an argument register (rdi, rsi, ...) means the number comes from the caller: "dynamic" — glibc's and
   musl's ``syscall()`` (the function named ``syscall``, or ``mov rax, rdi; mov rdi, rsi; ...; syscall``).

A site that ``hermipy rewrite`` already rewrote (``out 0xe0, al`` in place of ``syscall``, see
``rewriter/rewrite.py``) is found and resolved the same way, and marked ``rewritten``.
"""
import bisect
from array import array

import capstone
from capstone import x86_const

from hermipy.rewriter.elf import ElfFile

KNOWN, DYNAMIC, UNKNOWN = "known", "dynamic", "unknown"
LOOP = "loop"          # a path that came back to where it started: adds nothing to the merge
MAX_DEPTH = 4          # predecessor merges along one path
MAX_STEPS = 400        # instructions examined per site, over all paths
WINDOW = 1 << 16       # bytes handed to capstone at once (it builds every instruction of a call in C memory)
MAX_INSN = 15
MASK64 = (1 << 64) - 1

GPRS = {
    "rax": ("eax", "ax", "al", "ah"), "rbx": ("ebx", "bx", "bl", "bh"), "rcx": ("ecx", "cx", "cl", "ch"),
    "rdx": ("edx", "dx", "dl", "dh"), "rsi": ("esi", "si", "sil"), "rdi": ("edi", "di", "dil"),
    "rbp": ("ebp", "bp", "bpl"), "rsp": ("esp", "sp", "spl"),
    **{f"r{i}": (f"r{i}d", f"r{i}w", f"r{i}b") for i in range(8, 16)},
}
PARENT = {"rip": ("rip", 64)}
for _r, _subs in GPRS.items():
    PARENT[_r] = (_r, 64)
    for _s, _w in zip(_subs, (32, 16, 8, 8)):
        PARENT[_s] = (_r, _w)
ARG_REGS = ("rdi", "rsi", "rdx", "rcx", "r8", "r9")
CALLER_SAVED = {"rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11"}
FLOW_ENDS = {"jmp", "ret", "retf", "hlt", "ud2", "iretq", "iret", "sysret", "sysretq"}
REWRITTEN_OP = "0xe0, al"      # `out SYSCALL_PORT, al` (hermipy/kvm_stubs.py): a rewritten syscall site


class SiteInfo:
    """One ``syscall`` instruction: where it is and what rax holds there."""

    __slots__ = ("address", "offset", "kind", "nr", "function", "func_offset", "how", "after_resync", "callers",
                 "rewritten")

    def __init__(self, address, offset, kind, nr, function, func_offset, how, after_resync=False, rewritten=False):
        self.address, self.offset, self.kind, self.nr = address, offset, kind, nr
        self.function, self.func_offset, self.how = function, func_offset, how
        self.after_resync = after_resync   # the sweep skipped undecodable bytes earlier in this chunk
        self.rewritten = rewritten         # already `out 0xe0, al` (hermipy rewrite), not `syscall`
        self.callers: list[tuple[int, str, int | None]] = []   # dynamic: (call address, kind, nr) per caller


class ScanResult:
    __slots__ = ("sites", "code_bytes", "instructions", "resyncs", "stray", "ranges")

    def __init__(self):
        self.sites: list[SiteInfo] = []
        self.code_bytes = self.instructions = self.resyncs = self.stray = 0
        self.ranges: list[str] = []


class Scanner:
    """Sweep one ElfFile, then resolve its sites."""

    def __init__(self, elf: ElfFile):
        self.elf = elf
        self.md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        self.mdd = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        self.mdd.detail = True
        self.addrs = array("Q")
        self.syscalls: list[int] = []                 # indexes into addrs
        self.rewritten: set[int] = set()              # those of them that are rewritten sites
        self.uncertain: set[int] = set()              # syscall indexes found after a resync in their chunk
        self.jumps: dict[int, list[int]] = {}         # target -> source addresses (direct jmp/jcc/loop)
        self.entries: set[int] = set(elf.symbols.addrs)
        self.calls: dict[int, list[int]] = {}         # direct call target -> call instruction addresses
        self.code: list[tuple[int, bytes]] = []       # (vaddr, bytes) of each swept range
        self._decoded: dict[int, object] = {}
        self.result = ScanResult()

    # ---- sweep ----------------------------------------------------------------------------------------
    def sweep(self) -> None:
        elf = self.elf
        if elf.image.entry:
            self.entries.add(elf.image.entry)
        sym_addrs = elf.symbols.addrs
        for name, start, size in elf.code_ranges():
            code = elf.bytes_at(start, size)
            end = start + len(code)
            if self.code and start < self.code[-1][0] + len(self.code[-1][1]):
                continue                                   # overlapping ranges: sweep once
            self.code.append((start, code))
            self.result.ranges.append(name)
            self.result.code_bytes += len(code)
            lo, hi = bisect.bisect_left(sym_addrs, start), bisect.bisect_left(sym_addrs, end)
            bounds = sorted({start, *sym_addrs[lo:hi], end})
            for a, b in zip(bounds, bounds[1:]):
                self._sweep_chunk(code, start, a, b)
        self.result.instructions = len(self.addrs)
        self._count_stray()

    def _sweep_chunk(self, code: bytes, base: int, pos: int, end: int) -> None:
        addrs, syscalls, jumps, entries = self.addrs, self.syscalls, self.jumps, self.entries
        disasm = self.md.disasm_lite
        resynced = False
        while pos < end:
            stop = min(end, pos + WINDOW)
            last = pos
            for addr, size, mnemonic, op_str in disasm(code[pos - base:stop - base], pos):
                addrs.append(addr)
                last = addr + size
                c = mnemonic[0]
                if c == "s":
                    if mnemonic == "syscall":
                        syscalls.append(len(addrs) - 1)
                        if resynced:
                            self.uncertain.add(len(addrs) - 1)
                elif c == "j" or c == "l" and mnemonic.startswith("loop"):
                    if op_str.startswith("0x"):
                        jumps.setdefault(int(op_str, 16), []).append(addr)
                elif c == "c" and mnemonic == "call" and op_str.startswith("0x"):
                    target = int(op_str, 16)
                    entries.add(target)
                    self.calls.setdefault(target, []).append(addr)
                elif c == "o" and mnemonic == "out" and op_str == REWRITTEN_OP:
                    syscalls.append(len(addrs) - 1)
                    self.rewritten.add(len(addrs) - 1)
                    if resynced:
                        self.uncertain.add(len(addrs) - 1)
            if last >= stop:
                pos = last
            elif stop < end and last > stop - MAX_INSN:
                pos = last                                  # an instruction cut by the window: go on from it
            else:
                self.result.resyncs += 1                    # undecodable byte (data in code): skip it
                resynced = True
                pos = last + 1

    def _count_stray(self) -> None:
        """0f 05 byte pairs in executable segments that the sweep did not decode as ``syscall``."""
        found = {self.addrs[i] for i in self.syscalls}
        stray = 0
        for seg in self.elf.exec_segments():
            blob = self.elf.data[seg.offset:seg.offset + seg.filesz]
            i = blob.find(b"\x0f\x05")
            while i >= 0:
                if seg.vaddr + i not in found:
                    stray += 1
                i = blob.find(b"\x0f\x05", i + 1)
        self.result.stray = stray

    # ---- resolution -----------------------------------------------------------------------------------
    def resolve_all(self) -> ScanResult:
        symbols = self.elf.symbols
        for idx in self.syscalls:
            addr = self.addrs[idx]
            function, func_offset = symbols.lookup(addr) if len(symbols) else (None, 0)
            kind, nr, how, *origin = self.resolve(idx)
            if kind != KNOWN and function in ("syscall", "__syscall"):
                if kind != DYNAMIC:
                    origin = []
                kind, nr, how = DYNAMIC, None, f"the {function}() wrapper: the number comes from its caller"
            site = SiteInfo(addr, self.elf.offset_of(addr), kind, nr, function, func_offset, how,
                            idx in self.uncertain, idx in self.rewritten)
            if kind == DYNAMIC and origin:
                site.callers = self.resolve_callers(*origin)
            self.result.sites.append(site)
        return self.result

    def resolve_callers(self, entry: int, reg: str) -> list[tuple[int, str, int | None]]:
        """For a number that is ``reg`` at function ``entry``: resolve ``reg`` at each direct call to it."""
        callers = []
        for call in self.calls.get(entry, ()):
            idx = self._index(call)
            if idx is None:
                continue
            preds, at_entry = self._preds(idx)
            if at_entry or not preds:
                callers.append((call, UNKNOWN, None))
                continue
            budget = [MAX_STEPS]
            kind, nr, _how, *_ = self._merge([self._walk(p, reg, (), 0, budget, frozenset()) for p in preds])
            callers.append((call, kind, nr))
        return callers

    def resolve(self, idx: int) -> tuple:
        budget = [MAX_STEPS]
        preds, entry = self._preds(idx)
        if entry:
            return UNKNOWN, None, "syscall at a function entry"
        if not preds:
            return UNKNOWN, None, "no known predecessor (indirect jump target?)"
        return self._merge([self._walk(p, "rax", (), 0, budget, frozenset()) for p in preds])

    @staticmethod
    def _merge(values):
        values = [v for v in values if v[0] != LOOP] or [(UNKNOWN, None, "a loop with no assignment")]
        first = values[0]
        if all(v[0] == first[0] and v[1] == first[1] for v in values):
            return first
        return UNKNOWN, None, "paths disagree: " + ", ".join(sorted({str(v[1]) if v[1] is not None else v[0]
                                                                     for v in values}))

    def _walk(self, k: int, reg: str, ops: tuple, depth: int, budget: list, seen: frozenset):
        """Walk back from instruction k (included) tracking ``reg``; ``seen``: the join points on this path."""
        while True:
            budget[0] -= 1
            if budget[0] < 0:
                return UNKNOWN, None, "too far back"
            insn = self._decode(k)
            if insn is None:
                return UNKNOWN, None, "undecodable instruction"
            effect = self._effect(insn, reg)
            if effect is not None:
                what = effect[0]
                if what == "const":
                    value = effect[1]
                    for add, mask in reversed(ops):
                        value = (value + add) & mask
                    return KNOWN, value, f"{insn.mnemonic} {insn.op_str}".strip()
                if what == "kill":
                    return UNKNOWN, None, f"{reg} set by {insn.mnemonic} {insn.op_str}".strip()
                src, add, mask = effect[1:]
                tracked, reg = reg, src
                if add or mask != MASK64:
                    ops = ops + ((add, mask),)
                if tracked == "rax" and reg == "rdi" and self._is_mov(k + 1, "rdi, rsi"):
                    found = self._walk_preds(k, reg, ops, depth, budget, seen)
                    if found[0] == DYNAMIC:
                        return found
                    return DYNAMIC, None, "mov rax, rdi; mov rdi, rsi: a syscall() wrapper"
            preds, entry = self._preds(k)
            if entry:
                if reg in ARG_REGS and not ops:
                    return (DYNAMIC, None, f"{reg} at function entry: the number comes from the caller",
                            self.addrs[k], reg)
                if reg in ARG_REGS:
                    return DYNAMIC, None, f"{reg} at function entry (transformed): the number comes from the caller"
                return UNKNOWN, None, f"{reg} at function entry"
            if not preds:
                return UNKNOWN, None, "no known predecessor (indirect jump target?)"
            if len(preds) == 1:
                k = preds[0]
                continue
            if (k, reg, ops) in seen:
                return LOOP, None, ""
            if depth >= MAX_DEPTH:
                return UNKNOWN, None, "too many joining paths"
            seen = seen | {(k, reg, ops)}
            return self._merge([self._walk(p, reg, ops, depth + 1, budget, seen) for p in preds])

    def _walk_preds(self, k: int, reg: str, ops: tuple, depth: int, budget: list, seen: frozenset):
        """Continue a walk from the predecessors of instruction k."""
        preds, entry = self._preds(k)
        if entry:
            return ((DYNAMIC, None, f"{reg} at function entry", self.addrs[k], reg) if reg in ARG_REGS
                    else (UNKNOWN, None, f"{reg} at function entry"))
        if not preds:
            return UNKNOWN, None, "no known predecessor"
        return self._merge([self._walk(p, reg, ops, depth + 1, budget, seen) for p in preds])

    def _preds(self, k: int) -> tuple[list[int], bool]:
        """Predecessor instruction indexes of instruction k, and whether k is a function entry."""
        addr = self.addrs[k]
        if addr in self.entries:
            return [], True
        preds = []
        if k > 0:
            prev = self._decode(k - 1)
            if prev is not None and prev.address + prev.size == addr and prev.mnemonic not in FLOW_ENDS:
                preds.append(k - 1)
        for src in self.jumps.get(addr, ()):
            i = self._index(src)
            if i is not None:
                preds.append(i)
        return preds, False

    def _index(self, addr: int) -> int | None:
        i = bisect.bisect_left(self.addrs, addr)
        return i if i < len(self.addrs) and self.addrs[i] == addr else None

    def _decode(self, k: int):
        if k < 0 or k >= len(self.addrs):
            return None
        addr = self.addrs[k]
        insn = self._decoded.get(addr)
        if insn is None:
            for start, code in self.code:
                if start <= addr < start + len(code):
                    off = addr - start
                    insn = next(self.mdd.disasm(code[off:off + MAX_INSN], addr, 1), None)
                    break
            self._decoded[addr] = insn
        return insn

    def _is_mov(self, k: int, op_str: str) -> bool:
        insn = self._decode(k)
        return insn is not None and insn.mnemonic == "mov" and insn.op_str == op_str

    @staticmethod
    def _effect(insn, reg: str):
        """What ``insn`` does to the 64-bit register ``reg``: None (nothing), ("const", value),
        ("move", source_register, addend, mask) or ("kill",)."""
        mnemonic = insn.mnemonic
        if mnemonic == "call" or mnemonic.endswith(" call"):
            return ("kill",) if reg in CALLER_SAVED else None
        if mnemonic == "syscall" or mnemonic == "out" and insn.op_str == REWRITTEN_OP:
            return ("kill",) if reg in ("rax", "rcx", "r11") else None
        try:
            written = insn.regs_access()[1]
        except capstone.CsError:
            return ("kill",)
        if not any(PARENT.get(insn.reg_name(r), (None,))[0] == reg for r in written):
            return None
        ops = insn.operands
        if not ops or ops[0].type != x86_const.X86_OP_REG:
            return ("kill",)
        parent, width = PARENT.get(insn.reg_name(ops[0].reg), (None, 0))
        if parent != reg or width < 32 or len(ops) != 2:
            return ("kill",)
        mask = 0xFFFFFFFF if width == 32 else MASK64
        src = ops[1]
        if mnemonic == "mov":
            if src.type == x86_const.X86_OP_IMM:
                return ("const", src.imm & mask)
            if src.type == x86_const.X86_OP_REG:
                sparent, swidth = PARENT.get(insn.reg_name(src.reg), (None, 0))
                if sparent and sparent != "rip" and swidth >= 32:
                    return ("move", sparent, 0, mask)
        elif mnemonic in ("xor", "sub") and src.type == x86_const.X86_OP_REG and src.reg == ops[0].reg:
            return ("const", 0)
        elif mnemonic == "lea" and src.type == x86_const.X86_OP_MEM:
            mem = src.mem
            if mem.index == 0 and mem.segment == 0:
                if mem.base == 0:
                    return ("const", mem.disp & mask)
                bparent, bwidth = PARENT.get(insn.reg_name(mem.base), (None, 0))
                if bparent and bparent != "rip" and bwidth == 64:
                    return ("move", bparent, mem.disp, mask)
        return ("kill",)


def scan(elf: ElfFile) -> ScanResult:
    """Every syscall site of ``elf`` with its number resolved where statically known."""
    scanner = Scanner(elf)
    scanner.sweep()
    return scanner.resolve_all()
