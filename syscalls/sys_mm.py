"""Memory syscalls: brk, mmap, munmap, mprotect, mremap, madvise, msync, mincore, the mlock family and
set_mempolicy/get_mempolicy, membarrier (mm/mmap.c, mm/mremap.c, mm/mlock.c, mm/mempolicy.c,
kernel/sched/membarrier.c)."""
import os
import struct
from errno import EACCES, EBUSY, EFAULT, EINVAL, ENODEV, ENOENT, ENOMEM, EPERM

from hermipy.layout import PAGE_SIZE, USER_TOP, page_up
from hermipy.syscalls.argtypes import MAP_FLAGS, PROT, Enum, Fd, Flags, Int, Long, Path, Ptr, Size, UInt
from hermipy.syscalls.errors import SyscallError
from hermipy.syscalls.files import O_ACCMODE, O_RDONLY, O_RDWR, O_WRONLY
from hermipy.syscalls.memory import (MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_NORESERVE, MAP_PRIVATE,
                                     MAP_SHARED, PROT_WRITE, VM_LOCKED, VM_LOCKONFAULT, MappedFile)
from hermipy.syscalls.table import FULL, PARTIAL, syscall

MAP_TYPE = 0xF
MAP_SHARED_VALIDATE = 0x3
MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP = 1, 2, 4
MADV_DONTNEED, MADV_FREE, MADV_REMOVE = 4, 8, 9
MS_ASYNC, MS_INVALIDATE, MS_SYNC = 1, 2, 4
PROT_ALL = 7
PROT_SEM = 0x8
PROT_GROWSDOWN, PROT_GROWSUP = 0x01000000, 0x02000000
PROT_GROWS = PROT_GROWSDOWN | PROT_GROWSUP
MAP_GROWSDOWN, MAP_LOCKED, MAP_POPULATE, MAP_HUGETLB = 0x100, 0x2000, 0x8000, 0x40000
MAP_HUGE_MASK = 0x3F << 26
TASK_SIZE = USER_TOP - PAGE_SIZE
OWN_AREAS_NOTE = ("hermipy's own pages are not the guest's (README, Memory): a placement over them, fixed or "
                  "hinted, takes their place (KVM's user window moves to another PML4 slot)")


@syscall("brk", FULL)
def brk(k, addr: Ptr) -> int:
    """brk(2): the heap is an anonymous VMA from brk_start; a failed move returns the old break."""
    with k.mem.lock:
        return _brk(k, addr)


def _brk(k, addr: int) -> int:
    if addr < k.mem.brk_start:
        return k.mem.brk
    old_end, new_end = page_up(k.mem.brk), page_up(addr)
    try:
        if new_end > old_end:
            if not k.mem.is_free(old_end, new_end):
                return k.mem.brk
            k.mem.map(old_end, new_end - old_end, 3, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, name="[heap]")
        elif new_end < old_end:
            k.mem.unmap(new_end, old_end - new_end)
    except SyscallError:
        return k.mem.brk
    k.mem.brk = addr
    return addr


@syscall("mmap", PARTIAL, note="MAP_PRIVATE file pages are copied at first touch (a later change to the file "
                               "is not seen before the page is written, as Linux shows it); MAP_SHARED pages are "
                               "the host's page cache (coherent, shared across fork and with other processes); "
                               "MAP_POPULATE does not prefault (MAP_LOCKED does); " + OWN_AREAS_NOTE)
