"""Signals: dispositions, masks, pending sets, delivery through real x86-64 signal frames, CPU faults.

Follows kernel/signal.c (sending, dequeueing, sigaction, sigprocmask, sigaltstack) and
arch/x86/kernel/signal.c + signal_64.c (get_sigframe, x64_setup_rt_frame, rt_sigreturn), and
arch/x86/kernel/traps.c + arch/x86/mm/fault.c for which signal and siginfo a CPU exception becomes.

The guest is one single-threaded process, so a signal only ever comes from the guest itself (kill/tgkill/
tkill/raise/abort) or from a CPU fault. Pending signals are delivered on the way back from the syscalls
that can make one deliverable (the senders, rt_sigprocmask, rt_sigreturn, rt_sigsuspend, pause): the
frame is built from inside the syscall, after its return value has been put in rax.
"""
import contextlib
import ctypes
import os
import signal as _signal
import struct
import sys
import termios
import threading
import time
import weakref
from errno import EAGAIN, EINTR, EINVAL, EIO, ENOMEM, EPERM, ESRCH

from hermipy.cpu import GPR_NAMES, INT_INSN_LEN, GuestExit, VEC_BP, VEC_DB, VEC_DE, VEC_GP, VEC_PF, VEC_UD
from hermipy.syscalls import host_signals
from hermipy.syscalls.argtypes import Enum, Int, Ptr, SigSet, Signal, Size
from hermipy.syscalls.errors import EINTR_WHEN_SIGNALLED, ERESTARTNOHAND, ERESTARTSYS, SyscallError
from hermipy.syscalls.sys_timer import TimerExpiry, restart_real_timer, unignored
from hermipy.syscalls.table import FULL, PARTIAL, syscall

NSIG = 64                       # _NSIG on x86-64: signals 1..64
SIGSET_SIZE = 8                 # sizeof(kernel sigset_t)
MASK64 = (1 << 64) - 1

(SIGHUP, SIGINT, SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGKILL, SIGUSR1, SIGSEGV, SIGUSR2, SIGPIPE,
 SIGALRM, SIGTERM, SIGSTKFLT, SIGCHLD, SIGCONT, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU, SIGURG, SIGXCPU, SIGXFSZ,
 SIGVTALRM, SIGPROF, SIGWINCH, SIGIO, SIGPWR, SIGSYS) = range(1, 32)

SIG_DFL, SIG_IGN = 0, 1
SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK = 0, 1, 2

# sa_flags (asm-generic/signal-defs.h, asm/signal.h)
SA_NOCLDSTOP, SA_NOCLDWAIT, SA_SIGINFO = 0x1, 0x2, 0x4
SA_EXPOSE_TAGBITS, SA_RESTORER, SA_ONSTACK = 0x800, 0x04000000, 0x08000000
SA_RESTART, SA_NODEFER, SA_RESETHAND = 0x10000000, 0x40000000, 0x80000000
UAPI_SA_FLAGS = (SA_NOCLDSTOP | SA_NOCLDWAIT | SA_SIGINFO | SA_ONSTACK | SA_RESTART | SA_NODEFER | SA_RESETHAND
                 | SA_EXPOSE_TAGBITS | SA_RESTORER)       # include/linux/signal_types.h: unknown bits are cleared

# sigaltstack (uapi/linux/signal.h, asm/signal.h)
SS_ONSTACK, SS_DISABLE, SS_AUTODISARM = 1, 2, 1 << 31
MINSIGSTKSZ = 2048

# si_code values (uapi/asm-generic/siginfo.h)
SI_USER, SI_KERNEL, SI_TKILL = 0, 0x80, -6
SEGV_MAPERR, SEGV_ACCERR = 1, 2
ILL_ILLOPN = 2
FPE_INTDIV, FPE_FLTDIV, FPE_FLTOVF, FPE_FLTUND, FPE_FLTRES, FPE_FLTINV = 1, 3, 4, 5, 6, 7
BUS_ADRALN, BUS_ADRERR = 1, 2
TRAP_BRKPT, TRAP_TRACE = 1, 2
INT_OPCODE = 0xCD

# ucontext uc_flags (asm/ucontext.h): no UC_FP_XSTATE, the fpstate is a plain FXSAVE image
UC_SIGCONTEXT_SS, UC_STRICT_RESTORE_SS = 0x2, 0x4
USER_CS, USER_DS = 0x33, 0x2B                  # __USER_CS / __USER_DS (asm/segment.h)

# struct rt_sigframe { char *pretcode; struct ucontext uc; struct siginfo info; } (asm/sigframe.h)
UC_OFFSET = 8
UC_STACK = 16                                  # stack_t uc_stack: ss_sp u64, ss_flags s32 (+pad), ss_size u64
UC_MCONTEXT = 40                               # struct sigcontext, 256 bytes
UC_SIGMASK = 296                               # sigset_t, 8 bytes
UCONTEXT_SIZE = 304
INFO_OFFSET = UC_OFFSET + UCONTEXT_SIZE        # 312
SIGINFO_SIZE = 128
RT_SIGFRAME_SIZE = INFO_OFFSET + SIGINFO_SIZE  # 440
FXSAVE_SIZE = 512
RED_ZONE = 128

# struct sigcontext (asm/sigcontext.h): r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags, then
# cs gs fs ss (u16 each), err, trapno, oldmask, cr2, fpstate, reserved1[8].
SC_GPRS = ("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
           "rdi", "rsi", "rbp", "rbx", "rdx", "rax", "rcx", "rsp", "rip", "rflags")
SC_FORMAT = "<18Q4H5Q"
SC_SIZE = 256
_REG_INDEX = {name: i for i, name in enumerate(GPR_NAMES)}
_SC_TO_GPR = tuple(_REG_INDEX[n] for n in SC_GPRS)

# EFLAGS a signal handler may change (FIX_EFLAGS in arch/x86/kernel/signal.c)
X86_EFLAGS_CF, X86_EFLAGS_PF, X86_EFLAGS_AF, X86_EFLAGS_ZF, X86_EFLAGS_SF = 0x1, 0x4, 0x10, 0x40, 0x80
X86_EFLAGS_TF, X86_EFLAGS_DF, X86_EFLAGS_OF, X86_EFLAGS_RF, X86_EFLAGS_AC = 0x100, 0x400, 0x800, 0x10000, 0x40000
FIX_EFLAGS = (X86_EFLAGS_AC | X86_EFLAGS_OF | X86_EFLAGS_DF | X86_EFLAGS_TF | X86_EFLAGS_SF | X86_EFLAGS_ZF
              | X86_EFLAGS_AF | X86_EFLAGS_PF | X86_EFLAGS_CF | X86_EFLAGS_RF)

# x86 page-fault error code bits (arch/x86/include/asm/trap_pf.h)
PF_PROT, PF_WRITE, PF_USER, PF_INSTR = 0x1, 0x2, 0x4, 0x10
TASK_SIZE_MAX = 0x7FFF_FFFF_F000          # the highest user page's start (arch/x86/include/asm/page_64_types.h)
PROT_READ, PROT_WRITE = 1, 2

# Default actions (the table in kernel/signal.c, "sig_kernel_*")
_DEFAULT_COREDUMP = {SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV, SIGXCPU, SIGXFSZ, SIGSYS}
_DEFAULT_IGNORE = {SIGCHLD, SIGURG, SIGWINCH, SIGCONT}
_DEFAULT_STOP = {SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU}
SYNCHRONOUS_MASK = sum(1 << (s - 1) for s in (SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGFPE, SIGSYS))
UNBLOCKABLE = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1))

