"""Syscall-site rewriting (issue 5): the differential suite's representative subset with rewriting on (the
default) and off (``--no-rewrite``) on each backend; ``hermipy rewrite`` outputs run under hermipy exactly
as the originals run natively, and ``hermipy analyze`` shows their rewritten sites.

Each run also gets a fresh, empty plan cache (``XDG_CACHE_HOME``): no test depends on what an earlier
``hermipy analyze`` left in the user's cache; ``test_cached_plan_spares_shared_sites`` fills one on purpose.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from difftest import assert_results_same, assert_same, build, run_hermipy, run_native

BUSYBOX = "/usr/bin/busybox"
needs_busybox = pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="busybox-static is not installed")


def _kvm_reason() -> str | None:
    from hermipy.kvm_backend import kvm_unusable_reason
    return kvm_unusable_reason()


KVM_REASON = _kvm_reason()
BACKENDS = ["unicorn", pytest.param("kvm", marks=pytest.mark.skipif(
    KVM_REASON is not None, reason=f"/dev/kvm is not usable here: {KVM_REASON}"))]
MODES = {"rewrite": (), "no-rewrite": ("--no-rewrite",)}
ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": "/nonexistent", "TZ": "UTC", "HERMI_A": "alpha"}


def _files(d: str) -> None:
    Path(d, "numbers.txt").write_text("".join(f"{(i * 7919) % 1000}\n" for i in range(300)))
    Path(d, "sub").mkdir()
    Path(d, "sub", "one.txt").write_text("one\n")
    for path in Path(d).rglob("*"):
        os.utime(path, (1_000_000_000, 1_000_000_000))


# name -> (argv maker, needs busybox). Testbins: static glibc and musl start-up, ids and credentials (the
# in-guest answers, refreshed by set*id), memory; busybox (static) and Debian programs (dynamic: ld.so and
# libc's sites are mapped by the guest and rewritten as they trap).
CASES = {
    "hello-static": lambda: [build("hello", "static")],
    "process_ids-musl": lambda: [build("process_ids", "musl")],
    "info-static": lambda: [build("info", "static")],
    "mmap_patterns-static-pie": lambda: [build("mmap_patterns", "static-pie"), "anon", "fixed", "remap", "brk"],
    "busybox-sh": lambda: [BUSYBOX, "sh", "-c", "echo $((6 * 7)); id -u; sort -n numbers.txt | tail -n 2; "
                                                "cat sub/one.txt; ls sub"],
    "ls-la": lambda: ["ls", "-la", "--time-style=+%Y", "sub"],
    "sort-n": lambda: ["sort", "-n", "numbers.txt"],
}


@pytest.fixture(autouse=True)
def _own_plan_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _env(tmp_path) -> dict:
    return dict(ENV, XDG_CACHE_HOME=str(tmp_path / "cache"))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES)
def test_same_as_native(case, backend, mode, tmp_path):
    argv = CASES[case]()
    if argv[0] == BUSYBOX and not os.path.exists(BUSYBOX) or not shutil.which(str(argv[0]), path=ENV["PATH"]):
        pytest.skip(f"{argv[0]} is not installed")
    assert_same(argv, env=_env(tmp_path), setup=_files, options=("--backend", backend, *MODES[mode]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_strace_shows_answered_syscalls(backend, tmp_path):
    """Under --strace nothing is answered inside the guest: getpid & co. show like every other call."""
    trace = tmp_path / "trace"
    result = run_hermipy([build("process_ids", "static")], env=_env(tmp_path),
                         options=("--backend", backend, "--strace-file", str(trace)))
    assert result.status == 0
    calls = {line.split("(")[0] for line in trace.read_text().splitlines()}
    assert {"getpid", "getppid", "getuid", "geteuid", "getgid", "getegid"} <= calls, calls


def hermipy(*args, env=None):
    return subprocess.run([sys.executable, "-m", "hermipy", *map(str, args)], capture_output=True, timeout=120,
                          env=env)


@pytest.fixture(scope="module")
def rewritten(tmp_path_factory) -> dict[str, tuple[str, Path, int]]:
    """name -> (original, rewritten copy, number of sites `hermipy rewrite` reported)."""
    d = tmp_path_factory.mktemp("rewritten")
    env = dict(os.environ, XDG_CACHE_HOME=str(d / "cache"))
    out = {}
    originals = {"info-static": build("info", "static"), "hello-musl": build("hello", "musl"),
                 "process_ids-static-pie": build("process_ids", "static-pie"),
                 "signals-static": build("signals", "static"), "interrupt-musl": build("interrupt", "musl")}
    if os.path.exists(BUSYBOX):
        originals["busybox"] = BUSYBOX
    for name, original in originals.items():
        target = d / name / Path(original).name          # busybox picks the applet by its own name
        target.parent.mkdir()
        proc = hermipy("rewrite", original, "-o", target, env=env)
        assert proc.returncode == 0, proc.stderr
        count = int(proc.stdout.split(b": ")[1].split()[0])
        out[name] = (str(original), target, count)
    return out


# signals and interrupt: signal frames set up, sigreturns made and interrupted calls restarted (SA_RESTART) or
# failed with EINTR at `out` sites: Unicorn must leave its translation block right after such an `out`
# (unicorn_backend._LEAVE_AFTER_OUT_CODE); busybox sh restarts a wait4 interrupted by SIGCHLD.
REWRITTEN_RUNS = {"info-static": [[]], "hello-musl": [[]], "process_ids-static-pie": [[]], "signals-static": [[]],
                  "interrupt-musl": [["wait"], ["pipe"], ["sleep"]],
                  "busybox": [["sh", "-c", "echo $((6 * 7)); id -u; sort -n numbers.txt | tail -n 2"],
                              ["ls", "-l", "sub"], ["sha256sum", "numbers.txt"]]}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", REWRITTEN_RUNS)
def test_rewritten_binary_runs_like_the_original(rewritten, name, backend, tmp_path):
    if name not in rewritten:
        pytest.skip("busybox-static is not installed")
    original, copy, count = rewritten[name]
    assert count > 10
    for args in REWRITTEN_RUNS[name]:
        native_dir, hermipy_dir = tmp_path / "native", tmp_path / "hermipy"
        for d in (native_dir, hermipy_dir):
            d.mkdir(exist_ok=True)
            if not (d / "sub").exists():
                _files(str(d))
        native = run_native([original, *args], cwd=native_dir, env=ENV)
        emulated = run_hermipy([copy, *args], cwd=hermipy_dir, env=_env(tmp_path), options=("--backend", backend))
        assert_results_same([copy, *args], native, emulated)


def test_rewritten_binary_is_marked_and_analyzed(rewritten):
    from hermipy.rewriter.plan import SitePolicy, is_rewritten
    original, copy, count = rewritten["info-static"]
    assert is_rewritten(str(copy)) and not is_rewritten(original)
    assert not SitePolicy(str(copy)).may_rewrite(0)              # hermipy run leaves its sites alone
    proc = hermipy("analyze", "--json", copy)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    sites = report["sites"]
    done = [s for s in sites if s["rewritten"]]
    assert len(done) == count == report["objects"][0]["rewritten_sites"]
    assert all(s["kind"] == "known" and s["name"] not in ("getpid", "getuid") for s in done)
    assert any(not s["rewritten"] for s in sites)                # syscall() and in-guest answers stay
    original_report = json.loads(hermipy("analyze", "--json", original).stdout)
    assert [(s["address"], s["nr"]) for s in original_report["sites"]] == [(s["address"], s["nr"]) for s in sites]
    text = hermipy("analyze", copy).stdout.decode()
    assert f"{count} rewritten (hermipy rewrite)" in text and " rewritten\n" in text
    data, before = copy.read_bytes(), Path(original).read_bytes()
    offsets = [s["offset"] for s in done]
    assert all(data[o:o + 2] == b"\xe6\xe0" and before[o:o + 2] == b"\x0f\x05" for o in offsets)


def test_rewrite_errors(rewritten, tmp_path):
    _, copy, _ = rewritten["hello-musl"]
    proc = hermipy("rewrite", copy, "-o", tmp_path / "again")
    assert proc.returncode == 126 and b"already rewritten" in proc.stderr
    proc = hermipy("rewrite", tmp_path / "missing", "-o", tmp_path / "out")
    assert proc.returncode == 127 and proc.stderr.startswith(b"hermipy: ")


@needs_busybox
def test_cached_plan_spares_shared_sites(tmp_path):
    """After `hermipy analyze`, run finds the plan without capstone; syscall() sites are not rewritten."""
    from hermipy.rewriter.plan import SitePolicy
    assert hermipy("analyze", BUSYBOX, env=dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))).returncode == 0
    policy = SitePolicy(BUSYBOX)
    assert policy.shared and not any(policy.may_rewrite(offset) for offset in policy.shared)
    code = ("import sys\nfrom hermipy.cli import main\nrc = main(['run', sys.argv[1], 'true'])\n"
            "from hermipy.rewriter import plan\n"
            "print(sorted(m for m in ('capstone', 'lief', 'hermipy.rewriter.scan') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code, BUSYBOX], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache")))
    assert proc.stdout.splitlines()[-1] == "[]", (proc.stdout, proc.stderr)


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_rewrite_flag(backend, tmp_path):
    result = run_hermipy([build("hello", "musl")], env=_env(tmp_path), options=("--backend", backend, "--no-rewrite"))
    assert result.status == 0 and result.stdout == b"Hello, world!\n"
    assert b"--no-rewrite" in hermipy("run", "--help").stdout


# Per-site trampolines (rewriter/trampoline.py): a program whose libc wrappers of getpid & co. are patched at
# their first call must see the same answers as the kernel gives through a trapping syscall(2), in a fork
# child (new pid, new parent), after setpgid and after set*id changes. `code` prints the bytes at the
# wrappers' `syscall`: 0f05 natively and when nothing is rewritten, eb01 (jmp short into the fill) patched.
ANSWERS_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void check(const char *what)
{
    long pid = syscall(SYS_getpid), ppid = syscall(SYS_getppid), tid = syscall(SYS_gettid),
         uid = syscall(SYS_getuid), euid = syscall(SYS_geteuid), gid = syscall(SYS_getgid),
         egid = syscall(SYS_getegid), pgrp = syscall(SYS_getpgrp);
    int ok = 1;
    for (int i = 0; i < 2000; i++)
        ok &= getpid() == pid && getppid() == ppid && gettid() == tid && getuid() == uid && geteuid() == euid
              && getgid() == gid && getegid() == egid && getpgrp() == pgrp;
    printf("%s: %s uid=%d euid=%d gid=%d egid=%d\n", what, ok ? "consistent" : "WRONG", getuid(), geteuid(),
           getgid(), getegid());
    fflush(stdout);
}

static void show(const char *name, const unsigned char *code)
{
    printf("%s %02x%02x\n", name, code[5], code[6]);
}

int main(int argc, char **argv)
{
    check("start");
    if (argc > 1 && !strcmp(argv[1], "code")) {
        show("getpid", (const unsigned char *)getpid);
        show("getppid", (const unsigned char *)getppid);
        return 0;
    }
    pid_t parent = getpid(), child = fork();
    if (child == 0) {
        check("child");
        printf("child: parent is %s, pid is %s\n", getppid() == parent ? "right" : "WRONG",
               getpid() != parent && getpid() == syscall(SYS_getpid) ? "new" : "WRONG");
        pid_t grandchild = fork();
        if (grandchild == 0) {
            check("grandchild");
            _exit(0);
        }
        waitpid(grandchild, NULL, 0);
        _exit(0);
    }
    int status;
    waitpid(child, &status, 0);
    check("parent after fork");
    if (setpgid(0, 0) == 0)
        check("after setpgid");
    if (setresgid(1234, 1234, 0) == 0 && setresuid(4321, 4321, 0) == 0) {
        check("after setres*id");
        if (setresuid(-1, 0, -1) == 0 && setresgid(0, 0, 0) == 0)
            check("euid 0 again");
    } else {
        printf("setres*id: %s\n", strerror(errno));
    }
    return 0;
}
"""
ANSWER_VARIANTS = ("static", "static-pie", "musl")


