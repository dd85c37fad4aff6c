"""What a syscall trip costs on this host, per backend (``hermipy info``): a guest of a few instructions makes
``CALLS`` getpgrp syscalls -- one the guest cannot answer itself, whose handler is one cheap host call -- and
times the loop with the TSC (hermipy's guests read the host's); the host converts ticks to time from its own
TSC and CLOCK_MONOTONIC readings around the runs. The program is a static ELF written here, byte by byte (no
compiler, no assembler), run through ``hermipy.api.Runner`` like any other.

A trip is the guest leaving for the Python kernel and coming back: on KVM a VM exit into Python (the site is
rewritten to an ``out`` after its first trap), on Unicorn the engine's syscall hook.
"""
import os
import statistics
import struct
import tempfile
import time

CALLS = 2000
TRADE_OFF = 4          # a KVM trip this many times Unicorn's: syscall-bound programs are faster on Unicorn
RUNS = 3
BASE = 0x400000
NR_GETPGRP = 111

# _start: t0 = rdtsc; CALLS x getpgrp; write(1, &(rdtsc - t0), 8); exit(0)
_CODE = bytes.fromhex(
    "0f31" "48c1e220" "4809d0" "4989c4"            # rdtsc; shl rdx, 32; or rax, rdx; mov r12, rax
    "bb{calls}"                                    # mov ebx, CALLS
    "b8{nr}" "0f05" "ffcb" "75f5"                  # loop: mov eax, getpgrp; syscall; dec ebx; jnz loop
    "0f31" "48c1e220" "4809d0" "4c29e0" "50"       # rdtsc; shl rdx, 32; or rax, rdx; sub rax, r12; push rax
    "b801000000" "bf01000000" "4889e6" "ba08000000" "0f05"   # write(1, rsp, 8)
    "b83c000000" "31ff" "0f05"                     # exit(0)
    .format(calls=struct.pack("<I", CALLS).hex(), nr=struct.pack("<I", NR_GETPGRP).hex()))


def program() -> bytes:
    """The probe as a static x86-64 ELF executable: one read-execute PT_LOAD holding headers and code."""
    headers = 64 + 56
    size = headers + len(_CODE)
    ehdr = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01", 2, 62, 1, BASE + headers, 64, 0, 0, 64, 56, 1,
                       64, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, BASE, BASE, size, size, 0x1000)
    return ehdr + phdr + _CODE


def measure(backend: str) -> float | None:
    """µs per trip on ``backend`` (the median of RUNS runs), or None when it cannot be measured here."""
    from hermipy.api import Runner
    from hermipy.syscalls.timekeeping import calibration
    cal = calibration()
    if cal.rdtsc is None:
        return None
    fd, path = tempfile.mkstemp(prefix="hermipy-trip-")
    try:
        os.write(fd, program())
        os.fchmod(fd, 0o700)
        os.close(fd)
        runner = Runner(backend=backend)
        first = cal.sample()
        ticks = []
        for _ in range(RUNS):
            result = runner.run([path], timeout=60)
            if result.status != 0 or len(result.stdout) != 8:
                return None
            ticks.append(struct.unpack("<Q", result.stdout)[0])
        last = cal.sample()
    except (OSError, TimeoutError):
        return None
    finally:
        if os.path.exists(path):
            os.unlink(path)
    ns_per_tick = (last[1] - first[1]) / (last[0] - first[0])
    return statistics.median(ticks) * ns_per_tick / CALLS / 1000


def report() -> str:
    """The lines ``hermipy info`` prints: each backend's trip, measured now, and what it means for the choice."""
    started = time.monotonic()
    trips = {backend: measure(backend) for backend in ("kvm", "unicorn")}
    parts = [f"{b} {us:.1f} µs" if us is not None else f"{b} not measured (unavailable)" for b, us in trips.items()]
    lines = [f"syscall trip to the Python kernel (guest -> handler -> guest, measured now, {CALLS} calls x {RUNS} "
             f"runs in {time.monotonic() - started:.1f} s): {', '.join(parts)}"]
    if None not in trips.values() and trips["kvm"] > TRADE_OFF * trips["unicorn"]:
        lines.append(f"  kvm runs guest code natively but its trip costs {trips['kvm'] / trips['unicorn']:.0f}x "
                     "unicorn's here: a program that mostly makes syscalls runs faster with --backend unicorn")
    return "\n".join(lines) + "\n"
