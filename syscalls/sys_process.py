"""Process lifetime and identity: exit, ids, arch_prctl, set_tid_address, prctl, rseq, pidfds (kernel/exit.c, sys.c,
pid.c)."""
import ctypes
import os
import struct
from errno import EBADF, EFAULT, EINVAL, ENODEV, ENOSYS, EPERM, ESRCH

from hermipy.cpu import GuestExit
from hermipy.layout import PAGE_SIZE
from hermipy.syscalls.argtypes import Enum, Flags, Int, Ptr, Signal, Size, UInt
from hermipy.syscalls.errors import ERESTARTNOHAND, SyscallError
from hermipy.syscalls.host import host_syscall
from hermipy.syscalls.table import FULL, PARTIAL, STUB, declare, syscall

ARCH_SET_GS, ARCH_SET_FS, ARCH_GET_FS, ARCH_GET_GS = 0x1001, 0x1002, 0x1003, 0x1004
ARCH_GET_CPUID, ARCH_SET_CPUID = 0x1011, 0x1012
PR_SET_TIMERSLACK, PR_GET_TIMERSLACK = 29, 30
USER_TOP = 1 << 47


@syscall("exit", FULL)
def exit(k, status: Int) -> int:
    """exit(2): ends the calling thread; the process ends with the last one (runner.finish_task)."""
    raise GuestExit(status & 0xFF)


@syscall("exit_group", FULL)
def exit_group(k, status: Int) -> int:
    """exit_group(2): every thread of the group ends."""
    k.group.begin_exit(status & 0xFF, k)
    raise GuestExit(status & 0xFF)


@syscall("getpid", FULL)
def getpid(k) -> int:
    return k.proc.pid


@syscall("gettid", FULL)
def gettid(k) -> int:
    return k.tid


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


@syscall("arch_prctl", PARTIAL, note="ARCH_SET/GET_FS/GS; ARCH_GET_CPUID says enabled and ARCH_SET_CPUID is ENODEV, as "
                                    "on a CPU without CPUID faulting; the XSTATE permission, LAM, shadow-stack and "
                                    "MAP_VDSO codes are EINVAL")
def arch_prctl(k, code: Enum({0x1001: "ARCH_SET_GS", 0x1002: "ARCH_SET_FS", 0x1003: "ARCH_GET_FS",
                              0x1004: "ARCH_GET_GS", 0x1011: "ARCH_GET_CPUID", 0x1012: "ARCH_SET_CPUID"}),
               addr: Ptr) -> int:
    """arch_prctl(2): FS/GS base for TLS; CPUID always enabled, as on a CPU without CPUID faulting
    (arch/x86/kernel/process.c: ARCH_SET_CPUID is ENODEV there)."""
    if code == ARCH_GET_CPUID:
        return 1
    if code == ARCH_SET_CPUID:
        raise SyscallError(ENODEV)
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
    k.clear_child_tid = tidptr
    return k.proc.pid


@syscall("set_robust_list", FULL)
def set_robust_list(k, head: Ptr, length: Size) -> int:
    """set_robust_list(2): the head size must be sizeof(struct robust_list_head) (24)."""
    if length != 24:
        raise SyscallError(EINVAL)
    k.robust_list = head
    return 0


@syscall("get_robust_list", PARTIAL, note="threads of the caller's own process; other pids are ESRCH")
def get_robust_list(k, pid: Int, head_ptr: Ptr, len_ptr: Ptr) -> int:
    """get_robust_list(2): the list head a thread registered (0 or its tid: the caller's own)."""
    task = k if pid == 0 else k.group.tasks.get(pid)
    if task is None:
        raise SyscallError(ESRCH)
    k.mem.write(head_ptr, struct.pack("<Q", task.robust_list))
    k.mem.write(len_ptr, struct.pack("<Q", 24))
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


@syscall("getpgrp", FULL)
def getpgrp(k) -> int:
    """getpgrp(2): the guest's process is hermipy's on the host, and so is its group."""
    return os.getpgrp()


@syscall("getpgid", FULL)
def getpgid(k, pid: Int) -> int:
    """getpgid(2): guest pids are host pids, so any process's group is the host's answer (ESRCH included)."""
    return os.getpgid(pid)


