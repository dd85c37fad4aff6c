"""The rest of the Linux surface (issue 14), differentially: each call's success and error paths in
testbins/surface.c, natively and under hermipy on every backend and variant."""
import os
import shutil
import subprocess

import pytest

from difftest import (TIMEOUT, VARIANTS, assert_results_same, assert_same, build, empty_dir, hermipy_command,
                      run_hermipy, run_native)

pytestmark = pytest.mark.usefixtures("hermipy_backend")     # each test on every CPU backend


@pytest.mark.parametrize("variant", VARIANTS)
def test_recvmmsg(variant):
    """The timeout is checked before the fd (EINVAL, EFAULT), bounds the batch between datagrams and goes back
    with what is left when a datagram came; a file that is no socket is ENOTSOCK even for vlen 0."""
    out = assert_same([build("surface", variant), "recvmmsg"], setup=empty_dir).stdout.decode()
    for fact in ("timeout 5 s, MSG_DONTWAIT: 2", "time left: under 5 s", "3 queued, timeout 0: 1",
                 "bad timeout pointer on a bad fd: -1 EFAULT", "not a socket, vlen 0: -1 ENOTSOCK"):
        assert fact in out, fact


@pytest.mark.parametrize("variant", VARIANTS)
def test_vectored_io(variant):
    """preadv/pwritev/preadv2/pwritev2 (and readv/writev) check as fs/read_write.c does, in its order: a negative
    offset before the fd, ESPIPE before EBADF, the iovecs (count, negative lengths, kernel addresses) before
    the RWF_* flags, which only a transfer of some bytes checks (EOPNOTSUPP); offset -1 is the file position."""
    out = assert_same([build("surface", variant), "rwv"], setup=empty_dir).stdout.decode()
    for fact in ("preadv bad fd at -5: -1 EINVAL", "preadv pipe write end: -1 ESPIPE",
                 "preadv negative length: -1 EINVAL", "preadv buffer in kernel space, length 0: -1 EFAULT",
                 "preadv2 unknown flag: -1 EOPNOTSUPP", "preadv2 unknown flag, 0 bytes: 0",
                 "got 2345, position 6", "pwritev second buffer unmapped: 2",
                 "pwritev2 full pipe RWF_NOWAIT: -1 EAGAIN"):
        assert fact in out, fact


@pytest.mark.parametrize("variant", VARIANTS)
def test_splice_tee_vmsplice_fallocate(variant):
    """splice/tee/vmsplice are the host's calls on the host fds (offsets copied in and back, vmsplice over guest
    RAM), so their errors and waits are Linux's; a signal ends a blocked one with EINTR, a broken pipe raises
    SIGPIPE in the guest; fallocate is the host's on the host file."""
    out = assert_same([build("surface", variant), "splice"], setup=empty_dir).stdout.decode()
    for fact in ("file at 6 -> pipe: 6", "offset now 12, file position 18", "offset on the pipe side: -1 ESPIPE",
                 "empty pipe -> file, a signal without SA_RESTART: -1 EINTR", "SIGPIPEs 1", "tee: 7",
                 "vmsplice 9999 bytes across pages: 9999", "read back 9999, same: 1",
                 "vmsplice full pipe, a signal without SA_RESTART: -1 EINTR", "fallocate 8192: 0", "size 8192",
                 "punched: 1", "/proc file: -1 EBADF"):
        assert fact in out, fact


@pytest.mark.parametrize("variant", VARIANTS)
def test_inotify(variant):
    """inotify is a host instance read as hermipy reads any host fd: events as the host writes them, a blocking
    read a signal interrupts (EINTR) or resumes (SA_RESTART); the checks of mask and fd come before the path's."""
    out = assert_same([build("surface", variant), "inotify"], setup=empty_dir).stdout.decode()
    for fact in ("link: anon_inode:inotify", 'wd 1 mask 0x80 cookie set name "b"', "watch l, IN_DONT_FOLLOW: 2",
                 "bad fd, no such path: -1 EBADF", "not an inotify fd, no such path: -1 EINVAL",
                 "read into a buffer too small: -1 EINVAL", "read, a signal without SA_RESTART: -1 EINTR",
                 'name "late"'):
        assert fact in out, fact


