"""What the compatibility sweep (`hermipy sweep debian`) found Debian's programs relying on, as a testbin run
natively and under hermipy: close_range, reads far larger than IOV_MAX pages (short at an unmapped page), SIGPIPE
on writes to a pipe with no reader, mlock*, get_mempolicy and set_mempolicy, membarrier (testbins/compat.c)."""
import pytest

from difftest import VARIANTS, assert_same, build, empty_dir

pytestmark = pytest.mark.usefixtures("hermipy_backend")     # each test on every CPU backend



@pytest.mark.parametrize("variant", VARIANTS)
def test_compat(variant):
    result = assert_same([build("compat", variant)], setup=empty_dir)
    out = result.stdout.decode()
    for fact in ("fd 4 flags: 1", "first > last: -1 EINVAL", "read(2) 12 MiB: 3000", "read 12 MiB back: 12582909",
                 "read into a buffer unmapped after 8 MiB: 8388608", "writev, SIGPIPE caught: -1 EPIPE",
                 "handler saw signal 13", "child: signaled 1, signal 13", "mlock over a hole: -1 ENOMEM",
                 "resident after mlock: 1 1", "mode 0, mask 1 0", "unmapped address: -1 EFAULT",
                 "policy: 0 mode 0x5 mask 1 0", "bind static node 1: -1 EINVAL", "policy: 0 mode 0x8002 mask 3 0",
                 "private expedited, unregistered: -1 EPERM"):
        assert fact in out, fact
    assert result.status == 0
