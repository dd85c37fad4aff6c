"""nginx and lighttpd signalled as an administrator signals them, natively and under hermipy.

nginx (a master and two workers on a free loopback port, everything in a temporary prefix directory):
``nginx -s quit`` (the signalling nginx itself under hermipy, or native) is a graceful shutdown: the listening
socket closes at once, a download in flight is finished, then the workers and the master exit (also with
``daemon on``: fork, setsid, the launcher exits); ``nginx -s reload`` starts new workers (they serve, the old
ones exit, the master stays) and a worker killed by SIGKILL is replaced; SIGTERM to the master, or SIGINT to the
process group as a terminal's ^C sends it, is the fast shutdown (the download cut short); SIGUSR2 to a daemon
execs a new binary that inherits the listening socket (nginx tells the new binary from the old by getppid()),
SIGWINCH stops the old workers and SIGQUIT the old master. lighttpd -D (one process, or a master and two
workers): SIGINT is graceful (the download finished), SIGTERM immediate, SIGUSR1 a graceful restart.

A run natively and a run under hermipy must observe the same: the exit status of every command (and the
output of ``nginx -s``), the facts the test checks on the way (who served, what was refused, what was left
running), and the error log's notices, timestamps dropped and pids named by role (master, worker, new master,
test, signaller). Notices whose number depends on timing natively too are left out or counted once: SIGIO
(the workers' channels), SIGALRM (nginx's kill escalation timer), SIGCHLD (signals coalesce), lighttpd's
"clock jumped" (its coarse monotonic and wall clocks tick over at different moments); nginx's RLIMIT_NOFILE
values are left out (hermipy may keep some of the host's limit for its own fds).

Every wait is bounded (TIMEOUT for a whole run); when a run ends, every process of its sessions is killed,
and a failure shows each process's threads (state, wait channel, syscall), the logs and every command's output.
"""
import collections
import contextlib
import dataclasses
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

import difftest
from test_signal_programs import PYTHON3, _kill_session, _session_processes
from test_signal_programs import run as run_in_session

pytestmark = pytest.mark.usefixtures("hermipy_backend")     # each test on every CPU backend

NGINX, LIGHTTPD = "/usr/sbin/nginx", "/usr/sbin/lighttpd"
TIMEOUT = 90                 # seconds for one run (start, requests, signals, exit), native or hermipy
BIG = 16 << 20               # the download in flight: far more than loopback socket buffers hold
REQUESTS = 4
LINGER = 10                  # seconds a process of a run may take to exit after its work is done

needs_nginx = pytest.mark.skipif(not os.access(NGINX, os.X_OK), reason=f"{NGINX} is not installed (nginx-light)")
needs_lighttpd = pytest.mark.skipif(not os.access(LIGHTTPD, os.X_OK), reason=f"{LIGHTTPD} is not installed")


def native(argv) -> list[str]:
    return [str(a) for a in argv]


def hermipy(argv) -> list[str]:
    return difftest.hermipy_command() + [str(a) for a in argv]


# ---------------------------------------------------------------- processes

def _stat(path: str) -> list[str] | None:
    """The fields of a /proc stat file after the command name (state, ppid, pgrp, session, ...)."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    return data[data.rindex(b")") + 2:].decode().split()


def alive(pid: int) -> bool:
    fields = _stat(f"/proc/{pid}/stat")
    return fields is not None and fields[0] not in ("Z", "X")


def live_children(pid: int) -> set[int]:
    """The children of ``pid`` not yet dead, whichever of its threads made them."""
    children = set()
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                children.update(int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split())
    return {c for c in children if alive(c)}


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace").strip()
    except OSError:
        return "?"


def describe(pids, roles: dict[int, str]) -> str:
    """Each process with each thread's state, wait channel and syscall (number and arguments)."""
    lines = []
    for pid in sorted(pids):
        fields = _stat(f"/proc/{pid}/stat")
        if fields is None:
            continue
        cmdline = _read(f"/proc/{pid}/cmdline").replace("\0", " ")
        lines.append(f"pid {pid} ({roles.get(pid, '?')}) ppid {fields[1]} pgrp {fields[2]} sid {fields[3]}: {cmdline}")
        with contextlib.suppress(OSError):
            for tid in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
                task = f"/proc/{pid}/task/{tid}"
                state = (_stat(f"{task}/stat") or ["?"])[0]
                lines.append(f"    tid {tid} {_read(f'{task}/comm')}: state {state}, wchan {_read(f'{task}/wchan')}, "
                             f"syscall {_read(f'{task}/syscall')}")
    return "\n".join(lines) or "(no process left)"


