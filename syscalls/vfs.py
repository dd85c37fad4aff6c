"""The guest's view of the file system: host ``/`` (passthrough) or a directory it is confined to.

Guest paths are resolved here and nowhere else. Unconfined, a path that cannot reach the synthetic namespace
is handed to the host kernel unwalked (``Target.host``). Otherwise it is walked as fs/namei.c does: symlinks
are read and followed here, ``..`` stops at the root (like chroot(2)), and the synthetic namespace
(``procfs.Synthetic``: /proc/self, /dev/fd, and when confined /proc and a few devices) is overlaid on the host
tree, so a walk that reaches one of its nodes returns the node.

The walk never hands the host kernel a path to walk: it holds an O_PATH fd of each directory it passes and
looks up one name at a time in it without following symlinks (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW), so a
concurrent rename (a directory swapped with a symlink to the outside) cannot lead it out of the root. It
ends in a Target holding the O_PATH fd of the last name's directory, whose methods act on that name with the
``*at`` calls, on an O_PATH fd of the entry itself, or, where no call takes one (truncate, chmod before
fchmodat2, xattrs), on its ``/proc/self/fd/N`` magic link, which leads to exactly that entry. A confined path
without symlinks, ``.``, ``..`` or a synthetic name takes one openat2(RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS)
for its directory instead of a step per name (Linux 5.6+; an older host walks, as safely).

A run of an image (hermipy/image.py) is confined to a scratch tree whose files are hard links to the image's
read-only, cached files (``LOWER``): a change made in place to one of them (opening it for writing, truncate,
chmod, chown, utimes, xattrs; by path or by fd) first copies it up, as overlayfs(5) does, so the image never
changes.
"""
import ctypes
import os
import stat as _stat
import threading
from contextlib import contextmanager
from errno import (EBUSY, EEXIST, EINVAL, EISDIR, ELOOP, ENAMETOOLONG, ENOENT, ENOSYS, ENOTDIR, EPERM, EROFS,
                   EXDEV)

from hermipy.syscalls.errors import SyscallError
from hermipy.syscalls.host import host_syscall

MAX_SYMLINKS = 40          # fs/namei.c MAXSYMLINKS
RACE_RETRIES = 3           # looks at a name that keeps changing kind under the walk (a hostile swap loop)
PATH_MAX = 4096
AT_FDCWD, AT_SYMLINK_NOFOLLOW, AT_SYMLINK_FOLLOW, AT_EMPTY_PATH = -100, 0x100, 0x400, 0x1000
O_PATH_DIR = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
O_PATH_ENTRY = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
RESOLVE_NO_SYMLINKS, RESOLVE_IN_ROOT = 0x04, 0x10          # linux/openat2.h

RECORD: int | None = None  # hermipy run --record: a host fd (O_APPEND) each guest path looked up is written to
_have = {"openat2": True, "fchmodat2": True}               # False once the host said ENOSYS


class _OpenHow(ctypes.Structure):
    """struct open_how (linux/openat2.h)."""
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, resolve: int) -> int | None:
    """openat2(2); None on a host without it (before Linux 5.6)."""
    if not _have["openat2"]:
        return None
    how = _OpenHow(flags, 0, resolve)
    try:
        return host_syscall("openat2", dirfd, os.fsencode(path), how, ctypes.sizeof(how))
    except OSError as err:
        if err.errno != ENOSYS:
            raise
        _have["openat2"] = False
        return None


