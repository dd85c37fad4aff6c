"""hermipy pack, hermipy run app.hpk, hermipy run --image (issue 18): packed programs give native's output byte
for byte; container images the tests build themselves (an OCI layout and a docker-save tarball: two layers, a
whiteout, an opaque directory, Entrypoint+Cmd, Env, WorkingDir, User) run as docker would run them; bad images
get one clear line and 126/127; a run changes nothing outside its scratch layer."""
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

import pytest

import difftest
from difftest import Result, assert_results_same, run_native

TIMEOUT = 60
BUSYBOX = "/usr/bin/busybox"                   # Debian's busybox-static
ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": "/nonexistent", "TZ": "UTC"}

LIB_C = 'const char *greeting(void) { return "hello from libgreet"; }\n'
PROG_C = r'''
#include <stdio.h>
const char *greeting(void);
int main(int argc, char **argv) {
    printf("%s\n", greeting());
    for (int i = 1; i < argc; i++) printf("arg %d: %s\n", i, argv[i]);
    return 3;
}
'''
# fd calls that change an image file in place (the vfs copies it up and moves the fd onto the copy)
FDCHANGE_C = r'''
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int fd = open(argv[1], O_RDONLY);
    struct timespec ts[2] = {{1000, 0}, {2000, 0}};
    struct stat st;
    if (fd < 0 || fchmod(fd, 0600) || futimens(fd, ts) || fstat(fd, &st)) { perror("fd calls"); return 1; }
    printf("mode %o mtime %ld\n", st.st_mode & 07777, (long)st.st_mtime);
    char buf[64];
    ssize_t n = read(fd, buf, sizeof buf);
    printf("read %zd bytes after the copy-up\n", n);
    return 0;
}
'''


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def hermipy(cache: Path, *args: str, backend: str | None = None, cwd=None, stdin=b"", prefix=()) -> Result:
    """One hermipy command, its image cache in ``cache``; ``prefix``: a command it runs under."""
    command = [sys.executable, "-m", "hermipy", *args]
    if backend is not None:
        command[4:4] = ["--backend", backend]
    command[:0] = prefix
    env = {**ENV, "XDG_CACHE_HOME": str(cache)}
    proc = subprocess.run(command, env=env, cwd=cwd, input=stdin, capture_output=True, timeout=TIMEOUT)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def pack(cache: Path, *args: str) -> None:
    result = hermipy(cache, "pack", *args)
    assert result.status == 0, result.stderr.decode()


