"""Extended attributes (fs/xattr.c, xattr(7)): the host file's own attributes, passed through.

The path is resolved in the guest's view (``k.fs``); name and value buffers are copied and the host
syscall is made on the host path or fd (under ``--root``, the /proc/self/fd/N magic link of an O_PATH fd
of the walked entry: no xattr call takes an O_PATH fd before Linux 6.13's *xattrat), so size queries (size 0), ERANGE, E2BIG, XATTR_CREATE/REPLACE
and the namespaces' permission rules (user., trusted., security.) are the host kernel's. Synthetic
files (procfs nodes) support none (EOPNOTSUPP, an empty list), like /proc; the host files shown in a confined
guest's /dev and /proc (vfs.Target.bound) are read-only bind mounts: set and remove are EROFS, after the checks
of the name, value and flags. The name is checked before the path is looked up, as Linux 6.13+
does (path_getxattrat); for the fd calls the fd comes first.
"""
import ctypes
from contextlib import contextmanager
from errno import E2BIG, EFAULT, EINVAL, EOPNOTSUPP, ERANGE, EROFS

from hermipy.syscalls.argtypes import AT_FDCWD, Fd, Flags, InBuf, Path, Ptr, Size
from hermipy.syscalls.errors import SyscallError
from hermipy.syscalls.files import O_PATH
from hermipy.syscalls.host import host_syscall
from hermipy.syscalls.sys_fs import _existing, _path, lookup
from hermipy.syscalls.table import FULL, syscall
from hermipy.syscalls.vfs import own_open_file

XATTR_NAME_MAX, XATTR_SIZE_MAX, XATTR_LIST_MAX = 255, 65536, 65536     # uapi/linux/limits.h
XATTR_FLAGS = Flags({1: "XATTR_CREATE", 2: "XATTR_REPLACE"})
READ_ONLY = object()        # where a change would go: a file under a read-only bind (EROFS)


def _name(k, addr: int) -> bytes:
    """import_xattr_name(): strncpy_from_user of at most XATTR_NAME_MAX + 1 bytes; empty or longer: ERANGE."""
    if not addr:
        raise SyscallError(EFAULT)
    raw = k.mem.read_cstr(addr, XATTR_NAME_MAX + 1)
    if not raw or len(raw) > XATTR_NAME_MAX:
        raise SyscallError(ERANGE)
    return raw


@contextmanager
def _target(k, pathname: int, follow: bool, call: str):
    """(call, path) for a path-based call: the call itself or its l-variant on the host path, the following
    call on a magic link; (call, None) for a synthetic file."""
    t = _existing(lookup(k, AT_FDCWD, _path(k, pathname), follow))
    if not t.on_host:
        yield call, None
        return
    if t.bound and call in ("setxattr", "removexattr"):
        yield call, READ_ONLY
        return
    if call in ("setxattr", "removexattr"):
        t.own()
    with t.pinned(follow) as (path, follows):
        yield (call if follows else "l" + call), path


def _host_fd(k, fd: int, changing: bool = False):
    """Where an fd call goes: the host fd, None for a synthetic file, READ_ONLY for a change to a file opened
    through a read-only bind (an O_PATH fd: the host's EBADF); an image file is copied up first."""
    of = k.fds.get(fd)
    if of.node is not None:
        return None
    if changing and of.bound and not of.flags & O_PATH:
        return READ_ONLY
    if changing:
        own_open_file(of)
    return of.host_fd


def _get(k, call: str, where, name: bytes, value: int, size: int) -> int:
    if where is None:
        raise SyscallError(EOPNOTSUPP)
    size = min(size, XATTR_SIZE_MAX)
    buf = ctypes.create_string_buffer(max(size, 1))
    n = host_syscall(call, where, name, buf, size)
    if size:
        k.mem.write(value, buf.raw[:n])
    return n


def _set(k, call: str, where, name: bytes, value: int, size: int, flags: int) -> int:
    if where is None:
        raise SyscallError(EOPNOTSUPP)
    if where is READ_ONLY:
        if size > XATTR_SIZE_MAX:                               # setxattr_copy() comes first
            raise SyscallError(E2BIG)
        raise SyscallError(EROFS)
    data = k.mem.read(value, size) if 0 < size <= XATTR_SIZE_MAX else b""
    return host_syscall(call, where, name, ctypes.create_string_buffer(data, max(len(data), 1)), size, flags)


def _list(k, call: str, where, out: int, size: int) -> int:
    if where is None:
        return 0                                          # no attributes: an empty list
    size = min(size, XATTR_LIST_MAX)
    buf = ctypes.create_string_buffer(max(size, 1))
    n = host_syscall(call, where, buf, size)
    if size:
        k.mem.write(out, buf.raw[:n])
    return n


