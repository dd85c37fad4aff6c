"""KVM CPU backend: the guest binary runs natively on the host CPU, as HermiTux does on uhyve.

/dev/kvm is driven from Python with ``fcntl.ioctl`` and ``mmap`` (Documentation/virt/kvm/api.rst). Guest
RAM is the kernel's ``PhysicalMemory`` mapping itself (guest physical == offset in that mapping) and the
page table is the kernel's ``PageTable``: the same loader, syscall table and kernel state as the Unicorn
backend, behind the same ``Cpu`` interface.

The application runs at CPL3. A tiny "kernel" (GDT, IDT, TSS with RSP0 and an I/O permission bitmap, a
kernel stack and a page of stubs, see ``hermipy/kvm_stubs.py``) is mapped supervisor-only in the upper
half through the same page table. Every way out of the application ends in an ``out`` to a port, which is
a KVM_EXIT_IO that Python services:

* ``syscall`` enters the LSTAR stub. Syscalls whose result is kernel state the guest may read (getpid,
  getuid, ...: ``answer_in_guest``) are answered there from a read-only page the kernel keeps current,
  without leaving the guest. For the others the stub's ``out SYSCALL_PORT`` exits; Python dispatches the syscall
  from the registers KVM shares in the ``kvm_run`` page (KVM_CAP_SYNC_REGS: no extra ioctl), writes rax
  and resumes. On a software-paging VM (PVM) ``syscall`` stays at CPL3, so setting rip back is the whole
  return; on VMX/SVM it entered CPL0, and the return is the ``sysretq`` stub (or ``iretq`` when a
  handler changed rip/rflags/rcx/r11, as rt_sigreturn does). On PVM a plain jump runs the stub too: its
  first instruction checks that rcx follows a `syscall`, and its exits are refused with IF set or a foreign
  r11; a jump gets the SIGSEGV of a jump to an unmapped page (``_jumped_in``, see kvm_stubs' _USER_ASM).
* an exception enters an IDT stub at CPL0 that pushes the vector, rax and CR2 and does
  ``out FAULT_PORT``; Python turns it into ``Stop(FAULT, ...)``; the run resumes through ``iretq``.
* page-table entries the kernel removes or downgrades (munmap, mprotect, MADV_DONTNEED) are recorded
  and rewritten *by the guest* before it runs again, then CR3 is reloaded: on a shadow-paging KVM
  (PVM, or KVM without EPT/NPT) a change made through the host mapping alone stays invisible to the
  CPU (see ``_track_page_table``).

Guest threads: one VM per address space (``KvmVm``: the VM fd, memory slots, the VM-wide kernel area, the
stale page-table entries, answers and rewriting state) and one vCPU per guest thread (``KvmCpu``;
``spawn()`` adds one, copying the caller's registers), each driven by its own host thread, so guest code
runs truly in parallel. Each vCPU has its own TSS and kernel stack, its own copy of the user stub page (its
LSTAR), scratch page and flush list (``kvm_stubs.VcpuArea``). ``close()`` puts a vCPU back in its VM's pool
(KVM frees vCPUs only with their VM; ``spawn`` reuses them) and the last one closes the VM.

``kick()`` (any thread, any time) makes ``run()`` return ``Stop(INTERRUPT)`` where the registers are the
application's: at entry to ``run()``, after the syscall being served, or where an interrupted KVM_RUN
(EINTR: ``immediate_exit``, or the host signal the kernel sends to a running vCPU's thread) left it in
application code -- not in a stub (upper half, user window), not in a trampoline, not with an event being
delivered. Interrupted right after a `syscall`, the syscall is served first; interrupted mid-stub, the vCPU
runs on and the kick is taken at its next exit or at the next kick (the kernel re-kicks: syscalls/kicks.py).

Page-table coherence with several vCPUs: the entries the kernel removes or downgrades are recorded VM-wide
and every vCPU is flagged; whichever vCPU enters next rewrites them from inside the guest (a guest write
KVM's shadow MMU sees for all vCPUs) and every flagged vCPU reloads CR3 before it next runs from Python.
Remaining window: a vCPU already running guest code keeps its translations until its next exit (Linux
would send a TLB-shootdown IPI and wait; here, the kernel can kick the other vCPUs when that matters).

Between exits the backend keeps the *application's* registers in the shared page ("the view"): at each
exit they are rewritten to what Linux's pt_regs would hold, and ``_enter`` turns them back into what the
chosen return path needs.

Site rewriting (``rewrite``, on in ``hermipy run`` unless ``--no-rewrite``): a site that traps a second time
with a number the guest cannot answer becomes ``out SYSCALL_PORT, al`` in place (``_rewrite_site``; sites that
run once, as most of a program's start-up does, are not worth the patch). A site calling
a syscall the guest can answer exits to Python once (the LSTAR entry asks about each new site, see
``_new_answered_site``): a libc wrapper's ``syscall`` then becomes a jump to a per-site trampoline that
reads the answer page without trapping at all (``rewriter/trampoline.py``); any other site is remembered,
and the LSTAR entry answers its later calls.

Measured on a PVM host (nested, software paging): a syscall round trip to Python ~35-45 µs (~20% less
from a rewritten site), an answer from the LSTAR stub ~1.3 µs (nearly all of it PVM's own cost of the
``syscall`` instruction: the stub's code takes a few ns), from a trampoline ~0.002 µs, a first touch of
a page ~25-30 µs (the shadow page fault), CPU-bound code at native speed.
"""
import contextlib
import ctypes
import fcntl
import mmap
import os
import signal
import struct
import sys
import threading
import time
from array import array
from errno import ENOMEM

from hermipy.cpu import GPR_NAMES, VEC_DB, VEC_GP, VEC_PF, VEC_UD, Cpu, GuestExit, Stop, StopReason
from hermipy.syscalls.errors import SyscallError
from hermipy.syscalls.kernel import SIGKICK
from hermipy.syscalls.memory import PROT_WRITE, PTE_ADDR, PTE_D, PTE_NX, PTE_P, PTE_U, PTE_W
from hermipy.kvm_stubs import (FAULT_PORT, FLUSH_MAX, FLUSH_PORT, MAIL_ARGS, MAIL_CHECK, MAIL_DONE,
                               MAIL_FROM_TRAMPOLINE, MAIL_NR, MAIL_POSTED, MAIL_REDO, MAIL_RESULT, MAIL_RETURN,
                               MAIL_SERVER, MAIL_STATE, MAIL_WORDS, MAX_VCPUS,
                               NOT_ANSWERED, PROBE_PORT,
                               SEL_KERNEL_CS, SEL_KERNEL_DS, SEL_TSS, SEL_USER32_CS, SEL_USER_CS, SEL_USER_DS,
                               SYSCALL_PORT, USER_AREA, USER_AREA_SIZE, USER_STUB_VA, VCPU_STRIDE, KernelArea,
                               VcpuArea)

KVM_PATH = "/dev/kvm"
MONITOR, MWAIT = b"\x0f\x01\xc8", b"\x0f\x01\xc9"
KVM_API_VERSION = 12


def _ioc(direction: int, nr: int, size: int) -> int:
    """_IOC() from asm-generic/ioctl.h with type KVMIO (0xAE)."""
    return (direction << 30) | (size << 16) | (0xAE << 8) | nr


_NONE, _W, _R, _RW = 0, 1, 2, 3
KVM_GET_API_VERSION = _ioc(_NONE, 0x00, 0)
KVM_CREATE_VM = _ioc(_NONE, 0x01, 0)
KVM_CHECK_EXTENSION = _ioc(_NONE, 0x03, 0)
KVM_GET_VCPU_MMAP_SIZE = _ioc(_NONE, 0x04, 0)
KVM_GET_SUPPORTED_CPUID = _ioc(_RW, 0x05, 8)
KVM_CREATE_VCPU = _ioc(_NONE, 0x41, 0)
KVM_SET_USER_MEMORY_REGION = _ioc(_W, 0x46, 32)
KVM_RUN = _ioc(_NONE, 0x80, 0)
KVM_GET_REGS = _ioc(_R, 0x81, 144)
KVM_SET_REGS = _ioc(_W, 0x82, 144)
KVM_GET_SREGS = _ioc(_R, 0x83, 312)
KVM_SET_SREGS = _ioc(_W, 0x84, 312)
KVM_GET_MSRS = _ioc(_RW, 0x88, 8)
KVM_SET_MSRS = _ioc(_W, 0x89, 8)
KVM_GET_FPU = _ioc(_R, 0x8C, 416)
KVM_SET_FPU = _ioc(_W, 0x8D, 416)
KVM_SET_CPUID2 = _ioc(_W, 0x90, 8)
KVM_GET_XSAVE = _ioc(_R, 0xA4, 4096)
KVM_SET_XSAVE = _ioc(_W, 0xA5, 4096)
KVM_SET_XCRS = _ioc(_W, 0xA7, 392)
KVM_SET_DEVICE_ATTR = _ioc(_W, 0xE1, 24)
KVM_VCPU_TSC_CTRL, KVM_VCPU_TSC_OFFSET = 0, 0       # the vCPU attribute group and attribute (Linux >= 5.16)
KVM_GET_VCPU_EVENTS = _ioc(_R, 0x9F, 64)
KVM_SET_VCPU_EVENTS = _ioc(_W, 0xA0, 64)

KVM_CAP_USER_MEMORY, KVM_CAP_SYNC_REGS = 3, 74
KVM_SYNC_X86_REGS, KVM_SYNC_X86_SREGS = 1, 2
KVM_EXIT_IO, KVM_EXIT_HLT, KVM_EXIT_MMIO, KVM_EXIT_SHUTDOWN = 2, 5, 6, 8
IO_OUT_BYTE = 0x0101                   # kvm_run.io's direction (KVM_EXIT_IO_OUT) and size fields: `out imm8, al`
KVM_EXIT_FAIL_ENTRY, KVM_EXIT_INTR, KVM_EXIT_INTERNAL_ERROR = 9, 10, 17
EXIT_NAMES = {0: "UNKNOWN", 1: "EXCEPTION", 2: "IO", 5: "HLT", 6: "MMIO", 8: "SHUTDOWN (triple fault)",
              9: "FAIL_ENTRY", 17: "INTERNAL_ERROR"}

# Architectural registers (Intel SDM vol. 3, 2.5 and 4.1; vol. 4 for the MSRs).
MSR_EFER, MSR_STAR, MSR_LSTAR, MSR_CSTAR, MSR_SFMASK = 0xC0000080, 0xC0000081, 0xC0000082, 0xC0000083, 0xC0000084
MSR_FS_BASE, MSR_GS_BASE, MSR_KERNEL_GS_BASE = 0xC0000100, 0xC0000101, 0xC0000102
EFER_SCE, EFER_LME, EFER_LMA, EFER_NXE = 1, 1 << 8, 1 << 10, 1 << 11
CR0_PE, CR0_MP, CR0_ET, CR0_NE, CR0_WP, CR0_AM, CR0_PG = 1, 2, 0x10, 0x20, 1 << 16, 1 << 18, 1 << 31
CR4_PAE, CR4_OSFXSR, CR4_OSXMMEXCPT, CR4_OSXSAVE = 1 << 5, 1 << 9, 1 << 10, 1 << 18
RFLAGS_FIXED, RFLAGS_IF = 0x2, 0x200
# What SYSCALL clears in RFLAGS (Linux: X86_EFLAGS_TF|DF|IF|IOPL|AC|NT, arch/x86/kernel/cpu/common.c).
SYSCALL_MASK = 0x47700
SLOT_MIN = 64 << 20                    # the first memory slot; it doubles as the frames handed out pass it
USER_WINDOW_SLOT = USER_AREA >> 39          # the user window's PML4 slot; when the guest wants it, the next free one below
WINDOW_SLOTS = 512                     # memory slots from here on: one per shared window (memory.SharedWindow)
# Flags a user program may hold (CF PF AF ZF SF TF IF DF OF NT RF AC ID), as iretq from CPL0 accepts them.
USER_RFLAGS = 0x254FD5 | RFLAGS_FIXED | RFLAGS_IF
MASK64 = (1 << 64) - 1
# What r11 holds after a `syscall` at CPL3 (bit 1 and IF set; nothing outside USER_RFLAGS): KvmCpu.run refuses
# the LSTAR entry's `out` with any other r11 as a jump into the entry (r11 becomes the application's rflags).
R11_CHECKED = (MASK64 & ~USER_RFLAGS) | RFLAGS_FIXED | RFLAGS_IF
R11_EXPECTED = RFLAGS_FIXED | RFLAGS_IF
# The page-fault error code of an instruction fetch at CPL3 from a page that is not present (SDM vol. 3, 4.7).
PF_USER_FETCH = 0x4 | 0x10
# XCR0 components a Linux process may use without asking: x87, SSE, AVX, AVX-512 (opmask, ZMM_Hi256, Hi16_ZMM).
XCR0_ALLOWED = 0xE7
INITIAL_RFLAGS = RFLAGS_FIXED | RFLAGS_IF      # what Linux hands a new process

