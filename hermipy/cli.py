"""The ``hermipy`` command line: run a binary, print the syscall table."""
import argparse
import os
import stat
import sys

from hermipy.errors import HermipyError

EPILOG = "Exit status: the guest's own, 128+N when a signal N ended it, 126/127 when it could not start."


class _Formatter(argparse.HelpFormatter):
    """argparse's help formatter with the terminal width read once: argparse builds a formatter for every
    add_argument and reads the width (importing shutil) each time."""

    width = 0

    def __init__(self, prog: str):
        if not _Formatter.width:
            try:
                columns = int(os.environ.get("COLUMNS", "")) or os.get_terminal_size(sys.stdout.fileno()).columns
            except (ValueError, OSError):
                columns = 80
            _Formatter.width = max(columns - 2, 20)
        super().__init__(prog, width=_Formatter.width)


def _run_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument("--strace", action="store_true", help="print each syscall like strace(1) to stderr")
    run.add_argument("--strace-file", metavar="F", help="write the syscall trace to F instead")
    run.add_argument("--root", metavar="DIR", help="confine the guest's file system to DIR (default: host /)")
    run.add_argument("-E", dest="env", action="append", default=[], metavar="VAR=VAL",
                     help="set an environment variable for the guest (repeatable)")
    run.add_argument("--clear-env", action="store_true", help="start from an empty environment")
    run.add_argument("--strict", action="store_true", help="stop on the first unimplemented syscall")
    run.add_argument("--backend", choices=["auto", "kvm", "unicorn"], help="CPU backend: kvm (the binary runs "
                     "natively, needs /dev/kvm), unicorn (emulated); default: the image's, else auto: kvm when usable "
                     "(`hermipy info` says which and why)")
    run.add_argument("--memory", metavar="MIB", type=int, help="guest RAM in MiB (default: the image's, else 4096)")
    run.add_argument("--no-rewrite", dest="rewrite", action="store_false", help="never rewrite the binary's "
                     "syscall instructions in memory (default: on KVM, a site is rewritten to enter the kernel "
                     "directly after its first call)")
    run.add_argument("--exitless", action="store_true",
                     help="KVM: serve file and socket syscalls while the guest waits in the guest, instead of an exit "
                     "each (faster for syscall-heavy programs where exits are dear, e.g. PVM; costs a host core "
                     "while the guest makes syscalls; default: $HERMIPY_EXITLESS, else off)")
    run.add_argument("--stats", metavar="FILE", help="write a syscall profile of the run to FILE: one JSON line per "
                     "guest process, at its exit (docs/sweep.md)")
    run.add_argument("--server", metavar="SOCKET", help="run through the `hermipy serve` server listening on "
                     "SOCKET (default: $HERMIPY_SERVER; unset: run directly)")
    run.add_argument("--image", metavar="IMAGE", help="run a container image (an OCI image layout directory or a "
                     "`docker save` tarball): BINARY ARGS, when given, replace its Cmd (docs/pack.md)")
    run.add_argument("--persist", metavar="DIR", help="an image's writes go to DIR, kept for later runs (a new DIR "
                     "starts as a copy of the image), instead of a scratch layer removed at exit")
    run.add_argument("--record", metavar="FILE", help="append every path the guest looks up to FILE, NUL-separated "
                     "(what `hermipy pack --record` adds)")
    run.add_argument("binary", nargs="?", help="path to the ELF executable, or an .hpk image (`hermipy pack`)")
    run.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the binary (for an image: they replace "
                     "its cmd)")


def _syscalls_arguments(table: argparse.ArgumentParser) -> None:
    table.add_argument("--format", choices=["table", "markdown", "json"], default="table")


def _analyze_arguments(analyze: argparse.ArgumentParser) -> None:
    analyze.add_argument("--json", action="store_true", help="machine-readable report (docs/analyze-json.md)")
    analyze.add_argument("--root", metavar="DIR", help="find the binary and its libraries under DIR (default: /)")
    analyze.add_argument("binary", help="path to the ELF executable")


