"""Processes: fork, vfork, clone, clone3, execve, execveat, wait4, waitid (kernel/fork.c, fs/exec.c,
kernel/exit.c).

Every guest process is a hermipy host process. fork is ``os.fork()`` taken inside the syscall: the child
goes on from the same instruction with a copy-on-write copy of guest RAM (one private host mapping) and of
the whole kernel state, so host pids, the process tree and wait statuses are the guest's own, and wait4 and
waitid are the host's. A backend that cannot be inherited across fork (KVM: a VM belongs to the process that
made it) is rebuilt in the child from the registers taken before the fork. execve loads the new program
into a fresh kernel (address space, CPU) that keeps the open files, cwd, identity and signal mask; any
failure before that point returns an errno to the unchanged caller, as Linux does.

A thread (CLONE_VM | CLONE_SIGHAND | CLONE_THREAD) is a new task in the same host process: a host thread of
its own driving a CPU of its own over the same guest memory (KVM: another vCPU of the VM; Unicorn: another
engine), sharing the thread group, signal handlers, fd table (or a copy, without CLONE_FILES) and fs context;
its tid is its host thread's, so tids are unique system-wide and PI futexes work on the host. fork from a
thread copies only that thread. A thread without CLONE_FS is refused with ENOSYS.

A process sharing memory (CLONE_VM without CLONE_THREAD or CLONE_VFORK: LinuxThreads-style runtimes, raw clone
users) is a task of a thread group and process of its own inside its parent's hermipy process (gVisor's model:
tasks of several processes over one address space): its pid is its host thread's id, its parent the caller,
its fd table, fs context and signal handlers shared or copied per flag. Its end (exit, exit_group, a fatal
signal) leaves a zombie that the parent's wait4 takes (with __WCLONE/__WALL as Linux matches them) and sends
the exit signal; kill/tgkill/tkill from this hermipy reach it. Its execve makes it a hermipy process of its
own (a host fork, then the exec): from then on the parent sees it as a host child, by its new pid. A vfork (CLONE_VM | CLONE_VFORK, as posix_spawn uses it) child runs on a
copy of the parent's memory instead of sharing it; the parent waits until it execs or exits, as Linux's does.
"""
import contextlib
import ctypes
import os
import stat
import struct
import sys
import threading
import time
from errno import E2BIG, EACCES, ECHILD, EINVAL, ELOOP, ENOENT, ENOSYS, EPERM

from hermipy.cpu import ReplaceImage
from hermipy.syscalls.coredump import take_dumped      # (its shared page exists before the first fork)
from hermipy.errors import ExecFailed, LoadError
from hermipy.syscalls.argtypes import AT_FDCWD, DirFd, Enum, Flags, Int, Path, Ptr, Size
from hermipy.syscalls.errors import SyscallError
from hermipy.syscalls.host import host_syscall
from hermipy.syscalls.sys_fs import AT_EMPTY_PATH, AT_SYMLINK_NOFOLLOW, _path, lookup
from hermipy.syscalls.sys_timer import forget_real_timer
from hermipy.syscalls.table import FULL, PARTIAL, TRACE_LOCK, syscall

CSIGNAL = 0xFF
FORK_EXIT_SIGNAL = 17                      # SIGCHLD: what fork() and most clones ask for
CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND = 0x100, 0x200, 0x400, 0x800
CLONE_PIDFD, CLONE_PTRACE, CLONE_VFORK, CLONE_PARENT, CLONE_THREAD = 0x1000, 0x2000, 0x4000, 0x8000, 0x10000
CLONE_NEWNS, CLONE_SYSVSEM, CLONE_SETTLS, CLONE_PARENT_SETTID = 0x20000, 0x40000, 0x80000, 0x100000
CLONE_CHILD_CLEARTID, CLONE_DETACHED, CLONE_UNTRACED, CLONE_CHILD_SETTID = 0x200000, 0x400000, 0x800000, 0x1000000
# What a process clone may ask for here (CLONE_VM only together with CLONE_VFORK), and a thread clone.
SUPPORTED = (CSIGNAL | CLONE_PIDFD | CLONE_VM | CLONE_VFORK | CLONE_SETTLS | CLONE_PARENT_SETTID
             | CLONE_CHILD_CLEARTID | CLONE_CHILD_SETTID | CLONE_DETACHED | CLONE_UNTRACED)
VM_PROCESS_SUPPORTED = (CSIGNAL | CLONE_PIDFD | CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_SYSVSEM
                        | CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID | CLONE_CHILD_SETTID
                        | CLONE_DETACHED | CLONE_UNTRACED)
THREAD_SUPPORTED = (CSIGNAL | CLONE_PIDFD | CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD
                    | CLONE_SYSVSEM | CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID | CLONE_CHILD_SETTID
                    | CLONE_DETACHED | CLONE_UNTRACED)
