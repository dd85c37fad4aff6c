"""Signals: dispositions, masks, and what a CPU fault becomes (kernel/signal.c, arch/x86/kernel/traps.c)."""
import signal as _signal
import sys

from hermipy.cpu import GuestExit, VEC_BP, VEC_DE, VEC_GP, VEC_PF, VEC_UD

SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV = 4, 5, 6, 7, 8, 11
FAULT_SIGNALS = {VEC_DE: SIGFPE, VEC_BP: SIGTRAP, VEC_UD: SIGILL, VEC_GP: SIGSEGV, VEC_PF: SIGSEGV,
                 12: SIGBUS, 16: SIGFPE, 17: SIGBUS, 19: SIGFPE}


class SignalState:
    def __init__(self):
        self.killed_by = 0


def terminate_by_signal(k, signo: int):
    """Default action 'terminate': report it the way a shell does and exit with 128+signo."""
    k.signals.killed_by = signo
    sys.stdout.flush()
    sys.stderr.write(f"{_signal.strsignal(signo) or f'Signal {signo}'}\n")
    sys.stderr.flush()
    raise GuestExit(128 + signo)


def handle_fault(k, stop) -> None:
    """A CPU exception the memory manager could not resolve becomes a synchronous signal."""
    terminate_by_signal(k, FAULT_SIGNALS.get(stop.vector, SIGSEGV))
