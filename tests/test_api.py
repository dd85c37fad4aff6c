"""hermipy.api.Runner: runs forked from the test process, compared with native runs (on each backend)."""
import pytest

import difftest
from difftest import build, run_native

BUSYBOX = "/bin/busybox"


@pytest.fixture(scope="module")
def runner():
    from hermipy.api import Runner
    return Runner()


@pytest.mark.parametrize("argv,stdin", [
    ([BUSYBOX, "sh", "-c", "read a; echo out $a; echo err $a >&2; cat; exit 3"], b"one\ntwo\n"),
    ([BUSYBOX, "sh", "-c", "kill -SEGV $$"], b""),
    ([BUSYBOX, "sh", "-c", "kill -9 $$"], b""),
    (["exit_codes", "42", "atexit"], b""),
], ids=["stdio", "segv", "kill9", "exit_codes"])
def test_run_like_native(runner, hermipy_backend, argv, stdin):
    argv = [str(build(argv[0], "static")), *argv[1:]] if argv[0] == "exit_codes" else argv
    native = run_native(argv, stdin=stdin)
    status, out, err = runner.run(argv, stdin=stdin, backend=hermipy_backend, timeout=difftest.TIMEOUT)
    assert (status, out, err) == (native.status, native.stdout, native.stderr)


def test_env_cwd(runner, hermipy_backend, tmp_path):
    argv = [BUSYBOX, "sh", "-c", "pwd; env | sort"]
    env = {"PATH": "/bin", "ONLY": "this"}
    native = run_native(argv, cwd=tmp_path, env=env)
    assert runner.run(argv, env=env, cwd=str(tmp_path), backend=hermipy_backend, timeout=difftest.TIMEOUT) == \
        (native.status, native.stdout, native.stderr)


def test_errors_and_timeout(runner, hermipy_backend):
    assert runner.run(["/nonexistent"], backend=hermipy_backend, timeout=difftest.TIMEOUT) == \
        (127, b"", b"hermipy: /nonexistent: No such file or directory\n")
    with pytest.raises(TimeoutError):
        runner.run([BUSYBOX, "sleep", "30"], backend=hermipy_backend, timeout=0.5)
