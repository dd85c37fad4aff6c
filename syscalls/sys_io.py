"""Reading and writing file descriptors: read, write, their vectored and positional forms, lseek,
close, close_range, dup*, fcntl, flock, ioctl, pipes, sendfile, copy_file_range, fadvise64, readahead, poll and select
(fs/read_write.c, fs/fcntl.c, fs/locks.c, fs/ioctl.c, drivers/tty/tty_io.c, fs/pipe.c, fs/select.c).

Every guest fd is backed by a host fd, so whatever the host kernel can answer about the file itself (locks,
terminal attributes, readiness) is asked of it with the guest's fd translated; what belongs to the fd table
(numbers, close-on-exec) is the guest's own.
"""
import ctypes
from fcntl import fcntl as host_fcntl
import os
import select as host_select
import stat
import struct
from errno import EAGAIN, EBADF, EFAULT, EINVAL, EISDIR, ENOTTY, EPIPE

from hermipy.layout import PAGE_SIZE
from hermipy.syscalls.argtypes import WHENCE, Arg, Enum, Fd, Flags, InBuf, Int, Long, Ptr, Size, UInt
from hermipy.syscalls.errors import ERESTARTNOHAND, ERESTARTSYS, SyscallError
from hermipy.syscalls.files import (O_APPEND, O_CLOEXEC, O_NONBLOCK, O_PATH, O_RDONLY, O_WRONLY, POSIX_LOCKS,
                                    OpenFile)
from hermipy.syscalls.host import host_call, host_syscall
from hermipy.syscalls.table import FULL, PARTIAL, syscall

IOV_MAX = 1024
IOVEC = struct.Struct("<QQ")       # struct iovec (include/uapi/linux/uio.h)
MAX_RW_COUNT = 0x7FFFF000          # include/linux/fs.h: one read/write moves at most this much
USER_PTR_MAX = (1 << 47) - PAGE_SIZE - 1    # the last user address access_ok() accepts (TASK_SIZE_MAX - 1)


def access_ok(addr: int, size: int) -> None:
    """access_ok(): EFAULT for a range that reaches past the user half (nothing is read: an unmapped page is
    found by the copy)."""
    if size and addr + size - 1 > USER_PTR_MAX:
        raise SyscallError(EFAULT)
RWF_NOWAIT = 0x8
SIGPIPE = 13


def _readable(k, fd: int):
    of = k.fds.get(fd)
    if not of.readable:
        raise SyscallError(EBADF)
    return of


def _writable(k, fd: int):
    of = k.fds.get(fd)
    if not of.writable:
        raise SyscallError(EBADF)
    if of.kind == "signalfd":
        raise SyscallError(EINVAL)      # signalfd has no write operation
    return of


def _views(k, segments):
    """Guest buffers as host memoryviews, one per page, each touched only when it is taken."""
    for base, length in segments:
        while length > 0:
            chunk = min(length, PAGE_SIZE - (base & (PAGE_SIZE - 1)))
            yield from k.mem.writable_views(base, chunk)
            base += chunk
            length -= chunk


def _read_into(k, host_fd: int, segments, offset: int | None = None, flags: int = 0) -> int:
    """readv/preadv straight into guest RAM, at most IOV_MAX page views per host call (preadv2 with the RWF_*
    ``flags``, at the file position for offset None).

    A regular file that fills a whole batch is read on, as one Linux read would; a pipe, socket or tty
    returns after the first batch (a second host call could block with data already taken). A buffer that
    is unmapped part way ends the read there, with the bytes before it (EFAULT only if there are none).
    """
    views, done, faulted = _views(k, segments), 0, False
    while not faulted:
        batch = []
        try:
            while len(batch) < IOV_MAX:
                batch.append(next(views))
        except StopIteration:
            pass
        except SyscallError:
            if not batch and not done:
                raise
            faulted = True
        if not batch:
            break
        if offset is None:
            got = os.preadv(host_fd, batch, -1, flags) if flags else os.readv(host_fd, batch)
        else:
            got = os.preadv(host_fd, batch, offset + done, flags)
        done += got
        if got < sum(len(v) for v in batch) or not stat.S_ISREG(os.fstat(host_fd).st_mode):
            break
    return done


_WAITS = ("pipe", "tty", "socket", "anon")      # kinds whose read or write may block (anon: eventfd, timerfd)


def ready_now(host_fd: int, events: int, poll_first: bool = False) -> bool:
    """Would a call waiting for ``events`` on ``host_fd`` go on at once: is it ready, or the file non-blocking?
    (F_GETFL costs ~0.2 µs, a poll object and poll(0) ~0.8, a ctypes ppoll ~5.5: ``poll_first`` where the file is
    likely blocking.)"""
    if not poll_first and host_fcntl(host_fd, F_GETFL) & O_NONBLOCK:
        return True
    ready = host_select.poll()
    ready.register(host_fd, events)
    if ready.poll(0):
        return True
    return poll_first and bool(host_fcntl(host_fd, F_GETFL) & O_NONBLOCK)


def _wait_ready(k, of: OpenFile, events: int) -> None:
    """Before a read or write that may block: wait until the host fd is ready, in a wait a kick interrupts
    (kicks.wait). Ready, or a non-blocking file: return at once (one poll with no timeout). A socket waits at
    most its SO_RCVTIMEO (reading) or SO_SNDTIMEO (writing), then EAGAIN, and with such a timeout a handler's
    interruption is never restarted (sock_rcvtimeo, sock_intr_errno)."""
    if of.kind not in _WAITS:
        return
    if of.kind == "tty":                # a background job's read or write (TOSTOP) stops it, as on Linux
        from hermipy.syscalls.sys_signal import SIGTTIN, SIGTTOU, tty_job_control
        tty_job_control(k, of.host_fd, SIGTTIN if events == POLLIN else SIGTTOU, tostop=events != POLLIN)
    if ready_now(of.host_fd, events, poll_first=not of.flags & O_NONBLOCK):
        return
    fds = (PollFd * 1)()
    fds[0].fd, fds[0].events = of.host_fd, events
    from hermipy.syscalls.kicks import wait
    timeout, restart = None, ERESTARTSYS
    if of.kind == "socket":
        from hermipy.syscalls.sys_net import SO_RCVTIMEO, SO_SNDTIMEO, timeout_of
        timeout = timeout_of(of.host_fd, SO_RCVTIMEO if events == POLLIN else SO_SNDTIMEO)
        restart = ERESTARTSYS if timeout is None else ERESTARTNOHAND
    while not wait(k, fds, 1, timeout, restart):
        if timeout is not None:
            raise SyscallError(EAGAIN)


def _writing(k, write, *args):
    """Run ``write(*args)``; EPIPE (no reader left) also raises SIGPIPE in the guest, as pipe_write and the socket
    layer do with send_sig(SIGPIPE, current, 0). hermipy's own process ignores SIGPIPE, as CPython does."""
    try:
        return write(*args)
    except OSError as err:
        if err.errno != EPIPE:
            raise
    from hermipy.syscalls.host_signals import take_raised
    from hermipy.syscalls.sys_signal import SI_USER, _finish, make_siginfo
    take_raised(SIGPIPE)                   # the host's own, for hermipy's write: the guest gets this one
    k.signals.send(SIGPIPE, make_siginfo(SIGPIPE, SI_USER, pid=k.proc.pid, uid=k.proc.uid))
    if _finish(k, -EPIPE) is not None:
        raise SyscallError(EPIPE)
    return None


