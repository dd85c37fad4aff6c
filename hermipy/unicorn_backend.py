"""Unicorn CPU backend, driven through raw ctypes calls into libunicorn.

The Python binding costs several microseconds per register call and ~24 ms to import; the raw C API
costs ~0.7 µs per call. The guest runs with real x86-64 page tables (NX on data pages), so stores do
not take QEMU's self-modifying-code slow path; syscalls are serviced inside the SYSCALL instruction
hook (no stop/restart); exceptions arrive through an interrupt hook and stop the run. Another thread stops an
engine (a signal to deliver, another engine's turn) through a block hook, where a block starts (``stop_soon``).

The guest runs at CPL3, as on KVM: a supervisor-only system page holds a GDT like Linux's and a TSS (with an
I/O bitmap opening SYSCALL_PORT alone, as KVM's), and each new engine is taken down by an `iretq`
(``_enter_user_mode``), so privileged instructions are QEMU's #GP and supervisor pages are out of reach. A site that ``hermipy rewrite``
turned into ``out SYSCALL_PORT, al`` (the KVM backend's direct kernel entry) is a syscall here too, through the
OUT instruction hook; ``out`` to any other port, and ``in`` from any, is a #GP, as it is for a Linux process.
Unlike `syscall`, `out` does not end QEMU's translation block: after the hook the block's next instructions run
before anything looks at rip, so a hook that moves rip (a restart, a signal frame, sigreturn) or stops the engine
(exit, a fault) would see them run first (a restarted wait4 took its own number as a pid). A second OUT hook, in
machine code, leaves the block right after the `out` when the first asks it to (``_leave_after_out``).
Where QEMU reports an exception otherwise than a CPU under Linux would (`int n` by its vector, icebp and rdpmc
as #UD, sysenter run as on Intel), the interrupt hook and ``_undefined_opcode`` report the CPU's.

Guest threads: one engine per thread over the same RAM and page table (``spawn``). Engines of one address
space run one at a time (``_Engines``): QEMU's TCG only makes `lock`-prefixed instructions atomic in its
parallel mode, which Unicorn does not use, so two engines running at once could break a guest's atomics. An
engine gives up its turn at every syscall and fault; a thread that waits more than ``TIME_SLICE`` for its turn
stops the running engine (so a spinning thread cannot starve the others). The slice is long: preemption is kept
for threads that spin. (It was made long when a stop from another thread could run an instruction twice, see
``stop_soon``: a mutex-protected counter off by one and lost futex wakes in about 1 run of 3 with 5 ms slices;
with stops at a block's start, threads.c's mutex section gave 0 wrong runs of 8 with 5 ms slices, 2 before.)
Page-table and code changes reach every engine: each one applies what it missed before it runs again, and the
thread that made the change waits for the running engine to give up its turn (a TLB shootdown), so no engine
runs on with a stale translation of a page that was unmapped or dropped (a frame freed then would be another
page's by the time it is written).

A syscall costs one hook call into Python (~1.7 µs). Those whose answer the guest may read (getpid & co.,
``answer_in_guest``) need none once their site is rewritten: at a wrapper's first trap its ``syscall``
becomes a jump to a per-site trampoline that reads the answer page (``rewriter/trampoline.py``; the page and
the trampolines' scratch stack sit in the kernel half, user-accessible, where Linux keeps its vsyscall page and no
process can map anything: ``ANSWERS_VA`` here, reserved as ``[hermipy-answers]``), and the translated code of
the site is dropped. Any other site keeps trapping.
"""
import ctypes
import errno
import importlib.util
import mmap
import os
import platform
import struct
import threading
import time

from hermipy.cpu import GPR_NAMES, INT_INSN_LEN, Cpu, GuestExit, Stop, StopReason, VEC_DB, VEC_GP, VEC_PF, VEC_UD
from hermipy.errors import HermipyError
from hermipy import kvm_stubs
from hermipy.kvm_stubs import (GDT_ENTRIES, GDT_SIZE, KERNEL_BASE, SEL_TSS, SEL_USER_CS, SEL_USER_DS, SYSCALL_PORT,
                               TSS_LIMIT, USER_GATES, store_answers, tss_with_io_bitmap)
from hermipy.syscalls.memory import PTE_NX, PTE_P, PTE_U, PTE_W

# unicorn.h / x86.h constants (unicorn 2.1).
UC_ARCH_X86, UC_MODE_64 = 4, 8
UC_HOOK_INTR, UC_HOOK_INSN, UC_HOOK_BLOCK = 1, 2, 8
UC_X86_INS_SYSCALL, UC_X86_INS_IN, UC_X86_INS_OUT, UC_X86_INS_SYSENTER = 699, 218, 500, 700
UC_ERR_INSN_INVALID = 10
UC_CTL_IO_WRITE = 1
UC_CTL_CPU_MODEL, UC_CTL_TB_REMOVE_CACHE, UC_CTL_TLB_FLUSH = 7, 9, 11
REG = {"rax": 35, "rbx": 37, "rcx": 38, "rdx": 40, "rsi": 43, "rdi": 39, "rbp": 36, "rsp": 44,
       "r8": 106, "r9": 107, "r10": 108, "r11": 109, "r12": 110, "r13": 111, "r14": 112, "r15": 113,
       "rip": 41, "rflags": 253, "cr0": 50, "cr2": 52, "cr3": 53, "cr4": 54,
       "fs_base": 250, "gs_base": 251, "msr": 248, "mxcsr": 249, "fpcw": 246, "fpsw": 31, "fptag": 247,
       "cs": 11, "ss": 49}
UC_X86_REG_GDTR, UC_X86_REG_TR = 243, 245
XMM0 = 122        # UC_X86_REG_XMM0 .. XMM15 are consecutive
ST0 = 82         # UC_X86_REG_FP0 .. FP7
MSR_EFER = 0xC0000080
EFER_SCE, EFER_LME, EFER_LMA, EFER_NXE = 1, 1 << 8, 1 << 10, 1 << 11
CR0_PE, CR0_MP, CR0_ET, CR0_NE, CR0_WP, CR0_PG = 1, 2, 0x10, 0x20, 1 << 16, 1 << 31
CR4_PAE, CR4_OSFXSR, CR4_OSXMMEXCPT = 1 << 5, 1 << 9, 1 << 10
UC_CPU_X86_WESTMERE = 16     # SSE4.2, POPCNT: what TCG emulates fully (no AVX)
SYSCALL_INSN_LEN = 2
_STOPPED, _MOVED = 1, 2                 # why a syscall hook does not go on after the instruction (_serve_syscall)
MASK64 = (1 << 64) - 1
_RIP_INDEX = GPR_NAMES.index("rip")
_PROBE_ADDR = 0x1000
_CPUID1_CODE = b"\xb8\x01\x00\x00\x00\x0f\xa2"      # mov eax, 1; cpuid
# xor ecx, ecx; div ecx; int 0x40; mov ebx, 0x1234; mov ds, ebx; mov edx, 0x5678; mov ds, edx
_CONTEXT_PROBE_CODE = b"\x31\xc9\xf7\xf1\xcd\x40\xbb\x34\x12\x00\x00\x8e\xdb\xba\x78\x56\x00\x00\x8e\xda"
ICEBP, RDPMC = b"\xf1", b"\x0f\x33"

