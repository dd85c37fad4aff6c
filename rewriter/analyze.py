"""``hermipy analyze``: which syscalls can a binary make, and does hermipy implement them?

The binary, its PT_INTERP interpreter and every DT_NEEDED library (found as ld.so would, through the
guest's file-system view) are swept for ``syscall`` instructions; each site's number is resolved where it
is statically known and judged against hermipy's own table. The JSON form is documented in
docs/analyze-json.md; its ``schema_version`` changes whenever a key changes meaning or disappears.
"""
import hashlib
import json
import os
import struct
from errno import ELOOP, ENOENT, ENOTDIR

from hermipy.errors import LoadError
from hermipy.rewriter import elf as elfmod
from hermipy.rewriter.ldpath import LibraryResolver
from hermipy.rewriter.plan import sites_from_scan, store_plan
from hermipy.rewriter.scan import DYNAMIC, KNOWN, UNKNOWN, scan
from hermipy.syscalls.errors import SyscallError

SCHEMA_VERSION = 1
STATUSES = ("FULL", "PARTIAL", "STUB", "UNIMPLEMENTED")
UNKNOWN_NUMBER = "unknown number"
MAX_NAMED = 12             # missing syscalls named in the one-line prediction (summary.missing has them all)
ELF_TYPES = {elfmod.ET_EXEC: "ET_EXEC", elfmod.ET_DYN: "ET_DYN"}


class LoadedObject:
    __slots__ = ("path", "role", "elf", "sha256", "scan", "needed_by")

    def __init__(self, path, role, elf, needed_by=None):
        self.path, self.role, self.elf, self.needed_by = path, role, elf, needed_by
        self.sha256 = hashlib.sha256(elf.data).hexdigest()
        self.scan = None


def open_binary(resolver: LibraryResolver, path: str) -> elfmod.ElfFile:
    """Read the program through the guest view; errors worded and numbered like ``hermipy run``'s."""
    try:
        host = resolver.host_path(path)
        if os.path.isdir(host):
            raise LoadError(f"{path}: Is a directory", 126)
        return elfmod.load(path, host)
    except (SyscallError, OSError) as err:
        code = err.errno
        raise LoadError(f"{path}: {os.strerror(code)}", 127 if code in (ENOENT, ENOTDIR, ELOOP) else 126) from None


def load_objects(binary: str, root: str | None = None, ld_library_path: str | None = None):
    """The program, its interpreter and its libraries in ld.so's breadth-first order.

    Returns (objects, needed) where needed lists each distinct DT_NEEDED name with where it was found.
    """
    resolver = LibraryResolver(root, ld_library_path)
    main = LoadedObject(binary, "binary", open_binary(resolver, binary))
    objects = [main]
    by_file = {_real(resolver, binary): main}       # one object per file, whatever name reached it
    by_name: dict[str, LoadedObject] = {}           # DT_NEEDED names already satisfied (ld.so: by soname)
    interp = main.elf.interpreter
    if interp:
        try:
            obj = LoadedObject(interp, "interpreter", elfmod.load(interp, resolver.host_path(interp)))
        except (SyscallError, OSError, LoadError):
            obj = None
        if obj is not None:
            objects.append(obj)
            by_file[_real(resolver, interp)] = obj
            by_name[os.path.basename(interp)] = obj
            if obj.elf.soname:
                by_name[obj.elf.soname] = obj
    needed: list[dict] = []
    queue = [(name, main, []) for name in main.elf.needed]
    while queue:
        name, requester, chain = queue.pop(0)
        if name in by_name or any(n["name"] == name for n in needed):
            continue
        found = resolver.find(name, requester.elf, [o.elf for o in chain])
        entry = {"name": name, "needed_by": requester.path, "path": found[0] if found else None}
        needed.append(entry)
        if not found:
            continue
        path, data = found
        real = _real(resolver, path)
        if real in by_file:
            by_name[name] = by_file[real]
            continue
        try:
            obj = LoadedObject(path, "library", elfmod.ElfFile(path, data), requester.path)
        except (LoadError, struct.error, IndexError):
            entry["path"] = None
            continue
        objects.append(obj)
        by_file[real] = by_name[name] = obj
        queue.extend((n, obj, [requester, *chain]) for n in obj.elf.needed)
    return objects, needed


def _real(resolver: LibraryResolver, guest_path: str) -> str:
    try:
        return resolver.fs.canonical(resolver.guest_name(guest_path))
    except (SyscallError, OSError):
        return guest_path


