"""The first-GPU benchmark's plumbing, on the CPU (its figures mean nothing here): it must work
the first time it meets a GPU, in a short lent session -- steps in priority order, a budget
that skips what no longer fits, a failure recorded without stopping the rest, figures written
after every step."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from cxrlib.paper.costs import DEVICE_PEAKS, device_peaks

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_first.py"


def _module():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import gpu_first
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return gpu_first


@pytest.mark.slow
def test_gpu_first_runs_every_step_in_quick_mode(tmp_path):
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    record = json.loads(next(tmp_path.glob("gpu_first_*.json")).read_text())
    assert {"environment", "date", "steps", "training"} <= set(record)
    assert record["environment"]["torch"] and record["environment"]["cxrlib"]
    status = {s["step"]: s["status"] for s in record["steps"]}
    assert all(v == "ok" for v in status.values()), status
    modes = {(r["model"], r["mode"]) for r in record["training"]}
    assert {("ctranscnn_tiny", "bf16+channels_last"), ("ctranscnn_tiny", "fp32"),
            ("ctranscnn_tiny", "bf16+compile"), ("chexnet_tiny", "fp32")} <= modes  # fmt: skip
    e2e = next(s for s in record["steps"] if s["step"] == "end_to_end")["result"]
    assert e2e["second_epoch_s"] > 0 and e2e["runtime"]["precision"] == "fp32"
    log = (tmp_path / "gpu_first.log").read_text()
    assert "start flex_check" in log and "profile of the step" in log


def test_a_small_budget_skips_what_does_not_fit_and_the_json_is_always_there(tmp_path):
    gpu_first = _module()
    args = SimpleNamespace(out=str(tmp_path), budget_seconds=30, quick=True)
    bench = gpu_first.Bench(args)
    bench.step("first", 1, lambda: {"fine": True})
    bench.step("broken", 1, lambda: 1 / 0)
    bench.step("after", 1, lambda: "still runs")
    bench.step("too long", 600, lambda: pytest.fail("a step that does not fit must not run"))
    record = json.loads(next(tmp_path.glob("gpu_first_*.json")).read_text())
    steps = {s["step"]: s for s in record["steps"]}
    assert steps["first"]["status"] == "ok" and steps["after"]["result"] == "still runs"
    assert steps["broken"]["status"] == "failed" and "ZeroDivisionError" in steps["broken"]["error"]
    assert steps["too long"]["status"] == "skipped" and "600" in steps["too long"]["why"]
    assert "FAILED broken" in (tmp_path / "gpu_first.log").read_text()


@pytest.mark.parametrize(
    ("name", "entry"),
    [
        ("NVIDIA H100 80GB HBM3", "H100 SXM"),
        ("NVIDIA H100 PCIe", "H100 PCIe"),
        ("NVIDIA H100 NVL", "H100 NVL"),
        ("NVIDIA H200", "H200"),
        ("NVIDIA H200 NVL", "H200 NVL"),
        ("NVIDIA A100-SXM4-40GB", "A100"),
        ("NVIDIA A100 80GB PCIe", "A100"),
        ("NVIDIA L4", "L4"),
        ("NVIDIA L40S", "L40S"),
        ("Tesla T4", "T4"),
        ("NVIDIA GeForce RTX 4090", "unknown"),
    ],
)
def test_device_names_map_to_their_exact_peaks(name, entry):
    """Exact names, not substrings: "L4" is not "L40S", an NVL is not an SXM part."""
    key, peaks = device_peaks(name)
    assert key == entry
    assert peaks == DEVICE_PEAKS.get(entry, {})


def test_a_t4_has_no_bf16_peak_so_it_is_timed_in_fp16():
    assert "bf16" not in DEVICE_PEAKS["T4"] and DEVICE_PEAKS["T4"]["fp16"] == 65.0


@pytest.mark.slow  # one interpreter with torch per script
@pytest.mark.parametrize("script", sorted((ROOT / "benchmarks").glob("*.py")), ids=lambda p: p.name)
def test_every_benchmark_imports_what_it_uses_and_explains_itself(script):
    """A benchmark that no longer imports (an API it used was renamed) fails here, not on the
    day someone needs its figures."""
    done = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout


def test_the_comparison_with_the_authors_code_names_what_it_needs(tmp_path):
    """Without a clone of the authors' repository the benchmark stops with the address to
    clone, before importing anything of theirs."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import vs_authors
    finally:
        sys.path.remove(str(SCRIPT.parent))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match=r"clone of https://github\.com/wuliwuxin/CTransCNN"):
        vs_authors.authors_package(tmp_path / "empty", tmp_path / "layout")
    assert (tmp_path / "layout" / "model" / "models" / "builder.py").is_file()  # the shims


def test_the_smoke_chain_says_which_cells_took_the_time(tmp_path):
    """Per notebook, the code cells of a second or more by papermill's own durations, the
    longest first, named by their first line of code (comments skipped)."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import smoke_chain
    finally:
        sys.path.remove(str(SCRIPT.parent))

    def cell(kind: str, source: str, seconds: float | None) -> dict:
        meta = {} if seconds is None else {"papermill": {"duration": seconds}}
        return {"cell_type": kind, "source": source, "metadata": meta}

    notebook = tmp_path / "05_ablations.ipynb"
    notebook.write_text(json.dumps({"cells": [
        cell("markdown", "# 05", None),
        cell("code", "# the parameters\nPROFILE = None", 0.01),
        cell("code", "nb.ablation_hours(s)", 2.5),
        cell("code", "# train\nruns = nb.train_ablations(s)", 122.46),
        cell("code", "nb.table3(s, runs)", 0.4),
    ]}))  # fmt: skip
    assert smoke_chain.cell_seconds(notebook) == [
        {"cell": "runs = nb.train_ablations(s)", "seconds": 122.5},
        {"cell": "nb.ablation_hours(s)", "seconds": 2.5},
    ]