# The system page (Unicorn's share of what kvm_stubs keeps in the upper half): supervisor-only, so the guest,
# at CPL3, can neither read nor change it. A GDT as Linux's (user CS 0x33, SS 0x2b), a TSS whose I/O bitmap
# opens SYSCALL_PORT alone, and the `iretq` (with its frame) that takes a new engine down to CPL3.
SYSTEM_VA = KERNEL_BASE
# The answer page and the trampolines' scratch page: user pages in the kernel half (Unicorn's CPU reaches them at
# CPL3 as a CPU reaches Linux's vsyscall page at 0xffffffffff600000, right above), where no guest mapping can
# ever be asked for. (KVM cannot: on PVM the kernel half is out of CPL3's reach; see kvm_stubs.) Page numbers
# ending 0xf2, 0xf3 as the lower-half ones before them: QEMU's TLB is indexed by the low bits of the page number, and
# 0xfe, 0xff made a static binary's getppid loop ~60% slower (its own pages there evicted them).
ANSWERS_VA = 0xFFFF_FFFF_FF5F_2000
SCRATCH_VA = ANSWERS_VA + 0x1000
TRAMPOLINE_STACK_TOP = SCRATCH_VA + (kvm_stubs.TRAMPOLINE_STACK_TOP - kvm_stubs.SCRATCH_VA)
_SYSTEM_TSS, _SYSTEM_IRETQ, _SYSTEM_FRAME = 0x100, 0x200, 0x300
DESC_P, DESC_TSS_AVAILABLE = 1 << 15, 9 << 8     # QEMU's segment-cache flags for TR (check_io wants type 9)

TIME_SLICE = 1.0            # seconds a thread waits for its engine's turn before it stops the running one
TRAMPOLINE_STEP = 32        # instructions run to leave a trampoline before a kick is taken (it uses 8)
# The answer page is computed and written as one step, by a task after a call that changes the answers or by
# the signal pump when the parent exits (host_signals.after_reparent): a step computed earlier never lands last.
_answers_lock = threading.Lock()


def _new_answers_lock() -> None:
    global _answers_lock
    _answers_lock = threading.Lock()        # the fork child's copy may be held by a thread that is not there


os.register_at_fork(after_in_child=_new_answers_lock)

_pid = os.getpid()            # this process's, kept across fork: the shared turn compares it at every syscall


def _renew_pid() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_renew_pid)

_u64 = ctypes.c_uint64
_SYSCALL_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
_INTR_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p)
_OUT_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint32, ctypes.c_void_p)
_IN_CB = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_void_p)
_BLOCK_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_void_p)

# The block hook behind stop_soon, in machine code: a ctypes callback enters Python (~1 µs), and it runs at every
# translation block. uc_hook_cb_block(uc, address, size, user_data) with user_data the engine's stop flag (a byte):
_STOP_AT_BLOCK_CODE = (b"\x80\x39\x00"         # cmp byte [rcx], 0
                       b"\x75\x01"              # jne .stop
                       b"\xc3"                  # ret
                       b"\xc6\x01\x00"          # .stop: mov byte [rcx], 0
                       b"\x48\xb8%b"            # mov rax, uc_emu_stop
                       b"\xff\xe0")             # jmp rax (rdi is still the engine)
_stop_at_block_lock = threading.Lock()
_stop_at_block: int | None = None       # the hook's address, one for all engines
_stop_at_block_callback = None          # elsewhere than on x86-64: the Python callback, kept alive

# The OUT hook that ends the translation block after an `out` whose syscall hook asked for it, in machine code:
# uc_cb_insn_out_t(uc, port, size, value, user_data) with user_data the engine's _Leave. It runs after the Python
# OUT hook (hooks run in the order they were added) and, when the flag is set, clears it and leaves through
# QEMU's cpu_loop_exit_noexc(cpu), as a helper raising an exception does: a longjmp back to cpu_exec, over C
# frames only (the Python hook has returned), with env as the hook left it (rip included: nothing restores it).
_LEAVE_AFTER_OUT_CODE = (b"\x41\x80\x38\x00"    # cmp byte [r8], 0
                         b"\x75\x01"              # jne .leave
                         b"\xc3"                  # ret
                         b"\x41\xc6\x00\x00"      # .leave: mov byte [r8], 0
                         b"\x49\x8b\x78\x08"      # mov rdi, [r8 + 8]      (the engine's CPUState)
                         b"\x48\xb8%b"            # mov rax, cpu_loop_exit_noexc
                         b"\xff\xe0")             # jmp rax
_LOOP_EXIT_SYMBOL = "cpu_loop_exit_noexc_x86_64"     # exported by libunicorn (QEMU's x86-64 target)
_leave_after_out: int | None = None     # the hook's address (0: not available on this host or libunicorn)


class _Leave(ctypes.Structure):
    """The leave hook's user_data: its flag, and the engine's QEMU CPUState."""
    _fields_ = [("flag", ctypes.c_uint8), ("cpu", ctypes.c_void_p)]


def _leave_after_out_hook(lib: ctypes.CDLL) -> int:
    """The address of the hook described above, or 0 where it cannot be made (a host other than x86-64: the
    longjmp must not cross a Python callback's frames; a libunicorn without the symbol)."""
    global _leave_after_out
    with _stop_at_block_lock:
        if _leave_after_out is None:
            _leave_after_out = 0
            if platform.machine() in ("x86_64", "AMD64"):
                try:
                    loop_exit = ctypes.cast(getattr(lib, _LOOP_EXIT_SYMBOL), ctypes.c_void_p).value
                except AttributeError:
                    loop_exit = None
                if loop_exit:
                    _leave_after_out = _executable(_LEAVE_AFTER_OUT_CODE % struct.pack("<Q", loop_exit))
        return _leave_after_out


def _stop_at_block_hook(lib: ctypes.CDLL) -> int:
    """The address of the block hook that calls uc_emu_stop once when its engine's stop flag is set, and clears
    the flag; machine code on an x86-64 host, a Python callback elsewhere."""
    global _stop_at_block, _stop_at_block_callback
    with _stop_at_block_lock:
        if _stop_at_block is None:
            stop_address = ctypes.cast(lib.uc_emu_stop, ctypes.c_void_p).value
            if platform.machine() in ("x86_64", "AMD64"):
                _stop_at_block = _executable(_STOP_AT_BLOCK_CODE % struct.pack("<Q", stop_address))
            else:
                def stop_at_block(uc, _address, _size, flag_address):
                    flag = ctypes.c_uint8.from_address(flag_address)
                    if flag.value:
                        flag.value = 0
                        lib.uc_emu_stop(uc)
                _stop_at_block_callback = _BLOCK_CB(stop_at_block)
                _stop_at_block = ctypes.cast(_stop_at_block_callback, ctypes.c_void_p).value
        return _stop_at_block


