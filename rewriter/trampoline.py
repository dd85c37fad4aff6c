"""Per-site trampolines: a ``syscall`` whose answer the guest can read becomes a jump that never traps.

HermiTux-style, for the syscalls answered from the answer page (``hermipy/runner.py`` IN_GUEST: getpid & co.),
and only at sites of the shape glibc's and musl's wrappers have::

    A:      b8 NN 00 00 00      mov eax, NN         A 16-byte aligned: a function entry
    A+5:    0f 05               syscall             -> eb 01   jmp short A+8
    A+7:    c3                  ret
    A+8:    nop fill ...        up to A+16          -> e9 rel32  jmp trampoline   (rest: int3)

The ``mov`` right before the site fixes the number (and it must be the number the site trapped with); the
fill between an unconditional ``ret`` and the next aligned function entry is never executed nor jumped into.
When the file has a cached rewrite plan (``hermipy analyze``), the plan must also resolve the site to that
number (``plan.SitePolicy.may_trampoline``). Only private, read-only file mappings are patched (as
``KvmCpu._rewrite_site``): writable or shared code may be read, changed or written back by the program.

The trampoline does what ``syscall`` and the answer would (rcx = return address, r11 = rflags, rax = the
answer, every other register and every flag unchanged) without touching the stack below rsp (the red zone):
``pushfq`` runs on a scratch stack outside the application's memory. It reads the answer from the answer
page at ``answers_va``, which the backend keeps current (after the set*id family and fork)::

    48 89 e1                mov rcx, rsp
    48 bc <scratch_top>     mov rsp, scratch_top
    9c                      pushfq
    41 5b                   pop r11
    48 89 cc                mov rsp, rcx
    48 a1 <slot>            movabs rax, [answers_va + 8 * NN]
    48 8d 0d <rel32>        lea rcx, [rip + (A+7)]
    e9 <rel32>              jmp A+7

**glibc's syscall(3)**, whose number is only known at run time (``rax`` = its first argument), gets a
*dispatching* trampoline. Its site is recognised by the function's whole code (sysdeps/unix/sysv/linux/
x86_64/syscall.S: six register moves, ``mov r9, [rsp+8]``, ``syscall``, ``cmp rax, -4095; jae error; ret``),
and what is replaced is the one 5-byte instruction before the ``syscall`` (by ``jmp rel32``, in one aligned
8-byte store): the ``syscall`` itself stays, so a thread that was past the jump, or is inside the call (blocked
in a futex, say), goes on unharmed. The trampoline does the displaced load, then answers from the answer page
when slot ``rax`` holds an answer (rcx = the site's return address, r11 and the flags the caller's) and jumps
past the ``syscall``; otherwise it jumps to the ``syscall``, which does what it always did. It needs no
scratch stack: syscall() is a leaf whose red zone is its own, so ``pushfq`` may use the application's stack,
and a signal may arrive at any of its instructions (a kick does not wait for it to end, as for the others)::

    4c 8b 4c 24 08          mov r9, [rsp + 8]             the displaced instruction
    9c / 41 5b              pushfq; pop r11               r11 = rflags, as syscall leaves it
    48 3d <ANSWER_SLOTS>    cmp rax, ANSWER_SLOTS
    73 <slow>               jae slow
    48 b9 <answers_va>      movabs rcx, answers_va
    48 8b 0c c1             mov rcx, [rcx + rax * 8]
    48 0f ba e1 3f          bt rcx, 63                    NOT_ANSWERED
    72 <slow>               jc slow
    48 89 c8                mov rax, rcx
    41 53 / 9d              push r11; popfq               the caller's flags back
    48 8d 0d <rel32>        lea rcx, [rip + (A+2)]
    e9 <rel32>              jmp A+2
  slow:
    41 53 / 9d              push r11; popfq
    e9 <rel32>              jmp A                         the syscall

**Posting trampolines** (KVM's exitless mode) serve any number at sites whose function goes on, from the
``syscall``, in the straight-line code libc's wrappers have (compare, branch to the errno path, ``ret``; the
errno path: load, ``neg``, store through fs, ``mov`` -1, ``ret``), decoded instruction by instruction
(``post_padding``, a handful of encodings: anything else and the site is left alone) up to fill that follows an
unconditional ``ret`` or ``jmp`` (glibc's read, write, close, getdents64, fstatat, fcntl...; musl's
__syscall_cp_c). The ``syscall`` becomes ``jmp short`` to a fill of at least 5 bytes within its reach, which becomes
``jmp rel32`` to the trampoline; where that fill is further, the ``jmp short`` goes through up to three hops, smaller
fills that become ``jmp short`` on (the site's two bytes in one store, written last; the instructions between are
unchanged, so a thread stopped anywhere goes on unharmed). On PVM a ``syscall`` alone costs several µs; the
trampoline enters the LSTAR entry of the process's only vCPU by a jump instead (``kvm_stubs`` trampoline_post:
rcx = its return address, r11 = rflags, then the entry's mailbox post as after a ``syscall``), and with several
vCPUs, or none serving, makes the ``syscall`` itself::

    48 b9 <post_entry_va>   movabs rcx, post_entry_va     the answer page's word: trampoline_post, or 0
    48 8b 09                mov rcx, [rcx]
    e3 09                   jrcxz slow
    4c 8d 1d <rel32>        lea r11, [rip + (A+2)]
    ff e1                   jmp rcx
  slow:
    0f 05                   syscall
    48 8d 0d <rel32>        lea rcx, [rip + (A+2)]
    e9 <rel32>              jmp A+2

Trampolines live in pages hermipy reserves as its own areas, each kind in pages of its own (``memory.OwnArea``,
``[hermipy-trampolines]``: invisible to the guest's memory calls), placed by a top-down search below the patched code and within a
``rel32`` of it (so they never stand in the way of brk). A guest MAP_FIXED over such a page takes it back: the
sites that jump there get their original bytes again (they trap, as before rewriting) and the page goes. The
bytes are assembled here by hand: no assembler on the run path.
"""
import struct