def import_iovec(k, iov: int, iovcnt: int) -> list[tuple[int, int]]:
    """struct iovec[iovcnt] -> [(base, len)], checked as import_iovec() does (lib/iov_iter.c): the count is an
    unsigned int (EINVAL above IOV_MAX), a length that is negative as an ssize_t is EINVAL (every one is read
    before any buffer is checked), a buffer that is not in user space EFAULT, and the total is cut at
    MAX_RW_COUNT."""
    iovcnt &= 0xFFFFFFFF
    if iovcnt == 0:
        return []
    if iovcnt > IOV_MAX:
        raise SyscallError(EINVAL)
    segments = list(IOVEC.iter_unpack(k.mem.read(iov, 16 * iovcnt)))
    total = top = 0
    for base, length in segments:
        total += length
        if base + length > top:
            top = base + length
    if total <= MAX_RW_COUNT and top <= USER_PTR_MAX:     # the usual case: nothing to refuse or cut (0.5 µs less)
        return segments
    if any(length >> 63 for _base, length in segments):
        raise SyscallError(EINVAL)
    total = 0
    for i, (base, length) in enumerate(segments):
        if base + length > USER_PTR_MAX:                  # access_ok()
            raise SyscallError(EFAULT)
        if length > MAX_RW_COUNT - total:
            segments[i] = (base, MAX_RW_COUNT - total)
        total += segments[i][1]
    return segments


def _gather(k, segments) -> list[bytes]:
    """The bytes of the guest's buffers up to the first one that is not mapped (a write moves what came before
    it, as copy_page_from_iter_atomic() stops there); EFAULT when that is the first."""
    chunks = []
    for base, length in segments:
        if length:
            try:
                chunks.append(k.mem.read(base, length))
            except SyscallError:
                if not chunks:
                    raise
                break
    return chunks


@syscall("read", FULL)
def read(k, fd: Fd, buf: Ptr, count: Size) -> int:
    """read(2): the fd, then access_ok() of the whole buffer (EFAULT), as vfs_read() checks them."""
    of = _readable(k, fd)
    access_ok(buf, count)
    if of.dir_entries is not None or of.kind == "dir":
        raise SyscallError(21)    # EISDIR
    if of.kind == "signalfd":
        return of.read_records(k, buf, count)
    count = min(count, MAX_RW_COUNT)
    if count == 0:
        return 0
    if of.kind in _WAITS:
        _wait_ready(k, of, POLLIN)
    if count <= 65536:
        data = os.read(of.host_fd, count)
        k.mem.write(buf, data)
        return len(data)
    return _read_into(k, of.host_fd, [(buf, count)])


@syscall("write", FULL)
def write(k, fd: Fd, buf: InBuf(2), count: Size) -> int:
    """write(2)."""
    of = _writable(k, fd)
    data = k.mem.read(buf, min(count, MAX_RW_COUNT))
    if of.kind in _WAITS:
        _wait_ready(k, of, POLLOUT)
    return _writing(k, os.write, of.host_fd, data)


@syscall("readv", FULL)
def readv(k, fd: Fd, iov: Ptr, iovcnt: UInt) -> int:
    """readv(2)."""
    return _readv(k, _readable(k, fd), iov, iovcnt, None, 0)


@syscall("writev", FULL)
def writev(k, fd: Fd, iov: Ptr, iovcnt: UInt) -> int:
    """writev(2)."""
    return _writev(k, _writable(k, fd), iov, iovcnt, None, 0)


def _positional(k, fd: int, offset: int, writing: bool) -> OpenFile:
    """do_preadv()/do_pwritev()'s checks before the iovecs, in their order: a negative offset (EINVAL, even for
    a bad fd), the fd (EBADF), then a file without positional I/O (ESPIPE: pipes, sockets, ttys) before one not
    open for it (EBADF). Readable, or writable, files are asked nothing more here: the host's call itself says
    ESPIPE (``_host_verdict`` before an error of hermipy's own)."""
    if offset < 0:
        raise SyscallError(EINVAL)
    of = k.fds.get(fd)
    if of.flags & O_PATH:
        raise SyscallError(EBADF)
    if not (of.writable if writing else of.readable):
        _host_verdict(of, offset, writing)
        raise SyscallError(EBADF)
    return of


def _host_verdict(of: OpenFile, offset: int | None, writing: bool) -> None:
    """The host's own answer to a vectored call with no buffers on the host fd, which checks the file as Linux
    does before the iovecs (FMODE_PREAD/PWRITE: ESPIPE; FMODE_READ/WRITE: EBADF; FMODE_CAN_READ/WRITE: EINVAL)
    and then moves nothing: raises its error, if any. Synthetic files (a memfd) are the guest's to check."""
    if of.node is None:
        host_syscall("pwritev2" if writing else "preadv2", of.host_fd, 0, 0, -1 if offset is None else offset, 0, 0)


def _readv(k, of: OpenFile, iov: int, iovcnt: int, offset: int | None, flags: int) -> int:
    """vfs_readv() once the file is known to be open for reading: the iovecs (an error there comes after the
    host's verdict on the file), nothing to read (0 once the file passed), then the read at ``offset`` (None:
    the file position) with the RWF_* ``flags``, which the host checks (EOPNOTSUPP)."""
    try:
        segments = import_iovec(k, iov, iovcnt)
    except SyscallError:
        _host_verdict(of, offset, False)
        raise
    if not any(length for _base, length in segments):
        _host_verdict(of, offset, False)
        return 0
    if of.dir_entries is not None:
        raise SyscallError(EISDIR)
    if offset is None and not flags & RWF_NOWAIT:
        _wait_ready(k, of, POLLIN)
    return _read_into(k, of.host_fd, segments, offset, flags)


def _writev(k, of: OpenFile, iov: int, iovcnt: int, offset: int | None, flags: int) -> int:
    """vfs_writev() once the file is known to be open for writing (see ``_readv``); a buffer unmapped part way
    ends the write there."""
    try:
        segments = import_iovec(k, iov, iovcnt)
    except SyscallError:
        _host_verdict(of, offset, True)
        raise
    chunks = _gather(k, segments)
    if not chunks:                         # every length 0 (an unmapped first buffer is EFAULT in _gather)
        _host_verdict(of, offset, True)
        return 0
    if offset is None and not flags & RWF_NOWAIT:
        _wait_ready(k, of, POLLOUT)
    if offset is None and not flags:
        return _writing(k, os.writev, of.host_fd, chunks)
    return _writing(k, os.pwritev, of.host_fd, chunks, -1 if offset is None else offset, flags)


@syscall("pread64", FULL)
def pread64(k, fd: Fd, buf: Ptr, count: Size, offset: Long) -> int:
    """pread(2) (ksys_pread64: the offset, then the fd, then ESPIPE before EBADF)."""
    of = _positional(k, fd, offset, False)
    access_ok(buf, count)
    count = min(count, MAX_RW_COUNT)
    dest = k.mem.span(buf, count, True)
    if dest is not None:                  # a buffer in one page: the host reads into guest RAM itself
        return host_call("pread64", of.host_fd, dest, count, offset)
    data = os.pread(of.host_fd, count, offset)
    try:
        k.mem.write(buf, data)
    except SyscallError:
        return _copy_out_prefix(k, buf, data)
    return len(data)


