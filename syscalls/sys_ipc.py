"""System V IPC: shared memory, semaphores, message queues (ipc/shm.c, ipc/sem.c, ipc/msg.c; svipc(7)); and
POSIX message queues (ipc/mqueue.c), the host's as well.

The guest lives in the host's IPC namespace, as it sees the host's files: every call is the host's, with the
guest's structs copied in and out, so keys, ids, permissions (with the guest's credentials as the host process
carries them), SEM_UNDO (undone when the hermipy process, the guest process, exits), IPC_INFO limits and
/proc/sysvipc are Linux's own, and two hermipy runs -- or a hermipy run and a native program -- share segments,
semaphores and queues. Under --root too: isolate a run's IPC with ``unshare --ipc`` around hermipy.

shmat attaches the segment on the host into hermipy's window area (memory.PhysicalMemory.open_shm_window) and
maps that window into the guest, so the guest's pages are the segment's own: shared with every other attach,
counted in shm_nattch once per guest attach, inherited by fork, detached at exec and exit. Blocking calls
(semop, semtimedop, msgsnd, msgrcv) are interrupted by a kick and, as signal(7) says, never restarted after a
handler; a stop fails semop/semtimedop with EINTR and leaves msgsnd/msgrcv waiting.
"""
import ctypes
import struct
import time
from errno import EINVAL

from hermipy.layout import PAGE_SIZE
from hermipy.syscalls.argtypes import Enum, Flags, Int, Long, OpenMode, Ptr, Size, UInt
from hermipy.syscalls.errors import ERESTARTNOHAND, SyscallError
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
SEMOPM_MAX = 1 << 16               # more sembufs than any SEMOPM (ipc/sem.c sc_semopm; 500 by default) allows
# Struct sizes on x86-64 (uapi asm-generic/shmbuf.h, sembuf.h, msgbuf.h; linux/sem.h, msg.h, shm.h).
SHMID_DS, SEMID_DS, MSQID_DS = 112, 104, 120
SEMINFO, SHMINFO, SHM_INFO_SIZE, MSGINFO = 40, 72, 48, 32
SHM_SEGSZ_OFFSET, SEM_NSEMS_OFFSET = 48, 80
IPCMNI_MASK = (1 << 15) - 1        # an id's index in its namespace's table (ipc/util.h ipcid_to_idx)
MSGINFO_MSGMAX_OFFSET = 8
MSGMAX_DEFAULT = 8192              # include/uapi/linux/msg.h MSGMAX: sizes up to it need not ask for the host's
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

NAMESPACE_NOTE = ("the host's IPC namespace (also under --root); ownership and permission checks are hermipy's "
                  "process's credentials (a guest's set*id does not change them)")


def _buffer(data: bytes | int) -> ctypes.Array:
    if isinstance(data, bytes):
        return ctypes.create_string_buffer(data, len(data))
    return ctypes.create_string_buffer(data)


def _blocking(name: str, *args) -> int:
    """A host IPC call that may sleep, ended by a kick. signal(7): none is restarted after a handler; a stop and
    continue fails semop/semtimedop with EINTR (ipc/sem.c: -EINTR, also for a stop) but lets msgsnd/msgrcv go on
    (ipc/msg.c: -ERESTARTNOHAND, which the host restarts itself when hermipy's process is continued)."""
    from hermipy.syscalls.kicks import STOP_SENSITIVE, interrupted
    from hermipy.syscalls.sys_signal import current_task
    task = current_task()
    started = STOP_SENSITIVE[task] = time.monotonic()
    try:
        return host_syscall(name, *args)
    except InterruptedError:
        if name.startswith("msg"):
            raise SyscallError(ERESTARTNOHAND) from None
        raise interrupted(started) from None
    finally:
        STOP_SENSITIVE.pop(task, None)


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
                                                 "the segment are SIGBUS) but not make a second one; a fixed "
                                                 "address over a mapping without SHM_REMAP is EINVAL before a "
                                                 "write/execute permission's EACCES (Linux: after)")
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


def _readable(k, addr: int, length: int) -> ctypes.Array | None:
    """The guest's ``length`` bytes at ``addr`` for a host call, or None (NULL) when they are not all readable:
    the host then fails the call with the errors it checks before its copy_from_user, else with EFAULT."""
    try:
        return _buffer(k.mem.read(addr, length))
    except SyscallError:
        return None


def _semtimedop(k, semid: int, sops: int, nsops: int, limit: ctypes.Array | None) -> int:
    """do_semtimedop: nsops (EINVAL below 1, E2BIG above the host's SEMOPM) and the id before the operations'
    copy; beyond SEMOPM_MAX none is read (the host's E2BIG for any limit it can have). nsops is an unsigned int."""
    nsops &= 0xFFFFFFFF
    ops = _readable(k, sops, SEMBUF * nsops) if 0 < nsops <= SEMOPM_MAX else None
    return _blocking("semtimedop", semid, ops, nsops, limit)


@syscall("semop", FULL, note=NAMESPACE_NOTE)
def semop(k, semid: Int, sops: Ptr, nsops: Size) -> int:
    """semop(2)."""
    return _semtimedop(k, semid, sops, nsops, None)