from hermipy.kvm_stubs import ANSWER_SLOTS, POST_ENTRY_SLOT
from hermipy.syscalls.errors import SyscallError
from hermipy.syscalls.memory import PROT_EXEC, PROT_READ, PROT_WRITE

PAGE = 0x1000
TRAMPOLINE_SIZE = 48                       # 41 bytes of code, int3 up to 48
AREA_NAME = "[hermipy-trampolines]"
REACH = (1 << 31) - PAGE                   # what a jmp rel32 reaches, with a page to spare
SYSCALL = b"\x0f\x05"
MOV_EAX = 0xB8
RET = 0xC3
INT3 = 0xCC
JMP_SHORT, JMP_REL32 = 0xEB, 0xE9
WRAPPER_ALIGN = 16
# glibc's syscall(3): what precedes its `syscall` (the last instruction, mov r9, [rsp+8], is the one replaced),
# and what follows it (cmp rax, -4095; jae error; ret)
GLIBC_SYSCALL_ENTRY = bytes.fromhex("4889f8" "4889f7" "4889d6" "4889ca" "4d89c2" "4d89c8" "4c8b4c2408")
GLIBC_SYSCALL_RETURN = bytes.fromhex("483d01f0ffff" "7301" "c3")
DISPLACED = 5                              # mov r9, [rsp+8]: exactly a jmp rel32
SITE_FORMS = (SYSCALL, b"\xe6\xe0")        # the site as built, or as KVM rewrites it (out 0xe0, al)
DISPATCH_SIZE = 80                         # 77 bytes of code, int3 up to 80
POST_SIZE = 40                             # 38 bytes of code, int3 up to 40
POST_REACH = 127                           # what the site's jmp short reaches
POST_HOPS = 3                              # jmp shorts on the way to a fill out of the site's reach, at most
POST_WINDOW = 2 + (POST_HOPS + 1) * (POST_REACH + 2) + WRAPPER_ALIGN      # bytes post_padding reads from a site
ALU_RR = frozenset((0x01, 0x03, 0x09, 0x0B, 0x21, 0x23, 0x29, 0x2B, 0x31, 0x33, 0x39, 0x3B, 0x85, 0x89, 0x8B))
POSTING = "post"                           # Trampolines.made's number for a posting trampoline
POST_SIGNATURE = ((0, b"\x48\xb9"), (10, b"\x48\x8b\x09\xe3\x09"))   # how a posting trampoline starts
POST_LOADED, POST_JUMP = 13, 22            # its rcx holds the post entry from here to its jmp rcx

