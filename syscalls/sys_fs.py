"""File-system syscalls: open, stat, directories, links, permissions (fs/open.c, fs/stat.c, fs/namei.c).

Every path goes through ``k.fs`` (vfs.FsView): relative paths are joined onto the cwd or the dirfd's
guest path, then resolved to a ``vfs.Target``: a host file (a path the host resolves unconfined; under
``--root`` a name in a directory fd hermipy holds) or a synthetic node (procfs). The host calls are the
Target's methods, so their errors are the guest's errors. Where Python's ``os`` module cannot express a
call exactly (statx, getdents64, renameat2 flags, faccessat2, utimensat with UTIME_OMIT, statfs's f_type),
the host syscall is made directly with ctypes.
"""
import ctypes
import os
import stat as _stat
import struct
from errno import (E2BIG, EACCES, EAGAIN, EBADF, EBUSY, EEXIST, EFAULT, EINVAL, EISDIR, ELOOP, ENODEV, ENOENT,
                   ENOTDIR, ENOTEMPTY, EOPNOTSUPP, EOVERFLOW, EPERM, ERANGE, EROFS, EXDEV)

from hermipy.layout import PAGE_SIZE
from hermipy.syscalls import procfs
from hermipy.syscalls.argtypes import (ACCESS_MODE, AT_FDCWD, AT_FLAGS, OPEN_FLAGS, OpenMode, RENAME_FLAGS, STATX_FLAGS,
                                       DirFd, Fd, Flags, Int, Long, Octal, Path, Ptr, Size, UInt)
from hermipy.syscalls.errors import SyscallError
from hermipy.syscalls.files import (O_ACCMODE, O_CLOEXEC, O_CREAT, O_DIRECTORY, O_EXCL, O_LARGEFILE, O_NOCTTY,
                                    O_NOFOLLOW, O_PATH, O_RDWR, O_TMPFILE, O_TRUNC, O_WRONLY, OpenFile,
                                    host_kind)
from hermipy.syscalls.table import FULL, PARTIAL, syscall
from hermipy.syscalls.host import host_call, host_syscall
from hermipy.syscalls.vfs import PATH_MAX, Target, own_open_file

AT_SYMLINK_NOFOLLOW, AT_EACCESS, AT_REMOVEDIR, AT_SYMLINK_FOLLOW = 0x100, 0x200, 0x200, 0x400
AT_NO_AUTOMOUNT, AT_EMPTY_PATH, AT_STATX_SYNC_TYPE = 0x800, 0x1000, 0x6000
RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT = 1, 2, 4
F_OK, X_OK, W_OK, R_OK = 0, 1, 2, 4
STATX_BASIC_STATS, STATX__RESERVED = 0x7FF, 0x80000000
MAX_DIRENT_BUF = 1 << 20                # one getdents call fills at most this much (a short read is fine)
STAT = struct.Struct("<3Q3IiQ3q6q3q")   # struct stat, arch/x86/include/uapi/asm/stat.h (144 bytes)
STATX_HEAD = struct.Struct("<IIQIIIHHQQQQ")         # struct statx up to stx_attributes_mask
STATX_TS = struct.Struct("<qIi")
STATX_SIZE = 256
STATFS_SIZE = 120                       # struct statfs (asm-generic/statfs.h, 64-bit words)
DIRENT64 = struct.Struct("<QqHB")       # struct linux_dirent64 header: d_ino, d_off, d_reclen, d_type
DIRENT = struct.Struct("<QQH")          # struct linux_dirent header: d_ino, d_off, d_reclen

_host_umask_cleared = False


# -- helpers ------------------------------------------------------------------------------------
def _clear_host_umask() -> None:
    """The guest's umask is applied by hand; the host's must not strip bits a second time."""
    global _host_umask_cleared
    if not _host_umask_cleared:
        os.umask(0)
        _host_umask_cleared = True


def _path(k, addr: int) -> str:
    raw = k.mem.read_cstr(addr, PATH_MAX + 1)
    if len(raw) >= PATH_MAX:
        raise SyscallError(36)          # ENAMETOOLONG
    return os.fsdecode(raw)


def _synthetic(k):
    if k.fs.synthetic is None:
        k.fs.synthetic = procfs.Synthetic(k)
    return k.fs.synthetic


def _dir_base(k, dirfd: int) -> str:
    if dirfd == AT_FDCWD:
        return k.fs.cwd
    of = k.fds.get(dirfd)
    if of.kind != "dir":
        raise SyscallError(ENOTDIR)
    return of.path


def lookup(k, dirfd: int, path: str, follow: bool = True) -> Target:
    """Resolve ``path`` (relative to ``dirfd`` or the cwd) in the guest's view."""
    if not path:
        raise SyscallError(ENOENT)
    _synthetic(k)
    base = "/" if path.startswith("/") else _dir_base(k, dirfd)
    return k.fs.resolve(k.fs.absolute(base, path), follow)


def _existing(t: Target) -> Target:
    if t.missing:
        raise SyscallError(ENOENT)
    return t


def _last_name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1] if path.rstrip("/") else "/"


def _guest_name(k, host_fd: int, t: Target) -> str:
    """The guest's canonical name for a file just opened (what /proc/self/fd/N shows)."""
    if t.dirfd is not None or k.fs.confined and not t.host.startswith("/proc/self/fd/"):
        return t.guest
    try:
        return k.fs.to_guest(os.readlink(f"/proc/self/fd/{host_fd}"))
    except OSError:
        return t.guest


def _stat_of(k, t: Target, follow: bool):
    t = _existing(t)
    if t.node is not None:
        return procfs.node_stat(t.node)
    return t.stat(follow)


def _fstat_of(of: OpenFile):
    if of.node is not None:
        return procfs.node_stat(of.node)
    return os.fstat(of.host_fd)


def pack_stat(st) -> bytes:
    """struct stat from an os.stat_result (or procfs.Stat)."""
    a, m, c = st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns
    return STAT.pack(st.st_dev, st.st_ino, st.st_nlink, st.st_mode, st.st_uid, st.st_gid, 0, st.st_rdev,
                     st.st_size, st.st_blksize, st.st_blocks, a // 10**9, a % 10**9, m // 10**9, m % 10**9,
                     c // 10**9, c % 10**9, 0, 0, 0)


def _on_host(t: Target, errno: int = EACCES) -> Target:
    """A target that must be a host file (synthetic files refuse changes)."""
    if not t.on_host:
        raise SyscallError(errno)
    return t


# -- open ---------------------------------------------------------------------------------------
def _shown_flags(flags: int) -> int:
    """What F_GETFL will say of a file opened with ``flags``."""
    if flags & O_PATH:
        return flags & (O_PATH | 0o200000 | O_NOFOLLOW | O_ACCMODE)
    return (flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC)) | O_LARGEFILE


def do_open(k, dirfd: int, path: str, flags: int, mode: int) -> int:
    """do_sys_openat2(): resolve, open on the host (or synthesize), install in the fd table."""
    follow = not flags & O_NOFOLLOW and not (flags & O_CREAT and flags & O_EXCL)
    t = lookup(k, dirfd, path, follow)
    cloexec = bool(flags & O_CLOEXEC)
    shown = _shown_flags(flags)
    if t.node is not None:
        of = procfs.open_node(t.node, t.guest, flags)
        of.flags = shown
    elif not t.on_host:
        raise SyscallError(EACCES if flags & O_CREAT else ENOENT)
    else:
        host_flags = flags | O_CLOEXEC
        if flags & O_CREAT or flags & O_TMPFILE == O_TMPFILE:
            _clear_host_umask()
            mode &= 0o7777 & ~k.proc.umask
        else:
            mode = 0                          # build_open_how(): the mode means nothing unless a file is made
        host_fd = t.open(host_flags, mode)
        # Unconfined, the host resolved the path: its name is the host's (OpenFile.path reads it when asked).
        name = None if t.dirfd is None and not k.fs.confined else _guest_name(k, host_fd, t)
        of = OpenFile(host_fd, name, shown, None)
        of.bound = t.bound
    try:
        return k.fds.install(of, cloexec)
    except SyscallError:
        if of.refs == 0:
            of.refs = 1
            of.release()
        raise


