"""Compatibility sweep: Debian's own programs natively and under hermipy, compared byte for byte.

    python tests/sweep.py [--backend unicorn|kvm] [--jobs N] [--only REGEX] [--skip REGEX] [--curated]
                          [--timeout S] [--show N]

Every ELF executable in /usr/bin (and /bin) runs with ``--version`` and ``--help``; a curated set does real
work in a temp dir (coreutils, grep/sed/awk, find/xargs, archivers, diff, interpreters, shells with
pipelines). Each run gets an empty stdin, a fixed environment and a fresh temp dir prepared the same way;
stdout, stderr and the exit status must be identical, and nothing is normalised but the temp dir's path.

Not a pytest module (no ``test_`` prefix): a user's view of what runs, not a gate. The summary counts
identical runs, different ones (with the first differing lines) and hermipy errors: unimplemented syscalls
(hermipy's warning), hermipy's own messages and tracebacks, crashes and timeouts. A run that differs is
rerun with ``--strace-file`` to say whether it wanted a thread (clone with CLONE_THREAD, out of scope); a
timeout is not rerun.
"""
import argparse
import difflib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": "/nonexistent", "TZ": "UTC"}
NATIVE_TIMEOUT = 10
HERMIPY_TIMEOUT = 60

# Never started, not even with --version/--help: they change the machine, wait for a peer, or are a whole
# runtime of their own that says nothing about the syscall layer in a --version.
SKIP = re.compile(r"^(systemd.*|reboot|halt|poweroff|shutdown|init|telinit|login|su|sudo|passwd|chsh|chfn|newgrp|sg|"
                  r"gpasswd|wall|write|mesg|clear_console|dbus-daemon|dbus-run-session|dbus-monitor|dbus-send|"
                  r"kill|killall|pkill|skill|snice|pidwait|xkill|mount|umount|unshare|nsenter|chattr|"
                  r"setterm|reset|tset|tload|top|slabtop|watch|vmstat|script|scriptlive|scriptreplay|"
                  r"pkttyagent|pkmon|pkcon|gdb|gdbtui|gcore|valgrind.*|vgdb|perf|heaptrack|strace|ltrace|"
                  r"qemu-.*|java|javac|javadoc|javap|jar|jarsigner|jcmd|jconsole|jdb|jdeprscan|jdeps|jfr|jhsdb|"
                  r"jimage|jinfo|jlink|jmap|jmod|jpackage|jps|jrunscript|jshell|jstack|jstat|jstatd|keytool|"
                  r"rmiregistry|serialver|node|nodejs|kubectl|kpt|gke-gcloud-auth-plugin|docker-.*|"
                  r"lli.*|llvm-jitlink.*|bugpoint.*|llvm-stress.*|llvm-exegesis.*|ld.so|sync|shred|"
                  r"ssh-agent|gpg-agent|dirmngr|tmux|wish.*|x.*|appres|editres|listres|viewres|luit)$")


@dataclass
class Result:
    status: int
    stdout: bytes
    stderr: bytes
    timeout: bool = False


@dataclass
class Case:
    name: str
    argv: list[str]
    stdin: bytes = b""
    setup: bool = False          # run in a temp dir prepared by files()


@dataclass
class Outcome:
    case: Case
    kind: str                    # identical | different | error | native-only
    detail: str = ""
    missing: list[str] = field(default_factory=list)
    threads: bool = False


NUMBERS = "".join(f"{(i * 7919) % 1000}\n" for i in range(2000))
TEXT = "".join(f"line {i}: the quick brown fox {i % 7} jumps\n" for i in range(500))
WORDS = "".join(f"{w}\n" for w in "delta alpha echo bravo alpha charlie delta foxtrot alpha".split())


def files(d: str) -> None:
    """The same small tree in every temp dir, with fixed times."""
    p = Path(d)
    (p / "numbers.txt").write_text(NUMBERS)
    (p / "text.txt").write_text(TEXT)
    (p / "words.txt").write_text(WORDS)
    (p / "a.txt").write_text("1 one\n2 two\n3 three\n5 five\n")
    (p / "b.txt").write_text("1 uno\n2 dos\n4 cuatro\n5 cinco\n")
    (p / "data.json").write_text('{"b": [1, 2, {"c": "d"}], "a": null, "e": 1.5}')
    (p / "deps.txt").write_text("a b\nb c\nc d\na d\n")
    (p / "random.bin").write_bytes(bytes((i * 131 + 7) % 256 for i in range(4096)))
    (p / "Makefile").write_text("all: out.txt\n\t@cat out.txt\nout.txt: a.txt\n\t@sort -r a.txt > out.txt\n")
    (p / "sub" / "deeper").mkdir(parents=True)
    (p / "sub" / "one.txt").write_text("one\n")
    (p / "sub" / "deeper" / "two.txt").write_text("two\n" * 100)
    (p / "sub" / "link").symlink_to("one.txt")
    for path in sorted(p.rglob("*"), reverse=True):
        os.utime(path, (1_000_000_000, 1_000_000_000), follow_symlinks=False)
    os.utime(p, (1_000_000_000, 1_000_000_000))


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


