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

from difftest import BUILD, VARIANTS, Result, assert_results_same, assert_same, available_variants, build, \
    pending, run_hermipy, run_native

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
    assert kvm_backend.kvm_unusable_reason()
    with pytest.raises(HermipyError, match="--backend kvm: .*nonexistent"):
        create_cpu("kvm", Kernel(Options(memory=64 << 20)))
    assert create_cpu("auto", Kernel(Options(memory=64 << 20))).name == "unicorn"


def test_stub_cache_is_current():
    """hermipy/kvm_stub_cache.py holds exactly what keystone assembles today (else: python -m hermipy.kvm_stubs)."""
    pytest.importorskip("keystone")
    from hermipy import kvm_stubs
    from hermipy.kvm_stub_cache import STUBS
    for source, base in kvm_stubs.stub_sources():
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