CLONE_ARGS = struct.Struct("<11Q")         # struct clone_args (uapi/linux/sched.h), CLONE_ARGS_SIZE_VER2
CLONE_ARGS_SIZE_VER0 = 64
MAX_ARG_STRLEN = 32 * 4096                 # one argv/envp string (include/uapi/linux/binfmts.h)
MAX_ARG_STRINGS = 0x7FFFFFFF
RUSAGE_SIZE, SIGINFO_SIZE = 144, 128
P_ALL, P_PID, P_PGID, P_PIDFD = 0, 1, 2, 3
WSTOPPED, WEXITED, WCONTINUED = 2, 4, 8
WAITID_FIELDS = 28                         # si_signo, si_errno, si_code, pad, si_pid, si_uid, si_status

CLONE_FLAGS = Flags({CLONE_VM: "CLONE_VM", CLONE_FS: "CLONE_FS", CLONE_FILES: "CLONE_FILES",
                     CLONE_SIGHAND: "CLONE_SIGHAND", CLONE_PIDFD: "CLONE_PIDFD", CLONE_VFORK: "CLONE_VFORK",
                     CLONE_PARENT: "CLONE_PARENT", CLONE_THREAD: "CLONE_THREAD", CLONE_SETTLS: "CLONE_SETTLS",
                     CLONE_PARENT_SETTID: "CLONE_PARENT_SETTID", CLONE_CHILD_CLEARTID: "CLONE_CHILD_CLEARTID",
                     CLONE_CHILD_SETTID: "CLONE_CHILD_SETTID", 17: "SIGCHLD"})
WAIT_OPTIONS = Flags({1: "WNOHANG", 2: "WUNTRACED", 4: "WEXITED", 8: "WCONTINUED", 0x01000000: "WNOWAIT",
                      0x20000000: "__WNOTHREAD", 0x40000000: "__WALL", 0x80000000: "__WCLONE"})
ID_TYPE = Enum({0: "P_ALL", 1: "P_PID", 2: "P_PGID", 3: "P_PIDFD"})
EXECVEAT_FLAGS = Flags({AT_SYMLINK_NOFOLLOW: "AT_SYMLINK_NOFOLLOW", AT_EMPTY_PATH: "AT_EMPTY_PATH"})


# -- fork -----------------------------------------------------------------------------------------------
def _check_clone_flags(k, flags: int) -> None:
    """copy_process()'s consistency checks (EINVAL), copy_namespaces()'s permission (EPERM; and the namespaces
    hermipy does not give, as unshare), then what hermipy cannot do (ENOSYS)."""
    from hermipy.syscalls.sys_ns import CLONE_NEWPID, CLONE_NEWUSER, HOST_NAMESPACES, NOT_OURS, capable_sys_admin
    if flags & (CLONE_NEWNS | CLONE_FS) == CLONE_NEWNS | CLONE_FS or flags & (CLONE_NEWUSER | CLONE_FS) == \
            CLONE_NEWUSER | CLONE_FS:
        raise SyscallError(EINVAL)
    if flags & CLONE_THREAD and not flags & CLONE_SIGHAND or flags & CLONE_SIGHAND and not flags & CLONE_VM:
        raise SyscallError(EINVAL)
    if flags & CLONE_PIDFD and flags & CLONE_DETACHED:
        raise SyscallError(EINVAL)
    namespaces = flags & (HOST_NAMESPACES | NOT_OURS)
    if namespaces:
        if flags & CLONE_THREAD and flags & (CLONE_NEWUSER | CLONE_NEWPID):
            raise SyscallError(EINVAL)
        if namespaces & ~CLONE_NEWUSER and not capable_sys_admin(k) or namespaces & NOT_OURS:
            raise SyscallError(EPERM)
    if flags & CLONE_THREAD:
        if flags & ~THREAD_SUPPORTED or not flags & CLONE_FS:
            raise SyscallError(ENOSYS)
    elif flags & (CLONE_VM | CLONE_VFORK) == CLONE_VM:
        if flags & ~VM_PROCESS_SUPPORTED:
            raise SyscallError(ENOSYS)
    elif flags & ~(SUPPORTED | HOST_NAMESPACES):
        raise SyscallError(ENOSYS)


def _cpu_state(cpu):
    """What a rebuilt CPU needs: registers, FS/GS base, the FXSAVE image."""
    return cpu.get_regs(), cpu.get_fs_base(), cpu.get_gs_base(), cpu.read_fpu_state()


IMPORT_SETTLE_LIMIT = 2.0                 # seconds a fork waits for other threads' imports to finish


@contextlib.contextmanager
def imports_settled():
    """Hold Python's import lock, once no other thread is midway through importing a module. A module lock
    held by another thread at the fork stays held forever in the child (only the forking thread goes on), and
    the child's first import of that module waits for it: hermipy imports lazily, from any guest thread."""
    import _imp
    bootstrap = sys.modules["_frozen_importlib"]      # importlib._bootstrap, always loaded
    me = threading.get_ident()
    deadline = time.monotonic() + IMPORT_SETTLE_LIMIT
    while True:
        _imp.acquire_lock()
        busy = any(getattr(ref(), "owner", None) not in (None, me) for ref in list(bootstrap._module_locks.values())
                   if ref() is not None)
        if not busy or time.monotonic() > deadline:
            break
        _imp.release_lock()
        time.sleep(0.0005)
    try:
        yield
    finally:
        _imp.release_lock()                    # (the child's copy: os.fork hands it the lock, as its owner)


