"""System information, resource limits and credentials: uname, sysinfo, rlimits, rusage, times, affinity,
getrandom, the set*id family, setgroups, priorities, personality (kernel/sys.c, kernel/groups.c,
kernel/sched/core.c, security/commoncap.c, drivers/char/random.c).

Credentials are the guest's record (k.proc), bound on the host: the set*id calls and execve follow the kernel's
rules, with the guest's capabilities starting as the host process's and changing as commoncap.c changes them,
and the task's host thread takes the result, so the host kernel checks hermipy's work for the guest with the
guest's own credentials.
"""
import ctypes
import os
import resource
import stat
import struct
from collections import namedtuple
from errno import E2BIG, EINVAL, ENODATA, EOPNOTSUPP, EPERM, ESRCH

from hermipy.layout import PAGE_SIZE
from hermipy.syscalls.argtypes import Enum, Int, Ptr, Size, UInt
from hermipy.syscalls.errors import SyscallError
from hermipy.syscalls.files import host_fd_room
from hermipy.syscalls.kernel import RLIM_INFINITY
from hermipy.syscalls.host import host_syscall
from hermipy.syscalls.sys_time import watch_cpu_time
from hermipy.syscalls.table import FULL, PARTIAL, syscall

UTS_FIELD = 65
RLIMITS = {0: "RLIMIT_CPU", 1: "RLIMIT_FSIZE", 2: "RLIMIT_DATA", 3: "RLIMIT_STACK", 4: "RLIMIT_CORE",
           5: "RLIMIT_RSS", 6: "RLIMIT_NPROC", 7: "RLIMIT_NOFILE", 8: "RLIMIT_MEMLOCK", 9: "RLIMIT_AS",
           10: "RLIMIT_LOCKS", 11: "RLIMIT_SIGPENDING", 12: "RLIMIT_MSGQUEUE", 13: "RLIMIT_NICE",
           14: "RLIMIT_RTPRIO", 15: "RLIMIT_RTTIME"}
RLIMIT_NOFILE = 7
RLIMIT_CPU, RLIMIT_FSIZE = 0, 1
# Limits the host process takes too: RLIMIT_FSIZE (a write or truncate past it is EFBIG, then the dispatcher's
# SIGXFSZ) and RLIMIT_CPU (the host's SIGXCPU at the soft limit reaches the guest, SIGKILL at the hard one; hermipy's
# own CPU time for the guest counts, as the guest's system time would).
HOST_ENFORCED = (RLIMIT_CPU, RLIMIT_FSIZE)
RUSAGE_SELF, RUSAGE_CHILDREN, RUSAGE_THREAD = 0, -1, 1
GRND_NONBLOCK, GRND_RANDOM, GRND_INSECURE = 1, 2, 4


@syscall("uname", FULL)
def uname(k, buf: Ptr) -> int:
    """uname(2): the host's struct utsname (six 65-byte fields), as the native program would see it."""
    u = os.uname()
    fields = (u.sysname, u.nodename, u.release, u.version, u.machine, _domainname())
    k.mem.write(buf, b"".join(os.fsencode(f)[:UTS_FIELD - 1].ljust(UTS_FIELD, b"\0") for f in fields))
    return 0


def _domainname() -> str:
    try:
        with open("/proc/sys/kernel/domainname") as f:
            return f.read().strip()
    except OSError:
        return "(none)"


@syscall("sysinfo", FULL)
def sysinfo(k, info: Ptr) -> int:
    """sysinfo(2): struct sysinfo (include/uapi/linux/sysinfo.h) from the host, mem_unit 1."""
    with open("/proc/uptime") as f:
        uptime = int(float(f.read().split()[0]))
    loads = [int(x * 65536) for x in os.getloadavg()]
    meminfo = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, value = line.split(":", 1)
            meminfo[key] = int(value.split()[0]) * 1024
    procs = sum(1 for name in os.listdir("/proc") if name.isdigit())
    k.mem.write(info, struct.pack("<q3Q6QH2x4xQQI4x", uptime, *loads, meminfo.get("MemTotal", 0),
                                  meminfo.get("MemFree", 0), meminfo.get("Shmem", 0), meminfo.get("Buffers", 0),
                                  meminfo.get("SwapTotal", 0), meminfo.get("SwapFree", 0), min(procs, 0xFFFF),
                                  0, 0, 1))
    return 0


def _check_pid(k, pid: int) -> None:
    """find_task_by_vpid(): the guest sees only itself, any other pid (negative ones too) is ESRCH."""
    if pid not in (0, k.proc.pid):
        raise SyscallError(ESRCH)


def _nr_open() -> int:
    try:
        with open("/proc/sys/fs/nr_open") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 1 << 20                 # fs/file.c sysctl_nr_open default


def _set_rlimit(k, resource_: int, soft: int, hard: int) -> list[int]:
    """do_prlimit() on the guest's own limits; returns the previous ones. Raising a hard limit needs
    CAP_SYS_RESOURCE; RLIMIT_NOFILE also caps the guest's fd table."""
    if soft > hard:
        raise SyscallError(EINVAL)
    if resource_ == RLIMIT_NOFILE and hard > _nr_open():
        raise SyscallError(EPERM)
    old = k.proc.rlimits.setdefault(resource_, [RLIM_INFINITY, RLIM_INFINITY])
    if hard > old[1] and not capable(k, CAP_SYS_RESOURCE):
        raise SyscallError(EPERM)
    previous = list(old)
    if resource_ == RLIMIT_CPU and soft != RLIM_INFINITY:
        watch_cpu_time(k)
    if resource_ == RLIMIT_NOFILE:
        if hard > old[1] and host_fd_room(hard) < hard:
            raise SyscallError(EPERM)         # hermipy's own host limit could not follow
        k.fds.limit = soft
    if resource_ in HOST_ENFORCED:            # the host enforces these on hermipy's process, the guest's
        resource.setrlimit(resource_, tuple(v if v < RLIM_INFINITY else resource.RLIM_INFINITY for v in (soft, hard)))
    old[:] = [soft, hard]
    return previous


RLIMIT_NOTE = ("limits are the guest's own record: RLIMIT_NOFILE caps the guest's fd table (its hard limit is the "
               "host's, or 256 below it where hermipy may not raise its own to make room for its fds), RLIMIT_FSIZE "
               "and RLIMIT_CPU are also the host process's (EFBIG and SIGXFSZ, SIGXCPU then SIGKILL, as Linux "
               "gives them; hermipy's own work for the guest counts as CPU time), RLIMIT_MEMLOCK is charged by "
               "mlock, the others are not enforced")


@syscall("prlimit64", PARTIAL, note=RLIMIT_NOTE)
def prlimit64(k, pid: Int, resource_: Enum(RLIMITS), new_limit: Ptr, old_limit: Ptr) -> int:
    """prlimit(2) for this process (pid 0 or its own): new limit copied in, then set, then the old one out."""
    new = struct.unpack("<QQ", k.mem.read(new_limit, 16)) if new_limit else None
    _check_pid(k, pid)
    if resource_ not in RLIMITS:
        raise SyscallError(EINVAL)
    if new is not None:
        previous = _set_rlimit(k, resource_, *new)
    else:
        previous = k.proc.rlimits.get(resource_, [RLIM_INFINITY, RLIM_INFINITY])
    if old_limit:
        k.mem.write(old_limit, struct.pack("<QQ", *previous))
    return 0