# ---------------------------------------------------------------- HTTP on loopback

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def refused(port: int) -> bool:
    """A new connection to the port is refused (nothing listens). One reset is not: the listener was closing
    as it came, and the next is refused."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:
        pass
    return False


class Download:
    """A GET of BIG bytes, read slowly: once its headers are in, the server is in the middle of sending it."""

    def __init__(self, port: int, path: str, timeout: float):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            data += chunk
        head, _, self.body = data.partition(b"\r\n\r\n")
        self.status = head.split(b"\r\n")[0].decode(errors="replace")

    def finish(self) -> int:
        """Read to the end; the length of the body."""
        size = len(self.body)
        try:
            while chunk := self.sock.recv(1 << 20):
                size += len(chunk)
        except ConnectionResetError:
            pass
        self.sock.close()
        return size


# ---------------------------------------------------------------- one run of a server

@dataclasses.dataclass
class Observed:
    """What a run of a scenario saw: facts in order, and the error log's notices (a multiset)."""
    facts: dict
    log: collections.Counter


class Run:
    """One run of a scenario: commands each in a session of their own (started in ``dir``), the pids the test
    learnt (by role), one deadline for everything."""

    def __init__(self, directory: Path, wrap, name: str):
        self.dir, self.wrap, self.name = directory, wrap, name
        self.dir.mkdir()
        self.port = free_port()
        self.deadline = time.monotonic() + TIMEOUT
        self.sessions: set[int] = set()
        self.roles: dict[int, str] = {os.getpid(): "test"}
        self.commands: list[tuple[str, list[str]]] = []
        self.facts: dict = {}

    def left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the {self.name} run took over {TIMEOUT} s")
        return left

    def until(self, what: str, condition):
        """Poll ``condition`` until it returns something true, and return that."""
        while True:
            if self.deadline - time.monotonic() <= 0:
                raise TimeoutError(f"timed out after {TIMEOUT} s waiting for {what}")
            value = condition()
            if value:
                return value
            time.sleep(0.05)

    def launch(self, argv, label: str, wrap=None) -> subprocess.Popen:
        """Start ``argv`` (under this run's wrapper unless told otherwise), output to files named by ``label``."""
        command = (wrap or self.wrap)(argv)
        self.commands.append((label, command))
        with open(self.dir / f"{label}.out", "wb") as out, open(self.dir / f"{label}.err", "wb") as err:
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=self.dir,
                                    start_new_session=True)
        self.sessions.add(proc.pid)
        return proc

    def finish(self, proc: subprocess.Popen) -> int:
        try:
            return proc.wait(self.left())
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"timed out after {TIMEOUT} s waiting for {proc.args} to exit") from None

    def output(self, label: str) -> tuple[str, str]:
        return tuple(self.normalize((self.dir / f"{label}.{o}").read_text(errors="replace")) for o in ("out", "err"))

    def get(self, path: str) -> bytes:
        with _NO_PROXY.open(f"http://127.0.0.1:{self.port}{path}", timeout=min(10.0, self.left())) as response:
            return response.read()

    def serving(self, path: str) -> bytes:
        """Wait until the server answers ``path``; the answer."""
        def answer():
            try:
                return self.get(path)
            except OSError:
                return None
        return self.until(f"the server to answer http://127.0.0.1:{self.port}{path}", answer)

    def download(self, path: str) -> Download:
        return Download(self.port, path, min(30.0, self.left()))

    def name_pids(self, text: str, pattern: str) -> str:
        """Replace each pid ``pattern`` (a regex whose group 1 is the pid) finds by its role ("pid" if unknown)."""
        return re.sub(pattern, lambda m: m.group(0).replace(m.group(1), self.roles.get(int(m.group(1)), "pid")),
                      text)

    def normalize(self, text: str) -> str:
        return text

    def processes(self) -> list[int]:
        return sorted(p for sid in self.sessions for p in _session_processes(sid))

    def left_running(self) -> list[str]:
        """The roles of the processes of the run's sessions still alive LINGER seconds from now, or as soon as
        none is (a worker may finish its last connection after the master has exited; a zombie waiting for
        init to reap it is gone)."""
        end = min(time.monotonic() + LINGER, self.deadline)
        while (left := sorted(self.roles.get(p, "pid") for p in self.processes() if alive(p))) and \
                time.monotonic() < end:
            time.sleep(0.05)
        return left

    def report(self) -> str:
        parts = [f"--- processes of the {self.name} run\n{describe(self.processes(), self.roles)}"]
        parts += [f"--- {label}: {command}" for label, command in self.commands]
        parts += [f"--- facts so far: {self.facts}"]
        for path in sorted(self.dir.iterdir()):
            if path.is_file() and path.suffix in (".out", ".err", ".log"):
                text = path.read_text(errors="replace")
                parts.append(f"--- {path.name}\n{text[-6000:]}")
        return "\n".join(parts)

    def kill_all(self) -> None:
        for sid in self.sessions:
            _kill_session(sid)


