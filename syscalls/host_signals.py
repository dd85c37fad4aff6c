"""The guest's signals arrive as host signals to hermipy's process; one host thread turns them into guest ones.

A guest's pid is its hermipy process's pid, so ``kill`` from another guest, a host process, the terminal or
a host timer (alarm, setitimer, timer_create: see sys_timer.py) reaches hermipy as a host signal. Every such
signal is blocked in every hermipy thread, and one *signal pump* thread reads them from a signalfd (signalfd(2):
the whole siginfo, si_value and si_timerid included) and sends each to the guest's thread group as Linux's
``complete_signal`` would (sys_signal.signal_group), which kicks the task that will take it.

A kick is the host signal ``SIGKICK`` (64, SIGRTMAX) sent with ``pthread_kill`` to the task's host thread,
which has it unblocked and handled (a no-op handler without SA_RESTART): a KVM_RUN in progress returns EINTR,
and so does a blocking host call made through ctypes (ppoll, futex, wait4, epoll_wait ...). The guest can
therefore not receive signal 64 from outside hermipy (it still can from its own threads), nor 32 and 33,
which glibc keeps for itself in hermipy's process. SIGSEGV, SIGBUS, SIGILL and SIGFPE sent by kill() are the
guest's like any other; a fault of hermipy's own still ends hermipy (a blocked fault signal is forced).

The pump also watches hermipy's parent (a pidfd): when it exits, what the guest reads of its parent inside
the guest is refreshed (``after_reparent``).

A stop and continue of hermipy's process (SIGSTOP from anywhere, which the host acts on alone, or the guest's
own stop: sys_signal._stop_on_host) ends the host calls that Linux fails with EINTR after a stop (epoll_wait,
sigtimedwait, socket calls with a timeout: signal(7)); a task whose call ended so asks ``continued_since`` whether
a SIGCONT came meanwhile, to tell that from a late kick.

An interval timer's signal that the guest ignores (and does not block) is *parked* (``PARKABLE``): left out of the
signalfd's mask, so that its expiries stay pending on the host, merged into one, instead of waking the pump at
the timer's rate to be dropped. That is also Linux's behaviour: an ignored expiry is dropped as it is sent
(sig_ignored), and ITIMER_REAL, which Linux re-arms only when its SIGALRM is dequeued, stops (getitimer: value
0) just as the host's does with its SIGALRM left pending; ITIMER_VIRTUAL/ITIMER_PROF run on in both. Changes of
the guest's action or blocked mask for these signals are made ``parking`` them: a parked one is flushed from the
host (a host SIG_IGN discards it without the dequeue that would re-arm ITIMER_REAL) and read again, and one the
guest now ignores is parked. The pump parks one it reads and finds ignored (an action inherited at startup).

Where Linux makes a signal pending before a call returns (a ``kill`` to the caller's own process group, the
SIGCHLD of a child that ``wait4`` reaped), the calling task ``drain``s: it reads and forwards what the host
has pending for the process itself, under the lock the pump reads with, so the signal is the guest's before
the call returns.
"""
import _signal
import contextlib
import ctypes
import os
import select
import signal
import struct
import threading
import time

from hermipy.syscalls.kernel import SIGKICK

SIGNALFD_SIGINFO = struct.Struct("<IiiIIiIIIIiiQQQQH")      # struct signalfd_siginfo (uapi/linux/signalfd.h)
SIGNALFD_RECORD = 128
SFD_CLOEXEC, SFD_NONBLOCK = 0o2000000, 0o4000
SI_QUEUE, SI_TIMER, SI_MESGQ, SI_KERNEL = -1, -2, -3, 0x80
CLD_FIRST, CLD_LAST, CLD_KILLED, CLD_DUMPED = 1, 6, 2, 3     # CLD_EXITED .. CLD_CONTINUED; DUMPED ends the exits
SIGALRM, SIGCHLD, SIGCONT, SIGVTALRM, SIGPROF, SIGIO = 14, 17, 18, 26, 27, 29
# 32 and 33 are glibc's own (SIGCANCEL, SIGSETXID: not valid_signals() for the host, unblockable by it).
# SIGSEGV, SIGBUS, SIGILL and SIGFPE are blocked too: one sent with kill() is the guest's, and a fault of
# hermipy's own still ends it (force_sig_fault unblocks a blocked one and applies the default action).
FORWARDED = frozenset(int(s) for s in signal.valid_signals() if int(s) < SIGKICK) - {signal.SIGKILL, signal.SIGSTOP}
FORWARD_ROUNDS = 64            # signalfd reads per forwarding round (see _forward_pending)
PARKABLE = (1 << (SIGALRM - 1)) | (1 << (SIGVTALRM - 1)) | (1 << (SIGPROF - 1))     # the itimers' signals

