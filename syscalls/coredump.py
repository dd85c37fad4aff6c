"""Core dumps of the guest (fs/coredump.c, fs/binfmt_elf.c elf_core_dump): when a signal whose default action is
'core' ends a guest whose RLIMIT_CORE allows it, hermipy writes the guest's image -- not its own -- as Linux would:
an ELF core file (ET_CORE) named by the host's kernel.core_pattern (and core_uses_pid), with NT_PRSTATUS (the
signal and the dying thread's registers), NT_PRPSINFO, NT_AUXV and NT_FPREGSET notes, and one PT_LOAD per
mapping (the pages of anonymous and written mappings; file mappings never written are left to the file, as
coredump_filter's default does). A pattern that pipes to a helper is not run: no core, as when the helper fails.

The wait status then says "core dumped" (WCOREDUMP, CLD_DUMPED) to a guest parent: hermipy's processes of a run
share a page (``DUMPED``, made before the first fork) where a dying process notes its pid, and the parent's
wait4/waitid and SIGCHLD read it back. The host process itself dies without a host core (that image would be
hermipy's).
"""
import mmap
import os
import struct
import time

from hermipy.cpu import GPR_NAMES
from hermipy.syscalls.errors import SyscallError

PAGE = 4096
RLIMIT_CORE = 4
ET_CORE, EM_X86_64 = 4, 62
PT_LOAD, PT_NOTE = 1, 4
PF_X, PF_W, PF_R = 1, 2, 4
PROT_WRITE = 2
ZERO_PAGE = bytes(PAGE)
NT_PRSTATUS, NT_FPREGSET, NT_PRPSINFO, NT_AUXV = 1, 2, 3, 6
EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
PHDR = struct.Struct("<IIQQQQQQ")
# user_regs_struct order (arch/x86/include/asm/user_64.h), as NT_PRSTATUS's pr_reg holds it
PR_REG_ORDER = ("r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx", "rsi",
                "rdi", "orig_rax", "rip", "cs", "rflags", "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs")
USER_CS, USER_DS = 0x33, 0x2B
DUMPED_SLOTS = PAGE // 4
DUMPED = mmap.mmap(-1, PAGE, mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)     # pids whose core was written (by slot)


def note_dumped(pid: int) -> None:
    """This process (``pid``) is about to die with a core written: its parent's wait will say so."""
    struct.pack_into("<i", DUMPED, 4 * (pid % DUMPED_SLOTS), pid)


def take_dumped(pid: int, keep: bool = False) -> bool:
    """Whether child ``pid`` died with a core written (forgotten once reaped, unless ``keep``)."""
    slot = 4 * (pid % DUMPED_SLOTS)
    if struct.unpack_from("<i", DUMPED, slot)[0] != pid:
        return False
    if not keep:
        struct.pack_into("<i", DUMPED, slot, 0)
    return True


def _note(name: bytes, kind: int, desc: bytes) -> bytes:
    name += b"\0"
    pad = lambda b: b + bytes(-len(b) % 4)       # noqa: E731
    return struct.pack("<III", len(name), len(desc), kind) + pad(name) + pad(desc)


def _core_name(k, signo: int) -> str | None:
    """core_pattern expanded (format_corename) for this guest, or None for a pipe or an empty pattern."""
    try:
        with open("/proc/sys/kernel/core_pattern") as f:
            pattern = f.read().rstrip("\n")
        with open("/proc/sys/kernel/core_uses_pid") as f:
            uses_pid = f.read().strip() == "1"
    except OSError:
        pattern, uses_pid = "core", False
    if not pattern or pattern.startswith("|"):
        return None
    p = k.proc
    comm = k.comm.decode(errors="replace")
    fields = {"%": "%", "p": str(p.pid), "P": str(p.pid), "i": str(k.tid), "I": str(k.tid), "u": str(p.uid),
              "g": str(p.gid), "s": str(signo), "t": str(int(time.time())), "h": os.uname().nodename, "e": comm,
              "E": (p.exe or comm).replace("/", "!"), "d": str(getattr(p, "dumpable", 1))}
    out, i, has_pid = [], 0, False
    while i < len(pattern):
        if pattern[i] == "%" and i + 1 < len(pattern):
            spec = pattern[i + 1]
            has_pid |= spec == "p"
            out.append(fields.get(spec, ""))
            i += 2
        else:
            out.append(pattern[i])
            i += 1
    name = "".join(out)
    if uses_pid and not has_pid:
        name += f".{p.pid}"
    return name


