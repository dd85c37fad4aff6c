"""Images a run is confined to: ``hermipy pack`` files (.hpk) and container images (an OCI image layout
directory or a ``docker save`` tarball). The format is docs/pack.md.

An image is unpacked once into a content-addressed cache, ``$XDG_CACHE_HOME/hermipy/images/<sha256>/``
(``rootfs/`` and ``manifest.json``), and never written again. Each run gets a scratch layer under
``$XDG_CACHE_HOME/hermipy/runs/`` (``Scratch``): an overlay mount in a mount namespace of its own where hermipy
may mount, else the image's directories made anew and its other files hard links to the cached ones (the vfs
copies an image file up before changing it in place: syscalls/vfs.py ``LOWER``). The guest is confined to it
(``--root``), so what it creates, changes or removes stays in the scratch layer, which is removed when the run
ends (``--persist DIR`` keeps a private copy instead).

Layers are applied as the OCI image spec's "Applying changesets" says: in order, ``.wh.NAME`` removes NAME of
the layers below, ``.wh..wh..opq`` empties its directory of them; every entry is created through the tree's
own confined view, so ``..``, absolute names and symlinks never lead out of it.
"""
import contextlib
import io
import json
import os
import shutil
import stat

from hermipy.errors import HermipyError

FORMAT, VERSION = "hermipy-image", 1
MANIFEST = "hermipy-manifest.json"          # the first member of an .hpk
ROOTFS = "rootfs"                           # the image's files, under this directory of the .hpk
ARCH = "amd64"                              # GOARCH names, as OCI configs spell them
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"     # docker's default
WHITEOUT, OPAQUE = ".wh.", ".wh..wh..opq"
ZSTD = b"\x28\xb5\x2f\xfd"
SETID = stat.S_ISUID | stat.S_ISGID


class ImageError(HermipyError):
    """A bad image: one line, exit 126 (127: not found)."""


def cache_home() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "hermipy")


# -- the manifest ---------------------------------------------------------------------------------------
FIELDS = {"format": str, "version": int, "architecture": str, "os": str, "entrypoint": list, "cmd": list,
          "env": list, "workdir": str, "user": str, "memory_mib": (int, type(None)), "backend": str}


def new_manifest(entrypoint: list[str], cmd: list[str], env: list[str], workdir: str = "/", user: str = "",
                 memory_mib: int | None = None, backend: str = "auto", **extra) -> dict:
    from hermipy import __version__
    if not any(e.startswith("PATH=") for e in env):
        env = [DEFAULT_PATH, *env]
    return {"format": FORMAT, "version": VERSION, "architecture": ARCH, "os": "linux", "entrypoint": entrypoint,
            "cmd": cmd, "env": env, "workdir": workdir or "/", "user": user, "memory_mib": memory_mib,
            "backend": backend, "created_by": f"hermipy {__version__}", **extra}


def parse_manifest(data: bytes, where: str) -> dict:
    """The manifest, checked: every field present with its type, this format and version, x86-64."""
    try:
        manifest = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise ImageError(f"{where}: the manifest does not parse: {err}") from None
    if not isinstance(manifest, dict):
        raise ImageError(f"{where}: the manifest does not parse: not a JSON object")
    for field, kind in FIELDS.items():
        if not isinstance(manifest.get(field), kind):
            raise ImageError(f"{where}: the manifest does not parse: {field!r} missing or of the wrong type")
    for field in ("entrypoint", "cmd", "env"):
        if not all(isinstance(item, str) for item in manifest[field]):
            raise ImageError(f"{where}: the manifest does not parse: {field!r} must be a list of strings")
    if manifest["format"] != FORMAT or manifest["version"] != VERSION:
        raise ImageError(f"{where}: not a {FORMAT} version {VERSION} manifest")
    check_platform(manifest["os"], manifest["architecture"], where)
    return manifest


def check_platform(os_name: str, arch: str, where: str) -> None:
    if os_name != "linux" or arch != ARCH:
        raise ImageError(f"{where}: the image is for {os_name}/{arch}; hermipy runs linux/amd64 (x86-64) only")


