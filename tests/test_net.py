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