@syscall("openat", FULL)
def openat(k, dirfd: DirFd, pathname: Path, flags: OPEN_FLAGS, mode: OpenMode(2)) -> int:
    """openat(2)."""
    _check_legacy_open_flags(flags)
    return do_open(k, dirfd, _path(k, pathname), flags, mode)


def _check_legacy_open_flags(flags: int) -> None:
    """build_open_how() + build_open_flags() for open/openat/creat, before the path is read: unknown bits are
    dropped (O_PATH keeps only its companions), then O_DIRECTORY|O_CREAT and an O_TMPFILE without O_DIRECTORY or
    write access are EINVAL."""
    flags &= VALID_OPEN_FLAGS
    if flags & O_PATH:
        flags &= O_PATH_FLAGS
    if (flags & (O_DIRECTORY | O_CREAT) == O_DIRECTORY | O_CREAT
            or flags & O_TMPFILE_BIT and (not flags & O_DIRECTORY or not flags & O_ACCMODE)):
        raise SyscallError(EINVAL)


RESOLVE_NO_XDEV, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS = 0x01, 0x02, 0x04
RESOLVE_BENEATH, RESOLVE_IN_ROOT, RESOLVE_CACHED = 0x08, 0x10, 0x20
OPEN_HOW = struct.Struct("<QQQ")           # struct open_how: flags, mode, resolve (OPEN_HOW_SIZE_VER0)
VALID_OPEN_FLAGS = 0o37777703              # include/linux/fcntl.h: every O_* openat2 accepts
O_PATH_FLAGS = O_DIRECTORY | O_NOFOLLOW | O_PATH | O_CLOEXEC
O_TMPFILE_BIT = 0o20000000                 # __O_TMPFILE


@syscall("openat2", PARTIAL, note="struct open_how checked as build_open_flags() does; the RESOLVE_* flags are the "
                                  "host's openat2 from a directory fd in the guest's root (under --root, guest "
                                  "paths resolve in the root as RESOLVE_IN_ROOT); paths through hermipy's /proc "
                                  "and /dev, and writes to an image's files in its hard-link layer, open as openat "
                                  "does, the resolve flags unapplied")
def openat2(k, dirfd: DirFd, pathname: Path, how: Ptr, size: Size) -> int:
    """openat2(2): copy_struct_from_user() (EINVAL below version 0, E2BIG for unknown nonzero bytes or a size
    past a page), build_open_flags()'s checks, then the open."""
    if size < OPEN_HOW.size:
        raise SyscallError(EINVAL)
    if size > PAGE_SIZE:
        raise SyscallError(E2BIG)
    raw = k.mem.read(how, size)
    if any(raw[OPEN_HOW.size:]):
        raise SyscallError(E2BIG)
    flags, mode, resolve = OPEN_HOW.unpack_from(raw)
    creating = flags & O_CREAT or flags & O_TMPFILE == O_TMPFILE
    if (flags & ~VALID_OPEN_FLAGS or resolve & ~0x3F or resolve & RESOLVE_BENEATH and resolve & RESOLVE_IN_ROOT
            or (mode & ~0o7777 if creating else mode)
            or flags & O_PATH and flags & ~O_PATH_FLAGS
            or flags & O_TMPFILE_BIT and (flags & O_TMPFILE != O_TMPFILE or not flags & (O_WRONLY | O_RDWR))):
        raise SyscallError(EINVAL)
    if resolve & RESOLVE_CACHED and flags & (O_TRUNC | O_CREAT | O_TMPFILE_BIT):
        raise SyscallError(EAGAIN)
    path = _path(k, pathname)
    from hermipy.syscalls import vfs
    guest = k.fs.absolute("/" if path.startswith("/") else _dir_base(k, dirfd), path)
    if vfs._may_touch_synthetic(guest):
        _check_synthetic_resolve(guest, resolve)
    if (not resolve & ~RESOLVE_CACHED or vfs._may_touch_synthetic(guest)
            or vfs.LOWER is not None and flags & (O_ACCMODE | O_TRUNC)):
        return do_open(k, dirfd, path, flags, mode)
    return _open_resolved(k, dirfd, path, guest, flags, mode, resolve)


def _check_synthetic_resolve(guest: str, resolve: int) -> None:
    """The RESOLVE_* flags against a path through hermipy's /proc or /dev, as Linux's would find them there:
    /proc and /dev are mounts (NO_XDEV: EXDEV), /proc/self, /proc/thread-self, /dev/fd and /dev/std* are
    symlinks (NO_SYMLINKS: ELOOP), /proc/PID/{fd/N,exe,cwd,root,ns/NAME} magic links (NO_MAGICLINKS too)."""
    parts = [p for p in guest.split("/") if p]
    if not parts or parts[0] not in ("proc", "dev"):
        return
    if resolve & RESOLVE_NO_XDEV:
        raise SyscallError(EXDEV)
    if parts[0] == "dev":
        if len(parts) < 2 or parts[1] not in ("fd", "stdin", "stdout", "stderr"):
            return
        through_symlink, magic = True, parts[1] != "fd" or len(parts) > 2
    else:
        through_symlink = len(parts) > 2 and parts[1] in ("self", "thread-self")
        rest = parts[2:]
        if rest[:1] == ["task"]:
            rest = rest[2:]
        magic = len(rest) >= 2 and rest[0] in ("fd", "ns") or rest[:1] in (["exe"], ["cwd"], ["root"])
    if resolve & RESOLVE_NO_SYMLINKS and (through_symlink or magic) or resolve & RESOLVE_NO_MAGICLINKS and magic:
        raise SyscallError(ELOOP)


def _open_resolved(k, dirfd: int, path: str, guest: str, flags: int, mode: int, resolve: int) -> int:
    """The host's openat2 with the RESOLVE_* flags: beneath (or in) the guest's directory fd itself, else from
    the guest's root (RESOLVE_IN_ROOT under --root, so neither .. nor an absolute symlink leads out)."""
    base, owned = None, False
    if resolve & (RESOLVE_BENEATH | RESOLVE_IN_ROOT) or not k.fs.confined and not path.startswith("/"):
        if dirfd == AT_FDCWD:
            base, owned = lookup(k, AT_FDCWD, k.fs.cwd).open(os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, 0), True
        else:
            base = k.fds.get(dirfd).host_fd
        name = path
    elif k.fs.confined:
        base, name, resolve = k.fs.rootfd, guest.lstrip("/") or ".", resolve | RESOLVE_IN_ROOT
    else:
        base, name = AT_FDCWD, path
    if flags & O_CREAT or flags & O_TMPFILE == O_TMPFILE:
        _clear_host_umask()
        mode &= 0o7777 & ~k.proc.umask
    try:
        how = ctypes.create_string_buffer(OPEN_HOW.pack(flags | O_CLOEXEC, mode, resolve), OPEN_HOW.size)
        host_fd = host_syscall("openat2", base, ctypes.create_string_buffer(os.fsencode(name)), how, OPEN_HOW.size)
    finally:
        if owned:
            os.close(base)
    return _install_opened(k, host_fd, guest, flags)