# -- applying tar layers to a tree --------------------------------------------------------------------------
class Tree:
    """A directory being built from tar layers; all of it reached through a confined view of it."""

    def __init__(self, root: str):
        from hermipy.syscalls.vfs import FsView
        self.root = root
        self.view = FsView(root)
        self.as_root = os.geteuid() == 0
        self.dir_times: dict[str, tuple[int, int]] = {}

    def apply(self, tar, label: str) -> None:
        """Apply one layer (a tar read as a stream); whiteouts act on the layers below only."""
        made: set[str] = set()
        for member in tar:
            path = clean_name(member.name, label)
            if path is None:                            # the root itself: "./"
                if member.isdir():
                    os.chmod(".", member.mode & 0o7777, dir_fd=self.view.rootfd)
                    self.dir_times[""] = (int(member.mtime * 10**9),) * 2
                continue
            parent, base = os.path.split(path)
            if base == OPAQUE:
                self._empty(parent, made)
            elif base.startswith(WHITEOUT):
                gone = os.path.join(parent, base[len(WHITEOUT):])
                if gone not in made:
                    self._remove(gone)
            else:
                self._add(tar, member, path, label)
                made.add(path)

    def finish(self) -> None:
        """Directory times last (adding entries changed them)."""
        for path, (atime, mtime) in sorted(self.dir_times.items(), reverse=True):
            fd = self._entry_dir(path)
            if fd is not None:
                try:
                    os.utime(os.path.basename(path) or ".", ns=(atime, mtime), dir_fd=fd, follow_symlinks=False)
                finally:
                    os.close(fd)

    def _entry_dir(self, path: str, create: bool = False) -> int | None:
        """An O_PATH fd of the directory that holds ``path`` (relative), its symlinks followed inside the
        tree; missing directories made when ``create``, else None."""
        parent = os.path.dirname(path)
        if not parent:
            return os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self.view.rootfd)
        from hermipy.syscalls.errors import SyscallError
        try:
            t = self.view.resolve("/" + parent)
            if not t.missing:
                return os.open(t.name, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=t.dirfd)
        except (SyscallError, NotADirectoryError, FileNotFoundError):
            if not create:
                return None
            self._remove(parent)                        # a file where a directory must be: replaced
        if not create:
            return None
        up = self._entry_dir(parent, True)
        try:
            os.mkdir(os.path.basename(parent), 0o755, dir_fd=up)
        finally:
            os.close(up)
        return self._entry_dir(path)

    def _remove(self, path: str) -> None:
        fd = self._entry_dir(path)
        if fd is None:
            return
        base = os.path.basename(path)
        real = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
        try:
            st = os.stat(base, dir_fd=real, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(base, dir_fd=real)
            else:
                os.unlink(base, dir_fd=real)
        except FileNotFoundError:
            pass
        finally:
            os.close(real)
            os.close(fd)

    def _empty(self, directory: str, made: set[str]) -> None:
        fd = self._entry_dir(os.path.join(directory, "x"))
        if fd is None:
            return
        real = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
        os.close(fd)
        try:
            names = os.listdir(real)
        finally:
            os.close(real)
        for name in names:
            if os.path.join(directory, name) not in made:
                self._remove(os.path.join(directory, name))

    def _add(self, tar, m, path: str, label: str) -> None:
        if m.ischr() or m.isblk():
            return                                      # devices: the run's /dev is hermipy's
        fd = self._entry_dir(path, True)
        real = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
        os.close(fd)
        base = os.path.basename(path)
        try:
            kept = False                                # a directory over a directory stays, with its entries
            try:
                old = os.stat(base, dir_fd=real, follow_symlinks=False)
                kept = m.isdir() and stat.S_ISDIR(old.st_mode)
                if not kept and stat.S_ISDIR(old.st_mode):
                    shutil.rmtree(base, dir_fd=real)
                elif not kept:
                    os.unlink(base, dir_fd=real)
            except FileNotFoundError:
                pass
            mode = m.mode & 0o7777
            if m.isdir():
                if not kept:
                    os.mkdir(base, 0o700, dir_fd=real)
                self.dir_times[path] = (int(m.mtime * 10**9),) * 2
            elif m.isreg():
                mode &= ~SETID                          # never a set-id file in the host's cache
                out = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                              dir_fd=real)
                with os.fdopen(out, "wb") as f:
                    shutil.copyfileobj(tar.extractfile(m), f, 1 << 20)
            elif m.issym():
                os.symlink(m.linkname, base, dir_fd=real)
            elif m.islnk():
                self._link(m, base, real, label)
                return                                  # the same inode: its attributes are set already
            elif m.isfifo():
                os.mkfifo(base, 0o600, dir_fd=real)
            else:
                return
            if self.as_root:
                os.chown(base, m.uid, m.gid, dir_fd=real, follow_symlinks=False)
            if not m.issym():
                os.chmod(base, mode, dir_fd=real)
                os.utime(base, ns=(int(m.mtime * 10**9),) * 2, dir_fd=real)
        finally:
            os.close(real)

    def _link(self, m, base: str, real: int, label: str) -> None:
        target = clean_name(m.linkname, label)
        fd = self._entry_dir(target) if target else None
        if fd is None:
            raise ImageError(f"{label}: {m.name}: hard link to {m.linkname}, which is not in the image")
        try:
            os.link(os.path.basename(target), base, src_dir_fd=fd, dst_dir_fd=real, follow_symlinks=False)
        except FileNotFoundError:
            raise ImageError(f"{label}: {m.name}: hard link to {m.linkname}, which is not in the image") from None
        finally:
            os.close(fd)


