"""Shared test setup: difftest importable, and every testbin compiled once per session (before any test)."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import difftest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _testbins_built():
    """Compile all testbins for all variants once (each xdist worker shares the on-disk build, under a lock)."""
    difftest.build_all()
