"""The density workload (issue 15): how much memory one more sleeping instance costs.

N instances of a sleeping hello (benchmarks/src/sleeper.c: it prints a line, then waits for the end of its stdin)
are started at once under a runner; once every one has printed its line, the PSS (/proc/PID/smaps_rollup) of
every process involved is summed: the instances' process trees, and for runs through `hermipy serve` the server's
tree too (its children are the guests). The same with a larger N; the difference over the added instances is the
PSS of one more instance, with what every instance shares (the server, its spare child) counted once, as it is.
"""
import os
import select
import subprocess
import time

COUNTS, COUNTS_QUICK = (10, 60), (5, 20)
READY_TIMEOUT = 120.0
BUDGET_MIB = 2048


def _children() -> dict[int, list[int]]:
    """ppid -> pids, of every process now."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            tree.setdefault(ppid, []).append(int(entry))
    return tree


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def total_pss_kib(roots: list[int]) -> int:
    """The PSS of ``roots`` and all their descendants."""
    tree, seen, todo = _children(), set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo += tree.get(pid, [])
    return sum(_pss_kib(pid) for pid in seen)


def _start(command: list[str], count: int) -> tuple[list[subprocess.Popen], float]:
    """``count`` instances, each once it has printed its line; and the seconds that took."""
    started = time.monotonic()
    procs = [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              start_new_session=True) for _ in range(count)]
    deadline = started + READY_TIMEOUT
    for proc in procs:
        while time.monotonic() < deadline and proc.poll() is None:
            if select.select([proc.stdout], [], [], 0.1)[0]:
                break
        line = proc.stdout.readline() if proc.poll() is None else b""
        if line != b"hello, sleeping\n":
            _stop(procs)
            raise RuntimeError(f"an instance did not start: {line!r}, status {proc.poll()}")
    return procs, time.monotonic() - started


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        try:
            proc.stdin.close()
        except OSError:
            pass
    deadline = time.monotonic() + 30
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, 9)
            except ProcessLookupError:
                pass
            proc.wait()


def measure(command: list[str], quick: bool, shared_roots: list[int] = ()) -> dict:
    """{"wall": seconds to start the larger count, "pss_per_instance_kib": ..., "instances_in_budget": ...}."""
    small, large = COUNTS_QUICK if quick else COUNTS
    totals, wall = {}, 0.0
    for count in (small, large):
        procs, wall = _start(command, count)
        try:
            time.sleep(0.5)                              # the last instances' start-up settles
            totals[count] = total_pss_kib([p.pid for p in procs] + list(shared_roots))
        finally:
            _stop(procs)
    per = (totals[large] - totals[small]) / (large - small)
    return {"wall": wall, "pss_per_instance_kib": per, "instances_in_budget": int(BUDGET_MIB * 1024 // max(per, 1)),
            "count": large}