@contextlib.contextmanager
def running(tmp_path: Path, wrap, name: str, kind):
    """A ``kind`` run (Nginx, Lighttpd) in a fresh directory; on failure the report, at the end nothing left."""
    run = kind(tmp_path / name, wrap, name)
    try:
        yield run
    except (AssertionError, TimeoutError, OSError) as err:
        raise AssertionError(f"{name} run: {err!r}\n{run.report()}") from err
    finally:
        run.kill_all()


def assert_same(native_run: Observed, emulated: Observed) -> Observed:
    differing = [f"  {key}: native {native_run.facts.get(key)!r}, hermipy {emulated.facts.get(key)!r}"
                 for key in dict.fromkeys([*native_run.facts, *emulated.facts])
                 if native_run.facts.get(key) != emulated.facts.get(key)]
    assert not differing, "facts differ:\n" + "\n".join(differing)
    only_native, only_emulated = native_run.log - emulated.log, emulated.log - native_run.log
    assert not only_native and not only_emulated, (f"error log notices differ\n  only native: {dict(only_native)}\n"
                                                   f"  only hermipy: {dict(only_emulated)}")
    return native_run


def both(tmp_path: Path, scenario, kind, **kw) -> Observed:
    """The scenario natively, then under hermipy; the same observed."""
    observed = []
    for wrap, name in ((native, "native"), (hermipy, "hermipy")):
        with running(tmp_path, wrap, name, kind) as run:
            observed.append(scenario(run, **kw))
    return assert_same(*observed)


# ---------------------------------------------------------------- nginx

NGINX_CONF = """\
daemon {daemon};
master_process on;
worker_processes 2;
{user}
pid {dir}/nginx.pid;
error_log {dir}/error.log notice;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/temp/body;
    proxy_temp_path {dir}/temp/proxy;
    fastcgi_temp_path {dir}/temp/fastcgi;
    uwsgi_temp_path {dir}/temp/uwsgi;
    scgi_temp_path {dir}/temp/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {dir}/htdocs;
        location = /pid {{ return 200 "$pid"; }}
    }}
}}
"""
NGINX_LOG = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(\w+)\] (\d+)#\d+: (?:\*\d+ )?(.*)$")
NGINX_RACY = re.compile(r"signal (29 \(SIGIO\)|14 \(SIGALRM\)) received")
# hermipy keeps 256 fds of the host's hard RLIMIT_NOFILE for its own where it cannot raise it (kernel.py)
NGINX_NOFILE = re.compile(r"getrlimit\(RLIMIT_NOFILE\): \d+:\d+")


