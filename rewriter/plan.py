"""Rewrite plans: the ``syscall`` sites of one ELF file that may be replaced by ``call rax``, cached by content.

``syscall`` is ``0f 05`` and ``call rax`` is ``ff d0``: both two bytes, so every site decoded as an
instruction is rewritable size-wise, and rax holds the syscall number at every real ``syscall`` (the
kernel ABI reads it from there), so a ``call rax`` lands at address ``nr`` (a trampoline page at 0, as in
zpoline). A site the sweep only reached after skipping undecodable bytes (data in code) is left out: a
mis-decoded ``0f 05`` must never be patched, and an unpatched site still traps as a plain ``syscall``.

Plans are small JSON files named by the SHA-256 of the file's content, in ``$XDG_CACHE_HOME/hermipy/plans``
(default ``~/.cache/hermipy/plans``). A second, tiny index ``by-stat/`` maps a file's identity (device,
inode, size, mtime and ctime, which no user can set back) to its digest, so loading the plan of an unchanged
file needs neither reading nor hashing it. ``load_cached_plan`` imports only os (json when a plan exists,
hashlib when it must hash), never capstone; ``build_plan`` sweeps the file (capstone) and writes the cache.
A file whose stat key is known but whose digest has no plan has no plan: the next run neither reads nor
hashes it either.

``SitePolicy`` is what ``hermipy run`` asks of a file's plan (see ``hermipy/kvm_backend.py`` ``_rewrite_site``),
and ``is_rewritten`` recognises the output of ``hermipy rewrite`` (a ``.hermipy.rewritten`` section).
"""
import os
import struct

PLAN_FORMAT = "hermipy-rewrite-plan"
PLAN_VERSION = 1
SYSCALL, CALL_RAX = b"\x0f\x05", b"\xff\xd0"
REWRITTEN_SECTION = ".hermipy.rewritten"      # added by `hermipy rewrite`: the file's sites are done


class Site:
    """One rewritable ``syscall``: link-time virtual address, file offset, number (None if not static)."""

    __slots__ = ("address", "offset", "nr", "kind", "rax_is_nr")

    def __init__(self, address: int, offset: int, nr: int | None, kind: str, rax_is_nr: bool = True):
        self.address, self.offset, self.nr, self.kind, self.rax_is_nr = address, offset, nr, kind, rax_is_nr

    def __repr__(self) -> str:
        return f"Site({self.address:#x}, offset={self.offset:#x}, nr={self.nr}, kind={self.kind!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Site) and self.as_row() == other.as_row()

    def as_row(self) -> list:
        return [self.address, self.offset, self.nr, self.kind, int(self.rax_is_nr)]


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "hermipy", "plans")


def _digest(data: bytes) -> str:
    import hashlib
    return hashlib.sha256(data).hexdigest()


def _stat_key(path: str) -> str | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    from hermipy.syscalls.vfs import LOWER
    if LOWER is not None and LOWER.holds(st):
        # an image file (hermipy/image.py): cached, never written; each run's hard link to it changes its ctime
        return f"{st.st_dev:x}-{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}-image"
    return f"{st.st_dev:x}-{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}-{st.st_ctime_ns:x}"


