"""The one CPU interface every backend implements: run the guest until a stop, and say why.

A backend owns the vCPU; guest RAM is a host mapping shared with the kernel (``PhysicalMemory``), so
syscall handlers read and write guest memory directly. Syscalls are serviced in-line through the
callback given to :meth:`Cpu.run`; the run only returns at a stop the kernel must decide on.
"""
from enum import Enum


class StopReason(Enum):
    EXIT = "exit"        # the guest called exit/exit_group, or was killed
    FAULT = "fault"      # a CPU exception the kernel must resolve (page fault, #GP, #UD, #DE ...)
    INTERRUPT = "interrupt"   # Cpu.kick(): stopped where the registers are the application's


# x86 exception vectors (Intel SDM vol. 3, 6.3.1)
VEC_DE, VEC_DB, VEC_BP, VEC_UD, VEC_DF, VEC_GP, VEC_PF = 0, 1, 3, 6, 8, 13, 14
INT_INSN_LEN = 2            # `int n` (0xcd n)


class Stop:
    """Why a run ended: EXIT with the status to report, or FAULT with the vector, CR2, faulting rip and the
    CPU's error code when the backend has it (-1: not known)."""

    __slots__ = ("reason", "vector", "address", "rip", "status", "error")

    def __init__(self, reason: StopReason, vector: int = -1, address: int = 0, rip: int = 0, status: int = 0,
                 error: int = -1):
        self.reason, self.vector, self.address, self.rip, self.status = reason, vector, address, rip, status
        self.error = error

    def __repr__(self) -> str:
        return (f"Stop({self.reason.name}, vector={self.vector}, address={self.address:#x}, rip={self.rip:#x}, "
                f"status={self.status})")


class GuestExit(Exception):
    """Raised by the kernel (exit, exit_group, a fatal signal) to end the run."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


class ReplaceImage(Exception):
    """Raised by the kernel (execve; a fork child whose backend cannot be inherited) to go on with
    ``kernel`` and its CPU from the state they hold."""

    def __init__(self, kernel):
        super().__init__("replace image")
        self.kernel = kernel


# General-purpose register order used by get_regs/set_regs (matches struct user_regs_struct minus segs).
GPR_NAMES = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
             "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags")


class Cpu:
    """Interface of a CPU backend. See UnicornCpu for the reference implementation."""

    name = "abstract"
    survives_fork = True        # False: a forked child must build its own (a KVM VM belongs to its process)
    tsc_is_host = False         # the guest's rdtsc reads the host's TSC (the vDSO's clocks rely on it)
    exitless_server = None      # KVM's exitless mode: the Dispatcher serving posted syscalls (kvm_backend)

    def run(self, on_syscall) -> Stop:
        """Run from the current rip until a stop. ``on_syscall(nr, a0..a5) -> int`` services syscalls."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the vCPU and what it holds (the guest RAM belongs to the kernel)."""
        raise NotImplementedError

    def spawn(self) -> "Cpu":
        """A new CPU over the same address space (a guest thread's), starting as a copy of this one's
        registers, FS/GS base and FPU state; its ``run`` is called from another host thread."""
        raise NotImplementedError

    def kick(self) -> None:
        """From any host thread: make ``run`` return Stop(INTERRUPT) soon, at a point where the registers are
        the application's (at once if called while ``run`` is not running)."""
        raise NotImplementedError

    def get_regs(self) -> list[int]:
        """All GPR_NAMES values."""
        raise NotImplementedError

    def set_regs(self, values: list[int]) -> None:
        raise NotImplementedError

    def get_reg(self, name: str) -> int:
        raise NotImplementedError

    def set_reg(self, name: str, value: int) -> None:
        raise NotImplementedError

    def set_fs_base(self, value: int) -> None:
        raise NotImplementedError

    def get_fs_base(self) -> int:
        raise NotImplementedError

    def set_gs_base(self, value: int) -> None:
        raise NotImplementedError

    def get_gs_base(self) -> int:
        raise NotImplementedError

    def read_fpu_state(self) -> bytes:
        """The 512-byte FXSAVE image (for signal frames)."""
        raise NotImplementedError

    def write_fpu_state(self, data: bytes) -> None:
        raise NotImplementedError

    def flush_tlb(self) -> None:
        """Page-table entries were removed or downgraded: drop cached translations."""
        raise NotImplementedError

    def stop_answering_in_guest(self) -> None:
        """Nothing is answered inside the guest from now on (``answer_in_guest``'s function now returns {}):
        the answer page is rewritten and the per-site trampolines are withdrawn."""

    def sole_in_child(self) -> None:
        """In a fork child, which has only the forking thread: this CPU is the only one of its address space
        from now on (the other threads' CPUs, copied mid-flight, must not be waited for)."""

    def invalidate_code(self, start: int, end: int) -> None:
        """Guest code in [start, end) changed behind the CPU's back: drop its translations."""
        raise NotImplementedError

    def cpuid_features(self) -> tuple[int, int]:
        """(AT_HWCAP, AT_HWCAP2) as Linux computes them for this CPU."""
        raise NotImplementedError
