"""host_call, the raw host syscall of the hot handlers: through hermipy._hostcall (the optional C helper that
setup.py builds) and through ctypes (where it is not built), the same results and the same errors."""
import ctypes
import errno
import os

import pytest

from hermipy.syscalls import host


def test_the_c_helper_is_built():
    """pip install builds it wherever a C compiler is (CI installs one): the suite runs the fast path."""
    from hermipy import _hostcall
    assert host.host_call is not host.ctypes_host_call or os.environ.get("HERMIPY_CTYPES_ONLY")
    assert _hostcall.syscall(39) == os.getpid()                     # getpid


@pytest.mark.parametrize("call", ["c", "ctypes"])
def test_results_and_errors(call, tmp_path):
    if call == "c":
        from hermipy._hostcall import syscall
        do = lambda name, *args: syscall(host.NUMBERS[name], *args)   # noqa: E731
    else:
        do = host.ctypes_host_call
    assert do("getppid") == os.getppid()
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    name = ctypes.create_string_buffer(os.fsencode(path))
    fd = do("openat", -100, ctypes.addressof(name), os.O_RDONLY | os.O_CLOEXEC, 0)   # AT_FDCWD: a negative int
    try:
        buf = ctypes.create_string_buffer(4)
        assert do("pread64", fd, ctypes.addressof(buf), 4, 3) == 4 and buf.raw == b"3456"
        stat = ctypes.create_string_buffer(144)
        assert do("fstat", fd, ctypes.addressof(stat)) == 0
        assert int.from_bytes(stat.raw[8:16], "little") == os.fstat(fd).st_ino
    finally:
        os.close(fd)
    with pytest.raises(OSError) as failed:
        do("fstat", fd, ctypes.addressof(stat))
    assert failed.type is OSError and failed.value.errno == errno.EBADF and failed.value.strerror == os.strerror(errno.EBADF)
    with pytest.raises(FileNotFoundError):
        do("openat", -100, ctypes.addressof(ctypes.create_string_buffer(b"/nonexistent")), 0, 0)
    with pytest.raises(OSError):
        do("close", -1)
