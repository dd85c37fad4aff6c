"""Event plumbing as host passthrough: epoll (fs/eventpoll.c), eventfd (fs/eventfd.c), timerfd (fs/timerfd.c),
inotify (fs/notify/inotify/inotify_user.c).

Each guest epoll instance is a host epoll fd. A guest registration (fd, its open file) becomes a host
registration of the file's host fd whose 64-bit data is a token hermipy chose; the guest's own epoll_data is
kept per registration and put back into each event (struct epoll_event is packed on x86-64: u32 events +
u64 data, 12 bytes). Linux keys a registration by (file, fd), so a second guest fd for the same open file
(dup) is registered through a host dup of its fd. A registration ends with ``EPOLL_CTL_DEL`` or when its
open file is released, as in Linux: the host drops the registration when the host fd closes, and the dups
hermipy made are closed once their guest file has gone.

eventfd and timerfd are host eventfds and timerfds: read, write, poll and close (sys_io) act on them as on
any host fd. A signalfd is hermipy's own (hermipy delivers the guest's signals itself, so a host signalfd
would never see one): read(2) dequeues the guest's pending signals, and a host eventfd behind it is kept
readable while one of its mask is pending, for poll, select and epoll.
"""
import ctypes
import os
import struct
import threading
import time
import weakref
from errno import EAGAIN, EEXIST, EFAULT, EINVAL, ENOENT, ENOTDIR

from hermipy.syscalls.argtypes import AT_FDCWD, Enum, Flags, Int, Path, Ptr, SigSet, Size, UInt
from hermipy.syscalls.errors import ERESTARTSYS, SyscallError
from hermipy.syscalls.files import O_NONBLOCK, O_RDONLY, O_RDWR, OpenFile
from hermipy.syscalls.host import host_call, host_syscall
from hermipy.syscalls.kicks import STOP_SENSITIVE, WouldBlock, interrupted
from hermipy.syscalls.sys_net import install_host_fd
from hermipy.syscalls.table import FULL, PARTIAL, syscall

EPOLL_CLOEXEC = 0o2000000
EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD = 1, 2, 3
EPOLLEXCLUSIVE = 1 << 28
EVENT = struct.Struct("<IQ")               # struct epoll_event, __attribute__((packed)) on x86-64
EP_MAX_EVENTS = 0x7FFFFFFF // EVENT.size
MAX_BATCH = 1024                           # events fetched from the host per wait (the rest stay ready)
TASK_SIZE_MAX = 0x7FFFFFFFF000
EFD_SEMAPHORE, EFD_NONBLOCK, EFD_CLOEXEC = 1, 0o4000, 0o2000000
TFD_NONBLOCK, TFD_CLOEXEC = 0o4000, 0o2000000
TFD_SETTIME_FLAGS = 0x3                    # TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET
NSEC = 1_000_000_000
SIGSET_SIZE = 8

EPOLL_OP = Enum({1: "EPOLL_CTL_ADD", 2: "EPOLL_CTL_DEL", 3: "EPOLL_CTL_MOD"})
EPOLL_FLAGS = Flags({EPOLL_CLOEXEC: "EPOLL_CLOEXEC"})
EFD_FLAGS = Flags({EFD_SEMAPHORE: "EFD_SEMAPHORE", EFD_NONBLOCK: "EFD_NONBLOCK", EFD_CLOEXEC: "EFD_CLOEXEC"})
TFD_FLAGS = Flags({TFD_NONBLOCK: "TFD_NONBLOCK", TFD_CLOEXEC: "TFD_CLOEXEC"})
TFD_SETTIME = Flags({1: "TFD_TIMER_ABSTIME", 2: "TFD_TIMER_CANCEL_ON_SET"})
CLOCK = Enum({0: "CLOCK_REALTIME", 1: "CLOCK_MONOTONIC", 7: "CLOCK_BOOTTIME", 8: "CLOCK_REALTIME_ALARM",
              9: "CLOCK_BOOTTIME_ALARM"})


