"""How a task is interrupted, and how it waits so that it can be.

``Kernel.kick`` sets the task's ``interrupt`` flag, stops its CPU (KVM: immediate_exit; Unicorn:
uc_emu_stop) and sends SIGKICK to its host thread (see host_signals.py). A CPU stops only where the registers
are the application's (not inside hermipy's entry stubs or trampolines) and otherwise runs on, and a kick
can land just before the CPU starts running: so ``watch`` repeats the kick every KICK_RETRY seconds, up to
KICK_TRIES times, while the task's flag is still set. The task clears the flag when it looks at what it was
kicked for (the dispatcher after a syscall, the runner at an INTERRUPT stop, a wait that returns).

A task blocks with ``wait``: ppoll on host fds (or on none, to sleep) with a signal mask that opens SIGKICK
only during the wait, after checking the flag with SIGKICK blocked, so that a kick can never fall between the
check and the sleep (the race pselect was made for). A kicked wait raises ERESTARTSYS (or what the caller
asks), which the dispatcher turns into EINTR or a restart. ``sleep`` waits for a kick alone, in a host call
that a stop of the process also ends, for the calls Linux then fails with EINTR (``interrupted``).
"""
import ctypes
import os
import _signal
import signal
import threading
import time
from errno import EINTR

from hermipy.syscalls.errors import EINTR_WHEN_SIGNALLED, ERESTARTSYS, SyscallError
from hermipy.syscalls.kernel import SIGKICK

# (_signal's pthread_sigmask: signal's turns the old mask into Signals members, ~100 µs with hermipy's mask)
_KICK_ONLY = (SIGKICK,)
KICK_RETRY = 0.002
KICK_TRIES = 50

_watched: dict[object, int] = {}           # task -> kicks left; guarded by _lock
_lock = threading.Lock()
_wake = threading.Condition(_lock)
_thread: threading.Thread | None = None
_thread_pid = 0


def _after_fork_in_child() -> None:
    """Only the forking thread goes on in a fork child: the re-kick thread is gone, and so must be the lock it
    may have held at the fork and what it watched."""
    global _lock, _wake, _thread
    _lock = threading.Lock()
    _wake = threading.Condition(_lock)
    _watched.clear()
    _thread = None


os.register_at_fork(after_in_child=_after_fork_in_child)


def watch(task) -> None:
    """Re-kick ``task`` until it takes note (its ``interrupt`` flag cleared), at most KICK_TRIES times."""
    global _thread, _thread_pid
    with _lock:
        _watched[task] = KICK_TRIES
        if _thread is None or _thread_pid != os.getpid():
            _thread_pid = os.getpid()
            _thread = threading.Thread(target=_rekick, name="hermipy-kicks", daemon=True)
            _thread.start()
        _wake.notify()


def _rekick() -> None:
    _signal.pthread_sigmask(_signal.SIG_BLOCK, _KICK_ONLY)
    while True:
        with _lock:
            while not _watched:
                _wake.wait()
        time.sleep(KICK_RETRY)
        with _lock:
            due = []
            for task, left in list(_watched.items()):
                if not task.interrupt or left <= 0 or task.host_thread is None:
                    del _watched[task]
                else:
                    _watched[task] = left - 1
                    due.append(task)
        for task in due:
            _kick_again(task)


def _kick_again(task) -> None:
    cpu = task.cpu
    if cpu is not None:
        cpu.kick()
    try:
        signal.pthread_kill(task.host_thread, SIGKICK)
    except (ProcessLookupError, OSError, TypeError):
        pass


class WouldBlock(Exception):
    """A call served in KVM's exitless mode (Dispatcher.serve_exitless) would wait: it runs again at the usual exit, where its
    guest sleeps instead of spinning (nothing was done yet, as for a restart)."""