FAULT_SIGNALS = {VEC_DE: SIGFPE, VEC_DB: SIGTRAP, VEC_BP: SIGTRAP, VEC_UD: SIGILL, VEC_GP: SIGSEGV, VEC_PF: SIGSEGV,
                 12: SIGBUS, 16: SIGFPE, 17: SIGBUS, 19: SIGFPE}

# FPU state a handler starts with (fpu__clear_user_states -> init_fpstate): FCW 0x37f, MXCSR 0x1f80.
_INIT_FPU = bytearray(FXSAVE_SIZE)
struct.pack_into("<H", _INIT_FPU, 0, 0x37F)
struct.pack_into("<II", _INIT_FPU, 24, 0x1F80, 0xFFFF)
INIT_FPU = bytes(_INIT_FPU)


def _bit(signo: int) -> int:
    return 1 << (signo - 1)


def _valid(signo: int) -> bool:
    return 1 <= signo <= NSIG


class Action:
    """struct k_sigaction for one signal."""

    __slots__ = ("handler", "flags", "restorer", "mask")

    def __init__(self, handler: int = SIG_DFL, flags: int = 0, restorer: int = 0, mask: int = 0):
        self.handler, self.flags, self.restorer, self.mask = handler, flags, restorer, mask

    def pack(self) -> bytes:
        """struct kernel_sigaction for x86-64: handler, flags, restorer, mask (u64 each)."""
        return struct.pack("<4Q", self.handler, self.flags, self.restorer, self.mask)


class SignalState:
    """One task's signal state: its blocked mask, its own pending queue and alternate stack, and the two
    things clone may share: the actions (CLONE_SIGHAND) and the thread group's shared pending queue
    (CLONE_THREAD). Changes from other threads happen under the group's lock."""

    def __init__(self):
        self.actions = [Action() for _ in range(NSIG + 1)]
        self.blocked = 0
        self.real_blocked = 0          # the mask rt_sigtimedwait set aside while it waits (task->real_blocked)
        self.pending: dict[int, list[bytes]] = {}      # signo -> queued siginfo images (RT signals queue)
        self.shared: dict[int, list[bytes]] = {}       # the thread group's (kill, not tgkill)
        self.sas_sp, self.sas_size, self.sas_flags = 0, 0, SS_DISABLE
        self.trap_nr, self.error_code, self.cr2 = 0, 0, 0   # thread.trap_nr/error_code/cr2 of the last fault
        self._inherit_from_host()

    def _inherit_from_host(self) -> None:
        """execve keeps the blocked mask and ignored dispositions (SIGPIPE/SIGXFSZ: Python ignores them itself)."""
        from hermipy.syscalls.host_signals import host_blocked_at_start, host_ignored_at_start
        self.blocked = host_blocked_at_start() & ~UNBLOCKABLE
        for s in host_ignored_at_start():
            self.actions[s].handler = SIG_IGN

    def after_exec(self) -> "SignalState":
        """flush_signal_handlers(): handled signals go back to SIG_DFL, ignored ones stay ignored; the mask
        and pending signals are kept; the alternate stack is gone."""
        new = SignalState.__new__(SignalState)
        new.actions = [Action(SIG_IGN if a.handler == SIG_IGN else SIG_DFL) for a in self.actions]
        new.blocked, new.pending, new.shared, new.real_blocked = self.blocked, self.pending, self.shared, 0
        new.sas_sp, new.sas_size, new.sas_flags = 0, 0, SS_DISABLE
        new.trap_nr, new.error_code, new.cr2 = 0, 0, 0
        return new

    def for_thread(self) -> "SignalState":
        """copy_process() with CLONE_THREAD | CLONE_SIGHAND: shared actions and shared queue, the caller's
        mask, nothing pending of its own, no alternate stack (CLONE_VM without CLONE_VFORK clears it)."""
        new = SignalState.__new__(SignalState)
        new.actions, new.shared, new.blocked, new.pending = self.actions, self.shared, self.blocked, {}
        new.real_blocked = 0
        new.sas_sp, new.sas_size, new.sas_flags = 0, 0, SS_DISABLE
        new.trap_nr, new.error_code, new.cr2 = 0, 0, 0
        return new

    def for_vm_process(self, share_actions: bool) -> "SignalState":
        """copy_process() without CLONE_THREAD: the actions shared (CLONE_SIGHAND) or copied, a pending set
        of its own, the caller's mask, no alternate stack (CLONE_VM without CLONE_VFORK clears it)."""
        new = self.for_thread()
        new.shared = {}
        if not share_actions:
            new.actions = [Action(a.handler, a.flags, a.restorer, a.mask) for a in self.actions]
        return new

    # -- sending ---------------------------------------------------------------------------------
    def ignored(self, signo: int) -> bool:
        """sig_handler_ignored(): the handler is SIG_IGN, or SIG_DFL with a default action of ignore."""
        handler = self.actions[signo].handler
        return handler == SIG_IGN or (handler == SIG_DFL and signo in _DEFAULT_IGNORE)

    def send(self, signo: int, info: bytes, shared: bool = False) -> bool:
        """prepare_signal() + __send_signal() to this task (``shared``: to its thread group): a stop signal
        discards a pending SIGCONT and SIGCONT the pending stop signals; dropped when ignored and not blocked;
        standard signals are pending at most once. True when queued."""
        if signo == SIGCONT or signo in _DEFAULT_STOP:
            for other in (_DEFAULT_STOP if signo == SIGCONT else (SIGCONT,)):
                self.discard(other)
        if not ((self.blocked | self.real_blocked) & _bit(signo)) and self.ignored(signo) and signo != SIGKILL:
            return False                                       # sig_ignored(): blocked ones are never ignored
        queue = (self.shared if shared else self.pending).setdefault(signo, [])
        if signo < 32 and queue:
            return False
        queue.append(info)
        if SIGNALFDS:
            pending_changed(self)
        return True

    def pending_mask(self) -> int:
        mask = 0
        for signo in self.pending:
            mask |= _bit(signo)
        for signo in self.shared:
            mask |= _bit(signo)
        return mask

    def next_deliverable(self) -> int:
        """next_signal(): synchronous signals first, then the lowest number; 0 when none."""
        ready = self.pending_mask() & ~self.blocked
        if not ready:
            return 0
        sync = ready & SYNCHRONOUS_MASK
        if sync:
            ready = sync
        return (ready & -ready).bit_length()

    def dequeue(self, signo: int) -> bytes | None:
        """dequeue_signal(): the task's own queue first, then the group's. None for a POSIX timer's expiry
        dropped because the timer was set again or deleted since (posixtimer_deliver_signal)."""
        queues = self.pending if signo in self.pending else self.shared
        queue = queues[signo]
        info = queue.pop(0)
        if not queue:
            del queues[signo]
        if SIGNALFDS:
            pending_changed(self)
        if isinstance(info, TimerExpiry):
            return info.deliver()
        if signo == SIGALRM and queues is self.shared:
            restart_real_timer()
        return info

    def dequeue_from(self, these: int) -> tuple[int, bytes] | None:
        """dequeue_signal(mask): the next pending signal of ``these`` (synchronous ones first, then the lowest
        number) and its siginfo; None when none is pending."""
        while True:
            ready = self.pending_mask() & these
            if not ready:
                return None
            ready = (ready & SYNCHRONOUS_MASK) or ready
            signo = (ready & -ready).bit_length()
            info = self.dequeue(signo)
            if info is not None:
                return signo, info

    def discard(self, signo: int) -> None:
        self.pending.pop(signo, None)
        self.shared.pop(signo, None)
        if SIGNALFDS:
            pending_changed(self)

    # -- alternate stack -------------------------------------------------------------------------
    def on_sig_stack(self, sp: int) -> bool:
        if self.sas_flags & SS_AUTODISARM:
            return False
        return sp > self.sas_sp and sp - self.sas_sp <= self.sas_size

    def sas_ss_flags(self, sp: int) -> int:
        if not self.sas_size:
            return SS_DISABLE
        return SS_ONSTACK if self.on_sig_stack(sp) else 0


