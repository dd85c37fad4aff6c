"""System V IPC, differentially (testbins/sysv_ipc.c, one section per run, every variant, both backends): shared
memory between a parent and its children (the same pages, attach counts, a read-only attach written: SIGSEGV, fixed
and rounded addresses, SHM_REMAP, shmdt errors, a segment removed while attached, keys and a segment outliving its
creator, SHM_STAT/SHM_STAT_ANY by index, an attach gone at exec), semaphores (SETALL/GETALL/SETVAL/GETVAL,
IPC_NOWAIT, a semtimedop timeout, SEM_UNDO at a child's exit, waiters counted in GETNCNT and GETZCNT and woken by
another process, IPC_STAT/IPC_SET/IPC_INFO/SEM_INFO/SEM_STAT/SEM_STAT_ANY, E2BIG, EFAULT and EINVAL in Linux's
order), message queues (types, MSG_EXCEPT, MSG_NOERROR and E2BIG, MSG_COPY, IPC_NOWAIT, a child waiting for a type,
MSG_STAT/MSG_INFO, a message lost to a bad buffer, errors), permissions without CAP_IPC_OWNER (mode bits: EACCES for
each kind of access, SETALL with alter permission only), blocking calls interrupted by a handler with SA_RESTART
(EINTR: never restarted; tests/test_interrupt.py 'ipc' has the rest), and two separately started runs sharing a
segment and a semaphore by key. Every object a run makes, it removes; every run has a timeout (tests/watchdog.py).
"""
import os
import shutil
import subprocess
import sys

import pytest

import difftest
from difftest import VARIANTS, build
from watchdog import assert_same

pytestmark = pytest.mark.usefixtures("hermipy_backend")

# section -> a line its native run prints (so that a wrong-but-identical result cannot pass)
FACTS = {
    "shm": ["child sees 'parent' and z, nattch 2", "after exec: nattch 1",
            "SHM_STAT finds it by index 1, SHM_STAT_ANY 1"],
    "sem": ["after the child's exit: 3", "GETZCNT 1 GETNCNT 0", "semop 501 operations: -1 E2BIG",
            "semtimedop bad timeout pointer, nsops 0: -1 EFAULT"],
    "msg": ["except 1: 18 type 3 'message of type 3'", "the message is gone: 1",
            "msgsnd past MSGMAX, text unreadable: -1 EINVAL", "MSG_STAT finds it by index 1, MSG_STAT_ANY 1"],
    "intr": ["msgrcv with SA_RESTART: -1 EINTR, handler ran 2"],
}
PERM_FACTS = ["shm mode 0400: shmat SHM_EXEC: -1 EACCES", "sem mode 0200: SETALL: ok",
              "sem mode 0400: SETALL bad pointer: -1 EACCES", "msg mode 0200: msgrcv: -1 EACCES"]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("section", FACTS)
def test_sysv_ipc(section, variant, tmp_path):
    native = assert_same([build("sysv_ipc", variant), section], tmp_path)
    for fact in FACTS[section]:
        assert fact.encode() in native.stdout, fact


@pytest.mark.parametrize("variant", VARIANTS)
def test_permissions(variant):
    """The mode bits decide as Linux checks them without CAP_IPC_OWNER: as root, setpriv drops it from the
    bounding set of the native run and of hermipy alike (the host checks hermipy's own capabilities)."""
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is needed to run as root without CAP_IPC_OWNER")
    drop = ["setpriv", "--bounding-set=-ipc_owner"] if os.geteuid() == 0 else []
    argv = [str(build("sysv_ipc", variant)), "perm"]
    native = subprocess.run(drop + argv, capture_output=True, timeout=60)
    emulated = subprocess.run(drop + difftest.hermipy_command() + argv, capture_output=True, timeout=60)
    assert (emulated.returncode, emulated.stdout.decode(), emulated.stderr.decode()) == \
        (native.returncode, native.stdout.decode(), native.stderr.decode())
    for fact in PERM_FACTS:
        assert fact.encode() in native.stdout, fact


def _pair(writer_argv, reader_argv) -> tuple[bytes, bytes]:
    """Start the writer, then the reader as a separate process; both must end within the timeout."""
    writer = subprocess.Popen(writer_argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    reader = subprocess.Popen(reader_argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out_r, _ = reader.communicate(timeout=60)
        out_w, _ = writer.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        writer.kill()
        reader.kill()
        pytest.fail(f"the two runs did not end: writer {writer.communicate()[0]!r}, reader {reader.communicate()[0]!r}")
    return out_w + bytes([writer.returncode]), out_r + bytes([reader.returncode])


def test_two_runs_share(tmp_path):
    """Two hermipy runs started separately meet in the host's IPC namespace, as two native processes do (and a
    hermipy run with a native one)."""
    binary = str(build("sysv_ipc", "static"))
    key = str(0x48000000 | os.getpid() & 0xFFFFFF)
    hermipy = difftest.hermipy_command()
    native = _pair([binary, "writer", key], [binary, "reader", key])
    assert b"writer: the reader answered ok, it wrote 'the reader's answer'" in native[0], native
    assert _pair(hermipy + [binary, "writer", key], hermipy + [binary, "reader", key]) == native
    assert _pair([binary, "writer", key], hermipy + [binary, "reader", key]) == native
    listing = subprocess.run(["ipcs"], capture_output=True, text=True).stdout if sys.platform == "linux" else ""
    assert hex(int(key))[2:] not in listing, listing


@pytest.mark.parametrize("name", ["shm", "sem", "msg"])
def test_proc_sysvipc(name):
    """/proc/sysvipc is the host's, confined or not (its header line: the rows are whatever the host has)."""
    argv = ["/bin/busybox", "head", "-1", f"/proc/sysvipc/{name}"]
    for options in ((), ("--root", "/")):
        difftest.assert_same(argv, options=options)
