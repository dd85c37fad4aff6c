"""Run one program under Qiling, the way the benchmark harness runs every runner: ``ARGV...`` in, the
guest's stdout/stderr on ours, the guest's exit status as ours.

    benchmarks/.venv/bin/python benchmarks/qiling_runner.py [--rootfs DIR] BINARY ARGS...

Qiling maps every guest path into its rootfs; the default ``/`` lets the guest see the host's files (ld.so and
the libraries of dynamic programs, the harness' temp files) at their own paths, as every other runner does.
``multithread=True`` turns on Qiling's thread layer: without it Qiling has no current thread and its futex(2)
raises AttributeError at glibc's first lock, so every dynamic program would fail before doing any work.
Runs in the harness' own virtual environment (Qiling pins its own dependencies), never in hermipy's.
"""
import argparse
import os
import sys

from qiling import Qiling
from qiling.const import QL_VERBOSE


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rootfs", default="/")
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    ql = Qiling(args.argv, args.rootfs, env=dict(os.environ), verbose=QL_VERBOSE.DISABLED, multithread=True)
    ql.run()
    sys.stdout.flush()
    return ql.os.exit_code & 0xFF


if __name__ == "__main__":
    sys.exit(main())
