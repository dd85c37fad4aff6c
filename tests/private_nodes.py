"""Run a program against private copies of the host's /dev and /proc files (tests/test_isolation.py, issue 13).

Started by the test as ``unshare -m --propagation private python3 private_nodes.py MODE PROGRAM [HERMIPY...]``:
in its own mount namespace it replaces /dev/null, zero, full, random, urandom, tty (character devices made on a
tmpfs) and /proc/cpuinfo, meminfo, version, uptime, loadavg, stat, filesystems (their contents, as files on the
tmpfs) by bind mounts of copies, so what the program does to "the host's" files lands on the copies, never on
the machine's own. MODE:

- ``native``: PROGRAM runs chrooted in a tmpfs root whose /dev holds read-only bind mounts of those files and
  whose /proc is a procfs with read-only bind mounts over them: Linux's own answers for such a container;
- ``root`` / ``root-with-dev``: the command after PROGRAM (hermipy run ...) gets ``--root DIR /PROGRAM``, DIR
  holding the program and /tmp (and an empty /dev).

Prints one JSON object: the program's status, stdout and stderr, and each copy's metadata before and after.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9), "tty": (5, 0)}
PROC_FILES = ("cpuinfo", "meminfo", "version", "uptime", "loadavg", "stat", "filesystems")
NODES = [f"/dev/{n}" for n in DEVICES] + [f"/proc/{n}" for n in PROC_FILES]


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def bind(source: str, target: str, read_only: bool) -> None:
    mount("--bind", source, target)
    if read_only:
        mount("-o", "remount,bind,ro", target)


def snapshot(copies: str) -> dict:
    """What a change to a node would show: mode, owner, links, times (not atime: reads set it), attributes."""
    out = {}
    for name in sorted(os.listdir(copies)):
        st = os.stat(os.path.join(copies, name), follow_symlinks=False)
        out[name] = [st.st_mode, st.st_uid, st.st_gid, st.st_nlink, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                     sorted(os.listxattr(os.path.join(copies, name), follow_symlinks=False))]
    return out


def private_copies(base: str) -> str:
    copies = os.path.join(base, "nodes")
    os.mkdir(copies)
    mount("-t", "tmpfs", "hermipy-nodes", copies)
    for name, (major, minor) in DEVICES.items():
        os.mknod(os.path.join(copies, name), 0o20666, os.makedev(major, minor))
        os.chmod(os.path.join(copies, name), 0o666)
    for name in PROC_FILES:
        with open(f"/proc/{name}", "rb") as src, open(os.path.join(copies, name), "wb") as dst:
            dst.write(src.read())
        os.chmod(os.path.join(copies, name), 0o444)
    for name in DEVICES:
        bind(os.path.join(copies, name), f"/dev/{name}", False)
    for name in PROC_FILES:
        bind(os.path.join(copies, name), f"/proc/{name}", False)
    copies_dev = os.stat(copies).st_dev
    for node in NODES:
        if os.stat(node).st_dev != copies_dev:
            raise SystemExit(f"{node} is not the private copy: refusing to run")
    return copies


def native_root(base: str, program: str) -> str:
    root = os.path.join(base, "native-root")
    os.mkdir(root)
    mount("-t", "tmpfs", "hermipy-native-root", root)
    for directory in ("dev", "proc", "tmp"):
        os.mkdir(os.path.join(root, directory))
    shutil.copy(program, os.path.join(root, "prog"))
    mount("-t", "proc", "proc", os.path.join(root, "proc"))
    for node in NODES:
        target = root + node
        if node.startswith("/dev/"):
            open(target, "w").close()
        bind(node, target, True)
    return root


def main() -> None:
    mode, program, *command = sys.argv[1:]
    base = tempfile.mkdtemp(prefix="hermipy-isolation.")      # everything made here, removed at the end
    try:
        copies = private_copies(base)
        before = snapshot(copies)
        if mode == "native":
            argv = ["chroot", native_root(base, program), "/prog"]
        else:
            root = os.path.join(base, "root")
            os.makedirs(os.path.join(root, "tmp"))
            if mode == "root-with-dev":
                os.mkdir(os.path.join(root, "dev"))
            shutil.copy(program, os.path.join(root, "prog"))
            argv = [*command, "--root", root, "/prog"]
        proc = subprocess.run(argv, capture_output=True, timeout=120, start_new_session=True)
        json.dump({"status": proc.returncode, "stdout": proc.stdout.decode(errors="replace"),
                   "stderr": proc.stderr.decode(errors="replace"), "before": before, "after": snapshot(copies)},
                  sys.stdout)
    finally:
        for mounted in ("native-root", "nodes"):             # (this mount namespace's only: detached here)
            if os.path.ismount(os.path.join(base, mounted)):
                subprocess.run(["umount", "-R", "-l", os.path.join(base, mounted)], check=False)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
