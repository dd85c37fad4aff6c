"""Blocking calls meeting a signal, differentially (testbins/interrupt.c, one section per run), as signal(7) lists
them: with a handler installed with and without SA_RESTART, a call blocked in read/readv/write on a pipe, a socket
or a pty, recv/recvmsg/send, accept, connect, wait4/waitid, flock, fcntl F_SETLKW/F_OFD_SETLKW or FUTEX_WAIT is
restarted (and then gets what it waited for) or fails with EINTR; a partial pipe write returns what it wrote;
poll/ppoll/select/pselect/epoll_wait/epoll_pwait, nanosleep/clock_nanosleep (the time left), pause, sigsuspend,
rt_sigtimedwait, a timed FUTEX_WAIT, socket calls with SO_RCVTIMEO/SO_SNDTIMEO and System V IPC's semop/semtimedop/
msgrcv/msgsnd always fail with EINTR; an ignored or blocked signal interrupts nothing. The signal comes from a timer
(setitimer) or from another process (kill).
Stopped (SIGSTOP, or SIGTSTP's default action) and continued without any handler, most calls go on, but
epoll_wait/epoll_pwait, sigtimedwait/sigwaitinfo, semop/semtimedop and socket calls with SO_RCVTIMEO/SO_SNDTIMEO
fail with EINTR (signal(7), "Interruption of system calls and library functions by stop signals").

The testbin orders events without timing (its completer child watches the caller's threads sleep in /proc) and
guards each case (5 s). Each run also has a timeout (60 s) and runs in a session of its own; at the timeout the
session is killed and the failure shows all the run printed, the Python stack of every hermipy thread (a
faulthandler dump shortly before) and the end of hermipy's syscall trace: what each process was doing.
"""
import pytest

from difftest import VARIANTS, build
from watchdog import assert_same

pytestmark = pytest.mark.usefixtures("hermipy_backend")     # each test on every CPU backend

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
    "ipc": ["semop, SA_RESTART, timer: -1 EINTR, handler ran 1, then 0",
            "semtimedop (timeout 5 s), SA_RESTART, kill: -1 EINTR, handler ran 1, then 0",
            "msgrcv, SA_RESTART, kill: -1 EINTR, handler ran 1, then 5",
            "msgsnd to a full queue, SA_RESTART, timer: -1 EINTR, handler ran 1, then 0"],
    "nohandler": ["read pipe, SIG_IGN, kill: 5",
                  "poll (no timeout), blocked, timer: 1, pending yes, handler ran 1 once unblocked",
                  "semop, SIG_IGN, kill: 0", "msgrcv, blocked, timer: 5, pending yes, handler ran 1 once unblocked"],
    "stop": ["read pipe, SIGSTOP then SIGCONT: went on, 5",
             "futex FUTEX_WAIT (timeout 5 s), SIGTSTP then SIGCONT: went on, 0",
             "poll (no timeout), SIGTSTP then SIGCONT: went on, 1",
             "epoll_wait (no timeout), SIGSTOP then SIGCONT: -1 EINTR, then 1",
             "epoll_pwait (no timeout), SIGTSTP then SIGCONT: -1 EINTR, then 1",
             "sigtimedwait SIGUSR2 (timeout 5 s), SIGSTOP then SIGCONT: -1 EINTR, then 12",
             "sigwaitinfo SIGUSR2, SIGTSTP then SIGCONT: -1 EINTR, then 12",
             "recv (SO_RCVTIMEO 5 s), SIGSTOP then SIGCONT: -1 EINTR, then 5",
             "accept (SO_RCVTIMEO 5 s), SIGTSTP then SIGCONT: -1 EINTR, then 0",
             "semop, SIGTSTP then SIGCONT: -1 EINTR, then 0",
             "semtimedop (timeout 5 s), SIGSTOP then SIGCONT: -1 EINTR, then 0",
             "msgrcv, SIGTSTP then SIGCONT: went on, 5",
             "msgsnd to a full queue, SIGTSTP then SIGCONT: went on, 0"],
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("section", FACTS)
def test_interrupt(section, variant, tmp_path):
    native = assert_same([build("interrupt", variant), section], tmp_path)
    out = native.stdout.decode()
    for fact in FACTS[section]:
        assert fact in out, f"the native run did not print {fact!r}:\n{out}"
    assert native.status == 0 and out.endswith("done\n")