def _install_opened(k, host_fd: int, guest: str, flags: int) -> int:
    """A host fd just opened for the guest (openat2, open_by_handle_at) in its fd table, named as the host
    sees it in the guest's view (``guest`` when the host cannot say); closed if no guest fd can be had."""
    try:
        guest = k.fs.to_guest(os.readlink(f"/proc/self/fd/{host_fd}"))
    except OSError:
        pass
    of = OpenFile(host_fd, guest, _shown_flags(flags), host_kind(host_fd))
    try:
        return k.fds.install(of, bool(flags & O_CLOEXEC))
    except SyscallError:
        of.refs = 1
        of.release()
        raise


MAX_HANDLE_SZ = 128
AT_HANDLE_MNT_ID_UNIQUE = 0x001            # name_to_handle_at: the 64-bit unique mount id (Linux 6.12)
AT_HANDLE_FID = 0x200                      # name_to_handle_at: a handle that only identifies
HANDLE_AT_FLAGS = Flags({AT_SYMLINK_FOLLOW: "AT_SYMLINK_FOLLOW", AT_EMPTY_PATH: "AT_EMPTY_PATH",
                         AT_HANDLE_FID: "AT_HANDLE_FID", AT_HANDLE_MNT_ID_UNIQUE: "AT_HANDLE_MNT_ID_UNIQUE"})


@syscall("name_to_handle_at", PARTIAL, note="the host's handle and mount id of the file the guest's path names (its "
                                            "file system's; under --root too)")
def name_to_handle_at(k, dirfd: DirFd, pathname: Path, handle: Ptr, mount_id: Ptr, flags: HANDLE_AT_FLAGS) -> int:
    """name_to_handle_at(2) (fs/fhandle.c): the flags, the path, then struct file_handle {handle_bytes,
    handle_type, f_handle} (EINVAL past MAX_HANDLE_SZ; EOVERFLOW with the size needed written back)."""
    if flags & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH | AT_HANDLE_FID | AT_HANDLE_MNT_ID_UNIQUE):
        raise SyscallError(EINVAL)
    path = _path(k, pathname)
    if not path and flags & AT_EMPTY_PATH:
        t = None
        of = k.fds.get(dirfd) if dirfd != AT_FDCWD else None
        if of is not None and of.node is not None:
            raise SyscallError(EOPNOTSUPP)
    else:
        t = _existing(lookup(k, dirfd, path, bool(flags & AT_SYMLINK_FOLLOW)))
        if t.node is not None:
            raise SyscallError(EOPNOTSUPP)  # hermipy's /proc and /dev: no file handles (as pseudo files)
    size = struct.unpack("<I", k.mem.read(handle, 4))[0]
    if size > MAX_HANDLE_SZ:
        raise SyscallError(EINVAL)
    buf = ctypes.create_string_buffer(struct.pack("<I", size), 8 + MAX_HANDLE_SZ)
    mnt = ctypes.c_uint64(0)                     # an int, or a u64 with AT_HANDLE_MNT_ID_UNIQUE
    if t is None:
        fd = k.fds.get(dirfd).host_fd if dirfd != AT_FDCWD else None
        owned = fd is None
        if owned:
            fd = lookup(k, AT_FDCWD, k.fs.cwd).open(os.O_PATH | os.O_CLOEXEC, 0)
    else:
        fd, owned = t.open(os.O_PATH | os.O_CLOEXEC | (0 if flags & AT_SYMLINK_FOLLOW else os.O_NOFOLLOW), 0), True
    try:
        host_syscall("name_to_handle_at", fd, ctypes.create_string_buffer(b""), buf, ctypes.byref(mnt),
                     AT_EMPTY_PATH | flags & (AT_HANDLE_FID | AT_HANDLE_MNT_ID_UNIQUE))
    except OSError as err:
        if err.errno == EOVERFLOW:               # the size it needs, and the mount id, go back all the same
            k.mem.write(mount_id, _mount_id(mnt.value, flags))
            k.mem.write(handle, buf.raw[:8])
        raise
    finally:
        if owned:
            os.close(fd)
    needed = struct.unpack_from("<I", buf, 0)[0]
    k.mem.write(handle, buf.raw[:8 + needed])
    k.mem.write(mount_id, _mount_id(mnt.value, flags))
    return 0


def _mount_id(value: int, flags: int) -> bytes:
    """The mount id name_to_handle_at writes: a u64 with AT_HANDLE_MNT_ID_UNIQUE, else an int."""
    return struct.pack("<Q", value) if flags & AT_HANDLE_MNT_ID_UNIQUE else struct.pack("<I", value & 0xFFFFFFFF)


@syscall("open_by_handle_at", PARTIAL, note="the host's, from a guest fd on the file system, with CAP_DAC_READ_SEARCH "
                                            "(the guest's); under --root EPERM (a handle reaches any file of the "
                                            "file system, outside the root too)")
def open_by_handle_at(k, mount_fd: Int, handle: Ptr, flags: OPEN_FLAGS) -> int:
    """open_by_handle_at(2): EPERM without CAP_DAC_READ_SEARCH, then the handle (EFAULT; EINVAL for a size of 0
    or past MAX_HANDLE_SZ), then the mount fd and the open."""
    from hermipy.syscalls.sys_info import capable
    if k.fs.confined or not capable(k, 2):             # CAP_DAC_READ_SEARCH
        raise SyscallError(EPERM)
    size = struct.unpack("<I", k.mem.read(handle, 4))[0]
    if not size or size > MAX_HANDLE_SZ:
        raise SyscallError(EINVAL)
    raw = k.mem.read(handle, 8 + size)
    mount = AT_FDCWD if mount_fd == AT_FDCWD else k.fds.get(mount_fd).host_fd
    host_fd = host_syscall("open_by_handle_at", mount, ctypes.create_string_buffer(raw, len(raw)),
                           (flags | O_CLOEXEC) & 0xFFFFFFFF)
    return _install_opened(k, host_fd, "/", flags)


@syscall("open", FULL)
def open_(k, pathname: Path, flags: OPEN_FLAGS, mode: OpenMode(1)) -> int:
    """open(2)."""
    _check_legacy_open_flags(flags)
    return do_open(k, AT_FDCWD, _path(k, pathname), flags, mode)


@syscall("creat", FULL)
def creat(k, pathname: Path, mode: Octal) -> int:
    """creat(2): open(O_CREAT|O_WRONLY|O_TRUNC)."""
    return do_open(k, AT_FDCWD, _path(k, pathname), O_CREAT | O_WRONLY | O_TRUNC, mode)


# -- stat ---------------------------------------------------------------------------------------
def _check_stat_flags(flags: int) -> None:
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT):
        raise SyscallError(EINVAL)


def _stat_at(k, dirfd: int, path: str, flags: int):
    _check_stat_flags(flags)
    if not path and flags & AT_EMPTY_PATH:
        if dirfd == AT_FDCWD:
            return _stat_of(k, lookup(k, AT_FDCWD, k.fs.cwd), True)
        return _fstat_of(k.fds.get(dirfd))
    follow = not flags & AT_SYMLINK_NOFOLLOW
    return _stat_of(k, lookup(k, dirfd, path, follow), follow)


@syscall("stat", FULL)
def stat(k, pathname: Path, statbuf: Ptr) -> int:
    """stat(2)."""
    st = _stat_at(k, AT_FDCWD, _path(k, pathname), 0)
    k.mem.write(statbuf, pack_stat(st))
    return 0


@syscall("lstat", FULL)
def lstat(k, pathname: Path, statbuf: Ptr) -> int:
    """lstat(2)."""
    st = _stat_at(k, AT_FDCWD, _path(k, pathname), AT_SYMLINK_NOFOLLOW)
    k.mem.write(statbuf, pack_stat(st))
    return 0


