"""Extended attributes differentially (testbins/xattrs.c): set/get/list/remove on paths, symlinks and fds,
size queries, flags, errors, natively and under hermipy."""
import pytest

from difftest import VARIANTS, assert_same, build, empty_dir

pytestmark = pytest.mark.usefixtures("hermipy_backend")     # each test on every CPU backend



@pytest.mark.parametrize("variant", VARIANTS)
def test_xattrs(variant):
    result = assert_same([build("xattrs", variant)], setup=empty_dir)
    assert result.status == 0
    assert b"getxattr: 5 green" in result.stdout or b"no user xattrs" in result.stdout