def mmap(k, addr: Ptr, length: Size, prot: PROT, flags: MAP_FLAGS, fd: Fd, offset: Long) -> int:
    """mmap(2)."""
    if length == 0 or offset % PAGE_SIZE or page_up(length) == 0 or length > 1 << 47:
        raise SyscallError(EINVAL if length <= 1 << 47 else ENOMEM)
    kind = flags & MAP_TYPE
    if kind not in (MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE):
        raise SyscallError(EINVAL)
    prot &= PROT_ALL                           # do_mmap() looks at no other bit
    shared = kind != MAP_PRIVATE
    file = None
    name = ""
    if not flags & MAP_ANONYMOUS:
        of = k.fds.get(fd)
        access = of.flags & O_ACCMODE
        if of.kind in ("pipe", "socket") or of.dir_entries is not None or of.node is not None:
            raise SyscallError(ENODEV)
        if access == O_WRONLY or (shared and prot & PROT_WRITE and access == O_RDONLY):
            raise SyscallError(EACCES)
        host_can_map(of.host_fd, length, prot, flags, offset)
        file = MappedFile(of.host_fd, of.path, writable=access == O_RDWR)
        name = of.path
    elif kind == MAP_SHARED_VALIDATE or shared and flags & MAP_GROWSDOWN:
        raise SyscallError(EINVAL)             # an anonymous mapping is MAP_SHARED or MAP_PRIVATE, never growing
    kept = MAP_ANONYMOUS | MAP_FIXED | MAP_FIXED_NOREPLACE | MAP_NORESERVE | MAP_LOCKED
    norm_flags = (MAP_SHARED if shared else MAP_PRIVATE) | (flags & kept)
    addr = k.mem.map(addr, length, prot, norm_flags, file, offset if file else 0, name)
    if flags & MAP_LOCKED or k.mem.lock_future:              # a locked mapping is populated (mm_populate),
        vma = k.mem.find(addr)                                # unless MLOCK_ONFAULT / MCL_ONFAULT
        if vma is not None and vma.locked == VM_LOCKED:
            _populate(k, addr, page_up(length))
    return addr


# Flags a probe of the host file must not carry: placement, prefaulting and locking are hermipy's business.
_NOT_PROBED = MAP_FIXED | MAP_FIXED_NOREPLACE | MAP_POPULATE | MAP_LOCKED | MAP_HUGETLB | MAP_HUGE_MASK


def host_can_map(host_fd: int, length: int, prot: int, flags: int, offset: int) -> None:
    """Whether the host file can be mapped so (the file's own mmap: ENODEV for a directory or a device without
    one, EOVERFLOW past the largest offset, EOPNOTSUPP for MAP_SYNC, EPERM for PROT_EXEC on noexec...): the same
    request to the host, undone at once."""
    from hermipy.syscalls.host import host_syscall
    address = host_syscall("mmap", 0, page_up(length), prot, flags & ~_NOT_PROBED, host_fd, offset)
    host_syscall("munmap", address, page_up(length))


@syscall("munmap", FULL)
def munmap(k, addr: Ptr, length: Size) -> int:
    """munmap(2): do_vmi_munmap()'s checks, the range within user space."""
    if addr % PAGE_SIZE or addr > TASK_SIZE or length > TASK_SIZE - addr or page_up(length) == 0:
        raise SyscallError(EINVAL)
    k.mem.unmap(addr, length)
    return 0


@syscall("mprotect", FULL)
def mprotect(k, addr: Ptr, length: Size, prot: PROT) -> int:
    """mprotect(2) (mm/mprotect.c do_mprotect_pkey)."""
    grows = prot & PROT_GROWS
    if grows == PROT_GROWS or addr % PAGE_SIZE:
        raise SyscallError(EINVAL)
    if not length:
        return 0
    if addr + page_up(length) >= 1 << 64 or page_up(length) == 0:
        raise SyscallError(ENOMEM)
    if prot & ~(PROT_ALL | PROT_SEM | PROT_GROWS):
        raise SyscallError(EINVAL)             # arch_validate_prot()
    if grows:
        vma = k.mem.find(addr)
        if vma is None:
            raise SyscallError(ENOMEM)
        if grows & PROT_GROWSUP or not vma.flags & MAP_GROWSDOWN:
            raise SyscallError(EINVAL)         # (x86 has no VM_GROWSUP)
        length += addr - vma.start             # PROT_GROWSDOWN: down to the start of the stack's VMA
        addr = vma.start
    k.mem.protect(addr, length, prot & PROT_ALL)
    return 0


@syscall("mremap", PARTIAL, note="MREMAP_FIXED follows mmap's MAP_FIXED: " + OWN_AREAS_NOTE + "; a mapping "
                                 "that would grow in place over one moves (or fails with ENOMEM without MREMAP_MAYMOVE)")
