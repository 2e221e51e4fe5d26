"""End to end: ./run_all.sh runs every notebook in the smoke profile and writes what each
promises. Selected with ``-m e2e`` (CI runs it after the fast suite)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT


def _tables(*names: str) -> list[str]:
    return [f"tables/{name}.{ext}" for name in names for ext in ("csv", "md")]


def _figures(*names: str) -> list[str]:
    """Each figure as a 300-dpi PNG and its vector PDF twin (cxrlib.paper.outputs.save_figure)."""
    return [f"figures/{name}.{ext}" for name in names for ext in ("png", "pdf")]


def _paper_items(notebook: str) -> list[str]:
    """The files of the paper items that ``notebook`` regenerates (cxrlib.paper.items)."""
    from cxrlib.paper.items import ITEMS

    return [f for item in ITEMS if notebook in item.notebook for f in item.paths("paper")]


#: What each notebook promises, relative to results/<profile>/: the files of its paper items
#: (one list, cxrlib.paper.items) and its other outputs.
PROMISED = {
    "00_environment": _tables("environment"),
    "01_data_preparation": _paper_items("01_data_preparation")
    + _tables("split_sizes", "class_positives_cxr14", "class_positives_cxr11", "leakage")
    + _figures(
        "class_positives",
        "cooccurrence_cxr14",
        "cooccurrence_cxr11",
        "samples_cxr14",
        "samples_cxr11",
    ),
    "02_model_construction": _tables(
        "model_summary",
        "model_summary_as_trained",
        "model_switches",
        "ablation_parameter_differences",
    ),
    **{
        notebook: _paper_items(notebook)
        + _tables(f"auc_{ds}_paper", f"metrics_{ds}_paper")
        + _figures(
            f"training_{ds}_paper",
            f"roc_{ds}_paper_ctranscnn_tiny",
            f"roc_{ds}_paper_chexnet_tiny",
        )
        for notebook, ds in (("03_train_cxr11", "cxr11"), ("04_train_cxr14", "cxr14"))
    },
    "05_ablations": _paper_items("05_ablations")
    + _figures(
        *(f"ablation_{f}_{ds}_paper" for f in ("ctranscnn", "chexnet") for ds in ("cxr11", "cxr14"))
    ),
    "06_baselines": _paper_items("06_baselines")
    + _figures(*(f"radar_baselines_{ds}_paper" for ds in ("cxr11", "cxr14"))),
    "07_gradcam": _paper_items("07_gradcam"),
    "08_report": ["REPORT.md"],
}


def test_every_notebook_declares_its_outputs():
    names = {p.stem for p in (PROJECT_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    assert names == set(PROMISED), "add each notebook's promised files to PROMISED"


@pytest.mark.e2e
@pytest.mark.slow  # so that the inner loop, -m "not slow" (which replaces "not e2e"), leaves it out
def test_run_all_smoke_end_to_end(isolated_outputs):
    env = {**os.environ, "CXRLIB_PYTHON": sys.executable}
    result = subprocess.run(
        ["bash", str(PROJECT_ROOT / "run_all.sh"), "--profile", "smoke"],
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    results = isolated_outputs / "results" / "smoke"
    for notebook, files in PROMISED.items():
        assert (results / "executed" / f"{notebook}.ipynb").is_file()
        for rel in files:
            assert (results / rel).is_file(), f"{notebook} did not write {rel}"
    table = (results / "tables" / "environment.md").read_text()
    assert "phantom data, not comparable with the paper" in table
    _check_report(results, isolated_outputs / "runs" / "smoke")


def _check_report(results, runs):
    """The report names every paper item with its file, a value for each finished run, and
    puts no phantom run beside a published number."""
    import json

    from cxrlib.paper.items import ITEMS

    report = (results / "REPORT.md").read_text()
    for item in ITEMS:
        assert item.item in report and all(f"`{f}`" in report for f in item.paths("paper"))
    assert "| yes |" in report and "| no |" not in report  # every item was produced
    finished = sorted(runs.glob("*/paper/*/seed0/metrics.json"))
    assert len(finished) >= 40  # both datasets: variants, baselines and our two models
    start = report.index("## Mean test AUC, ours beside the papers'")
    beside = report[start : report.index("\n## ", start + 1)].splitlines()
    for path in finished:
        seeds = sorted(path.parent.parent.glob("seed*/metrics.json"))
        mean_auc = sum(json.loads(p.read_text())["test"]["mean_auc"] for p in seeds) / len(seeds)
        model, dataset = path.parts[-3], path.parts[-5].upper()
        rows = [line for line in beside if f"| {dataset} " in line and f"| {model} " in line]
        cell = rf"\|\s*{mean_auc:.2f}\s*\|"  # a cell holding the value, however padded
        assert any(re.search(cell, line) for line in rows), (path, rows)
        # a phantom run is listed with its reason, never beside a published number
        assert all("phantom data" in line for line in rows), path
        if model in ("ctranscnn_tiny", "chexnet_tiny"):  # the smoke profile's two seeds
            assert len(seeds) == 2 and all(re.search(r"\|\s*0, 1\s*\|", x) for x in rows), rows
    assert "78.47" in report  # the published CTransCNN CXR14 mean AUC, for reference
