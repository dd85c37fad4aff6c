"""Sweep corpora: the TOML files ``hermipy sweep`` reads (format: docs/sweep.md), parsed with tomllib.

``load(path)`` returns a ``Corpus`` whose cases are complete (generators expanded, defaults applied); a file
that does not parse or breaks the format raises ``CorpusError`` naming the file, the line and what is wrong.
``prepare(case, directory)`` creates a case's files in its temp dir; ``Normalizer`` rewrites output before
comparing.
"""
import base64
import os
import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from hermipy.errors import HermipyError

DEFAULT_ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": "/nonexistent", "TZ": "UTC"}
DEFAULT_TIMEOUT = 60.0
SHIPPED = Path(__file__).with_name("corpora")          # corpora that come with hermipy: `hermipy sweep debian`

CORPUS_KEYS = {"name", "description", "env", "timeout", "normalize", "fixture"}
FIXTURE_KEYS = {"files", "mtime"}
CASE_KEYS = {"name", "argv", "stdin", "stdin_base64", "env", "files", "fixture", "mtime", "timeout", "status",
             "normalize", "tags", "app", "requires"}
GENERATE_KEYS = {"kind", "dirs", "packages", "args", "skip", "tags", "timeout", "normalize"}
FILE_KINDS = ("text", "base64", "copy", "symlink", "dir")
STREAMS = ("stdout", "stderr", "both")


class CorpusError(HermipyError):
    """A corpus that does not parse or breaks the format (exit status 2)."""

    def __init__(self, message: str):
        super().__init__(message, 2)


@dataclass(frozen=True)
class FileSpec:
    """One entry a case needs in its temp dir: ``kind`` is one of FILE_KINDS, ``value`` its content or target."""
    path: str
    kind: str
    value: object = None
    mode: int | None = None


@dataclass(frozen=True)
class Normalizer:
    """A regex replacement on stdout, stderr or both; builtin ones (BUILTIN) also know the run's pid."""
    name: str
    pattern: bytes = b""
    replace: bytes = b""
    stream: str = "both"

    def apply(self, data: bytes, stream: str, pid: int) -> bytes:
        if self.stream not in ("both", stream):
            return data
        if self.name == "pid":
            return re.sub(rb"\b%d\b" % pid, b"<pid>", data) if pid else data
        if self.name in BUILTIN:
            for pattern, replace in BUILTIN[self.name]:
                data = pattern.sub(replace, data)
            return data
        return re.sub(self.pattern, self.replace, data)


# The builtin normalisers besides "pid" (the started process's own pid as a word, on either side) and the
# case's temp dir, which every case gets (its path becomes <tmp>).
BUILTIN = {
    "times": [(re.compile(rb"\b\d{4}-\d{2}-\d{2}\b"), b"<date>"),
              (re.compile(rb"\b\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\b"), b"<time>"),
              (re.compile(rb"\b\d+m\d+(\.\d+)?s\b"), b"<duration>"),
              (re.compile(rb"\b\d+(\.\d+)?\s?(ns|us|\xc2\xb5s|ms|s)\b"), b"<duration>")],
    "addresses": [(re.compile(rb"\b0x[0-9a-fA-F]{6,}\b"), b"<addr>")],
}
BUILTIN_NAMES = ("pid", *BUILTIN)


@dataclass
class Case:
    name: str
    argv: list[str]
    app: str
    stdin: bytes = b""
    env: dict[str, str] = field(default_factory=dict)
    files: list[FileSpec] = field(default_factory=list)
    mtime: int | None = None
    timeout: float = DEFAULT_TIMEOUT
    status: int | None = None
    normalize: list[Normalizer] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    requires: list[str] = field(default_factory=list)


@dataclass
class Corpus:
    path: str
    name: str
    description: str
    cases: list[Case]


def resolve(name: str) -> Path:
    """A corpus path, or the name of a shipped corpus (``debian`` is hermipy/corpora/debian.toml)."""
    path = Path(name)
    if path.exists() or os.sep in name or name.endswith(".toml"):
        return path
    shipped = SHIPPED / f"{name}.toml"
    if shipped.exists():
        return shipped
    names = ", ".join(sorted(p.stem for p in SHIPPED.glob("*.toml")))
    raise CorpusError(f"{name}: no such file, nor a corpus shipped with hermipy ({names})")


