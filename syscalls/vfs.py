"""The guest's view of the file system: host ``/`` (passthrough) or a directory it is confined to.

Guest paths are resolved to host paths here and nowhere else. Confined (``--root DIR``), resolution
walks component by component, follows symlinks itself, and clamps ``..`` at the root, so no path,
symlink or ``..`` reaches outside DIR (like chroot(2) path walking in fs/namei.c).
"""
import os
import stat as _stat
from errno import ELOOP, ENAMETOOLONG, ENOENT, ENOTDIR

from hermipy.syscalls.errors import SyscallError

MAX_SYMLINKS = 40          # fs/namei.c MAXSYMLINKS
PATH_MAX = 4096


class FsView:
    def __init__(self, root: str | None = None):
        self.root = os.path.realpath(root) if root else None
        self.cwd = "/" if self.root else os.getcwd()

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

    def to_host(self, guest_path: str, follow: bool = True) -> str:
        """Host path for an absolute guest path; confined paths are walked safely."""
        if self.root is None:
            return guest_path
        return self._walk(guest_path, follow)

    def _walk(self, guest_path: str, follow: bool) -> str:
        """Resolve inside the root: symlinks are read and re-anchored, '..' stops at the root."""
        parts = [p for p in guest_path.split("/") if p]
        resolved: list[str] = []
        links = 0
        while parts:
            name = parts.pop(0)
            if name == ".":
                continue
            if name == "..":
                if resolved:
                    resolved.pop()
                continue
            host = os.path.join(self.root, *resolved, name)
            is_last = not parts
            try:
                st = os.lstat(host)
            except FileNotFoundError:
                if is_last:
                    resolved.append(name)
                    break
                raise SyscallError(ENOENT) from None
            except NotADirectoryError:
                raise SyscallError(ENOTDIR) from None
            if _stat.S_ISLNK(st.st_mode) and (follow or not is_last):
                links += 1
                if links > MAX_SYMLINKS:
                    raise SyscallError(ELOOP)
                target = os.readlink(host)
                target_parts = [p for p in target.split("/") if p]
                if target.startswith("/"):
                    resolved = []
                parts = target_parts + parts
                continue
            if not is_last and not _stat.S_ISDIR(st.st_mode):
                raise SyscallError(ENOTDIR)
            resolved.append(name)
        if guest_path.endswith("/") and resolved:
            return os.path.join(self.root, *resolved) + "/"
        return os.path.join(self.root, *resolved)

    def to_guest(self, host_path: str) -> str:
        """The guest's name for a host path (inverse of to_host for paths inside the root)."""
        if self.root is None:
            return host_path
        rel = os.path.relpath(host_path, self.root)
        return "/" if rel == "." else "/" + rel
