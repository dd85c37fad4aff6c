"""`hermipy serve` and `hermipy run --server`: runs through the warm server are differential tests too (the same
program natively and through the server, on each backend), plus what only a server has: forwarded signals, a
client that dies, another uid, a malformed request, a clean stop.

One server per module, in a temp dir, stopped (SIGTERM) at the end; every wait has a timeout and says what it
waited for."""
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

import pytest

import difftest
from difftest import assert_same, build, run_native

pytestmark = pytest.mark.usefixtures("hermipy_backend")

BUSYBOX = "/bin/busybox"
TIMEOUT = 60


@pytest.fixture(scope="session")
def c_client(tmp_path_factory) -> str:
    """hermipy/client.c built as setup.py builds the installed `hermipy` command, for this interpreter."""
    path = str(tmp_path_factory.mktemp("c-client") / "hermipy")
    python = "".join(f"\\{byte:03o}" for byte in os.fsencode(sys.executable))
    source = str(difftest.ROOT / "hermipy" / "client.c")
    built = subprocess.run(["gcc", "-O2", "-Wall", "-Werror", "-o", path, source, f'-DHERMIPY_PYTHON="{python}"'],
                           capture_output=True, text=True, timeout=TIMEOUT)
    assert built.returncode == 0, built.stderr
    return path


@pytest.fixture(scope="module", params=["python-client", "c-client"])
def client_program(request, c_client):
    """Which client the module's runs go through: hermipy/client.py (`python -m hermipy`) or hermipy/client.c
    (the installed `hermipy` where a C compiler was found); both must make every run the same."""
    if request.param == "python-client":
        yield [sys.executable, "-m", "hermipy"]
        return

    python_command = difftest.hermipy_command

    def through_c_client(*options: str) -> list[str]:
        return [c_client] + python_command(*options)[3:]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(difftest, "hermipy_command", through_c_client)
        yield [c_client]


@pytest.fixture(scope="module")
def server(client_program):
    """The socket of a `hermipy serve` started for this module (once per client); stopped with SIGTERM at the end,
    when its socket must be gone and its status 0. Its directory is reachable by another uid
    (test_other_uid_refused): a directory of its own under /tmp, not pytest's (0700)."""
    directory = tempfile.mkdtemp(prefix="hermipy-serve-test-")
    os.chmod(directory, 0o755)
    path = os.path.join(directory, "hermipy.sock")
    proc = subprocess.Popen([sys.executable, "-m", "hermipy", "serve", "--socket", path], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ready = _read_line_within(proc.stderr, 30)
    assert ready == f"hermipy serve: listening on {path}\n".encode(), f"server did not start: {ready!r}"
    yield path
    proc.send_signal(signal.SIGTERM)
    try:
        status = proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("the server did not stop within 20 s of SIGTERM") from None
    assert status == 0, f"server exited with {status}: {proc.stderr.read().decode(errors='replace')}"
    assert not os.path.exists(path), "the server left its socket behind"
    os.rmdir(directory)


def _read_line_within(stream, seconds: float) -> bytes:
    ready, _, _ = select.select([stream], [], [], seconds)
    return stream.readline() if ready else b"(nothing within %g s)" % seconds


def via(server: str) -> tuple[str, ...]:
    return ("--server", server)


def client(server: str, argv, **popen) -> subprocess.Popen:
    """`hermipy run --server` of ``argv`` on the test's backend, stdin/stdout/stderr pipes."""
    command = difftest.hermipy_command(*via(server)) + [str(a) for a in argv]
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def finish(proc: subprocess.Popen, what: str) -> tuple[int, bytes, bytes]:
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"{what}: no end within {TIMEOUT} s\n--- stdout\n{out!r}\n--- stderr\n{err!r}") from None
    return proc.returncode, out, err


@pytest.mark.parametrize("code,how", [(0, "exit"), (3, "_exit"), (255, "group"), (42, "atexit")])
def test_exit_status(server, code, how):
    assert_same([build("exit_codes", "static"), code, how], options=via(server))


def test_forked_processes_end_first(server):
    """Processes the guest forks end before it: the client waits for the guest's own end (a served run's child
    reports its status itself, and its forks inherit that hook)."""
    assert_same([BUSYBOX, "sh", "-c", f"{BUSYBOX} true & wait; echo | {BUSYBOX} cat; echo after them; exit 4"],
                options=via(server))


def test_stdio_pipes_and_stdin(server):
    assert_same([BUSYBOX, "sh", "-c", "read a; echo out $a; echo err $a >&2; cat"], stdin=b"one\ntwo\nthree\n",
                options=via(server))


