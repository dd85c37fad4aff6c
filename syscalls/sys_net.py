"""Sockets as host passthrough (net/socket.c, net/compat.c's native half, net/core/scm.c, net/unix/af_unix.c).

The guest's socket is a real host socket: an ``OpenFile`` of kind "socket" wrapping a host fd, so read, write,
close, fcntl, poll, select and dup (sys_io) work on it unchanged. Socket calls are made as raw host syscalls
(ctypes, the same x86-64 ABI) with the guest's bytes: a sockaddr, an option value or ancillary data is copied
verbatim between guest memory and the host, so every address family behaves as the host kernel makes it.
Three things are translated:

- AF_UNIX path names go through the guest's file-system view (``k.fs``): ``--root`` confinement holds, and a
  relative name is resolved against the guest's cwd. Names coming back (getsockname, accept, recvfrom) read as
  the guest gave them. Abstract names (a leading NUL) pass unchanged.
- SCM_RIGHTS carries guest fds out as host fds and installs received host fds in the guest's table.
- SOCK_CLOEXEC / MSG_CMSG_CLOEXEC belong to the guest's fd table; host fds are always close-on-exec.

A send that fails with EPIPE raises SIGPIPE in the guest unless MSG_NOSIGNAL is given (hermipy's own process
ignores SIGPIPE, as CPython does). Netlink sockets are opened with no effective capabilities, so the host
kernel refuses every request that would change its configuration (they are read-only; see ``socket``).
"""
import ctypes
import os
import struct
import threading
import time as _time
from errno import EACCES, EINVAL, EMSGSIZE, ENAMETOOLONG, ENOBUFS, ENOENT, ENOTSOCK, EPIPE
from select import POLLIN, POLLOUT

from hermipy.syscalls.argtypes import AT_FDCWD, Enum, Flags, Int, Ptr, Size, UInt, quote
from hermipy.syscalls.errors import ERESTARTSYS, SyscallError
from hermipy.syscalls.files import O_NONBLOCK, O_RDWR, OpenFile, host_kind
from hermipy.syscalls.host import host_call, host_syscall
from hermipy.syscalls.kicks import STOP_SENSITIVE, WouldBlock, interrupted
from hermipy.syscalls.sys_fs import lookup
from hermipy.syscalls.sys_io import MAX_RW_COUNT, access_ok, ready_now
from hermipy.syscalls.table import FULL, PARTIAL, syscall

AF_UNIX, AF_INET, AF_INET6, AF_NETLINK = 1, 2, 10, 16
SOCK_NONBLOCK, SOCK_CLOEXEC = 0o4000, 0o2000000
SOL_SOCKET = 1
SO_RCVTIMEO, SO_SNDTIMEO = 20, 21         # the _OLD names: a struct timeval (asm-generic/socket.h)
SCM_RIGHTS, SCM_CREDENTIALS = 1, 2
SO_ATTACH_FILTER, SO_ATTACH_BPF, SO_ATTACH_REUSEPORT_CBPF, SO_ATTACH_REUSEPORT_EBPF = 26, 50, 51, 52
SO_PEERPIDFD = 77
SO_TYPE, SOCK_STREAM = 3, 1
MSG_DONTWAIT, MSG_NOSIGNAL, MSG_WAITFORONE, MSG_CMSG_CLOEXEC = 0x40, 0x4000, 0x10000, 0x40000000
MSG_OOB, MSG_PEEK, MSG_CTRUNC = 0x1, 0x2, 0x8
SIGPIPE = 13

SOCKADDR_STORAGE = 128            # sizeof(struct sockaddr_storage): the most any address takes
SUN_PATH_OFFSET = 2               # offsetof(struct sockaddr_un, sun_path)
SOCKADDR_UN_SIZE = 110            # sizeof(struct sockaddr_un)
UIO_MAXIOV = 1024
INT_MAX = 0x7FFFFFFF
MAX_COPY = 1 << 22                # one receive moves at most this much through hermipy (a short read is legal)
MAX_OPTLEN = 1 << 20              # getsockopt buffers larger than this are passed as this

MSGHDR = struct.Struct("<QiiQQQQi4x")     # struct user_msghdr (include/linux/socket.h): 56 bytes
MMSGHDR_SIZE = MSGHDR.size + 8            # struct mmsghdr: msghdr + unsigned msg_len (+ padding)
CMSGHDR = struct.Struct("<Qii")           # struct cmsghdr: size_t cmsg_len, int level, int type
IOVEC = struct.Struct("<QQ")


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_int), ("iov", ctypes.c_void_p),
                ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


