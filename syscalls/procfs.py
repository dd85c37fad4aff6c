"""Synthetic files: /proc/self (fs/proc/base.c, task_mmu.c, array.c), /dev/fd and /dev/std* links,
and, for a guest confined with ``--root``, a /proc and the few devices every program expects.

The nodes are overlaid on the guest's file-system view (``vfs.FsView.synthetic``): a path walk that
reaches one gets the node. Opening a synthetic file writes its content, generated at open time as
Linux's seq_files are, into a memfd, so read/lseek/pread/mmap work on it like on any host file.
"""
import os
import stat as _stat
import time
import zlib
from collections import namedtuple
from errno import EACCES, EEXIST, EISDIR, ELOOP, ENOENT, ENOTDIR

from hermipy.syscalls.errors import SyscallError
from hermipy.syscalls.files import O_ACCMODE, O_CREAT, O_DIRECTORY, O_EXCL, O_PATH, O_RDONLY, OpenFile
from hermipy.syscalls.vfs import Target

NS_NAMES = ("cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "time", "time_for_children", "user", "uts")

PAGE_KB = 4
DT_UNKNOWN, DT_FIFO, DT_CHR, DT_DIR, DT_BLK, DT_REG, DT_LNK, DT_SOCK = 0, 1, 2, 4, 6, 8, 10, 12
PROC_SUPER_MAGIC = 0x9FA0

# struct stat's fields under os.stat_result's names, so one packer serves host and synthetic files
Stat = namedtuple("Stat", "st_dev st_ino st_nlink st_mode st_uid st_gid st_rdev st_size st_blksize st_blocks "
                          "st_atime_ns st_mtime_ns st_ctime_ns")

HOST_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")        # reachable even when confined
STD_LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
             "stderr": "/proc/self/fd/2"}
SYSVIPC_FILES = ("shm", "sem", "msg")
HOST_PROC_FILES = ("cpuinfo", "meminfo", "version", "uptime", "loadavg", "stat", "filesystems")


def d_type_of(mode: int) -> int:
    return {_stat.S_IFIFO: DT_FIFO, _stat.S_IFCHR: DT_CHR, _stat.S_IFDIR: DT_DIR, _stat.S_IFBLK: DT_BLK,
            _stat.S_IFREG: DT_REG, _stat.S_IFLNK: DT_LNK, _stat.S_IFSOCK: DT_SOCK}.get(_stat.S_IFMT(mode),
                                                                                       DT_UNKNOWN)


STATE_NAMES = {"R": "R (running)", "S": "S (sleeping)", "D": "D (disk sleep)", "T": "T (stopped)",
               "t": "t (tracing stop)", "Z": "Z (zombie)", "X": "X (dead)", "I": "I (idle)"}


def _host_state(tid: int) -> str:
    """A task's state as /proc shows it: its host thread's (a guest thread blocked in a call is a hermipy thread
    blocked in the host's; one computing is running), e.g. "S (sleeping)"."""
    try:
        with open(f"/proc/self/task/{tid}/stat", "rb") as f:
            code = f.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        code = "R"
    return STATE_NAMES.get(code, "R (running)")


class Node:
    """One synthetic name. ``kind``: "dir", "file", "link" or "host" (a host file shown here)."""

    kind = ""
    perm = 0o444

    def __init__(self, ns: "Synthetic", path: str):
        self.ns, self.path = ns, path

    @property
    def ino(self) -> int:
        return zlib.crc32(self.path.encode()) | 0x1000

    @property
    def mode(self) -> int:
        return {"dir": _stat.S_IFDIR, "file": _stat.S_IFREG, "link": _stat.S_IFLNK}[self.kind] | self.perm

    size = 0

    def stat(self) -> Stat:
        ns = self.ns
        t = ns.start_ns
        return Stat(ns.dev, self.ino, 2 if self.kind == "dir" else 1, self.mode, ns.k.proc.euid, ns.k.proc.egid,
                    0, self.size, 1024, 0, t, t, t)

    @property
    def d_type(self) -> int:
        return d_type_of(self.mode)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path}>"


