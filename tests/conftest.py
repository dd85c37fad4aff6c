"""Shared test setup: difftest importable, every testbin compiled once per session (before any test), and the
``hermipy_backend`` fixture that runs a differential module's tests on each CPU backend."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import difftest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _testbins_built():
    """Compile all testbins for all variants once (each xdist worker shares the on-disk build, under a lock)."""
    difftest.build_all()


def _kvm_unusable() -> str | None:
    from hermipy.kvm_backend import kvm_unusable_reason
    return kvm_unusable_reason()


KVM_UNUSABLE = _kvm_unusable()


@pytest.fixture(params=["unicorn", "kvm"])
def hermipy_backend(request):
    """Every differential test once per backend (modules opt in with ``pytestmark``); KVM is skipped, saying
    why, where /dev/kvm is not usable."""
    if request.param == "kvm" and KVM_UNUSABLE is not None:
        pytest.skip(f"KVM backend not tested: /dev/kvm is not usable here ({KVM_UNUSABLE})")
    difftest.BACKEND = request.param
    yield request.param
    difftest.BACKEND = None
