"""File-system syscalls and the guest's view of the file system (syscalls/sys_fs.py, vfs.py, procfs.py).

Differential: testbins/fileops.c, dirs.c and statfields.c and busybox applets run natively and under
hermipy, each in a fresh temp directory; tools that change the tree are compared by the tree they leave.
Confinement (``--root``) is checked against the expected output, since there is nothing native to compare.

A difference on a run where hermipy warned about unimplemented syscalls of *another* area xfails with
their names; a missing syscall of this area, or a difference without such a warning, fails.
"""
import os
import re
import shutil
import stat
from pathlib import Path

import pytest

from difftest import (VARIANTS, Result, assert_results_same, build, reported_missing, run_both, run_hermipy,
                      run_native)

pytestmark = pytest.mark.usefixtures("hermipy_backend")     # each test on every CPU backend

BUSYBOX = "/usr/bin/busybox"
ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "TZ": "UTC", "HOME": "/nonexistent"}
OWN_AREA = {"open", "openat", "creat", "stat", "fstat", "lstat", "newfstatat", "statx", "access", "faccessat",
            "faccessat2", "getdents64", "getdents", "readlink", "readlinkat", "getcwd", "chdir", "fchdir",
            "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat", "renameat2", "link",
            "linkat", "symlink", "symlinkat", "chmod", "fchmod", "fchmodat", "chown", "fchown", "lchown",
            "fchownat", "umask", "truncate", "ftruncate", "fsync", "fdatasync", "utimensat", "statfs", "fstatfs",
            "mknod", "mknodat"}
FIXED_TIME = 1_000_000_000
WARNING = re.compile(rb"hermipy: warning: syscall (\w+) \(\d+\) is not implemented")
needs_busybox = pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="busybox-static is not installed")


def check(native, emulated, argv):
    """Identical results; while other areas' syscalls are missing, their warning lines are set aside
    (the rest must still match exactly), and a remaining difference xfails naming them."""
    others = sorted(set(reported_missing(emulated.stderr)) - OWN_AREA)
    if others:
        kept = b"".join(line for line in emulated.stderr.splitlines(keepends=True)
                        if not WARNING.match(line))
        emulated = Result(emulated.status, emulated.stdout, kept)
    try:
        return assert_results_same(argv, native, emulated)
    except AssertionError:
        if others:
            pytest.xfail(f"needs {', '.join(others)} (another area, not implemented yet)")
        raise


def same(argv, setup=lambda d: None, stdin=b"", options=()):
    native, emulated = run_both([str(a) for a in argv], stdin=stdin, env=ENV, setup=setup, options=options)
    return check(native, emulated, argv)


def tree(d: str) -> None:
    """The same small tree for both runs, with fixed mtimes."""
    p = Path(d)
    (p / "notes.txt").write_text("alpha\nbeta\ngamma\n")
    (p / "data.bin").write_bytes(bytes(range(256)) * 40)
    (p / "empty").write_text("")
    (p / "sub" / "deeper").mkdir(parents=True)
    (p / "sub" / "a.txt").write_text("a\n" * 100)
    (p / "sub" / "deeper" / "b.txt").write_text("b" * 9000)
    os.chmod(p / "notes.txt", 0o640)
    os.chmod(p / "sub" / "deeper", 0o750)
    os.symlink("notes.txt", p / "link")
    os.symlink("sub/deeper", p / "dirlink")
    os.symlink("nowhere", p / "dangling")
    for path in sorted(p.rglob("*"), reverse=True):
        os.utime(path, (FIXED_TIME, FIXED_TIME), follow_symlinks=False)
    os.utime(p, (FIXED_TIME, FIXED_TIME))


def snapshot(d: str) -> list:
    """Everything a file-changing tool leaves behind: names, types, modes, sizes, contents, link targets."""
    out = []
    for root, dirs, files in os.walk(d):
        dirs.sort()
        for name in sorted(dirs + files):
            path = os.path.join(root, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, d)
            if stat.S_ISLNK(st.st_mode):
                out.append((rel, "link", os.readlink(path)))
            elif stat.S_ISDIR(st.st_mode):
                out.append((rel, "dir", oct(st.st_mode & 0o7777)))
            else:
                out.append((rel, "file", oct(st.st_mode & 0o7777), st.st_nlink, Path(path).read_bytes()))
    return out