def mremap(k, old_addr: Ptr, old_size: Size, new_size: Size,
           flags: Flags({1: "MREMAP_MAYMOVE", 2: "MREMAP_FIXED", 4: "MREMAP_DONTUNMAP"}), new_addr: Ptr) -> int:
    """mremap(2) (mm/mremap.c: the flag checks, then mremap_to() when the caller names or keeps a place)."""
    moves_to = flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)
    if flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP) or moves_to and not flags & MREMAP_MAYMOVE or \
            flags & MREMAP_DONTUNMAP and old_size != new_size:
        raise SyscallError(EINVAL)
    fixed = new_addr if flags & MREMAP_FIXED else None
    if moves_to and new_addr % PAGE_SIZE or fixed is not None and (
            old_addr < fixed + page_up(new_size) and fixed < old_addr + page_up(old_size)):
        raise SyscallError(EINVAL)             # mremap_to(): aligned, and the old and new ranges must not overlap
    return k.mem.remap(old_addr, old_size, new_size, bool(flags & MREMAP_MAYMOVE), fixed,
                       keep_old=bool(flags & MREMAP_DONTUNMAP))


MADV_ADVICE = {0: "MADV_NORMAL", 1: "MADV_RANDOM", 2: "MADV_SEQUENTIAL", 3: "MADV_WILLNEED", 4: "MADV_DONTNEED",
               8: "MADV_FREE", 9: "MADV_REMOVE", 10: "MADV_DONTFORK", 11: "MADV_DOFORK", 12: "MADV_MERGEABLE",
               13: "MADV_UNMERGEABLE", 14: "MADV_HUGEPAGE", 15: "MADV_NOHUGEPAGE", 16: "MADV_DONTDUMP",
               17: "MADV_DODUMP", 18: "MADV_WIPEONFORK", 19: "MADV_KEEPONFORK", 20: "MADV_COLD", 21: "MADV_PAGEOUT",
               22: "MADV_POPULATE_READ", 23: "MADV_POPULATE_WRITE", 24: "MADV_DONTNEED_LOCKED"}
MADV_WIPEONFORK, MADV_POPULATE_READ, MADV_POPULATE_WRITE, MADV_DONTNEED_LOCKED = 18, 22, 23, 24
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 1, 2


@syscall("madvise", PARTIAL, note="MADV_DONTNEED/MADV_FREE drop private pages, MADV_REMOVE punches the file, "
                                  "MADV_POPULATE_* fault pages in; MADV_DONTFORK/MADV_WIPEONFORK are checked but "
                                  "not honoured at fork; the rest is accepted as the hint it is")
def madvise(k, addr: Ptr, length: Size, advice: Enum(MADV_ADVICE)) -> int:
    """madvise(2) (mm/madvise.c do_madvise: the range's checks, then each VMA; a hole is ENOMEM at the end)."""
    if addr % PAGE_SIZE or advice not in MADV_ADVICE:
        raise SyscallError(EINVAL)
    end = addr + page_up(length)
    if length and page_up(length) == 0 or end >= 1 << 64:
        raise SyscallError(EINVAL)
    if end == addr:
        return 0
    with k.mem.lock:
        cursor, hole = addr, False
        for vma in k.mem._overlapping(addr, end):
            hole = hole or vma.start > cursor
            cursor = vma.end
            _advise_area(k, vma, max(addr, vma.start), min(end, vma.end), advice)
    if hole or cursor < end:
        raise SyscallError(ENOMEM)
    return 0


def _advise_area(k, vma, lo: int, hi: int, advice: int) -> None:
    """One VMA's part of a madvise: the per-VMA checks (madvise_vma_behavior), then what the advice does."""
    anonymous_private = vma.file is None and not vma.shared
    if advice == MADV_FREE and not anonymous_private or advice == MADV_REMOVE and not vma.shared or \
            advice == MADV_WIPEONFORK and vma.shared:
        raise SyscallError(EINVAL)
    if advice in (MADV_DONTNEED, MADV_DONTNEED_LOCKED, MADV_FREE) and not vma.shared:
        k.mem.discard(lo, hi - lo)
    elif advice == MADV_REMOVE:
        from hermipy.syscalls.host import host_syscall
        host_syscall("fallocate", vma.window.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                     vma.offset + lo - vma.start, hi - lo)
    elif advice in (MADV_POPULATE_READ, MADV_POPULATE_WRITE):
        write = advice == MADV_POPULATE_WRITE
        for page in range(lo, hi, PAGE_SIZE):
            k.mem.host_address(page, write)           # EFAULT where the access is not allowed (or past EOF)


