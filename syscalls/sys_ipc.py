"""System V IPC: shared memory, semaphores, message queues (ipc/shm.c, ipc/sem.c, ipc/msg.c; svipc(7)).

The guest lives in the host's IPC namespace, as it sees the host's files: every call is the host's, with the
guest's structs copied in and out, so keys, ids, permissions (with the guest's credentials as the host process
carries them), SEM_UNDO (undone when the hermipy process, the guest process, exits), IPC_INFO limits and
/proc/sysvipc are Linux's own, and two hermipy runs -- or a hermipy run and a native program -- share segments,
semaphores and queues. Under --root too: isolate a run's IPC with ``unshare --ipc`` around hermipy.

shmat attaches the segment on the host into hermipy's window area (memory.PhysicalMemory.open_shm_window) and
maps that window into the guest, so the guest's pages are the segment's own: shared with every other attach,
counted in shm_nattch once per guest attach, inherited by fork, detached at exec and exit. Blocking calls
(semop, semtimedop, msgsnd, msgrcv) are interrupted by a kick and, as signal(7) says, never restarted.
"""
import ctypes
import struct
import time
from errno import EINVAL

from hermipy.layout import PAGE_SIZE
from hermipy.syscalls.argtypes import Enum, Flags, Int, Long, Ptr, Size
from hermipy.syscalls.errors import SyscallError
from hermipy.syscalls.host import host_syscall
from hermipy.syscalls.memory import PROT_EXEC, PROT_READ, PROT_WRITE
from hermipy.syscalls.table import FULL, PARTIAL, syscall

IPC_PRIVATE = 0
IPC_RMID, IPC_SET, IPC_STAT, IPC_INFO = 0, 1, 2, 3
SHM_RDONLY, SHM_RND, SHM_REMAP, SHM_EXEC = 0o10000, 0o20000, 0o40000, 0o100000
SHM_LOCK, SHM_UNLOCK, SHM_STAT, SHM_INFO, SHM_STAT_ANY = 11, 12, 13, 14, 15
GETPID, GETVAL, GETALL, GETNCNT, GETZCNT, SETVAL, SETALL = 11, 12, 13, 14, 15, 16, 17
SEM_STAT, SEM_INFO, SEM_STAT_ANY = 18, 19, 20
MSG_STAT, MSG_INFO, MSG_STAT_ANY = 11, 12, 13
IPC_64 = 0x100                     # glibc passes it with every *ctl command; the kernel ignores it on x86-64
SHMLBA = PAGE_SIZE
SEMOPM = 500                       # the most sembufs one semop may carry before E2BIG (ipc/sem.c: sc_semopm)
# Struct sizes on x86-64 (uapi asm-generic/shmbuf.h, sembuf.h, msgbuf.h; linux/sem.h, msg.h, shm.h).
SHMID_DS, SEMID_DS, MSQID_DS = 112, 104, 120
SEMINFO, SHMINFO, SHM_INFO_SIZE, MSGINFO = 40, 72, 48, 32
SHM_SEGSZ_OFFSET, SEM_NSEMS_OFFSET = 48, 80
SEMBUF = 6                         # struct sembuf {unsigned short sem_num; short sem_op; short sem_flg}

SHMAT_FLAGS = Flags({SHM_RDONLY: "SHM_RDONLY", SHM_RND: "SHM_RND", SHM_REMAP: "SHM_REMAP", SHM_EXEC: "SHM_EXEC"})
GET_FLAGS = Flags({0o1000: "IPC_CREAT", 0o2000: "IPC_EXCL", 0o4000: "SHM_HUGETLB", 0o10000: "SHM_NORESERVE"})
SHM_CMDS = Enum({IPC_RMID: "IPC_RMID", IPC_SET: "IPC_SET", IPC_STAT: "IPC_STAT", IPC_INFO: "IPC_INFO",
                 SHM_LOCK: "SHM_LOCK", SHM_UNLOCK: "SHM_UNLOCK", SHM_STAT: "SHM_STAT", SHM_INFO: "SHM_INFO",
                 SHM_STAT_ANY: "SHM_STAT_ANY"})
SEM_CMDS = Enum({IPC_RMID: "IPC_RMID", IPC_SET: "IPC_SET", IPC_STAT: "IPC_STAT", IPC_INFO: "IPC_INFO",
                 GETPID: "GETPID", GETVAL: "GETVAL", GETALL: "GETALL", GETNCNT: "GETNCNT", GETZCNT: "GETZCNT",
                 SETVAL: "SETVAL", SETALL: "SETALL", SEM_STAT: "SEM_STAT", SEM_INFO: "SEM_INFO",
                 SEM_STAT_ANY: "SEM_STAT_ANY"})
MSG_CMDS = Enum({IPC_RMID: "IPC_RMID", IPC_SET: "IPC_SET", IPC_STAT: "IPC_STAT", IPC_INFO: "IPC_INFO",
                 MSG_STAT: "MSG_STAT", MSG_INFO: "MSG_INFO", MSG_STAT_ANY: "MSG_STAT_ANY"})