@syscall("getsid", FULL)
def getsid(k, pid: Int) -> int:
    """getsid(2), as getpgid."""
    return os.getsid(pid)


@syscall("setpgid", PARTIAL, note="the host's setpgid on the hermipy processes (pids are the host's, so a shell "
                                  "can put its child in a group); a child that has run execve is not told apart "
                                  "(hermipy's execve is not the host's): EACCES is never returned")
def setpgid(k, pid: Int, pgid: Int) -> int:
    """setpgid(2): pid 0 or the caller, or one of its children (the host process's children)."""
    from hermipy.syscalls.host import host_syscall
    return host_syscall("setpgid", pid, pgid)


@syscall("setsid", FULL)
def setsid(k) -> int:
    """setsid(2): EPERM for a process-group leader, like the host says."""
    return os.setsid()


PR_SET_PDEATHSIG, PR_GET_PDEATHSIG, PR_GET_DUMPABLE, PR_SET_DUMPABLE = 1, 2, 3, 4
PR_SET_NAME, PR_GET_NAME = 15, 16
TASK_COMM_LEN = 16
NSIG = 64


@syscall("prctl", PARTIAL, note="PR_SET_NAME/PR_GET_NAME, PR_[GS]ET_DUMPABLE, PR_[GS]ET_PDEATHSIG, "
                                "PR_[GS]ET_KEEPCAPS, PR_[GS]ET_SECUREBITS, PR_CAPBSET_READ/DROP, "
                                "PR_[GS]ET_NO_NEW_PRIVS, PR_CAP_AMBIENT (these bind on the host; of the "
                                "securebits hermipy's own setuid rules follow KEEP_CAPS alone), "
                                "PR_[GS]ET_TIMERSLACK (the host thread's); "
                                "other options are EINVAL")
def prctl(k, option: Enum({1: "PR_SET_PDEATHSIG", 2: "PR_GET_PDEATHSIG", 3: "PR_GET_DUMPABLE",
                           4: "PR_SET_DUMPABLE", 7: "PR_GET_KEEPCAPS", 8: "PR_SET_KEEPCAPS", 15: "PR_SET_NAME",
                           16: "PR_GET_NAME", 23: "PR_CAPBSET_READ", 24: "PR_CAPBSET_DROP",
                           27: "PR_GET_SECUREBITS", 28: "PR_SET_SECUREBITS", 29: "PR_SET_TIMERSLACK",
                           30: "PR_GET_TIMERSLACK", 38: "PR_SET_NO_NEW_PRIVS", 39: "PR_GET_NO_NEW_PRIVS",
                           47: "PR_CAP_AMBIENT"}),
          arg2: Ptr, arg3: Ptr, arg4: Ptr, arg5: Ptr) -> int:
    """prctl(2) (kernel/sys.c)."""
    p = k.proc
    if option == PR_SET_NAME:
        k.comm = k.mem.read_cstr(arg2, TASK_COMM_LEN)[:TASK_COMM_LEN - 1]
        return 0
    if option == PR_GET_NAME:
        k.mem.write(arg2, k.comm[:TASK_COMM_LEN - 1] + b"\0")
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
    if option in (PR_GET_TIMERSLACK, PR_SET_TIMERSLACK):       # per thread: the host thread's own
        return host_syscall("prctl", option, arg2, arg3, arg4, arg5)
    from hermipy.syscalls.sys_info import CAPABILITY_OPTIONS, capability_prctl
    if option in CAPABILITY_OPTIONS:
        return capability_prctl(k, option, arg2, arg3, arg4, arg5)
    raise SyscallError(EINVAL)


