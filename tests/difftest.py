"""Differential testing: run the same unmodified binary natively and under hermipy, compare everything.

stdout, stderr and the exit status must match byte for byte. A native run killed by signal N is
compared as a shell reports it: exit status 128+N and the signal's description on stderr.
"""
import fcntl
import os
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTBINS = ROOT / "testbins"
BUILD = ROOT / "tests" / ".build"
TIMEOUT = 120

# name -> compiler command (the binary path and source are appended)
VARIANTS = {
    "static": ["gcc", "-static", "-O2", "-w"],
    "static-pie": ["gcc", "-static-pie", "-fPIE", "-O2", "-w"],
    "musl": ["musl-gcc", "-static", "-O2", "-w"],
}
# Built on request only (not in every test's matrix): glibc's dynamic linking, ld.so and libc.so.6 included.
EXTRA_VARIANTS = {
    "dynamic": ["gcc", "-O2", "-w", "-pthread"],
}


@dataclass
class Result:
    status: int
    stdout: bytes
    stderr: bytes


def _stale(out: Path, src: Path) -> bool:
    return not out.exists() or out.stat().st_mtime < src.stat().st_mtime


def build(name: str, variant: str) -> Path:
    """Compile testbins/<name>.c for one variant into tests/.build (rebuilt when the source is newer).

    Safe under pytest-xdist: one build directory lock serialises compilers across worker processes,
    and the binary appears atomically (compiled to a temporary name, then renamed).
    """
    src = TESTBINS / f"{name}.c"
    out = BUILD / variant / name
    if not _stale(out, src):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(BUILD / f".lock-{variant}-{name}", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _stale(out, src):                       # another worker may have built it meanwhile
            tmp = out.with_name(f".{name}.{os.getpid()}.tmp")
            cmd = (VARIANTS.get(variant) or EXTRA_VARIANTS[variant]) + ["-o", str(tmp), str(src)]
            if variant != "musl":
                cmd.append("-lm")
            proc = subprocess.run(cmd, capture_output=True)
            if proc.returncode:
                raise RuntimeError(f"building {name} ({variant}) failed:\n{proc.stderr.decode(errors='replace')}")
            tmp.rename(out)
    return out


def available_variants() -> list[str]:
    return [v for v in VARIANTS if shutil.which(VARIANTS[v][0])]


def build_all(names=None, variants=None) -> None:
    """Build every testbin (or ``names``) for every available variant, in parallel."""
    if names is None:
        names = sorted(p.stem for p in TESTBINS.glob("*.c"))
    variants = available_variants() if variants is None else variants
    jobs = [(n, v) for n in names for v in variants]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(lambda job: build(*job), jobs))


def run_native(argv, *, cwd=None, stdin=b"", env=None) -> Result:
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, input=stdin, env=env, capture_output=True,
                          timeout=TIMEOUT)
    if proc.returncode < 0:
        signo = -proc.returncode
        return Result(128 + signo, proc.stdout, proc.stderr + f"{signal.strsignal(signo)}\n".encode())
    return Result(proc.returncode, proc.stdout, proc.stderr)


BACKEND = None       # set by conftest's hermipy_backend fixture: the backend a test runs hermipy on


def hermipy_command(*options: str) -> list[str]:
    chosen = ("--backend", BACKEND) if BACKEND and "--backend" not in options else ()
    return [sys.executable, "-m", "hermipy", "run", *chosen, *options]


# Development aid while syscalls are written in parallel: HERMIPY_DIFFTEST_IGNORE_WARNINGS=1 drops hermipy's
# "syscall X is not implemented" warnings from the emulated stderr before comparing. Never set in CI.
IGNORE_WARNINGS = os.environ.get("HERMIPY_DIFFTEST_IGNORE_WARNINGS") == "1"