MSG_FLAGS = Flags({0o4000: "IPC_NOWAIT", 0o10000: "MSG_NOERROR", 0o20000: "MSG_EXCEPT", 0o40000: "MSG_COPY"})

NAMESPACE_NOTE = "the host's IPC namespace (also under --root)"


def _buffer(data: bytes | int) -> ctypes.Array:
    return ctypes.create_string_buffer(data, len(data)) if isinstance(data, bytes) else ctypes.create_string_buffer(data)


def _blocking(name: str, *args) -> int:
    """A host IPC call that may sleep: a kick ends it with EINTR, and it is never restarted (signal(7))."""
    from hermipy.syscalls.kicks import interrupted
    started = time.monotonic()
    try:
        return host_syscall(name, *args)
    except InterruptedError:
        raise interrupted(started) from None


def _ctl(k, name: str, ident: int, cmd: int, buf: int, size_in: int, size_out: int) -> int:
    """A *ctl call with a struct argument: copied from the guest before the call (as the kernel's
    copy_*_from_user comes first), to the guest after it (copy_to_user comes last: EINVAL before EFAULT)."""
    data = _buffer(k.mem.read(buf, size_in)) if size_in else _buffer(max(size_out, 1))
    result = host_syscall(name, ident, cmd, data)
    if size_out:
        k.mem.write(buf, data.raw[:size_out])
    return result


# -- shared memory --------------------------------------------------------------------------------------
@syscall("shmget", FULL, note=NAMESPACE_NOTE)
def shmget(k, key: Int, size: Size, shmflg: GET_FLAGS) -> int:
    """shmget(2)."""
    return host_syscall("shmget", key, size, shmflg)


@syscall("shmat", PARTIAL, note=NAMESPACE_NOTE + "; the segment's pages are the host's, attached in hermipy's "
                                                 "window area; mremap may move or grow an attach (the pages past "
                                                 "the segment are SIGBUS) but not make a second one")
def shmat(k, shmid: Int, shmaddr: Ptr, shmflg: SHMAT_FLAGS) -> int:
    """shmat(2) (ipc/shm.c do_shmat): the host checks the id and the permissions as it attaches."""
    if shmaddr:
        if shmaddr % SHMLBA:
            if not shmflg & SHM_RND:
                raise SyscallError(EINVAL)
            shmaddr -= shmaddr % SHMLBA
            if not shmaddr:
                raise SyscallError(EINVAL)
    elif shmflg & SHM_REMAP:
        raise SyscallError(EINVAL)
    stat = _buffer(SHMID_DS)
    host_syscall("shmctl", shmid, IPC_STAT, stat)       # EINVAL/EIDRM for a bad id (its EACCES: shmat's below)
    size, = struct.unpack_from("<Q", stat.raw, SHM_SEGSZ_OFFSET)
    key, = struct.unpack_from("<i", stat.raw, 0)
    prot = PROT_READ | (0 if shmflg & SHM_RDONLY else PROT_WRITE) | (PROT_EXEC if shmflg & SHM_EXEC else 0)
    return k.mem.attach_segment(shmid, size, shmaddr, prot, bool(shmflg & SHM_REMAP),
                                f"/SYSV{key & 0xFFFFFFFF:08x} (deleted)")


@syscall("shmdt", FULL)
def shmdt(k, shmaddr: Ptr) -> int:
    """shmdt(2)."""
    if shmaddr % SHMLBA:
        raise SyscallError(EINVAL)
    k.mem.detach_segment(shmaddr)
    return 0


@syscall("shmctl", FULL, note=NAMESPACE_NOTE)
def shmctl(k, shmid: Int, cmd: SHM_CMDS, buf: Ptr) -> int:
    """shmctl(2)."""
    cmd &= ~IPC_64
    if cmd in (IPC_STAT, SHM_STAT, SHM_STAT_ANY):
        return _ctl(k, "shmctl", shmid, cmd, buf, 0, SHMID_DS)
    if cmd == IPC_SET:
        return _ctl(k, "shmctl", shmid, cmd, buf, SHMID_DS, 0)
    if cmd == IPC_INFO:
        return _ctl(k, "shmctl", shmid, cmd, buf, 0, SHMINFO)
    if cmd == SHM_INFO:
        return _ctl(k, "shmctl", shmid, cmd, buf, 0, SHM_INFO_SIZE)
    return host_syscall("shmctl", shmid, cmd, buf)      # IPC_RMID, SHM_LOCK, SHM_UNLOCK, and what is EINVAL


# -- semaphores -----------------------------------------------------------------------------------------
@syscall("semget", FULL, note=NAMESPACE_NOTE)
def semget(k, key: Int, nsems: Int, semflg: GET_FLAGS) -> int:
    """semget(2)."""
    return host_syscall("semget", key, nsems, semflg)


def _sops(k, sops: int, nsops: int) -> ctypes.Array:
    if nsops < 1:
        raise SyscallError(EINVAL)
    if nsops > SEMOPM:
        from errno import E2BIG
        raise SyscallError(E2BIG)
    return _buffer(k.mem.read(sops, SEMBUF * nsops))