class Target:
    """Where a guest path leads. One of:

    - ``node``: a synthetic node;
    - ``host``: a path the host kernel resolves itself (unconfined passthrough; a synthetic name's host file,
      such as /dev/null; a /proc/self/fd/N magic link of an open file);
    - ``dirfd`` and ``name``: the entry ``name`` (a single name; ``slash``: the guest wrote a trailing slash)
      in a host directory hermipy holds open (O_PATH, owned: closed with the Target). The walk has followed
      what the guest asked to follow, so the methods never follow ``name``; ``st`` is its lstat when the walk
      took one;
    - none of these: a missing synthetic name.

    ``guest`` is the guest's absolute name for it: canonical when the path was walked, as given when the host
    kernel resolves it.

    ``bound`` ("/dev" or "/proc"; with ``host``): a synthetic name that is a host file under --root (/dev/null,
    /proc/cpuinfo, or a /proc/self/fd/N link to one opened so). It behaves as a read-only bind mount of that file
    in a container's /dev or /proc, so the guest reads and writes it but never changes the host's: changing its
    metadata is EROFS (so is opening a regular one for writing); it is a mount point, so unlinking or renaming it
    is EBUSY (EPERM in /proc, which has no unlink, and EXDEV for a rename between /proc and elsewhere), linking
    it elsewhere EXDEV, making a name over it EEXIST. These are the answers of Linux for such a container
    (tests/test_isolation.py compares them).

    ``opened`` (with ``host``): the open file a /proc/self/fd/N magic link leads to.
    """

    __slots__ = ("guest", "host", "node", "dirfd", "name", "slash", "st", "bound", "opened", "_owned")

    def __init__(self, guest: str, host: str | None = None, node=None, dirfd: int | None = None, name: str = "",
                 slash: bool = False, st=None, owned: bool = False, bound: str | None = None, opened=None):
        self.guest, self.host, self.node = guest, host, node
        self.dirfd, self.name, self.slash, self.st, self._owned = dirfd, name, slash, st, owned
        self.bound, self.opened = bound, opened

    @property
    def missing(self) -> bool:
        return self.host is None and self.node is None and self.dirfd is None

    @property
    def on_host(self) -> bool:
        return self.host is not None or self.dirfd is not None

    def __del__(self):
        if self._owned:
            os.close(self.dirfd)

    def __repr__(self) -> str:
        return f"Target({self.guest!r}, host={self.host!r}, node={self.node!r}, at={self.dirfd}:{self.name!r})"

    # -- the host operations: the walked entry by its directory fd, or the host's own path -----------------
    @property
    def _entry(self) -> str:
        """The name as the guest wrote it, for calls that never follow a last name (creation, removal)."""
        return self.name + "/" if self.slash else self.name

    def exists(self) -> bool:
        try:
            self.stat(False)
            return True
        except FileNotFoundError:
            return False

    def _regular(self) -> bool:
        return _stat.S_ISREG(self.stat().st_mode)

    def _read_only(self) -> None:
        """Changing a bound file's metadata: EROFS (mnt_want_write on a read-only mount)."""
        if self.bound:
            raise SyscallError(EROFS)

    def own(self) -> None:
        """Before a change in place: an image file (``LOWER``) is copied up first, so the change goes to the
        run's own copy."""
        if LOWER is None:
            return
        if self.dirfd is not None:
            try:
                st = os.stat(self.name, dir_fd=self.dirfd, follow_symlinks=False)
            except FileNotFoundError:
                return
            if LOWER.holds(st):
                copy_up(self.dirfd, self.name, st)
                self.st = None
        elif self.opened is not None:
            own_open_file(self.opened)

    def open(self, flags: int, mode: int) -> int:
        if LOWER is not None and not flags & os.O_PATH and (flags & os.O_ACCMODE or flags & os.O_TRUNC):
            self.own()
        if self.bound and flags & os.O_CREAT and flags & os.O_EXCL:
            raise SyscallError(EEXIST)
        if self.bound and not flags & os.O_PATH and (flags & os.O_ACCMODE or flags & os.O_TRUNC) and self._regular():
            raise SyscallError(EROFS)                   # a regular file's write access on a read-only mount
        if self.dirfd is None:
            return os.open(self.host, flags, mode)
        if self.slash and flags & os.O_CREAT:
            raise SyscallError(EISDIR)                  # open_last_lookups(): O_CREAT and a trailing slash
        return os.open(self.name, flags | os.O_NOFOLLOW, mode, dir_fd=self.dirfd)

    def opath(self) -> int:
        """A new O_PATH fd of the walked entry itself (the caller closes it)."""
        return os.open(self.name, O_PATH_ENTRY, dir_fd=self.dirfd)

    @contextmanager
    def pinned(self, follow: bool = True):
        """(path, follow) for a call that only takes a path: the host path, or the /proc/self/fd/N magic link
        of an O_PATH fd of the walked entry, which the call must follow (it leads to the entry, link or not)."""
        if self.dirfd is None:
            yield os.fsencode(self.host), follow
            return
        fd = self.opath()
        try:
            yield b"/proc/self/fd/%d" % fd, True
        finally:
            os.close(fd)

    def stat(self, follow: bool = True) -> os.stat_result:
        if self.dirfd is None:
            return os.stat(self.host, follow_symlinks=follow)
        if self.st is None:
            self.st = os.stat(self.name, dir_fd=self.dirfd, follow_symlinks=False)
        return self.st

    def statx(self, flags: int, mask: int, buf) -> None:
        if self.dirfd is None:
            host_syscall("statx", AT_FDCWD, os.fsencode(self.host), flags, mask, buf)
        else:
            host_syscall("statx", self.dirfd, os.fsencode(self.name), flags | AT_SYMLINK_NOFOLLOW, mask, buf)

    def access(self, mode: int, flags: int) -> None:
        if self.bound and mode & os.W_OK and self._regular():
            raise SyscallError(EROFS)
        if self.dirfd is None:
            host_syscall("faccessat2", AT_FDCWD, os.fsencode(self.host), mode, flags)
        else:
            host_syscall("faccessat2", self.dirfd, os.fsencode(self.name), mode, flags | AT_SYMLINK_NOFOLLOW)

    def _taken(self) -> None:
        """Making a name where a bound file is: EEXIST."""
        if self.bound:
            raise SyscallError(EEXIST)

    def mkdir(self, mode: int) -> None:
        self._taken()
        os.mkdir(self.host or self._entry, mode, dir_fd=self.dirfd)

    def mknod(self, mode: int, dev: int) -> None:
        self._taken()
        os.mknod(self.host or self._entry, mode, dev, dir_fd=self.dirfd)

    def symlink(self, target: str) -> None:
        self._taken()
        os.symlink(target, self.host or self._entry, dir_fd=self.dirfd)

    def readlink(self) -> str:
        return os.readlink(self.host or self.name, dir_fd=self.dirfd)

    def unlink(self) -> None:
        if self.bound:
            raise SyscallError(EPERM if self.bound == "/proc" else EBUSY)   # proc_root has no unlink; a mount point
        os.unlink(self.host or self._entry, dir_fd=self.dirfd)

    def rmdir(self) -> None:
        if self.dirfd is not None and self.name == ".":
            raise SyscallError(EBUSY)                   # the root itself (do_rmdir: LAST_ROOT)
        if self.bound:
            raise SyscallError(ENOTDIR)                 # may_delete(): every bound file is a file
        os.rmdir(self.host or self._entry, dir_fd=self.dirfd)

    def _at(self, entry: bool = True) -> tuple[int, bytes]:
        if self.dirfd is None:
            return AT_FDCWD, os.fsencode(self.host)
        return self.dirfd, os.fsencode(self._entry if entry else self.name)

    def rename(self, new: "Target", flags: int) -> None:
        host_syscall("renameat2", *self._at(), *new._at(), flags)

    def link(self, new: "Target", follow: bool) -> None:
        """linkat(2) of this entry as ``new``; linkat follows a trailing slash of the old name, so a walked one
        is passed bare (the walk has checked it)."""
        if self.bound:
            new.link_from_other_mount()
        new._taken()
        follows = follow and self.dirfd is None
        host_syscall("linkat", *self._at(entry=False), *new._at(), AT_SYMLINK_FOLLOW if follows else 0)

    def link_from_other_mount(self) -> None:
        """do_linkat() of a bound file as this entry: EEXIST when the name is taken (filename_create), else EXDEV."""
        raise SyscallError(EEXIST if self.bound or self.on_host and self.exists() else EXDEV)

    def link_fd(self, fd: int) -> None:
        """linkat(fd, "", this entry, AT_EMPTY_PATH): a name for an open file."""
        self._taken()
        host_syscall("linkat", fd, b"", *self._at(), AT_EMPTY_PATH)

    def chmod(self, mode: int, follow: bool = True) -> None:
        """chmod of the file (``follow``) or of the symlink itself (fchmodat2's AT_SYMLINK_NOFOLLOW: the host
        says EOPNOTSUPP for a symlink)."""
        self._read_only()
        self.own()
        if self.dirfd is None:
            if follow:
                os.chmod(self.host, mode)
            else:
                host_syscall("fchmodat2", AT_FDCWD, os.fsencode(self.host), mode, AT_SYMLINK_NOFOLLOW)
            return
        fd = self.opath()
        try:
            if _have["fchmodat2"]:
                try:
                    host_syscall("fchmodat2", fd, b"", mode, AT_EMPTY_PATH)
                    return
                except OSError as err:
                    if err.errno != ENOSYS:
                        raise
                    _have["fchmodat2"] = False          # before Linux 6.6
            os.chmod(f"/proc/self/fd/{fd}", mode)
        finally:
            os.close(fd)

    def chown(self, uid: int, gid: int, follow: bool) -> None:
        self._read_only()
        self.own()
        if self.dirfd is None:
            os.chown(self.host, uid, gid, follow_symlinks=follow)
        else:
            os.chown(self.name, uid, gid, dir_fd=self.dirfd, follow_symlinks=False)

    def utimens(self, times, follow: bool) -> None:
        self._read_only()
        self.own()
        if self.dirfd is None:
            host_syscall("utimensat", AT_FDCWD, os.fsencode(self.host), times, 0 if follow else AT_SYMLINK_NOFOLLOW)
        else:
            host_syscall("utimensat", self.dirfd, os.fsencode(self.name), times, AT_SYMLINK_NOFOLLOW)

    def truncate(self, length: int) -> os.stat_result:
        """truncate(2) by path (no fd call does it without opening the file); the file's stat after."""
        if self.bound:
            raise SyscallError(EROFS if self._regular() else EINVAL)   # vfs_truncate: EINVAL unless regular
        self.own()
        with self.pinned() as (path, _):
            os.truncate(path, length)
            return os.stat(path)

    def statfs(self, buf) -> None:
        if self.dirfd is None:
            host_syscall("statfs", os.fsencode(self.host), buf)
            return
        fd = self.opath()
        try:
            host_syscall("fstatfs", fd, buf)
        finally:
            os.close(fd)


