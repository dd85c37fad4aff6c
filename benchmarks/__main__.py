"""hermipy's benchmark harness: every workload under every runner, side by side, ratios to native in one run.

    python -m benchmarks [--quick] [--json FILE] [--markdown FILE] [--only NAME,...] [--runners NAME,...]

Each (workload, runner) pair gets a warm-up run and then N timed runs (wall time of the whole process, peak
RSS of the child from wait4); the table shows the median, min-max, and the ratio to native's median.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "benchmarks" / ".build"
SOURCES = {"hello": ROOT / "testbins" / "hello.c", "cpu_mixed": ROOT / "testbins" / "cpu_mixed.c",
           "syscall_loop": ROOT / "benchmarks" / "src" / "syscall_loop.c",
           "int_loop": ROOT / "benchmarks" / "src" / "int_loop.c"}


def compile_static(name: str) -> Path:
    out = BUILD / name
    src = SOURCES[name]
    if not out.exists() or out.stat().st_mtime < src.stat().st_mtime:
        BUILD.mkdir(parents=True, exist_ok=True)
        subprocess.run(["gcc", "-static", "-O2", "-w", "-o", str(out), str(src), "-lm"], check=True)
    return out


# name -> (argv builder, description); argv builders get the quick flag.
WORKLOADS = {
    "hello": (lambda q: [compile_static("hello")], "static hello: whole-process startup"),
    "int_loop": (lambda q: [compile_static("int_loop"), "5000000" if q else "50000000"], "xorshift integer loop"),
    "cpu_mixed": (lambda q: [compile_static("cpu_mixed")] + (["1"] if q else []),
                  "sieve + qsort + snprintf hashing"),
    "syscall_loop": (lambda q: [compile_static("syscall_loop"), "20000" if q else "200000"],
                     "getppid via syscall(2), 200k times"),
}


def runner_commands() -> dict[str, list[str] | None]:
    """Runner name -> command prefix (None: not available here, recorded as such)."""
    hermipy = [sys.executable, "-m", "hermipy", "run"]
    runners = {"native": [], "hermipy-unicorn": hermipy + ["--backend", "unicorn"]}
    if os.access("/dev/kvm", os.R_OK | os.W_OK):
        runners["hermipy-kvm"] = hermipy + ["--backend", "kvm"]
    runners["qemu-user"] = ["qemu-x86_64"] if shutil.which("qemu-x86_64") else None
    return runners


def measure(cmd: list[str], runs: int) -> dict:
    """Warm-up plus ``runs`` timed runs; wall seconds and the child's peak RSS (KiB)."""
    times, rss, status = [], 0, 0
    for i in range(runs + 1):
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, wait_status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(wait_status)
        proc.stderr.close()
        status = proc.returncode
        if status != 0:
            return {"error": f"exit status {status}"}
        if i:
            times.append(elapsed)
            rss = max(rss, usage.ru_maxrss)
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "rss_kib": rss,
            "runs": runs}


def run_all(args) -> dict:
    runners = runner_commands()
    if args.runners:
        runners = {k: v for k, v in runners.items() if k in args.runners.split(",")}
    names = args.only.split(",") if args.only else list(WORKLOADS)
    results = {}
    for name in names:
        argv = [str(a) for a in WORKLOADS[name][0](args.quick)]
        results[name] = {}
        for runner, prefix in runners.items():
            if prefix is None:
                results[name][runner] = {"error": "not installed"}
                continue
            results[name][runner] = measure(prefix + argv, args.runs)
            print(f"  {name:<14} {runner:<16} {fmt_cell(results[name][runner], None)}", file=sys.stderr)
        native = results[name].get("native", {}).get("median")
        for cell in results[name].values():
            if native and "median" in cell:
                cell["ratio"] = cell["median"] / native
    return {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "quick": args.quick, "results": results,
            "descriptions": {n: WORKLOADS[n][1] for n in names}}


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}, Python {platform.python_version()}"


def fmt_cell(cell: dict, _native) -> str:
    if "error" in cell:
        return f"failed ({cell['error']})"
    text = f"{cell['median'] * 1000:.1f} ms ({cell['min'] * 1000:.1f}-{cell['max'] * 1000:.1f})"
    if "ratio" in cell:
        text += f" {cell['ratio']:.2f}x"
    return text


def markdown(report: dict) -> str:
    runners = list(next(iter(report["results"].values())).keys())
    lines = [f"Measured {report['date']} on {report['machine']}" + (" (--quick)" if report["quick"] else ""),
             "", "| workload | " + " | ".join(runners) + " |", "|---|" + "---|" * len(runners)]
    for name, cells in report["results"].items():
        lines.append(f"| {name} | " + " | ".join(fmt_cell(cells[r], None) for r in runners) + " |")
    lines += ["", "Cells: median wall time of the whole process (min-max), ratio to native in the same run."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs, 3 runs")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--only", help="comma-separated workloads")
    parser.add_argument("--runners", help="comma-separated runners")
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--markdown", metavar="FILE")
    args = parser.parse_args()
    if args.runs is None:
        args.runs = 3 if args.quick else 5
    report = run_all(args)
    text = markdown(report)
    sys.stdout.write(text)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
