"""Load a program into a fresh guest, as fs/binfmt_elf.c load_elf_binary does, one step per function:
open -> parse -> open the interpreter -> (point of no return) map the stack, the segments (and bss), the
interpreter and the vDSO -> set brk -> build the initial stack.

Failures before the point of no return are execve's errno (LoadError); after it Linux kills the process
with SIGSEGV (fs/exec.c bprm_execve), which ExecFailed stands for.
"""
import os
import stat
from errno import EACCES, EINVAL, EISDIR, ELIBBAD, ELOOP, ENOENT, ENOEXEC, ENOMEM, ENOTDIR

from hermipy.errors import ExecFailed, LoadError
from hermipy.layout import ELF_ET_DYN_BASE, PAGE_SIZE, STACK_SIZE, STACK_TOP, page_down, page_up
from hermipy.loader.elf import EHDR, ET_DYN, PF_R, PF_W, PF_X, ElfImage, parse_elf
from hermipy.loader.stack import build_initial_stack
from hermipy.loader.vdso import map_vdso
from hermipy.syscalls.errors import SyscallError
from hermipy.syscalls.sys_info import exec_credentials
from hermipy.syscalls.sys_mm import host_can_map
from hermipy.syscalls.memory import (MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_GROWSDOWN, MAP_PRIVATE,
                                     PROT_EXEC, PROT_READ, PROT_WRITE, MappedFile)

HEADER_READ = 64 * 1024
BINPRM_BUF_SIZE = 256               # how much of a file the kernel reads to pick its format (a #! line's limit)
MAX_SCRIPT_NESTING = 5              # fs/exec.c exec_binprm: 6 format handlers in a row, so 5 #! rewrites (ELOOP beyond)
TASK_SIZE = (1 << 47) - PAGE_SIZE   # arch/x86: the end of user space (BAD_ADDR in binfmt_elf.c)
MASK64 = (1 << 64) - 1


def find_command(k, name: str, envp: list[bytes]) -> str:
    """A name without a slash is searched in the guest's $PATH, as execvp(3) does; else it is a path."""
    if "/" in name:
        return name
    path = next((e[5:] for e in envp if e.startswith(b"PATH=")), b"/usr/local/bin:/usr/bin:/bin")
    from hermipy.syscalls.argtypes import AT_FDCWD
    from hermipy.syscalls.sys_fs import lookup
    for directory in os.fsdecode(path).split(":"):
        candidate = os.path.join(directory or ".", name)
        try:
            target = lookup(k, AT_FDCWD, candidate)
            if target.on_host and stat.S_ISREG(target.stat().st_mode):
                target.access(os.X_OK, 0)
                return candidate
        except (SyscallError, OSError):
            continue
    raise LoadError(f"{name}: command not found", 127)


def open_binary(k, guest_path: str) -> tuple[int, str]:
    """do_open_execat(): open a regular file the caller may execute, through the guest's file-system view;
    return (host fd, the guest's name for it). Anything else is EACCES, as Linux gives it: a directory, a
    device, a FIFO (never opened, so never waited on), a file without an x bit, a noexec mount."""
    from hermipy.syscalls.argtypes import AT_FDCWD
    from hermipy.syscalls.sys_fs import lookup
    try:
        target = lookup(k, AT_FDCWD, guest_path)
        if target.missing:
            raise SyscallError(ENOENT)
        if target.node is not None:                     # a synthetic /proc or /dev file
            raise SyscallError(EACCES)
        mode = target.stat().st_mode
        if not stat.S_ISREG(mode):
            raise LoadError(f"{guest_path}: {os.strerror(EISDIR if stat.S_ISDIR(mode) else EACCES)}", 126, EACCES)
        try:
            target.access(os.X_OK, 0)
        except OSError:
            raise SyscallError(EACCES) from None
        fd = target.open(os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK, 0)
    except (SyscallError, OSError) as err:
        code = err.errno
        raise LoadError(f"{guest_path}: {os.strerror(code)}", 127 if code in (ENOENT, ENOTDIR, ELOOP) else 126,
                        code) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):          # replaced since the check: still never waited on
        os.close(fd)
        raise LoadError(f"{guest_path}: {os.strerror(EACCES)}", 126, EACCES)
    return fd, os.path.normpath(target.guest)