def _anon_file(k, host_fd: int, name: str, nonblock: bool, cloexec: bool, cls=OpenFile) -> int:
    """Install a host anon-inode fd (epoll, eventfd, timerfd) in the guest's table."""
    of = cls(host_fd, f"anon_inode:[{name}]", O_RDWR | (O_NONBLOCK if nonblock else 0), "anon")
    return install_host_fd(k, of, cloexec)


# -- epoll ----------------------------------------------------------------------------------------------
class Registration:
    """One (guest fd, open file) watched by an epoll instance."""

    __slots__ = ("token", "fd", "file", "data", "host_fd", "owned")

    def __init__(self, token: int, fd: int, file: OpenFile, data: int, host_fd: int, owned: bool):
        self.token, self.fd, self.file, self.data = token, fd, file, data
        self.host_fd, self.owned = host_fd, owned          # owned: a dup hermipy made and must close


EPOLLS: "weakref.WeakSet[Epoll]" = weakref.WeakSet()   # every instance, for the fork child's fresh locks


def _fresh_epoll_locks() -> None:
    """In a fork child: only the forking thread goes on, so a lock another thread held at the fork is new."""
    for ep in list(EPOLLS):
        ep.lock = threading.Lock()


os.register_at_fork(after_in_child=_fresh_epoll_locks)


class Epoll(OpenFile):
    """A guest epoll instance: a host epoll fd plus the guest's registrations. ``lock`` guards ``regs``,
    ``tokens`` and ``next_token``: threads of the guest add and wait on one instance at the same time (Go's
    netpoller), and a token must name one registration from before the host can report it until it is gone."""

    __slots__ = ("regs", "tokens", "files", "next_token", "lock")

    def __init__(self, host_fd: int, path: str, flags: int, kind: str = "anon"):
        super().__init__(host_fd, path, flags, kind)
        self.regs: dict[tuple[int, OpenFile], Registration] = {}
        self.tokens: dict[int, Registration] = {}
        self.files: dict[OpenFile, list[Registration]] = {}     # per open file (a second one watches a dup)
        self.next_token = 1
        self.lock = threading.Lock()
        EPOLLS.add(self)

    def add(self, fd: int, file: OpenFile, data: int, events: int) -> None:
        """A new registration of (fd, file), made on the host. (Caller holds ``lock``.)"""
        regs = self.files.get(file)
        shared = regs is not None
        host_fd = os.dup(file.host_fd) if shared else file.host_fd
        token = self.next_token                # known before the host can report an event for it
        self.next_token += 1
        reg = self.regs[(fd, file)] = self.tokens[token] = Registration(token, fd, file, data, host_fd, shared)
        if regs is None:
            regs = self.files[file] = []
            if file.watchers is None:
                file.watchers = set()
            file.watchers.add(self)
        regs.append(reg)
        try:
            _host_ctl(self.host_fd, EPOLL_CTL_ADD, host_fd, events, token)
        except OSError:
            self.forget(reg)
            raise
        if not file.refs:                      # released by another thread meanwhile, before it saw this instance
            self.forget(reg)

    def forget(self, reg: Registration) -> None:
        """(Caller holds ``lock``.)"""
        if self.tokens.pop(reg.token, None) is None:
            return                             # gone already
        del self.regs[(reg.fd, reg.file)]
        regs = self.files[reg.file]
        regs.remove(reg)
        if not regs:
            del self.files[reg.file]
            reg.file.watchers.discard(self)
        if reg.owned:
            os.close(reg.host_fd)                # the host drops the registration with the fd

    def file_released(self, file: OpenFile) -> None:
        """The last guest fd of ``file`` closed: its registrations end, as in Linux (eventpoll_release_file)."""
        with self.lock:
            for reg in list(self.files.get(file, ())):
                self.forget(reg)

    def release(self) -> None:
        super().release()
        if self.refs == 0:
            with self.lock:
                for reg in list(self.regs.values()):
                    self.forget(reg)


def _create(k, cloexec: bool) -> int:
    return _anon_file(k, host_syscall("epoll_create1", EPOLL_CLOEXEC), "eventpoll", False, cloexec, Epoll)


