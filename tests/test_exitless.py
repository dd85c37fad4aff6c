"""KVM's exitless mode (``hermipy run --exitless``, issue 16): the guest posts file and socket syscalls in its
vCPU's mailbox and spins while the task's thread serves them, instead of an exit each.

Differential, as every mode: testbins and real programs under ``--exitless`` print what they print natively,
including what makes a served call finish at an exit (a signal it raises, SIGPIPE; a signal that interrupts it,
testbins/interrupt.c; a TLB flush, a process that times its CPU, which ends the mode). One test makes sure the
mailbox does serve (a count of served calls, from inside the process), one that a jump to the entry's new exits
is the SIGSEGV of a jump into hermipy's entry area, never a syscall.
"""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

import difftest
from difftest import VARIANTS, assert_same, build
from watchdog import assert_same as assert_same_watched
from test_isolation import _window_placements

def _kvm_reason() -> str | None:
    from hermipy.kvm_backend import kvm_unusable_reason
    return kvm_unusable_reason()


KVM_REASON = _kvm_reason()
pytestmark = pytest.mark.skipif(KVM_REASON is not None, reason=f"/dev/kvm is not usable here: {KVM_REASON}")
EXITLESS = ("--backend", "kvm", "--exitless")
BUSYBOX = "/usr/bin/busybox"


@pytest.fixture
def kvm_backend():
    difftest.BACKEND = "kvm"
    yield
    difftest.BACKEND = None


def _exitless_env() -> dict:
    return dict(os.environ, HERMIPY_EXITLESS="1")


# name -> argv maker: file and pipe I/O, sockets, SIGPIPE from a served write (compat), threads (one vCPU and one
# server each), the user window moving under threads that make syscalls (window_move), posting trampolines under
# signals, threads and forks (posting), and real programs (busybox's shell and tools, Debian's python3).
CASES = {
    "io": lambda variant: [build("io", variant)],
    "sockets": lambda variant: [build("sockets", variant)],
    "compat": lambda variant: [build("compat", variant)],
    "threads": lambda variant: [build("threads", variant)],
    "window_move": lambda variant: [build("window_move", variant), *_window_placements()],
    "posting": lambda variant: [build("posting", variant)],
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("case", CASES)
def test_same_as_native(case, variant):
    assert_same(CASES[case](variant), setup=difftest.empty_dir, options=EXITLESS)


def test_posting_dynamic():
    """Posting trampolines in glibc's libc.so.6 (a shared library's sites), with signals, threads and forks."""
    assert_same([build("posting", "dynamic")], options=EXITLESS)


@pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="busybox-static is not installed")
def test_busybox_pipeline(tmp_path):
    (tmp_path / "numbers").write_text("".join(f"{(i * 7919) % 1000}\n" for i in range(2000)))
    assert_same([BUSYBOX, "sh", "-c", "sort -n numbers | uniq -c | sort -rn | head -n 3; cat numbers | wc -l; "
                                      "for i in 1 2 3; do echo $i | cat; done"], cwd=tmp_path, options=EXITLESS)


@pytest.mark.skipif(not shutil.which("python3"), reason="python3 is not installed")
def test_affinity_is_the_guests(tmp_path):
    """A spinning server and its vCPU are pinned to a pair of cores (SpinSlots), never as the guest sees them: its
    own sched_getaffinity after many served calls (Debian's python3: file I/O, then os.sched_getaffinity; and a
    thread's, which clone gave the creator's mask), as natively."""
    script = ("import os, threading\nfor i in range(300):\n    open('f', 'w').write(str(i))\n"
              "print(sorted(os.sched_getaffinity(0)))\nout = []\n"
              "t = threading.Thread(target=lambda: out.append(sorted(os.sched_getaffinity(0))))\nt.start(); t.join()\n"
              "print(out[0], os.cpu_count())\n")
    assert_same(["/usr/bin/python3", "-c", script], cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
                options=EXITLESS)


