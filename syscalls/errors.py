"""The one exception a syscall handler raises: ``SyscallError(errno)``; the dispatcher negates it."""
import os


class SyscallError(Exception):
    __slots__ = ("errno",)

    def __init__(self, errno: int):
        super().__init__(errno)
        self.errno = errno

    def __str__(self) -> str:
        return os.strerror(self.errno)