# The open guest signalfds of this process (sys_event.SignalFd), whose readiness follows what is pending.
SIGNALFDS: "weakref.WeakSet" = weakref.WeakSet()


def pending_changed(state: SignalState) -> None:
    """A signal was queued on or taken from ``state``: signalfds watching its thread group say so."""
    for sfd in list(SIGNALFDS):
        sfd.sync(state)


def signal_task(task, signo: int, info: bytes) -> None:
    """send_signal() to one thread (tgkill, a fault, SIGPIPE): queued on it, and the task is kicked when it
    does not block the signal."""
    with task.group.lock:
        queued = task.signals.send(signo, info)
    if queued and not task.signals.blocked & _bit(signo) and task is not current_task():
        task.kick()


def signal_group(k, signo: int, info: bytes) -> None:
    """send_signal() to a thread group (kill, a timer, a host signal): queued in the shared set;
    complete_signal() picks a thread that does not block it (``k`` first when it is one) and kicks it."""
    group = k.group
    with group.lock:
        if not k.signals.send(signo, info, shared=True):
            return
        bit = _bit(signo)
        candidates = [k] + [t for t in group.tasks.values() if t is not k]
        target = next((t for t in candidates if not t.signals.blocked & bit and t.tid in group.tasks), None)
    if target is not None and target is not current_task():
        target.kick()


_local = threading.local()


def current_task():
    """The task this host thread runs (None outside a task)."""
    return getattr(_local, "task", None)


def set_current(task) -> None:
    _local.task = task


def make_siginfo(signo: int, code: int, pid: int = 0, uid: int = 0, addr: int | None = None) -> bytes:
    """struct siginfo (128 bytes): si_signo, si_errno, si_code, then the union at offset 16."""
    info = bytearray(SIGINFO_SIZE)
    struct.pack_into("<iii", info, 0, signo, 0, code)
    if addr is not None:
        struct.pack_into("<Q", info, 16, addr & MASK64)
    else:
        struct.pack_into("<iI", info, 16, pid, uid)
    return bytes(info)


def terminate_by_signal(k, signo: int):
    """Default action 'terminate'/'core': the whole thread group ends (zap_other_threads). Reported the way a
    shell does, exit status 128+signo; a forked child's parent is a guest that reads the wait status, so there
    the host process dies by the signal."""
    k.group.killed_by = signo
    dumped = False
    from hermipy.syscalls.coredump import RLIMIT_CORE, note_dumped, write_core
    if signo in _DEFAULT_COREDUMP and k.proc.rlimits.get(RLIMIT_CORE, (0,))[0]:
        dumped = write_core(k, signo)
        if dumped:
            note_dumped(k.proc.pid)
    if k.proc.parent is not None:           # a CLONE_VM process: its parent waits for it inside this hermipy
        k.group.begin_exit(128 + signo, k)
        raise GuestExit(128 + signo)
    if k.proc.forked:
        _die_on_host(k, signo)
    k.group.begin_exit(128 + signo, k)
    sys.stdout.flush()
    sys.stderr.write(f"{_signal.strsignal(signo) or f'Signal {signo}'}{' (core dumped)' if dumped else ''}\n")
    sys.stderr.flush()
    raise GuestExit(128 + signo)


def _die_on_host(k, signo: int):
    """End this host process with ``signo`` (no core file: the image would be hermipy's, not the guest's)."""
    import resource
    from hermipy.syscalls import table
    if table.STATS is not None:
        table.STATS.finish(128 + signo)
    sys.stdout.flush()
    sys.stderr.flush()
    resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
    if signo != SIGKILL:
        _host_default_action(signo)
        _signal.pthread_sigmask(_signal.SIG_UNBLOCK, [signo])
    _signal.pthread_kill(threading.get_ident(), signo)    # this thread's own: the signal pump cannot take it
    os._exit(128 + signo)              # only if the host refused the signal


def _host_default_action(signo: int) -> None:
    """SIG_DFL for ``signo`` in hermipy's process, from any thread (Python's signal.signal is main-thread only)."""
    action = ctypes.create_string_buffer(Action().pack())
    _host_syscall("rt_sigaction", signo, ctypes.addressof(action), 0, SIGSET_SIZE)


# -- delivery ------------------------------------------------------------------------------------
def deliver_pending(k, saved_mask: int | None = None) -> bool:
    """get_signal() + handle_signal() for every deliverable pending signal; True when a frame was built.

    Like exit_to_user_mode_loop, each further signal gets its frame on top of the previous one, so the
    last one set up runs first. ``saved_mask`` is the mask rt_sigsuspend restores (TIF_RESTORE_SIGMASK).
    """
    st = k.signals
    delivered = False
    while True:
        with k.group.lock:                     # senders append to the same queues
            signo = st.next_deliverable()
            if not signo:
                return delivered
            info = st.dequeue(signo)
        if info is None:
            continue
        action = st.actions[signo]
        if action.handler == SIG_IGN:
            continue
        if action.handler == SIG_DFL:
            if signo in _DEFAULT_STOP:
                _stop_on_host(signo)
                continue
            if signo in _DEFAULT_IGNORE:
                continue
            terminate_by_signal(k, signo)
        old_mask = st.blocked if saved_mask is None else saved_mask
        saved_mask = None
        if not _setup_rt_frame(k, signo, info, action, old_mask):
            _force_sigsegv(k, signo)
        delivered = True


def _stop_on_host(signo: int) -> None:
    """do_signal_stop(): hermipy's process stops by the same signal until SIGCONT, so the parent sees it in
    wait4(WUNTRACED)/waitid(WSTOPPED) and its SIGCHLD (CLD_STOPPED, si_status ``signo``); the host discards a
    SIGTSTP/SIGTTIN/SIGTTOU in an orphaned process group, as Linux does for the guest."""
    sys.stdout.flush()
    sys.stderr.flush()
    if signo != SIGSTOP:
        _host_default_action(signo)
    _signal.pthread_kill(threading.get_ident(), signo)    # this thread's own: the signal pump cannot take it
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, [signo])  # taken on the way out of this call: the stop
    _signal.pthread_sigmask(_signal.SIG_BLOCK, [signo])
    host_signals.drain()       # the SIGCONT, read now: it ends the calls other tasks were in, none this one makes next


