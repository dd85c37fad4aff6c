"""Extended attributes (fs/xattr.c, xattr(7)): the host file's own attributes, passed through.

The path is resolved in the guest's view (``k.fs``); name and value buffers are copied and the host
syscall is made on the host path or fd, so size queries (size 0), ERANGE, E2BIG, XATTR_CREATE/REPLACE
and the namespaces' permission rules (user., trusted., security.) are the host kernel's. Synthetic
files (procfs nodes) support none (EOPNOTSUPP, an empty list), like /proc. The name is checked before the path is looked up, as Linux 6.13+
does (path_getxattrat); for the fd calls the fd comes first.
"""
import ctypes
import os
from errno import EFAULT, EOPNOTSUPP, ERANGE

from hermipy.syscalls.argtypes import AT_FDCWD, Fd, Flags, InBuf, Path, Ptr, Size
from hermipy.syscalls.errors import SyscallError
from hermipy.syscalls.sys_fs import _existing, _path, host_syscall, lookup
from hermipy.syscalls.table import FULL, syscall

XATTR_NAME_MAX, XATTR_SIZE_MAX, XATTR_LIST_MAX = 255, 65536, 65536     # uapi/linux/limits.h
XATTR_FLAGS = Flags({1: "XATTR_CREATE", 2: "XATTR_REPLACE"})


def _name(k, addr: int) -> bytes:
    """import_xattr_name(): strncpy_from_user of at most XATTR_NAME_MAX + 1 bytes; empty or longer: ERANGE."""
    if not addr:
        raise SyscallError(EFAULT)
    raw = k.mem.read_cstr(addr, XATTR_NAME_MAX + 1)
    if not raw or len(raw) > XATTR_NAME_MAX:
        raise SyscallError(ERANGE)
    return raw


def _target(k, pathname: int, follow: bool):
    """The host path (bytes) of a path-based call's file, None for a synthetic one."""
    t = _existing(lookup(k, AT_FDCWD, _path(k, pathname), follow))
    return os.fsencode(t.host) if t.node is None and t.host else None


def _host_fd(k, fd: int) -> int | None:
    of = k.fds.get(fd)
    return of.host_fd if of.node is None else None


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
    return host_syscall(call, where, name)


@syscall("getxattr", FULL)
def getxattr(k, pathname: Path, name: Path, value: Ptr, size: Size) -> int:
    """getxattr(2): size 0 asks for the value's length."""
    attr = _name(k, name)
    return _get(k, "getxattr", _target(k, pathname, True), attr, value, size)


@syscall("lgetxattr", FULL)
def lgetxattr(k, pathname: Path, name: Path, value: Ptr, size: Size) -> int:
    """lgetxattr(2): the link itself."""
    attr = _name(k, name)
    return _get(k, "lgetxattr", _target(k, pathname, False), attr, value, size)


@syscall("fgetxattr", FULL)
def fgetxattr(k, fd: Fd, name: Path, value: Ptr, size: Size) -> int:
    """fgetxattr(2)."""
    where = _host_fd(k, fd)
    return _get(k, "fgetxattr", where, _name(k, name), value, size)


@syscall("setxattr", FULL)
def setxattr(k, pathname: Path, name: Path, value: InBuf(3), size: Size, flags: XATTR_FLAGS) -> int:
    """setxattr(2)."""
    attr = _name(k, name)
    return _set(k, "setxattr", _target(k, pathname, True), attr, value, size, flags)


@syscall("lsetxattr", FULL)
def lsetxattr(k, pathname: Path, name: Path, value: InBuf(3), size: Size, flags: XATTR_FLAGS) -> int:
    """lsetxattr(2)."""
    attr = _name(k, name)
    return _set(k, "lsetxattr", _target(k, pathname, False), attr, value, size, flags)


@syscall("fsetxattr", FULL)
def fsetxattr(k, fd: Fd, name: Path, value: InBuf(3), size: Size, flags: XATTR_FLAGS) -> int:
    """fsetxattr(2)."""
    where = _host_fd(k, fd)
    return _set(k, "fsetxattr", where, _name(k, name), value, size, flags)


@syscall("listxattr", FULL)
def listxattr(k, pathname: Path, list: Ptr, size: Size) -> int:
    """listxattr(2): NUL-separated names; size 0 asks for the length."""
    return _list(k, "listxattr", _target(k, pathname, True), list, size)


@syscall("llistxattr", FULL)
def llistxattr(k, pathname: Path, list: Ptr, size: Size) -> int:
    """llistxattr(2)."""
    return _list(k, "llistxattr", _target(k, pathname, False), list, size)


@syscall("flistxattr", FULL)
def flistxattr(k, fd: Fd, list: Ptr, size: Size) -> int:
    """flistxattr(2)."""
    return _list(k, "flistxattr", _host_fd(k, fd), list, size)


@syscall("removexattr", FULL)
def removexattr(k, pathname: Path, name: Path) -> int:
    """removexattr(2)."""
    attr = _name(k, name)
    return _remove("removexattr", _target(k, pathname, True), attr)


@syscall("lremovexattr", FULL)
def lremovexattr(k, pathname: Path, name: Path) -> int:
    """lremovexattr(2)."""
    attr = _name(k, name)
    return _remove("lremovexattr", _target(k, pathname, False), attr)


@syscall("fremovexattr", FULL)
def fremovexattr(k, fd: Fd, name: Path) -> int:
    """fremovexattr(2)."""
    where = _host_fd(k, fd)
    return _remove("fremovexattr", where, _name(k, name))
