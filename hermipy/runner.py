"""One run of a guest: build the kernel, load the binary, drive each task's CPU until the guest exits.

Each guest task (thread) is driven by a host thread of its own (``_run``: run the CPU until a stop, resolve
it, go on). The host thread that started the run is the *owner*: it runs the first task and, when that one
ends, waits for the thread group to end (or for an execve made by another thread, whose new image it then
runs), and returns the process's exit status. In a fork child the forking thread is the owner.
"""
import os
import signal
import sys
import threading

from hermipy.cpu import VEC_PF, GuestExit, ReplaceImage, StopReason
from hermipy.errors import HermipyError
from hermipy.syscalls.kernel import RLIM_INFINITY, Kernel, Options
from hermipy.syscalls import table
from hermipy.syscalls.table import ENTRIES, NUMBERS, Dispatcher, load_handlers

# Syscalls whose result is kernel state the guest may read: answered inside the guest from an answer page
# (kvm_stubs: the KVM LSTAR entry's; the per-site trampolines of rewriter/trampoline.py on both backends),
# from their own handlers' results...
# (gettid is not among them: one answer page serves every thread of the process; nor getpgrp: a parent's
# setpgid changes its child's group.)
IN_GUEST = ("getpid", "getppid", "getuid", "geteuid", "getgid", "getegid")
# ...recomputed after each of the calls that can change them (kernel/sys.c: the set*id family changes the
# ids; fork & co. the pid and parent pid in a child that keeps its CPU, as Unicorn's does; no other syscall
# hermipy serves changes any of them), and when the parent exits (the host reparents hermipy's process: the
# signal pump watches for it, host_signals.after_reparent).
CHANGES_IN_GUEST = ("setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid",
                    "fork", "vfork", "clone", "clone3")

FPU_CW_INIT = 0x037F        # x87: all exceptions masked, 64-bit precision, round to nearest
MXCSR_INIT = 0x1F80         # SSE: all exceptions masked, round to nearest


def create_cpu(name: str, kernel: Kernel, forked_from=None):
    """A CPU of backend ``name`` for ``kernel``; ``forked_from``: in a fork child, the CPU that forked, whose
    backend state the child could not inherit (KVM: the VM; the child takes over its parts in guest RAM)."""
    if name == "unicorn":
        from hermipy.unicorn_backend import UnicornCpu
        return UnicornCpu(kernel.ram, kernel.mem.page_table)
    if name in ("kvm", "auto"):
        from hermipy.kvm_backend import KvmCpu
        try:
            return KvmCpu(kernel.ram, kernel.mem, forked_from)
        except (OSError, ImportError) as err:
            if name == "kvm":
                raise HermipyError(f"--backend kvm: {err}", 2)
        return create_cpu("unicorn", kernel)       # auto: /dev/kvm missing or unusable
    raise HermipyError(f"unknown backend {name!r} (available: auto, kvm, unicorn)", 2)


def boot(options: Options, successor_of: Kernel | None = None) -> Kernel:
    """A kernel with its CPU and signal state: fresh, or (execve) keeping what exec keeps from ``successor_of``."""
    from hermipy.syscalls.sys_signal import SignalState
    kernel = Kernel(options, successor_of)
    attach_new_cpu(kernel, options.backend)
    kernel.signals = successor_of.signals.after_exec() if successor_of is not None else SignalState()
    return kernel


def attach_new_cpu(kernel: Kernel, backend: str, forked_from=None):
    """Give ``kernel`` a CPU of ``backend`` (at boot, and in a fork child that cannot inherit its parent's
    ``forked_from``)."""
    cpu = create_cpu(backend, kernel, forked_from)
    kernel.attach_cpu(cpu)
    _fast_paths(kernel, cpu)
    return cpu