def load(name: str) -> Corpus:
    """Parse the corpus file ``name`` (or a shipped corpus's name) and expand its generators."""
    path = resolve(name)
    try:
        text = path.read_text()
    except OSError as err:
        raise CorpusError(f"{path}: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise CorpusError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise CorpusError(f"{path}: {err}") from None
    return _Parser(path, text).corpus(data)


class _Parser:
    """Checks each table against the format, saying where (file, line of its header) and what is wrong."""

    def __init__(self, path: Path, text: str):
        self.path, self.text = path, text

    def fail(self, where: str, message: str):
        raise CorpusError(f"{self.path}{where}: {message}")

    def header_line(self, header: str, index: int = 0) -> str:
        """':LINE' of the index-th ``[header]`` or ``[[header]]`` line, as a location for messages."""
        pattern = re.compile(rf"^[ \t]*\[\[?[ \t]*{re.escape(header)}[ \t]*\]\]?", re.M)
        found = list(pattern.finditer(self.text))
        if index < len(found):
            return f":{self.text.count(chr(10), 0, found[index].start()) + 1}"
        return ""

    def check_keys(self, where: str, table, allowed: set[str], what: str) -> None:
        if not isinstance(table, dict):
            self.fail(where, f"{what} must be a table")
        unknown = sorted(set(table) - allowed)
        if unknown:
            self.fail(where, f"unknown key {unknown[0]!r} in {what} (allowed: {', '.join(sorted(allowed))})")

    def corpus(self, data: dict) -> Corpus:
        unknown = sorted(set(data) - {"corpus", "fixtures", "case", "generate"})
        if unknown:
            self.fail("", f"unknown top-level key {unknown[0]!r} (allowed: [corpus], [fixtures.NAME], [[case]], "
                      "[[generate]])")
        head = data.get("corpus", {})
        where = self.header_line("corpus")
        self.check_keys(where, head, CORPUS_KEYS, "[corpus]")
        name = self.string(where, head, "name", self.path.stem)
        description = self.string(where, head, "description", "")
        self.env = self.str_table(where, head, "env") if "env" in head else dict(DEFAULT_ENV)
        self.timeout = self.number(where, head, "timeout", DEFAULT_TIMEOUT)
        self.normalize = self.normalizers(where, head)
        self.fixtures = {}
        fixtures = data.get("fixtures", {})
        if not isinstance(fixtures, dict):
            self.fail("", "fixtures must be tables: [fixtures.NAME]")
        for fixture, table in fixtures.items():
            where = self.header_line(f"fixtures.{fixture}")
            self.check_keys(where, table, FIXTURE_KEYS, f"[fixtures.{fixture}]")
            self.fixtures[fixture] = (self.files(where, table), self.mtime(where, table))
        self.default_fixture = self.strings(self.header_line("corpus"), head, "fixture")
        cases = [self.case(i, table) for i, table in enumerate(self.array(data, "case"))]
        seen = set()
        for case in cases:
            if case.name in seen:
                self.fail("", f"two cases are named {case.name!r} (names must be unique)")
            seen.add(case.name)
        for i, table in enumerate(self.array(data, "generate")):
            for case in self.generate(i, table):
                if case.name not in seen:         # a program two generators find (or a [[case]] named so): once
                    seen.add(case.name)
                    cases.append(case)
        return Corpus(str(self.path), name, description, cases)

    def array(self, data: dict, key: str) -> list:
        value = data.get(key, [])
        if not isinstance(value, list):
            self.fail(self.header_line(key), f"{key} must be an array of tables: [[{key}]]")
        return value

    # -- values ---------------------------------------------------------------------------------------
    def string(self, where: str, table: dict, key: str, default=None) -> str:
        value = table.get(key, default)
        if not isinstance(value, str):
            self.fail(where, f"{key}: expected a string, got {_kind(value)}")
        return value

    def number(self, where: str, table: dict, key: str, default) -> float:
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            self.fail(where, f"{key}: expected a positive number of seconds, got {value!r}")
        return float(value)

    def strings(self, where: str, table: dict, key: str, nonempty: bool = False) -> list[str]:
        value = table.get(key, [])
        if isinstance(value, str) and key in ("tags", "requires", "fixture", "packages", "dirs", "skip"):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or nonempty and not value:
            self.fail(where, f"{key}: expected a {'non-empty ' if nonempty else ''}list of strings, got {value!r}")
        return value

    def str_table(self, where: str, table: dict, key: str) -> dict[str, str]:
        value = table.get(key, {})
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            self.fail(where, f"{key}: expected a table of strings (NAME = \"value\")")
        return value

    def mtime(self, where: str, table: dict) -> int | None:
        value = table.get("mtime")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            self.fail(where, f"mtime: expected seconds since the epoch (an integer), got {value!r}")
        return value

    def regex(self, where: str, key: str, pattern: str) -> bytes:
        try:
            re.compile(pattern.encode())
        except re.error as err:
            self.fail(where, f"{key}: bad regular expression {pattern!r}: {err}")
        return pattern.encode()

    def normalizers(self, where: str, table: dict) -> list[Normalizer]:
        value = table.get("normalize", [])
        if not isinstance(value, list):
            self.fail(where, "normalize: expected a list of builtin names and {pattern, replace, stream} tables")
        out = []
        for item in value:
            if isinstance(item, str):
                if item not in BUILTIN_NAMES:
                    self.fail(where, f"normalize: unknown builtin {item!r} (builtins: {', '.join(BUILTIN_NAMES)})")
                out.append(Normalizer(item))
                continue
            self.check_keys(where, item, {"pattern", "replace", "stream"}, "a normalize table")
            pattern = self.regex(where, "normalize", self.string(where, item, "pattern"))
            stream = self.string(where, item, "stream", "both")
            if stream not in STREAMS:
                self.fail(where, f"normalize: stream must be one of {', '.join(STREAMS)}, got {stream!r}")
            out.append(Normalizer("regex", pattern, self.string(where, item, "replace", "").encode(), stream))
        return out

    def files(self, where: str, table: dict) -> list[FileSpec]:
        files = table.get("files", {})
        if not isinstance(files, dict):
            self.fail(where, "files: expected a table of PATH = content or {text|base64|copy|symlink|dir ...}")
        out = []
        for name, spec in files.items():
            if name.startswith("/") or ".." in Path(name).parts or not name:
                self.fail(where, f"files: {name!r} must be a relative path inside the case's temp dir")
            if isinstance(spec, str):
                out.append(FileSpec(name, "text", spec))
                continue
            self.check_keys(where, spec, {*FILE_KINDS, "mode"}, f"files.{name!r}")
            kinds = [k for k in FILE_KINDS if k in spec]
            if len(kinds) != 1:
                self.fail(where, f"files.{name!r}: needs exactly one of {', '.join(FILE_KINDS)}")
            kind, value = kinds[0], spec[kinds[0]]
            if kind == "dir" and value is not True or kind != "dir" and not isinstance(value, str):
                self.fail(where, f"files.{name!r}: {kind} must be {'true' if kind == 'dir' else 'a string'}")
            if kind == "base64":
                try:
                    value = base64.b64decode(value, validate=True)
                except ValueError as err:
                    self.fail(where, f"files.{name!r}: bad base64 ({err})")
            if kind == "copy":
                source = (self.path.parent / value)
                if not source.exists():
                    self.fail(where, f"files.{name!r}: copy: {source} does not exist")
                value = str(source)
            mode = spec.get("mode")
            if mode is not None and (isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o7777):
                self.fail(where, f"files.{name!r}: mode must be an integer such as 0o644, got {mode!r}")
            out.append(FileSpec(name, kind, value, mode))
        return out

    # -- cases and generators -------------------------------------------------------------------------
    def case(self, index: int, table: dict) -> Case:
        where = self.header_line("case", index)
        self.check_keys(where, table, CASE_KEYS, f"[[case]] #{index + 1}")
        if "name" not in table:
            self.fail(where, f"[[case]] #{index + 1} has no name")
        name = self.string(where, table, "name")
        where += f" (case {name!r})"
        if "argv" not in table:
            self.fail(where, "argv is missing")
        argv = self.strings(where, table, "argv", nonempty=True)
        if "stdin" in table and "stdin_base64" in table:
            self.fail(where, "stdin and stdin_base64 exclude each other")
        stdin = self.string(where, table, "stdin", "").encode()
        if "stdin_base64" in table:
            try:
                stdin = base64.b64decode(self.string(where, table, "stdin_base64"), validate=True)
            except ValueError as err:
                self.fail(where, f"stdin_base64: {err}")
        files, mtime = [], None
        for fixture in self.strings(where, table, "fixture") if "fixture" in table else self.default_fixture:
            if fixture not in self.fixtures:
                known = ", ".join(sorted(self.fixtures)) or "none defined"
                self.fail(where, f"fixture {fixture!r} is not defined ([fixtures.NAME]: {known})")
            fixture_files, fixture_mtime = self.fixtures[fixture]
            files += fixture_files
            mtime = fixture_mtime if fixture_mtime is not None else mtime
        files += self.files(where, table)
        status = table.get("status")
        if status is not None and (isinstance(status, bool) or not isinstance(status, int) or not 0 <= status <= 255):
            self.fail(where, f"status: expected an exit status 0-255, got {status!r}")
        program = os.path.basename(argv[0])
        return Case(name=name, argv=argv, app=self.string(where, table, "app", program),
                    stdin=stdin, env={**self.env, **self.str_table(where, table, "env")}, files=files,
                    mtime=self.mtime(where, table) if "mtime" in table else mtime,
                    timeout=self.number(where, table, "timeout", self.timeout), status=status,
                    normalize=self.normalize + self.normalizers(where, table),
                    tags=self.strings(where, table, "tags"),
                    requires=self.strings(where, table, "requires") if "requires" in table else [argv[0]])

    def generate(self, index: int, table: dict) -> list[Case]:
        where = self.header_line("generate", index)
        self.check_keys(where, table, GENERATE_KEYS, f"[[generate]] #{index + 1}")
        kind = self.string(where, table, "kind", "")
        if kind not in ("elf-dir", "packages"):
            self.fail(where, f"kind: expected \"elf-dir\" or \"packages\", got {kind!r}")
        args = table.get("args", [["--version"], ["--help"]])
        if not isinstance(args, list) or not all(isinstance(a, list) and all(isinstance(s, str) for s in a)
                                                 for a in args):
            self.fail(where, f"args: expected a list of argument lists such as [[\"--version\"]], got {args!r}")
        skip = re.compile("|".join(f"(?:{self.regex(where, 'skip', s).decode()})"
                                   for s in self.strings(where, table, "skip")) or "(?!)")
        if kind == "elf-dir":
            programs = elf_programs(self.strings(where, table, "dirs", nonempty=True))
        else:
            programs = package_programs(self.strings(where, table, "packages", nonempty=True),
                                        lambda message: self.fail(where, message))
        timeout = self.number(where, table, "timeout", self.timeout)
        normalize = self.normalize + self.normalizers(where, table)
        tags = self.strings(where, table, "tags")
        return [Case(name=" ".join([os.path.basename(path), *a]), argv=[path, *a], app=os.path.basename(path),
                     env=dict(self.env), timeout=timeout, normalize=normalize, tags=tags, requires=[])
                for path in programs if not skip.fullmatch(os.path.basename(path)) for a in args]


def _kind(value) -> str:
    return "nothing" if value is None else type(value).__name__


def is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def elf_programs(directories: list[str]) -> list[str]:
    """Every ELF executable directly in ``directories``, one name per distinct file (the first found)."""
    seen, out = set(), []
    for directory in directories:
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            path = os.path.join(directory, name)
            real = os.path.realpath(path)
            if real in seen or not os.path.isfile(real) or not os.access(real, os.X_OK) or not is_elf(real):
                continue
            seen.add(real)
            out.append(path)
    return out


def package_programs(packages: list[str], fail) -> list[str]:
    """The ELF executables Debian packages install in bin/ and sbin/ directories (``dpkg -L``)."""
    out = []
    for package in packages:
        try:
            listing = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True)
        except OSError as err:
            fail(f"packages: cannot run dpkg -L ({err.strerror})")
        if listing.returncode:
            fail(f"packages: {package}: {listing.stderr.strip() or 'dpkg -L failed'}")
        for path in listing.stdout.splitlines():
            if os.path.basename(os.path.dirname(path)) in ("bin", "sbin") and path not in out \
                    and os.path.isfile(path) and os.access(path, os.X_OK) and is_elf(path):
                out.append(path)
    return out


