"""Threads, differentially: testbins/threads.c (pthreads, /proc/self/task, per-thread affinity, a loopback server with
worker threads; one section per run, and every non-fatal section in one
run), testbins/threads_cpp.cc (std::thread, std::async, std::atomic, std::condition_variable, thread_local and
OpenMP, built here with g++ -static -fopenmp), and Debian's multi-threaded programs: python3's threading and
ThreadPoolExecutor, xz -T2, zstd -T2, pigz -p 2 and sort --parallel=2.

Every differential test runs on each CPU backend (the ``hermipy_backend`` fixture), through watchdog.py's runs: a
run that hangs fails within 60 s with all it printed so far, the Python stack of every hermipy thread and the end of
hermipy's syscall trace, which says what each guest thread was last doing. A failure while hermipy still warns
about unimplemented syscalls names them first.

``test_native_deterministic`` checks the native side alone: five runs of every program give the same output.
"""
import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from difftest import BUILD, TESTBINS, VARIANTS, build
from watchdog import _text, assert_same, run_native

# testbins/threads.c: the sections "all" runs, in its order ...
IN_ALL = ["create64", "mutex", "atomic", "condvar", "condvar_broadcast", "barrier", "rwlock", "tls", "detached",
          "cancel", "kill", "tid", "sigmask", "join_exit_value", "fork_thread", "robust", "proc", "affinity", "server",
          "waitv"]
# ... and those run only on their own, with their exit status: they end the process in a thread of their own
# (main_exit, exit_group, exec_thread) or share memory with a forked child (pshared, sem_open).
SEPARATE = {"main_exit": 0, "exit_group": 3, "exec_thread": 0, "pshared": 0, "sem_open": 0}

# a fact each section prints natively (checked so that a wrong-but-identical result cannot pass)
FACTS = {
    "create64": "create64: sum 6048", "mutex": "mutex: total 400000", "atomic": "fetch_add total 400000",
    "condvar": "consumed 10000 items, sum 50005000", "condvar_broadcast": "broadcast woke 5 of 5",
    "barrier": "barrier: ok", "rwlock": "final value 40000, readers saw a half-written value 0 times",
    "tls": "destructor calls 8, values sum 36", "detached": "detached: 16 completions",
    "cancel": "cond_wait: cleanup ran 10, joined PTHREAD_CANCELED, mutex released yes", "kill": "kill: ok",
    "tid": "tid: ok", "sigmask": "by the waiting thread 1", "join_exit_value": "pthread_exit 1234, return 5678",
    "fork_thread": "fork_thread: child: exited 7", "robust": "lock after the owner died EOWNERDEAD",
    "proc": "/proc/self/task lists 4 tasks, 4 of them ours", "affinity": "getaffinity(its tid) 0, 1 CPU(s)",
    "server": "sum of squares 6362, served 12",
    "waitv": "waitv: woken index 2, changed value EAGAIN, deadline ETIMEDOUT, no waiters EINVAL, u64 EINVAL, "
             "NULL vector EINVAL",
    "main_exit": "which computed 500500", "exit_group": "atexit handler ran", "exec_thread": "exec-ok",
    "pshared": "pshared: total 20000", "sem_open": "waited 3 posts from the child",
}

# C++ testbins: variant -> compiler command (the output and source are appended); musl has no C++ here.
CXX_VARIANTS = {
    "static": ["g++", "-static", "-O2", "-w", "-pthread", "-fopenmp"],
    "static-pie": ["g++", "-static-pie", "-fPIE", "-O2", "-w", "-pthread", "-fopenmp"],
}

differential = pytest.mark.usefixtures("hermipy_backend")     # once on every CPU backend


# ---------------------------------------------------------------- building