@pytest.fixture(scope="module")
def answers_bins(tmp_path_factory) -> dict[str, Path]:
    from difftest import VARIANTS
    d = tmp_path_factory.mktemp("answers")
    src = d / "answers.c"
    src.write_text(ANSWERS_C)
    out = {}
    for variant in ANSWER_VARIANTS:
        if shutil.which(VARIANTS[variant][0]):
            out[variant] = d / f"answers-{variant}"
            subprocess.run(VARIANTS[variant] + ["-o", str(out[variant]), str(src)], check=True)
    return out


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("variant", ANSWER_VARIANTS)
def test_answered_syscalls_same_as_native(answers_bins, variant, backend, mode, tmp_path):
    if variant not in answers_bins:
        pytest.skip(f"no compiler for {variant}")
    native = assert_same([answers_bins[variant]], env=_env(tmp_path), options=("--backend", backend, *MODES[mode]))
    assert b"WRONG" not in native.stdout and native.stdout.count(b"consistent") >= 5


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("variant", ANSWER_VARIANTS)
def test_answered_sites_get_trampolines(answers_bins, variant, backend, tmp_path):
    """Patched when rewriting; untouched under --no-rewrite; no trampoline under --strace (there the KVM
    backend makes every trapped site a direct exit, `out 0xe0, al`: e6e0)."""
    if variant not in answers_bins:
        pytest.skip(f"no compiler for {variant}")
    argv = [answers_bins[variant], "code"]
    assert run_native(argv).stdout.splitlines()[1:] == [b"getpid 0f05", b"getppid 0f05"]
    runs = {"rewrite": ((), b"eb01"), "no-rewrite": (("--no-rewrite",), b"0f05"),
            "strace": (("--strace-file", str(tmp_path / "trace")), b"e6e0" if backend == "kvm" else b"0f05")}
    for name, (options, expected) in runs.items():
        result = run_hermipy(argv, env=_env(tmp_path), options=("--backend", backend, *options))
        assert result.status == 0, (name, result.stderr)
        assert result.stdout.splitlines()[1:] == [b"getpid " + expected, b"getppid " + expected], name


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("variant", ["static", "static-pie", "musl", "dynamic"])
def test_generic_syscall_same_as_native(variant, backend, mode, tmp_path):
    """The C library's syscall(3) (glibc's gets a dispatching trampoline when rewriting): answered and other
    numbers, errors, fork, and a thread blocked inside it while its site is patched."""
    native = assert_same([build("generic_syscall", variant)], env=_env(tmp_path),
                         options=("--backend", backend, *MODES[mode]))
    for fact in (b"ids through syscall() agree with the wrappers: 1",
                 b"a thread blocked in syscall() meanwhile returned normally: 1",
                 b"in a fork child, ids through syscall() are the child's: 1",
                 b"syscall() under a 1 kHz timer: answers right 1, handler ran 100 times: 1"):
        assert fact in native.stdout, fact


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("variant", ["static", "static-pie"])
def test_glibc_syscall_function_gets_a_dispatching_trampoline(variant, backend, tmp_path):
    """glibc's syscall(): `mov r9, [rsp+8]` before its `syscall` becomes a jmp rel32 when rewriting, and stays
    under --no-rewrite and --strace."""
    argv = [build("generic_syscall", variant), "code"]
    assert run_native(argv).stdout == b"4c8b4c2408\n"
    for options, rewritten in (((), True), (("--no-rewrite",), False),
                               (("--strace-file", str(tmp_path / "trace")), False)):
        result = run_hermipy(argv, env=_env(tmp_path), options=("--backend", backend, *options))
        assert result.status == 0, result.stderr
        assert result.stdout.startswith(b"e9") if rewritten else result.stdout == b"4c8b4c2408\n", options


