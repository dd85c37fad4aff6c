"""The hermipy kernel: one ``Kernel`` per guest task (thread), and the objects tasks share.

Modelled on Linux's task_struct and gVisor's Task: a ``Kernel`` holds what is a thread's own (its CPU, tid,
signal mask and pending set, sigaltstack, clear_child_tid, robust list, name) and points to what clone may
share (kernel/fork.c copy_process: share or copy per flag): the address space ``mem`` (CLONE_VM), the fd
table ``fds`` (CLONE_FILES), the file-system context ``fs`` (CLONE_FS), the signal handlers
(``signals.actions``, CLONE_SIGHAND), and the ``ThreadGroup`` with the process identity ``proc``
(CLONE_THREAD). Handlers in ``sys_*.py`` take the calling task as their first argument.

Locks (few, each named after what it guards):
* ``ThreadGroup.lock``: the group's task list and exit state, every task's signal mask and pending sets and
  the shared pending set, the signal actions (Linux's siglock).
* ``AddressSpace.lock``: VMAs, page tables and the frame allocator (Linux's mmap_lock).
* ``FdTable.lock``: the fd table's slots (Linux's files->file_lock).
The GIL makes each Python operation atomic; these locks make the multi-step ones so.
"""
import os
import sys
import threading

from hermipy.errors import HermipyError
from hermipy.syscalls.files import FdTable, host_fd_room
from hermipy.syscalls.memory import AddressSpace, PhysicalMemory
from hermipy.syscalls.vfs import FsView

RLIM_INFINITY = (1 << 64) - 1
RLIMIT_NOFILE, RLIMIT_STACK = 7, 3


class Options:
    """What the user chose on the command line."""

    def __init__(self, root: str | None = None, strace: bool = False, strace_file: str | None = None,
                 strict: bool = False, memory: int = 4 << 30, backend: str = "unicorn", debug: bool = False,
                 rewrite: bool = True, cwd: str | None = None, user: tuple[int, int] | None = None,
                 exitless: bool = False):
        self.root, self.strace, self.strace_file, self.strict = root, strace, strace_file, strict
        self.memory, self.backend, self.debug, self.rewrite = memory, backend, debug, rewrite
        self.exitless = exitless           # KVM: serve I/O syscalls while the guest spins (KvmCpu._run_exitless)
        self.cwd = cwd                     # the guest's first working directory (an image's); default: as FsView
        self.user = user                   # (uid, gid) the guest starts with (an image's User); default: the host's


class Process:
    """Identity and per-process attributes (include/linux/sched.h, cred.h), taken from the host at start."""

    def __init__(self):
        self.pid = os.getpid()
        self.run_root = self.pid           # the run's first process: kill(-1) reaches its descendants only
        self.uid, self.gid, self.euid, self.egid = os.getuid(), os.getgid(), os.geteuid(), os.getegid()
        self.suid, self.sgid = self.euid, self.egid
        self.groups: list[int] = os.getgroups()
        self.umask = _host_umask()
        self.rlimits: dict[int, list[int]] = _host_rlimits()
        self.exe = ""                      # guest path of the executable (/proc/self/exe)
        self.argv: list[bytes] = []
        self.environ: list[bytes] = []
        self.auxv = b""
        self.forked = False                # a child hermipy process made by fork/clone (dies by real signals)
        self.vfork_done = -1               # host pipe fd a vfork parent waits on: closed at execve or exit
        self.cpu_time_watched = False      # it read or timed its CPU time: no exitless mode (sys_time.watch_cpu_time)
        self.timers: dict = {}             # POSIX timer id -> sys_timer.PosixTimer
        self.itimer_virtual = None         # sys_timer.VirtualItimer, once set (None: value and interval 0)
        self.guest_clock = None            # the same while armed: tasks then meter their guest CPU time for it
        self.mempolicy = (0, 0, 0)         # set_mempolicy's (mode, mode flags, nodemask get_mempolicy reports)
        self.exit_signals: dict[int, int] = {}   # pid -> the signal its exit sends here, for children whose clone
        #                                          asked for one other than SIGCHLD (0: none)
        self.parent: int | None = None     # a CLONE_VM process (a task group inside its parent's hermipy): the
        #                                    parent's pid; None for a process that is a hermipy process of its own

    @property
    def ppid(self) -> int:
        """The host's: hermipy's parent is the guest's, and a parent that exits reparents both alike (to init
        or a subreaper), as a daemon's double fork expects. A CLONE_VM process's is its parent's pid."""
        return os.getppid() if self.parent is None else self.parent

    def for_vm_child(self, pid: int) -> "Process":
        """copy_process() of the process attributes for a CLONE_VM process ``pid`` of this one: a copy (ids,
        limits, umask), no timers."""
        child = Process.__new__(Process)
        child.__dict__.update(self.__dict__)
        child.pid, child.parent, child.timers, child.vfork_done, child.exit_signals = pid, self.pid, {}, -1, {}
        child.itimer_virtual = child.guest_clock = None
        child.groups = list(self.groups)
        child.rlimits = {r: list(v) for r, v in self.rlimits.items()}
        return child