def test_cwd_env_umask_rlimits(server, tmp_path):
    """The client's cwd, environment (exactly: no variable of the server's), umask and limits are the guest's."""
    script = "pwd; umask; ulimit -n; ulimit -s; env | sort"
    env = {"PATH": "/usr/bin:/bin", "ONLY_HERE": "client value", "HERMIPY_SERVER": server}

    def limited():
        os.umask(0o027)
        import resource
        resource.setrlimit(resource.RLIMIT_NOFILE, (200, 4096))
        resource.setrlimit(resource.RLIMIT_STACK, (4 << 20, resource.RLIM_INFINITY))
    native = subprocess.run([BUSYBOX, "sh", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                            preexec_fn=limited, timeout=TIMEOUT)
    served = subprocess.run(difftest.hermipy_command() + [BUSYBOX, "sh", "-c", script], cwd=tmp_path, env=env,
                            capture_output=True, preexec_fn=limited, timeout=TIMEOUT)
    assert (served.returncode, served.stdout, served.stderr) == (native.returncode, native.stdout, native.stderr)
    assert b"ONLY_HERE=client value" in served.stdout and b"0027" in served.stdout


@pytest.mark.parametrize("program", [("segfault", "static"), ("abort", "static")])
def test_guest_killed_by_signal(server, program):
    """128+N and the shell's message, as a direct run reports it; the server survives the guest's crash."""
    assert_same([build(*program)], options=via(server))
    assert_same([BUSYBOX, "true"], options=via(server))


def test_kill_9_self(server):
    """A guest that SIGKILLs itself: 137 and "Killed", as natively."""
    assert_same([BUSYBOX, "sh", "-c", "kill -9 $$"], options=via(server))


@pytest.mark.parametrize("signo", [signal.SIGTERM, signal.SIGINT, signal.SIGUSR1])
def test_signal_forwarded_to_guest(server, signo):
    """A signal sent to the client reaches the guest, whose handler runs (a shell's trap)."""
    name = signal.Signals(signo).name[3:]
    proc = client(server, [BUSYBOX, "sh", "-c", f'trap "echo got {name}; exit 7" {name}; echo ready; '
                           f'while :; do {BUSYBOX} sleep 0.05; done'])
    line = _read_line_within(proc.stdout, TIMEOUT)
    assert line == b"ready\n", f"guest did not start: {line!r}"
    proc.send_signal(signo)
    status, out, err = finish(proc, f"guest trapping {name}")
    assert (status, out, err) == (7, f"got {name}\n".encode(), b"")


def test_signal_kills_guest(server):
    """A signal without a handler ends the guest with it: 128+N and the message, the client's status."""
    proc = client(server, [BUSYBOX, "sh", "-c", "echo ready; exec /bin/busybox sleep 30"])
    assert _read_line_within(proc.stdout, TIMEOUT) == b"ready\n"
    proc.send_signal(signal.SIGTERM)
    status, out, err = finish(proc, "sleep killed by SIGTERM")
    assert (status, err) == (128 + signal.SIGTERM, b"Terminated\n")


def test_client_killed_guest_gone(server):
    """The client dies while its guest sleeps: the guest's processes (it and a child it forked) are killed."""
    proc = client(server, [BUSYBOX, "sh", "-c", f"{BUSYBOX} sleep 30 & echo $$ $!; wait"])
    line = _read_line_within(proc.stdout, TIMEOUT)
    pids = [int(p) for p in line.split()]
    assert len(pids) == 2, f"guest did not start: {line!r}"
    proc.kill()
    proc.wait(timeout=TIMEOUT)
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids), f"guest processes {[p for p in pids if _alive(p)]} outlived the client"


def _alive(pid: int) -> bool:
    """Running (not a zombie waiting for its reaper)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_usage_error_through_server(server):
    """hermipy's own errors (here a missing binary) read as in a direct run."""
    direct = subprocess.run(difftest.hermipy_command() + ["/nonexistent"], capture_output=True, timeout=TIMEOUT)
    served = subprocess.run(difftest.hermipy_command(*via(server)) + ["/nonexistent"], capture_output=True,
                            timeout=TIMEOUT)
    assert (served.returncode, served.stdout, served.stderr) == (direct.returncode, direct.stdout, direct.stderr)
    assert direct.returncode == 127


def _answer(sock: socket.socket) -> dict:
    sock.settimeout(TIMEOUT)
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return json.loads(data.split(b"\n")[0])