CURATED = {
    # coreutils
    "ls": ["ls", "-la", "--time-style=+%Y", "sub"], "ls-R": ["ls", "-R", "."],
    "cat": ["cat", "-n", "a.txt", "b.txt"], "sort": ["sort", "-n", "numbers.txt"],
    "sort-u": ["sort", "-u", "-k2", "words.txt"], "uniq": sh("sort words.txt | uniq -c"),
    "wc": ["wc", "text.txt", "numbers.txt"], "head": ["head", "-c", "100", "text.txt"],
    "tail": ["tail", "-n", "3", "text.txt"], "cut": ["cut", "-d", " ", "-f", "2,4", "text.txt"],
    "tr": ["tr", "a-z", "A-Z", "--", "a.txt"], "od": ["od", "-A", "x", "-t", "x1z", "random.bin"],
    "md5sum": ["md5sum", "text.txt"], "sha1sum": ["sha1sum", "text.txt"], "sha224sum": ["sha224sum", "text.txt"],
    "sha256sum": ["sha256sum", "text.txt"], "sha384sum": ["sha384sum", "text.txt"],
    "sha512sum": ["sha512sum", "text.txt"], "b2sum": ["b2sum", "text.txt"], "cksum": ["cksum", "text.txt"],
    "sum": ["sum", "text.txt"], "base64": ["base64", "random.bin"], "base32": ["base32", "a.txt"],
    "seq": ["seq", "1", "3", "100"], "expr": ["expr", "12", "*", "7"],
    "date": ["date", "-u", "-d", "@0", "+%Y-%m-%d %H:%M:%S %A"],
    "stat": ["stat", "-c", "%n %s %F %a %Y", "text.txt", "sub", "sub/link"],
    "du": ["du", "-a", "--apparent-size", "sub"], "env": ["env"], "printenv": ["printenv", "PATH"],
    "printf": ["printf", "%5d|%-5s|%x\\n", "42", "ab", "255"], "basename": ["basename", "/a/b/c.txt", ".txt"],
    "dirname": ["dirname", "/a/b/c.txt"], "realpath": ["realpath", "sub/link", "sub/../a.txt"],
    "readlink": ["readlink", "-f", "sub/link"],
    "mktemp": sh('f=$(mktemp -p .) && test -f "$f" && d=$(mktemp -d -p .) && test -d "$d" && echo ok'),
    "touch": sh("touch -d @86400 new && stat -c '%n %Y %s' new"),
    "cp": sh("cp -a sub copy && ls -lR --time-style=+%s copy"), "mv": sh("mv a.txt moved && ls"),
    "rm": sh("rm -rv sub && ls"), "mkdir": ["mkdir", "-pv", "x/y/z"],
    "ln": sh("ln -s a.txt s && ln a.txt h && ls -li --time-style=+%s s h | cut -d' ' -f2-"),
    "chmod": sh("chmod -v 600 a.txt && stat -c %a a.txt"), "split": sh("split -l 500 numbers.txt part. && wc -l part.*"),
    "join": ["join", "a.txt", "b.txt"], "paste": ["paste", "a.txt", "b.txt"], "comm": ["comm", "a.txt", "b.txt"],
    "tac": ["tac", "a.txt"], "nl": ["nl", "a.txt"], "fold": ["fold", "-w", "20", "text.txt"],
    "fmt": ["fmt", "-w", "30", "a.txt"], "pr": ["pr", "-2", "-t", "a.txt"],
    "shuf": ["shuf", "--random-source=random.bin", "words.txt"], "numfmt": ["numfmt", "--to=iec", "1048576", "999"],
    "factor": ["factor", "1234567890", "97"], "tsort": ["tsort", "deps.txt"], "expand": ["expand", "-t", "4", "a.txt"],
    "truncate": sh("truncate -s 10 a.txt && cat a.txt"), "dd": ["dd", "if=random.bin", "bs=512", "count=2", "status=none"],
    "csplit": sh("csplit -s a.txt 2 && cat xx01"), "rev": ["rev", "a.txt"], "tee": sh("echo hi | tee t && cat t"),
    "test": sh("test -d sub && [ -f a.txt ] && echo yes"), "id": ["id", "-u"], "uname": ["uname", "-s", "-m"],
    "nproc": sh("test $(nproc) -ge 1 && echo ok"), "pwd": sh("cd sub && pwd"), "yes": sh("yes | head -n 3"),
    "true": ["true"], "false": ["false"], "sleep": ["sleep", "0.01"], "timeout": ["timeout", "5", "true"],
    "nice": ["nice", "true"], "nohup": sh("nohup echo hi 2>&1"), "stdbuf": ["stdbuf", "-oL", "cat", "a.txt"],
    "install": sh("install -m 644 a.txt inst && stat -c %a inst"), "mkfifo": sh("mkfifo f && stat -c %F f"),
    "unlink": sh("unlink a.txt && ls"), "sha256sum-c": sh("sha256sum a.txt > s && sha256sum -c s"),
    "dir": ["dir", "sub"], "getconf": ["getconf", "PAGESIZE"], "iconv": ["iconv", "-f", "UTF-8", "-t", "UTF-16LE", "a.txt"],
    "hexdump": ["hexdump", "-C", "a.txt"], "xxd": ["xxd", "a.txt"], "column": ["column", "-t", "a.txt"],
    "look": ["look", "al", "words.txt"], "getopt": ["getopt", "-o", "ab:", "--", "-a", "-b", "x", "y"],
    "flock": ["flock", "a.txt", "true"], "which": ["which", "sh"], "strings": ["strings", "-n", "6", "/bin/true"],
    "cmp": ["cmp", "a.txt", "b.txt"], "diff": ["diff", "-u", "a.txt", "b.txt"], "diff3": ["diff3", "a.txt", "b.txt", "a.txt"],
    "sdiff": ["sdiff", "a.txt", "b.txt"], "patch": sh("diff -u a.txt b.txt > p; patch a.txt p && cat a.txt"),
    # text tools
    "grep": ["grep", "-En", "fox (3|5)", "text.txt"], "grep-r": ["grep", "-rc", "o", "sub"],
    "sed": ["sed", "-n", "s/quick/slow/p;10q", "text.txt"], "sed-i": sh("sed -i 's/one/ONE/' a.txt && cat a.txt"),
    "mawk": ["mawk", "{ s += $1 } END { print s, NR }", "numbers.txt"],
    "awk": ["awk", "-F", " ", "{ print $2, length($0) }", "a.txt"],
    "find": ["find", ".", "-name", "*.txt", "-size", "-2k"], "find-exec": ["find", "sub", "-type", "f", "-exec", "wc", "-c", "{}", "+"],
    "xargs": sh("find sub -type f | sort | xargs cat | wc -l"), "xargs-n": sh("echo 1 2 3 4 | xargs -n 2 echo"),
    # archivers
    "tar": ["tar", "--mtime=@0", "--owner=0", "--group=0", "--sort=name", "-cf", "-", "sub"],
    "tar-x": sh("tar --mtime=@0 -cf t.tar sub && mkdir x && tar -xf t.tar -C x && find x | sort"),
    "gzip": ["gzip", "-9", "-n", "-c", "text.txt"], "gunzip": sh("gzip -c text.txt | gunzip | wc -c"),
    "xz": ["xz", "-c", "text.txt"], "bzip2": ["bzip2", "-c", "text.txt"], "zstd": ["zstd", "-q", "-c", "text.txt"],
    "lz4": ["lz4", "-q", "-c", "text.txt"], "zip": sh("zip -q -X z.zip a.txt b.txt && unzip -l z.zip | tail -n 1"),
    "file": ["file", "a.txt", "random.bin", "sub", "/bin/true"],
    # interpreters and tools
    "perl": ["perl", "-e", "my %h; $h{$_ % 7}++ for 1..1000; print join(',', map {\"$_=$h{$_}\"} sort keys %h), \"\\n\""],
    "perl-file": ["perl", "-ne", "print if /fox 3/ .. /fox 5/", "text.txt"],
    "python3": ["python3", "-c", "import json, hashlib, re, os; print(json.dumps({'h': hashlib.sha256(b'x').hexdigest(), "
                "'r': re.findall(r'fox (\\d)', open('text.txt').read())[:5], 'l': sorted(os.listdir('sub'))}))"],
    "python3-json.tool": ["python3", "-m", "json.tool", "data.json"],
    "python3-subprocess": ["python3", "-c", "import subprocess; print(subprocess.run(['sort', 'a.txt'], "
                           "capture_output=True).stdout.decode())"],
    "sqlite3": ["sqlite3", ":memory:", "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) "
                "SELECT count(*), sum(x) FROM c;"],
    "sqlite3-file": sh("sqlite3 db 'create table t(a); insert into t values (1),(2);' && sqlite3 db 'select sum(a) from t'"),
    "lua5.4": ["lua5.4", "-e", "local t = {} for i = 1, 100 do t[#t + 1] = i * i end print(#t, t[50])"],
    "jq": ["jq", "-S", ".", "data.json"], "bc": ["bc", "-l"], "tclsh": ["tclsh"],
    "dash": ["dash", "-c", "for i in 1 2 3; do echo $i; done | (read a; read b; echo $b$a); echo $(( 6 * 7 ))"],
    "bash": ["bash", "-c", "set -o pipefail; a=(x y z); echo ${#a[@]} $(echo sub | tr a-z A-Z); "
             "cat a.txt | sort -r | head -n 2; (exit 3); echo $?; f() { return 4; }; f; echo $?"],
    "bash-redirect": ["bash", "-c", "exec 3> out; echo to3 >&3; exec 3>&-; cat out; ls nonexistent 2>&1; echo $?"],
    "make": ["make", "-s"], "openssl": ["openssl", "dgst", "-sha256", "text.txt"], "ed": sh("printf '2p\\nq\\n' | ed -s a.txt"),
    "awk-atan2": ["awk", "BEGIN { printf \"%.3f\\n\", atan2(0, -1) }"],
}
STDIN = {"bc": b"scale=20; 4*a(1)\n", "tclsh": b"puts [expr {6 * 7}]\n"}