FUTEX_WAIT, FUTEX_WAKE, FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP = 0, 1, 3, 4, 5
FUTEX_LOCK_PI, FUTEX_UNLOCK_PI, FUTEX_TRYLOCK_PI, FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET = 6, 7, 8, 9, 10
FUTEX_WAIT_REQUEUE_PI, FUTEX_CMP_REQUEUE_PI, FUTEX_LOCK_PI2 = 11, 12, 13
FUTEX_PRIVATE_FLAG, FUTEX_CLOCK_REALTIME = 128, 256
FUTEX2_SIZE_U32, FUTEX2_SIZE_MASK, FUTEX2_PRIVATE = 2, 3, 128
FUTEX_CMD_MASK = ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME)
FUTEX_WAITERS, FUTEX_OWNER_DIED, FUTEX_TID_MASK = 0x80000000, 0x40000000, 0x3FFFFFFF
ROBUST_LIST_LIMIT = 2048
_FUTEX_NAMES = {FUTEX_WAIT: "FUTEX_WAIT", FUTEX_WAKE: "FUTEX_WAKE", FUTEX_REQUEUE: "FUTEX_REQUEUE",
                FUTEX_CMP_REQUEUE: "FUTEX_CMP_REQUEUE", FUTEX_WAKE_OP: "FUTEX_WAKE_OP", FUTEX_LOCK_PI: "FUTEX_LOCK_PI",
                FUTEX_UNLOCK_PI: "FUTEX_UNLOCK_PI", FUTEX_TRYLOCK_PI: "FUTEX_TRYLOCK_PI",
                FUTEX_WAIT_BITSET: "FUTEX_WAIT_BITSET", FUTEX_WAKE_BITSET: "FUTEX_WAKE_BITSET",
                FUTEX_WAIT_REQUEUE_PI: "FUTEX_WAIT_REQUEUE_PI", FUTEX_CMP_REQUEUE_PI: "FUTEX_CMP_REQUEUE_PI",
                FUTEX_LOCK_PI2: "FUTEX_LOCK_PI2"}
FUTEX_OPS = {**_FUTEX_NAMES, **{nr | FUTEX_PRIVATE_FLAG: name + "_PRIVATE" for nr, name in _FUTEX_NAMES.items()}}
# Operations whose fourth argument is a timespec (the others take it as the integer val2).
_TIMED = frozenset((FUTEX_WAIT, FUTEX_WAIT_BITSET, FUTEX_LOCK_PI, FUTEX_LOCK_PI2, FUTEX_WAIT_REQUEUE_PI))
# Operations that write the word(s): they need the page writable.
_WRITES = frozenset((FUTEX_WAKE_OP, FUTEX_LOCK_PI, FUTEX_UNLOCK_PI, FUTEX_TRYLOCK_PI, FUTEX_LOCK_PI2,
                     FUTEX_WAIT_REQUEUE_PI, FUTEX_CMP_REQUEUE_PI))
_SECOND_WORD = frozenset((FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP, FUTEX_WAIT_REQUEUE_PI,
                          FUTEX_CMP_REQUEUE_PI))


@syscall("futex", FULL)
def futex(k, uaddr: Ptr, op: Enum(FUTEX_OPS), val: UInt, timeout: Ptr, uaddr2: Ptr, val3: UInt) -> int:
    """futex(2): done by the host kernel on the host address backing the guest word, so waiting, waking,
    requeueing, PI ownership (guest tids are host tids) and the value checks are Linux's own; a wait is
    interrupted by a kick (EINTR from the host), which the dispatcher turns into EINTR or a restart: a wait
    with a timeout is never restarted after a handler (futex_wait's restart block: ERESTART_RESTARTBLOCK)."""
    from hermipy.syscalls.host import host_syscall
    from hermipy.syscalls.sys_io import Timespec
    cmd = op & FUTEX_CMD_MASK
    if cmd not in _FUTEX_NAMES:
        raise SyscallError(ENOSYS)
    if uaddr % 4:
        raise SyscallError(EINVAL)
    write = cmd in _WRITES
    host = k.mem.host_address(uaddr, write)
    host2 = k.mem.host_address(uaddr2, write) if cmd in _SECOND_WORD else 0
    fourth = timeout
    if cmd in _TIMED:
        fourth = None
        if timeout:
            sec, nsec = struct.unpack("<qq", k.mem.read(timeout, 16))
            fourth = Timespec(sec, nsec)
    try:
        return host_syscall("futex", host, op, val, fourth, host2, val3)
    except InterruptedError:
        if cmd in (FUTEX_WAIT, FUTEX_WAIT_BITSET) and fourth is not None:
            raise SyscallError(ERESTARTNOHAND) from None
        raise


FUTEX_WAITV_MAX = 128
FUTEX_WAITV = struct.Struct("<QQII")       # struct futex_waitv {val, uaddr, flags, __reserved} (uapi/linux/futex.h)


