"""System information, limits and credentials differentially (testbins/info.c), plus real tools: busybox
uname/id/nproc/date."""
import os
import shutil

import pytest

from difftest import VARIANTS, assert_same, build

pytestmark = pytest.mark.usefixtures("hermipy_backend")     # each test on every CPU backend

BUSYBOX = "/usr/bin/busybox"
needs_busybox = pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="busybox-static is not installed")


@pytest.mark.parametrize("variant", VARIANTS)
def test_info(variant):
    result = assert_same([build("info", variant)])
    out = result.stdout.decode()
    for fact in ("sysname=Linux machine=x86_64", "nodename is the hostname: 1", "dup until EMFILE, last fd 63",
                 "F_DUPFD 64: EINVAL", "getrandom 64: 64", "two draws differ: 1", "affinity count == nprocs: 1"):
        assert fact in out, fact
    assert result.status == 0


@needs_busybox
@pytest.mark.parametrize("args", [("uname", "-a"), ("uname", "-s", "-m", "-r"), ("id",), ("id", "-u"),
                                  ("id", "-G"), ("nproc",), ("date", "-u", "-d", "@0"),
                                  ("date", "-u", "-d", "@1700000000", "+%Y-%m-%d %H:%M:%S %s"),
                                  ("hostname",)])
def test_busybox_info(args):
    if args[0] == "nproc" and "nproc" not in _applets():
        pytest.skip("this busybox has no nproc")
    assert_same([BUSYBOX, *args])


def _applets() -> str:
    import subprocess
    return subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True).stdout


def test_busybox_present():
    assert shutil.which("busybox") or not os.path.exists(BUSYBOX)
