"""The clocks the vDSO reads in the guest (Linux: kernel/time/vsyscall.c update_vsyscall, lib/vdso/gettimeofday.c).

hermipy's vDSO (``loader/vdso.py``) answers clock_gettime for CLOCK_REALTIME, MONOTONIC, BOOTTIME, TAI and the
two COARSE clocks, gettimeofday and time without leaving the guest, as Linux's does::

    ns = base[clock] + ((rdtsc - tsc_base) * mult >> 32)     while rdtsc - tsc_base < tsc_limit

from a read-only data page of the guest (``[vvar]``, layout ``VVAR_*``) that ``VdsoClock`` keeps current under
a sequence count (odd while it writes). Past ``tsc_limit`` (or for any other clock) the vDSO makes the real
syscall, whose handler refreshes the page first and answers with the same formula: a guest reading the clock
once a second or more takes at most one trip a second, and never sees it go back.

The guest's TSC is the host's (Unicorn reads the host's; KVM's vCPUs get TSC offset 0, ``Cpu.tsc_is_host``),
and the host's own clocksource must be the TSC (else the host does not trust it across CPUs, and every read is
a syscall). Its rate against the host's CLOCK_MONOTONIC is learnt from samples (a TSC read on each side of a
clock read) over a sliding window of up to a minute, shared by the whole process tree (a fork inherits them).
The guest's clocks run slightly *ahead* of the host's -- by the bound of the rate error over the page's
lifetime, under a microsecond once the window is a few seconds long -- so that a deadline the host sleeps to
(clock_nanosleep TIMER_ABSTIME, timerfd) is never seen as not yet reached; a page that ran ahead by more is
slewed back (at most 500 ppm), never stepped back. A step of the host's CLOCK_REALTIME reaches the guest with
the next refresh (within a second).
"""
import ctypes
import mmap
import os
import struct
import threading
import time

# The [vvar] page: what loader/vdso.py's code reads (offsets in bytes).
VVAR_SEQ, VVAR_MASK, VVAR_TSC_BASE, VVAR_TSC_LIMIT, VVAR_MULT, VVAR_TZ, VVAR_BASES = 0, 4, 8, 16, 24, 32, 40
CLOCK_IDS = 12                                       # base[] covers clock ids 0..11
VVAR_BODY = struct.Struct(f"<IQQQii{2 * CLOCK_IDS}Q")   # from VVAR_MASK on; base[] as (seconds, nanoseconds)
CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_REALTIME_COARSE, CLOCK_MONOTONIC_COARSE = 0, 1, 5, 6
CLOCK_BOOTTIME, CLOCK_TAI = 7, 11
OFFSET_CLOCKS = (CLOCK_REALTIME, CLOCK_BOOTTIME, CLOCK_TAI)     # each is CLOCK_MONOTONIC plus an offset
IN_GUEST = {CLOCK_REALTIME: CLOCK_REALTIME, CLOCK_MONOTONIC: CLOCK_MONOTONIC, CLOCK_REALTIME_COARSE: CLOCK_REALTIME,
            CLOCK_MONOTONIC_COARSE: CLOCK_MONOTONIC, CLOCK_BOOTTIME: CLOCK_BOOTTIME, CLOCK_TAI: CLOCK_TAI}
IN_GUEST_MASK = sum(1 << c for c in IN_GUEST)

MASK64 = (1 << 64) - 1
NSEC = 1_000_000_000
MIN_WINDOW_NS = 1_000_000             # samples this far apart before the guest reads the TSC itself
WINDOW_NS = 60_000_000_000            # the rate comes from samples up to this far apart
MAX_LIFETIME_NS = 1_000_000_000       # a page's formula is used this long at most before a refresh
OFFSET_STEP_NS = 100_000              # an offset that moved by more is a step of the host clock, else noise
MAX_SLEW = 5e-4                       # how much slower the guest's clocks may run to give back a lead
GOOD_SAMPLE_TICKS = 4000              # a sample whose TSC reads are closer is taken at once

# rdtsc for the host side: lfence; rdtsc; shl rdx, 32; or rax, rdx; ret
_RDTSC_CODE = bytes.fromhex("0faee8" "0f31" "48c1e220" "4809d0" "c3")


