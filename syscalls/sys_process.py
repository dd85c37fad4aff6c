"""Process lifetime and identity: exit, ids, arch_prctl, set_tid_address, prctl, rseq (kernel/exit.c, sys.c)."""
import os
import struct
import time
from errno import EAGAIN, EDEADLK, EFAULT, EINVAL, ENOSYS, EPERM, ESRCH, ETIMEDOUT

from hermipy.cpu import GuestExit
from hermipy.syscalls.argtypes import Enum, Int, Ptr, Size, UInt
from hermipy.syscalls.errors import SyscallError
from hermipy.syscalls.table import FULL, PARTIAL, STUB, declare, syscall

ARCH_SET_GS, ARCH_SET_FS, ARCH_GET_FS, ARCH_GET_GS = 0x1001, 0x1002, 0x1003, 0x1004
ARCH_GET_CPUID, ARCH_SET_CPUID = 0x1011, 0x1012
USER_TOP = 1 << 47


@syscall("exit", FULL)
def exit(k, status: Int) -> int:
    """exit(2): the guest is a single thread, so the process ends."""
    raise GuestExit(status & 0xFF)


@syscall("exit_group", FULL)
def exit_group(k, status: Int) -> int:
    """exit_group(2)."""
    raise GuestExit(status & 0xFF)


@syscall("getpid", FULL)
def getpid(k) -> int:
    return k.proc.pid


@syscall("gettid", FULL)
def gettid(k) -> int:
    return k.proc.pid


@syscall("getppid", FULL)
def getppid(k) -> int:
    return k.proc.ppid


@syscall("getuid", FULL)
def getuid(k) -> int:
    return k.proc.uid


@syscall("geteuid", FULL)
def geteuid(k) -> int:
    return k.proc.euid


@syscall("getgid", FULL)
def getgid(k) -> int:
    return k.proc.gid


@syscall("getegid", FULL)
def getegid(k) -> int:
    return k.proc.egid


@syscall("arch_prctl", FULL)
def arch_prctl(k, code: Enum({0x1001: "ARCH_SET_GS", 0x1002: "ARCH_SET_FS", 0x1003: "ARCH_GET_FS",
                              0x1004: "ARCH_GET_GS"}), addr: Ptr) -> int:
    """arch_prctl(2): FS/GS base for TLS."""
    if code in (ARCH_SET_FS, ARCH_SET_GS):
        if addr >= USER_TOP:
            raise SyscallError(EPERM)
        (k.cpu.set_fs_base if code == ARCH_SET_FS else k.cpu.set_gs_base)(addr)
        return 0
    if code in (ARCH_GET_FS, ARCH_GET_GS):
        k.mem.write_u64(addr, k.cpu.get_fs_base() if code == ARCH_GET_FS else k.cpu.get_gs_base())
        return 0
    raise SyscallError(EINVAL)


@syscall("set_tid_address", FULL)
def set_tid_address(k, tidptr: Ptr) -> int:
    """set_tid_address(2): recorded; single-threaded guests never need the futex wake."""
    k.proc.clear_child_tid = tidptr
    return k.proc.pid


@syscall("set_robust_list", PARTIAL, note="the list is recorded; with one thread it is never walked")
def set_robust_list(k, head: Ptr, length: Size) -> int:
    """set_robust_list(2): the head size must be sizeof(struct robust_list_head) (24)."""
    if length != 24:
        raise SyscallError(EINVAL)
    k.proc.robust_list = head
    return 0


declare("rseq", STUB, "returns ENOSYS: restartable sequences are not offered; glibc and musl carry on without")


@syscall("getgroups", FULL)
def getgroups(k, size: Int, grouplist: Ptr) -> int:
    """getgroups(2): with size 0 only the count; a smaller non-zero size is EINVAL."""
    groups = k.proc.groups
    if size < 0:
        raise SyscallError(EINVAL)
    if size:
        if size < len(groups):
            raise SyscallError(EINVAL)
        k.mem.write(grouplist, struct.pack(f"<{len(groups)}I", *groups))
    return len(groups)


@syscall("getresuid", FULL)
def getresuid(k, ruid: Ptr, euid: Ptr, suid: Ptr) -> int:
    p = k.proc
    for addr, value in ((ruid, p.uid), (euid, p.euid), (suid, p.suid)):
        k.mem.write(addr, struct.pack("<I", value))
    return 0


@syscall("getresgid", FULL)
def getresgid(k, rgid: Ptr, egid: Ptr, sgid: Ptr) -> int:
    p = k.proc
    for addr, value in ((rgid, p.gid), (egid, p.egid), (sgid, p.sgid)):
        k.mem.write(addr, struct.pack("<I", value))
    return 0


def _self_or_esrch(k, pid: int) -> int:
    """The guest sees no other process: 0 or its own pid mean itself, any other pid is ESRCH (the host's
    process of that number is not the guest's business)."""
    if pid not in (0, k.proc.pid):
        raise SyscallError(ESRCH)
    return 0


@syscall("getpgrp", FULL)
def getpgrp(k) -> int:
    """getpgrp(2): the guest shares the hermipy process's group, as the native program would."""
    return os.getpgrp()


@syscall("getpgid", PARTIAL, note="only the guest itself (pid 0 or its own); other pids are ESRCH")
def getpgid(k, pid: Int) -> int:
    return os.getpgid(_self_or_esrch(k, pid))


@syscall("getsid", PARTIAL, note="only the guest itself (pid 0 or its own); other pids are ESRCH")
def getsid(k, pid: Int) -> int:
    return os.getsid(_self_or_esrch(k, pid))