def _copy_out_prefix(k, buf: int, data: bytes) -> int:
    """Copy ``data`` to the guest's ``buf`` up to the first page it may not write: how much was copied (EFAULT when
    nothing), as a read that faults part way returns the bytes before the fault."""
    done = 0
    while done < len(data):
        chunk = min(len(data) - done, PAGE_SIZE - ((buf + done) & (PAGE_SIZE - 1)))
        try:
            k.mem.write(buf + done, data[done:done + chunk])
        except SyscallError:
            if not done:
                raise
            break
        done += chunk
    return done


@syscall("pwrite64", FULL)
def pwrite64(k, fd: Fd, buf: InBuf(2), count: Size, offset: Long) -> int:
    """pwrite(2) (ksys_pwrite64)."""
    of = _positional(k, fd, offset, True)
    return os.pwrite(of.host_fd, k.mem.read(buf, min(count, MAX_RW_COUNT)), offset)


@syscall("preadv", FULL)
def preadv(k, fd: Fd, iov: Ptr, iovcnt: UInt, offset: Long) -> int:
    """preadv(2) (do_preadv; pos_l carries the whole 64-bit offset on x86-64)."""
    return _readv(k, _positional(k, fd, offset, False), iov, iovcnt, offset, 0)


@syscall("pwritev", FULL)
def pwritev(k, fd: Fd, iov: Ptr, iovcnt: UInt, offset: Long) -> int:
    """pwritev(2) (do_pwritev)."""
    return _writev(k, _positional(k, fd, offset, True), iov, iovcnt, offset, 0)


RWF_FLAGS = Flags({0x1: "RWF_HIPRI", 0x2: "RWF_DSYNC", 0x4: "RWF_SYNC", 0x8: "RWF_NOWAIT", 0x10: "RWF_APPEND",
                   0x20: "RWF_NOAPPEND", 0x40: "RWF_ATOMIC", 0x80: "RWF_DONTCACHE"})


@syscall("preadv2", FULL)
def preadv2(k, fd: Fd, iov: Ptr, iovcnt: UInt, offset: Long, pos_h: Arg, flags: RWF_FLAGS) -> int:
    """preadv2(2): offset -1 reads at the file position (do_readv); the RWF_* flags go to the host's call."""
    if offset == -1:
        return _readv(k, _readable(k, fd), iov, iovcnt, None, flags)
    return _readv(k, _positional(k, fd, offset, False), iov, iovcnt, offset, flags)


@syscall("pwritev2", FULL)
def pwritev2(k, fd: Fd, iov: Ptr, iovcnt: UInt, offset: Long, pos_h: Arg, flags: RWF_FLAGS) -> int:
    """pwritev2(2): offset -1 writes at the file position (do_writev); RWF_APPEND and the others go to the host."""
    if offset == -1:
        return _writev(k, _writable(k, fd), iov, iovcnt, None, flags)
    return _writev(k, _positional(k, fd, offset, True), iov, iovcnt, offset, flags)


@syscall("lseek", FULL)
def lseek(k, fd: Fd, offset: Long, whence: WHENCE) -> int:
    """lseek(2)."""
    of = k.fds.get(fd)
    if of.dir_entries is not None:
        if whence != 0 or offset < 0:
            raise SyscallError(EINVAL)
        of.dir_pos = offset
        return offset
    return os.lseek(of.host_fd, offset, whence)          # pipes, sockets: ESPIPE from the host


@syscall("close", FULL)
def close(k, fd: Fd) -> int:
    """close(2)."""
    k.fds.close(fd)
    return 0


CLOSE_RANGE_UNSHARE, CLOSE_RANGE_CLOEXEC = 2, 4


@syscall("close_range", FULL)
def close_range(k, fd: UInt, max_fd: UInt, flags: Flags({CLOSE_RANGE_UNSHARE: "CLOSE_RANGE_UNSHARE",
                                                           CLOSE_RANGE_CLOEXEC: "CLOSE_RANGE_CLOEXEC"})) -> int:
    """close_range(2): close (or mark close-on-exec) every open fd in [fd, max_fd]. The guest's fd table is
    never shared (no CLONE_FILES), so CLOSE_RANGE_UNSHARE has nothing to unshare."""
    if flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) or fd > max_fd:
        raise SyscallError(EINVAL)
    for n in sorted(n for n in k.fds.files if fd <= n <= max_fd):
        if flags & CLOSE_RANGE_CLOEXEC:
            k.fds.cloexec.add(n)
        else:
            k.fds.close(n)
    return 0


# -- dup --------------------------------------------------------------------------------------------
@syscall("dup", FULL)
def dup(k, oldfd: Fd) -> int:
    """dup(2): the lowest free fd, close-on-exec clear."""
    return k.fds.dup(oldfd)


@syscall("dup2", FULL)
def dup2(k, oldfd: Fd, newfd: Fd) -> int:
    """dup2(2): the same fd twice is a no-op once oldfd is known to be open."""
    if oldfd == newfd:
        k.fds.get(oldfd)
        return newfd
    return dup3(k, oldfd, newfd, 0)


O_FLAGS_CLOEXEC = Flags({O_CLOEXEC: "O_CLOEXEC"})


@syscall("dup3", FULL)
def dup3(k, oldfd: Fd, newfd: Fd, flags: O_FLAGS_CLOEXEC) -> int:
    """dup3(2) (ksys_dup3 order: flags, same fd, newfd range, then oldfd)."""
    if flags & ~O_CLOEXEC or oldfd == newfd:
        raise SyscallError(EINVAL)
    if newfd < 0 or newfd >= k.fds.limit:
        raise SyscallError(EBADF)
    k.fds.install_at(newfd, k.fds.get(oldfd), bool(flags & O_CLOEXEC))
    return newfd


# -- fcntl ------------------------------------------------------------------------------------------
F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_GETLK, F_SETLK, F_SETLKW = 0, 1, 2, 3, 4, 5, 6, 7
F_SETOWN, F_GETOWN, F_SETSIG, F_GETSIG, F_SETOWN_EX, F_GETOWN_EX, F_GETOWNER_UIDS = 8, 9, 10, 11, 15, 16, 17
F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW = 36, 37, 38
F_SETLEASE, F_GETLEASE, F_NOTIFY, F_DUPFD_QUERY, F_CANCELLK, F_DUPFD_CLOEXEC = 1024, 1025, 1026, 1027, 1029, 1030
F_CREATED_QUERY = 1028
F_SETPIPE_SZ, F_GETPIPE_SZ, F_ADD_SEALS, F_GET_SEALS = 1031, 1032, 1033, 1034
F_GET_RW_HINT, F_SET_RW_HINT, F_GET_FILE_RW_HINT, F_SET_FILE_RW_HINT = 1035, 1036, 1037, 1038
FD_CLOEXEC = 1
O_ASYNC, O_DIRECT, O_NOATIME = 0o20000, 0o40000, 0o1000000
SETFL_MASK = O_APPEND | O_NONBLOCK | O_ASYNC | O_DIRECT | O_NOATIME      # fs/fcntl.c
FCNTL_CMDS = {0: "F_DUPFD", 1: "F_GETFD", 2: "F_SETFD", 3: "F_GETFL", 4: "F_SETFL", 5: "F_GETLK", 6: "F_SETLK",
              7: "F_SETLKW", 8: "F_SETOWN", 9: "F_GETOWN", 10: "F_SETSIG", 11: "F_GETSIG", 15: "F_SETOWN_EX",
              16: "F_GETOWN_EX", 17: "F_GETOWNER_UIDS", 36: "F_OFD_GETLK", 37: "F_OFD_SETLK", 38: "F_OFD_SETLKW",
              1024: "F_SETLEASE", 1025: "F_GETLEASE", 1026: "F_NOTIFY", 1027: "F_DUPFD_QUERY", 1028: "F_CREATED_QUERY",
              1029: "F_CANCELLK",
              1030: "F_DUPFD_CLOEXEC", 1031: "F_SETPIPE_SZ", 1032: "F_GETPIPE_SZ", 1033: "F_ADD_SEALS",
              1034: "F_GET_SEALS", 1035: "F_GET_RW_HINT", 1036: "F_SET_RW_HINT", 1037: "F_GET_FILE_RW_HINT",
              1038: "F_SET_FILE_RW_HINT"}
