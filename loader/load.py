"""Load a program into a fresh guest, as fs/binfmt_elf.c load_elf_binary does, one step per function:
open -> parse -> map segments (and bss) -> set brk -> build the initial stack.
"""
import os
import stat
from errno import EACCES, EISDIR, ELOOP, ENOENT, ENOEXEC, ENOTDIR

from hermipy.errors import LoadError
from hermipy.layout import ELF_ET_DYN_BASE, PAGE_SIZE, STACK_SIZE, STACK_TOP, page_down, page_up
from hermipy.loader.elf import EHDR, ET_DYN, PF_R, PF_W, PF_X, PT_INTERP, ElfImage, parse_elf
from hermipy.loader.stack import build_initial_stack
from hermipy.syscalls.errors import SyscallError
from hermipy.syscalls.memory import (MAP_ANONYMOUS, MAP_FIXED, MAP_GROWSDOWN, MAP_PRIVATE, PROT_EXEC,
                                     PROT_READ, PROT_WRITE, MappedFile)

HEADER_READ = 64 * 1024
SCRIPT_HEADER = 256                 # BINPRM_BUF_SIZE: how much of a #! line the kernel reads
MAX_SCRIPT_NESTING = 4              # an interpreter may itself be a script, this deep (ELOOP beyond)


def find_command(k, name: str, envp: list[bytes]) -> str:
    """A name without a slash is searched in the guest's $PATH, as execvp(3) does; else it is a path."""
    if "/" in name:
        return name
    path = next((e[5:] for e in envp if e.startswith(b"PATH=")), b"/usr/local/bin:/usr/bin:/bin")
    for directory in os.fsdecode(path).split(":"):
        candidate = os.path.join(directory or ".", name)
        try:
            host = k.fs.to_host(k.fs.absolute(k.fs.cwd, candidate))
        except SyscallError:
            continue
        if os.path.isfile(host) and os.access(host, os.X_OK):
            return candidate
    raise LoadError(f"{name}: command not found", 127)


def open_binary(k, guest_path: str) -> tuple[int, str]:
    """Open the executable through the guest's file-system view; errors as a shell reports them."""
    try:
        host = k.fs.to_host(k.fs.absolute(k.fs.cwd, guest_path))
        fd = os.open(host, os.O_RDONLY | os.O_CLOEXEC)
    except (SyscallError, OSError) as err:
        code = err.errno
        reason = os.strerror(code)
        raise LoadError(f"{guest_path}: {reason}", 127 if code in (ENOENT, ENOTDIR, ELOOP) else 126,
                        code) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        shown = EISDIR if stat.S_ISDIR(st.st_mode) else EACCES
        raise LoadError(f"{guest_path}: {os.strerror(shown)}", 126, EACCES)
    return fd, host


def read_image(fd: int, guest_path: str) -> ElfImage:
    """Parse from the file's first 64 KiB, rereading more when headers or PT_INTERP lie beyond it."""
    size = os.fstat(fd).st_size
    head = os.pread(fd, HEADER_READ, 0)
    if len(head) >= EHDR.size:
        phoff, phentsize, phnum = (EHDR.unpack_from(head)[i] for i in (5, 9, 10))
        if len(head) < phoff + phentsize * phnum <= size:
            head = os.pread(fd, phoff + phentsize * phnum, 0)
    image = parse_elf(guest_path, head, size)
    interp_end = max([s.offset + s.filesz for s in image.segments if s.type == PT_INTERP], default=0)
    if interp_end > len(head):
        image = parse_elf(guest_path, os.pread(fd, interp_end, 0), size)
    return image


def load_bias(image: ElfImage) -> int:
    """ET_EXEC maps at its link addresses; a PIE at ELF_ET_DYN_BASE (ASLR off)."""
    if image.type != ET_DYN:
        return 0
    return page_down(ELF_ET_DYN_BASE - min(s.vaddr for s in image.loads))


def segment_prot(flags: int) -> int:
    return ((PROT_READ if flags & PF_R else 0) | (PROT_WRITE if flags & PF_W else 0)
            | (PROT_EXEC if flags & PF_X else 0))