@syscall("epoll_create", FULL)
def epoll_create(k, size: Int) -> int:
    """epoll_create(2): ``size`` only has to be positive."""
    if size <= 0:
        raise SyscallError(EINVAL)
    return _create(k, False)


@syscall("epoll_create1", FULL)
def epoll_create1(k, flags: EPOLL_FLAGS) -> int:
    """epoll_create1(2)."""
    if flags & ~EPOLL_CLOEXEC:
        raise SyscallError(EINVAL)
    return _create(k, bool(flags & EPOLL_CLOEXEC))


def _host_ctl(ep_host: int, op: int, host_fd: int, events: int, token: int) -> None:
    buffers = _events
    EVENT.pack_into(buffers.control, 0, events, token)
    host_call("epoll_ctl", ep_host, op, host_fd, buffers.control_address)


@syscall("epoll_ctl", FULL)
def epoll_ctl(k, epfd: Int, op: EPOLL_OP, fd: Int, event: Ptr) -> int:
    """epoll_ctl(2), in do_epoll_ctl()'s order: the event (EFAULT), both fds (EBADF), then the host judges
    what it can watch (EPERM, ELOOP, EINVAL) and hermipy which (fd, file) pairs it holds (EEXIST, ENOENT)."""
    events = data = 0
    if op != EPOLL_CTL_DEL:
        events, data = EVENT.unpack(k.mem.read(event, EVENT.size))
    ep = k.fds.get(epfd)
    target = k.fds.get(fd)
    if not isinstance(ep, Epoll) or target is ep:
        # not an epoll instance (or itself): the host gives EPERM for an unpollable target, else EINVAL
        _host_ctl(ep.host_fd, op, target.host_fd, events, 0)
        raise SyscallError(EINVAL)
    if op not in (EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD):
        raise SyscallError(EINVAL)
    if op == EPOLL_CTL_MOD and events & EPOLLEXCLUSIVE:
        raise SyscallError(EINVAL)
    with ep.lock:
        reg = ep.regs.get((fd, target))
        if op == EPOLL_CTL_ADD:
            if reg is not None:
                raise SyscallError(EEXIST)
            ep.add(fd, target, data, events)
            return 0
        if reg is None:
            raise SyscallError(ENOENT)
        if op == EPOLL_CTL_DEL:
            host_syscall("epoll_ctl", ep.host_fd, EPOLL_CTL_DEL, reg.host_fd, 0)
            ep.forget(reg)
            return 0
        _host_ctl(ep.host_fd, EPOLL_CTL_MOD, reg.host_fd, events, reg.token)
        reg.data = data
        return 0


def _wait_args(k, epfd: int, events: int, maxevents: int) -> Epoll:
    """do_epoll_wait()'s checks, in the order the host kernel (6.18) makes them: the fd (EBADF), an epoll fd
    (EINVAL), then maxevents (EINVAL) and the events area (access_ok: EFAULT)."""
    ep = k.fds.get(epfd)
    if not isinstance(ep, Epoll):
        raise SyscallError(EINVAL)
    if maxevents <= 0 or maxevents > EP_MAX_EVENTS:
        raise SyscallError(EINVAL)
    if events + maxevents * EVENT.size > TASK_SIZE_MAX:
        raise SyscallError(EFAULT)
    return ep


class _EventBuffer(threading.local):
    """The host buffer of a wait, one per host thread (each guest task's own: threads wait at the same time)."""

    def __init__(self):
        self.buffer = ctypes.create_string_buffer(MAX_BATCH * EVENT.size)
        self.address = ctypes.addressof(self.buffer)
        self.control = ctypes.create_string_buffer(EVENT.size)       # epoll_ctl's struct epoll_event
        self.control_address = ctypes.addressof(self.control)


_events = _EventBuffer()