@pytest.mark.parametrize("request_bytes", [
    b"\x05\x00\x00\x00hello",                              # not JSON
    struct.pack("<I", 2) + b"[]",                          # not an object
    struct.pack("<I", 13) + b'{"argv": [1]}',              # fields missing or of the wrong type
    struct.pack("<I", 0xFFFFFFFF),                         # more than the server takes
    struct.pack("<I", 100) + b"{",                         # the connection ends inside it
], ids=["not-json", "not-object", "bad-fields", "too-long", "truncated"])
def test_malformed_request(server, request_bytes):
    """A malformed request gets an error answer; the server goes on serving."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(server)
        sock.sendall(request_bytes)
        if request_bytes.endswith(b"{"):
            sock.shutdown(socket.SHUT_WR)
        answer = _answer(sock)
    assert "bad request" in answer.get("error", "") or "bytes" in answer.get("error", ""), answer
    assert_same([BUSYBOX, "echo", "still serving"], options=via(server))


@pytest.mark.skipif(os.getuid() != 0, reason="connecting as another uid needs root (setuid to nobody)")
def test_other_uid_refused(server):
    """A client of another uid is refused (SO_PEERCRED), even when the socket's permissions let it connect."""
    os.chmod(server, 0o666)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:                                  # as nobody: connect and pass on the server's answer
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(server)
                os.write(write_end, json.dumps(_answer(sock)).encode())
        except BaseException as err:
            os.write(write_end, json.dumps({"client failed": repr(err)}).encode())
        os._exit(0)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], TIMEOUT)
        answer = json.loads(os.read(read_end, 65536) or b"{}") if ready else {"no answer within": TIMEOUT}
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
        os.chmod(server, 0o600)
    assert "uid 65534" in answer.get("error", ""), answer


def test_server_unreachable(tmp_path, client_program):
    """--server naming no server is an error (exit 2), not a silent direct run."""
    proc = subprocess.run(difftest.hermipy_command("--server", str(tmp_path / "none.sock")) + [BUSYBOX, "true"],
                          capture_output=True, timeout=TIMEOUT)
    assert proc.returncode == 2 and b"--server" in proc.stderr, proc.stderr


def test_file_system_strings(server, client_program):
    """argv and environment strings that are not UTF-8, or beyond the BMP, or with JSON's special characters
    reach the guest byte for byte (the request's strings are os.fsdecode's: surrogateescape)."""
    words = [b"\xff\xfe", b"caf\xc3\xa9 \xe2\x82", "\U0001d11e \" \\ \t \x01 \x7f".encode(), b"\xed\xa0\x80", b""]
    script = b'printf "[%s]\\n" "$@"; echo "[$WEIRD]"'
    env = {b"PATH": b"/usr/bin:/bin", b"WEIRD": b"\xc0\xaf=\xf4\x90\x80\x80"}
    argv = [BUSYBOX.encode(), b"sh", b"-c", script, b"x", *words]
    native = subprocess.run(argv, env=env, capture_output=True, timeout=TIMEOUT)
    command = [os.fsencode(a) for a in difftest.hermipy_command(*via(server))]
    served = subprocess.run(command + argv, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                            timeout=TIMEOUT)
    assert (served.returncode, served.stdout, served.stderr) == (0, native.stdout, native.stderr)
    assert native.stdout.count(b"[") == len(words) + 1


def test_c_client_reads_run_options():
    """hermipy/client.c's option lists are hermipy.client's (which test_run_options_match_parser holds to the
    parser's)."""
    from hermipy import client
    import re
    source = (difftest.ROOT / "hermipy" / "client.c").read_text()

    def listed(name: str) -> set[str]:
        body = re.search(name + r"\[\] = \{(.*?)\};", source, re.S).group(1)
        return set(re.findall(r'"([^"]+)"', body))
    assert listed("RUN_FLAGS") == client.RUN_FLAGS
    assert listed("RUN_OPTIONS_WITH_VALUE") == client.RUN_OPTIONS_WITH_VALUE


def _through_terminal(command: list, stdin_terminal: bool) -> tuple[int, bytes, bytes]:
    """Run ``command`` with stdout (and with ``stdin_terminal`` stdin too) the slave of a new pty; returns its
    status, what the pty's master read (until every slave fd was closed) and its stderr."""
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(command, stdin=slave if stdin_terminal else subprocess.DEVNULL, stdout=slave,
                                stderr=subprocess.PIPE, start_new_session=True)
        os.close(slave)
        slave = -1
        out = b""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1)
            if not ready:
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:                      # EIO: every slave fd is closed
                break
            if not chunk:
                break
            out += chunk
        else:
            proc.kill()
            raise AssertionError(f"{command}: the terminal was not closed within {TIMEOUT} s; read {out!r}")
        _, err = proc.communicate(timeout=TIMEOUT)
        return proc.returncode, out, err
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)