def map_segments(k, image: ElfImage, fd: int, bias: int) -> int:
    """Map each PT_LOAD from the file, zero its bss; return the end of the highest segment."""
    mapped = MappedFile(fd, image.path)
    end = 0
    for seg in image.loads:
        start = bias + seg.vaddr
        prot = segment_prot(seg.flags)
        page_start = page_down(start)
        file_end = start + seg.filesz
        mem_end = start + seg.memsz
        if seg.filesz:
            k.mem.map(page_start, file_end - page_start, prot, MAP_PRIVATE | MAP_FIXED, mapped,
                      seg.offset - (start - page_start), name=image.path)
            tail = page_up(file_end) - file_end
            if seg.memsz > seg.filesz and tail:
                k.mem.poke(file_end, bytes(tail))    # padzero(): up to the page end, as Linux does
        bss_start = page_up(file_end) if seg.filesz else page_start
        if page_up(mem_end) > bss_start:
            k.mem.map(bss_start, page_up(mem_end) - bss_start, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
        end = max(end, mem_end)
    return end


def phdr_address(image: ElfImage, bias: int) -> int:
    """Where the program headers are in memory: PT_PHDR, or the PT_LOAD that covers e_phoff."""
    for seg in image.segments:
        if seg.type == 6:
            return bias + seg.vaddr
    for seg in image.loads:
        if seg.offset <= image.phoff < seg.offset + seg.filesz:
            return bias + seg.vaddr + image.phoff - seg.offset
    return 0


def map_stack(k, executable: bool) -> None:
    prot = PROT_READ | PROT_WRITE | (PROT_EXEC if executable else 0)
    k.mem.map(STACK_TOP - STACK_SIZE, STACK_SIZE, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_GROWSDOWN,
              name="[stack]")


def load_interpreter(k, program: str, interp_path: str) -> tuple[int, int]:
    """Map the program interpreter (ld.so) top-down below mmap_base; return (base, entry)."""
    try:
        fd, _host = open_binary(k, interp_path)
    except LoadError as err:
        if err.exit_code == 127:
            raise LoadError(f"{program}: cannot execute: required file not found "
                            f"(interpreter {interp_path})", 127, ENOENT) from None
        raise
    try:
        image = read_image(fd, interp_path)
        if image.interpreter or image.type != ET_DYN:
            raise LoadError(f"{program}: bad ELF interpreter {interp_path}", 126)
        low = page_down(min(s.vaddr for s in image.loads))
        span = page_up(max(s.vaddr + s.memsz for s in image.loads)) - low
        base = k.mem.find_free(span)
        map_segments(k, image, fd, base - low)
    finally:
        os.close(fd)
    return base - low, base - low + image.entry


def script_interpreter(fd: int, guest_path: str, argv: list[bytes]) -> tuple[str, list[bytes]] | None:
    """fs/binfmt_script.c: a file starting with ``#!`` runs its interpreter with the optional argument
    (the rest of the line, one word) and the script's path in front of argv[1:]."""
    head = os.pread(fd, SCRIPT_HEADER, 0)
    if not head.startswith(b"#!"):
        return None
    line = head[2:].split(b"\n", 1)[0].replace(b"\t", b" ").strip()
    if not line:
        raise LoadError(f"{guest_path}: bad interpreter: no interpreter named", 126, ENOEXEC)
    interp, _, arg = line.partition(b" ")
    arg = arg.strip()
    return os.fsdecode(interp), [interp, *([arg] if arg else []), os.fsencode(guest_path), *argv[1:]]


def load_program(k, guest_path: str, argv: list[bytes], envp: list[bytes], depth: int = 0) -> tuple[int, int]:
    """Load ``guest_path`` (and its interpreter, or a script's) into kernel ``k``; return (entry, initial rsp)."""
    fd, _host = open_binary(k, guest_path)
    try:
        script = script_interpreter(fd, guest_path, argv)
    except BaseException:
        os.close(fd)
        raise
    if script is not None:
        os.close(fd)
        if depth >= MAX_SCRIPT_NESTING:
            raise LoadError(f"{guest_path}: {os.strerror(ELOOP)}", 126, ELOOP)
        interp, argv = script
        try:
            return load_program(k, interp, argv, envp, depth + 1)
        except LoadError as err:
            if err.errno in (ENOENT, ENOTDIR):       # what a shell says about a script's missing interpreter
                raise LoadError(f"{guest_path}: cannot execute: required file not found", 127, err.errno) from None
            raise
    try:
        image = read_image(fd, guest_path)
        bias = load_bias(image)
        end = map_segments(k, image, fd, bias)
    finally:
        os.close(fd)
    k.mem.brk_start = k.mem.brk = page_up(end)
    map_stack(k, image.executable_stack)
    interp_base, entry = 0, bias + image.entry
    if image.interpreter:
        interp_base, entry = load_interpreter(k, guest_path, image.interpreter)
    k.proc.exe = os.path.normpath(k.fs.absolute(k.fs.cwd, guest_path))
    k.comm = os.path.basename(guest_path).encode()[:15]
    k.proc.argv, k.proc.environ = argv, envp
    hwcap, hwcap2 = k.cpu.cpuid_features()
    sp = build_initial_stack(k, argv, envp, execfn=guest_path.encode(), phdr=phdr_address(image, bias),
                             phnum=image.phnum, entry=bias + image.entry, base=interp_base, hwcap=hwcap,
                             hwcap2=hwcap2)
    return entry, sp