def _wait(k, ep: Epoll, events: int, maxevents: int, timeout) -> int:
    """Wait on the host; ``timeout`` is milliseconds (int, <0: forever) or a host timespec buffer (or None).
    A kick interrupts it, and so does a stop of the process: EINTR when a signal is to be delivered or after the
    stop, whatever SA_RESTART says (ep_poll returns EINTR). Served in exitless mode, the host is asked without a
    wait, and a wait that would sleep goes to an exit (WouldBlock): the guest spins meanwhile."""
    # A registration is ready once at most (an epitem is on the ready list once): no more events than those.
    count = min(maxevents, MAX_BATCH, len(ep.regs) or 1)
    buffers = _events
    if k.serving_exitless:
        while True:
            n = host_call("epoll_wait", ep.host_fd, buffers.address, count, 0)
            if not n:
                if _waits(timeout):
                    raise WouldBlock()
                return 0
            out = _reported(ep, buffers.buffer, n)
            if out:
                k.mem.write(events, b"".join(out))
                return len(out)
    started = STOP_SENSITIVE[k] = time.monotonic()
    try:
        while True:
            try:
                if timeout is None or not isinstance(timeout, int):
                    n = host_syscall("epoll_pwait2", ep.host_fd, buffers.address, count,
                                     ctypes.addressof(timeout) if timeout is not None else 0, 0, SIGSET_SIZE)
                else:
                    n = host_call("epoll_wait", ep.host_fd, buffers.address, count, timeout)
            except InterruptedError:
                raise interrupted(started) from None
            out = _reported(ep, buffers.buffer, n)
            if out or not n:
                break
        if out:
            k.mem.write(events, b"".join(out))
        return len(out)
    finally:
        STOP_SENSITIVE.pop(k, None)


def _reported(ep: Epoll, buf, n: int) -> list[bytes]:
    """The guest's struct epoll_event for each of the host's ``n`` events in ``buf`` whose registration is still
    there (one whose file was released since has gone: file_released)."""
    tokens = ep.tokens
    return [EVENT.pack(mask, reg.data) for mask, token in EVENT.iter_unpack(memoryview(buf)[:n * EVENT.size])
            if (reg := tokens.get(token)) is not None and reg.file.refs]


def _waits(timeout) -> bool:
    """Does an epoll wait with ``timeout`` (see _wait) wait when nothing is ready?"""
    if isinstance(timeout, int):
        return timeout != 0
    return timeout is None or bool(timeout.sec or timeout.nsec)


@syscall("epoll_wait", FULL)
def epoll_wait(k, epfd: Int, events: Ptr, maxevents: Int, timeout: Int) -> int:
    """epoll_wait(2): ``timeout`` in milliseconds, negative waits forever."""
    ep = _wait_args(k, epfd, events, maxevents)
    return _wait(k, ep, events, maxevents, timeout if timeout >= 0 else -1)


@syscall("epoll_pwait", FULL)
def epoll_pwait(k, epfd: Int, events: Ptr, maxevents: Int, timeout: Int, sigmask: SigSet, sigsetsize: Size) -> int:
    """epoll_pwait(2): epoll_wait with a temporary signal mask."""
    if sigmask and sigsetsize != SIGSET_SIZE:
        raise SyscallError(EINVAL)
    ep = _wait_args(k, epfd, events, maxevents)
    ms = timeout if timeout >= 0 else -1
    from hermipy.syscalls.sys_signal import with_temporary_mask
    return with_temporary_mask(k, sigmask, sigsetsize, lambda now: _wait(k, ep, events, maxevents, 0 if now else ms))


@syscall("epoll_pwait2", FULL)
def epoll_pwait2(k, epfd: Int, events: Ptr, maxevents: Int, timeout: Ptr, sigmask: SigSet, sigsetsize: Size) -> int:
    """epoll_pwait2(2): a struct timespec timeout (NULL: forever)."""
    ts = None
    if timeout:
        sec, nsec = struct.unpack("<qq", k.mem.read(timeout, 16))
        if sec < 0 or not 0 <= nsec < NSEC:
            raise SyscallError(EINVAL)
        ts = ctypes.create_string_buffer(struct.pack("<qq", sec, nsec), 16)
    if sigmask and sigsetsize != SIGSET_SIZE:
        raise SyscallError(EINVAL)
    ep = _wait_args(k, epfd, events, maxevents)
    from hermipy.syscalls.sys_signal import with_temporary_mask
    return with_temporary_mask(k, sigmask, sigsetsize, lambda now: _wait(k, ep, events, maxevents, 0 if now else ts))


