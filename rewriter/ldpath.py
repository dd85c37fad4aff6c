"""Find a program's shared libraries the way glibc's ld.so does (elf/dl-load.c _dl_map_object), but
through the guest's file-system view (host ``/`` or ``--root DIR``).

Order for a name without a slash: DT_RPATH of the requesting object and then of its requesters up to the
executable (only when the requester has no DT_RUNPATH), LD_LIBRARY_PATH, the requester's DT_RUNPATH,
/etc/ld.so.cache, then the default directories (unless DF_1_NODEFLIB). A candidate that is not an x86-64
ELF shared object is skipped, as ld.so skips it. ``$ORIGIN``, ``$LIB`` and ``$PLATFORM`` are expanded.
"""
import os
import struct
from errno import EACCES, ENOENT

from hermipy.rewriter.elf import DF_1_NODEFLIB, ElfFile, is_compatible
from hermipy.syscalls.errors import SyscallError
from hermipy.syscalls.vfs import FsView

DEFAULT_DIRS = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"]
LIB_DIR, PLATFORM = "lib/x86_64-linux-gnu", "x86_64"

# elf/dl-cache.h
CACHE_MAGIC_OLD = b"ld.so-1.7.0"
CACHE_MAGIC_NEW = b"glibc-ld.so.cache1.1"
FLAG_TYPE_MASK, FLAG_ELF_LIBC6 = 0x00FF, 0x0003
FLAG_REQUIRED_MASK, FLAG_X8664_LIB64 = 0xFF00, 0x0300
NEW_HEADER = struct.Struct("<20sII")          # magic+version, nlibs, len_strings (then flags, pad, ext...)
NEW_HEADER_SIZE = 48
NEW_ENTRY = struct.Struct("<iIIIQ")          # flags, key, value, osversion, hwcap
OLD_ENTRY_SIZE = 12
HWCAP_EXTENSION = 1 << 62                    # DL_CACHE_HWCAP_EXTENSION: a glibc-hwcaps subdirectory entry


def parse_ld_so_cache(data: bytes) -> dict[str, str]:
    """soname -> path for the x86-64 libc6 entries of an ld.so.cache (old+new or new format).

    The first entry for a name wins, preferring entries that are not glibc-hwcaps variants.
    """
    if data.startswith(CACHE_MAGIC_OLD):
        nlibs = struct.unpack_from("<I", data, 12)[0]
        start = 16 + nlibs * OLD_ENTRY_SIZE
        start = (start + 7) & ~7
        if not data.startswith(CACHE_MAGIC_NEW, start):
            return {}
    elif data.startswith(CACHE_MAGIC_NEW):
        start = 0
    else:
        return {}
    _magic, nlibs, _strlen = NEW_HEADER.unpack_from(data, start)
    result: dict[str, str] = {}
    hwcaps: dict[str, str] = {}

    def string(off: int) -> str:
        off += start
        end = data.find(b"\0", off)
        return data[off:end].decode("utf-8", "replace")
    base = start + NEW_HEADER_SIZE
    for i in range(nlibs):
        flags, key, value, _osv, hwcap = NEW_ENTRY.unpack_from(data, base + i * NEW_ENTRY.size)
        if flags & FLAG_TYPE_MASK != FLAG_ELF_LIBC6 or flags & FLAG_REQUIRED_MASK != FLAG_X8664_LIB64:
            continue
        target = hwcaps if hwcap & HWCAP_EXTENSION else result
        target.setdefault(string(key), string(value))
    for name, path in hwcaps.items():
        result.setdefault(name, path)
    return result


class LibraryResolver:
    """Resolve DT_NEEDED names to guest paths (and read the files) through an FsView."""

    def __init__(self, root: str | None = None, ld_library_path: str | None = None):
        self.fs = FsView(root)
        self.ld_library_path = [p for p in (ld_library_path or "").replace(";", ":").split(":") if p]
        self._cache: dict[str, str] | None = None
        self._open: list[int] = []             # fds behind the /proc/self/fd paths host_path handed out

    def __del__(self):
        for fd in self._open:
            os.close(fd)

    def host_path(self, guest_path: str) -> str:
        """A host path that opens the guest's file: the host's own path when the view is the host's, else
        /proc/self/fd/N of the file opened through the confined view (never a path the host walks again under
        the root). Raises SyscallError (ENOENT, ...) like the guest would see it."""
        target = self.fs.resolve(self.guest_name(guest_path))
        if target.missing or target.node is not None and not target.on_host:
            raise SyscallError(ENOENT if target.missing else EACCES)
        if target.dirfd is None:
            return target.host
        fd = target.open(os.O_RDONLY | os.O_CLOEXEC, 0)
        self._open.append(fd)
        return f"/proc/self/fd/{fd}"

    def guest_name(self, guest_path: str) -> str:
        """An absolute guest path (relative names are taken from the current directory)."""
        return self.fs.absolute(self.fs.cwd, guest_path)

    @property
    def ld_so_cache(self) -> dict[str, str]:
        if self._cache is None:
            try:
                with open(self.host_path("/etc/ld.so.cache"), "rb") as f:
                    self._cache = parse_ld_so_cache(f.read())
            except (OSError, SyscallError, struct.error):
                self._cache = {}
        return self._cache

    def _read_if_compatible(self, guest_path: str) -> bytes | None:
        try:
            with open(self.host_path(guest_path), "rb") as f:
                data = f.read()
        except (OSError, SyscallError):
            return None
        return data if is_compatible(data) else None

    def candidates(self, name: str, requester: ElfFile, chain: list[ElfFile]):
        """Guest paths ld.so would try for ``name`` requested by ``requester`` (chain: its requesters)."""
        if "/" in name:
            yield self._expand(name, requester)
            return
        if not requester.runpath:
            for obj in [requester, *chain]:
                for d in obj.rpath:
                    yield self._join(self._expand(d, obj), name)
        for d in self.ld_library_path:
            yield self._join(d, name)
        for d in requester.runpath:
            yield self._join(self._expand(d, requester), name)
        if requester.flags_1 & DF_1_NODEFLIB:
            return
        cached = self.ld_so_cache.get(name)
        if cached:
            yield cached
        for d in DEFAULT_DIRS:
            yield self._join(d, name)

    def find(self, name: str, requester: ElfFile, chain: list[ElfFile]) -> tuple[str, bytes] | None:
        """(guest path, file content) of the first acceptable candidate, or None (ld.so: not found)."""
        seen = set()
        for path in self.candidates(name, requester, chain):
            if path in seen:
                continue
            seen.add(path)
            data = self._read_if_compatible(path)
            if data is not None:
                return path, data
        return None

    @staticmethod
    def _join(directory: str, name: str) -> str:
        return directory.rstrip("/") + "/" + name if directory else name

    def _expand(self, text: str, obj: ElfFile) -> str:
        """Dynamic string tokens (ld.so(8)): $ORIGIN is the directory of the object that asks."""
        try:
            real = self.fs.canonical(self.guest_name(obj.path))
        except SyscallError:
            real = self.guest_name(obj.path)
        origin = os.path.dirname(real) or "/"
        for token, value in (("ORIGIN", origin), ("LIB", LIB_DIR), ("PLATFORM", PLATFORM)):
            text = text.replace("${" + token + "}", value).replace("$" + token, value)
        return text