# Nop fill as assemblers emit it for .p2align (GNU as i386_generate_nops; int3 between functions too).
_NOPS = (b"\x90", b"\x66\x90", b"\x0f\x1f\x00", b"\x0f\x1f\x40\x00", b"\x0f\x1f\x44\x00\x00",
         b"\x66\x0f\x1f\x44\x00\x00", b"\x0f\x1f\x80\x00\x00\x00\x00", b"\x0f\x1f\x84\x00\x00\x00\x00\x00",
         b"\x66\x0f\x1f\x84\x00\x00\x00\x00\x00", b"\x66\x2e\x0f\x1f\x84\x00\x00\x00\x00\x00", b"\xcc")


def is_fill(data: bytes) -> bool:
    """Whether ``data`` is entirely nop-fill instructions (extra 0x66 prefixes allowed, as GNU as pads)."""
    return fill_length(data) == len(data)


def fill_length(data: bytes, pos: int = 0) -> int:
    """How many bytes of ``data`` from ``pos`` on are whole nop-fill instructions (and int3)."""
    start = pos
    while pos < len(data):
        at = pos
        while data[at:at + 1] == b"\x66" and data[at + 1:at + 2] == b"\x66":
            at += 1
        nop = next((nop for nop in _NOPS if data.startswith(nop, at)), None)
        if nop is None or at + len(nop) - pos > 15:       # (no x86 instruction is longer than 15 bytes)
            break
        pos = at + len(nop)
    return pos - start


def wrapper_padding(code: bytes, base: int, site: int, nr: int) -> int | None:
    """The fill address after the wrapper whose ``syscall`` is at ``site``, or None if the site is not one.

    ``code`` holds the bytes of [base, base + len(code)); it must cover the wrapper's 16 aligned bytes."""
    entry = site - 5
    if entry % WRAPPER_ALIGN or entry < base or entry + WRAPPER_ALIGN > base + len(code):
        return None
    head = code[entry - base:entry - base + WRAPPER_ALIGN]
    if head[0] != MOV_EAX or struct.unpack_from("<I", head, 1)[0] != nr or head[5:7] != SYSCALL or head[7] != RET:
        return None
    return site + 3 if is_fill(head[8:]) else None


def trampoline_code(at: int, site: int, answers_va: int, scratch_top: int, nr: int) -> bytes:
    """The trampoline for the site at ``site`` with number ``nr``, placed at ``at`` (see the module doc)."""
    back = site + 2
    code = (b"\x48\x89\xe1" + b"\x48\xbc" + struct.pack("<Q", scratch_top) + b"\x9c\x41\x5b\x48\x89\xcc"
            + b"\x48\xa1" + struct.pack("<Q", answers_va + 8 * nr))
    code += b"\x48\x8d\x0d" + struct.pack("<i", back - (at + len(code) + 7))
    code += bytes((JMP_REL32,)) + struct.pack("<i", back - (at + len(code) + 5))
    return code + bytes((INT3,)) * (TRAMPOLINE_SIZE - len(code))