_start_state: tuple[int, tuple[int, ...]] | None = None
_target = None                 # the task the pump sends to (its thread group's leader, or what execve made)
_pump_pid = 0                  # the process the pump thread runs in (a fork child must start its own)
_pump_tid = 0                  # its host thread id (POSIX timers aim their expiries at it)
_kick_mask = None              # sigset for ppoll: the thread's mask with SIGKICK open
_fd = -1                       # the pump's signalfd (non-blocking)
_read_lock = threading.Lock()  # held while a record is read and forwarded (the pump, or a task: _task_turn)
_turn = threading.Condition()  # guards _tasks_waiting; the pump waits on it for the tasks to be done
_tasks_waiting = 0             # tasks waiting for or holding _read_lock (the pump steps aside meanwhile)
_parent_fd = -1                # the pump's pidfd of hermipy's parent (see after_reparent)
_hangups: dict[int, object] = {}     # fd -> what the pump calls when its other end closes (on_hangup)
_after_reparent = None         # () -> None: what the guest reads of its parent, made current again
_continued_at = 0.0            # time.monotonic() when a SIGCONT was last read (see continued_since)
parked = 0                     # PARKABLE signals left out of the signalfd's mask: the guest ignores them


def _snapshot() -> tuple[int, tuple[int, ...]]:
    """The blocked mask and ignored signals hermipy was started with (execve keeps both for the guest)."""
    global _start_state
    if _start_state is None:
        blocked = 0
        try:
            for s in _signal.pthread_sigmask(signal.SIG_BLOCK, []):
                if 1 <= int(s) <= 64:
                    blocked |= 1 << (int(s) - 1)
        except (OSError, ValueError):
            pass
        ignored = []
        for s in range(1, 32):
            if s in (signal.SIGKILL, signal.SIGSTOP, signal.SIGPIPE, signal.SIGXFSZ):
                continue
            try:
                if signal.getsignal(s) == signal.SIG_IGN:
                    ignored.append(s)
            except (ValueError, OSError):
                pass
        _start_state = blocked, tuple(ignored)
    return _start_state


def host_blocked_at_start() -> int:
    return _snapshot()[0]


def host_ignored_at_start() -> tuple[int, ...]:
    return _snapshot()[1]


def _noop(_signo, _frame) -> None:
    """SIGKICK's handler: its only job is to make blocking host calls return EINTR."""


def start(task) -> None:
    """Route host signals to ``task``'s thread group: block them in this thread (every thread made later
    inherits that), install SIGKICK's handler, and start the pump (again in a fork child)."""
    global _target, _pump_pid, _kick_mask, parked
    _snapshot()
    _target = task
    if _pump_pid == os.getpid():
        return
    if threading.current_thread() is threading.main_thread() and signal.getsignal(SIGKICK) is not _noop:
        signal.signal(SIGKICK, _noop)
    _signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)     # (not signal's: see kicks._KICK_ONLY)
    _signal.pthread_sigmask(signal.SIG_UNBLOCK, [SIGKICK])
    _kick_mask = ctypes.c_uint64(sum(1 << (s - 1) for s in FORWARDED))
    from hermipy.syscalls.host import host_syscall
    global _fd, _read_lock, _turn, _tasks_waiting, _pump_tid, _parent_fd
    _read_lock = threading.Lock()          # a fork child's copy may have been held by the parent's pump
    _turn, _tasks_waiting = threading.Condition(), 0
    _parent_fd = _watch_parent()           # (a fork child leaves its copy of the parent's open, as the signalfd)
    if not task.proc.forked and _after_reparent is not None:
        _after_reparent()                  # boot's answers may name a parent that has exited since
    _fd = host_syscall("signalfd4", -1, ctypes.c_uint64(_kick_mask.value), 8, SFD_CLOEXEC | SFD_NONBLOCK)
    parked = 0                             # (a fork child's new signalfd reads everything)
    _pump_pid = os.getpid()
    pump = threading.Thread(target=_pump, args=(_fd,), name="hermipy-signals", daemon=True)
    pump.start()
    _pump_tid = pump.native_id