@syscall("getrlimit", FULL)
def getrlimit(k, resource_: Enum(RLIMITS), rlim: Ptr) -> int:
    """getrlimit(2)."""
    if resource_ not in RLIMITS:
        raise SyscallError(EINVAL)
    k.mem.write(rlim, struct.pack("<QQ", *k.proc.rlimits.get(resource_, [RLIM_INFINITY, RLIM_INFINITY])))
    return 0


@syscall("setrlimit", PARTIAL, note=RLIMIT_NOTE)
def setrlimit(k, resource_: Enum(RLIMITS), rlim: Ptr) -> int:
    """setrlimit(2)."""
    if resource_ not in RLIMITS:
        raise SyscallError(EINVAL)
    _set_rlimit(k, resource_, *struct.unpack("<QQ", k.mem.read(rlim, 16)))
    return 0


def _timeval(seconds: float) -> tuple[int, int]:
    usec = int(seconds * 1_000_000)
    return usec // 1_000_000, usec % 1_000_000


@syscall("getrusage", FULL)
def getrusage(k, who: Enum({0: "RUSAGE_SELF", -1: "RUSAGE_CHILDREN", 1: "RUSAGE_THREAD"}), usage: Ptr) -> int:
    """getrusage(2): the hermipy process's own usage stands for the guest's (struct rusage, 144 bytes)."""
    if who not in (RUSAGE_SELF, RUSAGE_CHILDREN, RUSAGE_THREAD):
        raise SyscallError(EINVAL)
    watch_cpu_time(k)
    r = resource.getrusage(resource.RUSAGE_CHILDREN if who == RUSAGE_CHILDREN else resource.RUSAGE_SELF)
    k.mem.write(usage, struct.pack("<4q14q", *_timeval(r.ru_utime), *_timeval(r.ru_stime), r.ru_maxrss, r.ru_ixrss,
                                   r.ru_idrss, r.ru_isrss, r.ru_minflt, r.ru_majflt, r.ru_nswap, r.ru_inblock,
                                   r.ru_oublock, r.ru_msgsnd, r.ru_msgrcv, r.ru_nsignals, r.ru_nvcsw, r.ru_nivcsw))
    return 0


@syscall("times", FULL)
def times(k, buf: Ptr) -> int:
    """times(2): struct tms in clock ticks; returns ticks since boot."""
    watch_cpu_time(k)
    t = os.times()
    ticks = os.sysconf("SC_CLK_TCK")
    if buf:
        k.mem.write(buf, struct.pack("<4q", *(int(x * ticks) for x in (t.user, t.system, t.children_user,
                                                                         t.children_system))))
    return int(t.elapsed * ticks) & (1 << 63) - 1




@syscall("sched_getaffinity", FULL)
def sched_getaffinity(k, pid: Int, cpusetsize: UInt, mask: Ptr) -> int:
    """sched_getaffinity(2): the host kernel's answer for the host thread running that task (each guest thread
    runs on its own), including its checks of the size and the number of bytes it returns (cpumask_size())."""
    hlen = cpusetsize if cpusetsize <= 1 << 16 else (1 << 16) + cpusetsize % 8
    buf = ctypes.create_string_buffer(hlen)
    target = _sched_target(k, pid) if hlen >= 8 and not hlen % 8 else 0   # a bad size is EINVAL before the lookup
    nbytes = host_syscall("sched_getaffinity", target, hlen, buf)
    k.mem.write(mask, buf.raw[:nbytes])
    return nbytes


@syscall("sched_setaffinity", FULL)
def sched_setaffinity(k, pid: Int, cpusetsize: UInt, mask: Ptr) -> int:
    """sched_setaffinity(2), applied to the host thread running that task (EINVAL from the host when no
    allowed CPU is left)."""
    data = k.mem.read(mask, min(cpusetsize, 1 << 16))
    target = _sched_target(k, pid)
    _may_change(k, target, None, 0)
    return host_syscall("sched_setaffinity", target, len(data), ctypes.create_string_buffer(data, len(data)))


@syscall("sched_yield", FULL)
def sched_yield(k) -> int:
    os.sched_yield()
    return 0


@syscall("getcpu", FULL)
def getcpu(k, cpu: Ptr, node: Ptr, tcache: Ptr) -> int:
    """getcpu(2): the host CPU and NUMA node this process runs on."""
    hcpu, hnode = ctypes.c_uint32(), ctypes.c_uint32()
    host_syscall("getcpu", hcpu, hnode, None)
    if cpu:
        k.mem.write(cpu, struct.pack("<I", hcpu.value))
    if node:
        k.mem.write(node, struct.pack("<I", hnode.value))
    return 0


@syscall("getrandom", FULL)
def getrandom(k, buf: Ptr, count: Size, flags: UInt) -> int:
    """getrandom(2): the host's CSPRNG."""
    if flags & ~(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE) or flags & GRND_RANDOM and flags & GRND_INSECURE:
        raise SyscallError(EINVAL)
    count = min(count, 0x1FFFFFF)      # one call returns at most 32 MiB - 1
    k.mem.write(buf, os.urandom(count))
    return count


# -- credentials ------------------------------------------------------------------------------------
CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID = 0, 1, 2, 3, 4
CAP_SETGID, CAP_SETUID, CAP_SETPCAP, CAP_LINUX_IMMUTABLE, CAP_SYS_NICE, CAP_SYS_RESOURCE = 6, 7, 8, 9, 23, 24
CAP_SYS_ADMIN, CAP_MAC_OVERRIDE = 21, 32
CAP_FS_MASK = sum(1 << c for c in (CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID,
                                   CAP_LINUX_IMMUTABLE, CAP_MAC_OVERRIDE))
NO_ID = 0xFFFFFFFF                     # (uid_t) -1: "leave unchanged", never a valid id
NGROUPS_MAX = 65536
ID_NOTE = ("the ids change by the kernel's rules (capabilities as commoncap.c changes them) and bind: the calling "
           "task's host thread takes them, so the host checks its file accesses and signals as natively; the ids an "
           "image's User sets at start are the guest's record only")


def _creds(k):
    """k.proc with the credential fields Process does not carry yet (fsuid/fsgid, capability sets)."""
    p = k.proc
    if not hasattr(p, "cap_eff"):
        p.fsuid, p.fsgid = p.euid, p.egid
        p.cap_eff, p.cap_prm, p.cap_inh, p.cap_bnd, p.cap_amb = _host_caps()
    return p


def _host_caps(pid: str = "self") -> tuple[int, int, int, int, int]:
    """(effective, permitted, inheritable, bounding, ambient) of a host process, from its /proc status."""
    caps = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("CapEff:", "CapPrm:", "CapInh:", "CapBnd:", "CapAmb:")):
                    key, value = line.split(":")
                    caps[key] = int(value, 16)
    except FileNotFoundError:
        raise SyscallError(ESRCH) from None
    except OSError:
        pass
    return (caps.get("CapEff", 0), caps.get("CapPrm", 0), caps.get("CapInh", 0), caps.get("CapBnd", 0),
            caps.get("CapAmb", 0))


