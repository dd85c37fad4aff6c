"""Image size and start-up cost of ``hermipy run app.hpk`` (issue 18): ``python -m benchmarks.image_cost``.

For each program: the .hpk's size against the binary plus its libraries (and against everything packed,
uncompressed); the wall time of ``hermipy run app.hpk`` with a warm cache against ``hermipy run BINARY`` (the
same program and arguments, the host's files), interleaved, median of N runs; and the first run's (empty cache:
unpacking included). Writes a Markdown table to stdout.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

PROGRAMS = {
    "busybox-static": (["/usr/bin/busybox", "true"], []),
    "coreutils true (dynamic)": (["/usr/bin/true"], []),
    "sqlite3 -version": (["/usr/bin/sqlite3", "-version"], []),
    "python3 -c pass (--record)": (["/usr/bin/python3", "-c", "pass"], ["--record"]),
}


def hermipy(*args, cache: str, check: bool = True) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hermipy", *args], env={**os.environ, "XDG_CACHE_HOME": cache},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=check, timeout=120)
    return time.perf_counter() - start


PREPARE = """
import importlib, os, sys, time
for name in sys.argv[2:]:                     # what a plain run imports (json among them: the rewriter's plans)
    try:
        importlib.import_module(name)
    except Exception:
        pass
start = time.perf_counter()
from hermipy.image import ImageRun
run = ImageRun(sys.argv[1], False, [], [], False, None)
ready = time.perf_counter()
run.close()
print(ready - start, time.perf_counter() - ready)
"""


def plain_run_modules(argv: list[str], backend: str) -> list[str]:
    """The modules ``hermipy run BINARY`` imports (python -X importtime), in import order."""
    err = subprocess.run([sys.executable, "-X", "importtime", "-m", "hermipy", "run", "--backend", backend, *argv],
                         capture_output=True, text=True, timeout=60).stderr
    return [line.split("|")[2].strip() for line in err.splitlines()
            if line.startswith("import time:") and "|" in line and not line.endswith("| imported package")
            and line.split("|")[2].strip() not in ("hermipy.__main__", "__main__")]


def in_process(image: str, cache: str, runs: int, modules: list[str]) -> tuple[float, float]:
    """Median (prepare, clean up) of an image run inside hermipy (warm cache), in a Python that has imported what
    a plain run imports: importing hermipy.image, finding the cache entry, making the scratch layer; removing it."""
    times = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", PREPARE, image, *modules],
                             env={**os.environ, "XDG_CACHE_HOME": cache},
                             capture_output=True, text=True, check=True, timeout=60).stdout.split()
        times.append((float(out[0]), float(out[1])))
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)


def sizes(image: str) -> tuple[int, int, int]:
    """(binary + libraries, everything packed, uncompressed; the image's size)."""
    with tarfile.open(image) as tar:
        manifest = json.load(tar.extractfile("hermipy-manifest.json"))
        unpacked = sum(m.size for m in tar.getmembers() if m.isreg())
    libs = sum(os.path.getsize(p) for p in manifest["libraries"])
    return libs, unpacked, os.path.getsize(image)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--backend", default="kvm")
    args = parser.parse_args()
    subprocess.run([sys.executable, "-m", "compileall", "-q", "hermipy", "syscalls", "loader", "rewriter"],
                   env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
                   stdout=subprocess.DEVNULL, check=True)        # as installed: no module compiled at each start
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (argv, options) in PROGRAMS.items():
            image = os.path.join(tmp, "app.hpk")
            cache = os.path.join(tmp, "cache")
            subprocess.run([sys.executable, "-m", "hermipy", "pack", "-o", image, "--backend", args.backend,
                            *options, *argv], env={**os.environ, "XDG_CACHE_HOME": cache}, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
            libs, unpacked, size = sizes(image)
            first = []
            for _ in range(3):
                shutil.rmtree(os.path.join(cache, "hermipy", "images"), ignore_errors=True)
                shutil.rmtree(os.path.join(cache, "hermipy", "by-file"), ignore_errors=True)
                first.append(hermipy("run", "--backend", args.backend, image, cache=cache))
            plain, packed = [], []
            for _ in range(args.runs):
                plain.append(hermipy("run", "--backend", args.backend, *argv, cache=cache))
                packed.append(hermipy("run", "--backend", args.backend, image, cache=cache))
            p, q = statistics.median(plain), statistics.median(packed)
            prepare, cleanup = in_process(image, cache, args.runs, plain_run_modules(argv, args.backend))
            rows.append(f"| {name} | {libs / 1e6:.2f} MB | {unpacked / 1e6:.2f} MB | {size / 1e6:.2f} MB "
                        f"({size / libs:.2f}x) | {p * 1e3:.1f} ms | {q * 1e3:.1f} ms | {(q - p) * 1e3:+.1f} ms | "
                        f"{prepare * 1e3:.1f} + {cleanup * 1e3:.1f} ms | {statistics.median(first) * 1e3:.0f} ms |")
            shutil.rmtree(cache)
    print(f"backend {args.backend}, median of {args.runs} interleaved runs (first run: median of 3); "
          f"load average {open('/proc/loadavg').read().split()[0]}\n")
    print("| program | binary + libraries | packed, uncompressed | .hpk (vs binary + libraries) | "
          "hermipy run BINARY | hermipy run app.hpk (warm) | difference | in hermipy: prepare + clean up | "
          "first run (unpack) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
