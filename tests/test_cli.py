"""The command line: clear one-line errors with shell-like exit statuses, strace output, the syscall table."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from difftest import ROOT

HELLO_C = '#include <stdio.h>\nint main(int c, char **v) { printf("hi %d\\n", c); return 7; }\n'


@pytest.fixture(scope="module")
def hello(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cli")
    (d / "hello.c").write_text(HELLO_C)
    subprocess.run(["gcc", "-static", "-O2", "-o", str(d / "hello"), str(d / "hello.c")], check=True)
    return d / "hello"


def hermipy(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "hermipy", *map(str, args)], capture_output=True, cwd=cwd,
                          timeout=60)


def patched(src: Path, dst: Path, offset: int, data: bytes) -> Path:
    blob = bytearray(src.read_bytes())
    blob[offset:offset + len(data)] = data
    dst.write_bytes(bytes(blob))
    dst.chmod(0o755)
    return dst


def assert_clean_error(proc, status: int, words: str) -> None:
    err = proc.stderr.decode()
    assert proc.returncode == status, err
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("hermipy: ") and words in err, err


def test_runs_and_propagates_status(hello):
    proc = hermipy("run", hello, "a", "b")
    assert (proc.returncode, proc.stdout, proc.stderr) == (7, b"hi 3\n", b"")


def test_missing_file():
    assert_clean_error(hermipy("run", "/nonexistent/prog"), 127, "No such file or directory")


def test_directory(tmp_path):
    assert_clean_error(hermipy("run", tmp_path), 126, "Is a directory")


def test_not_elf(tmp_path):
    script = tmp_path / "notelf"
    script.write_text("just text\n")
    script.chmod(0o755)
    assert_clean_error(hermipy("run", script), 126, "not an ELF executable")


def test_32_bit(hello, tmp_path):
    """EI_CLASS alone is not looked at (load_elf_binary checks e_machine): an i386 one is refused."""
    m32 = patched(patched(hello, tmp_path / "class32", 4, b"\x01"), tmp_path / "m32", 18, b"\x03\x00")
    assert_clean_error(hermipy("run", m32), 126, "32-bit")


def test_other_architecture(hello, tmp_path):
    assert_clean_error(hermipy("run", patched(hello, tmp_path / "arm", 18, b"\xb7\x00")), 126, "AArch64")


def test_truncated(hello, tmp_path):
    short = tmp_path / "short"
    short.write_bytes(hello.read_bytes()[:100])
    short.chmod(0o755)
    assert_clean_error(hermipy("run", short), 126, "truncated ELF")


def test_corrupt_program_headers(hello, tmp_path):
    assert_clean_error(hermipy("run", patched(hello, tmp_path / "bad", 54, b"\x07\x00")), 126, "corrupt")


def test_strace_looks_like_strace(hello, tmp_path):
    log = tmp_path / "trace"
    proc = hermipy("run", "--strace-file", log, hello)
    assert proc.returncode == 7 and proc.stdout == b"hi 1\n"
    trace = log.read_text().splitlines()
    assert "brk(NULL) = " in trace[0]
    assert 'write(1, "hi 1\\n", 5) = 5' in trace
    assert trace[-2:] == ["exit_group(7) = ?", "+++ exited with 7 +++"]


def test_strace_shows_errors(tmp_path):
    src = tmp_path / "open.c"
    src.write_text('#include <fcntl.h>\nint main() { return open("/nonexistent", O_RDONLY|O_CLOEXEC) < 0; }\n')
    subprocess.run(["gcc", "-static", "-o", str(tmp_path / "open"), str(src)], check=True)
    proc = hermipy("run", "--strace", tmp_path / "open")
    assert proc.returncode == 1
    assert 'openat(AT_FDCWD, "/nonexistent", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)' \
        in proc.stderr.decode()


def test_syscall_table_formats():
    import json
    table = json.loads(hermipy("syscalls", "--format", "json").stdout)
    by_name = {row["name"]: row for row in table["syscalls"]}
    assert len(by_name) >= 360 and by_name["read"]["status"] == "FULL"
    assert all(row["note"] for row in table["syscalls"] if row["status"] in ("PARTIAL", "STUB"))
    assert "UNIMPLEMENTED" in hermipy("syscalls").stdout.decode()


def test_docs_are_current():
    """docs/syscalls.md is generated: regenerate with `hermipy syscalls --format markdown > docs/syscalls.md`."""
    current = hermipy("syscalls", "--format", "markdown").stdout.decode()
    assert (ROOT / "docs" / "syscalls.md").read_text() == current


def test_unimplemented_syscall_warns_once_and_strict_stops(tmp_path):
    src = tmp_path / "nosys.c"
    src.write_text('#include <unistd.h>\n#include <stdio.h>\n#include <errno.h>\n'
                   'int main() { long a = syscall(298), b = syscall(298);\n'
                   ' printf("%ld %ld %d\\n", a, b, errno == ENOSYS); return 0; }\n')   # 298: perf_event_open
    subprocess.run(["gcc", "-static", "-o", str(tmp_path / "nosys"), str(src)], check=True)
    proc = hermipy("run", tmp_path / "nosys")
    assert proc.stdout == b"-1 -1 1\n"
    assert proc.stderr.decode().count("perf_event_open") == 1
    strict = hermipy("run", "--strict", tmp_path / "nosys")
    assert_clean_error(strict, 126, "perf_event_open")


def test_info_names_the_auto_backend_and_why():
    out = hermipy("info").stdout.decode()
    assert out.startswith("hermipy ") and "unicorn 2." in out
    expected = "kvm" if os.access("/dev/kvm", os.R_OK | os.W_OK) else "unicorn"
    line = next(l for l in out.splitlines() if l.startswith("--backend auto:"))
    assert line.split()[2] == expected and "(" in line


def test_info_measures_the_trip():
    """`hermipy info` times a syscall trip to the Python kernel on each backend, with a probe of its own."""
    out = hermipy("info").stdout.decode()
    line = next(l for l in out.splitlines() if l.startswith("syscall trip to the Python kernel"))
    unicorn = float(re.search(r"unicorn ([0-9.]+) µs", line).group(1))
    assert 0.05 < unicorn < 1000, line
    if os.access("/dev/kvm", os.R_OK | os.W_OK):
        assert 0.05 < float(re.search(r"kvm ([0-9.]+) µs", line).group(1)) < 10000, line


@pytest.mark.usefixtures("hermipy_backend")
@pytest.mark.parametrize("redirection", [">&-", "2>&-", "<&-"])
def test_closed_standard_fd_stays_closed(redirection):
    """A direct run started with fd 0, 1 or 2 closed runs the guest as natively (its write to the closed fd gets
    EBADF, its first open gets that fd), not an internal error over Python's missing sys.stdout."""
    import shlex
    from difftest import build, hermipy_command
    program = str(build("closed_stdio", "static"))

    def shell(argv):
        proc = subprocess.run(["sh", "-c", f"{shlex.join(argv)} {redirection}"], capture_output=True, timeout=60)
        return proc.returncode, proc.stdout, proc.stderr
    native, emulated = shell([program]), shell(hermipy_command() + [program])
    assert emulated == native and native[0] == 3 and b"Bad file descriptor" in native[1] + native[2]


def test_output_into_a_closed_pipe():
    """`hermipy syscalls | head -0`: its reader gone, hermipy ends quietly with SIGPIPE's shell status (141), as a
    program that SIGPIPE ends, not with an internal error."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "hermipy", "syscalls"], stdout=write_end, stderr=subprocess.PIPE,
                              timeout=60)
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr) == (141, b"")
