"""Process creation differentially (testbins/procs.c): fork, vfork, posix_spawn, execve of itself and of a #!
script, execve errors, wait4/waitpid/waitid statuses, fds and signal state across fork and exec, SIGCHLD
ignored; on the Unicorn backend and, where /dev/kvm is usable, on KVM (whose children get a VM of their own).
Busybox shells running pipelines are in test_busybox."""
import pytest

from difftest import VARIANTS, assert_same, build, empty_dir
from test_kvm import KVM, needs_kvm



@pytest.mark.parametrize("variant", VARIANTS)
def test_processes(variant):
    result = assert_same([build("procs", variant)], setup=empty_dir, options=("--backend", "unicorn"))
    out = result.stdout.decode()
    for fact in ("fork child: exited 7", "child dereferenced NULL: killed by signal 11", "spawned sh: exited 9",
                 "script: $0=./script.sh args=a b", "exec'd self: exited 42", "wait with SIGCHLD ignored: -1 ECHILD"):
        assert fact in out, fact
    assert result.status == 0


@needs_kvm
@pytest.mark.parametrize("variant", VARIANTS)
def test_processes_on_kvm(variant):
    assert_same([build("procs", variant)], setup=empty_dir, options=KVM)