CAPABILITY_VERSIONS = {0x19980330: 1, 0x20071026: 2, 0x20080522: 2}     # _LINUX_CAPABILITY_VERSION_1/2/3: u32s
CAPABILITY_VERSION_3 = 0x20080522


def _capability_version(k, header: int) -> int:
    """cap_validate_magic(): the number of __user_cap_data_struct the header's version uses; an unknown one
    gets the kernel's preferred version written back, and EINVAL."""
    version = struct.unpack("<I", k.mem.read(header, 4))[0]
    count = CAPABILITY_VERSIONS.get(version)
    if count is None:
        k.mem.write(header, struct.pack("<I", CAPABILITY_VERSION_3))
        raise SyscallError(EINVAL)
    return count


def _split_caps(count: int, *sets: int) -> bytes:
    """``count`` __user_cap_data_struct {effective, permitted, inheritable} of 32 bits each, low words first."""
    return b"".join(struct.pack("<3I", *((s >> 32 * i) & 0xFFFFFFFF for s in sets)) for i in range(count))


@syscall("capget", PARTIAL, note="the caller's capability sets are its own record (they change with the set*id "
                                 "calls as commoncap.c changes them, and with capset); another process's are its "
                                 "hermipy process's host sets")
def capget(k, header: Ptr, dataptr: Ptr) -> int:
    """capget(2) (kernel/capability.c)."""
    try:
        count = _capability_version(k, header)
    except SyscallError as err:
        if err.errno == EINVAL and not dataptr:
            return 0
        raise
    if not dataptr:
        return 0
    pid = struct.unpack("<i", k.mem.read(header + 4, 4))[0]
    if pid < 0:
        raise SyscallError(EINVAL)
    if pid and pid != k.proc.pid:
        from hermipy.syscalls.sys_signal import _visible
        _visible(k, pid)
        eff, prm, inh, _, _ = _host_caps(str(pid))
    else:
        p = _creds(k)
        eff, prm, inh = p.cap_eff, p.cap_prm, p.cap_inh
    k.mem.write(dataptr, _split_caps(count, eff, prm, inh))
    return 0


@syscall("capset", PARTIAL, note="changes the caller's own record of its capability sets (the whole process's: "
                                 "hermipy keeps one per process, Linux one per thread), with cap_capset()'s checks; "
                                 "the host process keeps its own")
def capset(k, header: Ptr, data: Ptr) -> int:
    """capset(2): only the caller (pid 0 or its own); cap_capset()'s rules (security/commoncap.c)."""
    count = _capability_version(k, header)
    pid = struct.unpack("<i", k.mem.read(header + 4, 4))[0]
    if pid and pid != k.proc.pid:
        raise SyscallError(EPERM)
    words = struct.unpack(f"<{3 * count}I", k.mem.read(data, 12 * count))
    eff, prm, inh = (sum(words[3 * i + j] << 32 * i for i in range(count)) & _valid_caps() for j in range(3))
    p = _creds(k)
    if not (p.cap_eff >> CAP_SETPCAP & 1) and inh & ~(p.cap_inh | p.cap_prm):
        raise SyscallError(EPERM)            # new inheritable bits need CAP_SETPCAP...
    if inh & ~(p.cap_inh | p.cap_bnd) or prm & ~p.cap_prm or eff & ~prm:
        raise SyscallError(EPERM)            # ... and the bounding set; permitted only shrinks; effective within it
    p.cap_eff, p.cap_prm, p.cap_inh = eff, prm, inh
    p.cap_amb &= prm & inh                   # the ambient set stays within both (as the host's does)
    _bind_host(p, _dumpable_ids(p))
    return 0


def _valid_caps() -> int:
    """CAP_VALID_MASK: every capability up to the host's cap_last_cap."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return (1 << int(f.read()) + 1) - 1
    except (OSError, ValueError):
        return (1 << 41) - 1


SYSFS_OPTIONS = Enum({1: "FSNAME_TO_INDEX", 2: "INDEX_TO_FSNAME", 3: "COUNT"})


@syscall("sysfs", FULL)
def sysfs(k, option: SYSFS_OPTIONS, arg1: Ptr, arg2: Ptr) -> int:
    """sysfs(2) (fs/filesystems.c): the host's list of file system types, which is the guest's."""
    if option == 1:
        name = k.mem.read_cstr(arg1, 256)
        return host_syscall("sysfs", 1, ctypes.create_string_buffer(name))
    if option == 2:
        buf = ctypes.create_string_buffer(256)
        host_syscall("sysfs", 2, arg1 & 0xFFFFFFFF, buf)
        k.mem.write(arg2, buf.value + b"\0")
        return 0
    return host_syscall("sysfs", option)


def _bind_host(p, old_ids: tuple[int, ...]) -> None:
    """The calling task's host thread takes the guest's credentials (Linux's are per thread too; glibc's set*id
    has each thread make the call): groups and gids first, while CAP_SETGID may still be there, then uids, the fs
    ids and the capability sets, which the host only ever lets shrink. From then on the host kernel checks what
    hermipy does for this task (opening, creating, chmod, kill ...) as it checks the guest natively, and a guest
    that gave up root cannot have it back through hermipy. A change of the effective or fs ids makes the
    process non-dumpable as commit_creds() does (for the guest's prctl; the host's own /proc/self stays open to
    the process itself)."""
    if p.euid != 0 or p.fsuid != 0:       # files are then opened as someone else (setfsuid alone does it too)
        preload_modules()
    if sorted(os.getgroups()) != sorted(p.groups):
        host_syscall("setgroups", len(p.groups), (ctypes.c_uint32 * max(1, len(p.groups)))(*p.groups))
    host_syscall("setresgid", p.gid, p.egid, p.sgid)
    host_syscall("setresuid", p.uid, p.euid, p.suid)
    host_syscall("setfsgid", p.fsgid)
    host_syscall("setfsuid", p.fsuid)
    header = ctypes.create_string_buffer(struct.pack("<Ii", CAPABILITY_VERSION_3, 0), 8)
    data = ctypes.create_string_buffer(_split_caps(2, p.cap_eff, p.cap_prm, p.cap_inh), 24)
    try:
        host_syscall("capset", header, data)
    except PermissionError:
        pass                               # the host thread has fewer already: stricter than the record
    if _dumpable_ids(p) != old_ids:
        p.dumpable = _suid_dumpable()


# What hermipy imports on demand on a run's path (an execve's loader and rewriter, the syscall handlers) from
# outside its own package: once the host thread is no longer root, the Python installation may not be readable
# (this project's CI's is under /root), so these are imported while it still is.
_ON_DEMAND = ("bisect", "hashlib", "ipaddress", "json", "mmap", "platform", "resource", "stat", "zlib", "capstone")


def preload_modules() -> None:
    """Import what hermipy loads on demand (_ON_DEMAND) while the Python installation is still readable."""
    import importlib
    for name in _ON_DEMAND:
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def _suid_dumpable() -> int:
    """fs.suid_dumpable: what a process's dumpable flag becomes when its credentials change."""
    try:
        with open("/proc/sys/fs/suid_dumpable") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 0