def dispatch_code(at: int, site: int, answers_va: int) -> bytes:
    """The dispatching trampoline for glibc's syscall() whose ``syscall`` is at ``site``, placed at ``at``."""
    head = (GLIBC_SYSCALL_ENTRY[-DISPLACED:] + b"\x9c\x41\x5b"            # mov r9, [rsp+8]; pushfq; pop r11
            + b"\x48\x3d" + struct.pack("<I", ANSWER_SLOTS))
    answer = b"\x48\xb9" + struct.pack("<Q", answers_va) + b"\x48\x8b\x0c\xc1" + b"\x48\x0f\xba\xe1\x3f"
    flags_back = b"\x41\x53\x9d"                                          # push r11; popfq
    found = b"\x48\x89\xc8" + flags_back
    fast_end = len(head) + 2 + len(answer) + 2 + len(found) + 7 + 5
    code = head + b"\x73" + bytes((fast_end - len(head) - 2,)) + answer
    code += b"\x72" + bytes((fast_end - len(code) - 2,)) + found
    code += b"\x48\x8d\x0d" + struct.pack("<i", site + 2 - (at + len(code) + 7))
    code += bytes((JMP_REL32,)) + struct.pack("<i", site + 2 - (at + len(code) + 5))
    code += flags_back
    code += bytes((JMP_REL32,)) + struct.pack("<i", site - (at + len(code) + 5))
    return code + bytes((INT3,)) * (DISPATCH_SIZE - len(code))


def _modrm_size(code: bytes, at: int) -> int | None:
    """Bytes of the ModRM byte at ``at`` with its SIB and displacement (64-bit addressing), or None past the end."""
    if at >= len(code):
        return None
    modrm = code[at]
    mod, rm = modrm >> 6, modrm & 7
    if mod == 3:
        return 1
    size = 1
    if rm == 4:                                   # a SIB byte
        if at + 1 >= len(code):
            return None
        size += 1
        if mod == 0 and code[at + 1] & 7 == 5:    # no base: disp32
            size += 4
    elif mod == 0 and rm == 5:                    # rip + disp32
        size += 4
    return size + (1 if mod == 1 else 4 if mod == 2 else 0)


