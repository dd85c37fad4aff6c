"""Namespaces and the host name: unshare, setns, sethostname, setdomainname (kernel/fork.c ksys_unshare,
kernel/nsproxy.c, kernel/sys.c).

A task's namespaces are its host thread's: Linux keeps them per task, and each guest task is driven by a host
thread of its own that makes the task's host calls. So a new UTS, IPC, network or cgroup namespace is the host's
unshare on that thread: what the guest then does through hermipy (uname, sethostname, System V IPC and POSIX
queues, sockets) happens in it, a fork child inherits it with the host process, and setns to a /proc/PID/ns file
is the host's setns. hermipy cannot give a task a mount, user, pid or time namespace of its own (its process is
multithreaded and its file system view, ids and pids are its own): those flags are EPERM, as for a process
without the privilege. The host's own UTS namespace is never changed: sethostname/setdomainname there are EPERM.
"""
import os
from errno import EFAULT, EINVAL, EPERM

from hermipy.syscalls.argtypes import Flags, Fd, Int, Ptr
from hermipy.syscalls.errors import SyscallError
from hermipy.syscalls.sys_fork import (CLONE_FILES, CLONE_FS, CLONE_NEWNS, CLONE_SIGHAND, CLONE_SYSVSEM, CLONE_THREAD,
                                       CLONE_VM)
from hermipy.syscalls.host import host_syscall
from hermipy.syscalls.table import PARTIAL, syscall

CLONE_NEWCGROUP, CLONE_NEWUTS = 0x02000000, 0x04000000
CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWTIME = 0x08000000, 0x10000000, 0x20000000, \
    0x40000000, 0x80
UNSHARE_VALID = (CLONE_THREAD | CLONE_FS | CLONE_NEWNS | CLONE_SIGHAND | CLONE_VM | CLONE_FILES | CLONE_SYSVSEM
                 | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWCGROUP
                 | CLONE_NEWTIME)                  # check_unshare_flags()
HOST_NAMESPACES = CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWCGROUP     # the task's host thread's
NOT_OURS = CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWTIME
NS_KINDS = {"uts": CLONE_NEWUTS, "ipc": CLONE_NEWIPC, "net": CLONE_NEWNET, "cgroup": CLONE_NEWCGROUP,
            "mnt": CLONE_NEWNS, "user": CLONE_NEWUSER, "pid": CLONE_NEWPID, "time": CLONE_NEWTIME}
HOST_NAME_MAX = 64

UNSHARE_FLAGS = Flags({CLONE_FS: "CLONE_FS", CLONE_FILES: "CLONE_FILES", CLONE_NEWNS: "CLONE_NEWNS",
                       CLONE_SYSVSEM: "CLONE_SYSVSEM", CLONE_NEWUTS: "CLONE_NEWUTS", CLONE_NEWIPC: "CLONE_NEWIPC",
                       CLONE_NEWUSER: "CLONE_NEWUSER", CLONE_NEWPID: "CLONE_NEWPID", CLONE_NEWNET: "CLONE_NEWNET",
                       CLONE_NEWCGROUP: "CLONE_NEWCGROUP", CLONE_NEWTIME: "CLONE_NEWTIME",
                       CLONE_THREAD: "CLONE_THREAD", CLONE_SIGHAND: "CLONE_SIGHAND", CLONE_VM: "CLONE_VM"})


def _uts_namespace() -> int:
    """The calling host thread's UTS namespace (its nsfs inode)."""
    return os.stat("/proc/thread-self/ns/uts").st_ino


HOST_UTS = _uts_namespace()        # hermipy's, at its start: the host's own, never changed by a guest


@syscall("unshare", PARTIAL, note="CLONE_FILES and CLONE_FS give the task its own fd table and cwd; CLONE_NEWUTS, "
                                  "CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWCGROUP and CLONE_SYSVSEM are the host's "
                                  "unshare on the task's host thread; CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID and "
                                  "CLONE_NEWTIME are EPERM")