def test_inotify_under_root(tmp_path):
    """Under --root a watched path resolves inside the root: the directory beside it is not reached through ..
    or a symlink."""
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (root / "esc").symlink_to("../outside")
    shutil.copy(build("surface", "static"), root / "surface")
    proc = subprocess.run(hermipy_command("--root", str(root)) + ["/surface", "inotify-root"], capture_output=True,
                          timeout=TIMEOUT)
    assert proc.stdout.decode() == (
        "-- inotify-root\nwatch /d: 1\nwatch /../outside: -1 ENOENT\nwatch /esc: -1 ENOENT\n"
        "watch /esc, IN_DONT_FOLLOW: 2\nevents: 32 bytes\n  wd 1 mask 0x100 cookie 0 name \"x\"\n"), proc
    assert proc.returncode == 0 and not proc.stderr, proc


@pytest.mark.parametrize("variant", VARIANTS)
def test_sched_and_ioprio(variant):
    """The sched_* family and ioprio_* are the host's calls on the host thread behind the guest pid (the same
    number), with Linux's EINVAL/ESRCH/EFAULT/E2BIG; a guest that gave up root gets EPERM as natively even
    where hermipy's own process is root's."""
    out = assert_same([build("surface", variant), "sched"], setup=empty_dir).stdout.decode()
    for fact in ("getscheduler a reaped child: -1 ESRCH", "setscheduler BATCH: 0", "getscheduler child: 3",
                 "size 56, byte 60: 0", "setattr size 20: -1 E2BIG", "size written back: 56", "getpriority: 4",
                 "ioprio_get self: 16389", "ioprio_set class 5: -1 EINVAL"):
        assert fact in out, fact
    if "(not root: skipped)" not in out:
        for fact in ("setscheduler FIFO 1: -1 EPERM", "setparam pid 1: -1 EPERM", "setattr nice -5: -1 EPERM"):
            assert fact in out, fact


@pytest.mark.parametrize("variant", VARIANTS)
def test_pidfd(variant):
    """pidfd_open is the host's (guest pids are the host's); pidfd_send_signal to the caller itself takes
    hermipy's signal path, so its handler runs with the siginfo Linux gives it; to another process, the host's;
    pidfd_getfd duplicates the caller's own fds."""
    out = assert_same([build("surface", variant), "pidfd"], setup=empty_dir).stdout.decode()
    for fact in ("handler ran 1, si_code 0, si_pid mine 1", "handler ran 2, si_code -1, value 42", "handler ran 4",
                 "siginfo SI_USER to another process: -1 EPERM", "child killed by signal 15",
                 "send to the reaped child: -1 ESRCH", 'read "through a copy"'):
        assert fact in out, fact


@pytest.mark.parametrize("variant", VARIANTS)
def test_clone_and_exec_details(variant):
    """clone3/clone CLONE_PIDFD (a pidfd of the child, EFAULT before any child, EINVAL with CLONE_PARENT_SETTID),
    CLONE_NEWUTS (as root: the child's own hostname), execve with no argv (argv[0] ""), execveat ELOOP,
    pidfd_send_signal through a /proc/PID directory, arch_prctl's CPUID codes; PIDFD_GET_INFO, F_CREATED_QUERY."""
    out = assert_same([build("surface", variant), "clone"], setup=empty_dir).stdout.decode()
    for fact in ("child 1, pidfd 1, F_GETFD 1", "status 3, pid matches 1",
                 "clone3 CLONE_PIDFD to an unmapped pointer: -1 EFAULT", "CLONE_PIDFD|CLONE_PARENT_SETTID: -1 EINVAL",
                 "the parent's hostname unchanged: yes", "through /proc/self: 0", "symlink: -1 ELOOP",
                 "argc 1, argv[0] empty", "execve with no argv: exit 4", "ARCH_GET_CPUID: 1",
                 "PIDFD_GET_INFO: pid matches 1, ppid matches 1, euid matches 1", "TCGETA on a pidfd: -1 ENOTTY",
                 "made the file: 1", "that file again: 0", "SIGUSR2 on its exit 1, SIGCHLD 0",
                 "is CLONE_NEWUTS: 1", "NS_GET_USERNS: a new fd 1", "NS_GET_OWNER_UID of a uts namespace: -1 EINVAL"):
        assert fact in out, fact