FLOCK_SIZE = 32                         # struct flock: l_type, l_whence (s16), l_start, l_len (s64), l_pid (s32)
# commands whose third argument points at a struct the host reads and/or writes: cmd -> (size, copy back)
_FCNTL_STRUCT = {F_GETLK: (FLOCK_SIZE, True), F_SETLK: (FLOCK_SIZE, False), F_SETLKW: (FLOCK_SIZE, False),
                 F_OFD_GETLK: (FLOCK_SIZE, True), F_OFD_SETLK: (FLOCK_SIZE, False),
                 F_OFD_SETLKW: (FLOCK_SIZE, False), F_GETOWN_EX: (8, True), F_SETOWN_EX: (8, False),
                 F_GETOWNER_UIDS: (8, True), F_GET_RW_HINT: (8, True), F_SET_RW_HINT: (8, False),
                 F_GET_FILE_RW_HINT: (8, True), F_SET_FILE_RW_HINT: (8, False)}
# commands with a plain integer argument (or none) that the host answers for the file itself
_FCNTL_VALUE = {F_SETOWN, F_GETOWN, F_SETSIG, F_GETSIG, F_SETLEASE, F_GETLEASE, F_NOTIFY, F_CANCELLK,
                F_SETPIPE_SZ, F_GETPIPE_SZ, F_ADD_SEALS, F_GET_SEALS}
_O_PATH_FCNTL = {F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD, F_SETFD, F_GETFL, F_DUPFD_QUERY,   # check_fcntl_cmd()
                 F_CREATED_QUERY}


def _host_struct_call(k, name: str, host_fd: int, cmd: int, addr: int, size: int, copy_back: bool) -> int:
    """The host call with the guest's struct copied in (and out). A bad guest pointer becomes a NULL host
    pointer, so the host reports what Linux would for it (its own errors first, else EFAULT)."""
    try:
        buf = ctypes.create_string_buffer(k.mem.read(addr, size), size)
    except SyscallError:
        buf = None
    result = host_syscall(name, host_fd, cmd, buf)
    if copy_back:
        k.mem.write(addr, buf.raw[:size])
    return result


@syscall("fcntl", PARTIAL, note="the fd table's commands are the guest's; locks, leases, pipe sizes, seals, owners "
                                "and hints go to the host file. A signal the host raises for the file (F_SETOWN/"
                                "F_SETSIG/O_ASYNC, leases, F_NOTIFY) reaches the hermipy process, not the guest's "
                                "handlers")
def fcntl(k, fd: Fd, cmd: Enum(FCNTL_CMDS), arg: Long) -> int:
    """fcntl(2) (fs/fcntl.c do_fcntl)."""
    of = k.fds.get(fd)
    if of.flags & O_PATH and cmd not in _O_PATH_FCNTL:
        raise SyscallError(EBADF)
    argi = arg & 0xFFFFFFFF
    if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
        if argi >= k.fds.limit:                       # f_dupfd(unsigned int from)
            raise SyscallError(EINVAL)
        return k.fds.install(of, cmd == F_DUPFD_CLOEXEC, argi)
    if cmd == F_GETFD:
        return FD_CLOEXEC if fd in k.fds.cloexec else 0
    if cmd == F_SETFD:
        if argi & FD_CLOEXEC:
            k.fds.cloexec.add(fd)
        else:
            k.fds.cloexec.discard(fd)
        return 0
    if cmd == F_GETFL:
        return _status_flags(of)
    if cmd == F_SETFL:
        if of.node is None and of.status_from_host:
            host = host_syscall("fcntl", of.host_fd, F_GETFL)
            host_syscall("fcntl", of.host_fd, F_SETFL, (host & ~SETFL_MASK) | (argi & SETFL_MASK))
        of.flags = (of.flags & ~SETFL_MASK) | (argi & SETFL_MASK)
        return 0
    if cmd == F_DUPFD_QUERY:
        return int(k.fds.get(_s32(argi)) is of)
    if cmd == F_CREATED_QUERY:                        # FMODE_CREATED: the host open made the file (or not)
        return 0 if of.node is not None else host_syscall("fcntl", of.host_fd, cmd, 0)
    if cmd in _FCNTL_STRUCT:
        if cmd in (F_SETLK, F_SETLKW):
            POSIX_LOCKS["used"] = True
        size, copy_back = _FCNTL_STRUCT[cmd]
        return _host_struct_call(k, "fcntl", of.host_fd, cmd, arg, size, copy_back)
    if cmd in _FCNTL_VALUE:
        if of.node is not None and cmd in (F_ADD_SEALS, F_GET_SEALS):
            raise SyscallError(EINVAL)                # a synthetic /proc file is a memfd only on the host
        return host_syscall("fcntl", of.host_fd, cmd, arg)
    raise SyscallError(EINVAL)


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _status_flags(of: OpenFile) -> int:
    """F_GETFL: the flags recorded at open, with the settable ones as the host file has them now (another
    process sharing the open file description may have changed O_NONBLOCK, say)."""
    if of.node is not None or not of.status_from_host:
        return of.flags
    host = host_syscall("fcntl", of.host_fd, F_GETFL)
    return (of.flags & ~SETFL_MASK) | (host & SETFL_MASK)


@syscall("flock", FULL)
def flock(k, fd: Fd, operation: Flags({1: "LOCK_SH", 2: "LOCK_EX", 4: "LOCK_NB", 8: "LOCK_UN"})) -> int:
    """flock(2) on the host file: guest and host share the open file description, so the lock is the guest's.
    Before the fd: LOCK_MAND is ignored (0, as Linux has done since 5.15), an unknown operation is EINVAL."""
    if operation & 32:
        return 0
    if operation & ~4 not in (1, 2, 8):
        raise SyscallError(EINVAL)
    return host_syscall("flock", k.fds.get(fd).host_fd, operation)


