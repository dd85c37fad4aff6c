"""Calls that act on the machine as a whole, and the ones Linux x86-64 does not implement at all.

The first kind (reboot, swapon/swapoff, acct, the module and kexec loaders, vhangup, and raising the I/O
privilege with iopl/ioperm) is never the guest's to make, whatever its credentials: hermipy answers as Linux
answers a process without the capability each checks first (kernel/reboot.c, mm/swapfile.c, kernel/acct.c,
kernel/module/main.c, kernel/kexec*.c, fs/open.c, arch/x86/kernel/ioport.c), as a container that drops those
capabilities does -- or ENOSYS where the host's kernel is built without them (no CONFIG_MODULES: no
/proc/modules; no CONFIG_KEXEC_CORE: no /sys/kernel/kexec_loaded; no CONFIG_X86_IOPL_IOPERM: the host's own
iopl/ioperm answer an invalid request with ENOSYS), as the guest would find natively. The second kind are
numbers whose Linux entry is sys_ni_syscall: ENOSYS, quietly, as natively.
"""
import functools
import os
from errno import EINVAL, ENOSYS, EPERM

from hermipy.syscalls.argtypes import Int, UInt
from hermipy.syscalls.errors import SyscallError
from hermipy.syscalls.host import host_syscall
from hermipy.syscalls.table import FULL, PARTIAL, declare, syscall

IO_BITMAP_BITS = 65536
IOPL_MAX = 3
MASK64 = (1 << 64) - 1
_REFUSED = "EPERM, as without {cap}: hermipy never lets a guest {what} (capget may still report the capability)"


@functools.cache
def _host_has(feature: str) -> bool:
    """Whether the host's kernel is built with ``feature`` (asked once, harmlessly)."""
    if feature == "modules":
        return os.path.exists("/proc/modules")
    if feature == "kexec":
        return os.path.exists("/sys/kernel/kexec_loaded")
    try:                                     # ioport: a level iopl refuses before looking at privileges
        host_syscall("iopl", IOPL_MAX + 1)
    except OSError as err:
        return err.errno != ENOSYS
    return True


def _refuse(name: str, cap: str, what: str, feature: str | None = None) -> None:
    """``name`` checks ``cap`` before anything else: EPERM (ENOSYS when the host lacks ``feature``)."""
    note = _REFUSED.format(cap=cap, what=what) + (f"; ENOSYS where the host's kernel has no {feature} support"
                                                   if feature else "")

    @syscall(name, PARTIAL, note=note)
    def refused(k) -> int:
        raise SyscallError(EPERM if feature is None or _host_has(feature) else ENOSYS)
    refused.__doc__ = f"{name}(2): EPERM (the {cap} check comes first)."


_refuse("reboot", "CAP_SYS_BOOT", "reboot or halt the host")
_refuse("kexec_load", "CAP_SYS_BOOT", "load a kernel", "kexec")
_refuse("kexec_file_load", "CAP_SYS_BOOT", "load a kernel", "kexec")
_refuse("swapon", "CAP_SYS_ADMIN", "change the host's swap")
_refuse("swapoff", "CAP_SYS_ADMIN", "change the host's swap")
_refuse("acct", "CAP_SYS_PACCT", "switch the host's process accounting")
_refuse("init_module", "CAP_SYS_MODULE", "load a kernel module", "modules")
_refuse("finit_module", "CAP_SYS_MODULE", "load a kernel module", "modules")
_refuse("delete_module", "CAP_SYS_MODULE", "unload a kernel module", "modules")
_refuse("vhangup", "CAP_SYS_TTY_CONFIG", "hang up the host's terminal")
_NO_IOPORT = "; ENOSYS where the host's kernel has no ioport support (CONFIG_X86_IOPL_IOPERM)"


@syscall("iopl", PARTIAL, note="raising the level is EPERM, as without CAP_SYS_RAWIO: the guest gets no port "
                               "access" + _NO_IOPORT)
def iopl(k, level: UInt) -> int:
    """iopl(2) (arch/x86/kernel/ioport.c): EINVAL above 3; keeping level 0 is allowed; raising it is not."""
    if not _host_has("ioport"):
        raise SyscallError(ENOSYS)
    if level > IOPL_MAX:
        raise SyscallError(EINVAL)
    if level:
        raise SyscallError(EPERM)
    return 0


@syscall("ioperm", PARTIAL, note="granting ports is EPERM, as without CAP_SYS_RAWIO; taking them away is a no-op"
                                 + _NO_IOPORT)
def ioperm(k, start, num, turn_on: Int) -> int:
    """ioperm(2) (ksys_ioperm): EINVAL for a range that wraps or passes port 65535, EPERM to turn ports on, 0 to
    turn off ports the thread never had."""
    if not _host_has("ioport"):
        raise SyscallError(ENOSYS)
    if (start + num) & MASK64 <= start or start + num > IO_BITMAP_BITS:
        raise SyscallError(EINVAL)
    if turn_on:
        raise SyscallError(EPERM)
    return 0


# sys_ni_syscall on Linux x86-64 (6.x): removed, never implemented, or compiled out (uselib: CONFIG_USELIB=n).
_NOT_IN_LINUX = ("uselib", "_sysctl", "create_module", "get_kernel_syms", "query_module", "nfsservctl", "getpmsg",
                 "putpmsg", "afs_syscall", "tuxcall", "security", "lookup_dcookie", "epoll_ctl_old",
                 "epoll_wait_old", "vserver")
for _name in _NOT_IN_LINUX:
    declare(_name, FULL, "ENOSYS, as on Linux x86-64, which has no implementation (sys_ni_syscall)")