def in_guest_answers(kernel: Kernel) -> dict[int, int]:
    """{nr: result} of the IN_GUEST syscalls, as their handlers compute it now; none once the address space
    serves tasks of several processes (a CLONE_VM process: the answer page is one for all of them)."""
    if kernel.mem.shared_by_processes:
        return {}
    return {NUMBERS[name]: ENTRIES[NUMBERS[name]].invoke(kernel, 0, 0, 0, 0, 0, 0) for name in IN_GUEST}


def _fast_paths(kernel: Kernel, cpu) -> None:
    """Site rewriting (unless ``hermipy run --no-rewrite``) and in-guest answers
    (unless tracing: then every syscall reaches the Python kernel and shows in the trace).

    KVM answers IN_GUEST syscalls in its LSTAR entry, and both backends give their wrappers' sites per-site
    trampolines that answer without trapping (rewriter/trampoline.py); KVM also rewrites other trapped sites
    into direct exits. Unicorn services every other syscall in-line from its SYSCALL hook."""
    options = kernel.options
    cpu.rewrite = options.rewrite
    if not (options.strace or options.strace_file) and (cpu.name == "kvm" or cpu.rewrite):
        from hermipy.syscalls import host_signals
        refresh = [NUMBERS[n] for n in CHANGES_IN_GUEST]
        extra = () if cpu.name == "kvm" else (kernel.mem,)

        def answer():
            cpu.answer_in_guest(lambda: in_guest_answers(kernel), refresh, *extra)
        answer()
        host_signals.after_reparent(answer)


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


EXIT_GRACE = 2.0       # seconds the owner waits for the other threads after a group exit


def run_binary(options: Options, path: str, argv: list[str], env: list[bytes]) -> int:
    """Run ``path`` with ``argv``; return the exit status a shell would see."""
    from hermipy.syscalls import host_signals
    load_handlers()
    kernel = boot(options)
    from hermipy.loader.load import find_command
    start_program(kernel, find_command(kernel, path, env), [os.fsencode(a) for a in argv], env)
    if kernel.exec_creds.from_file:         # a set-id file or one with capabilities: the run starts as its exec
        from hermipy.syscalls.sys_info import commit_exec_credentials
        commit_exec_credentials(kernel, kernel.exec_creds)
    trace = _open_trace(options)
    kernel.trace = trace
    host_signals.start(kernel)
    kernel, status = _run_owner(kernel)
    if trace is not None:
        killed_by = kernel.group.killed_by
        trace.write(f"+++ exited with {status} +++\n" if status < 128 or not killed_by
                    else f"+++ killed by {signal.Signals(killed_by).name} +++\n")
        trace.flush()
    return status


def _run_owner(kernel: Kernel) -> tuple[Kernel, int]:
    """The owner's part: run the first task (and the images execve makes), then wait for the group to end.
    Returns the last image and the process's exit status."""
    while True:
        kernel, status = _run_task(kernel)
        group = kernel.group
        finish_task(kernel, status)
        image = _wait_for_group(group)
        if image is None:
            return kernel, group.exit_status if group.exiting else group.leader_status
        kernel = image
        _adopt(kernel)


def _wait_for_group(group) -> Kernel | None:
    """Wait until every task of ``group`` has ended (at most EXIT_GRACE after a group exit: a thread stuck in a
    host call must not keep the process alive), or until another thread's execve hands over its new image."""
    with group.lock:
        waited = 0.0
        while group.tasks and group.exec_image is None:
            if group.exiting and not group.execing and waited >= EXIT_GRACE:
                break
            group.ended.wait(0.05)
            waited += 0.05
        image, group.exec_image = group.exec_image, None
        return image


def _adopt(kernel: Kernel) -> None:
    """This host thread runs ``kernel`` (a new image) from now on."""
    from hermipy.syscalls import host_signals
    kernel.host_thread = kernel.group.owner = threading.get_ident()
    host_signals.retarget(kernel)