def _executable(code: bytes) -> int:
    """``code`` copied to a page of its own, then made read-only and executable; returns its address."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    page = libc.mmap(None, mmap.PAGESIZE, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                     -1, 0)
    if page in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), "mmap for unicorn's stop hook failed")
    ctypes.memmove(page, code, len(code))
    if libc.mprotect(page, mmap.PAGESIZE, mmap.PROT_READ | mmap.PROT_EXEC):
        raise OSError(ctypes.get_errno(), "mprotect for unicorn's stop hook failed")
    return page


class _Msr(ctypes.Structure):
    _fields_ = [("rid", ctypes.c_uint32), ("value", ctypes.c_uint64)]


class _Mmr(ctypes.Structure):
    """uc_x86_mmr: a descriptor-table or task register."""
    _fields_ = [("selector", ctypes.c_uint16), ("base", ctypes.c_uint64), ("limit", ctypes.c_uint32),
                ("flags", ctypes.c_uint32)]


def _system_page(page_table) -> None:
    """Map the system page into ``page_table`` (once per address space: threads and fork children find it)."""
    if page_table.get(SYSTEM_VA) & PTE_P:
        return
    frame = page_table.ram.alloc()
    page = bytearray(0x1000)
    for selector, descriptor in GDT_ENTRIES.items():
        struct.pack_into("<Q", page, selector, descriptor)
    page[_SYSTEM_TSS:_SYSTEM_TSS + TSS_LIMIT + 1] = tss_with_io_bitmap(0)
    page[_SYSTEM_IRETQ:_SYSTEM_IRETQ + 2] = b"\x48\xcf"                      # iretq
    struct.pack_into("<5Q", page, _SYSTEM_FRAME, 0, SEL_USER_CS | 3, 0x2, 0, SEL_USER_DS | 3)
    page_table.ram.buf[frame:frame + 0x1000] = bytes(page)
    page_table.set(SYSTEM_VA, frame | PTE_P)       # read-only, supervisor; executable for the iretq


_libunicorn: ctypes.CDLL | None = None
PR_SET_THP_DISABLE = 41                     # linux/prctl.h


def _without_huge_pages() -> None:
    """No transparent huge pages in a process that runs a guest on Unicorn (prctl PR_SET_THP_DISABLE; its forks
    inherit it): QEMU madvises an engine's code buffer MADV_HUGEPAGE, so the first translation took a 2 MiB page
    where a run's code fills ~0.5 MiB of 4 KiB ones: 1.5 MiB of every instance (a sleeping one: 10.8 -> 9.3 MiB),
    for 0-3% of CPU-bound speed (busybox sort, pybench, cpu_mixed; the iTLB's share)."""
    from hermipy.syscalls.host import host_call
    host_call("prctl", PR_SET_THP_DISABLE, 1, 0, 0, 0)


def _load_libunicorn() -> ctypes.CDLL:
    """libunicorn from the installed `unicorn` wheel, without importing its Python binding; loaded once per
    process (every engine, a thread's or a fork child's, shares it: a fresh lookup and prototype setup cost
    ~0.4 ms each, the first dlopen ~8 ms)."""
    global _libunicorn
    if _libunicorn is None:
        _libunicorn = _open_libunicorn()
    return _libunicorn


def _open_libunicorn() -> ctypes.CDLL:
    spec = importlib.util.find_spec("unicorn")
    if spec is None or spec.origin is None:
        raise OSError("the 'unicorn' package is not installed (pip install unicorn)")
    lib = ctypes.CDLL(os.path.join(os.path.dirname(spec.origin), "lib", "libunicorn.so.2"))
    vp, sz = ctypes.c_void_p, ctypes.c_size_t
    lib.uc_open.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(vp)]
    lib.uc_mem_map_ptr.argtypes = [vp, _u64, sz, ctypes.c_uint32, vp]
    lib.uc_emu_start.argtypes = [vp, _u64, _u64, _u64, sz]
    lib.uc_emu_stop.argtypes = [vp]
    lib.uc_reg_read.argtypes = [vp, ctypes.c_int, vp]
    lib.uc_reg_write.argtypes = [vp, ctypes.c_int, vp]
    lib.uc_reg_read_batch.argtypes = [vp, vp, vp, ctypes.c_int]
    lib.uc_reg_write_batch.argtypes = [vp, vp, vp, ctypes.c_int]
    lib.uc_hook_add.argtypes = [vp, ctypes.POINTER(sz), ctypes.c_int, vp, vp, _u64, _u64, ctypes.c_int]
    lib.uc_context_size.argtypes = [vp]
    lib.uc_context_size.restype = sz
    lib.uc_context_alloc.argtypes = [vp, ctypes.POINTER(vp)]
    lib.uc_context_save.argtypes = [vp, vp]
    lib.uc_context_restore.argtypes = [vp, vp]
    lib.uc_strerror.restype = ctypes.c_char_p
    lib.uc_close.argtypes = [vp]
    lib.uc_mem_map.argtypes = [vp, _u64, sz, ctypes.c_uint32]
    lib.uc_mem_write.argtypes = [vp, _u64, ctypes.c_char_p, sz]
    lib.uc_ctl.restype = ctypes.c_int
    return lib


# QEMU's env->regs[] order (target/i386/cpu.h: R_EAX, R_ECX, R_EDX, R_EBX, R_ESP, R_EBP, R_ESI, R_EDI, R8-R15),
# followed by env->eip.
ENV_REG_ORDER = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi") + tuple(f"r{i}" for i in range(8, 16))
ENV_RAX, ENV_RDX, ENV_RSI, ENV_RDI, ENV_R8, ENV_R9, ENV_R10, ENV_EIP = 0, 2, 6, 7, 8, 9, 10, 16
_env_path: tuple[int, int] | None = None      # (offset of uc->cpu in the engine, of cpu->env_ptr in the CPU)


def _env_registers(lib: ctypes.CDLL, uch: ctypes.c_void_p) -> memoryview | None:
    """The engine's env->regs[16] and eip as 17 uint64s in place, or None (then the register API serves).

    In the SYSCALL hook uc_reg_read/uc_reg_write of these registers only read and write env->regs and eip, each
    ctypes call ~0.5 µs; a memoryview of them costs nothing. Where env lies is found once per process, on a fresh
    engine: its 16 registers are set to marks, and a word of the engine that points at an object holding a pointer
    to the marks (uc->cpu, cpu->env_ptr) is looked for through /proc/self/mem, which reads any address safely.
    Every engine checks the marks before trusting the path."""
    global _env_path
    marks = [0x4845524D49505900 + i for i in range(16)]
    value, saved = _u64(), []
    for name, mark in zip(ENV_REG_ORDER, marks):
        lib.uc_reg_read(uch, REG[name], ctypes.byref(value))
        saved.append(value.value)
        value.value = mark
        lib.uc_reg_write(uch, REG[name], ctypes.byref(value))
    pattern = struct.pack("<16Q", *marks)
    try:
        if _env_path is None:
            _env_path = _find_env_path(uch.value, pattern)
        if _env_path is None:
            return None
        env = _follow_env_path(uch.value, _env_path, pattern)
        if env is None:
            return None
        return memoryview((ctypes.c_char * (8 * 17)).from_address(env)).cast("B").cast("Q")
    finally:
        for name, old in zip(ENV_REG_ORDER, saved):
            value.value = old
            lib.uc_reg_write(uch, REG[name], ctypes.byref(value))