@syscall("futex_waitv", FULL)
def futex_waitv(k, waiters: Ptr, nr_futexes: UInt, flags: UInt, timeout: Ptr, clockid: Int) -> int:
    """futex_waitv(2): the host's, on the host addresses backing the guest words (the vector is copied with
    each uaddr translated; flags, sizes and the absolute timeout are checked by the host kernel). A kick
    interrupts it (EINTR from the host: a restart, the timeout being absolute)."""
    import ctypes
    from hermipy.syscalls.host import host_syscall
    if flags or not 0 < nr_futexes <= FUTEX_WAITV_MAX or not waiters:
        raise SyscallError(EINVAL)
    raw = bytearray(k.mem.read(waiters, FUTEX_WAITV.size * nr_futexes))
    entries = [FUTEX_WAITV.unpack_from(raw, FUTEX_WAITV.size * i) for i in range(nr_futexes)]
    for value, uaddr, wflags, reserved in entries:
        if wflags & ~(FUTEX2_SIZE_MASK | FUTEX2_PRIVATE) or reserved or wflags & FUTEX2_SIZE_MASK != FUTEX2_SIZE_U32:
            raise SyscallError(EINVAL)                 # futex_parse_waitv(), before any word is touched
    for i, (value, uaddr, wflags, reserved) in enumerate(entries):
        if uaddr % 4:
            raise SyscallError(EINVAL)
        FUTEX_WAITV.pack_into(raw, FUTEX_WAITV.size * i, value, k.mem.host_address(uaddr), wflags, reserved)
    vector = ctypes.create_string_buffer(bytes(raw), len(raw))
    deadline = ctypes.create_string_buffer(k.mem.read(timeout, 16), 16) if timeout else None
    return host_syscall("futex_waitv", vector, nr_futexes, 0, deadline, clockid)


def _futex_wake(k, uaddr: int) -> None:
    """FUTEX_WAKE one waiter of the (shared-keyed) word at ``uaddr``, as exit's mm_release does."""
    from hermipy.syscalls.host import host_syscall
    try:
        host_syscall("futex", k.mem.host_address(uaddr), FUTEX_WAKE, 1, None, 0, 0)
    except (SyscallError, OSError):
        pass


def release_task_memory(k) -> None:
    """mm_release() at a thread's exit: walk its robust futex list (exit_robust_list), then clear and wake
    its clear_child_tid word (CLONE_CHILD_CLEARTID, set_tid_address: what pthread_join waits on)."""
    if k.robust_list:
        _exit_robust_list(k, k.robust_list)
    if k.clear_child_tid:
        try:
            k.mem.write(k.clear_child_tid, b"\0\0\0\0")
            _futex_wake(k, k.clear_child_tid)
        except SyscallError:
            pass


def _exit_robust_list(k, head: int) -> None:
    """struct robust_list_head {next, futex_offset, list_op_pending} (uapi/linux/futex.h); each entry's lock
    word (entry + futex_offset) held by this thread gets FUTEX_OWNER_DIED, and a waiter is woken."""
    try:
        entry, offset, pending = struct.unpack("<QqQ", k.mem.read(head, 24))
        seen = 0
        while entry != head and seen < ROBUST_LIST_LIMIT:
            following = struct.unpack("<Q", k.mem.read(entry & ~1, 8))[0]
            if entry != pending:
                _futex_owner_died(k, (entry & ~1) + offset)
            entry, seen = following, seen + 1
        if pending:
            _futex_owner_died(k, (pending & ~1) + offset)
    except SyscallError:
        pass


def _futex_owner_died(k, uaddr: int) -> None:
    """handle_futex_death()."""
    word = struct.unpack("<I", k.mem.read(uaddr, 4))[0]
    if word & FUTEX_TID_MASK != k.tid:
        return
    k.mem.write(uaddr, struct.pack("<I", (word & FUTEX_WAITERS) | FUTEX_OWNER_DIED))
    if word & FUTEX_WAITERS:
        _futex_wake(k, uaddr)