def analyze(binary: str, root: str | None = None, ld_library_path: str | None = None) -> dict:
    """The whole report as a JSON-ready dict (docs/analyze-json.md)."""
    from hermipy.syscalls.table import NAMES, rows
    objects, needed = load_objects(binary, root, ld_library_path)
    for obj in objects:
        obj.scan = scan(obj.elf)
        store_plan(obj.elf.data, sites_from_scan(obj.scan))     # `hermipy run` reads it, capstone-free
    status_of = {row["nr"]: row["status"] for row in rows()}
    sites = []
    per_nr: dict[int, dict] = {}
    for obj in objects:
        for s in obj.scan.sites:
            name = NAMES.get(s.nr) if s.kind == KNOWN else None
            status = status_of.get(s.nr) if name else None
            verdict = status if status else (UNKNOWN_NUMBER if s.kind == KNOWN else s.kind)
            inside = s.function is not None and _inside(obj.elf, s.address)
            sites.append({"object": obj.path, "address": s.address, "offset": s.offset,
                          "function": s.function, "function_offset": s.func_offset if s.function else None,
                          "in_function": inside, "kind": s.kind, "nr": s.nr, "name": name, "status": status,
                          "verdict": verdict, "evidence": s.how,
                          "after_resync": s.after_resync, "rewritten": s.rewritten})
            sites[-1]["callers"] = callers = []
            for call, kind, nr in s.callers:
                cname = NAMES.get(nr) if kind == KNOWN else None
                cstatus = status_of.get(nr) if cname else None
                callers.append({"address": call, "kind": kind, "nr": nr, "name": cname, "status": cstatus,
                                "verdict": cstatus or (UNKNOWN_NUMBER if kind == KNOWN else kind)})
            known = [(s.nr, "sites")] if s.kind == KNOWN else []
            known += [(c["nr"], "calls") for c in callers if c["kind"] == KNOWN]
            for nr, counter in known:
                name = NAMES.get(nr)
                status = status_of.get(nr) if name else None
                row = per_nr.setdefault(nr, {"nr": nr, "name": name, "status": status,
                                             "verdict": status or UNKNOWN_NUMBER, "sites": 0, "calls": 0,
                                             "objects": []})
                row[counter] += 1
                if obj.path not in row["objects"]:
                    row["objects"].append(obj.path)
    syscalls = [per_nr[nr] for nr in sorted(per_nr)]
    main = objects[0].elf
    report = {
        "schema": "hermipy-analyze",
        "schema_version": SCHEMA_VERSION,
        "binary": {
            "path": binary,
            "kind": main.kind,
            "elf_type": ELF_TYPES.get(main.image.type, str(main.image.type)),
            "entry": main.image.entry,
            "interpreter": _interp_entry(objects, main.interpreter),
        },
        "root": root,
        "needed": needed,
        "objects": [{"path": o.path, "role": o.role, "needed_by": o.needed_by, "sha256": o.sha256,
                     "kind": o.elf.kind, "code_ranges": o.scan.ranges, "code_bytes": o.scan.code_bytes,
                     "instructions": o.scan.instructions, "resyncs": o.scan.resyncs,
                     "stray_0f05": o.scan.stray, "sites": len(o.scan.sites),
                     "rewritten_sites": sum(s.rewritten for s in o.scan.sites)} for o in objects],
        "sites": sites,
        "syscalls": syscalls,
    }
    report["summary"] = summarize(sites, syscalls, needed, report["binary"]["interpreter"])
    return report


def _inside(elf: elfmod.ElfFile, addr: int) -> bool:
    """Is addr inside the extent of its nearest preceding function symbol (when that has a size)?"""
    import bisect
    syms = elf.symbols
    i = bisect.bisect_right(syms.addrs, addr) - 1
    return i >= 0 and (syms.sizes[i] == 0 or addr < syms.addrs[i] + syms.sizes[i])


def _interp_entry(objects, interp: str | None):
    if not interp:
        return None
    found = any(o.role == "interpreter" for o in objects)
    return {"path": interp, "found": found}


def summarize(sites: list[dict], syscalls: list[dict], needed: list[dict], interp: dict | None) -> dict:
    counts = {k: sum(1 for s in sites if s["kind"] == k) for k in (KNOWN, DYNAMIC, UNKNOWN)}
    calls = [c for s in sites for c in s["callers"]]
    calls_known = sum(1 for c in calls if c["kind"] == KNOWN)
    by_status = {st: sum(1 for r in syscalls if r["verdict"] == st) for st in (*STATUSES, UNKNOWN_NUMBER)}
    missing = [r["name"] or f"syscall_{r['nr']}" for r in syscalls
               if r["verdict"] in ("UNIMPLEMENTED", UNKNOWN_NUMBER)]
    missing_libs = [n["name"] for n in needed if n["path"] is None]
    total = len(syscalls)
    if not total:
        text = "no statically known syscalls"
    elif missing:
        shown = ", ".join(missing[:MAX_NAMED]) + (f" and {len(missing) - MAX_NAMED} more"
                                                   if len(missing) > MAX_NAMED else "")
        text = f"missing: {shown} ({len(missing)} of {total} statically known syscalls are UNIMPLEMENTED)"
    else:
        extra = ", ".join(f"{by_status[st]} {st}" for st in ("PARTIAL", "STUB") if by_status[st])
        text = f"all {total} statically known syscalls are supported" + (f" ({extra})" if extra else "")
    problems = []
    if interp is not None and not interp["found"]:
        problems.append(f"interpreter {interp['path']} not found")
    if missing_libs:
        problems.append("libraries not found: " + ", ".join(missing_libs))
    if problems:
        text = "; ".join(problems) + "; " + text
    uncounted = []
    if counts[DYNAMIC]:
        via = f": {calls_known} of {len(calls)} direct calls resolved, counted above" if calls else ""
        uncounted.append(f"{counts[DYNAMIC]} dynamic site{'s' * (counts[DYNAMIC] != 1)} (number from the caller"
                         f"{via})")
    if counts[UNKNOWN]:
        uncounted.append(f"{counts[UNKNOWN]} unknown site{'s' * (counts[UNKNOWN] != 1)}")
    return {"sites": len(sites), "known_sites": counts[KNOWN], "dynamic_sites": counts[DYNAMIC],
            "unknown_sites": counts[UNKNOWN], "wrapper_calls": len(calls), "wrapper_calls_known": calls_known,
            "distinct_known": total, "by_status": by_status,
            "missing": missing, "missing_libraries": missing_libs, "prediction": text,
            "not_counted": ", ".join(uncounted) if uncounted else None,
            "supported": not missing and not problems}


