"""Errors that end a run with one clear line and a shell-like exit status (126/127)."""


class HermipyError(Exception):
    """A problem to report to the user as ``hermipy: <message>``, exiting with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 126):
        super().__init__(message)
        self.exit_code = exit_code


class LoadError(HermipyError):
    """The binary cannot be loaded (missing, not an ELF, wrong architecture, corrupt); ``errno`` is what
    execve(2) returns for it."""

    def __init__(self, message: str, exit_code: int = 126, errno: int = 8):      # ENOEXEC
        super().__init__(message, exit_code)
        self.errno = errno


class ExecFailed(LoadError):
    """The new image could not be built after execve's point of no return: Linux kills the process with
    SIGSEGV (fs/exec.c bprm_execve)."""

    SIGNAL = 11

    def __init__(self, message: str, errno: int):
        super().__init__(f"{message}: Segmentation fault", 128 + self.SIGNAL, errno)
