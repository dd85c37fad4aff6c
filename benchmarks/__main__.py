"""hermipy's benchmark harness: every workload under every runner, side by side, ratios to native in one run.

    python -m benchmarks [--quick] [--json FILE] [--markdown FILE] [--chart FILE] [--only NAME,...]
                         [--runners NAME,...] [--runs N] [--timeout S] [--no-install]

Each (workload, runner) cell gets a warm-up run and then N timed runs (default 5; 3 with --quick), in rounds that
run every runner once in turn (a drift of the machine hits all runners alike). A run is the
whole process: wall time from spawn to reap, peak RSS of the child from wait4(2). Its stdout goes to a file and
must match native's byte for byte, and its exit status must be 0, or the cell is "failed: reason". A runner
that is not available here is "n/a". The per-syscall cost: the loop of N calls times itself (clock_gettime)
and that time / N is reported, with (median wall of N calls - median wall of 0 calls) / N as a cross-check.
The Markdown report starts with the speed goals of issues 2-11, each checked against this run. Thread workloads
time their own loops (ping-pong round trip, mutex increment); signal workloads report the latency from a timer's
expiry or another process's kill() to the handler (median, and the worst run's p99).

Runners: native; hermipy-<backend> for each backend `hermipy info` lists, plus hermipy-<backend>-norewrite
when `hermipy run` has --no-rewrite (hermipy as a user installs it: `pip install .` of this tree into the
harness' venv benchmarks/.venv-hermipy, refreshed on every run); qemu-user (qemu-x86_64); qiling (pip `qiling`
in the harness' own virtual environment benchmarks/.venv, installed on first use, run through
benchmarks/qiling_runner.py). Mixed-CPU goals are judged on the compute ratio, (cpu_mixed x8 - x1) against
native's, since start-up has goals of its own; the whole-process ratio is shown beside it.

`trip` (in --only, and part of a full run): the syscall trip profile of each hermipy backend (benchmarks/trip.py:
the bare guest -> Python kernel -> guest trip and where a read/write's time goes above it), run in place from this
tree since it instruments hermipy's internals; its section and the issue-16 goals go into the report.
"""
import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BUILD = HERE / ".build"
VENV = HERE / ".venv"
HERMIPY_VENV = HERE / ".venv-hermipy"
VENV_PACKAGES = ["qiling", "matplotlib"]
QEMU = "qemu-x86_64"
PYTHON3 = "/usr/bin/python3"        # Debian's, dynamic (the harness' own interpreter may be a shim script)
SQLITE3 = "/usr/bin/sqlite3"
BUSYBOX = "/bin/busybox"
SOURCES = {"hello": ROOT / "testbins" / "hello.c", "cpu_mixed": ROOT / "testbins" / "cpu_mixed.c",
           "int_loop": HERE / "src" / "int_loop.c", "syscall_cost": HERE / "src" / "syscall_cost.c",
           "file_io": HERE / "src" / "file_io.c", "malloc_list": HERE / "src" / "malloc_list.c",
           "spawn": HERE / "src" / "spawn.c", "threads": HERE / "src" / "threads.c",
           "signals": HERE / "src" / "signals.c", "shm": HERE / "src" / "shm.c",
           "fork_loop": HERE / "src" / "fork_loop.c", "sleeper": HERE / "src" / "sleeper.c",
           "cpu_mixed_prof": (ROOT / "testbins" / "cpu_mixed.c", HERE / "src" / "prof_1khz.c")}
SYSCALL_MODES = ("getppid", "read", "write", "clock_gettime", "syscall_getppid")
FIND = "/usr/bin/find"
SERVED_REQUESTS, SERVED_REQUESTS_QUICK = 10000, 500
FORKING_REQUESTS, FORKING_REQUESTS_QUICK = 500, 200      # busybox httpd: a fork per request
LATENCY = re.compile(r"median (\d+) ns p99 (\d+) ns$")


def compile_static(name: str) -> str:
    """benchmarks/.build/NAME, built with `gcc -static -O2 -pthread` from its sources when missing or older."""
    out, srcs = BUILD / name, SOURCES[name]
    srcs = srcs if isinstance(srcs, tuple) else (srcs,)
    if not out.exists() or any(out.stat().st_mtime < src.stat().st_mtime for src in srcs):
        BUILD.mkdir(parents=True, exist_ok=True)
        subprocess.run(["gcc", "-static", "-O2", "-pthread", "-o", str(out), *map(str, srcs), "-lm"], check=True)
    return str(out)


