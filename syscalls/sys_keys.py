"""The kernel key retention service: add_key, request_key, keyctl (security/keys/, keyctl(2), keyrings(7)).

Keys and keyrings are the host kernel's, reached through the host's own calls: a guest process is a host
process carrying the guest's credentials (sys_info binds them), so its thread, process, session and user
keyrings, key permissions, quotas and the possessor rule are exactly what the host gives that process natively
-- shared with the user hermipy runs as, under --root too (as the network is). hermipy copies the guest's
strings and buffers in and out; each keyctl operation's arguments are described once in ``KEYCTL_ARGS``.
"""
import ctypes
import struct
from errno import EFAULT, EINVAL, EOPNOTSUPP

from hermipy.syscalls.argtypes import Enum, Int, Long, Path, Ptr, Size
from hermipy.syscalls.errors import SyscallError
from hermipy.syscalls.host import host_syscall
from hermipy.syscalls.table import FULL, PARTIAL, syscall

KEY_TYPE_MAX = 32                        # key_get_type_from_user: a type name of 31 bytes at most
KEY_DESC_MAX = 4096                      # strndup_user(_description, KEY_MAX_DESC_SIZE)
PAYLOAD_MAX = 1024 * 1024 - 1            # add_key: plen above is E2BIG, as the host checks it
IOVEC = struct.Struct("<QQ")
DH_PARAMS = struct.Struct("<iii")        # struct keyctl_dh_params: private, prime, base key ids

# keyctl operations (uapi/linux/keyctl.h) -> what each of arg2..arg5 is:
#   "i" an integer passed on; "s" a C string (NULL stays NULL); "in N" a buffer the host reads, of the length in
#   argument N; "out N" a buffer the host fills, of the length in argument N (the result says how much it holds).
KEYCTL_ARGS = {
    0: ("i", "i"),                       # GET_KEYRING_ID
    1: ("s",),                           # JOIN_SESSION_KEYRING
    2: ("i", "in 4", "i"),               # UPDATE
    3: ("i",), 4: ("i", "i", "i"), 5: ("i", "i"),            # REVOKE, CHOWN, SETPERM
    6: ("i", "out 4", "i"),              # DESCRIBE
    7: ("i",), 8: ("i", "i"), 9: ("i", "i"),                  # CLEAR, LINK, UNLINK
    10: ("i", "s", "s", "i"),            # SEARCH
    11: ("i", "out 4", "i"),             # READ
    12: ("i", "in 4", "i", "i"),         # INSTANTIATE
    13: ("i", "i", "i"),                 # NEGATE
    14: ("i",), 15: ("i", "i"), 16: ("i",),                   # SET_REQKEY_KEYRING, SET_TIMEOUT, ASSUME_AUTHORITY
    17: ("i", "out 4", "i"),             # GET_SECURITY
    18: (),                              # SESSION_TO_PARENT
    19: ("i", "i", "i", "i"),            # REJECT
    21: ("i",), 22: ("i", "i"),          # INVALIDATE, GET_PERSISTENT
    29: ("i", "s", "s"),                 # RESTRICT_KEYRING
    30: ("i", "i", "i", "i"),            # MOVE
    31: ("out 3", "i"),                  # CAPABILITIES
}
KEYCTL_INSTANTIATE_IOV, KEYCTL_DH_COMPUTE = 20, 23
KEYCTL_NAMES = {0: "KEYCTL_GET_KEYRING_ID", 1: "KEYCTL_JOIN_SESSION_KEYRING", 2: "KEYCTL_UPDATE", 3: "KEYCTL_REVOKE",
                4: "KEYCTL_CHOWN", 5: "KEYCTL_SETPERM", 6: "KEYCTL_DESCRIBE", 7: "KEYCTL_CLEAR", 8: "KEYCTL_LINK",
                9: "KEYCTL_UNLINK", 10: "KEYCTL_SEARCH", 11: "KEYCTL_READ", 12: "KEYCTL_INSTANTIATE",
                13: "KEYCTL_NEGATE", 14: "KEYCTL_SET_REQKEY_KEYRING", 15: "KEYCTL_SET_TIMEOUT",
                16: "KEYCTL_ASSUME_AUTHORITY", 17: "KEYCTL_GET_SECURITY", 18: "KEYCTL_SESSION_TO_PARENT",
                19: "KEYCTL_REJECT", 20: "KEYCTL_INSTANTIATE_IOV", 21: "KEYCTL_INVALIDATE",
                22: "KEYCTL_GET_PERSISTENT", 23: "KEYCTL_DH_COMPUTE", 24: "KEYCTL_PKEY_QUERY",
                25: "KEYCTL_PKEY_ENCRYPT", 26: "KEYCTL_PKEY_DECRYPT", 27: "KEYCTL_PKEY_SIGN", 28: "KEYCTL_PKEY_VERIFY",
                29: "KEYCTL_RESTRICT_KEYRING", 30: "KEYCTL_MOVE", 31: "KEYCTL_CAPABILITIES", 32: "KEYCTL_WATCH_KEY"}


