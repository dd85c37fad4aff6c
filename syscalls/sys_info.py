"""System information and resource limits: uname, sysinfo, rlimits, rusage, times, affinity, getrandom
(kernel/sys.c, kernel/sched/core.c, drivers/char/random.c)."""
import os
import resource
import struct
from errno import EFAULT, EINVAL, EPERM, ESRCH

from hermipy.syscalls.argtypes import Enum, Int, Ptr, Size, UInt
from hermipy.syscalls.errors import SyscallError
from hermipy.syscalls.kernel import RLIM_INFINITY
from hermipy.syscalls.table import FULL, PARTIAL, syscall

UTS_FIELD = 65
RLIMITS = {0: "RLIMIT_CPU", 1: "RLIMIT_FSIZE", 2: "RLIMIT_DATA", 3: "RLIMIT_STACK", 4: "RLIMIT_CORE",
           5: "RLIMIT_RSS", 6: "RLIMIT_NPROC", 7: "RLIMIT_NOFILE", 8: "RLIMIT_MEMLOCK", 9: "RLIMIT_AS",
           10: "RLIMIT_LOCKS", 11: "RLIMIT_SIGPENDING", 12: "RLIMIT_MSGQUEUE", 13: "RLIMIT_NICE",
           14: "RLIMIT_RTPRIO", 15: "RLIMIT_RTTIME"}
RLIMIT_NOFILE = 7
NR_OPEN = 1 << 20                      # fs/file.c sysctl_nr_open default
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
    if pid not in (0, k.proc.pid):
        raise SyscallError(ESRCH if pid > 0 else EINVAL)


def _set_rlimit(k, resource_: int, soft: int, hard: int) -> None:
    """The guest's own limits; raising a hard limit needs CAP_SYS_RESOURCE (euid 0 here)."""
    if soft > hard:
        raise SyscallError(EINVAL)
    old = k.proc.rlimits.setdefault(resource_, [RLIM_INFINITY, RLIM_INFINITY])
    if hard > old[1] and k.proc.euid != 0:
        raise SyscallError(EPERM)
    if resource_ == RLIMIT_NOFILE:
        if hard > NR_OPEN and hard != RLIM_INFINITY or soft > NR_OPEN and soft != RLIM_INFINITY:
            raise SyscallError(EPERM)
        k.fds.limit = min(soft, NR_OPEN)
    old[:] = [soft, hard]


@syscall("prlimit64", FULL)
def prlimit64(k, pid: Int, resource_: Enum(RLIMITS), new_limit: Ptr, old_limit: Ptr) -> int:
    """prlimit(2) for this process (pid 0 or its own)."""
    _check_pid(k, pid)
    if resource_ not in RLIMITS:
        raise SyscallError(EINVAL)
    new = struct.unpack("<QQ", k.mem.read(new_limit, 16)) if new_limit else None
    current = k.proc.rlimits.get(resource_, [RLIM_INFINITY, RLIM_INFINITY])
    if old_limit:
        k.mem.write(old_limit, struct.pack("<QQ", *current))
    if new is not None:
        _set_rlimit(k, resource_, *new)
    return 0


@syscall("getrlimit", FULL)
def getrlimit(k, resource_: Enum(RLIMITS), rlim: Ptr) -> int:
    """getrlimit(2)."""
    if resource_ not in RLIMITS:
        raise SyscallError(EINVAL)
    k.mem.write(rlim, struct.pack("<QQ", *k.proc.rlimits.get(resource_, [RLIM_INFINITY, RLIM_INFINITY])))
    return 0


@syscall("setrlimit", FULL)
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
    r = resource.getrusage(resource.RUSAGE_CHILDREN if who == RUSAGE_CHILDREN else resource.RUSAGE_SELF)
    k.mem.write(usage, struct.pack("<4q14q", *_timeval(r.ru_utime), *_timeval(r.ru_stime), r.ru_maxrss, r.ru_ixrss,
                                   r.ru_idrss, r.ru_isrss, r.ru_minflt, r.ru_majflt, r.ru_nswap, r.ru_inblock,
                                   r.ru_oublock, r.ru_msgsnd, r.ru_msgrcv, r.ru_nsignals, r.ru_nvcsw, r.ru_nivcsw))
    return 0


@syscall("times", FULL)
def times(k, buf: Ptr) -> int:
    """times(2): struct tms in clock ticks; returns ticks since boot."""
    t = os.times()
    ticks = os.sysconf("SC_CLK_TCK")
    if buf:
        k.mem.write(buf, struct.pack("<4q", *(int(x * ticks) for x in (t.user, t.system, t.children_user,
                                                                         t.children_system))))
    return int(t.elapsed * ticks) & (1 << 63) - 1


@syscall("sched_getaffinity", FULL)
def sched_getaffinity(k, pid: Int, cpusetsize: Size, mask: Ptr) -> int:
    """sched_getaffinity(2): the host's mask; returns the kernel's cpumask size in bytes."""
    _check_pid(k, pid)
    cpus = os.sched_getaffinity(0)
    nbytes = max(8, ((max(cpus) // 64) + 1) * 8)
    if cpusetsize < nbytes or cpusetsize % 8:
        raise SyscallError(EINVAL)
    bits = sum(1 << c for c in cpus)
    k.mem.write(mask, bits.to_bytes(nbytes, "little"))
    return nbytes


@syscall("sched_setaffinity", PARTIAL, note="accepted when the mask keeps at least one host CPU; the guest has "
                                            "one vCPU, so nothing changes")
def sched_setaffinity(k, pid: Int, cpusetsize: Size, mask: Ptr) -> int:
    """sched_setaffinity(2)."""
    _check_pid(k, pid)
    bits = int.from_bytes(k.mem.read(mask, cpusetsize), "little")
    if not any(bits >> c & 1 for c in os.sched_getaffinity(0)):
        raise SyscallError(EINVAL)
    return 0


@syscall("sched_yield", FULL)
def sched_yield(k) -> int:
    os.sched_yield()
    return 0


@syscall("getcpu", FULL)
def getcpu(k, cpu: Ptr, node: Ptr, tcache: Ptr) -> int:
    """getcpu(2): the host CPU this process runs on; NUMA node 0."""
    if cpu:
        k.mem.write(cpu, struct.pack("<I", _current_cpu()))
    if node:
        k.mem.write(node, struct.pack("<I", 0))
    return 0


def _current_cpu() -> int:
    with open("/proc/self/stat", "rb") as f:
        return int(f.read().rsplit(b")", 1)[1].split()[36])


@syscall("getrandom", FULL)
def getrandom(k, buf: Ptr, count: Size, flags: UInt) -> int:
    """getrandom(2): the host's CSPRNG."""
    if flags & ~(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE) or flags & GRND_RANDOM and flags & GRND_INSECURE:
        raise SyscallError(EINVAL)
    count = min(count, 0x1FFFFFF)      # one call returns at most 32 MiB - 1
    k.mem.write(buf, os.urandom(count))
    return count