def clean_name(name: str, label: str) -> str | None:
    """A member's path relative to the tree ("a/b"); None for the root itself. A leading "/" is dropped, as
    tar does; a ".." that would climb out of the tree is an error."""
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise ImageError(f"{label}: {name}: a path escaping the image root")
        parts.append(part)
    return "/".join(parts) or None


def open_layer(stream, label: str):
    """A tar layer (tarfile, as a stream), gzip/bzip2/xz-compressed or not."""
    import tarfile
    import zlib
    if stream.peek(4)[:4] == ZSTD:
        raise ImageError(f"{label}: zstd-compressed, which this Python's tarfile cannot read")
    try:
        return tarfile.open(fileobj=stream, mode="r|*")
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise ImageError(f"{label}: not a tar archive, or corrupt ({err or 'empty'})") from None


def apply_layer(tree: Tree, stream, label: str) -> None:
    import tarfile
    import zlib
    try:
        with open_layer(stream, label) as tar:
            tree.apply(tar, label)
    except (tarfile.TarError, EOFError, zlib.error) as err:
        raise ImageError(f"{label}: corrupt or truncated ({err or 'unexpected end of data'})") from None
    except OSError as err:
        if err.errno is None:                          # gzip/lzma: a bad or cut stream
            raise ImageError(f"{label}: corrupt or truncated ({err})") from None
        raise


class Hashing(io.RawIOBase):
    """A reader that hashes what passes through it (a blob checked against its digest)."""

    def __init__(self, f):
        import hashlib
        self.f, self.sha = f, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self.f.read(len(b))
        self.sha.update(data)
        b[:len(data)] = data
        return len(data)

    def drain(self) -> str:
        while self.f.read(1 << 20):
            pass
        return self.sha.hexdigest()


def apply_checked(tree: Tree, f, digest: str, label: str) -> None:
    """Apply a layer whose sha256 must be ``digest`` ("sha256:HEX"; of the bytes as stored)."""
    reader = Hashing(f)
    hashed = io.BufferedReader(reader, 1 << 16)
    apply_layer(tree, hashed, label)
    while hashed.read(1 << 20):
        pass
    if "sha256:" + reader.sha.hexdigest() != digest:
        raise ImageError(f"{label}: corrupt: its sha256 is not {digest}")