def _flush_host_streams(k) -> None:
    """Buffered host output must not be written twice, once by each process."""
    sys.stdout.flush()
    sys.stderr.flush()
    if k.trace is not None:
        k.trace.flush()


def do_fork(k, flags: int, stack: int = 0, parent_tid: int = 0, child_tid: int = 0, tls: int = 0,
            pidfd: int = 0) -> int:
    """kernel_clone(): a thread, a process sharing memory, or a new process (the host forks here); returns the
    child's pid (tid) in the parent. With CLONE_PIDFD, a pidfd of the child is stored at ``pidfd``."""
    _check_clone_flags(k, flags)
    if flags & CLONE_PIDFD:
        k.mem.write(pidfd, bytes(4))          # copy_process's put_user: EFAULT before there is a child
    if flags & CLONE_THREAD:
        tid = _clone_thread(k, flags, stack, parent_tid, child_tid, tls)
    elif flags & (CLONE_VM | CLONE_VFORK) == CLONE_VM:
        tid = _clone_vm_process(k, flags, stack, parent_tid, child_tid, tls)
    else:
        tid = _fork_process(k, flags, stack, parent_tid, child_tid, tls)
        if tid and flags & CSIGNAL != FORK_EXIT_SIGNAL:
            k.proc.exit_signals[tid] = flags & CSIGNAL       # (host_signals turns the host's SIGCHLD into it)
    if flags & CLONE_PIDFD and tid:           # (not in a fork child, where this returns 0)
        from hermipy.syscalls.sys_process import pidfd_open
        k.mem.write(pidfd, struct.pack("<i", pidfd_open(k, tid, PIDFD_THREAD if flags & CLONE_THREAD else 0)))
    return tid


def _fork_process(k, flags: int, stack: int, parent_tid: int, child_tid: int, tls: int) -> int:
    """copy_process() for a process of its own: the host forks; returns the child's pid in the parent."""
    cpu = k.cpu
    state = None if cpu.survives_fork else _cpu_state(cpu)
    vfork = bool(flags & CLONE_VFORK)
    done_r, done_w = os.pipe2(os.O_CLOEXEC) if vfork else (-1, -1)
    with imports_settled(), k.mem.lock, TRACE_LOCK:   # (dup_mmap's mmap_lock) no other thread is midway through
        _flush_host_streams(k)                 # a change of the address space, a trace line or an import, whose
        pid = os.fork()                        # lock the child would find held by a thread it does not have
    if pid == 0:
        _become_child(k, flags, stack, parent_tid, child_tid, tls, state, done_r, done_w)
        return 0
    if vfork:
        os.close(done_w)
        _take_vfork_writes(k, done_r)
    if flags & CLONE_PARENT_SETTID:
        k.mem.write(parent_tid, struct.pack("<i", pid))
    return pid


VFORK_PAGE = struct.Struct("<Q4096s")    # what a vfork child hands back: a page's number and its contents


def _take_vfork_writes(k, done_r: int) -> None:
    """The vfork parent's wait (wait_for_vfork_done), until the child execs or ends (EOF): its memory is a copy
    of the parent's, so the pages it wrote come back through the pipe and are written here, as if the two had
    shared them (glibc's posix_spawn reads the child's exec error from the parent's stack this way)."""
    with os.fdopen(done_r, "rb") as pipe:
        data = pipe.read()
    for offset in range(0, len(data) - VFORK_PAGE.size + 1, VFORK_PAGE.size):
        vpn, page = VFORK_PAGE.unpack_from(data, offset)
        try:
            k.mem.write(vpn << 12, page)
        except SyscallError:               # unmapped or made read-only meanwhile by another thread: gone
            pass


def complete_vfork_done(k) -> None:
    """mm_release()'s complete_vfork_done, in a vfork child that execs or ends: hand the pages it wrote back
    to its parent (see _take_vfork_writes) and let the parent go on. Nothing in a process not made by vfork."""
    done = k.proc.vfork_done
    if done < 0:
        return
    k.proc.vfork_done = -1
    try:
        mem, view = k.mem, k.mem.view
        for vpn in mem.written_since_fork():
            frame = mem.frames.get(vpn)
            if frame is not None:
                record = memoryview(VFORK_PAGE.pack(vpn, bytes(view[frame:frame + 4096])))
                while record:
                    record = record[os.write(done, record):]
    except OSError:                       # the parent is gone
        pass
    finally:
        os.close(done)


def _clone_thread(k, flags, stack, parent_tid, child_tid, tls) -> int:
    """copy_process() for a thread: a task sharing what the flags say; returns its tid."""
    return _start_clone(k, k.clone_task(flags, CLONE_FS, CLONE_FILES), flags, stack, parent_tid, child_tid, tls)


