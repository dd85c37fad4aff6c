"""``hermipy sweep CORPUS``: each case natively and under hermipy, compared byte for byte, differences classified.

A case runs natively once (a subprocess) and then under each variant (backend, with or without site rewriting):
``hermipy run --stats F ...`` forked from a warm ``hermipy.api.Runner`` (no interpreter start per run), each run
in a fresh temp dir prepared from the corpus. After the normalisers, stdout, stderr and the exit status must be identical; a difference is
put down to its cause (CAUSES, most telling first). Cases run in parallel on a local thread pool (-j N) or as
tasks of a Dask cluster (--dask ADDRESS: each case one task, results streamed back as they finish, a task
retried once). A case's results are cached under $XDG_CACHE_HOME/hermipy/sweep, keyed by the case, the
variants, the content of its program and hermipy's own code (--no-cache runs everything).
Reports: sweep_report.py. The JSON schema and the corpus format: docs/sweep.md.
"""
import dataclasses
import difflib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from hermipy.corpus import Case, prepare, program_missing
from hermipy.errors import HermipyError

# Causes of a difference, most telling first: a run's "cause" is the first of its causes in this order.
CAUSES = ("timeout", "hermipy-error", "unimplemented", "refused", "signal", "output")
UNIMPLEMENTED = re.compile(rb"^hermipy: warning: syscall (\w+) \(\d+\) is not implemented", re.M)
TRACEBACK = b"Traceback (most recent call last):"
DIFF_LINES = 8


@dataclass(frozen=True)
class Variant:
    backend: str
    rewrite: bool = True

    @property
    def name(self) -> str:
        return self.backend if self.rewrite else f"{self.backend}-no-rewrite"


@dataclass
class Run:
    status: int
    stdout: bytes
    stderr: bytes
    seconds: float
    pid: int = 0
    timeout: bool = False