@syscall("semtimedop", FULL, note=NAMESPACE_NOTE)
def semtimedop(k, semid: Int, sops: Ptr, nsops: Size, timeout: Ptr) -> int:
    """semtimedop(2): the relative timeout is copied in first (ksys_semtimedop), checked after the operations."""
    limit = _buffer(k.mem.read(timeout, 16)) if timeout else None
    return _semtimedop(k, semid, sops, nsops, limit)


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
        nsems = _nsems(semid)
        if cmd == SETALL:                                   # EACCES (alter permission) before EFAULT
            return host_syscall("semctl", semid, semnum, cmd, _readable(k, arg, 2 * nsems))
        data = _buffer(2 * nsems)
        result = host_syscall("semctl", semid, semnum, cmd, data)
        k.mem.write(arg, data.raw)
        return result
    return host_syscall("semctl", semid, semnum, cmd, arg & 0xFFFFFFFF if cmd == SETVAL else arg)


def _nsems(semid: int) -> int:
    """The size of set ``semid`` (EINVAL/EIDRM for a bad id): IPC_STAT needs read permission, which SETALL does
    not, so without it SEM_STAT_ANY (no permission check, as /proc/sysvipc/sem) at the id's index."""
    stat = _buffer(SEMID_DS)
    try:
        host_syscall("semctl", semid, 0, IPC_STAT, stat)
    except PermissionError:
        if semid < 0 or host_syscall("semctl", semid & IPCMNI_MASK, 0, SEM_STAT_ANY, stat) != semid:
            raise
    return struct.unpack_from("<Q", stat.raw, SEM_NSEMS_OFFSET)[0]


# -- message queues -------------------------------------------------------------------------------------
@syscall("msgget", FULL, note=NAMESPACE_NOTE)
def msgget(k, key: Int, msgflg: GET_FLAGS) -> int:
    """msgget(2)."""
    return host_syscall("msgget", key, msgflg)


def _msgmax() -> int:
    """The host's MSGMAX (its IPC namespace's msg_ctlmax): no message is longer."""
    info = _buffer(MSGINFO)
    host_syscall("msgctl", 0, IPC_INFO, info)
    return struct.unpack_from("<i", info.raw, MSGINFO_MSGMAX_OFFSET)[0]


@syscall("msgsnd", FULL, note=NAMESPACE_NOTE)
def msgsnd(k, msqid: Int, msgp: Ptr, msgsz: Long, msgflg: MSG_FLAGS) -> int:
    """msgsnd(2) (ksys_msgsnd, do_msgsnd): struct msgbuf is the long mtype (read first: EFAULT), then msgsz
    bytes, read after the EINVAL checks (msgsz past MSGMAX or negative, msqid negative, mtype below 1)."""
    head = k.mem.read(msgp, 8)
    mtype, = struct.unpack("<q", head)
    if msgsz < 0 or msqid < 0 or mtype < 1 or msgsz > MSGMAX_DEFAULT and msgsz > _msgmax():
        raise SyscallError(EINVAL)
    return _blocking("msgsnd", msqid, _buffer(head + k.mem.read(msgp + 8, msgsz)), msgsz, msgflg)


@syscall("msgrcv", FULL, note=NAMESPACE_NOTE)
def msgrcv(k, msqid: Int, msgp: Ptr, msgsz: Long, msgtyp: Long, msgflg: MSG_FLAGS) -> int:
    """msgrcv(2): the message (mtype, then at most msgsz bytes: no message is longer than MSGMAX) is written
    to the guest once received; when that faults, the message is gone and the call EFAULT, as do_msg_fill."""
    if msgsz < 0:
        raise SyscallError(EINVAL)
    size = msgsz if msgsz <= MSGMAX_DEFAULT else min(msgsz, _msgmax())
    data = _buffer(8 + size)
    got = _blocking("msgrcv", msqid, data, size, msgtyp, msgflg)
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


# -- POSIX message queues (ipc/mqueue.c; mq_overview(7)) ----------------------------------------------------
O_CLOEXEC = 0o2000000
MQ_ATTR = 64                       # struct mq_attr: flags, maxmsg, msgsize, curmsgs, 4 reserved longs
HARD_MSGSIZEMAX = 16 * 1024 * 1024  # no queue has larger messages: a longer msg_len is EMSGSIZE unread
NAME_MAX = 255
SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD = 0, 1, 2
SIGEVENT = 64                      # struct sigevent: value, signo, notify, then the union (thread fn / tid)
NOTIFY_COOKIE_LEN = 32
MQ_OPEN_FLAGS = Flags({0o100: "O_CREAT", 0o200: "O_EXCL", 0o4000: "O_NONBLOCK", O_CLOEXEC: "O_CLOEXEC",
                       1: "O_WRONLY", 2: "O_RDWR"})


def _queue_name(k, name: int) -> ctypes.Array:
    raw = k.mem.read_cstr(name, NAME_MAX + 2)
    if len(raw) > NAME_MAX:
        from errno import ENAMETOOLONG
        raise SyscallError(ENAMETOOLONG)
    return ctypes.create_string_buffer(raw)


