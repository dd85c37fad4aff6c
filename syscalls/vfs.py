"""The guest's view of the file system: host ``/`` (passthrough) or a directory it is confined to.

Guest paths are resolved to host paths here and nowhere else. Confined (``--root DIR``), resolution
walks component by component, follows symlinks itself, and clamps ``..`` at the root, so no path,
symlink or ``..`` reaches outside DIR (like chroot(2) path walking in fs/namei.c).

A synthetic namespace (``procfs.Synthetic``: /proc/self, /dev/fd, and when confined /proc and a few
devices) is overlaid on the host tree; a walk that reaches one of its nodes returns the node instead
of a host path. Unconfined, paths that cannot touch it are handed to the host kernel unwalked.
"""
import os
import stat as _stat
from errno import EACCES, ELOOP, ENAMETOOLONG, ENOENT, ENOTDIR

from hermipy.syscalls.errors import SyscallError

MAX_SYMLINKS = 40          # fs/namei.c MAXSYMLINKS
PATH_MAX = 4096


class Target:
    """Where a guest path leads: a host path, a synthetic node, or nothing (a missing synthetic name).

    ``guest`` is the guest's absolute name for it: canonical when the path was walked, as given when
    the host kernel resolves it (unconfined passthrough).
    """

    __slots__ = ("guest", "host", "node")

    def __init__(self, guest: str, host: str | None = None, node=None):
        self.guest, self.host, self.node = guest, host, node

    @property
    def missing(self) -> bool:
        return self.host is None and self.node is None

    def __repr__(self) -> str:
        return f"Target({self.guest!r}, host={self.host!r}, node={self.node!r})"


class FsView:
    def __init__(self, root: str | None = None):
        self.root = os.path.realpath(root) if root else None
        self.cwd = "/" if self.root else os.getcwd()
        self.synthetic = None          # procfs.Synthetic, attached by sys_fs on first use

    @property
    def confined(self) -> bool:
        return self.root is not None

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
        if self.root is None and (self.synthetic is None or not _may_touch_synthetic(guest_path)):
            return Target(guest_path, guest_path)
        return self._walk(guest_path, follow)

    def to_host(self, guest_path: str, follow: bool = True) -> str:
        """Host path for an absolute guest path; confined paths are walked safely."""
        target = self.resolve(guest_path, follow)
        if target.host is None:
            raise SyscallError(EACCES if target.node is not None else ENOENT)
        return target.host

    def canonical(self, guest_path: str) -> str:
        """The guest's canonical name for a path (symlinks followed, like realpath(3))."""
        target = self.resolve(guest_path, True)
        if self.root is None and target.node is None:
            return os.path.realpath(target.host)
        return target.guest

    def _host_of(self, names: list[str]) -> str:
        return os.path.join(self.root or "/", *names)

    def _walk(self, guest_path: str, follow: bool) -> Target:
        """Resolve component by component: symlinks are read and re-anchored, '..' stops at the root."""
        parts = [p for p in guest_path.split("/") if p]
        trailing = guest_path.endswith("/")
        names: list[str] = []           # resolved guest components
        nodes: list = []                # the synthetic node of each (None: a host directory entry)
        links = 0
        synthetic = self.synthetic
        while parts:
            name = parts.pop(0)
            if name == ".":
                continue
            if name == "..":
                if names:
                    names.pop()
                    nodes.pop()
                continue
            is_last = not parts
            want_follow = follow or not is_last or trailing
            parent = nodes[-1] if nodes else None
            if parent is not None:
                if parent.kind != "dir":
                    raise SyscallError(ENOTDIR)
                child = parent.lookup(name)
                if child is None:
                    if is_last:
                        return Target("/" + "/".join(names + [name]))
                    raise SyscallError(ENOENT)
            else:
                child = synthetic.overlay("/" + "/".join(names), name) if synthetic is not None else None
            if child is not None:
                if child.kind == "host":                 # a host file shown inside the synthetic tree
                    if not is_last:
                        raise SyscallError(ENOTDIR)
                    return Target("/" + "/".join(names + [name]), child.host_path + ("/" if trailing else ""))
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
                        names, nodes = [], []
                    parts = [p for p in target.split("/") if p] + parts
                    continue
                if trailing and is_last and child.kind != "dir":
                    raise SyscallError(ENOTDIR)
                names.append(name)
                nodes.append(child)
                continue
            host = self._host_of(names + [name])
            try:
                st = os.lstat(host)
            except FileNotFoundError:
                if is_last:
                    names.append(name)
                    nodes.append(None)
                    break
                raise SyscallError(ENOENT) from None
            except NotADirectoryError:
                raise SyscallError(ENOTDIR) from None
            if _stat.S_ISLNK(st.st_mode) and want_follow:
                links += 1
                if links > MAX_SYMLINKS:
                    raise SyscallError(ELOOP)
                target = os.readlink(host)
                if target.startswith("/"):
                    names, nodes = [], []
                parts = [p for p in target.split("/") if p] + parts
                continue
            if not is_last and not _stat.S_ISDIR(st.st_mode):
                raise SyscallError(ENOTDIR)
            names.append(name)
            nodes.append(None)
        guest = "/" + "/".join(names)
        if nodes and nodes[-1] is not None:
            return Target(guest, None, nodes[-1])
        host = self._host_of(names)
        if trailing and names:
            host += "/"
        return Target(guest, host)

    def to_guest(self, host_path: str) -> str:
        """The guest's name for a host path (inverse of to_host for paths inside the root)."""
        if self.root is None or not host_path.startswith("/"):
            return host_path
        rel = os.path.relpath(host_path, self.root)
        if rel == ".." or rel.startswith("../"):
            return host_path
        return "/" if rel == "." else "/" + rel


def _may_touch_synthetic(path: str) -> bool:
    """Unconfined, only paths naming /proc or /dev can reach the overlay (host symlinks into
    /proc/self are resolved by the host and reach hermipy's own process: a documented limit)."""
    return "/proc" in path or "/dev" in path