# -- eventfd --------------------------------------------------------------------------------------------
@syscall("eventfd2", FULL)
def eventfd2(k, initval: UInt, flags: EFD_FLAGS) -> int:
    """eventfd2(2): a host eventfd; EFD_NONBLOCK and EFD_SEMAPHORE go to the host, EFD_CLOEXEC to the guest."""
    host = host_syscall("eventfd2", initval, (flags & ~EFD_CLOEXEC) | EFD_CLOEXEC)
    return _anon_file(k, host, "eventfd", bool(flags & EFD_NONBLOCK), bool(flags & EFD_CLOEXEC))


@syscall("eventfd", FULL)
def eventfd(k, initval: UInt) -> int:
    """eventfd(2): eventfd2 without flags."""
    return eventfd2(k, initval, 0)


# -- timerfd --------------------------------------------------------------------------------------------
@syscall("timerfd_create", FULL)
def timerfd_create(k, clockid: CLOCK, flags: TFD_FLAGS) -> int:
    """timerfd_create(2): a host timerfd on the host's clock (the guest's clocks are the host's)."""
    host = host_syscall("timerfd_create", clockid, (flags & ~TFD_CLOEXEC) | TFD_CLOEXEC)
    return _anon_file(k, host, "timerfd", bool(flags & TFD_NONBLOCK), bool(flags & TFD_CLOEXEC))


@syscall("timerfd_settime", FULL)
def timerfd_settime(k, fd: Int, flags: TFD_SETTIME, new_value: Ptr, old_value: Ptr) -> int:
    """timerfd_settime(2): the new itimerspec is checked first (EFAULT, EINVAL), then the fd (EBADF)."""
    new = k.mem.read(new_value, 32)
    fields = struct.unpack("<qqqq", new)
    if flags & ~TFD_SETTIME_FLAGS or any(s < 0 or not 0 <= ns < NSEC for s, ns in (fields[0:2], fields[2:4])):
        raise SyscallError(EINVAL)
    of = k.fds.get(fd)
    new_buf = ctypes.create_string_buffer(new, 32)
    old_buf = ctypes.create_string_buffer(32)
    host_syscall("timerfd_settime", of.host_fd, flags, ctypes.addressof(new_buf),
                 ctypes.addressof(old_buf) if old_value else 0)
    if old_value:
        k.mem.write(old_value, old_buf.raw)
    return 0


@syscall("timerfd_gettime", FULL)
def timerfd_gettime(k, fd: Int, curr_value: Ptr) -> int:
    """timerfd_gettime(2)."""
    of = k.fds.get(fd)
    buf = ctypes.create_string_buffer(32)
    host_syscall("timerfd_gettime", of.host_fd, ctypes.addressof(buf))
    k.mem.write(curr_value, buf.raw)
    return 0


# -- signalfd -------------------------------------------------------------------------------------------
SFD_NONBLOCK, SFD_CLOEXEC = 0o4000, 0o2000000
SFD_FLAGS = Flags({SFD_NONBLOCK: "SFD_NONBLOCK", SFD_CLOEXEC: "SFD_CLOEXEC"})
UNBLOCKABLE = (1 << 8) | (1 << 18)         # SIGKILL, SIGSTOP
SIGNALFD_RECORD = 128                      # sizeof(struct signalfd_siginfo)
SI_USER, SI_KERNEL, SI_TIMER, SI_SIGIO = 0, 0x80, -2, -5
FAULT_SIGNALS = {4: 8, 5: 6, 7: 5, 8: 8, 11: 9}   # SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGSEGV: their si_codes
SIGCHLD, SIGPOLL, SIGSYS, NSIGCHLD, NSIGPOLL, NSIGSYS = 17, 29, 31, 6, 6, 1