def gcc(*args) -> None:
    subprocess.run(["gcc", *map(str, args)], check=True, capture_output=True, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def origin_prog(tmp_path_factory) -> Path:
    """A dynamically linked program with a library of its own, found through DT_RUNPATH $ORIGIN/lib."""
    d = tmp_path_factory.mktemp("origin")
    (d / "lib").mkdir()
    (d / "greet.c").write_text(LIB_C)
    (d / "prog.c").write_text(PROG_C)
    gcc("-shared", "-fPIC", "-o", d / "lib" / "libgreet.so", d / "greet.c")
    gcc("-o", d / "prog", d / "prog.c", "-L", d / "lib", "-lgreet", "-Wl,-rpath,$ORIGIN/lib")
    return d


# -- packed programs, identical to native ------------------------------------------------------------
@pytest.mark.usefixtures("hermipy_backend")
def test_origin_library(cache, origin_prog, tmp_path):
    image = tmp_path / "prog.hpk"
    pack(cache, "-o", str(image), str(origin_prog / "prog"), "packed", "args")
    native = run_native([origin_prog / "prog", "packed", "args"], env=ENV)
    assert native.stdout.startswith(b"hello from libgreet") and native.status == 3
    assert_results_same("prog.hpk", native, hermipy(cache, "run", str(image), backend=difftest.BACKEND))
    native = run_native([origin_prog / "prog", "other"], env=ENV)      # a run's arguments replace the packed ones
    assert_results_same("prog.hpk other", native, hermipy(cache, "run", str(image), "other",
                                                          backend=difftest.BACKEND))
    listing = hermipy(cache, "inspect", str(image))
    assert listing.status == 0, listing.stderr
    assert f"{origin_prog}/lib/libgreet.so".encode() in listing.stdout
    assert b"prediction:" in listing.stdout


@pytest.mark.usefixtures("hermipy_backend")
def test_python_stdlib(cache, tmp_path):
    """--record adds what python3 imported; the image runs on nothing but itself."""
    image = tmp_path / "py.hpk"
    code = "import json, hashlib, textwrap; print(json.dumps({'h': hashlib.sha256(b'x').hexdigest()}, sort_keys=True))"
    pack(cache, "-o", str(image), "--record", "--backend", difftest.BACKEND, "/usr/bin/python3", "-c", code)
    assert os.path.getsize(image) < 12_000_000
    native = run_native(["/usr/bin/python3", "-c", code], env=ENV)
    assert_results_same("py.hpk", native, hermipy(cache, "run", str(image), backend=difftest.BACKEND))


@pytest.mark.usefixtures("hermipy_backend")
def test_sqlite3_database_in_image(cache, tmp_path):
    db = tmp_path / "t.db"
    subprocess.run(["sqlite3", db, "create table t(a, b); insert into t values (1, 'one'), (2, 'two');"],
                   check=True, timeout=TIMEOUT)
    image = tmp_path / "sq.hpk"
    sql = "insert into t values (3, 'three'); select a, b from t order by a; select count(*) from t;"
    pack(cache, "-o", str(image), "--add", f"{db}:/data/t.db", "sqlite3", "/data/t.db", sql)
    copy = tmp_path / "native"
    copy.mkdir()
    shutil.copy(db, copy / "t.db")
    native = run_native(["sqlite3", copy / "t.db", sql], env=ENV)
    assert native.stdout == b"1|one\n2|two\n3|three\n3\n"
    for _ in range(2):       # the insert went to the scratch layer: the second run starts from the image again
        assert_results_same("sq.hpk", native, hermipy(cache, "run", str(image), backend=difftest.BACKEND))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.usefixtures("hermipy_backend")
def test_busybox_httpd_served_from_image(cache, tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("<h1>from the image</h1>\n")
    (www / "data.txt").write_bytes(bytes(range(256)) * 64)
    image = tmp_path / "httpd.hpk"
    port = _free_port()
    pack(cache, "-o", str(image), "--add", f"{www}:/www", BUSYBOX, "httpd", "-f", "-p", f"127.0.0.1:{port}",
         "-h", "/www")
    server = subprocess.Popen([sys.executable, "-m", "hermipy", "run", "--backend", difftest.BACKEND, str(image)],
                              env={**ENV, "XDG_CACHE_HOME": str(cache)}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, server.communicate()[1].decode()
                assert time.monotonic() < deadline, "httpd did not listen within 30 s"
                time.sleep(0.1)
        for _ in range(3):
            for name in ("index.html", "data.txt"):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/{name}", timeout=10) as response:
                    assert response.read() == (www / name).read_bytes()
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/nothing", timeout=10)
        assert missing.value.code == 404
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()
    assert server.returncode == 128 + signal.SIGTERM


# -- container images ---------------------------------------------------------------------------------
def _tar(entries: list[tuple], compress: bool = False) -> bytes:
    """A layer: (name, data) files, (name, None) directories, (name, "->target") symlinks."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, *mode in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_600_000_000
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(data, str) and data.startswith("->"):
                info.type, info.linkname = tarfile.SYMTYPE, data[2:]
                tar.addfile(info)
            else:
                data = data.encode() if isinstance(data, str) else data
                info.size, info.mode = len(data), mode[0] if mode else 0o644
                tar.addfile(info, io.BytesIO(data))
    raw = out.getvalue()
    return gzip.compress(raw, mtime=0) if compress else raw


def _layers(extra1=(), extra2=()) -> list[bytes]:
    busybox = Path(BUSYBOX).read_bytes()
    one = _tar([("bin", None), ("bin/busybox", busybox, 0o755), ("bin/sh", "->/bin/busybox"),
                ("etc", None), ("etc/passwd", "root:x:0:0::/root:/bin/sh\napp:x:1234:4321::/home/app:/bin/sh\n"),
                ("data", None), ("data/old.txt", "old\n"), ("data/keep.txt", "keep\n"),
                ("opaque", None), ("opaque/lower.txt", "lower\n"), *extra1])
    two = _tar([("data/.wh.old.txt", b""), ("data/new.txt", "new\n"), ("opaque/.wh..wh..opq", b""),
                ("opaque/upper.txt", "upper\n"), *extra2], compress=True)
    return [one, two]


CONFIG = {"Entrypoint": ["/bin/sh", "-c"],
          "Cmd": ["echo $GREETING; pwd; ls /data /opaque; cat /data/*; id -u; id -g"],
          "Env": ["PATH=/bin", "GREETING=hello from the image"], "WorkingDir": "/work/dir", "User": "app"}
EXPECTED = (b"hello from the image\n/work/dir\n/data:\nkeep.txt\nnew.txt\n\n/opaque:\nupper.txt\nkeep\nnew\n"
            b"1234\n4321\n")


def _config(arch="amd64", config=CONFIG, layers=()) -> bytes:
    diff_ids = ["sha256:" + hashlib.sha256(gzip.decompress(x) if x[:2] == b"\x1f\x8b" else x).hexdigest()
                for x in layers]
    return json.dumps({"architecture": arch, "os": "linux", "config": config,
                       "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()


def oci_layout(d: Path, layers: list[bytes], config: bytes, index: bytes | None = None) -> Path:
    blobs = d / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return "sha256:" + digest
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": put(config), "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar"
                                       + ("+gzip" if x[:2] == b"\x1f\x8b" else ""), "digest": put(x),
                                       "size": len(x)} for x in layers]}).encode()
    (d / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (d / "index.json").write_bytes(index if index is not None else json.dumps(
        {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                            "digest": put(manifest), "size": len(manifest)}]}).encode())
    return d


def docker_save(path: Path, layers: list[bytes], config: bytes) -> Path:
    members = {}
    names = []
    for i, layer in enumerate(layers):
        raw = gzip.decompress(layer) if layer[:2] == b"\x1f\x8b" else layer     # docker save: plain tars
        names.append(f"{i}{'0' * 63}/layer.tar")
        members[names[-1]] = raw
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    members[config_name] = config
    members["manifest.json"] = json.dumps([{"Config": config_name, "RepoTags": ["test:latest"],
                                            "Layers": names}]).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.usefixtures("hermipy_backend")
def test_oci_layout_and_docker_save(cache, tmp_path):
    layers = _layers()
    config = _config(layers=layers)
    oci = oci_layout(tmp_path / "oci", layers, config)
    saved = docker_save(tmp_path / "saved.tar", layers, config)
    for image in (oci, saved):
        result = hermipy(cache, "run", "--image", str(image), backend=difftest.BACKEND)
        assert (result.status, result.stderr, result.stdout) == (0, b"", EXPECTED), image
        # CMD on the command line replaces Cmd (the Entrypoint stays); -E adds to Env
        result = hermipy(cache, "run", "-E", "X=1", "--image", str(image), "echo $X $GREETING; exit 7",
                         backend=difftest.BACKEND)
        assert (result.status, result.stderr, result.stdout) == (7, b"", b"1 hello from the image\n")
    hpk = tmp_path / "converted.hpk"
    pack(cache, "--image", str(saved), "-o", str(hpk))
    result = hermipy(cache, "run", str(hpk), backend=difftest.BACKEND)
    assert (result.status, result.stderr, result.stdout) == (0, b"", EXPECTED)


# -- bad input ---------------------------------------------------------------------------------------
def _bad(cache: Path, tmp_path: Path, *args: str) -> tuple[int, str]:
    result = hermipy(cache, "run", *args)
    assert result.stdout == b""
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hermipy: ") and "Traceback" not in lines[0], result.stderr
    return result.status, lines[0]


def test_malformed_images(cache, tmp_path, origin_prog):
    good = tmp_path / "good.hpk"
    pack(cache, "-o", str(good), BUSYBOX, "true")
    data = good.read_bytes()
    (tmp_path / "truncated.hpk").write_bytes(data[:len(data) // 2])
    status, line = _bad(cache, tmp_path, str(tmp_path / "truncated.hpk"))
    assert status == 126 and "corrupt or truncated" in line, line

    def hpk(name: str, manifest: bytes, members=()) -> str:
        path = tmp_path / name
        with tarfile.open(path, "w:gz") as tar:
            for member, data in [("hermipy-manifest.json", manifest), *members]:
                info = tarfile.TarInfo(member)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return str(path)
    status, line = _bad(cache, tmp_path, hpk("badjson.hpk", b"{not json"))
    assert status == 126 and "manifest does not parse" in line, line
    manifest = json.loads(tarfile.open(good).extractfile("hermipy-manifest.json").read())
    escaping = json.dumps(manifest).encode()
    status, line = _bad(cache, tmp_path, hpk("escape.hpk", escaping, [("rootfs/../../evil", b"x")]))
    assert status == 126 and "escaping" in line, line
    arm = json.dumps({**manifest, "architecture": "arm64"}).encode()
    status, line = _bad(cache, tmp_path, hpk("arm.hpk", arm))
    assert status == 126 and "linux/arm64" in line, line
    status, line = _bad(cache, tmp_path, str(tmp_path / "missing.hpk"))
    assert status == 127, line

    layers = _layers()
    status, line = _bad(cache, tmp_path, "--image", str(oci_layout(tmp_path / "arm", layers,
                                                                   _config("arm64", layers=layers))))
    assert status == 126 and "linux/arm64" in line, line
    bad_layers = _layers(extra1=[("../outside.txt", "x")])
    status, line = _bad(cache, tmp_path, "--image", str(oci_layout(tmp_path / "esc", bad_layers,
                                                                   _config(layers=bad_layers))))
    assert status == 126 and "escaping" in line, line
    corrupt = oci_layout(tmp_path / "corrupt", layers, _config(layers=layers))
    blob = next(p for p in (corrupt / "blobs" / "sha256").iterdir() if p.stat().st_size > 100_000)
    blob.write_bytes(blob.read_bytes()[:-1000])
    # (a fresh cache: this manifest's image is cached already, good, by the other tests: content addressing)
    status, line = _bad(tmp_path / "fresh", tmp_path, "--image", str(corrupt))
    assert status == 126 and ("corrupt" in line or "truncated" in line), line
    (tmp_path / "badindex").mkdir()
    (tmp_path / "badindex" / "index.json").write_text("[}")
    status, line = _bad(cache, tmp_path, "--image", str(tmp_path / "badindex"))
    assert status == 126 and "does not parse" in line, line
    saved = docker_save(tmp_path / "cut.tar", layers, _config(layers=layers))
    saved.write_bytes(saved.read_bytes()[:300_000])
    status, line = _bad(cache, tmp_path, "--image", str(saved))
    assert status == 126, line

    # pack: a library ld.so would not find is named, with who needs it
    broken = tmp_path / "broken"
    shutil.copytree(origin_prog, broken)
    (broken / "lib" / "libgreet.so").unlink()
    result = hermipy(cache, "pack", "-o", str(tmp_path / "x.hpk"), str(broken / "prog"))
    assert result.status == 127, result.stderr
    assert result.stderr.decode() == f"hermipy: libgreet.so: shared library not found (needed by {broken}/prog)\n"


# -- the scratch layer --------------------------------------------------------------------------------
def _snapshot(root: Path) -> dict:
    snap = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        snap[str(path.relative_to(root))] = (st.st_mode, st.st_uid, st.st_mtime_ns, st.st_size,
                                              path.read_bytes() if path.is_file() and not path.is_symlink() else None)
    return snap


def applets(d: Path) -> Path:
    """A /bin of busybox applets (absolute symlinks: resolved inside the image)."""
    bin_ = d / "bin"
    bin_.mkdir()
    for name in ("sh", "cat", "ls", "cp", "mv", "ln", "rm", "mkdir", "touch", "chmod", "id"):
        (bin_ / name).symlink_to(BUSYBOX)
    return bin_


# The scratch layer: an overlay mount where hermipy may mount (root), else a tree of hard links (here: root
# without CAP_SYS_ADMIN, whose unshare(CLONE_NEWNS) fails with EPERM).
LAYERS = {"overlay": (), "links": ("setpriv", "--inh-caps=-sys_admin", "--bounding-set=-sys_admin")}


@pytest.mark.usefixtures("hermipy_backend")
@pytest.mark.parametrize("layer", LAYERS)
def test_writes_stay_in_the_scratch_layer(cache, tmp_path, layer):
    if os.geteuid() != 0:
        pytest.skip("the overlay scratch layer (and dropping CAP_SYS_ADMIN for the other) needs root")
    src = tmp_path / "fdchange.c"
    src.write_text(FDCHANGE_C)
    gcc("-static", "-o", tmp_path / "fdchange", src)
    (tmp_path / "f.txt").write_text("image data\n")
    image = tmp_path / "w.hpk"
    pack(cache, "-o", str(image), "--add", f"{tmp_path / 'f.txt'}:/data/f.txt", "--add", f"{applets(tmp_path)}:/bin",
         "--add", f"{tmp_path / 'fdchange'}:/bin/fdchange", "-E", "PATH=/bin", BUSYBOX, "sh")
    outside = tmp_path / "outside"
    outside.mkdir()
    assert hermipy(cache, "run", str(image), "sh", "-c", ":", backend=difftest.BACKEND, prefix=LAYERS[layer]).status == 0   # cached now
    before = _snapshot(Path(cache))
    script = ("cd /data && echo more >> f.txt && cat f.txt && chmod 0 f.txt && touch -d @5 f.txt && "
              "cp f.txt g && mv g h && ln h i && rm f.txt && mkdir -p /new/dir && echo x > /new/dir/y && "
              "ln -s /data/h /link && echo via-link >> /link && cat /data/h && cd / && rm -rf /bin/sh && "
              f"echo escape > {outside}/x; cat ../../../../data/h; ls / /data")
    result = hermipy(cache, "run", str(image), "sh", "-c", script, backend=difftest.BACKEND, prefix=LAYERS[layer])
    assert result.stdout == (b"image data\nmore\nimage data\nmore\nvia-link\nimage data\nmore\nvia-link\n"
                             b"/:\nbin\ndata\nlink\nnew\nusr\n\n/data:\nh\ni\n"), result.stderr
    assert list(outside.iterdir()) == []
    result = hermipy(cache, "run", str(image), "sh", "-c", "/bin/fdchange /data/f.txt; ls -l /data/f.txt",
                     backend=difftest.BACKEND, prefix=LAYERS[layer])
    assert result.stdout.startswith(b"mode 600 mtime 2000\nread 11 bytes after the copy-up\n-rw-------"), result
    after = _snapshot(Path(cache))
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    changed = {k for k in changed if not k.startswith("hermipy/plans")}     # (the rewriter's cache: fdchange ran)
    assert changed <= {"hermipy/runs"}, sorted(changed)       # the scratch trees' directory, empty again
    runs = Path(cache) / "hermipy" / "runs"
    left = {p.name for p in runs.iterdir()}
    assert left <= {"mnt"}, left          # no run's tree is left (mnt: where overlay runs mount, in their namespace)
    if layer == "overlay":
        assert left == {"mnt"} and not list((runs / "mnt").iterdir())


def test_persist(cache, tmp_path):
    image = tmp_path / "p.hpk"
    pack(cache, "-o", str(image), BUSYBOX, "sh")
    state = tmp_path / "state"
    for expected in (b"1\n", b"1\n2\n"):
        result = hermipy(cache, "run", "--persist", str(state), str(image), "sh", "-c",
                         "n=$(busybox wc -l < /count 2>/dev/null || echo 0); echo $((n + 1)) >> /count; "
                         "busybox cat /count")
        assert (result.status, result.stdout) == (0, expected), result.stderr
    assert (state / "count").read_text() == "1\n2\n"


# -- an image of another Debian release (on demand) ------------------------------------------------------------
OTHER_DEBIAN = os.environ.get("HERMIPY_OTHER_DEBIAN")      # a debootstrap tree with sqlite3 and python3 in it
OTHER_COMMANDS = [["cat", "/etc/debian_version"],
                  ["sqlite3", ":memory:", "create table t(x); insert into t values (6), (7); "
                                          "select sqlite_version() is not null, x * 7 from t;"],
                  ["python3", "-c", "import sys, json, sqlite3, hashlib; print(sys.version_info[:2], "
                                    "json.dumps({'h': hashlib.sha256(b'x').hexdigest()[:8]}), "
                                    "sqlite3.connect(':memory:').execute('select 6*7').fetchone())"],
                  ["sh", "-c", "ls /usr/lib/x86_64-linux-gnu/libc.so.6 && ldd --version | head -1"]]


@pytest.mark.skipif(not OTHER_DEBIAN, reason="HERMIPY_OTHER_DEBIAN=ROOTFS not given (e.g. debootstrap "
                                             "--variant=minbase --include=sqlite3,python3-minimal trixie ROOTFS)")
@pytest.mark.usefixtures("hermipy_backend")
def test_image_of_another_debian(cache, tmp_path):
    """A container image of another Debian release (its own libc, python3, sqlite3), packed and run on this host,
    answers as the same commands do natively in that release's tree (chroot)."""
    if os.geteuid() != 0:
        pytest.skip("the native side runs in a chroot")
    layer = tmp_path / "layer.tar"
    with tarfile.open(layer, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(OTHER_DEBIAN, arcname=".", filter=lambda m: None if m.name.startswith(("./proc/", "./sys/", "./dev/"))
                else m)
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C"], "Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + _sha256_file(layer)]}}).encode()
    layout = oci_layout(tmp_path / "oci", [layer.read_bytes()], config)
    image = tmp_path / "other.hpk"
    pack(cache, "--image", str(layout), "-o", str(image))
    host_version = Path("/etc/debian_version").read_text()
    for argv in OTHER_COMMANDS:
        native = subprocess.run(["chroot", OTHER_DEBIAN, "/usr/bin/env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin",
                                 "LC_ALL=C", *argv], capture_output=True, timeout=TIMEOUT)
        result = hermipy(cache, "run", str(image), *argv, backend=difftest.BACKEND)
        assert_results_same(argv, Result(native.returncode, native.stdout, native.stderr), result)
    assert hermipy(cache, "run", str(image), "cat", "/etc/debian_version").stdout.decode() != host_version


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