@syscall("msync", FULL)
def msync(k, addr: Ptr, length: Size, flags: Int) -> int:
    """msync(2)."""
    if addr % PAGE_SIZE or flags & ~(MS_ASYNC | MS_INVALIDATE | MS_SYNC) or \
            (flags & MS_ASYNC and flags & MS_SYNC):
        raise SyscallError(EINVAL)
    if flags & MS_INVALIDATE and k.mem.locked_bytes(addr, addr + page_up(length)):
        raise SyscallError(EBUSY)                     # a locked mapping's pages cannot be invalidated
    k.mem.sync(addr, length)
    return 0


@syscall("mincore", FULL)
def mincore(k, addr: Ptr, length: Size, vec: Ptr) -> int:
    """mincore(2): the vector of the pages mapped without a gap from addr, then ENOMEM at a gap (do_mincore
    takes one VMA at a time)."""
    if addr % PAGE_SIZE:
        raise SyscallError(EINVAL)
    resident = k.mem.residency(addr, length)
    k.mem.write(vec, resident)
    if len(resident) < page_up(length) // PAGE_SIZE:
        raise SyscallError(ENOMEM)
    return 0


# -- locking (mm/mlock.c) ---------------------------------------------------------------------------
MLOCK_ONFAULT = 1
MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT = 1, 2, 4
CAP_IPC_LOCK = 14
RLIMIT_MEMLOCK, RLIM_INFINITY = 8, (1 << 64) - 1
LOCK_NOTE = ("the range is checked, faulted in, marked locked (VmLck, smaps' Locked) and charged to "
             "RLIMIT_MEMLOCK as Linux does, but guest RAM is not pinned in host memory")


def _can_do_mlock(k) -> None:
    """can_do_mlock(): a non-zero RLIMIT_MEMLOCK or CAP_IPC_LOCK, else EPERM."""
    from hermipy.syscalls.sys_info import capable
    if not k.proc.rlimits.get(RLIMIT_MEMLOCK, [1])[0] and not capable(k, CAP_IPC_LOCK):
        raise SyscallError(EPERM)


def _lock_range(k, addr: int, length: int, populate: bool) -> int:
    """do_mlock(): permission, RLIMIT_MEMLOCK for what is locked with this span, the span mapped throughout
    (ENOMEM), the VMAs marked VM_LOCKED (VM_LOCKONFAULT without ``populate``), then __mm_populate."""
    from hermipy.syscalls.sys_info import capable
    _can_do_mlock(k)
    start = addr & ~(PAGE_SIZE - 1)
    length = page_up(length + addr - start)
    if start + length < start:
        raise SyscallError(EINVAL)
    limit = k.proc.rlimits.get(RLIMIT_MEMLOCK, [RLIM_INFINITY])[0]
    locked = length + k.mem.locked_bytes()
    if locked > limit and not capable(k, CAP_IPC_LOCK):
        locked -= k.mem.locked_bytes(start, start + length)
        if locked > limit:
            raise SyscallError(ENOMEM)
    if not length:
        return 0
    resident = k.mem.residency(start, length)
    if len(resident) < length // PAGE_SIZE:
        raise SyscallError(ENOMEM)                 # apply_vma_lock_flags(): a gap
    k.mem.set_locked(start, start + length, VM_LOCKED | (0 if populate else VM_LOCKONFAULT))
    if populate:
        _populate(k, start, length)
    return 0


def _populate(k, start: int, length: int) -> None:
    """__mm_populate() of [start, start + length): every page backed (written ones for a private writable
    mapping), the shared ones in the host's page cache too."""
    k.mem.touch_shared(start, start + length)
    for i, present in enumerate(k.mem.residency(start, length)):
        if not present:
            page = start + i * PAGE_SIZE
            vma = k.mem.find(page)
            if vma is not None and vma.prot:
                k.mem.populate(page, write=bool(vma.prot & PROT_WRITE) and not vma.flags & MAP_SHARED)


@syscall("mlock", PARTIAL, note=LOCK_NOTE)
def mlock(k, start: Ptr, length: Size) -> int:
    """mlock(2)."""
    return _lock_range(k, start, length, True)


@syscall("mlock2", PARTIAL, note=LOCK_NOTE)
def mlock2(k, start: Ptr, length: Size, flags: Flags({MLOCK_ONFAULT: "MLOCK_ONFAULT"})) -> int:
    """mlock2(2): MLOCK_ONFAULT locks without faulting in."""
    if flags & ~MLOCK_ONFAULT:
        raise SyscallError(EINVAL)
    return _lock_range(k, start, length, not flags & MLOCK_ONFAULT)