def _setup_rt_frame(k, signo: int, info: bytes, action: Action, old_mask: int) -> bool:
    """x64_setup_rt_frame() + signal_delivered(). False when the frame could not be written (EFAULT)."""
    st = k.signals
    if not action.flags & SA_RESTORER:
        return False
    cpu, mem = k.cpu, k.mem
    regs = cpu.get_regs()
    sp = regs[_REG_INDEX["rsp"]]
    on_stack_before = st.on_sig_stack(sp)
    sp -= RED_ZONE
    entering_altstack = False
    if action.flags & SA_ONSTACK and st.sas_ss_flags(sp) == 0:
        sp = st.sas_sp + st.sas_size
        entering_altstack = True
    fpstate = (sp - FXSAVE_SIZE) & ~63                              # fpu__alloc_mathframe
    frame = ((fpstate - RT_SIGFRAME_SIZE) & ~15) - 8                # align_sigframe: as if called
    if (on_stack_before or entering_altstack) and not (frame > st.sas_sp and frame - st.sas_sp <= st.sas_size):
        return False                                                # would overflow the alternate stack
    uc = bytearray(UCONTEXT_SIZE)
    struct.pack_into("<QQQiIQ", uc, 0, UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS, 0,
                     st.sas_sp, st.sas_flags - (1 << 32) if st.sas_flags & (1 << 31) else st.sas_flags, 0,
                     st.sas_size)
    gprs = [regs[i] for i in _SC_TO_GPR]
    struct.pack_into(SC_FORMAT, uc, UC_MCONTEXT, *gprs, USER_CS, 0, 0, USER_DS,
                     st.error_code, st.trap_nr, old_mask & MASK64, st.cr2, fpstate)
    struct.pack_into("<Q", uc, UC_SIGMASK, old_mask & MASK64)
    try:
        mem.write(fpstate, cpu.read_fpu_state())
        mem.write(frame, struct.pack("<Q", action.restorer) + bytes(uc))
        if action.flags & SA_SIGINFO:
            mem.write(frame + INFO_OFFSET, info)
    except SyscallError:
        return False
    regs[_REG_INDEX["rdi"]] = signo
    regs[_REG_INDEX["rax"]] = 0
    regs[_REG_INDEX["rsi"]] = frame + INFO_OFFSET
    regs[_REG_INDEX["rdx"]] = frame + UC_OFFSET
    regs[_REG_INDEX["rip"]] = action.handler
    regs[_REG_INDEX["rsp"]] = frame
    regs[_REG_INDEX["rflags"]] &= ~(X86_EFLAGS_DF | X86_EFLAGS_RF | X86_EFLAGS_TF)
    cpu.set_regs(regs)
    cpu.write_fpu_state(INIT_FPU)                                   # fpu__clear_user_states
    # signal_delivered(): block sa_mask (and the signal itself unless SA_NODEFER), one-shot, autodisarm
    blocked = st.blocked | action.mask
    if not action.flags & SA_NODEFER:
        blocked |= _bit(signo)
    st.blocked = blocked & ~UNBLOCKABLE
    if action.flags & SA_RESETHAND:                                 # SA_ONESHOT: the handler only, flags kept
        st.actions[signo] = Action(SIG_DFL, action.flags, action.restorer, action.mask)
    if st.sas_flags & SS_AUTODISARM:
        st.sas_sp, st.sas_size, st.sas_flags = 0, 0, SS_DISABLE
    return True


def _force_sigsegv(k, failed_signo: int) -> None:
    """force_sigsegv(): a frame that cannot be built becomes SIGSEGV (fatal when that was SIGSEGV)."""
    st = k.signals
    if failed_signo == SIGSEGV:
        st.actions[SIGSEGV] = Action()
    force_signal(k, SIGSEGV, make_siginfo(SIGSEGV, SI_KERNEL, addr=0))


def force_signal(k, signo: int, info: bytes) -> None:
    """force_sig_info_to_task(): a synchronous signal cannot be blocked or ignored; if it is, it kills."""
    st = k.signals
    action = st.actions[signo]
    blocked = bool(st.blocked & _bit(signo))
    if blocked or action.handler == SIG_IGN:
        st.actions[signo] = Action()
        st.blocked &= ~_bit(signo)
    queue = st.pending.setdefault(signo, [])
    if not queue:
        queue.append(info)
        if SIGNALFDS:
            pending_changed(st)
    deliver_pending(k)


def _finish(k, result: int):
    """Return path of a syscall: deliver what became deliverable, with ``result`` in the saved rax (a call served
    in exitless mode leaves that to the exit that finishes it: the registers are the running vCPU's)."""
    if not k.signals.next_deliverable():
        return result
    if k.serving_exitless:
        k.interrupt = True
        return result
    k.cpu.set_reg("rax", result)
    deliver_pending(k)
    return None


@syscall("restart_syscall", FULL)
def restart_syscall(k) -> int:
    """restart_syscall(2): hermipy resumes an interrupted sleep itself and never leaves a restart block for the
    guest to call, so a direct call finds none: EINTR, as do_no_restart_syscall() answers."""
    raise SyscallError(EINTR)


def with_temporary_mask(k, sigmask: int, sigsetsize: int, wait):
    """set_user_sigmask() around ``wait(now)`` (ppoll, pselect6, epoll_pwait, io_pgetevents): with the guest's
    temporary mask. A signal it lets through that is pending already makes the wait return at once (``now``),
    with EINTR unless something was ready, and runs its handler with the old mask restored afterwards; one
    arriving while waiting kicks the wait, whose restart finds it pending. On any other return the old mask is
    back at once, and what it lets through (a signal that came while the temporary mask blocked it) is
    delivered on the way out (restore_saved_sigmask_unless)."""
    if not sigmask:
        return wait(False)
    if sigsetsize != 8:
        raise SyscallError(EINVAL)
    new = int.from_bytes(k.mem.read(sigmask, 8), "little") & ~UNBLOCKABLE
    st = k.signals
    saved, st.blocked = st.blocked, new
    if not st.next_deliverable():
        try:
            n = wait(False)
        finally:
            st.blocked = saved
        return _finish(k, n)
    try:
        n = wait(True)
    except BaseException:
        st.blocked = saved
        raise
    if n:
        st.blocked = saved                      # the signal stays pending, blocked again
        return _finish(k, n)
    k.cpu.set_reg("rax", -EINTR & MASK64)
    if deliver_pending(k, saved_mask=saved):    # the frame restores the caller's mask on sigreturn
        return None
    st.blocked = saved                          # ignored on delivery: no frame, a plain EINTR
    raise SyscallError(EINTR)


def handle_interrupt(k, result: int | None = None):
    """A kicked task at a stop (exit_to_user_mode_loop): end it if its group is exiting, else deliver what is
    deliverable. ``result`` (a syscall's return value) goes in rax first; None when rax is set already."""
    k.interrupt = False
    if k.group.exiting:
        raise GuestExit(k.group.exit_status)
    if result is not None:
        k.cpu.set_reg("rax", result & MASK64)
    deliver_pending(k)
    return None


def interrupted_syscall(k, nr: int, how: int):
    """A blocking call that a kick interrupted (``how``: one of the ERESTART* errnos, or EINTR_WHEN_SIGNALLED):
    EINTR when the signal about to be delivered has a handler that does not restart it (EINTR_WHEN_SIGNALLED:
    whatever its action, a stop included), else the call restarts from the guest
    (rip back over the 2-byte `syscall`, rax = nr), after that handler or at once (handle_signal,
    arch_do_signal_or_restart)."""
    k.interrupt = False
    if k.group.exiting:
        raise GuestExit(k.group.exit_status)
    st = k.signals
    signo = st.next_deliverable()
    action = st.actions[signo] if signo else None
    runs_handler = action is not None and action.handler not in (SIG_DFL, SIG_IGN)
    cpu = k.cpu
    if (how == EINTR_WHEN_SIGNALLED and signo
            or runs_handler and (how == ERESTARTNOHAND or (how == ERESTARTSYS and not action.flags & SA_RESTART))):
        cpu.set_reg("rax", -EINTR & MASK64)
    else:
        cpu.set_reg("rip", cpu.get_reg("rip") - 2)
        cpu.set_reg("rax", nr)
    deliver_pending(k)
    return None