PINNED_AFTER_SETUID = ("import os, time\nos.setgid(65534); os.setuid(65534)\nend = time.monotonic() + 3\n"
                      "with open('/dev/null', 'w') as null:\n    while time.monotonic() < end:\n"
                      "        for i in range(200):\n            null.write('x'); null.flush()\nprint('done')\n")


def _single_cores(pid: int) -> set[str]:
    """The cores of the process's threads that may run on one core only (proc(5) Cpus_allowed_list)."""
    single = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            status = open(f"/proc/{pid}/task/{tid}/status").read()
        except OSError:
            continue
        cores = status.split("Cpus_allowed_list:\t", 1)[1].split("\n", 1)[0]
        if "-" not in cores and "," not in cores:
            single.add(cores)
    return single


@pytest.mark.skipif(os.geteuid() != 0 or len(os.sched_getaffinity(0)) < 2 or not shutil.which("python3"),
                    reason="needs root (setuid), two cores and python3")
def test_pinned_after_setuid(tmp_path):
    """The spinning pair is pinned (PinnedPair) also once the task took the guest's credentials: nginx's workers run
    as nobody, and a nobody thread may not set the affinity of hermipy's vCPU thread (which kept root's), so the vCPU
    thread pins itself. Sampled from /proc while python3 in the guest, as nobody, makes served writes for 3 s: two
    threads each on a core of its own (before: neither, the pin failed with EPERM)."""
    proc = subprocess.Popen([sys.executable, "-m", "hermipy", "run", *EXITLESS, "/usr/bin/python3", "-c",
                             PINNED_AFTER_SETUID], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"})
    pinned = 0
    try:
        deadline = time.monotonic() + 2.5
        time.sleep(0.5)
        while time.monotonic() < deadline and proc.poll() is None:
            pinned += len(_single_cores(proc.pid)) == 2
            time.sleep(0.05)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert out == b"done\n", err.decode(errors="replace")
    assert pinned, "no sample had the server and the vCPU thread each on a core of its own"


def test_slot_of_a_killed_process_comes_back():
    """SpinSlots: a slot is one process's, and one thread's in it, at a time; a process killed outright while it
    holds one does not take it along (the host drops its record lock). Before, the slots were a pipe's bytes: a
    SIGKILLed holder's byte was gone for the rest of the run, and on 2 cores the run's only slot with it; and a fork
    child that closed its copy of another thread's spinning vCPU wrote that thread's byte back (one slot more)."""
    from hermipy.kvm_backend import SpinSlots
    slots = SpinSlots(1)
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(ready_w, b"held" if slots.take() == 0 else b"none")
            time.sleep(60)
        finally:
            os._exit(0)
    try:
        assert os.read(ready_r, 4) == b"held"
        assert slots.take() is None                 # the child's meanwhile
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(ready_r)
        os.close(ready_w)
    assert slots.take() == 0                        # back after the SIGKILL
    assert slots.take() is None                     # this thread holds it now: not twice
    pid = os.fork()                                 # a fork child holds none of its parent's slots (nor takes one)
    if pid == 0:
        os._exit(0 if not slots.holds(0) and slots.take() is None else 1)
    assert os.waitpid(pid, 0)[1] == 0
    assert slots.holds(0)
    slots.give_back(0)
    assert slots.take() == 0
    slots.give_back(0)


class _Clocks:
    """A stand-in for kvm_backend._WaitClocks: waits (server, vCPU) in ns as the test sets them."""

    def __init__(self):
        self.pid, self.due, self.since, self.last, self.now = os.getpid(), 0, 0, (0, 0), (0, 0)

    def waited(self):
        return self.now


class _Runner:
    affinity = None


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
def test_pair_swaps_when_the_vcpu_waits():
    """PinnedPair.look (after CHECK_EVERY served calls): the vCPU, if it waited on its run queue longer than the server
    (another process shares its core), swaps cores with the server; not when the server waited the longer, nor for
    a wait under a twentieth of the time."""
    from hermipy.kvm_backend import PinnedPair, _vcpu_core
    allowed = os.sched_getaffinity(0)
    clocks, runner = _Clocks(), _Runner()
    slot = 99                                   # a slot of the test's own (its orientation is remembered)
    try:
        pair = PinnedPair.pin(slot, runner, clocks)
        first, second = pair.cores
        assert os.sched_getaffinity(0) == {first} and runner.affinity == {second}

        def look(server_ms: int, vcpu_ms: int):
            clocks.since = time.monotonic_ns() - 100_000_000            # the last look: 100 ms ago
            clocks.now = (clocks.last[0] + server_ms * 10**6, clocks.last[1] + vcpu_ms * 10**6)
            assert pair.look() == PinnedPair.CHECK_EVERY

        look(40, 1)                             # the server waited (ab on its core): as it should be
        assert pair.cores == (first, second)
        look(0, 3)                              # the vCPU waited, but only 3% of the time
        assert pair.cores == (first, second)
        look(2, 40)                             # the vCPU waited 40%: swap
        assert pair.cores == (second, first)
        assert os.sched_getaffinity(0) == {second} and runner.affinity == {first}
        assert _vcpu_core[slot] == 0            # the next pinning of the slot starts the swapped way
        pair.unpin()
        assert os.sched_getaffinity(0) == allowed and runner.affinity == allowed
        again = PinnedPair.pin(slot, runner, clocks)
        assert again.cores == (second, first)
        again.unpin()
    finally:
        os.sched_setaffinity(0, allowed)
        _vcpu_core.pop(slot, None)


@pytest.mark.skipif(not shutil.which("python3"), reason="python3 is not installed")
def test_python3(tmp_path):
    script = ("import os, json\nfor i in range(200):\n    open(f'f{i}', 'w').write(json.dumps({'i': i}))\n"
              "print(sum(json.load(open(f'f{i}'))['i'] for i in range(200)), len(os.listdir('.')))\n")
    assert_same(["/usr/bin/python3", "-c", script], cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
                options=EXITLESS)


@pytest.mark.usefixtures("kvm_backend")
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("section", ["pipe", "socket", "futex", "poll", "nohandler"])
def test_interrupted_served_calls(section, variant, tmp_path):
    """A signal that interrupts a served call (blocked in read, recv, accept, a futex, epoll_wait) restarts it or
    fails it with EINTR as natively: the call runs again at the usual exit, where the signal is delivered."""
    assert_same_watched([build("interrupt", variant), section], tmp_path, env=_exitless_env())


@pytest.mark.usefixtures("kvm_backend")
@pytest.mark.parametrize("section", ["posix_clocks", "getitimer"])
def test_cpu_time_ends_exitless(section, tmp_path):
    """A process that reads or times its CPU time runs on without exitless mode (its CPU clocks would otherwise
    count the server's spinning, not the guest's computing): CPU-clock timers fire, itimers run down as natively."""
    assert_same_watched([build("timers", "static"), section], tmp_path, env=_exitless_env())


SERVED_COUNT = """
import atexit, os, sys
import hermipy.kvm_backend as kvm
import hermipy.rewriter.trampoline as trampoline
served, posting = [0], [0]
serve, patch_post = kvm.KvmCpu._serve_posted, trampoline.Trampolines.patch_post
def counted(self, *args):
    served[0] += 1
    return serve(self, *args)
def counted_post(self, site):
    made = patch_post(self, site)
    posting[0] += made
    return made
kvm.KvmCpu._serve_posted = counted
trampoline.Trampolines.patch_post = counted_post
atexit.register(lambda: os.write(2, f"posting {posting[0]} served {served[0]}\\n".encode()))
from hermipy.cli import main
sys.exit(main(["run", "--backend", "kvm", "--exitless", *sys.argv[1:]]))
"""


def test_mailbox_serves(tmp_path):
    """Under --exitless most of a syscall-heavy program's calls are served from the mailbox: counted from inside
    hermipy (testbins/io.c makes ~300 calls, most of them reads and writes), and glibc's read and write sites get
    posting trampolines (rewriter/trampoline.py), which enter the mailbox without a `syscall`."""
    argv = [str(build("io", "static"))]
    (tmp_path / "native").mkdir()
    (tmp_path / "hermipy").mkdir()
    native = difftest.run_native(argv, cwd=tmp_path / "native")
    proc = subprocess.run([sys.executable, "-c", SERVED_COUNT, *argv], cwd=tmp_path / "hermipy", capture_output=True,
                          timeout=difftest.TIMEOUT)
    assert proc.stdout == native.stdout and proc.returncode == native.status
    served = int(proc.stderr.rsplit(b"served ", 1)[1])
    assert served >= 100, proc.stderr.decode(errors="replace")
    posting = int(proc.stderr.rsplit(b"posting ", 1)[1].split()[0])
    assert posting >= 2, proc.stderr.decode(errors="replace")      # at least glibc's read and write


LONGEST_SERVED = """
import atexit, os, sys, time
from hermipy.syscalls.table import Dispatcher
longest = [0.0, None]
serve = Dispatcher.serve_exitless
def timed(self, nr, *args):
    started = time.perf_counter()
    try:
        return serve(self, nr, *args)
    finally:
        took = time.perf_counter() - started
        if took > longest[0]:
            longest[:] = [took, nr]
Dispatcher.serve_exitless = timed
atexit.register(lambda: os.write(2, f"longest {longest[0]:.6f} nr {longest[1]}\\n".encode()))
from hermipy.cli import main
sys.exit(main(["run", "--backend", "kvm", "--exitless", *sys.argv[1:]]))
"""


@pytest.mark.parametrize("variant", VARIANTS)
def test_waits_sleep_in_exits(variant, tmp_path):
    """A served call that would wait (a blocking read, recv or accept, an epoll_wait with a timeout; testbins/waits.c,
    each made ready 200 ms later by a child) goes to an exit and waits there: the server never waits while the guest
    spins in its entry (a core burnt, and the guest's back-off from the mode). Output as natively."""
    argv = [str(build("waits", variant))]
    native = difftest.run_native(argv, cwd=tmp_path)
    proc = subprocess.run([sys.executable, "-c", LONGEST_SERVED, *argv], cwd=tmp_path, capture_output=True,
                          timeout=difftest.TIMEOUT)
    assert (proc.stdout, proc.returncode) == (native.stdout, native.status), proc.stderr.decode(errors="replace")
    longest = max(float(part.split()[0]) for part in proc.stderr.split(b"longest ")[1:])   # each process's
    assert longest < 0.1, proc.stderr.decode(errors="replace")     # each wait is 200 ms


def _labels() -> dict[str, int]:
    from hermipy import kvm_stubs
    (source, base), _kernel = kvm_stubs.stub_sources()
    return kvm_stubs.assemble(source, base)[1]


@pytest.mark.parametrize("label", ["exitless", "exitless_spin", "exitless_waited", "exitless_exit",
                                   "exitless_check_return"])
def test_jump_into_the_exitless_entry(label):
    """A jump to the exitless part of vCPU 0's LSTAR entry (which runs at CPL3 on PVM) never acts as a syscall nor
    hangs: it ends in the SIGSEGV of a jump into hermipy's entry area (where, natively, nothing is mapped). Its
    address may be the entry's, where the backend stops the jump, not the target (testbins/isolation.c insns)."""
    argv = [build("isolation", "static"), "insns", f"jump_to={_labels()[label]:x}"]
    native = difftest.run_native(argv)
    emulated = difftest.run_hermipy(argv, options=EXITLESS)
    assert native.stdout.startswith(b"jump_to=") and b": signal 11 code 1 " in native.stdout
    assert b": signal 11 code 1 " in emulated.stdout, emulated
    assert (emulated.status, emulated.stderr) == (native.status, native.stderr)