# hermipy itself may need PYTHONPATH (e.g. to sweep another checkout); the guest gets exactly ENV either way.
HERMIPY_ENV = {**ENV, **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}}


def run(argv, cwd, hermipy: list[str] | None, stdin: bytes) -> Result:
    command = (hermipy or []) + argv
    try:
        proc = subprocess.run(command, cwd=cwd, input=stdin, env=HERMIPY_ENV if hermipy else ENV,
                              capture_output=True, start_new_session=True,
                              timeout=HERMIPY_TIMEOUT if hermipy else NATIVE_TIMEOUT)
    except subprocess.TimeoutExpired as err:
        return Result(-1, err.stdout or b"", err.stderr or b"", timeout=True)
    if proc.returncode < 0:
        signo = -proc.returncode
        return Result(128 + signo, proc.stdout, proc.stderr + f"{signal.strsignal(signo)}\n".encode())
    return Result(proc.returncode, proc.stdout, proc.stderr)


def in_tmp(case: Case, hermipy: list[str] | None) -> Result:
    with tempfile.TemporaryDirectory(prefix="sweep.") as d:
        if case.setup:
            files(d)
        r = run(case.argv, d, hermipy, case.stdin)
    tmp = d.encode()
    return Result(r.status, r.stdout.replace(tmp, b"<tmp>"), r.stderr.replace(tmp, b"<tmp>"), r.timeout)