# -- the cache ------------------------------------------------------------------------------------------
def images_dir() -> str:
    return os.path.join(cache_home(), "images")


def cached(key: str) -> str | None:
    d = os.path.join(images_dir(), key)
    return d if os.path.exists(os.path.join(d, "manifest.json")) else None


def store(key: str, build) -> str:
    """The cache entry ``key``, made by ``build(tree) -> manifest`` if missing (into a temporary directory
    renamed into place, so a concurrent first run finds a whole entry or none)."""
    done = cached(key)
    if done:
        return done
    os.makedirs(images_dir(), exist_ok=True)
    tmp = os.path.join(images_dir(), f".tmp-{os.getpid()}-{os.urandom(4).hex()}")
    os.makedirs(os.path.join(tmp, ROOTFS))
    try:
        tree = Tree(os.path.join(tmp, ROOTFS))
        manifest = build(tree)
        tree.finish()
        with open(os.path.join(tmp, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=1)
        try:
            os.rename(tmp, os.path.join(images_dir(), key))
        except OSError:                                 # another run stored it first
            pass
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return os.path.join(images_dir(), key)


def by_file(st: os.stat_result) -> str:
    """The index entry naming the content key of a file as it is now (device, inode, size, mtime and ctime,
    which no user can set back), so that a warm run does not hash the file again."""
    ident = f"{st.st_dev:x}-{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}-{st.st_ctime_ns:x}"
    return os.path.join(cache_home(), "by-file", ident)


def file_key(path: str, st: os.stat_result) -> str:
    """sha256 of a file's content, remembered per identity (by_file)."""
    index = by_file(st)
    try:
        return os.readlink(index)
    except OSError:
        pass
    import hashlib
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
    key = sha.hexdigest()
    os.makedirs(os.path.dirname(index), exist_ok=True)
    try:
        os.symlink(key, index)
    except FileExistsError:
        pass
    return key


# -- .hpk files -----------------------------------------------------------------------------------------
def unpack_hpk(path: str) -> str:
    """The cache entry of an .hpk (unpacked on first use)."""
    st = _stat_image(path)
    return store(file_key(path, st), lambda tree: _build_hpk(path, tree))


def _build_hpk(path: str, tree: Tree) -> dict:
    import tarfile
    import zlib
    label = path
    try:
        with tarfile.open(path, mode="r|gz") as tar:
            first = tar.next()
            if first is None or first.name != MANIFEST or not first.isreg():
                raise ImageError(f"{label}: not a hermipy image: it does not start with {MANIFEST}")
            manifest = parse_manifest(tar.extractfile(first).read(), label)
            tree.apply(_Under(tar, ROOTFS, label), label)
    except (tarfile.TarError, EOFError, zlib.error) as err:
        raise ImageError(f"{label}: corrupt or truncated ({err or 'unexpected end of data'})") from None
    except OSError as err:
        if err.errno is None:
            raise ImageError(f"{label}: corrupt or truncated ({err})") from None
        raise
    return manifest


class _Under:
    """The members of a tar under one directory, renamed relative to it (an .hpk's rootfs/)."""

    def __init__(self, tar, top: str, label: str):
        self.tar, self.top, self.label = tar, top, label

    def __iter__(self):
        for m in self.tar:
            name = m.name
            if name == MANIFEST and m.offset == 0:
                continue                                # read already (tarfile iterates from the start)
            if name != self.top and not name.startswith(self.top + "/"):
                raise ImageError(f"{self.label}: {name}: outside {self.top}/")
            m.name = name[len(self.top):] or "."
            if m.islnk():
                if not m.linkname.startswith(self.top + "/"):
                    raise ImageError(f"{self.label}: {name}: hard link outside {self.top}/")
                m.linkname = m.linkname[len(self.top):]
            yield m

    def extractfile(self, m):
        return self.tar.extractfile(m)


def _stat_image(path: str) -> os.stat_result:
    try:
        return os.stat(path)
    except FileNotFoundError:
        raise ImageError(f"{path}: No such file or directory", 127) from None
    except OSError as err:
        raise ImageError(f"{path}: {err.strerror}") from None


def load_manifest(entry: str) -> dict:
    with open(os.path.join(entry, "manifest.json"), "rb") as f:
        return json.loads(f.read())


# -- a run's scratch tree -------------------------------------------------------------------------------
class Scratch:
    """The tree a run is confined to, under ``$XDG_CACHE_HOME/hermipy/runs/<pid>.<random>/``; removed by ``close``.

    Where hermipy may mount (root, a single-threaded process): an overlay mount (overlayfs(5)) in a mount
    namespace of the run's own, the cached image its read-only lower layer, ``upper/`` what the guest writes:
    made in a few system calls whatever the image's size, and the kernel copies files up. Every run mounts it on
    the same empty directory, ``runs/mnt`` (``root``), each in its own namespace, where it ends with the run's
    last process: nothing to unmount. Otherwise a tree of the image's directories made anew, its other files hard links to the cached ones
    (``inodes``: vfs.LOWER copies one up before it changes)."""

    def __init__(self, entry: str):
        runs = os.path.join(cache_home(), "runs")
        os.makedirs(runs, exist_ok=True)
        _remove_stale(runs)
        self.top = os.path.join(runs, f"{os.getpid()}.{os.urandom(4).hex()}")
        self.inodes: set[int] | None = None
        lower = os.path.join(entry, ROOTFS)
        src = os.open(lower, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        st = os.fstat(src)
        self.dev = st.st_dev
        os.mkdir(self.top, 0o700)
        mask = os.umask(0)
        try:
            self.root = _overlay(lower, self.top, st)
            if self.root is None:
                self.root, self.inodes = self.top, set()
                dst = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    _link_tree(src, dst, self.inodes, os.geteuid() == 0)
                    _attributes(dst, st, os.geteuid() == 0)
                finally:
                    os.close(dst)
        finally:
            os.umask(mask)
            os.close(src)

    def close(self) -> None:
        if self.inodes is None:
            _remove_overlay_dirs(self.top)
        else:
            shutil.rmtree(self.top, ignore_errors=True)


CLONE_NEWNS, MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE = 0x20000, 2, 4, 0x4000, 0x40000


def _overlay(lower: str, top: str, st: os.stat_result) -> str | None:
    """Mount the run's overlay (``lower``, ``top``/upper and ``top``/work) on ``runs/mnt`` in a new mount
    namespace (unshare(2) CLONE_NEWNS, every mount made private first so that nothing propagates to the host's);
    returns where it is mounted, or None where that cannot be done (not root, other threads running, no
    overlayfs, a path the mount options cannot spell): the caller makes a tree of hard links instead. nosuid and
    nodev, as a container runtime mounts a rootfs; the upper root takes the image root's mode, owner and times."""
    if os.geteuid() != 0 or any(c in lower + top for c in ",:\\"):
        return None
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        return None                    # EINVAL: a thread shares our fs_struct; EPERM: no CAP_SYS_ADMIN
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), f"making the run's mounts private: {os.strerror(ctypes.get_errno())}")
    upper, work = os.path.join(top, "upper"), os.path.join(top, "work")
    merged = os.path.join(os.path.dirname(top), "mnt")
    for directory in (upper, work):
        os.mkdir(directory, 0o700)
    with contextlib.suppress(FileExistsError):
        os.mkdir(merged, 0o700)
    fd = os.open(upper, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _attributes(fd, st, True)
    finally:
        os.close(fd)
    options = f"lowerdir={lower},upperdir={upper},workdir={work}".encode()
    if libc.mount(b"hermipy", merged.encode(), b"overlay", MS_NOSUID | MS_NODEV, options) != 0:
        _remove_overlay_dirs(top, keep_top=True)  # ENODEV: no overlayfs; EINVAL: an upper fs it cannot use
        return None
    return merged


def _remove_overlay_dirs(top: str, keep_top: bool = False) -> None:
    """``top``'s work/work, work and upper are empty directories unless the guest wrote something: a few
    rmdirs, the whole walk only for what it wrote."""
    for directory in ("work/work", "work", "upper", *(() if keep_top else ("",))):
        path = os.path.join(top, directory)
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError:
            shutil.rmtree(path, ignore_errors=True)


def _link_tree(src: int, dst: int, inodes: set[int], as_root: bool) -> None:
    with os.scandir(src) as entries:
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                os.mkdir(e.name, 0o700, dir_fd=dst)
                s = os.open(e.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src)
                d = os.open(e.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dst)
                try:
                    _link_tree(s, d, inodes, as_root)
                    _attributes(d, os.fstat(s), as_root)
                finally:
                    os.close(s)
                    os.close(d)
            else:
                os.link(e.name, e.name, src_dir_fd=src, dst_dir_fd=dst, follow_symlinks=False)
                inodes.add(e.inode())


def _copy_tree(src: int, dst: int, as_root: bool) -> None:
    """A private copy of a cached tree (--persist)."""
    from hermipy.syscalls.vfs import copy_up
    with os.scandir(src) as entries:
        for e in entries:
            st = e.stat(follow_symlinks=False)
            if e.is_dir(follow_symlinks=False):
                os.mkdir(e.name, 0o700, dir_fd=dst)
                s = os.open(e.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src)
                d = os.open(e.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dst)
                try:
                    _copy_tree(s, d, as_root)
                    _attributes(d, st, as_root)
                finally:
                    os.close(s)
                    os.close(d)
            else:
                os.link(e.name, e.name, src_dir_fd=src, dst_dir_fd=dst, follow_symlinks=False)
                copy_up(dst, e.name, st)


def _attributes(fd: int, st: os.stat_result, as_root: bool) -> None:
    if as_root:
        os.fchown(fd, st.st_uid, st.st_gid)
    os.fchmod(fd, stat.S_IMODE(st.st_mode))
    os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))


