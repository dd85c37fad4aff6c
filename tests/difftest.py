"""Differential testing: run the same unmodified binary natively and under hermipy, compare everything.

stdout, stderr and the exit status must match byte for byte. A native run killed by signal N is
compared as a shell reports it: exit status 128+N and the signal's description on stderr.
"""
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


@dataclass
class Result:
    status: int
    stdout: bytes
    stderr: bytes


def build(name: str, variant: str) -> Path:
    """Compile testbins/<name>.c for one variant into tests/.build (rebuilt when the source is newer)."""
    src = TESTBINS / f"{name}.c"
    out = BUILD / variant / name
    if out.exists() and out.stat().st_mtime >= src.stat().st_mtime:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    cmd = VARIANTS[variant] + ["-o", str(tmp), str(src)]
    if variant != "musl":
        cmd.append("-lm")
    subprocess.run(cmd, check=True, capture_output=True)
    tmp.rename(out)
    return out


def build_all(names, variants=tuple(VARIANTS)) -> None:
    jobs = [(n, v) for n in names for v in variants if v != "musl" or shutil.which("musl-gcc")]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(lambda job: build(*job), jobs))


def run_native(argv, *, cwd=None, stdin=b"", env=None) -> Result:
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, input=stdin, env=env, capture_output=True,
                          timeout=TIMEOUT)
    if proc.returncode < 0:
        signo = -proc.returncode
        return Result(128 + signo, proc.stdout, proc.stderr + f"{signal.strsignal(signo)}\n".encode())
    return Result(proc.returncode, proc.stdout, proc.stderr)


def hermipy_command(*options: str) -> list[str]:
    return [sys.executable, "-m", "hermipy", "run", *options]


def run_hermipy(argv, *, cwd=None, stdin=b"", env=None, options=()) -> Result:
    proc = subprocess.run(hermipy_command(*options) + [str(a) for a in argv], cwd=cwd, input=stdin, env=env,
                          capture_output=True, timeout=TIMEOUT)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def assert_same(argv, *, cwd=None, stdin=b"", env=None, options=(), setup=None) -> Result:
    """Run natively and under hermipy (``setup(dir)`` prepares a fresh cwd for each when given)."""
    if setup is not None:
        import tempfile
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            setup(a)
            setup(b)
            native = run_native(argv, cwd=a, stdin=stdin, env=env)
            emulated = run_hermipy(argv, cwd=b, stdin=stdin, env=env, options=options)
            native_out = native.stdout.replace(a.encode(), b"<tmp>")
            emulated_out = emulated.stdout.replace(b.encode(), b"<tmp>")
            native = Result(native.status, native_out, native.stderr.replace(a.encode(), b"<tmp>"))
            emulated = Result(emulated.status, emulated_out, emulated.stderr.replace(b.encode(), b"<tmp>"))
    else:
        native = run_native(argv, cwd=cwd, stdin=stdin, env=env)
        emulated = run_hermipy(argv, cwd=cwd, stdin=stdin, env=env, options=options)
    assert emulated.stderr == native.stderr, f"stderr differs for {argv}"
    assert emulated.stdout == native.stdout, f"stdout differs for {argv}"
    assert emulated.status == native.status, f"exit status differs for {argv}"
    return native