def prepare(case: Case, directory: str) -> None:
    """Create ``case``'s files in ``directory`` (its temp dir), then give them the case's mtime, if any."""
    root = Path(directory)
    for spec in case.files:
        path = root / spec.path
        path.parent.mkdir(parents=True, exist_ok=True)
        if spec.kind == "text":
            path.write_text(spec.value)
        elif spec.kind == "base64":
            path.write_bytes(spec.value)
        elif spec.kind == "copy":
            if os.path.isdir(spec.value):
                shutil.copytree(spec.value, path, symlinks=True, dirs_exist_ok=True)
            else:
                shutil.copyfile(spec.value, path)
        elif spec.kind == "symlink":
            path.symlink_to(spec.value)
        else:
            path.mkdir(exist_ok=True)
        if spec.mode is not None:
            path.chmod(spec.mode)
    if case.mtime is not None:
        for path in sorted(root.rglob("*"), reverse=True):
            os.utime(path, (case.mtime, case.mtime), follow_symlinks=False)
        os.utime(root, (case.mtime, case.mtime))


def program_missing(case: Case) -> str | None:
    """The first program ``case`` requires that is not on its PATH (or not there as a path), else None."""
    for program in case.requires:
        if os.sep in program:
            if not os.access(program, os.X_OK):
                return program
        elif shutil.which(program, path=case.env.get("PATH", os.defpath)) is None:
            return program
    return None