def first_difference(native: bytes, emulated: bytes, limit: int = 6) -> str:
    lines = list(difflib.unified_diff(native.decode(errors="replace").splitlines(),
                                      emulated.decode(errors="replace").splitlines(), lineterm="", n=0))[2:]
    return "\n".join(lines[:limit])


MISSING = re.compile(rb"hermipy: warning: syscall (\w+) \(\d+\) is not implemented")


def wants_thread(case: Case, hermipy: list[str]) -> bool:
    """Rerun under --strace-file: did the guest try to create a thread?"""
    with tempfile.NamedTemporaryFile(prefix="sweep-strace.") as trace:
        in_tmp(case, hermipy + ["--strace-file", trace.name])
        return re.search(rb"^clone3?\(.*CLONE_THREAD|^clone3\(.*= -1 ENOSYS", Path(trace.name).read_bytes(), re.M) \
            is not None


def compare(case: Case, hermipy: list[str]) -> Outcome:
    native = in_tmp(case, None)
    if native.timeout:
        return Outcome(case, "native-only", "natively it times out")
    emulated = in_tmp(case, hermipy)
    missing = sorted({m.decode() for m in MISSING.findall(emulated.stderr)})
    if emulated.timeout:
        return Outcome(case, "error", f"timeout after {HERMIPY_TIMEOUT}s", missing)
    if (native.status, native.stdout, native.stderr) == (emulated.status, emulated.stdout, emulated.stderr):
        return Outcome(case, "identical")
    own = [line for line in emulated.stderr.splitlines()
           if line.startswith(b"hermipy:") and line not in native.stderr.splitlines()]
    parts = []
    if native.status != emulated.status:
        parts.append(f"status {native.status} -> {emulated.status}")
    if native.stdout != emulated.stdout:
        parts.append("stdout:\n" + first_difference(native.stdout, emulated.stdout))
    if native.stderr != emulated.stderr:
        parts.append("stderr:\n" + first_difference(native.stderr, emulated.stderr))
    kind = "error" if own or b"Traceback (most recent call last)" in emulated.stderr else "different"
    return Outcome(case, kind, "\n".join(parts), missing, wants_thread(case, hermipy))