def _notes(k, signo: int) -> bytes:
    p, cpu = k.proc, k.cpu
    regs = dict(zip(GPR_NAMES, cpu.get_regs()))
    regs.update(orig_rax=(1 << 64) - 1, cs=USER_CS, ss=USER_DS, fs_base=cpu.get_fs_base(), gs_base=cpu.get_gs_base(),
                ds=0, es=0, fs=0, gs=0)
    times = os.times()
    status = struct.pack("<iiihxxQQiiii4q4q", signo, 0, 0, signo, 0, k.signals.blocked, p.pid, p.ppid,
                         os.getpgrp(), os.getsid(0), int(times.user), 0, int(times.system), 0, 0, 0, 0, 0)
    status += struct.pack(f"<{len(PR_REG_ORDER)}Q", *(regs[r] & (1 << 64) - 1 for r in PR_REG_ORDER))
    status += struct.pack("<i4x", 1)
    args = b" ".join(p.argv)[:80]
    comm = k.comm[:16]
    psinfo = struct.pack("<bcbbxxxxQIIiiii16s80s", 0, b"R", 0, 0, 0, p.uid, p.gid, p.pid, p.ppid, os.getpgrp(),
                         os.getsid(0), comm, args)
    return (_note(b"CORE", NT_PRSTATUS, status) + _note(b"CORE", NT_PRPSINFO, psinfo)
            + _note(b"CORE", NT_AUXV, p.auxv) + _note(b"CORE", NT_FPREGSET, bytes(cpu.read_fpu_state()[:512])))


def _segments(k) -> list[tuple]:
    """(vma, bytes to dump) per mapping: all of an anonymous or written one, nothing of a file mapping never
    written (coredump_filter's default: anonymous private and shared, file-backed private once written)."""
    return [(vma, vma.end - vma.start if vma.prot and (vma.file is None or vma.prot & PROT_WRITE) else 0)
            for vma in list(k.mem.vmas)]


def write_core(k, signo: int) -> bool:
    """elf_core_dump() of the guest into the file core_pattern names (created 0600 as Linux does, in the guest's
    cwd for a relative name, through hermipy's view of the file system), cut at RLIMIT_CORE; True when a core
    was written (Linux counts a cut one as dumped too), False below min_coredump (a page) or when the file
    cannot be made."""
    from hermipy.syscalls.files import O_CREAT, O_NOFOLLOW, O_TRUNC, O_WRONLY
    from hermipy.syscalls.sys_fs import lookup
    from hermipy.syscalls.kernel import RLIM_INFINITY
    limit = k.proc.rlimits.get(RLIMIT_CORE, [0, 0])[0]
    if limit < PAGE or not getattr(k.proc, "dumpable", 1):
        return False
    name = _core_name(k, signo)
    if name is None:
        return False
    segments = _segments(k)
    notes = _notes(k, signo)
    header_size = EHDR.size + PHDR.size * (1 + len(segments))
    offset = header_size + len(notes)
    offset += -offset % PAGE
    phdrs = [PHDR.pack(PT_NOTE, 0, header_size, 0, 0, len(notes), 0, 4)]
    for vma, size in segments:
        flags = (PF_R if vma.prot & 1 else 0) | (PF_W if vma.prot & 2 else 0) | (PF_X if vma.prot & 4 else 0)
        phdrs.append(PHDR.pack(PT_LOAD, flags, offset, vma.start, 0, size, vma.end - vma.start, PAGE))
        offset += size
    frames, view = k.mem.frames, k.mem.view
    pages = {}                               # vpn -> frame of the pages to write; the rest are holes
    for vma, size in segments:
        for vpn in range(vma.start >> 12, (vma.start + size) >> 12):
            frame = frames.get(vpn)
            if frame is not None and view[frame:frame + PAGE] != ZERO_PAGE:   # (zero: never written, as far as
                pages[vpn] = frame                                             # anyone can tell: fault-around)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    ehdr = EHDR.pack(ident, ET_CORE, EM_X86_64, 1, 0, EHDR.size, 0, 0, EHDR.size, PHDR.size, len(phdrs), 0, 0, 0)
    try:
        fd = lookup(k, -100, name, False).open(O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0o600)
    except (OSError, SyscallError):
        return False
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(ehdr + b"".join(phdrs) + notes)
            out.write(bytes(-(EHDR.size + PHDR.size * len(phdrs) + len(notes)) % PAGE))
            for vma, size in segments:
                for vpn in range(vma.start >> 12, (vma.start + size) >> 12):
                    frame = pages.get(vpn)
                    if frame is None:
                        out.seek(PAGE, os.SEEK_CUR)    # a page never touched: a hole (dump_skip)
                    else:
                        out.write(view[frame:frame + PAGE])
            out.truncate(offset)
            if limit != RLIM_INFINITY and out.tell() > limit:
                out.truncate(limit)          # dump_emit stops at the limit; the core still counts as dumped
    except OSError:
        return False
    return True
