"""Clocks and sleeps differentially (testbins/timecalls.c), exit statuses (testbins/exit_codes.c), and real
tools: busybox date and sleep."""
import os
import time

import pytest

from difftest import VARIANTS, assert_same, build, run_hermipy

pytestmark = pytest.mark.usefixtures("hermipy_backend")     # each test on every CPU backend

BUSYBOX = "/usr/bin/busybox"
needs_busybox = pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="busybox-static is not installed")


@pytest.mark.parametrize("variant", VARIANTS)
def test_timecalls(variant):
    result = assert_same([build("timecalls", variant)])
    out = result.stdout.decode()
    for fact in ("monotonic increases: 1", "REALTIME: gettime ok, nsec in range 1, never goes back 1",
                 "clock 99: gettime EINVAL", "slept >= 20ms: 1", "woke after the deadline: 1",
                 "clock_settime MONOTONIC: -1 EINVAL", "nanosleep nsec 1e9: -1 EINVAL"):
        assert fact in out, fact
    assert result.status == 0


EXITS = [(how, code) for how in ("exit", "_exit", "return", "group") for code in ("0", "1", "42", "255", "256", "-1")]
EXITS += [(how, code) for how in ("thread", "atexit") for code in ("0", "42")]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("how,code", EXITS)
def test_exit_codes(variant, how, code):
    """exit() flushes stdio and runs atexit handlers, _exit() loses the unflushed buffer; 256 is status 0."""
    result = assert_same([build("exit_codes", variant), code, how])
    assert result.status == int(code) & 0xFF


@needs_busybox
@pytest.mark.parametrize("args", [("date", "-u", "-d", "@0"), ("date", "-u", "-d", "@86399", "+%T %j %A"),
                                  ("date", "-d", "@1234567890", "-u", "-R"), ("sleep", "0.1"), ("sleep", "0"),
                                  ("usleep", "20000")])
def test_busybox_time(args):
    assert_same([BUSYBOX, *args])


@needs_busybox
def test_busybox_sleep_sleeps():
    start = time.monotonic()
    result = run_hermipy([BUSYBOX, "sleep", "0.3"])
    assert result.status == 0 and time.monotonic() - start >= 0.3


@needs_busybox
def test_busybox_date_is_now():
    result = run_hermipy([BUSYBOX, "date", "-u", "+%s"])
    assert result.status == 0 and abs(int(result.stdout) - time.time()) < 30