def _fstat_out(k, of: OpenFile, statbuf: int) -> int:
    """fstat of an open file into the guest's struct stat: a host file's straight from the host's fstat into guest
    RAM where the buffer is in one page (the host's struct stat is the guest's, byte for byte: ~1.2 µs less)."""
    if of.node is None:
        dest = k.mem.span(statbuf, STAT.size, True)
        if dest is not None:
            host_call("fstat", of.host_fd, dest)
            return 0
    k.mem.write(statbuf, pack_stat(_fstat_of(of)))
    return 0


@syscall("fstat", FULL)
def fstat(k, fd: Fd, statbuf: Ptr) -> int:
    """fstat(2)."""
    return _fstat_out(k, k.fds.get(fd), statbuf)


@syscall("newfstatat", FULL)
def newfstatat(k, dirfd: DirFd, pathname: Path, statbuf: Ptr, flags: AT_FLAGS) -> int:
    """fstatat(2): the flags are checked before the path is read (vfs_fstatat)."""
    _check_stat_flags(flags)
    if flags & AT_EMPTY_PATH and dirfd != AT_FDCWD and k.mem.read(pathname, 1) == b"\0":
        return _fstat_out(k, k.fds.get(dirfd), statbuf)         # fstat(fd) as glibc makes it
    k.mem.write(statbuf, pack_stat(_stat_at(k, dirfd, _path(k, pathname), flags)))
    return 0


def _pack_statx(st, mask: int) -> bytes:
    """struct statx (include/uapi/linux/stat.h) for a synthetic file: the basic stats only."""
    head = STATX_HEAD.pack(STATX_BASIC_STATS, st.st_blksize, 0, st.st_nlink, st.st_uid, st.st_gid,
                           st.st_mode & 0xFFFF, 0, st.st_ino, st.st_size, st.st_blocks, 0)
    ts = b"".join(STATX_TS.pack(ns // 10**9, ns % 10**9, 0)
                  for ns in (st.st_atime_ns, 0, st.st_ctime_ns, st.st_mtime_ns))
    devs = struct.pack("<4I", os.major(st.st_rdev), os.minor(st.st_rdev), os.major(st.st_dev),
                       os.minor(st.st_dev))
    out = head + ts + devs
    return out + bytes(STATX_SIZE - len(out))


@syscall("statx", FULL)
def statx(k, dirfd: DirFd, pathname: Path, flags: STATX_FLAGS, mask: UInt, statxbuf: Ptr) -> int:
    """statx(2): host files are asked of the host kernel itself, so every field is exact. As Linux 6.18 has it
    (getname_maybe_null), AT_EMPTY_PATH with a NULL or empty name and a real dirfd is that fd's statx, whose flags
    the host checks."""
    buf = ctypes.create_string_buffer(STATX_SIZE)
    try:
        path, unreadable = _path(k, pathname) if pathname or not flags & AT_EMPTY_PATH else "", None
    except SyscallError as err:
        path, unreadable = None, err       # reported after the flags (do_statx's checks come first)
    if path == "" and flags & AT_EMPTY_PATH and dirfd >= 0:
        of = k.fds.get(dirfd)
        if of.node is None:
            host_syscall("statx", of.host_fd, b"", flags, mask, buf)
            k.mem.write(statxbuf, buf.raw)
            return 0
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE) or \
            flags & AT_STATX_SYNC_TYPE == AT_STATX_SYNC_TYPE or mask & STATX__RESERVED:
        raise SyscallError(EINVAL)
    if unreadable is not None:
        raise unreadable
    if not path and flags & AT_EMPTY_PATH:
        if dirfd == AT_FDCWD:
            t, of = _existing(lookup(k, AT_FDCWD, k.fs.cwd)), None
        else:
            t, of = None, k.fds.get(dirfd)
        if of is not None and of.node is None:
            host_syscall("statx", of.host_fd, b"", flags, mask, buf)
            k.mem.write(statxbuf, buf.raw)
            return 0
        if of is not None:
            k.mem.write(statxbuf, _pack_statx(procfs.node_stat(of.node), mask))
            return 0
    else:
        t = _existing(lookup(k, dirfd, path, not flags & AT_SYMLINK_NOFOLLOW))
    if t.node is not None:
        k.mem.write(statxbuf, _pack_statx(procfs.node_stat(t.node), mask))
        return 0
    t.statx(flags & ~AT_EMPTY_PATH, mask, buf)
    k.mem.write(statxbuf, buf.raw)
    return 0


# -- access -------------------------------------------------------------------------------------
def _node_access(k, node, mode: int) -> None:
    st = procfs.node_stat(node)
    if mode == F_OK:
        return
    if k.proc.euid == 0:
        if mode & X_OK and not st.st_mode & 0o111:
            raise SyscallError(EACCES)
        return
    shift = 6 if st.st_uid == k.proc.euid else 3 if st.st_gid == k.proc.egid else 0
    if mode & ~(st.st_mode >> shift) & 7:
        raise SyscallError(EACCES)


def _check_access(mode: int, flags: int) -> None:
    """do_faccessat()'s checks, before the path is read."""
    if mode & ~7 or flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise SyscallError(EINVAL)


def do_access(k, dirfd: int, path: str, mode: int, flags: int) -> int:
    if not path and flags & AT_EMPTY_PATH and dirfd != AT_FDCWD:
        of = k.fds.get(dirfd)
        if of.node is not None:
            _node_access(k, of.node, mode)
            return 0
        host_syscall("faccessat2", of.host_fd, b"", mode, flags)
        return 0
    if not path and flags & AT_EMPTY_PATH:
        path = k.fs.cwd
    t = _existing(lookup(k, dirfd, path, not flags & AT_SYMLINK_NOFOLLOW))
    if t.node is not None:
        _node_access(k, t.node, mode)
        return 0
    t.access(mode, flags & ~AT_EMPTY_PATH)
    return 0


@syscall("access", FULL)
def access(k, pathname: Path, mode: ACCESS_MODE) -> int:
    """access(2)."""
    _check_access(mode, 0)
    return do_access(k, AT_FDCWD, _path(k, pathname), mode, 0)


@syscall("faccessat", FULL)
def faccessat(k, dirfd: DirFd, pathname: Path, mode: ACCESS_MODE) -> int:
    """faccessat(2) as the kernel has it: no flags argument."""
    _check_access(mode, 0)
    return do_access(k, dirfd, _path(k, pathname), mode, 0)


@syscall("faccessat2", FULL)
def faccessat2(k, dirfd: DirFd, pathname: Path, mode: ACCESS_MODE,
               flags: Flags({0x100: "AT_SYMLINK_NOFOLLOW", 0x200: "AT_EACCESS", 0x1000: "AT_EMPTY_PATH"})) -> int:
    """faccessat2(2)."""
    _check_access(mode, flags)
    return do_access(k, dirfd, _path(k, pathname), mode, flags)


# -- directories --------------------------------------------------------------------------------
def _dir_file(k, fd: int) -> OpenFile:
    of = k.fds.get(fd)
    if of.flags & O_PATH:
        raise SyscallError(EBADF)
    if of.kind != "dir":
        raise SyscallError(ENOTDIR)
    return of


def _synthetic_dirents(k, of: OpenFile, count: int, wide: bool) -> bytes:
    """Records for a synthetic directory, from position ``dir_pos``; d_off is the next index."""
    if of.dir_pos == 0 or not of.dir_entries:
        of.dir_entries = procfs.dir_listing(of.node)
    out = bytearray()
    pos = of.dir_pos
    while pos < len(of.dir_entries):
        name, d_type, ino = of.dir_entries[pos]
        raw = os.fsencode(name)
        if wide:
            reclen = (DIRENT64.size + len(raw) + 1 + 7) & ~7
            rec = DIRENT64.pack(ino, pos + 1, reclen, d_type) + raw
        else:
            reclen = (DIRENT.size + len(raw) + 2 + 7) & ~7
            rec = DIRENT.pack(ino, pos + 1, reclen) + raw
        rec = rec + bytes(reclen - len(rec))
        if not wide:
            rec = rec[:-1] + bytes([d_type])
        if len(out) + reclen > count:
            if not out:
                raise SyscallError(EINVAL)
            break
        out += rec
        pos += 1
    of.dir_pos = pos
    return bytes(out)


