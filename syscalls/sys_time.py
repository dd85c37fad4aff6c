"""Time: clock_gettime, clock_getres, clock_nanosleep, gettimeofday, time, nanosleep (kernel/time/)."""
import struct
import time as _time
from errno import EINVAL, EPERM

from hermipy.syscalls.argtypes import Enum, Int, Ptr
from hermipy.syscalls.errors import SyscallError
from hermipy.syscalls.table import FULL, STUB, syscall

CLOCKS = {0: "CLOCK_REALTIME", 1: "CLOCK_MONOTONIC", 2: "CLOCK_PROCESS_CPUTIME_ID", 3: "CLOCK_THREAD_CPUTIME_ID",
          4: "CLOCK_MONOTONIC_RAW", 5: "CLOCK_REALTIME_COARSE", 6: "CLOCK_MONOTONIC_COARSE", 7: "CLOCK_BOOTTIME",
          8: "CLOCK_REALTIME_ALARM", 9: "CLOCK_BOOTTIME_ALARM", 11: "CLOCK_TAI"}
CLOCK = Enum(CLOCKS)
TIMER_ABSTIME = 1
NSEC = 1_000_000_000


def _clock_ns(clock: int) -> int:
    """The host's clock: the guest is one host process, so its CPU-time clocks are the process's."""
    if clock not in CLOCKS:
        raise SyscallError(EINVAL)
    return _time.clock_gettime_ns(clock)


def read_timespec(k, addr: int) -> int:
    """struct timespec (two s64) -> nanoseconds; EINVAL for a negative or out-of-range field."""
    sec, nsec = struct.unpack("<qq", k.mem.read(addr, 16))
    if sec < 0 or not 0 <= nsec < NSEC:
        raise SyscallError(EINVAL)
    return sec * NSEC + nsec


def write_timespec(k, addr: int, ns: int) -> None:
    k.mem.write(addr, struct.pack("<qq", *divmod(ns, NSEC)))


@syscall("clock_gettime", FULL)
def clock_gettime(k, clockid: CLOCK, tp: Ptr) -> int:
    """clock_gettime(2)."""
    write_timespec(k, tp, _clock_ns(clockid))
    return 0


@syscall("clock_getres", FULL)
def clock_getres(k, clockid: CLOCK, res: Ptr) -> int:
    """clock_getres(2): the host's resolution for the clock."""
    if clockid not in CLOCKS:
        raise SyscallError(EINVAL)
    if res:
        write_timespec(k, res, round(_time.clock_getres(clockid) * NSEC))
    return 0


@syscall("gettimeofday", FULL)
def gettimeofday(k, tv: Ptr, tz: Ptr) -> int:
    """gettimeofday(2): struct timeval (two s64); the obsolete timezone reads as zero."""
    if tv:
        sec, ns = divmod(_time.clock_gettime_ns(0), NSEC)
        k.mem.write(tv, struct.pack("<qq", sec, ns // 1000))
    if tz:
        k.mem.write(tz, bytes(8))
    return 0


@syscall("time", FULL)
def time(k, tloc: Ptr) -> int:
    """time(2)."""
    now = _time.clock_gettime_ns(0) // NSEC
    if tloc:
        k.mem.write(tloc, struct.pack("<q", now))
    return now


def _sleep_until(clock: int, deadline_ns: int) -> None:
    while True:
        left = deadline_ns - _time.clock_gettime_ns(clock)
        if left <= 0:
            return
        _time.sleep(left / NSEC)


@syscall("nanosleep", FULL)
def nanosleep(k, req: Ptr, rem: Ptr) -> int:
    """nanosleep(2) on CLOCK_MONOTONIC."""
    ns = read_timespec(k, req)
    _sleep_until(1, _time.clock_gettime_ns(1) + ns)
    return 0


@syscall("clock_nanosleep", FULL)
def clock_nanosleep(k, clockid: CLOCK, flags: Int, req: Ptr, rem: Ptr) -> int:
    """clock_nanosleep(2): relative or TIMER_ABSTIME; CPU-time clocks of this process are refused (EINVAL)."""
    if clockid not in (0, 1, 7, 8, 9, 11):
        raise SyscallError(EINVAL)
    ns = read_timespec(k, req)
    clock = {8: 0, 9: 7}.get(clockid, clockid)
    _sleep_until(clock, ns if flags & TIMER_ABSTIME else _time.clock_gettime_ns(clock) + ns)
    return 0


@syscall("clock_settime", STUB, note="refused with EPERM: the guest may not set the host's clocks")
def clock_settime(k, clockid: CLOCK, tp: Ptr) -> int:
    if clockid not in CLOCKS:
        raise SyscallError(EINVAL)
    raise SyscallError(EPERM)


@syscall("settimeofday", STUB, note="refused with EPERM: the guest may not set the host's clocks")
def settimeofday(k, tv: Ptr, tz: Ptr) -> int:
    raise SyscallError(EPERM)
