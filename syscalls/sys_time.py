"""Time: clock_gettime, clock_getres, clock_nanosleep, gettimeofday, time, nanosleep, and the clock setters
(kernel/time/posix-timers.c, posix-cpu-timers.c, time.c, hrtimer.c).

The guest is one host process, so every clock is the host's: reading and sleeping go to the host kernel
unchanged (it validates the clock and the timespec exactly as it would for the native program). Only the
ids that name *another* process's CPU clock are refused, since the guest sees no other process; a CPU clock
of the guest (pid 0 or its own pid/tid) is the hermipy process's, which includes the emulator's own work.
"""
import ctypes
import struct
from errno import EFAULT, EINVAL, EPERM

from hermipy.syscalls.argtypes import Enum, Flags, Ptr
from hermipy.syscalls.errors import SyscallError
from hermipy.syscalls.host import host_syscall
from hermipy.syscalls.table import FULL, STUB, syscall

CLOCKS = {0: "CLOCK_REALTIME", 1: "CLOCK_MONOTONIC", 2: "CLOCK_PROCESS_CPUTIME_ID", 3: "CLOCK_THREAD_CPUTIME_ID",
          4: "CLOCK_MONOTONIC_RAW", 5: "CLOCK_REALTIME_COARSE", 6: "CLOCK_MONOTONIC_COARSE", 7: "CLOCK_BOOTTIME",
          8: "CLOCK_REALTIME_ALARM", 9: "CLOCK_BOOTTIME_ALARM", 11: "CLOCK_TAI"}
CLOCK = Enum(CLOCKS)
CLOCK_REALTIME = 0
TIMER_ABSTIME = 1
TIMER_FLAGS = Flags({1: "TIMER_ABSTIME"})
NSEC = 1_000_000_000
USEC = 1_000_000
CPUCLOCK_PERTHREAD_MASK, CPUCLOCK_CLOCK_MASK, CLOCKFD = 4, 3, 3
# timekeeping.h: TIME_SETTOD_SEC_MAX = KTIME_SEC_MAX - TIME_UPTIME_SEC_MAX
TIME_SETTOD_SEC_MAX = (((1 << 63) - 1) // NSEC) - 30 * 365 * 24 * 3600


class Timespec(ctypes.Structure):
    """struct __kernel_timespec: two s64."""
    _fields_ = [("sec", ctypes.c_int64), ("nsec", ctypes.c_int64)]


def watch_cpu_time(k) -> None:
    """The process reads or times its CPU time (a CPU clock or timer, an itimer, getrusage, times, RLIMIT_CPU): KVM's
    exitless mode ends for it, its vCPUs run in their tasks' own threads again, so that the host's CPU clocks of
    those threads count the guest's computing (exitless, it runs in another thread, and the task's spins)."""
    proc = k.proc
    if not proc.cpu_time_watched:
        proc.cpu_time_watched = True
        with k.group.lock:
            tasks = list(k.group.tasks.values())
        for task in tasks:
            if task.cpu is not None:
                task.cpu.exitless_server = None


def is_cpu_clock(clock: int) -> bool:
    """CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID or a dynamic CPU clock (clock_getcpuclockid)."""
    return clock in (2, 3) or clock < 0 and clock & CPUCLOCK_CLOCK_MASK != CLOCKFD


def host_clock(k, clock: int) -> int:
    """The host clock id that stands for the guest's ``clock``; EINVAL for another process's CPU clock.

    A negative id is a dynamic clock (include/linux/posix-timers.h): ~pid << 3 | type for a process or
    thread CPU clock, ~fd << 3 | CLOCKFD for a posix-clock device, whose guest fd becomes the host's.
    """
    if is_cpu_clock(clock):
        watch_cpu_time(k)
    if clock >= 0:
        return clock
    if clock & CPUCLOCK_CLOCK_MASK == CLOCKFD:
        fd = ~(clock >> 3)
        try:
            host_fd = k.fds.get(fd).host_fd
        except SyscallError:
            raise SyscallError(EINVAL) from None
        return (~host_fd << 3) | (clock & 7)
    pid = ~(clock >> 3)
    if pid not in (0, k.proc.pid):
        raise SyscallError(EINVAL)
    return clock


def _read_timespec_or_none(k, addr: int):
    """A host copy of the guest's timespec, or None when the guest pointer is bad: the host call then gets
    NULL, so it reports whatever the native kernel would (EINVAL/EOPNOTSUPP for the clock first, else EFAULT)."""
    try:
        sec, nsec = struct.unpack("<qq", k.mem.read(addr, 16))
    except SyscallError:
        return None
    return Timespec(sec, nsec)


def write_timespec(k, addr: int, ns: int) -> None:
    k.mem.write(addr, struct.pack("<qq", *divmod(ns, NSEC)))


def vdso_reading(k, clockid: int) -> int | None:
    """What the vDSO answers for ``clockid`` now (ns), so that its answer and the syscall's never disagree:
    None for a clock it leaves to the host (syscalls/timekeeping.py)."""
    keeper = k.mem.vdso_clock
    return None if keeper is None else keeper.now(clockid)


@syscall("clock_gettime", FULL)
def clock_gettime(k, clockid: CLOCK, tp: Ptr) -> int:
    """clock_gettime(2): the vDSO's reading, or the host's; then EFAULT if the guest's buffer is bad."""
    ns = vdso_reading(k, clockid)
    if ns is not None:
        write_timespec(k, tp, ns)
        return 0
    ts = Timespec()
    host_syscall("clock_gettime", host_clock(k, clockid), ts)
    k.mem.write(tp, struct.pack("<qq", ts.sec, ts.nsec))
    return 0


@syscall("clock_getres", FULL)
def clock_getres(k, clockid: CLOCK, res: Ptr) -> int:
    """clock_getres(2): the host's resolution; ``res`` may be NULL."""
    ts = Timespec()
    host_syscall("clock_getres", host_clock(k, clockid), ts if res else None)
    if res:
        k.mem.write(res, struct.pack("<qq", ts.sec, ts.nsec))
    return 0


@syscall("clock_nanosleep", FULL)
def clock_nanosleep(k, clockid: CLOCK, flags: TIMER_FLAGS, req: Ptr, rem: Ptr) -> int:
    """clock_nanosleep(2), relative or TIMER_ABSTIME, slept by the host (clocks without a sleep give
    EOPNOTSUPP, a bad timespec EINVAL, as natively). The remaining time is written only on EINTR."""
    ts = _read_timespec_or_none(k, req)
    relative = not flags & TIMER_ABSTIME
    _sleep(k, lambda left: host_syscall("clock_nanosleep", host_clock(k, clockid), flags, ts, left),
           rem if relative else 0, relative)
    return 0


@syscall("nanosleep", FULL)
def nanosleep(k, req: Ptr, rem: Ptr) -> int:
    """nanosleep(2) on CLOCK_MONOTONIC."""
    ts = _read_timespec_or_none(k, req)
    if ts is None:
        raise SyscallError(EFAULT)
    _sleep(k, lambda left: host_syscall("nanosleep", ts, left), rem, True)
    return 0


def _sleep(k, sleep, rem: int, relative: bool) -> None:
    """A sleep that a kick interrupts: EINTR (with the time left written to ``rem``) when a signal is to be
    delivered (a handler runs, or the group ends); otherwise it sleeps on for the time left, as Linux's
    restart_block does (hrtimer_nanosleep_restart)."""
    from hermipy.syscalls.errors import ERESTARTNOHAND
    while True:
        left = Timespec()
        try:
            sleep(left)
            return
        except InterruptedError:
            if k.group.exiting or k.signals.next_deliverable():
                if rem:
                    k.mem.write(rem, struct.pack("<qq", left.sec, left.nsec))
                raise SyscallError(ERESTARTNOHAND) from None
            k.interrupt = False
            if relative:                     # (TIMER_ABSTIME: the same deadline again)
                sleep = _again(left)


def _again(left):
    """The same host sleep for the time left (relative sleeps only)."""
    def rest(out):
        return host_syscall("nanosleep", left, out)
    return rest


class Timeval(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_int64), ("usec", ctypes.c_int64)]


