"""Warm start: a resident hermipy (``hermipy serve``) forks one child per run; ``hermipy run --server``
(or ``HERMIPY_SERVER``) is its client (hermipy/client.py).

The server has imported the kernel, the handlers, the loader and both backends (the KVM entry stubs, libunicorn,
KVM's CPUID table), compiled every handler's invoke and built ``run``'s parser, and frozen its objects out of the
garbage collector (gc.freeze: a child's collections do not copy the shared pages). For each connection it checks
the peer's uid (SO_PEERCRED: another user's client is refused) and hands the connection to a spare child forked
ahead of it (``--spares``), or forks one; the child reads the request, becomes the client's run — its
stdin/stdout/stderr (passed with SCM_RIGHTS), cwd (a directory fd), umask, rlimits, environment, ignored and
blocked signals — a process group of its own, and runs ``hermipy <argv>`` as a direct run does. It sends back
its pid and a pidfd, and its exit status as soon as the run has ended; the server reports the child's stops,
continuations and a death by a signal on the connection. When the client's end of the connection closes (the
client died), the child kills its process group (the signal pump watches it: host_signals.on_hangup).

Protocol, over a SOCK_STREAM unix socket. Request: a 4-byte little-endian length and a JSON object (strings
are file-system strings: ``os.fsdecode``), with the file descriptors attached to its first bytes::

    {"argv": [...], "environ": [...], "fds": [0, 1, 2], "umask": 18, "rlimits": {"7": [1024, 4096], ...},
     "ignored": [...], "blocked": [...], "gid": ..., "groups": [...]}

``fds`` lists which of the client's 0/1/2 are open and passed (in that order), followed by the cwd's fd.
Answers, one JSON object per line: ``{"started": PID}`` (with a pidfd attached), ``{"stopped": SIG}``,
``{"continued": true}``, ``{"exit": STATUS}``, ``{"killed": SIG}``, or ``{"error": TEXT}`` for a request the
server could not take (``"direct": true`` when a direct run would do it: the client then runs directly).
"""
import gc
import json
import os
import select
import signal
import socket
import struct
import sys

from hermipy.client import FORWARDED

REQUEST_LIMIT = 16 << 20        # bytes of JSON a request may have
REQUEST_TIMEOUT = 10.0          # seconds a connected client has to send its request


