"""System V IPC, differentially (testbins/sysv_ipc.c, one section per run, every variant, both backends): shared
memory between a parent and its children (the same pages, attach counts, a read-only attach written: SIGSEGV, fixed
and rounded addresses, SHM_REMAP, shmdt errors, a segment removed while attached, keys and a segment outliving its
creator), semaphores (SETALL/GETALL/SETVAL/GETVAL, IPC_NOWAIT, a semtimedop timeout, SEM_UNDO at a child's exit, a
waiter counted in GETNCNT and woken by another process, IPC_STAT/IPC_SET/IPC_INFO/SEM_INFO, errors), message queues
(types, MSG_EXCEPT, MSG_NOERROR and E2BIG, MSG_COPY, IPC_NOWAIT, a child waiting for a type, errors), blocking
calls interrupted by a handler with SA_RESTART (EINTR: never restarted), and two separately started runs sharing a
segment and a semaphore by key. Every object a run makes, it removes; every run has a timeout (tests/watchdog.py).
"""
import os
import subprocess
import sys

import pytest

import difftest
from difftest import VARIANTS, build
from watchdog import assert_same

pytestmark = pytest.mark.usefixtures("hermipy_backend")

# section -> a line its native run prints (so that a wrong-but-identical result cannot pass)
FACTS = {
    "shm": "child sees 'parent' and z, nattch 2",
    "sem": "after the child's exit: 3",
    "msg": "except 1: 18 type 3 'message of type 3'",
    "intr": "msgrcv with SA_RESTART: -1 EINTR, handler ran 2",
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("section", FACTS)
def test_sysv_ipc(section, variant, tmp_path):
    native = assert_same([build("sysv_ipc", variant), section], tmp_path)
    assert FACTS[section].encode() in native.stdout


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
