"""One run of a guest: build the kernel, load the binary, drive the CPU until the guest exits."""
import os
import signal
import sys

from hermipy.cpu import VEC_PF, GuestExit, ReplaceImage, StopReason
from hermipy.syscalls.kernel import Kernel, Options
from hermipy.syscalls.table import ENTRIES, NUMBERS, Dispatcher, load_handlers

# Syscalls whose result is kernel state the guest may read: answered inside the guest from an answer page
# (kvm_stubs: the KVM LSTAR entry's; the per-site trampolines of rewriter/trampoline.py on both backends),
# from their own handlers' results...
IN_GUEST = ("getpid", "getppid", "gettid", "getuid", "geteuid", "getgid", "getegid", "getpgrp")
# ...recomputed after each of the calls that can change them (kernel/sys.c: the set*id family changes the
# ids, setpgid/setsid the process group; fork & co. the pid and parent pid in a child that keeps its CPU,
# as Unicorn's does; no other syscall hermipy serves changes any of them).
CHANGES_IN_GUEST = ("setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setpgid", "setsid",
                    "fork", "vfork", "clone", "clone3")

FPU_CW_INIT = 0x037F        # x87: all exceptions masked, 64-bit precision, round to nearest
MXCSR_INIT = 0x1F80         # SSE: all exceptions masked, round to nearest


def create_cpu(name: str, kernel: Kernel):
    if name == "unicorn":
        from hermipy.unicorn_backend import UnicornCpu
        return UnicornCpu(kernel.ram, kernel.mem.page_table.root)
    if name in ("kvm", "auto"):
        from hermipy.kvm_backend import KvmCpu
        try:
            return KvmCpu(kernel.ram, kernel.mem)
        except (OSError, ImportError) as err:
            if name == "kvm":
                from hermipy.errors import HermipyError
                raise HermipyError(f"--backend kvm: {err}", 2)
        return create_cpu("unicorn", kernel)       # auto: /dev/kvm missing or unusable
    from hermipy.errors import HermipyError
    raise HermipyError(f"unknown backend {name!r} (available: auto, kvm, unicorn)", 2)


def boot(options: Options, successor_of: Kernel | None = None) -> Kernel:
    """A kernel with its CPU and signal state: fresh, or (execve) keeping what exec keeps from ``successor_of``."""
    from hermipy.syscalls.sys_signal import SignalState
    kernel = Kernel(options, successor_of)
    attach_new_cpu(kernel, options.backend)
    kernel.signals = successor_of.signals.after_exec() if successor_of is not None else SignalState()
    return kernel


def attach_new_cpu(kernel: Kernel, backend: str):
    """Give ``kernel`` a CPU of ``backend`` (at boot, and in a fork child that cannot inherit its parent's)."""
    cpu = create_cpu(backend, kernel)
    kernel.attach_cpu(cpu)
    _fast_paths(kernel, cpu)
    return cpu


def in_guest_answers(kernel: Kernel) -> dict[int, int]:
    """{nr: result} of the IN_GUEST syscalls, as their handlers compute it now."""
    return {NUMBERS[name]: ENTRIES[NUMBERS[name]].invoke(kernel, 0, 0, 0, 0, 0, 0) for name in IN_GUEST}


def _fast_paths(kernel: Kernel, cpu) -> None:
    """Site rewriting (unless ``hermipy run --no-rewrite``) and in-guest answers
    (unless tracing: then every syscall reaches the Python kernel and shows in the trace).

    KVM answers IN_GUEST syscalls in its LSTAR entry, and both backends give their wrappers' sites per-site
    trampolines that answer without trapping (rewriter/trampoline.py); KVM also rewrites other trapped sites
    into direct exits. Unicorn services every other syscall in-line from its SYSCALL hook."""
    options = kernel.options
    cpu.rewrite = options.rewrite
    if not (options.strace or options.strace_file):
        refresh = [NUMBERS[n] for n in CHANGES_IN_GUEST]
        if cpu.name == "kvm":
            cpu.answer_in_guest(lambda: in_guest_answers(kernel), refresh)
        elif cpu.rewrite:
            cpu.answer_in_guest(lambda: in_guest_answers(kernel), refresh, kernel.mem)


def start_program(kernel: Kernel, path: str, argv: list[bytes], env: list[bytes]) -> None:
    """Load the program and set the registers execve leaves: rsp at argc, everything else zero."""
    from hermipy.loader.load import load_program
    entry, sp = load_program(kernel, path, argv, env)
    cpu = kernel.cpu
    for reg in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13",
                "r14", "r15"):
        cpu.set_reg(reg, 0)
    cpu.set_reg("rsp", sp)
    cpu.set_reg("fpcw", FPU_CW_INIT)       # what execve leaves (arch/x86/kernel/fpu/core.c fpstate_init_fx)
    cpu.set_reg("mxcsr", MXCSR_INIT)
    cpu.set_reg("rip", entry)


def run_binary(options: Options, path: str, argv: list[str], env: list[bytes]) -> int:
    """Run ``path`` with ``argv``; return the exit status a shell would see."""
    load_handlers()
    kernel = boot(options)
    from hermipy.loader.load import find_command
    start_program(kernel, find_command(kernel, path, env), [os.fsencode(a) for a in argv], env)
    trace = _open_trace(options)
    kernel.trace = trace
    while True:
        try:
            status = _run(kernel, trace)
            break
        except ReplaceImage as replaced:        # execve, or a fork child on a backend it cannot inherit
            kernel = replaced.kernel
    if trace is not None:
        trace.write(f"+++ exited with {status} +++\n" if status < 128 or not kernel.signals.killed_by
                    else f"+++ killed by {signal.Signals(kernel.signals.killed_by).name} +++\n")
        trace.flush()
    return status


def _run(kernel: Kernel, trace) -> int:
    """Drive ``kernel``'s CPU until the guest exits; page faults the kernel can resolve are resolved."""
    from hermipy.syscalls.sys_signal import handle_fault
    cpu, mem = kernel.cpu, kernel.mem
    on_syscall = Dispatcher(kernel, trace).on_syscall
    try:
        while True:
            stop = cpu.run(on_syscall)
            if stop.reason is StopReason.EXIT:
                return stop.status
            if stop.vector == VEC_PF and mem.populate(stop.address):
                continue
            try:
                handle_fault(kernel, stop)
            except GuestExit as exit_:
                return exit_.status
    except ReplaceImage:
        cpu.close()                             # the old image's CPU, or the one a fork child cannot use
        raise
    finally:
        if kernel.cpu is cpu:                   # not replaced: this image ends here
            mem.sync_all()


def _open_trace(options: Options):
    if options.strace_file:
        return open(options.strace_file, "w")
    if options.strace:
        return sys.stderr
    return None
