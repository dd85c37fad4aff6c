"""Linux native AIO: io_setup, io_destroy, io_submit, io_getevents, io_pgetevents, io_cancel (fs/aio.c).

A context is what Linux makes it: a ring mapped in the guest's memory (``struct aio_ring``, then ``struct
io_event`` slots; its address is the context id), which libaio's io_getevents may read itself, and a limit of
requests in flight. Each request is done when it is submitted, by hermipy's own pread/pwrite/preadv/pwritev/
fsync/fdatasync handlers on the guest's fd (Linux's AIO on buffered files completes in io_submit too): its
result goes to the ring, the eventfd of IOCB_FLAG_RESFD is signalled, and io_getevents takes events from the
ring, waiting (a signal interrupts it) only when fewer than min_nr are there. Contexts belong to an address
space: a fork child has none, execve drops them.
"""
import os
import struct
from errno import EAGAIN, EBADF, EINTR, EINVAL, EOPNOTSUPP

from hermipy.syscalls.argtypes import Int, Long, Ptr
from hermipy.syscalls.errors import SyscallError
from hermipy.syscalls.table import FULL, PARTIAL, syscall

AIO_RING = struct.Struct("<IIIIIIII")    # id, nr, head, tail, magic, compat_features, incompat_features, header_length
AIO_RING_MAGIC = 0xA10A10A1
IO_EVENT = struct.Struct("<QQqq")        # data, obj, res, res2
IOCB = struct.Struct("<QIiHhIQQqQII")    # data, key, rw_flags, opcode, reqprio, fildes, buf, nbytes, offset,
#                                          reserved2, flags, resfd (uapi/linux/aio_abi.h)
KIOCB_KEY = 0
IOCB_CMD_PREAD, IOCB_CMD_PWRITE, IOCB_CMD_FSYNC, IOCB_CMD_FDSYNC = 0, 1, 2, 3
IOCB_CMD_PREADV, IOCB_CMD_PWRITEV = 7, 8         # (IOCB_CMD_POLL 5 is EINVAL here, as every other number)
IOCB_FLAG_RESFD = 1
PAGE = 4096
AIO_MAX_NR = 0x10000000 // 32            # nr_events above this: EINVAL (ioctx_alloc)


class AioContext:
    """struct kioctx: the ring at ``ring`` (``nr`` slots), and how many requests may be in flight (completed
    events not yet taken count: ``reqs_available``)."""

    def __init__(self, ring: int, size: int, nr: int, max_reqs: int):
        self.ring, self.size, self.nr, self.max_reqs = ring, size, nr, max_reqs
        self.owner = os.getpid()

    def pending(self, k) -> int:
        head, tail = self._head_tail(k)
        return (tail - head) % self.nr

    def _head_tail(self, k) -> tuple[int, int]:
        _id, _nr, head, tail = struct.unpack_from("<IIII", k.mem.read(self.ring, 16))
        return head % self.nr, tail % self.nr

    def complete(self, k, data: int, obj: int, res: int) -> None:
        """aio_complete(): the event goes into the slot at tail, then tail moves on."""
        _head, tail = self._head_tail(k)
        k.mem.write(self.ring + AIO_RING.size + tail * IO_EVENT.size, IO_EVENT.pack(data, obj, res, 0))
        k.mem.write(self.ring + 12, struct.pack("<I", (tail + 1) % self.nr))

    def take(self, k, events: int, count: int) -> int:
        """aio_read_events_ring(): up to ``count`` events from head to ``events``; head moves on."""
        head, tail = self._head_tail(k)
        n = min((tail - head) % self.nr, count)
        for i in range(n):
            slot = self.ring + AIO_RING.size + (head + i) % self.nr * IO_EVENT.size
            k.mem.write(events + i * IO_EVENT.size, k.mem.read(slot, IO_EVENT.size))
        if n:
            k.mem.write(self.ring + 8, struct.pack("<I", (head + n) % self.nr))
        return n


def _contexts(k) -> dict[int, AioContext]:
    """The address space's contexts (mm->ioctx_table); a fork child's copy of its parent's is none of its own."""
    table = getattr(k.mem, "aio_contexts", None)
    if table is None or any(ctx.owner != os.getpid() for ctx in table.values()):
        table = k.mem.aio_contexts = {}
    return table


def _context(k, ctx_id: int) -> AioContext:
    ctx = _contexts(k).get(ctx_id)
    if ctx is None:
        raise SyscallError(EINVAL)
    return ctx