@syscall("munlock", PARTIAL, note="the range is checked as Linux does (ENOMEM where unmapped); nothing was pinned")
def munlock(k, start: Ptr, length: Size) -> int:
    """munlock(2)."""
    aligned = start & ~(PAGE_SIZE - 1)
    length = page_up(length + start - aligned)
    if aligned + length < aligned:
        raise SyscallError(EINVAL)
    if length and len(k.mem.residency(aligned, length)) < length // PAGE_SIZE:
        raise SyscallError(ENOMEM)
    if length:
        k.mem.set_locked(aligned, aligned + length, 0)
    return 0


@syscall("mlockall", PARTIAL, note="flags and permission are checked as Linux does; nothing is faulted in or "
                                   "pinned in host memory")
def mlockall(k, flags: Flags({MCL_CURRENT: "MCL_CURRENT", MCL_FUTURE: "MCL_FUTURE", MCL_ONFAULT: "MCL_ONFAULT"})) -> int:
    """mlockall(2)."""
    from hermipy.syscalls.sys_info import capable
    if not flags or flags & ~(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) or flags == MCL_ONFAULT:
        raise SyscallError(EINVAL)
    _can_do_mlock(k)
    locked = VM_LOCKED | (VM_LOCKONFAULT if flags & MCL_ONFAULT else 0)
    mem = k.mem
    if flags & MCL_CURRENT:
        with mem.lock:
            total = sum(v.end - v.start for v in mem.vmas)
            if total > k.proc.rlimits.get(RLIMIT_MEMLOCK, [RLIM_INFINITY])[0] and not capable(k, CAP_IPC_LOCK):
                raise SyscallError(ENOMEM)
            for vma in mem.vmas:
                vma.locked = locked
            ranges = [(v.start, v.end) for v in mem.vmas if v.prot]
        if not flags & MCL_ONFAULT:
            for start, end in ranges:               # __mm_populate, as far as each range can be
                for page in range(start, end, PAGE_SIZE * 16):
                    mem.populate(page)
    mem.lock_future = locked if flags & MCL_FUTURE else 0
    return 0


@syscall("munlockall", FULL)
def munlockall(k) -> int:
    """munlockall(2): every VMA unlocked, and mlockall's MCL_FUTURE forgotten."""
    with k.mem.lock:
        k.mem.lock_future = 0
        for vma in k.mem.vmas:
            vma.locked = 0
    return 0


# -- NUMA policy (mm/mempolicy.c) -------------------------------------------------------------------
(MPOL_DEFAULT, MPOL_PREFERRED, MPOL_BIND, MPOL_INTERLEAVE, MPOL_LOCAL, MPOL_PREFERRED_MANY,
 MPOL_WEIGHTED_INTERLEAVE, MPOL_MAX) = range(8)
MPOL_F_NUMA_BALANCING, MPOL_F_RELATIVE_NODES, MPOL_F_STATIC_NODES = 1 << 13, 1 << 14, 1 << 15
MPOL_MODE_FLAGS = MPOL_F_NUMA_BALANCING | MPOL_F_RELATIVE_NODES | MPOL_F_STATIC_NODES
MPOL_F_NODE, MPOL_F_ADDR, MPOL_F_MEMS_ALLOWED = 1, 2, 4
NR_NODE_IDS = 1                # the guest has one memory node, node 0: mems_allowed is {0}
MEMS_ALLOWED = 1
MPOL_NOTE = ("one memory node (0): the task policy is checked and kept as Linux does and get_mempolicy reports "
             "it, but with one node it changes no placement; VMA policies (mbind) are not implemented")