def _remove(call: str, where, name: bytes) -> int:
    if where is None:
        raise SyscallError(EOPNOTSUPP)
    if where is READ_ONLY:
        raise SyscallError(EROFS)
    return host_syscall(call, where, name)


@syscall("getxattr", FULL)
def getxattr(k, pathname: Path, name: Path, value: Ptr, size: Size) -> int:
    """getxattr(2): size 0 asks for the value's length."""
    attr = _name(k, name)
    with _target(k, pathname, True, "getxattr") as (call, where):
        return _get(k, call, where, attr, value, size)


@syscall("lgetxattr", FULL)
def lgetxattr(k, pathname: Path, name: Path, value: Ptr, size: Size) -> int:
    """lgetxattr(2): the link itself."""
    attr = _name(k, name)
    with _target(k, pathname, False, "getxattr") as (call, where):
        return _get(k, call, where, attr, value, size)


@syscall("fgetxattr", FULL)
def fgetxattr(k, fd: Fd, name: Path, value: Ptr, size: Size) -> int:
    """fgetxattr(2): the name is read before the fd is looked at."""
    attr = _name(k, name)
    return _get(k, "fgetxattr", _host_fd(k, fd), attr, value, size)


@syscall("setxattr", FULL)
def setxattr(k, pathname: Path, name: Path, value: InBuf(3), size: Size, flags: XATTR_FLAGS) -> int:
    """setxattr(2): the flags, then the name, then the path (setxattr_copy() comes first)."""
    _check_set_flags(flags)
    attr = _name(k, name)
    if size > XATTR_SIZE_MAX:                     # setxattr_copy(): E2BIG before the path
        raise SyscallError(E2BIG)
    with _target(k, pathname, True, "setxattr") as (call, where):
        return _set(k, call, where, attr, value, size, flags)


@syscall("lsetxattr", FULL)
def lsetxattr(k, pathname: Path, name: Path, value: InBuf(3), size: Size, flags: XATTR_FLAGS) -> int:
    """lsetxattr(2)."""
    _check_set_flags(flags)
    attr = _name(k, name)
    if size > XATTR_SIZE_MAX:                     # setxattr_copy(): E2BIG before the path
        raise SyscallError(E2BIG)
    with _target(k, pathname, False, "setxattr") as (call, where):
        return _set(k, call, where, attr, value, size, flags)


@syscall("fsetxattr", FULL)
def fsetxattr(k, fd: Fd, name: Path, value: InBuf(3), size: Size, flags: XATTR_FLAGS) -> int:
    """fsetxattr(2): the flags, the name, then the fd."""
    _check_set_flags(flags)
    attr = _name(k, name)
    return _set(k, "fsetxattr", _host_fd(k, fd, changing=True), attr, value, size, flags)


def _check_set_flags(flags: int) -> None:
    """setxattr_copy(): only XATTR_CREATE and XATTR_REPLACE, before anything is read."""
    if flags & ~3:
        raise SyscallError(EINVAL)


@syscall("listxattr", FULL)
def listxattr(k, pathname: Path, list: Ptr, size: Size) -> int:
    """listxattr(2): NUL-separated names; size 0 asks for the length."""
    with _target(k, pathname, True, "listxattr") as (call, where):
        return _list(k, call, where, list, size)


@syscall("llistxattr", FULL)
def llistxattr(k, pathname: Path, list: Ptr, size: Size) -> int:
    """llistxattr(2)."""
    with _target(k, pathname, False, "listxattr") as (call, where):
        return _list(k, call, where, list, size)


@syscall("flistxattr", FULL)
def flistxattr(k, fd: Fd, list: Ptr, size: Size) -> int:
    """flistxattr(2)."""
    return _list(k, "flistxattr", _host_fd(k, fd), list, size)


@syscall("removexattr", FULL)
def removexattr(k, pathname: Path, name: Path) -> int:
    """removexattr(2)."""
    attr = _name(k, name)
    with _target(k, pathname, True, "removexattr") as (call, where):
        return _remove(call, where, attr)


@syscall("lremovexattr", FULL)
def lremovexattr(k, pathname: Path, name: Path) -> int:
    """lremovexattr(2)."""
    attr = _name(k, name)
    with _target(k, pathname, False, "removexattr") as (call, where):
        return _remove(call, where, attr)


@syscall("fremovexattr", FULL)
def fremovexattr(k, fd: Fd, name: Path) -> int:
    """fremovexattr(2): the name is read before the fd is looked at."""
    attr = _name(k, name)
    return _remove("fremovexattr", _host_fd(k, fd, changing=True), attr)
