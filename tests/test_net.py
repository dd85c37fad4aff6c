"""Sockets, epoll, eventfd and timerfd differentially (testbins/sockets.c): AF_UNIX stream and datagram pairs,
named sockets under the guest's file-system view, SCM_RIGHTS, loopback TCP/UDP, socket options, and the
event fds, each natively and under hermipy."""
import pytest

from difftest import VARIANTS, assert_same, build, empty_dir

pytestmark = pytest.mark.usefixtures("hermipy_backend")     # each test on every CPU backend


@pytest.mark.parametrize("variant", VARIANTS)
def test_sockets(variant):
    result = assert_same([build("sockets", variant)], setup=empty_dir)
    assert result.status == 0


@pytest.mark.parametrize("variant", VARIANTS)
def test_threads_receive_at_once(variant, tmp_path):
    """Three threads each exchange 3000 datagrams over loopback UDP sockets of their own, read back with recvfrom,
    recvmsg and recv (testbins/recv_threads.c): every payload and sender address must be the thread's own. Before,
    every receive went through one module-wide host buffer: threads running in parallel (KVM) got each other's
    bytes."""
    import watchdog
    native = watchdog.assert_same([build("recv_threads", variant)], tmp_path)
    assert native.stdout.count(b"all sent; payloads wrong 0, sender addresses wrong 0") == 3
