"""Open files and the guest's file-descriptor table (fs/file.c, fs/fcntl.c).

Every open file is backed by a host file descriptor that the kernel owns: a passthrough file, a
directory, a pipe, a tty, or a memfd holding synthetic content (/proc files). Guest fd numbers are
the guest's own; several guest fds may share one ``OpenFile`` (dup), and the host fd is closed when
the last one goes.
"""
import fcntl
import os
import stat
import struct
from errno import EBADF, EMFILE, EINVAL

from hermipy.syscalls.errors import SyscallError

O_ACCMODE, O_RDONLY, O_WRONLY, O_RDWR = 3, 0, 1, 2
O_APPEND, O_NONBLOCK, O_CLOEXEC, O_DIRECTORY, O_PATH = 0o2000, 0o4000, 0o2000000, 0o200000, 0o10000000
O_CREAT, O_EXCL, O_NOCTTY, O_TRUNC, O_NOFOLLOW = 0o100, 0o200, 0o400, 0o1000, 0o400000
O_LARGEFILE, O_TMPFILE = 0o100000, 0o20200000
HERMIPY_FDS = 256       # host fds hermipy may hold beside the guest's (RAM, vCPUs, eventfds, signalfd, pipes)
CLOSED_STDIO: set[int] = set()      # of fds 0-2, those closed when hermipy started: closed for the guest too
POSIX_LOCKS = {"used": False}       # this process has taken a POSIX record lock (fcntl F_SETLK/F_SETLKW)
UNLOCK_ALL = struct.pack("<hh4xqqi4x", 2, 0, 0, 0, 0)   # struct flock: F_UNLCK, SEEK_SET, the whole file


class OpenFile:
    """An open file description: a host fd plus what the guest asked for when opening it."""

    __slots__ = ("host_fd", "_path", "flags", "refs", "dir_entries", "dir_pos", "_kind", "node", "bound",
                 "watchers", "__weakref__")

    status_from_host = True     # F_GETFL/F_SETFL reach the host fd (not where it is hermipy's own, see SignalFd)

    def __init__(self, host_fd: int, path: str | None, flags: int, kind: str | None = "file", node=None):
        self.host_fd, self._path, self.flags, self._kind = host_fd, path, flags, kind
        self.refs = 0
        self.dir_entries = None     # synthetic directory listing: list of (name, d_type, inode)
        self.dir_pos = 0
        self.node = node            # the procfs node a synthetic file or directory was opened from
        self.bound = None           # opened through a read-only bind (vfs.Target.bound): its metadata stays
        self.watchers = None        # the epoll instances with a registration of this file (a set), told of its release

    @property
    def kind(self) -> str:
        """"file", "dir", "pipe", "socket", "tty" (host_kind), or "anon" and the like for hermipy's own files. None at
        creation: the host's answer for the host fd, asked when first needed (an fstat costs ~0.8 µs an open)."""
        kind = self._kind
        if kind is None:
            kind = self._kind = host_kind(self.host_fd)
        return kind

    @kind.setter
    def kind(self, value: str) -> None:
        self._kind = value

    @property
    def path(self) -> str:
        """The guest's name for the file (what /proc/self/fd/N shows). None at creation: the host's own name for
        the host fd, asked when first needed (a readlink of /proc/self/fd costs ~3.5 µs an open or accept)."""
        if self._path is None:
            try:
                self._path = os.readlink(f"/proc/self/fd/{self.host_fd}")
            except OSError:
                return ""
        return self._path

    @path.setter
    def path(self, value: str) -> None:
        self._path = value

    @property
    def readable(self) -> bool:
        return self.flags & O_ACCMODE in (O_RDONLY, O_RDWR) and not self.flags & O_PATH

    @property
    def writable(self) -> bool:
        return self.flags & O_ACCMODE in (O_WRONLY, O_RDWR) and not self.flags & O_PATH

    def release(self) -> None:
        """One guest fd less. Closing any fd of a file drops the process's POSIX locks on it (filp_close's
        locks_remove_posix): the host does that when the host fd closes, and here when other guest fds keep it."""
        self.refs -= 1
        if self.refs == 0:
            try:
                os.close(self.host_fd)
            except OSError:
                pass
            if self.watchers:                   # eventpoll_release(): its registrations end with it
                for epoll in list(self.watchers):
                    epoll.file_released(self)
        elif POSIX_LOCKS["used"] and self.kind == "file" and self.node is None and not self.flags & O_PATH:
            try:
                fcntl.fcntl(self.host_fd, fcntl.F_SETLK, UNLOCK_ALL)
            except OSError:
                pass