class Dir(Node):
    kind, perm = "dir", 0o555

    def __init__(self, ns, path, children, perm=0o555):
        super().__init__(ns, path)
        self.children, self.perm = children, perm        # children: () -> {name: Node}

    def lookup(self, name: str):
        return self.children().get(name)


class File(Node):
    kind = "file"

    def __init__(self, ns, path, content, perm=0o444):
        super().__init__(ns, path)
        self.content, self.perm = content, perm      # content: () -> bytes


class Link(Node):
    kind, perm = "link", 0o777

    def __init__(self, ns, path, target):
        super().__init__(ns, path)
        self.target = target            # () -> str

    @property
    def size(self) -> int:
        """Links under /dev are real symlinks (size: the target's length); /proc's report 0."""
        return len(self.target()) if self.path.startswith("/dev/") else 0

    def readlink(self) -> str:
        return self.target()

    def follow(self):
        return self.target()


class FdLink(Node):
    """/proc/self/fd/N: a magic link; following it reaches the open file itself, not its name."""

    kind, size = "link", 64

    def __init__(self, ns, path, fd: int):
        super().__init__(ns, path)
        self.fd = fd

    def _file(self) -> OpenFile:
        of = self.ns.k.fds.files.get(self.fd)
        if of is None:
            raise SyscallError(ENOENT)
        return of

    @property
    def perm(self) -> int:
        of = self.ns.k.fds.files.get(self.fd)
        if of is None:
            return 0
        return (0o500 if of.readable else 0) | (0o300 if of.writable else 0)

    def readlink(self) -> str:
        return self._file().path

    def follow(self) -> Target:
        of = self._file()
        if of.node is not None:
            return Target(of.path, None, of.node)
        return Target(of.path, f"/proc/self/fd/{of.host_fd}", bound=of.bound, opened=of)


class NsLink(Node):
    """/proc/PID/ns/NAME: a magic link to a namespace of the task's host thread (a task's namespaces are its
    host thread's: sys_ns); following it opens the namespace itself (nsfs), as setns(2) wants."""

    kind, perm = "link", 0o777

    def __init__(self, ns, path, host_path):
        super().__init__(ns, path)
        self.host_path = host_path          # () -> the host's /proc/PID/task/TID/ns/NAME

    def readlink(self) -> str:
        try:
            return os.readlink(self.host_path())
        except OSError:
            raise SyscallError(ENOENT) from None

    def follow(self) -> Target:
        return Target(self.path, self.host_path(), bound="/proc" if self.ns.k.fs.confined else None)


class HostNode(Node):
    """A host file shown in the synthetic tree. Under --root (``bound``: the directory it is shown in, /dev or
    /proc) it is the host's own /dev/null or /proc/cpuinfo, which the guest may read and write but never change:
    it behaves as a read-only bind mount of the file there (vfs.Target.bound)."""

    kind = "host"

    def __init__(self, ns, path, host_path, bound=None):
        super().__init__(ns, path)
        self.host_path, self.bound = host_path, bound

    @property
    def mode(self) -> int:
        return os.stat(self.host_path).st_mode