def test_dispatch_bytes():
    """The hand-assembled dispatching trampoline decodes to the documented instructions."""
    import capstone
    from hermipy.kvm_stubs import ANSWER_SLOTS, ANSWERS_VA
    from hermipy.rewriter.trampoline import DISPATCH_SIZE, dispatch_code
    at, site = 0x3FF000, 0x401017
    code = dispatch_code(at, site, ANSWERS_VA)
    assert len(code) == DISPATCH_SIZE
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    insns = [(i.address, i.mnemonic, i.op_str) for i in md.disasm(code, at)]
    text = [(m, o) for _, m, o in insns]
    slow = int(text[4][1], 16)
    assert text[:12] == [("mov", "r9, qword ptr [rsp + 8]"), ("pushfq", ""), ("pop", "r11"),
                         ("cmp", f"rax, {ANSWER_SLOTS:#x}"), ("jae", f"{slow:#x}"), ("movabs", f"rcx, {ANSWERS_VA:#x}"),
                         ("mov", "rcx, qword ptr [rcx + rax*8]"), ("bt", "rcx, 0x3f"), ("jb", f"{slow:#x}"),
                         ("mov", "rax, rcx"), ("push", "r11"), ("popfq", "")]
    assert text[12][0] == "lea" and text[13] == ("jmp", f"{site + 2:#x}")
    assert insns[14][0] == slow and text[14:17] == [("push", "r11"), ("popfq", ""), ("jmp", f"{site:#x}")]
    assert set(text[17:]) == {("int3", "")}