# ---- rendering -------------------------------------------------------------------------------------------
def render_json(report: dict) -> str:
    return json.dumps(report, indent=2) + "\n"


def render_text(report: dict) -> str:
    b, summary = report["binary"], report["summary"]
    out = [f"{b['path']}: ELF x86-64, {b['kind']} ({b['elf_type']}), entry {b['entry']:#x}"]
    if b["interpreter"]:
        found = "" if b["interpreter"]["found"] else "  (NOT FOUND)"
        out.append(f"  interpreter: {b['interpreter']['path']}{found}")
    if report["needed"]:
        out.append("  needed:")
        width = max(len(n["name"]) for n in report["needed"])
        for n in report["needed"]:
            out.append(f"    {n['name']:<{width}}  => {n['path'] or 'NOT FOUND'}")
    elif b["kind"] in ("static", "static-pie"):
        out.append("  statically linked: no libraries")
    out.append("")
    out.append(f"objects ({len(report['objects'])}):")
    for o in report["objects"]:
        out.append(f"  {o['role']:<11} {o['path']}: {o['sites']} syscall sites in {o['code_bytes']} bytes of code"
                   + (f", {o['resyncs']} resyncs" if o["resyncs"] else "")
                   + (f", {o['rewritten_sites']} rewritten (hermipy rewrite)" if o["rewritten_sites"] else ""))
    out.append("")
    out.append(f"syscall sites ({summary['sites']}: {summary['known_sites']} known, "
               f"{summary['dynamic_sites']} dynamic, {summary['unknown_sites']} unknown):")
    multi = len(report["objects"]) > 1
    rewritten = any(s["rewritten"] for s in report["sites"])
    header = ["ADDRESS", *(["OBJECT"] if multi else []), "FUNCTION", "NR", "SYSCALL", "VERDICT",
              *(["SITE"] if rewritten else [])]
    table = []
    for s in report["sites"]:
        func = "-"
        if s["function"]:
            func = s["function"] + (f"+{s['function_offset']:#x}" if s["function_offset"] else "")
            if not s["in_function"]:
                func = f"({func})"
        nr = str(s["nr"]) if s["nr"] is not None else "-"
        name = s["name"] or ("?" if s["kind"] == KNOWN else f"<{s['kind']}>")
        table.append([f"{s['address']:#x}", *([os.path.basename(s["object"])] if multi else []), func, nr, name,
                      s["verdict"], *([("rewritten" if s["rewritten"] else "syscall")] if rewritten else [])])
        for c in s["callers"]:
            table.append([f"  <- call {c['address']:#x}", *([""] if multi else []), "",
                          str(c["nr"]) if c["nr"] is not None else "-", c["name"] or f"<{c['kind']}>", c["verdict"],
                          *([""] if rewritten else [])])
    out.extend(_columns(header, table, right={header.index("NR")}))
    out.append("")
    out.append(f"distinct statically known syscalls ({summary['distinct_known']}): "
               + ", ".join(f"{n} {st}" for st, n in summary["by_status"].items() if n))
    for st in ("PARTIAL", "STUB", "UNIMPLEMENTED", UNKNOWN_NUMBER):
        names = [r["name"] or f"syscall_{r['nr']}" for r in report["syscalls"] if r["verdict"] == st]
        if names:
            out.append(f"  {st}: {', '.join(names)}")
    out.append("")
    out.append(f"prediction: {summary['prediction']}")
    if summary["not_counted"]:
        out.append(f"  not counted: {summary['not_counted']}")
    return "\n".join(out) + "\n"


def _columns(header: list[str], rows: list[list[str]], right=()) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for r in [header, *rows]:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  " + "  ".join(cells).rstrip())
    return lines