def _tail_instruction(code: bytes, pos: int) -> tuple[int, int | None, bool] | None:
    """(length, branch target offset or None, whether it never falls through) of the instruction at ``pos``, for
    the few encodings the code around a libc wrapper's `syscall` has (branches, ret, call, syscall, nops, push/pop,
    mov/lea/ALU/movzx forms with a ModRM or an immediate, an fs or gs prefix and a REX prefix); None for any
    other."""
    if pos >= len(code):
        return None
    op = code[pos]
    if op == RET:
        return 1, None, True
    if op in (JMP_SHORT, JMP_REL32, 0xE8) and pos + (2 if op == JMP_SHORT else 5) <= len(code):
        size = 2 if op == JMP_SHORT else 5
        if op == 0xE8:                                                # call: comes back
            return 5, None, False
        rel = struct.unpack_from("<b" if op == JMP_SHORT else "<i", code, pos + 1)[0]
        return size, pos + size + rel, True
    if 0x70 <= op <= 0x7F and pos + 2 <= len(code):                   # jcc rel8
        return 2, pos + 2 + struct.unpack_from("<b", code, pos + 1)[0], False
    if op == 0x0F and pos + 6 <= len(code) and 0x80 <= code[pos + 1] <= 0x8F:   # jcc rel32
        return 6, pos + 6 + struct.unpack_from("<i", code, pos + 2)[0], False
    if code[pos:pos + 2] in SITE_FORMS:                                # another site, or KVM's `out` of one
        return 2, None, False
    nops = fill_length(code[:pos + 15], pos)
    if nops:                                                          # alignment inside a function (or int3)
        return nops, None, False
    prefix = 0
    if op in (0x64, 0x65):                                            # fs, gs
        prefix += 1
    if pos + prefix < len(code) and 0x40 <= code[pos + prefix] <= 0x4F:   # REX
        prefix += 1
    if pos + prefix >= len(code):
        return None
    op = code[pos + prefix]
    if 0x50 <= op <= 0x5F:                                            # push r, pop r
        return prefix + 1, None, False
    if 0xB8 <= op <= 0xBF:                                            # mov r, imm32 (imm64 with REX.W)
        return prefix + (9 if prefix and code[pos + prefix - 1] & 0x48 == 0x48 else 5), None, False
    if op in (0x05, 0x0D, 0x25, 0x2D, 0x35, 0x3D, 0xA9):               # add/or/and/sub/xor/cmp/test eax, imm32
        return prefix + 5, None, False
    if op in (0x04, 0x0C, 0x24, 0x2C, 0x34, 0x3C, 0xA8):               # the same with al, imm8
        return prefix + 2, None, False
    if op == 0x0F and pos + prefix + 1 < len(code) and code[pos + prefix + 1] in (0xB6, 0xB7, 0xBE, 0xBF):
        modrm = _modrm_size(code, pos + prefix + 2)                   # movzx, movsx
        return None if modrm is None else (prefix + 2 + modrm, None, False)
    if op in ALU_RR or op in (0x8D, 0x63, 0x84, 0x88, 0x8A) or op in (0x80, 0x83, 0x81, 0xC6, 0xC7, 0xF6, 0xF7):
        modrm = _modrm_size(code, pos + prefix + 1)
        if modrm is None:
            return None
        reg = code[pos + prefix + 1] >> 3 & 7
        if op in (0xC6, 0xC7) and reg != 0:
            return None
        if op in (0xF6, 0xF7):                                        # test r/m, imm; not, neg, mul, div
            immediate = (1 if op == 0xF6 else 4) if reg in (0, 1) else 0
        else:
            immediate = 1 if op in (0x80, 0x83, 0xC6) else 4 if op in (0x81, 0xC7) else 0
        return prefix + 1 + modrm + immediate, None, False
    return None


def post_padding(code: bytes, site: int) -> tuple[int, int, tuple[int, ...]] | None:
    """Where a posting trampoline's jumps go, for the ``syscall`` at ``site`` (``code``: the bytes from it, up to
    POST_WINDOW of them): (start, end) of the fill that takes the jmp rel32, and the hops on the way to it (the
    addresses of 2-byte fills that take a jmp short on), or None. Decoded from after the ``syscall``: straight on
    through the instructions ``_tail_instruction`` knows; after an unconditional ``ret``/``jmp``, the fill is the
    nops or int3 that follow it, up to the next label a branch seen so far targets, the next 16-byte boundary or the
    first byte that is not fill, whichever comes first (never executed: nothing falls into it, no branch seen
    targets it, and a label elsewhere would be aligned or right after the fill); the walk goes on where it ends
    (code there is a label, reached from elsewhere). The first fill of 5 bytes reachable from the site, directly
    or through at most POST_HOPS hops (each the furthest fill within the previous jump's reach), is taken."""
    if code[:2] != SYSCALL:
        return None
    pos, targets, fills = 2, set(), []
    while pos < len(code):
        decoded = _tail_instruction(code, pos)
        if decoded is None:
            break
        size, target, ends = decoded
        if target is not None:
            targets.add(target)
        pos += size
        if not ends:
            continue
        end = pos + fill_length(code, pos)
        aligned = ((site + pos + WRAPPER_ALIGN - 1) & ~(WRAPPER_ALIGN - 1)) - site
        boundary = min([t for t in targets if t >= pos] + [aligned, end])
        if boundary - pos >= 2:
            fills.append((pos, boundary))
            if boundary - pos >= 5:
                hops = _hops(fills, site)
                if hops is not None:
                    return site + pos, site + boundary, hops
        pos = end
    return None