def _get_nodes(k, nmask: int, maxnode: int) -> int:
    """get_nodes(): the user's nodemask of maxnode - 1 bits, as one int (maxnode is unsigned: 0 wraps, EINVAL)."""
    maxnode = (maxnode - 1) & (2**64 - 1)
    if maxnode == 0 or not nmask:
        return 0
    if maxnode > PAGE_SIZE * 8:
        raise SyscallError(EINVAL)
    raw = k.mem.read(nmask, (maxnode + 63) // 64 * 8)
    return int.from_bytes(raw, "little") & ((1 << maxnode) - 1)


@syscall("set_mempolicy", PARTIAL, note=MPOL_NOTE)
def set_mempolicy(k, mode: Int, nmask: Ptr, maxnode: Size) -> int:
    """set_mempolicy(2): sanitize_mpol_flags, get_nodes, mpol_new and mpol_set_nodemask's checks against the
    one node there is."""
    flags, mode = mode & MPOL_MODE_FLAGS, mode & ~MPOL_MODE_FLAGS
    if not 0 <= mode < MPOL_MAX or flags & MPOL_F_STATIC_NODES and flags & MPOL_F_RELATIVE_NODES:
        raise SyscallError(EINVAL)
    if flags & MPOL_F_NUMA_BALANCING and mode not in (MPOL_BIND, MPOL_PREFERRED_MANY):
        raise SyscallError(EINVAL)
    nodes = _get_nodes(k, nmask, maxnode)
    placement_flags = flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES)
    if mode == MPOL_DEFAULT:
        if nodes:
            raise SyscallError(EINVAL)
        k.proc.mempolicy = (MPOL_DEFAULT, 0, 0)
        return 0
    if mode == MPOL_PREFERRED and not nodes:
        if placement_flags:
            raise SyscallError(EINVAL)
        mode = MPOL_LOCAL
    elif mode == MPOL_LOCAL:
        if nodes or placement_flags:
            raise SyscallError(EINVAL)
    elif not nodes:
        raise SyscallError(EINVAL)
    if mode == MPOL_LOCAL:
        reported = 0
    else:
        effective = MEMS_ALLOWED if flags & MPOL_F_RELATIVE_NODES else nodes & MEMS_ALLOWED
        if not effective:
            raise SyscallError(EINVAL)
        reported = nodes if placement_flags else effective      # mpol_store_user_nodemask
    k.proc.mempolicy = (mode, flags, reported)
    return 0


