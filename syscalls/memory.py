"""Guest memory: physical frames in one host mapping, x86-64 page tables, and the VMA list.

Pages are demand-allocated: ``mmap`` only records a VMA; the first touch faults (or the kernel's own
access populates it), and ``populate`` fills a small window of pages around the fault from zeroes or
from the mapped file. Page-table entries follow the Intel SDM vol. 3, 4.5 (4-level paging).
"""
import bisect
import ctypes
import mmap
import os
import threading
from errno import EFAULT, EINVAL, ENOMEM, EEXIST

from hermipy.layout import FIRST_FRAME, MMAP_BOTTOM, MMAP_TOP, PAGE_SIZE, USER_TOP, page_up
from hermipy.syscalls.errors import SyscallError

PTE_P, PTE_W, PTE_U, PTE_A, PTE_D = 1, 2, 4, 0x20, 0x40
PTE_NX = 1 << 63
PTE_ADDR = 0x000FFFFFFFFFF000
PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS = 0x1, 0x2, 0x10, 0x20
MAP_GROWSDOWN, MAP_NORESERVE, MAP_FIXED_NOREPLACE = 0x100, 0x4000, 0x100000
FAULT_AROUND_PAGES = 16          # file-backed pages read around a fault
ANON_FAULT_AROUND_PAGES = 64     # zero pages mapped around a fault (an aligned window within one leaf table)
_MAP_NORESERVE_HOST = 0x4000


_commit_limit = 0


def commit_limit() -> int:
    """The host's total RAM plus swap in bytes (read once)."""
    global _commit_limit
    if not _commit_limit:
        swap = 0
        try:
            with open("/proc/meminfo", "rb") as f:
                for line in f:
                    if line.startswith(b"SwapTotal:"):
                        swap = int(line.split()[1]) * 1024
        except OSError:
            pass
        _commit_limit = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") + swap
    return _commit_limit


class PhysicalMemory:
    """Guest RAM: one anonymous host mapping, handed out in 4 KiB frames (zeroed before reuse)."""

    def __init__(self, size: int):
        self.size = size
        self.buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_NORESERVE_HOST)
        self.view = memoryview(self.buf)
        self.words = self.view.cast("Q")
        self.address = ctypes.addressof(ctypes.c_char.from_buffer(self.buf))
        self.top = FIRST_FRAME                 # the lowest frame never handed out
        self._free: list[int] = []

    def alloc(self) -> int:
        if self._free:
            return self._free.pop()
        frame = self.top
        if frame + PAGE_SIZE > self.size:
            raise SyscallError(ENOMEM)
        self.top = frame + PAGE_SIZE
        return frame

    def free(self, frame: int) -> None:
        ctypes.memset(self.address + frame, 0, PAGE_SIZE)
        self._free.append(frame)

    def used_bytes(self) -> int:
        return self.top - FIRST_FRAME - len(self._free) * PAGE_SIZE


def _locked(method):
    """Run an AddressSpace method under its lock (several guest threads share one address space)."""
    def locked(self, *args, **kwargs):
        with self.lock:
            return method(self, *args, **kwargs)
    locked.__name__, locked.__doc__ = method.__name__, method.__doc__
    return locked


class PageTable:
    """A 4-level x86-64 page table living in guest physical memory."""

    def __init__(self, ram: PhysicalMemory):
        self.ram = ram
        self.words = ram.words
        self.root = ram.alloc()

    def _leaf_slot(self, va: int, create: bool) -> int:
        """Index (in 8-byte words) of the PTE for va, or -1 when a level is missing and create is False."""
        words, table = self.words, self.root
        for shift in (39, 30, 21):
            slot = (table >> 3) + ((va >> shift) & 511)
            entry = words[slot]
            if entry & PTE_P:
                table = entry & PTE_ADDR
            elif create:
                table = self.ram.alloc()
                words[slot] = table | PTE_P | PTE_W | PTE_U
            else:
                return -1
        return (table >> 3) + ((va >> 12) & 511)

    def leaf_slot(self, va: int) -> int:
        """Index (in 8-byte words of RAM) of the PTE for va, creating the upper levels as needed."""
        return self._leaf_slot(va, True)

    def set(self, va: int, pte: int) -> None:
        self.words[self._leaf_slot(va, True)] = pte

    def get(self, va: int) -> int:
        slot = self._leaf_slot(va, False)
        return self.words[slot] if slot >= 0 else 0

    def clear(self, va: int) -> int:
        slot = self._leaf_slot(va, False)
        if slot < 0:
            return 0
        old = self.words[slot]
        self.words[slot] = 0
        return old