def _read_small(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _content(path_or_bytes) -> bytes:
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return bytes(path_or_bytes)
    with open(path_or_bytes, "rb") as f:
        return f.read()


def plan_path(sha256: str) -> str:
    return os.path.join(cache_dir(), sha256 + ".json")


def load_cached_plan(path_or_bytes) -> list[Site] | None:
    """The cached plan for this file's content, or None (no plan yet, or an unusable cache file)."""
    if isinstance(path_or_bytes, str):
        key = _stat_key(path_or_bytes)
        known = _read_small(os.path.join(cache_dir(), "by-stat", key)) if key else None
        if known:                                   # unchanged since it was hashed: no need to read it
            raw = _read_small(plan_path(known.decode()))
            if raw is None:
                return None                         # hashed before, and no plan was made for it since
            sites = _parse(raw, known.decode())
            if sites is not None:
                return sites
    data = _content(path_or_bytes)
    digest = _digest(data)
    sites = _parse(_read_small(plan_path(digest)), digest)
    if sites is not None and any(data[s.offset:s.offset + 2] != SYSCALL for s in sites):
        sites = None                                # not this file's syscalls after all: never trust it
    if isinstance(path_or_bytes, str):
        _remember_stat(path_or_bytes, digest)
    return sites


def _parse(raw: bytes | None, digest: str) -> list[Site] | None:
    if raw is None:
        return None
    import json                                     # only when there is a plan to read (~1 ms to import)
    try:
        doc = json.loads(raw)
        if doc.get("format") != PLAN_FORMAT or doc.get("version") != PLAN_VERSION or doc.get("sha256") != digest:
            return None
        return [Site(a, o, n, k, bool(r)) for a, o, n, k, r in doc["sites"]]
    except (ValueError, AttributeError, KeyError, TypeError):
        return None


def _remember_stat(path: str, digest: str) -> None:
    key = _stat_key(path)
    if key:
        _write_atomic(os.path.join(cache_dir(), "by-stat", key), digest)


def _write_atomic(target: str, text: str) -> bool:
    """Write ``target`` whole or not at all; never create a home directory that does not exist
    (e.g. HOME=/nonexistent): then nothing is cached."""
    if not os.environ.get("XDG_CACHE_HOME") and not os.path.isdir(os.path.expanduser("~")):
        return False
    tmp = f"{target}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, target)
        return True
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False


def sites_from_scan(result) -> list[Site]:
    """Rewritable sites of a ``scan.ScanResult``."""
    return [Site(s.address, s.offset, s.nr, s.kind) for s in result.sites
            if s.offset is not None and not s.after_resync and not s.rewritten]


def build_plan(path_or_bytes, name: str | None = None, write: bool = True) -> list[Site]:
    """Sweep the file (capstone), store its plan in the cache (unless ``write`` is false), return it."""
    from hermipy.rewriter.elf import ElfFile
    from hermipy.rewriter.scan import scan
    data = _content(path_or_bytes)
    label = name or (path_or_bytes if isinstance(path_or_bytes, str) else "<bytes>")
    sites = sites_from_scan(scan(ElfFile(label, data)))
    if write:
        digest = store_plan(data, sites)
        if digest and isinstance(path_or_bytes, str):
            _remember_stat(path_or_bytes, digest)
    return sites


def store_plan(data: bytes, sites: list[Site]) -> str | None:
    """Write the plan atomically; returns its digest, or None when the cache cannot be written (no error)."""
    import json
    digest = _digest(data)
    doc = {"format": PLAN_FORMAT, "version": PLAN_VERSION, "sha256": digest, "size": len(data),
           "fields": ["address", "offset", "nr", "kind", "rax_is_nr"],
           "sites": [s.as_row() for s in sites]}
    return digest if _write_atomic(plan_path(digest), json.dumps(doc, separators=(",", ":"))) else None


def is_rewritten(path: str) -> bool:
    """Whether the ELF file at ``path`` has a ``.hermipy.rewritten`` section (``hermipy rewrite`` output).

    Reads the section headers and their name table with a few ``pread``s (ELF-64 little-endian layout,
    System V gABI ch. 4), nothing else."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        head = os.pread(fd, 64, 0)
        if len(head) < 64 or head[:5] != b"\x7fELF\x02":
            return False
        shoff, = struct.unpack_from("<Q", head, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", head, 0x3A)
        if not shoff or shentsize < 64 or not 0 < shstrndx < shnum <= 4096:
            return False
        table = os.pread(fd, shentsize * shnum, shoff)
        if len(table) < shentsize * shnum:
            return False
        str_off, str_size = struct.unpack_from("<QQ", table, shentsize * shstrndx + 0x18)
        names = os.pread(fd, min(str_size, 1 << 20), str_off)
        wanted = REWRITTEN_SECTION.encode() + b"\0"
        return any(names[n:n + len(wanted)] == wanted
                   for n in (struct.unpack_from("<I", table, i * shentsize)[0] for i in range(shnum)))
    except (OSError, OverflowError, struct.error):     # offsets past what a file offset can be: not ours
        return False
    finally:
        os.close(fd)


# The plans that runs in this process (or the process it was forked from: a shell's children exec what it runs)
# have read, by cache directory and _stat_key (a file changed since has another key).
_run_plans: dict[tuple[str, str], list[Site] | None] = {}


def _plan_for_run(path: str) -> list[Site] | None:
    key = _stat_key(path)
    if key is None:
        return load_cached_plan(path)
    memo = (cache_dir(), key)
    if memo not in _run_plans:
        plan = load_cached_plan(path)
        if plan is None:
            return None                  # (a plan may be made later: not remembered)
        _run_plans[memo] = plan
    return _run_plans[memo]


class SitePolicy:
    """Which trapped ``syscall`` sites of one mapped file ``hermipy run`` may rewrite in memory.

    None of a ``hermipy rewrite`` output (its sites were chosen when it was written; those left as
    ``syscall`` stay so). Otherwise every site except those the file's cached plan marks as shared by
    several numbers (number not statically known: the syscall() wrapper), because a shared site may carry
    a number that the trap path answers faster than a rewritten site can (see KvmCpu._rewrite_site).
    Without a cached plan nothing is known to be shared: every site qualifies.
    """

    __slots__ = ("rewritten", "shared", "known")

    def __init__(self, path: str):
        self.rewritten = is_rewritten(path)
        plan = None if self.rewritten else _plan_for_run(path)
        self.shared = frozenset(s.offset for s in plan if s.nr is None) if plan else frozenset()
        self.known = {s.offset: s.nr for s in plan if s.kind == "known" and s.rax_is_nr} if plan else None

    def may_rewrite(self, offset: int) -> bool:
        return not self.rewritten and offset not in self.shared

    def may_trampoline(self, offset: int, nr: int) -> bool:
        """Whether the site may jump to a trampoline answering ``nr`` (``rewriter.trampoline``): never in a
        ``hermipy rewrite`` output; with a plan, only where the plan resolved the site to ``nr``; without
        one, the wrapper's own ``mov eax, nr`` (checked by the caller) decides."""
        if self.rewritten:
            return False
        return self.known is None or self.known.get(offset) == nr