# -- faults --------------------------------------------------------------------------------------
def refused_int(k, stop) -> int | None:
    """The n of an `int n` the CPU refused at CPL3 (Linux's IDT lets user code through the gates of int3 and
    `int 4` alone): a #GP at the instruction on hardware, a #UD on PVM, the #GP the Unicorn backend makes of
    QEMU's report. None for any other fault."""
    if stop.vector not in (VEC_GP, VEC_UD):
        return None
    try:
        code = k.mem.read(stop.rip, INT_INSN_LEN)
    except SyscallError:
        return None
    return code[1] if code[0] == INT_OPCODE else None


def fault_siginfo(k, stop) -> tuple[int, bytes, int, int]:
    """(signo, siginfo, error code, trap number) for a CPU exception, as traps.c/fault.c report it to user space."""
    vector = stop.vector
    if vector == VEC_DB:
        # exc_debug_user(): DR6.BS (a single step: TF was set) is TRAP_TRACE, icebp's bare #DB TRAP_BRKPT
        code = TRAP_TRACE if k.cpu.get_reg("rflags") & X86_EFLAGS_TF else TRAP_BRKPT
        return SIGTRAP, make_siginfo(SIGTRAP, code, addr=stop.rip), 0, vector
    gate = refused_int(k, stop)
    if gate is not None:          # the #GP's error code names the IDT entry: (n << 3) | 2
        return SIGSEGV, make_siginfo(SIGSEGV, SI_KERNEL, addr=0), gate << 3 | 2, VEC_GP
    signo = FAULT_SIGNALS.get(vector, SIGSEGV)
    err = 0
    if vector == VEC_PF:
        vma = k.mem.find(stop.address)
        if vma is not None and vma.prot and vma.beyond_eof(stop.address):
            # past the file's end
            return SIGBUS, make_siginfo(SIGBUS, BUS_ADRERR, addr=stop.address), PF_USER, vector
        code = SEGV_ACCERR if vma is not None else SEGV_MAPERR
        if stop.error >= 0:       # the CPU's own: whether it was a write, an instruction fetch
            err = PF_USER | (stop.error & (PF_WRITE | PF_INSTR))
        else:
            err = PF_USER | (PF_INSTR if stop.address == stop.rip else 0)
            if vma is not None and vma.prot & PROT_READ and not vma.prot & PROT_WRITE:
                err |= PF_WRITE
        if vma is not None:
            err |= PF_PROT
        elif stop.address >= TASK_SIZE_MAX:
            err |= PF_PROT        # set_signal_archinfo(): the kernel's page-table layout is not for users to see
        return signo, make_siginfo(signo, code, addr=stop.address), err, vector
    if vector == VEC_DE:
        return signo, make_siginfo(signo, FPE_INTDIV, addr=stop.rip), err, vector
    if vector == VEC_UD:
        return signo, make_siginfo(signo, ILL_ILLOPN, addr=stop.rip), err, vector
    if vector == 19:
        return signo, make_siginfo(signo, _simd_code(k), addr=stop.rip), err, vector
    if vector == 17:
        return signo, make_siginfo(signo, BUS_ADRALN, addr=0), err, vector
    # #GP, #BP, #SS...: force_sig(), SI_KERNEL
    return signo, make_siginfo(signo, SI_KERNEL, addr=0), err, max(vector, 0)


def _simd_code(k) -> int:
    """math_error() for #XM: the first unmasked exception flagged in MXCSR."""
    mxcsr = k.cpu.get_reg("mxcsr") & 0xFFFFFFFF
    pending = mxcsr & 0x3F & ~((mxcsr >> 7) & 0x3F)
    for bit, code in ((0x1, FPE_FLTINV), (0x4, FPE_FLTDIV), (0x8, FPE_FLTOVF), (0x10, FPE_FLTUND),
                      (0x20, FPE_FLTRES)):
        if pending & bit:
            return code
    return 0


def handle_fault(k, stop) -> None:
    """A CPU exception the memory manager could not resolve becomes a synchronous signal."""
    signo, info, err, trap_nr = fault_siginfo(k, stop)
    st = k.signals
    st.trap_nr = trap_nr
    st.error_code = err
    if stop.vector == VEC_PF:
        st.cr2 = stop.address
    if stop.vector != VEC_BP:
        k.cpu.set_reg("rip", stop.rip)        # resume (or report) at the faulting instruction; int3 is a trap
    force_signal(k, signo, info)


# -- syscalls ------------------------------------------------------------------------------------
SIGNAL = Signal
HOW = Enum({SIG_BLOCK: "SIG_BLOCK", SIG_UNBLOCK: "SIG_UNBLOCK", SIG_SETMASK: "SIG_SETMASK"})


def _read_sigset(k, addr: int) -> int:
    return int.from_bytes(k.mem.read(addr, SIGSET_SIZE), "little")


@syscall("rt_sigaction", FULL)
def rt_sigaction(k, sig: SIGNAL, act: Ptr, oact: Ptr, sigsetsize: Size) -> int:
    """rt_sigaction(2) with struct kernel_sigaction {handler, flags, restorer, mask} (u64 each)."""
    if sigsetsize != SIGSET_SIZE:
        raise SyscallError(EINVAL)
    new = None
    if act:
        handler, flags, restorer, mask = struct.unpack("<4Q", k.mem.read(act, 32))
        new = Action(handler, flags & UAPI_SA_FLAGS, restorer, mask & ~UNBLOCKABLE)
    if not _valid(sig) or (new is not None and sig in (SIGKILL, SIGSTOP)):
        raise SyscallError(EINVAL)
    st = k.signals
    old = st.actions[sig]
    requeued = False
    if new is not None:
        was_ignored = st.ignored(sig)
        with _parking(_bit(sig)):
            st.actions[sig] = new
            if st.ignored(sig):
                st.discard(sig)               # POSIX 3.3.1.3: setting "ignore" discards a pending signal
            elif was_ignored and k.proc.timers:
                requeued = unignored(k, sig)
            if sig == SIGCHLD:
                sync_host_sigchld(new)
    if oact:
        k.mem.write(oact, old.pack())
    return _finish(k, 0) if requeued else 0


@syscall("rt_sigprocmask", FULL)
def rt_sigprocmask(k, how: HOW, nset: SigSet, oset: Ptr, sigsetsize: Size) -> int:
    """rt_sigprocmask(2); SIGKILL and SIGSTOP are never blocked. Unblocked pending signals arrive on return."""
    if sigsetsize != SIGSET_SIZE:
        raise SyscallError(EINVAL)
    st = k.signals
    old = st.blocked
    if nset:
        new = _read_sigset(k, nset) & ~UNBLOCKABLE
        if how == SIG_BLOCK:
            _set_blocked(st, old | new)
        elif how == SIG_UNBLOCK:
            _set_blocked(st, old & ~new)
        elif how == SIG_SETMASK:
            _set_blocked(st, new)
        else:
            raise SyscallError(EINVAL)
    if oset:
        k.mem.write(oset, old.to_bytes(SIGSET_SIZE, "little"))
    return _finish(k, 0)


