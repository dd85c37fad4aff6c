"""The KVM backend (--backend kvm): binaries run natively on the CPU, differentially against native runs
and against the Unicorn backend.

``tests/kvm_checks.c`` is freestanding (raw syscalls, no libc start-up) so that its checks do not wait on
other areas' syscalls: page-table changes seen at once (munmap, mprotect, MADV_DONTNEED, address reuse),
registers and flags kept across syscalls and page faults, CPU exceptions turned into the right signal,
AT_HWCAP matching the guest's CPUID. The testbins compare the KVM run with the Unicorn run (which must
agree byte for byte) and with the native run (pending on other areas' start-up syscalls, as in
test_testbins).
"""
import fcntl
import os
import subprocess

import pytest

from difftest import BUILD, VARIANTS, assert_results_same, assert_same, available_variants, build, pending, \
    run_hermipy

KVM = ("--backend", "kvm")
SOURCE = os.path.join(os.path.dirname(__file__), "kvm_checks.c")


def _kvm_reason() -> str | None:
    from hermipy.kvm_backend import kvm_unusable_reason
    return kvm_unusable_reason()


REASON = _kvm_reason()
needs_kvm = pytest.mark.skipif(REASON is not None, reason=f"/dev/kvm is not usable here: {REASON}")


def build_checks(variant: str):
    """kvm_checks.c for one variant, freestanding (-nostdlib), into tests/.build/<variant>/kvm_checks."""
    out = BUILD / variant / "kvm_checks"
    if out.exists() and out.stat().st_mtime >= os.stat(SOURCE).st_mtime:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(BUILD / f".lock-{variant}-kvm_checks", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not out.exists() or out.stat().st_mtime < os.stat(SOURCE).st_mtime:
            tmp = out.with_name(f".kvm_checks.{os.getpid()}.tmp")
            cmd = VARIANTS[variant] + ["-nostdlib", "-fno-builtin", "-fno-stack-protector", "-o", str(tmp), SOURCE]
            subprocess.run(cmd, check=True, capture_output=True)
            tmp.rename(out)
    return out


CHECKS = ["reuse", "regs", "auxv", "unmap", "readonly", "none", "dontneed", "ud2", "int3", "hlt", "null", "div",
          "kernel", "usage"]


@needs_kvm
@pytest.mark.parametrize("variant", available_variants())
@pytest.mark.parametrize("check", CHECKS)
def test_checks_match_native(variant, check):
    result = assert_same([build_checks(variant), check], options=KVM)
    if check == "regs":
        assert b": no" not in result.stdout
    if check == "reuse":
        assert result.stdout == b"stale values: 0\n"


@needs_kvm
@pytest.mark.parametrize("check", ["regs", "reuse", "unmap"])
def test_checks_without_rewriting(check):
    """--no-rewrite: every `syscall` keeps trapping into the LSTAR stub (the default rewrites sites)."""
    result = assert_same([build_checks("static"), check], options=(*KVM, "--no-rewrite"))
    assert b": no" not in result.stdout


@needs_kvm
def test_answers_in_guest():
    """answer_in_guest: getpid & co. reach Python once per site (its chance to give the site a trampoline),
    then never again; rax is the answer, rcx/r11 are what `syscall` leaves, flags and the red zone are kept;
    a syscall in refresh_after refreshes the answers."""
    keystone = pytest.importorskip("keystone")
    from hermipy.cpu import GuestExit, StopReason
    from hermipy.kvm_backend import KvmCpu
    from hermipy.syscalls.memory import AddressSpace, PhysicalMemory
    ram = PhysicalMemory(64 << 20)
    mem = AddressSpace(ram)
    cpu = KvmCpu(ram, mem)
    mem.cpu = cpu
    ids = {"uid": 1000}
    cpu.answer_in_guest(lambda: {39: 4242, 102: ids["uid"]}, [105])
    code = bytes(keystone.Ks(keystone.KS_ARCH_X86, keystone.KS_MODE_64).asm(
        "mov eax, 500; syscall;"                                   # learns the syscall mode
        "mov ebx, 2;"
        "again: mov qword ptr [rsp - 8], 0x5a5a; std; stc; mov eax, 39; syscall;"
        "mov r8, [rsp - 8]; pushfq; pop rdi; cld; mov rsi, rax; mov rdx, rcx; mov r10, r11; mov eax, 501; syscall;"
        "dec ebx; jnz again;"
        "call uid; mov rdi, rax; mov eax, 502; syscall;"           # a new site: Python answers
        "call uid; mov rdi, rax; mov eax, 502; syscall;"
        "mov edi, 7; mov eax, 105; syscall;"                       # setuid: Python, then the answers change
        "call uid; mov rdi, rax; mov eax, 503; syscall;"
        "mov rax, 0x100000027; syscall; mov rdi, rax; mov eax, 504; syscall;"
        "uid: mov eax, 102; syscall; ret",
        0x400000)[0])
    mem.map(0x400000, 0x1000, 7, 0x22)
    mem.poke(0x400000, code)
    mem.map(0x7FFE00000000, 0x10000, 3, 0x22)
    cpu.set_reg("rip", 0x400000)
    cpu.set_reg("rsp", 0x7FFE00010000)
    seen = []

    def on_syscall(nr, a0, a1, a2, a3, a4, a5):
        seen.append((nr, a0, a1, a2, a3, a4))
        if nr == 105:
            ids["uid"] = a0
        if nr == 504:
            raise GuestExit(0)
        return -38

    while True:
        stop = cpu.run(on_syscall)
        if stop.reason is StopReason.EXIT or not mem.populate(stop.address):
            break
    cpu.close()
    assert stop.reason is StopReason.EXIT
    nrs = [s[0] for s in seen]
    assert nrs == [500, 39, 501, 501, 102, 502, 502, 105, 503, 0x100000027, 504]
    assert seen[2][2] == (-38) & (2 ** 64 - 1)                   # the site's first call: Python's answer
    _, flags, rax, rcx, r11, red_zone = seen[3]
    assert flags & 0x401 == 0x401 and r11 == flags and rax == 4242 and red_zone == 0x5A5A
    assert 0x400000 < rcx < 0x400000 + len(code)
    assert seen[6][1] == 1000 and seen[8][1] == 7                # getuid before and after setuid(7)
    assert seen[10][1] == (-38) & (2 ** 64 - 1)                  # beyond the table: Python's answer


def _same_on_both_backends(argv, env=None):
    """The KVM run and the Unicorn run of the same binary agree byte for byte (warnings included)."""
    kvm = run_hermipy(argv, env=env, options=KVM)
    unicorn = run_hermipy(argv, env=env, options=("--backend", "unicorn"))
    assert_results_same(argv, unicorn, kvm)
    return kvm


TESTBIN_RUNS = {
    "hello": [[]],
    "args_env_auxv": [[], ["one", "", "two words"]],
    "cpu_mixed": [[], ["0"]],
    "process_ids": [[]],
    "mmap_patterns": [["anon", "fixed", "reserve", "remap", "madvise", "big", "brk"]],
}


@needs_kvm
@pytest.mark.parametrize("variant", available_variants())
@pytest.mark.parametrize("name", sorted(TESTBIN_RUNS))
def test_testbins_same_as_unicorn(name, variant):
    env = {"LANG": "C", "PATH": "/usr/bin:/bin", "HERMI_A": "alpha"}
    for args in TESTBIN_RUNS[name]:
        _same_on_both_backends([build(name, variant), *args], env=env)


@needs_kvm
@pytest.mark.parametrize("variant", ["static", "musl"])
def test_malloc_stress_same_as_unicorn(variant):
    """Thousands of mmap/munmap/madvise: every page-table downgrade must reach the CPU's translations."""
    result = _same_on_both_backends([build("malloc_stress", variant)])
    assert b"bad 0" in result.stdout


def _startup_pending(variant):
    from test_testbins import STARTUP
    return pending(*STARTUP[variant], owner="file system / io / info / time")


@needs_kvm
@pytest.mark.parametrize("variant", [pytest.param(v, marks=_startup_pending(v)) for v in available_variants()])
@pytest.mark.parametrize("name", ["hello", "cpu_mixed", "malloc_stress"])
def test_testbins_match_native(name, variant):
    assert_same([build(name, variant)], options=KVM)


@needs_kvm
def test_auto_picks_kvm():
    from hermipy.runner import create_cpu
    from hermipy.syscalls.kernel import Kernel, Options
    cpu = create_cpu("auto", Kernel(Options(memory=64 << 20)))
    assert cpu.name == "kvm"
    cpu.close()


def test_unusable_kvm(monkeypatch):
    """--backend kvm says why it cannot run; auto quietly falls back to Unicorn."""
    from hermipy import kvm_backend
    from hermipy.errors import HermipyError
    from hermipy.runner import create_cpu
    from hermipy.syscalls.kernel import Kernel, Options
    monkeypatch.setattr(kvm_backend, "KVM_PATH", "/nonexistent/kvm")
    monkeypatch.setattr(kvm_backend, "_system_fd", -1)          # (not the one this process opened already)
    assert kvm_backend.kvm_unusable_reason()
    with pytest.raises(HermipyError, match="--backend kvm: .*nonexistent"):
        create_cpu("kvm", Kernel(Options(memory=64 << 20)))
    assert create_cpu("auto", Kernel(Options(memory=64 << 20))).name == "unicorn"


def test_stub_cache_is_current():
    """hermipy/kvm_stub_cache.py holds exactly what keystone assembles today (else: python -m hermipy.kvm_stubs)."""
    pytest.importorskip("keystone")
    from hermipy import kvm_stubs
    from hermipy.kvm_stub_cache import STUBS
    for source, base in kvm_stubs.cached_sources():
        code, labels = kvm_stubs.assemble(source, base, cached=False)
        assert STUBS.get(kvm_stubs._key(source, base)) == (code.hex(), labels), "run: python -m hermipy.kvm_stubs"


@needs_kvm
def test_fpu_state_reaches_the_guest():
    """write_fpu_state / set_reg("mxcsr") change what the guest's stmxcsr and fnstcw see, and back."""
    import struct
    keystone = pytest.importorskip("keystone")
    from hermipy.cpu import GuestExit, StopReason
    from hermipy.kvm_backend import KvmCpu
    from hermipy.syscalls.memory import AddressSpace, PhysicalMemory
    ram = PhysicalMemory(64 << 20)
    mem = AddressSpace(ram)
    cpu = KvmCpu(ram, mem)
    mem.cpu = cpu
    code = bytes(keystone.Ks(keystone.KS_ARCH_X86, keystone.KS_MODE_64).asm(
        "mov eax, 39; syscall; stmxcsr [rsp - 16]; mov edi, [rsp - 16]; fnstcw [rsp - 16];"
        "movzx esi, word ptr [rsp - 16]; mov eax, 39; syscall; ldmxcsr [rsp - 32]; mov eax, 39; syscall",
        0x400000)[0])
    mem.map(0x400000, 0x1000, 7, 0x22)
    mem.poke(0x400000, code)
    mem.map(0x7FFE00000000, 0x10000, 3, 0x22)
    mem.write(0x7FFE00010000 - 32, struct.pack("<I", 0x5F80))
    cpu.set_reg("rip", 0x400000)
    cpu.set_reg("rsp", 0x7FFE00010000)
    seen = []

    def on_syscall(nr, a0, a1, *rest):
        seen.append((a0, a1))
        if len(seen) == 1:
            image = bytearray(cpu.read_fpu_state())
            assert struct.unpack_from("<HxxxxxxxxxxxxxxxxxxxxxxI", image, 0) == (0x37F, 0x1F80)
            struct.pack_into("<H", image, 0, 0x77F)
            cpu.write_fpu_state(bytes(image))
            cpu.set_reg("mxcsr", 0x3F80)
        if len(seen) == 3:
            raise GuestExit(cpu.get_reg("mxcsr") == 0x5F80)
        return 0

    while True:
        stop = cpu.run(on_syscall)
        if stop.reason is StopReason.EXIT or not mem.populate(stop.address):
            break
    cpu.close()
    assert seen[1] == (0x3F80, 0x77F)
    assert stop.reason is StopReason.EXIT and stop.status == 1


# -- guest threads: one VM, one vCPU per thread (KvmCpu.spawn), kick() ----------------------------------------
CODE_VA, STACK_TOP, DATA_VA = 0x400000, 0x7FFE00010000, 0x600000


def _vm_with(asm: str):
    """A KvmCpu over fresh RAM running ``asm`` (assembled at CODE_VA), a stack and a populated data page."""
    keystone = pytest.importorskip("keystone")
    from hermipy.kvm_backend import KvmCpu
    from hermipy.syscalls.memory import AddressSpace, PhysicalMemory
    ram = PhysicalMemory(64 << 20)
    mem = AddressSpace(ram)
    cpu = KvmCpu(ram, mem)
    mem.cpu = cpu
    code = bytes(keystone.Ks(keystone.KS_ARCH_X86, keystone.KS_MODE_64).asm(asm, CODE_VA)[0])
    mem.map(CODE_VA, 0x1000, 7, 0x22)
    mem.poke(CODE_VA, code)
    mem.map(STACK_TOP - 0x10000, 0x10000, 3, 0x22)
    mem.poke(STACK_TOP - 0x1000, bytes(0x1000))
    mem.map(DATA_VA, 0x2000, 3, 0x22)
    mem.poke(DATA_VA, bytes(0x2000))
    cpu.set_reg("rip", CODE_VA)
    cpu.set_reg("rsp", STACK_TOP)
    return cpu, mem, code


def _drive(cpu, mem, on_syscall):
    """run() until a stop the test must see (EXIT, INTERRUPT, or a fault populate cannot resolve)."""
    from hermipy.cpu import StopReason
    while True:
        stop = cpu.run(on_syscall)
        if stop.reason is not StopReason.FAULT or not mem.populate(stop.address):
            return stop


@pytest.fixture
def kick_signal():
    """SIGKICK (64) with a no-op handler, as the kernel installs it: a KVM_RUN in progress returns EINTR."""
    import signal
    previous = signal.signal(64, lambda *_: None)
    yield 64
    signal.signal(64, previous)


def _thread(target, *args):
    import threading
    result = {}

    def body():
        try:
            result["value"] = target(*args)
        except BaseException as err:       # reported by the test
            result["error"] = err
    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, result


@needs_kvm
def test_threads_run_in_parallel():
    """spawn() inside a syscall (as clone does): parent and child count to N, each on its own counter, the
    child on another host thread; both totals are exact (the wall time is printed, not asserted)."""
    import time
    from hermipy.cpu import GuestExit, StopReason
    n = 300_000_000
    cpu, mem, _ = _vm_with(f"mov eax, 501; syscall; mov rcx, {n}; l: inc qword ptr [rdi]; dec rcx; jnz l;"
                           "mov rsi, qword ptr [rdi]; mov eax, 500; syscall; hlt")
    cpu.set_reg("rdi", DATA_VA)
    children, threads, done = [], [], {}

    def on_syscall(nr, a0, a1, *rest):
        if nr == 501:                         # clone: the child counts at DATA_VA + 0x1000, on its own thread
            child = cpu.spawn()
            child.set_reg("rax", 0)
            child.set_reg("rdi", DATA_VA + 0x1000)
            children.append(child)
            threads.append(_thread(_drive, child, mem, on_syscall))
            return 1
        done[a0] = a1
        raise GuestExit(0)

    start = time.perf_counter()
    parent_stop = _drive(cpu, mem, on_syscall)
    (thread, result), = threads
    thread.join(60)
    elapsed = time.perf_counter() - start
    assert not thread.is_alive(), "the child vCPU did not finish"
    assert "error" not in result, result
    assert parent_stop.reason is StopReason.EXIT and result["value"].reason is StopReason.EXIT
    assert done == {DATA_VA: n, DATA_VA + 0x1000: n}
    print(f"two vCPUs, {n} increments each: {elapsed:.2f} s")
    children[0].close()
    assert cpu._vm.fd >= 0                # the VM lives on with the parent's vCPU
    cpu.close()


def _kick_until_stopped(cpu, thread, signo, timeout=10.0):
    """Kick ``cpu`` as the kernel does (kick(), then SIGKICK to its thread), again every 2 ms, until its
    run() returns; say what the vCPU was doing if it never does."""
    import signal
    import time
    from hermipy.kvm_backend import W_RIP
    deadline = time.monotonic() + timeout
    while thread.is_alive() and time.monotonic() < deadline:
        cpu.kick()
        try:
            signal.pthread_kill(thread.ident, signo)
        except ProcessLookupError:
            break
        thread.join(0.002)
    assert not thread.is_alive(), f"kick ignored: rip={cpu._w[W_RIP]:#x} mode={cpu._mode} kick={cpu._kick}"


@needs_kvm
def test_kick_stops_a_spinning_vcpu(kick_signal):
    """kick() from another thread stops a vCPU in `jmp $` (in another thread) with Stop(INTERRUPT) at the
    loop, registers the application's; run() then resumes it where it was."""
    import time
    from hermipy.cpu import StopReason
    cpu, mem, code = _vm_with("mov eax, 501; syscall; mov rbx, 7; spin: jmp spin; hlt")
    spin = CODE_VA + len(code) - 3
    seen = []

    def on_syscall(nr, *args):
        seen.append(nr)
        return 0

    for _ in range(3):
        thread, result = _thread(_drive, cpu, mem, on_syscall)
        time.sleep(0.05)
        assert thread.is_alive()
        _kick_until_stopped(cpu, thread, kick_signal)
        assert "error" not in result, result
        stop = result["value"]
        assert stop.reason is StopReason.INTERRUPT and stop.rip == spin, stop
        assert cpu.get_reg("rip") == spin and cpu.get_reg("rsp") == STACK_TOP and cpu.get_reg("rbx") == 7
    assert seen == [501]
    cpu.close()


@needs_kvm
def test_kick_while_not_running():
    """A kick that comes while the vCPU is not in run() (its thread is in the kernel) makes the next run()
    return INTERRUPT at once, registers untouched; a kick during a syscall stops the run right after it."""
    from hermipy.cpu import GuestExit, StopReason
    cpu, mem, code = _vm_with("mov eax, 501; syscall; mov eax, 502; syscall; mov eax, 500; syscall; hlt")
    cpu.kick()
    stop = cpu.run(lambda *a: 0)
    assert stop.reason is StopReason.INTERRUPT and stop.rip == CODE_VA
    assert cpu.get_reg("rip") == CODE_VA and cpu.get_reg("rsp") == STACK_TOP
    seen = []

    def on_syscall(nr, *args):
        seen.append(nr)
        if nr == 501:
            cpu.kick()
        if nr == 500:
            raise GuestExit(0)
        return 0

    stop = cpu.run(on_syscall)
    assert stop.reason is StopReason.INTERRUPT and seen == [501]
    assert cpu.get_reg("rip") == CODE_VA + 7 and cpu.get_reg("rax") == 0     # right after the syscall
    assert cpu.run(on_syscall).reason is StopReason.EXIT and seen == [501, 502, 500]
    cpu.close()


@needs_kvm
def test_kick_lands_only_at_application_code(kick_signal):
    """A vCPU whose time goes mostly into hermipy's stubs (getpid answered by the LSTAR entry in a loop) is
    kicked many times: each INTERRUPT has rip in the application's loop and rsp the application's."""
    from hermipy.cpu import StopReason
    cpu, mem, code = _vm_with("mov eax, 501; syscall; l: mov eax, 39; syscall; mov eax, 39; syscall; jmp l")
    cpu.answer_in_guest(lambda: {39: 1234}, [])
    cpu.rewrite = True
    for _ in range(40):
        thread, result = _thread(_drive, cpu, mem, lambda *a: 0)
        thread.join(0.002)
        _kick_until_stopped(cpu, thread, kick_signal)
        stop = result["value"]
        assert stop.reason is StopReason.INTERRUPT, stop
        assert CODE_VA + 7 <= stop.rip < CODE_VA + len(code), stop
        assert cpu.get_reg("rsp") == STACK_TOP
    cpu.close()


@needs_kvm
def test_spawn_copies_registers_and_fs_base():
    """The child of spawn() starts with the parent's GPRs, rip, rflags, FS/GS base and FPU state, runs from
    there, and the VM outlives the parent's vCPU while the child lives (and the other way round)."""
    import struct
    from hermipy.cpu import GuestExit, StopReason
    cpu, mem, code = _vm_with("mov eax, 501; syscall; mov eax, 502; xor edi, edi; mov rdi, qword ptr fs:[rdi];"
                              "stmxcsr [rsp - 8]; mov esi, [rsp - 8]; syscall; hlt")
    mem.poke(DATA_VA, struct.pack("<Q", 0x1122334455667788))
    for i, reg in enumerate(("rbx", "rbp", "r12", "r13", "r14", "r15")):
        cpu.set_reg(reg, 0x1000 + i)
    cpu.set_fs_base(DATA_VA)
    cpu.set_gs_base(0x12345000)
    cpu.set_reg("mxcsr", 0x3F80)
    spawned, seen, flags = [], [], []

    def on_syscall(nr, a0, a1, *rest):
        if nr == 501:
            spawned.append(cpu.spawn())
            flags.append(cpu.get_reg("rflags"))
            return 0
        seen.append((nr, a0, a1))
        raise GuestExit(0)

    assert _drive(cpu, mem, on_syscall).reason is StopReason.EXIT
    child, = spawned
    cpu_flags, = flags
    assert child.get_fs_base() == DATA_VA and child.get_gs_base() == 0x12345000
    assert child.get_reg("mxcsr") == 0x3F80
    assert child.get_reg("rip") == CODE_VA + 7 and child.get_reg("rbx") == 0x1000 and child.get_reg("r15") == 0x1005
    assert child.get_reg("rflags") == cpu_flags
    assert child.get_reg("rsp") == STACK_TOP and child.get_reg("rcx") == CODE_VA + 7
    cpu.close()                          # the child's vCPU keeps the VM
    assert _drive(child, mem, on_syscall).reason is StopReason.EXIT
    assert seen == [(502, 0x1122334455667788, 0x3F80), (502, 0x1122334455667788, 0x3F80)]
    child.close()


@needs_kvm
def test_unmap_reaches_a_parked_thread():
    """Page-table coherence across vCPUs: a page thread B has read is unmapped by thread A while B waits in a
    syscall; when B resumes, its next read of the page faults (its translations were dropped)."""
    import threading
    from hermipy.cpu import GuestExit, StopReason, VEC_PF
    cpu, mem, code = _vm_with("mov eax, 501; syscall; test rax, rax; jz child;"
                              "mov eax, 520; syscall; mov eax, 521; syscall; mov eax, 500; syscall; hlt;"
                              "child: mov rsi, [rdi]; mov eax, 510; syscall; mov rsi, [rdi]; mov eax, 511; syscall; hlt")
    cpu.set_reg("rdi", DATA_VA + 0x1000)
    mem.poke(DATA_VA + 0x1000, b"\x2a")
    parked, release, threads, seen = threading.Event(), threading.Event(), [], []

    def on_syscall(nr, a0, a1, *rest):
        seen.append((nr, a1))
        if nr == 501:
            child = cpu.spawn()
            child.set_reg("rax", 0)
            threads.append((child, *_thread(child.run, on_syscall)))
            return 1
        if nr == 510:
            parked.set()
            release.wait(10)
        elif nr == 520:
            assert parked.wait(10)
            mem.unmap(DATA_VA + 0x1000, 0x1000)
        elif nr == 521:
            release.set()
        elif nr in (500, 511):
            raise GuestExit(0)
        return 0

    assert cpu.run(on_syscall).reason is StopReason.EXIT
    (child, thread, result), = threads
    thread.join(10)
    stop = result["value"]
    assert stop.reason is StopReason.FAULT and stop.vector == VEC_PF and stop.address == DATA_VA + 0x1000, (stop, seen)
    assert (510, 0x2A) in seen and not any(nr == 511 for nr, _ in seen)
    child.close()
    cpu.close()


@needs_kvm
def test_vcpus_are_reused_and_bounded(monkeypatch):
    """A closed vCPU goes back to its VM's pool for the next spawn(); beyond MAX_VCPUS live ones: OSError."""
    from hermipy import kvm_backend
    cpu, mem, code = _vm_with("hlt")
    monkeypatch.setattr(kvm_backend, "MAX_VCPUS", 3)
    a = cpu.spawn()
    b = cpu.spawn()
    with pytest.raises(OSError, match="too many threads"):
        cpu.spawn()
    b.close()
    c = cpu.spawn()
    assert cpu._vm.created == 3 and c.area.index == 2
    for each in (a, c, cpu):
        each.close()