@syscall("io_setup", FULL)
def io_setup(k, nr_events: Int, ctxp: Ptr) -> int:
    """io_setup(2): *ctxp must be 0 (ioctx_alloc: twice max(nr_events, 4 per CPU) ring slots, EINVAL past
    0x10000000 bytes of events, EAGAIN past fs.aio-max-nr)."""
    from hermipy.syscalls.memory import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE
    if struct.unpack("<Q", k.mem.read(ctxp, 8))[0] or nr_events == 0:
        raise SyscallError(EINVAL)
    max_reqs = nr_events & 0xFFFFFFFF
    slots = max(max_reqs, (os.cpu_count() or 1) * 4) * 2
    if slots > AIO_MAX_NR:
        raise SyscallError(EINVAL)
    if max_reqs > _aio_max_nr():
        raise SyscallError(EAGAIN)
    size = (AIO_RING.size + slots * IO_EVENT.size + PAGE - 1) // PAGE * PAGE
    nr = (size - AIO_RING.size) // IO_EVENT.size
    ring = k.mem.map(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, name="/[aio] (deleted)")
    k.mem.write(ring, AIO_RING.pack(0xFFFFFFFF, nr, 0, 0, AIO_RING_MAGIC, 1, 0, AIO_RING.size))
    try:
        k.mem.write(ctxp, struct.pack("<Q", ring))
    except SyscallError:
        k.mem.unmap(ring, size)
        raise
    _contexts(k)[ring] = AioContext(ring, size, nr, nr - 1)
    return 0


def _aio_max_nr() -> int:
    try:
        with open("/proc/sys/fs/aio-max-nr") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 65536


@syscall("io_destroy", FULL)
def io_destroy(k, ctx_id: Long) -> int:
    """io_destroy(2): the context goes, its ring is unmapped."""
    ctx = _context(k, ctx_id)
    del _contexts(k)[ctx_id]
    k.mem.unmap(ctx.ring, ctx.size)
    return 0


@syscall("io_submit", PARTIAL, note="each request is done at once (pread, pwrite, preadv, pwritev, fsync, fdatasync "
                                    "through hermipy's own handlers; Linux's AIO on buffered files completes in "
                                    "io_submit too); IOCB_CMD_POLL is EINVAL; aio_rw_flags are checked, not applied")
def io_submit(k, ctx_id: Long, nr: Long, iocbpp: Ptr) -> int:
    """io_submit(2): the number of requests submitted, or the first one's error."""
    if nr < 0:
        raise SyscallError(EINVAL)
    ctx = _context(k, ctx_id)
    done = 0
    for i in range(min(nr, ctx.nr)):
        try:
            _submit_one(k, ctx, struct.unpack("<Q", k.mem.read(iocbpp + 8 * i, 8))[0])
        except SyscallError:
            if done:
                return done
            raise
        done += 1
    return done


def _submit_one(k, ctx: AioContext, user_iocb: int) -> None:
    """io_submit_one(): the iocb's checks (EINVAL, EAGAIN, EBADF, EFAULT) fail the submission; what the
    operation itself returns is the event's result."""
    (data, _key, rw_flags, opcode, _prio, fildes, buf, nbytes, offset, reserved2, flags,
     resfd) = IOCB.unpack(k.mem.read(user_iocb, IOCB.size))
    if reserved2 or nbytes >= 1 << 63:
        raise SyscallError(EINVAL)
    if ctx.pending(k) >= ctx.max_reqs:
        raise SyscallError(EAGAIN)
    of = k.fds.get(fildes)
    eventfd = None
    if flags & IOCB_FLAG_RESFD:
        eventfd = k.fds.get(resfd)
        if eventfd.kind != "eventfd" and not _is_eventfd(eventfd):
            raise SyscallError(EINVAL)
    k.mem.write(user_iocb + 8, struct.pack("<I", KIOCB_KEY))
    run = _operation(k, of, opcode, fildes, buf, nbytes, offset, rw_flags)
    try:
        res = run()
    except SyscallError as err:
        res = -err.errno
    except OSError as err:
        res = -(err.errno or EINVAL)
    ctx.complete(k, data, user_iocb, res)
    if eventfd is not None:
        try:
            os.write(eventfd.host_fd, (1).to_bytes(8, "little"))
        except OSError:
            pass


def _is_eventfd(of) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{of.host_fd}") == "anon_inode:[eventfd]"
    except OSError:
        return False


