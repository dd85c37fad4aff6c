"""`int 0x80` from a 64-bit process: Linux's i386 syscall ABI (entry_INT80_compat), which it serves for any
process, with the i386 numbers (asm/unistd_32.h), the number in eax and the arguments in ebx, ecx, edx, esi,
edi, ebp; the result in rax, sign-extended; rcx, r11 and r8-r15 kept.

hermipy serves the i386 calls whose arguments and result are those of their x86-64 counterpart -- integers,
and 32-bit pointers to bytes and strings -- through the x86-64 handlers, and returns ENOSYS, reported once, for
the others (their structures have other layouts).
"""
from errno import ENOSYS

from hermipy.cpu import INT_INSN_LEN

INT80 = 0x80
MASK32, MASK64 = (1 << 32) - 1, (1 << 64) - 1
I386_ARGS = ("rbx", "rcx", "rdx", "rsi", "rdi", "rbp")

# i386 number -> the x86-64 call that takes the same arguments (the *32 uid calls: the 32-bit ids of x86-64's)
I386_CALLS = {1: "exit", 3: "read", 4: "write", 5: "open", 6: "close", 8: "creat", 10: "unlink", 12: "chdir",
              20: "getpid", 27: "alarm", 29: "pause", 33: "access", 36: "sync", 37: "kill", 38: "rename",
              39: "mkdir", 40: "rmdir", 41: "dup", 60: "umask", 63: "dup2", 64: "getppid", 66: "setsid",
              118: "fsync", 133: "fchdir", 158: "sched_yield", 199: "getuid", 200: "getgid", 201: "geteuid",
              202: "getegid", 224: "gettid", 252: "exit_group", 270: "tgkill"}


class _I386Call:
    """What Kernel.report_unimplemented names: an i386 call hermipy does not serve."""

    def __init__(self, nr: int):
        self.nr, self.name = nr, f"i386_{nr}"


def serve_int80(k, on_syscall, rip: int) -> None:
    """Serve the `int 0x80` at ``rip`` and resume after it (``on_syscall`` is the task's dispatcher: tracing,
    signals and restarts as for `syscall`)."""
    from hermipy.syscalls.table import NUMBERS
    cpu = k.cpu
    after = rip + INT_INSN_LEN
    cpu.set_reg("rip", after)
    i386_nr = cpu.get_reg("rax") & MASK32
    name = I386_CALLS.get(i386_nr)
    if name is None:
        k.report_unimplemented(_I386Call(i386_nr))
        cpu.set_reg("rax", -ENOSYS & MASK64)
        return
    nr = NUMBERS[name]
    args = [cpu.get_reg(r) & MASK32 for r in I386_ARGS]
    result = on_syscall(nr, *args)
    if result is not None:
        cpu.set_reg("rax", result & MASK64)
    if cpu.get_reg("rip") == rip and cpu.get_reg("rax") == nr:
        cpu.set_reg("rax", i386_nr)       # restarted (SA_RESTART): the `int 0x80` runs again, with its number
