"""Differential runs with a watchdog, for tests whose guest may hang (threads, signals, timers, shared memory).

``assert_same(argv, tmp_path)`` runs natively and under hermipy (on the ``hermipy_backend`` fixture's backend), each
in a session of its own with a timeout (TIMEOUT s): a run that hangs fails with all it printed so far, the Python
stack of every hermipy thread (a faulthandler dump TRACEBACK_AT s in) and the end of hermipy's syscall trace, which
says what each guest thread or process was last doing. A difference shows both runs in full, and the syscalls
hermipy warned it lacks first.
"""
import os
import signal
import subprocess
from pathlib import Path

import pytest

import difftest
from difftest import Result

TIMEOUT = 60                 # seconds per run, native or hermipy
TRACEBACK_AT = TIMEOUT - 5   # when a hung hermipy dumps the Python stack of every thread to its stderr
STRACE_TAIL = 60             # trace lines shown in a failure message


# hermipy started with a faulthandler watchdog: every Python thread's stack goes to stderr TRACEBACK_AT seconds in.
# All signals are blocked while the watchdog thread starts, so it never takes a signal meant for the guest.
_BOOT = ("import faulthandler, runpy, signal, sys\n"
         "old = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())\n"
         f"faulthandler.dump_traceback_later({TRACEBACK_AT}, exit=False)\n"
         "signal.pthread_sigmask(signal.SIG_SETMASK, old)\n"
         "sys.argv[0] = 'hermipy'\n"
         "runpy.run_module('hermipy', run_name='__main__', alter_sys=True)\n")


def _text(data: bytes | None) -> str:
    return (data or b"").decode(errors="replace")


def _strace_tail(trace: Path | None) -> str:
    if trace is None or not trace.exists():
        return ""
    lines = trace.read_text(errors="replace").splitlines()
    return f"\n--- last {min(len(lines), STRACE_TAIL)} of {len(lines)} syscall trace lines\n" + \
        "\n".join(lines[-STRACE_TAIL:])


def _run(command, *, stdin=b"", cwd=None, env=None, what: str, trace: Path | None = None) -> Result:
    """Run ``command`` in a session of its own; after TIMEOUT seconds kill the whole session and fail with all it
    printed. A native death by signal N reads as difftest.run_native reports it (128+N, the signal's name)."""
    proc = subprocess.Popen([str(a) for a in command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=cwd, env=env, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(stdin, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        stdout, stderr = proc.communicate()
        raise AssertionError(f"{what} timed out after {TIMEOUT} s: {command}\n--- stdout so far\n{_text(stdout)}"
                             f"\n--- stderr so far\n{_text(stderr)}{_strace_tail(trace)}") from None
    if proc.returncode < 0:
        signo = -proc.returncode
        return Result(128 + signo, stdout, stderr + f"{signal.strsignal(signo)}\n".encode())
    return Result(proc.returncode, stdout, stderr)


def run_native(argv, **kw) -> Result:
    return _run(argv, what="native run", **kw)


def run_hermipy(argv, tmp_path: Path, traced: bool = True, **kw) -> tuple[Result, Path | None]:
    """hermipy's run of ``argv``, with its syscall trace unless not ``traced`` (a traced run answers every call in
    Python: in-guest answers and trampolines are off)."""
    trace = tmp_path / f"strace-{os.getpid()}-{len(list(tmp_path.glob('strace-*')))}" if traced else None
    command = difftest.hermipy_command(*(("--strace-file", str(trace)) if traced else ()))
    assert command[1:3] == ["-m", "hermipy"], command
    command = [command[0], "-c", _BOOT] + command[3:] + [str(a) for a in argv]
    result = _run(command, what="hermipy", trace=trace, **kw)
    stderr = result.stderr
    if difftest.IGNORE_WARNINGS:
        stderr = b"".join(line for line in stderr.splitlines(keepends=True)
                          if not (line.startswith(b"hermipy: warning: syscall") and b"not implemented" in line))
    return Result(result.status, result.stdout, stderr), trace


def assert_same(argv, tmp_path: Path, *, stdin=b"", cwd=None, env=None, traced: bool = True) -> Result:
    """Native and hermipy (on the fixture's backend) must agree on stdout, stderr and exit status. A failure shows
    both runs in full and the end of hermipy's syscall trace (when ``traced``); syscalls hermipy warned it lacks
    come first."""
    native = run_native(argv, stdin=stdin, cwd=cwd, env=env)
    emulated, trace = run_hermipy(argv, tmp_path, traced, stdin=stdin, cwd=cwd, env=env)
    if (native.status, native.stdout, native.stderr) != (emulated.status, emulated.stdout, emulated.stderr):
        missing = sorted(set(difftest.reported_missing(emulated.stderr)))
        lacking = f"hermipy lacks {', '.join(missing)}\n" if missing else ""
        pytest.fail(f"{lacking}native and hermipy ({difftest.BACKEND}) differ for {[str(a) for a in argv]}\n"
                    f"--- exit status: native {native.status}, hermipy {emulated.status}\n"
                    f"--- stdout diff\n{difftest._diff(native.stdout, emulated.stdout, limit=80)}\n"
                    f"--- stderr diff\n{difftest._diff(native.stderr, emulated.stderr, limit=80)}\n"
                    f"--- native stdout\n{_text(native.stdout)}\n--- native stderr\n{_text(native.stderr)}\n"
                    f"--- hermipy stdout\n{_text(emulated.stdout)}\n--- hermipy stderr\n{_text(emulated.stderr)}"
                    f"{_strace_tail(trace)}", pytrace=False)
    return native