# kvm_run layout (include/uapi/linux/kvm.h): exit_reason at 8, the exit union at 32, then
# kvm_valid_regs (288), kvm_dirty_regs (296) and the sync regs (304): struct kvm_regs, then kvm_sregs.
RUN_VALID_WORD, RUN_DIRTY_WORD, SYNC_REGS_WORD = 36, 37, 38
KVM_REGS_ORDER = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8", "r9", "r10", "r11", "r12",
                  "r13", "r14", "r15", "rip", "rflags")
W = {name: SYNC_REGS_WORD + i for i, name in enumerate(KVM_REGS_ORDER)}
_GPR_WORDS = tuple(W[name] for name in GPR_NAMES)
W_RAX, W_RCX, W_RDX, W_RSI, W_RDI, W_RSP = W["rax"], W["rcx"], W["rdx"], W["rsi"], W["rdi"], W["rsp"]
W_R8, W_R9, W_R10, W_R11, W_RIP, W_RFLAGS = W["r8"], W["r9"], W["r10"], W["r11"], W["rip"], W["rflags"]

# x87/SSE control and status words in the FXSAVE image, by the names the Unicorn backend uses.
FPU_FIELDS = {"fpcw": (0, "<H"), "fpsw": (2, "<H"), "mxcsr": (24, "<I")}
XSTATE_BV_OFFSET = 512                 # XSAVE header: which components the area holds
XFEATURE_X87, XFEATURE_SSE = 1, 2

# Where the application's registers are, relative to what KVM holds (see the module docstring).
MODE_USER = 0         # KVM's registers are the application's, at CPL3: resume as is
MODE_SYSCALL = 1      # at CPL0 inside the LSTAR stub (VMX/SVM): return with sysretq, or iretq
MODE_KERNEL = 2       # at CPL0 (boot, an exception stub): return with iretq
MODE_RAW = 3          # a KVM_RUN was interrupted: KVM's registers are mid-flight, resume untouched
EXIT_SENTINEL = 0xFFFFFFFF   # kvm_run's exit_reason before an exitless KVM_RUN; KVM sets 0 (KVM_EXIT_UNKNOWN) as it
                             # enters and the reason as it exits: ((word + 1) & 0xFFFFFFFF) > 1 is "it has exited"
EXITLESS_SWITCH_INTERVAL = 0.0002   # s: sys.setswitchinterval while a server spins (see _run_exitless)
SERVER_SPINS = 4000       # idle rounds (~0.3-0.5 ms) before an exitless server stops serving until the next exit
EXITLESS_BACKOFF = 0.02   # s without serving after the guest gave up waiting for a post: its server had no core


class SpinSlots:
    """How many exitless servers of one run may spin at once, and on which cores: each keeps two host threads busy
    (its vCPU waiting in the guest, itself in Python), so a run gets one slot per two host cores, slot i the i-th pair
    of the cores the server may use. A pair sharing one core (the scheduler's choice with a third busy thread, e.g.
    the load of a web server) serves ~20% less, and a second spinning pair on 2 cores starves both (nginx's two
    workers: 1100 requests/s). Slot i is byte i of a memfd that the guest's forks inherit with the rest of hermipy's
    process: a server takes it with a POSIX record lock (fcntl(2) F_SETLK, which a fork child does not inherit and
    the host drops when the holder dies, even by SIGKILL) and a lock of its process's own (record locks do not
    exclude the threads of one process), and gives both back when it stops; without a slot, its syscalls exit as
    without the mode."""

    def __init__(self, count: int):
        self._fd = os.memfd_create("hermipy-spin-slots", os.MFD_CLOEXEC)
        self._threads = [threading.Lock() for _ in range(count)]
        self._held: set[int] = set()          # the slots this process holds
        os.register_at_fork(after_in_child=self._forked)

    def take(self) -> int | None:
        for slot, held in enumerate(self._threads):
            if held.acquire(blocking=False):
                try:
                    fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, slot)
                except OSError:
                    held.release()            # another process spins on it
                    continue
                self._held.add(slot)
                return slot
        return None

    def holds(self, slot: int) -> bool:
        """Whether this process holds ``slot`` (a fork child's copy of another thread's server does not)."""
        return slot in self._held

    def give_back(self, slot: int) -> None:
        self._held.discard(slot)
        fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, slot)
        self._threads[slot].release()

    def _forked(self) -> None:
        """In a fork child: it holds no record lock, and no thread but the forking one goes on."""
        self._threads = [threading.Lock() for _ in self._threads]
        self._held = set()


_spin_slots: SpinSlots | None = None      # this run's, made by its first exitless server (inherited by forks)