def test_trampoline_bytes():
    """The hand-assembled trampoline decodes to the documented instructions, returning after the site."""
    import capstone
    from hermipy.kvm_stubs import ANSWERS_VA, TRAMPOLINE_STACK_TOP
    from hermipy.rewriter.trampoline import TRAMPOLINE_SIZE, trampoline_code
    at, site = 0x3FF030, 0x401005
    code = trampoline_code(at, site, ANSWERS_VA, TRAMPOLINE_STACK_TOP, 110)
    assert len(code) == TRAMPOLINE_SIZE
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    insns = [(i.mnemonic, i.op_str) for i in md.disasm(code, at)]
    assert insns[:8] == [("mov", "rcx, rsp"), ("movabs", f"rsp, {TRAMPOLINE_STACK_TOP:#x}"), ("pushfq", ""),
                         ("pop", "r11"), ("mov", "rsp, rcx"), ("movabs", f"rax, qword ptr [{ANSWERS_VA + 8 * 110:#x}]"),
                         ("lea", f"rcx, [rip + {site + 2 - (at + 0x24):#x}]"), ("jmp", f"{site + 2:#x}")]
    assert set(insns[8:]) == {("int3", "")}


def test_wrapper_padding_is_strict():
    """Only `mov eax, nr; syscall; ret` at an aligned entry followed by fill up to the next one qualifies."""
    from hermipy.rewriter.trampoline import is_fill, wrapper_padding
    glibc = bytes.fromhex("b86e0000000f05c3") + bytes.fromhex("0f1f840000000000")
    assert wrapper_padding(glibc, 0x1000, 0x1005, 110) == 0x1008
    assert wrapper_padding(glibc, 0x1000, 0x1005, 39) is None                  # another number
    assert wrapper_padding(b"\x90" + glibc[:15], 0x1000, 0x1006, 110) is None   # entry not aligned
    assert wrapper_padding(glibc[:7] + b"\x89" + glibc[8:], 0x1000, 0x1005, 110) is None   # no ret
    assert wrapper_padding(glibc[:8] + b"\x48\x89\xc7" + glibc[11:], 0x1000, 0x1005, 110) is None   # code, not fill
    assert wrapper_padding(glibc[:12], 0x1000, 0x1005, 110) is None             # fill not all there
    assert is_fill(bytes.fromhex("662e0f1f840000000000")) and is_fill(bytes.fromhex("6666662e0f1f840000000000"))
    assert is_fill(b"\xcc\xcc\x90") and not is_fill(b"\x00\x00")