def _getdents(k, fd: int, dirp: int, count: int, wide: bool) -> int:
    of = _dir_file(k, fd)
    if of.node is not None:
        data = _synthetic_dirents(k, of, count, wide)
    else:
        size = min(count, MAX_DIRENT_BUF)
        buf = ctypes.create_string_buffer(max(size, 1))
        n = host_syscall("getdents64" if wide else "getdents", of.host_fd, buf, size)
        data = buf.raw[:n]
    if data:
        k.mem.write(dirp, data)
    return len(data)


@syscall("getdents64", FULL)
def getdents64(k, fd: Fd, dirp: Ptr, count: UInt) -> int:
    """getdents64(2): the host kernel's own records (order, d_off cookies, d_type) for host directories."""
    return _getdents(k, fd, dirp, count, True)


@syscall("getdents", FULL)
def getdents(k, fd: Fd, dirp: Ptr, count: UInt) -> int:
    """getdents(2): struct linux_dirent, d_type in the record's last byte."""
    return _getdents(k, fd, dirp, count, False)


@syscall("getcwd", FULL)
def getcwd(k, buf: Ptr, size: Size) -> int:
    """getcwd(2): returns the length including the NUL."""
    data = os.fsencode(k.fs.cwd) + b"\0"
    if size < len(data):
        raise SyscallError(ERANGE)
    k.mem.write(buf, data)
    return len(data)


def _enter_dir(k, t: Target) -> None:
    t = _existing(t)
    if t.node is not None:
        if t.node.kind != "dir":
            raise SyscallError(ENOTDIR)
        k.fs.cwd = t.guest
        return
    fd = t.open(os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, 0)
    try:
        host_syscall("faccessat2", fd, b"", X_OK, AT_EACCESS | AT_EMPTY_PATH)
        k.fs.cwd = _guest_name(k, fd, t)
    finally:
        os.close(fd)


CAP_SYS_CHROOT = 18


@syscall("chroot", PARTIAL, note="the task's root (shared under CLONE_FS) becomes the directory, and the guest is "
                                 "confined there as under --root (device nodes refused, kill reaches only the "
                                 "run's processes, /dev and /proc hermipy's); a cwd outside the new root becomes "
                                 "the root (Linux keeps it); never leaves --root")
def chroot(k, path: Path) -> int:
    """chroot(2) (ksys_chroot): the lookup's errors, then EACCES without search permission, then EPERM without
    CAP_SYS_CHROOT."""
    from hermipy.syscalls.sys_info import capable
    t = _existing(lookup(k, AT_FDCWD, _path(k, path)))
    if t.node is not None:
        if t.node.kind != "dir":
            raise SyscallError(ENOTDIR)
        raise SyscallError(EPERM if not capable(k, CAP_SYS_CHROOT) else EINVAL)   # hermipy's /proc, /dev/fd
    fd = t.open(os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, 0)
    try:
        host_syscall("faccessat2", fd, b"", X_OK, AT_EACCESS | AT_EMPTY_PATH)
        if not capable(k, CAP_SYS_CHROOT):
            raise SyscallError(EPERM)
    except BaseException:
        os.close(fd)
        raise
    k.fs.chroot(fd)
    return 0


@syscall("chdir", FULL)
def chdir(k, path: Path) -> int:
    """chdir(2): the guest's cwd is a guest path; hermipy itself never changes directory."""
    _enter_dir(k, lookup(k, AT_FDCWD, _path(k, path)))
    return 0


@syscall("fchdir", FULL)
def fchdir(k, fd: Fd) -> int:
    """fchdir(2)."""
    of = k.fds.get(fd)
    if of.kind != "dir":
        raise SyscallError(ENOTDIR)
    if of.node is None:
        host_syscall("faccessat2", of.host_fd, b"", X_OK, AT_EACCESS | AT_EMPTY_PATH)
    k.fs.cwd = of.path
    return 0


def do_mkdir(k, dirfd: int, path: str, mode: int) -> int:
    t = lookup(k, dirfd, path, False)
    if t.node is not None:
        raise SyscallError(EEXIST)
    _clear_host_umask()
    _on_host(t).mkdir(mode & 0o1777 & ~k.proc.umask)
    return 0


@syscall("mkdir", FULL)
def mkdir(k, pathname: Path, mode: Octal) -> int:
    """mkdir(2)."""
    return do_mkdir(k, AT_FDCWD, _path(k, pathname), mode)


@syscall("mkdirat", FULL)
def mkdirat(k, dirfd: DirFd, pathname: Path, mode: Octal) -> int:
    """mkdirat(2)."""
    return do_mkdir(k, dirfd, _path(k, pathname), mode)


def _mknod_kind(mode: int) -> int:
    """may_mknod(), before the path is read: the file type (0: a regular file); EPERM for a directory, EINVAL for
    anything else unknown."""
    kind = _stat.S_IFMT(mode) or _stat.S_IFREG
    if kind not in (_stat.S_IFREG, _stat.S_IFCHR, _stat.S_IFBLK, _stat.S_IFIFO, _stat.S_IFSOCK):
        raise SyscallError(EPERM if kind == _stat.S_IFDIR else EINVAL)
    return kind


def do_mknod(k, dirfd: int, path: str, mode: int, dev: int) -> int:
    kind = _mknod_kind(mode)
    t = lookup(k, dirfd, path, False)
    if t.node is not None:
        raise SyscallError(EEXIST)
    _on_host(t)
    if k.fs.confined and kind in (_stat.S_IFCHR, _stat.S_IFBLK) and not (kind == _stat.S_IFCHR and dev == 0):
        _refuse_device_node(t)
    _clear_host_umask()
    t.mknod(kind | (mode & 0o7777 & ~k.proc.umask), dev & 0xFFFFFFFF)
    return 0


def _refuse_device_node(t: Target) -> None:
    """A guest confined with --root has no CAP_MKNOD, as in an unprivileged container (vfs_mknod: EPERM for a
    device other than a whiteout, 0:0), else it could make a node for any host device inside its root. The name's
    own errors (filename_create: the parent's ENOENT/ENOTDIR, found by the walk, and EEXIST) come first."""
    try:
        t.stat(False)
    except FileNotFoundError:
        raise SyscallError(EPERM) from None
    raise SyscallError(EEXIST)


@syscall("mknod", FULL)
def mknod(k, pathname: Path, mode: Octal, dev: UInt) -> int:
    """mknod(2): FIFOs, sockets and regular files; device nodes as far as the host lets us (under --root, none:
    EPERM)."""
    _mknod_kind(mode)
    return do_mknod(k, AT_FDCWD, _path(k, pathname), mode, dev)


@syscall("mknodat", FULL)
def mknodat(k, dirfd: DirFd, pathname: Path, mode: Octal, dev: UInt) -> int:
    """mknodat(2)."""
    _mknod_kind(mode)
    return do_mknod(k, dirfd, _path(k, pathname), mode, dev)


def do_rmdir(k, dirfd: int, path: str) -> int:
    last = _last_name(path)
    if last == ".":
        raise SyscallError(EINVAL)
    if last == "..":
        raise SyscallError(ENOTEMPTY)
    t = _existing(lookup(k, dirfd, path, False))
    if t.node is not None and t.node.kind != "dir":
        raise SyscallError(ENOTDIR)
    _on_host(t).rmdir()
    return 0