# -- ioctl ------------------------------------------------------------------------------------------
TCGETS, TCSETS, TCSETSW, TCSETSF = 0x5401, 0x5402, 0x5403, 0x5404
TCSBRK, TCXONC, TCFLSH, TIOCSCTTY, TIOCGPGRP, TIOCSPGRP = 0x5409, 0x540A, 0x540B, 0x540E, 0x540F, 0x5410
TIOCOUTQ, TIOCGWINSZ, TIOCSWINSZ, FIONREAD, FIONBIO, TIOCNOTTY = 0x5411, 0x5413, 0x5414, 0x541B, 0x5421, 0x5422
TIOCGETD, TIOCGSID, FIONCLEX, FIOCLEX, FIOASYNC, FIOQSIZE = 0x5424, 0x5429, 0x5450, 0x5451, 0x5452, 0x5460
TCGETS2, TCSETS2, TCSETSW2, TCSETSF2 = 0x802C542A, 0x402C542B, 0x402C542C, 0x402C542D
TIOCGPTN, TIOCSPTLCK, FIGETBSZ, FS_IOC_GETFLAGS, FS_IOC_SETFLAGS = 0x80045430, 0x40045431, 2, 0x80086601, 0x40086602
TCGETA, TCSETA, TCSETAW, TCSETAF = 0x5405, 0x5406, 0x5407, 0x5408
TERMIOS_SIZE, TERMIOS2_SIZE, WINSIZE_SIZE = 36, 44, 8   # asm-generic/termbits.h, uapi/asm-generic/termios.h
TERMIO_SIZE = 18                                        # struct termio (uapi/asm-generic/termios.h)
PIDFS_IOCTL_MAGIC, PIDFD_GET_INFO_NR, PIDFD_NAMESPACE_NRS = 0xFF, 11, range(1, 11)     # uapi/linux/pidfd.h
NSIO, NS_GET_USERNS, NS_GET_PARENT, NS_GET_NSTYPE, NS_GET_OWNER_UID, NS_GET_MNTNS_ID = 0xB7, 1, 2, 3, 4, 5  # nsfs.h
NS_PID_TRANSLATIONS = range(6, 10)      # NS_GET_{PID,TGID}_{FROM,IN}_PIDNS: the pid is the argument itself
# request -> ("out", n): the host fills n bytes the guest gets; ("in", n): the guest's n bytes go to the host;
# ("value", 0): the argument itself is passed on; ("none", 0): no argument.
_IOCTL_PASS = {
    TCGETS: ("out", TERMIOS_SIZE), TCSETS: ("in", TERMIOS_SIZE), TCSETSW: ("in", TERMIOS_SIZE),
    TCSETSF: ("in", TERMIOS_SIZE), TCGETS2: ("out", TERMIOS2_SIZE), TCSETS2: ("in", TERMIOS2_SIZE),
    TCSETSW2: ("in", TERMIOS2_SIZE), TCSETSF2: ("in", TERMIOS2_SIZE), TCGETA: ("out", TERMIO_SIZE),
    TCSETA: ("in", TERMIO_SIZE), TCSETAW: ("in", TERMIO_SIZE), TCSETAF: ("in", TERMIO_SIZE),
    TIOCGWINSZ: ("out", WINSIZE_SIZE), TIOCSWINSZ: ("in", WINSIZE_SIZE),
    TCSBRK: ("value", 0), TCXONC: ("value", 0), TCFLSH: ("value", 0), TIOCSCTTY: ("value", 0),
    TIOCNOTTY: ("none", 0),
    TIOCGPGRP: ("out", 4), TIOCSPGRP: ("in", 4), TIOCGSID: ("out", 4), TIOCOUTQ: ("out", 4), TIOCGETD: ("out", 4),
    TIOCGPTN: ("out", 4), TIOCSPTLCK: ("in", 4),
    FIONREAD: ("out", 4), FIOQSIZE: ("out", 8), FIGETBSZ: ("out", 4), FS_IOC_GETFLAGS: ("out", 4),
    FS_IOC_SETFLAGS: ("in", 4),
}
# Requests that change the terminal: a background process gets SIGTTOU for them (drivers/tty/tty_io.c tty_ioctl,
# tty_ioctl.c set_termios, n_tty_ioctl_helper).
_TTY_CHANGES = frozenset((TCSETS, TCSETSW, TCSETSF, TCSETS2, TCSETSW2, TCSETSF2, TIOCSPGRP, TCSBRK, TCXONC, TCFLSH,
                          TCSETA, TCSETAW, TCSETAF))
IOCTL_NAMES = {TCGETA: "TCGETA", TCSETA: "TCSETA", TCSETAW: "TCSETAW", TCSETAF: "TCSETAF", TCGETS: "TCGETS", TCSETS: "TCSETS", TCSETSW: "TCSETSW", TCSETSF: "TCSETSF", TCGETS2: "TCGETS2",
               TCSETS2: "TCSETS2", TCSETSW2: "TCSETSW2", TCSETSF2: "TCSETSF2", TIOCGWINSZ: "TIOCGWINSZ",
               TIOCSWINSZ: "TIOCSWINSZ", TCSBRK: "TCSBRK", TCXONC: "TCXONC", TCFLSH: "TCFLSH",
               TIOCSCTTY: "TIOCSCTTY", TIOCNOTTY: "TIOCNOTTY", TIOCGPGRP: "TIOCGPGRP", TIOCSPGRP: "TIOCSPGRP",
               TIOCGSID: "TIOCGSID", TIOCOUTQ: "TIOCOUTQ", TIOCGETD: "TIOCGETD", TIOCGPTN: "TIOCGPTN",
               TIOCSPTLCK: "TIOCSPTLCK", FIONREAD: "FIONREAD", FIOQSIZE: "FIOQSIZE", FIGETBSZ: "FIGETBSZ",
               FS_IOC_GETFLAGS: "FS_IOC_GETFLAGS", FS_IOC_SETFLAGS: "FS_IOC_SETFLAGS", FIONBIO: "FIONBIO", FIOASYNC: "FIOASYNC", FIOCLEX: "FIOCLEX",
               FIONCLEX: "FIONCLEX"}


class IoctlRequest(UInt):
    def show(self, k, value, args) -> str:
        return IOCTL_NAMES.get(value, hex(value))


@syscall("ioctl", PARTIAL, note="terminal requests (TCGETS/TCSETS*, termios2, TIOC[GS]WINSZ, TIOC[GS]PGRP, TIOCGSID, "
                                "TCSBRK/TCXONC/TCFLSH, termio's TCGETA/TCSETA*, ...) and FIONREAD/FIOQSIZE/FIGETBSZ go to "
                                "the host fd, so a tty answers as itself and anything else with ENOTTY; a pidfd's "
                                "PIDFD_GET_INFO and namespace requests and a namespace file's NS_GET_* are the "
                                "host's; FIONBIO/FIOASYNC/FIOCLEX/"
                                "FIONCLEX are handled here. Any other request is ENOTTY and is recorded in "
                                "Kernel.unhandled_ioctls (logged at debug level). A background process changing its "
                                "controlling terminal gets SIGTTOU, as on Linux")