# -- testbins -----------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("name", ["fileops", "dirs", "statfields"])
def test_testbin(name, variant):
    if variant == "musl" and not shutil.which("musl-gcc"):
        pytest.skip("musl-gcc is not installed")
    same([build(name, variant)], stdin=b"")


# -- busybox, read-only --------------------------------------------------------------------------
BUSYBOX_CASES = [
    ("ls", "-l"), ("ls", "-la", "sub"), ("ls", "-lR"), ("ls", "-1a", "."), ("ls", "-lL", "link", "dirlink"),
    ("ls", "missing"), ("ls", "-ld", "/", "/dev/null"),
    ("find", "."), ("find", ".", "-type", "f"), ("find", "-L", ".", "-name", "*.txt"), ("find", "sub", "-newer", "x"),
    ("stat", "-c", "%n %s %F %a %h", "notes.txt", "sub", "link", "empty", "dangling", "/dev/null"),
    ("stat", "-L", "-c", "%n %s %F %a", "link", "dirlink"),
    ("stat", "-f", "-c", "%T %l", "."),
    ("du", "-s", "."), ("du", "-a", "sub"), ("du", "-sL", "dirlink"),
    ("readlink", "link"), ("readlink", "-f", "dirlink/b.txt"), ("realpath", "dirlink/../a.txt"),
    ("pwd",), ("test", "-d", "sub"), ("cat", "link"), ("wc", "-c", "data.bin", "sub/deeper/b.txt"),
    ("md5sum", "data.bin"), ("head", "-c", "10", "/dev/zero"), ("stat", "-c", "%N", "/dev/stdin", "/dev/fd"),
]


@needs_busybox
@pytest.mark.parametrize("args", BUSYBOX_CASES, ids=lambda a: " ".join(a))
def test_busybox_read(args):
    same([BUSYBOX, *args], setup=tree)


# -- busybox, changing the tree -----------------------------------------------------------------
MUTATIONS = {
    "cp": [("cp", "notes.txt", "copy.txt"), ("cp", "-r", "sub", "sub2"), ("cp", "-a", "link", "link2"),
           ("cp", "-p", "data.bin", "sub2/"), ("cp", "missing", "x")],
    "mv": [("mv", "notes.txt", "moved.txt"), ("mv", "sub", "renamed"), ("mv", "moved.txt", "renamed/"),
           ("mv", "missing", "x"), ("mv", "empty", "renamed/deeper/empty2")],
    "rm": [("rm", "notes.txt"), ("rm", "-r", "sub"), ("rm", "link", "dangling"), ("rm", "missing"),
           ("rm", "dirlink/")],
    "mkdir": [("mkdir", "new"), ("mkdir", "-p", "a/b/c"), ("mkdir", "new"), ("mkdir", "-m", "700", "priv"),
              ("rmdir", "a/b/c"), ("rmdir", "sub")],
    "links": [("ln", "notes.txt", "hard"), ("ln", "-s", "sub/a.txt", "soft"), ("ln", "-sf", "empty", "link"),
              ("ln", "notes.txt", "hard")],
    "attrs": [("chmod", "600", "notes.txt"), ("chmod", "-R", "go-rwx", "sub"), ("touch", "-d", "2001-01-01", "t"),
              ("truncate", "-s", "100", "data.bin"), ("chmod", "755", "missing")],
}


@needs_busybox
@pytest.mark.parametrize("name", list(MUTATIONS))
def test_busybox_mutates(name, tmp_path):
    trees = []
    for run in (run_native, run_hermipy):
        d = tmp_path / run.__name__
        d.mkdir()
        tree(str(d))
        results = [run([BUSYBOX, *args], cwd=d, env=ENV) for args in MUTATIONS[name]]
        trees.append((results, snapshot(str(d))))
    (native_results, native_tree), (emulated_results, emulated_tree) = trees
    for args, native, emulated in zip(MUTATIONS[name], native_results, emulated_results):
        check(native, emulated, args)
    assert emulated_tree == native_tree