@pytest.mark.parametrize("variant", VARIANTS)
def test_newer_calls(variant):
    """fchmodat2 (its flags; a symlink's own mode is EOPNOTSUPP), cachestat (the host's page-cache counts) and
    lsm_list_modules (the host's modules), with Linux's errors."""
    out = assert_same([build("surface", variant), "newer"], setup=empty_dir).stdout.decode()
    for fact in ("fchmodat2: 0", "mode 640", "AT_SYMLINK_NOFOLLOW of a symlink: -1 EOPNOTSUPP", "mode 604",
                 "mode 644", "without AT_EMPTY_PATH: -1 ENOENT", "fchmodat2 unknown flag: -1 EINVAL",
                 "pages in the page cache 3", "cachestat flags 1: -1 EINVAL", "bad range pointer: -1 EFAULT",
                 "bad result pointer: -1 EFAULT", "size matches 1", "size needed matches 1",
                 "PR_SET_TIMERSLACK 100000: 0", "PR_SET_SECUREBITS an unknown bit: -1 EPERM",
                 "symlink fd with an empty path: 1", "target f", "a file's fd with an empty path: -1 ENOENT",
                 "fdinfo's mnt_id is statx's: 1", "fdinfo lists its watch: 1"):
        assert fact in out, fact


@pytest.mark.parametrize("variant", VARIANTS)
def test_task_states(variant):
    """/proc/PID/task/TID/stat shows a task's state as its host thread's: S for one blocked in a call."""
    out = assert_same([build("surface", variant), "states"], setup=empty_dir).stdout.decode()
    assert "a thread blocked in read shows S: 1" in out


@pytest.mark.parametrize("variant", VARIANTS)
def test_landlock(variant):
    """Landlock is the host's on the task's thread: a child that restricts itself to reading one directory is
    refused (EACCES) outside it by the host, while the parent is not; the calls' errors in the host's order."""
    out = assert_same([build("surface", variant), "landlock"], setup=empty_dir).stdout.decode()
    for fact in ("restrict_self: 0", "read a file under the allowed directory: 1", "read a file outside it: -1 EACCES",
                 "write a file under it: -1 EACCES", "the parent still reads outside: 1",
                 "add_rule a bad parent fd: -1 EBADF", "create_ruleset bad pointer: -1 EFAULT"):
        assert fact in out, fact


@pytest.mark.parametrize("variant", VARIANTS)
def test_keys(variant):
    """add_key, request_key and keyctl are the host's (in a session keyring of the test's own), with the guest's
    strings and buffers copied in and out, and Linux's errors."""
    out = assert_same([build("surface", variant), "keys"], setup=empty_dir).stdout.decode()
    for fact in ("a new session keyring: yes", "add_key user: a key id", 'payload "payload-1"', "into 4 bytes: 9",
                 "ends with the description 1", "KEYCTL_SEARCH finds it: 1", "request_key finds it: 1",
                 'payload now "payload-two"', "KEYCTL_READ a revoked key: -1 errno 128",
                 "add_key an unknown type: -1 ENODEV", "keyctl an unknown operation: -1 EOPNOTSUPP"):
        assert fact in out, fact


@pytest.mark.parametrize("variant", VARIANTS)
def test_capget_capset(variant):
    """capget/capset on the guest's own capability sets: the version handshake, pid checks, cap_capset()'s rules
    (effective within permitted, permitted only shrinks), and the sets emptied by setuid away from root."""
    out = assert_same([build("surface", variant), "caps"], setup=empty_dir).stdout.decode()
    for fact in ("version written back 0x20080522", "capget unknown version, no data: 0", "capget pid -1: -1 EINVAL",
                 "capget no such pid: -1 ESRCH", "capset another pid: -1 EPERM",
                 "capset effective outside permitted: -1 EPERM", "capset permitted back: -1 EPERM"):
        assert fact in out, fact


@pytest.mark.parametrize("variant", VARIANTS)
def test_sysfs(variant):
    out = assert_same([build("surface", variant), "sysfs"], setup=empty_dir).stdout.decode()
    for fact in ("count > 0: yes", 'name "proc"', "index past the end: -1 EINVAL", "unknown name: -1 EINVAL",
                 "bad name pointer: -1 EFAULT", "option 4: -1 EINVAL"):
        assert fact in out, fact