@pytest.mark.parametrize("stdin_terminal", [False, True], ids=["stdout", "stdin-and-stdout"])
def test_terminal_stdio(server, client_program, stdin_terminal):
    """A terminal as stdout goes through the server as any fd does; a terminal as stdin makes the client run
    directly (job control needs it): the guest's parent is then the client's, here this test."""
    script = 'for fd in 0 1 2; do [ -t $fd ] && echo "$fd: a terminal"; done; echo line; exit 3'
    argv = [BUSYBOX, "sh", "-c", script]
    native = _through_terminal(argv, stdin_terminal)
    served = _through_terminal(difftest.hermipy_command(*via(server)) + argv, stdin_terminal)
    assert served == native, f"native {native!r}, through the server {served!r}"
    assert native[1].count(b"a terminal") == 1 + stdin_terminal
    parent = _through_terminal(difftest.hermipy_command(*via(server)) + [BUSYBOX, "sh", "-c", "echo $PPID"],
                               stdin_terminal)
    assert (parent[1].strip() == str(os.getpid()).encode()) == stdin_terminal, parent


def test_terminal_interrupt_reaches_guest(server, client_program):
    """^C typed on the terminal that is stdout (stdin is not: the run goes through the server) reaches the guest,
    which the server put in a process group of its own: the client, in the terminal's foreground group, gets
    the SIGINT from the kernel and sends it to the guest's group, as the terminal reaches a whole job."""
    import fcntl
    import termios
    script = 'trap "echo got INT; exit 7" INT; echo ready; while :; do /bin/busybox sleep 0.05; done'

    def interrupted(command: list) -> tuple[int, bytes]:
        master, slave = os.openpty()
        try:
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                                    start_new_session=True,
                                    preexec_fn=lambda: fcntl.ioctl(1, termios.TIOCSCTTY, 0))
            os.close(slave)
            slave = -1
            out = b""
            deadline = time.monotonic() + TIMEOUT
            while b"ready" not in out and time.monotonic() < deadline:
                if select.select([master], [], [], 1)[0]:
                    out += os.read(master, 4096)
            assert b"ready" in out, f"{command}: no 'ready' within {TIMEOUT} s: {out!r}"
            os.write(master, b"\x03")
            while time.monotonic() < deadline:
                if not select.select([master], [], [], 1)[0]:
                    continue
                try:
                    chunk = os.read(master, 4096)
                except OSError:                  # EIO: the terminal's last user is gone
                    break
                if not chunk:
                    break
                out += chunk
            proc.wait(timeout=TIMEOUT)
            return proc.returncode, out
        finally:
            os.close(master)
            if slave >= 0:
                os.close(slave)
    argv = [BUSYBOX, "sh", "-c", script]
    native = interrupted(argv)
    served = interrupted(difftest.hermipy_command(*via(server)) + argv)
    assert served == native, f"native {native!r}, through the server {served!r}"
    assert native[0] == 7 and b"got INT" in native[1]


def test_stop_and_continue(server, client_program):
    """SIGTSTP to the client stops the guest, and the client stops with it (its shell sees the job stop);
    SIGCONT to the client continues both, and the run ends as it would have: as natively."""
    script = f"echo ready; {BUSYBOX} sleep 0.5; echo done"

    def stopped_and_continued(command: list) -> tuple[int, bytes, bytes]:
        # A process group of its own in this session, whose parent (this test) is in another group of it: in an
        # orphaned group (a pytest-xdist worker's, a new session's) the kernel discards SIGTSTP.
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                process_group=0)
        try:
            assert _read_line_within(proc.stdout, TIMEOUT) == b"ready\n", f"{command} did not start"
            proc.send_signal(signal.SIGTSTP)
            deadline = time.monotonic() + TIMEOUT
            while True:
                pid, status = os.waitpid(proc.pid, os.WUNTRACED | os.WNOHANG)
                if pid and os.WIFSTOPPED(status):
                    break
                assert pid == 0, f"{command} ended instead of stopping: {status:#x}"
                assert time.monotonic() < deadline, f"{command} did not stop within {TIMEOUT} s of SIGTSTP"
                time.sleep(0.02)
            proc.send_signal(signal.SIGCONT)
            out, err = proc.communicate(timeout=TIMEOUT)
            return proc.returncode, out, err
        finally:
            if proc.poll() is None:
                proc.kill()
    argv = [BUSYBOX, "sh", "-c", script]
    native = stopped_and_continued(argv)
    served = stopped_and_continued(difftest.hermipy_command(*via(server)) + argv)
    assert served == native == (0, b"done\n", b""), f"native {native!r}, through the server {served!r}"


