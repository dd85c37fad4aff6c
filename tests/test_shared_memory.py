"""MAP_SHARED memory shared as Linux shares it (issue 12), differentially on each CPU backend:
testbins/shared_memory.c (anonymous, /dev/zero, file and memfd mappings across fork both ways, coherence with
read/write, SIGBUS past the end of the file, mremap, mprotect of a read-only file's mapping, msync, a futex
across processes, memfd seals), threads.c's process-shared mutex and named semaphore, and Debian's python3
with multiprocessing.shared_memory and multiprocessing.Queue (semaphores in /dev/shm, a feeder thread, pipes).

Runs use test_threads' watchdog harness: each has a timeout, and a hang fails with both outputs, the Python stack
of every hermipy thread and the end of the syscall trace.
"""
import os
import subprocess

import pytest

import difftest
from difftest import build
from test_threads import PYTHON, _c_variants, _require
from watchdog import assert_same

pytestmark = pytest.mark.usefixtures("hermipy_backend")


@pytest.mark.parametrize("variant", _c_variants())
def test_shared_memory(variant, tmp_path):
    native = assert_same([build("shared_memory", variant), tmp_path], tmp_path)
    out = native.stdout.decode()
    assert "anonymous: parent sees the child's write: 2" in out and "SIGBUS si_code 2" in out
    assert native.stdout.endswith(b"done\n")


MULTIPROCESSING = """
import multiprocessing as mp
from multiprocessing import shared_memory

def fill(name):
    block = shared_memory.SharedMemory(name=name)
    block.buf[:5] = b"child"
    block.close()

def produce(queue, lock, counter):
    for i in range(200):
        with lock:
            counter.value += 1
    queue.put(sum(range(1000)))

if __name__ == "__main__":
    mp.set_start_method("fork")
    block = shared_memory.SharedMemory(create=True, size=4096)
    p = mp.Process(target=fill, args=(block.name,))
    p.start(); p.join()
    print("shared_memory:", bytes(block.buf[:5]), "exit", p.exitcode)
    block.close(); block.unlink()
    queue, lock, counter = mp.Queue(), mp.Lock(), mp.Value("i", 0)
    workers = [mp.Process(target=produce, args=(queue, lock, counter)) for _ in range(2)]
    for w in workers: w.start()
    print("queue:", sorted(queue.get(timeout=30) for _ in workers))
    for w in workers: w.join()
    print("counter:", counter.value, "exits", [w.exitcode for w in workers])
"""


def test_python_multiprocessing(tmp_path):
    native = assert_same([_require(PYTHON, "python3"), "-c", MULTIPROCESSING], tmp_path)
    assert native.stdout == (b"shared_memory: b'child' exit 0\nqueue: [499500, 499500]\n"
                             b"counter: 400 exits [0, 0]\n")


def _watch(command, tmp_path) -> bytes:
    """Run ``shared_memory DIR watch``; once it says ready, write the watched file from this (host) process."""
    watched = tmp_path / "watched"
    watched.write_bytes(bytes(4096))
    proc = subprocess.Popen([*command, tmp_path, "watch"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        ready = proc.stdout.readline()
        assert ready == b"ready\n", f"{command}: expected ready, got {ready!r}"
        fd = os.open(watched, os.O_WRONLY)
        os.pwrite(fd, b"HOST", 0)
        os.close(fd)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    return ready + out


@pytest.mark.parametrize("variant", ["static"])
def test_host_writer_seen_through_mapping(variant, tmp_path):
    """A host process's write() reaches a guest's MAP_SHARED mapping of the file (the page cache is shared)."""
    binary = build("shared_memory", variant)
    native = _watch([binary], tmp_path)
    emulated = _watch(difftest.hermipy_command() + [binary], tmp_path)
    assert native == b"ready\nsaw HOST\n"
    assert emulated == native


SQLITE_WAL = """
cd "$(mktemp -d -p "$1")"
sqlite3 db 'PRAGMA journal_mode=WAL;' 'CREATE TABLE t(x);' >/dev/null
for w in 1 2; do
  (echo '.timeout 20000'; i=0; while [ $i -lt 40 ]; do echo "INSERT INTO t VALUES($w$i);"; i=$((i+1)); done) | sqlite3 db &
done
wait
sqlite3 db 'SELECT count(*), count(DISTINCT x) FROM t;' 'PRAGMA journal_mode;' 'PRAGMA integrity_check;'
"""


def test_sqlite_wal_two_writers(tmp_path):
    """Two sqlite3 processes writing one database in WAL mode: the -shm index is a MAP_SHARED mapping of both."""
    _require("/usr/bin/sqlite3", "sqlite3")
    native = assert_same(["/bin/sh", "-c", SQLITE_WAL, "sh", tmp_path], tmp_path)
    assert native.stdout == b"80|80\nwal\nok\n"
