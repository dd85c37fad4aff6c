"""Static analysis of x86-64 ELF binaries for hermipy: find every ``syscall`` instruction, resolve its number.

- ``elf``: sections, symbols and the dynamic section, read with ``struct`` (no pyelftools).
- ``ldpath``: find DT_NEEDED libraries through the guest's file-system view, the way ld.so does.
- ``scan``: capstone linear sweep and a backward data-flow walk for rax (heavy: imports capstone).
- ``analyze``: the ``hermipy analyze`` report (human table and versioned JSON, docs/analyze-json.md).
- ``plan``: rewrite plans (sites where ``syscall`` can become ``call rax``), cached by SHA-256; loading a
  cached plan imports nothing heavy.

Importing this package imports nothing: ``hermipy run`` must never pay for capstone.
"""
