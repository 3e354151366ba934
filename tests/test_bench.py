"""The benchmark suite (bench/run.py) runs end to end at tiny sizes. No timing is asserted:
a loaded machine would make that flaky; the numbers live in bench/results/."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from helpers import REPO


def _run_module():
    spec = importlib.util.spec_from_file_location("bench_run", REPO / "bench" / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_suite_runs_tiny_and_writes_its_table(tmp_path):
    run = _run_module()
    md = run.main(["--quick", "--only", "loop,kernels,loader,fastpath", "--out", str(tmp_path), "--name", "smoke"])
    text = md.read_text()
    for heading in ("## Training-loop overhead", "## From-scratch kernels", "## GPU-resident loader",
                    "## The GPU fast path"):
        assert heading in text
    result = json.loads((tmp_path / "smoke.json").read_text())
    parts = result["parts"]
    assert set(parts) == {"loop", "kernels", "loader", "fastpath"} and result["machine"]["cpu_count"] >= 1
    assert parts["loop"]["ratio"] > 0
    assert {"box IoU", "NMS", "softmax", "Adam step"} <= set(parts["kernels"]["cases"])
    assert all(s["ratio"] > 0 for case in parts["kernels"]["cases"].values() for s in case["settings"].values())
    assert all(row["ratio"] > 0 and row["batches_per_epoch"] == 2 for row in parts["loader"]["loaders"].values())
    timed = [r for r in parts["fastpath"]["rows"] if "skipped" not in r]
    assert timed[0]["speedup_vs_baseline"] == 1.0 and all(r["seconds_per_epoch"] > 0 for r in timed)
    assert {r["skipped"] for r in parts["fastpath"]["rows"] if "skipped" in r} <= {
        "CUDA only", "off on CPU (--compile-on-cpu to time it)"}


def test_only_rejects_unknown_parts(capsys):
    run = _run_module()
    with pytest.raises(SystemExit) as exc:
        run.parse(["--only", "loop,bogus"])
    assert exc.value.code == 2
    assert "unknown part(s) bogus" in capsys.readouterr().err