class Context:
    """What workloads share in one harness run: the quick flag, a temp dir with the generated inputs, and the
    command that starts hermipy (``hermipy_command``)."""

    def __init__(self, quick: bool, tmp: Path, hermipy: list[str]):
        self.quick, self.tmp, self.hermipy = quick, tmp, hermipy
        self.serving: subprocess.Popen | None = None

    def server(self) -> str:
        """The socket of this harness run's `hermipy serve` (started on first use, stopped by ``close``)."""
        path = self.path("hermipy.sock")
        if self.serving is None:
            self.serving = subprocess.Popen(self.hermipy + ["serve", "--socket", path], stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            ready = self.serving.stderr.readline()
            if not ready.startswith(b"hermipy serve: listening"):
                raise RuntimeError(f"hermipy serve did not start: {ready!r}")
        return path

    def close(self) -> None:
        if self.serving is not None:
            self.serving.terminate()
            self.serving.wait(timeout=30)
            self.serving = None

    def path(self, name: str) -> str:
        return str(self.tmp / name)

    def sort_input(self) -> str:
        """5 MB (1 MB with --quick) of pseudo-random text lines, the same bytes on every run."""
        path = self.tmp / "sort-input.txt"
        if not path.exists():
            size, state, lines = (1 if self.quick else 5) * 1024 * 1024, 88172645463325252, []
            total = 0
            while total < size:
                state = (state * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
                word = "".join(chr(97 + (state >> s) % 26) for s in range(8, 8 + 4 * (3 + (state >> 60) % 12), 4))
                lines.append(f"{state >> 32:08x} {word} {(state >> 20) % 1000000}\n")
                total += len(lines[-1])
            path.write_text("".join(lines))
        return str(path)

    def sqlite_script(self) -> str:
        """CREATE TABLE, then 100k (10k with --quick) INSERT statements in one transaction, then a SELECT."""
        path = self.tmp / "inserts.sql"
        if not path.exists():
            rows = 10000 if self.quick else 100000
            body = "".join(f"INSERT INTO t(name, v) VALUES('row{i}', {(i * 7919) % 100003}.5);\n" for i in range(rows))
            path.write_text("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v REAL);\nBEGIN;\n" + body +
                            "COMMIT;\nSELECT count(*), sum(v), max(name) FROM t;\n")
        return str(path)

    def fresh_db(self) -> None:
        Path(self.path("bench.db")).unlink(missing_ok=True)

    def cold_cache(self) -> None:
        shutil.rmtree(self.tmp / "xdg-cache", ignore_errors=True)


@dataclass
class Workload:
    name: str
    description: str
    argv: Callable[[Context], list[str]]
    stdin: Callable[[Context], str] | None = None
    before_each: Callable[[Context], None] | None = None
    needs: tuple[str, ...] = ()          # host files it runs (a missing one makes the workload n/a)
    env: Callable[[Context], dict] | None = None
    timed_loop: bool = False             # the program reports "... calls in NS ns" as its last stderr line
    latency: bool = False                # the program reports "... median NS ns p99 NS ns" as its last stderr line
    served: bool = False                 # hermipy runs it through a `hermipy serve` of the harness (--server)
    server: str | None = None            # a web server run by the runner and loaded by ab (serverload.py)
    requests: tuple[int, int] = (SERVED_REQUESTS, SERVED_REQUESTS_QUICK)     # ab's, for a server (full, quick)
    density: bool = False                # PSS of one more running instance (density.py); served: through the server


def syscall_workload(mode: str, full: int, quick: int) -> Workload:
    what = {"getppid": "getppid()", "read": "read 1 byte from /dev/zero", "write": "write 1 byte to /dev/null",
            "clock_gettime": "clock_gettime(CLOCK_MONOTONIC)",
            "syscall_getppid": "syscall(SYS_getppid), the generic syscall(3)"}
    return Workload(f"sys_{mode}",
                    f"{what[mode]}, {full // 1000}k times through the libc wrapper ({quick // 1000}k with --quick)",
                    lambda c: [compile_static("syscall_cost"), mode, str(quick if c.quick else full)],
                    timed_loop=True)


WORKLOADS = [
    Workload("hello", "static hello: whole-process startup", lambda c: [compile_static("hello")]),
    Workload("hello_server", "static hello, hermipy through a warm `hermipy serve` (run --server): whole process",
             lambda c: [compile_static("hello")], served=True),
    Workload("fork_exit", "fork + _exit + waitpid in the guest, 200 times (50 --quick): time per fork",
             lambda c: [compile_static("fork_loop"), "50" if c.quick else "200"], timed_loop=True),
    Workload("fork_exec", "busybox sh runs /bin/true (fork + execve + wait) 50 times (20 --quick): time per command",
             lambda c: [BUSYBOX, "sh", "-c", FORK_EXEC_SCRIPT, "sh", "20" if c.quick else "50"], needs=(BUSYBOX,),
             timed_loop=True),
    Workload("httpd_fork", f"busybox httpd (a fork per connection) serving a 4 KiB page to `ab -c 8`, "
             f"{FORKING_REQUESTS} requests ({FORKING_REQUESTS_QUICK} with --quick): ab's wall time; the report adds "
             "requests/s", lambda c: [], server="busybox-httpd", needs=(BUSYBOX, "/usr/bin/ab"),
             requests=(FORKING_REQUESTS, FORKING_REQUESTS_QUICK)),
    Workload("density", "sleeping hellos started at once (hermipy: through `hermipy serve`), 10 then 60 (5 then 20 "
             "with --quick): time to start the 60; the report adds the PSS of one more instance",
             lambda c: [compile_static("sleeper")], served=True, density=True),
    Workload("true", "/bin/true (dynamic): startup with ld.so and libc", lambda c: ["/bin/true"], needs=("/bin/true",)),
    Workload("ls_usr_bin", "ls -la /usr/bin (dynamic)", lambda c: ["/bin/ls", "-la", "/usr/bin"], needs=("/bin/ls",)),
    Workload("int_loop", "xorshift integer loop, 200M iterations",
             lambda c: [compile_static("int_loop"), "20000000" if c.quick else "200000000"]),
    Workload("cpu_mixed", "testbins/cpu_mixed.c x8: sieve + qsort + snprintf hashing (x2 with --quick)",
             lambda c: [compile_static("cpu_mixed"), "2" if c.quick else "8"]),
    Workload("cpu_mixed_x1", "testbins/cpu_mixed.c x1: with cpu_mixed, the compute ratio without start-up",
             lambda c: [compile_static("cpu_mixed"), "1"]),
    syscall_workload("getppid", 200000, 10000),
    syscall_workload("read", 100000, 10000),
    syscall_workload("write", 100000, 10000),
    syscall_workload("clock_gettime", 1000000, 100000),
    syscall_workload("syscall_getppid", 200000, 10000),
    Workload("sys_none", "syscall_cost with a loop of 0 calls: the baseline the per-call costs subtract",
             lambda c: [compile_static("syscall_cost"), "getppid", "0"]),
    Workload("file_io", "4 MiB file written then read in 4 KiB blocks (temp dir)",
             lambda c: [compile_static("file_io"), c.path("file_io.dat"), "4"]),
    Workload("malloc_list", "linked list of 200k malloc'd nodes built and freed, 3 rounds",
             lambda c: [compile_static("malloc_list"), "200000", "1" if c.quick else "3"]),
    Workload("busybox_sort", "busybox sort of a 5 MB generated file", lambda c: [BUSYBOX, "sort", c.sort_input()],
             needs=(BUSYBOX,)),
    Workload("sqlite3", "sqlite3 (dynamic): 100k INSERTs in one transaction into a new file database",
             lambda c: [SQLITE3, c.path("bench.db")], stdin=lambda c: c.sqlite_script(),
             before_each=lambda c: c.fresh_db(), needs=(SQLITE3,)),
    Workload("python_pass", "python3 -c pass (Debian's python3, dynamic): interpreter startup",
             lambda c: [PYTHON3, "-c", "pass"], needs=(PYTHON3,)),
    Workload("python_bench", "python3 benchmarks/src/pybench.py 3: pure-Python loops, dicts, strings, sort",
             lambda c: [PYTHON3, str(HERE / "src" / "pybench.py"), "1" if c.quick else "3"], needs=(PYTHON3,)),
    Workload("find_usr", "find /usr -xdev -name '*.conf' (dynamic; /usr/include with --quick): syscall-bound",
             lambda c: [FIND, "/usr/include" if c.quick else "/usr", "-xdev", "-name", "*.conf"], needs=(FIND,)),
    Workload("nginx_ab", f"nginx (a worker per core ab leaves: 1 on 2 cores) serving a 4 KiB page to `ab -c 8`, "
             f"{SERVED_REQUESTS} requests ({SERVED_REQUESTS_QUICK} with --quick): ab's wall time; the report adds "
             "requests/s",
             lambda c: [], server="nginx", needs=("/usr/sbin/nginx", "/usr/bin/ab")),
    Workload("lighttpd_ab", f"lighttpd serving a 4 KiB page to `ab -c 8`, {SERVED_REQUESTS} requests "
             f"({SERVED_REQUESTS_QUICK} with --quick): ab's wall time; the report adds requests/s",
             lambda c: [], server="lighttpd", needs=("/usr/sbin/lighttpd", "/usr/bin/ab")),
    Workload("threads_cpu_1", "1000M xorshift rounds in 64 slices on 1 thread (200M with --quick)",
             lambda c: [compile_static("threads"), "split", "1", "200000000" if c.quick else "1000000000"],
             timed_loop=True),
    Workload("threads_cpu_2", "the same rounds dealt to 2 threads: the parallel speed-up on 2 cores",
             lambda c: [compile_static("threads"), "split", "2", "200000000" if c.quick else "1000000000"],
             timed_loop=True),
    Workload("futex_pingpong", "two threads hand a token back and forth 20k times by futex wait/wake (2k --quick)",
             lambda c: [compile_static("threads"), "pingpong", "2000" if c.quick else "20000"], timed_loop=True),
    Workload("mutex_contended", "2 threads increment one counter under a pthread mutex, 2M times (200k --quick)",
             lambda c: [compile_static("threads"), "mutex", "2", "200000" if c.quick else "2000000"],
             timed_loop=True),
    Workload("shm_pingpong", "parent and fork child hand a token back and forth 20k times by a futex in MAP_SHARED "
             "memory (2k --quick)", lambda c: [compile_static("shm"), "pingpong", "2000" if c.quick else "20000"],
             timed_loop=True),
    Workload("fork_shared_256m", "fork + _exit + waitpid with 256 MiB of touched MAP_SHARED memory, 20 times (5 --quick)",
             lambda c: [compile_static("shm"), "fork", "256", "5" if c.quick else "20"], timed_loop=True),
    Workload("signal_timer", "POSIX timer expiry to handler latency, 300 expiries while computing (50 --quick)",
             lambda c: [compile_static("signals"), "timer", "50" if c.quick else "300"], latency=True),
    Workload("signal_kill", "kill() by another process to handler latency, parent blocked in read, 300 times",
             lambda c: [compile_static("signals"), "kill", "50" if c.quick else "300"], latency=True),
    Workload("cpu_mixed_prof", "cpu_mixed x8 with ITIMER_PROF at 1 kHz and a SIGPROF handler (x2 with --quick)",
             lambda c: [compile_static("cpu_mixed_prof"), "2" if c.quick else "8"]),
]


# The shell times its loop itself, from /proc/uptime (10 ms steps: busybox's date has no %N).
FORK_EXEC_SCRIPT = ("read u _ < /proc/uptime; s=${u%.*}${u#*.}; i=0; while [ $i -lt $1 ]; do /bin/true; "
                    "i=$((i + 1)); done; read u _ < /proc/uptime; e=${u%.*}${u#*.}; "
                    "echo \"$1 calls in $(((e - s) * 10000000)) ns\" >&2")


# hermipy's own tools, measured once on the host (not under the runners): the goals of issue 5 name them.
TOOLS = [
    Workload("analyze_busybox", "`hermipy analyze /bin/busybox`, cold rewrite-plan cache (fresh $XDG_CACHE_HOME)",
             lambda c: [*c.hermipy, "analyze", BUSYBOX], needs=(BUSYBOX,),
             env=lambda c: {"XDG_CACHE_HOME": c.path("xdg-cache")}, before_each=lambda c: c.cold_cache()),
]
# Workloads whose time is the guest's own computation, not startup or syscalls (issue 6: KVM vs qemu-user).
CPU_BOUND = ("int_loop", "cpu_mixed", "malloc_list", "busybox_sort", "sqlite3", "python_bench")


@dataclass
class Runner:
    name: str
    prefix: list[str] | None                # None: not available here
    reason: str = ""                        # why not available
    info: dict = field(default_factory=dict)


def hermipy_command(install: bool) -> list[str]:
    """How the runners start hermipy: the `hermipy` command of a regular install of this tree in the harness'
    venv benchmarks/.venv-hermipy, as a user installs it (`pip install .`: no editable-install import finder,
    none of the site hooks of the machine's own Python, which cost ~25-60 ms per process here). With
    --no-install, or when that install fails, `python -m hermipy` from this interpreter."""
    python, command = HERMIPY_VENV / "bin" / "python", HERMIPY_VENV / "bin" / "hermipy"
    if install:
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        steps = [] if python.exists() else [[sys.executable, "-m", "venv", str(HERMIPY_VENV)], pip + [str(ROOT)]]
        print(f"installing this tree's hermipy into {HERMIPY_VENV.relative_to(ROOT)} ...", file=sys.stderr)
        for cmd in steps + [pip + ["--no-deps", "--force-reinstall", str(ROOT)]]:
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
                print(f"`{' '.join(cmd[-3:])}` failed: {tail}; hermipy runs in place", file=sys.stderr)
                break
        else:
            return [str(command)]
    return [sys.executable, "-m", "hermipy"]


def hermipy_runners(hermipy: list[str]) -> list[Runner]:
    """One runner per backend `hermipy info` lists; a -norewrite twin when `hermipy run` has --no-rewrite."""
    base = hermipy + ["run"]
    info = subprocess.run(hermipy + ["info"], capture_output=True, text=True, cwd=ROOT)
    line = next((l for l in info.stdout.splitlines() if l.startswith("backends:")), "")
    listed = {b.split()[0] for b in line.split(":", 1)[1].split(",")} if line else set()
    help_text = subprocess.run(base + ["--help"], capture_output=True, text=True, cwd=ROOT).stdout
    norewrite = "--no-rewrite" in help_text
    runners = []
    for backend in ("unicorn", "kvm"):
        if backend not in listed:
            runners.append(Runner(f"hermipy-{backend}", None, f"`hermipy info` does not list {backend}"))
            continue
        runners.append(Runner(f"hermipy-{backend}", base + ["--backend", backend]))
        if norewrite:
            runners.append(Runner(f"hermipy-{backend}-norewrite", base + ["--backend", backend, "--no-rewrite"]))
        if backend == "kvm" and "--exitless" in help_text:
            runners.append(Runner("hermipy-kvm-exitless", base + ["--backend", "kvm", "--exitless"]))
    if not norewrite:
        for backend in ("unicorn", "kvm"):
            runners.append(Runner(f"hermipy-{backend}-norewrite", None, "`hermipy run` has no --no-rewrite"))
    return runners


def ensure_venv(install: bool) -> str | None:
    """The harness' own virtual environment with qiling and matplotlib; None when ready, else why not."""
    python = VENV / "bin" / "python"
    if python.exists() and subprocess.run([str(python), "-c", "import qiling"], capture_output=True).returncode == 0:
        return None
    if not install:
        return f"{VENV.relative_to(ROOT)} has no qiling (--no-install)"
    print(f"installing {' '.join(VENV_PACKAGES)} into {VENV.relative_to(ROOT)} ...", file=sys.stderr)
    for cmd in ([sys.executable, "-m", "venv", str(VENV)],
                [str(python), "-m", "pip", "install", "-q", *VENV_PACKAGES]):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
            return f"`{' '.join(cmd[-3:])}` failed: {tail}"
    return None


def all_runners(wanted: set[str] | None, install: bool, hermipy: list[str]) -> list[Runner]:
    runners = [Runner("native", [])] + hermipy_runners(hermipy)
    runners.append(Runner("qemu-user", [QEMU]) if shutil.which(QEMU) else Runner("qemu-user", None, f"no {QEMU}"))
    runners.append(Runner("qiling", None, "not selected"))
    if wanted is not None:
        unknown = wanted - {r.name for r in runners}
        if unknown:
            sys.exit(f"unknown runner(s): {', '.join(sorted(unknown))}; known: {', '.join(r.name for r in runners)}")
        runners = [r for r in runners if r.name in wanted]
    for r in runners:
        if r.name == "qiling":
            problem = ensure_venv(install)
            if problem:
                r.reason = problem
            else:
                r.prefix = [str(VENV / "bin" / "python"), str(HERE / "qiling_runner.py")]
    return runners


def run_once(cmd: list[str], stdin: str | None, out_path: Path, timeout: float, env: dict | None = None) -> dict:
    """One run through benchmarks/src/spawn.c: wall seconds, the child's peak RSS (KiB) from wait4(2), exit
    status, sha256 of stdout, the last line of stderr."""
    spawn = compile_static("spawn")
    timed_out = threading.Event()
    report_r, report_w = os.pipe()
    with open(out_path, "wb") as out, tempfile.TemporaryFile() as err, open(stdin or os.devnull, "rb") as inp:
        proc = subprocess.Popen([spawn, str(report_w)] + cmd, stdin=inp, stdout=out, stderr=err,
                                pass_fds=(report_w,), start_new_session=True, env=env)
        os.close(report_w)

        def kill():
            timed_out.set()
            os.killpg(proc.pid, signal.SIGKILL)
        timer = threading.Timer(timeout, kill)
        timer.start()
        with os.fdopen(report_r) as report:
            line = report.read().split()
        proc.wait()
        timer.cancel()
        err.seek(0)
        stderr = err.read()
    tail = (stderr.decode(errors="replace").strip().splitlines() or [""])[-1][:160]
    if timed_out.is_set() or len(line) != 3:
        return {"timed_out": timed_out.is_set(), "status": None, "stderr_tail": tail or f"spawn: {proc.returncode}"}
    wall_ns, rss_kib, wait_status = map(int, line)
    return {"wall": wall_ns / 1e9, "rss_kib": rss_kib, "status": os.waitstatus_to_exitcode(wait_status),
            "stdout": hashlib.sha256(out_path.read_bytes()).hexdigest(), "stderr_tail": tail, "timed_out": False}


class Cell:
    """The runs of one (workload, runner) pair as they come in; ``failed`` ends it."""

    def __init__(self):
        self.times, self.loop_ns, self.latency, self.rss, self.digest, self.failed = [], [], [], 0, None, None
        self.rps: list[float] = []
        self.pss: list[float] = []

    def result(self) -> dict:
        if self.failed:
            return {"status": "failed", "reason": self.failed}
        times = self.times
        cell = {"status": "ok", "median": statistics.median(times), "min": min(times), "max": max(times),
                "times": times, "rss_kib": self.rss, "stdout_sha256": self.digest}
        if self.loop_ns:
            cell["loop_ns"] = self.loop_ns
            # A loop that took longer than its whole process: the runner's clock is wrong, its timing unusable.
            cell["loop_clock_ok"] = all(ns <= wall * 1e9 for ns, wall in zip(self.loop_ns, times))
        if self.rps:
            cell["requests_per_s"] = statistics.median(self.rps)
        if self.pss:
            cell["pss_per_instance_kib"] = statistics.median(self.pss)
        if self.latency:
            cell["latency_us"] = {"median": statistics.median(m for m, _ in self.latency) / 1000,
                                  "p99": max(p for _, p in self.latency) / 1000}
        return cell


def run_into(cell: Cell, workload: Workload, runner: Runner, ctx: Context, timeout: float,
             reference: str | None, timed_run: bool) -> None:
    """One run of a cell (the warm-up when not ``timed_run``); the first failing run fails the cell."""
    argv = workload.argv(ctx)
    stdin = workload.stdin(ctx) if workload.stdin else None
    env = os.environ | workload.env(ctx) if workload.env else None
    if workload.before_each:
        workload.before_each(ctx)
    prefix = runner.prefix
    if workload.served and runner.name.startswith("hermipy-"):
        prefix = prefix + ["--server", ctx.server()]
    if workload.density:
        from benchmarks.density import measure as measure_density
        shared = [ctx.serving.pid] if workload.served and runner.name.startswith("hermipy-") else []
        try:
            r = measure_density(prefix + argv, ctx.quick, shared)
        except RuntimeError as err:
            cell.failed = str(err)
            return
        if timed_run:
            cell.times.append(r["wall"])
            cell.pss.append(r["pss_per_instance_kib"])
        return
    if workload.server:
        from benchmarks.serverload import load
        r = load(workload.server, prefix, ctx.tmp, workload.requests[1 if ctx.quick else 0], timeout)
        if "failed" in r:
            cell.failed = r["failed"]
        elif timed_run:
            cell.times.append(r["wall"])
            cell.rps.append(r["rps"])
        return
    r = run_once(prefix + argv, stdin, ctx.tmp / "stdout", timeout, env)
    if r["timed_out"]:
        cell.failed = f"timeout (> {timeout:g} s)"
        return
    if r["status"] != 0:
        why = "no result from spawn" if r["status"] is None else f"exit status {r['status']}"
        cell.failed = f"{why}: {r['stderr_tail']}".rstrip(": ")
        return
    if reference is not None and r["stdout"] != reference:
        cell.failed = "stdout differs from native"
        return
    cell.digest = r["stdout"]
    timed = re.search(r"calls in (\d+) ns$", r["stderr_tail"]) if workload.timed_loop else None
    if workload.timed_loop and not timed:
        cell.failed = f"no loop timing on stderr: {r['stderr_tail']}"
        return
    latency = LATENCY.search(r["stderr_tail"]) if workload.latency else None
    if workload.latency and not latency:
        cell.failed = f"no latency on stderr: {r['stderr_tail']}"
        return
    if timed_run:
        cell.times.append(r["wall"])
        cell.rss = max(cell.rss, r["rss_kib"])
        if timed:
            cell.loop_ns.append(int(timed.group(1)))
        if latency:
            cell.latency.append((int(latency.group(1)), int(latency.group(2))))


def measure(workload: Workload, runners: list[Runner], ctx: Context, runs: int, timeout: float) -> dict:
    """Warm-up plus ``runs`` timed rounds; each round runs every runner once, in turn, so that a drift of
    the machine is shared by all runners instead of landing on one. Native goes first: its stdout is the
    reference the others must print."""
    cells = {r.name: Cell() for r in runners}
    reference = None
    for round_ in range(runs + 1):
        for runner in runners:
            cell = cells[runner.name]
            if cell.failed:
                continue
            run_into(cell, workload, runner, ctx, timeout, reference, timed_run=round_ > 0)
            if runner.name == "native" and round_ == 0 and not cell.failed:
                reference = cell.digest
    return {name: cell.result() for name, cell in cells.items()}


def missing_files(w: Workload) -> list[str]:
    return [p for p in w.needs if not os.access(p, os.X_OK)]


def run_all(args, runners: list[Runner], workloads: list[Workload], tools: list[Workload], ctx: Context,
            trip: bool = False) -> dict:
    results, tool_results, trips = {}, {}, []
    started = time.monotonic()
    for w in workloads:
        results[w.name] = {}
        ready = []
        for runner in runners:
            if missing_files(w):
                results[w.name][runner.name] = {"status": "n/a", "reason": f"no {missing_files(w)[0]}"}
            elif runner.prefix is None:
                results[w.name][runner.name] = {"status": "n/a", "reason": runner.reason}
            elif w.server and runner.name == "qiling":
                results[w.name][runner.name] = {"status": "n/a", "reason": "no server runs under Qiling here"}
            else:
                ready.append(runner)
        results[w.name].update(measure(w, ready, ctx, args.runs, args.timeout) if ready else {})
        results[w.name] = {r.name: results[w.name][r.name] for r in runners}
        for runner in runners:
            print(f"  {w.name:<13} {runner.name:<26} {cell_text(results[w.name][runner.name])}", file=sys.stderr)
        native = results[w.name].get("native", {}).get("median")
        for cell in results[w.name].values():
            if native and cell["status"] == "ok":
                cell["ratio"] = cell["median"] / native
    for t in tools:
        if missing_files(t):
            tool_results[t.name] = {"status": "n/a", "reason": f"no {missing_files(t)[0]}"}
        else:
            tool_results[t.name] = measure(t, [Runner("host", [])], ctx, args.runs, args.timeout)["host"]
        print(f"  {t.name:<40} {cell_text(tool_results[t.name])}", file=sys.stderr)
    if trip:
        from benchmarks.trip import profile
        for backend in ("kvm", "unicorn"):
            if any(r.name == f"hermipy-{backend}" and r.prefix is not None for r in runners):
                trips.append(profile(backend, 2000 if args.quick else 20000))
                print(f"  trip {backend:<35} {trips[-1].get('error') or 'done'}", file=sys.stderr)

    def describe(w: Workload) -> dict:
        argv = None if missing_files(w) else [a.replace(str(ctx.tmp), "$TMP") for a in w.argv(ctx)]
        return {"description": w.description, "argv": argv}
    return {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "machine": machine(), "quick": args.quick,
            "runs": args.runs, "note": args.note, "elapsed_s": round(time.monotonic() - started, 1),
            "runners": {r.name: ({"command": r.prefix} if r.prefix is not None else {"unavailable": r.reason})
                        for r in runners},
            "workloads": {w.name: describe(w) for w in workloads + tools},
            "results": results, "tools": tool_results, "syscall_cost_us": syscall_costs(results, ctx),
            "trip": trips}


def syscall_costs(results: dict, ctx: Context) -> dict:
    """Per runner and syscall, the µs of one call, two ways: ``timed`` = the median of the loop's own
    clock_gettime timing / N; ``wall`` = (median wall of N calls - median wall of 0 calls) / N."""
    base = results.get("sys_none", {})
    costs = {}
    for mode in SYSCALL_MODES:
        cells = results.get(f"sys_{mode}")
        if not cells:
            continue
        n = int(next(w for w in WORKLOADS if w.name == f"sys_{mode}").argv(ctx)[-1])
        for runner, cell in cells.items():
            if cell["status"] != "ok":
                costs.setdefault(runner, {})[mode] = None
                continue
            zero = base.get(runner, {})
            wall = (cell["median"] - zero["median"]) / n * 1e6 if zero.get("status") == "ok" else None
            timed = statistics.median(cell["loop_ns"]) / n / 1000 if cell["loop_clock_ok"] else None
            costs.setdefault(runner, {})[mode] = {"timed": None if timed is None else round(timed, 3),
                                                  "wall": None if wall is None else round(wall, 3)}
    return costs


def machine() -> dict:
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    if Path("/sys/module/kvm_pvm").exists():
        kvm = "PVM (kvm_pvm: software VM, no VMX/SVM)"
    elif Path("/sys/module/kvm_intel").exists():
        kvm = "VMX (kvm_intel)"
    elif Path("/sys/module/kvm_amd").exists():
        kvm = "SVM (kvm_amd)"
    else:
        kvm = "absent" if not Path("/dev/kvm").exists() else "unknown type"
    if Path("/dev/kvm").exists() and not os.access("/dev/kvm", os.R_OK | os.W_OK):
        kvm += ", not usable by this user"

    def version(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
            return out.splitlines()[0] if out else "?"
        except (OSError, subprocess.TimeoutExpired):
            return "not installed"
    try:
        import unicorn
        unicorn_version = unicorn.__version__
    except ImportError:
        unicorn_version = "not installed"
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    qiling_python = VENV / "bin" / "python"
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": f"Linux {platform.release()}", "kvm": kvm,
            "python": platform.python_version(), "unicorn": unicorn_version, "hermipy_commit": commit or "?",
            "qemu": version([QEMU, "--version"]),
            "qiling": version([str(qiling_python), "-c", "import qiling, unicorn; "
                               "print(qiling.__version__, '(unicorn', unicorn.__version__ + ')')"])
            if qiling_python.exists() else "not installed"}


def cell_text(cell: dict, detail: bool = False) -> str:
    if cell["status"] == "n/a":
        return "n/a"
    if cell["status"] == "failed":
        return "failed: " + cell["reason"].replace("|", "\\|")
    text = f"{ms(cell['median'])}"
    if detail:
        text += f" ({ms(cell['min'], unit=False)}–{ms(cell['max'])})"
    if "ratio" in cell:
        text += f", {cell['ratio']:.2f}x"
    if "requests_per_s" in cell:
        text += f", {cell['requests_per_s']:.0f} req/s"
    if "pss_per_instance_kib" in cell:
        text += f", {cell['pss_per_instance_kib'] / 1024:.1f} MiB each"
    if detail and cell["rss_kib"]:
        text += f", {cell['rss_kib'] / 1024:.0f} MiB"
    return text


def ms(seconds: float, unit: bool = True) -> str:
    value = seconds * 1000
    text = f"{value:.0f}" if value >= 100 else f"{value:.1f}"
    return text + (" ms" if unit else "")


def goals(report: dict) -> list[tuple[str, str, str, str]]:
    """The speed goals of issues 2-16 against this run: (issue, goal, measured, verdict) rows."""
    results, costs, runners = report["results"], report["syscall_cost_us"], report["runners"]
    U, K = "hermipy-unicorn", "hermipy-kvm"
    rewrite_switch = "command" in runners.get(U + "-norewrite", {}) or "command" in runners.get(K + "-norewrite", {})

    def cell(workload, runner):
        c = results.get(workload, {}).get(runner)
        return c if c and c["status"] == "ok" else None

    def wall(workload, runner):
        c = cell(workload, runner)
        return None if c is None else c["median"] * 1000

    def ratio(workload, runner):
        c = cell(workload, runner)
        return c.get("ratio") if c else None

    def compute_ratio(runner):
        """cpu_mixed's ratio to native with start-up taken out: (cpu_mixed - cpu_mixed_x1) against native's
        (x8 - x1; x2 - x1 with --quick)."""
        big, small = wall("cpu_mixed", runner), wall("cpu_mixed_x1", runner)
        native_big, native_small = wall("cpu_mixed", "native"), wall("cpu_mixed_x1", "native")
        if None in (big, small, native_big, native_small) or native_big <= native_small:
            return None
        return (big - small) / (native_big - native_small)

    def add_mixed(issue, name, runner, limit):
        """A mixed-CPU goal, judged on the compute ratio (start-up has goals of its own), wall ratio shown."""
        value, total = compute_ratio(runner), ratio("cpu_mixed", runner)
        measured, verdict = check(value, limit, "{:.2f}x")
        if total is not None:
            measured += f" (whole process: {total:.2f}x)"
        rows.append((issue, f"{name}: mixed CPU ≤ {limit:g}x native (compute: cpu_mixed − cpu_mixed_x1)", measured,
                     verdict))

    def cost(runner, mode="getppid"):
        c = costs.get(runner, {}).get(mode)
        return c["timed"] if c else None

    def check(value, limit, fmt):
        if value is None:
            return "—", "not measured"
        return fmt.format(value), "met" if value <= limit else "missed"

    rows = []

    def add(issue, goal, value, limit, fmt):
        rows.append((issue, goal) + check(value, limit, fmt))

    add_mixed("2", "Unicorn", U, 14)
    add("2", "Unicorn: trivial syscall (getppid) < 4 µs", cost(U), 4, "{:.3f} µs")
    add("2", "Unicorn: static hello < 120 ms wall", wall("hello", U), 120, "{:.0f} ms")
    for w in ("true", "ls_usr_bin", "python_pass"):
        parts = [f"{r.removeprefix('hermipy-')} {ratio(w, r):.1f}x" for r in (U, K, "qemu-user") if ratio(w, r)]
        rows.append(("3", f"report `{w}` against native and qemu-user", ", ".join(parts) or "—",
                     "reported" if parts else "not measured"))
    add_mixed("4", "KVM", K, 1.15)
    add("4", "KVM: trivial syscall (getppid) ≤ 0.1 µs (answered in the guest)", cost(K), 0.1, "{:.3f} µs")
    add("4", "KVM: static hello ≤ 100 ms wall", wall("hello", K), 100, "{:.0f} ms")
    if rewrite_switch:
        add("5", "Unicorn, rewritten: trivial syscall (getppid) ≤ 1 µs", cost(U), 1, "{:.3f} µs")
        add("5", "KVM, rewritten: trivial syscall (getppid) ≤ 0.1 µs", cost(K), 0.1, "{:.3f} µs")
        for r in (U, K):
            extra = None
            if wall("hello", r) is not None and wall("hello", r + "-norewrite") is not None:
                extra = wall("hello", r) - wall("hello", r + "-norewrite")
            add("5", f"{r.removeprefix('hermipy-')}: a cached rewriting run adds ≤ 5 ms (hello, vs --no-rewrite)",
                extra, 5, "{:+.1f} ms")
    else:
        for goal in ("Unicorn, rewritten: trivial syscalls ≤ 1 µs", "KVM, rewritten: trivial syscalls ≤ 0.1 µs",
                     "a cached rewriting run adds ≤ 5 ms"):
            rows.append(("5", goal, "—", "not measured: `hermipy run` has no --no-rewrite to compare with"))
    tool = report.get("tools", {}).get("analyze_busybox")
    add("5", "`hermipy analyze` of busybox-static ≤ 2 s (cold cache)",
        tool["median"] if tool and tool["status"] == "ok" else None, 2, "{:.2f} s")
    add("6", "Unicorn: hello ≤ 80 ms wall", wall("hello", U), 80, "{:.0f} ms")
    add("6", "KVM: hello ≤ 60 ms wall", wall("hello", K), 60, "{:.0f} ms")
    add_mixed("6", "Unicorn", U, 12)
    add_mixed("6", "KVM", K, 1.1)
    add("6", "Unicorn: trivial syscall ≤ 1.5 µs", cost(U), 1.5, "{:.3f} µs")
    add("6", "KVM: trivial syscall ≤ 0.1 µs in-guest", cost(K), 0.1, "{:.3f} µs")
    for r in (U, K):
        ran = [w for w in results if cell(w, "qiling") and cell(w, r)]
        slower = [w for w in ran if cell(w, r)["median"] >= cell(w, "qiling")["median"]]
        qiling_failed = [w for w in results if results[w].get("qiling", {}).get("status") == "failed"]
        measured = (f"slower on {', '.join(slower)}" if slower else f"faster on all {len(ran)}") + \
            f" where both ran; Qiling failed {len(qiling_failed)}"
        rows.append(("6", f"{r.removeprefix('hermipy-')}: every workload faster than Qiling", measured,
                     "not measured" if not ran else "missed" if slower else "met"))
    for r in (K, U):
        value = speedup(report, r)
        native = speedup(report, "native")
        measured = "—" if value is None else f"{value:.2f}x (native {native:.2f}x)" if native else f"{value:.2f}x"
        if r == K:
            rows.append(("10", "KVM: a CPU-bound job on 2 threads ≥ 1.8x its 1-thread speed (compute time)", measured,
                         "not measured" if value is None else "met" if value >= 1.8 else "missed"))
        else:
            rows.append(("10", "Unicorn: 2 threads vs 1 (engines take turns: ~1x expected)", measured,
                         "reported" if value is not None else "not measured"))
    for w, what in (("futex_pingpong", "futex ping-pong round trip"), ("mutex_contended", "contended mutex")):
        parts = [f"{r.removeprefix('hermipy-')} {per_call_us(report, w, r):.2f} µs"
                 for r in ("native", K, U, "qemu-user") if per_call_us(report, w, r) is not None]
        rows.append(("10", f"report the {what} per backend next to native", ", ".join(parts) or "—",
                     "reported" if parts else "not measured"))
    for w, what in (("shm_pingpong", "cross-process futex ping-pong round trip through MAP_SHARED memory"),
                    ("fork_shared_256m", "fork of a process with 256 MiB of shared mappings")):
        parts = [f"{r.removeprefix('hermipy-')} {per_call_us(report, w, r):.1f} µs"
                 for r in ("native", K, U, "qemu-user") if per_call_us(report, w, r) is not None]
        rows.append(("12", f"report the {what} per backend next to native", ", ".join(parts) or "—",
                     "reported" if parts else "not measured"))
    for w, what in (("signal_timer", "timer expiry"), ("signal_kill", "kill by another process")):
        parts = [f"{r.removeprefix('hermipy-')} {lat['median']:.0f}/{lat['p99']:.0f} µs"
                 for r in ("native", K, U, "qemu-user") if (lat := latency_us(report, w, r))]
        rows.append(("11", f"{what} → handler latency, median/p99, next to native", ", ".join(parts) or "—",
                     "reported" if parts else "not measured"))
    timer = latency_us(report, "signal_timer", K)
    add("11", "KVM: a timer's signal reaches a computing guest within ~1 ms (median)",
        timer["median"] / 1000 if timer else None, 1, "{:.2f} ms")
    parts = []
    for r in ("native", K, U):
        prof, plain = wall("cpu_mixed_prof", r), wall("cpu_mixed", r)
        if prof is not None and plain is not None:
            parts.append(f"{r.removeprefix('hermipy-')} {100 * (prof / plain - 1):+.1f}%")
    rows.append(("11", "cost of ITIMER_PROF at 1 kHz on cpu_mixed (wall, vs without)", ", ".join(parts) or "—",
                 "reported" if parts else "not measured"))
    ran = [w for w in CPU_BOUND if cell(w, K) and cell(w, "qemu-user")]
    slower = [w for w in ran if cell(w, K)["median"] >= cell(w, "qemu-user")["median"]]
    rows.append(("6", f"KVM faster than qemu-user on CPU-bound work ({', '.join(CPU_BOUND)})",
                 f"slower on {', '.join(slower)}" if slower else f"faster on all {len(ran)}",
                 "not measured" if not ran else "missed" if slower else "met"))
    for runner, what, limit in ((U, "Unicorn", 4), (K, "KVM", 4)):
        floor = next((t["trip_us"]["floor"] for t in report.get("trip", [])
                      if "error" not in t and f"hermipy-{t['backend']}" == runner), None)
        per_call = [((costs.get(runner) or {}).get(m) or {}).get("timed") for m in ("read", "write")]
        if runner == K:
            goal = f"KVM: read/write ≤ the exit floor + {limit} µs"
            budget = None if floor is None else floor + limit
        else:
            goal, budget = f"Unicorn: read/write ≤ {limit} µs per call", limit
        if None in per_call or budget is None:
            rows.append(("16", goal, "—", "not measured"))
            continue
        measured = f"read {per_call[0]:.2f} µs, write {per_call[1]:.2f} µs" + \
            (f" (floor {floor:.2f} µs)" if runner == K else "")
        rows.append(("16", goal, measured, "met" if max(per_call) <= budget else "missed"))
    exitless = [((costs.get(K + "-exitless") or {}).get(m) or {}).get("timed") for m in ("read", "write")]
    rows.append(("16", "KVM exitless mode: read/write ≤ 6 µs per call",
                 "—" if None in exitless else f"read {exitless[0]:.2f} µs, write {exitless[1]:.2f} µs",
                 "not measured" if None in exitless else "met" if max(exitless) <= 6 else "missed"))
    for runner, what in ((U, "Unicorn"), (K, "KVM")):
        add("16", f"{what}: clock_gettime ≤ 0.1 µs (vDSO)", cost(runner, "clock_gettime"), 0.1, "{:.3f} µs")
    for runner, what, limit in ((U, "Unicorn", 0.5), (K, "KVM", 0.1)):
        add("16", f"{what}: syscall(SYS_getppid) through the generic wrapper ≤ {limit} µs",
            cost(runner, "syscall_getppid"), limit, "{:.3f} µs")
    faster = min((r for r in (U, K, K + "-exitless") if ratio("find_usr", r)), key=lambda r: ratio("find_usr", r),
                 default=None)
    add("16", f"find over /usr ≤ 8x native on the faster backend ({(faster or '—').removeprefix('hermipy-')})",
        ratio("find_usr", faster) if faster else None, 8, "{:.1f}x")
    for w in ("nginx_ab", "lighttpd_ab"):
        native_rps = (cell(w, "native") or {}).get("requests_per_s")
        kvm_rps = max(((cell(w, r) or {}).get("requests_per_s") or 0 for r in (K, K + "-exitless")), default=0)
        share = kvm_rps / native_rps if native_rps and kvm_rps else None
        parts = [f"{r.removeprefix('hermipy-')} {c['requests_per_s']:.0f}"
                 for r in ("native", K, K + "-exitless", U, "qemu-user") if (c := cell(w, r)) and c.get("requests_per_s")]
        rows.append(("16", f"{w}: KVM (either mode) ≥ 30% of native requests/s",
                     "—" if share is None else f"{100 * share:.0f}% ({', '.join(parts)} req/s)",
                     "not measured" if share is None else "met" if share >= 0.3 else "missed"))
    add("15", "KVM: static hello through `hermipy serve` ≤ 20 ms wall", wall("hello_server", K), 20, "{:.1f} ms")
    add("15", "Unicorn: static hello through `hermipy serve` ≤ 30 ms wall", wall("hello_server", U), 30, "{:.1f} ms")
    add("15", "KVM: static hello, direct run ≤ 60 ms wall", wall("hello", K), 60, "{:.0f} ms")
    for w, limit in (("fork_exit", 2), ("fork_exec", 6)):
        value = per_call_us(report, w, K)
        add("15", f"KVM: {w} ≤ {limit} ms per operation", None if value is None else value / 1000, limit,
            "{:.2f} ms")
        parts = [f"{r.removeprefix('hermipy-')} {per_call_us(report, w, r) / 1000:.2f} ms"
                 for r in ("native", K, U, "qemu-user") if per_call_us(report, w, r) is not None]
        rows.append(("15", f"{w} per operation next to native and qemu-user", ", ".join(parts) or "—",
                     "reported" if parts else "not measured"))
    native_rps = (cell("httpd_fork", "native") or {}).get("requests_per_s")
    kvm_rps = (cell("httpd_fork", K) or {}).get("requests_per_s")
    parts = [f"{r.removeprefix('hermipy-')} {c['requests_per_s']:.0f}"
             for r in ("native", K, U, "qemu-user") if (c := cell("httpd_fork", r)) and c.get("requests_per_s")]
    share = kvm_rps / native_rps if native_rps and kvm_rps else None
    rows.append(("15", "busybox httpd (httpd_fork): KVM ≥ 25% of native requests/s",
                 "—" if share is None else f"{100 * share:.0f}% ({', '.join(parts)} req/s)",
                 "not measured" if share is None else "met" if share >= 0.25 else "missed"))
    for runner, what in ((K, "KVM"), (U, "Unicorn")):
        pss = (cell("density", runner) or {}).get("pss_per_instance_kib")
        add("15", f"{what}: PSS of one more sleeping instance through `hermipy serve` ≤ 3 MiB",
            None if pss is None else pss / 1024, 3, "{:.2f} MiB")
        rows.append(("15", f"{what}: sleeping instances that fit in 2 GiB ≥ 500",
                     "—" if pss is None else f"{int(2048 * 1024 // pss)}",
                     "not measured" if pss is None else "met" if 2048 * 1024 // pss >= 500 else "missed"))
    parts = [f"{r.removeprefix('hermipy-')} {c['pss_per_instance_kib'] / 1024:.2f} MiB"
             for r in ("native", K, U, "qemu-user") if (c := cell("density", r)) and "pss_per_instance_kib" in c]
    rows.append(("15", "PSS of one more sleeping instance next to native and qemu-user", ", ".join(parts) or "—",
                 "reported" if parts else "not measured"))
    return rows


def _ok(report: dict, workload: str, runner: str) -> dict | None:
    c = report["results"].get(workload, {}).get(runner)
    return c if c and c["status"] == "ok" else None


def speedup(report: dict, runner: str) -> float | None:
    """threads_cpu_1's compute time over threads_cpu_2's (the program's own clock, from the first thread's
    creation to the last join): what a second thread gains on this machine, start-up left out."""
    one, two = _ok(report, "threads_cpu_1", runner), _ok(report, "threads_cpu_2", runner)
    if not one or not two or not one.get("loop_clock_ok") or not two.get("loop_clock_ok"):
        return None
    return statistics.median(one["loop_ns"]) / statistics.median(two["loop_ns"])


def per_call_us(report: dict, workload: str, runner: str) -> float | None:
    """A timed loop's µs per round (ping-pong round trip, mutex increment), from the program's own clock."""
    c = _ok(report, workload, runner)
    if not c or not c.get("loop_clock_ok"):
        return None
    w = next(w for w in WORKLOADS if w.name == workload)
    rounds = int(w.argv(Context(report["quick"], Path("/"), []))[-1])
    return statistics.median(c["loop_ns"]) / rounds / 1000


def latency_us(report: dict, workload: str, runner: str) -> dict | None:
    c = _ok(report, workload, runner)
    return c.get("latency_us") if c else None


def spread(cell: dict) -> str:
    return f"{ms(cell['median'])} ({ms(cell['min'], False)}–{ms(cell['max'], False)})"


def short_path(arg: str) -> str:
    """An argument as the report shows it: repository paths relative to the root, other paths by name."""
    if not arg.startswith("/"):
        return arg
    return str(Path(arg).relative_to(ROOT)) if Path(arg).is_relative_to(ROOT) else Path(arg).name


def markdown(report: dict, chart_path: str | None = None) -> str:
    m = report["machine"]
    runners = list(report["runners"])
    lines = ["# hermipy benchmark results", "",
             "Generated by `python -m benchmarks" + (" --quick" if report["quick"] else "") + "` (benchmarks/): "
             "every workload under every runner, one warm-up round and "
             f"{report['runs']} timed rounds each running every runner once in turn; the whole run took {report['elapsed_s'] / 60:.1f} min.", "",
             f"- Date: {report['date']}",
             f"- Machine: {m['cpu']}, {m['cores']} cores, {m['kernel']}",
             f"- /dev/kvm: {m['kvm']}",
             f"- Python {m['python']}, unicorn {m['unicorn']}, {m['qemu']}, Qiling {m['qiling']}",
             f"- hermipy commit {m['hermipy_commit']}"]
    if report.get("note"):
        lines.append(f"- Note: {report['note']}")
    lines += ["", "## Goals of issues 2–16", "", "| issue | goal | measured | verdict |", "|---|---|---|---|"]
    lines += [f"| {i} | {g} | {v} | {ok} |" for i, g, v, ok in goals(report)]
    if chart_path:
        lines += ["", f"![wall time / native, log scale]({chart_path})"]
    lines += ["", "## Wall time", "",
              "Median wall time of the whole process (spawn to reap), ratio to native's median in the same run. "
              "A runner's stdout must equal native's and its exit status be 0, else the cell says why it failed; "
              "n/a: the runner is not available here.", "",
              "| workload | " + " | ".join(runners) + " |", "|---|" + "---:|" * len(runners)]
    for name, cells in report["results"].items():
        lines.append(f"| {name} | " + " | ".join(cell_text(cells[r]) for r in runners) + " |")
    costs = report["syscall_cost_us"]
    if costs:
        lines += ["", "## Cost of one syscall (µs)", "",
                  "First figure: the loop of N calls timed by the program itself (clock_gettime around the loop, "
                  "median of the runs) / N. In brackets, the cross-check from wall times: (median wall of the "
                  "N-call run − median wall of the 0-call run, sys_none) / N; on a loaded machine startup jitter "
                  "makes it noisy, even negative. \"clock wrong\": the program's own timing of the loop exceeded "
                  "the wall time of its whole process, so that runner's clock_gettime cannot be trusted.", "",
                  "| syscall | " + " | ".join(costs) + " |", "|---|" + "---:|" * len(costs)]

        def cost_text(c):
            if c is None:
                return "—"
            timed = "clock wrong" if c["timed"] is None else f"{c['timed']:.2f}"
            return timed + ("" if c["wall"] is None else f" ({c['wall']:.2f})")
        for mode in SYSCALL_MODES:
            if any(mode in c for c in costs.values()):
                lines.append(f"| {mode} | " + " | ".join(cost_text(c.get(mode)) for c in costs.values()) + " |")
    if report.get("trip"):
        from benchmarks.trip import markdown as trip_markdown
        lines += [""] + trip_markdown(report["trip"], report["quick"]).rstrip("\n").split("\n")
    if report.get("tools"):
        lines += ["", "## hermipy's own tools (on the host)", "", "| tool | wall median (min–max) |", "|---|---:|"]
        for name, c in report["tools"].items():
            lines.append(f"| {name} | {spread(c) if c['status'] == 'ok' else cell_text(c)} |")
    lines += ["", "## Every cell", "", "Median (min–max) wall time, ratio to native, peak RSS of the measured "
              "process (ru_maxrss from wait4(2); for hermipy and Qiling that is the whole Python process):", "",
              "| workload | runner | wall median (min–max) | ratio | peak RSS |", "|---|---|---:|---:|---:|"]
    for name, cells in report["results"].items():
        for r in runners:
            c = cells[r]
            if c["status"] == "ok":
                ratio = f"{c['ratio']:.2f}x" if "ratio" in c else "—"
                rss = f"{c['rss_kib'] / 1024:.1f} MiB" if c["rss_kib"] else "—"    # (a server's is not taken)
                lines.append(f"| {name} | {r} | {spread(c)} | {ratio} | {rss} |")
            else:
                lines.append(f"| {name} | {r} | {cell_text(c)} | | |")
    lines += ["", "## Workloads", ""] + [f"- `{n}`: {w['description']}" for n, w in report["workloads"].items()]
    lines += ["", "## Runners", ""]
    for n, r in report["runners"].items():
        how = "n/a: " + r["unavailable"] if "unavailable" in r else \
            "`" + " ".join(short_path(a) for a in r["command"]) + " PROGRAM ARGS`" \
            if r["command"] else "the program itself"
        lines.append(f"- {n}: {how}")
    return "\n".join(lines) + "\n"


def chart(report: dict, path: Path) -> str | None:
    """The PNG chart, drawn here if matplotlib imports, else by the harness' venv; None or why not drawn."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        python = VENV / "bin" / "python"
        if not python.exists():
            return "matplotlib is not installed (pip install -e '.[bench]', or let the harness create its venv)"
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            json.dump(report, f)
            f.flush()
            proc = subprocess.run([str(python), str(HERE / "chart.py"), f.name, str(path)], capture_output=True,
                                  text=True)
        return None if proc.returncode == 0 else f"chart.py failed: {proc.stderr.strip()[-300:]}"
    sys.path.insert(0, str(HERE))
    from chart import draw
    draw(report, path)
    return None


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0],
                                     epilog="Workloads: " + ", ".join(w.name for w in WORKLOADS + TOOLS) + ", trip")
    parser.add_argument("--quick", action="store_true", help="smaller inputs, warm-up + 3 runs")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per cell (default 5, --quick 3)")
    parser.add_argument("--only", help="comma-separated workloads (default: all)")
    parser.add_argument("--runners", help="comma-separated runners (default: all)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per run (default 60, --quick 20)")
    parser.add_argument("--json", metavar="FILE", help="write the report as JSON")
    parser.add_argument("--markdown", metavar="FILE", help="write the report as Markdown")
    parser.add_argument("--chart", metavar="FILE", help="write a PNG chart of the ratios to native (log scale)")
    parser.add_argument("--note", default="", help="a line about the conditions, kept in the report")
    parser.add_argument("--no-install", action="store_true", help="never create the harness' venvs (qiling n/a, "
                        "hermipy runs in place)")
    args = parser.parse_args()
    args.runs = args.runs or (3 if args.quick else 5)
    args.timeout = args.timeout or (20.0 if args.quick else 60.0)
    known = {w.name: w for w in WORKLOADS + TOOLS}
    names = args.only.split(",") if args.only else list(known) + ["trip"]
    if unknown := [n for n in names if n not in known and n != "trip"]:
        parser.error(f"unknown workload(s): {', '.join(unknown)}; known: {', '.join(known)}")
    workloads = [known[n] for n in names if n in known and known[n] in WORKLOADS]
    tools = [known[n] for n in names if n in known and known[n] in TOOLS]
    hermipy = hermipy_command(not args.no_install)
    runners = all_runners(set(args.runners.split(",")) if args.runners else None, not args.no_install, hermipy)
    with tempfile.TemporaryDirectory(prefix="hermipy-bench-") as tmp:
        ctx = Context(args.quick, Path(tmp), hermipy)
        try:
            report = run_all(args, runners, workloads, tools, ctx, trip="trip" in names)
        finally:
            ctx.close()
    chart_link = None
    if args.chart:
        problem = chart(report, Path(args.chart))
        if problem:
            print(f"no chart: {problem}", file=sys.stderr)
        elif args.markdown:
            chart_link = os.path.relpath(Path(args.chart).resolve(), Path(args.markdown).resolve().parent)
    text = markdown(report, chart_link)
    sys.stdout.write(text)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