def _follow_env_path(engine: int, path: tuple[int, int], pattern: bytes) -> int | None:
    """env of this engine by ``path``, when the marks are there: read through /proc/self/mem, which fails
    cleanly where a direct read would fault (a path found on one engine may lead elsewhere on another: a host
    segfault in a forked child's new thread, now and then, before this)."""
    try:
        mem = os.open("/proc/self/mem", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        cpu = int.from_bytes(os.pread(mem, 8, engine + path[0]), "little")
        env = int.from_bytes(os.pread(mem, 8, cpu + path[1]), "little")
        return env if os.pread(mem, len(pattern), env) == pattern else None
    except (OSError, OverflowError, ValueError):
        return None
    finally:
        os.close(mem)


def _find_env_path(engine: int, pattern: bytes) -> tuple[int, int] | None:
    try:
        mem = os.open("/proc/self/mem", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        head = os.pread(mem, 1024, engine)
        for cpu_offset in range(0, len(head) - 7, 8):
            cpu = int.from_bytes(head[cpu_offset:cpu_offset + 8], "little")
            if cpu < 0x10000 or cpu >= 1 << 47 or cpu & 7:
                continue
            try:
                obj = os.pread(mem, 512, cpu)
            except OSError:
                continue
            for ptr_offset in range(0, len(obj) - 7, 8):
                env = int.from_bytes(obj[ptr_offset:ptr_offset + 8], "little")
                if cpu < env < cpu + 0x40000 and not env & 7:
                    try:
                        if os.pread(mem, len(pattern), env) == pattern:
                            return cpu_offset, ptr_offset
                    except OSError:
                        pass
        return None
    finally:
        os.close(mem)


def unicorn_version() -> str:
    lib = _load_libunicorn()
    combined = lib.uc_version(None, None)
    return f"{combined >> 24 & 0xFF}.{combined >> 16 & 0xFF}.{combined >> 8 & 0xFF}"


def _ctl_code(nr: int, nargs: int) -> int:
    """UC_CTL_WRITE(type, nr) from unicorn.h."""
    return (UC_CTL_IO_WRITE << 30) | (nargs << 26) | nr


class _Engines:
    """The engines of one address space. ``turn`` is the right to run guest code (held by at most one
    engine: ``running``); ``waiting`` counts the threads that want it."""

    def __init__(self, first: "UnicornCpu"):
        self.members: list[UnicornCpu] = [first]
        self.turn = threading.Lock()
        self.running: "UnicornCpu | None" = None
        self.holder = 0                 # the host thread holding the turn (0: none)
        self.waiting = 0

    def quiesce(self) -> None:
        """Make sure no other engine runs guest code now (a TLB shootdown): take the turn and give it back.
        Every engine has its pending changes marked already, so none runs again before applying them."""
        if self.holder == threading.get_ident():
            return
        self.take_turn(None)
        self.give_turn()

    def take_turn(self, cpu: "UnicornCpu | None") -> None:
        if not self.turn.acquire(timeout=TIME_SLICE):
            self.waiting += 1
            try:
                while not self.turn.acquire(timeout=TIME_SLICE):
                    holder = self.running
                    if holder is not None:
                        holder.stop_soon()
            finally:
                self.waiting -= 1
        self.running = cpu
        self.holder = threading.get_ident()

    def give_turn(self) -> None:
        self.running = None
        self.holder = 0
        self.turn.release()
        if self.waiting:
            time.sleep(0)               # let a waiting thread have the turn


class _SharedTurn:
    """The right to run guest code among the Unicorn processes of one run that have writable shared memory
    (windows mapped writable: a read-only one, such as glibc's MAP_SHARED gconv-modules.cache, cannot be the
    target of a `lock`-prefixed write).

    Unicorn runs `lock`-prefixed instructions non-atomically (see above); engines of one process take turns, and
    so must processes whose engines write the same shared pages (a process-shared mutex, a semaphore in
    /dev/shm). The turn is a process-shared POSIX semaphore in a MAP_SHARED page made by the first engine of the
    run and inherited by every fork child (runs started separately do not share it: their atomics on a common
    file are not atomic against each other). A process takes it, after its own engines' turn, only while it
    has writable windows and only around guest code: it gives it up at every syscall and fault. A holder that has kept
    it SLICE seconds while another process waits is stopped (``stop_soon``) and, once it has given the turn
    up, lets the waiter have it; a holder that died with it (SIGKILL) is noticed by the waiters and the turn
    given back."""

    SLICE = 0.02
    DEAD_HOLDER_CHECK = 1.0

    def __init__(self):
        import mmap
        self.libc = libc = ctypes.CDLL(None, use_errno=True)
        self.page = mmap.mmap(-1, 4096, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
        base = ctypes.addressof(ctypes.c_char.from_buffer(self.page))
        self.turn, self.waiters = ctypes.c_void_p(base), ctypes.c_void_p(base + 32)      # two sem_t
        self.holder_pid = ctypes.c_int32.from_address(base + 64)
        libc.sem_init(self.turn, 1, 1)
        libc.sem_init(self.waiters, 1, 0)
        self.held_by: "UnicornCpu | None" = None       # this process's engine holding it
        self.since = 0.0
        self._watchdog_pid = 0

    def acquire(self, cpu: "UnicornCpu") -> None:
        libc = self.libc
        if libc.sem_trywait(self.turn) != 0:
            libc.sem_post(self.waiters)
            try:
                while libc.sem_timedwait(self.turn, ctypes.byref(_deadline(self.DEAD_HOLDER_CHECK))) != 0:
                    holder = self.holder_pid.value
                    if ctypes.get_errno() == errno.ETIMEDOUT and holder and not _running(holder):
                        self.holder_pid.value = 0       # dead, or stopped (SIGSTOP can find it in guest code):
                        libc.sem_post(self.turn)        # its turn is taken from it (release knows)
            finally:
                libc.sem_wait(self.waiters)
        self.holder_pid.value = _pid
        self.held_by, self.since = cpu, time.monotonic()
        if self._watchdog_pid != _pid:
            self._watchdog_pid = _pid
            threading.Thread(target=self._watch, name="hermipy-shared-turn", daemon=True).start()

    def release(self) -> None:
        """Give the turn up; after a preemption, wait a moment for a waiting process to take it. A turn taken
        from this process while it was stopped is not given up again (that would let two processes run)."""
        preempted = self.held_by is not None and self.held_by._preempted
        self.held_by = None
        if self.holder_pid.value != _pid:
            return
        self.holder_pid.value = 0
        self.libc.sem_post(self.turn)
        if preempted and self.contended():
            time.sleep(0.001)

    def contended(self) -> bool:
        value = ctypes.c_int()
        self.libc.sem_getvalue(self.waiters, ctypes.byref(value))
        return value.value > 0

    def _watch(self) -> None:
        while True:
            time.sleep(self.SLICE)
            cpu = self.held_by
            if cpu is not None and time.monotonic() - self.since > self.SLICE and self.contended():
                cpu.stop_soon()


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _deadline(seconds: float) -> _Timespec:
    """A CLOCK_REALTIME deadline (sem_timedwait's clock) ``seconds`` from now."""
    when = time.time() + seconds
    return _Timespec(int(when), int(when % 1 * 1e9))


def _running(pid: int) -> bool:
    """Whether ``pid`` may still go on: neither gone, a zombie, nor stopped (job control or tracing)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X", b"T", b"t")
    except (OSError, IndexError):
        return False


_shared_turn: _SharedTurn | None = None
_context_offsets: tuple[int, int, int] | None = None   # env->old_exception, exception_is_int, error_code (libunicorn's)


def context_offsets() -> tuple[int, int, int]:
    """The offsets of env->old_exception, exception_is_int and error_code in a saved context, found once per
    process (~6.5 ms; a warm parent's forks share them: `hermipy serve`, hermipy.api)."""
    global _context_offsets
    if _context_offsets is None:
        _context_offsets = _find_context_offsets()
    return _context_offsets


def _find_context_offsets() -> tuple[int, int, int]:
    """Where env->old_exception, exception_is_int and error_code lie in a saved context (-1: not found),
    found on a scratch vCPU of the same model. old_exception: the int32 that is -1 before any exception, 0
    after a hooked #DE and 8 (#DF) after a second one. (Guessing it from one real fault picked a wrong
    field now and then, and the guest then died of a triple fault that left uc_emu_start returning at
    once.) exception_is_int: 0 then, 1 after an `int 0x40`, 0 after a #DE again. error_code: the
    selectors of two #GPs from loading DS (0x1234, then 0x5678)."""
    lib = _load_libunicorn()

    def check(err: int) -> None:
        if err:
            raise OSError(f"unicorn: {lib.uc_strerror(err).decode()}")
    uch, ctx = ctypes.c_void_p(), ctypes.c_void_p()
    check(lib.uc_open(UC_ARCH_X86, UC_MODE_64, ctypes.byref(uch)))
    stop = _INTR_CB(lambda _uc, _vector, _data: lib.uc_emu_stop(uch))
    try:
        lib.uc_ctl(uch, _ctl_code(UC_CTL_CPU_MODEL, 1), ctypes.c_int(UC_CPU_X86_WESTMERE))
        check(lib.uc_mem_map(uch, _PROBE_ADDR, 0x1000, 7))
        check(lib.uc_mem_write(uch, _PROBE_ADDR, _CONTEXT_PROBE_CODE, len(_CONTEXT_PROBE_CODE)))
        handle = ctypes.c_size_t()
        check(lib.uc_hook_add(uch, ctypes.byref(handle), UC_HOOK_INTR, ctypes.cast(stop, ctypes.c_void_p),
                              None, 1, 0, 0))
        check(lib.uc_context_alloc(uch, ctypes.byref(ctx)))
        size = lib.uc_context_size(uch)
        images = []
        # fresh; after a hooked #DE; after a second one (a #DF then); after `int 0x40`; after a #DE; the #GPs
        for start, end in ((None, None), (0, 4), (2, 4), (4, 6), (2, 4), (6, 13), (13, 20)):
            if start is not None:
                lib.uc_emu_start(uch, _PROBE_ADDR + start, _PROBE_ADDR + end, 0, 0)
            lib.uc_context_save(uch, ctx)
            images.append(ctypes.string_at(ctx.value, size))
        lib.uc_context_free(ctx)
    finally:
        lib.uc_close(uch)

    words = [memoryview(image)[:len(image) & ~3].cast("i") for image in images]

    def offset(expected, first=0):
        hits = [4 * i for i, values in enumerate(zip(*words[first:first + len(expected)])) if values == expected]
        return hits[0] if len(hits) == 1 else -1
    return offset((-1, 0, 8)), offset((0, 0, 0, 1, 0)), offset((0x1234, 0x5678), 5)


class UnicornCpu(Cpu):
    """A vCPU emulated by Unicorn, in 64-bit long mode with paging, over the kernel's physical RAM."""

    name = "unicorn"
    tsc_is_host = True          # QEMU's helper_rdtsc: the host's ticks (cpu_get_host_ticks), no offset

    def __init__(self, ram, page_table):
        global _shared_turn
        if _shared_turn is None:
            _shared_turn = _SharedTurn()
        self._init_engine(ram, page_table)
        self.rewrite = False
        self._answers = None                    # () -> {nr: result}, see answer_in_guest
        self._answered: frozenset[int] = frozenset()
        self._refresh_after: frozenset[int] = frozenset()
        self._answer_frame = -1
        self._trampolines = None
        self._tried: set[int] = set()           # the trampolines' sites examined, patched or not
        self._engines = _Engines(self)
        self._kicked = False                    # kick(): return Stop(INTERRUPT) at the next clean point
        self._preempted = False                 # stopped for another engine's turn
        self._in_hook = False                   # in a syscall hook (SYSCALL or `out`): not to be stopped from outside
        self._rip_written = False               # the hook moved rip (a signal frame, sigreturn, a restart)
        self._pending_flush = False             # another thread changed the page table: flush before running
        self._pending_code: list[tuple[int, int]] = []   # code another thread patched: drop its translations

    def _init_engine(self, ram, page_table) -> None:
        """A fresh engine in long mode at CPL3 over ``ram``, with the syscall, `out` and exception hooks."""
        self._ram_for_spawn = ram
        self._page_table = page_table
        self.lib = lib = _load_libunicorn()
        _without_huge_pages()
        self.uch = ctypes.c_void_p()
        self._check(lib.uc_open(UC_ARCH_X86, UC_MODE_64, ctypes.byref(self.uch)))
        lib.uc_ctl(self.uch, _ctl_code(UC_CTL_CPU_MODEL, 1), ctypes.c_int(UC_CPU_X86_WESTMERE))
        self._check(lib.uc_mem_map_ptr(self.uch, 0, ram.total, 7, ram.address))
        self._scratch = _u64()
        names = ("rax", "rdi", "rsi", "rdx", "r10", "r8", "r9", "rip")
        self._syscall_ids = (ctypes.c_int * 8)(*(REG[r] for r in names))
        self._syscall_vals = (_u64 * 8)()
        self._syscall_ptrs = (ctypes.c_void_p * 8)(*(ctypes.addressof(self._syscall_vals) + 8 * i for i in range(8)))
        n = len(GPR_NAMES)
        self._gpr_ids = (ctypes.c_int * n)(*(REG[r] for r in GPR_NAMES))
        self._gpr_vals = (_u64 * n)()
        self._gpr_ptrs = (ctypes.c_void_p * n)(*(ctypes.addressof(self._gpr_vals) + 8 * i for i in range(n)))
        self._on_syscall = None
        self._stop: Stop | None = None
        self._rax_before_in: int | None = None
        self._error: BaseException | None = None
        self._in_syscall = False
        self._enter_long_mode(page_table.root)
        self._env_regs = _env_registers(lib, self.uch)     # the syscall hook's registers in place (or None)
        self._syscall_cb = _SYSCALL_CB(self._syscall_hook)
        self._intr_cb = _INTR_CB(self._intr_hook)
        self._out_cb = _OUT_CB(self._out_hook)
        self._in_cb = _IN_CB(self._in_hook)
        self._sysenter_cb = _SYSCALL_CB(self._sysenter_hook)
        handle = ctypes.c_size_t()
        self._check(lib.uc_hook_add(self.uch, ctypes.byref(handle), UC_HOOK_INSN,
                                    ctypes.cast(self._syscall_cb, ctypes.c_void_p), None, 1, 0, UC_X86_INS_SYSCALL))
        self._check(lib.uc_hook_add(self.uch, ctypes.byref(handle), UC_HOOK_INSN,
                                    ctypes.cast(self._out_cb, ctypes.c_void_p), None, 1, 0, UC_X86_INS_OUT))
        self._leave = _Leave()            # set by the OUT hook: end the block after this `out`
        leave = _leave_after_out_hook(lib) if self._env_regs is not None else 0
        if leave:                         # (the env path found for this engine leads through uc->cpu)
            self._leave.cpu = ctypes.c_void_p.from_address(self.uch.value + _env_path[0]).value
            self._check(lib.uc_hook_add(self.uch, ctypes.byref(handle), UC_HOOK_INSN, leave,
                                        ctypes.addressof(self._leave), 1, 0, UC_X86_INS_OUT))
        self._check(lib.uc_hook_add(self.uch, ctypes.byref(handle), UC_HOOK_INSN,
                                    ctypes.cast(self._in_cb, ctypes.c_void_p), None, 1, 0, UC_X86_INS_IN))
        self._check(lib.uc_hook_add(self.uch, ctypes.byref(handle), UC_HOOK_INSN,
                                    ctypes.cast(self._sysenter_cb, ctypes.c_void_p), None, 1, 0, UC_X86_INS_SYSENTER))
        self._check(lib.uc_hook_add(self.uch, ctypes.byref(handle), UC_HOOK_INTR,
                                    ctypes.cast(self._intr_cb, ctypes.c_void_p), None, 1, 0, 0))
        self._stop_flag = ctypes.c_uint8(0)
        self._check(lib.uc_hook_add(self.uch, ctypes.byref(handle), UC_HOOK_BLOCK, _stop_at_block_hook(lib),
                                    ctypes.addressof(self._stop_flag), 1, 0, 0))
        self._ctx = ctypes.c_void_p()
        self._check(lib.uc_context_alloc(self.uch, ctypes.byref(self._ctx)))
        self._enter_user_mode()

    # -- setup -----------------------------------------------------------------------------------
    def close(self) -> None:
        if self.uch:
            members = self._engines.members
            if self in members:
                members.remove(self)
            self.lib.uc_close(self.uch)
            self.uch = None

    def _check(self, err: int) -> None:
        if err:
            raise OSError(f"unicorn: {self.lib.uc_strerror(err).decode()}")

    def _enter_long_mode(self, root: int) -> None:
        """EFER.LME/NXE, CR4.PAE, CR3, then CR0.PG|WP: 4-level paging as Linux uses it."""
        self._write_msr(MSR_EFER, EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE)
        self.set_reg("cr4", CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT)
        self.set_reg("cr3", root)
        self.set_reg("cr0", CR0_PG | CR0_WP | CR0_NE | CR0_ET | CR0_MP | CR0_PE)

    def _enter_user_mode(self) -> None:
        """Down to CPL3 as a kernel goes there, by `iretq` (QEMU takes the CPL from SS, whose selector it
        will not load above the current CPL): privileged instructions are then the #GP they are for a Linux
        process, `in`/`out` go through the TSS's I/O bitmap, and supervisor pages are out of reach."""
        _system_page(self._page_table)
        lib, uch = self.lib, self.uch
        self._check(lib.uc_reg_write(uch, UC_X86_REG_GDTR, ctypes.byref(_Mmr(0, SYSTEM_VA, GDT_SIZE - 1, 0))))
        tr = _Mmr(SEL_TSS, SYSTEM_VA + _SYSTEM_TSS, TSS_LIMIT, DESC_P | DESC_TSS_AVAILABLE)
        self._check(lib.uc_reg_write(uch, UC_X86_REG_TR, ctypes.byref(tr)))
        self.set_reg("rsp", SYSTEM_VA + _SYSTEM_FRAME)
        # QEMU fetches from where the iretq returns (0) before it stops: that #PF goes through the interrupt
        # hook, which clears it (old_exception) and records a stop no run will see.
        self._check(lib.uc_emu_start(uch, SYSTEM_VA + _SYSTEM_IRETQ, 0, 0, 1))
        self._stop = None
        if self.get_reg("cs") != SEL_USER_CS | 3 or self.get_reg("ss") != SEL_USER_DS | 3:
            raise OSError("unicorn: the engine did not enter CPL3")

    def _write_msr(self, rid: int, value: int) -> None:
        self._check(self.lib.uc_reg_write(self.uch, REG["msr"], ctypes.byref(_Msr(rid, value))))

    # -- running ---------------------------------------------------------------------------------
    def run(self, on_syscall) -> Stop:
        self._on_syscall = on_syscall
        lib, uch = self.lib, self.uch
        stuck = 0
        while True:
            engines = self._engines            # a fork child's is new (sole_in_child)
            self._stop = self._error = None
            rip = self.get_reg("rip")
            if self._kicked:
                if not self._in_trampoline(rip):
                    self._kicked = False
                    return Stop(StopReason.INTERRUPT)
                count = TRAMPOLINE_STEP
            else:
                count = 0
            if rip == 0:   # uc_emu_start(0, until=0) would return at once, forever: a jump to 0 faults on Linux
                return Stop(StopReason.FAULT, vector=VEC_PF, address=0, rip=0)
            if len(engines.members) > 1:
                engines.take_turn(self)
            if self._ram_for_spawn.writable_windows:
                _shared_turn.acquire(self)
            if self._pending_flush or self._pending_code:
                self._apply_pending()
            self._preempted = False
            err = lib.uc_emu_start(uch, rip, 0, 0, count)
            if _shared_turn.held_by is self:       # (a syscall in this run may have made the first window)
                _shared_turn.release()
            if engines.running is self:
                engines.give_turn()
            if self._error is not None:
                raise self._error
            if self._stop is not None:
                if self._rax_before_in is not None:
                    self.set_reg("rax", self._rax_before_in)
                    self._rax_before_in = None
                return self._stop
            if err == UC_ERR_INSN_INVALID:     # QEMU raised #UD without calling the interrupt hook
                return self._undefined_opcode(self.get_reg("rip"))
            if err:
                return Stop(StopReason.FAULT, vector=-1, rip=self.get_reg("rip"))
            if self._kicked or self._preempted or count:
                continue
            stuck = stuck + 1 if self.get_reg("rip") == rip else 0
            if stuck == 3:     # QEMU shut the vCPU down (a double fault it raised without the hook): say so
                raise HermipyError(f"unicorn: the emulated CPU stopped at {rip:#x} after an unreported double "
                                   "fault; --backend kvm runs this program", 70)

    def _in_trampoline(self, rip: int) -> bool:
        """Inside a per-site trampoline (its rsp is the scratch stack: no place for a signal frame; a
        dispatching trampoline's is always the application's)."""
        from hermipy.rewriter.trampoline import TRAMPOLINE_SIZE
        trampolines = self._trampolines
        return trampolines is not None and any(a[0] <= rip < a[0] + 0x1000 and a[2] == TRAMPOLINE_SIZE
                                               for a in trampolines.areas)

    def kick(self) -> None:
        self._kicked = True
        engines = self._engines
        if engines.running is self or len(engines.members) == 1:
            self.stop_soon()

    def stop_soon(self) -> None:
        """From another thread: end the current uc_emu_start at the next block, unless a hook is running (the
        syscall's own return path then takes note: the dispatcher checks the task, the hook the pending
        changes); callers whose stop must not be missed repeat it (kicks.watch, the time-slice loop).

        The engine's block hook makes the stop, where no instruction of the block has run. uc_emu_stop from
        this thread would not wait for that: Unicorn 2 checks for a stop after every guest memory access too,
        and leaves there with rip at the instruction that made the access, which runs again on the next start
        (an `add [mem], 1` added twice, a `lock cmpxchg` failed on the value it had itself stored)."""
        if self.uch and not self._in_hook:
            self._preempted = True
            self._stop_flag.value = 1

    def spawn(self) -> "UnicornCpu":
        """Another engine over the same RAM and page table, with this one's registers, FS/GS base and FPU
        state, sharing the in-guest answers and trampolines."""
        cpu = UnicornCpu.__new__(UnicornCpu)
        cpu._init_engine(self._ram_for_spawn, self._page_table)
        cpu.rewrite = self.rewrite
        for name in ("_answers", "_answered", "_refresh_after", "_answer_frame", "_trampolines", "_tried"):
            setattr(cpu, name, getattr(self, name))
        if self._answer_frame >= 0:
            cpu._scratch_frame, cpu._ram = self._scratch_frame, self._ram
        cpu._engines = self._engines
        cpu._kicked = cpu._preempted = cpu._pending_flush = cpu._in_hook = cpu._rip_written = False
        cpu._pending_code = []
        cpu.set_regs(self.get_regs())
        cpu.set_fs_base(self.get_fs_base())
        cpu.set_gs_base(self.get_gs_base())
        cpu.write_fpu_state(self.read_fpu_state())
        self._engines.members.append(cpu)
        return cpu

    def sole_in_child(self) -> None:
        """A turn of its own: the fork copied the old one's lock, maybe held by a thread the child has not."""
        self._engines = _Engines(self)
        _shared_turn.held_by = None            # (the shared turn itself may be held by such a thread: it is real)

    def _apply_pending(self) -> None:
        """What other threads changed while this engine was not running."""
        if self._pending_flush:
            self._pending_flush = False
            self.lib.uc_ctl(self.uch, _ctl_code(UC_CTL_TLB_FLUSH, 0))
        while self._pending_code:
            start, end = self._pending_code.pop()
            self._remove_cache(start, end)

    def _syscall_hook(self, _uc, _user_data) -> None:
        # No other thread stops this engine while the hook runs (``_in_hook``): preemption, kicks and flushes
        # wait for the engine to be back in guest code (see _serve_syscall's end for a hook that moved rip).
        self._in_hook = True
        try:
            self._serve_syscall()
        finally:
            self._in_hook = False

    def _serve_syscall(self) -> int | None:
        """Serve the syscall the hook stopped at. None when the guest goes on after the instruction, else why
        not: _STOPPED (the run ends: an exit, an error), _MOVED (rip was moved; the engine stops to resume there)."""
        lib, uch, regs = self.lib, self.uch, self._env_regs
        if regs is not None:
            nr, a0, a1, a2, a3, a4, a5, rip = (regs[ENV_RAX], regs[ENV_RDI], regs[ENV_RSI], regs[ENV_RDX],
                                               regs[ENV_R10], regs[ENV_R8], regs[ENV_R9], regs[ENV_EIP])
        else:
            lib.uc_reg_read_batch(uch, self._syscall_ids, self._syscall_ptrs, 8)
            nr, a0, a1, a2, a3, a4, a5, rip = self._syscall_vals
        self._in_syscall, self._rip_written = True, False
        engines, shared = self._engines, _shared_turn
        if shared.held_by is self:
            shared.release()
        if engines.running is self:
            engines.give_turn()            # before anything that may take a lock another thread holds
        try:
            if nr in self._answered and rip not in self._tried:     # a site seen for the first time
                self._trampolines.patch(rip, nr)
            result = self._on_syscall(nr, a0, a1, a2, a3, a4, a5)
        except GuestExit as exit_:
            self._stop = Stop(StopReason.EXIT, status=exit_.status)
            lib.uc_emu_stop(uch)
            return _STOPPED
        except BaseException as error:     # a kernel bug: re-raised from run(), never swallowed by ctypes
            self._error = error
            lib.uc_emu_stop(uch)
            return _STOPPED
        finally:
            self._in_syscall = False
            engines = self._engines        # a fork child's is new (sole_in_child)
            if len(engines.members) > 1:
                engines.take_turn(self)
            if self._ram_for_spawn.writable_windows:
                shared.acquire(self)
            if self._pending_flush or self._pending_code:
                self._apply_pending()
        if result is not None:
            if regs is not None:
                regs[ENV_RAX] = result & MASK64
            else:
                scratch = self._scratch
                scratch.value = result & MASK64
                lib.uc_reg_write(uch, 35, ctypes.byref(scratch))
        if nr in self._refresh_after:
            self._write_answers()
        if self._rip_written:
            # Unicorn 2.1 keeps its quit_request from a rip written in a hook until this uc_emu_start ends, and
            # until then a stop from another thread leaves rip stale (up to a block behind the registers:
            # unicorn#1355). End it now; run() starts the next one at the new rip.
            self._rip_written = False
            self._preempted = True
            lib.uc_emu_stop(uch)
            return _MOVED
        return None

    # -- in-guest answers ------------------------------------------------------------------------
    def stop_answering_in_guest(self) -> None:
        if self._trampolines is not None:
            self._trampolines.withdraw()
        if self._answers is not None:
            self._write_answers()

    def answer_in_guest(self, answers, refresh_after, mem) -> None:
        """Give the sites of getpid & co. trampolines at their first trap (``hermipy run`` does so when it
        rewrites), and keep their answer page: ``answers()`` returns {nr: result} for syscalls whose result
        is kernel state the guest may read, called now and after each syscall whose number is in
        ``refresh_after``."""
        self._answers = answers
        self._refresh_after = frozenset(refresh_after)
        if self._answer_frame < 0:
            ram = mem.ram
            self._answer_frame, self._scratch_frame = ram.alloc(), ram.alloc()
            # Reserved as an area of hermipy's own (not the guest's); PTEs set here directly.
            mem.reserve(ANSWERS_VA, SCRATCH_VA + 0x1000 - ANSWERS_VA, 0, "[hermipy-answers]")
            mem.page_table.set(ANSWERS_VA, self._answer_frame | PTE_P | PTE_U | PTE_NX)
            mem.page_table.set(SCRATCH_VA, self._scratch_frame | PTE_P | PTE_W | PTE_U | PTE_NX)
            self._ram = ram
        if self._trampolines is None:
            from hermipy.rewriter.trampoline import Trampolines, file_policies
            self._trampolines = Trampolines(mem, ANSWERS_VA, TRAMPOLINE_STACK_TOP, file_policies(),
                                            self.invalidate_code)
            self._tried = self._trampolines.tried
        self._write_answers()

    def _write_answers(self) -> None:
        with _answers_lock:
            answers = {nr: value for nr, value in self._answers().items() if 0 <= value < 1 << 63}
            self._answered = frozenset(answers)
            store_answers(self._ram, self._answer_frame, answers)                        # as KVM's page

    def _out_hook(self, _uc, port, size, _value, _user_data) -> None:
        """`out imm8, al` reports rip at the instruction, as the SYSCALL hook does (both are 2 bytes). (Unicorn
        calls this hook before, and instead of, QEMU's I/O-bitmap check: the other ports' #GP is made here.)

        Where the guest does not simply go on after the `out`, the block is left right after it (``_leave``,
        see _LEAVE_AFTER_OUT_CODE): QEMU would run the rest of it first. A moved rip then needs the 2 bytes that
        set_reg took off for QEMU's SYSCALL helper, which adds them after its hook: nothing adds them here."""
        if port == SYSCALL_PORT and size == 1:
            self._in_hook = True
            try:
                why = self._serve_syscall()
            finally:
                self._in_hook = False
            if why is None:
                return
            if why == _MOVED:
                regs = self._env_regs
                if regs is not None:
                    regs[ENV_EIP] = (regs[ENV_EIP] + SYSCALL_INSN_LEN) & MASK64
                else:
                    self.set_reg("rip", self.get_reg("rip") + SYSCALL_INSN_LEN)
        else:
            self._stop = Stop(StopReason.FAULT, vector=VEC_GP, rip=self.get_reg("rip"))
            self.lib.uc_emu_stop(self.uch)
        self._leave.flag = 1

    def _in_hook(self, _uc, _port, _size, _user_data) -> int:
        """`in` is a #GP at CPL3 whatever the port (hermipy's I/O permission bitmap allows none for reading).
        QEMU writes what the hook returns to rax before the stop: rax is put back then (``run``)."""
        self._stop = Stop(StopReason.FAULT, vector=VEC_GP, rip=self.get_reg("rip"))
        self._rax_before_in = self.get_reg("rax")
        self.lib.uc_emu_stop(self.uch)
        return 0

    def _intr_hook(self, _uc, vector, _user_data) -> None:
        """An exception, or an `int n`: QEMU calls the hook with n before looking at any IDT, and rip past the
        instruction. Through Linux's IDT only int3 and `int 4` are allowed at CPL3; any other n is the #GP a
        CPU raises at the instruction (and the kernel takes `int 0x80` from there: sys_signal.refused_int)."""
        rip = self.get_reg("rip")
        address = self.get_reg("cr2") if vector in (VEC_PF, 8) else 0
        if vector == 8:           # QEMU folds a #PF after an earlier hooked #PF into #DF (unicorn#1883)
            vector = VEC_PF
        software, error = self._clear_pending_exception()
        if software is None:
            software = vector >= 32
        if software and vector not in USER_GATES:
            vector, rip = VEC_GP, rip - INT_INSN_LEN
        if vector == VEC_UD:
            self._stop = self._undefined_opcode(rip)
        else:
            self._stop = Stop(StopReason.FAULT, vector=vector, address=address, rip=rip,
                              error=error if vector == VEC_PF else -1)
        self.lib.uc_emu_stop(self.uch)

    def _sysenter_hook(self, _uc, _user_data) -> None:
        """`sysenter` in 64-bit mode: the #UD of AMD's CPUs, which QEMU (an Intel model here) would run."""
        self._stop = Stop(StopReason.FAULT, vector=VEC_UD, rip=self.get_reg("rip"))
        self.lib.uc_emu_stop(self.uch)

    def _undefined_opcode(self, rip: int) -> Stop:
        """A #UD from QEMU, as a CPU would have raised it (or not)."""
        if self._page_table.peek(rip, 1) == ICEBP:
            return Stop(StopReason.FAULT, vector=VEC_DB, rip=rip + 1)   # QEMU, built without WANT_ICEBP, has no icebp
        if self._page_table.peek(rip, 2) == RDPMC:
            return Stop(StopReason.FAULT, vector=VEC_GP, rip=rip)       # its helper_rdpmc tests CR4.PCE reversed
        return Stop(StopReason.FAULT, vector=VEC_UD, rip=rip)

    def _clear_pending_exception(self) -> tuple[bool | None, int]:
        """Reset QEMU's env->old_exception, which a hooked exception leaves set (unicorn#1883), and say whether
        the exception was a software interrupt (env->exception_is_int) and its error code (env->error_code);
        None and -1 where a field was not found.

        Otherwise the next exception is reported as a double fault and the third one is a triple fault.
        The fields' offsets inside the saved context are found once per process (``_find_context_offsets``).
        """
        lib, uch, ctx = self.lib, self.uch, self._ctx
        lib.uc_context_save(uch, ctx)
        old_exception, is_int, error_code = context_offsets()
        software = ctypes.c_int32.from_address(ctx.value + is_int).value != 0 if is_int >= 0 else None
        error = ctypes.c_int32.from_address(ctx.value + error_code).value if error_code >= 0 else -1
        if old_exception >= 0:
            ctypes.c_int32.from_address(ctx.value + old_exception).value = -1
            lib.uc_context_restore(uch, ctx)
        return software, error

    # -- registers -------------------------------------------------------------------------------
    # Inside the SYSCALL hook QEMU's rip still points at the instruction and is advanced after the hook;
    # get/set present Linux's view (pt_regs->ip is the instruction after the syscall).
    def get_reg(self, name: str) -> int:
        self._scratch.value = 0           # 2- and 4-byte registers only fill the low bytes
        self.lib.uc_reg_read(self.uch, REG[name], ctypes.byref(self._scratch))
        if name == "rip" and self._in_syscall:
            return self._scratch.value + SYSCALL_INSN_LEN
        return self._scratch.value

    def set_reg(self, name: str, value: int) -> None:
        if name == "rip" and self._in_syscall:
            value -= SYSCALL_INSN_LEN      # the SYSCALL helper adds the instruction length after the hook
            self._rip_written = True
        self._scratch.value = value & MASK64
        self._check(self.lib.uc_reg_write(self.uch, REG[name], ctypes.byref(self._scratch)))

    def get_regs(self) -> list[int]:
        self.lib.uc_reg_read_batch(self.uch, self._gpr_ids, self._gpr_ptrs, len(GPR_NAMES))
        values = list(self._gpr_vals)
        if self._in_syscall:
            values[_RIP_INDEX] += SYSCALL_INSN_LEN
        return values

    def set_regs(self, values: list[int]) -> None:
        values = list(values)
        if self._in_syscall:
            values[_RIP_INDEX] -= SYSCALL_INSN_LEN
            self._rip_written = True
        for i, v in enumerate(values):
            self._gpr_vals[i] = v & MASK64
        self.lib.uc_reg_write_batch(self.uch, self._gpr_ids, self._gpr_ptrs, len(GPR_NAMES))

    def get_fs_base(self) -> int:
        return self.get_reg("fs_base")

    def set_fs_base(self, value: int) -> None:
        self.set_reg("fs_base", value)

    def get_gs_base(self) -> int:
        return self.get_reg("gs_base")

    def set_gs_base(self, value: int) -> None:
        self.set_reg("gs_base", value)

    def read_fpu_state(self) -> bytes:
        """An FXSAVE-format image: FCW, FSW, FTW, MXCSR, ST0-7, XMM0-15 (Intel SDM vol. 1, 10.5.1)."""
        image = bytearray(512)
        struct.pack_into("<HH", image, 0, self.get_reg("fpcw"), self.get_reg("fpsw"))
        full_tags = self.get_reg("fptag")        # 2 bits per register, 0b11 = empty
        image[4] = sum(1 << i for i in range(8) if (full_tags >> (2 * i)) & 3 != 3)   # abridged FTW
        struct.pack_into("<I", image, 24, self.get_reg("mxcsr"))
        struct.pack_into("<I", image, 28, 0xFFFF)
        buf = (ctypes.c_uint8 * 16)()
        for i in range(16):
            self.lib.uc_reg_read(self.uch, XMM0 + i, buf)
            image[160 + 16 * i:176 + 16 * i] = bytes(buf)
        for i in range(8):
            self.lib.uc_reg_read(self.uch, ST0 + i, buf)
            image[32 + 16 * i:42 + 16 * i] = bytes(buf)[:10]
        return bytes(image)

    def write_fpu_state(self, data: bytes) -> None:
        fcw, fsw = struct.unpack_from("<HH", data, 0)
        self.set_reg("fpcw", fcw)
        self.set_reg("fpsw", fsw)
        self.set_reg("fptag", sum((0 if data[4] >> i & 1 else 3) << (2 * i) for i in range(8)))
        self.set_reg("mxcsr", struct.unpack_from("<I", data, 24)[0])
        for i in range(16):
            buf = (ctypes.c_uint8 * 16).from_buffer_copy(data[160 + 16 * i:176 + 16 * i])
            self.lib.uc_reg_write(self.uch, XMM0 + i, buf)
        for i in range(8):
            buf = (ctypes.c_uint8 * 16).from_buffer_copy(data[32 + 16 * i:48 + 16 * i])
            self.lib.uc_reg_write(self.uch, ST0 + i, buf)

    # -- memory coherence ------------------------------------------------------------------------
    def flush_tlb(self) -> None:
        members = self._engines.members
        if len(members) == 1 and members[0] is self:
            self.lib.uc_ctl(self.uch, _ctl_code(UC_CTL_TLB_FLUSH, 0))
            return
        for cpu in members:
            cpu._pending_flush = True
        self._engines.quiesce()

    def invalidate_code(self, start: int, end: int) -> None:
        members = self._engines.members
        if len(members) == 1 and members[0] is self:
            self._remove_cache(start, end)
            return
        for cpu in members:
            cpu._pending_code.append((start, end))
        self._engines.quiesce()

    def _remove_cache(self, start: int, end: int) -> None:
        """Drop the translations of guest code in [start, end). Unicorn finds the range's first page with
        get_page_addr_code, whose page fault on a page not present it swallows but leaves in env->old_exception:
        the guest's next page fault would be a double fault (an executable mapping never run, then unmapped)."""
        self.lib.uc_ctl(self.uch, _ctl_code(UC_CTL_TB_REMOVE_CACHE, 2), _u64(start), _u64(end))
        self._clear_pending_exception()

    def cpuid_features(self) -> tuple[int, int]:
        """AT_HWCAP is CPUID.1:EDX on x86 (arch/x86/include/asm/elf.h), as the guest's own CPUID reports it.

        Probed on a scratch vCPU of the same model (~1 ms), so it matches whatever this Unicorn emulates.
        """
        lib = self.lib
        uch = ctypes.c_void_p()
        self._check(lib.uc_open(UC_ARCH_X86, UC_MODE_64, ctypes.byref(uch)))
        try:
            lib.uc_ctl(uch, _ctl_code(UC_CTL_CPU_MODEL, 1), ctypes.c_int(UC_CPU_X86_WESTMERE))
            self._check(lib.uc_mem_map(uch, _PROBE_ADDR, 0x1000, 7))
            self._check(lib.uc_mem_write(uch, _PROBE_ADDR, _CPUID1_CODE, len(_CPUID1_CODE)))
            self._check(lib.uc_emu_start(uch, _PROBE_ADDR, _PROBE_ADDR + len(_CPUID1_CODE), 0, 0))
            edx = _u64()
            lib.uc_reg_read(uch, REG["rdx"], ctypes.byref(edx))
            return edx.value & 0xFFFFFFFF, 0
        finally:
            lib.uc_close(uch)
