"""What ``hermipy sweep`` reports: the summary of its results, and the terminal, JSON, JUnit XML and HTML forms
of it; and what changed since a baseline (an earlier sweep's JSON).

The JSON document (schema 1) and what each summary field means are in docs/sweep.md. The HTML report is one
self-contained file (inline CSS and a few lines of script to sort tables; nothing fetched).
"""
import html
import json
import time
from collections import Counter, defaultdict

SCHEMA = 1
BLOCKING = {"unimplemented", "refused"}
CONSEQUENCES = {"output", "signal"}      # what a missing syscall may cause further on


def missing_syscalls(result: dict) -> set[str]:
    return {name for cause in result.get("causes", []) if cause["kind"] in BLOCKING for name in cause["syscalls"]}


def summarize(results: list[dict]) -> dict:
    """Counts per variant, causes, per-application pass/fail, and the syscall profile across the corpus."""
    variants = list(dict.fromkeys(r["variant"] for r in results))
    runs = {v: Counter() for v in variants}
    causes: dict[str, Counter] = defaultdict(Counter)
    apps: dict[str, dict[str, Counter]] = defaultdict(lambda: {v: Counter() for v in variants})
    for r in results:
        runs[r["variant"]][r["outcome"]] += 1
        apps[r["app"]][r["variant"]][r["outcome"]] += 1
        if r["outcome"] == "fail":
            causes[r["cause"]][r["variant"]] += 1
    usage: dict[str, dict] = {}
    for r in results:
        for name, row in r.get("stats", {}).get("syscalls", {}).items():
            into = usage.setdefault(name, {"name": name, "apps": set(), "runs": 0, "calls": 0, "seconds": 0.0,
                                           "errors": 0})
            into["apps"].add(r["app"])
            into["runs"] += 1
            into["calls"] += row["count"]
            into["seconds"] += row["seconds"]
            into["errors"] += sum(row["errors"].values())
    syscalls = sorted(({**u, "apps": len(u["apps"]), "seconds": round(u["seconds"], 6)} for u in usage.values()),
                      key=lambda u: (-u["apps"], -u["calls"], u["name"]))
    return {"runs": {v: dict(c) for v, c in runs.items()},
            "causes": {k: dict(c) for k, c in sorted(causes.items(), key=lambda kv: -sum(kv[1].values()))},
            "apps": {a: {v: dict(c) for v, c in per.items()} for a, per in sorted(apps.items())},
            "syscalls": syscalls, "missing": _missing(results)}


def _missing(results: list[dict]) -> list[dict]:
    """Each unimplemented or refused syscall: the applications whose runs failed calling it, and those it alone
    blocks (every failing run of the application misses this syscall and no other, and failed for no other
    reason than what a missing syscall leads to)."""
    kinds: dict[str, str] = {}
    failed: dict[str, set] = defaultdict(set)
    runs: Counter = Counter()
    by_app: dict[str, list[dict]] = defaultdict(list)
    for r in results:
        if r["outcome"] != "fail":
            continue
        by_app[r["app"]].append(r)
        for cause in r["causes"]:
            if cause["kind"] in BLOCKING:
                for name in cause["syscalls"]:
                    kinds.setdefault(name, cause["kind"])
                    failed[name].add(r["app"])
                    runs[name] += 1
    unblocks: dict[str, list] = defaultdict(list)
    for app, fails in by_app.items():
        alone = {frozenset(missing_syscalls(r)) for r in fails}
        if len(alone) == 1 and len(only := next(iter(alone))) == 1 and \
                all({c["kind"] for c in r["causes"]} <= BLOCKING | CONSEQUENCES for r in fails):
            unblocks[next(iter(only))].append(app)
    rows = [{"name": name, "kind": kinds[name], "runs": runs[name], "apps": sorted(failed[name]),
             "unblocks": sorted(unblocks[name])} for name in kinds]
    return sorted(rows, key=lambda row: (-len(row["unblocks"]), -len(row["apps"]), row["name"]))


def document(corpus, variants: list[str], jobs: int, started: float, seconds: float, results: list[dict]) -> dict:
    """The JSON report (schema in docs/sweep.md)."""
    from hermipy import __version__
    return {"schema": SCHEMA, "hermipy": __version__,
            "corpus": {"path": corpus.path, "name": corpus.name, "description": corpus.description},
            "variants": variants, "jobs": jobs,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "seconds": round(seconds, 3),
            "summary": summarize(results), "results": results}