def _set_blocked(st: SignalState, blocked: int) -> None:
    """A new blocked mask, an interval timer's signal it blocks or unblocks parked or not on the host as the
    guest now ignores it or not (Linux queues a blocked signal even when it is ignored)."""
    changed = st.blocked ^ blocked
    if changed & host_signals.PARKABLE:
        with host_signals.parking(changed):
            st.blocked = blocked
    else:
        st.blocked = blocked


def _parking(bits: int):
    """host_signals.parking(bits) when an interval timer's signal is among ``bits``, else nothing to do."""
    return host_signals.parking(bits) if bits & host_signals.PARKABLE else contextlib.nullcontext()


@syscall("rt_sigpending", FULL)
def rt_sigpending(k, uset: Ptr, sigsetsize: Size) -> int:
    """rt_sigpending(2): pending signals that are blocked."""
    if sigsetsize > SIGSET_SIZE:
        raise SyscallError(EINVAL)
    st = k.signals
    k.mem.write(uset, (st.pending_mask() & st.blocked).to_bytes(SIGSET_SIZE, "little")[:sigsetsize])
    return 0


@syscall("sigaltstack", FULL)
def sigaltstack(k, uss: Ptr, uoss: Ptr) -> int:
    """sigaltstack(2) (do_sigaltstack): stack_t is ss_sp u64, ss_flags s32 + pad, ss_size u64."""
    st = k.signals
    new = None
    if uss:
        new = struct.unpack("<QiIQ", k.mem.read(uss, 24))
    sp = k.cpu.get_reg("rsp")
    old = (st.sas_sp, st.sas_ss_flags(sp) | (st.sas_flags & SS_AUTODISARM), st.sas_size)
    if new is not None:
        ss_sp, ss_flags, _pad, ss_size = new
        ss_flags &= 0xFFFFFFFF
        if st.on_sig_stack(sp):
            raise SyscallError(EPERM)
        mode = ss_flags & ~SS_AUTODISARM
        if mode not in (SS_DISABLE, SS_ONSTACK, 0):
            raise SyscallError(EINVAL)
        if (ss_sp, ss_size, ss_flags) != (st.sas_sp, st.sas_size, st.sas_flags):
            if mode == SS_DISABLE:
                ss_sp, ss_size = 0, 0
            elif ss_size < MINSIGSTKSZ:
                raise SyscallError(ENOMEM)
            st.sas_sp, st.sas_size, st.sas_flags = ss_sp, ss_size, ss_flags
    if uoss:
        flags = old[1]
        k.mem.write(uoss, struct.pack("<QiIQ", old[0], flags - (1 << 32) if flags & (1 << 31) else flags, 0,
                                      old[2]))
    return 0


@syscall("rt_sigreturn", FULL)
def rt_sigreturn(k) -> None:
    """rt_sigreturn(2): registers, rflags, FPU state, mask and altstack back from the frame at rsp - 8."""
    cpu, mem, st = k.cpu, k.mem, k.signals
    regs = cpu.get_regs()
    uc = regs[_REG_INDEX["rsp"]] - 8 + UC_OFFSET
    try:
        raw = mem.read(uc, UCONTEXT_SIZE)
        values = struct.unpack_from(SC_FORMAT, raw, UC_MCONTEXT)
        fpstate = values[-1]
        fpu = mem.read(fpstate, FXSAVE_SIZE) if fpstate else INIT_FPU
    except SyscallError:
        st.trap_nr = st.error_code = 0
        _force_sigsegv(k, 0)
        return None
    _set_blocked(st, struct.unpack_from("<Q", raw, UC_SIGMASK)[0] & ~UNBLOCKABLE)
    old_flags = regs[_REG_INDEX["rflags"]]
    for value, index in zip(values, _SC_TO_GPR):
        regs[index] = value
    regs[_REG_INDEX["rflags"]] = (old_flags & ~FIX_EFLAGS) | (values[17] & FIX_EFLAGS)
    cpu.set_regs(regs)
    fpu = bytearray(fpu)
    struct.pack_into("<I", fpu, 24, struct.unpack_from("<I", fpu, 24)[0] & 0xFFFF)   # MXCSR reserved bits
    cpu.write_fpu_state(bytes(fpu))
    ss_sp, ss_flags, _pad, ss_size = struct.unpack_from("<QiIQ", raw, UC_STACK)
    _restore_altstack(st, ss_sp, ss_flags & 0xFFFFFFFF, ss_size, uc - UC_OFFSET)
    deliver_pending(k)
    return None


def _restore_altstack(st: SignalState, ss_sp: int, ss_flags: int, ss_size: int, sp: int) -> None:
    """restore_altstack(): do_sigaltstack with every error but EFAULT squashed.

    ``sp`` is where the frame was: Linux (6.x, measured) refuses the change while the handler's frame is on
    the alternate stack, as an EPERM it then squashes."""
    if st.on_sig_stack(sp):
        return
    mode = ss_flags & ~SS_AUTODISARM
    if mode not in (SS_DISABLE, SS_ONSTACK, 0):
        return
    if mode == SS_DISABLE:
        ss_sp, ss_size = 0, 0
    elif ss_size < MINSIGSTKSZ:
        return
    st.sas_sp, st.sas_size, st.sas_flags = ss_sp, ss_size, ss_flags


def sync_host_sigchld(action: Action) -> None:
    """The guest's children are hermipy's process's children: its host SIGCHLD action carries what the
    kernel reads there for children (do_notify_parent, do_notify_parent_cldstop): SIG_IGN or SA_NOCLDWAIT
    (the host reaps them itself; wait4 waits for them all, then ECHILD) and SA_NOCLDSTOP (no SIGCHLD when
    one stops or continues). Any other handler is SIG_DFL on the host: SIGCHLD stays blocked, and the signal
    pump forwards it."""
    handler = SIG_IGN if action.handler == SIG_IGN else SIG_DFL
    host = ctypes.create_string_buffer(Action(handler, action.flags & (SA_NOCLDSTOP | SA_NOCLDWAIT)).pack())
    _host_syscall("rt_sigaction", SIGCHLD, ctypes.addressof(host), 0, SIGSET_SIZE)


def _host_syscall(name: str, *args: int) -> int:
    """Forward a signal to another host process or thread (the guest shares the host's pid space); the host's
    refusal is the caller's errno."""
    from hermipy.syscalls.host import host_call
    try:
        return host_call(name, *args)
    except OSError as err:
        raise SyscallError(err.errno) from None


def _own_info(k, sig: int, code: int) -> bytes:
    return make_siginfo(sig, code, pid=k.proc.pid, uid=k.proc.uid)


def _thread(k, tid: int):
    """The live task ``tid`` of the caller's thread group, or None."""
    return k.group.tasks.get(tid)


@syscall("kill", PARTIAL, note="pids and process groups are the host's (each guest process is a hermipy "
                               "process, whose signal pump hands the signal to its guest); -1 reaches only the "
                               "processes of this run: the descendants of its first process (one orphaned and "
                               "re-parented out of that tree is not reached); signals 32, 33 and 64 do not reach "
                               "another guest process")
