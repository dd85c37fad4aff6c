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
"""
import ctypes
import struct
from errno import EINVAL

from hermipy.syscalls.argtypes import Enum, Int, Ptr, UInt
from hermipy.syscalls.errors import SyscallError
from hermipy.syscalls.host import host_syscall
from hermipy.syscalls.table import FULL, PARTIAL, syscall

SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD, SIGEV_THREAD_ID = 0, 1, 2, 4
TIMER_HOST_SIGNAL = 63                 # SIGRTMAX - 1: how every guest POSIX timer expires on the host
NSIG = 64
SIGEVENT_SIZE = 64
ITIMERS = Enum({0: "ITIMER_REAL", 1: "ITIMER_VIRTUAL", 2: "ITIMER_PROF"})
CLOCKS = Enum({0: "CLOCK_REALTIME", 1: "CLOCK_MONOTONIC", 2: "CLOCK_PROCESS_CPUTIME_ID",
               3: "CLOCK_THREAD_CPUTIME_ID", 7: "CLOCK_BOOTTIME", 8: "CLOCK_REALTIME_ALARM",
               9: "CLOCK_BOOTTIME_ALARM"})
_CPU_NOTE = "ITIMER_VIRTUAL/ITIMER_PROF count hermipy's host CPU time (the guest's, plus hermipy's own work for it)"


class Itimerspec(ctypes.Structure):
    _fields_ = [("interval_sec", ctypes.c_int64), ("interval_nsec", ctypes.c_int64),
                ("value_sec", ctypes.c_int64), ("value_nsec", ctypes.c_int64)]


class Itimerval(ctypes.Structure):
    _fields_ = [("interval_sec", ctypes.c_int64), ("interval_usec", ctypes.c_int64),
                ("value_sec", ctypes.c_int64), ("value_usec", ctypes.c_int64)]


@syscall("alarm", FULL)
def alarm(k, seconds: UInt) -> int:
    """alarm(2): the host's own alarm; SIGALRM reaches the guest through the signal pump."""
    return host_syscall("alarm", seconds)


@syscall("setitimer", PARTIAL, note=_CPU_NOTE)
def setitimer(k, which: ITIMERS, value: Ptr, ovalue: Ptr) -> int:
    """setitimer(2): struct itimerval {interval, value} of timevals, as the host takes it (a NULL new value
    disarms, as Linux has allowed since 2.6.x with a warning)."""
    new = Itimerval.from_buffer_copy(k.mem.read(value, 32)) if value else Itimerval()
    old = Itimerval()
    host_syscall("setitimer", which, new, old)
    if ovalue:
        k.mem.write(ovalue, bytes(old))
    return 0


@syscall("getitimer", PARTIAL, note=_CPU_NOTE)
def getitimer(k, which: ITIMERS, value: Ptr) -> int:
    """getitimer(2)."""
    cur = Itimerval()
    host_syscall("getitimer", which, cur)
    k.mem.write(value, bytes(cur))
    return 0


def _pump_tid() -> int:
    from hermipy.syscalls import host_signals
    return host_signals.pump_tid()


@syscall("timer_create", PARTIAL, note="CPU-time clocks measure hermipy's host process or thread (guest time "
                                        "included); SIGEV_THREAD is glibc's (a SIGEV_THREAD_ID timer)")
def timer_create(k, which_clock: CLOCKS, timer_event_spec: Ptr, created_timer_id: Ptr) -> int:
    """timer_create(2): a host timer whose expiries the signal pump delivers as the guest asked."""
    if timer_event_spec:
        raw = k.mem.read(timer_event_spec, SIGEVENT_SIZE)
        value, signo, notify, tid = struct.unpack_from("<Qiii", raw, 0)
    else:                                        # the default: SIGEV_SIGNAL, SIGALRM, si_value = the timer id
        value, signo, notify, tid = None, 14, SIGEV_SIGNAL, 0
    target = None
    if notify == SIGEV_THREAD_ID:
        target = k.group.tasks.get(tid)
        if target is None:
            raise SyscallError(EINVAL)
    elif notify not in (SIGEV_SIGNAL, SIGEV_NONE):
        raise SyscallError(EINVAL)
    if notify != SIGEV_NONE and not 1 <= signo <= NSIG:
        raise SyscallError(EINVAL)
    host_event = bytearray(SIGEVENT_SIZE)
    host_notify = SIGEV_NONE if notify == SIGEV_NONE else SIGEV_THREAD_ID
    struct.pack_into("<Qiii", host_event, 0, value or 0, TIMER_HOST_SIGNAL, host_notify, _pump_tid())
    event = (ctypes.c_char * SIGEVENT_SIZE).from_buffer(host_event)
    timer_id = ctypes.c_int(0)
    host_syscall("timer_create", which_clock, event, timer_id)
    timer = timer_id.value
    if value is None:
        value = timer
        struct.pack_into("<Q", host_event, 0, value)
    try:
        k.mem.write(created_timer_id, struct.pack("<i", timer))
    except SyscallError:
        host_syscall("timer_delete", timer)
        raise
    k.proc.timers[timer] = (signo, target.tid if target is not None else 0, value)
    return 0


def _own(k, timer_id: int) -> int:
    if timer_id not in k.proc.timers:
        raise SyscallError(EINVAL)
    return timer_id


@syscall("timer_settime", FULL)
def timer_settime(k, timer_id: Int, flags: Int, new_setting: Ptr, old_setting: Ptr) -> int:
    """timer_settime(2): relative or TIMER_ABSTIME, one-shot or periodic, on the host timer."""
    new = Itimerspec.from_buffer_copy(k.mem.read(new_setting, 32))
    old = Itimerspec()
    host_syscall("timer_settime", _own(k, timer_id), flags, new, old)
    if old_setting:
        k.mem.write(old_setting, bytes(old))
    return 0


@syscall("timer_gettime", FULL)
def timer_gettime(k, timer_id: Int, setting: Ptr) -> int:
    """timer_gettime(2)."""
    cur = Itimerspec()
    host_syscall("timer_gettime", _own(k, timer_id), cur)
    k.mem.write(setting, bytes(cur))
    return 0


@syscall("timer_getoverrun", FULL)
def timer_getoverrun(k, timer_id: Int) -> int:
    """timer_getoverrun(2)."""
    return host_syscall("timer_getoverrun", _own(k, timer_id))


@syscall("timer_delete", FULL)
def timer_delete(k, timer_id: Int) -> int:
    """timer_delete(2)."""
    host_syscall("timer_delete", _own(k, timer_id))
    del k.proc.timers[timer_id]
    return 0


def delete_all(k) -> None:
    """execve (exit_itimers via begin_new_exec): the POSIX timers go; alarm and itimers stay."""
    for timer in list(k.proc.timers):
        try:
            host_syscall("timer_delete", timer)
        except OSError:
            pass
    k.proc.timers.clear()


def timer_siginfo(k, timer_id: int, overrun: int):
    """(guest signal, target tid or 0, siginfo) of an expiry of guest timer ``timer_id``; None if unknown."""
    entry = k.proc.timers.get(timer_id)
    if entry is None:
        return None
    signo, tid, value = entry
    info = bytearray(128)
    struct.pack_into("<iii4xiiQ", info, 0, signo, 0, -2, timer_id, overrun, value)     # SI_TIMER
    return signo, tid, bytes(info)