class Timezone(ctypes.Structure):
    _fields_ = [("minuteswest", ctypes.c_int32), ("dsttime", ctypes.c_int32)]


@syscall("gettimeofday", FULL)
def gettimeofday(k, tv: Ptr, tz: Ptr) -> int:
    """gettimeofday(2): struct timeval (two s64; the vDSO's reading when it has one) and the kernel's struct
    timezone, from the host."""
    htv, htz = Timeval(), Timezone()
    host_syscall("gettimeofday", htv, htz)
    ns = vdso_reading(k, CLOCK_REALTIME)
    if ns is not None:
        htv.sec, htv.usec = ns // NSEC, ns % NSEC // 1000
    if tv:
        k.mem.write(tv, struct.pack("<qq", htv.sec, htv.usec))
    if tz:
        k.mem.write(tz, struct.pack("<ii", htz.minuteswest, htz.dsttime))
    return 0


@syscall("time", FULL)
def time(k, tloc: Ptr) -> int:
    """time(2): the vDSO's reading when it has one."""
    ns = vdso_reading(k, CLOCK_REALTIME)
    now = host_syscall("time", 0) if ns is None else ns // NSEC
    if tloc:
        k.mem.write(tloc, struct.pack("<q", now))
    return now


def _valid_settod(sec: int, nsec: int) -> bool:
    return 0 <= sec < TIME_SETTOD_SEC_MAX and 0 <= nsec < NSEC


@syscall("clock_settime", STUB, note="never sets a clock: the checks Linux makes first (clock id, EFAULT, EINVAL) "
                                     "are made, then EPERM even for a guest the host would let set the time")
def clock_settime(k, clockid: CLOCK, tp: Ptr) -> int:
    """clock_settime(2): posix-timers.c order: clock id, copy in, then the clock's clock_set."""
    if clockid >= 0 and clockid not in CLOCKS:
        raise SyscallError(EINVAL)
    if clockid < 0:
        host_clock(k, clockid)
    elif clockid != CLOCK_REALTIME:
        raise SyscallError(EINVAL)         # only the real-time clock and dynamic CPU clocks have a clock_set
    sec, nsec = struct.unpack("<qq", k.mem.read(tp, 16))
    if clockid == CLOCK_REALTIME and not _valid_settod(sec, nsec):
        raise SyscallError(EINVAL)
    raise SyscallError(EPERM)              # a CPU clock can never be set; the real-time clock is the host's


@syscall("settimeofday", STUB, note="never sets the clock: EFAULT/EINVAL as Linux checks them, then EPERM even "
                                    "for a guest the host would let set the time")
def settimeofday(k, tv: Ptr, tz: Ptr) -> int:
    """settimeofday(2) (kernel/time/time.c)."""
    if tv:
        sec, usec = struct.unpack("<qq", k.mem.read(tv, 16))
        if usec > USEC or usec < 0:
            raise SyscallError(EINVAL)
    if tz:
        k.mem.read(tz, 8)
    if tv and not _valid_settod(sec, usec * 1000):
        raise SyscallError(EINVAL)
    raise SyscallError(EPERM)
