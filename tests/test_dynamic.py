"""Debian's own dynamically linked programs, unmodified, natively and under hermipy (issue 3)."""
import os
import shutil
from pathlib import Path

import pytest

from difftest import assert_same, run_hermipy, run_native

pytestmark = pytest.mark.usefixtures("hermipy_backend")     # each test on every CPU backend

ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": "/nonexistent", "TZ": "UTC"}
NUMBERS = "".join(f"{(i * 7919) % 1000}\n" for i in range(2000))
TEXT = "".join(f"line {i}: the quick brown fox {i % 7} jumps\n" for i in range(500))


def files(d: str) -> None:
    Path(d, "numbers.txt").write_text(NUMBERS)
    Path(d, "text.txt").write_text(TEXT)
    Path(d, "data.json").write_text('{"b": [1, 2, {"c": "d"}], "a": null, "e": 1.5}')
    Path(d, "sub", "deeper").mkdir(parents=True)
    Path(d, "sub", "one.txt").write_text("one\n")
    Path(d, "sub", "deeper", "two.txt").write_text("two\n" * 100)
    for path in Path(d).rglob("*"):
        os.utime(path, (1_000_000_000, 1_000_000_000))


def needs(*programs):
    missing = [p for p in programs if not shutil.which(p, path=ENV["PATH"])]
    return pytest.mark.skipif(bool(missing), reason=f"not installed: {', '.join(missing)}")


CASES = {
    "true": ["/bin/true"],
    "ls-la": ["ls", "-la", "--time-style=+%Y", "sub"],
    "cat": ["cat", "text.txt"],
    "sort-n": ["sort", "-n", "numbers.txt"],
    "grep-E": ["grep", "-E", "fox (3|5)", "text.txt"],
    "sed": ["sed", "-n", "s/quick/slow/p;10q", "text.txt"],
    "mawk": ["mawk", "{ s += $2 } END { print s, NR }", "numbers.txt"],
    "sha256sum": ["sha256sum", "text.txt", "numbers.txt"],
    "wc": ["wc", "text.txt", "numbers.txt"],
    "od-c": ["od", "-c", "sub/one.txt"],
    "head": ["head", "-n", "3", "text.txt"],
    "tail": ["tail", "-n", "3", "text.txt"],
    "tar": ["tar", "--mtime=@0", "--owner=0", "--group=0", "--sort=name", "-cf", "-", "sub"],
    "gzip": ["gzip", "-9", "-c", "text.txt"],
    "xz": ["xz", "-c", "text.txt"],
    "find": ["find", ".", "-name", "*.txt"],
    "stat": ["stat", "-c", "%n %s %F %a", "text.txt", "sub"],
    "du": ["du", "-s", "--apparent-size", "sub"],
    "python3-c": ["/usr/bin/python3", "-c",
                  "import json, hashlib, re\n"
                  "class P:\n    def __init__(s, n): s.n = n\n    def sq(s): return s.n * s.n\n"
                  "print(json.dumps({'h': hashlib.sha256(b'x').hexdigest(), 'r': re.findall(r'fox (\\d)', "
                  "open('text.txt').read())[:5], 's': sum(P(i).sq() for i in range(100))}))"],
    "python3-json.tool": ["/usr/bin/python3", "-m", "json.tool", "data.json"],
    "perl": ["perl", "-e", "my %h; $h{$_ % 7}++ for 1..1000; print join(',', map {\"$_=$h{$_}\"} sort keys %h), \"\\n\""],
    "sqlite3": ["sqlite3", ":memory:", "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                "WHERE x < 1000) SELECT count(*), sum(x) FROM c;"],
    "lua": ["lua5.4", "-e", "local t = {} for i = 1, 100 do t[#t + 1] = i * i end print(#t, t[50])"],
    "jq": ["jq", "-S", ".b[2]", "data.json"],
    "bc": ["bc", "-l"],
}
STDIN = {"bc": b"scale=20; 4*a(1)\n"}


@pytest.mark.parametrize("name", list(CASES))
def test_debian_program(name):
    argv = CASES[name]
    if not shutil.which(argv[0], path=ENV["PATH"]):
        pytest.skip(f"{argv[0]} is not installed")
    assert_same(argv, setup=files, env=ENV, stdin=STDIN.get(name, b""))


def test_cp_copies_a_tree(tmp_path):
    """cp -a in a temp dir: same output, and the copy is identical to the one made natively."""
    copies = {}
    for runner in (run_native, run_hermipy):
        work = tmp_path / runner.__name__
        work.mkdir()
        files(str(work))
        result = runner(["cp", "-a", "sub", "copy"], cwd=work, env=ENV)
        assert (result.status, result.stdout, result.stderr) == (0, b"", b"")
        copies[runner] = sorted((str(p.relative_to(work / "copy")), p.is_dir() or p.read_bytes(), p.stat().st_mode,
                                 int(p.stat().st_mtime)) for p in (work / "copy").rglob("*"))
    assert copies[run_native] == copies[run_hermipy]


def test_missing_library_is_reported_like_native(tmp_path):
    """A library that cannot be found: ld.so's own message and 127, as natively."""
    src = tmp_path / "needs.c"
    src.write_text("int missing_function(void); int main(void) { return missing_function(); }\n")
    lib = tmp_path / "libgone.c"
    lib.write_text("int missing_function(void) { return 3; }\n")
    import subprocess
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(tmp_path / "libgone.so"), str(lib)], check=True)
    subprocess.run(["gcc", "-o", str(tmp_path / "needs"), str(src), f"-L{tmp_path}", "-lgone"], check=True)
    (tmp_path / "libgone.so").unlink()
    native = run_native([tmp_path / "needs"], env=ENV)
    emulated = run_hermipy([tmp_path / "needs"], env=ENV)
    assert native.status == emulated.status == 127
    assert emulated.stderr == native.stderr