def pump_tid() -> int:
    return _pump_tid


def retarget(task) -> None:
    """execve made a new image: host signals go to it from now on."""
    global _target
    _target = task


def kick_mask() -> ctypes.c_uint64:
    """The signal mask a task thread waits with (ppoll's sigmask): everything forwarded blocked, SIGKICK open."""
    return _kick_mask


def after_reparent(refresh) -> None:
    """Call ``refresh()`` (from the pump thread) whenever the host gives hermipy's process a new parent, as
    Linux reparents a process whose parent exits (to init or a subreaper), so that getppid's answer inside
    the guest (runner.IN_GUEST) changes too. The pump looks before it forwards what it read: a signal sent
    after the parent's exit finds the new parent (nginx ignores SIGUSR2 in a daemon whose getppid() still
    names the process that started it)."""
    global _after_reparent
    _after_reparent = refresh


def _watch_parent() -> int:
    """A pidfd of hermipy's current parent: readable once that one has exited; -1 without pidfd_open(2)."""
    while True:
        ppid = os.getppid()
        try:
            pidfd = os.pidfd_open(ppid)
        except ProcessLookupError:
            continue                       # gone meanwhile: the next one is to be watched
        except OSError:
            return -1
        if os.getppid() == ppid:
            return pidfd
        os.close(pidfd)


def on_hangup(fd: int, call) -> None:
    """Have the pump call ``call()`` when the other end of socket ``fd`` closes (`hermipy serve`'s child: its
    client died). Registered before the pump starts; the pumps of the processes the guest forks watch it too."""
    _hangups[fd] = call


def _pump(fd: int) -> None:
    _signal.pthread_sigmask(signal.SIG_BLOCK, [SIGKICK])
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    if _parent_fd >= 0:
        poller.register(_parent_fd, select.POLLIN)
    for watched in _hangups:
        poller.register(watched, select.POLLRDHUP)
    while True:
        try:
            events = poller.poll()
        except InterruptedError:
            continue
        for ready, event in events:
            if ready in _hangups and event & (select.POLLRDHUP | select.POLLHUP | select.POLLERR):
                _hangups[ready]()
        if _parent_exited():
            _watch_new_parent(poller)
        if _tasks_waiting:
            with _turn:
                _turn.wait_for(lambda: not _tasks_waiting)
        with _read_lock:
            _forward_pending(fd)


def _parent_exited() -> bool:
    if _parent_fd < 0:
        return False
    watch = select.poll()
    watch.register(_parent_fd, select.POLLIN)
    return bool(watch.poll(0))


def _watch_new_parent(poller) -> None:
    """The parent watched has exited: watch the one the host gave instead, and refresh what the guest reads."""
    global _parent_fd
    poller.unregister(_parent_fd)
    os.close(_parent_fd)
    _parent_fd = _watch_parent()
    if _parent_fd >= 0:
        poller.register(_parent_fd, select.POLLIN)
    if _after_reparent is not None:
        _after_reparent()


@contextlib.contextmanager
def _task_turn():
    """_read_lock for a task thread. Python's locks are not fair: a flood of host signals (a POSIX timer of 1 ns)
    would have the pump take it back round after round, so the pump waits while a task wants it."""
    global _tasks_waiting
    with _turn:
        _tasks_waiting += 1
    try:
        with _read_lock:
            yield
    finally:
        with _turn:
            _tasks_waiting -= 1
            if not _tasks_waiting:
                _turn.notify_all()


