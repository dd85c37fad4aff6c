"""Running guests from Python without a new interpreter per run: ``Runner`` forks each run from the warm
current process (what ``hermipy serve`` does for the command line).

    from hermipy.api import Runner
    runner = Runner(backend="kvm")
    status, out, err = runner.run(["/bin/echo", "hello"])          # (0, b"hello\\n", b"")

Each run is ``hermipy run`` in a fork of this process: the same checks, messages and exit statuses (128+N for a
guest killed by signal N, 126/127 when it cannot start), in a process group of its own.
"""
import os
import selectors
import signal
import sys
import time
from typing import Mapping, NamedTuple, Sequence

from hermipy.serve import FORWARDED, warm_up
from hermipy.syscalls.sys_fork import imports_settled


class Result(NamedTuple):
    status: int                 # as a shell reports it: the exit status, or 128+N for signal N
    stdout: bytes | None        # None unless captured
    stderr: bytes | None


def _fs(value) -> str:
    return os.fsdecode(value)


class Runner:
    """Runs guests in forks of this process; the defaults of ``run``'s options are given here.

    Creating it imports and loads what every run needs (the kernel, handlers, loader, both backends), once."""

    def __init__(self, *, backend: str = "auto", root: str | None = None, memory: int = 4096,
                 rewrite: bool = True, strace_file: str | None = None):
        self.backend, self.root, self.memory, self.rewrite, self.strace_file = \
            backend, root, memory, rewrite, strace_file
        warm_up()

    def run(self, argv: Sequence, *, stdin: bytes | None = None, env: Mapping | None = None,
            cwd: str | None = None, backend: str | None = None, root: str | None = None, capture: bool = True,
            timeout: float | None = None, options: Sequence[str] = ()) -> Result:
        """Run ``argv`` (argv[0] is the program: a path, or a name looked up on the guest's PATH).

        ``stdin``: bytes fed to the guest (None: /dev/null); ``env``: the guest's environment (None: this
        process's); ``cwd``: its working directory (None: this process's); ``capture``: collect stdout and
        stderr (False: the guest writes to this process's own); ``options``: more ``hermipy run`` options
        (``["--stats", FILE]``). Past ``timeout`` seconds the run's process group is killed and TimeoutError
        raised."""
        command = ["run", "--backend", backend or self.backend, "--memory", str(self.memory)]
        if root or self.root:
            command += ["--root", _fs(root or self.root)]
        if not self.rewrite:
            command.append("--no-rewrite")
        if self.strace_file:
            command += ["--strace-file", _fs(self.strace_file)]
        command += [_fs(o) for o in options]
        command += [_fs(a) for a in argv]
        environment = {os.fsencode(k): os.fsencode(v) for k, v in (os.environ if env is None else env).items()}
        stdin_r, stdin_w = os.pipe() if stdin is not None else (os.open(os.devnull, os.O_RDONLY), -1)
        out_r, out_w = os.pipe() if capture else (-1, -1)
        err_r, err_w = os.pipe() if capture else (-1, -1)
        with imports_settled():           # a sweep's other threads may be importing: the child must not wait
            pid = os.fork()
        if pid == 0:
            _child(command, environment, cwd, stdin_r, out_w, err_w)
        for fd in (stdin_r, out_w, err_w):
            if fd >= 0:
                os.close(fd)
        try:
            stdout, stderr = _communicate(stdin_w, stdin or b"", out_r, err_r, timeout)
        except TimeoutError:
            _kill_group(pid)
            os.waitpid(pid, 0)
            raise TimeoutError(f"hermipy run {' '.join(command[-len(argv):])}: no end within {timeout} s") from None
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        return Result(128 - code if code < 0 else code, stdout if capture else None, stderr if capture else None)


def _child(command: list[str], environment: dict, cwd: str | None, stdin: int, stdout: int, stderr: int) -> None:
    """The forked run: its own process group, stdio, cwd and signal dispositions as a spawned hermipy has."""
    try:
        os.setpgid(0, 0)
        for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
            if fd >= 0:
                os.dup2(fd, target)
        kvm = sys.modules.get("hermipy.kvm_backend")       # its /dev/kvm fd, opened once by warm_up, stays
        kept = kvm.opened_system_fd() if kvm is not None else -1
        kept = kept if kept >= 3 else 256
        os.closerange(3, kept)            # the pipes' other ends and this process's own: the run's are 0-2
        os.closerange(kept + 1, 256)
        if cwd is not None:
            os.chdir(cwd)
        for signo in sorted(FORWARDED):
            if signo <= 31 and signal.getsignal(signo) != signal.SIG_IGN:
                signal.signal(signo, signal.default_int_handler if signo == signal.SIGINT else signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        # streams of the run's own fds 0-2 (this process's may be others: pytest's)
        sys.stdin = os.fdopen(0, "r", closefd=False) if stdin >= 0 else None
        sys.stdout = os.fdopen(1, "w", closefd=False)
        sys.stderr = os.fdopen(2, "w", closefd=False, buffering=1, errors="backslashreplace")
        from hermipy import cli
        cli.SERVED = True
        cli.INHERITED_ENVIRONMENT = environment
        sys.argv = ["hermipy", *command]
        cli.entry()
    except BaseException as err:          # a hermipy bug: said on the run's stderr, as `hermipy run` says it
        os.write(2, f"hermipy: internal error: {type(err).__name__}: {err}\n".encode())
    os._exit(70)


def _communicate(stdin: int, data: bytes, stdout: int, stderr: int, timeout: float | None) -> tuple[bytes, bytes]:
    """Feed ``data`` to ``stdin`` and read ``stdout``/``stderr`` to their ends (fds of -1 are left out); all
    three are closed on return."""
    deadline = None if timeout is None else time.monotonic() + timeout
    chunks = {stdout: [], stderr: []}
    view = memoryview(data)
    with selectors.DefaultSelector() as selector:
        for fd in (stdout, stderr):
            if fd >= 0:
                selector.register(fd, selectors.EVENT_READ)
        if stdin >= 0 and view:
            os.set_blocking(stdin, False)
            selector.register(stdin, selectors.EVENT_WRITE)
        elif stdin >= 0:
            os.close(stdin)
        try:
            while selector.get_map():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError
                for key, _ in selector.select(left):
                    if key.fd == stdin:
                        try:
                            view = view[os.write(stdin, view[:65536]):]
                        except BrokenPipeError:
                            view = view[:0]
                        done = not view
                    else:
                        chunk = os.read(key.fd, 65536)
                        chunks[key.fd].append(chunk)
                        done = not chunk
                    if done:
                        selector.unregister(key.fd)
                        os.close(key.fd)
        finally:
            for key in list(selector.get_map().values()):
                os.close(key.fd)
    return b"".join(chunks.get(stdout, [])), b"".join(chunks.get(stderr, []))


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