def read_image(fd: int, guest_path: str) -> ElfImage:
    """Parse from the file's first 64 KiB, rereading more when the headers lie beyond it (PT_INTERP is read
    where it is)."""
    try:
        size = os.fstat(fd).st_size
        head = os.pread(fd, HEADER_READ, 0)
        if len(head) >= EHDR.size:
            phoff, phentsize, phnum = (EHDR.unpack_from(head)[i] for i in (5, 9, 10))
            if len(head) < phoff + phentsize * phnum <= size:
                head = os.pread(fd, phoff + phentsize * phnum, 0)
        image = parse_elf(guest_path, head, size, lambda offset, length: os.pread(fd, length, offset))
    except OSError as err:
        raise LoadError(f"{guest_path}: {err.strerror}", 126, err.errno) from None
    return image


def load_bias(image: ElfImage) -> int:
    """ET_EXEC maps at its link addresses; a PIE at ELF_ET_DYN_BASE (ASLR off)."""
    if image.type != ET_DYN:
        return 0
    return page_down(ELF_ET_DYN_BASE - min((s.vaddr for s in image.loads), default=0))


def segment_prot(flags: int) -> int:
    return ((PROT_READ if flags & PF_R else 0) | (PROT_WRITE if flags & PF_W else 0)
            | (PROT_EXEC if flags & PF_X else 0))


def _not_hermipys(k, start: int, end: int) -> None:
    """hermipy's own areas (the KVM entry area, the answer page) are no program's to map over: a segment
    there fails as a refused mapping does."""
    if any(area.start < end and start < area.end for area in k.mem.own):
        raise SyscallError(ENOMEM)


def map_segments(k, image: ElfImage, fd: int, bias: int) -> int:
    """elf_load() of each PT_LOAD: map it from the file, zero the rest of its last file page when it is
    writable (padzero), map its bss as brk memory (read-write); return the end of the highest segment.
    The first one must not replace a mapping (MAP_FIXED_NOREPLACE), later ones may (MAP_FIXED)."""
    mapped = MappedFile(fd, image.path)
    end = 0
    fixed = MAP_FIXED_NOREPLACE
    for seg in image.loads:
        start = (bias + seg.vaddr) & MASK64
        if start >= TASK_SIZE or seg.memsz > TASK_SIZE - start or seg.filesz > seg.memsz or \
                seg.filesz and (seg.vaddr - seg.offset) % PAGE_SIZE:
            raise SyscallError(EINVAL)
        prot = segment_prot(seg.flags)
        page_start = page_down(start)
        file_end = start + seg.filesz
        mem_end = start + seg.memsz
        _not_hermipys(k, page_start, page_up(mem_end))
        if seg.filesz:
            offset = seg.offset - (start - page_start)
            host_can_map(fd, file_end - page_start, prot, MAP_PRIVATE, offset)     # EOVERFLOW past the largest
            k.mem.map(page_start, file_end - page_start, prot, MAP_PRIVATE | fixed, mapped, offset, name=image.path)
            tail = page_up(file_end) - file_end
            if seg.memsz > seg.filesz and tail and prot & PROT_WRITE:
                k.mem.poke(file_end, bytes(tail))
        bss_start = page_up(file_end) if seg.filesz else page_start
        if page_up(mem_end) > bss_start:
            k.mem.map(bss_start, page_up(mem_end) - bss_start, PROT_READ | PROT_WRITE | (prot & PROT_EXEC),
                      MAP_PRIVATE | MAP_ANONYMOUS | fixed)
        fixed = MAP_FIXED
        end = max(end, mem_end)
    return end