@syscall("semop", FULL, note=NAMESPACE_NOTE)
def semop(k, semid: Int, sops: Ptr, nsops: Size) -> int:
    """semop(2)."""
    return _blocking("semtimedop", semid, _sops(k, sops, nsops), nsops, None)


@syscall("semtimedop", FULL, note=NAMESPACE_NOTE)
def semtimedop(k, semid: Int, sops: Ptr, nsops: Size, timeout: Ptr) -> int:
    """semtimedop(2): the relative timeout copied in after the operations, as do_semtimedop does."""
    ops = _sops(k, sops, nsops)
    limit = _buffer(k.mem.read(timeout, 16)) if timeout else None
    return _blocking("semtimedop", semid, ops, nsops, limit)


@syscall("semctl", FULL, note=NAMESPACE_NOTE)
def semctl(k, semid: Int, semnum: Int, cmd: SEM_CMDS, arg: Long) -> int:
    """semctl(2): ``arg`` is union semun -- an int for SETVAL, a pointer for the others that take one."""
    cmd &= ~IPC_64
    if cmd in (IPC_STAT, SEM_STAT, SEM_STAT_ANY, IPC_SET):
        data = _buffer(k.mem.read(arg, SEMID_DS)) if cmd == IPC_SET else _buffer(SEMID_DS)
        result = host_syscall("semctl", semid, semnum, cmd, data)
        if cmd != IPC_SET:
            k.mem.write(arg, data.raw)
        return result
    if cmd in (IPC_INFO, SEM_INFO):
        data = _buffer(SEMINFO)
        result = host_syscall("semctl", semid, semnum, cmd, data)
        k.mem.write(arg, data.raw)
        return result
    if cmd in (GETALL, SETALL):
        stat = _buffer(SEMID_DS)
        host_syscall("semctl", semid, 0, IPC_STAT, stat)    # the set's size (and EINVAL/EIDRM/EACCES first)
        nsems, = struct.unpack_from("<Q", stat.raw, SEM_NSEMS_OFFSET)
        if cmd == SETALL:
            return host_syscall("semctl", semid, semnum, cmd, _buffer(k.mem.read(arg, 2 * nsems)))
        data = _buffer(2 * nsems)
        result = host_syscall("semctl", semid, semnum, cmd, data)
        k.mem.write(arg, data.raw)
        return result
    return host_syscall("semctl", semid, semnum, cmd, arg & 0xFFFFFFFF if cmd == SETVAL else arg)


# -- message queues -------------------------------------------------------------------------------------
@syscall("msgget", FULL, note=NAMESPACE_NOTE)
def msgget(k, key: Int, msgflg: GET_FLAGS) -> int:
    """msgget(2)."""
    return host_syscall("msgget", key, msgflg)


@syscall("msgsnd", FULL, note=NAMESPACE_NOTE)
def msgsnd(k, msqid: Int, msgp: Ptr, msgsz: Long, msgflg: MSG_FLAGS) -> int:
    """msgsnd(2): struct msgbuf is the long mtype and then msgsz bytes."""
    if msgsz < 0:
        raise SyscallError(EINVAL)
    if msgsz > 1 << 20:                          # past any MSGMAX the host allows: its EINVAL, not a copy
        return host_syscall("msgsnd", msqid, None, msgsz, msgflg)
    return _blocking("msgsnd", msqid, _buffer(k.mem.read(msgp, 8 + msgsz)), msgsz, msgflg)


@syscall("msgrcv", FULL, note=NAMESPACE_NOTE)
def msgrcv(k, msqid: Int, msgp: Ptr, msgsz: Long, msgtyp: Long, msgflg: MSG_FLAGS) -> int:
    """msgrcv(2): the message (mtype, then at most msgsz bytes) is written to the guest once received."""
    if msgsz < 0:
        raise SyscallError(EINVAL)
    data = _buffer(8 + min(msgsz, 1 << 20))
    got = _blocking("msgrcv", msqid, data, min(msgsz, 1 << 20), msgtyp, msgflg)
    k.mem.write(msgp, data.raw[:8 + got])
    return got


@syscall("msgctl", FULL, note=NAMESPACE_NOTE)
def msgctl(k, msqid: Int, cmd: MSG_CMDS, buf: Ptr) -> int:
    """msgctl(2)."""
    cmd &= ~IPC_64
    if cmd in (IPC_STAT, MSG_STAT, MSG_STAT_ANY):
        return _ctl(k, "msgctl", msqid, cmd, buf, 0, MSQID_DS)
    if cmd == IPC_SET:
        return _ctl(k, "msgctl", msqid, cmd, buf, MSQID_DS, 0)
    if cmd in (IPC_INFO, MSG_INFO):
        return _ctl(k, "msgctl", msqid, cmd, buf, 0, MSGINFO)
    return host_syscall("msgctl", msqid, cmd, buf)
