"""Every fixed address and size of the hermipy guest, one constant each (Firecracker's arch/x86_64/layout.rs).

Virtual addresses follow Linux x86-64 with ASLR off, so programs see familiar values; physical addresses
are a compact range of the single host mapping that backs guest RAM (Unicorn's CPU has 40 physical bits).
"""

PAGE_SIZE = 0x1000
PAGE_MASK = ~(PAGE_SIZE - 1)

# Guest physical memory: one host mmap, mapped at physical 0. Frame 0 is never handed out.
DEFAULT_RAM_SIZE = 4 << 30
FIRST_FRAME = 0x1000
# Above RAM: the window area, where MAP_SHARED mappings are placed (syscalls/memory.py SharedWindow). Host address
# space only (reserved, never committed): it bounds the shared mappings a guest may have at once.
WINDOW_AREA_SIZE = 64 << 30

# Guest virtual memory (Linux x86-64, 4-level paging, randomisation off).
ELF_ET_DYN_BASE = 0x555555554000       # where a PIE main program is loaded (fs/binfmt_elf.c)
MMAP_TOP = 0x7FFFF7FFF000             # mmap_base: top-down allocations start below this
MMAP_BOTTOM = 0x10000                 # vm.mmap_min_addr
STACK_TOP = 0x7FFFFFFFF000            # the initial stack grows down from here
STACK_SIZE = 8 << 20                  # RLIMIT_STACK default, reserved below STACK_TOP
USER_TOP = 0x800000000000             # first non-canonical address

def page_down(addr: int) -> int:
    return addr & PAGE_MASK

def page_up(addr: int) -> int:
    return (addr + PAGE_SIZE - 1) & PAGE_MASK