# -- pidfds (kernel/pid.c, kernel/signal.c) --------------------------------------------------------------
PIDFD_FLAGS = Flags({0o4000: "PIDFD_NONBLOCK", 0o200: "PIDFD_THREAD"})
PIDFD_SIGNAL_THREAD, PIDFD_SIGNAL_THREAD_GROUP, PIDFD_SIGNAL_PROCESS_GROUP = 1, 2, 4
PIDFD_SIGNAL_FLAGS = Flags({1: "PIDFD_SIGNAL_THREAD", 2: "PIDFD_SIGNAL_THREAD_GROUP", 4: "PIDFD_SIGNAL_PROCESS_GROUP"})


@syscall("pidfd_open", FULL)
def pidfd_open(k, pid: Int, flags: PIDFD_FLAGS) -> int:
    """pidfd_open(2): the host's pidfd of the process (or thread, PIDFD_THREAD): guest pids are the host's. It
    polls readable when that process exits, as the host makes it; close-on-exec, as Linux makes it. Under
    --root another run's process is ESRCH."""
    from hermipy.syscalls.sys_net import _received_file, install_host_fd
    from hermipy.syscalls.sys_signal import _visible
    if pid > 0 and pid != k.proc.pid and pid not in k.group.tasks:
        _visible(k, pid)
    host = host_syscall("pidfd_open", pid, flags)
    return install_host_fd(k, _received_file(k, host), True)


def _pidfd_target(k, fd: int) -> tuple[int, int]:
    """(host fd, pid) of a guest fd: the pid a pidfd refers to (its fdinfo's Pid: line; -1 once the process is
    gone), 0 for another file; host fd -1 for an fd that is not open."""
    of = k.fds.files.get(fd)
    if of is None:
        return -1, 0
    with open(f"/proc/self/fdinfo/{of.host_fd}", "rb") as f:
        return of.host_fd, next((int(line.split()[1]) for line in f if line.startswith(b"Pid:")), 0)


def _proc_dir_pid(k, fd: int) -> int:
    """The pid of a /proc/PID directory open as ``fd`` (what pidfd_send_signal takes as a pidfd too:
    pidfd_to_pid's tgid_pidfd_to_pid), else 0."""
    of = k.fds.files.get(fd)
    parent, _, name = (of.path if of is not None else "").rstrip("/").rpartition("/")
    return int(name) if parent == "/proc" and name.isdigit() else 0


@syscall("pidfd_send_signal", FULL)
def pidfd_send_signal(k, pidfd: Int, sig: Signal, info: Ptr, flags: PIDFD_SIGNAL_FLAGS) -> int:
    """pidfd_send_signal(2). To another process: the host's call (that process's hermipy hands the signal to its
    guest). To the caller's own process or one of its threads: the host checks the pidfd and flags (a call
    with signal 0 and no siginfo), then the signal takes hermipy's own way, as kill(2)'s and
    rt_sigqueueinfo(2)'s do, so that the guest's handler runs before the call returns."""
    from hermipy.syscalls.sys_signal import (NSIG, SI_TKILL, SI_USER, SIGINFO_SIZE, _finish, kill, make_siginfo,
                                             signal_group, signal_task)
    if flags & ~7 or flags & (flags - 1):         # one scope at most, before the fd (EINVAL)
        raise SyscallError(EINVAL)
    host_fd, target = _pidfd_target(k, pidfd)
    proc_dir = 0 if target else _proc_dir_pid(k, pidfd)
    if proc_dir:
        target = proc_dir
    elif target == 0:                             # not open, or not a pidfd (pidfd_to_pid): before the siginfo
        raise SyscallError(EBADF)
    own = target > 0 and (target == k.proc.pid or target in k.group.tasks)
    if not own:
        data = None
        if info:
            data = ctypes.create_string_buffer(k.mem.read(info, SIGINFO_SIZE), SIGINFO_SIZE)
        if not proc_dir or k.fds.get(pidfd).node is None:      # a pidfd, or the host's /proc/PID itself
            return host_syscall("pidfd_send_signal", host_fd, sig, data, flags)
        host_fd = host_syscall("pidfd_open", target, 0)
        try:
            return host_syscall("pidfd_send_signal", host_fd, sig, data, flags)
        finally:
            os.close(host_fd)
    if not proc_dir:
        host_syscall("pidfd_send_signal", host_fd, 0, None, flags)
    if not 0 <= sig <= NSIG:
        raise SyscallError(EINVAL)
    thread = flags == PIDFD_SIGNAL_THREAD or flags == 0 and target != k.proc.pid
    if info:
        data = k.mem.read(info, SIGINFO_SIZE)
        signo, _errno, code = struct.unpack_from("<iii", data)
        if signo != sig:
            raise SyscallError(EINVAL)
        if (thread or flags == PIDFD_SIGNAL_PROCESS_GROUP) and (code >= 0 or code == SI_TKILL):
            raise SyscallError(EPERM)
    else:
        data = make_siginfo(sig, SI_USER, pid=k.proc.pid, uid=k.proc.uid)
    if flags == PIDFD_SIGNAL_PROCESS_GROUP:
        return kill(k, -os.getpgid(target), sig)
    if sig:
        if thread:
            signal_task(k.group.tasks[target], sig, data)
        else:
            signal_group(k, sig, data)
    return _finish(k, 0)