def _host_rdtsc():
    """A ctypes function that reads the host's TSC, or None where the host refuses executable memory."""
    try:
        page = mmap.mmap(-1, mmap.PAGESIZE)
        page.write(_RDTSC_CODE)
        address = ctypes.addressof(ctypes.c_char.from_buffer(page))
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        if libc.mprotect(address, mmap.PAGESIZE, mmap.PROT_READ | mmap.PROT_EXEC):
            return None
    except (OSError, ValueError):
        return None
    function = ctypes.CFUNCTYPE(ctypes.c_uint64)(address)
    function.page = page                                  # the code lives as long as the function
    return function


def _host_clocksource_is_tsc() -> bool:
    try:
        with open("/sys/devices/system/clocksource/clocksource0/current_clocksource") as f:
            return f.read().strip() == "tsc"
    except OSError:
        return False


class _Calibration:
    """The host TSC's rate against CLOCK_MONOTONIC, from (tsc, monotonic ns, width) samples: ``tsc`` read just
    before the clock, ``width`` the ticks until the TSC read just after it. One per host process.

    ``lock`` guards ``samples``; it is taken with an address space's lock held (so never across a fork)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.samples: list[tuple[int, int, int]] = []
        self.rdtsc = _host_rdtsc() if _host_clocksource_is_tsc() else None
        if self.rdtsc is not None:
            self.samples.append(self.sample())

    def sample(self) -> tuple[int, int, int]:
        """The narrowest of up to three brackets of a CLOCK_MONOTONIC read by two TSC reads."""
        rdtsc, clock = self.rdtsc, time.clock_gettime_ns
        best = None
        for _ in range(3):
            before = rdtsc()
            ns = clock(time.CLOCK_MONOTONIC)
            width = rdtsc() - before
            if best is None or width < best[2]:
                best = (before, ns, width)
            if width < GOOD_SAMPLE_TICKS:
                break
        return best

    def add(self, sample: tuple[int, int, int]) -> tuple[float, float, int] | None:
        """Record ``sample``; return (ns per tick, its relative error bound, window in ns) from the oldest sample
        kept, or None while the samples are too close together to say."""
        with self.lock:
            samples = self.samples
            samples.append(sample)
            while len(samples) > 2 and sample[1] - samples[1][1] > WINDOW_NS:
                del samples[0]
            t0, ns0, w0 = samples[0]
        t1, ns1, w1 = sample
        window, ticks = ns1 - ns0, (t1 + w1 / 2) - (t0 + w0 / 2)
        if window < MIN_WINDOW_NS or ticks <= 0:
            return None
        return window / ticks, (w0 + w1) / ticks, window


_calibration: _Calibration | None = None


def calibration() -> _Calibration:
    """The process's calibration (made at first use: the first sample is then the origin of the window)."""
    global _calibration
    if _calibration is None:
        _calibration = _Calibration()
    return _calibration


def _host_timezone() -> tuple[int, int]:
    """The host kernel's struct timezone (sys_tz, as settimeofday left it)."""
    from hermipy.syscalls.host import host_syscall
    from hermipy.syscalls.sys_time import Timeval, Timezone
    tz = Timezone()
    host_syscall("gettimeofday", Timeval(), tz)
    return tz.minuteswest, tz.dsttime