class FsView:
    def __init__(self, root: str | None = None):
        self.root = os.path.realpath(root) if root else None
        self.rootfd = os.open(self.root or "/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.cwd = "/" if self.root else os.getcwd()
        self.synthetic = None          # procfs.Synthetic, attached by sys_fs on first use

    def copy(self) -> "FsView":
        """copy_fs_struct(): a thread created without CLONE_FS gets its own cwd (the root fd is shared)."""
        other = FsView.__new__(FsView)
        other.root, other.rootfd, other.cwd, other.synthetic = self.root, self.rootfd, self.cwd, self.synthetic
        return other

    @property
    def confined(self) -> bool:
        return self.root is not None

    def chroot(self, rootfd: int) -> None:
        """set_fs_root(): the directory open at ``rootfd`` (O_PATH, now this view's) is the root of every task
        sharing this view, which is confined there from now on as under --root. The cwd stays where it is
        when it is inside the new root; one outside it (Linux keeps it, a way out) becomes the new root."""
        host = os.readlink(f"/proc/self/fd/{rootfd}")
        old_cwd = os.path.join(self.root, self.cwd.lstrip("/")) if self.root else self.cwd
        inside = os.path.relpath(old_cwd, host)
        self.root, self.rootfd = host, rootfd          # (the old root fd stays open: copies of the view share it)
        self.cwd = "/" if inside == "." or inside.startswith("..") else "/" + inside

    def absolute(self, base: str, path: str) -> str:
        """Join a guest path onto a guest directory, lexically (no '..' resolution here)."""
        if len(path) >= PATH_MAX:
            raise SyscallError(ENAMETOOLONG)
        if path.startswith("/"):
            return path
        return base.rstrip("/") + "/" + path if path else base

    def resolve(self, guest_path: str, follow: bool = True) -> Target:
        """Resolve an absolute guest path; a missing last component is allowed (for creation)."""
        if not guest_path:
            raise SyscallError(ENOENT)
        if RECORD is not None:
            os.write(RECORD, os.fsencode(guest_path) + b"\0")
        if self.root is None:
            if self.synthetic is None or not _may_touch_synthetic(guest_path):
                return Target(guest_path, guest_path)
        elif not _may_touch_synthetic(guest_path):
            target = self._direct(guest_path, follow)
            if target is not None:
                return target
        return self._walk(guest_path, follow)

    def canonical(self, guest_path: str) -> str:
        """The guest's canonical name for a path (symlinks followed, like realpath(3))."""
        target = self.resolve(guest_path, True)
        if self.root is None and target.host is not None:
            return os.path.realpath(target.host)
        return target.guest

    def _direct(self, guest_path: str, follow: bool) -> Target | None:
        """One openat2() for the directory of a confined path made of plain names; None when the path needs
        the walk (a symlink on the way, '.' or '..', or a host without openat2)."""
        names = [p for p in guest_path.split("/") if p]
        if not names or "." in names or ".." in names:
            return None
        trailing = guest_path.endswith("/")
        name = names.pop()
        if names:
            try:
                dirfd = openat2(self.rootfd, "/".join(names), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC,
                                RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS)
            except OSError as err:
                if err.errno == ELOOP:
                    return None
                raise SyscallError(err.errno) from None
            if dirfd is None:
                return None
        else:
            dirfd = self.rootfd
        target = Target("/" + "/".join(names + [name]), dirfd=dirfd, name=name, slash=trailing,
                        owned=dirfd != self.rootfd)
        if follow or trailing:
            try:
                target.st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            except FileNotFoundError:
                return target
            except OSError as err:
                raise SyscallError(err.errno) from None
            if _stat.S_ISLNK(target.st.st_mode):
                return None                             # closes dirfd with the Target
            if trailing and not _stat.S_ISDIR(target.st.st_mode):
                raise SyscallError(ENOTDIR)
        return target

    def _walk(self, guest_path: str, follow: bool) -> Target:
        """Resolve name by name: symlinks are read and re-anchored, '..' stops at the root."""
        steps = _Steps(self.rootfd)
        try:
            return self._walk_steps(steps, guest_path, follow)
        finally:
            steps.close()

    def _walk_steps(self, steps: "_Steps", guest_path: str, follow: bool) -> Target:
        parts = [p for p in guest_path.split("/") if p]
        trailing = guest_path.endswith("/")
        links = 0
        synthetic = self.synthetic
        while parts:
            name = parts.pop(0)
            if name == ".":
                continue
            if name == "..":
                steps.up()
                continue
            is_last = not parts
            want_follow = follow or not is_last or trailing
            parent = steps.nodes[-1] if steps.nodes else None
            if parent is not None:
                if parent.kind != "dir":
                    raise SyscallError(ENOTDIR)
                child = parent.lookup(name)
                if child is None:
                    if is_last:
                        return Target(steps.guest(name))
                    raise SyscallError(ENOENT)
            else:
                child = synthetic.overlay(steps.guest(), name) if synthetic is not None else None
            if child is not None:
                if child.kind == "host":                 # a host file shown inside the synthetic tree
                    if not is_last:
                        raise SyscallError(ENOTDIR)
                    if trailing:                         # (the host's lookup fails: ENOTDIR, or EEXIST for mkdir)
                        return Target(steps.guest(name), child.host_path + "/")
                    return Target(steps.guest(name), child.host_path, bound=child.bound)
                if child.kind == "link" and want_follow:
                    links += 1
                    if links > MAX_SYMLINKS:
                        raise SyscallError(ELOOP)
                    redirect = child.follow()
                    if isinstance(redirect, Target):     # a magic link (/proc/self/fd/N) to an open file
                        if is_last:
                            return redirect
                        target = redirect.guest
                    else:
                        target = redirect
                    if target.startswith("/"):
                        steps.to_root()
                    parts = [p for p in target.split("/") if p] + parts
                    continue
                if trailing and is_last and child.kind != "dir":
                    raise SyscallError(ENOTDIR)
                steps.push(name, child, None)
                continue
            if not is_last:
                fd, link = _lookup_dir(name, steps.dirfd)
                if fd is not None:
                    steps.push(name, None, fd)
                    continue
            else:
                link, st = _lookup_last(name, steps.dirfd) if want_follow else (None, None)
                if link is None:
                    if st is not None and trailing and not _stat.S_ISDIR(st.st_mode):
                        raise SyscallError(ENOTDIR)
                    return steps.target(name, trailing, st)
            links += 1
            if links > MAX_SYMLINKS:
                raise SyscallError(ELOOP)
            if link.startswith("/"):
                steps.to_root()
            parts = [p for p in link.split("/") if p] + parts
        return steps.target_of_last()

    def to_guest(self, host_path: str) -> str:
        """The guest's name for a host path inside the root (the host's name for one outside)."""
        if self.root is None or not host_path.startswith("/"):
            return host_path
        rel = os.path.relpath(host_path, self.root)
        if rel == ".." or rel.startswith("../"):
            return host_path
        return "/" + rel if rel != "." else "/"


def _lookup_dir(name: str, dirfd: int) -> tuple[int | None, str | None]:
    """A name the walk goes through: (an O_PATH fd of it, None) for a directory, (None, its target) for a
    symlink. A name that changes kind between the calls (a concurrent rename) is looked at again."""
    for _ in range(RACE_RETRIES):
        try:
            return os.open(name, O_PATH_DIR, dir_fd=dirfd), None
        except NotADirectoryError:
            pass
        except OSError as err:
            raise SyscallError(err.errno) from None
        try:
            return None, os.readlink(name, dir_fd=dirfd)
        except OSError as err:
            if err.errno != EINVAL:
                raise SyscallError(err.errno) from None
        try:
            if not _stat.S_ISDIR(os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_mode):
                break
        except OSError as err:
            raise SyscallError(err.errno) from None
    raise SyscallError(ENOTDIR)


def _lookup_last(name: str, dirfd: int) -> tuple[str | None, os.stat_result | None]:
    """The last name of a walk that follows it: (its target, None) for a symlink, else (None, its lstat, or
    None when it does not exist)."""
    for _ in range(RACE_RETRIES):
        try:
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        except FileNotFoundError:
            return None, None
        except OSError as err:
            raise SyscallError(err.errno) from None
        if not _stat.S_ISLNK(st.st_mode):
            return None, st
        try:
            return os.readlink(name, dir_fd=dirfd), None
        except FileNotFoundError:
            return None, None
        except OSError as err:
            if err.errno != EINVAL:
                raise SyscallError(err.errno) from None
    raise SyscallError(ELOOP)


class _Steps:
    """The directories a walk stands in: per resolved name its synthetic node (None for a host directory) and
    the O_PATH fd of a host directory (the root's first, not owned)."""

    __slots__ = ("names", "nodes", "fds", "rootfd")

    def __init__(self, rootfd: int):
        self.rootfd = rootfd
        self.names: list[str] = []
        self.nodes: list = []
        self.fds: list[int | None] = []

    @property
    def dirfd(self) -> int:
        return self.fds[-1] if self.fds else self.rootfd

    def guest(self, name: str | None = None) -> str:
        return "/" + "/".join(self.names + [name] if name is not None else self.names)

    def push(self, name: str, node, fd: int | None) -> None:
        self.names.append(name)
        self.nodes.append(node)
        self.fds.append(fd)

    def up(self) -> None:
        if self.names:
            self.names.pop()
            self.nodes.pop()
            fd = self.fds.pop()
            if fd is not None:
                os.close(fd)

    def to_root(self) -> None:
        while self.names:
            self.up()

    def target(self, name: str, slash: bool, st) -> Target:
        """The entry ``name`` in the current host directory, whose fd passes to the Target."""
        if self.fds:
            dirfd, self.fds[-1] = self.fds[-1], None
        else:
            dirfd = self.rootfd
        return Target(self.guest(name), dirfd=dirfd, name=name, slash=slash, st=st, owned=dirfd != self.rootfd)

    def target_of_last(self) -> Target:
        """The walk ended on a directory it stands in (the path ended with '.', '..' or a link to a directory):
        that directory as an entry of its parent (the root as '.' of itself)."""
        if not self.names:
            return Target("/", dirfd=self.rootfd, name=".")
        if self.nodes[-1] is not None:
            return Target(self.guest(), None, self.nodes[-1])
        name = self.names[-1]
        self.up()                                       # a host directory's parent is a host directory too
        return self.target(name, False, None)

    def close(self) -> None:
        for fd in self.fds:
            if fd is not None:
                os.close(fd)
        self.fds = []


def _may_touch_synthetic(path: str) -> bool:
    """Only paths naming /proc or /dev can reach the overlay without a symlink (unconfined, host symlinks into
    /proc/self are resolved by the host and reach hermipy's own process: a documented limit)."""
    return "/proc" in path or "/dev" in path


# -- the read-only image under a run's scratch tree ---------------------------------------------------------
class Lower:
    """The files of a read-only image that a run's scratch tree (its root) holds as hard links: their device
    and inode numbers (hermipy/image.py makes the tree)."""

    __slots__ = ("dev", "inodes", "root", "_view")

    def __init__(self, dev: int, inodes: set[int], root: str):
        self.dev, self.inodes, self.root, self._view = dev, inodes, root, None

    def holds(self, st: os.stat_result) -> bool:
        return st.st_ino in self.inodes and st.st_dev == self.dev

    @property
    def view(self) -> FsView:
        if self._view is None:
            self._view = FsView(self.root)
        return self._view


LOWER: Lower | None = None


def copy_up(dirfd: int, name: str, st: os.stat_result) -> None:
    """Replace the entry ``name`` (an image file) with a private copy: same content, mode, owner and times,
    made under a temporary name and renamed over it (overlayfs(5) "copy up"). Hard links the guest made to
    the image file keep the image's (as overlayfs without index=on breaks them)."""
    tmp = f".hermipy-copy-up.{os.getpid()}.{threading.get_ident()}"
    if _stat.S_ISREG(st.st_mode):
        src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
        try:
            dst = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                          dir_fd=dirfd)
            try:
                while os.copy_file_range(src, dst, 1 << 30):
                    pass
                _own_attributes(dst, st)
                os.fchmod(dst, _stat.S_IMODE(st.st_mode))
                os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(dst)
        finally:
            os.close(src)
    elif _stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(name, dir_fd=dirfd), tmp, dir_fd=dirfd)
        _own_attributes(None, st, dirfd, tmp)
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dirfd, follow_symlinks=False)
    else:                                              # a FIFO or socket file
        os.mknod(tmp, st.st_mode, st.st_rdev, dir_fd=dirfd)
        _own_attributes(None, st, dirfd, tmp)
    os.rename(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)


