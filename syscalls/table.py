"""The syscall table as data: one entry per x86-64 syscall with its handler, status and note.

Numbers come from the vendored ``syscall_64.tbl``; handlers register with ``@syscall("name", FULL)``
and never type a number. Handlers return an int >= 0 (or None when they set the registers themselves,
as rt_sigreturn does) or raise ``SyscallError``; ``Dispatcher`` alone turns errors into ``-errno``.
"""
import os
import threading
from errno import EFBIG, EINTR, ENOSYS, EPIPE
from signal import SIGPIPE

from hermipy.syscalls.argtypes import Arg, show_result
from hermipy.syscalls.errors import ERESTARTSYS, RESTART_ERRNOS, SyscallError

FULL, PARTIAL, STUB, UNIMPLEMENTED = "FULL", "PARTIAL", "STUB", "UNIMPLEMENTED"
TABLE_SIZE = 512
# Held while a trace line is written (by any thread) and across a fork (sys_fork.do_fork): a fork child must not
# inherit the trace file's buffer locked by a thread it does not have.
TRACE_LOCK = threading.Lock()
# hermipy run --stats: the process's stats.Recorder, which wraps each Dispatcher's entry point; None (no
# per-syscall work) otherwise.
STATS = None


def _read_numbers() -> dict[str, int]:
    path = os.path.join(os.path.dirname(__file__), "syscall_64.tbl")
    numbers = {}
    with open(path) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                nr, _abi, name = line.split()[:3]
                numbers[name] = int(nr)
    return numbers


NUMBERS = _read_numbers()
NAMES = {nr: name for name, nr in NUMBERS.items()}


_INVOKE_CODE: dict[str, object] = {}       # the compiled invoke of each argument shape, e.g. ", d0(a0), a1"


class Entry:
    """One row of the table."""

    __slots__ = ("nr", "name", "status", "note", "handler", "argtypes", "invoke")

    def __init__(self, nr: int, name: str):
        self.nr, self.name = nr, name
        self.status, self.note, self.handler, self.argtypes = UNIMPLEMENTED, "", None, ()
        self.invoke = self._compile_on_first_call

    def _compile_on_first_call(self, k, *raw):
        self.invoke = self._compile()
        return self.invoke(k, *raw)

    def _compile(self):
        """Build ``invoke(k, a0..a5)`` that decodes exactly the arguments this handler takes."""
        if self.handler is None:
            return _missing(self)
        params = []
        for i, argtype in enumerate(self.argtypes):
            params.append(f"d{i}(a{i})" if argtype.decode else f"a{i}")
        env = {"h": self.handler}
        env.update({f"d{i}": t.decode for i, t in enumerate(self.argtypes) if t.decode})
        call = "".join(", " + p for p in params)
        code = _INVOKE_CODE.get(call)
        if code is None:                # compiling costs ~60 µs; handlers share a few dozen shapes
            src = f"def invoke(k, a0, a1, a2, a3, a4, a5):\n    return h(k{call})\n"
            code = _INVOKE_CODE[call] = compile(src, "<syscall invoke>", "exec")
        exec(code, env)
        return env["invoke"]


ENTRIES: list[Entry] = [Entry(nr, NAMES.get(nr, f"syscall_{nr}")) for nr in range(TABLE_SIZE)]
BY_NAME: dict[str, Entry] = {e.name: e for e in ENTRIES if e.nr in NAMES}


def compile_invokers() -> None:
    """Compile every handler's invoke now (a warm parent's forks then share them instead of compiling each)."""
    for entry in ENTRIES:
        if entry.handler is not None and entry.invoke == entry._compile_on_first_call:
            entry.invoke = entry._compile()