def ioctl(k, fd: Fd, request: IoctlRequest, arg: Ptr) -> int:
    """ioctl(2) (fs/ioctl.c do_vfs_ioctl, then the tty layer for terminals)."""
    of = k.fds.get(fd)
    if of.flags & O_PATH:
        raise SyscallError(EBADF)
    if request == FIOCLEX:
        k.fds.cloexec.add(fd)
        return 0
    if request == FIONCLEX:
        k.fds.cloexec.discard(fd)
        return 0
    if request in (FIONBIO, FIOASYNC):
        on = int.from_bytes(k.mem.read(arg, 4), "little")
        bit = O_NONBLOCK if request == FIONBIO else O_ASYNC
        if of.node is None:
            host_syscall("ioctl", of.host_fd, request, ctypes.c_int(on))
        of.flags = of.flags | bit if on else of.flags & ~bit
        return 0
    how = _IOCTL_PASS.get(request)
    if how is None:
        if (request >> 8) & 0xFF == PIDFS_IOCTL_MAGIC and of.path == "anon_inode:[pidfd]":
            return _pidfd_ioctl(k, of, request, arg)
        if (request >> 8) & 0xFF == NSIO and of.node is None:
            return _ns_ioctl(k, of, request, arg)
        raise SyscallError(ENOTTY)  # what a driver answers to a request it does not know (--strace shows it)
    if request in _TTY_CHANGES and of.kind == "tty":     # from the background: SIGTTOU (tty_check_change)
        from hermipy.syscalls.sys_signal import SIGTTOU, tty_job_control
        tty_job_control(k, of.host_fd, SIGTTOU)
    direction, size = how
    if direction == "value":
        return host_syscall("ioctl", of.host_fd, request, arg)
    if direction == "none":
        return host_syscall("ioctl", of.host_fd, request, 0)
    if direction == "in":
        return _host_struct_call(k, "ioctl", of.host_fd, request, arg, size, False)
    buf = ctypes.create_string_buffer(size)
    result = host_syscall("ioctl", of.host_fd, request, buf)
    k.mem.write(arg, buf.raw)
    return result


def _ns_ioctl(k, of: OpenFile, request: int, arg: int) -> int:
    """ioctl_ns(2) on a namespace file (the host's: /proc/PID/ns links are the host's files): NS_GET_USERNS and
    NS_GET_PARENT give a new fd, NS_GET_NSTYPE a number, NS_GET_OWNER_UID and NS_GET_MNTNS_ID fill the guest's
    word, the pid translations take the pid itself; anything else on a file that is no namespace is ENOTTY."""
    nr = request & 0xFF
    if nr in (NS_GET_USERNS, NS_GET_PARENT):
        from hermipy.syscalls.sys_net import _received_file, install_host_fd
        return install_host_fd(k, _received_file(k, host_syscall("ioctl", of.host_fd, request, 0)), True)
    if nr in (NS_GET_OWNER_UID, NS_GET_MNTNS_ID):
        size = 4 if nr == NS_GET_OWNER_UID else 8
        out = ctypes.create_string_buffer(size)
        result = host_syscall("ioctl", of.host_fd, request, out)
        k.mem.write(arg, out.raw)
        return result
    if nr == NS_GET_NSTYPE or nr in NS_PID_TRANSLATIONS:
        return host_syscall("ioctl", of.host_fd, request, arg)
    raise SyscallError(ENOTTY)


def _pidfd_ioctl(k, of: OpenFile, request: int, arg: int) -> int:
    """pidfs_ioctl() is the host's (guest pids and credentials are the host's): PIDFD_GET_INFO's struct
    pidfd_info in and out (its size from the request), and a namespace fd of the process for the others."""
    nr, size = request & 0xFF, (request >> 16) & 0x3FFF
    if nr == PIDFD_GET_INFO_NR and size:
        buf = ctypes.create_string_buffer(k.mem.read(arg, size), size)
        result = host_syscall("ioctl", of.host_fd, request, buf)
        k.mem.write(arg, buf.raw)
        return result
    if nr in PIDFD_NAMESPACE_NRS and not size:
        from hermipy.syscalls.sys_net import _received_file, install_host_fd
        return install_host_fd(k, _received_file(k, host_syscall("ioctl", of.host_fd, request, 0)), True)
    raise SyscallError(ENOTTY)


# -- pipes ------------------------------------------------------------------------------------------
O_NOTIFICATION_PIPE = O_DIRECT
PIPE_FLAGS = Flags({O_CLOEXEC: "O_CLOEXEC", O_NONBLOCK: "O_NONBLOCK", O_DIRECT: "O_DIRECT"})


@syscall("pipe2", FULL)
def pipe2(k, pipefd: Ptr, flags: PIPE_FLAGS) -> int:
    """pipe2(2): a host pipe; the two guest fds are installed only once the guest's int[2] is written."""
    if flags & ~(O_CLOEXEC | O_NONBLOCK | O_DIRECT):
        raise SyscallError(EINVAL)
    r, w = os.pipe2(O_CLOEXEC | (flags & (O_NONBLOCK | O_DIRECT)))
    name = f"pipe:[{os.fstat(r).st_ino}]"
    files = (OpenFile(r, name, O_RDONLY | (flags & (O_NONBLOCK | O_DIRECT)), "pipe"),
             OpenFile(w, name, O_WRONLY | (flags & (O_NONBLOCK | O_DIRECT)), "pipe"))
    cloexec = bool(flags & O_CLOEXEC)
    installed = []
    try:
        installed.append(k.fds.install(files[0], cloexec))
        installed.append(k.fds.install(files[1], cloexec))
        k.mem.write(pipefd, struct.pack("<ii", *installed))
    except BaseException:
        for fd in installed:
            k.fds.close(fd)
        for f in files:
            if f.refs == 0:
                f.refs = 1
                f.release()
        raise
    return 0


@syscall("pipe", FULL)
def pipe(k, pipefd: Ptr) -> int:
    """pipe(2)."""
    return pipe2(k, pipefd, 0)


# -- copying between files ---------------------------------------------------------------------------
def _read_loff(k, addr: int):
    return ctypes.c_int64(struct.unpack("<q", k.mem.read(addr, 8))[0]) if addr else None


@syscall("sendfile", FULL)
def sendfile(k, out_fd: Fd, in_fd: Fd, offset: Ptr, count: Size) -> int:
    """sendfile(2) between the host files (do_sendfile order: offset copied in, in_fd, out_fd)."""
    pos = _read_loff(k, offset)
    src = k.fds.get(in_fd)
    if not src.readable:
        raise SyscallError(EBADF)
    dst = k.fds.get(out_fd)
    if not dst.writable:
        raise SyscallError(EBADF)
    done = _writing(k, lambda: host_syscall("sendfile", dst.host_fd, src.host_fd, pos, count))
    if done is None:
        return None
    if pos is not None:
        k.mem.write(offset, struct.pack("<q", pos.value))
    return done


@syscall("copy_file_range", FULL)
def copy_file_range(k, fd_in: Fd, off_in: Ptr, fd_out: Fd, off_out: Ptr, length: Size, flags: UInt) -> int:
    """copy_file_range(2) on the host files; offsets are read from and written back to the guest."""
    src, dst = k.fds.get(fd_in), k.fds.get(fd_out)
    pos_in, pos_out = _read_loff(k, off_in), _read_loff(k, off_out)
    if flags:
        raise SyscallError(EINVAL)
    if src.node is not None and not src.readable or dst.node is not None and not dst.writable:
        raise SyscallError(EBADF)                     # synthetic files: the host's memfd would not refuse
    done = host_syscall("copy_file_range", src.host_fd, pos_in, dst.host_fd, pos_out, length, 0)
    if pos_in is not None:
        k.mem.write(off_in, struct.pack("<q", pos_in.value))
    if pos_out is not None:
        k.mem.write(off_out, struct.pack("<q", pos_out.value))
    return done


