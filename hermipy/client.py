"""The client of ``hermipy serve``: ``hermipy run --server SOCKET`` (or ``HERMIPY_SERVER``).

It starts in a few milliseconds because it imports nothing but CPython's built-in C modules (``_socket``,
``_signal``, ``_thread``, ``_json``, ``resource``): ``re``, ``enum``, ``json``, ``socket``, ``signal`` and
``argparse`` each cost 3-7 ms of start-up, more than the whole client. ``entry`` (the ``hermipy`` command,
bin/hermipy) takes this path for a ``run`` whose options it can read without argparse (``RUN_OPTIONS``, kept
equal to the parser's by a test); every other command line goes to hermipy.cli.

The client sends the run's request (see hermipy/serve.py for the protocol), forwards every signal it receives
to the guest's process (a terminal's, sent by the kernel: to the guest's process group, as a terminal reaches
a whole foreground job), stops when the guest stops and exits with the guest's status; a guest killed by a
host signal kills the client with it. It runs directly instead when stdin is a terminal, or when the server
says a direct run is needed.
"""
import os
import sys

import _json
import _signal
import _socket
import _thread

from hermipy.errors import HermipyError

SI_KERNEL = 0x80
# What the client forwards: what hermipy's signal pump forwards in a direct run (host_signals.FORWARDED; a
# fault signal of the client's own still ends it, as a blocked one is forced).
FORWARDED = frozenset(s for s in _signal.valid_signals() if s < 64) - {_signal.SIGKILL, _signal.SIGSTOP}
# `hermipy run`'s options: which take a value, which do not (tests/test_serve.py checks them against the parser)
RUN_OPTIONS_WITH_VALUE = frozenset({"--strace-file", "--root", "-E", "--backend", "--memory", "--stats", "--server",
                                    "--image", "--persist", "--record"})
RUN_FLAGS = frozenset({"--strace", "--clear-env", "--strict", "--no-rewrite", "--exitless", "--debug"})


def entry() -> None:
    """The ``hermipy`` command: a run through a server from here, anything else through hermipy.cli."""
    argv = sys.argv[1:]
    server = served_run(argv)
    if server is None or _is_terminal(0) or not all(_is_open(fd) for fd in (0, 1, 2)):
        _cli_entry(served=False)
    try:
        status = run_through_server(server, argv, lambda: _cli_entry(served=True))
    except HermipyError as err:
        sys.stderr.write(f"hermipy: {err}\n")
        status = err.exit_code
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            try:
                stream.flush()
            except (OSError, ValueError):
                status = status or 1
    os._exit(status)


def served_run(argv: list[str]) -> str | None:
    """The server socket of ``hermipy <argv>`` when it is a run through a server whose options are all known
    here (--server, else $HERMIPY_SERVER); None: hermipy.cli decides (another command, --help, an unknown or
    abbreviated option, a direct run)."""
    if not argv or argv[0] != "run":
        return None
    server = None
    i = 1
    while i < len(argv):
        word = argv[i]
        if not word.startswith("-") or word == "-":
            break                          # the binary: what follows is the guest's
        name, has_value, value = word.partition("=")
        if name in RUN_FLAGS and not has_value:
            i += 1
        elif name in RUN_OPTIONS_WITH_VALUE:
            if not has_value:
                if i + 1 >= len(argv):
                    return None
                value = argv[i + 1]
            if name == "--server":
                server = value
            i += 1 if has_value else 2
        else:
            return None                    # --help, --, -Evalue, abbreviations: argparse's
    return server or os.environ.get("HERMIPY_SERVER") or None


def direct_entry() -> None:
    """The ``hermipy`` command as a direct run, where the server said one is needed (hermipy/client.c)."""
    _cli_entry(served=True)


def _cli_entry(served: bool) -> None:
    """hermipy.cli's entry (never returns); ``served``: as a direct run the client chose."""
    from hermipy import cli
    cli.SERVED = served
    cli.entry()


def run_through_server(path: str, argv: list[str], direct) -> int:
    """``hermipy <argv>`` run by the server at ``path``; returns the guest's exit status (a guest killed by a
    host signal kills this process with it). ``direct()`` runs it directly instead (returning its status), as
    this does when stdin is a terminal or the server says a direct run is needed (see README, Warm start)."""
    if _is_terminal(0):
        return direct()
    passed = [fd for fd in (0, 1, 2) if _is_open(fd) and fd not in _closed_stdio()]   # before any fd is made
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as err:
        raise HermipyError(f"--server {path}: {err.strerror or err}", 2) from None
    creds = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
    uid = int.from_bytes(creds[4:8], sys.byteorder, signed=True)      # struct ucred: pid, uid, gid
    if uid != os.getuid():
        raise HermipyError(f"--server {path}: the server runs as uid {uid}, not as this user", 2)
    request = _request(argv, passed)
    _signal.pthread_sigmask(_signal.SIG_BLOCK, FORWARDED)     # from here on, sigwaitinfo takes them
    _send_request(sock, request, passed)
    guest = _Guest()
    _thread.start_new_thread(guest.forward_signals, ())
    answers = _Answers(sock)
    while True:
        message = answers.next()
        if message is None:
            raise HermipyError(f"--server {path}: the server ended the connection", 70)
        if "started" in message and answers.fds:
            guest.started(message["started"], answers.fds.pop(0))
        elif "stopped" in message:
            os.kill(os.getpid(), _signal.SIGSTOP)           # as the guest did; the shell sees this job stop
        elif "exit" in message:
            return message["exit"]
        elif "killed" in message:
            _die_by(message["killed"])
        elif "error" in message:
            if message.get("direct"):
                sock.close()
                _signal.pthread_sigmask(_signal.SIG_UNBLOCK, FORWARDED)
                return direct()
            raise HermipyError(message["error"], 2)