def _start_clone(k, task, flags, stack, parent_tid, child_tid, tls, started=None) -> int:
    """The rest of copy_process() for ``task``: a new CPU that starts as a copy of the caller's (rax 0, the new
    stack and TLS), a new host thread, the tid words, then ``started(tid)``; then the task runs. Returns its tid."""
    from hermipy.runner import start_thread
    cpu = task.cpu = k.cpu.spawn()
    cpu.set_reg("rax", 0)
    if stack:
        cpu.set_reg("rsp", stack)
    if flags & CLONE_SETTLS:
        cpu.set_fs_base(tls)
    tid, go = start_thread(task)
    try:
        for flag, addr in ((CLONE_PARENT_SETTID, parent_tid), (CLONE_CHILD_SETTID, child_tid)):
            if flags & flag:
                k.mem.write(addr, struct.pack("<i", tid))
        if flags & CLONE_CHILD_CLEARTID:
            task.clear_child_tid = child_tid
        if started is not None:
            started(tid)
    finally:
        go.set()
    return tid


VM_PROCESSES: dict[int, object] = {}     # pid -> ThreadGroup of every live CLONE_VM process in this hermipy
VM_EXECED: dict[int, int] = {}           # host pid -> pid, of CLONE_VM processes that exec'd (host children now)


def _clone_vm_process(k, flags, stack, parent_tid, child_tid, tls) -> int:
    """copy_process() for a process sharing the caller's memory: a task of a new thread group, run by a new
    host thread on a new CPU, as a thread is. From now on the address space serves tasks of two processes, so
    nothing is answered inside the guest from the shared answer page (getpid & co. differ between them)."""
    k.mem.shared_by_processes = True
    k.cpu.stop_answering_in_guest()
    task = k.clone_vm_process(flags, CLONE_FS, CLONE_FILES, CLONE_SIGHAND)
    task.group.exit_signal = flags & CSIGNAL

    def started(tid: int) -> None:
        task.proc.pid = tid
        task.group.multithreaded = False
        with k.group.lock:
            k.group.vm_children[tid] = task.group
        VM_PROCESSES[tid] = task.group
    return _start_clone(k, task, flags, stack, parent_tid, child_tid, tls, started)


def vm_process_ended(task) -> None:
    """exit_notify() for a CLONE_VM process whose last task has ended: a zombie for its parent's wait (none
    when the parent ignores SIGCHLD or set SA_NOCLDWAIT and the exit signal is SIGCHLD), and the exit signal
    with its CLD_EXITED/CLD_KILLED siginfo."""
    from hermipy.syscalls.sys_signal import SA_NOCLDWAIT, SIG_IGN, SIGCHLD, make_siginfo, signal_group
    group = task.group
    with group.lock:
        if group.tasks or group.reported:
            return
        group.reported = True
    pid = task.proc.pid
    VM_PROCESSES.pop(pid, None)
    parent = group.vm_parent
    if group.execed_as:                      # its new image is a host child of this process now
        with parent.lock:
            parent.vm_children.pop(pid, None)
        return
    if group.killed_by:
        status, code, value = group.killed_by & 0x7F, CLD_KILLED, group.killed_by
    else:
        value = (group.exit_status if group.exiting else group.leader_status) & 0xFF
        status, code = value << 8, CLD_EXITED
    with parent.lock:
        parent.vm_children.pop(pid, None)
        leader = next(iter(parent.tasks.values()), None)
        if leader is None:
            return
        action = leader.signals.actions[SIGCHLD]
        if not (group.exit_signal == SIGCHLD and (action.handler == SIG_IGN or action.flags & SA_NOCLDWAIT)):
            parent.vm_zombies[pid] = (status, group.exit_signal)
        parent.ended.notify_all()
    if group.exit_signal:
        info = bytearray(make_siginfo(group.exit_signal, code, pid=pid, uid=task.proc.uid))
        struct.pack_into("<i", info, 24, value)
        signal_group(leader, group.exit_signal, bytes(info))


CLD_EXITED, CLD_KILLED, CLD_DUMPED = 1, 2, 3
PIDFD_THREAD = os.O_EXCL                    # uapi/linux/pidfd.h


def _enter_new_namespaces(flags: int) -> None:
    """copy_namespaces() in a fork child: the UTS, IPC, network and cgroup namespaces asked for are the host's
    unshare on its thread (as sys_ns.unshare); if the host refuses, the child cannot run as asked and ends."""
    from hermipy.syscalls.sys_ns import HOST_NAMESPACES
    namespaces = flags & HOST_NAMESPACES
    if namespaces:
        try:
            host_syscall("unshare", namespaces)
        except SyscallError as err:
            sys.stderr.write(f"hermipy: clone: the host refused the child's namespaces: {os.strerror(err.errno)}\n")
            os._exit(127)


