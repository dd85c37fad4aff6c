"""The initial process stack (x86-64 psABI 3.4.1; fs/binfmt_elf.c create_elf_tables).

From the top: execfn, envp strings, argv strings, platform string, 16 random bytes, then (16-byte
aligned) argc, argv[], NULL, envp[], NULL, auxv pairs ending in AT_NULL.
"""
import os
import struct

from hermipy.layout import PAGE_SIZE, STACK_TOP

AT_NULL, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PAGESZ, AT_BASE, AT_FLAGS, AT_ENTRY = 0, 3, 4, 5, 6, 7, 8, 9
AT_UID, AT_EUID, AT_GID, AT_EGID, AT_PLATFORM, AT_HWCAP, AT_CLKTCK = 11, 12, 13, 14, 15, 16, 17
AT_SECURE, AT_RANDOM, AT_HWCAP2, AT_EXECFN, AT_SYSINFO_EHDR, AT_MINSIGSTKSZ = 23, 25, 26, 31, 33, 51
PLATFORM = b"x86_64"
CLK_TCK = 100
MINSIGSTKSZ = 2048        # the xsave-less signal frame a guest of ours needs (x86 AT_MINSIGSTKSZ)


def build_initial_stack(k, argv, envp, *, execfn: bytes, phdr: int, phnum: int, entry: int, base: int,
                        hwcap: int, hwcap2: int, vdso: int) -> int:
    """Write argv/envp/auxv below STACK_TOP; return the initial rsp (pointing at argc). The auxv's order is
    Linux's: x86's ARCH_DLINFO (the vDSO, AT_MINSIGSTKSZ) first."""
    mem = k.mem
    p = STACK_TOP - 8

    def push_string(s: bytes) -> int:
        nonlocal p
        p -= len(s) + 1
        mem.write(p, s + b"\0")
        return p

    execfn_addr = push_string(execfn)
    env_addrs = [push_string(s) for s in reversed(envp)][::-1]
    arg_addrs = [push_string(s) for s in reversed(argv)][::-1]
    p &= ~0xF
    platform_addr = push_string(PLATFORM)
    p -= 16
    random_addr = p
    mem.write(random_addr, os.urandom(16))
    proc, creds = k.proc, k.exec_creds
    auxv = [(AT_SYSINFO_EHDR, vdso), (AT_MINSIGSTKSZ, MINSIGSTKSZ), (AT_HWCAP, hwcap), (AT_PAGESZ, PAGE_SIZE),
            (AT_CLKTCK, CLK_TCK), (AT_PHDR, phdr), (AT_PHENT, 56), (AT_PHNUM, phnum), (AT_BASE, base), (AT_FLAGS, 0),
            (AT_ENTRY, entry), (AT_UID, creds.uid), (AT_EUID, creds.euid), (AT_GID, creds.gid),
            (AT_EGID, creds.egid), (AT_SECURE, int(creds.secure)), (AT_RANDOM, random_addr), (AT_HWCAP2, hwcap2),
            (AT_EXECFN, execfn_addr), (AT_PLATFORM, platform_addr), (AT_NULL, 0)]
    words = [len(argv), *arg_addrs, 0, *env_addrs, 0]
    for key, value in auxv:
        words += [key, value]
    sp = (p - 8 * len(words)) & ~0xF
    mem.write(sp, struct.pack(f"<{len(words)}Q", *words))
    proc.auxv = struct.pack(f"<{2 * len(auxv)}Q", *(v for pair in auxv for v in pair))
    return sp