def _slots() -> SpinSlots:
    global _spin_slots
    if _spin_slots is None:
        _spin_slots = SpinSlots(max(1, len(os.sched_getaffinity(0)) // 2))
    return _spin_slots


class PinnedPair:
    """A spinning server and its vCPU pinned to their slot's two cores, one each, for as long as the server holds the
    slot. Another process on the machine shares a core with one of them; a preempted vCPU costs a world switch each
    way (on PVM like an exit, ~40 µs), a preempted server a plain context switch: nginx serves ~7500 requests/s with
    ab on the server's core and ~4500 with ab on the vCPU's (ab's place is sticky). So after each CHECK_EVERY served
    calls the pair looks how long each thread waited on its run queue since the last look (schedstat, proc(5)), and
    when the vCPU waited the longer (and more than a twentieth of the time) the two swap cores. Which way round a
    slot's pair runs is kept for its next pinning (``_vcpu_core``); the calls and waits are counted across pinnings
    (a server unpins at each exit that dispatches a syscall). The server pins itself; the vCPU's runner thread pins
    itself before its next KVM_RUN (_VcpuRunner.affinity): a task that took the guest's credentials (nginx's workers
    run as nobody) may not change the affinity of a thread that kept hermipy's."""

    CHECK_EVERY = 1024

    def __init__(self, allowed: set[int], cores: tuple[int, int], runner: "_VcpuRunner", clocks: "_WaitClocks",
                 slot: int):
        self.allowed, self.cores, self.runner, self.clocks, self.slot = allowed, cores, runner, clocks, slot

    @classmethod
    def pin(cls, slot: int, runner: "_VcpuRunner", clocks: "_WaitClocks") -> "PinnedPair | None":
        """Slot ``slot``'s two cores, of those this thread may use, for this thread (the server) and the vCPU's; None
        when there are not two."""
        allowed = os.sched_getaffinity(0)
        if len(allowed) < 2:
            return None
        cores = sorted(allowed)
        pair = (cores[2 * slot % len(cores)], cores[(2 * slot + 1) % len(cores)])
        if _vcpu_core.get(slot, 1) == 0:
            pair = pair[::-1]
        try:
            os.sched_setaffinity(0, {pair[0]})
        except OSError:
            return None
        runner.affinity = {pair[1]}
        return cls(allowed, pair, runner, clocks, slot)

    def look(self) -> int:
        """After CHECK_EVERY served calls (the server counts them down from ``clocks.due``): swap the two threads'
        cores if the vCPU waited the longer since the last look (see the class). Returns the calls until the next."""
        clocks = self.clocks
        now, waited = time.monotonic_ns(), clocks.waited()
        server, vcpu = waited[0] - clocks.last[0], waited[1] - clocks.last[1]
        elapsed = now - clocks.since
        clocks.since, clocks.last = now, waited
        if vcpu > server and vcpu * 20 >= elapsed:
            self._swap()
        return self.CHECK_EVERY

    def _swap(self) -> None:
        server_core, vcpu_core = self.cores
        try:
            os.sched_setaffinity(0, {vcpu_core})
        except OSError:
            return
        self.runner.affinity = {server_core}
        self.cores = (vcpu_core, server_core)
        _vcpu_core[self.slot] = 1 - _vcpu_core.get(self.slot, 1)

    def unpin(self) -> None:
        try:
            os.sched_setaffinity(0, self.allowed)
        except OSError:
            pass                              # (a mask the guest narrowed meanwhile is applied at its exit)
        self.runner.affinity = self.allowed


_vcpu_core: dict[int, int] = {}           # slot -> which of its two cores its vCPU runs on (0 or 1; 1 unless swapped)


class _WaitClocks:
    """How long the server thread and a vCPU's runner thread have waited on a run queue (ns), from their
    /proc/self/task/TID/schedstat (its second field), each kept open: a read costs ~0.7 µs; and PinnedPair's count
    of calls to serve until its next look, and its last look at them."""

    def __init__(self, server_thread: int, vcpu_thread: int):
        self.pid = os.getpid()
        self.fds = []
        for tid in (server_thread, vcpu_thread):
            try:
                self.fds.append(os.open(f"/proc/self/task/{tid}/schedstat", os.O_RDONLY | os.O_CLOEXEC))
            except OSError:
                self.fds.append(-1)            # no schedstat (CONFIG_SCHED_INFO off): nothing waits
        self.due, self.since, self.last = PinnedPair.CHECK_EVERY, time.monotonic_ns(), self.waited()

    def waited(self) -> tuple[int, int]:
        return self._read(self.fds[0]), self._read(self.fds[1])

    @staticmethod
    def _read(fd: int) -> int:
        try:
            return int(os.pread(fd, 64, 0).split()[1]) if fd >= 0 else 0
        except (OSError, IndexError, ValueError):
            return 0

    def close(self) -> None:
        for fd in self.fds:
            if fd >= 0:
                os.close(fd)
        self.fds = [-1, -1]


# MODE_USER or MODE_SYSCALL once a vCPU of this process (or of the parent it was forked from) has learnt it:
# a fork child's answer page must be current before its first exit, its trampolines read it.
_learnt_syscall_mode: int | None = None
# The answer page is computed and written as one step, by a task after a call that changes the answers or by
# the signal pump when the parent exits (host_signals.after_reparent): a step computed earlier never lands last.
_answers_lock = threading.Lock()


def _new_answers_lock() -> None:
    global _answers_lock
    _answers_lock = threading.Lock()        # the fork child's copy may be held by a thread that is not there


os.register_at_fork(after_in_child=_new_answers_lock)


def _canonical(addr: int) -> bool:
    return addr < 0x800000000000 or addr >= 0xFFFF800000000000


def open_kvm() -> int:
    """Open /dev/kvm and check the API; raise OSError saying why it cannot be used."""
    fd = os.open(KVM_PATH, os.O_RDWR | os.O_CLOEXEC)
    try:
        version = fcntl.ioctl(fd, KVM_GET_API_VERSION, 0)
        if version != KVM_API_VERSION:
            raise OSError(f"{KVM_PATH}: KVM API version {version}, expected {KVM_API_VERSION}")
        for cap in (KVM_CAP_USER_MEMORY, KVM_CAP_SYNC_REGS):
            if fcntl.ioctl(fd, KVM_CHECK_EXTENSION, cap) <= 0:
                raise OSError(f"{KVM_PATH}: KVM capability {cap} missing")
    except BaseException:
        os.close(fd)
        raise
    return fd


_system_fd = -1


def kvm_system_fd() -> int:
    """This process's /dev/kvm, opened once and kept: a fork child makes its VM through the fd it inherits, even
    after the guest gave up the privileges that opening /dev/kvm needs (setuid binds on the host)."""
    global _system_fd
    if _system_fd < 0:
        _system_fd = open_kvm()
    return _system_fd


def opened_system_fd() -> int:
    """The fd kvm_system_fd keeps, or -1 before it is opened (a fork that closes fds must keep it)."""
    return _system_fd


_supported: bytes | None = None


def supported_cpuid() -> bytes:
    """KVM_GET_SUPPORTED_CPUID's table (struct kvm_cpuid2), asked once per process (and shared by the forks of
    a warm one: `hermipy serve`, hermipy.api)."""
    global _supported
    if _supported is None:
        nent = 128
        while True:
            buf = bytearray(8 + 40 * nent)
            struct.pack_into("<I", buf, 0, nent)
            try:
                fcntl.ioctl(kvm_system_fd(), KVM_GET_SUPPORTED_CPUID, buf)
                break
            except OSError as err:
                if err.errno != 7 or nent >= 4096:      # E2BIG: more entries than room
                    raise
                nent *= 2
        _supported = bytes(buf)
    return _supported


def kvm_unusable_reason() -> str | None:
    """None when /dev/kvm can run a guest here, else a one-line reason (for tests and ``--backend auto``)."""
    try:
        fd = open_kvm()
    except OSError as err:
        return str(err)
    try:
        vm = fcntl.ioctl(fd, KVM_CREATE_VM, 0)
        os.close(vm)
    except OSError as err:
        return f"{KVM_PATH}: KVM_CREATE_VM: {err.strerror}"
    finally:
        os.close(fd)
    return None


_libc = None


_prepared: tuple[int, int, int, mmap.mmap] | None = None    # (pid, VM fd, its vCPU 0's fd, the run map): prepare_vm


def prepare_vm() -> None:
    """Create a VM and its first vCPU ahead (KVM_CREATE_VM, KVM_CREATE_VCPU and the run map: ~0.7 ms on PVM)
    for the next KvmVm this process makes: a `hermipy serve` spare child does while it waits for its run."""
    global _prepared
    if _prepared is None or _prepared[0] != os.getpid():
        kvm = kvm_system_fd()
        vm = _create(kvm, KVM_CREATE_VM, 0)
        vcpu = _create(vm, KVM_CREATE_VCPU, 0)
        run_map = mmap.mmap(vcpu, fcntl.ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0), mmap.MAP_SHARED,
                            mmap.PROT_READ | mmap.PROT_WRITE)
        _prepared = (os.getpid(), vm, vcpu, run_map)


def _take_prepared() -> tuple[int, tuple[int, mmap.mmap] | None]:
    """The VM fd to use (prepare_vm's, else a new one) and the prepared vCPU 0 (fd, run map) if any."""
    global _prepared
    prepared, _prepared = _prepared, None
    if prepared is not None and prepared[0] == os.getpid():
        return prepared[1], prepared[2:]
    return _create(kvm_system_fd(), KVM_CREATE_VM, 0), None


def _create(fd: int, request: int, arg: int) -> int:
    """KVM_CREATE_VM / KVM_CREATE_VCPU, again when a signal interrupted it: a stop and continue of the process
    (a shell's job control, even before its guest runs) makes the creation fail with EINTR, and nothing was
    created then."""
    while True:
        try:
            return fcntl.ioctl(fd, request, arg)
        except InterruptedError:
            continue


def _zero_tsc_offset(vcpu: int) -> bool:
    """Make the vCPU's TSC the host's (KVM_VCPU_TSC_OFFSET = 0; KVM would start it at 0), as a native
    program's rdtsc reads it and as the vDSO's clocks need it; False where this KVM cannot."""
    offset = ctypes.c_uint64(0)
    try:
        fcntl.ioctl(vcpu, KVM_SET_DEVICE_ATTR, struct.pack("<IIQQ", 0, KVM_VCPU_TSC_CTRL, KVM_VCPU_TSC_OFFSET,
                                                           ctypes.addressof(offset)))
    except OSError:
        return False
    return True


def _ioctl_result(fd: int, request: int, buf: bytes) -> int:
    """An ioctl whose return value matters (``fcntl.ioctl`` with a buffer returns the buffer instead)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_char_p]
    result = _libc.ioctl(fd, request, buf)
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def _pack_segment(base=0, limit=0xFFFFFFFF, selector=0, type_=0, present=1, dpl=0, db=0, s=1, l=0, g=1,
                  unusable=0) -> bytes:
    return struct.pack("<QIHBBBBBBBBBx", base, limit, selector, type_, present, dpl, db, s, l, g, 0, unusable)


def _code_segment(selector: int, dpl: int) -> bytes:
    return _pack_segment(selector=selector, type_=0xB, dpl=dpl, l=1)


def _data_segment(selector: int, dpl: int) -> bytes:
    return _pack_segment(selector=selector, type_=0x3, dpl=dpl, db=1)


def _mem_lock(mem):
    """The address space's lock (VMAs, page table, frames) where it has one."""
    lock = getattr(mem, "lock", None)
    return lock if lock is not None else contextlib.nullcontext()


class KvmVm:
    """What the vCPUs of one guest address space share: the VM, its memory slots, the VM-wide kernel area,
    the stale page-table entries, the in-guest answers and the site rewriting state (see KvmCpu)."""

    def __init__(self, ram, mem, forked_from: "KvmCpu | None" = None):
        """A new VM over ``ram``; in a fork child, ``forked_from`` is the parent's forking vCPU (as copied): the
        child's copy of guest RAM already holds the parent's kernel area and vCPU blocks, mapped, so they are
        taken over instead of being built again, the forking vCPU's block for the child's first vCPU."""
        self.ram, self.mem, self.page_table = ram, mem, mem.page_table
        self.kvm = kvm_system_fd()
        self.fd = -1
        self.prepared_vcpu: tuple | None = None     # vCPU 0 (fd, run map) made ahead (prepare_vm), until taken
        self.cpus: tuple = ()                      # the live vCPUs (KvmCpu)
        self.pool: list = []                       # closed vCPUs (fd, run map, its views, VcpuArea), to reuse
        self.created = 0                           # vCPU ids handed out (KVM frees a vCPU only with its VM)
        self.free_areas: list = []                 # vCPU blocks without a vCPU (a fork child's inherited ones)
        self.area_count = 0                        # vCPU blocks made (kvm_stubs.vcpu_base(i)), never freed
        self.lock = threading.Lock()               # memory slots, vCPU creation and the pool
        self.moving = threading.Event()            # clear while the user window moves (move_window)
        self.moving.set()
        self.slot_size = self.slots = 0
        self.window_slots: dict[int, int] = {}     # window's guest-physical start -> its memory slot
        self.pid = os.getpid()                     # a fork child inherits the fds, not the VM
        try:
            self.fd, self.prepared_vcpu = _take_prepared()
            self.run_size = fcntl.ioctl(self.kvm, KVM_GET_VCPU_MMAP_SIZE, 0)
            self.grow_slot()
            for window in list(ram.windows.values()):     # a fork child's VM: the windows it inherited
                self.window_opened(window)
            ram.window_listeners.append(self)
            self.stale: set[int] = set()           # PTE addresses to rewrite from inside the guest
            self.syscall_mode = _learnt_syscall_mode   # MODE_USER or MODE_SYSCALL: the host's, learnt at the first
                                                       # syscall of this process's first VM (a fork or exec's knows it)
            self.tsc_is_host = True                # until a vCPU's TSC offset cannot be set to 0
            self.answers = None                    # () -> {nr: result}, see KvmCpu.answer_in_guest
            self.refresh_after: frozenset[int] = frozenset()
            self.answered: frozenset[int] = frozenset()
            self.trapped: dict[int, bool] = {}      # site -> True: rewrite it if it traps again; False: tried
            self.policies = None                   # vma -> its file's SitePolicy (trampoline.file_policies)
            self.trampolines = None                # rewriter.trampoline.Trampolines, when in use
            if forked_from is None:
                self.area = KernelArea(ram, mem.page_table)
                self.cpuid = bytearray(supported_cpuid())
                self.xcr0 = self._xsave_components()
            else:
                self._inherit(forked_from)
            self._track_page_table(mem.page_table)
            # The user window of kvm_stubs: hermipy's own area (memory.OwnArea), where no guest mapping lands; a
            # guest mapping that must land there (MAP_FIXED) moves it (move_window).
            mem.reserve(self.area.window, USER_AREA_SIZE, 0, "[hermipy-kvm]", self.move_window)
        except BaseException:
            self.destroy()
            raise

    def _inherit(self, forked: "KvmCpu") -> None:
        """A fork child's VM: the parent's kernel area and vCPU blocks (in the child's copy of RAM and page
        tables), the forking vCPU's block last in line, so that the child's first vCPU takes it."""
        parent = forked._vm
        self.area = parent.area
        self.area.forget_answers()
        self.cpuid, self.xcr0 = parent.cpuid, parent.xcr0
        blocks = [cpu.area for cpu in parent.cpus] + [pooled[4] for pooled in parent.pool]
        self.free_areas = [area for area in blocks if area is not forked.area] + [forked.area]
        self.area_count = parent.area_count
        # the trampolines the child's memory holds, with the sites they serve (move_window rewrites them)
        self.trampolines, self.policies = parent.trampolines, parent.policies

    def destroy(self) -> None:
        """Close every vCPU left (pooled or live) and the VM."""
        if self in self.ram.window_listeners:
            self.ram.window_listeners.remove(self)
        for cpu in self.cpus:
            cpu._release()
        self.cpus = ()
        for fd, run_map, w, b, _area in self.pool:
            _unmap(run_map, w, b)
            os.close(fd)
        self.pool = []
        if self.prepared_vcpu is not None:
            fd, run_map = self.prepared_vcpu
            run_map.close()
            os.close(fd)
            self.prepared_vcpu = None
        if self.fd >= 0:
            os.close(self.fd)
        self.fd = -1

    # -- memory slots ----------------------------------------------------------------------------
    def _set_slot(self, slot: int, start: int, size: int) -> None:
        """Memory slot ``slot``: guest-physical [start, start + size) is guest RAM (size 0 deletes it)."""
        fcntl.ioctl(self.fd, KVM_SET_USER_MEMORY_REGION,
                    struct.pack("<IIQQQ", slot, 0, start, size, self.ram.address + start))

    def window_opened(self, window) -> None:
        """A shared window is RAM of its own: a memory slot over its host mapping."""
        if self.pid != os.getpid() or self.fd < 0:
            return                                 # the parent's VM, seen from a fork child
        with self.lock:
            used = set(self.window_slots.values())
            slot = next(n for n in range(WINDOW_SLOTS, WINDOW_SLOTS + len(used) + 1) if n not in used)
            self._set_slot(slot, window.phys, window.length)
            self.window_slots[window.phys] = slot

    def window_closed(self, window) -> None:
        """Its pages are unreachable (the caller flushed the TLBs): the slot goes."""
        if self.pid != os.getpid() or self.fd < 0:
            return
        with self.lock:
            slot = self.window_slots.pop(window.phys, None)
            if slot is not None:
                self._set_slot(slot, window.phys, 0)

    def grow_slot(self) -> None:
        """Make the slots cover every frame handed out so far: the smallest power of two from SLOT_MIN up.

        KVM's cost of a slot grows with its size (~3 ms for 4 GiB on PVM), and a program touches a small
        part of its RAM. A slot cannot be resized, and deleting one under a running vCPU would turn its
        accesses into MMIO exits, so each growth adds a slot for the new part. Frames are handed out bottom-up,
        so the guest never sees one beyond the slots."""
        with self.lock:
            size = max(SLOT_MIN, self.slot_size)
            while size < self.ram.top:
                size *= 2
            size = min(size, self.ram.size)
            if size <= self.slot_size:
                return
            self._set_slot(self.slots, self.slot_size, size - self.slot_size)
            self.slots += 1
            self.slot_size = size

    def _reset_slots(self) -> None:
        """Remove the memory slots and add all of it back as one: KVM drops every shadow page (a flush of
        everything at once). Only with a single vCPU: another one running would see its RAM vanish."""
        with self.lock:
            for slot in range(self.slots):
                self._set_slot(slot, 0, 0)
            self._set_slot(0, 0, self.slot_size)
            self.slots = 1

    # -- page-table coherence --------------------------------------------------------------------
    def _track_page_table(self, page_table) -> None:
        """Record every present PTE the kernel removes or downgrades, to invalidate it in the guest.

        A reload of CR3 is enough on VMX/SVM with EPT/NPT, but a software-paging VM (KVM's shadow MMU,
        PVM) only notices page-table changes that the *guest* writes: entries Python rewrites through the
        host mapping stay cached in the shadow tables. So the kernel flush stub rewrites each recorded entry from
        inside the guest (a write KVM traps and applies) and CR3 is reloaded; when too many entries changed
        and there is one vCPU, the memory slots are removed and re-added, which drops every shadow page.
        The entries are VM-wide (whichever vCPU enters next rewrites them); every vCPU is flagged, to
        reload CR3 before it next runs.
        """
        words, leaf_slot, stale, vm = page_table.words, page_table._leaf_slot, self.stale, self
        keep = PTE_P | PTE_W | PTE_U | PTE_D

        def set_pte(va: int, pte: int) -> None:
            slot = leaf_slot(va, True)
            old = words[slot]
            words[slot] = pte
            if old & PTE_P and ((old ^ pte) & PTE_ADDR or (old & ~pte) & keep or (pte & ~old) & PTE_NX):
                stale.add(slot << 3)
                for cpu in vm.cpus:
                    cpu._flush = True

        def clear_pte(va: int) -> int:
            slot = leaf_slot(va, False)
            if slot < 0:
                return 0
            old = words[slot]
            words[slot] = 0
            if old & PTE_P:
                stale.add(slot << 3)
                for cpu in vm.cpus:
                    cpu._flush = True
            return old

        page_table.set, page_table.clear = set_pte, clear_pte

    def move_window(self, own) -> None:
        """A guest mapping must land on the user window (``own``, its memory.OwnArea): the window moves to a free
        PML4 slot, as if it had never been in the guest's way (issue 13 item 7).

        The caller holds the memory lock. First no vCPU may run guest code: each is told (``_moved``), those running
        are stopped (as for a TLB shootdown), and each waits in its own thread, before it runs again, until the
        move is done (``KvmCpu._take_move``). Then every vCPU block is mapped at the new place, the trampolines are
        written again for the new answer page, and the old window goes (its stale entries flushed before anyone
        runs); then each vCPU takes the move: its LSTAR, its registers if they are inside the old window (a vCPU
        stopped inside its entry or a trampoline goes on at the same instruction of the same frames), what it
        compares exits with."""
        area, mem = self.area, self.mem
        old = area.window
        taken_start, taken_end = mem.claimed
        new = next((slot << 39 for slot in range(USER_WINDOW_SLOT, 0, -1)
                    if slot << 39 != old and mem.is_free(slot << 39, (slot + 1) << 39)
                    and not (taken_start < (slot + 1) << 39 and slot << 39 < taken_end)), None)
        if new is None:
            raise SyscallError(ENOMEM)
        me = threading.get_ident()
        self.moving.clear()
        try:
            for cpu in self.cpus:
                cpu._moved = True
            _stop_until(lambda cpu: cpu._moved, [cpu for cpu in self.cpus if cpu._thread != me],
                        "moving the user window")
            blocks = {id(a): a for a in [cpu.area for cpu in self.cpus] + [p[4] for p in self.pool] + self.free_areas}
            gone = [va for block in blocks.values() for va in block.move(new)]
            area.window = new
            if self.trampolines is not None:
                self.trampolines.move_answers(area.answers_va, area.trampoline_stack_top)
            area.set_post_entry(0)            # the entries moved: set again at the next exitless run
            for va in gone:
                self.page_table.clear(va)     # stale entries: every vCPU flushes them before it runs again
            for cpu in self.cpus:
                cpu._flush = True
            mem.reserve(new, USER_AREA_SIZE, 0, "[hermipy-kvm]", self.move_window)
        finally:
            self.moving.set()

    def take_stale(self, cpu) -> list[int] | None:
        """Up to FLUSH_MAX stale PTE addresses, now ``cpu``'s to rewrite (None: the memory slots were reset
        instead, nothing to rewrite nor reload). The entries another vCPU's kernel flush stub may still be rewriting
        are included again: ``cpu`` must not run the application before they are done (a rewrite is an
        atomic no-op on the entry, so twice is harmless). Safe against other threads adding entries: the
        list and the removal are each one C-level operation under the GIL."""
        stale = self.stale
        if len(stale) > FLUSH_MAX and len(self.cpus) <= 1:
            self._reset_slots()
            stale.clear()
            return None
        entries = sorted(stale)[:FLUSH_MAX]
        stale.difference_update(entries)
        for other in self.cpus:
            if other is not cpu and other._in_flight:
                entries.extend(other._in_flight[:FLUSH_MAX - len(entries)])
        cpu._in_flight = entries
        return entries

    # -- in-guest answers and site rewriting -----------------------------------------------------
    def write_answers(self) -> None:
        with _answers_lock:
            answers = {nr: value for nr, value in self.answers().items() if 0 <= value < NOT_ANSWERED}
            self.answered = answered = frozenset(answers)
            for cpu in self.cpus:
                cpu._answered = answered
            self.area.write_answers(answers)

    def new_answered_site(self, rcx: int, nr: int, rewrite: bool, invalidate) -> None:
        """The LSTAR entry asks about a site it has not answered before: give the site a trampoline (when
        rewriting), or let the entry answer it from now on."""
        if rewrite:
            with _mem_lock(self.mem):
                if self._trampolines(invalidate).patch(rcx - 2, nr):
                    return
        self.area.remember_site(rcx)

    def patch_post(self, site: int, invalidate) -> None:
        """A site the exitless entry served for the only vCPU: a posting trampoline (rewriter/trampoline.py) if the
        site has its shape."""
        with _mem_lock(self.mem):
            if len(self.cpus) == 1:
                self._trampolines(invalidate).patch_post(site)

    def _trampolines(self, invalidate):
        if self.trampolines is None:
            from hermipy.rewriter.trampoline import Trampolines
            self.trampolines = Trampolines(self.mem, self.area.answers_va, self.area.trampoline_stack_top, self.policy,
                                           invalidate)
        return self.trampolines

    def policy(self, vma):
        if self.policies is None:
            from hermipy.rewriter.trampoline import file_policies
            self.policies = file_policies()
        return self.policies(vma)

    def rewrite_site(self, va: int, invalidate) -> None:
        """Rewrite the `syscall` (0f 05) that just trapped into `out SYSCALL_PORT, al` (e6 e0).

        Same length, so no other instruction moves; the next call exits straight from CPL3 into the
        Python kernel, without the `syscall` -> LSTAR transition (on PVM that transition alone costs
        ~1.5 µs and the whole round trip ~20% more). Never called for numbers the guest answers itself
        (``new_answered_site``: `out` always exits, the entry does not). Left alone: sites a cached rewrite
        plan marks as shared by several numbers (the syscall() wrapper: see ``rewriter.plan.SitePolicy``),
        and any code that is not a private, read-only file mapping (JIT buffers, shared or writable code:
        the program may read or rewrite those bytes itself, and a shared mapping would carry the patch to
        the file). The two bytes are one 16-bit store (another vCPU may be running that code: it sees the
        old instruction or the new one); with several vCPUs, a site across a cache line is left alone.
        glibc's syscall() first gets its dispatching trampoline (``rewriter.trampoline``: the numbers the guest
        answers then never trap), whose other numbers come back to the rewritten site.
        """
        if (va & 0xFFF) == 0xFFF or ((va & 63) == 63 and len(self.cpus) > 1):
            return
        with _mem_lock(self.mem):
            if self.answers is not None:
                self._trampolines(invalidate).patch_dispatch(va)
            vma = self.mem.find(va)
            if vma is None or vma.file is None or vma.shared or vma.prot & PROT_WRITE:
                return
            pte = self.page_table.get(va)
            if not pte & PTE_P:
                return
            if not self.policy(vma).may_rewrite(vma.offset + va - vma.start):
                return
            phys = (pte & PTE_ADDR) + (va & 0xFFF)
            word = ctypes.c_uint16.from_address(self.ram.address + phys)
            if word.value == 0x050F:
                word.value = SYSCALL_PORT << 8 | 0xE6

    # -- CPUID -----------------------------------------------------------------------------------
    def cpuid_entry(self, function: int, index: int = 0) -> tuple[int, int, int, int] | None:
        buf = self.cpuid
        for i in range(struct.unpack_from("<I", buf, 0)[0]):
            fn, idx, flags, eax, ebx, ecx, edx = struct.unpack_from("<7I", buf, 8 + 40 * i)
            if fn == function and (idx == index or not flags & 1):
                return eax, ebx, ecx, edx
        return None

    def _xsave_components(self) -> int:
        """XCR0 to enable: x87, SSE, and AVX / AVX-512 where KVM offers them (CPUID.0xD.0:EAX)."""
        leaf_d = self.cpuid_entry(0xD, 0)
        if leaf_d is None or not leaf_d[0] & 4:
            return 0
        xcr0 = leaf_d[0] & XCR0_ALLOWED
        if xcr0 & 0xE0 != 0xE0:           # AVX-512 needs its three components together
            xcr0 &= ~0xE0
        return xcr0 | 3


def _unmap(run_map, *views) -> None:
    try:
        for view in views:
            view.release()
        run_map.close()
    except (BufferError, ValueError):
        pass


class KvmCpu(Cpu):
    """One vCPU of a KVM virtual machine, in 64-bit long mode over the kernel's RAM and page table.

    ``KvmCpu(ram, mem)`` creates the VM (a ``KvmVm``) with its first vCPU; ``spawn()`` adds a vCPU to the same
    VM (a guest thread). Each vCPU has its own kernel page (TSS, kernel stack) and user block (LSTAR entry
    copy, scratch page, flush list): see kvm_stubs.VcpuArea."""

    name = "kvm"
    survives_fork = False

    def __init__(self, ram, mem, forked_from: "KvmCpu | None" = None):
        """``ram``: the kernel's PhysicalMemory; ``mem``: its AddressSpace (page table, VMA list);
        ``forked_from``: in a fork child, the vCPU that forked (see KvmVm)."""
        self._vm = None
        self._run_map = self._w = self._b = None
        self.vcpu = -1
        vm = KvmVm(ram, mem, forked_from)
        try:
            self._attach(vm)
        except BaseException:
            vm.destroy()
            raise

    # -- setup -----------------------------------------------------------------------------------
    def _attach(self, vm: KvmVm) -> None:
        """Become a vCPU of ``vm``: a closed one of its pool, or a new one; registers at zero, at CPL0."""
        self.ram, self.mem, self.page_table = vm.ram, vm.mem, vm.page_table
        self.kernel_area = vm.area
        with _mem_lock(vm.mem), vm.lock:
            if vm.pool:
                fd, run_map, w, b, area = vm.pool.pop()
                reused = True
            else:
                if vm.created >= MAX_VCPUS:
                    raise OSError("kvm: too many threads")
                if vm.free_areas:
                    area = vm.free_areas.pop()
                else:
                    area = VcpuArea(vm.area, vm.area_count)
                    vm.area_count += 1
                if vm.prepared_vcpu is not None:         # vCPU 0, made ahead (prepare_vm)
                    (fd, run_map), vm.prepared_vcpu = vm.prepared_vcpu, None
                else:
                    fd = _create(vm.fd, KVM_CREATE_VCPU, vm.created)
                    try:
                        run_map = mmap.mmap(fd, vm.run_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
                    except BaseException:
                        os.close(fd)
                        raise
                vm.created += 1
                w, b = memoryview(run_map).cast("Q"), memoryview(run_map)
                reused = False
        self.vcpu, self._run_map, self._w, self._b, self.area = fd, run_map, w, b, area
        self._vm = vm
        b[1] = 0                                              # immediate_exit (a kick of its last user)
        if reused:
            fcntl.ioctl(fd, KVM_SET_VCPU_EVENTS, bytes(64))   # nothing pending from its last user
        else:
            fcntl.ioctl(fd, KVM_SET_CPUID2, vm.cpuid)
            vm.tsc_is_host &= _zero_tsc_offset(fd)
        xcr0 = vm.xcr0
        try:
            self._set_long_mode(self.page_table.root, xcr0 != 0)
        except OSError:
            if not xcr0:
                raise
            vm.xcr0 = xcr0 = 0             # this KVM refuses CR4.OSXSAVE: SSE only, as a pre-AVX CPU
            self._set_long_mode(self.page_table.root, False)
        if xcr0 and not reused:
            xcrs = bytearray(392)
            struct.pack_into("<IIIIQ", xcrs, 0, 1, 0, 0, 0, xcr0)
            fcntl.ioctl(fd, KVM_SET_XCRS, xcrs)
        self._fs_base = self._gs_base = 0
        self._set_msrs({MSR_STAR: (SEL_USER32_CS << 48) | (SEL_KERNEL_CS << 32), MSR_LSTAR: area.syscall_entry,
                        MSR_CSTAR: area.syscall_entry, MSR_SFMASK: SYSCALL_MASK,
                        MSR_FS_BASE: 0, MSR_GS_BASE: 0, MSR_KERNEL_GS_BASE: 0})
        # Every register starts at zero (the reset value RDX=0x600 would reach _start as rtld_fini).
        fcntl.ioctl(fd, KVM_SET_REGS, struct.pack("<18Q", *([0] * 17 + [RFLAGS_FIXED])))
        w[RUN_VALID_WORD] = KVM_SYNC_X86_REGS
        w[RUN_DIRTY_WORD] = 0
        for index in _GPR_WORDS:
            w[index] = 0
        w[W_RFLAGS] = INITIAL_RFLAGS
        self._mode = MODE_KERNEL
        self._syscall_mode = vm.syscall_mode       # MODE_USER or MODE_SYSCALL, learnt at the first syscall
        self._flush = False
        self._flush_cr3 = False            # the next return to the application goes through a CR3 reload
        self._flush_resume_rip = self._flush_resume_rflags = 0
        self._in_flight = ()               # the stale PTEs this vCPU's kernel flush stub is rewriting
        self._kick = False                 # kick(): stop at the next point where the registers are the app's
        self._in_guest = False             # inside run()'s KVM_RUN (a TLB shootdown must wait for it)
        self._thread = 0                   # the host thread running it (pthread id, for SIGKICK)
        self._moved = False                # the user window moved: take it before running (_take_move)
        self._addresses_from(area)
        self._flush_trapping = False       # sent to the user stub page's `ud2` for a flush (_trap_for_flush)
        self._refresh_after = vm.refresh_after
        self._answered = vm.answered
        self._trapped = vm.trapped
        self.rewrite = False
        self.exitless_server = None        # exitless mode, see _run_exitless
        self._runner = None                # then the host thread making this vCPU's KVM_RUN calls (_VcpuRunner)
        self._exitless_result = None       # a served syscall's result, for the exit that finishes it (MAIL_CHECK)
        self._spinning: tuple[int, PinnedPair | None] | None = None   # exitless: the SpinSlots slot held, the pin
        self._wait_clocks: _WaitClocks | None = None      # exitless: this server's and its vCPU's (PinnedPair)
        self._calm_until = 0.0             # exitless: no serving before this monotonic time (_exitless_exit)
        self._posts_tried: set[int] = set()    # return addresses of sites served in exitless mode (offered a
                                               # trampoline, or remembered as answered, once)
        area.mail[0:MAIL_WORDS] = array("Q", bytes(8 * MAIL_WORDS))
        with vm.lock:
            vm.area.set_post_entry(0)      # posting trampolines enter a vCPU's own entry only while it is alone
            vm.cpus = vm.cpus + (self,)

    def _addresses_from(self, area) -> None:
        """The addresses of the vCPU's block that its exits are compared with, as they are now: the registers of
        an exit are where the block was when the vCPU ran (a move is taken before it runs again)."""
        self._window = area.kernel.window
        self._entry_return = area.entry_return                # rip after the LSTAR stub's `out`
        self._bad_entry_return = area.bad_entry_return        # rip after its `out` for an entry not by `syscall`
        self._syscall_entry = area.syscall_entry
        self._flush_trap = area.flush_trap
        self._exitless_waited = area.exitless_waited
        self._exitless_check_return = area.exitless_check_return

    def _in_window(self, address: int) -> bool:
        """Inside the user window, where this vCPU's registers last saw it."""
        return self._window <= address < self._window + USER_AREA_SIZE

    def _take_move(self) -> None:
        """In the vCPU's own thread, before it runs: the user window moves (KvmVm.move_window; this waits until it
        has). Its LSTAR follows, and so do registers that point into the old window (a vCPU stopped inside its
        entry, its flush trap or a trampoline's scratch stack; the iret frame of the kernel page, for a vCPU stopped
        in a kernel stub on its way back there): the block's pages are the same frames at the new place."""
        self._moved = False
        self._vm.moving.wait()
        area, w = self.area, self._w
        old = self._window
        delta = area.kernel.window - old

        def moved(value: int) -> int:
            return value + delta if old <= value < old + USER_AREA_SIZE else value
        w[W_RIP], w[W_RSP] = moved(w[W_RIP]), moved(w[W_RSP])
        restart = self._posting_before_jump(w[W_RIP])
        if restart is not None:               # its rcx may name the old entry: it reads the post word again
            w[W_RIP] = restart
        self._flush_resume_rip = moved(self._flush_resume_rip)
        frame = area.stack_offset(area.iret_frame_va)
        rip, cs, rflags, rsp = struct.unpack_from("<4Q", self.ram.buf, frame)
        struct.pack_into("<4Q", self.ram.buf, frame, moved(rip), cs, rflags, moved(rsp))
        w[RUN_DIRTY_WORD] = KVM_SYNC_X86_REGS
        self._set_msrs({MSR_LSTAR: area.syscall_entry, MSR_CSTAR: area.syscall_entry})
        self._addresses_from(area)

    def spawn(self) -> "KvmCpu":
        """A new vCPU in this one's VM (a guest thread), starting from a copy of this one's state: GPRs, rip,
        rflags, FS/GS base, FPU/XSAVE. Called inside a syscall (clone): the child resumes the application
        right after it, as this vCPU would (from CPL0, through iretq). Its run() may be called from another
        host thread; its vCPU is created here (KVM binds a vCPU to the thread of its first KVM_RUN, so the
        creating thread costs nothing)."""
        vm = self._vm
        child = KvmCpu.__new__(KvmCpu)
        child._vm = None
        child._run_map = child._w = child._b = None
        child.vcpu = -1
        child._attach(vm)
        try:
            w, cw = self._w, child._w
            for index in _GPR_WORDS:
                cw[index] = w[index]
            child._set_msrs({MSR_FS_BASE: self._fs_base, MSR_GS_BASE: self._gs_base})
            child._fs_base, child._gs_base = self._fs_base, self._gs_base
            fcntl.ioctl(child.vcpu, KVM_SET_XSAVE, self._get_xsave())
            child._syscall_mode = self._syscall_mode if self._syscall_mode is not None else vm.syscall_mode
            child.rewrite = self.rewrite
            child._flush = True            # a CR3 reload (and whatever is stale) before its first instruction
        except BaseException:
            child.close()
            raise
        return child

    def kick(self) -> None:
        """Make run() return Stop(INTERRUPT) soon, where the registers are the application's; callable from
        any thread at any time. Sets a flag and kvm_run.immediate_exit: a KVM_RUN about to start returns at
        once, one already running needs a host signal to its thread (EINTR, see the module docstring)."""
        self._kick = True
        b = self._b
        if b is not None:
            try:
                b[1] = 1
            except (ValueError, TypeError):       # closed meanwhile
                pass
        runner = self._runner
        if runner is not None and self._in_guest:   # exitless: KVM_RUN is the runner thread's
            with contextlib.suppress(OSError):
                signal.pthread_kill(runner.ident, SIGKICK)

    # -- in-guest answers and site rewriting -----------------------------------------------------
    def stop_answering_in_guest(self) -> None:
        vm = self._vm
        with _mem_lock(vm.mem):
            if vm.trampolines is not None:
                vm.trampolines.withdraw()
        if vm.answers is not None and (vm.syscall_mode is not None or _learnt_syscall_mode is not None):
            vm.write_answers()

    def answer_in_guest(self, answers, refresh_after) -> None:
        """Let the LSTAR entry answer some syscalls without leaving the guest.

        ``answers()`` returns {nr: result} for syscalls whose result is kernel state the guest may read
        (getpid & co.); it is called once the syscall mode is known and again after each syscall whose
        number is in ``refresh_after`` (the calls that can change those results). VM-wide: one answer page."""
        vm = self._vm
        vm.answers = answers
        vm.refresh_after = frozenset(refresh_after)
        for cpu in vm.cpus:
            cpu._refresh_after = vm.refresh_after
        if vm.syscall_mode is not None or _learnt_syscall_mode is not None:
            vm.write_answers()

    def _set_long_mode(self, root: int, xsave: bool) -> None:
        """Segments, descriptor tables, control registers: 64-bit mode, paging on, CPL0 (Intel SDM 9.8.5)."""
        area, karea = self.area, self.kernel_area
        sregs = bytearray(fcntl.ioctl(self.vcpu, KVM_GET_SREGS, bytes(312)))
        user_ds = _data_segment(SEL_USER_DS, 3)
        segments = [_code_segment(SEL_KERNEL_CS, 0), user_ds, user_ds, user_ds, user_ds,
                    _data_segment(SEL_KERNEL_DS, 0),
                    _pack_segment(base=area.tss_va, limit=area.tss_limit, selector=SEL_TSS, type_=0xB, s=0, g=0),
                    _pack_segment(type_=0x2, present=0, s=0, g=0, limit=0, unusable=1)]
        sregs[0:192] = b"".join(segments)
        struct.pack_into("<QH6xQH6x", sregs, 192, karea.gdt_va, karea.gdt_limit, karea.idt_va, karea.idt_limit)
        cr0 = CR0_PG | CR0_WP | CR0_NE | CR0_ET | CR0_MP | CR0_PE
        cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT | (CR4_OSXSAVE if xsave else 0)
        efer = EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE
        apic_base = struct.unpack_from("<Q", sregs, 272)[0]
        struct.pack_into("<7Q", sregs, 224, cr0, 0, root, cr4, 0, efer, apic_base)
        sregs[280:312] = bytes(32)
        fcntl.ioctl(self.vcpu, KVM_SET_SREGS, bytes(sregs))

    @property
    def tsc_is_host(self) -> bool:
        return self._vm is not None and self._vm.tsc_is_host

    def _set_msrs(self, msrs: dict[int, int]) -> None:
        buf = struct.pack("<II", len(msrs), 0) + b"".join(struct.pack("<IIQ", i, 0, v & MASK64)
                                                          for i, v in msrs.items())
        done = _ioctl_result(self.vcpu, KVM_SET_MSRS, buf)
        if done != len(msrs):
            raise OSError(f"kvm: KVM_SET_MSRS set {done} of {len(msrs)} MSRs")

    def close(self) -> None:
        """Release this vCPU: to the VM's pool while other vCPUs live (a later spawn reuses it), else close
        the VM with it."""
        vm = self._vm
        if vm is None:
            return
        if vm.pid != os.getpid():
            vm.destroy()                  # a fork child: the other threads' vCPUs are not its own
            return
        self._vm = None
        self._stop_runner()
        with vm.lock:
            vm.cpus = tuple(cpu for cpu in vm.cpus if cpu is not self)
            last = not vm.cpus
            if not last and self.vcpu >= 0:
                self._kick = False
                vm.pool.append((self.vcpu, self._run_map, self._w, self._b, self.area))
                self.vcpu, self._run_map, self._w, self._b = -1, None, None, None
        if last:
            self._release()
            vm.destroy()

    def _release(self) -> None:
        self._vm = None
        self._stop_runner()
        run_map, w, b = self._run_map, self._w, self._b
        self._run_map = self._w = self._b = None
        if run_map is not None:
            _unmap(run_map, w, b)
        if self.vcpu >= 0:
            os.close(self.vcpu)
        self.vcpu = -1

    # -- running ---------------------------------------------------------------------------------
    def run(self, on_syscall) -> Stop:
        if self.exitless_server is None and self._spinning is None:
            return self._run_loop(on_syscall)
        try:
            return self._run_loop(self._releasing(on_syscall))
        finally:
            self._release_spin()

    def _releasing(self, on_syscall):
        """``on_syscall`` after giving back the exitless server's slot (``_release_spin``)."""
        def dispatch(*args):
            self._release_spin()
            return on_syscall(*args)
        return dispatch

    def _run_loop(self, on_syscall) -> Stop:
        w, vcpu, ioctl, ram, vm = self._w, self.vcpu, fcntl.ioctl, self.ram, self._vm
        self._thread = threading.get_ident()
        while True:
            if self._kick and self._mode != MODE_RAW:
                return self._interrupted()
            if ram.top > vm.slot_size:
                vm.grow_slot()
            self._in_guest = True             # before looking at _flush: see flush_tlb()
            if self._moved:
                self._take_move()
            if self._mode != MODE_USER or self._flush:
                self._enter()
            w[RUN_DIRTY_WORD] = KVM_SYNC_X86_REGS
            try:
                server = self.exitless_server       # (another thread may end the mode meanwhile)
                if server is not None:
                    self._run_exitless(server)
                else:
                    if self._runner is not None:      # exitless mode ended (sys_time.watch_cpu_time)
                        self._stop_runner()
                    ioctl(vcpu, KVM_RUN, 0)
                self._in_guest = False
                self._in_flight = ()          # an exit: no flush stub of this vCPU is half done
                reason = w[1] & 0xFFFFFFFF
            except BlockingIOError:           # EAGAIN: the host was short of something (a cgroup's limit): again
                self._in_guest = False
                self._mode = MODE_RAW
                time.sleep(0.001)
                continue
            except InterruptedError:
                self._in_guest = False
                self._b[1] = 0                # immediate_exit: it did its job (never left set: no spinning)
                if self._at_application():
                    if self._kick:
                        self._mode = MODE_USER
                        return self._interrupted()
                    if self._flush:
                        self._mode = MODE_USER    # a TLB shootdown: through the kernel flush stub, then on
                        continue
                self._mode = MODE_RAW
                if (not (self._kick or self._flush) or w[W_RIP] != self._syscall_entry
                        or not self._after_syscall(w[W_RCX])):
                    continue                  # mid-stub (or a jump to the entry: its check is next): the next
                                              # kick, shootdown or exit will find a better point
                # Right after `syscall`, before the entry's first instruction (on PVM, where `syscall` itself
                # exits, that is where a signal finds a vCPU looping on answered syscalls, every time: a
                # shootdown that waited for another point never ended): hand the syscall to Python as if the
                # entry had asked; the kick or the flush is taken right after it.
                w[W_RIP] = self._entry_return
                w[4] = SYSCALL_PORT << 16 | IO_OUT_BYTE
                reason = KVM_EXIT_IO
            if reason == KVM_EXIT_IO:
                port = (w[4] >> 16) & 0xFFFF
                if port == SYSCALL_PORT and w[4] & 0xFFFF != IO_OUT_BYTE:
                    return self._refused_port_read()
                if port == SYSCALL_PORT:
                    rip = w[W_RIP]
                    if rip == self._exitless_waited or rip == self._exitless_check_return:
                        stop = self._exitless_exit(rip)
                        if stop is not None:
                            return stop
                        continue
                    if rip == self._entry_return:
                        if not self._from_syscall():
                            self._mode = MODE_USER
                            return self._jumped_in(self._syscall_entry)
                        self._return_from_syscall()
                        if w[W_RAX] in self._answered:
                            vm.new_answered_site(w[W_RCX], w[W_RAX], self.rewrite, self.invalidate_code)
                        elif self.rewrite and self.exitless_server is None:   # exitless: sites enter here
                            site = w[W_RCX] - 2
                            trapped = self._trapped.get(site)
                            if trapped:
                                self._trapped[site] = False         # tried: never again
                                vm.rewrite_site(site, self.invalidate_code)
                            elif trapped is None:
                                self._trapped[site] = True
                    elif self._in_window(rip):
                        stop = self._bad_entry(rip)
                        if stop is not None:
                            return stop
                        continue
                    else:
                        # A patched site: `out` at CPL3 in place of `syscall`; clobber rcx, r11 as it would.
                        w[W_RCX] = w[W_RIP]
                        w[W_R11] = w[W_RFLAGS]
                        self._mode = MODE_USER
                    nr = w[W_RAX]
                    try:
                        result = on_syscall(nr, w[W_RDI], w[W_RSI], w[W_RDX], w[W_R10], w[W_R8], w[W_R9])
                    except GuestExit as exit_:
                        return Stop(StopReason.EXIT, status=exit_.status)
                    if result is not None:
                        w[W_RAX] = result & MASK64
                    if nr in self._refresh_after:
                        vm.write_answers()
                    continue
                if port == FAULT_PORT:
                    stop = self._fault_exit()
                    if stop is not None:
                        return stop
                    continue
                if port == FLUSH_PORT:
                    self._kernel_flush_batch()
                    continue
            self._unexpected_exit(reason)

    def _run_exitless(self, server) -> None:
        """KVM_RUN in exitless mode: the runner thread makes the call while this one, the task's, serves the
        syscalls the LSTAR entry posts in the vCPU's mailbox (kvm_stubs.MAIL_*) as the guest spins on it, so that
        such a syscall costs no exit (on PVM ~40 µs each). Returns, or raises, as the KVM_RUN did.

        The serving ends when the KVM_RUN does (kvm_run's exit_reason word changes, a kick sets immediate_exit), or
        after SERVER_SPINS idle rounds: then the entry sees the server word clear and exits as usual; an entry that
        posted just before is answered at its MAIL_POSTED exit (``_exitless_exit``). After a post no server took in
        time (the host's cores are busy), the vCPU runs EXITLESS_BACKOFF without serving, and it runs so whenever the
        run's other servers hold every SpinSlots slot. Only the calls the dispatcher serves without the registers are
        served so (Dispatcher.serve_exitless); the rest, and one that needs a signal delivered or a TLB flush after
        it, go on to an exit."""
        runner, w, b, mail = self._runner, self._w, self._b, self.area.mail
        if runner is None:
            runner = self._runner = _VcpuRunner(self)
            # A thread waiting for the GIL (the signal pump, another task's) asks the spinning server for it after
            # this long, instead of CPython's 5 ms: a signal's delivery waits no longer than that.
            sys.setswitchinterval(EXITLESS_SWITCH_INTERVAL)
        self._thread = runner.ident
        if self._calm_until and time.monotonic() < self._calm_until:
            self._release_spin()
        elif self._spinning is None:
            slot = _slots().take()
            if slot is not None:
                clocks = self._wait_clocks
                if clocks is None or clocks.pid != os.getpid():      # (a fork child's copy: its parent's threads)
                    if clocks is not None:
                        clocks.close()
                    clocks = self._wait_clocks = _WaitClocks(threading.get_native_id(), runner.native_id)
                self._spinning = (slot, PinnedPair.pin(slot, runner, clocks))
        if self._spinning is None:
            runner.start()                    # no serving: the entry and the trampolines exit as without the mode
            runner.wait()
            return
        vm = self._vm
        posting = self.rewrite and len(vm.cpus) == 1 and (vm.trampolines is None or not vm.trampolines.closed)
        vm.area.set_post_entry(self.area.trampoline_post if posting else 0)
        w[1] = EXIT_SENTINEL
        mail[MAIL_SERVER] = 1
        runner.start()
        idle = 0
        pair = self._spinning[1]
        due = -1 if pair is None else pair.clocks.due      # served calls until the pair's next look
        try:
            while True:
                if mail[MAIL_STATE] == MAIL_POSTED:
                    self._serve_posted(server, mail, posting)
                    idle = 0
                    due -= 1
                    if not due:
                        due = pair.look()
                elif (w[1] + 1) & 0xFFFFFFFF > 1 or b[1] or runner.finished:
                    break
                else:
                    idle += 1
                    if idle >= SERVER_SPINS:
                        mail[MAIL_SERVER] = 0
                        if mail[MAIL_STATE] != MAIL_POSTED:
                            self._release_spin()      # the guest computes: no core of the slot's is kept
                            break
                        mail[MAIL_SERVER] = 1
        except BaseException:
            b[1] = 1                          # stop the guest's spinning (it resumes on the next run)
            signal.pthread_kill(runner.ident, SIGKICK)
            raise
        finally:
            mail[MAIL_SERVER] = 0
            if pair is not None:
                pair.clocks.due = due
            runner.wait()

    def _release_spin(self) -> None:
        """Give back the SpinSlots slot this vCPU's server holds, and the cores it was pinned to: before a syscall is
        dispatched at an exit (it may block, fork, clone or ask for its affinity), when run() returns, and when the
        server stops spinning. The slot is kept across the exits run() handles itself (a fault, a late answer)."""
        if self._spinning is not None:
            slot, pinned = self._spinning
            self._spinning = None
            if not _slots().holds(slot):
                return                        # a fork child's copy of another thread's: the parent's slot and pin
            if pinned is not None:
                pinned.unpin()
            _slots().give_back(slot)

    def _serve_posted(self, server, mail, posting: bool) -> None:
        """Answer the syscall the entry posted: its result (MAIL_DONE), a run through the usual exit instead
        (MAIL_REDO), or its result kept here for the exit that finishes it (MAIL_CHECK: a signal to deliver, a
        kick, or stale page-table entries, all of which need the registers or the flush stub). A site served for
        the first time gets what an exit would give it for a number the guest answers, else a posting trampoline
        if it can (``posting``: the VM's only vCPU; it is spinning in its entry meanwhile, not at the site)."""
        result = server.serve_exitless(mail[MAIL_NR], *mail[MAIL_ARGS:MAIL_ARGS + 6])
        if result is not None and mail[MAIL_RETURN] not in self._posts_tried:
            back = mail[MAIL_RETURN]
            self._posts_tried.add(back)
            if mail[MAIL_NR] in self._answered:        # the guest answers it: a wrapper's trampoline, or the entry
                self._vm.new_answered_site(back, mail[MAIL_NR], self.rewrite, self.invalidate_code)
            elif posting:
                self._vm.patch_post(back - 2, self.invalidate_code)
        if result is None:
            mail[MAIL_STATE] = MAIL_REDO
        elif self._flush or self._kick or server.exitless_pending():
            self._exitless_result = (result, server)
            mail[MAIL_STATE] = MAIL_CHECK
        else:
            mail[MAIL_RESULT] = result & MASK64
            mail[MAIL_STATE] = MAIL_DONE

    def _exitless_exit(self, rip: int) -> Stop | None:
        """The entry's exits in exitless mode: after spinning EXITLESS_SPINS rounds (its post may be one no server
        took: it runs as the usual exit), or to finish a served syscall (MAIL_CHECK). Checked as the entry's own
        exit is (IF, r11), and a finish only with a result kept here: a jump to either `out` is a jump into the
        entry."""
        if not self._from_syscall():
            self._mode = MODE_USER
            return self._jumped_in(self._syscall_entry)
        if rip == self._exitless_waited:
            mail = self.area.mail
            if mail[MAIL_STATE] == MAIL_POSTED:
                mail[MAIL_STATE] = MAIL_REDO
                # No server took the post in time: with more busy threads than cores, spinning costs a time slice
                # a call. Calls run at exits for a while.
                self._calm_until = time.monotonic() + EXITLESS_BACKOFF
            self._mode = MODE_RAW
            return None
        pending, self._exitless_result = self._exitless_result, None
        if pending is None:
            self._mode = MODE_USER
            return self._jumped_in(self._syscall_entry)
        result, server = pending
        self._return_from_syscall()
        try:
            result = server.finish_exitless(result)
        except GuestExit as exit_:
            return Stop(StopReason.EXIT, status=exit_.status)
        if result is not None:
            self._w[W_RAX] = result & MASK64
        return None

    def _from_syscall(self) -> bool:
        """At an `out` of the LSTAR entry: was it entered by `syscall`? `syscall` clears IF (SFMASK; PVM too), and
        CPL3 code cannot: IF set is CPL3 code that jumped into the entry past its check (an rcx after a `syscall`),
        as is an r11 that no `syscall` makes. (PVM leaves IF clear after an answer in the guest, whose popfq at CPL3
        cannot set it: a jump from there is served as the syscall it asks for.) A posting trampoline's entry
        (trampoline_post, with IF set) is one too: it names its return address in the mailbox."""
        w = self._w
        if w[W_R11] & R11_CHECKED != R11_EXPECTED:
            return False
        return not w[W_RFLAGS] & RFLAGS_IF or (self._syscall_mode is not None and w[W_RCX] != 0
                                                and self.area.mail[MAIL_FROM_TRAMPOLINE] == w[W_RCX])

    def _return_from_syscall(self) -> None:
        """Linux's view of a syscall's registers: rip is the instruction after `syscall` (rcx), rflags the caller's
        (r11); the vCPU returns there as the syscall mode says (learnt at the first one)."""
        w, vm = self._w, self._vm
        w[W_RIP] = w[W_RCX]
        w[W_RFLAGS] = w[W_R11]
        mode = self._syscall_mode
        if mode is None:
            mode = self._syscall_mode = self._learn_syscall_mode()
            if vm.answers is not None:
                vm.write_answers()
        self._mode = mode

    def _stop_runner(self) -> None:
        self._release_spin()
        clocks, self._wait_clocks = self._wait_clocks, None
        if clocks is not None:
            clocks.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.stop()
        self._thread = threading.get_ident()

    def _refused_port_read(self) -> Stop:
        """`in` from SYSCALL_PORT, the one port the I/O bitmap opens to CPL3 (any other port, and `out` wider than
        a byte, is the CPU's own #GP): the same #GP. KVM finishes the read at the next KVM_RUN (writing rax and
        moving rip on, before looking at immediate_exit): let it, then put the registers back."""
        b, regs = self._b, slice(8 * SYNC_REGS_WORD, 8 * (SYNC_REGS_WORD + len(KVM_REGS_ORDER)))
        saved = bytes(b[regs])
        b[1] = 1
        with contextlib.suppress(InterruptedError):
            fcntl.ioctl(self.vcpu, KVM_RUN, 0)
        b[1] = 0
        b[regs] = saved
        self._mode = MODE_USER
        return Stop(StopReason.FAULT, vector=VEC_GP, rip=self._w[W_RIP])

    def _interrupted(self) -> Stop:
        self._kick = False
        self._b[1] = 0
        return Stop(StopReason.INTERRUPT, rip=self._w[W_RIP])

    def _at_application(self) -> bool:
        """After an interrupted KVM_RUN: are KVM's registers the application's? Not in the upper half (CPL0
        stubs), not in the user window (the LSTAR entry, the flush trap; CPL0 on VMX/SVM), not with an
        exception or interrupt being delivered, not in a trampoline (its rsp is the scratch stack)."""
        rip = self._w[W_RIP]
        if rip >= 1 << 47 or self._in_window(rip):
            return False
        events = bytearray(64)
        try:
            fcntl.ioctl(self.vcpu, KVM_GET_VCPU_EVENTS, events, True)
        except OSError:
            pass
        else:
            if events[0] or events[3] or events[8]:    # exception injected / pending, interrupt injected
                return False
        return not self._in_trampoline(rip) and self._posting_before_jump(rip) is None

    def _posting_before_jump(self, rip: int) -> int | None:
        """The start of the posting trampoline (rewriter/trampoline.py) whose rip this is, between its read of
        the post-entry word and its jump there (rcx holds an entry's address, not the application's rcx: no
        signal frame is built there, and a window move restarts it), else None."""
        from hermipy.rewriter.trampoline import POST_JUMP, POST_LOADED, POST_SIGNATURE, POST_SIZE
        offset = (rip & 0xFFF) % POST_SIZE
        if not POST_LOADED <= offset <= POST_JUMP:
            return None
        pte = self.page_table.get(rip)
        if not pte & PTE_P:
            return None
        slot = (pte & PTE_ADDR) + (rip & 0xFFF) - offset
        buf = self.ram.buf
        if any(buf[slot + at:slot + at + len(code)] != code for at, code in POST_SIGNATURE):
            return None
        return rip - offset

    def _in_trampoline(self, rip: int) -> bool:
        """Whether ``rip`` is inside a per-site trampoline (rewriter/trampoline.py): recognised by its code,
        which starts each TRAMPOLINE_SIZE slot of a page (this also finds trampolines a fork inherited).
        (A dispatching trampoline may be interrupted anywhere: its rsp is always the application's.)"""
        from hermipy.rewriter.trampoline import TRAMPOLINE_SIZE, trampoline_code
        area = self.kernel_area
        head = trampoline_code(0, 0, area.answers_va, area.trampoline_stack_top, 0)[:13]
        pte = self.page_table.get(rip)
        if not pte & PTE_P:
            return False
        slot = (pte & PTE_ADDR) + (rip & 0xFFF) // TRAMPOLINE_SIZE * TRAMPOLINE_SIZE
        return self.ram.buf[slot:slot + len(head)] == head

    def _after_syscall(self, rcx: int) -> bool:
        """Whether the two bytes before ``rcx`` are a `syscall` (0f 05) the application can read: the LSTAR
        entry's check, for a vCPU stopped before the entry ran it."""
        site = rcx - 2
        window = self._window
        if not (0 <= site and rcx <= window or window + USER_AREA_SIZE <= site and rcx <= 1 << 47):
            return False
        page_table = self.page_table
        if any(page_table.get(va) & (PTE_P | PTE_U) != PTE_P | PTE_U for va in (site, site + 1)):
            return False
        return page_table.peek(site, 2) == b"\x0f\x05"

    def _bad_entry(self, rip: int) -> Stop | None:
        """`out SYSCALL_PORT` from the user stub page, other than the entry's own exit: its bad_entry (rcx does
        not follow a `syscall`), or an `out` of another vCPU's copy (which no `syscall` of this vCPU enters).

        CPL3 code jumped into the entry, unless this is the vCPU's own bad_entry after a genuine `syscall` whose
        site changed after it ran: at CPL0 (VMX/SVM) in any way, at CPL3 (PVM) rewritten by hermipy from another
        vCPU (``_rewrite_site``, a trampoline). Such a site runs again: hermipy's rewrites keep what it does (a
        jump with rcx after such a site is no more than a jump to the site). Otherwise the SIGSEGV of a jump to
        the copy's entry."""
        w = self._w
        if rip == self._bad_entry_return and not w[W_RFLAGS] & RFLAGS_IF:
            mode = self._syscall_mode
            if mode is None:
                mode = self._syscall_mode = self._learn_syscall_mode()
            site = w[W_RCX] - 2
            trampolines = self._vm.trampolines
            if mode == MODE_SYSCALL or site in self._trapped or trampolines is not None and site in trampolines.tried:
                w[W_RIP] = site
                w[W_RFLAGS] = (w[W_R11] & USER_RFLAGS) | RFLAGS_FIXED | RFLAGS_IF
                self._mode = mode
                return None
        self._mode = MODE_USER
        top = self._window + (USER_STUB_VA - USER_AREA)       # vCPU 0's block; the others below it
        return self._jumped_in(rip - (rip - top) % VCPU_STRIDE + (self._syscall_entry - self.area.base))

    def _jumped_in(self, target: int) -> Stop:
        """What Linux gives CPL3 code that jumps to ``target`` in hermipy's entry area, where nothing of the
        application's is mapped: the page fault of fetching an instruction there (SIGSEGV, SEGV_MAPERR, si_addr
        and rip ``target``, error code 0x14). The other registers are what the jump left (the stub changes none
        before it gets here), but for the status flags (CF, ZF...): the entry's check has compared."""
        self._w[W_RIP] = target
        return Stop(StopReason.FAULT, vector=VEC_PF, address=target, rip=target, error=PF_USER_FETCH)

    def _learn_syscall_mode(self) -> int:
        """Does `syscall` enter CPL0 here (VMX/SVM) or stay at CPL3 (PVM)? Asked once, at the first syscall (one
        with IF clear: no jump into the entry teaches it, see ``run``)."""
        sregs = fcntl.ioctl(self.vcpu, KVM_GET_SREGS, bytes(312))
        cs_selector, cs_dpl = struct.unpack_from("<H", sregs, 12)[0], sregs[16]
        ss_dpl = sregs[5 * 24 + 16]
        global _learnt_syscall_mode
        _learnt_syscall_mode = MODE_USER if cs_selector & 3 == 3 or (cs_dpl == 3 and ss_dpl == 3) else MODE_SYSCALL
        self._vm.syscall_mode = _learnt_syscall_mode
        return _learnt_syscall_mode

    def _fault_exit(self) -> Stop | None:
        """An exception stub reported: rebuild the application's registers from its stack frame."""
        w, area = self._w, self.area
        frame = area.stack_offset(w[W_RSP])
        cr2, rax, vector, error, rip, cs, rflags, rsp, _ss = struct.unpack_from("<9Q", self.ram.buf, frame)
        self._mode = MODE_KERNEL
        if cs & 3 != 3 and rip in self.kernel_area.iretq_sites:
            # iretq refused the frame the kernel asked for (a non-canonical rip from rt_sigreturn, say):
            # the application faults where it would have resumed, as Linux's bad-iret fixup makes it.
            rip, _cs, rflags, rsp, _ss = struct.unpack_from("<5Q", self.ram.buf, area.stack_offset(area.iret_frame_va))
            w[W_RAX], w[W_RIP], w[W_RFLAGS], w[W_RSP] = rax, rip, rflags, rsp
            return Stop(StopReason.FAULT, vector=vector, rip=rip)
        if cs & 3 != 3 and rip == self._syscall_entry and vector == VEC_PF:
            # VMX/SVM: the LSTAR entry's check (at CPL0, on IST1) could not read the code before a genuine
            # `syscall`: another thread unmapped it meanwhile. The site runs again, and faults as a return there
            # would have.
            w[W_RAX], w[W_RSP], w[W_RIP] = rax, rsp, w[W_RCX] - 2
            w[W_RFLAGS] = (w[W_R11] & USER_RFLAGS) | RFLAGS_FIXED | RFLAGS_IF
            return None
        if cs & 3 != 3:
            raise OSError(f"kvm: exception {vector} (error {error:#x}) in hermipy's guest kernel at "
                          f"{rip:#x}, cr2={cr2:#x}")
        w[W_RAX], w[W_RIP], w[W_RFLAGS], w[W_RSP] = rax, rip, rflags, rsp
        if vector == VEC_UD and rip == self._flush_trap and self._flush_trapping:
            # From CPL3 into CPL0 for a flush: resume the application through the kernel flush stub.
            self._flush_trapping = False
            w[W_RIP], w[W_RFLAGS] = self._flush_resume_rip, self._flush_resume_rflags
            self._flush_cr3 = True
            return None
        if self._in_window(rip) and vector != VEC_DB:
            # CPL3 code in hermipy's entry area faulted: it jumped there. The entry's check could not read [rcx - 2]
            # (rip: the entry), or it jumped to the flush trap, or into the middle of the stub, or to a page of data.
            return self._jumped_in(rip)
        if vector == VEC_GP and self.page_table.peek(rip, 3) in (MONITOR, MWAIT):
            vector = VEC_UD                   # PVM's #GP; a CPU's is #UD at CPL3 (Linux's SIGILL)
        return Stop(StopReason.FAULT, vector=vector, address=cr2 if vector == VEC_PF else 0, rip=rip, error=error)

    def _enter(self) -> None:
        """Make KVM's registers resume the application from the view (see the MODE_* constants)."""
        w, mode, area = self._w, self._mode, self.area
        if mode == MODE_RAW:
            return
        kernel_flush = self._flush_cr3
        self._flush_cr3 = False
        if self._flush:
            self._flush = False
            if mode == MODE_USER:
                self._trap_for_flush()
                return
            kernel_flush = True
        if mode == MODE_USER:
            return
        rip, rflags = w[W_RIP], w[W_RFLAGS]
        if (mode == MODE_SYSCALL and not kernel_flush and rip == w[W_RCX] and rflags == w[W_R11]
                and _canonical(rip)):
            w[W_RIP] = self.kernel_area.sysret_stub
            w[W_RFLAGS] = RFLAGS_FIXED
            self._mode = MODE_RAW
            return
        frame = area.iret_frame_va
        struct.pack_into("<5Q", self.ram.buf, area.stack_offset(frame), rip, SEL_USER_CS | 3,
                         (rflags & USER_RFLAGS) | RFLAGS_FIXED, w[W_RSP], SEL_USER_DS | 3)
        w[W_RSP] = frame
        w[W_RFLAGS] = RFLAGS_FIXED
        if kernel_flush:
            self._kernel_flush_batch()     # the stale entries, then CR3
            w[W_RIP] = self.kernel_area.flush_iret_stub
        else:
            w[W_RIP] = self.kernel_area.iret_stub
        self._mode = MODE_RAW

    def _kernel_flush_batch(self) -> None:
        """The next batch for the kernel flush stub: its list, count and whether more will follow."""
        vm, area = self._vm, self.area
        entries = vm.take_stale(self)
        count = area.write_flush_list(entries) if entries else 0
        area.set_flush_slots(count, entries is not None and bool(vm.stale))

    def _trap_for_flush(self) -> None:
        """At CPL3 with entries to rewrite: enter CPL0 through the user stub page's `ud2`; its fault exit
        resumes the application through the kernel flush stub (the entries, then a CR3 reload)."""
        w = self._w
        self._flush_resume_rip, self._flush_resume_rflags = w[W_RIP], w[W_RFLAGS]
        self._flush_trapping = True
        w[W_RIP] = self._flush_trap

    def _unexpected_exit(self, reason: int) -> None:
        w = self._w
        detail = ""
        if reason == KVM_EXIT_IO:
            detail = f" port {(w[4] >> 16) & 0xFFFF:#x}"
        elif reason == KVM_EXIT_MMIO:
            detail = f" at physical {w[4]:#x} (outside guest RAM)"
        elif reason == KVM_EXIT_INTERNAL_ERROR:
            detail = f" suberror {w[4] & 0xFFFFFFFF}"
        elif reason == KVM_EXIT_FAIL_ENTRY:
            detail = f" hardware reason {w[4]:#x}"
        raise OSError(f"kvm: unexpected exit {EXIT_NAMES.get(reason, reason)}{detail}, rip={w[W_RIP]:#x}")

    # -- registers -------------------------------------------------------------------------------
    def get_reg(self, name: str) -> int:
        index = W.get(name)
        if index is not None:
            return self._w[index]
        if name in FPU_FIELDS:
            offset, fmt = FPU_FIELDS[name]
            return struct.unpack_from(fmt, self._get_xsave(), offset)[0]
        if name in ("fs_base", "gs_base"):
            return self._fs_base if name == "fs_base" else self._gs_base
        raise KeyError(f"kvm backend: no register {name!r}")

    def set_reg(self, name: str, value: int) -> None:
        index = W.get(name)
        if index is not None:
            self._w[index] = value & MASK64
        elif name in FPU_FIELDS:
            offset, fmt = FPU_FIELDS[name]
            image = bytearray(self.read_fpu_state())
            struct.pack_into(fmt, image, offset, value)
            self.write_fpu_state(bytes(image))
        elif name in ("fs_base", "gs_base"):
            (self.set_fs_base if name == "fs_base" else self.set_gs_base)(value)
        else:
            raise KeyError(f"kvm backend: no register {name!r}")

    def get_regs(self) -> list[int]:
        w = self._w
        return [w[i] for i in _GPR_WORDS]

    def set_regs(self, values: list[int]) -> None:
        w = self._w
        for i, v in zip(_GPR_WORDS, values):
            w[i] = v & MASK64

    def get_fs_base(self) -> int:
        return self._fs_base

    def set_fs_base(self, value: int) -> None:
        self._set_msrs({MSR_FS_BASE: value})
        self._fs_base = value & MASK64

    def get_gs_base(self) -> int:
        return self._gs_base

    def set_gs_base(self, value: int) -> None:
        self._set_msrs({MSR_GS_BASE: value})
        self._gs_base = value & MASK64

    def read_fpu_state(self) -> bytes:
        """The FXSAVE image: the legacy region of KVM_GET_XSAVE (KVM_GET_FPU reads MXCSR as 0 on PVM)."""
        return bytes(self._get_xsave()[:512])

    def write_fpu_state(self, data: bytes) -> None:
        xsave = self._get_xsave()
        xsave[0:28] = data[0:28]              # FCW .. MXCSR; MXCSR_MASK stays the CPU's
        xsave[32:416] = data[32:416]          # ST0-7, XMM0-15
        bv = struct.unpack_from("<Q", xsave, XSTATE_BV_OFFSET)[0]
        struct.pack_into("<Q", xsave, XSTATE_BV_OFFSET, bv | XFEATURE_X87 | XFEATURE_SSE)
        fcntl.ioctl(self.vcpu, KVM_SET_XSAVE, xsave, True)

    def _get_xsave(self) -> bytearray:
        """struct kvm_xsave: the guest's XSAVE area, standard format (Intel SDM vol. 1, 13.4)."""
        xsave = bytearray(4096)
        fcntl.ioctl(self.vcpu, KVM_GET_XSAVE, xsave, True)
        return xsave

    # -- memory coherence ------------------------------------------------------------------------
    def flush_tlb(self) -> None:
        """Drop cached translations before the application runs again, on every vCPU of the VM (see
        ``KvmVm._track_page_table``): a TLB shootdown. Another vCPU running guest code is stopped (kvm_run's
        immediate_exit and SIGKICK to its thread) and this returns once it has left the application for the
        kernel flush stub or for hermipy, so a frame the caller freed is not reused while a stale translation to it
        can still be used (Linux's flush_tlb_mm_range waits for its IPIs the same way). In a fork child, before
        its own VM, the parent's other vCPUs are copies whose threads are not there: nothing to wait for."""
        vm = self._vm
        if vm.pid != os.getpid():
            return
        me = threading.get_ident()
        running = []
        for cpu in vm.cpus:
            cpu._flush = True
            if cpu._in_guest and cpu._thread != me:
                running.append(cpu)
        if running:
            _shoot_down(running)

    def invalidate_code(self, start: int, end: int) -> None:
        """Nothing to do: the CPU executes guest memory itself, no translation cache lives in hermipy."""

    def cpuid_features(self) -> tuple[int, int]:
        """AT_HWCAP is CPUID.1:EDX (arch/x86/include/asm/elf.h ELF_HWCAP), as the guest's CPUID reports it."""
        return self.guest_cpuid(1)[3], 0

    def guest_cpuid(self, leaf: int, subleaf: int = 0) -> tuple[int, int, int, int]:
        """(eax, ebx, ecx, edx) of CPUID executed in the guest (a PVM host may not report what
        KVM_GET_SUPPORTED_CPUID says). Before the first run only; later, KVM's table answers."""
        if self._mode != MODE_KERNEL or self._syscall_mode is not None:
            entry = self._vm.cpuid_entry(leaf, subleaf)
            return entry if entry is not None else (0, 0, 0, 0)
        w = self._w
        saved = [w[i] for i in _GPR_WORDS]
        w[W_RAX], w[W["rcx"]] = leaf, subleaf
        w[W_RIP], w[W_RSP], w[W_RFLAGS] = self.kernel_area.cpuid_probe, self.area.rsp0, RFLAGS_FIXED
        w[RUN_DIRTY_WORD] = KVM_SYNC_X86_REGS
        while True:
            try:
                fcntl.ioctl(self.vcpu, KVM_RUN, 0)
                break
            except (InterruptedError, BlockingIOError):
                # A kick (an execve's new image probes CPUID while a signal arrives: it is taken later, _kick
                # stays set) or a host short of something: go on where the probe stopped. (An EINTR here made
                # the execve fail past its point of no return: SIGSEGV, 1 run in ~75 of bash's kill -TSTP %1.)
                self._b[1] = 0
        if w[1] & 0xFFFFFFFF != KVM_EXIT_IO or (w[4] >> 16) & 0xFFFF != PROBE_PORT:
            self._unexpected_exit(w[1] & 0xFFFFFFFF)
        result = tuple(w[W[r]] & 0xFFFFFFFF for r in ("rax", "rbx", "rcx", "rdx"))
        for i, value in zip(_GPR_WORDS, saved):
            w[i] = value
        return result


class _VcpuRunner:
    """The host thread that makes a vCPU's KVM_RUN calls in exitless mode, while the task's own thread serves
    the syscalls the guest posts (KvmCpu._run_exitless). One thread for the vCPU's life: KVM ties a vCPU to the
    thread of its KVM_RUN, and a change of thread costs a synchronize_rcu."""

    def __init__(self, cpu: KvmCpu):
        self._cpu = cpu
        self._go = threading.Lock()                 # released: make one KVM_RUN
        self._go.acquire()
        self._entered = threading.Lock()            # released: about to make it (the GIL is given up in it)
        self._entered.acquire()
        self._done = threading.Lock()               # released: the KVM_RUN returned
        self._done.acquire()
        self.finished = False                       # the KVM_RUN returned (read without a lock by the server)
        self.affinity: set[int] | None = None       # the cores to run on, set by the server, taken by this thread
        self._applied: set[int] | None = None       # itself before its next KVM_RUN (see PinnedPair)
        self._error: OSError | None = None
        self._quit = False
        self._pid = os.getpid()
        thread = threading.Thread(target=self._main, args=(cpu.vcpu,), name="hermipy-vcpu", daemon=True)
        thread.start()
        self.ident, self.native_id = thread.ident, thread.native_id

    def _main(self, vcpu: int) -> None:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [SIGKICK])     # a kick's EINTR
        ioctl, go, entered, done, cpu = fcntl.ioctl, self._go, self._entered, self._done, self._cpu
        while True:
            go.acquire()
            if self._quit:
                return
            if self.affinity is not self._applied:
                self._applied = self.affinity
                try:
                    os.sched_setaffinity(0, self._applied)
                except OSError:
                    pass
            entered.release()
            try:
                ioctl(vcpu, KVM_RUN, 0)
                self._error = None
            except OSError as err:
                self._error = err
            cpu._in_guest = False
            self.finished = True
            done.release()

    def start(self) -> None:
        """Make one KVM_RUN; returns once the runner is about to, so that a server spinning with the GIL does not
        keep it from starting."""
        self.finished = False
        self._go.release()
        self._entered.acquire()

    def wait(self) -> None:
        """Until the KVM_RUN returns; raises its error (InterruptedError, BlockingIOError)."""
        self._done.acquire()
        error, self._error = self._error, None
        if error is not None:
            raise error

    def stop(self) -> None:
        if self._pid != os.getpid():
            return                                  # a fork child's copy: the thread is its parent's
        self._quit = True
        self._go.release()


SHOOTDOWN_RETRY = 0.001       # re-signal a vCPU that has not left the application after this long (s)
SHOOTDOWN_LIMIT = 30.0        # give up waiting after this long (a vCPU stuck in a stub: reported); a loaded
                              # host may not schedule a vCPU's thread for a second or more


def _stop_until(pending, cpus, what: str) -> None:
    """Stop each of ``cpus`` running guest code (immediate_exit, SIGKICK) until ``pending(cpu)`` is false for it or
    it is out of the guest (for ``what``)."""
    deadline = time.monotonic() + SHOOTDOWN_LIMIT
    while True:
        cpus = [cpu for cpu in cpus if cpu._in_guest and pending(cpu)]
        if not cpus:
            return
        if time.monotonic() > deadline:
            sys.stderr.write(f"hermipy: warning: kvm: {what}: {len(cpus)} vCPU(s) did not stop in "
                             f"{SHOOTDOWN_LIMIT} s\n")
            return
        for cpu in cpus:
            b = cpu._b
            try:
                if b is not None:
                    b[1] = 1
                signal.pthread_kill(cpu._thread, SIGKICK)
            except (ValueError, TypeError, ProcessLookupError, OSError):
                pass                          # closed or ended meanwhile
        time.sleep(SHOOTDOWN_RETRY)


def _shoot_down(cpus) -> None:
    """Make each of ``cpus`` leave KVM_RUN and take its pending flush before this returns."""
    _stop_until(lambda cpu: cpu._flush, cpus, "TLB shootdown")