class SignalFd(OpenFile):
    """A guest signalfd (fs/signalfd.c): the signals of ``mask`` pending for the thread that made it (its own
    and its process's) are read as struct signalfd_siginfo records, dequeued as the guest's own signals are.
    The host fd is an eventfd that is readable exactly while one is pending, so poll, select and epoll (which
    watch host fds) see the readiness Linux's signalfd_poll reports. ``lock`` guards ``ready`` and the
    eventfd's count."""

    __slots__ = ("mask", "owner", "ready", "lock")
    status_from_host = False    # its host fd is hermipy's non-blocking eventfd: the status flags are the guest's

    def sync(self, changed) -> None:
        """What ``changed`` (a task's SignalState) has pending changed: readable iff the owner has one."""
        owner = self.owner
        if changed is not owner and changed.shared is not owner.shared:
            return                          # another process's (a fork child's copy) or unrelated
        with self.lock:
            want = bool(owner.pending_mask() & self.mask)
            if want == self.ready:
                return
            if want:
                os.write(self.host_fd, (1).to_bytes(8, "little"))
            else:
                try:
                    os.read(self.host_fd, 8)
                except BlockingIOError:
                    pass
            self.ready = want

    def renew(self) -> None:
        """In a fork child: an eventfd of its own (the parent's readiness is the parent's)."""
        fresh = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        os.dup2(fresh, self.host_fd, inheritable=False)
        os.close(fresh)
        self.ready = False
        self.lock = threading.Lock()        # another thread of the parent may have held it at the fork
        self.lock = threading.Lock()

    def read_records(self, k, buf: int, count: int) -> int:
        """signalfd_read(): as many records as fit (EINVAL if not one); the first waits unless O_NONBLOCK."""
        slots = count // SIGNALFD_RECORD
        if not slots:
            raise SyscallError(EINVAL)
        records = []
        block = not self.flags & O_NONBLOCK
        while len(records) < slots:
            with k.group.lock:
                taken = k.signals.dequeue_from(self.mask)
            if taken is not None:
                records.append(signalfd_siginfo(*taken))
                block = False
                continue
            if not block:
                break
            self._wait(k)
        if not records:
            raise SyscallError(EAGAIN)
        data = b"".join(records)
        k.mem.write(buf, data)
        return len(data)

    def _wait(self, k) -> None:
        """Sleep until a signal of the mask is pending; a signal a handler takes first ends it (ERESTARTSYS)."""
        from hermipy.syscalls.kicks import wait
        from hermipy.syscalls.sys_io import POLLIN, PollFd
        k.interrupt = False
        if k.signals.next_deliverable():
            raise SyscallError(ERESTARTSYS)
        fds = (PollFd * 1)()
        fds[0].fd, fds[0].events = self.host_fd, POLLIN
        if k.signals is not self.owner:     # readiness is the owner's: another reader looks again shortly
            from hermipy.syscalls.sys_io import Timespec
            wait(k, fds, 1, Timespec(0, 10_000_000))
        else:
            wait(k, fds, 1, None)


def _siginfo_layout(signo: int, code: int) -> str:
    """siginfo_layout() (kernel/signal.c): which union member of struct siginfo ``code`` fills."""
    if SI_USER < code < SI_KERNEL:
        if signo in FAULT_SIGNALS and code <= FAULT_SIGNALS[signo]:
            return "fault"
        if signo == SIGCHLD and code <= NSIGCHLD:
            return "chld"
        if signo == SIGPOLL and code <= NSIGPOLL:
            return "poll"
        if signo == SIGSYS and code <= NSIGSYS:
            return "sys"
        return "poll" if code <= NSIGPOLL else "kill"
    if code == SI_TIMER:
        return "timer"
    if code == SI_SIGIO:
        return "poll"
    return "rt" if code < 0 else "kill"


SIGNALFD_SIGINFO = struct.Struct("<IiiIIiIIIIiiQQQQHxxiQI28x")  # struct signalfd_siginfo (uapi/linux/signalfd.h)