def pte_flags(prot: int) -> int:
    """PTE permission bits for a PROT_* set (PROT_NONE pages are simply not present)."""
    if not prot:
        return 0
    flags = PTE_P | PTE_U
    if prot & PROT_WRITE:
        flags |= PTE_W
    if not prot & PROT_EXEC:
        flags |= PTE_NX
    return flags


class MappedFile:
    """A host file kept open for as long as a mapping of it exists."""

    __slots__ = ("fd", "path", "dev", "inode")

    def __init__(self, host_fd: int, path: str):
        self.fd = os.dup(host_fd)
        self.path = path
        st = os.fstat(self.fd)
        self.dev, self.inode = st.st_dev, st.st_ino

    def __del__(self):
        try:
            os.close(self.fd)
        except OSError:
            pass


class Vma:
    """One virtual memory area: [start, end) with one protection and one backing (mm/mmap.c)."""

    __slots__ = ("start", "end", "prot", "flags", "file", "offset", "name")

    def __init__(self, start, end, prot, flags, file=None, offset=0, name=""):
        self.start, self.end, self.prot, self.flags = start, end, prot, flags
        self.file, self.offset, self.name = file, offset, name

    def split_at(self, addr: int) -> "Vma":
        """Cut at addr: self keeps [start, addr), the returned VMA is [addr, end)."""
        tail = Vma(addr, self.end, self.prot, self.flags, self.file,
                   self.offset + (addr - self.start) if self.file else 0, self.name)
        self.end = addr
        return tail

    @property
    def shared(self) -> bool:
        return bool(self.flags & MAP_SHARED)