def do_unlink(k, dirfd: int, path: str) -> int:
    t = _existing(lookup(k, dirfd, path, False))
    if t.node is not None and t.node.kind == "dir":
        raise SyscallError(EISDIR)
    _on_host(t).unlink()
    return 0


@syscall("rmdir", FULL)
def rmdir(k, pathname: Path) -> int:
    """rmdir(2)."""
    return do_rmdir(k, AT_FDCWD, _path(k, pathname))


@syscall("unlink", FULL)
def unlink(k, pathname: Path) -> int:
    """unlink(2)."""
    return do_unlink(k, AT_FDCWD, _path(k, pathname))


@syscall("unlinkat", FULL)
def unlinkat(k, dirfd: DirFd, pathname: Path, flags: AT_FLAGS) -> int:
    """unlinkat(2)."""
    if flags & ~AT_REMOVEDIR:
        raise SyscallError(EINVAL)
    path = _path(k, pathname)
    return do_rmdir(k, dirfd, path) if flags & AT_REMOVEDIR else do_unlink(k, dirfd, path)


# -- names: rename, link, symlink, readlink ----------------------------------------------------
def _check_rename_flags(flags: int) -> None:
    if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT) or \
            (flags & RENAME_EXCHANGE and flags & (RENAME_NOREPLACE | RENAME_WHITEOUT)):
        raise SyscallError(EINVAL)


def _old_then_new(k, olddirfd: int, oldpath: int, newpath: int, empty_ok: bool = False) -> tuple[str, str]:
    """The two names of a rename or link, in Linux's order: the old one read (empty: ENOENT unless ``empty_ok``,
    linkat's AT_EMPTY_PATH), its directory fd looked at (EBADF, ENOTDIR), then the new one read."""
    old = _path(k, oldpath)
    if not old and not empty_ok:
        raise SyscallError(ENOENT)
    if old and not old.startswith("/"):
        _dir_base(k, olddirfd)
    return old, _path(k, newpath)


def do_rename(k, olddirfd: int, oldpath: str, newdirfd: int, newpath: str, flags: int) -> int:
    _check_rename_flags(flags)
    old = _existing(lookup(k, olddirfd, oldpath, False))
    new = lookup(k, newdirfd, newpath, False)
    if _last_name(oldpath) in (".", "..") or _last_name(newpath) in (".", ".."):
        raise SyscallError(EEXIST if flags & RENAME_NOREPLACE and _last_name(newpath) in (".", "..")
                           and _last_name(oldpath) not in (".", "..") else EBUSY)
    if old.bound or new.bound:
        return _rename_bound(old, new, flags)
    if old.node is not None or new.node is not None or not new.on_host:
        raise SyscallError(EXDEV)
    old.rename(new, flags)
    return 0


def _rename_bound(old: Target, new: Target, flags: int) -> int:
    """A rename with a bound file (vfs.Target.bound, a read-only bind mount) on either side, as do_renameat2()
    and vfs_rename() answer: nothing ever moves. One file onto itself is no change; /proc is another mount than
    anything outside it (EXDEV); then RENAME_NOREPLACE over an existing name (EEXIST), a directory over a file
    (ENOTDIR) or a file over a directory (EISDIR); else a mount point is busy (EBUSY)."""
    if old.host is not None and old.host == new.host and not flags & RENAME_NOREPLACE:
        return 0
    if "/proc" in (old.bound, new.bound) or old.node is not None or new.node is not None:
        raise SyscallError(EXDEV)
    new_mode = new.stat(False).st_mode if new.on_host and new.exists() else None
    if new_mode is not None and flags & RENAME_NOREPLACE:
        raise SyscallError(EEXIST)
    if new_mode is not None and not flags & RENAME_EXCHANGE:
        if _stat.S_ISDIR(old.stat(False).st_mode) and not _stat.S_ISDIR(new_mode):
            raise SyscallError(ENOTDIR)
        if _stat.S_ISDIR(new_mode) and not _stat.S_ISDIR(old.stat(False).st_mode):
            raise SyscallError(EISDIR)
    raise SyscallError(EBUSY)


@syscall("rename", FULL)
def rename(k, oldpath: Path, newpath: Path) -> int:
    """rename(2)."""
    return do_rename(k, AT_FDCWD, _path(k, oldpath), AT_FDCWD, _path(k, newpath), 0)


@syscall("renameat", FULL)
def renameat(k, olddirfd: DirFd, oldpath: Path, newdirfd: DirFd, newpath: Path) -> int:
    """renameat(2)."""
    old, new = _old_then_new(k, olddirfd, oldpath, newpath)
    return do_rename(k, olddirfd, old, newdirfd, new, 0)


@syscall("renameat2", FULL)
def renameat2(k, olddirfd: DirFd, oldpath: Path, newdirfd: DirFd, newpath: Path, flags: RENAME_FLAGS) -> int:
    """renameat2(2): the flags first."""
    _check_rename_flags(flags)
    old, new = _old_then_new(k, olddirfd, oldpath, newpath)
    return do_rename(k, olddirfd, old, newdirfd, new, flags)


def _check_link_flags(flags: int) -> None:
    if flags & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH):
        raise SyscallError(EINVAL)


def do_link(k, olddirfd: int, oldpath: str, newdirfd: int, newpath: str, flags: int) -> int:
    _check_link_flags(flags)
    new = lookup(k, newdirfd, newpath, False)
    if new.node is not None:
        raise SyscallError(EEXIST)
    _on_host(new, EXDEV)
    if not oldpath and flags & AT_EMPTY_PATH:
        of = k.fds.get(olddirfd) if olddirfd != AT_FDCWD else None
        if of is None or of.node is not None:
            raise SyscallError(ENOENT if of is None else EXDEV)
        if of.bound:
            new.link_from_other_mount()
        new.link_fd(of.host_fd)
        return 0
    follow = bool(flags & AT_SYMLINK_FOLLOW)
    old = _existing(lookup(k, olddirfd, oldpath, follow))
    _on_host(old, EXDEV).link(new, follow)
    return 0


@syscall("link", FULL)
def link(k, oldpath: Path, newpath: Path) -> int:
    """link(2)."""
    return do_link(k, AT_FDCWD, _path(k, oldpath), AT_FDCWD, _path(k, newpath), 0)


@syscall("linkat", FULL)
def linkat(k, olddirfd: DirFd, oldpath: Path, newdirfd: DirFd, newpath: Path, flags: AT_FLAGS) -> int:
    """linkat(2): the flags first."""
    _check_link_flags(flags)
    old, new = _old_then_new(k, olddirfd, oldpath, newpath, bool(flags & AT_EMPTY_PATH))
    return do_link(k, olddirfd, old, newdirfd, new, flags)


def do_symlink(k, target: str, newdirfd: int, linkpath: str) -> int:
    if not target:
        raise SyscallError(ENOENT)
    t = lookup(k, newdirfd, linkpath, False)
    if t.node is not None:
        raise SyscallError(EEXIST)
    _on_host(t).symlink(target)
    return 0


@syscall("symlink", FULL)
def symlink(k, target: Path, linkpath: Path) -> int:
    """symlink(2): the target is stored verbatim (confinement applies when it is followed)."""
    return do_symlink(k, _path(k, target), AT_FDCWD, _path(k, linkpath))


@syscall("symlinkat", FULL)
def symlinkat(k, target: Path, newdirfd: DirFd, linkpath: Path) -> int:
    """symlinkat(2)."""
    return do_symlink(k, _path(k, target), newdirfd, _path(k, linkpath))


def do_readlink(k, dirfd: int, path: str, buf: int, bufsiz: int) -> int:
    t = _existing(lookup(k, dirfd, path, False))
    if t.node is not None:
        if t.node.kind != "link":
            raise SyscallError(EINVAL)
        data = os.fsencode(t.node.readlink())
    else:
        data = os.fsencode(t.readlink())
    data = data[:bufsiz]
    k.mem.write(buf, data)
    return len(data)


