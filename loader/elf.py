"""ELF64 header and program-header parsing (System V gABI, ch. 4-5; x86-64 psABI, ch. 4).

Only what loading needs: the file header and the program headers, read with ``struct`` so that
``hermipy run`` does not pay pyelftools' import (~37 ms); the analyser uses pyelftools.
"""
import os
import struct
from errno import EIO

from hermipy.errors import LoadError
from hermipy.layout import PAGE_SIZE

ET_EXEC, ET_DYN = 2, 3
EM_X86_64, EM_386, EM_AARCH64 = 62, 3, 183
PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_PHDR, PT_TLS = 1, 2, 3, 6, 7
PT_GNU_STACK = 0x6474E551
PF_X, PF_W, PF_R = 1, 2, 4
PATH_MAX = 4096
EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
PHDR = struct.Struct("<IIQQQQQQ")
MACHINES = {EM_386: "32-bit x86", EM_AARCH64: "AArch64", 40: "ARM", 8: "MIPS", 20: "PowerPC",
            21: "PowerPC64", 243: "RISC-V", 22: "S/390"}


class Segment:
    """One program header (Elf64_Phdr)."""

    __slots__ = ("type", "flags", "offset", "vaddr", "filesz", "memsz", "align")

    def __init__(self, type: int, flags: int, offset: int, vaddr: int, filesz: int, memsz: int, align: int):
        self.type, self.flags, self.offset, self.vaddr = type, flags, offset, vaddr
        self.filesz, self.memsz, self.align = filesz, memsz, align


class ElfImage:
    """A parsed executable or shared object, ready to map (plain class: ``dataclasses`` would import
    ``inspect`` on the run path)."""

    def __init__(self, path: str, type: int, entry: int, phoff: int, phentsize: int, phnum: int):
        self.path, self.type, self.entry = path, type, entry
        self.phoff, self.phentsize, self.phnum = phoff, phentsize, phnum
        self.segments: list[Segment] = []
        self.interpreter: str | None = None
        self.executable_stack = False

    @property
    def loads(self) -> list[Segment]:
        return [s for s in self.segments if s.type == PT_LOAD]

    @property
    def is_pie(self) -> bool:
        return self.type == ET_DYN


def parse_elf(path: str, data: bytes, file_size: int, read=None) -> ElfImage:
    """Validate the header and program headers (``data`` is the file's start, ``read(offset, size)`` reads
    what lies beyond it); LoadError says what is wrong. What execve refuses of a PT_LOAD comes later: one that
    cannot be mapped (out of range, p_filesz > p_memsz, offset and address not congruent) is the loader's to find
    past the point of no return, one reaching past the end of the file is mapped as Linux maps it (pages past
    the end are SIGBUS to touch; zeroing a bss start there fails: SIGSEGV), and no PT_LOAD at all is no error
    (the entry point is then unmapped)."""
    if len(data) < 4 or data[:4] != b"\x7fELF":
        raise LoadError(f"{path}: not an ELF executable", 126)
    if len(data) < EHDR.size:
        raise LoadError(f"{path}: truncated ELF header", 126)
    (ident, e_type, machine, _version, entry, phoff, _shoff, _flags, _ehsize,
     phentsize, phnum, _shentsize, _shnum, _shstrndx) = EHDR.unpack_from(data)
    # load_elf_binary's checks, in its order: e_type, e_machine (elf_check_arch; EI_CLASS, EI_DATA and the
    # versions are not looked at), then load_elf_phdrs: e_phentsize, at most ELF_MIN_ALIGN bytes of headers
    if e_type not in (ET_EXEC, ET_DYN):
        kind = {1: "a relocatable object", 4: "a core dump"}.get(e_type, f"ELF type {e_type}")
        raise LoadError(f"{path}: {kind}, not an executable", 126)
    if machine != EM_X86_64:
        what = MACHINES.get(machine) or ("big-endian" if ident[5] == 2 else "32-bit" if ident[4] == 1
                                         else f"machine {machine}")
        raise LoadError(f"{path}: {what} ELF: only x86-64 binaries are supported", 126)
    if phentsize != PHDR.size or phnum == 0 or phnum * PHDR.size > PAGE_SIZE:       # ELF_MIN_ALIGN
        raise LoadError(f"{path}: corrupt ELF program headers", 126)
    if phoff + phnum * phentsize > file_size:
        raise LoadError(f"{path}: truncated ELF (program headers beyond end of file)", 126)
    image = ElfImage(path, e_type, entry, phoff, phentsize, phnum)
    for i in range(phnum):
        p_type, p_flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, p_align = \
            PHDR.unpack_from(data, phoff + i * phentsize)
        image.segments.append(Segment(p_type, p_flags, p_offset, p_vaddr, p_filesz, p_memsz, p_align))
    interp = next((seg for seg in image.segments if seg.type == PT_INTERP), None)     # the first one counts
    if interp is not None:
        image.interpreter = _interpreter_path(path, interp, data, file_size, read)
    for seg in image.segments:
        if seg.type == PT_GNU_STACK:
            image.executable_stack = bool(seg.flags & PF_X)
    return image


def _interpreter_path(path: str, seg: Segment, data: bytes, file_size: int, read) -> str:
    """PT_INTERP as load_elf_binary reads it: 2..PATH_MAX bytes (ENOEXEC), all in the file (elf_read: EIO),
    NUL-terminated (ENOEXEC)."""
    if not 2 <= seg.filesz <= PATH_MAX:
        raise LoadError(f"{path}: corrupt ELF (PT_INTERP is not a NUL-terminated path)", 126)
    if seg.offset + seg.filesz > file_size:
        raise LoadError(f"{path}: truncated ELF (PT_INTERP beyond end of file)", 126, EIO)
    end = seg.offset + seg.filesz
    raw = data[seg.offset:end] if end <= len(data) or read is None else read(seg.offset, seg.filesz)
    if raw[-1:] != b"\0":
        raise LoadError(f"{path}: corrupt ELF (PT_INTERP is not a NUL-terminated path)", 126)
    return os.fsdecode(raw.split(b"\0", 1)[0])