def phdr_address(image: ElfImage, bias: int) -> int:
    """AT_PHDR: where the PT_LOAD that covers e_phoff (the last one, if several do) puts the program headers;
    PT_PHDR is not looked at (load_elf_binary since Linux 5.18)."""
    address = 0
    for seg in image.loads:
        if seg.offset <= image.phoff < seg.offset + seg.filesz:
            address = seg.vaddr + image.phoff - seg.offset
    return (bias + address) & MASK64


def map_stack(k, executable: bool) -> None:
    prot = PROT_READ | PROT_WRITE | (PROT_EXEC if executable else 0)
    k.mem.map(STACK_TOP - STACK_SIZE, STACK_SIZE, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_GROWSDOWN,
              name="[stack]")


def open_interpreter(k, program: str, interp_path: str) -> tuple[int, ElfImage]:
    """Open and check the program interpreter (ld.so) before the point of no return: not found is ENOENT,
    not an x86-64 ELF shared object ELIBBAD."""
    try:
        fd, _name = open_binary(k, interp_path or ".")     # open_exec(""): the cwd, a directory (EACCES)
    except LoadError as err:
        if err.exit_code == 127:
            raise LoadError(f"{program}: cannot execute: required file not found "
                            f"(interpreter {interp_path})", 127, ENOENT) from None
        raise LoadError(f"{program}: interpreter {interp_path!r}: {os.strerror(err.errno)}", 126, err.errno) from None
    try:
        image = read_image(fd, interp_path)
    except LoadError as err:
        os.close(fd)
        raise LoadError(f"{program}: bad ELF interpreter: {err}", 126, ELIBBAD) from None
    if image.interpreter is not None or image.type != ET_DYN:
        os.close(fd)
        raise LoadError(f"{program}: bad ELF interpreter {interp_path}", 126, ELIBBAD)
    return fd, image


def map_interpreter(k, fd: int, image: ElfImage) -> tuple[int, int]:
    """Map the program interpreter top-down below mmap_base; return (base, entry)."""
    low = page_down(min(s.vaddr for s in image.loads))
    span = page_up(max(s.vaddr + s.memsz for s in image.loads)) - low
    if span <= 0 or span > TASK_SIZE:
        raise SyscallError(EINVAL)
    base = k.mem.find_free(span)
    map_segments(k, image, fd, base - low)
    return base - low, (base - low + image.entry) & MASK64


def _spacetab(c: int) -> bool:
    return c in (0x20, 0x09)


def _next_non_spacetab(buf: bytes, i: int, end: int) -> int | None:
    while i < end:
        if not _spacetab(buf[i]):
            return i
        i += 1
    return None


def _next_terminator(buf: bytes, i: int, end: int) -> int | None:
    while i < end:
        if _spacetab(buf[i]) or buf[i] == 0:
            return i
        i += 1
    return None


def script_interpreter(fd: int, guest_path: str, argv: list[bytes]) -> tuple[str, list[bytes]] | None:
    """fs/binfmt_script.c load_script: a file starting with ``#!`` runs its interpreter with the optional
    argument (the rest of the line, one string) and the script's path in front of argv[1:]. Names end at a
    space, tab or NUL; a line without a newline in the first 256 bytes must show where the name ends."""
    buf = os.pread(fd, BINPRM_BUF_SIZE, 0).ljust(BINPRM_BUF_SIZE, b"\0")
    if not buf.startswith(b"#!"):
        return None
    buf_end = BINPRM_BUF_SIZE - 1
    i_end = buf.find(b"\n")
    if i_end < 0:
        first = _next_non_spacetab(buf, 2, buf_end)
        if first is None or _next_terminator(buf, first, buf_end) is None:
            raise LoadError(f"{guest_path}: bad interpreter: #! line too long", 126, ENOEXEC)
        i_end = buf_end
    while i_end > 2 and _spacetab(buf[i_end - 1]):
        i_end -= 1
    i_name = _next_non_spacetab(buf, 2, i_end)
    if i_name is None:
        raise LoadError(f"{guest_path}: bad interpreter: no interpreter named", 126, ENOEXEC)
    i_sep = _next_terminator(buf, i_name, i_end)
    i_arg = _next_non_spacetab(buf, i_sep, i_end) if i_sep is not None and buf[i_sep] != 0 else None
    interp = buf[i_name:i_end if i_sep is None else i_sep]
    arg = buf[i_arg:i_end].split(b"\0", 1)[0] if i_arg is not None else None
    return os.fsdecode(interp), [interp, *([arg] if arg is not None else []), os.fsencode(guest_path), *argv[1:]]