def _pack_arguments(pack: argparse.ArgumentParser) -> None:
    pack.add_argument("-o", dest="output", metavar="OUT", help="the image to write (app.hpk; also taken from the "
                      "last two words, `hermipy pack BINARY ARGS -o OUT`)")
    pack.add_argument("--record", action="store_true", help="run the program once under hermipy and add every "
                      "file it looked up (dlopen'ed libraries, locale and NSS files, modules)")
    pack.add_argument("--add", action="append", default=[], metavar="SRC:DEST", help="add the host's file or "
                      "directory SRC at DEST in the image (repeatable)")
    pack.add_argument("-E", dest="env", action="append", default=[], metavar="VAR=VAL",
                      help="an environment variable of the image (repeatable)")
    pack.add_argument("-w", "--workdir", default="/", metavar="DIR", help="the working directory of its runs "
                      "(default /)")
    pack.add_argument("--memory", metavar="MIB", type=int, help="guest RAM of its runs in MiB")
    pack.add_argument("--backend", choices=["auto", "kvm", "unicorn"], default="auto", help="its runs' CPU backend")
    pack.add_argument("--image", metavar="IMAGE", help="convert a container image (OCI layout directory or "
                      "`docker save` tarball); BINARY ARGS, when given, replace its Cmd")
    pack.add_argument("binary", nargs="?", help="the program (a path, or a name on $PATH)")
    pack.add_argument("args", nargs=argparse.REMAINDER, help="its arguments (a run's own arguments replace them)")


def _inspect_arguments(inspect: argparse.ArgumentParser) -> None:
    inspect.add_argument("--json", action="store_true", help="machine-readable report")
    inspect.add_argument("image", help="an .hpk, an OCI image layout directory or a `docker save` tarball")


