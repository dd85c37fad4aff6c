"""Clocks and sleeps differentially (testbins/timecalls.c), the vDSO (testbins/vdso.c), exit statuses
(testbins/exit_codes.c), and real tools: busybox date and sleep, python3's clocks."""
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


@pytest.mark.parametrize("variant", [*VARIANTS, "dynamic"])
def test_vdso(variant):
    """The vDSO as glibc (static, static-PIE, dynamic) and musl find and use it: its image and versioned symbols,
    its mappings, clocks that never go back across vDSO and syscall reads, sleeps timed by the host that
    agree with it, and the calls it leaves to the kernel."""
    result = assert_same([build("vdso", variant)])
    out = result.stdout.decode()
    for fact in ("AT_SYSINFO_EHDR: 1", "__vdso_clock_gettime@LINUX_2.6: 1", "maps: [vdso] r-xp 1, [vvar] r--p 1",
                 "REALTIME 1 MONOTONIC 1 BOOTTIME 1 TAI 1, gettimeofday 1, time 1; reads > 100: 1",
                 "relative sleeps long enough: 1; after an absolute deadline the clock is past it: 1"):
        assert fact in out, fact


@pytest.mark.parametrize("variant", ["static", "musl"])
def test_vdso_clock_is_the_hosts(variant):
    """After 1.5 s of reading its clocks (the vDSO's formula refreshed many times), the guest's CLOCK_MONOTONIC and
    CLOCK_REALTIME lie between the host's readings before and after its run."""
    binary = build("vdso", variant)
    before = time.monotonic_ns(), time.time_ns()
    result = run_hermipy([binary, "now", "1500"])
    after = time.monotonic_ns(), time.time_ns()
    assert result.status == 0, result.stderr
    monotonic, realtime = map(int, result.stdout.split(b"\n")[1].split())
    assert before[0] <= monotonic <= after[0], (before[0], monotonic, after[0])
    assert before[1] <= realtime <= after[1], (before[1], realtime, after[1])


def test_python_clocks():
    """python3 (dynamic glibc) reads its clocks through the vDSO: time.time, monotonic and perf_counter agree
    with the host's."""
    code = "import time; print(time.monotonic_ns(), time.time_ns(), time.perf_counter_ns())"
    before = time.monotonic_ns(), time.time_ns()
    result = run_hermipy(["/usr/bin/python3", "-S", "-c", code])
    after = time.monotonic_ns(), time.time_ns()
    assert result.status == 0, result.stderr
    monotonic, realtime, perf = map(int, result.stdout.split())
    assert before[0] <= monotonic <= after[0] and before[0] <= perf <= after[0]
    assert before[1] <= realtime <= after[1]


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