def _hops(fills: list[tuple[int, int]], site: int) -> tuple[int, ...] | None:
    """The hops to the last of ``fills`` (offsets from ``site``), each the furthest fill within reach of the jump
    before it; None if it takes more than POST_HOPS of them."""
    goal, origin, hops = fills[-1][0], 2, []
    while goal - origin > POST_REACH:
        reachable = [start for start, _end in fills[:-1]
                     if origin <= start <= origin + POST_REACH and start not in hops]
        if not reachable or len(hops) == POST_HOPS:
            return None
        hops.append(max(reachable))
        origin = hops[-1] + 2
    return tuple(site + hop for hop in hops)


def post_code(at: int, site: int, post_entry_va: int) -> bytes:
    """The posting trampoline of the site at ``site``, placed at ``at`` (see the module doc)."""
    back = site + 2
    code = b"\x48\xb9" + struct.pack("<Q", post_entry_va) + b"\x48\x8b\x09" + b"\xe3\x09"
    code += b"\x4c\x8d\x1d" + struct.pack("<i", back - (at + len(code) + 7)) + b"\xff\xe1"
    code += SYSCALL
    code += b"\x48\x8d\x0d" + struct.pack("<i", back - (at + len(code) + 7))
    code += bytes((JMP_REL32,)) + struct.pack("<i", back - (at + len(code) + 5))
    return code + bytes((INT3,)) * (POST_SIZE - len(code))


def file_policies():
    """A function vma -> the ``plan.SitePolicy`` of the file it maps (None for anonymous memory), one per file."""
    from hermipy.rewriter.plan import SitePolicy
    cache: dict[tuple[int, int], SitePolicy] = {}

    def policy(vma):
        if vma.file is None:
            return None
        key = (vma.file.dev, vma.file.inode)
        found = cache.get(key)
        if found is None:
            found = cache[key] = SitePolicy(f"/proc/self/fd/{vma.file.fd}")
        return found
    return policy