def wait(k, pollfds=None, nfds: int = 0, timeout=None, restart: int = ERESTARTSYS) -> int:
    """ppoll(pollfds, nfds, timeout) that a kick interrupts: returns ppoll's count (0: timed out; the host
    updates ``timeout`` to the time left), or raises SyscallError(``restart``) when the task was kicked (WouldBlock
    when it would sleep in a call served in exitless mode)."""
    from hermipy.syscalls.host import host_syscall
    from hermipy.syscalls.host_signals import kick_mask
    mask = kick_mask()
    _signal.pthread_sigmask(_signal.SIG_BLOCK, _KICK_ONLY)
    try:
        if k.interrupt:
            raise SyscallError(restart)
        if k.serving_exitless:
            from hermipy.syscalls.sys_io import Timespec
            ready = host_syscall("ppoll", pollfds, nfds, Timespec(0, 0), mask, 8)
            if ready or timeout is not None and not timeout.sec and not timeout.nsec:
                return ready
            raise WouldBlock()
        try:
            return host_syscall("ppoll", pollfds, nfds, timeout, mask, 8)
        except InterruptedError:
            raise SyscallError(restart) from None
    finally:
        _signal.pthread_sigmask(_signal.SIG_UNBLOCK, _KICK_ONLY)


_KICK_SET = ctypes.c_uint64(1 << (SIGKICK - 1))


def sleep(k, ns: int | None) -> bool:
    """Sleep until the task is kicked (True, at once when it is already) or for ``ns`` nanoseconds (None: no
    limit; False when they have passed). The host's rt_sigtimedwait for SIGKICK, blocked meanwhile so that a kick
    cannot fall between the check and the sleep; unlike ppoll, a stop and continue of the process ends it
    (InterruptedError), as it ends do_sigtimedwait's sleep."""
    from hermipy.syscalls.host import host_syscall
    from hermipy.syscalls.sys_io import Timespec
    _signal.pthread_sigmask(_signal.SIG_BLOCK, _KICK_ONLY)
    try:
        if k.interrupt:
            return True
        if k.serving_exitless and ns != 0:
            raise WouldBlock()
        timeout = None if ns is None else Timespec(*divmod(ns, 1_000_000_000))
        try:
            host_syscall("rt_sigtimedwait", _KICK_SET, None, timeout, 8)
        except BlockingIOError:
            return False
        return True
    finally:
        _signal.pthread_sigmask(_signal.SIG_UNBLOCK, _KICK_ONLY)


# Tasks in a call that a stop and continue of the process fails with EINTR (see ``interrupted``), and when each began
# it: set by the task itself around the call (``started = STOP_SENSITIVE[k] = time.monotonic()``, popped in a
# finally), read by the signal pump (``continued``); a dict's single-item operations are atomic. A stop can land
# before the host call blocks, while hermipy's own code runs, and the host call would then never see it.
STOP_SENSITIVE: dict[object, float] = {}


def continued(at: float) -> None:
    """hermipy's process was continued (the signal pump read SIGCONT at ``at``): the tasks in a stop-sensitive call
    begun before are kicked, so that their host call ends (EINTR) and they find the continue (``interrupted``)."""
    from hermipy.syscalls.sys_signal import current_task
    reader = current_task()                # a task that drained the SIGCONT is looking at it already
    for task, started in list(STOP_SENSITIVE.items()):
        if started <= at and task is not reader:
            task.kick()


def interrupted(started: float) -> SyscallError:
    """What ends a call that Linux fails with EINTR whenever a signal wakes it (errors.EINTR_WHEN_SIGNALLED),
    begun at ``started`` (time.monotonic()), once its host wait returned EINTR: plain EINTR when hermipy's process
    was stopped and continued meanwhile (signal(7): no signal need be delivered), else EINTR_WHEN_SIGNALLED (a
    kick: EINTR when a signal is to be delivered, a restart when it was for nothing)."""
    from hermipy.syscalls.host_signals import continued_since
    return SyscallError(EINTR if continued_since(started) else EINTR_WHEN_SIGNALLED)