def signalfd_siginfo(signo: int, info: bytes) -> bytes:
    """signalfd_copyinfo(): a struct signalfd_siginfo from a guest struct siginfo (uapi/asm-generic/siginfo.h)."""
    errno, code = struct.unpack_from("<ii", info, 4)
    pid = uid = fd = tid = band = overrun = status = value = utime = stime = addr = call = syscall_nr = arch = 0
    layout = _siginfo_layout(signo, code)
    if layout == "kill":
        pid, uid = struct.unpack_from("<II", info, 16)
    elif layout == "timer":
        tid, overrun, value = struct.unpack_from("<iIQ", info, 16)
    elif layout == "rt":
        pid, uid, value = struct.unpack_from("<IIQ", info, 16)
    elif layout == "chld":
        pid, uid, status, utime, stime = struct.unpack_from("<IIi4xQQ", info, 16)
    elif layout == "poll":
        band, fd = struct.unpack_from("<qi", info, 16)
    elif layout == "fault":
        addr, = struct.unpack_from("<Q", info, 16)
    else:
        call, syscall_nr, arch = struct.unpack_from("<QiI", info, 16)
    value_int = struct.unpack("<i", (value & 0xFFFFFFFF).to_bytes(4, "little"))[0]
    return SIGNALFD_SIGINFO.pack(signo, errno, code, pid, uid, fd, tid, band & 0xFFFFFFFF, overrun, 0, status,
                                 value_int, value, utime, stime, addr, 0, syscall_nr, call, arch)


def _renew_signalfds() -> None:
    from hermipy.syscalls.sys_signal import SIGNALFDS
    for sfd in list(SIGNALFDS):
        sfd.renew()


os.register_at_fork(after_in_child=_renew_signalfds)


@syscall("signalfd4", PARTIAL, note="a thread other than the one that made the fd sees it readable (poll, "
                                    "epoll) when that thread has a signal of the mask pending, not only itself")
def signalfd4(k, ufd: Int, user_mask: SigSet, sizemask: Size, flags: SFD_FLAGS) -> int:
    """signalfd4(2): a new signalfd (ufd == -1) or a new mask for one (EINVAL if ``ufd`` is not a signalfd)."""
    from hermipy.syscalls.sys_signal import SIGNALFDS
    if flags & ~(SFD_NONBLOCK | SFD_CLOEXEC) or sizemask != SIGSET_SIZE:
        raise SyscallError(EINVAL)
    mask = int.from_bytes(k.mem.read(user_mask, SIGSET_SIZE), "little") & ~UNBLOCKABLE
    if ufd != -1:
        sfd = k.fds.get(ufd)
        if not isinstance(sfd, SignalFd):
            raise SyscallError(EINVAL)
        with k.group.lock:
            sfd.mask = mask
            sfd.sync(sfd.owner)
        return ufd
    host = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    fd = _anon_file(k, host, "signalfd", bool(flags & SFD_NONBLOCK), bool(flags & SFD_CLOEXEC), cls=SignalFd)
    sfd = k.fds.get(fd)
    sfd.kind, sfd.mask, sfd.owner, sfd.ready, sfd.lock = "signalfd", mask, k.signals, False, threading.Lock()
    with k.group.lock:
        SIGNALFDS.add(sfd)
        sfd.sync(sfd.owner)
    return fd


@syscall("signalfd", PARTIAL, note="as signalfd4")
def signalfd(k, ufd: Int, user_mask: SigSet, sizemask: Size) -> int:
    """signalfd(2): signalfd4 without flags."""
    return signalfd4(k, ufd, user_mask, sizemask, 0)


# -- inotify (fs/notify/inotify/inotify_user.c) ----------------------------------------------------------
IN_NONBLOCK, IN_CLOEXEC = O_NONBLOCK, 0o2000000
IN_ONLYDIR, IN_DONT_FOLLOW = 0x01000000, 0x02000000
IN_INIT_FLAGS = Flags({IN_NONBLOCK: "IN_NONBLOCK", IN_CLOEXEC: "IN_CLOEXEC"})
IN_MASK = Flags({0x1: "IN_ACCESS", 0x2: "IN_MODIFY", 0x4: "IN_ATTRIB", 0x8: "IN_CLOSE_WRITE",
                 0x10: "IN_CLOSE_NOWRITE", 0x20: "IN_OPEN", 0x40: "IN_MOVED_FROM", 0x80: "IN_MOVED_TO",
                 0x100: "IN_CREATE", 0x200: "IN_DELETE", 0x400: "IN_DELETE_SELF", 0x800: "IN_MOVE_SELF",
                 IN_ONLYDIR: "IN_ONLYDIR", IN_DONT_FOLLOW: "IN_DONT_FOLLOW", 0x04000000: "IN_EXCL_UNLINK",
                 0x10000000: "IN_MASK_CREATE", 0x20000000: "IN_MASK_ADD", 0x80000000: "IN_ONESHOT"})