def is_elf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def generic_cases() -> list[Case]:
    """--version and --help of every ELF program in /usr/bin and /bin (one name per distinct file)."""
    seen, cases = set(), []
    for directory in ("/usr/bin", "/bin"):
        for path in sorted(Path(directory).iterdir()):
            real = os.path.realpath(path)
            if SKIP.match(path.name) or real in seen or not os.access(path, os.X_OK) or not is_elf(Path(real)):
                continue
            seen.add(real)
            cases += [Case(f"{path.name} {flag}", [str(path), flag]) for flag in ("--version", "--help")]
    return cases


def curated_cases() -> list[Case]:
    out = []
    for name, argv in CURATED.items():
        program = name.split("-")[0] if argv[0] == "sh" else argv[0]
        if subprocess.run(["sh", "-c", f"command -v {program}"], capture_output=True, env=ENV).returncode == 0:
            out.append(Case(name, argv, STDIN.get(name, b""), setup=True))
    return out


def main() -> int:
    global HERMIPY_TIMEOUT
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["unicorn", "kvm"], default="unicorn")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", metavar="REGEX", help="only the cases whose name matches")
    parser.add_argument("--skip", metavar="REGEX", help="leave out the cases whose name matches (e.g. programs "
                        "too slow to start under a backend)")
    parser.add_argument("--timeout", type=int, default=HERMIPY_TIMEOUT, help="seconds one hermipy run may take "
                        f"(default {HERMIPY_TIMEOUT})")
    parser.add_argument("--curated", action="store_true", help="only the curated cases (no --version/--help sweep)")
    parser.add_argument("--show", type=int, default=200, help="list at most N non-identical cases (default 200)")
    args = parser.parse_args()
    cases = curated_cases() + ([] if args.curated else generic_cases())
    if args.only:
        cases = [c for c in cases if re.search(args.only, c.name)]
    if args.skip:
        cases = [c for c in cases if not re.search(args.skip, c.name)]
    HERMIPY_TIMEOUT = args.timeout
    hermipy = [sys.executable, "-m", "hermipy", "run", "--backend", args.backend, "--clear-env",
               *(f"-E{key}={value}" for key, value in ENV.items())]
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        outcomes = []
        for o in pool.map(lambda c: compare(c, hermipy), cases):
            outcomes.append(o)
            if len(outcomes) % 100 == 0:
                print(f"{len(outcomes)}/{len(cases)} ({time.monotonic() - start:.0f} s)", file=sys.stderr, flush=True)
    counts = Counter(o.kind for o in outcomes)
    shown = 0
    for o in outcomes:
        if o.kind == "identical" or shown >= args.show:
            continue
        shown += 1
        tags = ([f"missing: {', '.join(o.missing)}"] if o.missing else []) + (["wants a thread"] if o.threads else [])
        print(f"== {o.kind}: {o.case.name}" + (f"  [{'; '.join(tags)}]" if tags else ""))
        if o.detail:
            print("   " + o.detail.replace("\n", "\n   "))
    missing = Counter(name for o in outcomes for name in o.missing)
    threads = sorted({o.case.name.split()[0] for o in outcomes if o.threads})
    print(f"\nbackend {args.backend}: {len(outcomes)} runs in {time.monotonic() - start:.0f} s: "
          f"{counts['identical']} identical, {counts['different']} different, {counts['error']} hermipy errors"
          + (f", {counts['native-only']} timing out natively (not compared)" if counts["native-only"] else ""))
    if missing:
        print("unimplemented syscalls (runs): " + ", ".join(f"{n} ({c})" for n, c in missing.most_common()))
    if threads:
        print("want threads: " + " ".join(threads))
    return 0


if __name__ == "__main__":
    sys.exit(main())