def syscall(name: str, status: str = FULL, note: str = ""):
    """Register the decorated function as the handler of ``name`` (man 2 name)."""
    if status in (PARTIAL, STUB) and not note:
        raise ValueError(f"{name}: {status} needs a note saying what is missing")

    def register(func):
        entry = BY_NAME[name]
        if entry.handler is not None:
            raise ValueError(f"{name} registered twice")
        entry.handler, entry.status, entry.note = func, status, note
        code = func.__code__
        names = code.co_varnames[1:code.co_argcount]
        entry.argtypes = tuple(_argtype(func.__annotations__.get(n)) for n in names)
        return func
    return register


def _argtype(annotation) -> Arg:
    """An annotation is an Arg instance, an Arg subclass, or absent (plain unsigned value)."""
    if isinstance(annotation, Arg):
        return annotation
    if isinstance(annotation, type) and issubclass(annotation, Arg):
        return annotation()
    return Arg()


def alias(name: str, of: str, status: str | None = None, note: str | None = None) -> None:
    """``name`` shares the handler of ``of`` (e.g. pread64/pread, getdents/getdents64)."""
    src, entry = BY_NAME[of], BY_NAME[name]
    entry.handler, entry.argtypes = src.handler, src.argtypes
    entry.status, entry.note = status or src.status, src.note if note is None else note


def declare(name: str, status: str, note: str) -> None:
    """Record a syscall deliberately answered with ENOSYS (quietly), e.g. rseq, or obsolete ones."""
    def refuse(k, *args):
        raise SyscallError(ENOSYS)
    entry = BY_NAME[name]
    entry.handler, entry.status, entry.note, entry.argtypes = refuse, status, note, ()


def _missing(entry: Entry):
    def invoke(k, *raw):
        k.report_unimplemented(entry)
        raise SyscallError(ENOSYS)
    return invoke


def load_handlers() -> None:
    """Import every handler module (each registers its syscalls)."""
    from hermipy.syscalls import (sys_fs, sys_io, sys_mm, sys_process, sys_signal,  # noqa: F401
                                  sys_time, sys_info, sys_net, sys_event, sys_xattr, sys_fork, sys_timer,
                                  sys_ipc, sys_ns, sys_aio, sys_admin, sys_keys, sys_landlock)


def _broken_pipe(k) -> int:
    """A host call failed with EPIPE (sendfile, splice, sendmsg ... to a broken pipe or socket): when the host
    raised SIGPIPE at hermipy's thread for it, Linux raises it at the guest's (pipe_write, sk_stream_error)."""
    from hermipy.syscalls.host_signals import take_raised
    from hermipy.syscalls.sys_signal import SI_USER, make_siginfo, signal_task
    if take_raised(SIGPIPE):
        signal_task(k, SIGPIPE, make_siginfo(SIGPIPE, SI_USER, pid=k.proc.pid, uid=k.proc.uid))
        k.interrupt = True                # delivered on the way out, with -EPIPE in rax
    return -EPIPE


def _file_too_big(k) -> int:
    """A host write or truncate failed with EFBIG: past the guest's RLIMIT_FSIZE (the host's too, see sys_info),
    Linux also sends SIGXFSZ (generic_write_check_limits, inode_newsize_ok); the host's own, which Python
    ignores, is the guest's to have."""
    from hermipy.syscalls.kernel import RLIM_INFINITY
    from hermipy.syscalls.sys_info import RLIMIT_FSIZE
    from hermipy.syscalls.sys_signal import SI_USER, SIGXFSZ, make_siginfo, signal_task
    if k.proc.rlimits.get(RLIMIT_FSIZE, (RLIM_INFINITY,))[0] < RLIM_INFINITY:
        signal_task(k, SIGXFSZ, make_siginfo(SIGXFSZ, SI_USER, pid=k.proc.pid, uid=k.proc.uid))
        k.interrupt = True
    return -EFBIG