@syscall("get_mempolicy", PARTIAL, note=MPOL_NOTE)
def get_mempolicy(k, policy: Ptr, nmask: Ptr, maxnode: Size, addr: Ptr,
                  flags: Flags({MPOL_F_NODE: "MPOL_F_NODE", MPOL_F_ADDR: "MPOL_F_ADDR",
                                MPOL_F_MEMS_ALLOWED: "MPOL_F_MEMS_ALLOWED"})) -> int:
    """get_mempolicy(2) (kernel_get_mempolicy + do_get_mempolicy)."""
    if nmask and maxnode < NR_NODE_IDS:
        raise SyscallError(EINVAL)
    if flags & ~(MPOL_F_NODE | MPOL_F_ADDR | MPOL_F_MEMS_ALLOWED):
        raise SyscallError(EINVAL)
    task_mode, task_flags, task_nodes = k.proc.mempolicy
    if flags & MPOL_F_MEMS_ALLOWED:
        if flags & (MPOL_F_NODE | MPOL_F_ADDR):
            raise SyscallError(EINVAL)
        mode, nodes = 0, MEMS_ALLOWED
    else:
        if flags & MPOL_F_ADDR:
            if k.mem.find(addr) is None:
                raise SyscallError(EFAULT)
            pol_mode, pol_flags, nodes = MPOL_DEFAULT, 0, 0    # no VMA has a policy of its own
        elif addr:
            raise SyscallError(EINVAL)
        else:
            pol_mode, pol_flags, nodes = task_mode, task_flags, task_nodes
        if flags & MPOL_F_NODE:
            if flags & MPOL_F_ADDR:
                k.mem.populate(addr)                   # lookup_node() faults the page in; it is on node 0
            elif pol_mode not in (MPOL_INTERLEAVE, MPOL_WEIGHTED_INTERLEAVE):
                raise SyscallError(EINVAL)
            mode = 0                                   # the node: the next interleave node, or the page's
        else:
            mode = pol_mode | pol_flags & MPOL_MODE_FLAGS
    if policy:
        k.mem.write(policy, mode.to_bytes(4, "little", signed=True))
    if nmask:
        copy = ((maxnode - 1 + 63) // 64) * 8          # copy_nodes_to_user: ALIGN(maxnode - 1, BITS_PER_LONG) / 8
        if copy > 8:
            if copy > PAGE_SIZE:
                raise SyscallError(EINVAL)
            k.mem.write(nmask + 8, bytes(copy - 8))
            copy = 8
        k.mem.write(nmask, (nodes & (1 << 64) - 1).to_bytes(8, "little")[:copy])
    return 0


MAX_NUMNODES = 1 << 10                 # CONFIG_NODES_SHIFT 10 (Debian's kernels)
MPOL_MF_MOVE, MPOL_MF_MOVE_ALL = 1 << 1, 1 << 2
CAP_SYS_NICE = 23


@syscall("migrate_pages", PARTIAL, note="one memory node (0): kernel_migrate_pages()'s checks, then every page is on "
                                        "its node already (0 not moved)")
def migrate_pages(k, pid: Int, maxnode: Size, old_nodes: Ptr, new_nodes: Ptr) -> int:
    """migrate_pages(2)."""
    from hermipy.syscalls.sys_info import capable
    from hermipy.syscalls.sys_process import target_process
    _get_nodes(k, old_nodes, maxnode)
    new = _get_nodes(k, new_nodes, maxnode)
    target_process(k, pid or k.proc.pid)
    if new & ~MEMS_ALLOWED and not capable(k, CAP_SYS_NICE):
        raise SyscallError(EPERM)
    if not new & MEMS_ALLOWED:
        raise SyscallError(EINVAL)
    return 0


@syscall("move_pages", PARTIAL, note="one memory node (0): a page the process has touched is on node 0 (so is one "
                                     "hermipy mapped ahead of the first touch), one it has not ENOENT, an address "
                                     "outside its mappings EFAULT; moving to node 0 leaves it "
                                     "there, to another node ENODEV; the caller's own memory only (another process's "
                                     "pages are its hermipy's: every one ENOENT)")
def move_pages(k, pid: Int, count: Size, pages: Ptr, nodes: Ptr, status: Ptr, flags: Int) -> int:
    """move_pages(2) (kernel_move_pages: do_pages_stat without ``nodes``, do_pages_move with them)."""
    from hermipy.syscalls.sys_info import capable
    from hermipy.syscalls.sys_process import target_process
    if flags & ~(MPOL_MF_MOVE | MPOL_MF_MOVE_ALL):
        raise SyscallError(EINVAL)
    if flags & MPOL_MF_MOVE_ALL and not capable(k, CAP_SYS_NICE):
        raise SyscallError(EPERM)
    target_process(k, pid or k.proc.pid)
    own = not pid or pid == k.proc.pid or pid in k.group.tasks
    results = []
    for i in range(count):
        addr = struct.unpack("<Q", k.mem.read(pages + 8 * i, 8))[0]
        if nodes:
            node = struct.unpack("<i", k.mem.read(nodes + 4 * i, 4))[0]
            if not 0 <= node < MAX_NUMNODES or node != 0:
                raise SyscallError(ENODEV)
        if not own:
            results.append(-ENOENT)
        elif k.mem.find(addr) is None:
            results.append(-EFAULT)
        else:
            results.append(0 if addr >> 12 in k.mem.frames else -ENOENT)
    if status and results:
        k.mem.write(status, struct.pack(f"<{len(results)}i", *results))
    return 0


@syscall("set_mempolicy_home_node", PARTIAL, note="one memory node (0), and no mapping has a policy of its own (mbind "
                                                  "is not implemented): its checks, then ENOENT for any range")
def set_mempolicy_home_node(k, start: Ptr, length: Size, home_node: Size, flags: Size) -> int:
    """set_mempolicy_home_node(2): only mappings with an MPOL_BIND or MPOL_PREFERRED_MANY policy of their own take
    a home node; with none, the call ends as Linux's does when it finds none (ENOENT)."""
    if start & (PAGE_SIZE - 1) or flags or home_node >= MAX_NUMNODES or home_node != 0:
        raise SyscallError(EINVAL)
    end = start + page_up(length)
    if end >= 1 << 64 or end < start:
        raise SyscallError(EINVAL)
    if end == start:
        return 0
    raise SyscallError(ENOENT)


# -- membarrier (kernel/sched/membarrier.c) ---------------------------------------------------------
(MEMBARRIER_CMD_QUERY, MEMBARRIER_CMD_GLOBAL, MEMBARRIER_CMD_GLOBAL_EXPEDITED, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED,
 MEMBARRIER_CMD_PRIVATE_EXPEDITED, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE,
 MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ,
 MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ, MEMBARRIER_CMD_GET_REGISTRATIONS) = (0, *(1 << i for i in range(10)))
MEMBARRIER_CMD_FLAG_CPU = 1
MEMBARRIER_CMDS = Enum({0: "MEMBARRIER_CMD_QUERY", 1: "MEMBARRIER_CMD_GLOBAL", 2: "MEMBARRIER_CMD_GLOBAL_EXPEDITED",
                        4: "MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED", 8: "MEMBARRIER_CMD_PRIVATE_EXPEDITED",
                        16: "MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED",
                        32: "MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE",
                        64: "MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE",
                        128: "MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ",
                        256: "MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ",
                        512: "MEMBARRIER_CMD_GET_REGISTRATIONS"})
# a barrier command -> the registration it needs
MEMBARRIER_NEEDS = {MEMBARRIER_CMD_PRIVATE_EXPEDITED: MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED,
                    MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE: MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE,
                    MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ: MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ}
MEMBARRIER_REGISTER = (MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, *MEMBARRIER_NEEDS.values())


@syscall("membarrier", FULL)
def membarrier(k, cmd: MEMBARRIER_CMDS, flags: UInt, cpu_id: Int) -> int:
    """membarrier(2). The commands the host supports (its QUERY answer) are offered, registrations are the
    guest address space's; a barrier is the host's own membarrier on hermipy's process: it interrupts every
    CPU running one of its threads, and so every vCPU running guest code (KVM_RUN exits, a Unicorn engine is
    a host thread), which is the ordering the guest's threads need."""
    if flags and not (cmd == MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ and flags == MEMBARRIER_CMD_FLAG_CPU):
        raise SyscallError(EINVAL)
    from hermipy.syscalls.host import host_syscall
    supported = host_syscall("membarrier", MEMBARRIER_CMD_QUERY, 0, 0)
    if cmd == MEMBARRIER_CMD_QUERY:
        return supported
    if cmd == MEMBARRIER_CMD_GET_REGISTRATIONS and supported & cmd:
        return k.mem.membarrier_state
    if cmd & (cmd - 1) or not supported & cmd:
        raise SyscallError(EINVAL)
    if cmd in MEMBARRIER_REGISTER:
        host_syscall("membarrier", cmd, 0, 0)
        k.mem.membarrier_state |= cmd
        return 0
    if cmd in MEMBARRIER_NEEDS and not k.mem.membarrier_state & MEMBARRIER_NEEDS[cmd]:
        raise SyscallError(EPERM)
    host_syscall("membarrier", cmd, flags, cpu_id)
    return 0


# -- memfd (mm/memfd.c) -----------------------------------------------------------------------------
MFD_CLOEXEC, MFD_ALLOW_SEALING, MFD_HUGETLB, MFD_NOEXEC_SEAL, MFD_EXEC = 1, 2, 4, 8, 0x10
MFD_NAME_MAX_LEN = 249                  # NAME_MAX - strlen("memfd:")
MFD_FLAGS = Flags({MFD_CLOEXEC: "MFD_CLOEXEC", MFD_ALLOW_SEALING: "MFD_ALLOW_SEALING", MFD_HUGETLB: "MFD_HUGETLB",
                   MFD_NOEXEC_SEAL: "MFD_NOEXEC_SEAL", MFD_EXEC: "MFD_EXEC"})


@syscall("memfd_create", FULL)
def memfd_create(k, name: Path, flags: MFD_FLAGS) -> int:
    """memfd_create(2): a host memfd (its flags, hugetlb sizes and seals are checked by the host); mapped
    MAP_SHARED, its pages are shared like any file's."""
    import ctypes
    from hermipy.syscalls.files import OpenFile
    from hermipy.syscalls.host import host_syscall
    huge_sizes = 0x3F << 26 if flags & 4 else 0  # MFD_HUGETLB: a page size in the MFD_HUGE_MASK bits
    if flags & ~(0x1F | huge_sizes) or flags & 0x18 == 0x18:     # MFD_ALL_FLAGS; MFD_EXEC with MFD_NOEXEC_SEAL
        raise SyscallError(EINVAL)                                # (checked before the name is read)
    raw = k.mem.read_cstr(name, MFD_NAME_MAX_LEN + 1)
    if len(raw) > MFD_NAME_MAX_LEN:
        raise SyscallError(EINVAL)
    host_fd = host_syscall("memfd_create", ctypes.create_string_buffer(raw), flags | MFD_CLOEXEC)
    file = OpenFile(host_fd, "/memfd:" + os.fsdecode(raw) + " (deleted)", O_RDWR)
    try:
        return k.fds.install(file, bool(flags & MFD_CLOEXEC))
    except SyscallError:
        os.close(host_fd)
        raise
