"""Reading and writing file descriptors: read, write, their vectored and positional forms, lseek,
close, dup*, fcntl, ioctl, pipes, sendfile, copy_file_range (fs/read_write.c, fs/fcntl.c, fs/pipe.c)."""
import os
import struct
from errno import EBADF, EINVAL, ENOTTY, ESPIPE

from hermipy.syscalls.argtypes import WHENCE, Fd, InBuf, Int, Long, Ptr, Size, UInt
from hermipy.syscalls.errors import SyscallError
from hermipy.syscalls.table import FULL, PARTIAL, syscall

IOV_MAX = 1024
MAX_RW_COUNT = 0x7FFFF000          # include/linux/fs.h: one read/write moves at most this much


def _readable(k, fd: int):
    of = k.fds.get(fd)
    if not of.readable:
        raise SyscallError(EBADF)
    return of


def _writable(k, fd: int):
    of = k.fds.get(fd)
    if not of.writable:
        raise SyscallError(EBADF)
    return of


def read_iovec(k, iov: int, iovcnt: int) -> list[tuple[int, int]]:
    """struct iovec[iovcnt] -> [(base, len)] (include/uapi/linux/uio.h)."""
    if iovcnt < 0 or iovcnt > IOV_MAX:
        raise SyscallError(EINVAL)
    raw = k.mem.read(iov, 16 * iovcnt)
    return [struct.unpack_from("<QQ", raw, 16 * i) for i in range(iovcnt)]


@syscall("read", FULL)
def read(k, fd: Fd, buf: Ptr, count: Size) -> int:
    """read(2)."""
    of = _readable(k, fd)
    if of.dir_entries is not None or of.kind == "dir":
        raise SyscallError(21)    # EISDIR
    count = min(count, MAX_RW_COUNT)
    if count == 0:
        return 0
    if count <= 65536:
        data = os.read(of.host_fd, count)
        k.mem.write(buf, data)
        return len(data)
    return os.readv(of.host_fd, k.mem.writable_views(buf, count))


@syscall("write", FULL)
def write(k, fd: Fd, buf: InBuf(2), count: Size) -> int:
    """write(2)."""
    of = _writable(k, fd)
    count = min(count, MAX_RW_COUNT)
    return os.write(of.host_fd, k.mem.read(buf, count))


@syscall("readv", FULL)
def readv(k, fd: Fd, iov: Ptr, iovcnt: Int) -> int:
    """readv(2)."""
    of = _readable(k, fd)
    views = [v for base, length in read_iovec(k, iov, iovcnt) if length for v in k.mem.writable_views(base, length)]
    return os.readv(of.host_fd, views) if views else 0


@syscall("writev", FULL)
def writev(k, fd: Fd, iov: Ptr, iovcnt: Int) -> int:
    """writev(2)."""
    of = _writable(k, fd)
    chunks = [k.mem.read(base, length) for base, length in read_iovec(k, iov, iovcnt) if length]
    return os.writev(of.host_fd, chunks) if chunks else 0


@syscall("pread64", FULL)
def pread64(k, fd: Fd, buf: Ptr, count: Size, offset: Long) -> int:
    """pread(2)."""
    of = _readable(k, fd)
    if offset < 0:
        raise SyscallError(EINVAL)
    data = os.pread(of.host_fd, min(count, MAX_RW_COUNT), offset)
    k.mem.write(buf, data)
    return len(data)


@syscall("pwrite64", FULL)
def pwrite64(k, fd: Fd, buf: InBuf(2), count: Size, offset: Long) -> int:
    """pwrite(2)."""
    of = _writable(k, fd)
    if offset < 0:
        raise SyscallError(EINVAL)
    return os.pwrite(of.host_fd, k.mem.read(buf, min(count, MAX_RW_COUNT)), offset)


@syscall("preadv", FULL)
def preadv(k, fd: Fd, iov: Ptr, iovcnt: Int, offset: Long) -> int:
    """preadv(2) (pos_l carries the whole 64-bit offset on x86-64)."""
    of = _readable(k, fd)
    if offset < 0:
        raise SyscallError(EINVAL)
    views = [v for base, length in read_iovec(k, iov, iovcnt) if length for v in k.mem.writable_views(base, length)]
    return os.preadv(of.host_fd, views, offset) if views else 0


@syscall("pwritev", FULL)
def pwritev(k, fd: Fd, iov: Ptr, iovcnt: Int, offset: Long) -> int:
    """pwritev(2)."""
    of = _writable(k, fd)
    if offset < 0:
        raise SyscallError(EINVAL)
    chunks = [k.mem.read(base, length) for base, length in read_iovec(k, iov, iovcnt) if length]
    return os.pwritev(of.host_fd, chunks, offset) if chunks else 0


@syscall("lseek", FULL)
def lseek(k, fd: Fd, offset: Long, whence: WHENCE) -> int:
    """lseek(2)."""
    of = k.fds.get(fd)
    if of.dir_entries is not None:
        if whence != 0 or offset < 0:
            raise SyscallError(EINVAL)
        of.dir_pos = offset
        return offset
    if of.kind in ("pipe", "socket", "tty") and of.kind != "tty":
        raise SyscallError(ESPIPE)
    return os.lseek(of.host_fd, offset, whence)


@syscall("close", FULL)
def close(k, fd: Fd) -> int:
    """close(2)."""
    k.fds.close(fd)
    return 0