def execute(argv: list[str], cwd: str, env: dict[str, str], stdin: bytes, timeout: float) -> Run:
    """Run ``argv`` in a session of its own; a timeout kills the whole session (a pipeline's every process). A
    death by signal N reads as a shell shows it: status 128+N and the signal's name on stderr."""
    started = time.monotonic()
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
    except OSError as err:
        return Run(127, b"", f"{argv[0]}: {err.strerror}\n".encode(), 0.0)
    try:
        stdout, stderr = proc.communicate(stdin, timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        _kill_session(proc.pid)
        stdout, stderr = proc.communicate()
        timed_out = True
    _kill_session(proc.pid)          # what a finished run left behind (a daemon holding nothing we wait for)
    status = proc.returncode
    if status < 0:
        stderr += f"{signal.strsignal(-status)}\n".encode()
        status = 128 - status
    return Run(status, stdout, stderr, time.monotonic() - started, proc.pid, timed_out)


def _kill_session(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


STRACE_TAIL = 40                # lines of a failing run's syscall trace kept in the reports


_RUNNER = None
_RUNNER_LOCK = threading.Lock()


def warm_runner():
    """This process's ``hermipy.api.Runner`` (made on first use: hermipy's modules loaded once per sweep or per
    Dask worker process); each hermipy run is a fork of this warm process rather than a new interpreter."""
    global _RUNNER
    with _RUNNER_LOCK:
        if _RUNNER is None:
            from hermipy.api import Runner
            _RUNNER = Runner()
        return _RUNNER


def run_hermipy(case: Case, variant: Variant, directory: str, stats: str, trace: str | None) -> Run:
    """``hermipy run --backend B [--no-rewrite] --stats F [--strace-file T] ARGV`` in ``directory``, forked from
    the warm runner, the guest's environment exactly the case's; past the case's timeout the run's process group
    is killed (status 137, as a shell shows a SIGKILL). Then whatever the run left in its process group is killed
    too (its pid, the guest's, is the first --stats line's)."""
    options = ["--stats", stats, *([] if variant.rewrite else ["--no-rewrite"]),
               *(["--strace-file", trace] if trace else [])]
    started = time.monotonic()
    try:
        status, stdout, stderr = warm_runner().run(case.argv, stdin=case.stdin, env=case.env, cwd=directory,
                                                   backend=variant.backend, options=options, timeout=case.timeout)
        run = Run(status, stdout, stderr, time.monotonic() - started)
    except TimeoutError:
        run = Run(128 + signal.SIGKILL, b"", b"Killed\n", time.monotonic() - started, timeout=True)
    return run


def run_in_tmp(case: Case, variant: Variant | None, trace: list[str] | None = None) -> tuple[Run, list[dict]]:
    """One run of ``case`` (natively when ``variant`` is None) in a fresh temp dir, output normalised;
    with the run's --stats lines. With a ``trace`` list, the run is traced and the trace's last lines go there."""
    with tempfile.TemporaryDirectory(prefix="hermipy-sweep.") as directory:
        work = os.path.join(directory, "case")
        os.mkdir(work)
        prepare(case, work)
        stats = os.path.join(directory, "stats.jsonl")
        if variant is None:
            run, lines = execute(case.argv, work, case.env, case.stdin, case.timeout), []
        else:
            strace = os.path.join(directory, "strace.txt") if trace is not None else None
            run = run_hermipy(case, variant, work, stats, strace)
            lines = read_stats(stats)
            run.pid = next((line["pid"] for line in lines if line.get("first")), 0)
            if run.pid:
                _kill_session(run.pid)
            if strace is not None:
                trace += _tail(strace, STRACE_TAIL)
    run.stdout, run.stderr = (normalise(case, data, stream, work, run.pid)
                              for data, stream in ((run.stdout, "stdout"), (run.stderr, "stderr")))
    return run, lines


def _tail(path: str, count: int) -> list[str]:
    try:
        with open(path, errors="replace") as f:
            return f.read().splitlines()[-count:]
    except OSError:
        return []


def read_stats(path: str) -> list[dict]:
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.endswith("\n")]    # a line cut short: a killed process
    except (OSError, ValueError):
        return []


def normalise(case: Case, data: bytes, stream: str, directory: str, pid: int) -> bytes:
    data = data.replace(os.fsencode(directory), b"<tmp>")
    for normalizer in case.normalize:
        data = normalizer.apply(data, stream, pid)
    return data


def first_difference(native: bytes, emulated: bytes, limit: int = DIFF_LINES) -> str:
    lines = list(difflib.unified_diff(native.decode(errors="replace").splitlines(),
                                      emulated.decode(errors="replace").splitlines(), "native", "hermipy",
                                      lineterm="", n=0))
    return "\n".join(lines[:limit + 2])


def merge_stats(lines: list[dict]) -> dict:
    """One run's profile, summed over its processes: calls and errors per syscall, the missing ones."""
    syscalls: dict[str, dict] = {}
    unimplemented: dict[str, int] = {}
    refused: dict[str, int] = {}
    for line in lines:
        for row in line.get("syscalls", []):
            into = syscalls.setdefault(row["name"], {"count": 0, "seconds": 0.0, "errors": {}})
            into["count"] += row["count"]
            into["seconds"] = round(into["seconds"] + row["seconds"], 6)
            for errno, n in row["errors"].items():
                into["errors"][errno] = into["errors"].get(errno, 0) + n
        for name, n in line.get("unimplemented", {}).items():
            unimplemented[name] = unimplemented.get(name, 0) + n
        for name, n in line.get("refused", {}).items():
            refused[name] = refused.get(name, 0) + n
    return {"processes": len(lines), "calls": sum(r["count"] for r in syscalls.values()),
            "kernel_seconds": round(sum(r["seconds"] for r in syscalls.values()), 6),
            "syscalls": syscalls, "unimplemented": unimplemented, "refused": refused}


def classify(native: Run, emulated: Run, stats: dict) -> list[dict]:
    """The causes of the difference between ``native`` and ``emulated`` (empty: identical), most telling first."""
    causes = []
    if emulated.timeout:
        causes.append({"kind": "timeout", "detail": "no result within the case's timeout"})
    native_lines = set(native.stderr.splitlines())
    own = [line for line in emulated.stderr.splitlines() if line.startswith(b"hermipy:")
           and line not in native_lines and b": warning: " not in line]
    if TRACEBACK in emulated.stderr and TRACEBACK not in native.stderr:
        last = emulated.stderr.rstrip().splitlines()[-1]
        own.append(last)
    if own:
        causes.append({"kind": "hermipy-error", "detail": own[0].decode(errors="replace")})
    missing = sorted({m.decode() for m in UNIMPLEMENTED.findall(emulated.stderr)} | set(stats["unimplemented"]))
    if missing:
        causes.append({"kind": "unimplemented", "syscalls": missing, "detail": ", ".join(missing)})
    if stats["refused"]:
        refused = sorted(stats["refused"])
        causes.append({"kind": "refused", "syscalls": refused, "detail": ", ".join(refused) + " (ENOSYS)"})
    if emulated.status > 128 and emulated.status != native.status and not emulated.timeout:
        name = signal.Signals(emulated.status - 128).name if emulated.status - 128 in _SIGNALS else "?"
        causes.append({"kind": "signal", "detail": f"{name} (exit status {emulated.status})"})
    parts = []
    if native.status != emulated.status:
        parts.append(f"exit status: native {native.status}, hermipy {emulated.status}")
    if native.stdout != emulated.stdout:
        parts.append("stdout:\n" + first_difference(native.stdout, emulated.stdout))
    if native.stderr != emulated.stderr:
        parts.append("stderr:\n" + first_difference(native.stderr, emulated.stderr))
    if parts and not causes:
        causes.append({"kind": "output", "detail": "; ".join(
            part if part.startswith("exit") else part.split(":", 1)[0] + " differs" for part in parts)})
    if causes:
        causes[0]["diff"] = "\n".join(parts)
    return causes


_SIGNALS = {s.value for s in signal.Signals}


def sweep_case(case: Case, variants: list[Variant]) -> list[dict]:
    """Every result of ``case``: one per variant."""
    base = {"case": case.name, "app": case.app, "tags": case.tags, "argv": case.argv}
    missing = program_missing(case)
    if missing is not None:
        return [{**base, "variant": v.name, "outcome": "skip", "detail": f"{missing}: not installed"}
                for v in variants]
    native, _ = run_in_tmp(case, None)
    skip = None
    if native.timeout:
        skip = f"natively no result within {case.timeout:g} s"
    elif case.status is not None and native.status != case.status:
        skip = f"natively exit status {native.status}, expected {case.status}"
    if skip is not None:
        return [{**base, "variant": v.name, "outcome": "skip", "detail": skip} for v in variants]
    results = []
    for variant in variants:
        emulated, lines = run_in_tmp(case, variant)
        stats = merge_stats(lines)
        causes = classify(native, emulated, stats)
        trace: list[str] = []
        if causes and causes[0]["kind"] != "timeout":
            run_in_tmp(case, variant, trace)        # once more, traced: the end of its syscall trace for the reports
        results.append({**base, "variant": variant.name, "outcome": "fail" if causes else "pass",
                        **({"strace_tail": trace} if trace else {}),
                        "cause": causes[0]["kind"] if causes else None, "causes": causes,
                        "native": {"status": native.status, "seconds": round(native.seconds, 3)},
                        "hermipy": {"status": emulated.status, "seconds": round(emulated.seconds, 3)},
                        "stats": stats})
    return results


def sweep(cases: list[Case], variants: list[Variant], jobs: int, progress=None, cache: "ResultCache | None" = None,
          dask: str | None = None) -> list[dict]:
    """Every result, in corpus order; ``progress(the case's results, cases done, cases)`` after each case. Cases
    whose results ``cache`` holds are not run; the others run on a local pool of ``jobs`` threads, or on the
    Dask cluster whose scheduler is at ``dask``."""
    done: dict[int, list[dict]] = {}
    todo = []
    for i, case in enumerate(cases):
        cached = cache.get(case, variants) if cache is not None else None
        if cached is not None:
            done[i] = cached
            if progress is not None:
                progress(cached, len(done), len(cases))
        else:
            todo.append(i)

    def finished(i: int, results: list[dict]) -> None:
        done[i] = results
        if cache is not None:
            cache.put(cases[i], variants, results)
        if progress is not None:
            progress(results, len(done), len(cases))

    if dask is not None:
        _sweep_on_dask(dask, [(i, cases[i]) for i in todo], variants, finished)
    else:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = {pool.submit(sweep_case, cases[i], variants): i for i in todo}
            try:
                for future in as_completed(futures):
                    finished(futures[future], future.result())
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    return [r for i in sorted(done) for r in done[i]]


DASK_CONNECT_TIMEOUT = 10


def _sweep_on_dask(address: str, cases: list[tuple[int, Case]], variants: list[Variant], finished) -> None:
    """Each case a task on the cluster (retried once if it fails; a dead worker's tasks are rescheduled by the
    scheduler), each result handed to ``finished`` as it arrives."""
    try:
        from distributed import Client, as_completed as dask_completed
    except ImportError:
        raise HermipyError("--dask: the Python package 'distributed' is not installed (pip install distributed)",
                           2) from None
    try:
        client = Client(address, timeout=DASK_CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as err:
        raise HermipyError(f"--dask {address}: cannot reach the scheduler ({err})", 2) from None
    try:
        futures = {client.submit(sweep_case, case, variants, pure=False, retries=1): i for i, case in cases}
        for future in dask_completed(list(futures), loop=client.loop):
            finished(futures[future], future.result())
    finally:
        client.close()


class ResultCache:
    """A case's results on disk, keyed by everything they depend on: the case as the corpus defines it, the
    variants, the content of the program it runs, and hermipy's version and code."""

    def __init__(self, directory: str):
        self.directory = directory
        self.hermipy = _hermipy_fingerprint()
        self._programs: dict[tuple, str] = {}

    def key(self, case: Case, variants: list[Variant]) -> str:
        definition = json.dumps(dataclasses.asdict(case), sort_keys=True, default=repr)
        parts = [self.hermipy, definition, ",".join(v.name for v in variants), self._program_hash(case)]
        return hashlib.sha256("\0".join(parts).encode(errors="surrogateescape")).hexdigest()

    def _program_hash(self, case: Case) -> str:
        path = shutil.which(case.argv[0], path=case.env.get("PATH", os.environ.get("PATH"))) or case.argv[0]
        try:
            st = os.stat(path)
        except OSError:
            return "missing"
        token = (path, st.st_size, st.st_mtime_ns, st.st_ino)
        if token not in self._programs:
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            self._programs[token] = digest.hexdigest()
        return self._programs[token]

    def _path(self, case: Case, variants: list[Variant]) -> str:
        return os.path.join(self.directory, self.key(case, variants) + ".json")

    def get(self, case: Case, variants: list[Variant]) -> list[dict] | None:
        try:
            with open(self._path(case, variants)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def put(self, case: Case, variants: list[Variant], results: list[dict]) -> None:
        """Keep the results, unless a run timed out (the next sweep tries again)."""
        if any(r.get("cause") == "timeout" for r in results):
            return
        path = self._path(case, variants)
        try:
            os.makedirs(self.directory, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=self.directory, delete=False, suffix=".tmp") as f:
                json.dump(results, f)
            os.replace(f.name, path)
        except OSError:
            pass                                # a cache that cannot be written only costs time


def cache_directory() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "hermipy", "sweep")


def _hermipy_fingerprint() -> str:
    """hermipy's version and the size and time of each of its source files: a changed checkout is another
    hermipy, whose results are not the old one's."""
    import hermipy
    from hermipy import __version__
    digest = hashlib.sha256(__version__.encode())
    root = os.path.dirname(os.path.abspath(hermipy.__file__))
    packages = [root] + [os.path.dirname(os.path.abspath(sys.modules[m].__file__))
                         for m in ("hermipy.syscalls", "hermipy.loader", "hermipy.rewriter") if _importable(m)]
    for directory in packages:
        for name in sorted(os.listdir(directory)):
            if name.endswith(".py"):
                st = os.stat(os.path.join(directory, name))
                digest.update(f"{directory}/{name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return digest.hexdigest()


def _importable(module: str) -> bool:
    import importlib
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def variants_of(backends: str | None, no_rewrite_too: bool) -> list[Variant]:
    """--backend and --no-rewrite-too as variants; a backend that cannot run here is a clear error."""
    from hermipy.kvm_backend import kvm_unusable_reason
    if backends is None:
        names = ["kvm", "unicorn"] if kvm_unusable_reason() is None else ["unicorn"]
    else:
        names = [b.strip() for b in backends.split(",") if b.strip()]
    for name in names:
        if name not in ("kvm", "unicorn"):
            raise HermipyError(f"--backend {name}: unknown backend (available: kvm, unicorn)", 2)
        if name == "kvm" and (reason := kvm_unusable_reason()) is not None:
            raise HermipyError(f"--backend kvm: KVM is not usable here ({reason})", 2)
    names = list(dict.fromkeys(names)) or ["unicorn"]
    return [Variant(n, rewrite) for n in names for rewrite in ((True, False) if no_rewrite_too else (True,))]


def sweep_command(args) -> int:
    """``hermipy sweep``: load, filter, run, report. 0: every compared run identical; 1: some differed."""
    from collections import Counter
    from hermipy import sweep_report
    from hermipy.corpus import load
    corpus = load(args.corpus)
    variants = variants_of(args.backend, args.no_rewrite_too)
    cases = corpus.cases
    if args.tag:
        cases = [c for c in cases if set(args.tag) & set(c.tags)]
    if args.only:
        try:
            only = re.compile(args.only)
        except re.error as err:
            raise HermipyError(f"--only {args.only}: {err}", 2) from None
        cases = [c for c in cases if only.search(c.name)]
    if not cases:
        raise HermipyError(f"{corpus.path}: no case left to run (--tag, --only)", 2)
    if args.jobs < 1:
        raise HermipyError("-j: at least 1", 2)
    started, clock = time.time(), time.monotonic()
    counts: Counter = Counter()
    live = sys.stderr.isatty()

    def progress(results, done, total):
        counts.update(r["outcome"] for r in results)
        if live:
            sys.stderr.write(sweep_report.progress_line(counts, done, total, time.monotonic() - clock))
            sys.stderr.flush()

    baseline = sweep_report.read_baseline(args.baseline) if args.baseline else None
    cache = None if args.no_cache else ResultCache(cache_directory())
    results = sweep(cases, variants, args.jobs, progress, cache, args.dask)
    if live:
        sys.stderr.write("\n")
    doc = sweep_report.document(corpus, [v.name for v in variants], args.jobs, started, time.monotonic() - clock,
                                results)
    if baseline is not None:
        doc["baseline"] = sweep_report.compare(baseline, results, args.baseline)
    for path, write in ((args.json, sweep_report.write_json), (args.html, sweep_report.write_html),
                        (args.junit, sweep_report.write_junit)):
        if path:
            try:
                write(doc, path)
            except OSError as err:
                raise HermipyError(f"{path}: {err.strerror}", 2) from None
    sys.stdout.write(sweep_report.terminal(doc, args.show))
    if baseline is not None:
        return 1 if doc["baseline"]["newly_failing"] else 0
    return 1 if any(r["outcome"] == "fail" for r in results) else 0