def _inherited_table_size() -> int:
    """The fd table a process starts with is its parent's, kept across execve (dup_fd, FDSize in
    /proc/PID/status): the guest starts with the size hermipy's own process inherited."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"FDSize:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 64


def host_fd_room(guest_hard: int) -> int:
    """Make hermipy's host RLIMIT_NOFILE hold ``guest_hard`` guest files and hermipy's own: the host's soft limit
    goes up to its hard one, and that up by HERMIPY_FDS where hermipy may raise it (CAP_SYS_RESOURCE, up to
    fs.nr_open). Returns the guest hard limit that then fits: ``guest_hard``, or HERMIPY_FDS below the host's
    (half of it, for a host limit under twice that)."""
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    want = guest_hard + HERMIPY_FDS
    if want > hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return guest_hard
        except (ValueError, OSError):
            pass
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return min(guest_hard, hard - min(HERMIPY_FDS, hard // 2))


class FdTable:
    """Guest fd -> OpenFile, with the per-descriptor close-on-exec flag; ``limit`` is RLIMIT_NOFILE's soft
    limit (EMFILE from there on)."""

    def __init__(self, limit: int):
        self.files: dict[int, OpenFile] = {}
        self.cloexec: set[int] = set()
        self.limit = limit
        self.size = _inherited_table_size()     # fdt->max_fds: grows as fds are installed, never shrinks

    def get(self, fd: int) -> OpenFile:
        try:
            return self.files[fd]
        except KeyError:
            raise SyscallError(EBADF) from None

    def lowest_free(self, start: int = 0) -> int:
        fd = start
        while fd in self.files:
            fd += 1
        if fd >= self.limit:
            raise SyscallError(EMFILE)
        return fd

    def install(self, file: OpenFile, cloexec: bool = False, start: int = 0) -> int:
        fd = self.lowest_free(start)
        self.install_at(fd, file, cloexec)
        return fd

    def install_at(self, fd: int, file: OpenFile, cloexec: bool = False) -> None:
        if fd < 0 or fd >= self.limit:
            raise SyscallError(EBADF)
        old = self.files.get(fd)
        file.refs += 1
        self.files[fd] = file
        while fd >= self.size:                  # expand_fdtable: 64, then powers of two times 128
            self.size = max(128, self.size * 2)
        if cloexec:
            self.cloexec.add(fd)
        else:
            self.cloexec.discard(fd)
        if old is not None:
            old.release()

    def close(self, fd: int) -> None:
        file = self.files.pop(fd, None)
        if file is None:
            raise SyscallError(EBADF)
        self.cloexec.discard(fd)
        file.release()

    def dup(self, fd: int, start: int = 0, cloexec: bool = False) -> int:
        if start < 0:
            raise SyscallError(EINVAL)
        return self.install(self.get(fd), cloexec, start)

    def copy(self) -> "FdTable":
        """dup_fd() for a clone without CLONE_FILES: a table of its own over the same open files (each one's
        reference count up, as each struct file's is)."""
        other = FdTable.__new__(FdTable)
        other.files, other.cloexec = dict(self.files), set(self.cloexec)
        other.limit, other.size = self.limit, self.size
        for file in other.files.values():
            file.refs += 1
        return other

    def close_all(self) -> None:
        for fd in list(self.files):
            self.close(fd)

    def inherit_stdio(self) -> None:
        """Guest fds 0-2 are the host's stdin/stdout/stderr (duplicated, so the guest may close them); one that
        was closed when hermipy started stays closed (``hold_closed_stdio``)."""
        for fd in (0, 1, 2):
            if fd in CLOSED_STDIO:
                continue
            try:
                host = os.dup(fd)
            except OSError:
                continue
            flags = os.O_RDWR
            try:
                import fcntl
                flags = fcntl.fcntl(host, fcntl.F_GETFL)
            except OSError:
                pass
            try:
                path = os.readlink(f"/proc/self/fd/{host}")
            except OSError:
                path = f"/dev/fd/{fd}"
            self.install_at(fd, OpenFile(host, path, flags & ~O_CLOEXEC, host_kind(host)))


def hold_closed_stdio() -> None:
    """Fds 0-2 closed when hermipy starts (``prog >&-``) stay closed for the guest, whose write then gets EBADF:
    each is held by a placeholder (/dev/null), so that no file hermipy opens later lands there and becomes the
    guest's stdout, and is noted in CLOSED_STDIO, which ``inherit_stdio`` leaves out."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        placeholder = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        if placeholder != fd:
            os.dup2(placeholder, fd, inheritable=False)
            os.close(placeholder)
        CLOSED_STDIO.add(fd)


_KINDS = {stat.S_IFDIR: "dir", stat.S_IFIFO: "pipe", stat.S_IFSOCK: "socket"}


def host_kind(host_fd: int) -> str:
    """OpenFile.kind for a host fd: "dir", "pipe", "socket", "tty" or "file"."""
    try:
        mode = os.fstat(host_fd).st_mode
    except OSError:
        return "file"
    kind = _KINDS.get(stat.S_IFMT(mode))
    if kind is not None:
        return kind
    if stat.S_ISCHR(mode) and os.isatty(host_fd):
        return "tty"
    return "file"
