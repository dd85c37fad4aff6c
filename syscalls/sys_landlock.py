"""Landlock: landlock_create_ruleset, landlock_add_rule, landlock_restrict_self (security/landlock/syscalls.c).

A guest task is a host thread that does the task's file, socket and signal work itself, so Landlock is the
host's own: the ruleset is a host fd behind a guest fd, a rule's parent directory is the guest fd's host file,
and landlock_restrict_self restricts the task's host thread (and what it later forks or spawns), which the host
then checks exactly as natively. hermipy's own work for the task is restricted alike: what it imports on demand
is imported before the restriction, as before a privilege drop. Bad guest fds reach the host as -1 and bad
pointers as NULL's neighbour, so the host's errors come in the host's order.
"""
import ctypes
import struct

from hermipy.syscalls.argtypes import Enum, Fd, Int, Ptr, Size, UInt
from hermipy.syscalls.errors import SyscallError
from hermipy.syscalls.host import host_syscall
from hermipy.syscalls.sys_info import BAD_HOST_POINTER, preload_modules
from hermipy.syscalls.table import FULL, syscall

RULESET_ATTR_MAX = 4096                   # copy_min_struct_from_user: a bigger struct must be zero past what
RULE_PATH_BENEATH, RULE_NET_PORT = 1, 2   # the kernel knows, and the host checks that on the copy
PATH_BENEATH = struct.Struct("<Qi")       # struct landlock_path_beneath_attr (packed)
NET_PORT_SIZE = 16                        # struct landlock_net_port_attr
RULE_TYPES = Enum({1: "LANDLOCK_RULE_PATH_BENEATH", 2: "LANDLOCK_RULE_NET_PORT"})


def _host_fd(k, fd: int) -> int:
    """The host fd behind guest ``fd``, or -1 (the host's EBADF) when the guest has no such fd."""
    of = k.fds.files.get(fd)
    return of.host_fd if of is not None else -1


def _copy_in(k, addr: int, size: int):
    """The guest's struct as a host buffer; an unreadable one is a pointer the host cannot read either."""
    if not addr:
        return None
    try:
        return ctypes.create_string_buffer(k.mem.read(addr, size), max(size, 1))
    except SyscallError:
        return BAD_HOST_POINTER


@syscall("landlock_create_ruleset", FULL)
def landlock_create_ruleset(k, attr: Ptr, size: Size, flags: UInt) -> int:
    """landlock_create_ruleset(2): the host's ruleset (or its ABI version or errata, by flag) as a guest fd."""
    from hermipy.syscalls.sys_net import _received_file, install_host_fd
    host = host_syscall("landlock_create_ruleset", _copy_in(k, attr, min(size, RULESET_ATTR_MAX)), size, flags)
    if flags:                                 # LANDLOCK_CREATE_RULESET_VERSION / _ERRATA: a number, not an fd
        return host
    return install_host_fd(k, _received_file(k, host), True)


@syscall("landlock_add_rule", FULL)
def landlock_add_rule(k, ruleset_fd: Fd, rule_type: RULE_TYPES, rule_attr: Ptr, flags: UInt) -> int:
    """landlock_add_rule(2): a path-beneath rule's parent fd is translated to the host's."""
    attr = None
    if rule_type == RULE_PATH_BENEATH:
        attr = _copy_in(k, rule_attr, PATH_BENEATH.size)
        if isinstance(attr, ctypes.Array):
            access, parent = PATH_BENEATH.unpack(attr.raw[:PATH_BENEATH.size])
            PATH_BENEATH.pack_into(attr, 0, access, _host_fd(k, parent))
    elif rule_type == RULE_NET_PORT:
        attr = _copy_in(k, rule_attr, NET_PORT_SIZE)
    else:
        attr = rule_attr and BAD_HOST_POINTER                # the host says EINVAL for the type first
    return host_syscall("landlock_add_rule", _host_fd(k, ruleset_fd), rule_type, attr, flags)


@syscall("landlock_restrict_self", FULL)
def landlock_restrict_self(k, ruleset_fd: Int, flags: UInt) -> int:
    """landlock_restrict_self(2) on the task's host thread (the host requires no_new_privs or CAP_SYS_ADMIN,
    both bound from the guest's)."""
    preload_modules()
    return host_syscall("landlock_restrict_self", _host_fd(k, ruleset_fd) if ruleset_fd != -1 else -1, flags)
