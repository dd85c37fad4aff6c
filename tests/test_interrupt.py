"""Blocking calls meeting a signal, differentially (testbins/interrupt.c, one section per run), as signal(7) lists
them: with a handler installed with and without SA_RESTART, a call blocked in read/readv/write on a pipe, a socket
or a pty, recv/recvmsg/send, accept, connect, wait4/waitid, flock, fcntl F_SETLKW/F_OFD_SETLKW or FUTEX_WAIT is
restarted (and then gets what it waited for) or fails with EINTR; a partial pipe write returns what it wrote;
poll/ppoll/select/pselect/epoll_wait/epoll_pwait, nanosleep/clock_nanosleep (the time left), pause, sigsuspend,
rt_sigtimedwait, a timed FUTEX_WAIT and socket calls with SO_RCVTIMEO/SO_SNDTIMEO always fail with EINTR; an ignored
or blocked signal interrupts nothing. The signal comes from a timer (setitimer) or from another process (kill).

The testbin orders events without timing (its completer child watches the caller's threads sleep in /proc) and
guards each case (5 s). Each run also has a timeout (60 s) and runs in a session of its own; at the timeout the
session is killed and the failure shows all the run printed, the Python stack of every hermipy thread (a
faulthandler dump shortly before) and the end of hermipy's syscall trace: what each process was doing.
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

# section -> lines its native run prints (so that a wrong-but-identical result cannot pass)
FACTS = {
    "pipe": ["read pipe, SA_RESTART, kill: restarted, 5, handler ran 1",
             "readv pipe, no SA_RESTART, timer: -1 EINTR, handler ran 1, then 5",
             "write 100 bytes to a full pipe, SA_RESTART, timer: restarted, 100, handler ran 1",
             "write 200000 bytes to an empty pipe (partial), SA_RESTART, kill: 65536, handler ran 1"],
    "socket": ["recv, SA_RESTART, timer: restarted, 5, handler ran 1",
               "send 100 bytes to a full socket, no SA_RESTART, kill: -1 EINTR, handler ran 1, then 100",
               "accept, SA_RESTART, kill: restarted, 0, handler ran 1",
               "connect (listener's backlog full), no SA_RESTART, timer: -1 EINTR, handler ran 1, then 0"],
    "timeo": ["read socket, SO_RCVTIMEO 30 ms, no data: -1 EAGAIN; recv: -1 EAGAIN; both took >= 60 ms: yes",
              "read socket (SO_RCVTIMEO 5 s), SA_RESTART, kill: -1 EINTR, handler ran 1, then 5",
              "connect (SO_SNDTIMEO 5 s), SA_RESTART, timer: -1 EINTR, handler ran 1, then 0"],
    "tty": ["read pty slave (canonical), SA_RESTART, timer: restarted, 6, handler ran 1"],
    "wait": ["wait4 (the child's exit status), SA_RESTART, kill: restarted, 7, handler ran 1",
             "waitid (the child's exit status), no SA_RESTART, timer: -1 EINTR, handler ran 1, then 7"],
    "lock": ["flock LOCK_EX, SA_RESTART, timer: restarted, 0, handler ran 1",
             "fcntl F_SETLKW, no SA_RESTART, kill: -1 EINTR, handler ran 1, then 0"],
    "futex": ["futex FUTEX_WAIT, SA_RESTART, kill: restarted, 0, handler ran 1",
              "futex FUTEX_WAIT (timeout 5 s), SA_RESTART, timer: -1 EINTR, handler ran 1, then 0"],
    "poll": ["poll (no timeout), SA_RESTART, kill: -1 EINTR, handler ran 1, then 1",
             "select (timeout 5 s), SA_RESTART, timer: -1 EINTR (timeval counted down: yes), handler ran 1, then 1",
             "epoll_wait (no timeout), SA_RESTART, timer: -1 EINTR, handler ran 1, then 1"],
    "sleep": ["nanosleep 5 s, SA_RESTART, kill: -1 EINTR (time left in (0, 5 s): yes), handler ran 1",
              "pause, SA_RESTART, timer: -1 EINTR, handler ran 1",
              "sigtimedwait SIGUSR2 (timeout 5 s), SA_RESTART, kill: -1 EINTR, handler ran 1, then 12"],
    "nohandler": ["read pipe, SIG_IGN, kill: 5",
                  "poll (no timeout), blocked, timer: 1, pending yes, handler ran 1 once unblocked"],
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
def test_interrupt(section, variant, tmp_path):
    native = assert_same([build("interrupt", variant), section], tmp_path)
    out = native.stdout.decode()
    for fact in FACTS[section]:
        assert fact in out, f"the native run did not print {fact!r}:\n{out}"
    assert native.status == 0 and out.endswith("done\n")