def _own_attributes(fd: int | None, st: os.stat_result, dirfd: int | None = None, name: str = "") -> None:
    """The copy's owner is the image file's where hermipy may give it (root), else hermipy's."""
    try:
        if fd is not None:
            os.fchown(fd, st.st_uid, st.st_gid)
        else:
            os.chown(name, st.st_uid, st.st_gid, dir_fd=dirfd, follow_symlinks=False)
    except PermissionError:
        pass


def own_open_file(of) -> None:
    """An fd call about to change an open image file (fchmod, fchown, futimens, fsetxattr...): copy the file up
    under the name it was opened by and move the open file onto the copy (the same host fd number, flags and
    offset). A file renamed or removed since it was opened has no name to copy up under: EROFS. Another
    process's fd (shared by fork) keeps the image file, as an fd opened before a copy-up does on overlayfs."""
    if LOWER is None or of.node is not None:
        return
    st = os.fstat(of.host_fd)
    if not LOWER.holds(st):
        return
    t = LOWER.view.resolve(of.path, False)
    try:
        same = t.dirfd is not None and os.stat(t.name, dir_fd=t.dirfd, follow_symlinks=False).st_ino == st.st_ino
    except OSError:
        same = False
    if not same:
        raise SyscallError(EROFS)
    copy_up(t.dirfd, t.name, st)
    if of.flags & os.O_PATH:
        new = os.open(t.name, O_PATH_ENTRY, dir_fd=t.dirfd)
    else:
        flags = of.flags & (os.O_ACCMODE | os.O_APPEND | os.O_NONBLOCK) | os.O_NOFOLLOW | os.O_CLOEXEC
        new = os.open(t.name, flags, dir_fd=t.dirfd)
        os.lseek(new, os.lseek(of.host_fd, 0, os.SEEK_CUR), os.SEEK_SET)
    os.dup2(new, of.host_fd, inheritable=False)
    os.close(new)
