"""I/O control differentially: dup*, fcntl, flock, ioctl (a pty for the terminal requests), pipes, sendfile,
copy_file_range, fadvise/readahead, poll/ppoll/select/pselect6 (testbins/io.c), and exit statuses and stdio
flushing at exit (testbins/exit_codes.c), and the calls the host answers into guest RAM itself (fstat, pread,
recvfrom: testbins/guest_buffers.c), each natively and under hermipy."""
import pytest

from difftest import VARIANTS, assert_same, build, empty_dir

pytestmark = pytest.mark.usefixtures("hermipy_backend")     # each test on every CPU backend



@pytest.mark.parametrize("variant", VARIANTS)
def test_io(variant):
    result = assert_same([build("io", variant)], setup=empty_dir)
    out = result.stdout.decode()
    for fact in ("read back: hello", "file holds: this line went to the file", "slave read: pong",
                 "master read: ping", "winsize 24x80", "handler ran: 1", "TCGETS on file: -1 ENOTTY",
                 "own lock does not conflict: 1", "bad pipe used no fds: 1",
                 "after closing a dup of it, another process can lock the file: 1",
                 "write past the limit: -1 EFBIG", "SIGXFSZ handled 2 times", "then killed by signal 25",
                 "SIGXCPU after a second of CPU time: 1"):
        assert fact in out, fact
    assert result.status == 0


@pytest.mark.parametrize("variant", VARIANTS)
def test_guest_buffers(variant):
    """fstat, fstatat(AT_EMPTY_PATH), pread and recvfrom into a buffer in one page (the host writes guest RAM
    itself), across pages, in an untouched, read-only, unmapped or shared page: the same results, the bytes before
    a fault read (pread), and a stream's bytes left in the socket when they could not be copied (EFAULT)."""
    binary = build("guest_buffers", variant)
    result = assert_same([binary, binary])        # (a file no other test links: its stat stays the same)
    out = result.stdout.decode()
    assert "pread 3960 across into unmapped    40 digest" in out
    assert out.count("Bad address\n  left in the socket               200") == 3