class Synthetic:
    """The synthetic namespace of one guest (kernel ``k``)."""

    def __init__(self, k):
        self.k = k
        self.start_ns = time.time_ns()
        try:
            self.dev = os.stat("/proc").st_dev
        except OSError:
            self.dev = 0

    @property
    def pid(self) -> str:
        return str(self.k.proc.pid)

    def _caller(self):
        """The task looking (threads share this namespace: CLONE_FS)."""
        from hermipy.syscalls.sys_signal import current_task
        return current_task() or self.k

    def _leader(self):
        """The task /proc/PID describes: the thread-group leader, or the caller once the leader has exited."""
        return self.k.group.tasks.get(self.k.proc.pid) or self._caller()

    # -- where the overlay sits on the host tree --------------------------------------------------
    def overlay(self, parent: str, name: str):
        """The synthetic node for ``parent/name`` on a host directory, or None (the host's own)."""
        confined = self.k.fs.confined
        if parent == "/proc":
            if name in ("self", "thread-self", self.pid):
                return self._proc_entries()[name]
            return None
        if parent == "/dev" and confined:       # unconfined, the host's own /dev/fd -> /proc/self/fd links lead
            if name in STD_LINKS:               # the walk into the /proc overlay

                return Link(self, "/dev/" + name, lambda t=STD_LINKS[name]: t)
            if name in HOST_DEVICES and os.path.exists("/dev/" + name):
                return HostNode(self, "/dev/" + name, "/dev/" + name, "/dev")
            return None
        if parent == "/" and confined:
            if name == "proc":
                return Dir(self, "/proc", self._proc_entries)
            if name == "dev" and not self._root_has_dev():
                return Dir(self, "/dev", self._dev_entries)
        return None

    def _root_has_dev(self) -> bool:
        """Whether the root holds a /dev directory of its own (looked up in the root's fd: never a host path)."""
        try:
            return _stat.S_ISDIR(os.stat("dev", dir_fd=self.k.fs.rootfd, follow_symlinks=False).st_mode)
        except OSError:
            return False

    # -- directories ------------------------------------------------------------------------------
    def _proc_entries(self) -> dict:
        pid = self.pid
        entries = {"self": Link(self, "/proc/self", lambda: pid),
                   "thread-self": Link(self, "/proc/thread-self", lambda: f"{pid}/task/{self._caller().tid}"),
                   pid: self._pid_dir(f"/proc/{pid}")}
        if self.k.fs.confined:
            for name in HOST_PROC_FILES:
                if os.path.exists("/proc/" + name):
                    entries[name] = HostNode(self, "/proc/" + name, "/proc/" + name, "/proc")
            if os.path.isdir("/proc/sysvipc"):            # the host's IPC namespace is the guest's (sys_ipc.py)
                entries["sysvipc"] = Dir(self, "/proc/sysvipc", lambda: {
                    name: HostNode(self, "/proc/sysvipc/" + name, "/proc/sysvipc/" + name, "/proc/sysvipc")
                    for name in SYSVIPC_FILES})
        return entries

    def _dev_entries(self) -> dict:
        entries = {name: HostNode(self, "/dev/" + name, "/dev/" + name, "/dev")
                   for name in HOST_DEVICES if os.path.exists("/dev/" + name)}
        for name, target in STD_LINKS.items():
            entries[name] = Link(self, "/dev/" + name, lambda t=target: t)
        return entries

    def _pid_dir(self, path: str, task=None) -> Dir:
        """/proc/PID (``task`` None: the thread group, shown as its leader) or /proc/PID/task/TID."""
        k = self.k
        who = (lambda: task) if task is not None else self._leader
        files = {"maps": self.maps, "smaps": self.smaps, "status": lambda: self.status(who()),
                 "stat": lambda: self.stat_line(who()),
                 "statm": self.statm, "cmdline": lambda: b"".join(a + b"\0" for a in k.proc.argv),
                 "comm": lambda: who().comm + b"\n"}
        private = {"environ": lambda: b"".join(e + b"\0" for e in k.proc.environ), "auxv": lambda: k.proc.auxv}

        def children():
            out = {name: File(self, f"{path}/{name}", fn) for name, fn in files.items()}
            out.update({name: File(self, f"{path}/{name}", fn, 0o400) for name, fn in private.items()})
            out["exe"] = Link(self, f"{path}/exe", lambda: k.fs.canonical(k.proc.exe))
            out["cwd"] = Link(self, f"{path}/cwd", lambda: k.fs.cwd)
            out["root"] = Link(self, f"{path}/root", lambda: "/")
            out["fd"] = Dir(self, f"{path}/fd", lambda: {str(fd): FdLink(self, f"{path}/fd/{fd}", fd)
                                                         for fd in sorted(k.fds.files)}, 0o500)
            out["fdinfo"] = Dir(self, f"{path}/fdinfo",
                                lambda: {str(fd): File(self, f"{path}/fdinfo/{fd}", lambda fd=fd: self.fdinfo(fd))
                                         for fd in sorted(k.fds.files)})
            out["ns"] = Dir(self, f"{path}/ns", lambda: {
                name: NsLink(self, f"{path}/ns/{name}", lambda name=name: f"/proc/{os.getpid()}/task/{who().tid}/ns/{name}")
                for name in NS_NAMES if os.path.lexists(f"/proc/thread-self/ns/{name}")}, 0o511)
            if task is None:
                out["task"] = Dir(self, f"{path}/task", lambda: {
                    str(tid): self._pid_dir(f"{path}/task/{tid}", t) for tid, t in sorted(k.group.tasks.items())})
            if not k.fs.confined:
                for name in ("mounts", "mountinfo"):
                    out[name] = HostNode(self, f"{path}/{name}", f"/proc/self/{name}")
                out["net"] = self._host_dir(f"{path}/net", "/proc/self/net")    # the guest's sockets are host ones
            return out
        return Dir(self, path, children)

    def _host_dir(self, path: str, host_path: str) -> Dir:
        """A host directory shown inside the synthetic tree, entry by entry: its files are the host's."""
        def children():
            out = {}
            for name in sorted(os.listdir(host_path)):
                host = f"{host_path}/{name}"
                out[name] = (self._host_dir(f"{path}/{name}", host) if os.path.isdir(host)
                             else HostNode(self, f"{path}/{name}", host))
            return out
        return Dir(self, path, children)

    # -- file contents ----------------------------------------------------------------------------
    def maps(self) -> bytes:
        """show_map_vma(): the header padded to 73 columns, then the name."""
        return "".join(head for head, _vmas in self._map_areas()).encode(errors="surrogateescape")

    def smaps(self) -> bytes:
        """show_smap(): each area of maps, then its counts (guest pages present stand for resident ones; a
        private one counts as dirty once written, which hermipy does not tell apart: all are Private_Dirty or
        Shared_Clean) and VmFlags."""
        frames, out = self.k.mem.frames, []
        for head, vmas in self._map_areas():
            size = sum(v.end - v.start for v in vmas) // 1024
            rss = sum(1 for v in vmas for vpn in range(v.start >> 12, v.end >> 12) if vpn in frames) * PAGE_KB
            first = vmas[0]
            shared, anonymous = first.shared, first.file is None and first.window is None
            locked = rss if first.locked else 0
            flags = " ".join(name for bit, name in ((1, "rd"), (2, "wr"), (4, "ex")) if first.prot & bit)
            flags += " sh" if shared else ""
            flags += " mr mw me" + (" ms" if shared else "") + (" lo" if first.locked else "")
            out.append(head + "".join(f"{name + ':':<16}{value:>8} kB\n" for name, value in (
                ("Size", size), ("KernelPageSize", 4), ("MMUPageSize", 4), ("Rss", rss), ("Pss", rss),
                ("Pss_Dirty", 0 if shared else rss), ("Shared_Clean", rss if shared else 0), ("Shared_Dirty", 0),
                ("Private_Clean", 0), ("Private_Dirty", 0 if shared else rss), ("Referenced", rss),
                ("Anonymous", rss if anonymous else 0), ("KSM", 0), ("LazyFree", 0), ("AnonHugePages", 0),
                ("ShmemPmdMapped", 0), ("FilePmdMapped", 0), ("Shared_Hugetlb", 0), ("Private_Hugetlb", 0),
                ("Swap", 0), ("SwapPss", 0), ("Locked", locked)))
                       + f"THPeligible:    0\nVmFlags: {flags} \n")
        return "".join(out).encode(errors="surrogateescape")

    def _map_areas(self) -> list[tuple[str, list]]:
        """The areas /proc/PID/maps shows, each as (its line, the VMAs it is made of)."""
        areas = []                      # [start, end, prot, shared, offset, dev, ino, name, locked, vmas]
        for vma in self.k.mem.vmas:
            dev, ino, name = 0, 0, ""
            if vma.file is not None:
                dev, ino = vma.file.dev, vma.file.inode
                name = self._mapped_name(vma)
            elif vma.name.startswith("["):
                name = vma.name
            elif vma.window is not None and vma.window.shmid >= 0:
                dev, ino, name = os.makedev(0, 1), vma.window.shmid, vma.name    # shm_file_setup's SYSV file
            prev = areas[-1] if areas else None
            if prev and vma.file is None and prev[5:9] == [0, 0, name, vma.locked] and prev[1] == vma.start and \
                    prev[2:4] == [vma.prot, vma.shared]:
                prev[1] = vma.end       # adjacent anonymous areas alike are one VMA on Linux (vma_merge)
                prev[9].append(vma)
                continue
            areas.append([vma.start, vma.end, vma.prot, vma.shared, vma.offset if vma.file is not None else 0,
                          dev, ino, name, vma.locked, [vma]])
        lines = []
        for start, end, prot, shared, offset, dev, ino, name, _locked, vmas in areas:
            head = "%08x-%08x %s%s%s%s %08x %02x:%02x %d " % (
                start, end, "r" if prot & 1 else "-", "w" if prot & 2 else "-", "x" if prot & 4 else "-",
                "s" if shared else "p", offset, os.major(dev), os.minor(dev), ino)
            if name:
                head = head.ljust(73) + name
            lines.append((head + "\n", vmas))
        return lines

    def _mapped_name(self, vma) -> str:
        try:
            return self.k.fs.to_guest(os.readlink(f"/proc/self/fd/{vma.file.fd}"))
        except OSError:
            return vma.name

    def _vm_kb(self) -> tuple[int, int, int, int]:
        vmas = self.k.mem.vmas
        size = sum(v.end - v.start for v in vmas) // 1024
        stack = sum(v.end - v.start for v in vmas if v.name == "[stack]") // 1024
        data = sum(v.end - v.start for v in vmas if v.file is None and v.prot & 2 and v.name != "[stack]") // 1024
        rss = len(self.k.mem.frames) * PAGE_KB
        return size, rss, stack, data

    def status(self, task) -> bytes:
        """/proc/PID/status and /proc/PID/task/TID/status (proc_pid_status): ``task``'s name, ids, memory and
        capability sets."""
        from hermipy.syscalls.sys_info import _creds
        p = c = _creds(self.k)                 # the credential record, capability sets included
        size, rss, stack, data = self._vm_kb()
        groups = " ".join(str(g) for g in p.groups)
        state = _host_state(task.tid)
        text = (f"Name:\t{task.comm.decode(errors='replace')}\nUmask:\t{p.umask:04o}\nState:\t{state}\n"
                f"Tgid:\t{p.pid}\nNgid:\t0\nPid:\t{task.tid}\nPPid:\t{p.ppid}\nTracerPid:\t0\n"
                f"Uid:\t{p.uid}\t{p.euid}\t{p.suid}\t{p.fsuid}\nGid:\t{p.gid}\t{p.egid}\t{p.sgid}\t{p.fsgid}\n"
                f"FDSize:\t{self.k.fds.size}\nGroups:\t{groups} \n"
                f"NStgid:\t{p.pid}\nNSpid:\t{task.tid}\n"
                f"VmPeak:\t{size:8d} kB\nVmSize:\t{size:8d} kB\nVmLck:\t{self.k.mem.locked_bytes() // 1024:8d} kB\n"
                f"VmPin:\t       0 kB\n"
                f"VmHWM:\t{rss:8d} kB\nVmRSS:\t{rss:8d} kB\nVmData:\t{data:8d} kB\nVmStk:\t{stack:8d} kB\n"
                f"VmSwap:\t       0 kB\nThreads:\t{len(self.k.group.tasks)}\n"
                "SigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\n"
                f"CapInh:\t{c.cap_inh:016x}\nCapPrm:\t{c.cap_prm:016x}\nCapEff:\t{c.cap_eff:016x}\n"
                f"CapBnd:\t{c.cap_bnd:016x}\nCapAmb:\t{c.cap_amb:016x}\n"
                f"NoNewPrivs:\t{getattr(c, 'no_new_privs', 0)}\n")
        return text.encode()

    def stat_line(self, task) -> bytes:
        """/proc/PID/stat and /proc/PID/task/TID/stat (do_task_stat): 52 fields."""
        k, p = self.k, self.k.proc
        size, rss, _stack, _data = self._vm_kb()
        ticks = os.sysconf("SC_CLK_TCK")
        times = os.times()
        fields = [task.tid, f"({task.comm.decode(errors='replace')})", _host_state(task.tid)[0], p.ppid, os.getpgrp(), os.getsid(0), 0, -1,
                  0x400000, 0, 0, 0, 0, int(times.user * ticks), int(times.system * ticks), 0, 0, 20, 0,
                  len(k.group.tasks), 0,
                  0, size * 1024, rss // PAGE_KB, (1 << 64) - 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 0,
                  0, 0, 0, 0, k.mem.brk_start, 0, 0, 0, 0, 0, 0]
        return (" ".join(str(f) for f in fields) + "\n").encode()

    def statm(self) -> bytes:
        size, rss, _stack, data = self._vm_kb()
        return f"{size // PAGE_KB} {rss // PAGE_KB} 0 0 0 {data // PAGE_KB} 0\n".encode()

    def fdinfo(self, fd: int) -> bytes:
        of = self.k.fds.get(fd)
        try:
            pos = os.lseek(of.host_fd, 0, os.SEEK_CUR)
        except OSError:
            pos = 0
        flags = of.flags | (0o2000000 if fd in self.k.fds.cloexec else 0)
        try:
            ino = os.fstat(of.host_fd).st_ino
        except OSError:
            ino = 0
        head = f"pos:\t{pos}\nflags:\t0{flags:o}\n".encode()
        if not of.status_from_host:      # a signalfd (an eventfd on the host): signalfd_show_fdinfo's sigmask
            return head + f"mnt_id:\t0\nino:\t{ino}\nsigmask:\t{of.mask:016x}\n".encode()
        if of.node is None:              # the host's mnt_id, ino and what the file's kind adds (inotify watches,
            try:                         # eventfd counts, timerfd settings ...); pos and flags are the guest's
                with open(f"/proc/self/fdinfo/{of.host_fd}", "rb") as f:
                    host = f.read()
                return head + b"".join(line for line in host.splitlines(keepends=True)
                                       if not line.startswith((b"pos:", b"flags:")))
            except OSError:
                pass
        return head + f"mnt_id:\t0\nino:\t{ino}\n".encode()