def _run_task(kernel: Kernel) -> tuple[Kernel, int]:
    """Run one task until it ends; execve (and a fork child whose CPU had to be rebuilt) goes on with the
    new image. Returns the task that ended and its exit status."""
    while True:
        try:
            return kernel, _run(kernel, kernel.trace)
        except ReplaceImage as replaced:        # execve, or a fork child on a backend it cannot inherit
            new = replaced.kernel
            if new.group is not kernel.group and kernel.group.owner != threading.get_ident():
                _hand_over(kernel, new)         # execve in a thread that is not the owner
                raise _Handed() from None
            kernel = new
            _adopt(kernel)


class _Handed(Exception):
    """This thread's execve made an image that the owner thread runs."""


def _hand_over(old: Kernel, new: Kernel) -> None:
    group = old.group
    with group.lock:
        group.tasks.pop(old.tid, None)
        group.exec_image = new
        group.ended.notify_all()


def start_thread(task: Kernel) -> tuple[int, threading.Event]:
    """Start the host thread of a new task (clone); it runs the guest once ``go`` is set. Returns its tid
    (the host thread's own) and ``go``."""
    go = threading.Event()
    thread = threading.Thread(target=_thread_main, args=(task, go), name="hermipy-task", daemon=True)
    thread.start()
    task.tid, task.host_thread = thread.native_id, thread.ident
    group = task.group
    with group.lock:
        group.tasks[task.tid] = task
        group.multithreaded = True
    return task.tid, go


def _thread_main(task: Kernel, go: threading.Event) -> None:
    go.wait()
    try:
        task, status = _run_task(task)
    except _Handed:
        return
    except HermipyError as err:           # the task's CPU cannot go on (Unicorn's unreported double fault): the run
        sys.stderr.write(f"hermipy: {err}\n")    # ends with hermipy's message, as when the main thread's cannot
        _end_host_process(err.exit_code)
    if task.group.owner == threading.get_ident():        # a fork child made by this thread: it owns the process
        group = task.group
        finish_task(task, status)
        image = _wait_for_group(group)
        while image is not None:
            _adopt(image)
            task, status = _run_task(image)
            group = task.group
            finish_task(task, status)
            image = _wait_for_group(group)
        _end_host_process(group.exit_status if group.exiting else group.leader_status)
    finish_task(task, status)
    task.cpu.close()
    if task.proc.parent is not None:                      # a CLONE_VM process: its parent is told here
        from hermipy.syscalls.sys_fork import vm_process_ended
        vm_process_ended(task)


def _end_host_process(status: int) -> None:
    """What hermipy's entry does after a run, from a thread that owns the process (a fork child's)."""
    if table.STATS is not None:
        table.STATS.finish(status)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


def finish_task(kernel: Kernel, status: int) -> None:
    """do_exit() of one task: release its futex words (robust list, clear_child_tid) and leave the group;
    the leader's status is the process's unless the group exited as a whole."""
    from hermipy.syscalls.sys_process import release_task_memory
    group = kernel.group
    with group.lock:
        others = len(group.tasks) > 1
        group.tasks.pop(kernel.tid, None)     # gone from /proc/self/task before a joiner can wake
        if kernel.tid == kernel.proc.pid:
            group.leader_status = status
        if kernel.mem.cpu is kernel.cpu:
            kernel.mem.cpu = next((t.cpu for t in group.tasks.values() if t.cpu is not None), kernel.cpu)
    if not group.exiting or others or kernel.mem.shared_by_processes:     # (mm_release: the memory lives on)
        release_task_memory(kernel)
    if not others and kernel.proc.vfork_done >= 0:
        from hermipy.syscalls.sys_fork import complete_vfork_done
        complete_vfork_done(kernel)
    with group.lock:
        group.ended.notify_all()


def become_sole_task(kernel: Kernel) -> None:
    """In a fork child: the forking task is the only one, the leader of a group of its own, and its host
    thread owns the process."""
    from hermipy.syscalls import host_signals
    from hermipy.syscalls.kernel import ThreadGroup
    kernel.group = ThreadGroup()
    kernel.tid = kernel.proc.pid
    kernel.host_thread = threading.get_ident()
    kernel.group.tasks[kernel.tid] = kernel
    host_signals.start(kernel)


