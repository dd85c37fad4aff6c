"""The rest of the Linux surface (issue 14), differentially: each call's success and error paths in
testbins/surface.c, natively and under hermipy on every backend and variant."""
import pytest

from difftest import VARIANTS, assert_same, build, empty_dir

pytestmark = pytest.mark.usefixtures("hermipy_backend")     # each test on every CPU backend


@pytest.mark.parametrize("variant", VARIANTS)
def test_recvmmsg(variant):
    """The timeout is checked before the fd (EINVAL, EFAULT), bounds the batch between datagrams and goes back
    with what is left when a datagram came; a file that is no socket is ENOTSOCK even for vlen 0."""
    out = assert_same([build("surface", variant), "recvmmsg"], setup=empty_dir).stdout.decode()
    for fact in ("timeout 5 s, MSG_DONTWAIT: 2", "time left: under 5 s", "3 queued, timeout 0: 1",
                 "bad timeout pointer on a bad fd: -1 EFAULT", "not a socket, vlen 0: -1 ENOTSOCK"):
        assert fact in out, fact