# The calls KVM's exitless mode serves while the guest spins (Dispatcher.serve_exitless): file and socket I/O
# that reads no register, changes no mapping nor signal state, and can be run again when interrupted (or when it
# would wait: kicks.WouldBlock; a waiting guest sleeps in an exit rather than spin).
EXITLESS_CALLS = ("read", "write", "pread64", "pwrite64", "readv", "writev", "preadv", "pwritev", "preadv2",
                  "pwritev2", "lseek", "fstat", "stat", "lstat", "newfstatat", "statx", "getdents64", "getdents",
                  "open", "openat", "close", "fcntl", "dup", "dup3", "access", "faccessat", "faccessat2", "readlink",
                  "readlinkat", "getcwd", "epoll_wait", "epoll_ctl", "recvfrom", "sendto", "recvmsg",
                  "sendmsg", "accept", "accept4", "sendfile", "fsync", "fdatasync", "ftruncate", "unlink", "unlinkat",
                  "rename", "renameat", "renameat2", "mkdir", "mkdirat", "socket", "setsockopt", "getsockopt",
                  "getsockname", "getpeername", "shutdown", "fchmod", "fchown", "utimensat", "getrandom",
                  "clock_gettime", "gettimeofday", "ioctl")
EXITLESS = frozenset(NUMBERS[name] for name in EXITLESS_CALLS)


class Dispatcher:
    """Turns a trapped syscall into a handler call and its result into rax, for one task.

    After the handler, a task that was kicked meanwhile (a signal for it, its group's exit) takes note
    before returning to the guest; a blocking call the kick interrupted (an ERESTART* errno, or EINTR from
    the host call) becomes EINTR or a restart, as signal delivery decides (sys_signal.interrupted_syscall)."""

    def __init__(self, kernel, strace_file=None):
        self.kernel = kernel
        self.strace_file = strace_file
        self.on_syscall = self.dispatch if strace_file is None else self.dispatch_traced
        if STATS is not None:
            self.on_syscall = STATS.wrap(self.on_syscall, kernel)

    def dispatch(self, nr, a0, a1, a2, a3, a4, a5):
        entry = ENTRIES[nr] if nr < TABLE_SIZE else _out_of_range(nr)
        k = self.kernel
        guest_clock = k.proc.guest_clock   # an ITIMER_VIRTUAL is armed: the call is the guest's system time
        if guest_clock is not None:
            guest_clock.left(k)
        try:
            try:
                result = entry.invoke(k, a0, a1, a2, a3, a4, a5)
            except (SyscallError, OSError) as err:
                try:
                    result = _failed(k, entry, err, a0, a1, a2, a3, a4, a5)
                except _Kicked as kicked:
                    return _interrupted_syscall(k, nr, kicked.how)
            if k.interrupt:
                return _handle_interrupt(k, result)
            return result
        finally:
            if guest_clock is not None:
                guest_clock.entered(k)

    def serve_exitless(self, nr, a0, a1, a2, a3, a4, a5):
        """A syscall the guest posted without exiting (KVM's exitless mode), served while its vCPU runs: the
        result, or None to make it the usual exit. Served here are the calls in EXITLESS, which need no register
        and whose interrupted run had no effect (an ERESTART* errno or a host EINTR: run again at the exit); the
        caller sees ``exitless_pending`` for what must follow at an exit (a signal to deliver). Traced as
        dispatch_traced traces, once: a call made again at the exit shows there."""
        k = self.kernel
        if nr not in EXITLESS or k.interrupt or k.proc.guest_clock is not None:
            return None
        entry = ENTRIES[nr]
        shown = None if self.strace_file is None else self._format_args(entry, (a0, a1, a2, a3, a4, a5))
        k.serving_exitless = True
        try:
            try:
                result = entry.invoke(k, a0, a1, a2, a3, a4, a5)
            except (SyscallError, OSError) as err:
                result = _failed(k, entry, err, a0, a1, a2, a3, a4, a5)
        except _Kicked:
            k.interrupt = True                # the exit's run of it sees the kick again
            return None
        except Exception:                     # kicks.WouldBlock, or a failure: run again at the exit
            return None
        finally:
            k.serving_exitless = False
        if shown is not None and result is not None:
            self._emit(f"{entry.name}({shown}) = {show_result(result)}")
        return result

    def exitless_pending(self) -> bool:
        return self.kernel.interrupt

    def finish_exitless(self, result):
        """At the exit after a served syscall that left something pending: what dispatch does after a handler."""
        k = self.kernel
        if k.interrupt:
            return _handle_interrupt(k, result)
        return result

    def dispatch_traced(self, nr, a0, a1, a2, a3, a4, a5):
        entry = ENTRIES[nr] if nr < TABLE_SIZE else _out_of_range(nr)
        raw = (a0, a1, a2, a3, a4, a5)
        shown = self._format_args(entry, raw)
        if entry.name in ("exit", "exit_group"):
            self._emit(f"{entry.name}({shown}) = ?")
        result = self.dispatch(nr, *raw)
        if entry.name not in ("exit", "exit_group"):
            self._emit(f"{entry.name}({shown}) = {show_result(result)}")
        return result

    def _format_args(self, entry: Entry, raw) -> str:
        k = self.kernel
        if entry.handler is None:
            return ", ".join(hex(a) for a in raw[:6])
        values = [t.decode(r) if t.decode else r for t, r in zip(entry.argtypes, raw)]
        shown = (t.show(k, v, values) for t, v in zip(entry.argtypes, values))
        return ", ".join(s for s in shown if s is not None)      # None: an argument strace leaves out

    def _emit(self, line: str) -> None:
        k = self.kernel
        if k.group.multithreaded:             # as strace -f shows it once there is more than one thread
            line = f"[pid {k.tid:>5}] {line}"
        with TRACE_LOCK:
            self.strace_file.write(line + "\n")
            self.strace_file.flush()