# -- argument types (strace) ----------------------------------------------------------------------
FAMILIES = {0: "AF_UNSPEC", 1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK", 17: "AF_PACKET"}
FAMILY = Enum(FAMILIES)
SOCK_TYPE = Flags({SOCK_NONBLOCK: "SOCK_NONBLOCK", SOCK_CLOEXEC: "SOCK_CLOEXEC"},
                  low_bits_enum={1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW", 4: "SOCK_RDM",
                                 5: "SOCK_SEQPACKET", 10: "SOCK_PACKET"}, low_mask=0xF)
ACCEPT_FLAGS = Flags({SOCK_NONBLOCK: "SOCK_NONBLOCK", SOCK_CLOEXEC: "SOCK_CLOEXEC"})
MSG_FLAGS = Flags({0x1: "MSG_OOB", 0x2: "MSG_PEEK", 0x4: "MSG_DONTROUTE", 0x8: "MSG_CTRUNC", 0x20: "MSG_TRUNC",
                   0x40: "MSG_DONTWAIT", 0x80: "MSG_EOR", 0x100: "MSG_WAITALL", 0x800: "MSG_CONFIRM",
                   0x2000: "MSG_ERRQUEUE", 0x4000: "MSG_NOSIGNAL", 0x8000: "MSG_MORE",
                   0x10000: "MSG_WAITFORONE", 0x20000000: "MSG_FASTOPEN", 0x40000000: "MSG_CMSG_CLOEXEC"})
SHUT_HOW = Enum({0: "SHUT_RD", 1: "SHUT_WR", 2: "SHUT_RDWR"})
SOL_LEVEL = Enum({0: "SOL_IP", 1: "SOL_SOCKET", 6: "SOL_TCP", 17: "SOL_UDP", 41: "SOL_IPV6"})


def show_sockaddr(data: bytes) -> str:
    """A sockaddr as strace prints it (the families hermipy's tests meet; others by family name)."""
    if len(data) < 2:
        return "{}"
    family = struct.unpack_from("<H", data)[0]
    name = FAMILIES.get(family, str(family))
    if family == AF_UNIX and len(data) > 2:
        path = data[2:]
        if path[:1] == b"\0":
            return f"{{sa_family={name}, sun_path=@{quote(path[1:])}}}"
        return f"{{sa_family={name}, sun_path={quote(path.partition(bytes(1))[0])}}}"
    if family == AF_INET and len(data) >= 8:
        port = struct.unpack_from(">H", data, 2)[0]
        return f'{{sa_family={name}, sin_port=htons({port}), sin_addr=inet_addr("{".".join(map(str, data[4:8]))}")}}'
    if family == AF_INET6 and len(data) >= 24:
        import ipaddress
        port = struct.unpack_from(">H", data, 2)[0]
        return f'{{sa_family={name}, sin6_port=htons({port}), sin6_addr="{ipaddress.IPv6Address(data[8:24])}"}}'
    return f"{{sa_family={name}}}"


class SockAddr(Ptr):
    """A sockaddr the guest hands in, whose length is argument ``len_arg``."""

    def __init__(self, len_arg: int):
        self.len_arg = len_arg

    def show(self, k, value, args) -> str:
        if not value:
            return "NULL"
        try:
            return show_sockaddr(k.mem.read(value, min(args[self.len_arg] & 0xFFFFFFFF, SOCKADDR_STORAGE)))
        except Exception:
            return hex(value)


# -- host calls with raw buffers ------------------------------------------------------------------
def _buf(data: bytes | int):
    """A ctypes buffer (its address is what host calls take) holding ``data`` or ``data`` zero bytes."""
    return ctypes.create_string_buffer(data, len(data)) if isinstance(data, (bytes, bytearray)) \
        else ctypes.create_string_buffer(max(data, 1))


def _addr(buf) -> int:
    return ctypes.addressof(buf) if buf is not None else 0


def _host_socket_file(k, host_fd: int, nonblock: bool, cloexec: bool) -> int:
    """Install a new host socket in the guest's fd table (closing it if the table is full). Its name is the host's,
    socket:[inode] (OpenFile.path)."""
    return install_host_fd(k, OpenFile(host_fd, None, O_RDWR | (O_NONBLOCK if nonblock else 0), "socket"), cloexec)


def install_host_fd(k, of: OpenFile, cloexec: bool) -> int:
    """k.fds.install that closes the host fd when no guest fd can be had (EMFILE)."""
    try:
        return k.fds.install(of, cloexec)
    except SyscallError:
        os.close(of.host_fd)
        raise


def _received_file(k, host_fd: int) -> OpenFile:
    """An OpenFile for a host fd that arrived from elsewhere (SCM_RIGHTS, SO_PEERPIDFD)."""
    import fcntl
    try:
        path = k.fs.to_guest(os.readlink(f"/proc/self/fd/{host_fd}"))
    except OSError:
        path = f"/proc/self/fd/{host_fd}"
    flags = fcntl.fcntl(host_fd, fcntl.F_GETFL) & ~0o2000000
    return OpenFile(host_fd, path, flags, host_kind(host_fd))


# -- addresses ------------------------------------------------------------------------------------
def _unix_names(k) -> dict[bytes, bytes]:
    """Host sun_path -> the guest's name for it, for every AF_UNIX name hermipy translated at bind."""
    names = getattr(k, "unix_names", None)
    if names is None:
        names = k.unix_names = {}
    return names


def _unix_host_path(k, path: bytes, follow: bool) -> tuple[bytes, int]:
    """sun_path for the host: (path, fd to close afterwards or -1).

    A host path is passed when the host may walk it (unconfined, or a synthetic name's host file); one too long
    for sun_path is reached through /proc/self/fd/N/NAME with N an O_PATH fd of its directory. Under --root the
    host must walk no path (a concurrent rename could lead it outside), and sockaddr_un has no directory fd:
    bind names NAME in the directory the walk holds, /proc/self/fd/N/NAME (bind never follows its last name),
    and connect or sendto reach the socket file through the magic link of an O_PATH fd of it,
    /proc/self/fd/N."""
    if not k.fs.confined and (path.startswith(b"/") or k.fs.cwd == os.getcwd()):
        return path, -1                               # the host resolves it exactly as the guest means it
    t = lookup(k, AT_FDCWD, os.fsdecode(path), follow)
    if not t.on_host:
        raise SyscallError(EACCES if t.node is not None else ENOENT)
    if t.dirfd is not None:
        if t.slash and not follow:
            raise SyscallError(ENOENT)                # filename_create(): a trailing slash names no socket
        fd = t.opath() if follow else os.dup(t.dirfd)
        host = b"/proc/self/fd/%d" % fd if follow else b"/proc/self/fd/%d/%s" % (fd, os.fsencode(t.name))
        if len(host) >= SOCKADDR_UN_SIZE - SUN_PATH_OFFSET:
            os.close(fd)
            raise SyscallError(ENAMETOOLONG)
        return host, fd
    host = os.fsencode(t.host)
    if len(host) < SOCKADDR_UN_SIZE - SUN_PATH_OFFSET:
        return host, -1
    head, _, name = host.rstrip(b"/").rpartition(b"/")
    dirfd = os.open(head or b"/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return b"/proc/self/fd/%d/%s" % (dirfd, name), dirfd


class HostAddr:
    """A guest sockaddr made ready for the host: ``buf``/``len`` to pass, and an fd (of the directory or the
    socket file a /proc/self/fd path names) to close after."""

    __slots__ = ("buf", "len", "held_fd")

    def __init__(self, data: bytes, length: int, held_fd: int = -1):
        self.buf = _buf(data.ljust(SOCKADDR_STORAGE, b"\0")) if data or length else None
        self.len, self.held_fd = length, held_fd

    def close(self) -> None:
        if self.held_fd >= 0:
            os.close(self.held_fd)
            self.held_fd = -1


def address_in(k, addr: int, addrlen: int, follow: bool = True, bind: bool = False) -> HostAddr:
    """move_addr_to_kernel() plus the AF_UNIX path translation (``follow``: connect follows a symlink,
    bind names the link itself)."""
    if addrlen < 0 or addrlen > SOCKADDR_STORAGE:
        raise SyscallError(EINVAL)
    data = k.mem.read(addr, addrlen) if addrlen else b""
    if (addrlen <= SUN_PATH_OFFSET or addrlen > SOCKADDR_UN_SIZE or struct.unpack_from("<H", data)[0] != AF_UNIX
            or data[SUN_PATH_OFFSET] == 0):
        return HostAddr(data, addrlen)                # not a path name: the host sees the guest's bytes
    path = data[SUN_PATH_OFFSET:].split(b"\0")[0]
    host, held_fd = _unix_host_path(k, path, follow)
    if host == path:
        return HostAddr(data, addrlen)
    if bind:
        _unix_names(k)[host] = path
    return HostAddr(data[:SUN_PATH_OFFSET] + host + b"\0", SUN_PATH_OFFSET + len(host) + 1, held_fd)


def guest_address(k, data: bytes) -> bytes:
    """A sockaddr from the host as the guest should see it (AF_UNIX path names translated back)."""
    if len(data) <= SUN_PATH_OFFSET or struct.unpack_from("<H", data)[0] != AF_UNIX or data[SUN_PATH_OFFSET] == 0:
        return data
    path = data[SUN_PATH_OFFSET:].split(b"\0")[0]
    guest = _unix_names(k).get(path)
    if guest is None:
        if not k.fs.confined:
            return data
        guest = os.fsencode(k.fs.to_guest(os.fsdecode(path)))
    return data[:SUN_PATH_OFFSET] + guest + b"\0"


def address_out(k, data: bytes, uaddr: int, ulen_ptr: int) -> None:
    """move_addr_to_user(): copy at most *ulen bytes, then store the full length in *ulen."""
    data = guest_address(k, data)
    ulen = struct.unpack("<i", k.mem.read(ulen_ptr, 4))[0]
    if ulen < 0:
        raise SyscallError(EINVAL)
    n = min(ulen, len(data))
    if n:
        k.mem.write(uaddr, data[:n])
    k.mem.write(ulen_ptr, struct.pack("<i", len(data)))


class AddrOut:
    """A host buffer for an address the host writes back (getsockname, accept, recvfrom)."""

    __slots__ = ("buf", "len")

    def __init__(self):
        self.buf = _buf(SOCKADDR_STORAGE)
        self.len = ctypes.c_int(SOCKADDR_STORAGE)

    @property
    def data(self) -> bytes:
        return self.buf.raw[:min(self.len.value, SOCKADDR_STORAGE)]

    @property
    def len_addr(self) -> int:
        return ctypes.addressof(self.len)


class _ThreadBuffers(threading.local):
    """The host buffers a receive reuses, one set per host thread: each guest task runs on a thread of its own, and
    threads receive at the same time (the host call leaves the GIL)."""

    def __init__(self):
        self.data = ctypes.create_string_buffer(65536)
        self.address = AddrOut()


_buffers = _ThreadBuffers()


def _receive_buffer(size: int):
    """This thread's receive buffer, grown to ``size``."""
    buffers = _buffers
    if ctypes.sizeof(buffers.data) < size:
        buffers.data = ctypes.create_string_buffer(size)
    return buffers.data


def _address_buffer() -> AddrOut:
    """This thread's buffer for an address the host writes back, its length reset."""
    out = _buffers.address
    out.len.value = SOCKADDR_STORAGE
    return out


# -- SIGPIPE --------------------------------------------------------------------------------------
def _sending(k, flags: int, send):
    """Run a send; EPIPE raises SIGPIPE in the guest unless MSG_NOSIGNAL (net/socket.c, sk_stream_error)."""
    try:
        return send()
    except OSError as err:
        if err.errno != EPIPE or flags & MSG_NOSIGNAL:
            raise
    from hermipy.syscalls.host_signals import take_raised
    from hermipy.syscalls.sys_signal import SI_USER, _finish, make_siginfo
    take_raised(SIGPIPE)                   # the host's own, for hermipy's send: the guest gets this one
    k.signals.send(SIGPIPE, make_siginfo(SIGPIPE, SI_USER, pid=k.proc.pid, uid=k.proc.uid))
    result = _finish(k, -EPIPE)
    if result is not None:
        raise SyscallError(EPIPE)
    return None


# -- blocking calls ---------------------------------------------------------------------------------
def timeout_of(host_fd: int, option: int):
    """The socket's SO_RCVTIMEO or SO_SNDTIMEO as a host Timespec; None when it has none (waits forever)."""
    from hermipy.syscalls.sys_io import Timespec
    value, length = _buf(16), ctypes.c_uint32(16)
    host_syscall("getsockopt", host_fd, SOL_SOCKET, option, _addr(value), ctypes.addressof(length))
    sec, usec = struct.unpack("<qq", value.raw)
    return Timespec(sec, usec * 1000) if sec or usec else None


def blocking_call(k, option: int, name: str, host_fd: int, *args) -> int:
    """Task ``k``'s host socket call ``name`` on ``host_fd``, which may block. A kick interrupts it (EINTR from the
    host): it restarts after a handler with SA_RESTART, unless the socket has a timeout for it (``option``:
    SO_RCVTIMEO or SO_SNDTIMEO): then it fails with EINTR whenever a signal is to be delivered, and after a stop
    of the process, which ends the host call too (sock_intr_errno; signal(7)). Served in exitless mode, a call that
    would wait goes to an exit instead (kicks.WouldBlock): the guest spins meanwhile."""
    if k.serving_exitless:
        if not ready_now(host_fd, POLLIN if option == SO_RCVTIMEO else POLLOUT):
            raise WouldBlock()
        return host_call(name, host_fd, *args)      # ready, or non-blocking: it neither waits nor stops
    started = STOP_SENSITIVE[k] = _time.monotonic()
    try:
        return host_call(name, host_fd, *args)
    except InterruptedError:
        if timeout_of(host_fd, option):
            raise interrupted(started) from None
        raise SyscallError(ERESTARTSYS) from None
    finally:
        STOP_SENSITIVE.pop(k, None)


# -- socket, socketpair -----------------------------------------------------------------------------
def _without_capabilities(create):
    """Run ``create`` with an empty effective capability set: the file it opens keeps those credentials,
    and netlink checks them (netlink_ns_capable uses file->f_cred), so the socket can only read."""
    header = _buf(struct.pack("<Ii", 0x20080522, 0))     # _LINUX_CAPABILITY_VERSION_3, this thread
    data = _buf(24)
    host_syscall("capget", header, data)
    saved = _buf(data.raw)
    lowered = bytearray(data.raw)
    lowered[0:4] = lowered[12:16] = bytes(4)             # effective, both 32-bit words
    host_syscall("capset", header, _buf(bytes(lowered)))
    try:
        return create()
    finally:
        host_syscall("capset", header, saved)


@syscall("socket", PARTIAL, note="host sockets of every family; AF_NETLINK ones are read-only (requests that "
                                 "change the host's configuration get EPERM)")
def socket(k, domain: FAMILY, type: SOCK_TYPE, protocol: Int) -> int:
    """socket(2)."""
    create = lambda: host_syscall("socket", domain, (type & ~SOCK_CLOEXEC) | SOCK_CLOEXEC, protocol)  # noqa: E731
    host = _without_capabilities(create) if domain == AF_NETLINK else create()
    return _host_socket_file(k, host, bool(type & SOCK_NONBLOCK), bool(type & SOCK_CLOEXEC))


@syscall("socketpair", FULL)
def socketpair(k, domain: FAMILY, type: SOCK_TYPE, protocol: Int, sv: Ptr) -> int:
    """socketpair(2): __sys_socketpair's order: the type's flags (EINVAL), the fds written (EFAULT), then the
    sockets made; a failure after that closes them again."""
    if type & ~0xF & ~(SOCK_CLOEXEC | SOCK_NONBLOCK):
        raise SyscallError(EINVAL)
    k.mem.write(sv, bytes(8))
    pair = (ctypes.c_int * 2)()
    host_syscall("socketpair", domain, (type & ~SOCK_CLOEXEC) | SOCK_CLOEXEC, protocol, ctypes.addressof(pair))
    nonblock, cloexec = bool(type & SOCK_NONBLOCK), bool(type & SOCK_CLOEXEC)
    try:
        first = _host_socket_file(k, pair[0], nonblock, cloexec)
    except SyscallError:
        os.close(pair[1])
        raise
    try:
        second = _host_socket_file(k, pair[1], nonblock, cloexec)
    except SyscallError:
        k.fds.close(first)
        raise
    try:
        k.mem.write(sv, struct.pack("<ii", first, second))
    except SyscallError:
        k.fds.close(first)
        k.fds.close(second)
        raise
    return 0


def _socket_file(k, fd: int):
    """sockfd_lookup_light(): the open file of a socket fd (EBADF, then ENOTSOCK), before any argument is read."""
    of = k.fds.get(fd)
    if of.kind != "socket":
        raise SyscallError(ENOTSOCK)
    return of


MSG_CMSG_COMPAT = 0x80000000


def _check_msg_flags(flags: int) -> None:
    """The *msg calls refuse MSG_CMSG_COMPAT from a 64-bit caller first of all (EINVAL)."""
    if flags & MSG_CMSG_COMPAT:
        raise SyscallError(EINVAL)


# -- naming and connecting ----------------------------------------------------------------------------
@syscall("bind", FULL)
def bind(k, fd: Int, addr: SockAddr(2), addrlen: Int) -> int:
    """bind(2); an AF_UNIX path is created where the guest's view puts it."""
    of = _socket_file(k, fd)
    a = address_in(k, addr, addrlen, follow=False, bind=True)
    try:
        return host_syscall("bind", of.host_fd, _addr(a.buf), a.len)
    finally:
        a.close()


@syscall("connect", FULL)
def connect(k, fd: Int, addr: SockAddr(2), addrlen: Int) -> int:
    """connect(2) (blocks on the host as the guest's would; EINPROGRESS when nonblocking)."""
    of = k.fds.get(fd)
    a = address_in(k, addr, addrlen)
    try:
        return blocking_call(k, SO_SNDTIMEO, "connect", of.host_fd, _addr(a.buf), a.len)
    finally:
        a.close()


@syscall("listen", FULL)
def listen(k, fd: Int, backlog: Int) -> int:
    """listen(2)."""
    return host_syscall("listen", k.fds.get(fd).host_fd, backlog)


def _accept(k, fd: int, upeer: int, upeer_len: int, flags: int) -> int:
    of = k.fds.get(fd)
    out = _address_buffer() if upeer else None
    host = blocking_call(k, SO_RCVTIMEO, "accept4", of.host_fd, _addr(out.buf) if out else 0,
                         out.len_addr if out else 0, (flags & ~SOCK_CLOEXEC) | SOCK_CLOEXEC)
    if out is not None:
        try:
            address_out(k, out.data, upeer, upeer_len)
        except SyscallError:
            os.close(host)                     # do_accept(): the connection is dropped with the file
            raise
    return _host_socket_file(k, host, bool(flags & SOCK_NONBLOCK), bool(flags & SOCK_CLOEXEC))


@syscall("accept", FULL)
def accept(k, fd: Int, upeer_sockaddr: Ptr, upeer_addrlen: Ptr) -> int:
    """accept(2)."""
    return _accept(k, fd, upeer_sockaddr, upeer_addrlen, 0)


@syscall("accept4", FULL)
def accept4(k, fd: Int, upeer_sockaddr: Ptr, upeer_addrlen: Ptr, flags: ACCEPT_FLAGS) -> int:
    """accept4(2): SOCK_NONBLOCK goes to the host socket, SOCK_CLOEXEC to the guest's fd."""
    return _accept(k, fd, upeer_sockaddr, upeer_addrlen, flags)


def _getname(k, name: str, fd: int, usockaddr: int, usockaddr_len: int) -> int:
    of = k.fds.get(fd)
    out = _address_buffer()
    host_syscall(name, of.host_fd, _addr(out.buf), out.len_addr)
    address_out(k, out.data, usockaddr, usockaddr_len)
    return 0


@syscall("getsockname", FULL)
def getsockname(k, fd: Int, usockaddr: Ptr, usockaddr_len: Ptr) -> int:
    """getsockname(2)."""
    return _getname(k, "getsockname", fd, usockaddr, usockaddr_len)


@syscall("getpeername", FULL)
def getpeername(k, fd: Int, usockaddr: Ptr, usockaddr_len: Ptr) -> int:
    """getpeername(2)."""
    return _getname(k, "getpeername", fd, usockaddr, usockaddr_len)


@syscall("shutdown", FULL)
def shutdown(k, fd: Int, how: SHUT_HOW) -> int:
    """shutdown(2)."""
    return host_syscall("shutdown", k.fds.get(fd).host_fd, how)


# -- data ---------------------------------------------------------------------------------------------
@syscall("sendto", FULL)
def sendto(k, fd: Int, buff: Ptr, len: Size, flags: MSG_FLAGS, addr: SockAddr(5), addr_len: Int) -> int:
    """sendto(2) (and send(3)): the guest's bytes and address go to the host socket. import_ubuf()'s access_ok
    comes before the fd."""
    access_ok(buff, min(len, MAX_RW_COUNT))
    of = _socket_file(k, fd)
    data = _buf(k.mem.read(buff, min(len, INT_MAX)))
    a = address_in(k, addr, addr_len) if addr else None
    try:
        return _sending(k, flags, lambda: blocking_call(k, SO_SNDTIMEO, "sendto", of.host_fd, _addr(data),
                                                        min(len, INT_MAX), flags, _addr(a.buf) if a else 0,
                                                        a.len if a else 0))
    finally:
        if a is not None:
            a.close()


@syscall("recvfrom", FULL)
def recvfrom(k, fd: Int, ubuf: Ptr, size: Size, flags: MSG_FLAGS, addr: Ptr, addr_len: Ptr) -> int:
    """recvfrom(2) (and recv(3)): import_ubuf()'s access_ok comes before the fd."""
    access_ok(ubuf, min(size, MAX_RW_COUNT))
    of = _socket_file(k, fd)
    size = min(size, INT_MAX)
    out = _address_buffer() if addr else None
    dest = k.mem.span(ubuf, size, True)
    if dest is not None:                      # within one page of guest RAM: the host receives into it
        n = blocking_call(k, SO_RCVTIMEO, "recvfrom", of.host_fd, dest, size, flags,
                          _addr(out.buf) if out else 0, out.len_addr if out else 0)
    else:
        buf = _receive_buffer(min(size, MAX_COPY))
        if not flags & MSG_PEEK and not k.mem.accessible(ubuf, size, True) and _is_stream(of):
            # A stream keeps what it could not copy (tcp_recvmsg: EFAULT, nothing taken): look at it first.
            n = blocking_call(k, SO_RCVTIMEO, "recvfrom", of.host_fd, _addr(buf), min(size, MAX_COPY),
                              flags | MSG_PEEK, 0, 0)
            if n:
                k.mem.write(ubuf, ctypes.string_at(buf, min(n, size, MAX_COPY)))
            size = max(n, 1)
        n = blocking_call(k, SO_RCVTIMEO, "recvfrom", of.host_fd, _addr(buf), min(size, MAX_COPY), flags,
                          _addr(out.buf) if out else 0, out.len_addr if out else 0)
        if n:
            k.mem.write(ubuf, ctypes.string_at(buf, min(n, size, MAX_COPY)))
    if out is not None:
        address_out(k, out.data, addr, addr_len)
    return n


def _is_stream(of) -> bool:
    """Whether the socket is a SOCK_STREAM one (SO_TYPE)."""
    value, length = ctypes.c_int(0), ctypes.c_uint32(4)
    host_syscall("getsockopt", of.host_fd, SOL_SOCKET, SO_TYPE, ctypes.addressof(value), ctypes.addressof(length))
    return value.value == SOCK_STREAM


def _read_iovecs(k, iov: int, iovlen: int) -> list[tuple[int, int]]:
    if iovlen > UIO_MAXIOV:
        raise SyscallError(EMSGSIZE)
    raw = k.mem.read(iov, IOVEC.size * iovlen) if iovlen else b""
    vecs = [IOVEC.unpack_from(raw, IOVEC.size * i) for i in range(iovlen)]
    total = 0
    for _base, length in vecs:
        if length > INT_MAX:
            raise SyscallError(EINVAL)
        total += length
    return vecs


def _cmsgs(control: bytes):
    """(offset, level, type, data offset, data length) for each cmsghdr (CMSG_FIRSTHDR/CMSG_NXTHDR)."""
    off = 0
    while off + CMSGHDR.size <= len(control):
        length, level, type_ = CMSGHDR.unpack_from(control, off)
        if length < CMSGHDR.size or off + length > len(control):
            return
        yield off, level, type_, off + CMSGHDR.size, length - CMSGHDR.size
        off += (length + 7) & ~7


def _control_to_host(k, control: bytes) -> bytes:
    """The guest's ancillary data with each SCM_RIGHTS guest fd replaced by its host fd."""
    out = bytearray(control)
    for _off, level, type_, data, length in _cmsgs(control):
        if level == SOL_SOCKET and type_ == SCM_RIGHTS:
            for i in range(data, data + length // 4 * 4, 4):
                guest_fd = struct.unpack_from("<i", control, i)[0]
                struct.pack_into("<i", out, i, k.fds.get(guest_fd).host_fd)
    return bytes(out)


def _control_to_guest(k, control: bytearray, cloexec: bool) -> int:
    """Install each received host fd in the guest's table (in place); MSG_CTRUNC when the table is full."""
    flags = 0
    for _off, level, type_, data, length in _cmsgs(bytes(control)):
        if level == SOL_SOCKET and type_ == SCM_RIGHTS:
            for i in range(data, data + length // 4 * 4, 4):
                host_fd = struct.unpack_from("<i", control, i)[0]
                try:
                    guest_fd = install_host_fd(k, _received_file(k, host_fd), cloexec)
                except SyscallError:
                    guest_fd = -1
                    flags |= MSG_CTRUNC
                struct.pack_into("<i", control, i, guest_fd)
    return flags


class _Msg:
    """One guest struct user_msghdr made into a host struct msghdr (buffers kept alive here)."""

    def __init__(self, k, addr: int, receiving: bool):
        (self.name, self.namelen, _pad, iov, iovlen, self.control, self.controllen,
         self.flags) = MSGHDR.unpack(k.mem.read(addr, MSGHDR.size))
        if not self.name:
            self.namelen = 0
        if self.namelen < 0:
            raise SyscallError(EINVAL)
        if self.controllen > INT_MAX:
            raise SyscallError(ENOBUFS)
        self.vecs = _read_iovecs(k, iov, iovlen)
        self.addr, self.hostaddr, self.out = addr, None, None
        host = self.host = _Msghdr()
        total = sum(length for _b, length in self.vecs)
        if receiving:
            self.size = min(total, MAX_COPY)
            self.data = _receive_buffer(self.size)
            if self.name:
                self.out = _address_buffer()
                host.name, host.namelen = _addr(self.out.buf), SOCKADDR_STORAGE
            self.control_buf = _buf(self.controllen) if self.control and self.controllen else None
        else:
            self.size = total
            self.data = _buf(b"".join(k.mem.read(b, n) for b, n in self.vecs if n))
            if self.name:
                self.hostaddr = address_in(k, self.name, min(self.namelen, SOCKADDR_STORAGE))
                host.name, host.namelen = _addr(self.hostaddr.buf), self.hostaddr.len
            control = k.mem.read(self.control, self.controllen) if self.controllen else b""
            self.control_buf = _buf(_control_to_host(k, control)) if control else None
        self.iov = _Iovec(_addr(self.data), self.size)
        host.iov, host.iovlen = ctypes.addressof(self.iov), 1
        if self.control_buf is not None:
            host.control, host.controllen = _addr(self.control_buf), self.controllen

    def close(self) -> None:
        if self.hostaddr is not None:
            self.hostaddr.close()

    def deliver(self, k, n: int, flags: int) -> None:
        """Scatter ``n`` received bytes over the guest's iovecs and write back name, control and flags."""
        data = ctypes.string_at(self.data, min(n, self.size))
        for base, length in self.vecs:
            if not data:
                break
            k.mem.write(base, data[:length])
            data = data[length:]
        host = self.host
        if self.out is not None:
            address_out(k, self.out.data[:host.namelen], self.name, self.addr + 8)
        used = host.controllen if self.control_buf is not None else 0
        msg_flags = (host.flags & ~MSG_CMSG_CLOEXEC) | (flags & MSG_CMSG_CLOEXEC)   # as ____sys_recvmsg sets it
        if used:
            control = bytearray(self.control_buf.raw[:used])
            msg_flags |= _control_to_guest(k, control, bool(flags & MSG_CMSG_CLOEXEC))
            k.mem.write(self.control, bytes(control))
        k.mem.write(self.addr + 40, struct.pack("<Q", used))
        k.mem.write(self.addr + 48, struct.pack("<i", msg_flags))


def _sendmsg(k, of: OpenFile, msg: int, flags: int) -> int:
    m = _Msg(k, msg, receiving=False)
    try:
        return _sending(k, flags, lambda: blocking_call(k, SO_SNDTIMEO, "sendmsg", of.host_fd,
                                                        ctypes.addressof(m.host), flags))
    finally:
        m.close()


def _recvmsg(k, of: OpenFile, msg: int, flags: int) -> int:
    m = _Msg(k, msg, receiving=True)
    n = blocking_call(k, SO_RCVTIMEO, "recvmsg", of.host_fd, ctypes.addressof(m.host), flags | MSG_CMSG_CLOEXEC)
    m.deliver(k, n, flags)
    return n


@syscall("sendmsg", FULL)
def sendmsg(k, fd: Int, msg: Ptr, flags: MSG_FLAGS) -> int:
    """sendmsg(2): iovecs gathered, SCM_RIGHTS fds translated, other ancillary data (SCM_CREDENTIALS) verbatim."""
    _check_msg_flags(flags)
    return _sendmsg(k, _socket_file(k, fd), msg, flags)


@syscall("recvmsg", FULL)
def recvmsg(k, fd: Int, msg: Ptr, flags: MSG_FLAGS) -> int:
    """recvmsg(2): received fds are installed in the guest's table (close-on-exec with MSG_CMSG_CLOEXEC)."""
    _check_msg_flags(flags)
    return _recvmsg(k, _socket_file(k, fd), msg, flags)


@syscall("sendmmsg", FULL)
def sendmmsg(k, fd: Int, mmsg: Ptr, vlen: UInt, flags: MSG_FLAGS) -> int:
    """sendmmsg(2): one sendmsg per entry; an error after the first datagram ends the batch early."""
    _check_msg_flags(flags)
    of = _socket_file(k, fd)
    vlen = min(vlen, UIO_MAXIOV)
    sent = 0
    while sent < vlen:
        entry = mmsg + MMSGHDR_SIZE * sent
        try:
            n = _sendmsg(k, of, entry, flags)
        except (SyscallError, OSError):
            if sent:
                break
            raise
        if n is None:                          # SIGPIPE delivered: the frame already holds -EPIPE
            return None
        k.mem.write(entry + MSGHDR.size, struct.pack("<I", n))
        sent += 1
    return sent


@syscall("recvmmsg", PARTIAL, note="an error after the first datagram ends the batch but is not kept for the "
                                   "next call (Linux stores it in sk_err)")
def recvmmsg(k, fd: Int, mmsg: Ptr, vlen: UInt, flags: MSG_FLAGS, timeout: Ptr) -> int:
    """recvmmsg(2) (__sys_recvmmsg, do_recvmmsg): the timeout is read and checked before the fd, and bounds
    the batch only between datagrams (a receive that blocks is not cut short); what is left of it goes back
    to the guest when a datagram came. MSG_WAITFORONE turns on MSG_DONTWAIT after the first datagram; out of
    band data ends the batch."""
    _check_msg_flags(flags)
    deadline = None
    if timeout:                            # get_timespec64(), then poll_select_set_timeout()'s check
        sec, nsec = struct.unpack("<qq", k.mem.read(timeout, 16))
        if sec < 0 or not 0 <= nsec < 1_000_000_000:
            raise SyscallError(EINVAL)
        deadline = _time.monotonic_ns() + sec * 1_000_000_000 + nsec
    of = k.fds.get(fd)
    if of.kind != "socket":                # sockfd_lookup_light()
        raise SyscallError(ENOTSOCK)
    vlen = min(vlen, UIO_MAXIOV)
    got = left = 0
    while got < vlen:
        entry = mmsg + MMSGHDR_SIZE * got
        try:
            n = _recvmsg(k, of, entry, flags & ~MSG_WAITFORONE)
        except (SyscallError, OSError):
            if got:
                break
            raise
        k.mem.write(entry + MSGHDR.size, struct.pack("<I", n))
        got += 1
        if flags & MSG_WAITFORONE:
            flags |= MSG_DONTWAIT
        if deadline is not None:
            left = max(deadline - _time.monotonic_ns(), 0)
            if left == 0:
                break
        if struct.unpack("<i", k.mem.read(entry + 48, 4))[0] & MSG_OOB:
            break
    if got and deadline is not None:
        k.mem.write(timeout, struct.pack("<qq", *divmod(left, 1_000_000_000)))
    return got


# -- options --------------------------------------------------------------------------------------------
def _option_to_host(k, level: int, optname: int, value: bytes) -> tuple[bytes, list]:
    """Option values that carry a guest pointer or fd, made into host ones (the rest go verbatim)."""
    if level != SOL_SOCKET:
        return value, []
    if optname in (SO_ATTACH_FILTER, SO_ATTACH_REUSEPORT_CBPF) and len(value) >= 16:
        count, filt = struct.unpack_from("<H6xQ", value)          # struct sock_fprog
        program = _buf(k.mem.read(filt, 8 * count))               # struct sock_filter[count]
        return struct.pack("<H6xQ", count, _addr(program)) + value[16:], [program]
    if optname in (SO_ATTACH_BPF, SO_ATTACH_REUSEPORT_EBPF) and len(value) >= 4:
        prog_fd = struct.unpack_from("<i", value)[0]
        return struct.pack("<i", k.fds.get(prog_fd).host_fd) + value[4:], []
    return value, []


@syscall("setsockopt", FULL)
def setsockopt(k, fd: Int, level: SOL_LEVEL, optname: Int, optval: Ptr, optlen: Int) -> int:
    """setsockopt(2): the option bytes go to the host (socket filters' programs and BPF fds translated)."""
    of = _socket_file(k, fd)
    if optlen < 0:
        raise SyscallError(EINVAL)
    value = k.mem.read(optval, optlen) if optlen else b""
    value, keep = _option_to_host(k, level, optname, value)
    buf = _buf(value) if value else None
    return host_syscall("setsockopt", of.host_fd, level, optname, _addr(buf), len(value) if buf else optlen)


@syscall("getsockopt", FULL)
def getsockopt(k, fd: Int, level: SOL_LEVEL, optname: Int, optval: Ptr, optlen: Ptr) -> int:
    """getsockopt(2): the host fills a buffer as large as the guest's; the length comes back either way."""
    of = _socket_file(k, fd)
    ulen = struct.unpack("<i", k.mem.read(optlen, 4))[0]
    size = min(ulen, MAX_OPTLEN)                # a negative length goes to the host, which orders the checks
    buf = _buf(size)
    length = ctypes.c_int(size)
    try:
        host_syscall("getsockopt", of.host_fd, level, optname, _addr(buf), ctypes.addressof(length))
    except OSError:
        if length.value != size:               # e.g. SO_PEERGROUPS: ERANGE with the length it needs
            k.mem.write(optlen, struct.pack("<i", length.value))
        raise
    value = bytearray(buf.raw[:max(0, min(length.value, size))])
    if level == SOL_SOCKET and optname == SO_PEERPIDFD and len(value) >= 4:
        host_fd = struct.unpack_from("<i", value)[0]
        struct.pack_into("<i", value, 0, install_host_fd(k, _received_file(k, host_fd), True))
    if value:
        k.mem.write(optval, bytes(value))
    k.mem.write(optlen, struct.pack("<i", length.value))
    return 0
