"""epoll, eventfd and timerfd differentially (testbins/events.c): eventfd counters (semaphore mode, the
overflow limit, bad sizes and flags), epoll registrations and their errors, level/edge/one-shot modes over a
pipe, an eventfd and a timerfd, nesting and loops, timeouts, temporary signal masks of epoll_pwait/pwait2,
and timerfd (relative, absolute, intervals, disarm, errors), each natively and under hermipy."""
import pytest

from difftest import VARIANTS, assert_same, build

pytestmark = pytest.mark.usefixtures("hermipy_backend")     # each test on every CPU backend


@pytest.mark.parametrize("variant", VARIANTS)
def test_events(variant):
    result = assert_same([build("events", variant)])
    out = result.stdout.decode()
    for fact in ("write 0x1: EAGAIN", "add(ep, ep2, EPOLLIN, 1) = ELOOP", "maxevents 1: 1 [0x1 0xfeedfacecafebeef]",
                 "one fd closed: 2 [0x1 0xa] [0x1 0xc]", "both: 2 [0x1 0x15] [0x1 0x16]",
                 "mask restored after a plain return: 1", "blocked again after the handler: 1",
                 "expirations >= 1: 1", "gettime after disarm: value 0"):
        assert fact in out, fact
    assert out.endswith("done\n")
    assert result.status == 0


@pytest.mark.parametrize("variant", VARIANTS)
def test_epoll_shared_by_threads(variant, tmp_path):
    """Two threads add 800 ready eventfds to one epoll instance while a third waits on it (as Go's netpoller
    does): each is reported once, with its own data. Before, two concurrent adds could get the same token, and
    an event reported before its registration was recorded was dropped: a goroutine waited forever."""
    import watchdog
    native = watchdog.assert_same([build("epoll_threads", variant)], tmp_path)
    assert b"reported once 800, missing 0, more than once 0" in native.stdout