@pytest.mark.parametrize("variant", VARIANTS)
def test_namespaces(variant):
    """unshare/setns of UTS, IPC and network namespaces are the host's on the task's thread (as root: natively the
    test changes only its own process's namespaces); CLONE_FS/CLONE_FILES in a thread; /proc/self/ns links."""
    if os.geteuid() != 0:
        pytest.skip("new namespaces need CAP_SYS_ADMIN, natively too")
    out = assert_same([build("surface", variant), "ns"], setup=empty_dir).stdout.decode()
    for fact in ("link starts uts:[ yes", "uname nodename hermipy-ns", "domainname example.test",
                 "a fork child's hostname hermipy-ns", "the first hostname again: yes",
                 "first segment id in the new IPC namespace 0", "interface lo\n",
                 "main: cwd unchanged yes, the fd still open yes"):
        assert fact in out, fact


def test_host_names_and_namespaces_stay_the_hosts():
    """In the host's UTS namespace a guest never renames the host (EPERM, whatever hermipy's privileges), and the
    namespaces hermipy cannot give a task of its own are EPERM (util-linux's unshare says so)."""
    before = os.uname().nodename
    proc = subprocess.run(hermipy_command() + ["/usr/bin/busybox", "hostname", "hermipy-renamed-the-host"],
                          capture_output=True, timeout=TIMEOUT)
    assert proc.returncode == 1 and b"Operation not permitted" in proc.stderr, proc
    assert os.uname().nodename == before
    if shutil.which("unshare"):
        for flag in ("--mount", "--user", "--pid", "--time"):
            proc = subprocess.run(hermipy_command() + [shutil.which("unshare"), flag, "true"], capture_output=True,
                                  timeout=TIMEOUT)
            assert proc.returncode == 1 and b"Operation not permitted" in proc.stderr, (flag, proc)


@pytest.mark.parametrize("variant", VARIANTS)
def test_chroot(variant):
    """chroot: the lookup's errors, then EPERM without CAP_SYS_CHROOT; inside, / and .. stay in the new root,
    a symlink to /.. too, relative paths follow the cwd, a second chroot nests, files made there are the jail's."""
    out = assert_same([build("surface", variant), "chroot"], setup=empty_dir).stdout.decode()
    for fact in ("chroot a missing directory: -1 ENOENT", "chroot a file: -1 ENOTDIR", "/sub/f: inside",
                 "/../outside.txt: -1 ENOENT", "/sub/up/outside.txt: -1 ENOENT", "cwd /sub\nf, relative: inside",
                 "/f after the second chroot: inside", "made inside the jail: yes"):
        assert fact in out, fact
    if os.geteuid() == 0:
        assert "chroot without CAP_SYS_CHROOT: -1 EPERM" in out


def test_chroot_under_root_stays_inside(tmp_path):
    """Under --root a guest's chroot never leads out of the root: the classic escape (a new root below the cwd,
    then .. past it, then chroot .) ends in the run's root (Linux's would reach the real root: hermipy puts the
    cwd in the new root at the chroot)."""
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside-marker").write_text("outside\n")
    shutil.copy(build("surface", "static"), root / "surface")
    proc = subprocess.run(hermipy_command("--root", str(root)) + ["/surface", "chroot-escape"], capture_output=True,
                          cwd=root, timeout=TIMEOUT)
    out = proc.stdout.decode()
    assert "/outside-marker: -1 ENOENT" in out and "chroot .: 0" in out, proc
    if os.geteuid() == 0:
        assert "chroot x: 0" in out and "/surface-is-here: -1 ENOENT" in out, out     # the jail is x, inside root
    assert proc.returncode == 0 and not proc.stderr, proc