def build_cxx(name: str, variant: str) -> Path:
    """Compile testbins/<name>.cc into tests/.build/<variant>/ like difftest.build does for C: under the same kind
    of per-binary lock (pytest-xdist workers share the build), to a temporary name renamed into place."""
    if not shutil.which(CXX_VARIANTS[variant][0]):
        pytest.skip(f"{CXX_VARIANTS[variant][0]} is not installed (Debian package g++)")
    src = TESTBINS / f"{name}.cc"
    out = BUILD / variant / name
    stale = lambda: not out.exists() or out.stat().st_mtime < src.stat().st_mtime   # noqa: E731
    if not stale():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(BUILD / f".lock-{variant}-{name}", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stale():
            tmp = out.with_name(f".{name}.{os.getpid()}.tmp")
            proc = subprocess.run(CXX_VARIANTS[variant] + ["-o", str(tmp), str(src)], capture_output=True)
            if proc.returncode:
                raise RuntimeError(f"building {name} ({variant}) failed:\n{proc.stderr.decode(errors='replace')}")
            tmp.rename(out)
    return out


def build_go(name: str) -> Path:
    """Build testbins/<name>/main.go with the Go toolchain, statically (CGO_ENABLED=0: the runtime's own clone,
    futex and signal code, no libc), into tests/.build/go/<name>, under the same kind of lock as build_cxx."""
    if not shutil.which("go"):
        pytest.skip("go is not installed (Debian package golang-go)")
    src = TESTBINS / name / "main.go"
    out = BUILD / "go" / name
    stale = lambda: not out.exists() or out.stat().st_mtime < src.stat().st_mtime   # noqa: E731
    if not stale():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(BUILD / f".lock-go-{name}", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stale():
            tmp = out.with_name(f".{name}.{os.getpid()}.tmp")
            env = dict(os.environ, CGO_ENABLED="0", GOCACHE=str(BUILD / ".gocache"), HOME=str(BUILD),
                       GOFLAGS="-mod=mod", GO111MODULE="off")
            proc = subprocess.run(["go", "build", "-o", str(tmp), str(src)], capture_output=True, env=env)
            if proc.returncode:
                raise RuntimeError(f"building {name} (go) failed:\n{proc.stderr.decode(errors='replace')}")
            tmp.rename(out)
    return out


def _c_variants():
    return [v for v in VARIANTS if shutil.which(VARIANTS[v][0])]


# ---------------------------------------------------------------- testbins/threads.c

@differential
@pytest.mark.parametrize("variant", _c_variants())
@pytest.mark.parametrize("section", sorted(SEPARATE))
def test_threads_section(section, variant, tmp_path):
    native = assert_same([build("threads", variant), section], tmp_path)
    assert FACTS[section] in native.stdout.decode()
    assert native.status == SEPARATE.get(section, 0)


@differential
@pytest.mark.parametrize("variant", _c_variants() + ["dynamic"])
def test_threads_all(variant, tmp_path):
    """Every section of IN_ALL in one run (each prints its facts)."""
    native = assert_same([build("threads", variant)], tmp_path)
    assert native.status == 0 and native.stdout.endswith(b"\ndone\n")
    assert all(FACTS[section] in native.stdout.decode() for section in IN_ALL)


@differential
@pytest.mark.parametrize("variant", _c_variants())
def test_answers_while_threads_are_made(variant, tmp_path):
    """testbins/answers_race.c: two threads call getpid() and syscall(SYS_getpid) without pause while the main
    thread creates and joins 30 threads. Every answer is right (the answer page used to be written by a pass that
    cleared it first, and a reader in that window took 0 for its pid), and the run ends (on PVM, a TLB shootdown
    waited for such a reader's vCPU to stop anywhere but right after its `syscall`, where every kick found it).
    KVM only: on Unicorn a thread that never makes a call the kernel sees keeps its engine's turn for a whole
    time slice (unicorn_backend.TIME_SLICE, 1 s), and 30 thread starts take minutes."""
    import difftest
    if difftest.BACKEND == "unicorn":
        pytest.skip("Unicorn: a spinning thread keeps its engine's turn for a 1 s time slice")
    native = assert_same([build("answers_race", variant)], tmp_path, traced=False)     # (tracing answers in Python)
    assert native.stdout == b"wrong answers: 0\n"


# ---------------------------------------------------------------- testbins/clone_vm.c

CLONE_VM_FACTS = {
    "all": ["child: getpid differs from the parent's yes, getppid is the parent yes, gettid is getpid yes",
            "basic: exited 7", "basic: the child's write seen 42", "files shared: the child's fd is open in the "
            "parent: yes", "files copied: the child's fd is open in the parent: Bad file descriptor",
            "signals: after kill(SIGUSR1): exited 3", "killed: SIGCHLD si_code CLD_KILLED, si_status Terminated",
            "wclone: without __WCLONE: No child process", "wclone: with __WCLONE: exited 5",
            "cleartid: cleared and woken", "many: sum of statuses 36, shared total 36, then wait: No child process",
            "si_code CLD_EXITED yes, si_status 5, si_pid the child yes", "P_PID 0, si_code CLD_EXITED yes, si_pid the "
            "child yes, si_status 5", "with si_signo 0 si_pid 0 si_status 0"],
    "exec": ["exec-target: running, parent is there", "exec: exited 11", "exec: the child's write before its exec "
             "seen 9"],
}


@differential
@pytest.mark.parametrize("variant", _c_variants() + ["dynamic"])
@pytest.mark.parametrize("section", sorted(CLONE_VM_FACTS))
def test_clone_vm_process(section, variant, tmp_path):
    """clone with CLONE_VM but not CLONE_THREAD or CLONE_VFORK: shared memory, ids of its own, fd table and
    handlers shared or copied, kill from the parent, a fatal signal, __WCLONE, CLONE_CHILD_CLEARTID, eight at
    once, and execve (a host process of its own from then on)."""
    native = assert_same([build("clone_vm", variant), section], tmp_path)
    out = native.stdout.decode()
    assert native.status == 0 and out.endswith("done\n"), out
    for fact in CLONE_VM_FACTS[section]:
        assert fact in out, fact


# ---------------------------------------------------------------- testbins/threads_cpp.cc

@differential
@pytest.mark.parametrize("variant", CXX_VARIANTS)
def test_threads_cpp(variant, tmp_path):
    native = assert_same([build_cxx("threads_cpp", variant)], tmp_path)
    out = native.stdout.decode()
    for fact in ("8 ranges sum 320000400000", "std::promise: 42", "std::async exception: thrown in a thread",
                 "counter 400000", "consumed 3000 items", "thread_local: 1007 1007 1007 1007, main 100",
                 "openmp: 2 threads, reduction 499500000, dynamic schedule 499999500000"):
        assert fact in out, fact
    assert native.status == 0 and out.endswith("\ndone\n")


# ---------------------------------------------------------------- testbins/go: the Go runtime

@differential
def test_go_runtime(tmp_path):
    """A static Go program: goroutines on GOMAXPROCS(2) threads (clone without CLONE_SETTLS), channels, the GC,
    sync.Mutex and atomics, asynchronous preemption of a spinning goroutine (SIGURG by tgkill), tickers, os/signal
    and a net/http server answering its own client goroutines on loopback (epoll, non-blocking sockets)."""
    native = assert_same([build_go("goruntime")], tmp_path)
    out = native.stdout.decode()
    for fact in ("workers total 144158 procs 2", "mutex counter 80000 atomic 80000", "preempted spinning goroutine",
                 "ticks 5 elapsed>=70ms true", "signal user defined signal 1", "served 6"):
        assert fact in out, fact
    assert native.status == 0


# ---------------------------------------------------------------- Debian's programs

PYTHON = "/usr/bin/python3"        # Debian's, not a virtualenv's or pyenv's
PYTHON_THREADS = r"""
import threading, queue
from concurrent.futures import ThreadPoolExecutor

lock = threading.Lock()
counter = 0
def work(n):
    global counter
    for _ in range(2000):
        with lock:
            counter += 1
threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("threading: counter", counter, "alive after join", threading.active_count())

q = queue.Queue(maxsize=8)
got = []
def consume():
    while (item := q.get()) is not None:
        got.append(item)
c = threading.Thread(target=consume)
c.start()
for i in range(1000):
    q.put(i)
q.put(None)
c.join()
print("queue:", len(got), sum(got))

event, idents = threading.Event(), []
def waiter():
    event.wait()
    idents.append(threading.get_ident() != threading.main_thread().ident)
ws = [threading.Thread(target=waiter) for _ in range(3)]
for w in ws:
    w.start()
event.set()
for w in ws:
    w.join()
print("event woke", len(idents), "threads other than main:", all(idents))

with ThreadPoolExecutor(max_workers=4) as pool:
    print("executor map:", list(pool.map(lambda x: x * x, range(16))))
    print("executor sum:", sum(pool.map(lambda x: x * 3, range(1000))))
"""


def _require(program: str, package: str) -> str:
    path = shutil.which(program, path="/usr/bin:/bin")
    if path is None:
        pytest.skip(f"{program} is not installed (Debian package {package})")
    return path


def _data(size: int) -> bytes:
    """Deterministic text: numbered lines of words picked by a 64-bit LCG (compressible, not trivially)."""
    words = (b"alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau "
             b"upsilon phi chi psi omega").split()
    x, out, mask = 12345, bytearray(), 2**64 - 1
    while len(out) < size:
        picked = []
        for _ in range(7):
            x = (x * 6364136223846793005 + 1442695040888963407) & mask
            picked.append(x >> 33)
        out += b"%08d " % (picked[0] % 10**8) + b" ".join(words[p % len(words)] for p in picked[1:]) + b"\n"
    return bytes(out[:size])


# name -> (program, Debian package, arguments, input size); each reads stdin and writes stdout
PROGRAMS = {
    "xz": ("xz", "xz-utils", ["-T2", "--block-size=262144", "-c"], 2 << 20),
    "zstd": ("zstd", "zstd", ["-T2", "-B1MiB", "-c", "-q"], 2 << 20),
    "pigz": ("pigz", "pigz", ["-p", "2", "-n", "-c"], 2 << 20),
    # 157000 lines: over coreutils' 131072-line threshold for sorting with a second thread
    "sort": ("sort", "coreutils", ["--parallel=2", "-S", "64M"], 6 << 20),
}
C_LOCALE = {**os.environ, "LC_ALL": "C"}


@differential
def test_python_threading(tmp_path):
    python = _require(PYTHON, "python3")
    native = assert_same([python, "-c", PYTHON_THREADS], tmp_path)
    assert b"threading: counter 8000 alive after join 1" in native.stdout


@differential
@pytest.mark.parametrize("name", PROGRAMS)
def test_threaded_program(name, tmp_path):
    program, package, args, size = PROGRAMS[name]
    path = _require(program, package)
    data = _data(size)
    native = assert_same([path, *args], tmp_path, stdin=data, env=C_LOCALE)
    assert native.status == 0 and native.stdout
    if name == "sort":
        assert native.stdout == b"".join(line + b"\n" for line in sorted(data.splitlines()))   # sort(1) compares without the newline


# ---------------------------------------------------------------- the native side alone

def _native_cases():
    cases = []
    for variant in _c_variants():
        for section in [None] + IN_ALL + sorted(SEPARATE):
            cases.append(pytest.param(("threads", variant, section), id=f"threads-{variant}-{section or 'all'}"))
    for variant in CXX_VARIANTS:
        cases.append(pytest.param(("threads_cpp", variant, None), id=f"threads_cpp-{variant}"))
    cases.append(pytest.param(("python3", None, None), id="python3"))
    for name in PROGRAMS:
        cases.append(pytest.param((name, None, None), id=name))
    return cases


@pytest.mark.parametrize("case", _native_cases())
def test_native_deterministic(case):
    """Five native runs print the same: the programs do not depend on scheduling (else no comparison could hold)."""
    name, variant, section = case
    stdin, env = b"", None
    if name == "threads":
        argv = [build("threads", variant)] + ([section] if section else [])
    elif name == "threads_cpp":
        argv = [build_cxx("threads_cpp", variant)]
    elif name == "python3":
        argv = [_require(PYTHON, "python3"), "-c", PYTHON_THREADS]
    else:
        program, package, args, size = PROGRAMS[name]
        argv, stdin, env = [_require(program, package), *args], _data(size), C_LOCALE
    runs = [run_native(argv, stdin=stdin, env=env) for _ in range(5)]
    outcomes = {(r.status, r.stdout, r.stderr) for r in runs}
    assert len(outcomes) == 1, f"{argv[0]} {section or ''}: {len(outcomes)} different outcomes in 5 native runs:\n" + \
        "\n=====\n".join(f"status {s}\n{_text(o)}\n{_text(e)}" for s, o, e in outcomes)
    if name == "threads":
        expected = SEPARATE.get(section, 0) if section else 0
        assert runs[0].status == expected, _text(runs[0].stdout + runs[0].stderr)