def default_socket() -> str:
    """$XDG_RUNTIME_DIR/hermipy.sock, or /tmp/hermipy-UID/hermipy.sock without XDG_RUNTIME_DIR."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = runtime if runtime else f"/tmp/hermipy-{os.getuid()}"
    return os.path.join(base, "hermipy.sock")


class ServeError(Exception):
    """A request the server cannot take; ``direct``: a direct run can (the client falls back to one)."""

    def __init__(self, text: str, direct: bool = False):
        super().__init__(text)
        self.direct = direct


# -- the server --------------------------------------------------------------------------------------------

def warm_up() -> None:
    """Import what a run imports and load what every run loads, once, in the server."""
    import importlib
    from hermipy import cli, runner  # noqa: F401
    from hermipy.syscalls.table import compile_invokers, load_handlers
    load_handlers()
    compile_invokers()
    for name in ("hermipy.loader.load", "hermipy.loader.stack", "hermipy.syscalls.sys_signal",
                 "hermipy.syscalls.host_signals", "hermipy.syscalls.procfs", "hermipy.rewriter.plan",
                 "hermipy.rewriter.trampoline", "hermipy.kvm_stubs", "hermipy.kvm_stub_cache",
                 "hermipy.kvm_backend", "hermipy.unicorn_backend", "resource", "stat", "fcntl", "ipaddress"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    try:
        from hermipy.unicorn_backend import context_offsets
        context_offsets()                 # loads libunicorn and probes its saved context once
    except OSError:
        pass
    try:
        from hermipy.kvm_backend import supported_cpuid
        supported_cpuid()                 # opens /dev/kvm for every fork (kvm_system_fd) and asks KVM once
    except (OSError, ImportError):
        pass
    cli.build_parser(["run"])           # built once here, kept for every run (cli._PARSERS)


def _bind(path: str) -> socket.socket:
    """The listening socket at ``path`` (its directory made 0700 if missing); a stale socket is replaced, a
    live one (another server answers) is an error."""
    from hermipy.errors import HermipyError
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    st = os.lstat(directory)
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise HermipyError(f"--socket {path}: {directory} is not a directory of this user's only", 2)
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except FileNotFoundError:
        pass
    except ConnectionRefusedError:
        os.unlink(path)
    except OSError as err:
        raise HermipyError(f"--socket {path}: {err.strerror}", 2) from None
    else:
        raise HermipyError(f"--socket {path}: a server is listening there already", 2)
    finally:
        probe.close()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        listener.bind(path)
    finally:
        os.umask(old)
    listener.listen(64)
    listener.setblocking(False)
    return listener


class Server:
    """The accept loop: one forked child per connection, its stops and its end reported on the connection.

    ``spares`` children are forked ahead of the connections they will serve: each waits for its connection on a
    socket pair of its own, so that a run does not wait for the server's fork (~1.3 ms here)."""

    def __init__(self, path: str, spares: int = 1):
        self.path = path
        self.wanted_spares = spares
        self.listener: socket.socket | None = None
        self.children: dict[int, socket.socket] = {}      # child pid -> its connection
        self.spares: dict[int, socket.socket] = {}        # idle child pid -> the server's end of its socket pair
        self.stopping = False

    def serve(self) -> int:
        try:
            os.setsid()                   # the guests' session is the server's, not a terminal's
        except OSError:
            pass                          # a process group leader already (started by a job-control shell)
        self.listener = _bind(self.path)
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.wake_r, self.wake_w = wake_r, wake_w
        signal.set_wakeup_fd(wake_w)
        for signo in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signo, self._note)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        warm_up()
        gc.collect()
        gc.freeze()
        sys.stderr.write(f"hermipy serve: listening on {self.path}\n")
        sys.stderr.flush()
        self.poller = select.poll()
        self.poller.register(self.listener.fileno(), select.POLLIN)
        self.poller.register(wake_r, select.POLLIN)
        self._fork_spares()
        while not (self.stopping and not self.children and not self.spares):
            for fd, events in self.poller.poll():
                if fd == wake_r:
                    self._wakeup()
                elif self.listener is not None and fd == self.listener.fileno():
                    self._accept()
        return 0

    def _note(self, signo, _frame) -> None:
        if signo in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self._stop_listening()

    def _stop_listening(self) -> None:
        """SIGTERM/SIGINT/SIGHUP: no new runs; the socket is removed at once, the runs in progress end as they
        will and are reported to their clients, then the server exits."""
        self.stopping = True
        if self.listener is not None:
            self.poller.unregister(self.listener.fileno())
            self.listener.close()
            self.listener = None
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        for channel in self.spares.values():
            channel.close()                   # the spare reads the end of its socket pair and exits

    def _wakeup(self) -> None:
        try:
            while os.read(self.wake_r, 256):
                pass
        except BlockingIOError:
            pass
        self._reap()

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        if uid != os.getuid():
            _send(conn, {"error": f"hermipy serve: uid {uid} is not this server's user ({os.getuid()})"})
            conn.close()
            return
        if self.spares:
            child, channel = self.spares.popitem()
            try:
                socket.send_fds(channel, [b"c"], [conn.fileno()])
            except OSError:
                child = None                  # the spare is gone (its end is reaped later): fork one now
            channel.close()
        else:
            child = None
        if child is None:
            child = self._fork(lambda: _child(conn))
        self.children[child] = conn
        self._fork_spares()

    def _fork(self, run) -> int:
        """A child that closes what is the server's alone, then calls ``run`` (which never returns)."""
        sys.stdout.flush()
        sys.stderr.flush()
        child = os.fork()
        if child == 0:
            try:
                signal.set_wakeup_fd(-1)
                for signo in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    signal.signal(signo, signal.SIG_DFL)
                for sock in [*self.children.values(), *self.spares.values()]:
                    sock.close()
                for fd in (self.wake_r, self.wake_w, self.listener.fileno()):
                    os.close(fd)
                run()
            finally:
                os._exit(70)
        return child

    def _fork_spares(self) -> None:
        while not self.stopping and len(self.spares) < self.wanted_spares:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                child = self._fork(lambda: (ours.close(), _spare(theirs)))
            finally:
                theirs.close()
            self.spares[child] = ours

    def _reap(self) -> None:
        while self.children or self.spares:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG | os.WUNTRACED | os.WCONTINUED)
            except ChildProcessError:
                return
            if pid == 0:
                return
            spare = self.spares.pop(pid, None)
            if spare is not None:             # a spare ended before it had a run (killed, or the server stops)
                spare.close()
                continue
            conn = self.children.get(pid)
            if conn is None:
                continue
            if os.WIFSTOPPED(status):
                _send(conn, {"stopped": os.WSTOPSIG(status)})
            elif os.WIFCONTINUED(status):
                _send(conn, {"continued": True})
            else:
                _send(conn, {"killed": os.WTERMSIG(status)} if os.WIFSIGNALED(status)
                      else {"exit": os.WEXITSTATUS(status)})
                del self.children[pid]
                conn.close()


