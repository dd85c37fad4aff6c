"""``hermipy run --stats FILE``: a syscall profile of each guest process (Loupe-style), as JSON Lines.

Off unless asked for: ``start`` sets ``table.STATS``, and only then does each task's Dispatcher wrap its entry
point in a counting one (``Recorder.wrap``), so a run without --stats does no per-syscall work for it. Each
task counts into a table of its own (no lock on the hot path); a process merges its tasks' tables when it
ends and appends one line to FILE (one ``write`` of an O_APPEND file: lines of processes ending at once do not
interleave). The run's first process truncates FILE when it starts. The line's schema is in docs/sweep.md.
"""
import json
import os
import time
from errno import ENOSYS, errorcode

SCHEMA = 1
MAX_ERRNO = 4095


class Recorder:
    """The counts of this process's tasks: per syscall number, [calls, nanoseconds in the kernel, {errno: n}]."""

    def __init__(self, path: str):
        self.backend = ""
        self.tables: list[dict[int, list]] = []
        self.images: list[dict] = []              # each program this process ran (execve adds one)
        self.first = True                         # the run's first process (a fork child is not)
        self.started = time.monotonic()
        self.written = False
        # Opened once, for every process of the run (fork children inherit it; O_APPEND keeps their lines
        # whole): the guest may give up the privileges the path needs (setuid binds on the host).
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        os.register_at_fork(after_in_child=self._forked)

    def wrap(self, dispatch, kernel):
        """``dispatch`` counting each call in a table of this task's own (one Dispatcher per task and image)."""
        proc = kernel.proc
        self.backend = kernel.cpu.name
        image = {"exe": proc.exe, "argv": [os.fsdecode(a) for a in proc.argv]}
        if not self.images or self.images[-1] != image:
            self.images.append(image)
        calls: dict[int, list] = {}
        self.tables.append(calls)
        clock = time.perf_counter_ns

        def on_syscall(nr, a0, a1, a2, a3, a4, a5):
            result = 0                            # execve and exit raise (ReplaceImage, GuestExit): a success
            started = clock()
            try:
                result = dispatch(nr, a0, a1, a2, a3, a4, a5)
                return result
            finally:
                row = calls.get(nr)
                if row is None:
                    row = calls[nr] = [0, 0, {}]
                row[0] += 1
                row[1] += clock() - started
                if result is not None and -MAX_ERRNO <= result < 0:
                    errors = row[2]
                    errors[-result] = errors.get(-result, 0) + 1
        return on_syscall

    def _forked(self) -> None:
        """A fork child's record is its own: it starts with the fork (clone) returning 0 in it."""
        for calls in self.tables:
            calls.clear()
        self.first, self.started, self.written = False, time.monotonic(), False
        self.images = self.images[-1:]

    def record(self, status: int) -> dict:
        """This process's line: see docs/sweep.md (``hermipy run --stats``)."""
        from hermipy.syscalls.table import ENTRIES, FULL, PARTIAL, _out_of_range
        merged: dict[int, list] = {}
        for calls in self.tables:
            for nr, (count, ns, errors) in list(calls.items()):
                row = merged.setdefault(nr, [0, 0, {}])
                row[0] += count
                row[1] += ns
                for errno, n in errors.items():
                    row[2][errno] = row[2].get(errno, 0) + n
        syscalls, unimplemented, refused = [], {}, {}
        for nr, (count, ns, errors) in sorted(merged.items(), key=lambda item: (-item[1][0], item[0])):
            entry = ENTRIES[nr] if 0 <= nr < len(ENTRIES) else _out_of_range(nr)
            syscalls.append({"name": entry.name, "nr": nr, "status": entry.status, "count": count,
                             "seconds": round(ns / 1e9, 6),
                             "errors": {errorcode.get(e, str(e)): n for e, n in sorted(errors.items())}})
            if entry.handler is None:
                unimplemented[entry.name] = count
            elif entry.status in (FULL, PARTIAL) and ENOSYS in errors:
                refused[entry.name] = errors[ENOSYS]      # a flag or mode the handler does not offer
        return {"schema": SCHEMA, "pid": os.getpid(), "ppid": os.getppid(), "first": self.first,
                "backend": self.backend, "images": self.images, "status": status,
                "seconds": round(time.monotonic() - self.started, 6),
                "kernel_seconds": round(sum(row[1] for row in merged.values()) / 1e9, 6),
                "calls": sum(row[0] for row in merged.values()),
                "syscalls": syscalls, "unimplemented": unimplemented, "refused": refused}

    def finish(self, status: int) -> None:
        """Append this process's line to the file (once per process, whichever way it ends)."""
        if self.written:
            return
        self.written = True
        line = (json.dumps(self.record(status), separators=(",", ":")) + "\n").encode()
        os.write(self.fd, line)


def start(path: str) -> None:
    """Turn recording on for this run (before the first task is started)."""
    from hermipy.syscalls import table
    table.STATS = Recorder(path)
