"""``hermipy pack``: make a single-file image (.hpk, docs/pack.md) of a program, or of a container image; and
``hermipy inspect``: what an image holds and what hermipy's analyzer says its program needs.

The program's shared libraries are found as ld.so finds them (rewriter/analyze.py ``load_objects``: DT_NEEDED,
DT_RPATH/DT_RUNPATH with $ORIGIN, LD_LIBRARY_PATH, /etc/ld.so.cache, the default directories); ``--record``
runs the program once under hermipy and adds every existing path it looked up (dlopen'ed libraries, locale,
NSS, a language's modules); ``--add SRC:DEST`` adds files. Each path keeps the symlinks on its way
(/lib -> usr/lib), so the image resolves names as the host did.
"""
import gzip
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time

from hermipy.errors import HermipyError
from hermipy.cli import is_image_file
from hermipy.image import DEFAULT_PATH, MANIFEST, ROOTFS, cached, entry_of, load_manifest, new_manifest

SKIPPED = ("/proc", "/dev", "/sys")          # a recorded run's synthetic and kernel files: never packed
MAX_LINKS = 40


class Contents:
    """Guest path -> where its entry comes from: a host path (its lstat decides the kind) or None for a
    directory made for the image."""

    def __init__(self):
        self.entries: dict[str, str | None] = {"/": "/"}

    def add_host(self, path: str, links: int = 0) -> bool:
        """The host's ``path`` at the same guest path, with each directory and symlink on the way (a symlink's
        target added the same way). False when it does not exist."""
        parts = [p for p in os.path.normpath(path).split("/") if p]
        cur = ""
        for i, part in enumerate(parts):
            cur += "/" + part
            try:
                st = os.lstat(cur)
            except OSError:
                return False
            self.entries[cur] = cur
            if stat.S_ISLNK(st.st_mode):
                if links >= MAX_LINKS:
                    return False
                target = os.path.join(os.path.dirname(cur), os.readlink(cur))
                return self.add_host("/".join([target, *parts[i + 1:]]), links + 1)
        return True

    def add_tree(self, src: str, dest: str) -> None:
        """--add SRC:DEST: a host file or directory (all of it, symlinks as they are) at DEST."""
        dest = "/" + "/".join(p for p in dest.split("/") if p)
        parent = ""
        for part in [p for p in dest.split("/") if p][:-1]:
            parent += "/" + part
            self.entries.setdefault(parent, None)
        self.entries[dest] = src
        if os.path.isdir(src) and not os.path.islink(src):
            for top, dirs, files in os.walk(src):
                for name in dirs + files:
                    host = os.path.join(top, name)
                    self.entries[dest.rstrip("/") + "/" + os.path.relpath(host, src)] = host

    def write(self, out: str, manifest: dict) -> int:
        """The .hpk: a gzip-compressed POSIX tar, the manifest first, then rootfs/ (parents before children);
        reproducible (no time in the gzip header, sorted members). Returns the number of files."""
        tmp = f"{out}.tmp-{os.getpid()}"
        data = json.dumps(manifest, indent=1).encode() + b"\n"
        count = 0
        with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=6) as gz, \
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tar.addfile(info, _Bytes(data))
            for guest in sorted(self.entries, key=lambda p: p.split("/")):
                name = ROOTFS + (guest if guest != "/" else "")
                host = self.entries[guest]
                if host is None:
                    info = tarfile.TarInfo(name)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
                    tar.addfile(info)
                    continue
                info = tar.gettarinfo(host, name)
                if info is None or info.ischr() or info.isblk():
                    continue                           # sockets, devices
                if info.isreg():
                    with open(host, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
                count += not info.isdir()
        os.replace(tmp, out)
        return count


class _Bytes:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def read(self, n: int = -1) -> bytes:
        end = len(self.data) if n < 0 else self.pos + n
        chunk, self.pos = self.data[self.pos:end], min(end, len(self.data))
        return chunk


def _program(name: str) -> tuple[str, str]:
    """(host path, the entrypoint's name for it): a bare name found on the host's PATH stays bare when the
    image's default PATH finds it at the same place."""
    if "/" in name:
        return os.path.abspath(name), os.path.abspath(name)
    found = shutil.which(name)
    if found is None:
        raise HermipyError(f"{name}: command not found", 127)
    found = os.path.abspath(found)
    return found, name if os.path.dirname(found) in DEFAULT_PATH[5:].split(":") else found


def program_files(contents: Contents, binary: str) -> list[str]:
    """Add the program, its ELF interpreter and its libraries; their paths. A library ld.so would not find
    is an error naming it and who needs it."""
    from hermipy.rewriter.analyze import load_objects
    objects, needed = load_objects(binary, None, os.environ.get("LD_LIBRARY_PATH"))
    interp = objects[0].elf.interpreter
    if interp and not any(o.role == "interpreter" for o in objects):
        raise HermipyError(f"{interp}: ELF interpreter not found (needed by {binary})", 127)
    for n in needed:
        if n["path"] is None:
            raise HermipyError(f"{n['name']}: shared library not found (needed by {n['needed_by']})", 127)
    paths = [binary if o.role == "binary" else o.path for o in objects]
    for path in paths:
        contents.add_host(path)
    return paths


def record(binary: str, argv: list[str], env: list[str], workdir: str, backend: str) -> list[str]:
    """Run the program once under hermipy (host file system) and return every path it looked up."""
    with tempfile.NamedTemporaryFile(prefix="hermipy-record-") as log:
        command = [sys.executable, "-m", "hermipy", "run", "--record", log.name, "--backend", backend,
                   *[x for e in env for x in ("-E", e)], binary, *argv[1:]]
        status = subprocess.run(command, cwd=workdir if os.path.isdir(workdir) else "/").returncode
        if status:
            sys.stderr.write(f"hermipy: pack: the recorded run exited with status {status}\n")
        names = log.read().split(b"\0")
    return sorted({os.fsdecode(n) for n in names if n.startswith(b"/")} - {log.name})


def cmd_pack(args) -> int:
    if args.output is None and args.args[-2:-1] == ["-o"]:
        args.output, args.args = args.args[-1], args.args[:-2]
    if args.output is None:
        raise HermipyError("pack: -o OUT is needed", 2)
    if not args.output.endswith(".hpk"):
        sys.stderr.write(f"hermipy: pack: {args.output}: an image is usually named *.hpk\n")
    contents = Contents()
    if args.image:
        entry = entry_of(args.image, True)
        manifest = load_manifest(entry)
        contents.add_tree(os.path.join(entry, ROOTFS), "/")
        manifest["env"] += args.env
        if args.binary:
            manifest["cmd"] = [args.binary, *args.args]
    else:
        if not args.binary:
            raise HermipyError("pack: a BINARY or --image IMAGE is needed", 2)
        host, name = _program(args.binary)
        libraries = program_files(contents, host)
        if args.record:
            for path in record(host, [host, *args.args], args.env, args.workdir, args.backend):
                if not path.startswith(SKIPPED) and os.path.lexists(path):
                    contents.add_host(path)
        manifest = new_manifest([name], args.args, args.env, args.workdir, memory_mib=args.memory,
                                backend=args.backend, libraries=libraries)
    for item in args.add:
        src, sep, dest = item.partition(":")
        if not sep or not dest.startswith("/"):
            raise HermipyError(f"--add {item}: expected SRC:/DEST", 2)
        if not os.path.lexists(src):
            raise HermipyError(f"--add {item}: {src}: No such file or directory", 127)
        contents.add_tree(src, dest)
    if args.workdir != "/":
        contents.entries.setdefault(args.workdir.rstrip("/"), None)
    count = contents.write(args.output, manifest)
    size = os.path.getsize(args.output)
    sys.stdout.write(f"{args.output}: {count} files, {size / 1e6:.2f} MB\n")
    return 0


# -- inspect --------------------------------------------------------------------------------------------
def _listing(rootfs: str) -> list[dict]:
    rows = []
    for top, dirs, files in os.walk(rootfs):
        dirs.sort()
        for name in sorted(dirs + files):
            path = os.path.join(top, name)
            st = os.lstat(path)
            row = {"path": "/" + os.path.relpath(path, rootfs), "mode": stat.filemode(st.st_mode),
                   "size": st.st_size if stat.S_ISREG(st.st_mode) else 0}
            if stat.S_ISLNK(st.st_mode):
                row["link"] = os.readlink(path)
            rows.append(row)
    rows.sort(key=lambda r: r["path"].split("/"))
    return rows


def _command_path(rootfs: str, manifest: dict) -> str | None:
    """The image's command as a path in the image ($PATH searched for a bare name, as a run does)."""
    from hermipy.syscalls.errors import SyscallError
    from hermipy.syscalls.vfs import FsView
    argv = manifest["entrypoint"] + manifest["cmd"]
    if not argv:
        return None
    if "/" in argv[0]:
        return argv[0]
    path = next((e[5:] for e in manifest["env"] if e.startswith("PATH=")), DEFAULT_PATH[5:])
    view = FsView(rootfs)
    for d in path.split(":"):
        candidate = os.path.join(d or "/", argv[0])
        try:
            t = view.resolve(candidate)
            if not t.missing and stat.S_ISREG(t.stat().st_mode):
                return candidate
        except (SyscallError, OSError):
            continue
    return None


def cmd_inspect(args) -> int:
    from hermipy.rewriter.analyze import analyze
    container = not is_image_file(args.image)
    entry = entry_of(args.image, container)
    manifest = load_manifest(entry)
    rootfs = os.path.join(entry, ROOTFS)
    files = _listing(rootfs)
    command = _command_path(rootfs, manifest)
    analysis, problem = None, None
    if command is None:
        problem = "the image's command is not in it"
    else:
        try:
            analysis = analyze(command, rootfs)
        except HermipyError as err:
            problem = str(err)
    report = {"image": args.image, "kind": "container" if container else "hpk", "cache": cached(os.path.basename(entry)),
              "manifest": manifest, "files": files, "command": command,
              "analysis": None if analysis is None else {k: analysis[k] for k in ("summary", "syscalls", "needed")},
              "problem": problem}
    sys.stdout.write(json.dumps(report, indent=1) + "\n" if args.json else _render(report))
    return 0


def _render(r: dict) -> str:
    m = r["manifest"]
    total = sum(f["size"] for f in r["files"])
    out = [f"{r['image']}: {'container image' if r['kind'] == 'container' else 'hermipy image'}, "
           f"{m['os']}/{m['architecture']}, {len(r['files'])} entries, {total / 1e6:.2f} MB unpacked",
           f"  entrypoint: {json.dumps(m['entrypoint'])}", f"  cmd:        {json.dumps(m['cmd'])}",
           f"  env:        {json.dumps(m['env'])}", f"  workdir:    {m['workdir']}"]
    if m["user"]:
        out.append(f"  user:       {m['user']}")
    if m["memory_mib"] or m["backend"] != "auto":
        out.append(f"  memory:     {m['memory_mib'] or 'default'} MiB, backend {m['backend']}")
    out.append("")
    out.append("files:")
    for f in r["files"]:
        link = f" -> {f['link']}" if "link" in f else ""
        out.append(f"  {f['mode']} {f['size']:>10} {f['path']}{link}")
    out.append("")
    a = r["analysis"]
    if a is None:
        out.append(f"analysis: {r['problem']}")
    else:
        s = a["summary"]
        out.append(f"analysis of {r['command']} and its {len(a['needed'])} libraries: {s['sites']} syscall sites, "
                   f"{s['distinct_known']} distinct known syscalls: "
                   + ", ".join(f"{n} {st}" for st, n in s["by_status"].items() if n))
        for st in ("PARTIAL", "STUB", "UNIMPLEMENTED"):
            names = [x["name"] or f"syscall_{x['nr']}" for x in a["syscalls"] if x["verdict"] == st]
            if names:
                out.append(f"  {st}: {', '.join(names)}")
        out.append(f"prediction: {s['prediction']}")
    return "\n".join(out) + "\n"
