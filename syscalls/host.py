"""Raw host system calls through libc's ``syscall(3)``, for the few places where passing the guest's request
to the host kernel unchanged gives exactly the native answer (clocks, sleeps, fcntl locks, tty ioctls).

Arguments are ints (passed as C longs) or ctypes objects (buffers, passed by reference). A failure raises
``OSError`` with the host's errno, which the dispatcher turns into the guest's -errno (host and guest are both
x86-64 Linux, so numbers and errnos agree).
"""
import ctypes
import os

from hermipy.syscalls.table import NUMBERS

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def host_syscall(name: str, *args) -> int:
    """syscall(NUMBERS[name], *args) on the host; returns the result or raises OSError(errno)."""
    converted = [ctypes.c_long(a) if isinstance(a, int) else
                 (ctypes.c_void_p(None) if a is None else ctypes.byref(a)) for a in args]
    result = _libc.syscall(ctypes.c_long(NUMBERS[name]), *converted)
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