def kill(k, pid: Int, sig: SIGNAL) -> int:
    """kill(2) (kill_something_info). Guest pids are host pids, so another process or a process group is the
    host's kill, Linux's permission rules and errnos included; the share of a group the caller is in is
    pending before the call returns (host_signals.drain), as Linux makes it, and its handler runs first."""
    from hermipy.syscalls.host_signals import FORWARDED, drain
    if not 0 <= sig <= NSIG:
        raise SyscallError(EINVAL)
    if pid == k.proc.pid or pid in k.group.tasks:     # a thread's id names its process too
        if sig:
            signal_group(k, sig, _own_info(k, sig, SI_USER))
        return _finish(k, 0)
    member = _vm_process_task(pid)
    if member is not None:                 # a CLONE_VM process inside this hermipy (or its parent's)
        if sig:
            signal_group(member, sig, _own_info(k, sig, SI_USER))
        return _finish(k, 0)
    pid = _host_pid(pid)
    if pid > 0:
        _visible(k, pid)
        return _host_syscall("kill", pid, sig)
    if pid == -1:
        return _finish(k, _kill_run(k, sig))
    if k.fs.confined:                   # a group, seen from a pid namespace of the run's own: its members there
        return _finish(k, _kill_members(k, -pid or os.getpgrp(), sig, _run_pids(k)))
    if sig and sig not in FORWARDED and sig not in (SIGKILL, SIGSTOP) and (pid == 0 or -pid == os.getpgrp()):
        return _finish(k, _kill_members(k, os.getpgrp(), sig))     # its own would not come back to it
    result = _host_syscall("kill", pid, sig)
    drain()
    return _finish(k, result)


def _vm_process_task(pid: int):
    """A live task of the CLONE_VM process ``pid`` of this hermipy process (or of a thread of one), or None."""
    from hermipy.syscalls.sys_fork import VM_PROCESSES
    for group in list(VM_PROCESSES.values()):
        task = group.tasks.get(pid)
        if task is not None:
            return next(iter(group.tasks.values())) if pid == task.proc.pid else task
    return None


def _host_pid(pid: int) -> int:
    """The host pid of ``pid``: a CLONE_VM process that exec'd runs as another."""
    from hermipy.syscalls.sys_fork import VM_EXECED_HOST
    return VM_EXECED_HOST.get(pid, pid)


def _host_processes():
    """(pid, parent pid, process group, session, state) of every process in the host's /proc."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue                            # gone meanwhile
        fields = stat[stat.rindex(b")") + 2:].split()        # after "pid (comm) ": state, ppid, pgrp, session
        yield int(name), int(fields[1]), int(fields[2]), int(fields[3]), fields[0]


def _kill_members(k, pgid: int, sig: int, among: set[int] | None = None) -> int:
    """__kill_pgrp_info() one process at a time (those ``among`` only, when given), the caller's own share given
    to it directly: 0 when one process got the signal, else the last error."""
    error = ESRCH
    for pid, _ppid, pgrp, _sid, _state in _host_processes():
        if pgrp != pgid or among is not None and pid not in among:
            continue
        if pid == k.proc.pid:
            if sig:
                signal_group(k, sig, _own_info(k, sig, SI_USER))
            error = 0
            continue
        try:
            _host_syscall("kill", pid, sig)
            error = 0
        except SyscallError as err:
            error = error if error == 0 else err.errno
    if error:
        raise SyscallError(error)
    return 0


def _kill_run(k, sig: int) -> int:
    """kill(-1): every process the caller may signal except itself and pid 1 -- of this run only (the
    descendants of its first hermipy process, through /proc), since nothing else on the host is the guest's.
    As Linux counts it: EPERM from some is no error, ESRCH when there is no process at all."""
    count, error = 0, 0
    for pid in sorted(_run_pids(k)):
        if pid <= 1 or pid == k.proc.pid:
            continue
        count += 1
        try:
            _host_syscall("kill", pid, sig)
            error = 0
        except SyscallError as err:
            if err.errno != EPERM:
                error = err.errno
    if not count:
        raise SyscallError(ESRCH)
    if error:
        raise SyscallError(error)
    return 0


def _run_pids(k) -> set[int]:
    """The processes of this run: its first one and all that one's descendants (through the host's /proc)."""
    children: dict[int, list[int]] = {}
    for pid, ppid, _pgrp, _sid, _state in _host_processes():
        children.setdefault(ppid, []).append(pid)
    run, todo = set(), [k.proc.run_root]
    while todo:
        pid = todo.pop()
        run.add(pid)
        todo.extend(children.get(pid, ()))
    return run


def _visible(k, pid: int) -> None:
    """Under --root a guest sees only its run's processes, as from a pid namespace of its own: another
    process (or a thread of one) is ESRCH, it exists or not."""
    if not k.fs.confined:
        return
    tgid = pid
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            tgid = next(int(line.split()[1]) for line in f if line.startswith(b"Tgid:"))
    except (OSError, StopIteration, ValueError):
        pass
    if tgid not in _run_pids(k):
        raise SyscallError(ESRCH)


def tty_job_control(k, host_fd: int, signo: int, tostop: bool = False) -> None:
    """__tty_check_change() (drivers/tty/tty_jobctrl.c) before a read (SIGTTIN), a write with TOSTOP
    (``tostop``) or a change of the terminal (SIGTTOU) on the caller's controlling terminal. hermipy does it
    because the host sees hermipy's threads, which block every forwarded signal: for a background process the
    host would answer EIO to the read and let the rest through. A background process that ignores or blocks
    the signal gets EIO (a read) or goes on; in an orphaned process group it gets EIO; else its process group
    gets the signal (whose default action stops it) and the call restarts (ERESTARTSYS)."""
    try:
        foreground = os.tcgetpgrp(host_fd)
    except OSError:
        return                                  # not a terminal, or not the caller's controlling one
    pgrp = os.getpgrp()
    if foreground <= 0 or foreground == pgrp or os.fstat(host_fd).st_rdev != _controlling_tty():
        return                                  # in the foreground; or a pty master (job_control skips it)
    if tostop and not termios.tcgetattr(host_fd)[3] & termios.TOSTOP:
        return
    st = k.signals
    if st.blocked & _bit(signo) or st.actions[signo].handler == SIG_IGN:
        if signo == SIGTTIN:
            raise SyscallError(EIO)
        return
    if _orphaned(pgrp):
        raise SyscallError(EIO)
    from hermipy.syscalls.host_signals import drain
    _host_syscall("kill", -pgrp, signo)         # kill_pgrp(): the caller's own share is pending on return
    drain()
    raise SyscallError(ERESTARTSYS)


def _controlling_tty() -> int:
    """The device number of hermipy's process's controlling terminal (tty_nr in /proc/self/stat), 0 if none."""
    with open("/proc/self/stat", "rb") as f:
        stat = f.read()
    return int(stat[stat.rindex(b")") + 2:].split()[4])


def _orphaned(pgrp: int) -> bool:
    """will_become_orphaned_pgrp(): no live member of ``pgrp`` has a parent (other than init) in another process
    group of the same session."""
    processes = {pid: (ppid, group, sid, state) for pid, ppid, group, sid, state in _host_processes()}
    for ppid, group, sid, state in processes.values():
        if group != pgrp or state == b"Z" or ppid <= 1 or ppid not in processes:
            continue
        _pp, parent_group, parent_sid, _ps = processes[ppid]
        if parent_group != pgrp and parent_sid == sid:
            return False
    return True


def _to_thread(k, task, sig: int, info: bytes) -> int:
    if sig:
        signal_task(task, sig, info)
    return _finish(k, 0)


@syscall("tgkill", FULL)
def tgkill(k, tgid: Int, tid: Int, sig: SIGNAL) -> int:
    """tgkill(2): a thread of the caller's group gets it directly; other ids are forwarded to the host."""
    if tid <= 0 or tgid <= 0:
        raise SyscallError(EINVAL)
    task = _thread(k, tid)
    if task is not None or tgid == k.proc.pid:
        if task is None or tgid != k.proc.pid:
            raise SyscallError(ESRCH)
        if not 0 <= sig <= NSIG:
            raise SyscallError(EINVAL)
        return _to_thread(k, task, sig, _own_info(k, sig, SI_TKILL))
    task = _vm_process_task(tid)
    if task is not None:
        if task.proc.pid != tgid:
            raise SyscallError(ESRCH)
        if not 0 <= sig <= NSIG:
            raise SyscallError(EINVAL)
        return _to_thread(k, task, sig, _own_info(k, sig, SI_TKILL))
    _visible(k, _host_pid(tgid))
    return _host_syscall("tgkill", _host_pid(tgid), _host_pid(tid), sig)