class _Kicked(Exception):
    """A kick interrupted the handler and there is something to deliver: ``how`` is the restart errno."""

    def __init__(self, how: int):
        self.how = how


def _failed(k, entry: Entry, err: OSError, a0, a1, a2, a3, a4, a5):
    """The handler raised ``err``: its -errno (a failed host call's is the guest's too: the host is Linux), or the
    handler's run again after a kick that left nothing to deliver; _Kicked when there is something."""
    while True:
        if isinstance(err, SyscallError):
            if err.errno not in RESTART_ERRNOS:
                return -err.errno
            how = err.errno
        elif err.errno is None:
            raise err
        elif err.errno == EPIPE:
            return _broken_pipe(k)
        elif err.errno == EFBIG:
            return _file_too_big(k)
        elif err.errno != EINTR:          # EINTR: only SIGKICK reaches hermipy's threads, the task was kicked
            return -err.errno
        else:
            how = ERESTARTSYS
        if not _nothing_to_deliver(k):
            raise _Kicked(how)
        try:                              # a kick with nothing for a handler: the call goes on, as restarted
            return entry.invoke(k, a0, a1, a2, a3, a4, a5)
        except (SyscallError, OSError) as again:
            err = again


def _nothing_to_deliver(k) -> bool:
    """After a kick: no signal to deliver and the group goes on (the kick is taken note of here)."""
    k.interrupt = False
    return not k.group.exiting and not k.signals.next_deliverable()


def _interrupted_syscall(k, nr: int, how: int):
    from hermipy.syscalls.sys_signal import interrupted_syscall
    return interrupted_syscall(k, nr, how)


def _handle_interrupt(k, result):
    from hermipy.syscalls.sys_signal import handle_interrupt
    return handle_interrupt(k, result)


def _out_of_range(nr: int) -> Entry:
    return Entry(nr, f"syscall_{nr:#x}")


def rows() -> list[dict]:
    """The table for printing: every x86-64 syscall, by number."""
    load_handlers()
    return [{"nr": e.nr, "name": e.name, "status": e.status, "note": e.note}
            for e in ENTRIES if e.nr in NAMES]