class AddressSpace:
    """The guest's virtual memory: VMAs, the page table and the frames behind present pages."""

    def __init__(self, ram: PhysicalMemory):
        self.ram = ram
        self.view = ram.view
        self.page_table = PageTable(ram)
        self.vmas: list[Vma] = []
        self._starts: list[int] = []
        self.frames: dict[int, int] = {}       # virtual page number -> physical frame
        self.cpu = None                         # set once the backend exists (TLB/code invalidation)
        self.lock = threading.RLock()           # guards the VMAs, page table and frames (the mmap_lock)
        self.brk_start = self.brk = 0           # the heap (brk(2)) of this address space
        self.membarrier_state = 0               # membarrier registrations: a fork copies them, execve drops them

    # -- VMA bookkeeping -------------------------------------------------------------------------
    def _reindex(self) -> None:
        self.vmas.sort(key=lambda v: v.start)
        self._starts = [v.start for v in self.vmas]

    def find(self, addr: int) -> Vma | None:
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0 and addr < self.vmas[i].end:
            return self.vmas[i]
        return None

    def _overlapping(self, start: int, end: int) -> list[Vma]:
        i = max(bisect.bisect_right(self._starts, start) - 1, 0)
        out = []
        for vma in self.vmas[i:]:
            if vma.start >= end:
                break
            if vma.end > start:
                out.append(vma)
        return out

    def _isolate(self, start: int, end: int) -> list[Vma]:
        """Split VMAs so that [start, end) is covered by whole VMAs; return those."""
        changed = False
        for vma in self._overlapping(start, end):
            if vma.start < start:
                vma = vma.split_at(start)          # continue with the part inside the range
                self.vmas.append(vma)
                changed = True
            if vma.end > end:
                self.vmas.append(vma.split_at(end))
                changed = True
        if changed:
            self._reindex()
        return self._overlapping(start, end)

    def is_free(self, start: int, end: int) -> bool:
        return not self._overlapping(start, end)

    def find_free(self, length: int, top: int = MMAP_TOP) -> int:
        """Top-down search for a gap of length bytes below top (mm/mmap.c unmapped_area_topdown)."""
        candidate_end = top
        for vma in reversed(self.vmas):
            if vma.start >= candidate_end:
                continue
            if vma.end <= candidate_end - length:
                return candidate_end - length
            candidate_end = min(candidate_end, vma.start)
        if candidate_end - length >= MMAP_BOTTOM:
            return candidate_end - length
        raise SyscallError(ENOMEM)

    # -- mapping operations ----------------------------------------------------------------------
    @staticmethod
    def check_commit(length: int) -> None:
        """Overcommit heuristic (mm/util.c __vm_enough_memory, vm.overcommit_memory=0): one request larger
        than the host's RAM plus swap fails with ENOMEM, as it would natively."""
        if length > commit_limit():
            raise SyscallError(ENOMEM)

    @_locked
    def map(self, addr: int, length: int, prot: int, flags: int, file: MappedFile | None = None,
            offset: int = 0, name: str = "") -> int:
        """mmap(2) placement and VMA creation; pages arrive on first touch."""
        if length <= 0:
            raise SyscallError(EINVAL)
        length = page_up(length)
        if prot & PROT_WRITE and not flags & MAP_NORESERVE and (file is None or not flags & MAP_SHARED):
            self.check_commit(length)
        if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE):
            if addr % PAGE_SIZE or addr + length > USER_TOP or addr < MMAP_BOTTOM and addr != 0:
                raise SyscallError(EINVAL)
            if flags & MAP_FIXED_NOREPLACE and not flags & MAP_FIXED and not self.is_free(addr, addr + length):
                raise SyscallError(EEXIST)
            self.unmap(addr, length)
        elif addr and addr % PAGE_SIZE == 0 and MMAP_BOTTOM <= addr and addr + length <= USER_TOP \
                and self.is_free(addr, addr + length):
            pass
        else:
            addr = self.find_free(length)
        self.vmas.append(Vma(addr, addr + length, prot, flags, file, offset, name))
        self._reindex()
        return addr

    @_locked
    def unmap(self, addr: int, length: int) -> None:
        """munmap(2): drop VMAs and free their frames (writing back shared file pages first)."""
        end = addr + page_up(length)
        doomed = self._isolate(addr, end)
        if not doomed:
            return
        for vma in doomed:
            if vma.shared and vma.file:
                self._write_back(vma)
            if vma.prot & PROT_EXEC and self.cpu:
                self.cpu.invalidate_code(vma.start, vma.end)
            self._drop_pages(vma.start, vma.end)
            self.vmas.remove(vma)
        self._reindex()
        if self.cpu:
            self.cpu.flush_tlb()

    def _drop_pages(self, start: int, end: int) -> None:
        frames, pt, ram = self.frames, self.page_table, self.ram
        if (end - start) // PAGE_SIZE > len(frames):
            vpns = [v for v in frames if start >> 12 <= v < end >> 12]
        else:
            vpns = [v for v in range(start >> 12, end >> 12) if v in frames]
        for vpn in vpns:
            pt.clear(vpn << 12)
            ram.free(frames.pop(vpn))

    @_locked
    def protect(self, addr: int, length: int, prot: int) -> None:
        """mprotect(2): every page of the range must be mapped (else ENOMEM)."""
        end = addr + page_up(length)
        if addr % PAGE_SIZE:
            raise SyscallError(EINVAL)
        self._require_mapped(addr, end)
        flags = pte_flags(prot)
        frames, pt = self.frames, self.page_table
        for vma in self._isolate(addr, end):
            if vma.prot & PROT_EXEC and not prot & PROT_EXEC and self.cpu:
                self.cpu.invalidate_code(vma.start, vma.end)
            vma.prot = prot
            for vpn in range(vma.start >> 12, vma.end >> 12):
                frame = frames.get(vpn)
                if frame is not None:
                    if flags:
                        pt.set(vpn << 12, frame | flags)
                    else:
                        pt.clear(vpn << 12)       # PROT_NONE: contents kept, page not present
        if self.cpu:
            self.cpu.flush_tlb()

    def _require_mapped(self, start: int, end: int) -> None:
        cursor = start
        for vma in self._overlapping(start, end):
            if vma.start > cursor:
                raise SyscallError(ENOMEM)
            cursor = vma.end
        if cursor < end:
            raise SyscallError(ENOMEM)

    @_locked
    def remap(self, old: int, old_len: int, new_len: int, may_move: bool, fixed_to: int | None) -> int:
        """mremap(2): shrink in place, grow in place if the gap allows, else move the pages (no copy)."""
        old_len, new_len = page_up(old_len), page_up(new_len)
        if old % PAGE_SIZE or new_len == 0:
            raise SyscallError(EINVAL)
        vma = self.find(old)
        if vma is None or old + old_len > vma.end:
            raise SyscallError(EFAULT)
        if new_len > old_len and vma.prot & PROT_WRITE and not vma.flags & MAP_NORESERVE and \
                (vma.file is None or not vma.shared):
            self.check_commit(new_len - old_len)
        if fixed_to is None:
            if new_len <= old_len:
                self.unmap(old + new_len, old_len - new_len)
                return old
            if self.is_free(old + old_len, old + new_len) and old + new_len <= USER_TOP:
                self._isolate(old, old + old_len)
                self.find(old).end = old + new_len
                self._reindex()
                return old
            if not may_move:
                raise SyscallError(ENOMEM)
            target = self.find_free(new_len)
        else:
            target = fixed_to
            self.unmap(target, new_len)
        moving = self._isolate(old, old + old_len)[0]
        delta = target - old
        frames, pt = self.frames, self.page_table
        flags = pte_flags(moving.prot)
        for vpn in range(old >> 12, (old + min(old_len, new_len)) >> 12):
            frame = frames.pop(vpn, None)
            if frame is not None:
                pt.clear(vpn << 12)
                frames[vpn + (delta >> 12)] = frame
                if flags:
                    pt.set((vpn << 12) + delta, frame | flags)
        self._drop_pages(old + min(old_len, new_len), old + old_len)
        self.vmas.remove(moving)
        moving.start, moving.end = target, target + new_len
        self.vmas.append(moving)
        self._reindex()
        if self.cpu:
            self.cpu.flush_tlb()
        return target

    @_locked
    def discard(self, addr: int, length: int) -> None:
        """madvise(MADV_DONTNEED): private pages read back as zero (or the file's contents)."""
        end = addr + page_up(length)
        for vma in self._overlapping(addr, end):
            if not vma.shared:
                self._drop_pages(max(addr, vma.start), min(end, vma.end))
        if self.cpu:
            self.cpu.flush_tlb()

    @_locked
    def sync(self, addr: int, length: int) -> None:
        """msync(2): write dirty pages of shared file mappings back to the file."""
        end = addr + page_up(length)
        self._require_mapped(addr, end)
        for vma in self._overlapping(addr, end):
            if vma.shared and vma.file:
                self._write_back(vma)

    @_locked
    def sync_all(self) -> None:
        for vma in self.vmas:
            if vma.shared and vma.file:
                self._write_back(vma)

    def _write_back(self, vma: Vma) -> None:
        size = os.fstat(vma.file.fd).st_size
        for vpn in range(vma.start >> 12, vma.end >> 12):
            frame = self.frames.get(vpn)
            if frame is None:
                continue
            pte = self.page_table.get(vpn << 12)
            if not pte & PTE_D:
                continue
            file_off = vma.offset + (vpn << 12) - vma.start
            if file_off >= size:
                continue
            n = min(PAGE_SIZE, size - file_off)
            os.pwrite(vma.file.fd, self.view[frame:frame + n], file_off)
            self.page_table.set(vpn << 12, pte & ~PTE_D)

    def residency(self, addr: int, length: int) -> bytes:
        """mincore(2) vector: 1 for each page currently backed by a frame."""
        end = addr + page_up(length)
        self._require_mapped(addr, end)
        return bytes(1 if v in self.frames else 0 for v in range(addr >> 12, end >> 12))

    # -- demand paging ---------------------------------------------------------------------------
    @_locked
    def populate(self, addr: int, write: bool = False, around: int = FAULT_AROUND_PAGES) -> bool:
        """Back the page at addr (and neighbours in the same VMA). False if the access is not allowed."""
        vma = self.find(addr)
        if vma is None or not vma.prot or (write and not vma.prot & PROT_WRITE):
            return False
        vpn = addr >> 12
        if vpn in self.frames:
            frame = self.frames[vpn]
            if self.page_table.get(addr) & PTE_P:
                return False                      # present: this was a protection fault
            self.page_table.set(addr, frame | pte_flags(vma.prot))
            return True
        if vma.file is None:
            around = ANON_FAULT_AROUND_PAGES
        first = max(vma.start >> 12, vpn & ~(around - 1))
        last = min(vma.end >> 12, (vpn & ~(around - 1)) + around)
        flags = pte_flags(vma.prot)
        if vma.file is None:
            self._fill_anonymous(first, last, flags)
            return True
        for page in range(first, last):
            if page not in self.frames:
                self._fill(vma, page, flags)
        return True

    def _fill_anonymous(self, first: int, last: int, flags: int) -> None:
        """Back the missing pages of [first, last) with zero frames: one page-table walk for the window
        (it lies in one 512-entry leaf table), so a fault costs the exit rather than Python per page."""
        frames, alloc, words = self.frames, self.ram.alloc, self.ram.words
        leaf = self.page_table.leaf_slot(first << 12) - first
        for page in range(first, last):
            if page in frames:
                continue
            frame = alloc()
            frames[page] = frame
            if words[leaf + page] & PTE_P:            # never expected; the backend's set sees the change
                self.page_table.set(page << 12, frame | flags)
            else:
                words[leaf + page] = frame | flags

    def _fill(self, vma: Vma, vpn: int, flags: int) -> None:
        frame = self.ram.alloc()
        if vma.file is not None:
            file_off = vma.offset + (vpn << 12) - vma.start
            try:
                os.preadv(vma.file.fd, [self.view[frame:frame + PAGE_SIZE]], file_off)
            except OSError:
                pass
        self.frames[vpn] = frame
        self.page_table.set(vpn << 12, frame | flags)

    # -- kernel access to guest memory -----------------------------------------------------------
    @_locked
    def _frame_for(self, vpn: int, write: bool) -> int:
        frame = self.frames.get(vpn)
        if frame is not None:
            vma = self.find(vpn << 12)
            if vma is not None and vma.prot and (not write or vma.prot & PROT_WRITE):
                return frame
            raise SyscallError(EFAULT)
        if not self.populate(vpn << 12, write):
            raise SyscallError(EFAULT)
        return self.frames[vpn]

    def host_address(self, addr: int, write: bool = False) -> int:
        """The host address of the guest byte at ``addr`` (for a host futex on a guest word); EFAULT."""
        return self.ram.address + self._frame_for(addr >> 12, write) + (addr & 0xFFF)

    def read(self, addr: int, length: int) -> bytes:
        """copy_from_user: EFAULT when any byte is not readable."""
        if length <= 0:
            return b""
        frames, view = self.frames, self.view
        off = addr & 0xFFF
        if off + length <= PAGE_SIZE:
            frame = frames.get(addr >> 12)
            if frame is None:
                frame = self._frame_for(addr >> 12, False)
            return bytes(view[frame + off:frame + off + length])
        out = bytearray()
        while length > 0:
            chunk = min(length, PAGE_SIZE - (addr & 0xFFF))
            frame = frames.get(addr >> 12)
            if frame is None:
                frame = self._frame_for(addr >> 12, False)
            start = frame + (addr & 0xFFF)
            out += view[start:start + chunk]
            addr += chunk
            length -= chunk
        return bytes(out)

    def write(self, addr: int, data) -> None:
        """copy_to_user: EFAULT when any byte is not writable."""
        data = memoryview(data).cast("B")
        pos, length, view = 0, len(data), self.view
        while pos < length:
            chunk = min(length - pos, PAGE_SIZE - (addr & 0xFFF))
            frame = self._frame_for(addr >> 12, True)
            start = frame + (addr & 0xFFF)
            view[start:start + chunk] = data[pos:pos + chunk]
            addr += chunk
            pos += chunk

    def writable_views(self, addr: int, length: int) -> list[memoryview]:
        """Guest buffer as host memoryviews (one per page run), for readv/preadv straight into guest RAM."""
        views, view = [], self.view
        while length > 0:
            chunk = min(length, PAGE_SIZE - (addr & 0xFFF))
            frame = self._frame_for(addr >> 12, True)
            start = frame + (addr & 0xFFF)
            views.append(view[start:start + chunk])
            addr += chunk
            length -= chunk
        return views

    def poke(self, addr: int, data: bytes) -> None:
        """Write regardless of protection (the loader zeroing a segment's bss tail)."""
        while data:
            chunk = min(len(data), PAGE_SIZE - (addr & 0xFFF))
            vpn = addr >> 12
            if vpn not in self.frames and not self.populate(addr):
                raise SyscallError(EFAULT)
            start = self.frames[vpn] + (addr & 0xFFF)
            self.view[start:start + chunk] = data[:chunk]
            addr += chunk
            data = data[chunk:]

    def read_cstr(self, addr: int, limit: int = 4096) -> bytes:
        """A NUL-terminated string (strncpy_from_user); ENAMETOOLONG is the caller's call."""
        out = bytearray()
        while len(out) < limit:
            frame = self.frames.get(addr >> 12)
            if frame is None:
                frame = self._frame_for(addr >> 12, False)
            start = frame + (addr & 0xFFF)
            page_end = frame + PAGE_SIZE
            nul = self.ram.buf.find(b"\0", start, page_end)
            if nul >= 0:
                out += self.view[start:nul]
                return bytes(out[:limit])
            out += self.view[start:page_end]
            addr = (addr | 0xFFF) + 1
        return bytes(out[:limit])

    def read_u64(self, addr: int) -> int:
        return int.from_bytes(self.read(addr, 8), "little")

    def write_u64(self, addr: int, value: int) -> None:
        self.write(addr, (value & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little"))

    def zero(self, addr: int, length: int) -> None:
        self.write(addr, bytes(length))