# -- splice, tee, vmsplice (fs/splice.c) ----------------------------------------------------------------
SPLICE_FLAGS = Flags({1: "SPLICE_F_MOVE", 2: "SPLICE_F_NONBLOCK", 4: "SPLICE_F_MORE", 8: "SPLICE_F_GIFT"})
BAD_HOST_POINTER = 8           # never mapped in hermipy's process (below vm.mmap_min_addr): the host says EFAULT


def _host_fd_of(k, fd: int) -> int:
    """The host fd behind a guest fd, -1 (EBADF from the host, in the host's order of checks) when it is not
    open or is a synthetic file not open for the transfer."""
    of = k.fds.files.get(fd)
    return -1 if of is None else of.host_fd


def _host_loff(k, addr: int):
    """A guest loff_t * for a host call: None for NULL, a host copy of the value, or an address the host cannot
    read when the guest's cannot be (so that EFAULT comes where the host checks it, among its other errors)."""
    if not addr:
        return None
    try:
        return ctypes.c_int64(struct.unpack("<q", k.mem.read(addr, 8))[0])
    except SyscallError:
        return BAD_HOST_POINTER


def _loff_back(k, addr: int, value) -> None:
    if isinstance(value, ctypes.c_int64):
        k.mem.write(addr, struct.pack("<q", value.value))


@syscall("splice", FULL)
def splice(k, fd_in: Fd, off_in: Ptr, fd_out: Fd, off_out: Ptr, len: Size, flags: SPLICE_FLAGS) -> int:
    """splice(2): the host's splice between the host files behind the guest fds, which checks everything as
    Linux does (flags, fds, ESPIPE for an offset on a pipe, EFAULT for an unreadable offset); the offsets are
    copied in and back. A splice that waits on a pipe or socket ends with EINTR when the task is kicked; a
    broken pipe raises SIGPIPE in the guest (the dispatcher's EPIPE)."""
    pos_in, pos_out = _host_loff(k, off_in), _host_loff(k, off_out)
    done = host_syscall("splice", _host_fd_of(k, fd_in), pos_in, _host_fd_of(k, fd_out), pos_out, len, flags)
    _loff_back(k, off_out, pos_out)
    _loff_back(k, off_in, pos_in)
    return done


@syscall("tee", FULL)
def tee(k, fd_in: Fd, fd_out: Fd, len: Size, flags: SPLICE_FLAGS) -> int:
    """tee(2) between the host pipes behind the guest fds (their checks, their waits, kicked as splice's)."""
    return host_syscall("tee", _host_fd_of(k, fd_in), _host_fd_of(k, fd_out), len, flags)


class HostIovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def _host_iovecs(k, segments, write: bool):
    """The guest's buffers as a host iovec array over guest RAM, one entry per page (at most IOV_MAX), up to the
    first unmapped page (EFAULT when that is the first); returns (array, count)."""
    entries = []
    try:
        for base, length in segments:
            while length > 0 and len(entries) < IOV_MAX:
                chunk = min(length, PAGE_SIZE - (base & (PAGE_SIZE - 1)))
                entries.append((k.mem.host_address(base, write), chunk))
                base += chunk
                length -= chunk
    except SyscallError:
        if not entries:
            raise
    return (HostIovec * len(entries))(*entries), len(entries)


@syscall("vmsplice", PARTIAL, note="the host's vmsplice on the guest's own pages; a page the guest unmaps while "
                                   "the pipe still holds it may be reused by hermipy for another mapping before "
                                   "the reader takes it (Linux keeps the page)")
def vmsplice(k, fd: Fd, iov: Ptr, nr_segs: UInt, flags: SPLICE_FLAGS) -> int:
    """vmsplice(2): the host's vmsplice with iovecs pointing at guest RAM (a pipe's write end references the
    pages, its read end copies into them), so blocking, SPLICE_F_NONBLOCK and SIGPIPE are the host's. The
    host is asked first with no buffers only when the guest's iovecs are wrong or empty, so that its errors
    (flags, fd, a file that is no pipe) come first, as vmsplice's order has them."""
    of = k.fds.files.get(fd)
    host_fd = -1 if of is None else of.host_fd
    try:
        segments = import_iovec(k, iov, nr_segs)
    except SyscallError:
        host_syscall("vmsplice", host_fd, 0, 0, flags)
        raise
    if not any(length for _base, length in segments):
        return host_syscall("vmsplice", host_fd, 0, 0, flags)
    into_guest = of is not None and of.readable and not of.writable        # the read end: copied into
    array, count = _host_iovecs(k, segments, into_guest)
    return host_syscall("vmsplice", host_fd, ctypes.addressof(array), count, flags)


FADVICE = Enum({0: "POSIX_FADV_NORMAL", 1: "POSIX_FADV_RANDOM", 2: "POSIX_FADV_SEQUENTIAL",
                3: "POSIX_FADV_WILLNEED", 4: "POSIX_FADV_DONTNEED", 5: "POSIX_FADV_NOREUSE"})


@syscall("fadvise64", FULL)
def fadvise64(k, fd: Fd, offset: Long, length: Long, advice: FADVICE) -> int:
    """posix_fadvise(2): advice about the host file (ESPIPE for pipes, EINVAL for bad advice, from the host)."""
    return host_syscall("fadvise64", k.fds.get(fd).host_fd, offset, length, advice)


@syscall("readahead", FULL)
def readahead(k, fd: Fd, offset: Long, count: Size) -> int:
    """readahead(2) into the host's page cache."""
    of = k.fds.get(fd)
    if not of.readable:
        raise SyscallError(EBADF)
    return host_syscall("readahead", of.host_fd, offset, count)


# -- poll and select ---------------------------------------------------------------------------------
POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLNVAL = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20
POLLRDNORM, POLLRDBAND, POLLWRNORM, POLLWRBAND = 0x40, 0x80, 0x100, 0x200
POLLIN_SET = POLLRDNORM | POLLRDBAND | POLLIN | POLLHUP | POLLERR          # fs/select.c
POLLOUT_SET = POLLWRBAND | POLLWRNORM | POLLOUT | POLLERR
POLLEX_SET = POLLPRI
NSEC = 1_000_000_000


class PollFd(ctypes.Structure):
    _fields_ = [("fd", ctypes.c_int32), ("events", ctypes.c_int16), ("revents", ctypes.c_int16)]


class Timespec(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_int64), ("nsec", ctypes.c_int64)]


def _host_poll(k, wanted: list[tuple[int, int]], timeout) -> list[int]:
    """Poll guest fds on the host: ``wanted`` is [(guest fd, events)], ``timeout`` a Timespec or None
    (forever). Returns each entry's revents (POLLNVAL for a guest fd that is not open, 0 for fd < 0);
    the host updates ``timeout`` to the time left, as ppoll does. A kick interrupts the wait: poll and select
    are never restarted after a handler (do_poll, do_select: ERESTARTNOHAND)."""
    from hermipy.syscalls.kicks import wait
    arr = (PollFd * max(1, len(wanted)))()
    revents = [0] * len(wanted)
    for i, (fd, events) in enumerate(wanted):
        arr[i].fd, arr[i].events = -1, events
        if fd < 0:
            continue
        of = k.fds.files.get(fd)
        if of is None:
            revents[i] = POLLNVAL
        else:
            arr[i].fd = of.host_fd
    if any(revents):
        timeout = Timespec(0, 0)                 # do_poll: something to report already, no waiting
    wait(k, arr, len(wanted), timeout, ERESTARTNOHAND)
    return [r or (arr[i].revents & 0xFFFF) for i, r in enumerate(revents)]