SIGKICK = 64        # the host signal that interrupts a task's host thread (KVM_RUN, a blocking host call)


class ThreadGroup:
    """What the threads of one process share besides memory and files (Linux's signal_struct, gVisor's
    ThreadGroup): the live tasks and how the group ends. ``lock`` guards all of it and every member's
    signal state (each SignalState's ``shared`` queue is the group's)."""

    def __init__(self):
        self.lock = threading.RLock()
        self.ended = threading.Condition(self.lock)     # notified as tasks leave
        self.tasks: dict[int, "Kernel"] = {}             # tid -> task, the live ones
        self.owner = threading.get_ident()               # the host thread that ends the process (runner)
        self.exiting = False           # exit_group, a fatal signal or execve: every task ends at its next stop
        self.exit_status = 0           # the status of exit_group / the fatal signal (128+N)
        self.killed_by = 0             # the signal that killed the group, for --strace's last line
        self.leader_status = 0         # what the leader passed to exit(): the status when no group exit came
        self.execing = False           # a thread is in execve past the point of no return (de_thread)
        self.exec_image: "Kernel | None" = None   # what that execve made, for the owner thread to run
        self.multithreaded = False     # a second task was ever created (strace shows [pid N])
        # CLONE_VM processes (clone with CLONE_VM, without CLONE_THREAD or CLONE_VFORK): groups of tasks inside
        # this hermipy process, each with a pid of its own (its first task's tid); see sys_fork.
        self.vm_parent: "ThreadGroup | None" = None   # the parent's group, for a CLONE_VM process's group
        self.exit_signal = 0           # what a CLONE_VM process's end sends its parent (clone's CSIGNAL)
        self.vm_children: dict[int, "ThreadGroup"] = {}      # pid -> group, the live CLONE_VM children
        self.vm_zombies: dict[int, tuple[int, int]] = {}     # pid -> (wait status, exit signal), not yet waited
        self.reported = False          # a CLONE_VM process's end was reported to its parent
        self.execed_as = 0             # a CLONE_VM process that exec'd: the host pid its new image runs as

    def others(self, me: "Kernel") -> list["Kernel"]:
        with self.lock:
            return [t for t in self.tasks.values() if t is not me]

    def begin_exit(self, status: int, me: "Kernel") -> None:
        """zap_other_threads(): the group ends with ``status``; every other task is kicked out of its run."""
        with self.lock:
            if not self.exiting:
                self.exiting, self.exit_status = True, status
            others = [t for t in self.tasks.values() if t is not me]
        for task in others:
            task.kick()