class Trampolines:
    """The trampolines of one address space: where they are, and the patching of sites into them.

    ``policy(vma)`` is the file's ``plan.SitePolicy`` (or None: no file); ``invalidate(start, end)`` drops
    the CPU's translations of changed code."""

    def __init__(self, mem, answers_va: int, scratch_top: int, policy, invalidate):
        self.mem, self.answers_va, self.scratch_top = mem, answers_va, scratch_top
        self.policy, self.invalidate = policy, invalidate
        self.areas: list[list[int]] = []             # [start, next free, slot size] of each reserved page
        self.tried: set[int] = set()                 # sites examined (patched or not): never twice
        self.tried_post: set[int] = set()            # the same for posting trampolines (a syscall() site whose
                                                     # preceding load jumps to its dispatching one may get one too)
        self.patched: dict[int, list[tuple[int, bytes, bytes]]] = {}   # trampoline -> [(address, before, after)]
        self.made: dict[int, tuple[int, int | str | None]] = {}   # trampoline -> (site, nr; None: dispatching;
                                                                  # POSTING: a posting one)
        self.closed = False                          # withdrawn: no more patching

    def patch(self, site: int, nr: int) -> bool:
        """Make the ``syscall`` at ``site`` (which just trapped with number ``nr``) jump to a trampoline: a
        wrapper's, answering ``nr``, or, in glibc's syscall(), a dispatching one."""
        vma, policy = self._patchable(site)
        return vma is not None and (self._patch_wrapper(vma, policy, site, nr) or
                                    self._patch_syscall_function(vma, site))

    def patch_dispatch(self, site: int) -> bool:
        """Give the ``syscall`` at ``site`` a dispatching trampoline if it is glibc's syscall()'s (whatever
        number it trapped with: KVM asks before it rewrites a site to ``out``)."""
        vma, _policy = self._patchable(site)
        return vma is not None and self._patch_syscall_function(vma, site)

    def patch_post(self, site: int) -> bool:
        """Give the ``syscall`` at ``site`` (which the exitless entry just served) a posting trampoline, if the
        site has its shape."""
        if site & 63 == 63:                   # the two bytes must be one store (within a cache line)
            return False
        vma, _policy = self._patchable(site, self.tried_post)
        if vma is None:
            return False
        mem = self.mem
        fill = post_padding(mem.read(site, min(vma.end, site + POST_WINDOW) - site), site)
        if fill is None:
            return False
        pad, fill_end, hops = fill
        at = self._slot(pad, POST_SIZE)
        if at is None:
            return False
        mem.poke(at, post_code(at, site, self.answers_va + 8 * POST_ENTRY_SLOT))
        self.made[at] = (site, POSTING)
        writes = [(site, bytes((JMP_SHORT, (hops or (pad,))[0] - (site + 2))))]     # the site first: see _unpatch
        writes += [(hop, bytes((JMP_SHORT, to - (hop + 2)))) for hop, to in zip(hops, hops[1:] + (pad,))]
        jump = bytes((JMP_REL32,)) + struct.pack("<i", at - (pad + 5))
        writes.append((pad, jump + bytes((INT3,)) * (fill_end - pad - len(jump))))
        pieces = [(address, mem.read(address, len(code)), code) for address, code in writes]
        for address, _before, code in reversed(pieces):                 # the site's two bytes last, in one store
            mem.poke(address, code)
        self.patched[at] = pieces
        self.invalidate(site, fill_end)
        self.invalidate(at, at + POST_SIZE)
        return True

    def _patchable(self, site: int, tried: set[int] | None = None):
        """(vma, policy) when the site may be patched (once: never examined before, in ``tried``, by default the
        set of the answering trampolines'), else (None, None)."""
        tried = self.tried if tried is None else tried
        if site in tried or self.closed:
            return None, None
        tried.add(site)
        vma = self.mem.find(site)
        if vma is None or vma.file is None or vma.shared or vma.prot & PROT_WRITE or not vma.prot & PROT_READ:
            return None, None
        policy = self.policy(vma)
        if policy is None or policy.rewritten:
            return None, None
        return vma, policy

    def _patch_wrapper(self, vma, policy, site: int, nr: int) -> bool:
        mem = self.mem
        entry = site - 5
        if entry < vma.start or entry + WRAPPER_ALIGN > vma.end:
            return False
        pad = wrapper_padding(mem.read(entry, WRAPPER_ALIGN), entry, site, nr)
        if pad is None or not policy.may_trampoline(vma.offset + site - vma.start, nr):
            return False
        at = self._slot(pad, TRAMPOLINE_SIZE)
        if at is None:
            return False
        mem.poke(at, trampoline_code(at, site, self.answers_va, self.scratch_top, nr))
        self.made[at] = (site, nr)
        before = mem.read(entry, WRAPPER_ALIGN)
        fill_end = entry + WRAPPER_ALIGN
        mem.poke(pad, bytes((JMP_REL32,)) + struct.pack("<i", at - (pad + 5)) + bytes((INT3,)) * (fill_end - pad - 5))
        mem.poke(site, bytes((JMP_SHORT, pad - (site + 2))))
        self.patched[at] = [(entry, before, mem.read(entry, WRAPPER_ALIGN))]
        self.invalidate(entry, fill_end)
        self.invalidate(at, at + TRAMPOLINE_SIZE)
        return True

    def _patch_syscall_function(self, vma, site: int) -> bool:
        """glibc's syscall(): the instruction before its ``syscall`` becomes a jump to a dispatching trampoline
        (in one 8-byte store, so it must lie within an aligned 8 bytes: it does where the function is aligned)."""
        mem = self.mem
        start, end = site - len(GLIBC_SYSCALL_ENTRY), site + len(SYSCALL) + len(GLIBC_SYSCALL_RETURN)
        jump = site - DISPLACED
        if start < vma.start or end > vma.end or jump & ~7 != (site - 1) & ~7:
            return False
        code = mem.read(start, end - start)
        if code[:len(GLIBC_SYSCALL_ENTRY)] != GLIBC_SYSCALL_ENTRY or code[-len(GLIBC_SYSCALL_RETURN):] != \
                GLIBC_SYSCALL_RETURN or code[len(GLIBC_SYSCALL_ENTRY):-len(GLIBC_SYSCALL_RETURN)] not in SITE_FORMS:
            return False
        at = self._slot(site, DISPATCH_SIZE)
        if at is None:
            return False
        mem.poke(at, dispatch_code(at, site, self.answers_va))
        self.made[at] = (site, None)
        self.invalidate(at, at + DISPATCH_SIZE)
        word = jump & ~7
        before = mem.read(word, 8)
        offset = jump - word
        after = before[:offset] + bytes((JMP_REL32,)) + struct.pack("<i", at - (jump + 5)) + before[offset + 5:]
        mem.store_u64(word, int.from_bytes(after, "little"))
        self.patched[at] = [(word, before, after)]
        self.invalidate(word, word + 8)
        return True

    def give_back(self, area) -> None:
        """A guest mapping takes the page of ``area``: its sites get their original bytes back, so nothing
        jumps there any more."""
        self.areas = [a for a in self.areas if a[0] != area.start]
        for at in [at for at in self.patched if area.start <= at < area.end]:
            self._unpatch(at)
        self.made = {at: made for at, made in self.made.items() if not area.start <= at < area.end}

    def move_answers(self, answers_va: int, scratch_top: int) -> None:
        """The answer page and the scratch stack moved (the KVM user window, KvmVm.move_window): every trampoline
        is written again for the new addresses, instruction for instruction where it was (a vCPU stopped inside
        one goes on in the new code)."""
        self.answers_va, self.scratch_top = answers_va, scratch_top
        live = {area[0] for area in self.areas}
        for at, (site, nr) in self.made.items():
            if at & ~(PAGE - 1) in live:
                code = (dispatch_code(at, site, answers_va) if nr is None
                        else post_code(at, site, answers_va + 8 * POST_ENTRY_SLOT) if nr == POSTING
                        else trampoline_code(at, site, answers_va, scratch_top, nr))
                self.mem.poke(at, code)
                self.invalidate(at, at + len(code))

    def withdraw(self) -> None:
        """No site answers from the answer page any more (it no longer holds every task's answers): every
        patched site gets its original bytes back, and none is patched from now on."""
        self.closed = True
        for at in list(self.patched):
            self._unpatch(at)

    def _unpatch(self, at: int) -> None:
        """The original bytes of what was patched to jump to ``at``, site first (nothing enters the chain after it),
        each piece where it still holds the patch (the code may have been unmapped or changed since, or another
        site's patch may have taken a fill this one left dead)."""
        for address, before, after in self.patched.pop(at):
            try:
                if self.mem.read(address, len(after)) != after:
                    continue
            except SyscallError:
                continue
            self.mem.poke(address, before)
            self.invalidate(address, address + len(before))

    def _slot(self, near: int, size: int) -> int | None:
        """A free slot of ``size`` bytes within a rel32 of ``near``: in a reserved page of slots of that size
        (each page holds one kind, so that a slot starts at a multiple of its size: KvmCpu._in_trampoline),
        or in a newly reserved one."""
        mem = self.mem
        for area in self.areas:
            if area[2] == size and abs(area[0] - near) < REACH and area[1] + size <= area[0] + PAGE:
                area[1] += size
                return area[1] - size
        code = mem.find(near)
        try:
            start = mem.find_free(PAGE, top=code.start if code is not None else near & ~(PAGE - 1))
        except SyscallError:
            return None
        if abs(start - near) >= REACH:
            return None
        mem.reserve(start, PAGE, PROT_READ | PROT_EXEC, AREA_NAME, self.give_back)
        self.areas.append([start, start + size, size])
        return start