@syscall("pidfd_getfd", PARTIAL, note="from the caller's own process only: another guest process's fds are "
                                      "numbered by its hermipy, so that is EPERM (as under a ptrace policy that "
                                      "forbids it)")
def pidfd_getfd(k, pidfd: Int, targetfd: Int, flags: UInt) -> int:
    """pidfd_getfd(2): a duplicate (close-on-exec) of the target process's fd ``targetfd``."""
    from hermipy.syscalls.sys_net import _received_file, install_host_fd
    if flags:
        raise SyscallError(EINVAL)
    k.fds.get(pidfd)
    _host_fd, target = _pidfd_target(k, pidfd)
    if target == 0:
        raise SyscallError(EBADF)
    if target < 0:
        raise SyscallError(ESRCH)
    if target != k.proc.pid and target not in k.group.tasks:
        raise SyscallError(EPERM)
    source = k.fds.get(targetfd)
    return install_host_fd(k, _received_file(k, os.dup(source.host_fd)), True)


# -- process_vm_readv / process_vm_writev ------------------------------------------------------------------
def target_process(k, pid: int):
    """find_task_by_vpid() and ptrace_may_access() as hermipy sees them: the task ``pid`` names in this hermipy
    (its threads, CLONE_VM processes), or None for another process; ESRCH when no process has the pid, EPERM
    when the host refuses hermipy's process access to it."""
    task = _task_of(k, pid)
    if task is not None:
        return task
    if pid <= 0:
        raise SyscallError(ESRCH)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise SyscallError(ESRCH) from None
    except PermissionError:
        raise SyscallError(EPERM) from None
    return None


def _process_vm(k, pid: int, local: int, liovcnt: int, remote: int, riovcnt: int, flags: int, write: bool) -> int:
    """process_vm_rw(): the flags, both iovec arrays (import_iovec's checks), the target, then a copy remote
    iovec by remote iovec that stops at the first page either side cannot give (the bytes so far, or EFAULT)."""
    from hermipy.syscalls.sys_io import import_iovec
    if flags:
        raise SyscallError(EINVAL)
    local_segments = import_iovec(k, local, liovcnt)
    if not any(length for _base, length in local_segments):
        return 0
    remote_segments = import_iovec(k, remote, riovcnt)
    task = target_process(k, pid)
    if not (task is not None and task.mem is k.mem or k.proc.parent == pid):
        raise SyscallError(EPERM)            # another process's memory is its hermipy's: out of reach
    done, li, loff = 0, 0, 0
    for base, length in remote_segments:
        offset = 0
        while offset < length:
            while li < len(local_segments) and loff == local_segments[li][1]:
                li, loff = li + 1, 0
            if li == len(local_segments):
                return done
            lbase, llen = local_segments[li]
            n = min(length - offset, llen - loff, PAGE_SIZE - (base + offset) % PAGE_SIZE)
            src, dst = (lbase + loff, base + offset) if write else (base + offset, lbase + loff)
            try:
                k.mem.write(dst, k.mem.read(src, n))
            except SyscallError:
                if done:
                    return done
                raise SyscallError(EFAULT) from None
            done, offset, loff = done + n, offset + n, loff + n
    return done


