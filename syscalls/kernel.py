"""The hermipy kernel: all state one guest process has (memory, files, identity, signals, time).

One ``Kernel`` serves every CPU backend; handlers in ``sys_*.py`` take it as their first argument.
"""
import os
import sys
from dataclasses import dataclass, field

from hermipy.errors import HermipyError
from hermipy.syscalls.files import FdTable
from hermipy.syscalls.memory import AddressSpace, PhysicalMemory
from hermipy.syscalls.vfs import FsView

RLIM_INFINITY = (1 << 64) - 1
RLIMIT_NOFILE, RLIMIT_STACK = 7, 3


@dataclass
class Options:
    """What the user chose on the command line."""
    root: str | None = None
    strace: bool = False
    strace_file: str | None = None
    strict: bool = False
    memory: int = 4 << 30
    backend: str = "unicorn"
    debug: bool = False


@dataclass
class Process:
    """Identity and per-process attributes (include/linux/sched.h, cred.h)."""
    pid: int
    ppid: int
    uid: int
    gid: int
    euid: int
    egid: int
    suid: int = 0
    sgid: int = 0
    groups: list[int] = field(default_factory=list)
    umask: int = 0o022
    comm: bytes = b""
    exe: str = ""                     # guest path of the executable (/proc/self/exe)
    argv: list[bytes] = field(default_factory=list)
    environ: list[bytes] = field(default_factory=list)
    clear_child_tid: int = 0
    rlimits: dict[int, list[int]] = field(default_factory=dict)
    auxv: bytes = b""


class Kernel:
    def __init__(self, options: Options):
        self.options = options
        self.ram = PhysicalMemory(options.memory)
        self.mem = AddressSpace(self.ram)
        self.fs = FsView(options.root)
        self.fds = FdTable()
        self.fds.inherit_stdio()
        self.proc = Process(pid=os.getpid(), ppid=os.getppid(), uid=os.getuid(), gid=os.getgid(),
                            euid=os.geteuid(), egid=os.getegid(), suid=os.geteuid(), sgid=os.getegid(),
                            groups=os.getgroups(), umask=_host_umask(), rlimits=_host_rlimits())
        self.cpu = None
        self.brk_start = self.brk = 0
        self.signals = None            # SignalState, created by sys_signal
        self._reported: set[str] = set()

    def attach_cpu(self, cpu) -> None:
        self.cpu = cpu
        self.mem.cpu = cpu

    def report_unimplemented(self, entry) -> None:
        """Warn once per syscall (or stop, with --strict) when the guest calls one we lack."""
        if self.options.strict:
            raise HermipyError(f"unimplemented syscall {entry.name} ({entry.nr}) called (--strict)", 126)
        if entry.name not in self._reported:
            self._reported.add(entry.name)
            sys.stderr.write(f"hermipy: warning: syscall {entry.name} ({entry.nr}) is not implemented; "
                             "returning ENOSYS\n")
            sys.stderr.flush()


def _host_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _host_rlimits() -> dict[int, list[int]]:
    import resource
    limits = {}
    for res in range(16):
        try:
            soft, hard = resource.getrlimit(res)
        except (ValueError, OSError):
            continue
        limits[res] = [RLIM_INFINITY if soft == resource.RLIM_INFINITY else soft,
                       RLIM_INFINITY if hard == resource.RLIM_INFINITY else hard]
    return limits