class Kernel:
    """One guest task: its own state, and the shared objects it points to (see the module docstring).

    ``successor_of``: execve's new image keeps the old one's open files (the caller closes the
    close-on-exec ones), cwd and root, identity, limits and umask."""

    def __init__(self, options: Options, successor_of: "Kernel | None" = None):
        self.options = options
        self.ram = PhysicalMemory(options.memory)
        self.mem = AddressSpace(self.ram)
        if successor_of is None:
            self.fs = FsView(options.root)
            if options.cwd:
                self.fs.cwd = options.cwd
            self.proc = Process()
            if options.user is not None:
                from hermipy.image import become
                become(self, *options.user)
            self.fds = FdTable(self.proc.rlimits[RLIMIT_NOFILE][0])
            self.fds.inherit_stdio()
            self.trace = None
        else:
            self.fs, self.fds, self.proc = successor_of.fs, successor_of.fds, successor_of.proc
            self.fs.synthetic = None           # /proc/self of the new image
            self.trace = successor_of.trace
        self.group = ThreadGroup()
        self.tid = self.proc.pid
        self.group.tasks[self.tid] = self
        self.cpu = None
        self.signals = None            # SignalState, created by sys_signal
        self.comm = b""
        self.exec_creds = None         # sys_info.ExecCredentials of the program loaded into this image
        self.clear_child_tid = 0
        self.robust_list = 0
        self.interrupt = False         # something (a signal, the group's exit) wants this task at its next stop
        self.serving_exitless = False  # a handler runs while the vCPU does (Dispatcher.serve_exitless): no register to touch
        self.host_thread = threading.get_ident()     # the host thread that runs this task
        self.guest_since = None        # its thread's CPU clock when it last entered guest code (proc.guest_clock)
        self._reported: set[str] = set()

    def clone_task(self, flags: int, clone_fs: int, clone_files: int) -> "Kernel":
        """copy_process() for a thread (CLONE_VM | CLONE_SIGHAND | CLONE_THREAD): shares memory, the thread
        group and the signal handlers; the fd table and fs context are shared or copied per flag. The tid
        and host thread are the caller's to set, the CPU too."""
        task = Kernel.__new__(Kernel)
        task.options, task.ram, task.mem, task.proc, task.trace = self.options, self.ram, self.mem, self.proc, self.trace
        task.fs = self.fs if flags & clone_fs else self.fs.copy()
        task.fds = self.fds if flags & clone_files else self.fds.copy()
        task.group = self.group
        task.tid = 0
        task.cpu = None
        task.signals = self.signals.for_thread()
        task.comm = self.comm
        task.clear_child_tid = task.robust_list = 0
        task.interrupt = task.serving_exitless = False
        task.host_thread = None
        task.guest_since = None
        task._reported = self._reported
        return task

    def clone_vm_process(self, flags: int, clone_fs: int, clone_files: int, clone_sighand: int) -> "Kernel":
        """copy_process() for a process sharing memory (CLONE_VM without CLONE_THREAD): a task in a new thread
        group and process of its own, with the fd table, fs context and signal handlers shared or copied per
        flag; the pid (its tid) is the caller's to set, as for a thread."""
        task = self.clone_task(flags, clone_fs, clone_files)
        task.proc = self.proc.for_vm_child(0)
        task.group = ThreadGroup()
        task.group.owner = None                # the process ends with its last task, not with a host thread
        task.group.vm_parent = self.group
        task.signals = self.signals.for_vm_process(bool(flags & clone_sighand))
        return task

    def kick(self) -> None:
        """Make this task look at its pending work (signals, the group's exit) soon, whatever it is doing:
        running guest code (its CPU stops), blocked in a host call (SIGKICK to its host thread: EINTR), or in
        the kernel (checked when the syscall returns)."""
        self.interrupt = True
        cpu = self.cpu
        if cpu is not None:
            cpu.kick()
        thread = self.host_thread
        if thread is not None and thread != threading.get_ident():
            import signal
            try:
                signal.pthread_kill(thread, SIGKICK)
            except (ProcessLookupError, OSError):
                pass                        # the thread has just ended
        from hermipy.syscalls.kicks import watch
        watch(self)

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
    soft, hard = limits[RLIMIT_NOFILE]
    hard = host_fd_room(hard)                  # what the guest can open, fd for fd, up to its hard limit
    limits[RLIMIT_NOFILE] = [min(soft, hard), hard]
    return limits