def _remove_stale(runs: str) -> None:
    """Scratch trees of runs whose process is gone (killed before it could remove its own)."""
    for name in os.listdir(runs):
        try:
            os.kill(int(name.split(".")[0]), 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(runs, name), ignore_errors=True)
        except (ValueError, PermissionError):
            pass


def persist_tree(entry: str, directory: str) -> None:
    """--persist DIR: DIR is the run's tree, kept; a new (missing or empty) DIR starts as a copy of the image."""
    if os.path.isdir(directory) and os.listdir(directory):
        return
    os.makedirs(directory, exist_ok=True)
    src = os.open(os.path.join(entry, ROOTFS), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    dst = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    mask = os.umask(0)
    try:
        _copy_tree(src, dst, os.geteuid() == 0)
        _attributes(dst, os.fstat(src), os.geteuid() == 0)
    finally:
        os.umask(mask)
        os.close(src)
        os.close(dst)


# -- a run ----------------------------------------------------------------------------------------------
def entry_of(path: str, container: bool) -> str:
    """The cache entry of an image given on the command line (.hpk, OCI layout directory, docker save tar)."""
    if not container:
        return unpack_hpk(path)
    from hermipy.oci import unpack_container
    return unpack_container(path)


class ImageRun:
    """What ``hermipy run`` needs for an image: root, argv, environment, cwd, memory, backend; ``close``."""

    def __init__(self, path: str, container: bool, args: list[str], env: list[str], clear_env: bool,
                 persist: str | None):
        from hermipy.syscalls import vfs
        entry = entry_of(path, container)
        m = load_manifest(entry)
        self.manifest = m
        argv = m["entrypoint"] + (args or m["cmd"])
        if not argv:
            raise ImageError(f"{path}: no command: the image has no entrypoint or cmd, and none was given", 127)
        self.argv = argv
        environment = dict(e.split("=", 1) for e in ([] if clear_env else m["env"]) if "=" in e)
        for item in env:
            if "=" not in item:
                raise HermipyError(f"-E {item}: expected VAR=VAL", 2)
            key, value = item.split("=", 1)
            environment[key] = value
        environment.setdefault("HOME", "/root" if m["user"] in ("", "0", "root") else "/")
        self.env = [f"{k}={v}".encode() for k, v in environment.items()]
        self.cwd = m["workdir"] or "/"
        self.memory_mib, self.backend, self.user = m["memory_mib"], m["backend"], m["user"]
        self.scratch = None
        self.owner = os.getpid()            # the guest's fork children return through here too: they leave it
        try:
            if persist:
                persist_tree(entry, persist)
                self.root = os.path.realpath(persist)
            else:
                self.scratch = Scratch(entry)
                self.root = self.scratch.root
                if self.scratch.inodes is not None:
                    vfs.LOWER = vfs.Lower(self.scratch.dev, self.scratch.inodes, self.root)
            self._workdir()
        except OSError as err:
            self.close()
            raise ImageError(f"{path}: cannot make the run's file system: {err}") from None

    def _workdir(self) -> None:
        """The working directory is made if the image lacks it, as docker run does."""
        from hermipy.syscalls.vfs import FsView
        view = FsView(self.root)
        parts = [p for p in self.cwd.split("/") if p]
        for i in range(len(parts)):
            t = view.resolve("/" + "/".join(parts[:i + 1]))
            if t.missing or not t.exists():
                t.mkdir(0o755)

    def credentials(self) -> tuple[int, int] | None:
        """(uid, gid) of the image's User ("name", "uid", "name:group"...; names looked up in the image's
        /etc/passwd and /etc/group, as docker does); None when it is hermipy's own."""
        if not self.user:
            return None
        name, _, group = self.user.partition(":")
        users = _table(self.root, "/etc/passwd")
        line = next((u for u in users if u[0] == name or name.isdigit() and u[2] == name), None)
        if name.isdigit():
            uid = int(name)
        elif line is None:
            raise ImageError(f"user {name}: not in the image's /etc/passwd")
        else:
            uid = int(line[2])
        if not group:
            gid = int(line[3]) if line is not None and len(line) > 3 and line[3].isdigit() else 0
        elif group.isdigit():
            gid = int(group)
        else:
            found = next((g for g in _table(self.root, "/etc/group") if g[0] == group), None)
            if found is None:
                raise ImageError(f"group {group}: not in the image's /etc/group")
            gid = int(found[2])
        return None if (uid, gid) == (os.geteuid(), os.getegid()) else (uid, gid)

    def close(self) -> None:
        """The run's first process removes the scratch tree once its guest has ended."""
        if self.scratch is not None and os.getpid() == self.owner:
            self.scratch.close()


def become(k, uid: int, gid: int) -> None:
    """The guest starts as the image's User: its ids as after setgroups, setresgid and setresuid (the recorded
    ids of syscalls/sys_info.py, whose note says what stays the host's)."""
    from hermipy.syscalls.sys_info import _creds, _fix_setuid, _uids
    p = _creds(k)
    old = _uids(p)
    p.groups = [gid]
    p.gid = p.egid = p.sgid = p.fsgid = gid
    p.uid = p.euid = p.suid = p.fsuid = uid
    _fix_setuid(p, old)


def _table(root: str, path: str) -> list[list[str]]:
    """The lines of the image's passwd or group file, split at ':' (those with a numeric id)."""
    from hermipy.syscalls.errors import SyscallError
    from hermipy.syscalls.vfs import FsView
    try:
        fd = FsView(root).resolve(path).open(os.O_RDONLY | os.O_CLOEXEC, 0)
    except (SyscallError, OSError):
        return []
    with os.fdopen(fd, "rb") as f:
        rows = [line.decode(errors="replace").rstrip("\n").split(":") for line in f]
    return [r for r in rows if len(r) >= 3 and r[2].isdigit()]