# -- terminal ---------------------------------------------------------------------------------------------
def terminal(doc: dict, show: int) -> str:
    summary, results = doc["summary"], doc["results"]
    cases = len({r["case"] for r in results})
    seconds = doc["seconds"]
    out = [f"hermipy sweep {doc['corpus']['name']}: {len(results)} runs ({cases} cases x "
           f"{', '.join(doc['variants'])}) in {seconds:.1f} s ({len(results) / max(seconds, 1e-9):.2f} runs/s, "
           f"-j {doc['jobs']})"]
    width = max((len(v) for v in doc["variants"]), default=0)
    for variant, counts in summary["runs"].items():
        out.append(f"  {variant:<{width}}  {counts.get('pass', 0):5} pass  {counts.get('fail', 0):5} fail  "
                   f"{counts.get('skip', 0):5} skipped")
    if summary["causes"]:
        out.append("failures by cause: " + "; ".join(
            f"{cause} {sum(per.values())} (" + ", ".join(f"{v} {n}" for v, n in per.items()) + ")"
            for cause, per in summary["causes"].items()))
    if summary["missing"]:
        out.append("missing syscalls (failing apps that call them; apps they alone block):")
        for row in summary["missing"][:20]:
            out.append(f"  {row['name']:<20} {row['kind']:<13} {len(row['apps']):4} apps  "
                       f"unblocks {len(row['unblocks'])}" + (f": {' '.join(row['unblocks'][:10])}"
                                                             if row["unblocks"] else ""))
    failures = [r for r in results if r["outcome"] == "fail"]
    for r in failures[:show]:
        first = r["causes"][0]
        out.append(f"== {r['variant']} {r['case']}: {first['kind']}: {first.get('detail', '')}")
        if first.get("diff"):
            out.append("   " + first["diff"].replace("\n", "\n   "))
    if len(failures) > show:
        out.append(f"({len(failures) - show} more failures: --show N, or the JSON and HTML reports)")
    if "baseline" in doc:
        changes = doc["baseline"]
        out.append(f"against {changes['path']}: {len(changes['newly_failing'])} newly failing, "
                   f"{len(changes['newly_passing'])} newly passing")
        out += [f"  newly failing: {c['variant']} {c['case']} ({c['cause']})" for c in changes["newly_failing"]]
        out += [f"  newly passing: {c['variant']} {c['case']}" for c in changes["newly_passing"]]
    return "\n".join(out) + "\n"


def progress_line(counts: Counter, done: int, total: int, elapsed: float) -> str:
    eta = elapsed / done * (total - done) if done else 0.0
    return (f"\r[{done}/{total}] {counts['pass']} pass, {counts['fail']} fail, {counts['skip']} skipped; "
            f"{elapsed:.0f} s, ETA {eta:.0f} s ")