def _forward_pending(fd: int) -> None:
    """Forward the signals the host has pending for this process (none left when this returns, unless more kept
    coming for FORWARD_ROUNDS reads: a POSIX timer with a tiny interval is re-armed by each read, and the pump
    must leave the lock to the task that is disarming it). Signals read together are the guest's together
    (under its group's lock): a task sees all or none of them, as a Linux process sees what was pending at once."""
    for _round in range(FORWARD_ROUNDS):
        try:
            data = os.read(fd, SIGNALFD_RECORD * 16)
        except InterruptedError:
            continue
        except BlockingIOError:
            return
        task = _target
        if task is None:
            continue
        with task.group.lock:
            for offset in range(0, len(data) - SIGNALFD_RECORD + 1, SIGNALFD_RECORD):
                _forward(task, SIGNALFD_SIGINFO.unpack_from(data, offset))


def drain() -> None:
    """Make what the host has pending for this process the guest's now (see the module docstring). Called
    by a task thread holding no lock of the kernel's."""
    if _pump_pid == os.getpid():
        with _task_turn():
            _forward_pending(_fd)


@contextlib.contextmanager
def held():
    """Forward what the host has pending for this process, then nothing more until the block ends: what the
    block changes (a timer set again) is atomic with respect to the host signals. Entered holding no lock of
    the kernel's."""
    if _pump_pid != os.getpid():
        yield
        return
    with _task_turn():
        _forward_pending(_fd)
        yield


def continued_since(started: float) -> bool:
    """Whether a SIGCONT reached this process since ``started`` (a time.monotonic()), what the host has pending
    included. A stopped process runs again only once SIGCONT is pending (prepare_signal wakes it as the signal is
    queued), so a task whose host call a stop ended sees it here."""
    drain()
    return _continued_at >= started


def _ignored_by_guest(task, bit: int) -> bool:
    """sig_ignored() for a signal sent to ``task``'s thread group: ignored and not blocked by ``task``."""
    signals = task.signals
    return signals.ignored(bit.bit_length()) and not signals.blocked & bit


@contextlib.contextmanager
def parking(bits: int):
    """Around a change of the guest's action or blocked mask for the PARKABLE signals among ``bits``: those
    parked are flushed from the host and read again, and once the change is made those the guest ignores are
    parked; nothing is forwarded meanwhile. Entered holding no lock of the kernel's."""
    global parked
    bits &= PARKABLE
    if not bits or _pump_pid != os.getpid():
        yield
        return
    with _task_turn():
        for bit in _bits(bits & parked):
            _flush(bit.bit_length())
        before = parked
        parked &= ~bits
        try:
            yield
        finally:
            if _target is not None:
                for bit in _bits(bits):
                    if _ignored_by_guest(_target, bit):
                        parked |= bit
            if parked != before:
                _update_mask()
            timer = _target.proc.guest_clock if _target is not None and before & bits & (1 << (SIGVTALRM - 1)) else None
            if timer is not None:          # its host trigger, if it had fired, was flushed: armed again
                with _target.group.lock:
                    timer.triggered(_target)


def _bits(mask: int):
    while mask:
        bit = mask & -mask
        yield bit
        mask ^= bit


def _flush(signo: int) -> None:
    """Discard ``signo`` pending on the host: setting SIG_IGN does (do_sigaction), blocked or not, and without
    dequeue_signal (which would re-arm ITIMER_REAL); the host action is then put back."""
    from hermipy.syscalls.host import host_syscall
    ignore, old = ctypes.create_string_buffer(struct.pack("<4Q", 1, 0, 0, 0)), ctypes.create_string_buffer(32)
    host_syscall("rt_sigaction", signo, ignore, old, 8)
    host_syscall("rt_sigaction", signo, old, None, 8)


def _update_mask() -> None:
    """The signalfd reads every forwarded signal but the parked ones."""
    from hermipy.syscalls.host import host_syscall
    host_syscall("signalfd4", _fd, ctypes.c_uint64(_kick_mask.value & ~parked), 8, 0)