@syscall("inotify_init1", FULL)
def inotify_init1(k, flags: IN_INIT_FLAGS) -> int:
    """inotify_init1(2): a host inotify instance; its events (watch descriptors, masks, cookies, names relative
    to the watched directory) are read from it as the host writes them, with read(2)'s interruptible wait."""
    if flags & ~(IN_NONBLOCK | IN_CLOEXEC):
        raise SyscallError(EINVAL)
    host = host_syscall("inotify_init1", (flags & IN_NONBLOCK) | IN_CLOEXEC)
    of = OpenFile(host, "anon_inode:inotify", O_RDONLY | (flags & IN_NONBLOCK), "anon")
    return install_host_fd(k, of, bool(flags & IN_CLOEXEC))


@syscall("inotify_init", FULL)
def inotify_init(k) -> int:
    """inotify_init(2): inotify_init1 without flags."""
    return inotify_init1(k, 0)


@syscall("inotify_add_watch", PARTIAL, note="a file of hermipy's synthetic /proc gets a watch that reports no "
                                            "event")
def inotify_add_watch(k, fd: Int, pathname: Path, mask: IN_MASK) -> int:
    """inotify_add_watch(2): the path is resolved in the guest's view (so --root confines it) and the host watch
    is set through the /proc/self/fd/N magic link of the entry it leads to. The host is asked first with no
    path, so that its checks of the mask and the fd (EINVAL, EBADF) come before the path's, as in Linux."""
    from hermipy.syscalls.sys_fs import _existing, _path, lookup
    of = k.fds.files.get(fd)
    host_fd = -1 if of is None else of.host_fd
    try:
        host_syscall("inotify_add_watch", host_fd, None, mask)
    except OSError as err:
        if err.errno != EFAULT:
            raise
    t = _existing(lookup(k, AT_FDCWD, _path(k, pathname), follow=not mask & IN_DONT_FOLLOW))
    if t.on_host:
        with t.pinned(not mask & IN_DONT_FOLLOW) as (path, follows):
            return host_syscall("inotify_add_watch", host_fd, ctypes.c_char_p(path),
                                mask & ~IN_DONT_FOLLOW if follows else mask | IN_DONT_FOLLOW)
    if mask & IN_ONLYDIR and t.node.kind != "dir":
        raise SyscallError(ENOTDIR)
    placeholder = _SYNTHETIC_WATCHED.get(t.guest)
    if placeholder is None:
        placeholder = _SYNTHETIC_WATCHED[t.guest] = os.memfd_create("hermipy-inotify", os.MFD_CLOEXEC)
    return host_syscall("inotify_add_watch", host_fd, ctypes.c_char_p(b"/proc/self/fd/%d" % placeholder),
                        mask & ~(IN_ONLYDIR | IN_DONT_FOLLOW))


# A synthetic /proc file's stand-in for inotify, by guest name: a memfd nothing writes, held while hermipy runs
# (a watch does not keep its inode), one per name so that a name watched again gets its watch descriptor again.
_SYNTHETIC_WATCHED: dict[str, int] = {}


@syscall("inotify_rm_watch", FULL)
def inotify_rm_watch(k, fd: Int, wd: Int) -> int:
    """inotify_rm_watch(2) on the host instance (EBADF, EINVAL for a file that is no inotify or an unknown wd)."""
    of = k.fds.files.get(fd)
    return host_syscall("inotify_rm_watch", -1 if of is None else of.host_fd, wd)
