"""The hermipy kernel: all state one guest process has (memory, files, identity, signals, time).

One ``Kernel`` serves every CPU backend; handlers in ``sys_*.py`` take it as their first argument.
"""
import os
import sys

from hermipy.errors import HermipyError
from hermipy.syscalls.files import FdTable
from hermipy.syscalls.memory import AddressSpace, PhysicalMemory
from hermipy.syscalls.vfs import FsView

RLIM_INFINITY = (1 << 64) - 1
RLIMIT_NOFILE, RLIMIT_STACK = 7, 3


class Options:
    """What the user chose on the command line."""

    def __init__(self, root: str | None = None, strace: bool = False, strace_file: str | None = None,
                 strict: bool = False, memory: int = 4 << 30, backend: str = "unicorn", debug: bool = False,
                 rewrite: bool = True):
        self.root, self.strace, self.strace_file, self.strict = root, strace, strace_file, strict
        self.memory, self.backend, self.debug, self.rewrite = memory, backend, debug, rewrite


class Process:
    """Identity and per-process attributes (include/linux/sched.h, cred.h), taken from the host at start."""

    def __init__(self):
        self.pid, self.ppid = os.getpid(), os.getppid()
        self.uid, self.gid, self.euid, self.egid = os.getuid(), os.getgid(), os.geteuid(), os.getegid()
        self.suid, self.sgid = self.euid, self.egid
        self.groups: list[int] = os.getgroups()
        self.umask = _host_umask()
        self.rlimits: dict[int, list[int]] = _host_rlimits()
        self.comm = b""
        self.exe = ""                      # guest path of the executable (/proc/self/exe)
        self.argv: list[bytes] = []
        self.environ: list[bytes] = []
        self.clear_child_tid = 0
        self.robust_list = 0
        self.auxv = b""
        self.forked = False                # a child hermipy process made by fork/clone (dies by real signals)
        self.vfork_done = -1               # host pipe fd a vfork parent waits on: closed at execve or exit
        self.mempolicy = (0, 0, 0)         # set_mempolicy's (mode, mode flags, nodemask get_mempolicy reports)


class Kernel:
    """One guest process's kernel state. ``successor_of``: execve's new image keeps the old one's open
    files (the caller closes the close-on-exec ones), cwd and root, identity, limits and umask."""

    def __init__(self, options: Options, successor_of: "Kernel | None" = None):
        self.options = options
        self.ram = PhysicalMemory(options.memory)
        self.mem = AddressSpace(self.ram)
        if successor_of is None:
            self.fs = FsView(options.root)
            self.fds = FdTable()
            self.fds.inherit_stdio()
            self.proc = Process()
            self.trace = None
        else:
            self.fs, self.fds, self.proc = successor_of.fs, successor_of.fds, successor_of.proc
            self.fs.synthetic = None           # /proc/self of the new image
            self.trace = successor_of.trace
        self.cpu = None
        self.brk_start = self.brk = 0
        self.membarrier_state = 0      # membarrier registrations of this mm: a fork copies them, execve drops them
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