def end_other_threads(kernel: Kernel) -> None:
    """de_thread() for execve: every other task of the group ends; returns once they have (or after
    EXIT_GRACE, for a thread stuck in a host call)."""
    group = kernel.group
    if not group.others(kernel):
        return
    with group.lock:
        group.execing = True
    group.begin_exit(0, kernel)
    with group.lock:
        waited = 0.0
        while len(group.tasks) > 1 and waited < EXIT_GRACE:
            group.ended.wait(0.05)
            waited += 0.05


def _run(kernel: Kernel, trace) -> int:
    """Drive ``kernel``'s CPU until the task exits; page faults the kernel can resolve are resolved, kicks
    (StopReason.INTERRUPT) deliver what the task was kicked for."""
    from hermipy.syscalls.errors import SyscallError
    from hermipy.syscalls.int80 import INT80, serve_int80
    from hermipy.syscalls.sys_info import RLIMIT_CPU
    from hermipy.syscalls.sys_signal import (SIGKILL, handle_fault, handle_interrupt, refused_int, set_current,
                                             terminate_by_signal)
    set_current(kernel)
    cpu, mem = kernel.cpu, kernel.mem
    dispatcher = Dispatcher(kernel, trace)
    on_syscall = dispatcher.on_syscall
    if (kernel.options.exitless and cpu.name == "kvm" and table.STATS is None and not kernel.proc.cpu_time_watched
            and kernel.proc.rlimits.get(RLIMIT_CPU, (RLIM_INFINITY,))[0] == RLIM_INFINITY):
        cpu.exitless_server = dispatcher          # (KvmCpu._run_exitless; sys_time.watch_cpu_time ends it)
    retried = None
    try:
        if kernel.signals.next_deliverable():
            # execve kept pending signals, and one sent while the image changed hands was queued for the old
            # task (its kick lost): delivered before the first instruction, as on return from execve.
            try:
                handle_interrupt(kernel)
            except GuestExit as exit_:
                return exit_.status
        proc = kernel.proc
        while True:
            guest_clock = proc.guest_clock     # an ITIMER_VIRTUAL is armed: meter the guest's CPU time
            if guest_clock is not None:
                guest_clock.entered(kernel)
            stop = cpu.run(on_syscall)
            guest_clock = proc.guest_clock
            if guest_clock is not None:
                guest_clock.left(kernel)
            reason = stop.reason
            if reason is StopReason.EXIT:
                return stop.status
            try:
                if reason is StopReason.INTERRUPT:
                    handle_interrupt(kernel)
                    continue
                if stop.vector == VEC_PF:
                    try:
                        if mem.populate(stop.address):
                            continue
                    except SyscallError:
                        # RAM (--memory) is exhausted: the OOM killer's SIGKILL (mm/oom_kill.c), not a fault
                        terminate_by_signal(kernel, SIGKILL)
                    # A page present now may have been filled by another task after this one faulted on it
                    # (or its translation was stale): run the access once more before calling it a
                    # protection fault, as Linux's spurious-fault check does.
                    fault = (stop.rip, stop.address)
                    if fault != retried and mem.find(stop.address) is not None:
                        retried = fault
                        continue
                retried = None
                if refused_int(kernel, stop) == INT80:
                    serve_int80(kernel, on_syscall, stop.rip)
                    continue
                handle_fault(kernel, stop)
            except GuestExit as exit_:
                return exit_.status
    except ReplaceImage:
        cpu.close()                             # the old image's CPU, or the one a fork child cannot use
        raise


def _open_trace(options: Options):
    if options.strace_file:
        return open(options.strace_file, "w")
    if options.strace:
        return sys.stderr
    return None