def _nofile(k) -> int:
    from hermipy.syscalls.kernel import RLIM_INFINITY
    return k.proc.rlimits.get(7, [RLIM_INFINITY])[0]


def _poll(k, ufds: int, nfds: int, timeout) -> int:
    """do_sys_poll(): the guest's pollfd array in, revents out; the count of entries with any revents."""
    if nfds > _nofile(k):
        raise SyscallError(EINVAL)
    raw = k.mem.read(ufds, 8 * nfds) if nfds else b""
    entries = [struct.unpack_from("<ihh", raw, 8 * i) for i in range(nfds)]
    revents = _host_poll(k, [(fd, events & 0xFFFF) for fd, events, _ in entries], timeout)
    if nfds:
        k.mem.write(ufds, b"".join(struct.pack("<ihH", fd, events, r)
                                   for (fd, events, _), r in zip(entries, revents)))
    return sum(1 for r in revents if r)


def _timeout_ns(k, addr: int, usec: bool = False):
    """A timespec (or timeval) -> Timespec for the host; None for a NULL pointer; EINVAL when invalid.
    select's timeval is normalised first, with C's truncating division (kern_select)."""
    if not addr:
        return None
    sec, frac = struct.unpack("<qq", k.mem.read(addr, 16))
    if usec:
        whole = abs(frac) // 1_000_000 * (1 if frac >= 0 else -1)
        sec, frac = sec + whole, (frac - whole * 1_000_000) * 1000
    if sec < 0 or not 0 <= frac < NSEC:
        raise SyscallError(EINVAL)
    return Timespec(sec, frac)


def _write_left(k, addr: int, ts, given: bool, usec: bool = False) -> None:
    """poll_select_finish(): the time left goes back to the guest when a non-zero timeout was given, whatever
    the result (EINTR included); a fault writing it is ignored."""
    if not given:
        return
    try:
        k.mem.write(addr, struct.pack("<qq", ts.sec, ts.nsec // 1000 if usec else ts.nsec))
    except SyscallError:
        pass


@syscall("poll", FULL)
def poll(k, fds: Ptr, nfds: UInt, timeout: Int) -> int:
    """poll(2): timeout in milliseconds, negative for none."""
    ts = None if timeout < 0 else Timespec(timeout // 1000, timeout % 1000 * 1_000_000)
    return _poll(k, fds, nfds, ts)


@syscall("ppoll", FULL)
def ppoll(k, fds: Ptr, nfds: UInt, tsp: Ptr, sigmask: Ptr, sigsetsize: Size) -> int:
    """ppoll(2): timespec timeout (updated with the time left) and a temporary signal mask."""
    ts = _timeout_ns(k, tsp)
    given = _nonzero(ts)
    try:
        from hermipy.syscalls.sys_signal import with_temporary_mask
        return with_temporary_mask(k, sigmask, sigsetsize, lambda now: _poll(k, fds, nfds, Timespec(0, 0) if now else ts))
    finally:
        _write_left(k, tsp, ts, given)


def _nonzero(ts) -> bool:
    return ts is not None and bool(ts.sec or ts.nsec)


def _select(k, n: int, inp: int, outp: int, exp: int, timeout) -> int:
    """core_sys_select(): fd_set bitmaps of u64 words in, ready bitmaps out, the count of bits set."""
    if n < 0:
        raise SyscallError(EINVAL)
    n = min(n, k.fds.size)
    nbytes = (n + 63) // 64 * 8
    sets = [int.from_bytes(k.mem.read(addr, nbytes), "little") if addr and nbytes else 0
            for addr in (inp, outp, exp)]
    window = (1 << n) - 1
    sets = [s & window for s in sets]
    wanted = []
    any_bits = sets[0] | sets[1] | sets[2]
    fd = 0
    while any_bits >> fd:
        if any_bits >> fd & 1:
            if fd not in k.fds.files:                 # max_select_fd()
                raise SyscallError(EBADF)
            events = ((POLLIN_SET if sets[0] >> fd & 1 else 0) | (POLLOUT_SET if sets[1] >> fd & 1 else 0)
                      | (POLLEX_SET if sets[2] >> fd & 1 else 0))
            wanted.append((fd, events))
        fd += 1
    revents = _host_poll(k, wanted, timeout)
    ready = [0, 0, 0]
    for (fd, _), r in zip(wanted, revents):
        for i, mask in enumerate((POLLIN_SET, POLLOUT_SET, POLLEX_SET)):
            if sets[i] >> fd & 1 and r & mask:
                ready[i] |= 1 << fd
    for addr, bits in zip((inp, outp, exp), ready):
        if addr and nbytes:
            k.mem.write(addr, bits.to_bytes(nbytes, "little"))
    return sum(bin(b).count("1") for b in ready)


@syscall("select", FULL)
def select(k, nfds: Int, readfds: Ptr, writefds: Ptr, exceptfds: Ptr, timeout: Ptr) -> int:
    """select(2): struct timeval timeout, updated with the time left (Linux does)."""
    ts = _timeout_ns(k, timeout, usec=True)
    given = _nonzero(ts)
    try:
        return _select(k, nfds, readfds, writefds, exceptfds, ts)
    finally:
        _write_left(k, timeout, ts, given, usec=True)


@syscall("pselect6", FULL)
def pselect6(k, nfds: Int, readfds: Ptr, writefds: Ptr, exceptfds: Ptr, timeout: Ptr, sig: Ptr) -> int:
    """pselect6: the sixth argument points at {const sigset_t *ss; size_t ss_len}."""
    sigmask, sigsetsize = struct.unpack("<QQ", k.mem.read(sig, 16)) if sig else (0, 0)
    ts = _timeout_ns(k, timeout)
    given = _nonzero(ts)
    try:
        from hermipy.syscalls.sys_signal import with_temporary_mask
        return with_temporary_mask(k, sigmask, sigsetsize,
                             lambda now: _select(k, nfds, readfds, writefds, exceptfds, Timespec(0, 0) if now else ts))
    finally:
        _write_left(k, timeout, ts, given)


# -- page-cache statistics --------------------------------------------------------------------------
CACHESTAT_RANGE_SIZE, CACHESTAT_SIZE = 16, 40       # struct cachestat_range, struct cachestat (uapi/linux/mman.h)


@syscall("cachestat", FULL)
def cachestat(k, fd: Fd, cstat_range: Ptr, cstat: Ptr, flags: UInt) -> int:
    """cachestat(2) (6.5): the host's page-cache counts for the host file (fd first, then the flags, then the
    range; a bad range pointer reaches the host as NULL, which reports EFAULT)."""
    of = k.fds.get(fd)
    try:
        span = ctypes.create_string_buffer(k.mem.read(cstat_range, CACHESTAT_RANGE_SIZE), CACHESTAT_RANGE_SIZE)
    except SyscallError:
        span = None
    out = ctypes.create_string_buffer(CACHESTAT_SIZE)
    result = host_syscall("cachestat", of.host_fd, span, out, flags)
    k.mem.write(cstat, out.raw)
    return result
