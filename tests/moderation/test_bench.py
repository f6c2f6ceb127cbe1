"""The moderation micro-benchmark runs and writes its report."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "moderation.py"


def test_benchmark_runs_quick(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_moderation", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "moderation.json"
    report = module.run_benchmark(quick=True, out=out)
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    cases = report["microseconds_per_message"]
    assert "check_input (all input rules)" in cases
    assert all(c["best_us"] > 0 for c in cases.values())
    assert 0 < report["allowed"] < report["messages"]
    assert "µs" in capsys.readouterr().out
