"""What the analyser needs from an ELF64 file beyond loading: sections, symbols, the dynamic section.

Read with ``struct`` from the whole file (System V gABI ch. 4 "Sections", "Symbol Table"; ch. 5 "Dynamic
Section"); validation of the header and program headers is the loader's ``parse_elf``, so ``hermipy
analyze`` rejects exactly what ``hermipy run`` rejects, with the same message.
"""
import bisect
import struct

from hermipy.errors import LoadError
from hermipy.loader.elf import (EHDR, ET_DYN, ET_EXEC, PF_X, PT_DYNAMIC, PT_INTERP, PT_LOAD, ElfImage,
                                parse_elf)

SHDR = struct.Struct("<IIQQQQIIQQ")
SYM = struct.Struct("<IBBHQQ")
DYN = struct.Struct("<qQ")
SHT_SYMTAB, SHT_DYNSYM, SHT_NOBITS = 2, 11, 8
SHF_EXECINSTR = 0x4
STT_FUNC, STT_GNU_IFUNC = 2, 10
STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
DT_NULL, DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_SONAME, DT_RPATH, DT_RUNPATH = 0, 1, 5, 10, 14, 15, 29
DT_FLAGS_1 = 0x6FFFFFFB
DF_1_NODEFLIB, DF_1_PIE = 0x800, 0x08000000

KIND_STATIC, KIND_STATIC_PIE, KIND_DYNAMIC, KIND_DYNAMIC_PIE, KIND_SHARED = (
    "static", "static-pie", "dynamic", "dynamic-pie", "shared-library")


class Section:
    __slots__ = ("name", "type", "flags", "addr", "offset", "size")

    def __init__(self, name, type_, flags, addr, offset, size):
        self.name, self.type, self.flags, self.addr, self.offset, self.size = name, type_, flags, addr, offset, size


class Symbols:
    """Function symbols from .symtab and .dynsym, for "which function holds this address"."""

    def __init__(self, entries: list[tuple[int, int, str, int]]):
        # (address, size, name, rank): at one address the best-ranked name wins (global, fewest underscores)
        best: dict[int, tuple] = {}
        for addr, size, name, rank in entries:
            key = (rank, name.startswith("_") and len(name) - len(name.lstrip("_")), len(name), name)
            old = best.get(addr)
            if old is None or key < old[0]:
                best[addr] = (key, size, name)
        self.addrs = sorted(best)
        self.sizes = [best[a][1] for a in self.addrs]
        self.names = [best[a][2] for a in self.addrs]
        self.by_name = {name: addr for addr, _size, name, _rank in entries}

    def __len__(self) -> int:
        return len(self.addrs)

    def lookup(self, addr: int) -> tuple[str | None, int]:
        """(nearest preceding function, offset into it); (None, 0) when there is none."""
        i = bisect.bisect_right(self.addrs, addr) - 1
        if i < 0:
            return None, 0
        return self.names[i], addr - self.addrs[i]


