"""Smoke test of the benchmark harness (benchmarks/__main__.py): one workload, native and hermipy-unicorn,
--quick. It checks that the harness produces its table and JSON with a ratio; figures are never asserted."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_hello_native_vs_unicorn(tmp_path):
    out_json, out_md = tmp_path / "r.json", tmp_path / "r.md"
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--runs", "2", "--only", "hello",
                           "--runners", "native,hermipy-unicorn", "--no-install",
                           "--json", str(out_json), "--markdown", str(out_md)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out_json.read_text())
    assert list(report["runners"]) == ["native", "hermipy-unicorn"]
    cells = report["results"]["hello"]
    assert cells["native"]["status"] == "ok" and cells["native"]["ratio"] == 1.0
    assert cells["hermipy-unicorn"]["status"] == "ok", cells["hermipy-unicorn"]
    assert cells["hermipy-unicorn"]["ratio"] > 0 and cells["hermipy-unicorn"]["rss_kib"] > 0
    assert len(cells["hermipy-unicorn"]["times"]) == 2
    table = out_md.read_text()
    assert "| hello | " in table and "x |" in table and table in proc.stdout
    assert report["machine"]["cores"] and report["machine"]["kernel"].startswith("Linux")