def node_stat(node) -> Stat | os.stat_result:
    if node.kind == "host":
        return os.stat(node.host_path)
    return node.stat()


def open_node(node, guest: str, flags: int) -> OpenFile:
    """Open a synthetic file or directory: content into a memfd, a directory as a listing."""
    if node.kind == "host":
        raise AssertionError("host nodes resolve to host paths")
    if flags & O_CREAT and flags & O_EXCL:
        raise SyscallError(EEXIST)
    if node.kind == "link" and not flags & O_PATH:
        raise SyscallError(ELOOP)         # O_NOFOLLOW met a link
    accmode = flags & O_ACCMODE
    if node.kind == "dir":
        if accmode != O_RDONLY and not flags & O_PATH:
            raise SyscallError(EISDIR)
        of = OpenFile(os.memfd_create("hermipy-dir", os.MFD_CLOEXEC), guest, flags, "dir", node)
        of.dir_entries = []
        return of
    if flags & O_DIRECTORY:
        raise SyscallError(ENOTDIR)
    if accmode != O_RDONLY and not flags & O_PATH:
        raise SyscallError(EACCES)
    fd = os.memfd_create("hermipy-proc", os.MFD_CLOEXEC)
    try:
        if not flags & O_PATH:
            data = node.content() if node.kind == "file" else b""
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return OpenFile(fd, guest, flags, "file", node)


def dir_listing(node) -> list[tuple[str, int, int]]:
    """(name, d_type, inode) for a synthetic directory, "." and ".." first."""
    entries = [(".", DT_DIR, node.ino), ("..", DT_DIR, 1)]
    for name, child in node.children().items():
        try:
            entries.append((name, child.d_type, child.ino))
        except OSError:
            continue
    return entries
