"""Syscall argument types: each decodes a raw 64-bit register and prints itself for ``--strace``.

A handler's annotations are its argument types, so the table, the decoding and the strace printer
are one source of truth (gVisor's linux64.go + strace/linux64.go, folded together).
"""
import errno as _errno
import os

MASK32 = 0xFFFFFFFF
AT_FDCWD = -100


def _s32(raw: int) -> int:
    raw &= MASK32
    return raw - (1 << 32) if raw & 0x80000000 else raw


def _s64(raw: int) -> int:
    return raw - (1 << 64) if raw & (1 << 63) else raw


class Arg:
    """Unsigned 64-bit value, printed in decimal."""
    decode = None                       # None: the raw register value is used as is

    def show(self, k, value, args) -> str:
        return str(value)


class Int(Arg):
    """C int: the low 32 bits, signed."""
    decode = staticmethod(_s32)


class Long(Arg):
    """C long / off_t / loff_t: signed 64 bits."""
    decode = staticmethod(_s64)


class UInt(Arg):
    decode = staticmethod(lambda raw: raw & MASK32)


class Size(Arg):
    """size_t."""


class Fd(Int):
    pass


class DirFd(Int):
    def show(self, k, value, args) -> str:
        return "AT_FDCWD" if value == AT_FDCWD else str(value)


class Ptr(Arg):
    def show(self, k, value, args) -> str:
        return hex(value) if value else "NULL"


class Path(Ptr):
    """const char * naming a file: printed as a quoted string."""

    def show(self, k, value, args) -> str:
        if not value:
            return "NULL"
        try:
            return quote(k.mem.read_cstr(value, 4096))
        except Exception:
            return hex(value)


class InBuf(Ptr):
    """A buffer the guest hands in, whose length is argument ``size_arg``: printed like strace -s 32."""

    def __init__(self, size_arg: int):
        self.size_arg = size_arg

    def show(self, k, value, args) -> str:
        try:
            n = args[self.size_arg]
            data = k.mem.read(value, min(n, 32))
            return quote(data) + ("..." if n > 32 else "")
        except Exception:
            return hex(value)


class Octal(UInt):
    def show(self, k, value, args) -> str:
        return "0%o" % value if value else "0"


class Flags(Int):
    """A bit set printed as NAME|NAME|0x..; ``zero`` names the value 0 (e.g. O_RDONLY)."""

    def __init__(self, names: dict[int, str], zero: str = "0", low_bits_enum: dict[int, str] | None = None,
                 low_mask: int = 0):
        self.names, self.zero, self.low_enum, self.low_mask = names, zero, low_bits_enum, low_mask

    def show(self, k, value, args) -> str:
        parts = []
        rest = value & MASK32 if value >= 0 else value & MASK32
        if self.low_enum is not None:
            parts.append(self.low_enum.get(rest & self.low_mask, hex(rest & self.low_mask)))
            rest &= ~self.low_mask
        for bit, name in self.names.items():
            if rest & bit == bit and bit:
                parts.append(name)
                rest &= ~bit
        if rest:
            parts.append(hex(rest))
        return "|".join(parts) if parts else self.zero


class Enum(Int):
    def __init__(self, names: dict[int, str]):
        self.names = names

    def show(self, k, value, args) -> str:
        return self.names.get(value, str(value))


def quote(data: bytes) -> str:
    """A C string literal the way strace prints one."""
    out = ['"']
    for b in data:
        c = chr(b)
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif 32 <= b < 127:
            out.append(c)
        else:
            out.append("\\%o" % b)
    out.append('"')
    return "".join(out)


def show_result(value: int) -> str:
    """Return value as strace prints it: ``-1 ENOENT (No such file or directory)`` for errors."""
    if value is None:
        return "?"
    if -4096 < value < 0:
        code = -value
        return f"-1 {_errno.errorcode.get(code, str(code))} ({os.strerror(code)})"
    return str(value) if value < 1 << 20 or value >= 1 << 63 else hex(value)


