"""POSIX message queues, differentially (testbins/posix_mq.c, one section per run, every variant, both backends):
creation and its errors, attributes, priority order, EMSGSIZE/EAGAIN/ETIMEDOUT/EBADF, a parent and a child
exchanging messages, poll on a queue descriptor, close-on-exec, unlink while open; mq_notify with SIGEV_SIGNAL (the
SI_MESGQ siginfo and sigev_value), EBUSY for a second registration, SIGEV_NONE, and SIGEV_THREAD as glibc and musl
implement it (a netlink socket and a cookie); a blocked receive interrupted by a handler (EINTR) or restarted
(SA_RESTART). Every run has a timeout (tests/watchdog.py) and unlinks its queue.
"""
import pytest

from difftest import VARIANTS, build
from watchdog import assert_same

pytestmark = pytest.mark.usefixtures("hermipy_backend")

# section -> a line its native run prints (so that a wrong-but-identical result cannot pass)
FACTS = {
    "basic": "received 5 'high' prio 9",
    "notify": "signal 10 si_code SI_MESGQ 1 value 4242",
    "intr": "with SA_RESTART: 5 'late', handler ran 2",
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("section", FACTS)
def test_posix_mq(section, variant, tmp_path):
    native = assert_same([build("posix_mq", variant), section], tmp_path)
    assert FACTS[section].encode() in native.stdout