@syscall("readlink", FULL)
def readlink(k, pathname: Path, buf: Ptr, bufsiz: Int) -> int:
    """readlink(2): EINVAL for a size <= 0 before the path is read."""
    if bufsiz <= 0:
        raise SyscallError(EINVAL)
    return do_readlink(k, AT_FDCWD, _path(k, pathname), buf, bufsiz)


@syscall("readlinkat", FULL)
def readlinkat(k, dirfd: DirFd, pathname: Path, buf: Ptr, bufsiz: Int) -> int:
    """readlinkat(2)."""
    if bufsiz <= 0:
        raise SyscallError(EINVAL)
    path = _path(k, pathname)
    if not path:                 # LOOKUP_EMPTY: the fd's own file, a symlink opened O_PATH|O_NOFOLLOW (else ENOENT)
        of = k.fds.get(dirfd) if dirfd != AT_FDCWD else None
        if of is None or of.node is not None:
            raise SyscallError(ENOENT)
        out = ctypes.create_string_buffer(bufsiz)
        n = host_syscall("readlinkat", of.host_fd, b"", out, bufsiz)
        k.mem.write(buf, out.raw[:n])
        return n
    return do_readlink(k, dirfd, path, buf, bufsiz)


# -- attributes: mode, owner, times, size --------------------------------------------------------
def _attr_file(k, fd: int) -> OpenFile:
    """The open file whose attributes change: synthetic files refuse with EPERM (proc_setattr), files opened
    through a read-only bind (vfs.Target.bound) with EROFS; an O_PATH fd is the host's EBADF; an image file is
    copied up first (vfs.own_open_file)."""
    of = k.fds.get(fd)
    if of.node is not None:
        raise SyscallError(EPERM)
    if of.bound and not of.flags & O_PATH:
        raise SyscallError(EROFS)
    own_open_file(of)
    return of


def _attr_target(k, dirfd: int, path: str, follow: bool) -> Target:
    """The host file whose attributes change; synthetic files refuse with EPERM (proc_setattr)."""
    return _on_host(_existing(lookup(k, dirfd, path, follow)), EPERM)


@syscall("chmod", FULL)
def chmod(k, pathname: Path, mode: Octal) -> int:
    """chmod(2)."""
    _attr_target(k, AT_FDCWD, _path(k, pathname), True).chmod(mode & 0o7777)
    return 0


@syscall("fchmodat", FULL)
def fchmodat(k, dirfd: DirFd, pathname: Path, mode: Octal) -> int:
    """fchmodat(2) as the kernel has it: no flags argument."""
    _attr_target(k, dirfd, _path(k, pathname), True).chmod(mode & 0o7777)
    return 0


@syscall("fchmodat2", FULL)
def fchmodat2(k, dirfd: DirFd, pathname: Path, mode: Octal, flags: AT_FLAGS) -> int:
    """fchmodat2(2) (6.6, do_fchmodat): AT_SYMLINK_NOFOLLOW changes a symlink itself (EOPNOTSUPP on Linux's file
    systems), AT_EMPTY_PATH the file ``dirfd`` is; any other flag is EINVAL, before the path is read."""
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise SyscallError(EINVAL)
    path = _path(k, pathname)
    if not path and not flags & AT_EMPTY_PATH:
        raise SyscallError(ENOENT)
    if not path and dirfd != AT_FDCWD:
        return fchmod(k, dirfd, mode)
    follow = not flags & AT_SYMLINK_NOFOLLOW
    _attr_target(k, dirfd, path or k.fs.cwd, follow).chmod(mode & 0o7777, follow)
    return 0


@syscall("fchmod", FULL)
def fchmod(k, fd: Fd, mode: Octal) -> int:
    """fchmod(2)."""
    of = _attr_file(k, fd)
    os.fchmod(of.host_fd, mode & 0o7777)
    return 0


def _id(value: int) -> int:
    return -1 if value == 0xFFFFFFFF else value


def _check_chown_flags(flags: int) -> None:
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise SyscallError(EINVAL)


def do_chown(k, dirfd: int, path: str, owner: int, group: int, flags: int) -> int:
    _check_chown_flags(flags)
    if not path and flags & AT_EMPTY_PATH and dirfd != AT_FDCWD:
        return fchown(k, dirfd, owner, group)
    if not path and flags & AT_EMPTY_PATH:
        path = k.fs.cwd
    follow = not flags & AT_SYMLINK_NOFOLLOW
    _attr_target(k, dirfd, path, follow).chown(_id(owner), _id(group), follow)
    return 0


@syscall("chown", FULL)
def chown(k, pathname: Path, owner: UInt, group: UInt) -> int:
    """chown(2)."""
    return do_chown(k, AT_FDCWD, _path(k, pathname), owner, group, 0)


@syscall("lchown", FULL)
def lchown(k, pathname: Path, owner: UInt, group: UInt) -> int:
    """lchown(2)."""
    return do_chown(k, AT_FDCWD, _path(k, pathname), owner, group, AT_SYMLINK_NOFOLLOW)


@syscall("fchownat", FULL)
def fchownat(k, dirfd: DirFd, pathname: Path, owner: UInt, group: UInt, flags: AT_FLAGS) -> int:
    """fchownat(2): the flags are checked before the path is read."""
    _check_chown_flags(flags)
    return do_chown(k, dirfd, _path(k, pathname), owner, group, flags)


@syscall("fchown", FULL)
def fchown(k, fd: Fd, owner: UInt, group: UInt) -> int:
    """fchown(2)."""
    of = _attr_file(k, fd)
    os.fchown(of.host_fd, _id(owner), _id(group))
    return 0


@syscall("umask", FULL)
def umask(k, mask: Octal) -> int:
    """umask(2): the guest's own mask, applied by hermipy when it creates files."""
    old = k.proc.umask
    k.proc.umask = mask & 0o777
    return old


@syscall("utimensat", FULL)
def utimensat(k, dirfd: DirFd, pathname: Ptr, times: Ptr, flags: AT_FLAGS) -> int:
    """utimensat(2) (and futimens: a NULL path means dirfd itself); UTIME_NOW/UTIME_OMIT as the host has them.
    The times are copied before the flags are checked (sys_utimensat, then do_utimensat)."""
    ts = ctypes.create_string_buffer(k.mem.read(times, 32), 32) if times else None
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise SyscallError(EINVAL)
    path = _path(k, pathname) if pathname else None
    if path is None or (not path and flags & AT_EMPTY_PATH):
        if dirfd == AT_FDCWD:
            if path is None:
                raise SyscallError(EFAULT)
            path = k.fs.cwd
        else:
            of = _attr_file(k, dirfd)
            host_syscall("utimensat", of.host_fd, None, ts, 0)
            return 0
    follow = not flags & AT_SYMLINK_NOFOLLOW
    _attr_target(k, dirfd, path, follow).utimens(ts, follow)
    return 0


def _do_utimes(k, dirfd: int, pathname: int, ts: bytes | None) -> int:
    """do_utimes() for utime, utimes and futimesat: times as struct timespec[2] (None: now); a NULL name is
    dirfd itself (futimesat)."""
    buf = ctypes.create_string_buffer(ts, 32) if ts is not None else None
    if not pathname:
        if dirfd == AT_FDCWD:
            raise SyscallError(EFAULT)
        host_syscall("utimensat", _attr_file(k, dirfd).host_fd, None, buf, 0)
        return 0
    _attr_target(k, dirfd, _path(k, pathname), True).utimens(buf, True)
    return 0


