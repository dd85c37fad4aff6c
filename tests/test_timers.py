"""Timers, differentially (testbins/timers.c, one section per run): SIGALRM from alarm and setitimer interrupting a
busy loop; ITIMER_VIRTUAL/ITIMER_PROF in a busy loop, getitimer counting down, periodic itimers; timer_create on
CLOCK_REALTIME, MONOTONIC, BOOTTIME, PROCESS_CPUTIME_ID and THREAD_CPUTIME_ID with SIGEV_SIGNAL (the siginfo), SIGEV_NONE,
SIGEV_THREAD_ID to another thread and the C library's SIGEV_THREAD; timer_settime relative, absolute and periodic;
overruns while the signal is blocked (one queued signal per timer), expiries dropped when their timer is set again or
deleted (Linux 6.13+: the host kernel's behaviour is what the native run shows); errors; execve keeping alarm and
itimers but not POSIX timers, a fork child inheriting none; nanosleep/clock_nanosleep interrupted by a timer (EINTR
and the time left, none written for TIMER_ABSTIME); a timerfd alongside a POSIX timer. And testbins/prof_compute.c:
computation under SIGPROF every 200 us whose output is exact counts and checksums (issue 11: on Unicorn, a stop for
a signal that landed just after a read-modify-write instruction's store ran that instruction again).

The testbin prints bounds only, with the slack it states: a real-time expiry is never early and its handler runs
within 250 ms; a CPU-time expiry comes after at least 90% of the CPU time set on a CPU clock, half of it for
ITIMER_VIRTUAL/ITIMER_PROF (charged by whole ticks), as the process's CPU clock measures it: hermipy's host CPU time,
which is why the bounds hold on both backends (see sys_timer.py).

Every run has a timeout (60 s) and runs in a session of its own; at the timeout the session is killed and the
failure shows all the run printed (the testbin's stdout is line-buffered), the Python stack of every hermipy thread
(a faulthandler dump shortly before) and the end of hermipy's syscall trace: what each process was doing.
"""
import os
import signal
import subprocess
from pathlib import Path

import pytest

import difftest
from difftest import VARIANTS, Result, build

pytestmark = pytest.mark.usefixtures("hermipy_backend")     # each test on every CPU backend

TIMEOUT = 60                 # seconds per run, native or hermipy
TRACEBACK_AT = TIMEOUT - 5   # when a hung hermipy dumps the Python stack of every thread to its stderr
STRACE_TAIL = 60             # trace lines shown in a failure message

# section -> a line its native run prints (so that a wrong-but-identical result cannot pass)
FACTS = {
    "alarm": "not before 1 s: yes, handler within 250 ms of the expiry: yes",
    "itimer_cpu": "ITIMER_PROF 100 ms in a busy loop: handler ran 1 time(s), signal SIGPROF\n"
                  "  after >= 50 ms of CPU time: yes, before 1 s of it: yes",
    "itimer_periodic": "ITIMER_VIRTUAL every 20 ms: 5 expiries in a busy loop, then disarmed; 5 x 20 ms took >= 50 ms "
                       "of CPU time: yes",
    "getitimer": "ran down < 20 ms during a 100 ms sleep: yes",
    "posix_clocks": "CLOCK_THREAD_CPUTIME_ID: signal SIGRTMIN+2, si_code SI_TIMER yes, si_value 1004, si_overrun 0, "
                    "si_timerid the timer's yes\n  after >= 27 ms of CPU time: yes",
    "sigev_none": "after its expiry: value 0, no signal yes, overrun 0",
    "thread_id": "handler ran 1 time(s), in the target thread yes (not main yes), si_value 55, si_code SI_TIMER yes\n"
                 "  expiry after the target thread ended: handled no",
    "settime": "TIMER_ABSTIME now + 40 ms: gettime is relative, in (0, 40 ms] yes",
    "overrun": "si_overrun >= 5 yes; another one queued: EAGAIN (one signal per timer)",
    "errors": "timer_settime NULL value: -1 EINVAL",
    "fork": "child: ITIMER_REAL 0, ITIMER_VIRTUAL 0, ITIMER_PROF 0\n  child: alarm(0) 0",
    "sleep": "clock_nanosleep TIMER_ABSTIME now + 1 s: EINTR, remaining untouched yes",
    "timerfd": "read 8, expirations 1, not before 150 ms yes, the timer's handler ran meanwhile yes",
    "exec": "timer_gettime of the old image's timer: -1 EINVAL",
}

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


def _run(command, *, what: str, trace: Path | None = None) -> Result:
    """Run ``command`` in a session of its own; after TIMEOUT seconds kill the whole session and fail with all it
    printed. A death by signal N reads as difftest.run_native reports it (128+N, the signal's name)."""
    proc = subprocess.Popen([str(a) for a in command], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        raise AssertionError(f"{what} timed out after {TIMEOUT} s: {command}\n--- stdout so far\n{_text(stdout)}"
                             f"\n--- stderr so far\n{_text(stderr)}{_strace_tail(trace)}") from None
    if proc.returncode < 0:
        signo = -proc.returncode
        return Result(128 + signo, stdout, stderr + f"{signal.strsignal(signo)}\n".encode())
    return Result(proc.returncode, stdout, stderr)


def assert_same(argv, tmp_path: Path) -> Result:
    """Native and hermipy (on the fixture's backend) agree on stdout, stderr and exit status; a failure shows both
    runs in full and the end of hermipy's syscall trace."""
    native = _run(argv, what="native run")
    trace = tmp_path / "strace"
    command = difftest.hermipy_command("--strace-file", str(trace))
    assert command[1:3] == ["-m", "hermipy"], command
    emulated = _run([command[0], "-c", _BOOT] + command[3:] + list(argv), what="hermipy", trace=trace)
    if (native.status, native.stdout, native.stderr) != (emulated.status, emulated.stdout, emulated.stderr):
        pytest.fail(f"native and hermipy ({difftest.BACKEND}) differ for {[str(a) for a in argv]}\n"
                    f"--- exit status: native {native.status}, hermipy {emulated.status}\n"
                    f"--- stdout diff\n{difftest._diff(native.stdout, emulated.stdout, limit=80)}\n"
                    f"--- stderr diff\n{difftest._diff(native.stderr, emulated.stderr, limit=80)}\n"
                    f"--- native stdout\n{_text(native.stdout)}\n--- hermipy stderr\n{_text(emulated.stderr)}"
                    f"{_strace_tail(trace)}", pytrace=False)
    return native


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("section", FACTS)
def test_timers(section, variant, tmp_path):
    native = assert_same([build("timers", variant), section], tmp_path)
    assert FACTS[section] in native.stdout.decode()
    assert native.status == 0


@pytest.mark.parametrize("variant", VARIANTS)
def test_prof_over_computation(variant, tmp_path):
    """Hundreds of signals over add/xadd/cmpxchg/xchg on memory and mixed C work: the counts and checksums are the
    native ones, and no compare-and-swap without a rival failed."""
    native = assert_same([build("prof_compute", variant)], tmp_path)
    assert ", 0 failed\n" in native.stdout.decode() and "SIGPROF handled: yes\n" in native.stdout.decode()
    assert native.status == 0