def unshare(k, flags: UNSHARE_FLAGS) -> int:
    """unshare(2) (ksys_unshare): the checks of check_unshare_flags(), then each part."""
    flags &= 0xFFFFFFFF
    if flags & ~UNSHARE_VALID:
        raise SyscallError(EINVAL)
    if flags & (CLONE_THREAD | CLONE_SIGHAND | CLONE_VM):
        if k.group.others(k) or flags & CLONE_VM and k.mem.shared_by_processes:
            raise SyscallError(EINVAL)
    if flags & NOT_OURS:
        raise SyscallError(EPERM)
    host = flags & (HOST_NAMESPACES | CLONE_SYSVSEM)
    if host:
        if not capable_sys_admin(k) and flags & HOST_NAMESPACES:
            raise SyscallError(EPERM)
        host_syscall("unshare", host)
    if flags & CLONE_FILES:
        k.fds = k.fds.copy()
    if flags & CLONE_FS:
        k.fs = k.fs.copy()
    return 0


@syscall("setns", PARTIAL, note="the host's setns on the task's host thread, for UTS, IPC, network and cgroup "
                                "namespaces (a /proc/PID/ns file, or a pidfd with those flags); mount, user, pid "
                                "and time namespaces are EPERM")
def setns(k, fd: Fd, nstype: Int) -> int:
    """setns(2)."""
    of = k.fds.get(fd)
    if of.node is not None:
        raise SyscallError(EINVAL)
    try:
        target = os.readlink(f"/proc/self/fd/{of.host_fd}")
    except OSError:
        target = ""
    kind = NS_KINDS.get(target.split(":", 1)[0]) if target.endswith("]") and ":[" in target else None
    if kind is not None:                   # a namespace file: nstype 0 or its own kind
        if nstype not in (0, kind):
            raise SyscallError(EINVAL)
        wanted = kind
    elif target == "anon_inode:[pidfd]":
        if not nstype or nstype & ~(UNSHARE_VALID & ~(CLONE_THREAD | CLONE_FS | CLONE_SIGHAND | CLONE_VM
                                                      | CLONE_FILES | CLONE_SYSVSEM)):
            raise SyscallError(EINVAL)
        wanted = nstype
    else:
        raise SyscallError(EINVAL)
    if wanted & NOT_OURS:
        raise SyscallError(EPERM)
    if not capable_sys_admin(k):
        raise SyscallError(EPERM)
    return host_syscall("setns", of.host_fd, nstype)


def capable_sys_admin(k) -> bool:
    from hermipy.syscalls.sys_info import CAP_SYS_ADMIN, capable
    return capable(k, CAP_SYS_ADMIN)


def _set_uts_name(k, name: int, length: int, call: str) -> int:
    """sethostname/setdomainname: the host's, in a UTS namespace the guest made; EPERM in the host's own."""
    if not capable_sys_admin(k) or _uts_namespace() == HOST_UTS:
        raise SyscallError(EPERM)
    if length < 0 or length > HOST_NAME_MAX:
        raise SyscallError(EINVAL)
    import ctypes
    try:
        data = k.mem.read(name, length)
    except SyscallError:
        raise SyscallError(EFAULT) from None
    return host_syscall(call, ctypes.create_string_buffer(data, max(length, 1)), length)


@syscall("sethostname", PARTIAL, note="in a UTS namespace the guest made (unshare, setns): the host's; in the host's "
                                      "own: EPERM (a guest never renames the host)")
def sethostname(k, name: Ptr, length: Int) -> int:
    """sethostname(2)."""
    return _set_uts_name(k, name, length, "sethostname")


@syscall("setdomainname", PARTIAL, note="as sethostname")
def setdomainname(k, name: Ptr, length: Int) -> int:
    """setdomainname(2)."""
    return _set_uts_name(k, name, length, "setdomainname")