def test_native_reference_for_signals():
    """The native side of test_signal_forwarded_to_guest behaves as asserted there (the oracle holds)."""
    native = run_native([BUSYBOX, "sh", "-c", "kill -TERM $$"])
    assert (native.status, native.stderr) == (128 + signal.SIGTERM, b"Terminated\n")


def test_run_options_match_parser():
    """The client reads `run`'s options without argparse (hermipy.client): its two sets are the parser's."""
    from hermipy import cli, client
    run = next(a for a in cli.build_parser(["run"])._subparsers._group_actions[0].choices.values()
               if a.prog.endswith(" run"))
    options = [a for a in run._actions if a.option_strings and a.dest != "help"]
    flags = {s for a in options if a.nargs == 0 for s in a.option_strings}
    with_value = {s for a in options if a.nargs != 0 for s in a.option_strings}
    assert (flags, with_value) == (client.RUN_FLAGS, client.RUN_OPTIONS_WITH_VALUE)


@pytest.mark.parametrize("argv,env,expected", [
    (["run", "--server", "S", "prog", "--server", "T"], None, "S"),
    (["run", "--server=S", "prog"], None, "S"),
    (["run", "--root", "/r", "-E", "A=1", "--strace", "--server", "S", "prog"], None, "S"),
    (["run", "--backend", "kvm", "prog"], "E", "E"),
    (["run", "--server", "S", "prog"], "E", "S"),
    (["run", "prog"], None, None),
    (["run", "--help"], "E", None),                   # argparse's: help, abbreviations, unknown options
    (["run", "--serv", "S", "prog"], None, None),
    (["run", "-EA=1", "prog"], "E", None),
    (["info"], "E", None),
])
def test_client_reads_run_options(monkeypatch, argv, env, expected):
    from hermipy import client
    if env is None:
        monkeypatch.delenv("HERMIPY_SERVER", raising=False)
    else:
        monkeypatch.setenv("HERMIPY_SERVER", env)
    assert client.served_run(argv) == expected


def test_client_imports_stay_lean(server):
    """A run through the server imports none of the modules that make Python's start-up slow (re, enum, json,
    argparse, socket, threading) nor hermipy's command line: the client's start is the interpreter's."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "hermipy", "run", "--server", server,
                           BUSYBOX, "true"], capture_output=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    names = [line.split("|")[-1].strip() for line in proc.stderr.decode().splitlines()
             if line.startswith("import time:")]
    imported = set(names[names.index("site") + 1:])         # after the interpreter's own start (site, .pth files)
    heavy = imported & {"re", "enum", "json", "argparse", "socket", "threading", "signal", "hermipy.cli"}
    assert not heavy, f"the client imported {sorted(heavy)}"


def test_direct_run_when_server_cannot_take_limits(tmp_path, client_program):
    """A client whose hard core limit is above the server's cannot be that server's run: it is told to run
    directly and does (the guest's parent is then the client's parent, here this test, not the server)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    if hard == 0:
        pytest.skip("the core limit is 0 already: no lower one to start the server with")
    path = str(tmp_path / "s.sock")
    proc = subprocess.Popen([sys.executable, "-m", "hermipy", "serve", "--socket", path], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CORE, (0, 0)))
    try:
        ready = _read_line_within(proc.stderr, 30)
        assert ready.startswith(b"hermipy serve: listening"), ready
        run = subprocess.run(difftest.hermipy_command(*via(path)) + [BUSYBOX, "sh", "-c", "echo $PPID; exit 5"],
                             stdin=subprocess.DEVNULL, capture_output=True, timeout=TIMEOUT)
        assert (run.returncode, run.stdout, run.stderr) == (5, f"{os.getpid()}\n".encode(), b""), run
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_without_spares(tmp_path):
    """`hermipy serve --spares 0` forks each run when its client connects; runs are the same."""
    path = str(tmp_path / "s.sock")
    proc = subprocess.Popen([sys.executable, "-m", "hermipy", "serve", "--socket", path, "--spares", "0"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        ready = _read_line_within(proc.stderr, 30)
        assert ready.startswith(b"hermipy serve: listening"), ready
        assert_same([BUSYBOX, "sh", "-c", "echo one; exit 3"], options=via(path))
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