def _send(conn: socket.socket, message: dict, fds: list[int] = ()) -> None:
    data = json.dumps(message).encode() + b"\n"
    try:
        if fds:
            socket.send_fds(conn, [data], fds)
        else:
            conn.sendall(data)
    except OSError:
        pass                              # the client is gone: nothing to tell


def serve(path: str | None, spares: int = 1) -> int:
    return Server(path or default_socket(), spares).serve()


# -- the server's child: one run ---------------------------------------------------------------------------

def _spare(channel: socket.socket) -> None:
    """A child forked ahead of its run: wait for the connection the server hands over, then serve it as
    _child; the end of the socket pair (the server stops) ends it."""
    _prepare_kvm()
    try:
        _data, fds, _flags, _addr = socket.recv_fds(channel, 1, 1)
    except OSError:
        fds = []
    channel.close()
    if not fds:
        os._exit(0)
    _child(socket.socket(fileno=fds[0]))


def _prepare_kvm() -> None:
    """A KVM VM made ahead for the run (kvm_backend.prepare_vm), where KVM is usable."""
    try:
        from hermipy.kvm_backend import prepare_vm
        prepare_vm()
    except (OSError, ImportError):
        pass


def _child(conn: socket.socket) -> None:
    """A forked child of the server: become the client's run and run it; never returns. Its exit status goes
    to the client as soon as the run has ended (cli.entry), before the process's teardown (1-2 ms) and the
    server's reaping; a run that a signal ends is reported by the server."""
    try:
        argv = _become_client(conn)
    except ServeError as err:
        _send(conn, {"error": str(err), "direct": err.direct})
        os._exit(2)
    except Exception as err:             # a malformed request: an answer, never a traceback in the server
        _send(conn, {"error": f"hermipy serve: bad request: {type(err).__name__}: {err}"})
        os._exit(2)
    from hermipy.syscalls import host_signals
    host_signals.on_hangup(conn.fileno(), lambda: os.killpg(0, signal.SIGKILL))    # the client died: the run too
    pidfd = os.pidfd_open(os.getpid())
    _send(conn, {"started": os.getpid()}, [pidfd])
    os.close(pidfd)
    from hermipy import cli
    cli.SERVED = True
    me = os.getpid()

    def report_exit(status: int) -> None:
        if os.getpid() == me:             # not in the processes the guest forks, which inherit the hook
            _send(conn, {"exit": status})
    cli.BEFORE_EXIT = report_exit
    sys.argv = ["hermipy", *argv]
    cli.entry()                           # os._exit with the run's status


def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    """The request and the fds attached to it."""
    conn.settimeout(REQUEST_TIMEOUT)
    try:
        head, fds, _flags, _addr = socket.recv_fds(conn, 4, 8)
        if len(head) < 4:
            head += _exactly(conn, 4 - len(head))
        size, = struct.unpack("<I", head)
        if size > REQUEST_LIMIT:
            raise ServeError(f"hermipy serve: request of {size} bytes (at most {REQUEST_LIMIT})")
        body = _exactly(conn, size)
    except TimeoutError:
        raise ServeError(f"hermipy serve: no request within {REQUEST_TIMEOUT:g} s") from None
    conn.settimeout(None)
    try:
        request = json.loads(body)
    except ValueError as err:
        raise ServeError(f"hermipy serve: bad request: {err}") from None
    if not isinstance(request, dict):
        raise ServeError("hermipy serve: bad request: not a JSON object")
    return request, fds


