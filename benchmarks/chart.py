"""The benchmark chart: ratio to native per workload and runner, log scale, one PNG.

Imported by the harness when matplotlib is importable there, else run by the harness' venv:
    python benchmarks/chart.py REPORT.json OUT.png
"""
import json
import sys
from pathlib import Path


COLORS = {"hermipy-unicorn": "#1f77b4", "hermipy-unicorn-norewrite": "#9ecae1", "hermipy-kvm": "#d62728",
          "hermipy-kvm-norewrite": "#f4a09c", "qemu-user": "#9467bd", "qiling": "#8c564b"}


def color(runner: str, i: int) -> str:
    return COLORS.get(runner, f"C{i % 10}")


def draw(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(report["results"])
    runners = [r for r in report["runners"] if r != "native" and
               any(report["results"][w][r]["status"] != "n/a" for w in workloads)]
    height = 0.8 / max(len(runners), 1)
    fig, ax = plt.subplots(figsize=(10, 1.6 + len(workloads) * (0.1 * len(runners) + 0.12)))
    failures = []
    for i, runner in enumerate(runners):
        ys, ratios, failed = [], [], []
        for j, name in enumerate(workloads):
            cell = report["results"][name].get(runner, {})
            y = j + (i - (len(runners) - 1) / 2) * height
            if "ratio" in cell:
                ys.append(y)
                ratios.append(cell["ratio"])
            elif cell.get("status") == "failed":
                failed.append(y)
        ax.barh(ys, ratios, height=height, color=color(runner, i), label=runner)
        failures += [(y, runner, i) for y in failed]
    ax.set_xscale("log")
    left = min(ax.get_xlim()[0], 0.5)
    ax.set_xlim(left=left)
    for y, runner, i in failures:
        ax.text(left * 1.05, y, f"{runner}: failed", va="center", fontsize=6, color=color(runner, i))
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(workloads)))
    ax.set_yticklabels(workloads)
    ax.invert_yaxis()
    ax.set_xlabel("wall time / native wall time (median, log scale; lower is better)")
    m = report["machine"]
    kvm = m["kvm"].split(" ")[0]
    ax.set_title(f"hermipy benchmarks {report['date']}: {m['cpu']}, {m['cores']} cores, /dev/kvm {kvm}", fontsize=9)
    ax.grid(axis="x", which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    draw(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))