@syscall("setpgid", PARTIAL, note="only the guest itself (pid 0 or its own); other pids are ESRCH")
def setpgid(k, pid: Int, pgid: Int) -> int:
    """setpgid(2): applied to the hermipy process, which is the guest's process on the host."""
    if pgid < 0:
        raise SyscallError(EINVAL)
    _self_or_esrch(k, pid)
    os.setpgid(0, pgid)
    return 0


@syscall("setsid", FULL)
def setsid(k) -> int:
    """setsid(2): EPERM for a process-group leader, like the host says."""
    return os.setsid()


PR_SET_PDEATHSIG, PR_GET_PDEATHSIG, PR_GET_DUMPABLE, PR_SET_DUMPABLE = 1, 2, 3, 4
PR_SET_NAME, PR_GET_NAME = 15, 16
TASK_COMM_LEN = 16
NSIG = 64


@syscall("prctl", PARTIAL, note="PR_SET_NAME/PR_GET_NAME, PR_[GS]ET_DUMPABLE, PR_[GS]ET_PDEATHSIG; "
                                "other options are EINVAL")
def prctl(k, option: Enum({1: "PR_SET_PDEATHSIG", 2: "PR_GET_PDEATHSIG", 3: "PR_GET_DUMPABLE",
                           4: "PR_SET_DUMPABLE", 15: "PR_SET_NAME", 16: "PR_GET_NAME"}),
          arg2: Ptr, arg3: Ptr, arg4: Ptr, arg5: Ptr) -> int:
    """prctl(2) (kernel/sys.c)."""
    p = k.proc
    if option == PR_SET_NAME:
        p.comm = k.mem.read_cstr(arg2, TASK_COMM_LEN)[:TASK_COMM_LEN - 1]
        return 0
    if option == PR_GET_NAME:
        k.mem.write(arg2, p.comm[:TASK_COMM_LEN - 1] + b"\0")
        return 0
    if option == PR_GET_DUMPABLE:
        return getattr(p, "dumpable", 1)
    if option == PR_SET_DUMPABLE:
        if arg2 not in (0, 1):
            raise SyscallError(EINVAL)
        p.dumpable = arg2
        return 0
    if option == PR_SET_PDEATHSIG:
        if arg2 > NSIG:
            raise SyscallError(EINVAL)
        p.pdeathsig = arg2
        return 0
    if option == PR_GET_PDEATHSIG:
        k.mem.write(arg2, struct.pack("<i", getattr(p, "pdeathsig", 0)))
        return 0
    raise SyscallError(EINVAL)


FUTEX_WAIT, FUTEX_WAKE, FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP = 0, 1, 3, 4, 5
FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET, FUTEX_LOCK_PI, FUTEX_UNLOCK_PI, FUTEX_TRYLOCK_PI = 9, 10, 6, 7, 8
FUTEX_CMD_MASK = ~(128 | 256)          # FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME
FUTEX_OPS = {0: "FUTEX_WAIT", 1: "FUTEX_WAKE", 3: "FUTEX_REQUEUE", 4: "FUTEX_CMP_REQUEUE", 5: "FUTEX_WAKE_OP",
             9: "FUTEX_WAIT_BITSET", 10: "FUTEX_WAKE_BITSET", 128: "FUTEX_WAIT_PRIVATE", 129: "FUTEX_WAKE_PRIVATE",
             137: "FUTEX_WAIT_BITSET_PRIVATE", 138: "FUTEX_WAKE_BITSET_PRIVATE"}


@syscall("futex", PARTIAL, note="one thread: wakes find no waiter; a wait whose value matches can only time out "
                                "(EDEADLK without a timeout, where Linux would block forever); no PI futexes")
def futex(k, uaddr: Ptr, op: Enum(FUTEX_OPS), val: UInt, timeout: Ptr, uaddr2: Ptr, val3: UInt) -> int:
    """futex(2) for a single-threaded process."""
    if uaddr % 4:
        raise SyscallError(EINVAL)
    cmd = op & FUTEX_CMD_MASK
    if cmd in (FUTEX_WAKE, FUTEX_WAKE_BITSET, FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP):
        if cmd == FUTEX_CMP_REQUEUE and int.from_bytes(k.mem.read(uaddr, 4), "little") != val3:
            raise SyscallError(EAGAIN)
        if cmd == FUTEX_WAKE_BITSET and val3 == 0:
            raise SyscallError(EINVAL)
        return 0
    if cmd in (FUTEX_WAIT, FUTEX_WAIT_BITSET):
        if cmd == FUTEX_WAIT_BITSET and val3 == 0:
            raise SyscallError(EINVAL)
        if int.from_bytes(k.mem.read(uaddr, 4), "little") != val:
            raise SyscallError(EAGAIN)
        if not timeout:
            raise SyscallError(EDEADLK)
        sec, nsec = struct.unpack("<qq", k.mem.read(timeout, 16))
        if sec < 0 or not 0 <= nsec < 1_000_000_000:
            raise SyscallError(EINVAL)
        if cmd == FUTEX_WAIT:                      # relative timeout
            time.sleep(sec + nsec / 1e9)
        else:                                       # absolute, on CLOCK_MONOTONIC or CLOCK_REALTIME
            now = time.clock_gettime(time.CLOCK_REALTIME if op & 256 else time.CLOCK_MONOTONIC)
            time.sleep(max(0.0, sec + nsec / 1e9 - now))
        raise SyscallError(ETIMEDOUT)
    raise SyscallError(ENOSYS)
