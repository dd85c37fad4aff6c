"""The one exception a syscall handler raises: ``SyscallError(errno)``; the dispatcher negates it."""
import os


class SyscallError(Exception):
    __slots__ = ("errno",)

    def __init__(self, errno: int):
        super().__init__(errno)
        self.errno = errno

    def __str__(self) -> str:
        return os.strerror(self.errno)


# Kernel-internal "restart" errnos (include/linux/errno.h): a blocking call interrupted by a kick raises one;
# the dispatcher makes it EINTR or restarts the call, as signal delivery does (arch/x86/kernel/signal.c
# handle_signal, and arch_do_signal_or_restart when no handler runs). The guest never sees them.
ERESTARTSYS = 512           # restart when the handler has SA_RESTART (or no handler runs), else EINTR
ERESTARTNOINTR = 513        # always restart
ERESTARTNOHAND = 514        # EINTR when a handler runs, else restart (pause, sigsuspend)
# hermipy's own: a call Linux fails with -EINTR itself whenever a signal wakes it (ep_poll, do_sigtimedwait,
# sock_intr_errno with a timeout), which delivery never restarts: EINTR when a signal is to be delivered,
# whatever its action (a stop signal's too: signal(7), "Interruption of system calls and library functions by
# stop signals"); restart after a kick with nothing to deliver (Linux has no such wakeup).
EINTR_WHEN_SIGNALLED = 600        # (beyond the kernel's own internal errnos, 512..531)
RESTART_ERRNOS = frozenset((ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, EINTR_WHEN_SIGNALLED))