def _serve_arguments(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("--socket", metavar="PATH", help="the unix socket to listen on (default: "
                       "$XDG_RUNTIME_DIR/hermipy.sock, or /tmp/hermipy-UID/hermipy.sock)")
    serve.add_argument("--spares", metavar="N", type=int, default=1, help="children forked ahead of the runs they "
                       "will serve (default: 1; 0: fork when a client connects)")


def _rewrite_arguments(rewrite: argparse.ArgumentParser) -> None:
    rewrite.add_argument("-o", dest="output", metavar="OUT", required=True, help="where to write the rewritten ELF")
    rewrite.add_argument("binary", help="path to the ELF executable")


def _sweep_arguments(sweep: argparse.ArgumentParser) -> None:
    sweep.add_argument("corpus", help="a corpus file (docs/sweep.md) or the name of a shipped one: debian")
    sweep.add_argument("--backend", metavar="B[,B]", help="the backends to compare, comma-separated (default: "
                       "kvm,unicorn, or unicorn where KVM is not usable)")
    sweep.add_argument("--no-rewrite-too", action="store_true", help="also run each backend with --no-rewrite")
    sweep.add_argument("-j", dest="jobs", type=int, default=os.cpu_count() or 1, metavar="N",
                       help="cases run at once (default: the number of CPUs)")
    sweep.add_argument("--tag", action="append", default=[], metavar="T", help="only the cases tagged T "
                       "(repeatable: any of them)")
    sweep.add_argument("--only", metavar="REGEX", help="only the cases whose name matches REGEX")
    sweep.add_argument("--json", metavar="OUT", help="write the results as JSON (schema: docs/sweep.md)")
    sweep.add_argument("--html", metavar="OUT", help="write a self-contained HTML report")
    sweep.add_argument("--junit", metavar="OUT", help="write the results as JUnit XML (one suite per variant)")
    sweep.add_argument("--baseline", metavar="JSON", help="compare with an earlier sweep's --json report: list "
                       "what newly fails and newly passes; the exit status is then 1 only if something regressed")
    sweep.add_argument("--no-cache", action="store_true", help="run every case, even those whose results are "
                       "cached for the same program, case and hermipy ($XDG_CACHE_HOME/hermipy/sweep)")
    sweep.add_argument("--dask", metavar="ADDRESS", help="run the cases as tasks of the Dask cluster whose "
                       "scheduler is at ADDRESS (e.g. tcp://host:8786) instead of on -j local threads")
    sweep.add_argument("--show", type=int, default=20, metavar="N", help="list at most N failures on the "
                       "terminal (default 20)")


# command: (help, epilog, adds its arguments, takes --debug)
COMMANDS = {
    "run": ("run a binary", EPILOG, _run_arguments, True),
    "info": ("show the version, the CPU backends and which one --backend auto picks", None, None, False),
    "syscalls": ("print hermipy's syscall table", None, _syscalls_arguments, False),
    "analyze": ("list a binary's syscall sites and predict hermipy's support", None, _analyze_arguments, True),
    "rewrite": ("write a copy of a binary whose syscall sites enter hermipy's kernel directly (runs under hermipy "
                "only)", None, _rewrite_arguments, True),
    "pack": ("make a single-file image (.hpk) of a program and the files it needs, or of a container image",
             "Exit status: 0, 126 for a bad image, 127 for a missing program, library or file.", _pack_arguments,
             True),
    "inspect": ("list what an image holds and what hermipy's analyzer says its program needs", None,
                _inspect_arguments, True),
    "serve": ("keep a warm hermipy resident: `hermipy run --server SOCKET` forks each run from it", None,
              _serve_arguments, True),
    "sweep": ("run a corpus of cases natively and under hermipy, compare them, say why they differ",
              "Exit status: 0 when every compared run was identical, 1 when some differed (with --baseline: when "
              "something that passed there fails now), 2 for bad input.",
              _sweep_arguments, True),
}


_PARSERS: dict[str | None, argparse.ArgumentParser] = {}     # built once per process (and `hermipy serve`'s)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The command-line parser; given ``argv`` that names a command, the parser of that command alone
    (``hermipy run`` is on every guest's start-up path, and each parser and argument costs argparse real
    time); otherwise the parser of every command, for ``hermipy --help`` and usage errors."""
    chosen = next((a for a in argv if not a.startswith("-")), None) if argv is not None else None
    chosen = chosen if chosen in COMMANDS else None
    if chosen not in _PARSERS:
        _PARSERS[chosen] = _build_parser(chosen)
    return _PARSERS[chosen]


def _build_parser(chosen: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hermipy", description="Run unmodified Linux x86-64 binaries "
                                     "as unikernels.", epilog=EPILOG, formatter_class=_Formatter)
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks for hermipy errors")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_, epilog, add_arguments, debug) in COMMANDS.items():
        if chosen in COMMANDS and chosen != name:
            continue
        command = sub.add_parser(name, help=help_, epilog=epilog, formatter_class=_Formatter)
        if add_arguments is not None:
            add_arguments(command)
        if debug:
            command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


SERVED = False                  # this process is a run `hermipy serve` forked (or a direct run the client chose)
BEFORE_EXIT = None              # entry calls it with the exit status before exiting (`hermipy serve`'s child)
INHERITED_ENVIRONMENT: dict[bytes, bytes] | None = None      # the client's, in a run `hermipy serve` forked


def inherited_environment() -> dict[bytes, bytes]:
    """The environment hermipy was started with, as the kernel gave it (/proc/self/environ).

    os.environ is not it: CPython's locale coercion (PEP 538) adds LC_CTYPE=C.UTF-8 under the C locale.
    """
    if INHERITED_ENVIRONMENT is not None:
        return dict(INHERITED_ENVIRONMENT)
    try:
        with open("/proc/self/environ", "rb") as f:
            block = f.read()
    except OSError:
        return dict(os.environb)
    return dict(item.split(b"=", 1) for item in block.split(b"\0") if b"=" in item)


def guest_environment(args) -> list[bytes]:
    env = {} if args.clear_env else inherited_environment()
    for item in args.env:
        if "=" not in item:
            raise HermipyError(f"-E {item}: expected VAR=VAL", 2)
        key, value = item.split("=", 1)
        env[os.fsencode(key)] = os.fsencode(value)
    return [key + b"=" + value for key, value in env.items()]


def server_socket(args) -> str | None:
    """The `hermipy serve` socket this run goes through: --server, else $HERMIPY_SERVER; None: a direct run."""
    if SERVED:
        return None
    return args.server or os.environ.get("HERMIPY_SERVER") or None


def _direct_main(argv: list[str]) -> int:
    """A run the client chose to make directly (no server)."""
    global SERVED
    SERVED = True
    return main(argv)


def cmd_run(args) -> int:
    args.exitless = args.exitless or bool(os.environ.get("HERMIPY_EXITLESS"))
    if (server := server_socket(args)) is not None:
        from hermipy.client import run_through_server
        return run_through_server(server, args.argv, lambda: _direct_main(args.argv))
    if args.image or args.binary is not None and not args.root and is_image_file(args.binary):
        return _run_image(args)
    if args.binary is None:
        raise HermipyError("run: a BINARY, an .hpk image or --image IMAGE is needed", 2)
    if args.persist:
        raise HermipyError("--persist: only for an image", 2)
    from hermipy.runner import run_binary
    from hermipy.syscalls.kernel import Options
    if args.root and not os.path.isdir(args.root):
        raise HermipyError(f"--root {args.root}: not a directory", 2)
    if args.stats:
        from hermipy.syscalls.stats import start
        try:
            start(args.stats)
        except OSError as err:
            raise HermipyError(f"--stats {args.stats}: {err.strerror}", 2) from None
    _start_record(args)
    options = Options(root=args.root, strace=args.strace, strace_file=args.strace_file, strict=args.strict,
                      memory=(args.memory or 4096) << 20, backend=args.backend or "auto", debug=args.debug,
                      rewrite=args.rewrite, exitless=args.exitless)
    sys.stdout.flush()
    return run_binary(options, args.binary, [args.binary, *args.args], guest_environment(args))


def is_image_file(path: str) -> bool:
    """An .hpk is a regular file that starts as a gzip stream (an ELF starts with \\x7fELF, a script with #!);
    never waits (a FIFO is opened without blocking and not read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode) and os.read(fd, 2) == b"\x1f\x8b"
    except OSError:
        return False
    finally:
        os.close(fd)


def _start_record(args) -> None:
    if args.record:
        from hermipy.syscalls import vfs
        try:
            vfs.RECORD = os.open(args.record, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        except OSError as err:
            raise HermipyError(f"--record {args.record}: {err.strerror}", 2) from None


def _run_image(args) -> int:
    """hermipy run app.hpk [ARGS], hermipy run --image IMAGE [CMD]: confined to a scratch tree of the image."""
    from hermipy.image import ImageRun
    from hermipy.runner import run_binary
    from hermipy.syscalls.kernel import Options
    if args.root:
        raise HermipyError("--root: an image is its own root", 2)
    if args.image:
        path, given = args.image, [args.binary, *args.args] if args.binary is not None else []
    else:
        path, given = args.binary, args.args
    run = ImageRun(path, bool(args.image), given, args.env, args.clear_env, args.persist)
    try:
        _start_record(args)
        options = Options(root=run.root, cwd=run.cwd, strace=args.strace, strace_file=args.strace_file,
                          strict=args.strict, memory=(args.memory or run.memory_mib or 4096) << 20,
                          backend=args.backend or run.backend, debug=args.debug, rewrite=args.rewrite,
                          user=run.credentials(), exitless=args.exitless)
        sys.stdout.flush()
        return run_binary(options, run.argv[0], run.argv, run.env)
    finally:
        run.close()


def cmd_serve(args) -> int:
    from hermipy.serve import serve
    if args.spares < 0:
        raise HermipyError("--spares: a count of children, 0 or more", 2)
    return serve(args.socket, args.spares)


def cmd_syscalls(args) -> int:
    from hermipy.syscalls.docs import render
    sys.stdout.write(render(args.format))
    return 0


def auto_backend() -> tuple[str, str]:
    """(backend, why) for --backend auto: KVM when /dev/kvm can run a guest, Unicorn otherwise."""
    from hermipy.kvm_backend import kvm_unusable_reason
    reason = kvm_unusable_reason()
    if reason is None:
        return "kvm", "/dev/kvm is usable: the binary runs natively on the CPU"
    return "unicorn", f"KVM is not usable ({reason}): instructions are emulated"


def cmd_info(args) -> int:
    import platform
    from hermipy import __version__
    from hermipy.syscalls.docs import summary
    from hermipy.syscalls.table import rows
    from hermipy.trip import report
    from hermipy.unicorn_backend import unicorn_version
    from hermipy.syscalls.host import host_call, ctypes_host_call
    backend, why = auto_backend()
    calls = ("ctypes (~0.7 µs more a host call: hermipy._hostcall is not built, or HERMIPY_CTYPES_ONLY is set)"
             if host_call is ctypes_host_call
             else "hermipy._hostcall")
    sys.stdout.write(f"hermipy {__version__} (Python {platform.python_version()})\n"
                     f"backends: kvm, unicorn {unicorn_version()}\n"
                     f"host calls: {calls}\n"
                     f"--backend auto: {backend} ({why})\n"
                     f"syscalls: {summary(rows())}\n")
    sys.stdout.flush()
    sys.stdout.write(report())
    return 0


def cmd_analyze(args) -> int:
    from hermipy.rewriter.analyze import analyze, render_json, render_text
    if args.root and not os.path.isdir(args.root):
        raise HermipyError(f"--root {args.root}: not a directory", 2)
    report = analyze(args.binary, args.root, os.environ.get("LD_LIBRARY_PATH"))
    sys.stdout.write(render_json(report) if args.json else render_text(report))
    return 0


def cmd_rewrite(args) -> int:
    from hermipy.rewriter.analyze import open_binary
    from hermipy.rewriter.ldpath import LibraryResolver
    from hermipy.rewriter.rewrite import rewrite
    open_binary(LibraryResolver(None), args.binary)     # the one-line errors analyze gives (missing, not ELF ...)
    try:
        sites = rewrite(args.binary, args.output)
    except (ValueError, OSError) as err:
        raise HermipyError(str(err), 126) from None
    sys.stdout.write(f"{args.output}: {len(sites)} syscall sites rewritten\n")
    return 0


def cmd_sweep(args) -> int:
    from hermipy.sweep import sweep_command
    return sweep_command(args)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    args.argv = argv
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "serve":
            return cmd_serve(args)
        if args.command == "analyze":
            return cmd_analyze(args)
        if args.command == "rewrite":
            return cmd_rewrite(args)
        if args.command == "info":
            return cmd_info(args)
        if args.command == "sweep":
            return cmd_sweep(args)
        if args.command == "pack":
            from hermipy.pack import cmd_pack
            return cmd_pack(args)
        if args.command == "inspect":
            from hermipy.pack import cmd_inspect
            return cmd_inspect(args)
        return cmd_syscalls(args)
    except HermipyError as err:
        if args.debug:
            raise
        sys.stderr.write(f"hermipy: {err}\n")
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:           # its reader left (`hermipy info | head`): quietly, as SIGPIPE ends a program
        sys.stdout = open(os.devnull, "w")
        return 128 + 13
    except Exception as err:          # a hermipy bug: one clear line unless --debug asks for the traceback
        if args.debug:
            raise
        sys.stderr.write(f"hermipy: internal error: {type(err).__name__}: {err} (rerun with --debug for details)\n")
        return 70


def _hold_closed_stdio() -> None:
    """hermipy started with fd 0, 1 or 2 closed: the guest's stays closed (files.hold_closed_stdio) and Python's
    stream, None then, writes hermipy's own messages nowhere, as a closed stderr loses them natively."""
    from hermipy.syscalls.files import CLOSED_STDIO, hold_closed_stdio
    hold_closed_stdio()
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        if fd in CLOSED_STDIO and getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "r" if fd == 0 else "w"))


def entry() -> None:
    """The ``hermipy`` command: main, then exit at once (the guest's RAM, its VM and hermipy's modules need no
    orderly teardown, which costs 15-30 ms)."""
    _hold_closed_stdio()
    try:
        status = main()
    except SystemExit as done:                  # argparse: --help, usage errors
        status = done.code if isinstance(done.code, int) else (done.code is not None)
        if isinstance(done.code, str):
            sys.stderr.write(done.code + "\n")
    table = sys.modules.get("hermipy.syscalls.table")
    if table is not None and table.STATS is not None:        # hermipy run --stats: this process's line
        table.STATS.finish(status)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            status = status or 1
    if BEFORE_EXIT is not None:
        BEFORE_EXIT(status)
    os._exit(status)