def _become_child(k, flags, stack, parent_tid, child_tid, tls, state, done_r, done_w) -> None:
    """The child's side of do_fork: identity, tid pointers, stack and TLS, and a CPU it can use. Only the
    calling thread goes on in the child; it leads a thread group of its own."""
    from hermipy.runner import become_sole_task
    proc = k.proc
    proc.pid = os.getpid()
    proc.forked = True
    proc.timers = {}                         # POSIX timers are not inherited (nor alarm/itimers: the host's)
    proc.exit_signals = {}
    k.mem.forget_locks()
    proc.itimer_virtual = proc.guest_clock = None
    forget_real_timer()
    k.signals.pending = {}                   # copy_process: the child starts with no pending signals (before
    k.signals.shared = {}                    # its signal pump starts: what is sent to it from now on counts)
    become_sole_task(k)
    k.cpu.sole_in_child()
    if proc.vfork_done >= 0:                 # a vfork parent waits for its own child, not for this one
        os.close(proc.vfork_done)
    proc.vfork_done = -1
    if done_w >= 0:
        os.close(done_r)
        proc.vfork_done = done_w
    _enter_new_namespaces(flags)
    k.clear_child_tid = child_tid if flags & CLONE_CHILD_CLEARTID else 0
    for flag, addr in ((CLONE_CHILD_SETTID, child_tid), (CLONE_PARENT_SETTID, parent_tid)):
        if flags & flag:
            k.mem.write(addr, struct.pack("<i", proc.pid))
    cpu = k.cpu
    if state is not None:
        from hermipy.runner import attach_new_cpu
        regs, fs_base, gs_base, fpu = state
        cpu = attach_new_cpu(k, cpu.name, forked_from=cpu)
        cpu.set_regs(regs)
        cpu.set_gs_base(gs_base)
        cpu.write_fpu_state(fpu)
        cpu.set_fs_base(fs_base)
        cpu.set_reg("rax", 0)
    if stack:
        cpu.set_reg("rsp", stack)
    if flags & CLONE_SETTLS:
        cpu.set_fs_base(tls)
    if state is not None:
        raise ReplaceImage(k)


@syscall("fork", PARTIAL, note="a host process with a copy-on-write copy of guest memory (MAP_SHARED mappings "
                               "stay shared); MADV_DONTFORK and MADV_WIPEONFORK are not honoured")
def fork(k) -> int:
    """fork(2)."""
    return do_fork(k, FORK_EXIT_SIGNAL)


@syscall("vfork", PARTIAL, note="the child runs on a copy of the parent's memory; the parent waits until it "
                                "execs or exits")
def vfork(k) -> int:
    """vfork(2)."""
    return do_fork(k, CLONE_VM | CLONE_VFORK | FORK_EXIT_SIGNAL)


@syscall("clone", PARTIAL, note="processes (fork-like, or CLONE_VM|CLONE_VFORK as posix_spawn uses it), threads "
                                "(CLONE_VM|CLONE_SIGHAND|CLONE_THREAD with CLONE_FS, CLONE_FILES optional: glibc, musl, "
                                "Go) and processes sharing memory (CLONE_VM without CLONE_THREAD: tasks of a process "
                                "of their own inside the parent's hermipy; a signal sent to one by another process "
                                "reaches its parent; after its execve it is a hermipy process of its own whose "
                                "getpid is a new pid, while the parent's wait and kill go on using clone's); CLONE_PIDFD; "
                                "UTS, IPC, network and cgroup namespaces for a new process (the host's unshare in "
                                "the child), the others EPERM as for unshare; a new process's exit signal other than "
                                "SIGCHLD is the signal its parent gets, though a plain wait also reaps it (Linux: "
                                "only __WCLONE/__WALL do); ENOSYS for a thread without CLONE_FS, "
                                "CLONE_PARENT, CLONE_FILES or CLONE_SIGHAND between processes")
def clone(k, flags: CLONE_FLAGS, newsp: Ptr, parent_tidptr: Ptr, child_tidptr: Ptr, tls: Ptr) -> int:
    """clone(2), x86-64 argument order: flags, stack, parent_tid, child_tid, tls."""
    flags &= 0xFFFFFFFF
    if flags & CLONE_PIDFD and flags & CLONE_PARENT_SETTID:
        raise SyscallError(EINVAL)           # one pointer for both (kernel/fork.c, clone syscall)
    return do_fork(k, flags, newsp, parent_tidptr, child_tidptr, tls, parent_tidptr)


@syscall("clone3", PARTIAL, note="as clone (processes and threads); set_tid and cgroup: ENOSYS")
def clone3(k, uargs: Ptr, size: Size) -> int:
    """clone3(2): struct clone_args; the stack is [stack, stack + stack_size)."""
    if size < CLONE_ARGS_SIZE_VER0 or size > 4096:
        raise SyscallError(EINVAL)
    raw = k.mem.read(uargs, min(size, CLONE_ARGS.size)).ljust(CLONE_ARGS.size, b"\0")
    if size > CLONE_ARGS.size and any(k.mem.read(uargs + CLONE_ARGS.size, size - CLONE_ARGS.size)):
        raise SyscallError(E2BIG)
    (flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size,
     cgroup) = CLONE_ARGS.unpack(raw)
    if exit_signal & ~CSIGNAL or flags & CSIGNAL or bool(stack) != bool(stack_size):
        raise SyscallError(EINVAL)
    if set_tid or set_tid_size or cgroup:
        raise SyscallError(ENOSYS)
    return do_fork(k, flags | exit_signal, stack + stack_size if stack else 0, parent_tid, child_tid, tls, pidfd)


# -- execve ---------------------------------------------------------------------------------------------
def _strings(k, addr: int) -> list[bytes]:
    """A NULL-terminated array of C strings (argv or envp); a NULL array is empty."""
    out = []
    while addr:
        (ptr,) = struct.unpack("<Q", k.mem.read(addr, 8))
        if not ptr:
            break
        s = k.mem.read_cstr(ptr, MAX_ARG_STRLEN + 1)
        if len(s) > MAX_ARG_STRLEN or len(out) >= MAX_ARG_STRINGS:
            raise SyscallError(E2BIG)
        out.append(s)
        addr += 8
    return out