@syscall("tkill", FULL)
def tkill(k, tid: Int, sig: SIGNAL) -> int:
    """tkill(2)."""
    if tid <= 0:
        raise SyscallError(EINVAL)
    task = _thread(k, tid) or _vm_process_task(tid)
    if task is not None:
        if not 0 <= sig <= NSIG:
            raise SyscallError(EINVAL)
        return _to_thread(k, task, sig, _own_info(k, sig, SI_TKILL))
    _visible(k, _host_pid(tid))
    return _host_syscall("tkill", _host_pid(tid), sig)


def _queue_info(k, sig: int, uinfo: int, to_self: bool) -> bytes:
    """The siginfo a sigqueue caller supplies (do_rt_sigqueueinfo): it may not pose as the kernel or as
    kill/tkill to another process; si_signo is the signal sent."""
    info = bytearray(k.mem.read(uinfo, SIGINFO_SIZE))
    code = struct.unpack_from("<i", info, 8)[0]
    if (code >= 0 or code == SI_TKILL) and not to_self:
        raise SyscallError(EPERM)
    struct.pack_into("<i", info, 0, sig)
    return bytes(info)


def _host_sigqueue(name: str, ids: tuple[int, ...], sig: int, info: bytes) -> int:
    buf = ctypes.create_string_buffer(info, SIGINFO_SIZE)
    return _host_syscall(name, *ids, sig, ctypes.addressof(buf))


@syscall("rt_sigqueueinfo", FULL)
def rt_sigqueueinfo(k, pid: Int, sig: SIGNAL, uinfo: Ptr) -> int:
    """rt_sigqueueinfo(2) (sigqueue): to itself queued with the caller's siginfo; other pids via the host."""
    own = pid == k.proc.pid
    info = _queue_info(k, sig, uinfo, own)
    if not own:
        _visible(k, pid)
        return _host_sigqueue("rt_sigqueueinfo", (pid,), sig, info)
    if not 0 <= sig <= NSIG:
        raise SyscallError(EINVAL)
    if sig:
        signal_group(k, sig, info)
    return _finish(k, 0)


@syscall("rt_tgsigqueueinfo", FULL)
def rt_tgsigqueueinfo(k, tgid: Int, tid: Int, sig: SIGNAL, uinfo: Ptr) -> int:
    """rt_tgsigqueueinfo(2): like rt_sigqueueinfo, aimed at one thread."""
    if tgid <= 0 or tid <= 0:
        raise SyscallError(EINVAL)
    task = _thread(k, tid)
    own = task is not None
    info = _queue_info(k, sig, uinfo, own)
    if not own:
        _visible(k, tgid)
        return _host_sigqueue("rt_tgsigqueueinfo", (tgid, tid), sig, info)
    if tgid != k.proc.pid:
        raise SyscallError(ESRCH)
    if not 0 <= sig <= NSIG:
        raise SyscallError(EINVAL)
    return _to_thread(k, task, sig, info)


@syscall("rt_sigsuspend", FULL)
def rt_sigsuspend(k, unewset: SigSet, sigsetsize: Size) -> int:
    """rt_sigsuspend(2): wait with the temporary mask until a signal is delivered (its frame restores the old
    mask); always EINTR."""
    if sigsetsize != SIGSET_SIZE:
        raise SyscallError(EINVAL)
    st = k.signals
    new = _read_sigset(k, unewset) & ~UNBLOCKABLE
    saved = st.blocked
    st.blocked = new
    k.cpu.set_reg("rax", -EINTR & MASK64)
    _suspend(k, saved)
    return None


@syscall("pause", FULL)
def pause(k) -> int:
    """pause(2): wait until a signal runs a handler (or ends the process); EINTR."""
    k.cpu.set_reg("rax", -EINTR & MASK64)
    _suspend(k, None)
    return None


def _suspend(k, saved_mask: int | None) -> None:
    """Sleep until a signal is delivered (a frame built, or the group ends)."""
    from hermipy.syscalls.kicks import wait
    while True:
        k.interrupt = False
        if k.group.exiting:
            raise GuestExit(k.group.exit_status)
        if deliver_pending(k, saved_mask=saved_mask):
            return
        try:
            wait(k)
        except SyscallError:
            pass


@syscall("rt_sigtimedwait", FULL)
def rt_sigtimedwait(k, uthese: SigSet, uinfo: Ptr, uts: Ptr, sigsetsize: Size) -> int:
    """rt_sigtimedwait(2): dequeue a pending signal of the set, write its siginfo, return its number; wait
    for one up to the timeout (EAGAIN). Anything else that wakes it ends it with EINTR, SA_RESTART or not
    (do_sigtimedwait): another signal to be delivered (a handler's, a stop's), a stop and continue (signal(7))."""
    from hermipy.syscalls.host_signals import continued_since
    from hermipy.syscalls.kicks import STOP_SENSITIVE, interrupted, sleep
    if sigsetsize != SIGSET_SIZE:
        raise SyscallError(EINVAL)
    these = _read_sigset(k, uthese) & ~UNBLOCKABLE
    started = STOP_SENSITIVE[k] = time.monotonic()
    try:
        deadline = None
        if uts:
            sec, nsec = struct.unpack("<qq", k.mem.read(uts, 16))
            if sec < 0 or not 0 <= nsec < 1_000_000_000:
                raise SyscallError(EINVAL)
            deadline = time.monotonic_ns() + sec * 1_000_000_000 + nsec
        st = k.signals
        while True:
            with k.group.lock:
                taken = st.dequeue_from(these)
                if taken:
                    signo, info = taken
                    break
            left = None if deadline is None else deadline - time.monotonic_ns()
            if left is not None and left <= 0:
                raise SyscallError(EAGAIN)
            k.interrupt = False
            if st.next_deliverable():
                raise SyscallError(EINTR_WHEN_SIGNALLED)
            if continued_since(started):         # a stop and continue, maybe before the sleep
                raise SyscallError(EINTR)
            saved = st.blocked
            st.blocked, st.real_blocked = saved & ~these, saved    # the set counts as unblocked (senders pick us),
            try:                                                   # yet a blocked ignored one is still kept
                if st.pending_mask() & these:
                    continue
                sleep(k, left)                           # a kick, or the time is up: looked at again above
            except InterruptedError:
                raise interrupted(started) from None
            finally:
                st.blocked, st.real_blocked = saved, 0
    finally:
        STOP_SENSITIVE.pop(k, None)
    if uinfo:
        k.mem.write(uinfo, info)
    return signo
