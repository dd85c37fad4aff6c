"""Interval and POSIX timers: alarm, setitimer, getitimer, timer_create & co. (kernel/time/itimer.c,
kernel/time/posix-timers.c).

A guest process is a hermipy host process, so its timers are host timers: they tick in the host kernel at
the host's precision, expire as host signals, and the signal pump (host_signals.py) turns each expiry into
the guest's signal with the siginfo Linux fills (SI_KERNEL for alarm and itimers; SI_TIMER with si_timerid,
si_overrun and si_value for POSIX timers). alarm and itimers are the process's own, so execve keeps them and
a fork child starts without them, as Linux does; POSIX timers are deleted by execve here, as by Linux.

POSIX timers all expire as one host signal (TIMER_HOST_SIGNAL) aimed at the pump thread (SIGEV_THREAD_ID), so
that the guest's signal number may be one the host keeps for itself (glibc's 32 for SIGEV_THREAD timers) and
a SIGEV_THREAD_ID timer reaches the guest thread it names; the pump maps the host timer id (the guest's own id)
back to the guest's signal and thread (``Process.timers``). CPU-time clocks measure hermipy's host process or
thread, guest time included: on KVM that is the guest's own CPU time plus hermipy's, on Unicorn the emulation's.
ITIMER_VIRTUAL is the exception, kept here (VirtualItimer): it counts user time only, and hermipy's own work for
the guest is the guest's system time.

The pump takes each host expiry at once, so the host timer never overruns; the guest's accounting is done here,
as Linux does it with the one signal it preallocates per timer (posixtimer_send_sigqueue and
posixtimer_deliver_signal, Linux 6.13+): while a timer's expiry is pending in the guest, further expiries only
count as its overrun; dequeuing it fills in si_overrun, which timer_getoverrun reports from then on; and an
expiry still pending when its timer is set again or deleted is dropped at dequeue.
"""
import ctypes
import struct
import time
from errno import EINVAL

from hermipy.syscalls import host_signals
from hermipy.syscalls.argtypes import Enum, Int, Ptr, UInt
from hermipy.syscalls.errors import SyscallError
from hermipy.syscalls.host import host_syscall
from hermipy.syscalls.sys_time import is_cpu_clock, watch_cpu_time
from hermipy.syscalls.table import FULL, PARTIAL, syscall

SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD, SIGEV_THREAD_ID = 0, 1, 2, 4
TIMER_HOST_SIGNAL = 63                 # SIGRTMAX - 1: how every guest POSIX timer expires on the host
NSIG = 64
SIGALRM = 14
SI_TIMER = -2
INT_MAX = 2**31 - 1
SIGEVENT_SIZE = 64
ITIMERS = Enum({0: "ITIMER_REAL", 1: "ITIMER_VIRTUAL", 2: "ITIMER_PROF"})
CLOCKS = Enum({0: "CLOCK_REALTIME", 1: "CLOCK_MONOTONIC", 2: "CLOCK_PROCESS_CPUTIME_ID",
               3: "CLOCK_THREAD_CPUTIME_ID", 7: "CLOCK_BOOTTIME", 8: "CLOCK_REALTIME_ALARM",
               9: "CLOCK_BOOTTIME_ALARM"})
_CPU_NOTE = ("ITIMER_VIRTUAL counts the guest's own CPU time, hermipy's work for it being system time; on KVM that "
             "includes each exit's world switch (~45 us on PVM, 1-2 us on VMX/SVM)")
ITIMER_VIRTUAL = 1
SIGVTALRM = 26
SI_KERNEL = 0x80
USEC = 1000
SEC = 1_000_000_000
NS_MAX = 2**63 - 1                     # KTIME_MAX: timespec64_to_ns saturates there


class Itimerspec(ctypes.Structure):
    _fields_ = [("interval_sec", ctypes.c_int64), ("interval_nsec", ctypes.c_int64),
                ("value_sec", ctypes.c_int64), ("value_nsec", ctypes.c_int64)]


class Itimerval(ctypes.Structure):
    _fields_ = [("interval_sec", ctypes.c_int64), ("interval_usec", ctypes.c_int64),
                ("value_sec", ctypes.c_int64), ("value_usec", ctypes.c_int64)]


