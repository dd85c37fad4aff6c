"""Memory calls at their edges, differentially on each CPU backend: testbins/memory_errors.c (every argument check
and errno of mmap, mprotect, madvise, msync, mremap, munmap, mlock and mincore that Linux reports, and madvise's
every advice on private and shared pages), and guest RAM exhausted (issue 13): touching memory past `--memory`
ends the guest as Linux's OOM killer would (SIGKILL: "Killed", exit 137), never with an internal error; within the
limit the same program runs as natively."""
import pytest

import difftest
from difftest import VARIANTS, build

pytestmark = pytest.mark.usefixtures("hermipy_backend")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_memory_call_errors(variant):
    result = difftest.assert_same([build("memory_errors", variant), difftest.__file__])
    assert b"mmap directory                           No such device" in result.stdout


def test_touch_past_memory_limit_is_sigkill():
    result = difftest.run_hermipy([build("touch_memory", "static"), "128"], options=("--memory", "64"))
    assert (result.status, result.stdout, result.stderr) == (137, b"mapped\n", b"Killed\n")


def test_touch_within_memory_limit():
    difftest.assert_same([build("touch_memory", "static"), "32"], options=("--memory", "64"))