def do_execve(k, dirfd: int, path: str, argv: list[bytes], envp: list[bytes], flags: int) -> int:
    """do_execveat_common(): load into a new image; on success the old one is gone and the run goes on
    with the new kernel (ReplaceImage); any error before that is the caller's errno."""
    from hermipy.runner import boot, start_program
    from hermipy.syscalls.sys_fs import _dir_base
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise SyscallError(EINVAL)
    if not path:
        if not flags & AT_EMPTY_PATH:
            raise SyscallError(ENOENT)
        path = k.fds.get(dirfd).path
    elif not path.startswith("/") and dirfd != AT_FDCWD:
        path = k.fs.absolute(_dir_base(k, dirfd), path)
    target = lookup(k, AT_FDCWD, path)       # /proc/self/exe, /dev/fd/N: the caller's, resolved now
    if target.missing:
        raise SyscallError(ENOENT)
    if flags & AT_SYMLINK_NOFOLLOW and stat.S_ISLNK(lookup(k, AT_FDCWD, path, follow=False).stat(False).st_mode):
        raise SyscallError(ELOOP)            # do_open_execat: O_NOFOLLOW
    if not argv:
        argv = [b""]                         # bprm_stack_limits/do_execveat_common (5.18+): argv[0] is ""
    if target.node is not None or not stat.S_ISREG(target.stat().st_mode):
        raise SyscallError(EACCES)
    try:
        target.access(os.X_OK, 0)
    except OSError:
        raise SyscallError(EACCES) from None
    if "/proc" in path or "/dev" in path:
        path = target.guest
    new = boot(k.options, successor_of=k)
    try:
        start_program(new, path, argv, envp)
    except ExecFailed:                      # past the point of no return: the caller dies of SIGSEGV
        new.cpu.close()
        from hermipy.syscalls.sys_signal import SIGSEGV, terminate_by_signal
        terminate_by_signal(k, SIGSEGV)
    except (LoadError, SyscallError, OSError) as err:
        new.cpu.close()
        raise SyscallError(err.errno) from None
    if k.proc.parent is not None:           # a CLONE_VM process: its new image is a hermipy process of its own
        new.cpu.close()
        _leave_parent_process(k)             # (returns in the new host process only)
        new = boot(k.options, successor_of=k)
        try:
            start_program(new, path, argv, envp)
        except (ExecFailed, LoadError, SyscallError, OSError):
            new.cpu.close()
            from hermipy.syscalls.sys_signal import SIGSEGV, terminate_by_signal
            terminate_by_signal(k, SIGSEGV)
    # The point of no return (begin_new_exec): the other threads end (de_thread), then the old image goes.
    from hermipy.runner import end_other_threads
    end_other_threads(k)
    k.ram.close_windows()
    from hermipy.syscalls.sys_timer import delete_all
    delete_all(k)
    from hermipy.syscalls.sys_info import commit_exec_credentials
    commit_exec_credentials(k, new.exec_creds)
    from hermipy.syscalls.sys_signal import SIGCHLD, sync_host_sigchld
    sync_host_sigchld(new.signals.actions[SIGCHLD])     # flush_signal_handlers: the SA_ flags are gone
    for fd in sorted(k.fds.cloexec):
        k.fds.close(fd)
    k.clear_child_tid = k.robust_list = 0
    complete_vfork_done(k)
    if k.trace is not None:                 # the dispatcher never sees this call return
        k.trace.write(f"execve({path!r}, ...) = 0\n")
    raise ReplaceImage(new)


@syscall("execve", PARTIAL, note="ELF (static, static-PIE, dynamic) and #! scripts; set-user-ID and "
                                 "set-group-ID bits and file capabilities apply as Linux applies them where "
                                 "hermipy's host process can take the credentials, and otherwise as Linux applies "
                                 "them to an unsafe (traced) exec: no privilege gained")
def execve(k, filename: Path, argv: Ptr, envp: Ptr) -> int:
    """execve(2)."""
    return do_execve(k, AT_FDCWD, _path(k, filename), _strings(k, argv), _strings(k, envp), 0)


@syscall("execveat", PARTIAL, note="as execve; AT_EMPTY_PATH runs the file the fd names; a script run "
                                   "through a dirfd sees its path, not Linux's /dev/fd/N/NAME")
def execveat(k, dirfd: DirFd, filename: Path, argv: Ptr, envp: Ptr, flags: EXECVEAT_FLAGS) -> int:
    """execveat(2)."""
    return do_execve(k, dirfd, _path(k, filename), _strings(k, argv), _strings(k, envp), flags)