@syscall("process_vm_readv", PARTIAL, note="the caller's own memory (itself, its threads, a CLONE_VM process "
                                           "sharing it); another process's is EPERM (its memory is its hermipy's); "
                                           "pages are read whatever their protection")
def process_vm_readv(k, pid: Int, local_iov: Ptr, liovcnt: Size, remote_iov: Ptr, riovcnt: Size,
                     flags: Size) -> int:
    """process_vm_readv(2)."""
    return _process_vm(k, pid, local_iov, liovcnt, remote_iov, riovcnt, flags, False)


@syscall("process_vm_writev", PARTIAL, note="as process_vm_readv; pages are written whatever their protection")
def process_vm_writev(k, pid: Int, local_iov: Ptr, liovcnt: Size, remote_iov: Ptr, riovcnt: Size,
                      flags: Size) -> int:
    """process_vm_writev(2)."""
    return _process_vm(k, pid, local_iov, liovcnt, remote_iov, riovcnt, flags, True)


# -- kcmp (kernel/kcmp.c) -----------------------------------------------------------------------------------
KCMP_FILE, KCMP_VM, KCMP_FILES, KCMP_FS, KCMP_SIGHAND, KCMP_IO, KCMP_SYSVSEM, KCMP_EPOLL_TFD = range(8)
KCMP_TYPES = Enum({KCMP_FILE: "KCMP_FILE", KCMP_VM: "KCMP_VM", KCMP_FILES: "KCMP_FILES", KCMP_FS: "KCMP_FS",
                   KCMP_SIGHAND: "KCMP_SIGHAND", KCMP_IO: "KCMP_IO", KCMP_SYSVSEM: "KCMP_SYSVSEM",
                   KCMP_EPOLL_TFD: "KCMP_EPOLL_TFD"})


def _task_of(k, pid: int):
    """The task ``pid`` names in this hermipy (the caller's thread group or a CLONE_VM process), or None."""
    from hermipy.syscalls.sys_signal import _vm_process_task
    if pid == k.proc.pid:
        return k.group.tasks.get(pid) or k
    return k.group.tasks.get(pid) or _vm_process_task(pid)


def _ordered(a, b) -> int:
    """kcmp_ptr(): 0 for the same object, else 1 or 2 by an order of no meaning (Linux obfuscates pointers)."""
    if a is b:
        return 0
    return 1 if id(a) < id(b) else 2


@syscall("kcmp", PARTIAL, note="tasks of this hermipy (its threads, CLONE_VM processes) compare hermipy's own "
                               "objects; other processes are compared by the host (a hermipy process shares none "
                               "of these with another), but their files only by the host's EPERM (their fd "
                               "numbers are their hermipy's); KCMP_IO and KCMP_SYSVSEM of tasks here are equal "
                               "(hermipy keeps no I/O context or semaphore undo list per task); KCMP_EPOLL_TFD EINVAL")
def kcmp(k, pid1: Int, pid2: Int, type_: KCMP_TYPES, idx1: Size, idx2: Size) -> int:
    """kcmp(2): both tasks (ESRCH), then the comparison of what ``type_`` names."""
    tasks = [target_process(k, pid) for pid in (pid1, pid2)]
    if not 0 <= type_ <= KCMP_SYSVSEM:
        raise SyscallError(EINVAL)
    a, b = tasks
    if a is not None and b is not None:
        if type_ == KCMP_FILE:
            f1, f2 = a.fds.files.get(idx1 & 0xFFFFFFFF), b.fds.files.get(idx2 & 0xFFFFFFFF)
            if f1 is None or f2 is None:
                raise SyscallError(EBADF)
            return _ordered(f1, f2)
        pick = {KCMP_VM: lambda t: t.mem, KCMP_FILES: lambda t: t.fds, KCMP_FS: lambda t: t.fs,
                KCMP_SIGHAND: lambda t: t.signals.actions}.get(type_)
        return 0 if pick is None else _ordered(pick(a), pick(b))
    if type_ == KCMP_FILE:
        raise SyscallError(EPERM)
    hosts = [os.getpid() if t is not None else pid for t, pid in zip(tasks, (pid1, pid2))]
    return host_syscall("kcmp", hosts[0], hosts[1], type_, 0, 0)