def _timevals(k, times: int) -> bytes | None:
    """struct timeval[2] as struct timespec[2]; a microsecond count outside 0..999999 is EINVAL."""
    if not times:
        return None
    values = struct.unpack("<4q", k.mem.read(times, 32))
    if not 0 <= values[1] < 1_000_000 or not 0 <= values[3] < 1_000_000:
        raise SyscallError(EINVAL)
    return struct.pack("<4q", values[0], values[1] * 1000, values[2], values[3] * 1000)


@syscall("utime", FULL)
def utime(k, filename: Path, times: Ptr) -> int:
    """utime(2): struct utimbuf {actime, modtime}, in seconds; NULL: now."""
    ts = None
    if times:
        actime, modtime = struct.unpack("<qq", k.mem.read(times, 16))
        ts = struct.pack("<4q", actime, 0, modtime, 0)
    return _do_utimes(k, AT_FDCWD, filename, ts)


@syscall("utimes", FULL)
def utimes(k, filename: Path, times: Ptr) -> int:
    """utimes(2): struct timeval[2]; NULL: now."""
    return _do_utimes(k, AT_FDCWD, filename, _timevals(k, times))


@syscall("futimesat", FULL)
def futimesat(k, dirfd: DirFd, filename: Path, times: Ptr) -> int:
    """futimesat(2): utimes relative to dirfd (a NULL name: dirfd itself)."""
    return _do_utimes(k, dirfd, filename, _timevals(k, times))


@syscall("ustat", FULL)
def ustat(k, dev: UInt, ubuf: Ptr) -> int:
    """ustat(2): the host's (the guest's file systems are the host's): struct ustat {f_tfree, f_tinode,
    f_fname[6], f_fpack[6]}, EINVAL for a device no mounted file system is on."""
    buf = ctypes.create_string_buffer(32)
    host_syscall("ustat", dev, buf)
    k.mem.write(ubuf, buf.raw)
    return 0


@syscall("sync", FULL)
def sync(k) -> int:
    """sync(2): the host's (the guest's files are the host's)."""
    os.sync()
    return 0


@syscall("syncfs", FULL)
def syncfs(k, fd: Fd) -> int:
    """syncfs(2): the host's, on the file system of the guest's fd."""
    of = k.fds.get(fd)
    if of.node is not None:
        return 0                            # hermipy's /proc and /dev: nothing to write back
    return host_syscall("syncfs", of.host_fd)


SYNC_FILE_RANGE_FLAGS = Flags({1: "SYNC_FILE_RANGE_WAIT_BEFORE", 2: "SYNC_FILE_RANGE_WRITE",
                               4: "SYNC_FILE_RANGE_WAIT_AFTER"})


@syscall("sync_file_range", FULL)
def sync_file_range(k, fd: Fd, offset: Long, nbytes: Long, flags: SYNC_FILE_RANGE_FLAGS) -> int:
    """sync_file_range(2): the host's on the guest's fd (its checks: EINVAL for flags or a range, ESPIPE)."""
    of = k.fds.get(fd)
    if of.node is not None:                 # hermipy's /proc files: regular, nothing to write back
        if flags & ~7 or offset < 0 or nbytes < 0 or offset + nbytes >= 1 << 63:
            raise SyscallError(EINVAL)
        return 0
    return host_syscall("sync_file_range", of.host_fd, offset, nbytes, flags & 0xFFFFFFFF)


@syscall("truncate", FULL)
def truncate(k, path: Path, length: Long) -> int:
    """truncate(2)."""
    if length < 0:
        raise SyscallError(EINVAL)
    t = _existing(lookup(k, AT_FDCWD, _path(k, path)))
    if t.node is not None:
        raise SyscallError(EISDIR if t.node.kind == "dir" else EACCES)
    st = t.truncate(length)
    k.mem.file_truncated(st.st_dev, st.st_ino, length)
    return 0


@syscall("ftruncate", FULL)
def ftruncate(k, fd: Fd, length: Long) -> int:
    """ftruncate(2): EINVAL for a negative length (before the fd), or unless a regular file open for writing."""
    if length < 0:
        raise SyscallError(EINVAL)
    of = k.fds.get(fd)
    if of.flags & O_PATH:
        raise SyscallError(EBADF)
    if of.node is not None or not of.writable:
        raise SyscallError(EINVAL)
    os.ftruncate(of.host_fd, length)
    st = os.fstat(of.host_fd)
    k.mem.file_truncated(st.st_dev, st.st_ino, length)
    return 0


FALLOC_FLAGS = Flags({0x01: "FALLOC_FL_KEEP_SIZE", 0x02: "FALLOC_FL_PUNCH_HOLE", 0x04: "FALLOC_FL_NO_HIDE_STALE",
                      0x08: "FALLOC_FL_COLLAPSE_RANGE", 0x10: "FALLOC_FL_ZERO_RANGE", 0x20: "FALLOC_FL_INSERT_RANGE",
                      0x40: "FALLOC_FL_UNSHARE_RANGE", 0x80: "FALLOC_FL_WRITE_ZEROES"})
FALLOC_FL_COLLAPSE_RANGE = 0x08


@syscall("fallocate", FULL)
def fallocate(k, fd: Fd, mode: FALLOC_FLAGS, offset: Long, len: Long) -> int:
    """fallocate(2): the host's on the host file, which checks as vfs_fallocate does (EINVAL, EOPNOTSUPP, EBADF,
    ESPIPE, ENODEV, EISDIR, EFBIG...). A synthetic file (a memfd holding /proc content) is not one to allocate
    (ENODEV, as for proc's files). A range collapsed out of the file shrinks it: shared mappings past the new end
    go, as after ftruncate."""
    of = k.fds.files.get(fd)
    if of is not None and of.node is not None:
        if offset < 0 or len <= 0:
            raise SyscallError(EINVAL)
        raise SyscallError(EBADF if not of.writable else ENODEV)
    host_syscall("fallocate", -1 if of is None or of.flags & O_PATH else of.host_fd, mode, offset, len)
    if mode & FALLOC_FL_COLLAPSE_RANGE:
        st = os.fstat(of.host_fd)
        k.mem.file_truncated(st.st_dev, st.st_ino, st.st_size)
    return 0


@syscall("fsync", FULL)
def fsync(k, fd: Fd) -> int:
    """fsync(2)."""
    of = k.fds.get(fd)
    if of.flags & O_PATH:
        raise SyscallError(EBADF)
    os.fsync(of.host_fd)
    return 0


@syscall("fdatasync", FULL)
def fdatasync(k, fd: Fd) -> int:
    """fdatasync(2)."""
    of = k.fds.get(fd)
    if of.flags & O_PATH:
        raise SyscallError(EBADF)
    os.fdatasync(of.host_fd)
    return 0


# -- file systems -------------------------------------------------------------------------------
def _statfs_host(name: str, arg) -> bytes:
    buf = ctypes.create_string_buffer(STATFS_SIZE)
    host_syscall(name, arg, buf)
    return buf.raw


@syscall("statfs", FULL)
def statfs(k, path: Path, buf: Ptr) -> int:
    """statfs(2): the host's answer for the file system holding the file (synthetic files: /proc's)."""
    t = _existing(lookup(k, AT_FDCWD, _path(k, path)))
    if t.node is not None:
        data = _statfs_host("statfs", b"/proc")
    else:
        out = ctypes.create_string_buffer(STATFS_SIZE)
        t.statfs(out)
        data = out.raw
    k.mem.write(buf, data)
    return 0


@syscall("fstatfs", FULL)
def fstatfs(k, fd: Fd, buf: Ptr) -> int:
    """fstatfs(2)."""
    of = k.fds.get(fd)
    data = _statfs_host("statfs", b"/proc") if of.node is not None else _statfs_host("fstatfs", of.host_fd)
    k.mem.write(buf, data)
    return 0
