"""Memory syscalls: brk, mmap, munmap, mprotect, mremap, madvise, msync, mincore (mm/mmap.c, mm/mremap.c)."""
import os
from errno import EACCES, EBADF, EINVAL, ENODEV, ENOMEM

from hermipy.layout import PAGE_SIZE, page_up
from hermipy.syscalls.argtypes import MAP_FLAGS, PROT, Fd, Flags, Int, Long, Ptr, Size, UInt
from hermipy.syscalls.errors import SyscallError
from hermipy.syscalls.files import O_ACCMODE, O_RDONLY, O_WRONLY
from hermipy.syscalls.memory import (MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_NORESERVE, MAP_PRIVATE,
                                     MAP_SHARED, PROT_WRITE, MappedFile)
from hermipy.syscalls.table import FULL, PARTIAL, syscall

MAP_TYPE = 0xF
MAP_SHARED_VALIDATE = 0x3
MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP = 1, 2, 4
MADV_DONTNEED, MADV_FREE, MADV_REMOVE = 4, 8, 9
MS_ASYNC, MS_INVALIDATE, MS_SYNC = 1, 2, 4
PROT_ALL = 7
PROT_GROWS = 0x03000000      # PROT_GROWSDOWN | PROT_GROWSUP


@syscall("brk", FULL)
def brk(k, addr: Ptr) -> int:
    """brk(2): the heap is an anonymous VMA from brk_start; a failed move returns the old break."""
    if addr < k.brk_start:
        return k.brk
    old_end, new_end = page_up(k.brk), page_up(addr)
    try:
        if new_end > old_end:
            if not k.mem.is_free(old_end, new_end):
                return k.brk
            k.mem.map(old_end, new_end - old_end, 3, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, name="[heap]")
        elif new_end < old_end:
            k.mem.unmap(new_end, old_end - new_end)
    except SyscallError:
        return k.brk
    k.brk = addr
    return addr


@syscall("mmap", PARTIAL, note="MAP_SHARED file pages are written back on msync/munmap/exit, "
                               "not kept coherent with concurrent read/write of the same file")
def mmap(k, addr: Ptr, length: Size, prot: PROT, flags: MAP_FLAGS, fd: Fd, offset: Long) -> int:
    """mmap(2)."""
    if length == 0 or offset % PAGE_SIZE or page_up(length) == 0 or length > 1 << 47:
        raise SyscallError(EINVAL if length <= 1 << 47 else ENOMEM)
    kind = flags & MAP_TYPE
    if kind not in (MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE):
        raise SyscallError(EINVAL)
    if prot & ~(PROT_ALL | PROT_GROWS):
        raise SyscallError(EINVAL)
    prot &= PROT_ALL
    shared = kind != MAP_PRIVATE
    file = None
    name = ""
    if not flags & MAP_ANONYMOUS:
        of = k.fds.get(fd)
        access = of.flags & O_ACCMODE
        if of.kind in ("pipe", "socket") or of.dir_entries is not None:
            raise SyscallError(ENODEV)
        if access == O_WRONLY or (shared and prot & PROT_WRITE and access == O_RDONLY):
            raise SyscallError(EACCES)
        file = MappedFile(of.host_fd, of.path)
        name = of.path
    kept = MAP_ANONYMOUS | MAP_FIXED | MAP_FIXED_NOREPLACE | MAP_NORESERVE
    norm_flags = (MAP_SHARED if shared else MAP_PRIVATE) | (flags & kept)
    return k.mem.map(addr, length, prot, norm_flags, file, offset if file else 0, name)


@syscall("munmap", FULL)
def munmap(k, addr: Ptr, length: Size) -> int:
    """munmap(2)."""
    if addr % PAGE_SIZE or length == 0:
        raise SyscallError(EINVAL)
    k.mem.unmap(addr, length)
    return 0


@syscall("mprotect", FULL)
def mprotect(k, addr: Ptr, length: Size, prot: PROT) -> int:
    """mprotect(2)."""
    if addr % PAGE_SIZE or prot & ~(PROT_ALL | PROT_GROWS):
        raise SyscallError(EINVAL)
    if length:
        k.mem.protect(addr, length, prot & PROT_ALL)
    return 0


@syscall("mremap", PARTIAL, note="MREMAP_DONTUNMAP is refused with EINVAL")
def mremap(k, old_addr: Ptr, old_size: Size, new_size: Size,
           flags: Flags({1: "MREMAP_MAYMOVE", 2: "MREMAP_FIXED", 4: "MREMAP_DONTUNMAP"}), new_addr: Ptr) -> int:
    """mremap(2)."""
    if flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED) or (flags & MREMAP_FIXED and not flags & MREMAP_MAYMOVE):
        raise SyscallError(EINVAL)
    fixed = new_addr if flags & MREMAP_FIXED else None
    if fixed is not None and (fixed % PAGE_SIZE or abs(fixed - old_addr) < max(old_size, new_size)):
        raise SyscallError(EINVAL)
    return k.mem.remap(old_addr, old_size, new_size, bool(flags & MREMAP_MAYMOVE), fixed)


@syscall("madvise", PARTIAL, note="MADV_DONTNEED/MADV_FREE drop private pages; other advice is accepted "
                                  "and has no effect")
def madvise(k, addr: Ptr, length: Size, advice: Int) -> int:
    """madvise(2)."""
    if addr % PAGE_SIZE:
        raise SyscallError(EINVAL)
    if advice in (MADV_DONTNEED, MADV_FREE) and length:
        k.mem.discard(addr, length)
    return 0


@syscall("msync", FULL)
def msync(k, addr: Ptr, length: Size, flags: Int) -> int:
    """msync(2)."""
    if addr % PAGE_SIZE or flags & ~(MS_ASYNC | MS_INVALIDATE | MS_SYNC) or \
            (flags & MS_ASYNC and flags & MS_SYNC):
        raise SyscallError(EINVAL)
    k.mem.sync(addr, length)
    return 0


@syscall("mincore", FULL)
def mincore(k, addr: Ptr, length: Size, vec: Ptr) -> int:
    """mincore(2)."""
    if addr % PAGE_SIZE:
        raise SyscallError(EINVAL)
    k.mem.write(vec, k.mem.residency(addr, length))
    return 0