# -- HTML -------------------------------------------------------------------------------------------------
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; cursor: pointer; user-select: none; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.pass { background: #d9f2d9; } .fail { background: #f9d6d6; } .skip { background: #eee; color: #777; }
.bar { display: inline-block; height: 0.8em; background: #c0392b; vertical-align: middle; }
.bar.use { background: #2e86c1; }
pre { background: #f7f7f7; padding: 0.5em; overflow-x: auto; margin: 0.3em 0; }
details { margin: 0.3em 0; } summary { cursor: pointer; }
"""
SCRIPT = """
document.querySelectorAll("table.sortable th").forEach((th, column) => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0], up = th.dataset.up !== "1";
  th.dataset.up = up ? "1" : "0";
  const key = row => { const c = row.cells[column]; const v = c.dataset.v ?? c.textContent;
                       return isNaN(parseFloat(v)) ? v : parseFloat(v); };
  [...body.rows].sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (up ? 1 : -1))
    .forEach(row => body.appendChild(row));
}));
"""


def _e(value) -> str:
    return html.escape(str(value))


def _bar(value: float, most: float, kind: str = "") -> str:
    width = 0 if not most else max(1, round(200 * value / most))
    return f'<span class="bar {kind}" style="width:{width}px"></span>'


def _table(headers: list[str], rows: list[list[str]], sortable: bool = True) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    return (f'<table class="{"sortable" if sortable else ""}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def _cell(value, css: str = "", sort=None) -> str:
    attrs = (f' class="{css}"' if css else "") + (f' data-v="{_e(sort)}"' if sort is not None else "")
    return f"<td{attrs}>{_e(value)}</td>"


def render_html(doc: dict) -> str:
    summary, results, variants = doc["summary"], doc["results"], doc["variants"]
    parts = [f"<h1>hermipy sweep: {_e(doc['corpus']['name'])}</h1>",
             f"<p>{_e(doc['corpus']['description'])}</p>",
             f"<p>hermipy {_e(doc['hermipy'])}, started {_e(doc['started'])}, {len(results)} runs in "
             f"{doc['seconds']:.1f} s with {doc['jobs']} jobs; corpus <code>{_e(doc['corpus']['path'])}</code>.</p>",
             "<h2>Summary</h2>",
             _table(["variant", "pass", "fail", "skipped"],
                    [[_cell(v), _cell(c.get("pass", 0), "n pass"), _cell(c.get("fail", 0), "n fail"),
                      _cell(c.get("skip", 0), "n skip")] for v, c in summary["runs"].items()], sortable=False)]
    if summary["causes"]:
        most = max(sum(per.values()) for per in summary["causes"].values())
        parts += ["<h2>Failures by cause</h2>", _table(
            ["cause", *variants, "all", ""],
            [[_cell(cause), *(_cell(per.get(v, 0), "n") for v in variants), _cell(sum(per.values()), "n"),
              f"<td>{_bar(sum(per.values()), most)}</td>"] for cause, per in summary["causes"].items()])]
    if summary["missing"]:
        most = max(len(row["apps"]) for row in summary["missing"])
        parts += ["<h2>Missing syscalls</h2><p>Unimplemented syscalls and refused ones (ENOSYS from a handler "
                  "for a flag or mode it does not offer) seen in failing runs; <em>unblocks</em>: the applications "
                  "whose only missing syscall it is.</p>", _table(
                      ["syscall", "kind", "failing apps", "", "unblocks", "apps"],
                      [[_cell(row["name"]), _cell(row["kind"]), _cell(len(row["apps"]), "n"),
                        f"<td>{_bar(len(row['apps']), most)}</td>", _cell(len(row["unblocks"]), "n"),
                        _cell(" ".join(row["unblocks"] or row["apps"]))] for row in summary["missing"]])]
    app_rows = []
    for app, per in summary["apps"].items():
        row = [_cell(app)]
        for v in variants:
            c = per.get(v, {})
            ran = c.get("pass", 0) + c.get("fail", 0)
            css = "skip" if not ran else "fail" if c.get("fail") else "pass"
            row.append(_cell(f"{c.get('pass', 0)}/{ran}" if ran else "skipped", css,
                             c.get("pass", 0) - c.get("fail", 0)))
        app_rows.append(row)
    parts += ["<h2>Applications</h2><p>Identical runs out of those compared, per variant (click a header to "
              "sort).</p>", _table(["application", *variants], app_rows)]
    if summary["syscalls"]:
        top = summary["syscalls"][:80]
        most = max(row["apps"] for row in top)
        parts += ["<h2>Syscalls that matter most</h2><p>By the number of applications calling them (from "
                  "<code>hermipy run --stats</code>); calls and time in hermipy's kernel summed over every run.</p>",
                  _table(["syscall", "apps", "", "runs", "calls", "errors", "kernel s"],
                         [[_cell(row["name"]), _cell(row["apps"], "n"), f"<td>{_bar(row['apps'], most, 'use')}</td>",
                           _cell(row["runs"], "n"), _cell(row["calls"], "n"), _cell(row["errors"], "n"),
                           _cell(f"{row['seconds']:.3f}", "n")] for row in top])]
    case_rows = []
    for r in results:
        detail = r.get("detail") or (r["causes"][0].get("detail", "") if r.get("causes") else "")
        case_rows.append([_cell(r["case"]), _cell(r["app"]), _cell(r["variant"]), _cell(r["outcome"], r["outcome"]),
                          _cell(r.get("cause") or ""), _cell(detail),
                          _cell(r.get("hermipy", {}).get("seconds", ""), "n")])
    parts += ["<h2>Cases</h2>", _table(["case", "application", "variant", "outcome", "cause", "detail",
                                        "hermipy s"], case_rows)]
    failures = [r for r in results if r["outcome"] == "fail"]
    if failures:
        parts.append("<h2>Failures</h2>")
        for r in failures:
            first = r["causes"][0]
            parts.append(f"<details><summary><b>{_e(r['variant'])}</b> {_e(r['case'])}: {_e(first['kind'])}: "
                         f"{_e(first.get('detail', ''))}</summary><pre>{_e(' '.join(r['argv']))}</pre>"
                         f"<pre>{_e(first.get('diff', ''))}</pre>"
                         + (f"<details><summary>last {len(r['strace_tail'])} lines of its syscall trace</summary>"
                            f"<pre>{_e(chr(10).join(r['strace_tail']))}</pre></details>" if r.get("strace_tail") else "")
                         + "</details>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>hermipy sweep: {_e(doc['corpus']['name'])}</title><style>{STYLE}</style></head><body>"
            + "\n".join(parts) + f"<script>{SCRIPT}</script></body></html>\n")


def write_json(doc: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


def write_html(doc: dict, path: str) -> None:
    with open(path, "w") as f:
        f.write(render_html(doc))


# -- JUnit XML --------------------------------------------------------------------------------------------
def render_junit(doc: dict) -> str:
    """One <testsuite> per variant, one <testcase> per case (classname: corpus.app): a difference is a
    <failure> whose type is its cause, a skipped case <skipped> (the JUnit schema CI servers read)."""
    from xml.etree import ElementTree as ET
    corpus = doc["corpus"]["name"]
    runs = doc["results"]
    root = ET.Element("testsuites", name=f"hermipy sweep {corpus}", tests=str(len(runs)),
                      failures=str(sum(r["outcome"] == "fail" for r in runs)),
                      skipped=str(sum(r["outcome"] == "skip" for r in runs)), time=f"{doc['seconds']:.3f}")
    for variant in doc["variants"]:
        mine = [r for r in runs if r["variant"] == variant]
        suite = ET.SubElement(root, "testsuite", name=variant, tests=str(len(mine)),
                              failures=str(sum(r["outcome"] == "fail" for r in mine)),
                              skipped=str(sum(r["outcome"] == "skip" for r in mine)),
                              time=f"{sum(r.get('hermipy', {}).get('seconds', 0) for r in mine):.3f}")
        for r in mine:
            case = ET.SubElement(suite, "testcase", classname=f"{corpus}.{r['app']}", name=r["case"],
                                 time=f"{r.get('hermipy', {}).get('seconds', 0):.3f}")
            if r["outcome"] == "skip":
                ET.SubElement(case, "skipped", message=r.get("detail", ""))
            elif r["outcome"] == "fail":
                first = r["causes"][0]
                failure = ET.SubElement(case, "failure", type=first["kind"],
                                        message=f"{first['kind']}: {first.get('detail', '')}")
                failure.text = "\n\n".join([c.get("diff") or c.get("detail", "") for c in r["causes"]]
                                             + ["\n".join(r.get("strace_tail", []))])
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(doc: dict, path: str) -> None:
    with open(path, "w") as f:
        f.write(render_junit(doc))


# -- baseline ---------------------------------------------------------------------------------------------
def read_baseline(path: str) -> dict:
    """An earlier sweep's JSON report (schema 1); a clear error for anything else."""
    from hermipy.errors import HermipyError
    try:
        with open(path) as f:
            doc = json.load(f)
    except OSError as err:
        raise HermipyError(f"--baseline {path}: {err.strerror}", 2) from None
    except ValueError as err:
        raise HermipyError(f"--baseline {path}: not JSON ({err})", 2) from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or not isinstance(doc.get("results"), list):
        raise HermipyError(f"--baseline {path}: not a hermipy sweep report (schema {SCHEMA})", 2)
    return doc


def compare(baseline: dict, results: list[dict], path: str) -> dict:
    """What newly fails (passed in the baseline) and what newly passes (failed there), by case and variant."""
    before = {(r.get("case"), r.get("variant")): r.get("outcome") for r in baseline["results"]}
    newly_failing, newly_passing = [], []
    for r in results:
        was = before.get((r["case"], r["variant"]))
        if was == "pass" and r["outcome"] == "fail":
            newly_failing.append({"case": r["case"], "variant": r["variant"], "cause": r["cause"]})
        elif was == "fail" and r["outcome"] == "pass":
            newly_passing.append({"case": r["case"], "variant": r["variant"]})
    return {"path": path, "newly_failing": newly_failing, "newly_passing": newly_passing}