class Nginx(Run):
    def __init__(self, directory: Path, wrap, name: str):
        super().__init__(directory, wrap, name)
        (self.dir / "temp").mkdir()
        (self.dir / "htdocs").mkdir()
        with open(self.dir / "htdocs" / "big", "wb") as f:
            f.truncate(BIG)
        self.daemon = False

    def start(self, daemon: bool = False) -> int:
        """Start nginx; wait until it serves and has two workers; the master's pid."""
        self.daemon = daemon
        (self.dir / "nginx.conf").write_text(NGINX_CONF.format(
            daemon="on" if daemon else "off", dir=self.dir, port=self.port,
            user="user root;" if os.geteuid() == 0 else ""))
        self.launcher = self.launch(self.argv(), "nginx")
        if daemon:
            self.facts["daemon: launcher's exit status"] = self.finish(self.launcher)
        self.serving("/pid")
        self.master = int((self.dir / "nginx.pid").read_text())
        self.roles[self.master] = "master"
        self.sessions.add(self.master)                       # a daemon's own session (setsid)
        self.workers(self.master)
        return self.master

    def argv(self, *more) -> list:
        return [NGINX, "-p", self.dir, "-c", self.dir / "nginx.conf", *more]

    def workers(self, master: int, old=frozenset()) -> set[int]:
        """Wait until ``master`` has exactly two live workers, none of them in ``old``; their pids."""
        def two_new():
            children = live_children(master)
            return children if len(children) == 2 and not children & old else None
        workers = self.until(f"two new workers of {master}", two_new)
        for pid in workers:
            self.roles[pid] = "worker"
        return workers

    def served_by(self, workers: set[int]) -> bool:
        """REQUESTS requests, each answered by one of ``workers`` (its $pid)."""
        return all(int(self.get("/pid")) in workers for _ in range(REQUESTS))

    def signal_command(self, action: str, wrap=None) -> tuple:
        """``nginx -s action`` (it reads the pid file); its exit status and output."""
        label = f"nginx-s-{action}"
        proc = self.launch(self.argv("-s", action), label, wrap)
        self.roles[proc.pid] = "signaller"
        return (self.finish(proc), *self.output(label))

    def exited(self) -> int | str:
        """The master's exit status (a daemon's: not ours to see, so once it is gone, "gone")."""
        if self.daemon:
            self.until("the daemon master to exit", lambda: not alive(self.master))
            return "gone"
        return self.finish(self.launcher)

    def end(self) -> Observed:
        """Nothing left running or listening; the observations."""
        self.facts["left running"] = self.left_running()
        self.facts["port refused"] = refused(self.port)
        return Observed(self.facts, self.log())

    def normalize(self, text: str) -> str:
        return self.name_pids(re.sub(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d ", "", text, flags=re.M),
                              r"(\d+)#\d+:")

    def log(self) -> collections.Counter:
        """The notices of error.log: "role: message" with pids named, racy ones left out, SIGCHLD once."""
        text = (self.dir / "error.log").read_text(errors="replace")
        for kind, pid in re.findall(r"start (worker|new binary) process (\d+)", text):
            self.roles.setdefault(int(pid), "worker" if kind == "worker" else "new master")
        notices = collections.Counter()
        for line in text.splitlines():
            match = NGINX_LOG.match(line)
            assert match, f"not an nginx log line: {line!r}"
            level, pid, message = match.groups()
            if NGINX_RACY.search(message):
                continue
            message = self.name_pids(message, r"(?:from|process) (\d+)")
            message = NGINX_NOFILE.sub("getrlimit(RLIMIT_NOFILE): limits", message)
            notices[f"{self.roles.get(int(pid), 'pid')}: [{level}] {message}"] += 1
        for notice in notices:
            if "(SIGCHLD) received" in notice:
                notices[notice] = 1
        return notices


def nginx_graceful(run: Nginx, signaller, daemon: bool) -> Observed:
    """Requests served, a download started, ``nginx -s quit``: the listener closes at once, the download is
    finished, then everything exits."""
    run.start(daemon)
    workers = live_children(run.master)
    run.facts["served by the workers"] = run.served_by(workers)
    download = run.download("/big")
    run.facts["download"] = download.status
    run.facts["nginx -s quit"] = run.signal_command("quit", signaller)
    run.facts["new connections refused during the download"] = run.until("the listener to close",
                                                                          lambda: refused(run.port))
    run.facts["the downloading worker is still there"] = bool(live_children(run.master) & workers)
    run.facts["download finished"] = download.finish() == BIG
    run.facts["master's exit status"] = run.exited()
    return run.end()


def nginx_reload(run: Nginx) -> Observed:
    """``nginx -s reload``: two new workers, the old ones gone, the master the same; a worker killed by
    SIGKILL is replaced; then ``nginx -s quit``."""
    master = run.start()
    old = live_children(master)
    run.facts["nginx -s reload"] = run.signal_command("reload")
    new = run.workers(master, old=old)
    run.facts["old workers gone, new ones serve"] = run.served_by(new) and not live_children(master) & old
    run.facts["same master"] = run.launcher.poll() is None and int((run.dir / "nginx.pid").read_text()) == master
    victim = min(new)
    os.kill(victim, signal.SIGKILL)
    replaced = run.workers(master, old={victim})
    run.facts["killed worker replaced, the new one serves"] = run.served_by(replaced) and bool(replaced & new)
    run.facts["nginx -s quit"] = run.signal_command("quit")
    run.facts["master's exit status"] = run.exited()
    return run.end()


def nginx_fast(run: Nginx, how: str) -> Observed:
    """A download started, then SIGTERM to the master or SIGINT to the process group (a terminal's ^C): the
    download is cut short, the workers and the master exit."""
    master = run.start()
    download = run.download("/big")
    run.facts["download"] = download.status
    if how == "term-master":
        os.kill(master, signal.SIGTERM)
    else:
        os.killpg(os.getpgid(master), signal.SIGINT)
    run.facts["master's exit status"] = run.exited()
    run.facts["download cut short"] = download.finish() < BIG
    return run.end()


def nginx_upgrade(run: Nginx) -> Observed:
    """A daemon's binary upgrade: SIGUSR2 (a new master, child of the old one, execs nginx with the listening
    socket inherited), SIGWINCH (the old workers leave), SIGQUIT to the old master, SIGTERM to the new."""
    old_master = run.start(daemon=True)
    old_workers = live_children(old_master)
    os.kill(old_master, signal.SIGUSR2)
    oldbin = run.dir / "nginx.pid.oldbin"

    def new_master():
        with contextlib.suppress(OSError, ValueError):
            pid = int((run.dir / "nginx.pid").read_text())
            if oldbin.exists() and pid != old_master:
                return pid
        return None
    master = run.until("the new binary's pid file", new_master)
    run.roles[master] = "new master"
    run.facts["new master is the old one's child"] = master in live_children(old_master)
    new_workers = run.workers(master)
    os.kill(old_master, signal.SIGWINCH)
    run.facts["after SIGWINCH the old master has only the new one"] = run.until(
        "the old workers to exit", lambda: live_children(old_master) == {master})
    run.facts["served by the new workers"] = run.served_by(new_workers)
    os.kill(old_master, signal.SIGQUIT)
    run.until("the old master to exit", lambda: not alive(old_master))
    run.facts["old pid file removed"] = not oldbin.exists()
    run.facts["still served by the new workers"] = (run.served_by(new_workers)
                                                     and not live_children(master) & old_workers)
    os.kill(master, signal.SIGTERM)
    run.until("the new master to exit", lambda: not alive(master))
    return run.end()


@needs_nginx
@pytest.mark.parametrize("signaller", ["hermipy", "native"], ids=["signaller-hermipy", "signaller-native"])
def test_nginx_quit(tmp_path, signaller):
    """Case 1: graceful shutdown by ``nginx -s quit``, itself run under hermipy or natively (the native run's
    signaller is always native)."""
    def scenario(run, **kw):
        return nginx_graceful(run, hermipy if run.wrap is hermipy and signaller == "hermipy" else native, False)
    observed = both(tmp_path, scenario, Nginx)
    assert observed.facts["download finished"] and observed.facts["left running"] == []
    assert observed.facts["nginx -s quit"][0] == 0 and observed.facts["master's exit status"] == 0


@needs_nginx
def test_nginx_quit_daemon(tmp_path):
    """Case 1 with ``daemon on``: the launcher exits once its child, the master, is in a session of its own;
    ``nginx -s quit`` (under hermipy in the hermipy run) quits it."""
    observed = both(tmp_path, lambda run: nginx_graceful(run, None, True), Nginx)
    assert observed.facts["daemon: launcher's exit status"] == 0 and observed.facts["download finished"]


@needs_nginx
def test_nginx_reload(tmp_path):
    """Case 2: ``nginx -s reload`` and a worker killed by SIGKILL."""
    observed = both(tmp_path, nginx_reload, Nginx)
    assert observed.facts["old workers gone, new ones serve"] and observed.facts["same master"]
    assert observed.log["master: [alert] worker process worker exited on signal 9"] == 1, observed.log


@needs_nginx
@pytest.mark.parametrize("how", ["term-master", "int-group"])
def test_nginx_fast_shutdown(tmp_path, how):
    """Case 3: SIGTERM to the master, or SIGINT to the process group."""
    observed = both(tmp_path, nginx_fast, Nginx, how=how)
    assert observed.facts["download cut short"] and observed.facts["left running"] == []
    assert observed.facts["port refused"]


@needs_nginx
def test_nginx_binary_upgrade(tmp_path):
    observed = both(tmp_path, nginx_upgrade, Nginx)
    assert observed.facts["new master is the old one's child"] and observed.facts["served by the new workers"]
    assert observed.log['new master: [notice] using inherited sockets from "4;"'] == 1


# What nginx's SIGUSR2 rests on: a daemon's getppid() names its new parent once the process that started it
# has exited (called often enough first that the libc wrapper's site is answered inside the guest).
REPARENTED_PY = """\
import os, sys, time
first = os.getppid()
for _ in range(20):
    os.getppid()
print("started by the shell:", first == int(os.environ["SHELL_PID"]), flush=True)
open(sys.argv[1], "w").close()
deadline = time.monotonic() + 10
while os.getppid() == first and time.monotonic() < deadline:
    time.sleep(0.01)
print("reparented:", os.getppid() != first, flush=True)
"""


def test_getppid_after_the_parent_exits(tmp_path):
    script = (f'export SHELL_PID=$$; {PYTHON3} -c "$1" "$2" & '
              'while [ ! -e "$2" ]; do sleep 0.05; done; exit 0')
    results = [run_in_session(wrap(["/bin/sh", "-c", script, "sh", REPARENTED_PY, tmp_path / name]), what=name)
               for wrap, name in ((native, "native"), (hermipy, "hermipy"))]
    native_result = difftest.assert_results_same(["/bin/sh", "-c", script], *results)
    assert native_result.stdout == b"started by the shell: True\nreparented: True\n"


# ---------------------------------------------------------------- lighttpd

LIGHTTPD_CONF = """\
server.document-root = "{dir}/htdocs"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{dir}/error.log"
server.pid-file = "{dir}/lighttpd.pid"
server.max-worker = {workers}
"""
LIGHTTPD_LOG = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d: (.*)$")


class Lighttpd(Run):
    def __init__(self, directory: Path, wrap, name: str):
        super().__init__(directory, wrap, name)
        (self.dir / "htdocs").mkdir()
        (self.dir / "htdocs" / "hello").write_text("hello\n")
        with open(self.dir / "htdocs" / "big", "wb") as f:
            f.truncate(BIG)

    def start(self, workers: int) -> int:
        (self.dir / "lighttpd.conf").write_text(LIGHTTPD_CONF.format(dir=self.dir, port=self.port, workers=workers))
        self.launcher = self.launch([LIGHTTPD, "-D", "-f", self.dir / "lighttpd.conf"], "lighttpd")
        self.master = self.launcher.pid
        self.roles[self.master] = "master"
        self.serving("/hello")
        if workers:
            def all_started():
                children = live_children(self.master)
                return children if len(children) == workers else None
            for pid in self.until(f"{workers} workers", all_started):
                self.roles[pid] = "worker"
        return self.master

    def end(self) -> Observed:
        self.facts["exit status"] = self.finish(self.launcher)
        self.facts["output"] = self.output("lighttpd")
        self.facts["left running"] = self.left_running()
        self.facts["port refused"] = refused(self.port)
        return Observed(self.facts, self.log())

    def log(self) -> collections.Counter:
        notices = collections.Counter()
        for line in (self.dir / "error.log").read_text(errors="replace").splitlines():
            match = LIGHTTPD_LOG.match(line)
            assert match, f"not a lighttpd log line: {line!r}"
            if "clock jumped" not in line:
                notices[self.name_pids(match.group(1), r"PID = (\d+)")] += 1
        return notices


def lighttpd_stop(run: Lighttpd, signo: int, workers: int) -> Observed:
    """A download started, then ``signo`` to the master: SIGINT lets it finish, SIGTERM cuts it."""
    run.start(workers)
    run.facts["served"] = all(run.get("/hello") == b"hello\n" for _ in range(REQUESTS))
    download = run.download("/big")
    run.facts["download"] = download.status
    os.kill(run.master, signo)
    run.facts["new connections refused during the download"] = run.until("the listener to close",
                                                                          lambda: refused(run.port))
    run.facts["download finished"] = download.finish() == BIG
    return run.end()


def lighttpd_restart(run: Lighttpd) -> Observed:
    """SIGUSR1: a graceful restart in place (the same process serves again), then SIGINT."""
    run.start(0)
    os.kill(run.master, signal.SIGUSR1)
    run.until("the restart", lambda: (run.dir / "error.log").read_text().count("server started") == 2)
    run.facts["served after the restart"] = run.serving("/hello") == b"hello\n"
    run.facts["same process"] = run.launcher.poll() is None
    os.kill(run.master, signal.SIGINT)
    return run.end()


@needs_lighttpd
@pytest.mark.parametrize("workers", [0, 2], ids=["single", "two-workers"])
@pytest.mark.parametrize("signo", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_lighttpd_stop(tmp_path, signo, workers):
    """Case 4: lighttpd -D, SIGINT (graceful) or SIGTERM."""
    observed = both(tmp_path, lighttpd_stop, Lighttpd, signo=signo, workers=workers)
    assert observed.facts["download finished"] == (signo == signal.SIGINT)
    assert observed.facts["left running"] == [] and observed.facts["port refused"]


@needs_lighttpd
def test_lighttpd_graceful_restart(tmp_path):
    observed = both(tmp_path, lighttpd_restart, Lighttpd)
    assert observed.facts["served after the restart"] and observed.facts["exit status"] == 0
