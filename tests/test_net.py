"""Sockets, epoll, eventfd and timerfd differentially (testbins/sockets.c): AF_UNIX stream and datagram pairs,
named sockets under the guest's file-system view, SCM_RIGHTS, loopback TCP/UDP, socket options, and the
event fds, each natively and under hermipy."""
import pytest

from difftest import VARIANTS, assert_same, build

pytestmark = pytest.mark.usefixtures("hermipy_backend")     # each test on every CPU backend


def _empty(directory: str) -> None:
    """sockets.c works in a fresh temporary directory it fills itself."""


@pytest.mark.parametrize("variant", VARIANTS)
def test_sockets(variant):
    result = assert_same([build("sockets", variant)], setup=_empty)
    assert result.status == 0