class ElfFile:
    """An x86-64 ELF executable or shared object, read whole (analysis only: never for ``hermipy run``)."""

    def __init__(self, path: str, data: bytes):
        self.path, self.data = path, data
        self.image: ElfImage = parse_elf(path, data, len(data))
        self.sections = self._sections()
        self.symbols = self._symbols()
        self.needed: list[str] = []
        self.rpath: list[str] = []
        self.runpath: list[str] = []
        self.soname: str | None = None
        self.flags_1 = 0
        self._dynamic()

    # ---- layout -------------------------------------------------------------------------------------
    @property
    def interpreter(self) -> str | None:
        return self.image.interpreter

    @property
    def kind(self) -> str:
        interp = self.image.interpreter is not None
        if self.image.type == ET_EXEC:
            return KIND_DYNAMIC if interp else KIND_STATIC
        if interp:
            return KIND_DYNAMIC_PIE
        return KIND_STATIC_PIE if self.flags_1 & DF_1_PIE or not self.soname else KIND_SHARED

    def offset_of(self, vaddr: int) -> int | None:
        """File offset of a virtual address inside a PT_LOAD's file-backed bytes."""
        for seg in self.image.loads:
            if seg.vaddr <= vaddr < seg.vaddr + seg.filesz:
                return seg.offset + vaddr - seg.vaddr
        return None

    def exec_segments(self):
        return [s for s in self.image.loads if s.flags & PF_X and s.filesz]

    def code_ranges(self) -> list[tuple[str, int, int]]:
        """(name, vaddr, size) of the code to sweep: executable sections inside PF_X segments, or the
        PF_X segments themselves when the file has no section headers."""
        segs = self.exec_segments()
        ranges = []
        for sec in self.sections:
            if sec.flags & SHF_EXECINSTR and sec.type != SHT_NOBITS and sec.size:
                if any(s.offset <= sec.offset and sec.offset + sec.size <= s.offset + s.filesz for s in segs):
                    ranges.append((sec.name, sec.addr, sec.size))
        if not ranges:
            ranges = [(f"PT_LOAD[{i}]", s.vaddr, s.filesz) for i, s in enumerate(segs)]
        return sorted(ranges, key=lambda r: r[1])

    def bytes_at(self, vaddr: int, size: int) -> bytes:
        off = self.offset_of(vaddr)
        if off is None:
            return b""
        return self.data[off:off + size]

    # ---- parsing ------------------------------------------------------------------------------------
    def _sections(self) -> list[Section]:
        data = self.data
        fields = EHDR.unpack_from(data)
        shoff, shentsize, shnum, shstrndx = fields[6], fields[11], fields[12], fields[13]
        if not shoff or shentsize != SHDR.size or shoff + shnum * shentsize > len(data):
            return []
        raw = [SHDR.unpack_from(data, shoff + i * shentsize) for i in range(shnum)]
        names_off = raw[shstrndx][4] if shstrndx < shnum else 0
        sections = []
        for name, type_, flags, addr, offset, size, _link, _info, _align, _entsize in raw:
            sections.append(Section(self._cstr(names_off + name) if names_off else "", type_, flags, addr,
                                    offset, size))
        self._raw_sections = raw
        return sections

    def _cstr(self, offset: int) -> str:
        end = self.data.find(b"\0", offset)
        return self.data[offset:end if end >= 0 else len(self.data)].decode("utf-8", "replace")

    def _symbols(self) -> Symbols:
        entries = []
        data = self.data
        for i, sec in enumerate(self.sections):
            if sec.type not in (SHT_SYMTAB, SHT_DYNSYM) or sec.offset + sec.size > len(data):
                continue
            link = self._raw_sections[i][6]
            if link >= len(self.sections):
                continue
            stroff = self.sections[link].offset
            for name, info, _other, shndx, value, size in SYM.iter_unpack(
                    data[sec.offset:sec.offset + sec.size - sec.size % SYM.size]):
                if info & 0xF not in (STT_FUNC, STT_GNU_IFUNC) or not value or not shndx or not name:
                    continue
                bind = info >> 4
                rank = 0 if bind == STB_GLOBAL else 1 if bind == STB_WEAK else 2
                entries.append((value, size, self._cstr(stroff + name), rank))
        return Symbols(entries)

    def _dynamic(self) -> None:
        dyn = [s for s in self.image.segments if s.type == PT_DYNAMIC]
        if not dyn:
            return
        seg = dyn[0]
        raw = self.data[seg.offset:seg.offset + seg.filesz]
        entries = []
        for tag, val in DYN.iter_unpack(raw[:len(raw) - len(raw) % DYN.size]):
            if tag == DT_NULL:
                break
            entries.append((tag, val))
        strtab = next((self.offset_of(v) for t, v in entries if t == DT_STRTAB), None)
        if strtab is None:
            return

        def string(off: int) -> str:
            return self._cstr(strtab + off)
        for tag, val in entries:
            if tag == DT_NEEDED:
                self.needed.append(string(val))
            elif tag == DT_RPATH:
                self.rpath.extend(p for p in string(val).split(":") if p)
            elif tag == DT_RUNPATH:
                self.runpath.extend(p for p in string(val).split(":") if p)
            elif tag == DT_SONAME:
                self.soname = string(val)
            elif tag == DT_FLAGS_1:
                self.flags_1 = val


def is_compatible(data: bytes) -> bool:
    """Would ld.so accept this file as an x86-64 library? (ELF64, little-endian, EM_X86_64, ET_DYN)."""
    if len(data) < EHDR.size or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return False
    fields = EHDR.unpack_from(data)
    return fields[2] == 62 and fields[1] == ET_DYN


def load(path: str, host_path: str) -> ElfFile:
    """Read and parse ``host_path`` (named ``path`` in messages); LoadError when it is not a usable ELF."""
    with open(host_path, "rb") as f:
        data = f.read()
    try:
        return ElfFile(path, data)
    except (struct.error, IndexError) as err:
        raise LoadError(f"{path}: corrupt ELF ({err})", 126) from None


__all__ = ["ElfFile", "Section", "Symbols", "is_compatible", "load", "PT_LOAD", "PT_INTERP"]