class VdsoClock:
    """The [vvar] page of one address space at ``address``, and the formula it publishes.

    ``lock`` guards the formula (and the page's contents); it is taken with the address space's lock held, as
    the page is written through its frame."""

    def __init__(self, mem, address: int):
        self.mem, self.address = mem, address
        self.vma = mem.find(address)
        self.lock = threading.Lock()
        self.seq = 0
        self.mask = 0
        self.unusable = False                  # the TSC cannot serve: every reading is the host's
        self.tsc_base = self.tsc_limit = self.mult = 0
        self.timezone = _host_timezone()
        self.bases = [0] * CLOCK_IDS
        self.offsets: dict[int, int] = {}
        self.refresh()

    def now(self, clock: int) -> int | None:
        """The guest's reading of ``clock`` in ns (what the vDSO would answer now; refreshed when due), or None
        when the vDSO does not answer that clock (the host's reading then stands)."""
        if not (0 <= clock < CLOCK_IDS and IN_GUEST_MASK >> clock & 1) or self.unusable:
            return None
        with self.mem.lock, self.lock:
            rdtsc = _calibration.rdtsc
            tsc = rdtsc()
            if not self.mask or (tsc - self.tsc_base) & MASK64 >= self.tsc_limit:
                self._refresh()
                if not self.mask:
                    return None
                tsc = rdtsc()
            return self._reading(clock, tsc)

    def _reading(self, clock: int, tsc: int) -> int:
        """The formula the vDSO computes (loader/vdso.py's _READ), for ``clock`` at TSC value ``tsc``."""
        return (self.bases[clock] + (((tsc - self.tsc_base) & MASK64) * self.mult >> 32)) & MASK64

    def refresh(self) -> None:
        with self.mem.lock, self.lock:
            self._refresh()

    def _refresh(self) -> None:
        """A new formula from a fresh sample, published; the vDSO gives every read to the kernel while the
        TSC cannot be used (not the host's clocksource, not the guest's TSC) or the samples are too close."""
        cal = calibration()
        cpu = self.mem.cpu
        self.unusable = cal.rdtsc is None or cpu is None or not cpu.tsc_is_host
        if self.unusable:
            return self._publish(0)
        tsc, mono, _width = sample = cal.sample()
        rate = cal.add(sample)
        if rate is None:
            return self._publish(0)
        ns_per_tick, error, window = rate
        lifetime = min(MAX_LIFETIME_NS, max(MIN_WINDOW_NS, window // 4))
        target = mono + int(error * lifetime) + 200       # ahead by what the rate error could lose meanwhile
        slew = 0.0
        if self.mask:
            current = self._reading(CLOCK_MONOTONIC, tsc)
            if current > target:                          # never back: keep the lead, give it back slowly
                slew = min((current - target) / lifetime, MAX_SLEW)
                target = current
        self.mult = int(ns_per_tick * (1 - slew) * (1 << 32))
        self.tsc_base, self.tsc_limit = tsc, int(lifetime / ns_per_tick)
        self.bases[CLOCK_MONOTONIC] = self.bases[CLOCK_MONOTONIC_COARSE] = target
        for clock in OFFSET_CLOCKS:
            offset = self._offset(clock)
            self.bases[clock] = target + offset
        self.bases[CLOCK_REALTIME_COARSE] = self.bases[CLOCK_REALTIME]
        self._publish(IN_GUEST_MASK)

    def _offset(self, clock: int) -> int:
        """``clock`` - CLOCK_MONOTONIC on the host (timekeeping.c's offs_real, offs_boot, offs_real + tai_offset),
        as an upper bound (the clock read after CLOCK_MONOTONIC), so that the guest's reading is never behind the
        host's, even the first time after readings taken from the host; the one measured before unless the
        host's clock stepped since (else a read's noise would move it)."""
        clock_ns = time.clock_gettime_ns
        if clock == CLOCK_TAI:                 # REALTIME plus whole seconds (the leap seconds)
            seconds = round((clock_ns(CLOCK_TAI) - clock_ns(CLOCK_REALTIME)) / 1e9)
            return self._offset(CLOCK_REALTIME) + seconds * 1_000_000_000
        before = clock_ns(time.CLOCK_MONOTONIC)
        offset = clock_ns(clock) - before      # the largest the offset can be: never behind the host's clock
        old = self.offsets.get(clock)
        if old is None or abs(offset - old) > OFFSET_STEP_NS:
            self.offsets[clock] = old = offset
        return old

    def _publish(self, mask: int) -> None:
        """Write the page under its sequence count (odd while writing), through its frame: the guest may have
        made it read-only or unmapped it (then there is nothing to keep current)."""
        self.mask = mask
        mem = self.mem
        if mem.find(self.address) is not self.vma:
            self.mask = 0
            return
        frame = mem.frames.get(self.address >> 12)
        if frame is None:
            mem.poke(self.address, b"\0")
            frame = mem.frames[self.address >> 12]
        view = mem.view
        self.seq += 1
        struct.pack_into("<I", view, frame + VVAR_SEQ, self.seq)
        VVAR_BODY.pack_into(view, frame + VVAR_MASK, mask, self.tsc_base, self.tsc_limit, self.mult,
                            *self.timezone, *(part for base in self.bases for part in divmod(base & MASK64, NSEC)))
        self.seq += 1
        struct.pack_into("<I", view, frame + VVAR_SEQ, self.seq)


def after_fork_in_child() -> None:
    """A fork child's calibration lock is free (its owner thread did not come along)."""
    if _calibration is not None:
        _calibration.lock = threading.Lock()


os.register_at_fork(after_in_child=after_fork_in_child)
