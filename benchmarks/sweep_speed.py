"""What the machinery of ``hermipy sweep`` costs (issue 17): a sweep of a corpus against the same cases run by hand.

    python -m benchmarks.sweep_speed [--corpus debian] [--tag curated] [--backend kvm] [--rounds 1]

By hand: each case that can run here, one after the other, in a fresh temp dir prepared from the corpus, natively
and then as ``python3 -m hermipy run --backend B --clear-env -E... ARGV``, nothing compared (what a person would
type). Then ``hermipy sweep`` of the same cases with ``--no-cache`` at ``-j 1`` and ``-j 2``, and once more with
its cache filled (in a private ``XDG_CACHE_HOME``). Prints a Markdown table: wall time, cases per second, the
per-case overhead of the sweep at -j 1 against by hand, and the speed-up from 1 to 2 workers.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from hermipy.corpus import load, prepare, program_missing


def by_hand(cases, backend: str) -> float:
    """Seconds to run each case natively and under ``hermipy run``, one after the other."""
    started = time.monotonic()
    for case in cases:
        for command in (case.argv, [sys.executable, "-m", "hermipy", "run", "--backend", backend, "--clear-env",
                                    *(f"-E{k}={v}" for k, v in case.env.items()), *case.argv]):
            with tempfile.TemporaryDirectory(prefix="hermipy-bench.") as directory:
                prepare(case, directory)
                try:
                    subprocess.run(command, cwd=directory, env=case.env, input=case.stdin, capture_output=True,
                                   timeout=case.timeout, start_new_session=True)
                except subprocess.TimeoutExpired:
                    pass
    return time.monotonic() - started


def sweep(corpus: str, tag: str, backend: str, jobs: int, cache: str | None) -> tuple[float, dict]:
    """(outer wall seconds, the JSON report) of one ``hermipy sweep``; ``cache``: its XDG_CACHE_HOME, or None
    for --no-cache."""
    with tempfile.TemporaryDirectory(prefix="hermipy-bench.") as directory:
        out = os.path.join(directory, "r.json")
        env = {**os.environ, "XDG_CACHE_HOME": cache or directory}
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "hermipy", "sweep", corpus, "--tag", tag, "--backend", backend,
                        "-j", str(jobs), "--json", out, *([] if cache else ["--no-cache"])], env=env,
                       stdout=subprocess.DEVNULL, check=False)
        wall = time.monotonic() - started
        with open(out) as f:
            return wall, json.load(f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="debian")
    parser.add_argument("--tag", default="curated")
    parser.add_argument("--backend", default="kvm")
    args = parser.parse_args()
    cases = [c for c in load(args.corpus).cases if args.tag in c.tags and program_missing(c) is None]
    n = len(cases)
    hand = by_hand(cases, args.backend)
    rows = [("by hand (native, then `hermipy run`, one after the other)", hand, None)]
    with tempfile.TemporaryDirectory(prefix="hermipy-bench-cache.") as cache:
        for jobs in (1, 2):
            wall, doc = sweep(args.corpus, args.tag, args.backend, jobs, None)
            rows.append((f"`hermipy sweep -j {jobs} --no-cache`", wall, doc))
        sweep(args.corpus, args.tag, args.backend, 2, cache)
        wall, doc = sweep(args.corpus, args.tag, args.backend, 2, cache)
        rows.append(("`hermipy sweep -j 2`, every result cached", wall, doc))
    load_average = os.getloadavg()
    print(f"{n} cases of `{args.corpus}` tagged `{args.tag}`, backend {args.backend}; load average before the "
          f"last run {load_average[0]:.2f}\n")
    print("| how | wall | cases/s | results |\n|---|---:|---:|---|")
    for what, wall, doc in rows:
        runs = "" if doc is None else ", ".join(f"{k} {v}" for k, v in doc["summary"]["runs"][args.backend].items())
        print(f"| {what} | {wall:.1f} s | {n / wall:.2f} | {runs} |")
    one, two = rows[1][1], rows[2][1]
    print(f"\nPer-case overhead of the sweep at -j 1 against by hand: {(one - hand) / n * 1000:+.0f} ms; "
          f"speed-up from 1 to 2 workers: {one / two:.2f}x")


if __name__ == "__main__":
    main()