def _closed_stdio() -> frozenset:
    """The standard fds hermipy.cli holds with placeholders (this process was started with them closed)."""
    files = sys.modules.get("hermipy.syscalls.files")
    return frozenset(files.CLOSED_STDIO) if files is not None else frozenset()


def _is_terminal(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def _environment() -> list[bytes]:
    """The environment this process was started with (hermipy.cli.inherited_environment)."""
    try:
        with open("/proc/self/environ", "rb") as f:
            return [item for item in f.read().split(b"\0") if b"=" in item]
    except OSError:
        return [k + b"=" + v for k, v in os.environb.items()]


def _request(argv: list[str], passed: list[int]) -> dict:
    """What the server's child needs to be this process's direct run."""
    import resource
    umask = os.umask(0)
    os.umask(umask)
    rlimits = {str(getattr(resource, name)): list(resource.getrlimit(getattr(resource, name)))
               for name in dir(resource) if name.startswith("RLIMIT_")}
    ignored = [s for s in FORWARDED if s <= 31 and _signal.getsignal(s) == _signal.SIG_IGN
               and s not in (_signal.SIGPIPE, _signal.SIGXFSZ)]      # Python ignores these two itself
    blocked = _signal.pthread_sigmask(_signal.SIG_BLOCK, [])
    return {"argv": argv, "environ": [os.fsdecode(e) for e in _environment()], "fds": passed, "umask": umask,
            "rlimits": rlimits, "ignored": ignored, "blocked": sorted(int(s) for s in blocked if int(s) in FORWARDED),
            "gid": os.getgid(), "groups": os.getgroups()}


def _encode(value) -> str:
    """JSON of the request's values (dicts, lists, str, int, bool) with the C encoder's string escaping."""
    if isinstance(value, str):
        return _json.encode_basestring_ascii(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_encode(str(k))}: {_encode(v)}" for k, v in value.items()) + "}"
    return "[" + ", ".join(_encode(v) for v in value) + "]"


def _fd_data(fds: list[int]) -> bytes:
    return b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)


def _send_request(sock, request: dict, passed: list[int]) -> None:
    """The request, with the client's open stdio fds and its cwd attached to its first bytes."""
    body = _encode(request).encode()
    cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        sock.sendmsg([len(body).to_bytes(4, "little")],
                     [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, _fd_data(passed + [cwd]))])
    finally:
        os.close(cwd)
    sock.sendall(body)


class _ScanContext:
    """What _json.make_scanner reads: the options json.loads gives it by default."""
    strict = True
    object_hook = object_pairs_hook = None
    parse_float, parse_int = float, int
    parse_constant = float
    memo = None


_scan = _json.make_scanner(_ScanContext())


class _Answers:
    """The server's answers, one JSON object a line; ``fds`` collects the fds attached to them (the pidfd)."""

    def __init__(self, sock):
        self.sock, self.buffer, self.fds = sock, b"", []

    def next(self) -> dict | None:
        while b"\n" not in self.buffer:
            data, ancillary, _flags, _addr = self.sock.recvmsg(4096, _socket.CMSG_SPACE(4 * 4))
            for level, kind, payload in ancillary:
                if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                    self.fds += [int.from_bytes(payload[i:i + 4], sys.byteorder, signed=True)
                                 for i in range(0, len(payload) - 3, 4)]
            if not data:
                return None
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        return _scan(line.decode(), 0)[0]


class _Guest:
    """Where the client's signals go: the guest's process (pidfd), or its process group for a signal the
    kernel sent (a terminal's ^C, ^\\, ^Z, a window change), as a terminal reaches a whole foreground job.
    Signals that come before the guest has started wait for it."""

    def __init__(self):
        self.pid = 0
        self.pidfd = -1
        self.early: list[tuple[int, int]] = []
        self.lock = _thread.allocate_lock()      # guards pid, pidfd and early

    def started(self, pid: int, pidfd: int) -> None:
        with self.lock:
            self.pid, self.pidfd = pid, pidfd
            early, self.early = self.early, []
        for signo, code in early:
            self._send(signo, code)

    def forward_signals(self) -> None:
        while True:
            info = _signal.sigwaitinfo(FORWARDED)
            with self.lock:
                if self.pidfd < 0:
                    self.early.append((info.si_signo, info.si_code))
                    continue
            self._send(info.si_signo, info.si_code)

    def _send(self, signo: int, code: int) -> None:
        try:
            if code == SI_KERNEL:
                os.killpg(self.pid, signo)
            else:
                _signal.pidfd_send_signal(self.pidfd, signo)
        except OSError:
            pass                          # the guest has ended: its status is on its way


def _die_by(signo: int) -> None:
    """End this process by ``signo``, as the guest's process ended (no core file of the client)."""
    import resource
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
    _signal.signal(signo, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, [signo])
    _signal.pthread_kill(_thread.get_ident(), signo)
    os._exit(128 + signo)