def _string(k, addr: int, limit: int):
    """A guest C string as a host one (NULL stays NULL); a string longer than ``limit`` is cut there, so the
    host reports its own error for it (EINVAL or ENAMETOOLONG)."""
    return None if not addr else ctypes.create_string_buffer(k.mem.read_cstr(addr, limit))


def _in_buffer(k, addr: int, length: int):
    """A buffer the host reads: NULL stays NULL (the host checks a NULL with a length); EFAULT for a bad one."""
    if not addr:
        return None
    return ctypes.create_string_buffer(k.mem.read(addr, length), length) if length else ctypes.create_string_buffer(1)


@syscall("add_key", FULL)
def add_key(k, type_: Path, description: Path, payload: Ptr, plen: Size, keyring: Int) -> int:
    """add_key(2): the host's, with the guest's type, description and payload (the size is checked first)."""
    if plen > PAYLOAD_MAX:
        raise SyscallError(EINVAL)
    return host_syscall("add_key", _string(k, type_, KEY_TYPE_MAX), _string(k, description, KEY_DESC_MAX),
                        _in_buffer(k, payload, min(plen, PAYLOAD_MAX + 1)), plen, keyring)


@syscall("request_key", FULL)
def request_key(k, type_: Path, description: Path, callout_info: Path, dest_keyring: Int) -> int:
    """request_key(2): the host's (an upcall, if any, is the host's /sbin/request-key)."""
    return host_syscall("request_key", _string(k, type_, KEY_TYPE_MAX), _string(k, description, KEY_DESC_MAX),
                        _string(k, callout_info, PAYLOAD_MAX), dest_keyring)


@syscall("keyctl", PARTIAL, note="the host's keys and keyrings (the guest's credentials are bound on the host); "
                                 "KEYCTL_DH_COMPUTE without a KDF; the asymmetric-key KEYCTL_PKEY_* operations and "
                                 "KEYCTL_WATCH_KEY are EOPNOTSUPP, as on a kernel built without them")
def keyctl(k, operation: Enum(KEYCTL_NAMES), arg2: Long, arg3: Long, arg4: Long, arg5: Long) -> int:
    """keyctl(2): each operation's arguments as KEYCTL_ARGS describes them, then the host's keyctl."""
    raw = (arg2, arg3, arg4, arg5)
    operation &= 0xFFFFFFFF
    if operation == KEYCTL_INSTANTIATE_IOV:
        return _instantiate_iov(k, *raw)
    if operation == KEYCTL_DH_COMPUTE:
        return _dh_compute(k, *raw)
    kinds = KEYCTL_ARGS.get(operation)
    if kinds is None:
        raise SyscallError(EOPNOTSUPP)
    args, outputs = [], []
    for i, kind in enumerate(kinds):
        value = raw[i]
        if kind == "i":
            args.append(value)
        elif kind == "s":
            args.append(_string(k, value, KEY_DESC_MAX))
        else:
            direction, length_arg = kind.split()
            length = raw[int(length_arg) - 2] & 0xFFFFFFFF
            if direction == "in":
                args.append(_in_buffer(k, value, length))
            elif value and length:
                buf = ctypes.create_string_buffer(length)
                args.append(buf)
                outputs.append((value, buf, length))
            else:
                args.append(None if not value else value)
    result = host_syscall("keyctl", operation, *args)
    for addr, buf, length in outputs:
        k.mem.write(addr, buf.raw[:min(result, length)])
    return result


def _instantiate_iov(k, key: int, iov: int, count: int, keyring: int) -> int:
    """KEYCTL_INSTANTIATE_IOV: the guest's iovec array gathered into one host buffer."""
    count &= 0xFFFFFFFF
    if not iov or not count:
        return host_syscall("keyctl", KEYCTL_INSTANTIATE_IOV, key, None, 0, keyring)
    if count > 1024:                         # UIO_MAXIOV
        return host_syscall("keyctl", KEYCTL_INSTANTIATE_IOV, key, None, count, keyring)
    table = k.mem.read(iov, IOVEC.size * count)
    parts = [k.mem.read(base, length) if length else b"" for base, length in IOVEC.iter_unpack(table)]
    data = ctypes.create_string_buffer(b"".join(parts), max(1, sum(map(len, parts))))
    host_iov = (ctypes.c_uint64 * 2)(ctypes.addressof(data), sum(map(len, parts)))
    return host_syscall("keyctl", KEYCTL_INSTANTIATE_IOV, key, host_iov, 1, keyring)


def _dh_compute(k, params: int, buffer: int, buflen: int, kdf: int) -> int:
    """KEYCTL_DH_COMPUTE: struct keyctl_dh_params in, the shared secret out; a KDF is EOPNOTSUPP."""
    if kdf:
        raise SyscallError(EOPNOTSUPP)
    try:
        host_params = ctypes.create_string_buffer(k.mem.read(params, DH_PARAMS.size), DH_PARAMS.size)
    except SyscallError:
        raise SyscallError(EFAULT) from None
    buflen &= 0xFFFFFFFF
    out = ctypes.create_string_buffer(buflen) if buffer and buflen else None
    result = host_syscall("keyctl", KEYCTL_DH_COMPUTE, host_params, out if out is not None else buffer, buflen, None)
    if out is not None:
        k.mem.write(buffer, out.raw[:min(result, buflen)])
    return result
