"""Raw host system calls through libc's ``syscall(3)``, for the places where passing the guest's request to the
host kernel unchanged gives exactly the native answer (clocks, sleeps, fcntl locks, tty ioctls, the file system
walk's *at calls).

``host_syscall`` arguments: ints (passed as C longs), None (NULL), bytes and ctypes arrays (a pointer to their
first byte), ``ctypes.byref`` objects and ctypes pointer values (c_char_p, c_void_p: passed as they are), and
other ctypes objects, structures and scalars, passed by reference. ``host_call`` takes ints only (addresses
included) and is the fast path. A failure raises ``OSError`` with the host's errno, which the dispatcher turns
into the guest's -errno (host and guest are both x86-64 Linux, so numbers and errnos agree).
"""
import ctypes
import os

from hermipy.syscalls.table import NUMBERS

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_PASSED_AS_THEY_ARE = (bytes, ctypes.Array, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_wchar_p,
                       type(ctypes.byref(ctypes.c_int())))      # the last: what ctypes.byref returns
_BY_REFERENCE = (ctypes.Structure, ctypes.Union, ctypes._SimpleCData)


def _argument(value):
    if isinstance(value, int):
        return ctypes.c_long(value)
    if value is None or isinstance(value, _PASSED_AS_THEY_ARE):
        return value
    if isinstance(value, _BY_REFERENCE):
        return ctypes.byref(value)
    raise TypeError(f"host_syscall: cannot pass {type(value).__name__}")


def host_syscall(name: str, *args) -> int:
    """syscall(NUMBERS[name], *args) on the host; returns the result or raises OSError(errno)."""
    result = _libc.syscall(ctypes.c_long(NUMBERS[name]), *[_argument(a) for a in args])
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


# syscall(3) with a fixed prototype per number of arguments (0-6): ctypes converts each declared argument, ~75 ns
# apiece, so a 2-argument call through a 7-argument prototype would pay for 5 it does not pass.
_CALLS = tuple(ctypes.CFUNCTYPE(ctypes.c_long, *[ctypes.c_long] * (count + 1), use_errno=True)(("syscall", _libc))
               for count in range(7))


def ctypes_host_call(name: str, *args: int) -> int:
    """host_call through ctypes (where hermipy._hostcall could not be built)."""
    result = _CALLS[len(args)](NUMBERS[name], *args)
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


try:
    from hermipy._hostcall import syscall as _syscall
except ImportError:                       # not built (no C compiler at install): ctypes
    _syscall = None

if _syscall is None or os.environ.get("HERMIPY_CTYPES_ONLY"):
    host_call = ctypes_host_call
else:
    def host_call(name: str, *args: int) -> int:
        """host_syscall for arguments that are all ints (addresses included), through hermipy._hostcall: ~0.3 µs
        a call, where ctypes_host_call costs ~1 µs and host_syscall, which converts each argument, more."""
        return _syscall(NUMBERS[name], *args)