O_ACCMODE = {0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR"}
OPEN_FLAGS = Flags({0o100: "O_CREAT", 0o200: "O_EXCL", 0o400: "O_NOCTTY", 0o1000: "O_TRUNC",
                    0o2000: "O_APPEND", 0o4000: "O_NONBLOCK", 0o10000: "O_DSYNC", 0o20000: "O_ASYNC",
                    0o40000: "O_DIRECT", 0o200000: "O_DIRECTORY", 0o400000: "O_NOFOLLOW",
                    0o1000000: "O_NOATIME", 0o2000000: "O_CLOEXEC", 0o4010000: "O_SYNC",
                    0o10000000: "O_PATH", 0o20200000: "O_TMPFILE", 0o100000: "O_LARGEFILE"},
                   low_bits_enum=O_ACCMODE, low_mask=3)
PROT = Flags({1: "PROT_READ", 2: "PROT_WRITE", 4: "PROT_EXEC"}, zero="PROT_NONE")
MAP_FLAGS = Flags({0x10: "MAP_FIXED", 0x20: "MAP_ANONYMOUS", 0x100: "MAP_GROWSDOWN", 0x800: "MAP_DENYWRITE",
                   0x2000: "MAP_LOCKED", 0x4000: "MAP_NORESERVE", 0x8000: "MAP_POPULATE",
                   0x10000: "MAP_NONBLOCK", 0x20000: "MAP_STACK", 0x100000: "MAP_FIXED_NOREPLACE"},
                  low_bits_enum={1: "MAP_SHARED", 2: "MAP_PRIVATE", 3: "MAP_SHARED_VALIDATE"}, low_mask=3)
AT_FLAGS = Flags({0x100: "AT_SYMLINK_NOFOLLOW", 0x200: "AT_REMOVEDIR", 0x400: "AT_SYMLINK_FOLLOW",
                  0x800: "AT_NO_AUTOMOUNT", 0x1000: "AT_EMPTY_PATH"})
WHENCE = Enum({0: "SEEK_SET", 1: "SEEK_CUR", 2: "SEEK_END", 3: "SEEK_DATA", 4: "SEEK_HOLE"})
ACCESS_MODE = Flags({4: "R_OK", 2: "W_OK", 1: "X_OK"}, zero="F_OK")
RENAME_FLAGS = Flags({1: "RENAME_NOREPLACE", 2: "RENAME_EXCHANGE", 4: "RENAME_WHITEOUT"})
STATX_FLAGS = Flags({0x100: "AT_SYMLINK_NOFOLLOW", 0x800: "AT_NO_AUTOMOUNT", 0x1000: "AT_EMPTY_PATH",
                     0x2000: "AT_STATX_FORCE_SYNC", 0x4000: "AT_STATX_DONT_SYNC"})


class OpenMode(Octal):
    """open(2)'s mode: strace prints it only when flags (argument ``flags_arg``) create a file."""

    def __init__(self, flags_arg: int):
        self.flags_arg = flags_arg

    def show(self, k, value, args):
        if args[self.flags_arg] & (0o100 | 0o20000000):      # O_CREAT, __O_TMPFILE
            return super().show(k, value, args)
        return None


class Signal(Int):
    """A signal number, printed as strace does (SIGUSR1, SIGRTMIN+2; 0 stays 0)."""

    def show(self, k, value, args):
        import signal as _signal
        if 1 <= value <= 31:
            try:
                return _signal.Signals(value).name
            except ValueError:
                return str(value)
        if 32 <= value <= 64:
            return "SIGRTMIN" if value == 32 else f"SIGRT_{value - 32}"
        return str(value)


class SigSet(Ptr):
    """A pointer to a kernel sigset_t (8 bytes), printed as strace does: [USR1 TERM], ~[KILL STOP]."""

    def show(self, k, value, args):
        if not value:
            return "NULL"
        try:
            mask = int.from_bytes(k.mem.read(value, 8), "little")
        except Exception:
            return hex(value)
        import signal as _signal

        def names(bits):
            out = []
            for n in range(1, 65):
                if bits & (1 << (n - 1)):
                    if n < 32:
                        try:
                            out.append(_signal.Signals(n).name[3:])
                        except ValueError:
                            out.append(str(n))
                    else:
                        out.append("RTMIN" if n == 32 else f"RT_{n - 32}")
            return " ".join(out)
        if bin(mask).count("1") > 32:
            return f"~[{names(~mask & ((1 << 64) - 1))}]"
        return f"[{names(mask)}]"
