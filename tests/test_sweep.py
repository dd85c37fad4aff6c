"""``hermipy sweep`` (issue 17): the corpus format and its errors, a small corpus swept on both backends, the
reports, and ``hermipy run --stats``."""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import KVM_UNUSABLE
from hermipy import corpus, sweep
from hermipy.sweep import Run

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ["unicorn"] + ([] if KVM_UNUSABLE else ["kvm"])
BUSYBOX = "/usr/bin/busybox"
TIMEOUT = 120


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Each test's sweeps cache their results in its own directory (hermipy runs inherit the environment)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def hermipy(*args, cwd=None, timeout=TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hermipy", *map(str, args)], capture_output=True, cwd=cwd,
                          timeout=timeout)


def write(tmp_path: Path, text: str, name: str = "corpus.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- the corpus format --------------------------------------------------------------------------------------
SMALL = f"""
[corpus]
name = "small"
env = {{ PATH = "/usr/bin:/bin", LC_ALL = "C" }}
timeout = 60

[fixtures.words]
mtime = 1000000000
files."words.txt" = "delta\\nalpha\\ncharlie\\nalpha\\n"
files."sub/one.txt" = {{ text = "one\\n", mode = 0o600 }}
files."sub/link" = {{ symlink = "one.txt" }}

[[case]]
name = "busybox-sort"
argv = ["{BUSYBOX}", "sort", "-u", "words.txt"]
fixture = "words"
tags = ["busybox", "fast"]

[[case]]
name = "busybox-sh"
argv = ["{BUSYBOX}", "sh", "-c", "cat words.txt | busybox wc -l; ls -l sub | busybox wc -l; pwd"]
fixture = "words"
env = {{ PATH = "/usr/bin:/bin" }}
tags = ["busybox"]

[[case]]
name = "coreutils-stat"
argv = ["stat", "-c", "%n %s %a %Y", "sub/one.txt", "words.txt"]
fixture = "words"
tags = ["coreutils", "fast"]

[[case]]
name = "pid"
argv = ["sh", "-c", "echo I am $$"]
normalize = ["pid"]
tags = ["coreutils"]

[[case]]
name = "pid-raw"
argv = ["sh", "-c", "echo I am $$"]
tags = ["coreutils"]

[[case]]
name = "stdin"
argv = ["tr", "a-z", "A-Z"]
stdin = "hello\\n"
normalize = [{{ pattern = "HEL+", replace = "H*", stream = "stdout" }}]
tags = ["coreutils"]

[[case]]
name = "io-uring"
argv = ["perl", "-e", "print syscall(425, 0, 0), \\"\\\\n\\""]
tags = ["perl"]

[[case]]
name = "not-installed"
argv = ["no-such-program-hermipy"]

[[case]]
name = "unexpected-status"
argv = ["false"]
status = 0
"""


def test_corpus_parses(tmp_path):
    c = corpus.load(str(write(tmp_path, SMALL)))
    assert c.name == "small"
    cases = {case.name: case for case in c.cases}
    sort = cases["busybox-sort"]
    assert sort.app == "busybox" and sort.tags == ["busybox", "fast"] and sort.mtime == 1000000000
    assert sort.requires == [BUSYBOX] and sort.timeout == 60.0 and sort.env == {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}
    assert [f.path for f in sort.files] == ["words.txt", "sub/one.txt", "sub/link"]
    assert cases["stdin"].stdin == b"hello\n"
    assert cases["busybox-sh"].env == {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}
    corpus.prepare(sort, str(tmp_path / "case"))
    one = tmp_path / "case" / "sub" / "one.txt"
    assert one.read_text() == "one\n" and one.stat().st_mode & 0o777 == 0o600
    assert os.readlink(tmp_path / "case" / "sub" / "link") == "one.txt"
    assert (tmp_path / "case" / "words.txt").stat().st_mtime == 1000000000


def test_normalizers():
    times = corpus.Normalizer("times")
    assert times.apply(b"at 2024-01-02 10:11:12.5, took 0.25s and 3 ms, real 0m1.5s", "stdout", 0) == \
        b"at <date> <time>, took <duration> and <duration>, real <duration>"
    assert corpus.Normalizer("pid").apply(b"pid 123 and 1234", "stderr", 123) == b"pid <pid> and 1234"
    only_err = corpus.Normalizer("regex", rb"\d+", b"N", "stderr")
    assert only_err.apply(b"a1", "stdout", 0) == b"a1" and only_err.apply(b"a1", "stderr", 0) == b"aN"
    assert corpus.Normalizer("addresses").apply(b"at 0x7ffd1234abcd", "stdout", 0) == b"at <addr>"


def test_generators(tmp_path):
    (tmp_path / "bin").mkdir()
    os.symlink(BUSYBOX, tmp_path / "bin" / "bb")
    os.symlink(BUSYBOX, tmp_path / "bin" / "bb2")            # the same file: once
    (tmp_path / "bin" / "script").write_text("#!/bin/sh\n")
    os.chmod(tmp_path / "bin" / "script", 0o755)              # not an ELF: left out
    c = corpus.load(str(write(tmp_path, f"""
[[generate]]
kind = "elf-dir"
dirs = ["{tmp_path}/bin"]
args = [["--help"]]
tags = ["gen"]

[[generate]]
kind = "packages"
packages = ["coreutils"]
args = [["--version"]]
skip = ["[a-r].*", "s[^l].*", "t.*|u.*|v.*|w.*|y.*"]
""")))
    names = [case.name for case in c.cases]
    assert names[0] == "bb --help" and c.cases[0].argv == [f"{tmp_path}/bin/bb", "--help"]
    assert c.cases[0].tags == ["gen"] and c.cases[0].app == "bb"
    assert "bb2 --help" not in names and "script --help" not in names
    assert "sleep --version" in names and "ls --version" not in names


def test_documented_example_parses(tmp_path):
    """The corpus example in docs/sweep.md is valid."""
    example = re.search(r"```toml\n(.*?)```", (ROOT / "docs" / "sweep.md").read_text(), re.S).group(1)
    (tmp_path / "example").mkdir()
    (tmp_path / "example" / "big.txt").write_text("big\n")
    c = corpus.load(str(write(tmp_path, example)))
    sort = c.cases[0]
    assert sort.name == "sort" and sort.env == {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "LANG": "C.UTF-8"}
    assert [n.name for n in sort.normalize] == ["times", "pid", "regex"] and sort.status == 0
    assert {f.path for f in sort.files} == {"a.txt", "big.txt", "blob", "sub/link", "empty", "run.sh", "extra.txt"}
    names = [case.name for case in c.cases]
    assert len(names) == len(set(names)) and "cat --version" in names and "grep --version" in names


@pytest.mark.parametrize("text, message", [
    ("[[case]]\nname = 'a'\nargv = ['x',,]\n", r"corpus.toml: .*\(at line 3, column 13\)"),
    ("[[case]]\nname = 'a'\nargv = ['true']\n\n[[case]]\nname = 'b'\nargs = ['x']\n",
     r"corpus.toml:5: unknown key 'args' in \[\[case\]\] #2 \(allowed: app, argv, "),
    ("[[case]]\nname = 'a'\n", r"corpus.toml:1 \(case 'a'\): argv is missing"),
    ("[[case]]\nname = 'a'\nargv = []\n", r"corpus.toml:1 \(case 'a'\): argv: expected a non-empty list"),
    ("[[case]]\nargv = ['true']\n", r"corpus.toml:1: \[\[case\]\] #1 has no name"),
    ("[[case]]\nname = 'a'\nargv = ['true']\nfixture = 'nope'\n", r"fixture 'nope' is not defined"),
    ("[[case]]\nname = 'a'\nargv = ['true']\nnormalize = [{ pattern = '(' }]\n",
     r"corpus.toml:1 \(case 'a'\): normalize: bad regular expression '\('"),
    ("[[case]]\nname = 'a'\nargv = ['true']\nnormalize = ['dates']\n", r"unknown builtin 'dates' \(builtins: pid, "),
    ("[[case]]\nname = 'a'\nargv = ['true']\n[[case]]\nname = 'a'\nargv = ['false']\n", r"two cases are named 'a'"),
    ("[[case]]\nname = 'a'\nargv = ['true']\ntimeout = 0\n", r"timeout: expected a positive number"),
    ("[[case]]\nname = 'a'\nargv = ['true']\nfiles.'../x' = 'y'\n", r"'../x' must be a relative path"),
    ("[[case]]\nname = 'a'\nargv = ['true']\nfiles.x = { text = 'y', copy = 'z' }\n", r"needs exactly one of"),
    ("[[case]]\nname = 'a'\nargv = ['true']\nfiles.x = { copy = 'missing' }\n", r"copy: .*missing does not exist"),
    ("[[generate]]\nkind = 'rpm'\n", r"corpus.toml:1: kind: expected \"elf-dir\" or \"packages\""),
    ("[[generate]]\nkind = 'packages'\npackages = ['no-such-package-hermipy']\n",
     r"packages: no-such-package-hermipy: dpkg-query: package 'no-such-package-hermipy' is not installed"),
    ("[corpus]\nnmae = 'x'\n", r"corpus.toml:1: unknown key 'nmae' in \[corpus\]"),
    ("[cases]\n", r"unknown top-level key 'cases'"),
])
def test_corpus_errors(tmp_path, text, message):
    with pytest.raises(corpus.CorpusError) as err:
        corpus.load(str(write(tmp_path, text)))
    assert re.search(message, str(err.value)), str(err.value)
    assert err.value.exit_code == 2


def test_corpus_error_on_the_command_line(tmp_path):
    path = write(tmp_path, "[[case]]\nname = 'a'\nargv = 'true'\n")
    proc = hermipy("sweep", path)
    assert proc.returncode == 2 and proc.stdout == b""
    assert proc.stderr.decode() == f"hermipy: {path}:1 (case 'a'): argv: expected a non-empty list of strings, " \
                                   "got 'true'\n"
    proc = hermipy("sweep", "no-such-corpus")
    assert proc.returncode == 2 and b"no-such-corpus: no such file, nor a corpus shipped with hermipy (debian)" \
        in proc.stderr


def test_shipped_corpus_is_package_data():
    """debian.toml parses, covers what tests/sweep.py curated, and pyproject ships it and its files."""
    c = corpus.load("debian")
    curated = [case for case in c.cases if "curated" in case.tags]
    assert len(curated) >= 130 and any("version-help" in case.tags for case in c.cases)
    assert {"ls", "sort", "tar", "python3", "sqlite3", "bash", "make"} <= {case.app for case in curated}
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    shipped = {os.path.relpath(path, ROOT / "hermipy")
               for package, patterns in setuptools["package-data"].items() if package.startswith("hermipy.corpora")
               for pattern in patterns
               for path in glob.glob(str(ROOT / package.replace(".", "/") / pattern))}
    assert {"hermipy.corpora", "hermipy.corpora.debian"} <= set(setuptools["packages"])
    needed = {"corpora/debian.toml", *(os.path.relpath(f.value, ROOT / "hermipy")
                                       for case in curated for f in case.files if f.kind == "copy")}
    assert needed <= shipped, needed - shipped


# -- classifying differences ----------------------------------------------------------------------------------
NO_STATS = sweep.merge_stats([])


def causes(native: Run, emulated: Run, stats=NO_STATS) -> list[str]:
    return [c["kind"] for c in sweep.classify(native, emulated, stats)]


def test_classify():
    ok = Run(0, b"out\n", b"", 0.1)
    assert causes(ok, Run(0, b"out\n", b"", 0.2)) == []
    timeout = sweep.classify(ok, Run(-1, b"", b"", 60, timeout=True), NO_STATS)
    assert timeout[0]["kind"] == "timeout" and "exit status: native 0, hermipy -1" in timeout[0]["diff"]
    error = sweep.classify(ok, Run(70, b"", b"hermipy: internal error: KeyError: 3 (rerun with --debug for "
                                              b"details)\n", 1), NO_STATS)
    assert error[0]["kind"] == "hermipy-error" and error[0]["detail"].startswith("hermipy: internal error: KeyError")
    missing = Run(1, b"", b"hermipy: warning: syscall io_uring_setup (425) is not implemented; returning ENOSYS\n", 1)
    assert sweep.classify(ok, missing, NO_STATS)[0]["syscalls"] == ["io_uring_setup"]
    refused = {**NO_STATS, "refused": {"clone3": 1}}
    assert causes(ok, Run(1, b"", b"", 1), refused) == ["refused"]
    assert causes(ok, Run(139, b"", b"Segmentation fault\n", 1)) == ["signal"]
    assert sweep.classify(ok, Run(139, b"", b"", 1), NO_STATS)[0]["detail"] == "SIGSEGV (exit status 139)"
    output = sweep.classify(ok, Run(0, b"ouch\n", b"", 1), NO_STATS)
    assert output[0]["kind"] == "output" and output[0]["detail"] == "stdout differs"
    both = sweep.classify(ok, Run(2, b"out\n", b"oops\n", 1), NO_STATS)
    assert both[0]["detail"] == "exit status: native 0, hermipy 2; stderr differs"
    assert "-out\n+ouch" in output[0]["diff"]
    traceback = Run(1, b"", b"Traceback (most recent call last):\n  File x\nValueError: bad\n", 1)
    assert sweep.classify(ok, traceback, NO_STATS)[0]["detail"] == "ValueError: bad"


# -- the sweep, end to end -------------------------------------------------------------------------------------
def test_sweep_small_corpus(tmp_path):
    """The small corpus on every usable backend, -j 2: passes, the failures' causes, skips, the reports."""
    path = write(tmp_path, SMALL)
    out_json, out_html = tmp_path / "r.json", tmp_path / "r.html"
    proc = hermipy("sweep", path, "--backend", ",".join(BACKENDS), "-j", 2, "--json", out_json, "--html", out_html,
                   cwd=tmp_path, timeout=120)
    assert proc.returncode == 1, proc.stderr.decode()          # pid-raw and io-uring differ
    doc = json.loads(out_json.read_text())
    assert doc["schema"] == 1 and doc["variants"] == BACKENDS and doc["corpus"]["name"] == "small"
    results = {(r["case"], r["variant"]): r for r in doc["results"]}
    assert len(results) == 9 * len(BACKENDS)
    for backend in BACKENDS:
        def result(name):
            return results[name, backend]
        for name in ("busybox-sort", "busybox-sh", "coreutils-stat", "pid", "stdin"):
            assert result(name)["outcome"] == "pass", result(name)
        assert result("pid-raw")["cause"] == "output"
        assert re.search(r"-I am \d+\n\+I am \d+", result("pid-raw")["causes"][0]["diff"])
        uring = result("io-uring")
        assert uring["cause"] == "unimplemented" and uring["causes"][0]["syscalls"] == ["io_uring_setup"]
        assert uring["stats"]["unimplemented"] == {"io_uring_setup": 1}
        assert len(uring["strace_tail"]) == sweep.STRACE_TAIL and "exit" in uring["strace_tail"][-1], uring["strace_tail"]
        assert "strace_tail" not in result("busybox-sort")
        assert result("not-installed")["outcome"] == "skip"
        assert result("not-installed")["detail"] == "no-such-program-hermipy: not installed"
        assert result("unexpected-status")["detail"] == "natively exit status 1, expected 0"
        sh = result("busybox-sh")["stats"]
        assert sh["processes"] >= 3 and sh["syscalls"]["wait4"]["count"] >= 2
        assert doc["summary"]["runs"][backend] == {"pass": 5, "fail": 2, "skip": 2}
    summary = doc["summary"]
    assert summary["causes"] == {"output": {b: 1 for b in BACKENDS}, "unimplemented": {b: 1 for b in BACKENDS}}
    assert summary["missing"] == [{"name": "io_uring_setup", "kind": "unimplemented", "runs": len(BACKENDS),
                                   "apps": ["perl"], "unblocks": ["perl"]}]
    assert summary["apps"]["busybox"] == {b: {"pass": 2} for b in BACKENDS}
    by_name = {row["name"]: row for row in summary["syscalls"]}
    assert by_name["exit_group"]["apps"] == 5 and by_name["write"]["calls"] > 0
    text = proc.stdout.decode()
    for backend in BACKENDS:
        assert re.search(rf"^  {backend} +5 pass +2 fail +2 skipped$", text, re.M), text
    assert "io_uring_setup       unimplemented    1 apps  unblocks 1: perl" in text
    assert re.search(r"^== \w+ io-uring: unimplemented: io_uring_setup$", text, re.M)
    assert proc.stderr == b""                                   # not a tty: no progress line
    page = out_html.read_text()
    assert page.startswith("<!DOCTYPE html>") and "http" not in page.split("</title>")[1]
    assert page.count('<table class="sortable">') >= 4 and "io_uring_setup" in page and "pid-raw" in page


def test_sweep_tags_and_no_rewrite(tmp_path):
    path = write(tmp_path, SMALL)
    proc = hermipy("sweep", path, "--backend", "unicorn", "--no-rewrite-too", "--tag", "fast", "--json",
                   tmp_path / "r.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["variants"] == ["unicorn", "unicorn-no-rewrite"]
    assert sorted((r["case"], r["variant"], r["outcome"]) for r in doc["results"]) == [
        ("busybox-sort", "unicorn", "pass"), ("busybox-sort", "unicorn-no-rewrite", "pass"),
        ("coreutils-stat", "unicorn", "pass"), ("coreutils-stat", "unicorn-no-rewrite", "pass")]
    proc = hermipy("sweep", path, "--backend", "sparc")
    assert proc.returncode == 2 and b"--backend sparc: unknown backend" in proc.stderr
    proc = hermipy("sweep", path, "--tag", "nothing-has-it")
    assert proc.returncode == 2 and b"no case left to run" in proc.stderr


def test_sweep_guest_killed_by_signal(tmp_path):
    """A program killed by a signal matches natively: hermipy says the signal's name on stderr as a shell does
    (through the warm runner's forks too), and the sweep adds the same line to the native run."""
    path = write(tmp_path, f"""
[[case]]
name = "self-segv"
argv = ["{BUSYBOX}", "sh", "-c", "echo before; kill -SEGV $$"]
""")
    proc = hermipy("sweep", path, "--backend", ",".join(BACKENDS), "--json", tmp_path / "r.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    results = json.loads((tmp_path / "r.json").read_text())["results"]
    assert [r["outcome"] for r in results] == ["pass"] * len(BACKENDS)


# -- hermipy run --stats -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_stats(tmp_path, backend):
    """busybox cat of one file and of a missing one, from a shell that forks: one line per process."""
    (tmp_path / "a.txt").write_text("hello\n")
    stats = tmp_path / "stats.jsonl"
    proc = hermipy("run", "--backend", backend, "--stats", stats, BUSYBOX, "sh", "-c",
                   f"{BUSYBOX} cat a.txt missing; echo $?", cwd=tmp_path)
    assert proc.stdout == b"hello\n1\n" and proc.returncode == 0
    lines = [json.loads(line) for line in stats.read_text().splitlines()]
    assert len(lines) == 2
    child, shell = lines                                      # the child ends first
    assert shell["first"] and not child["first"] and child["ppid"] == shell["pid"]
    assert shell["schema"] == 1 and shell["backend"] == backend and shell["status"] == 0 and child["status"] == 1
    assert shell["images"] == [{"exe": BUSYBOX, "argv": [BUSYBOX, "sh", "-c", f"{BUSYBOX} cat a.txt missing; echo $?"]}]
    assert child["images"][-1] == {"exe": BUSYBOX, "argv": [BUSYBOX, "cat", "a.txt", "missing"]}
    calls = {row["name"]: row for row in child["syscalls"]}
    assert calls["execve"]["count"] == 1
    assert calls["openat"]["count"] == 2 and calls["openat"]["errors"] == {"ENOENT": 1}
    assert calls["exit_group"]["count"] == 1
    assert calls["sendfile"]["count"] >= 1 and calls["rseq"]["errors"] == {"ENOSYS": 1}
    assert all(row["status"] in ("FULL", "PARTIAL", "STUB") and row["seconds"] >= 0 for row in child["syscalls"])
    assert child["calls"] == sum(row["count"] for row in child["syscalls"])
    assert 0 < child["kernel_seconds"] <= child["seconds"]
    assert {row["name"] for row in shell["syscalls"]} >= {"wait4", "write"}
    assert child["unimplemented"] == {} and child["refused"] == {}


@pytest.mark.parametrize("backend", BACKENDS)
def test_stats_unimplemented_and_refused(tmp_path, backend):
    stats = tmp_path / "stats.jsonl"
    script = ('print syscall(425, 0, 0), "\\n"; my $a = pack("Q11", 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0); '
              'print syscall(435, $a, length $a), "\\n"')
    proc = hermipy("run", "--backend", backend, "--stats", stats, "perl", "-e", script, cwd=tmp_path)
    assert proc.stdout == b"-1\n-1\n"
    [line] = [json.loads(line) for line in stats.read_text().splitlines()]
    assert line["unimplemented"] == {"io_uring_setup": 1} and line["refused"] == {"clone3": 1}
    calls = {row["name"]: row for row in line["syscalls"]}
    assert calls["io_uring_setup"]["status"] == "UNIMPLEMENTED" and calls["clone3"]["errors"] == {"ENOSYS": 1}


def test_stats_file_error(tmp_path):
    proc = hermipy("run", "--stats", tmp_path / "no" / "such", "/bin/true")
    assert proc.returncode == 2
    assert proc.stderr.decode() == f"hermipy: --stats {tmp_path}/no/such: No such file or directory\n"


def test_run_imports_neither_sweep_nor_stats():
    """`hermipy run` stays light: the sweep's modules, and the stats recorder without --stats, are not loaded."""
    code = ("import sys; from hermipy import cli; status = cli.main(['run', '--backend', 'unicorn', '/bin/true']); "
            "print(status, sorted(m for m in sys.modules if m.split('.')[-1] in "
            "('sweep', 'sweep_report', 'corpus', 'stats', 'tomllib')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=TIMEOUT)
    assert proc.stdout == b"0 []\n", proc.stderr.decode()


# -- cache, baseline, JUnit, Dask, the HTML in a browser ----------------------------------------------------------
QUICK = SMALL.split("[[case]]\nname = \"pid\"")[0] + """
[[case]]
name = "io-uring"
argv = ["perl", "-e", "print syscall(425, 0, 0), \\"\\\\n\\""]
tags = ["perl"]
"""


def test_cache_and_baseline(tmp_path):
    """A second sweep takes every result from the cache (no hermipy run: no stats files, much faster), --no-cache
    runs again; --baseline lists what newly fails and passes and sets the exit status by regressions only."""
    path = write(tmp_path, QUICK)
    first = tmp_path / "first.json"
    proc = hermipy("sweep", path, "--backend", "unicorn", "-j", 2, "--json", first, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr.decode()             # io-uring differs
    cached = list((tmp_path / "cache" / "hermipy" / "sweep").glob("*.json"))
    assert len(cached) == 4, cached
    again = tmp_path / "again.json"
    proc = hermipy("sweep", path, "--backend", "unicorn", "--json", again, cwd=tmp_path)
    doc, doc2 = json.loads(first.read_text()), json.loads(again.read_text())
    assert doc2["results"] == doc["results"] and doc2["seconds"] < doc["seconds"] / 2, (doc["seconds"], doc2["seconds"])
    proc = hermipy("sweep", path, "--backend", "unicorn", "--no-cache", "--json", again, cwd=tmp_path)
    assert json.loads(again.read_text())["seconds"] > doc2["seconds"]

    # A baseline in which io-uring passed and busybox-sort failed: one regression, one improvement.
    for r in doc["results"]:
        r["outcome"] = {"io-uring": "pass", "busybox-sort": "fail"}.get(r["case"], r["outcome"])
    first.write_text(json.dumps(doc))
    proc = hermipy("sweep", path, "--backend", "unicorn", "--baseline", first, cwd=tmp_path)
    text = proc.stdout.decode()
    assert proc.returncode == 1, text
    assert "1 newly failing, 1 newly passing" in text
    assert "newly failing: unicorn io-uring (unimplemented)" in text and "newly passing: unicorn busybox-sort" in text
    for r in doc["results"]:
        r["outcome"] = "fail" if r["case"] == "io-uring" else r["outcome"]
    first.write_text(json.dumps(doc))
    proc = hermipy("sweep", path, "--backend", "unicorn", "--baseline", first, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout.decode()                # io-uring fails as before: no regression
    first.write_text("{}")
    proc = hermipy("sweep", path, "--baseline", first, cwd=tmp_path)
    assert proc.returncode == 2 and b"not a hermipy sweep report" in proc.stderr


def test_junit(tmp_path):
    """The JUnit XML parses, one suite per variant, failures typed by cause, skips as skipped."""
    import xml.etree.ElementTree as ET
    path = write(tmp_path, QUICK + '\n[[case]]\nname = "not-installed"\nargv = ["no-such-program-hermipy"]\n')
    out = tmp_path / "r.xml"
    proc = hermipy("sweep", path, "--backend", "unicorn", "--junit", out, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr.decode()
    root = ET.parse(out).getroot()
    assert root.tag == "testsuites" and root.get("tests") == "5" and root.get("failures") == "1"
    suite, = root.findall("testsuite")
    assert suite.get("name") == "unicorn" and suite.get("skipped") == "1"
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    failure = cases["io-uring"].find("failure")
    assert failure.get("type") == "unimplemented" and "io_uring_setup" in failure.get("message")
    assert "exit_group(" in failure.text                          # the end of its syscall trace
    assert cases["not-installed"].find("skipped") is not None and cases["busybox-sort"].find("failure") is None
    assert cases["busybox-sort"].get("classname") == "small.busybox"


def test_dask(tmp_path):
    """--dask: the cases run as tasks of a cluster (a LocalCluster on loopback here) and come back as the local
    pool's do; an unreachable scheduler is a clear error."""
    distributed = pytest.importorskip("distributed")
    path = write(tmp_path, QUICK)
    local = tmp_path / "local.json"
    assert hermipy("sweep", path, "--backend", "unicorn", "--no-cache", "--json", local, cwd=tmp_path).returncode == 1
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        remote = tmp_path / "remote.json"
        proc = hermipy("sweep", path, "--backend", "unicorn", "--no-cache", "--dask", cluster.scheduler_address,
                       "--json", remote, cwd=tmp_path)
        assert proc.returncode == 1, proc.stderr.decode()
    strip = lambda doc: sorted((r["case"], r["variant"], r["outcome"], r.get("cause")) for r in doc["results"])  # noqa: E731
    assert strip(json.loads(remote.read_text())) == strip(json.loads(local.read_text()))
    proc = hermipy("sweep", path, "--no-cache", "--dask", "tcp://127.0.0.1:9", cwd=tmp_path, timeout=60)
    assert proc.returncode == 2 and b"--dask tcp://127.0.0.1:9: cannot reach the scheduler" in proc.stderr


CHROMIUM = next((c for c in ("chromium", "chromium-browser", "google-chrome") if shutil.which(c)), None)


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium to load the HTML report in (.ci/run installs it)")
def test_html_in_chromium(tmp_path):
    """The HTML report loads in headless Chromium with nothing from the network: its tables (sortable) and its
    per-cause and per-syscall bars are in the rendered page."""
    path = write(tmp_path, QUICK)
    page = tmp_path / "r.html"
    hermipy("sweep", path, "--backend", "unicorn", "--html", page, cwd=tmp_path)
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                           page.as_uri()], capture_output=True, timeout=120)
    dom = proc.stdout.decode()
    assert '<table class="sortable">' in dom and "io-uring" in dom, proc.stderr.decode()[-2000:]
    assert 'class="bar' in dom and "io_uring_setup" in dom and "lines of its syscall trace" in dom