def test_coreutils_chroot(tmp_path):
    """coreutils' chroot(8) runs a program inside a jail (its ELF and the shell's children found there)."""
    if os.geteuid() != 0 or not shutil.which("chroot"):
        pytest.skip("chroot(8) needs root, natively too")
    jail = tmp_path / "jail"
    (jail / "bin").mkdir(parents=True)
    shutil.copy("/usr/bin/busybox", jail / "bin" / "busybox")
    (jail / "etc").mkdir()
    (jail / "etc" / "motd").write_text("in the jail\n")
    argv = [shutil.which("chroot"), str(jail), "/bin/busybox", "sh", "-c",
            "/bin/busybox cat /etc/motd; pwd; /bin/busybox ls / /..; cd /bin && /bin/busybox ls"]
    native = run_native(argv)
    assert native.status == 0 and native.stdout.startswith(b"in the jail\n/\n"), native
    assert_results_same(argv, native, run_hermipy(argv))


@pytest.mark.parametrize("variant", VARIANTS)
def test_aio(variant):
    """Linux native AIO through the raw calls: the ring in the caller's memory (libaio reads it), each operation,
    io_getevents' min_nr, timeouts and EINTR, io_pgetevents' mask (a signal it blocks runs its handler on the way
    out), IOCB_FLAG_RESFD, io_cancel, a fork child without the parent's contexts, and the errors of each call."""
    out = assert_same([build("aio", variant)], setup=empty_dir).stdout.decode()
    for fact in ("ring: magic 0xa10a10a1, header 32", "io_submit 3: 3", "read \"aio w\", preadv \"hel\" \"lo, \"",
                 "ring head == tail: yes", "io_getevents waiting, SIGALRM: -1 EINTR",
                 "io_submit pwrite on a read-only fd: -1 EBADF", "io_submit unknown aio_rw_flags: -1 EOPNOTSUPP",
                 "event data 17, iocb #0, res -14 EFAULT", "io_submit good, bad, good: 1", "eventfd count 1",
                 "alarms during it 1", "child: io_submit on the parent's context: -1 EINVAL",
                 "io_getevents after io_destroy: -1 EINVAL"):
        assert fact in out, fact


@pytest.mark.parametrize("variant", VARIANTS)
def test_openat2(variant):
    """openat2: struct open_how's size and flag checks, and each RESOLVE_* flag from a directory fd and the cwd,
    on files and symlinks of the test's own and on /proc/self magic links, as Linux answers."""
    out = assert_same([build("surface", variant), "openat2"], setup=empty_dir).stdout.decode()
    for fact in ("size 32, nonzero tail: -1 E2BIG", "RESOLVE_CACHED with O_CREAT: -1 EAGAIN",
                 "BENEATH up (a symlink out): -1 EXDEV", "IN_ROOT ../outside.txt: -1 ENOENT",
                 'IN_ROOT rooted (-> /f): ok "in d"', "/proc/self/fd/N, NO_MAGICLINKS: -1 ELOOP",
                 "/proc/self/comm, NO_XDEV: -1 EXDEV", "O_CREAT beneath: ok, mode 644", "O_CLOEXEC: F_GETFD 1"):
        assert fact in out, fact


