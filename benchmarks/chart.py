"""The benchmark chart: ratio to native per workload and runner, log scale, one PNG.

Imported by the harness when matplotlib is importable there, else run by the harness' venv:
    python benchmarks/chart.py REPORT.json OUT.png
"""
import json
import sys
from pathlib import Path


def draw(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runners = [r for r in report["runners"] if r != "native"]
    workloads = list(report["results"])
    height = 0.8 / max(len(runners), 1)
    fig, ax = plt.subplots(figsize=(11, 0.45 * len(workloads) * max(len(runners), 1) ** 0.5 + 2.5))
    cmap = plt.get_cmap("tab10")
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
        ax.barh(ys, ratios, height=height, color=cmap(i % 10), label=runner)
        for y in failed:
            ax.text(1.02, y, "failed", va="center", fontsize=6, color=cmap(i % 10))
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yticks(range(len(workloads)))
    ax.set_yticklabels(workloads)
    ax.invert_yaxis()
    ax.set_xlabel("wall time / native wall time (median, log scale; lower is better)")
    m = report["machine"]
    ax.set_title(f"hermipy benchmarks {report['date']}: {m['cpu']}, {m['cores']} cores, /dev/kvm {m['kvm'].split(' ')[0]}",
                 fontsize=9)
    ax.grid(axis="x", which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    draw(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))