def _exactly(conn: socket.socket, size: int) -> bytes:
    chunks, got = [], 0
    while got < size:
        chunk = conn.recv(min(size - got, 1 << 20))
        if not chunk:
            raise ServeError("hermipy serve: bad request: the connection ended inside it")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _field(request: dict, name: str, kind, check=None):
    value = request.get(name)
    if not isinstance(value, kind) or (check is not None and not check(value)):
        raise ServeError(f"hermipy serve: bad request: field {name!r} is missing or invalid")
    return value


def _int_list(value) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) for v in value)


def _become_client(conn: socket.socket) -> list[str]:
    """Set this process up as the client's direct run would be; returns hermipy's argv."""
    import resource
    request, fds = _receive(conn)
    argv = _field(request, "argv", list, lambda v: all(isinstance(a, str) for a in v))
    environ = _field(request, "environ", list, lambda v: all(isinstance(e, str) and "=" in e for e in v))
    passed = _field(request, "fds", list, lambda v: _int_list(v) and set(v) <= {0, 1, 2} and len(set(v)) == len(v))
    umask = _field(request, "umask", int, lambda v: 0 <= v <= 0o777)
    rlimits = _field(request, "rlimits", dict, lambda v: all(
        k.isdigit() and isinstance(l, list) and len(l) == 2 and _int_list(l) for k, l in v.items()))
    ignored = _field(request, "ignored", list, lambda v: _int_list(v) and set(v) <= FORWARDED)
    blocked = _field(request, "blocked", list, lambda v: _int_list(v) and set(v) <= FORWARDED)
    gid = _field(request, "gid", int)
    groups = _field(request, "groups", list, _int_list)
    if len(fds) != len(passed) + 1:
        raise ServeError(f"hermipy serve: bad request: {len(fds)} fds attached, {len(passed) + 1} expected")
    if gid != os.getgid() or sorted(groups) != sorted(os.getgroups()):
        raise ServeError("hermipy serve: the client's groups are not the server's", direct=True)
    for key, (soft, hard) in sorted(rlimits.items(), key=lambda item: int(item[0]) != resource.RLIMIT_NOFILE):
        resource_ = int(key)
        try:
            resource.setrlimit(resource_, (soft, hard))
        except (ValueError, OSError):
            raise ServeError(f"hermipy serve: limit {resource_} ({soft}, {hard}) is above the server's",
                             direct=True) from None
    import fcntl
    *stdio, cwd = fds
    os.fchdir(cwd)
    os.close(cwd)
    os.umask(umask)
    os.setpgid(0, 0)
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3) for fd in stdio]     # none of them is 0-2 any more
    for fd in stdio:
        os.close(fd)
    for target in (0, 1, 2):
        if target in passed:
            os.dup2(high[passed.index(target)], target)
        else:
            try:
                os.close(target)
            except OSError:
                pass
    for fd in high:
        os.close(fd)
    from hermipy.syscalls.files import hold_closed_stdio
    hold_closed_stdio()
    os.environ.clear()
    os.environ.update(item.split("=", 1) for item in environ)
    from hermipy import cli
    cli.INHERITED_ENVIRONMENT = {os.fsencode(k): os.fsencode(v) for k, v in os.environ.items()}
    for signo in sorted(FORWARDED):
        if signo <= 31:                   # as Python starts: SIGINT its handler, SIGPIPE and SIGXFSZ ignored
            python = {signal.SIGINT: signal.default_int_handler, signal.SIGPIPE: signal.SIG_IGN,
                      signal.SIGXFSZ: signal.SIG_IGN}.get(signo, signal.SIG_DFL)
            signal.signal(signo, signal.SIG_IGN if signo in ignored else python)
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    return argv