def run_hermipy(argv, *, cwd=None, stdin=b"", env=None, options=()) -> Result:
    command = hermipy_command(*options) + [str(a) for a in argv]
    try:
        proc = subprocess.run(command, cwd=cwd, input=stdin, env=env, capture_output=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as err:      # say where it stopped: all the output, not a repr of chunks
        raise AssertionError(f"hermipy timed out after {TIMEOUT} s: {command}\n--- stdout\n"
                             f"{(err.stdout or b'').decode(errors='replace')}\n--- stderr\n"
                             f"{(err.stderr or b'').decode(errors='replace')}") from None
    stderr = proc.stderr
    if IGNORE_WARNINGS:
        stderr = b"".join(line for line in stderr.splitlines(keepends=True)
                          if not (line.startswith(b"hermipy: warning: syscall") and b"not implemented" in line))
    return Result(proc.returncode, proc.stdout, stderr)


def empty_dir(directory: str) -> None:
    """A ``setup`` for programs that fill the fresh temporary directory they run in themselves."""


def run_both(argv, *, cwd=None, stdin=b"", env=None, options=(), setup=None) -> tuple[Result, Result]:
    """(native, hermipy) results; with ``setup(dir)`` each runs in a fresh temp cwd it prepared, and the
    temp dir's path in the output reads as <tmp>."""
    if setup is None:
        return (run_native(argv, cwd=cwd, stdin=stdin, env=env),
                run_hermipy(argv, cwd=cwd, stdin=stdin, env=env, options=options))
    import tempfile
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        setup(a)
        setup(b)
        native = run_native(argv, cwd=a, stdin=stdin, env=env)
        emulated = run_hermipy(argv, cwd=b, stdin=stdin, env=env, options=options)
    return _untmp(native, a), _untmp(emulated, b)


def _untmp(result: Result, tmp: str) -> Result:
    return Result(result.status, result.stdout.replace(tmp.encode(), b"<tmp>"),
                  result.stderr.replace(tmp.encode(), b"<tmp>"))


def assert_results_same(argv, native: Result, emulated: Result) -> Result:
    assert emulated.stderr == native.stderr, f"stderr differs for {argv}:\n{_diff(native.stderr, emulated.stderr)}"
    assert emulated.stdout == native.stdout, f"stdout differs for {argv}:\n{_diff(native.stdout, emulated.stdout)}"
    assert emulated.status == native.status, f"exit status differs for {argv}: native {native.status}, " \
                                             f"hermipy {emulated.status}"
    return native


def assert_same(argv, *, cwd=None, stdin=b"", env=None, options=(), setup=None) -> Result:
    """Run natively and under hermipy (``setup(dir)`` prepares a fresh cwd for each when given); stdout,
    stderr and exit status must be identical. Returns the native result."""
    native, emulated = run_both(argv, cwd=cwd, stdin=stdin, env=env, options=options, setup=setup)
    return assert_results_same(argv, native, emulated)


def reported_missing(stderr: bytes) -> list[str]:
    """Syscall names hermipy warned about as not implemented."""
    import re
    return [m.decode() for m in re.findall(rb"hermipy: warning: syscall (\w+) \(\d+\) is not implemented", stderr)]


def _diff(native: bytes, emulated: bytes, limit: int = 40) -> str:
    """A short unified diff (native -> hermipy) for assertion messages."""
    import difflib
    lines = list(difflib.unified_diff(native.decode(errors="replace").splitlines(),
                                      emulated.decode(errors="replace").splitlines(),
                                      "native", "hermipy", lineterm="", n=1))
    return "\n".join(lines[:limit] + ([f"... ({len(lines) - limit} more lines)"] if len(lines) > limit else []))


def unimplemented(*names: str) -> list[str]:
    """Those of the named syscalls that hermipy's table has no handler for yet."""
    from hermipy.syscalls.table import BY_NAME, UNIMPLEMENTED, load_handlers
    load_handlers()
    return [n for n in names if BY_NAME[n].status == UNIMPLEMENTED]


def pending(*names: str, owner: str = "another area"):
    """xfail(strict=False) while any of the named syscalls is still unimplemented (work in someone else's
    area); once they all exist the test counts in full."""
    import pytest
    missing = unimplemented(*names)
    return pytest.mark.xfail(bool(missing), strict=False,
                             reason=f"needs {', '.join(missing)} ({owner})" if missing else "")