def _queue_fd(k, mqdes: int) -> int:
    return k.fds.get(mqdes).host_fd


@syscall("mq_open", FULL, note="the host's queues (its mqueue namespace, also under --root)")
def mq_open(k, name: Ptr, oflag: MQ_OPEN_FLAGS, mode: OpenMode(1), attr: Ptr) -> int:
    """mq_open(2) (the syscall: the name without the C library's leading '/'): a host queue whose descriptor
    is a guest fd like any other (poll/epoll, dup, fork); always close-on-exec, as do_mq_open makes it."""
    from hermipy.syscalls.files import OpenFile
    from hermipy.syscalls.sys_net import install_host_fd
    queue = _queue_name(k, name)
    limits = _buffer(k.mem.read(attr, MQ_ATTR)) if oflag & 0o100 and attr else None
    host_fd = host_syscall("mq_open", queue, oflag | O_CLOEXEC, mode, limits)
    path = "/" + queue.value.decode(errors="surrogateescape")
    return install_host_fd(k, OpenFile(host_fd, path, oflag & ~O_CLOEXEC, "mqueue"), True)


@syscall("mq_unlink", FULL, note="the host's queues")
def mq_unlink(k, name: Ptr) -> int:
    """mq_unlink(2)."""
    return host_syscall("mq_unlink", _queue_name(k, name))


def _deadline(k, abs_timeout: int) -> ctypes.Array | None:
    return _buffer(k.mem.read(abs_timeout, 16)) if abs_timeout else None


@syscall("mq_timedsend", FULL)
def mq_timedsend(k, mqdes: Int, msg_ptr: Ptr, msg_len: Size, msg_prio: UInt, abs_timeout: Ptr) -> int:
    """mq_timedsend(2): blocks in the host kernel; a signal restarts it after a handler with SA_RESTART (the
    timeout is absolute), else EINTR (signal(7))."""
    deadline = _deadline(k, abs_timeout)
    host_fd = _queue_fd(k, mqdes)
    try:                               # unreadable: the host's NULL says EMSGSIZE or EFAULT, in its order
        message = _buffer(k.mem.read(msg_ptr, msg_len)) if msg_len <= HARD_MSGSIZEMAX else None
    except SyscallError:
        message = None
    return host_syscall("mq_timedsend", host_fd, message, msg_len, msg_prio, deadline)


@syscall("mq_timedreceive", FULL)
def mq_timedreceive(k, mqdes: Int, msg_ptr: Ptr, msg_len: Size, msg_prio: Ptr, abs_timeout: Ptr) -> int:
    """mq_timedreceive(2): the message is written to the guest once received (and its priority)."""
    deadline = _deadline(k, abs_timeout)
    host_fd = _queue_fd(k, mqdes)
    message = _buffer(max(1, min(msg_len, HARD_MSGSIZEMAX)))
    prio = ctypes.c_uint32()
    got = host_syscall("mq_timedreceive", host_fd, message, min(msg_len, HARD_MSGSIZEMAX), prio, deadline)
    k.mem.write(msg_ptr, message.raw[:got])
    if msg_prio:
        k.mem.write(msg_prio, struct.pack("<I", prio.value))
    return got


@syscall("mq_notify", FULL, note="the host delivers SIGEV_SIGNAL to hermipy, which hands it to the guest with its "
                                 "SI_MESGQ siginfo; SIGEV_THREAD's netlink socket is the guest's, translated")
def mq_notify(k, mqdes: Int, sevp: Ptr) -> int:
    """mq_notify(2). For SIGEV_THREAD (how glibc and musl implement it) sigev_signo is a netlink socket and
    sigev_value points to the cookie the kernel copies at once: both are translated to the host's."""
    host_fd = _queue_fd(k, mqdes)
    if not sevp:
        return host_syscall("mq_notify", host_fd, None)
    event = bytearray(k.mem.read(sevp, SIGEVENT))
    value, signo, notify = struct.unpack_from("<Qii", event)
    cookie = None
    if notify == SIGEV_THREAD:
        socket = k.fds.files.get(signo)
        struct.pack_into("<i", event, 8, socket.host_fd if socket is not None else -1)
        cookie = _buffer(k.mem.read(value, NOTIFY_COOKIE_LEN))
        struct.pack_into("<Q", event, 0, ctypes.addressof(cookie))
    return host_syscall("mq_notify", host_fd, _buffer(bytes(event)))


@syscall("mq_getsetattr", FULL)
def mq_getsetattr(k, mqdes: Int, newattr: Ptr, oldattr: Ptr) -> int:
    """mq_getsetattr(2): only O_NONBLOCK of mq_flags can change."""
    new = _buffer(k.mem.read(newattr, MQ_ATTR)) if newattr else None
    host_fd = _queue_fd(k, mqdes)
    old = _buffer(MQ_ATTR)
    host_syscall("mq_getsetattr", host_fd, new, old)
    if oldattr:
        k.mem.write(oldattr, old.raw)
    return 0