@needs_busybox
def test_proc_self_maps_has_stack():
    result = run_hermipy([BUSYBOX, "cat", "/proc/self/maps"], env=ENV)
    text = result.stdout.decode()
    assert result.status == 0, result.stderr
    assert "[stack]" in text and BUSYBOX in text
    first = next(line for line in text.splitlines() if line.endswith(BUSYBOX))   # (a [hermipy-trampolines]
    assert first[73:] == BUSYBOX and first[8] == "-"       # page may come first) Linux's layout: name at column 73


# -- --root confinement -------------------------------------------------------------------------
@pytest.fixture
def jail(tmp_path):
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "home").mkdir()
    try:
        os.link(BUSYBOX, root / "bin" / "busybox")
    except OSError:
        shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    (root / "etc" / "passwd").write_text("jailed:x:0:0:inside:/:/bin/sh\n")
    os.symlink("/etc/passwd", root / "abs_escape")
    os.symlink("../../../../../../../etc/passwd", root / "home" / "rel_escape")
    os.symlink("../../../../../../../etc/hostname", root / "home" / "to_missing")
    os.symlink("/", root / "home" / "rootlink")
    (tmp_path / "outside.txt").write_text("SECRET\n")
    return root


def run_jailed(root, *args, cwd=None):
    return run_hermipy(["/bin/busybox", *args], env=ENV, options=("--root", str(root)), cwd=cwd)


@needs_busybox
@pytest.mark.parametrize("path", ["/etc/passwd", "abs_escape", "/home/rel_escape", "../../../../etc/passwd",
                                  "/home/rootlink/../../etc/passwd", "/proc/self/root/etc/passwd",
                                  "/proc/self/cwd/../etc/passwd"])
def test_root_confines_paths(jail, path):
    result = run_jailed(jail, "cat", path)
    assert (result.status, result.stdout) == (0, b"jailed:x:0:0:inside:/:/bin/sh\n"), result.stderr


@needs_busybox
def test_root_hides_outside(jail):
    result = run_jailed(jail, "cat", "/home/to_missing", "../outside.txt", "/../outside.txt")
    assert result.status == 1
    assert b"SECRET" not in result.stdout
    assert result.stderr.count(b"No such file or directory") == 3, result.stderr
    listing = run_jailed(jail, "ls", "/", "/..")
    assert listing.stdout.split() == [b"/:", b"abs_escape", b"bin", b"etc", b"home",
                                      b"/..:", b"abs_escape", b"bin", b"etc", b"home"], listing.stdout


@needs_busybox
def test_root_keeps_proc_and_devices(jail):
    result = run_jailed(jail, "cat", "/proc/self/maps")
    assert result.status == 0 and b"[stack]" in result.stdout and b"/bin/busybox" in result.stdout
    assert b"root/bin/busybox" not in result.stdout            # names are the guest's
    for link, target in (("/proc/self/exe", b"/bin/busybox\n"), ("/proc/self/cwd", b"/\n"),
                         ("/dev/stdin", b"/proc/self/fd/0\n")):
        assert run_jailed(jail, "readlink", link).stdout == target, link
    result = run_jailed(jail, "head", "-c", "4", "/dev/zero")
    assert (result.status, result.stdout) == (0, b"\0" * 4), result.stderr
    result = run_jailed(jail, "ls", "/dev")
    assert set(result.stdout.split()) >= {b"null", b"zero", b"urandom", b"stdin", b"fd"}, result.stdout


@needs_busybox
def test_root_writes_stay_inside(jail, tmp_path):
    for args in (("mkdir", "/home/new"), ("ln", "-s", "/etc/passwd", "/home/new/l"), ("cp", "/etc/passwd", "/home/new/p"),
                 ("mv", "/home/new/p", "/home/new/q"), ("touch", "/home/rel_escape2"),
                 ("sh", "-c", "echo hi > /home/rootlink/../../made")):
        run_jailed(jail, *args)
    assert (jail / "home" / "new" / "q").read_text() == "jailed:x:0:0:inside:/:/bin/sh\n"
    assert os.readlink(jail / "home" / "new" / "l") == "/etc/passwd"
    assert sorted(os.listdir(tmp_path)) == ["outside.txt", "root"]