def take_raised(signo: int) -> bool:
    """Take back the ``signo`` the host just raised at this thread for hermipy's own call (a write to a
    broken pipe: SIGPIPE), so that the pump never forwards it later; True when it was pending."""
    if _pump_pid != os.getpid():
        return False                       # not blocked: the host ignored it (CPython's SIGPIPE)
    return signal.sigtimedwait([signo], 0) is not None


def _forward(task, fields: tuple) -> None:
    """One host signal to the guest: a POSIX timer's expiry to the signal and thread its guest timer names,
    anything else to the thread group."""
    from hermipy.syscalls.sys_signal import signal_group, signal_task
    from hermipy.syscalls.sys_timer import TIMER_HOST_SIGNAL, timer_siginfo
    global _continued_at, parked
    signo, code = fields[0], fields[2]
    if signo == SIGCONT:
        _continued_at = time.monotonic()
        from hermipy.syscalls.kicks import continued
        continued(_continued_at)
    bit = 1 << (signo - 1)
    if bit & PARKABLE and _ignored_by_guest(task, bit):
        parked |= bit
        _update_mask()
        return                             # (dropped, as signal_group would: sig_ignored)
    if signo == SIGVTALRM and code == SI_KERNEL:
        # The host's ITIMER_VIRTUAL is the trigger of the guest's (sys_timer.VirtualItimer), not its signal.
        timer = task.proc.guest_clock
        if timer is not None:
            timer.triggered(task)
        return
    if signo == TIMER_HOST_SIGNAL and code == SI_TIMER:
        expiry = timer_siginfo(task, fields[6], fields[8])
        if expiry is None:
            return
        signo, tid, info = expiry
        target = task.group.tasks.get(tid) if tid else None
        if target is not None:
            signal_task(target, signo, info)
        else:
            signal_group(task, signo, info)
        return
    if signo == SIGCHLD and CLD_FIRST <= code <= CLD_DUMPED and task.proc.exit_signals:
        exit_signal = task.proc.exit_signals.pop(fields[3], None)
        if exit_signal is not None:        # do_notify_parent: the child's exit_signal, with SIGCHLD's fields
            if exit_signal:
                info = bytearray(guest_siginfo(fields))
                struct.pack_into("<i", info, 0, exit_signal)
                signal_group(task, exit_signal, bytes(info))
            return
    if signo == SIGCHLD and code == CLD_KILLED:
        from hermipy.syscalls.coredump import take_dumped
        if take_dumped(fields[3], keep=True):  # a core hermipy wrote for the child: CLD_DUMPED
            fields = (*fields[:2], CLD_DUMPED, *fields[3:])
    signal_group(task, signo, guest_siginfo(fields))
    if signo == SIGALRM and code == SI_KERNEL and all(t.signals.blocked & bit for t in task.group.tasks.values()):
        from hermipy.syscalls.sys_timer import stop_real_timer
        stop_real_timer()


def guest_siginfo(fields: tuple) -> bytes:
    """struct siginfo (128 bytes) from a signalfd_siginfo's fields, laid out by si_code as Linux does
    (uapi/asm-generic/siginfo.h: _kill, _rt, _timer, _sigchld, _sigpoll)."""
    (signo, errno, code, pid, uid, fd, tid, band, overrun, _trapno, status, _int, ptr, utime, stime, _addr,
     _lsb) = fields
    info = bytearray(128)
    struct.pack_into("<iii", info, 0, signo, errno, code)
    if code == SI_TIMER:
        struct.pack_into("<iiQ", info, 16, tid, overrun, ptr)
    elif signo == SIGCHLD and CLD_FIRST <= code <= CLD_LAST:
        struct.pack_into("<IIi4xqq", info, 16, pid, uid, status, utime, stime)
    elif signo == SIGIO and code > 0:
        struct.pack_into("<qi", info, 16, band, fd)
    elif code in (SI_QUEUE, SI_MESGQ):
        struct.pack_into("<IIQ", info, 16, pid, uid, ptr)
    else:
        struct.pack_into("<II", info, 16, pid, uid)
    return bytes(info)