def _dumpable_ids(p) -> tuple[int, ...]:
    return p.euid, p.egid, p.fsuid, p.fsgid


PR_GET_KEEPCAPS, PR_SET_KEEPCAPS, PR_CAPBSET_READ, PR_CAPBSET_DROP = 7, 8, 23, 24
PR_SET_NO_NEW_PRIVS, PR_GET_NO_NEW_PRIVS, PR_GET_SECUREBITS, PR_SET_SECUREBITS = 38, 39, 27, 28
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_IS_SET, PR_CAP_AMBIENT_RAISE, PR_CAP_AMBIENT_LOWER, PR_CAP_AMBIENT_CLEAR_ALL = 1, 2, 3, 4
SECBIT_KEEP_CAPS, SECBIT_NO_CAP_AMBIENT_RAISE = 1 << 4, 1 << 6
CAPABILITY_OPTIONS = (PR_GET_KEEPCAPS, PR_SET_KEEPCAPS, PR_CAPBSET_READ, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS,
                      PR_GET_NO_NEW_PRIVS, PR_GET_SECUREBITS, PR_SET_SECUREBITS, PR_CAP_AMBIENT)


def capability_prctl(k, option: int, arg2: int, arg3: int, arg4: int, arg5: int) -> int:
    """prctl(2)'s options on capabilities and privileges (cap_task_prctl in security/commoncap.c, then
    kernel/sys.c), kept in the record and made on the calling task's host thread too, as the set*id calls are:
    PR_[GS]ET_KEEPCAPS, PR_CAPBSET_READ/DROP, PR_[GS]ET_NO_NEW_PRIVS, PR_CAP_AMBIENT."""
    p = _creds(k)
    if option == PR_CAP_AMBIENT:
        return _ambient_prctl(p, arg2, arg3, arg4, arg5)
    if option == PR_GET_KEEPCAPS:
        return getattr(p, "keepcaps", 0)
    if option == PR_GET_SECUREBITS:                       # the host thread's (KEEP_CAPS kept in step below)
        return host_syscall("prctl", PR_GET_SECUREBITS, 0, 0, 0, 0)
    if option == PR_SET_SECUREBITS:                       # the host checks CAP_SETPCAP, the locks, the valid bits
        host_syscall("prctl", PR_SET_SECUREBITS, arg2, 0, 0, 0)
        p.keepcaps = int(bool(arg2 & SECBIT_KEEP_CAPS))
        return 0
    if option == PR_CAPBSET_READ:
        if not 0 <= arg2 <= _valid_caps().bit_length() - 1:
            raise SyscallError(EINVAL)
        return p.cap_bnd >> arg2 & 1
    if option == PR_GET_NO_NEW_PRIVS:
        if arg2 or arg3 or arg4 or arg5:
            raise SyscallError(EINVAL)
        return getattr(p, "no_new_privs", 0)
    if option == PR_SET_KEEPCAPS:
        if not 0 <= arg2 <= 1:
            raise SyscallError(EINVAL)
        host_syscall("prctl", PR_SET_KEEPCAPS, arg2, 0, 0, 0)
        p.keepcaps = arg2
        return 0
    if option == PR_CAPBSET_DROP:
        if not capable(k, CAP_SETPCAP):
            raise SyscallError(EPERM)
        if not 0 <= arg2 <= _valid_caps().bit_length() - 1:
            raise SyscallError(EINVAL)
        host_syscall("prctl", PR_CAPBSET_DROP, arg2, 0, 0, 0)
        p.cap_bnd &= ~(1 << arg2)
        return 0
    if arg2 != 1 or arg3 or arg4 or arg5:                  # PR_SET_NO_NEW_PRIVS
        raise SyscallError(EINVAL)
    host_syscall("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    p.no_new_privs = 1
    return 0


def _ambient_prctl(p, op: int, cap: int, arg4: int, arg5: int) -> int:
    """PR_CAP_AMBIENT (cap_task_prctl): raising needs the capability permitted and inheritable, and no
    SECBIT_NO_CAP_AMBIENT_RAISE."""
    if op == PR_CAP_AMBIENT_CLEAR_ALL:
        if cap or arg4 or arg5:
            raise SyscallError(EINVAL)
        host_syscall("prctl", PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
        p.cap_amb = 0
        return 0
    if not 0 <= cap < _valid_caps().bit_length() or arg4 or arg5:
        raise SyscallError(EINVAL)
    if op == PR_CAP_AMBIENT_IS_SET:
        return p.cap_amb >> cap & 1
    if op not in (PR_CAP_AMBIENT_RAISE, PR_CAP_AMBIENT_LOWER):
        raise SyscallError(EINVAL)
    if op == PR_CAP_AMBIENT_RAISE and (not p.cap_prm >> cap & 1 or not p.cap_inh >> cap & 1 or
                                       host_syscall("prctl", PR_GET_SECUREBITS, 0, 0, 0, 0)
                                       & SECBIT_NO_CAP_AMBIENT_RAISE):
        raise SyscallError(EPERM)
    try:
        host_syscall("prctl", PR_CAP_AMBIENT, op, cap, 0, 0)
    except PermissionError:
        pass                                 # the host thread has fewer already: the record still says Linux's
    p.cap_amb = p.cap_amb | 1 << cap if op == PR_CAP_AMBIENT_RAISE else p.cap_amb & ~(1 << cap)
    return 0


# -- execve's credentials ---------------------------------------------------------------------------
XATTR_NAME_CAPS = "security.capability"
VFS_CAP_REVISION_MASK, VFS_CAP_FLAGS_EFFECTIVE = 0xFF000000, 0x000001
VFS_CAP_SIZES = {0x01000000: 12, 0x02000000: 20, 0x03000000: 24}    # XATTR_CAPS_SZ_1/2/3 by revision
SETGID_EXEC = stat.S_ISGID | stat.S_IXGRP                           # S_ISGID without g+x is mandatory locking


class ExecCredentials(namedtuple("ExecCredentials", "uid gid euid egid permitted effective ambient secure from_file")):
    """What execve leaves (struct linux_binprm's cred and secureexec): the effective ids (saved and fs ids
    follow them), the permitted, effective and ambient capability sets, AT_SECURE; ``from_file``: the file had set-id
    bits or capabilities that applied. (A namedtuple: dataclasses costs a direct run ~4 ms of imports.)"""
    __slots__ = ()


def _file_caps(fd: int) -> tuple[bool, int, int] | None:
    """get_vfs_caps_from_disk() (security/commoncap.c): (the effective flag, fP, fI) of a file's
    security.capability; None without one, or with a v3 one whose root is another user namespace's."""
    try:
        raw = os.getxattr(fd, XATTR_NAME_CAPS)
    except OSError as err:
        if err.errno in (ENODATA, EOPNOTSUPP):
            return None
        raise SyscallError(err.errno) from None
    magic = int.from_bytes(raw[:4], "little")
    size = VFS_CAP_SIZES.get(magic & VFS_CAP_REVISION_MASK)
    if len(raw) < 4 or size != len(raw):
        raise SyscallError(EINVAL)
    if size == 24 and int.from_bytes(raw[20:24], "little"):
        return None
    words = struct.unpack(f"<{2 if size == 12 else 4}I", raw[4:min(size, 20)])
    permitted = sum(words[2 * i] << 32 * i for i in range(len(words) // 2)) & _valid_caps()
    inheritable = sum(words[2 * i + 1] << 32 * i for i in range(len(words) // 2)) & _valid_caps()
    return bool(magic & VFS_CAP_FLAGS_EFFECTIVE), permitted, inheritable


def _host_takes(p, euid: int, egid: int, permitted: int) -> bool:
    """Whether the calling host thread can take these credentials: setresuid/setresgid's rule (ids of its own,
    or CAP_SETUID/CAP_SETGID, which it may raise from its permitted set for the change), and a permitted set
    capset can reach (it only shrinks)."""
    _, prm, _, _, _ = _host_caps("thread-self")
    if not prm >> CAP_SETUID & 1 and not {p.uid, euid} <= set(os.getresuid()):
        return False
    if not prm >> CAP_SETGID & 1 and not {p.gid, egid} <= set(os.getresgid()):
        return False
    return not permitted & ~prm


def exec_credentials(k, fd: int) -> ExecCredentials:
    """bprm_fill_uid() (fs/exec.c), then cap_bprm_creds_from_file() (security/commoncap.c), for the file execve
    runs (host fd ``fd``): its set-user-ID and set-group-ID bits and file capabilities apply unless its mount is
    nosuid or the caller has no_new_privs; root gets its bounding and inheritable sets. An exec that would raise
    privileges the host thread cannot take is downgraded as Linux downgrades an unsafe one (traced, or
    no_new_privs): the effective ids stay the real ones unless the caller has CAP_SETUID, and the permitted set
    gains nothing. So hermipy honours a set-id binary where the host would (a guest that gave up root does not
    regain it through a set-user-ID-root file: hermipy's host process cannot)."""
    p = _creds(k)
    st = os.fstat(fd)
    no_new_privs = getattr(p, "no_new_privs", 0)
    may_suid = not os.fstatvfs(fd).f_flag & os.ST_NOSUID
    euid, egid = p.euid, p.egid
    if may_suid and not no_new_privs:
        if st.st_mode & stat.S_ISUID:
            euid = st.st_uid
        if st.st_mode & SETGID_EXEC == SETGID_EXEC:
            egid = st.st_gid
    file_caps = _file_caps(fd) if may_suid else None
    permitted, effective = 0, False
    if file_caps is not None:
        effective, file_permitted, file_inheritable = file_caps
        permitted = p.cap_bnd & file_permitted | p.cap_inh & file_inheritable
        if effective and file_permitted & ~permitted:
            raise SyscallError(EPERM)             # bprm_caps_from_vfs_caps: too few to run as the file asks
    if not (file_caps is not None and euid == 0 and p.uid != 0):      # handle_privileged_root
        if 0 in (p.uid, euid):
            permitted = (p.cap_bnd | p.cap_inh) & _valid_caps()
        effective |= euid == 0
    is_setid = (euid, egid) != (p.uid, p.gid)            # __is_setuid/__is_setgid: against the real ids
    ambient = 0 if is_setid or file_caps is not None else p.cap_amb
    if (is_setid or permitted & ~p.cap_prm) and (no_new_privs or not _host_takes(p, euid, egid, permitted)):
        if no_new_privs or not capable(k, CAP_SETUID):
            euid, egid = p.uid, p.gid
        permitted &= p.cap_prm
    permitted |= ambient                                  # pP' = (X & fP) | (pI & fI) | pA'
    secure = is_setid or p.uid != 0 and (effective or permitted & ~ambient != 0)
    return ExecCredentials(p.uid, p.gid, euid, egid, permitted, permitted if effective else ambient, ambient,
                           secure, bool(is_setid or file_caps is not None))


def _raise_host_effective() -> None:
    """The host thread's effective set made its permitted one, so that it can make exec's id changes (the set-id
    file, not the caller's capabilities, allows them); _bind_host then sets the sets the record says."""
    header = ctypes.create_string_buffer(struct.pack("<Ii", CAPABILITY_VERSION_3, 0), 8)
    data = ctypes.create_string_buffer(24)
    host_syscall("capget", header, data)
    words = list(struct.unpack("<6I", data.raw))
    if words[0::3] != words[1::3]:
        words[0], words[3] = words[1], words[4]
        host_syscall("capset", header, ctypes.create_string_buffer(struct.pack("<6I", *words), 24))


def commit_exec_credentials(k, creds: ExecCredentials) -> None:
    """begin_new_exec()'s credentials, past the point of no return: the saved and fs ids follow the effective
    ones, SECURE_KEEP_CAPS is cleared, and the process is dumpable again unless its credentials changed or its
    ids were mixed (then fs.suid_dumpable). Bound on the host as set*id are."""
    p = _creds(k)
    old = _dumpable_ids(p)
    changed = p.euid != p.uid or p.egid != p.gid or creds.permitted & ~p.cap_prm
    p.euid = p.suid = p.fsuid = creds.euid
    p.egid = p.sgid = p.fsgid = creds.egid
    p.cap_prm, p.cap_eff = creds.permitted, creds.effective
    if getattr(p, "keepcaps", 0):
        host_syscall("prctl", PR_SET_KEEPCAPS, 0, 0, 0, 0)
        p.keepcaps = 0
    if p.cap_amb and not creds.ambient:
        host_syscall("prctl", PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    p.cap_amb = creds.ambient
    _raise_host_effective()
    _bind_host(p, old)
    p.dumpable = _suid_dumpable() if changed or _dumpable_ids(p) != old else 1


def capable(k, cap: int) -> bool:
    """ns_capable(): the guest's effective capability set has ``cap``."""
    return bool(_creds(k).cap_eff >> cap & 1)


def _fix_setuid(p, old: tuple[int, int, int, int]) -> None:
    """cap_emulate_setxuid() and the fsuid fixup of cap_task_fix_setuid() (security/commoncap.c): leaving root
    for good clears the permitted set too, unless PR_SET_KEEPCAPS is on, and the ambient set always."""
    ouid, oeuid, osuid, ofsuid = old
    if 0 in (ouid, oeuid, osuid) and 0 not in (p.uid, p.euid, p.suid):
        p.cap_amb = 0
        if not getattr(p, "keepcaps", 0):
            p.cap_prm = p.cap_eff = 0
    if oeuid == 0 and p.euid != 0:
        p.cap_eff = 0
    if oeuid != 0 and p.euid == 0:
        p.cap_eff = p.cap_prm
    _fix_fsuid(p, ofsuid)


def _fix_fsuid(p, ofsuid: int) -> None:
    if ofsuid == 0 and p.fsuid != 0:
        p.cap_eff &= ~CAP_FS_MASK
    if ofsuid != 0 and p.fsuid == 0:
        p.cap_eff |= p.cap_prm & CAP_FS_MASK


def _uids(p) -> tuple[int, int, int, int]:
    return p.uid, p.euid, p.suid, p.fsuid


@syscall("setuid", PARTIAL, note=ID_NOTE)
def setuid(k, uid: UInt) -> int:
    """setuid(2) (kernel/sys.c __sys_setuid)."""
    p = _creds(k)
    if uid == NO_ID:
        raise SyscallError(EINVAL)
    old, ids = _uids(p), _dumpable_ids(p)
    if capable(k, CAP_SETUID):
        p.uid = p.suid = uid
    elif uid not in (p.uid, p.suid):
        raise SyscallError(EPERM)
    p.euid = p.fsuid = uid
    _fix_setuid(p, old)
    _bind_host(p, ids)
    return 0


@syscall("setgid", PARTIAL, note=ID_NOTE)
def setgid(k, gid: UInt) -> int:
    """setgid(2)."""
    p = _creds(k)
    if gid == NO_ID:
        raise SyscallError(EINVAL)
    ids = _dumpable_ids(p)
    if capable(k, CAP_SETGID):
        p.gid = p.egid = p.sgid = p.fsgid = gid
    elif gid in (p.gid, p.sgid):
        p.egid = p.fsgid = gid
    else:
        raise SyscallError(EPERM)
    _bind_host(p, ids)
    return 0


def _setre(k, cap: int, ids: list[int], r: int, e: int) -> list[int]:
    """__sys_setreuid/__sys_setregid on [real, effective, saved]: the new [real, effective, saved]."""
    real, eff, saved = ids
    new = list(ids)
    if r != NO_ID:
        if r not in (real, eff) and not capable(k, cap):
            raise SyscallError(EPERM)
        new[0] = r
    if e != NO_ID:
        if e not in (real, eff, saved) and not capable(k, cap):
            raise SyscallError(EPERM)
        new[1] = e
    if r != NO_ID or (e != NO_ID and e != real):
        new[2] = new[1]
    return new


@syscall("setreuid", PARTIAL, note=ID_NOTE)
def setreuid(k, ruid: UInt, euid: UInt) -> int:
    p = _creds(k)
    old, ids = _uids(p), _dumpable_ids(p)
    p.uid, p.euid, p.suid = _setre(k, CAP_SETUID, [p.uid, p.euid, p.suid], ruid, euid)
    p.fsuid = p.euid
    _fix_setuid(p, old)
    _bind_host(p, ids)
    return 0


@syscall("setregid", PARTIAL, note=ID_NOTE)
def setregid(k, rgid: UInt, egid: UInt) -> int:
    p = _creds(k)
    ids = _dumpable_ids(p)
    p.gid, p.egid, p.sgid = _setre(k, CAP_SETGID, [p.gid, p.egid, p.sgid], rgid, egid)
    p.fsgid = p.egid
    _bind_host(p, ids)
    return 0


def _setres(k, cap: int, ids: list[int], fs: int, wanted: tuple[int, int, int]) -> list[int] | None:
    """__sys_setresuid/__sys_setresgid: None for the no-op case, else the new [real, effective, saved]."""
    r, e, s = wanted
    if (r == NO_ID or r == ids[0]) and (e == NO_ID or e == ids[1] and e == fs) and (s == NO_ID or s == ids[2]):
        return None
    if any(x != NO_ID and x not in ids for x in wanted) and not capable(k, cap):
        raise SyscallError(EPERM)
    return [old if x == NO_ID else x for old, x in zip(ids, wanted)]


@syscall("setresuid", PARTIAL, note=ID_NOTE)
def setresuid(k, ruid: UInt, euid: UInt, suid: UInt) -> int:
    p = _creds(k)
    new = _setres(k, CAP_SETUID, [p.uid, p.euid, p.suid], p.fsuid, (ruid, euid, suid))
    ids = _dumpable_ids(p)
    if new is not None:
        old = _uids(p)
        p.uid, p.euid, p.suid = new
        p.fsuid = p.euid
        _fix_setuid(p, old)
    _bind_host(p, ids)                     # (also when nothing changed: another thread's call may have)
    return 0


@syscall("setresgid", PARTIAL, note=ID_NOTE)
def setresgid(k, rgid: UInt, egid: UInt, sgid: UInt) -> int:
    p = _creds(k)
    new = _setres(k, CAP_SETGID, [p.gid, p.egid, p.sgid], p.fsgid, (rgid, egid, sgid))
    ids = _dumpable_ids(p)
    if new is not None:
        p.gid, p.egid, p.sgid = new
        p.fsgid = p.egid
    _bind_host(p, ids)
    return 0


@syscall("setfsuid", PARTIAL, note=ID_NOTE)
def setfsuid(k, fsuid: UInt) -> int:
    """setfsuid(2): always returns the previous fsuid; changes it when allowed."""
    p = _creds(k)
    old, ids = p.fsuid, _dumpable_ids(p)
    if fsuid != NO_ID and fsuid != old and (fsuid in (p.uid, p.euid, p.suid) or capable(k, CAP_SETUID)):
        p.fsuid = fsuid
        _fix_fsuid(p, old)
    _bind_host(p, ids)
    return old


@syscall("setfsgid", PARTIAL, note=ID_NOTE)
def setfsgid(k, fsgid: UInt) -> int:
    p = _creds(k)
    old, ids = p.fsgid, _dumpable_ids(p)
    if fsgid != NO_ID and fsgid != old and (fsgid in (p.gid, p.egid, p.sgid) or capable(k, CAP_SETGID)):
        p.fsgid = fsgid
    _bind_host(p, ids)
    return old


@syscall("setgroups", PARTIAL, note=ID_NOTE)
def setgroups(k, size: Int, grouplist: Ptr) -> int:
    """setgroups(2): needs CAP_SETGID; the list is kept sorted, as groups_sort() does."""
    if not capable(k, CAP_SETGID):
        raise SyscallError(EPERM)
    if size & 0xFFFFFFFF > NGROUPS_MAX:
        raise SyscallError(EINVAL)
    data = k.mem.read(grouplist, 4 * size) if size else b""
    groups = sorted(struct.unpack(f"<{size}I", data))
    if NO_ID in groups:
        raise SyscallError(EINVAL)
    p = _creds(k)
    p.groups = groups
    _bind_host(p, _dumpable_ids(p))
    return 0


# -- priority, personality ---------------------------------------------------------------------------
PRIO_PROCESS, PRIO_PGRP, PRIO_USER = 0, 1, 2
PRIO_WHICH = Enum({0: "PRIO_PROCESS", 1: "PRIO_PGRP", 2: "PRIO_USER"})
MIN_NICE, MAX_NICE = -20, 19


@syscall("getpriority", FULL)
def getpriority(k, which: PRIO_WHICH, who: Int) -> int:
    """getpriority(2): the raw syscall's 20 - nice, asked of the host, whose pid space the guest shares (the
    guest's own process is the hermipy process, and its group and user are the host's)."""
    if which == PRIO_USER and who == 0:
        who = k.proc.uid
    return host_syscall("getpriority", which, who)


@syscall("setpriority", PARTIAL, note="the guest itself (PRIO_PROCESS of its pid, or its own process group or user) "
                                      "renices just the hermipy thread running it; other processes, groups and "
                                      "users are the host's call (under --root another run's process is ESRCH)")
def setpriority(k, which: PRIO_WHICH, who: Int, niceval: Int) -> int:
    """setpriority(2) with set_one_prio()'s check: a lower nice needs RLIMIT_NICE room or CAP_SYS_NICE."""
    if which not in (PRIO_PROCESS, PRIO_PGRP, PRIO_USER):
        raise SyscallError(EINVAL)
    niceval = min(max(niceval, MIN_NICE), MAX_NICE)
    own = {PRIO_PROCESS: k.proc.pid, PRIO_PGRP: os.getpgrp(), PRIO_USER: k.proc.uid}[which]
    if who not in (0, own):
        if which == PRIO_PROCESS:
            _sched_target(k, who)
        return host_syscall("setpriority", which, who, niceval)
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if niceval < current:
        limit = k.proc.rlimits.get(13, [0, 0])[0]                  # RLIMIT_NICE, as 20 - nice
        if 20 - niceval > limit and not capable(k, CAP_SYS_NICE):
            raise SyscallError(13)                                  # EACCES
    os.setpriority(os.PRIO_PROCESS, 0, niceval)
    return 0


# -- scheduling policy and I/O priority (kernel/sched/syscalls.c, block/ioprio.c) -----------------------
SCHED_OTHER, SCHED_FIFO, SCHED_RR, SCHED_BATCH, SCHED_IDLE, SCHED_DEADLINE = 0, 1, 2, 3, 5, 6
SCHED_RESET_ON_FORK = 0x40000000
SCHED_POLICY = Enum({0: "SCHED_OTHER", 1: "SCHED_FIFO", 2: "SCHED_RR", 3: "SCHED_BATCH", 5: "SCHED_IDLE",
                     6: "SCHED_DEADLINE", 0x40000000: "SCHED_OTHER|SCHED_RESET_ON_FORK",
                     0x40000001: "SCHED_FIFO|SCHED_RESET_ON_FORK", 0x40000002: "SCHED_RR|SCHED_RESET_ON_FORK"})
SCHED_ATTR_SIZE_VER0 = 48
RLIMIT_NICE, RLIMIT_RTPRIO = 13, 14
BAD_HOST_POINTER = 8           # never mapped in hermipy's process: the host answers EFAULT where it checks
SCHED_NOTE = ("the host's call on the host thread behind the guest pid or tid (they are the host's); the host checks "
              "permissions with hermipy's credentials, and for a guest without CAP_SYS_NICE hermipy adds "
              "Linux's: EPERM for another user's process, a real-time priority above RLIMIT_RTPRIO and a nice value "
              "below RLIMIT_NICE's")


def _sched_target(k, pid: int) -> int:
    """A pid for a host sched_* call: 0 (the calling task's host thread) and guest pids and tids are the host's;
    under --root another run's process is ESRCH (sys_signal._visible). Negative: left to the host (EINVAL)."""
    if pid > 0 and pid != k.proc.pid and pid not in k.group.tasks:
        from hermipy.syscalls.sys_signal import _visible
        _visible(k, pid)
    return pid


def _may_change(k, pid: int, policy: int | None, priority: int, nice: int | None = None) -> None:
    """__sched_setscheduler()'s user checks, for a guest without CAP_SYS_NICE whose credentials the host does
    not see (hermipy's own may be root's): a real-time priority above RLIMIT_RTPRIO, a nice value below the
    current one beyond RLIMIT_NICE, or another user's process (check_same_owner: the caller's euid is the
    target's uid or euid), is EPERM."""
    if capable(k, CAP_SYS_NICE):
        return
    if policy in (SCHED_FIFO, SCHED_RR) and priority > k.proc.rlimits.get(RLIMIT_RTPRIO, [0, 0])[0]:
        raise SyscallError(EPERM)
    if (nice is not None and policy not in (SCHED_FIFO, SCHED_RR) and nice < os.getpriority(os.PRIO_PROCESS, 0)
            and 20 - nice > k.proc.rlimits.get(RLIMIT_NICE, [0, 0])[0]):
        raise SyscallError(EPERM)
    if pid > 0 and pid != k.proc.pid and pid not in k.group.tasks:
        try:
            with open(f"/proc/{pid}/status", "rb") as f:
                uids = next(line.split()[1:3] for line in f if line.startswith(b"Uid:"))
        except (OSError, StopIteration):
            return                                  # gone: the host says ESRCH
        if k.proc.euid not in (int(uids[0]), int(uids[1])):
            raise SyscallError(EPERM)


def _param_in(k, addr: int):
    """A guest struct sched_param * for the host: NULL stays NULL (EINVAL), an unreadable one a bad address."""
    if not addr:
        return None
    try:
        return ctypes.c_int(struct.unpack("<i", k.mem.read(addr, 4))[0])
    except SyscallError:
        return BAD_HOST_POINTER


@syscall("sched_setparam", PARTIAL, note=SCHED_NOTE)
def sched_setparam(k, pid: Int, param: Ptr) -> int:
    """sched_setparam(2)."""
    value = _param_in(k, param)
    if isinstance(value, ctypes.c_int) and pid >= 0 and not capable(k, CAP_SYS_NICE):
        _may_change(k, pid, host_syscall("sched_getscheduler", _sched_target(k, pid)) & ~SCHED_RESET_ON_FORK,
                    value.value)
    return host_syscall("sched_setparam", _sched_target(k, pid), value)


@syscall("sched_getparam", FULL)
def sched_getparam(k, pid: Int, param: Ptr) -> int:
    """sched_getparam(2): the host's answer for the host thread, copied out."""
    value = ctypes.c_int(0) if param else None
    host_syscall("sched_getparam", _sched_target(k, pid), value)
    k.mem.write(param, struct.pack("<i", value.value))
    return 0


@syscall("sched_setscheduler", PARTIAL, note=SCHED_NOTE)
def sched_setscheduler(k, pid: Int, policy: SCHED_POLICY, param: Ptr) -> int:
    """sched_setscheduler(2)."""
    value = _param_in(k, param)
    if isinstance(value, ctypes.c_int) and pid >= 0 and policy >= 0:
        _may_change(k, pid, policy & ~SCHED_RESET_ON_FORK, value.value)
    return host_syscall("sched_setscheduler", _sched_target(k, pid), policy, value)


@syscall("sched_getscheduler", FULL)
def sched_getscheduler(k, pid: Int) -> int:
    """sched_getscheduler(2)."""
    return host_syscall("sched_getscheduler", _sched_target(k, pid))


@syscall("sched_get_priority_max", FULL)
def sched_get_priority_max(k, policy: SCHED_POLICY) -> int:
    """sched_get_priority_max(2)."""
    return host_syscall("sched_get_priority_max", policy)


@syscall("sched_get_priority_min", FULL)
def sched_get_priority_min(k, policy: SCHED_POLICY) -> int:
    """sched_get_priority_min(2)."""
    return host_syscall("sched_get_priority_min", policy)


@syscall("sched_rr_get_interval", FULL)
def sched_rr_get_interval(k, pid: Int, interval: Ptr) -> int:
    """sched_rr_get_interval(2): the host's time slice for the host thread."""
    ts = ctypes.c_int64 * 2
    value = ts()
    host_syscall("sched_rr_get_interval", _sched_target(k, pid), value)
    k.mem.write(interval, struct.pack("<qq", value[0], value[1]))
    return 0


@syscall("sched_getattr", FULL)
def sched_getattr(k, pid: Int, attr: Ptr, size: UInt, flags: UInt) -> int:
    """sched_getattr(2): the host fills a buffer of the guest's size (what it knows, its size, zeros after it:
    copy_struct_to_user), which goes to the guest whole."""
    if not attr or pid < 0 or size > PAGE_SIZE or size < SCHED_ATTR_SIZE_VER0 or flags:
        raise SyscallError(EINVAL)
    buf = ctypes.create_string_buffer(size)
    host_syscall("sched_getattr", _sched_target(k, pid), buf, size, 0)
    k.mem.write(attr, buf.raw)
    return 0


@syscall("sched_setattr", PARTIAL, note=SCHED_NOTE)
def sched_setattr(k, pid: Int, attr: Ptr, flags: UInt) -> int:
    """sched_setattr(2): the guest's struct sched_attr (its size field says how much; 0 is the first version's)
    goes to the host, which checks it (E2BIG with the size it knows written back, EINVAL...)."""
    if not attr or pid < 0 or flags:
        raise SyscallError(EINVAL)
    size = struct.unpack("<I", k.mem.read(attr, 4))[0]
    length = SCHED_ATTR_SIZE_VER0 if size == 0 else size if size <= PAGE_SIZE else 4
    buf = ctypes.create_string_buffer(k.mem.read(attr, length), max(length, SCHED_ATTR_SIZE_VER0))
    policy, _flags, nice, priority = struct.unpack_from("<IQiI", buf.raw, 4)
    _may_change(k, pid, policy, priority, nice)
    try:
        return host_syscall("sched_setattr", _sched_target(k, pid), buf, 0)
    except OSError as err:
        if err.errno == E2BIG:
            k.mem.write(attr, buf.raw[:4])
        raise


IOPRIO_WHO = Enum({1: "IOPRIO_WHO_PROCESS", 2: "IOPRIO_WHO_PGRP", 3: "IOPRIO_WHO_USER"})
IOPRIO_WHO_PROCESS = 1


@syscall("ioprio_get", FULL)
def ioprio_get(k, which: IOPRIO_WHO, who: Int) -> int:
    """ioprio_get(2): the host's, for the host thread, process group or user the guest names (they are the host's)."""
    if which == IOPRIO_WHO_PROCESS:
        who = _sched_target(k, who)
    return host_syscall("ioprio_get", which, who)


@syscall("ioprio_set", PARTIAL, note="the host's call: its permission checks are for hermipy's credentials")
def ioprio_set(k, which: IOPRIO_WHO, who: Int, ioprio: Int) -> int:
    """ioprio_set(2) on the host thread, process group or user the guest names."""
    if which == IOPRIO_WHO_PROCESS:
        who = _sched_target(k, who)
    return host_syscall("ioprio_set", which, who, ioprio)


PER_QUERY = 0xFFFFFFFF


@syscall("personality", PARTIAL, note="the persona is recorded and reported back; its flags (ADDR_NO_RANDOMIZE, "
                                      "READ_IMPLIES_EXEC, ...) do not change how hermipy runs the guest")
def personality(k, persona: UInt) -> int:
    """personality(2): returns the previous persona; 0xffffffff only queries."""
    p = k.proc
    if not hasattr(p, "personality"):
        p.personality = host_syscall("personality", PER_QUERY) & 0xFFFFFFFF
    old = p.personality
    if persona != PER_QUERY:
        p.personality = persona
    return old


# -- Linux security modules: the host's ----------------------------------------------------------------
LSM_ATTR_MAX_SIZE = 1 << 16              # what hermipy copies of an attribute buffer (the host says E2BIG above)
LSM_CTX_SIZE = 32                        # uapi/linux/lsm.h: struct lsm_ctx without its ctx[]


def _lsm_sized_call(k, name: str, first: int, buf: int, size_ptr: int, flags: int) -> int:
    """lsm_list_modules / lsm_get_self_attr, the host's checks in the host's order: ``*size_ptr`` and ``buf``
    go to the host as copies (a pointer the guest cannot use as one the host cannot either:
    BAD_HOST_POINTER), and come back with what the host wrote (the size also when it says E2BIG)."""
    try:
        size = ctypes.c_uint32(int.from_bytes(k.mem.read(size_ptr, 4), "little"))
    except SyscallError:
        size = None
    length = min(size.value, LSM_ATTR_MAX_SIZE) if size is not None else 0
    out = None
    if buf and length:
        try:
            out = ctypes.create_string_buffer(k.mem.read(buf, length), length)
        except SyscallError:
            out = None
    host_buf = out if out is not None else (BAD_HOST_POINTER if buf else None)
    host_size = size if size is not None else (BAD_HOST_POINTER if size_ptr else None)
    args = (host_buf, host_size, flags) if name == "lsm_list_modules" else (first, host_buf, host_size, flags)
    try:
        result = host_syscall(name, *args)
    finally:
        if size is not None:
            k.mem.write(size_ptr, size.value.to_bytes(4, "little"))
    if out is not None and result > 0:
        k.mem.write(buf, out.raw[:min(size.value, length)])
    return result


@syscall("lsm_list_modules", FULL)
def lsm_list_modules(k, ids: Ptr, size: Ptr, flags: UInt) -> int:
    """lsm_list_modules(2) (6.8): the host's modules' ids."""
    return _lsm_sized_call(k, "lsm_list_modules", 0, ids, size, flags)


@syscall("lsm_get_self_attr", FULL)
def lsm_get_self_attr(k, attr: UInt, ctx: Ptr, size: Ptr, flags: UInt) -> int:
    """lsm_get_self_attr(2) (6.8): hermipy's process is the guest's, so its attributes are the guest's."""
    return _lsm_sized_call(k, "lsm_get_self_attr", attr, ctx, size, flags)


@syscall("lsm_set_self_attr", FULL)
def lsm_set_self_attr(k, attr: UInt, ctx: Ptr, size: UInt, flags: UInt) -> int:
    """lsm_set_self_attr(2) (6.8): on hermipy's process, which is the guest's (security_setselfattr's checks
    first)."""
    if flags or size < LSM_CTX_SIZE:
        raise SyscallError(EINVAL)
    if size > PAGE_SIZE:
        raise SyscallError(E2BIG)
    data = ctypes.create_string_buffer(k.mem.read(ctx, min(size, LSM_ATTR_MAX_SIZE)), max(1, min(size,
                                                                                          LSM_ATTR_MAX_SIZE)))
    return host_syscall("lsm_set_self_attr", attr, data, size, flags)