def _leave_parent_process(k) -> None:
    """execve in a CLONE_VM process, past its checks: the host forks; the child goes on as a hermipy process of
    its own (pid: the host's), the one exec then changes; in this process the task ends without a zombie (the
    parent now waits for the host child: VM_EXECED says which pid it was)."""
    from hermipy.runner import become_sole_task
    from hermipy.cpu import GuestExit
    with imports_settled(), k.mem.lock, TRACE_LOCK:
        _flush_host_streams(k)
        pid = os.fork()
    if pid == 0:
        proc = k.proc
        proc.pid, proc.parent, proc.forked = os.getpid(), None, True
        k.signals.pending = {}
        k.signals.shared = {}
        VM_PROCESSES.clear()
        VM_EXECED.clear()
        become_sole_task(k)
        k.cpu.sole_in_child()
        return
    group = k.group
    group.execed_as = pid
    VM_EXECED[pid], VM_EXECED_HOST[k.proc.pid] = k.proc.pid, pid
    group.begin_exit(0, k)
    raise GuestExit(0)


# -- wait -----------------------------------------------------------------------------------------------
def _waited(k, result: int):
    """A wait that found a child: the SIGCHLD its exit, stop or continuation sent is pending on return, as
    on Linux (the host has it already; the signal pump may not have forwarded it yet)."""
    from hermipy.syscalls.host_signals import drain
    from hermipy.syscalls.sys_signal import _finish
    drain()
    return _finish(k, result)


@syscall("wait4", FULL)
def wait4(k, upid: Int, stat_addr: Ptr, options: WAIT_OPTIONS, ru: Ptr) -> int:
    """wait4(2): the guest's children are the host process's children (stops and continuations, with
    WUNTRACED/WCONTINUED, are the host processes'; SA_NOCLDWAIT is the host's: sys_signal.sync_host_sigchld)."""
    group = k.group
    if group.vm_children or group.vm_zombies:
        return _wait4_with_vm_children(k, upid, stat_addr, options, ru)
    status = ctypes.c_int(0)
    rusage = ctypes.create_string_buffer(RUSAGE_SIZE)
    pid = host_syscall("wait4", VM_EXECED_HOST.get(upid, upid), ctypes.addressof(status), options,
                       ctypes.addressof(rusage) if ru else 0)
    if not pid:
        return 0
    if stat_addr:
        k.mem.write(stat_addr, struct.pack("<i", _with_core_flag(pid, status.value, options)))
    if ru:
        k.mem.write(ru, rusage.raw)
    return _waited(k, _vm_pid(pid))


def _with_core_flag(pid: int, status: int, options: int) -> int:
    """A child killed by a signal whose core hermipy wrote: WCOREDUMP (0x80), as the host's own would set."""
    if 0 < status & 0x7F < 0x7F:
        if take_dumped(pid, keep=bool(options & WNOWAIT)):
            return status | 0x80
    return status


def _with_cld_dumped(info, options: int) -> None:
    """waitid's siginfo for such a child: CLD_DUMPED instead of the host's CLD_KILLED."""
    if struct.unpack_from("<i", info, 8)[0] == CLD_KILLED:
        if take_dumped(struct.unpack_from("<i", info, 16)[0], keep=bool(options & WNOWAIT)):
            struct.pack_into("<i", info, 8, CLD_DUMPED)


VM_EXECED_HOST: dict[int, int] = {}      # pid -> host pid: VM_EXECED the other way round
WNOHANG, WNOWAIT, WALL, WCLONE = 1, 0x01000000, 0x40000000, 0x80000000
VM_WAIT_POLL_NS = 2_000_000              # how often a wait that may end by a CLONE_VM process looks again


def _vm_pid(host_pid: int) -> int:
    """The pid the guest knows a reaped host child by (a CLONE_VM process that exec'd: its clone's)."""
    pid = VM_EXECED.pop(host_pid, None)
    if pid is None:
        return host_pid
    VM_EXECED_HOST.pop(pid, None)
    return pid


def _vm_match(pid: int, exit_signal: int, upid: int, options: int) -> bool:
    """eligible_child(): the pid or process group, and __WCLONE/__WALL against the exit signal (a child whose
    exit signal is not SIGCHLD is a clone child)."""
    if upid > 0 and pid != upid or upid < -1 and -upid != os.getpgrp():
        return False
    return bool(options & WALL) or bool(options & WCLONE) == (exit_signal != FORK_EXIT_SIGNAL)


def _wait4_with_vm_children(k, upid, stat_addr, options, ru) -> int:
    """wait4 of a process with CLONE_VM children (see _wait_with_vm_children)."""
    def from_host(host_options):
        status = ctypes.c_int(0)
        rusage = ctypes.create_string_buffer(RUSAGE_SIZE)
        pid = host_syscall("wait4", VM_EXECED_HOST.get(upid, upid), ctypes.addressof(status), host_options,
                           ctypes.addressof(rusage) if ru else 0)
        if not pid:
            return None
        if stat_addr:
            k.mem.write(stat_addr, struct.pack("<i", _with_core_flag(pid, status.value, host_options)))
        if ru:
            k.mem.write(ru, rusage.raw)
        return _waited(k, _vm_pid(pid))

    def from_zombie(pid, status, code, value):
        if stat_addr:
            k.mem.write(stat_addr, struct.pack("<i", status))
        if ru:
            k.mem.write(ru, bytes(RUSAGE_SIZE))
        return _waited(k, pid)
    found = _wait_with_vm_children(k, upid, options, True, from_host, from_zombie)
    return 0 if found is None else found