def test_openat2_under_root_stays_inside(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside-marker").write_text("outside\n")
    shutil.copy(build("surface", "static"), root / "surface")
    proc = subprocess.run(hermipy_command("--root", str(root)) + ["/surface", "openat2-root"], capture_output=True,
                          cwd=root, timeout=TIMEOUT)
    lines = proc.stdout.decode().splitlines()
    assert lines[:5] == [
        "-- openat2-root", "/../outside-marker, NO_SYMLINKS: -1 ENOENT", "../outside-marker, NO_XDEV: -1 ENOENT",
        "esc, NO_MAGICLINKS: -1 ENOENT", "esc, IN_ROOT: -1 ENOENT"], proc
    assert lines[5].startswith('/surface, NO_XDEV: ok "\x7fELF'), proc      # the root's own files open


@pytest.mark.parametrize("variant", VARIANTS)
def test_process_vm(variant):
    """process_vm_readv/writev on the caller's own memory: iovecs split either side, a copy that stops at an
    unmapped page, and the checks in process_vm_rw()'s order."""
    out = assert_same([build("surface", variant), "process_vm"], setup=empty_dir).stdout.decode()
    for fact in ('read "remote"', '"rem" "ote bytes"', "readv across an unmapped page: 6",
                 "readv from an unmapped page: -1 EFAULT", "nothing to read, bad pid: 0", "no such pid: -1 ESRCH",
                 'dst now "written"'):
        assert fact in out, fact


@pytest.mark.parametrize("variant", VARIANTS)
def test_file_handles(variant):
    """name_to_handle_at/open_by_handle_at: EOVERFLOW with the size needed and the mount id written back, the
    handle of a path and of an fd alike, and (as root: CAP_DAC_READ_SEARCH) the file opened by its handle."""
    out = assert_same([build("surface", variant), "handles"], setup=empty_dir).stdout.decode()
    for fact in ("name_to_handle_at, size 0: -1 EOVERFLOW", "size needed written back: yes, mount id too: yes",
                 "size 129: -1 EINVAL", "the same handle and mount: yes"):
        assert fact in out, fact
    if os.geteuid() == 0:
        assert 'open_by_handle_at: read "handle data", cloexec 0' in out


def test_open_by_handle_under_root_is_refused(tmp_path):
    """Under --root a file handle could name any file of the file system: open_by_handle_at is EPERM."""
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(build("surface", "static"), root / "surface")
    proc = subprocess.run(hermipy_command("--root", str(root)) + ["/surface", "handles"], capture_output=True,
                          cwd=root, timeout=TIMEOUT)
    out = proc.stdout.decode()
    assert "name_to_handle_at hf: 0" in out and "open_by_handle_at: -1 EPERM" in out, proc


@pytest.mark.parametrize("variant", VARIANTS)
def test_utime_sync_ustat(variant):
    """utime/utimes/futimesat (microseconds checked, a NULL name is the fd), sync/syncfs/sync_file_range (their
    checks, a pipe ESPIPE, hermipy's /proc files), ustat, and restart_syscall called directly (EINTR)."""
    out = assert_same([build("surface", variant), "misc"], setup=empty_dir).stdout.decode()
    for fact in ("after utime: atime 1000000000.000000000 mtime 1100000000.000000000",
                 "after utimes: atime 1200000000.123456000 mtime 1300000000.654321000",
                 "utimes usec 1000000: -1 EINVAL", "dd after: atime 1200000000.123456000",
                 "sync_file_range on a pipe: -1 ESPIPE", "ustat of no file system: -1 EINVAL",
                 "restart_syscall: -1 EINTR"):
        assert fact in out, fact


@pytest.mark.parametrize("variant", VARIANTS)
def test_kcmp(variant):
    """kcmp: files, memory, fd table, fs and handlers of the caller, one of its threads and a fork child."""
    out = assert_same([build("surface", variant), "kcmp"], setup=empty_dir).stdout.decode()
    for fact in ("KCMP_FILE fd, its dup: same", "KCMP_FILE fd, another open: different", "KCMP_FILE a closed fd: -1 EBADF",
                 "KCMP_VM with a thread: same", "KCMP_VM with a fork child: different",
                 "KCMP_VM the child with itself: same", "bad type: -1 EINVAL", "no such pid: -1 ESRCH"):
        assert fact in out, fact


@pytest.mark.parametrize("variant", VARIANTS)
def test_numa_pages(variant):
    """move_pages (query and move to node 0), migrate_pages and set_mempolicy_home_node on the one node there is."""
    out = assert_same([build("surface", variant), "numa"], setup=empty_dir).stdout.decode()
    for fact in ("move_pages query: 0\n  status: node0 ENOENT EFAULT", "move_pages to node 1: -1 ENODEV",
                 "migrate_pages 0 -> 0: 0", "home node: -1 ENOENT", "home node, length 0: 0"):
        assert fact in out, fact


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
@pytest.mark.parametrize("variant", VARIANTS)
def test_admin_calls(variant):
    """reboot, kexec, swap, acct, modules, vhangup, iopl/ioperm, and the numbers Linux x86-64 leaves to
    sys_ni_syscall (testbins/admin.c): hermipy, run as root, answers as the host's Linux answers an unprivileged
    process (EPERM, EINVAL, 0 or ENOSYS, per call and per what the host's kernel is built with). The native run
    is made unprivileged with setpriv: as root it would act on the machine."""
    program = build("admin", variant)
    native = run_native(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", program])
    emulated = run_hermipy([program])
    assert native.status == 0 and b"reboot CAD_OFF: -1 (errno 1)" in native.stdout, native
    assert_results_same([program], native, emulated)
