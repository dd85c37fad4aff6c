"""``hermipy rewrite BINARY -o OUT``: the binary with its syscall sites rewritten on disk, written by lief.

Each site rewritten is what ``hermipy run`` would rewrite in memory after the site's first call on KVM
(``KvmCpu._rewrite_site``), decided ahead of time from the rewrite plan: ``syscall`` (0f 05) becomes
``out SYSCALL_PORT, al`` (e6 e0), the same two bytes' length, hermipy's direct entry into its kernel.
Rewritten: every site whose number is statically known and is not one that the KVM backend answers inside
the guest (those are cheaper through the ``syscall`` entry than through an exit). Kept: sites shared by
several numbers (the syscall() wrapper) and sites the sweep is not sure of (see ``plan.sites_from_scan``).

The output carries a non-loaded ``.hermipy.rewritten`` section (JSON: format, version, the rewritten link-time
addresses) by which ``hermipy run`` knows not to rewrite it again (``plan.is_rewritten``); ``hermipy
analyze`` shows its sites as rewritten. It runs under hermipy only, on either backend: natively ``out`` is
a #GP (SIGSEGV) for a user program.
"""
import json
import os

from hermipy.rewriter.plan import REWRITTEN_SECTION, SYSCALL, build_plan, is_rewritten

REWRITTEN = bytes((0xE6, 0xE0))            # out 0xe0, al: hermipy/kvm_stubs.py SYSCALL_PORT
MARKER_FORMAT, MARKER_VERSION = "hermipy-rewritten", 1


def chosen_sites(plan) -> list:
    """The plan's sites to rewrite: a statically known number that is not answered inside the guest."""
    from hermipy.runner import IN_GUEST
    from hermipy.syscalls.table import NUMBERS
    in_guest = {NUMBERS[name] for name in IN_GUEST}
    return [s for s in plan if s.nr is not None and s.nr not in in_guest]


def rewrite(binary: str, out: str) -> list:
    """Write ``out``: ``binary`` with the chosen sites rewritten and the marker section. Returns those sites."""
    import lief
    if is_rewritten(binary):
        raise ValueError(f"{binary}: already rewritten by hermipy")
    with open(binary, "rb") as f:
        data = f.read()
    sites = chosen_sites(build_plan(binary))
    elf = lief.ELF.parse(binary)
    if elf is None:
        raise ValueError(f"{binary}: lief cannot parse it")
    for site in sites:
        if data[site.offset:site.offset + 2] != SYSCALL:
            raise ValueError(f"{binary}: no syscall at file offset {site.offset:#x}")
        elf.patch_address(site.address, list(REWRITTEN))
    marker = lief.ELF.Section(REWRITTEN_SECTION)
    marker.content = list(json.dumps({"format": MARKER_FORMAT, "version": MARKER_VERSION,
                                      "sites": [s.address for s in sites]}, separators=(",", ":")).encode())
    elf.add(marker, loaded=False)
    tmp = f"{out}.{os.getpid()}.tmp"
    elf.write(tmp)
    os.chmod(tmp, os.stat(binary).st_mode & 0o7777)
    os.replace(tmp, out)
    return sites