def _wait_with_vm_children(k, upid: int, options: int, exited: bool, from_host, from_zombie):
    """do_wait() of a process with CLONE_VM children: a zombie of theirs that ``upid`` (wait4's convention) and
    the options match (``exited``: WEXITED asked for) goes to ``from_zombie(pid, status, si_code, si_status)``;
    else the host's children are asked (``from_host(options | WNOHANG)``: None when none is ready); else None
    with WNOHANG, ECHILD with nothing left to wait for, or a wait a kick interrupts (ERESTARTSYS) that looks
    again every VM_WAIT_POLL_NS."""
    from hermipy.syscalls.kicks import wait
    from hermipy.syscalls.sys_io import Timespec
    group = k.group
    while True:
        with group.lock:
            zombie = next(((pid, st) for pid, (st, sig) in group.vm_zombies.items()
                           if exited and _vm_match(pid, sig, upid, options)), None)
            if zombie is not None and not options & WNOWAIT:
                del group.vm_zombies[zombie[0]]
            live = any(_vm_match(pid, g.exit_signal, upid, options) for pid, g in group.vm_children.items())
        if zombie is not None:
            pid, status = zombie
            killed = status & 0x7F
            return from_zombie(pid, status, CLD_KILLED if killed else CLD_EXITED, killed or status >> 8)
        host_children = upid <= 0 or upid not in VM_PROCESSES
        if host_children:
            try:
                found = from_host(options | WNOHANG)
            except ChildProcessError:
                found, host_children = None, False
            if found is not None:
                return found
        if not live and not host_children:
            raise SyscallError(ECHILD)
        if options & WNOHANG:
            return None
        wait(k, None, 0, Timespec(0, VM_WAIT_POLL_NS))


@syscall("waitid", FULL)
def waitid(k, which: ID_TYPE, upid: Int, infop: Ptr, options: WAIT_OPTIONS, ru: Ptr) -> int:
    """waitid(2): siginfo_t (CLD_EXITED/KILLED/DUMPED/STOPPED/CONTINUED) and struct rusage from the host; a
    pidfd is the guest's fd."""
    group = k.group
    if which != P_PIDFD and (group.vm_children or group.vm_zombies):
        return _waitid_with_vm_children(k, which, upid, infop, options, ru)
    if which == P_PIDFD:
        upid = k.fds.get(upid).host_fd
    elif which == P_PID:
        upid = VM_EXECED_HOST.get(upid, upid)
    info = ctypes.create_string_buffer(SIGINFO_SIZE)
    rusage = ctypes.create_string_buffer(RUSAGE_SIZE)
    try:
        host_syscall("waitid", which, upid, ctypes.addressof(info), options, ctypes.addressof(rusage) if ru else 0)
    except OSError:
        if infop:                            # the fields waitid sets are written, zero, even when it fails
            k.mem.write(infop, bytes(WAITID_FIELDS))
        raise
    _with_cld_dumped(info, options)
    if infop:
        k.mem.write(infop, info.raw)
    if ru:
        k.mem.write(ru, rusage.raw)
    if not struct.unpack_from("<i", info, 0)[0]:      # WNOHANG and no child ready: si_signo 0
        return 0
    return _waited(k, 0)


def _waitid_with_vm_children(k, which, upid, infop, options, ru) -> int:
    """waitid of a process with CLONE_VM children (see _wait_with_vm_children); P_PGID 0 is the caller's group."""
    as_wait4 = -1 if which == P_ALL else upid if which == P_PID else -(upid or os.getpgrp())

    def from_host(host_options):
        info = ctypes.create_string_buffer(SIGINFO_SIZE)
        rusage = ctypes.create_string_buffer(RUSAGE_SIZE)
        host_syscall("waitid", which, VM_EXECED_HOST.get(upid, upid) if which == P_PID else upid,
                     ctypes.addressof(info), host_options, ctypes.addressof(rusage) if ru else 0)
        if not struct.unpack_from("<i", info, 0)[0]:
            return None
        _with_cld_dumped(info, host_options)
        struct.pack_into("<i", info, 16, _vm_pid(struct.unpack_from("<i", info, 16)[0]))
        if infop:
            k.mem.write(infop, info.raw)
        if ru:
            k.mem.write(ru, rusage.raw)
        return _waited(k, 0)

    def from_zombie(pid, status, code, value):
        if infop:
            k.mem.write(infop, struct.pack("<iii4xiIi", 17, 0, code, pid, k.proc.uid, value))
        if ru:
            k.mem.write(ru, bytes(RUSAGE_SIZE))
        return _waited(k, 0)
    if which not in (P_ALL, P_PID, P_PGID) or not options & (WEXITED | WSTOPPED | WCONTINUED):
        raise SyscallError(EINVAL)
    found = None
    try:
        found = _wait_with_vm_children(k, as_wait4, options, bool(options & WEXITED), from_host, from_zombie)
    finally:
        if found is None and infop:          # none (WNOHANG) or an error: the fields waitid sets are zero
            k.mem.write(infop, bytes(WAITID_FIELDS))
    return 0 if found is None else found