def load_script(k, guest_path: str, script: tuple[str, list[bytes]], envp: list[bytes], depth: int):
    """Run a script's interpreter (which may be a script itself, MAX_SCRIPT_NESTING deep). A failure names
    the script and its interpreter, as a shell reports it."""
    if depth >= MAX_SCRIPT_NESTING:
        raise LoadError(f"{guest_path}: {os.strerror(ELOOP)}", 126, ELOOP)
    interp, argv = script
    try:
        return load_program(k, interp or ".", argv, envp, depth + 1)    # open_exec(""): the cwd (EACCES)
    except ExecFailed:
        raise
    except LoadError as err:
        if err.errno in (ENOENT, ENOTDIR):       # what a shell says about a script's missing interpreter
            raise LoadError(f"{guest_path}: cannot execute: required file not found", 127, err.errno) from None
        raise LoadError(f"{guest_path}: {interp}: bad interpreter: {os.strerror(err.errno)}", 126,
                        err.errno) from None


def load_program(k, guest_path: str, argv: list[bytes], envp: list[bytes], depth: int = 0) -> tuple[int, int]:
    """Load ``guest_path`` (and its interpreter, or a script's) into kernel ``k``; return (entry, initial rsp)."""
    fd, exe = open_binary(k, guest_path)
    interp_fd, interp = -1, None
    try:
        try:
            script = script_interpreter(fd, guest_path, argv)
        except OSError as err:
            raise LoadError(f"{guest_path}: {err.strerror}", 126, err.errno) from None
        if script is not None:
            os.close(fd)
            fd = -1
            return load_script(k, guest_path, script, envp, depth)
        image = read_image(fd, guest_path)
        if image.interpreter is not None:
            interp_fd, interp = open_interpreter(k, guest_path, image.interpreter)
        try:
            k.exec_creds = exec_credentials(k, fd)
        except SyscallError as err:
            raise LoadError(f"{guest_path}: {os.strerror(err.errno)}", 126, err.errno) from None
        try:            # the point of no return
            entry, sp = _build_image(k, guest_path, exe, argv, envp, image, fd, interp_fd, interp)
        except (SyscallError, OSError) as err:
            raise ExecFailed(f"{guest_path}: {os.strerror(err.errno)}", err.errno) from None
    finally:
        for f in (fd, interp_fd):
            if f >= 0:
                os.close(f)
    return entry, sp


def _build_image(k, guest_path, exe, argv, envp, image, fd, interp_fd, interp) -> tuple[int, int]:
    """After the point of no return (load_elf_binary from begin_new_exec on): the stack, the segments, brk,
    the interpreter, the entry point, the initial stack's contents. Returns (entry, initial rsp)."""
    map_stack(k, image.executable_stack)
    bias = load_bias(image)
    end = map_segments(k, image, fd, bias)
    k.mem.brk_start = k.mem.brk = page_up(end)
    interp_base, entry = 0, (bias + image.entry) & MASK64
    if interp_fd >= 0:
        interp_base, entry = map_interpreter(k, interp_fd, interp)
    vdso = map_vdso(k)
    if entry >= TASK_SIZE:
        raise SyscallError(EINVAL)
    k.proc.exe = exe
    k.comm = os.path.basename(guest_path).encode()[:15]
    k.proc.argv, k.proc.environ = argv, envp
    hwcap, hwcap2 = k.cpu.cpuid_features()
    sp = build_initial_stack(k, argv, envp, execfn=os.fsencode(guest_path), phdr=phdr_address(image, bias),
                             phnum=image.phnum, entry=(bias + image.entry) & MASK64, base=interp_base,
                             hwcap=hwcap, hwcap2=hwcap2, vdso=vdso)
    return entry, sp