ITIMER_REAL = 0
_real_stopped = None          # (interval, next expiry on CLOCK_MONOTONIC) ns: the host's ITIMER_REAL stopped


def stop_real_timer() -> None:
    """A periodic ITIMER_REAL's SIGALRM that every guest thread blocks (signal pump, under the group's lock):
    Linux arms the timer again only as the signal is dequeued (it_real_fn, dequeue_signal), so until then it
    stands still (getitimer: value 0). The host's was armed again as the pump read its signal; it is stopped
    here, its next expiry kept, and started at the guest's dequeue (``restart_real_timer``)."""
    global _real_stopped
    cur = Itimerval()
    host_syscall("getitimer", ITIMER_REAL, cur)
    interval = cur.interval_sec * SEC + cur.interval_usec * USEC
    if interval:
        host_syscall("setitimer", ITIMER_REAL, Itimerval(), None)
        _real_stopped = interval, time.monotonic_ns() + cur.value_sec * SEC + cur.value_usec * USEC


def restart_real_timer() -> None:
    """dequeue_signal() of a SIGALRM: a stopped ITIMER_REAL goes on, its expiry moved forward by whole
    intervals past now (hrtimer_forward)."""
    global _real_stopped
    if _real_stopped is None:
        return
    (interval, expires), _real_stopped = _real_stopped, None
    now = time.monotonic_ns()
    if expires <= now:
        expires += ((now - expires) // interval + 1) * interval
    host_syscall("setitimer", ITIMER_REAL, Itimerval(*divmod(interval // USEC, 1_000_000),
                                                     *divmod(-(-(expires - now) // USEC), 1_000_000)), None)


def forget_real_timer() -> bytes:
    """alarm or setitimer(ITIMER_REAL) replaces a stopped ITIMER_REAL: what getitimer said of it."""
    global _real_stopped
    stopped, _real_stopped = _real_stopped, None
    return _itimerval(0, stopped[0] if stopped else 0)


@syscall("alarm", FULL)
def alarm(k, seconds: UInt) -> int:
    """alarm(2): the host's own alarm; SIGALRM reaches the guest through the signal pump."""
    with k.group.lock:
        forget_real_timer()
        return host_syscall("alarm", seconds)


def _parse_itimerval(raw: bytes) -> tuple[int, int]:
    """get_itimerval(): (value, interval) in ns from a struct itimerval; EINVAL for an invalid timeval."""
    interval_sec, interval_usec, value_sec, value_usec = struct.unpack("<4q", raw)
    if min(interval_sec, value_sec) < 0 or not (0 <= interval_usec < 1_000_000 and 0 <= value_usec < 1_000_000):
        raise SyscallError(EINVAL)
    return (min(value_sec * SEC + value_usec * USEC, NS_MAX), min(interval_sec * SEC + interval_usec * USEC, NS_MAX))


def _itimerval(value_ns: int, interval_ns: int) -> bytes:
    """put_itimerval(): ns to timevals, the microseconds truncated (ns_to_kernel_old_timeval)."""
    return struct.pack("<4q", *divmod(interval_ns // USEC, 1_000_000), *divmod(value_ns // USEC, 1_000_000))


@syscall("setitimer", PARTIAL, note=_CPU_NOTE)
def setitimer(k, which: ITIMERS, value: Ptr, ovalue: Ptr) -> int:
    """setitimer(2): struct itimerval {interval, value} of timevals (a NULL new value disarms, as Linux has
    allowed since 2.6.x with a warning). ITIMER_REAL and ITIMER_PROF are the host's own; ITIMER_VIRTUAL is
    kept here (VirtualItimer), as only the guest's own CPU time may count for it."""
    raw = k.mem.read(value, 32) if value else bytes(32)
    new = _parse_itimerval(raw)
    if which != ITIMER_REAL:
        watch_cpu_time(k)
    if which == ITIMER_REAL:
        host_signals.drain()               # an expiry the pump has not read yet leaves the host's timer at 0
        with k.group.lock:
            stopped = _real_stopped is not None
            old = forget_real_timer()
            host_old = Itimerval()
            host_syscall("setitimer", which, Itimerval.from_buffer_copy(raw), host_old)
            old = old if stopped else bytes(host_old)
    elif which != ITIMER_VIRTUAL:
        old = Itimerval()
        host_syscall("setitimer", which, Itimerval.from_buffer_copy(raw), old)
        old = bytes(old)
    else:
        old = VirtualItimer.set(k, *new)
    if ovalue:
        k.mem.write(ovalue, old)
    if which == ITIMER_REAL:
        from hermipy.syscalls.sys_signal import _finish
        return _finish(k, 0)               # what drain() queued is delivered on the way out
    return 0


@syscall("getitimer", PARTIAL, note=_CPU_NOTE)
def getitimer(k, which: ITIMERS, value: Ptr) -> int:
    """getitimer(2)."""
    if which == ITIMER_VIRTUAL:
        cur = VirtualItimer.get(k)
    elif which == ITIMER_REAL:
        # Linux re-arms a periodic ITIMER_REAL as its signal is taken, which a running task does at once; the
        # host's waits for the pump to read it: read now, and the signal is delivered on the way out.
        host_signals.drain()
        with k.group.lock:
            cur = _itimerval(0, _real_stopped[0]) if _real_stopped is not None else None
            if cur is None:
                host_cur = Itimerval()
                host_syscall("getitimer", which, host_cur)
                cur = bytes(host_cur)
    else:
        host_cur = Itimerval()
        host_syscall("getitimer", which, host_cur)
        cur = bytes(host_cur)
    k.mem.write(value, cur)
    if which == ITIMER_REAL:
        from hermipy.syscalls.sys_signal import _finish
        return _finish(k, 0)
    return 0


def _thread_cpu_ns(tid: int) -> int:
    """The CPU time of host thread ``tid`` of this process: its clock is MAKE_THREAD_CPUCLOCK(tid,
    CPUCLOCK_SCHED) (include/linux/posix-timers.h)."""
    return time.clock_gettime_ns(~tid << 3 | 6)


class VirtualItimer:
    """ITIMER_VIRTUAL (kernel/time/itimer.c, posix-cpu-timers.c check_cpu_itimer): it counts the guest's user
    time only, the CPU time its tasks' host threads spend running guest code (in KVM_RUN, or in Unicorn's
    emulation outside hermipy's hooks). hermipy's own work for the guest (its syscalls, faults, signals) is the
    guest's system time, as the kernel's work is on Linux: it counts for ITIMER_PROF, not here.

    While the timer is armed (``Process.guest_clock`` is it), each task notes its thread's CPU clock as it
    enters guest code and adds what it used as it leaves (``entered``/``left``: the dispatcher around each
    syscall, the runner around each CPU run), and checks the expiry there. A guest that computes without
    leaving is caught by a host trigger: the host's own ITIMER_VIRTUAL, armed for the time left, counts the
    user time of hermipy's whole process, never less than the guest's; the signal pump hands its SIGVTALRM to
    ``triggered``, which checks and arms it again. Fields change under the thread group's lock."""

    __slots__ = ("expires", "interval", "used")

    def __init__(self, expires: int, interval: int):
        self.expires = expires             # guest CPU ns (of ``used``) at which it fires; 0: disarmed
        self.interval = interval           # it_incr
        self.used = 0                      # guest CPU ns of finished stretches since it was armed

    @staticmethod
    def set(k, value: int, interval: int) -> bytes:
        """set_cpu_itimer(): the old setting, then the new one (a value gets a tick more, as Linux adds
        TICK_NSEC to make up for tick-sampled CPU time)."""
        proc, group = k.proc, k.group
        with group.lock:
            timer = proc.itimer_virtual
            old = timer.remaining(group) if timer is not None and timer.expires else 0
            old = _itimerval(old, timer.interval if timer is not None else 0)
            timer = VirtualItimer(value + _tick_ns() if value else 0, interval)
            proc.itimer_virtual = timer if value or interval else None
            proc.guest_clock = timer if value else None
            if value:
                now = time.thread_time_ns()
                for task in group.tasks.values():
                    task.guest_since = now if task is k else _thread_cpu_ns(task.tid)
            timer._arm_host(0)
        return old

    @staticmethod
    def get(k) -> bytes:
        """get_cpu_itimer(), after the check a tick would have made (check_cpu_itimer)."""
        proc, group = k.proc, k.group
        with group.lock:
            timer = proc.itimer_virtual
            if timer is None:
                return _itimerval(0, 0)
            if timer.expires:
                used = timer._now(group)
                if timer._check(k, used):
                    timer._arm_host(used)
            return _itimerval(timer.remaining(group) if timer.expires else 0, timer.interval)

    def remaining(self, group) -> int:
        """The value left (TICK_NSEC when due: about to fire)."""
        left = self.expires - self._now(group)
        return left if left > 0 else _tick_ns()

    def _now(self, group) -> int:
        """The guest CPU time used so far, the stretches tasks are running included."""
        used = self.used
        for task in group.tasks.values():
            since = task.guest_since
            if since is not None:
                try:
                    used += max(0, _thread_cpu_ns(task.tid) - since)
                except OSError:            # the thread has just ended
                    pass
        return used

    def entered(self, k) -> None:
        """``k`` enters guest code."""
        k.guest_since = time.thread_time_ns()

    def left(self, k) -> None:
        """``k`` leaves guest code: what it used counts, and the timer fires when due (the task delivers the
        signal on its way back to the guest)."""
        now = time.thread_time_ns()
        with k.group.lock:
            since = k.guest_since
            if since is None:
                return
            k.guest_since = None
            self.used += now - since
            if self.expires and self._check(k, self.used):
                self._arm_host(self.used)
                k.interrupt = True

    def triggered(self, k) -> None:
        """The host trigger fired (signal pump, under the group's lock)."""
        if self.expires:
            used = self._now(k.group)
            self._check(k, used)
            self._arm_host(used)

    def _check(self, k, used: int) -> bool:
        """check_cpu_itimer(): due, it fires once and moves on by its interval (or ends); whether it fired."""
        if used < self.expires:
            return False
        from hermipy.syscalls.sys_signal import make_siginfo, signal_group
        if self.interval:
            self.expires += self.interval
        else:
            self.expires = 0
            k.proc.guest_clock = None
        signal_group(k, SIGVTALRM, make_siginfo(SIGVTALRM, SI_KERNEL))
        return True

    def _arm_host(self, used: int) -> None:
        """The host trigger: the host's ITIMER_VIRTUAL for the guest time left (at least a microsecond: the host
        rounds up to its next tick), or disarmed."""
        left = max(self.expires - used, USEC) if self.expires else 0
        host_syscall("setitimer", ITIMER_VIRTUAL, Itimerval(0, 0, *divmod(-(-left // USEC), 1_000_000)), None)


_tick = 0


def _tick_ns() -> int:
    """TICK_NSEC of the host, learnt once from what it adds to an ITIMER_VIRTUAL setting (set_cpu_itimer)."""
    global _tick
    if not _tick:
        probe, got = Itimerval(0, 0, 1000, 0), Itimerval()
        host_syscall("setitimer", ITIMER_VIRTUAL, probe, None)
        host_syscall("getitimer", ITIMER_VIRTUAL, got)
        host_syscall("setitimer", ITIMER_VIRTUAL, Itimerval(), None)
        added = (got.value_sec - 1000) * SEC + got.value_usec * USEC
        _tick = min((SEC // hz for hz in (100, 250, 300, 1000)), key=lambda tick: abs(tick - added))
    return _tick


class PosixTimer:
    """A guest POSIX timer (Linux's struct k_itimer): where its expiries go and its overrun accounting. Its
    fields change under the thread group's lock (the pump queues expiries, dequeue_signal delivers them)."""

    __slots__ = ("id", "signo", "tid", "value", "seq", "queued", "overrun", "overrun_last", "periodic", "missed")

    def __init__(self, timer_id: int, signo: int, tid: int, value: int):
        self.id, self.signo, self.tid, self.value = timer_id, signo, tid, value
        self.seq = 0                 # it_signal_seq: bumped by timer_settime and timer_delete
        self.queued = None           # the TimerExpiry last queued
        self.overrun = 0             # expiries since the queued one
        self.overrun_last = 0        # what timer_getoverrun reports
        self.periodic = False        # set with an interval
        self.missed = 0              # expiries while its signal was ignored (on Linux's ignored list when > 0)

    def expired(self, k, host_overrun: int):
        """An expiry of the host timer: (guest signal, target tid or 0, siginfo) to queue, or None when the last
        one is still pending (then it counts as an overrun) or the thread it signals has ended
        (posixtimer_get_target finds no task)."""
        target = k.group.tasks.get(self.tid) if self.tid else None
        if self.tid and target is None:
            return None
        signals = (target or k).signals
        if signals.ignored(self.signo) and not signals.blocked & (1 << (self.signo - 1)):
            # posixtimer_sig_ignore(): a periodic timer waits for a handler of its signal (``unignored``), a
            # one-shot expiry is dropped
            if self.periodic:
                self.missed += 1 + host_overrun
            return None
        # The last expiry may be gone from the queue without a dequeue: dropped as ignored, or merged into a
        # standard signal already pending.
        queue = (target.signals.pending if target is not None else k.signals.shared).get(self.signo, ())
        if self.queued is not None and any(queued is self.queued for queued in queue):
            self.overrun += 1 + host_overrun
            return None
        self.overrun = host_overrun
        self.queued = TimerExpiry(self)
        return self.signo, self.tid, self.queued

    def reset(self) -> None:
        """timer_settime or timer_delete: a pending expiry is dropped, the overrun accounting starts over."""
        self.seq += 1
        self.queued = None
        self.overrun = self.overrun_last = self.missed = 0

    def unignored(self, k) -> bool:
        """posixtimer_sig_unignore(): its signal has a handler again; a periodic timer that expired while it was
        ignored gets it queued at once, the expiries missed meanwhile as its overrun (the count Linux's forward
        of the timer past now gives at the delivery). Under the thread group's lock; whether one was queued."""
        from hermipy.syscalls.sys_signal import signal_group, signal_task
        if not self.missed:
            return False
        target = k.group.tasks.get(self.tid) if self.tid else None
        self.overrun, self.missed = self.missed - 1, 0
        if self.tid and target is None:
            return False
        self.queued = TimerExpiry(self)
        if target is not None:
            signal_task(target, self.signo, self.queued)
        else:
            signal_group(k, self.signo, self.queued)
        return True


class TimerExpiry(bytes):
    """The siginfo of a POSIX timer's queued expiry (SI_TIMER: si_timerid, si_overrun, si_value); dequeue_signal
    hands it to ``deliver``."""

    def __new__(cls, timer: PosixTimer):
        info = bytearray(128)
        struct.pack_into("<iii4xiiQ", info, 0, timer.signo, 0, SI_TIMER, timer.id, 0, timer.value)
        self = super().__new__(cls, info)
        self.timer, self.seq = timer, timer.seq
        return self

    def deliver(self) -> bytes | None:
        """posixtimer_deliver_signal(): the siginfo with si_overrun filled in, or None when the timer was set
        again or deleted since (the expiry is dropped)."""
        timer = self.timer
        if self.seq != timer.seq:
            return None
        timer.overrun_last = min(timer.overrun, INT_MAX)
        info = bytearray(self)
        struct.pack_into("<i", info, 20, timer.overrun_last)
        return bytes(info)


@syscall("timer_create", PARTIAL, note="CPU-time clocks measure hermipy's host process or thread (guest time "
                                        "included); SIGEV_THREAD is glibc's (a SIGEV_THREAD_ID timer)")
def timer_create(k, which_clock: CLOCKS, timer_event_spec: Ptr, created_timer_id: Ptr) -> int:
    """timer_create(2): a host timer whose expiries the signal pump delivers as the guest asked. Checked in
    Linux's order: the sigevent is read, the clock checked (by the host), then the sigevent (good_sigevent)."""
    if timer_event_spec:
        value, signo, notify, tid = struct.unpack_from("<Qiii", k.mem.read(timer_event_spec, SIGEVENT_SIZE))
    else:                                        # the default: SIGEV_SIGNAL, SIGALRM, si_value = the timer id
        value, signo, notify, tid = None, SIGALRM, SIGEV_SIGNAL, 0
    if is_cpu_clock(which_clock):
        watch_cpu_time(k)
    host_event = bytearray(SIGEVENT_SIZE)
    host_notify = SIGEV_NONE if notify == SIGEV_NONE else SIGEV_THREAD_ID
    struct.pack_into("<Qiii", host_event, 0, 0, TIMER_HOST_SIGNAL, host_notify, host_signals.pump_tid())
    timer_id = ctypes.c_int(0)
    host_syscall("timer_create", which_clock, (ctypes.c_char * SIGEVENT_SIZE).from_buffer(host_event), timer_id)
    timer = timer_id.value
    try:
        target = _check_sigevent(k, signo, notify, tid)
        k.mem.write(created_timer_id, struct.pack("<i", timer))
    except SyscallError:
        host_syscall("timer_delete", timer)
        raise
    k.proc.timers[timer] = PosixTimer(timer, signo, target, timer if value is None else value)
    return 0


def _check_sigevent(k, signo: int, notify: int, tid: int) -> int:
    """good_sigevent(): the thread a SIGEV_THREAD_ID timer signals (0: the process); EINVAL for a thread of
    another process, an unknown notification or a bad signal. SIGEV_THREAD is the C library's: the kernel
    signals the process."""
    if notify == SIGEV_NONE:
        return 0
    if notify == SIGEV_THREAD_ID:
        if tid not in k.group.tasks:
            raise SyscallError(EINVAL)
    elif notify not in (SIGEV_SIGNAL, SIGEV_THREAD):
        raise SyscallError(EINVAL)
    if not 1 <= signo <= NSIG:
        raise SyscallError(EINVAL)
    return tid if notify == SIGEV_THREAD_ID else 0


def _own(k, timer_id: int) -> PosixTimer:
    timer = k.proc.timers.get(timer_id)
    if timer is None:
        raise SyscallError(EINVAL)
    return timer


@syscall("timer_settime", FULL)
def timer_settime(k, timer_id: Int, flags: Int, new_setting: Ptr, old_setting: Ptr) -> int:
    """timer_settime(2): relative or TIMER_ABSTIME, one-shot or periodic, on the host timer (EINVAL for a NULL
    setting, before the copy's EFAULT); a pending expiry is dropped and the overrun count starts over."""
    if not new_setting:
        raise SyscallError(EINVAL)
    new = Itimerspec.from_buffer_copy(k.mem.read(new_setting, 32))
    old = Itimerspec()
    timer = _own(k, timer_id)
    with host_signals.held():                    # expiries of the old setting are queued, then dropped
        host_syscall("timer_settime", timer_id, flags, new, old)
        with k.group.lock:
            timer.reset()
            timer.periodic = bool(new.interval_sec or new.interval_nsec)
    if old_setting:
        k.mem.write(old_setting, bytes(old))
    return 0


@syscall("timer_gettime", FULL)
def timer_gettime(k, timer_id: Int, setting: Ptr) -> int:
    """timer_gettime(2)."""
    _own(k, timer_id)
    cur = Itimerspec()
    host_syscall("timer_gettime", timer_id, cur)
    k.mem.write(setting, bytes(cur))
    return 0


@syscall("timer_getoverrun", FULL)
def timer_getoverrun(k, timer_id: Int) -> int:
    """timer_getoverrun(2): the overrun count of the last expiry delivered."""
    return _own(k, timer_id).overrun_last


@syscall("timer_delete", FULL)
def timer_delete(k, timer_id: Int) -> int:
    """timer_delete(2)."""
    timer = _own(k, timer_id)
    with k.group.lock:
        host_syscall("timer_delete", timer_id)
        del k.proc.timers[timer_id]
        timer.reset()
    return 0


def delete_all(k) -> None:
    """execve (exit_itimers via begin_new_exec): the POSIX timers go; alarm and itimers stay."""
    with k.group.lock:
        for timer_id, timer in k.proc.timers.items():
            try:
                host_syscall("timer_delete", timer_id)
            except OSError:
                pass
            timer.reset()
        k.proc.timers.clear()


def unignored(k, signo: int) -> bool:
    """rt_sigaction gave ``signo`` a handler (it was ignored): the POSIX timers waiting for one queue their
    signal (PosixTimer.unignored); whether any did."""
    with k.group.lock:
        return any([timer.unignored(k) for timer in k.proc.timers.values() if timer.signo == signo])


def timer_siginfo(k, timer_id: int, overrun: int):
    """(guest signal, target tid or 0, siginfo) for the pump to queue for an expiry of host timer ``timer_id``
    (with its host overrun); None when there is nothing to queue (see PosixTimer.expired). Called under the
    thread group's lock."""
    timer = k.proc.timers.get(timer_id)
    return None if timer is None else timer.expired(k, overrun)
