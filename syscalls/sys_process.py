"""Process lifetime and identity: exit, ids, arch_prctl, set_tid_address, prctl, rseq (kernel/exit.c, sys.c)."""
from errno import EFAULT, EINVAL, EPERM

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