def _operation(k, of, opcode: int, fd: int, buf: int, nbytes: int, offset: int, rw_flags: int):
    """The request's checks at submission (aio_read/aio_write/aio_fsync: EBADF, EINVAL), and the call that
    does it."""
    from hermipy.syscalls import sys_fs, sys_io
    if opcode in (IOCB_CMD_FSYNC, IOCB_CMD_FDSYNC):
        if buf or offset or nbytes or rw_flags:
            raise SyscallError(EINVAL)
        call = sys_fs.fsync if opcode == IOCB_CMD_FSYNC else sys_fs.fdatasync
        return lambda: call(k, fd)
    if opcode not in (IOCB_CMD_PREAD, IOCB_CMD_PWRITE, IOCB_CMD_PREADV, IOCB_CMD_PWRITEV):
        raise SyscallError(EINVAL)
    writing = opcode in (IOCB_CMD_PWRITE, IOCB_CMD_PWRITEV)
    if rw_flags & ~0xFF:
        raise SyscallError(EOPNOTSUPP)
    if not (of.writable if writing else of.readable):
        raise SyscallError(EBADF)
    if offset < 0 and of.kind not in ("pipe", "socket", "tty"):
        raise SyscallError(EINVAL)
    if opcode == IOCB_CMD_PREAD:
        return lambda: sys_io.pread64(k, fd, buf, nbytes, offset)
    if opcode == IOCB_CMD_PWRITE:
        return lambda: sys_io.pwrite64(k, fd, buf, nbytes, offset)
    if opcode == IOCB_CMD_PREADV:
        return lambda: sys_io.preadv(k, fd, buf, nbytes, offset)
    return lambda: sys_io.pwritev(k, fd, buf, nbytes, offset)


def _getevents(k, ctx_id: int, min_nr: int, nr: int, events: int, timeout: int, now: bool) -> int:
    """do_io_getevents() and read_events(): what the ring has, waiting for min_nr only until the timeout or a
    signal (EINTR when nothing was taken)."""
    from hermipy.syscalls.kicks import wait
    from hermipy.syscalls.sys_io import Timespec
    ts = None
    if timeout:                                    # read first (EFAULT); a negative time is no wait
        sec, nsec = struct.unpack("<qq", k.mem.read(timeout, 16))
        ts = Timespec(*divmod(max(sec * 1_000_000_000 + nsec, 0), 1_000_000_000))
    ctx = _contexts(k).get(ctx_id)
    if ctx is None or not 0 <= min_nr <= nr:
        raise SyscallError(EINVAL)
    taken = ctx.take(k, events, nr)
    if taken >= min_nr or ts is not None and not ts.sec and not ts.nsec:
        return taken
    if now:                                        # a signal the temporary mask lets through is pending
        return taken
    try:
        wait(k, None, 0, ts, EINTR)                # nothing more can complete: wait for the timeout or a signal
    except SyscallError:
        if taken:
            return taken
        raise
    return taken


@syscall("io_getevents", FULL)
def io_getevents(k, ctx_id: Long, min_nr: Long, nr: Long, events: Ptr, timeout: Ptr) -> int:
    """io_getevents(2)."""
    return _getevents(k, ctx_id, min_nr, nr, events, timeout, False)


@syscall("io_pgetevents", FULL)
def io_pgetevents(k, ctx_id: Long, min_nr: Long, nr: Long, events: Ptr, timeout: Ptr, usig: Ptr) -> int:
    """io_pgetevents(2): io_getevents with a temporary signal mask (struct __aio_sigset {sigmask, sigsetsize})."""
    from hermipy.syscalls.sys_signal import with_temporary_mask
    sigmask, sigsetsize = struct.unpack("<QQ", k.mem.read(usig, 16)) if usig else (0, 0)
    return with_temporary_mask(k, sigmask, sigsetsize, lambda now: _getevents(k, ctx_id, min_nr, nr, events, timeout, now))


@syscall("io_cancel", FULL)
def io_cancel(k, ctx_id: Long, iocb: Ptr, result: Ptr) -> int:
    """io_cancel(2): every request is done by the time io_submit returns, so none can be cancelled (EINVAL, as
    Linux answers for a request that already completed) once the iocb's key (read first: EFAULT) and the context
    are checked."""
    if struct.unpack("<I", k.mem.read(iocb + 8, 4))[0] != KIOCB_KEY:
        raise SyscallError(EINVAL)
    _context(k, ctx_id)
    raise SyscallError(EINVAL)
