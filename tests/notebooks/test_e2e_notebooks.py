"""End to end: ./run_all.sh runs every notebook in the smoke profile and writes what each
promises. Selected with ``-m e2e`` (CI runs it after the fast suite)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT

NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _dataset_of(path) -> tuple[str, ...]:
    """The notebook's ``DATASET`` parameter (03, 04), else both papers' datasets."""
    import ast

    import nbformat

    from cxrlib.data.datasets import PAPER_DATASETS

    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    for node in ast.parse(cell.source).body:
        if node.targets[0].id == "DATASET":
            return (ast.literal_eval(node.value),)
    return PAPER_DATASETS


def promised(path) -> list[str]:
    """What a notebook promises in the smoke profile, relative to results/smoke/: the files
    its outputs name (cxrlib.paper.items.OUTPUTS, the one place of every name)."""
    from cxrlib.paper.items import MAIN_MODELS, STUDIES, promised_files

    domains = {"dataset": _dataset_of(path), "split": ("paper",), "model": MAIN_MODELS}
    return promised_files(path.stem, "smoke", **domains, study=tuple(STUDIES))


def test_every_notebook_promises_files():
    assert NOTEBOOKS and all(promised(path) for path in NOTEBOOKS)


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
    for path in NOTEBOOKS:
        assert (results / "executed" / path.name).is_file()
        for rel in promised(path):
            assert (results / rel).is_file(), f"{path.stem} did not write {rel}"
    table = (results / "tables" / "environment.md").read_text()
    assert "phantom data, not comparable with the paper" in table
    _check_report(results, isolated_outputs / "runs" / "smoke")
    _check_report_html(results)


def _check_report_html(results):
    """REPORT.html opens in headless Chromium: the phantom warning first, every figure
    embedded and shown, nothing wider than a laptop screen."""
    from tests.browser import check_pages

    html = (results / "REPORT.html").read_text()
    assert 'src="figures/' not in html and html.count("data:image/png;base64,") >= 10
    assert html.index('class="warning"') < html.index("<h1")
    shots = {"REPORT.html": results.parent.parent / "report_screenshot.png"}  # beside, not in
    (found,) = check_pages(results, ["REPORT.html"], shots, width=1366).values()
    assert not found["broken"] and not found["failed"] and found["overflow"] <= 0, found


def _check_report(results, runs):
    """The report names every paper item with its file, a value for each finished run, and
    puts no phantom run beside a published number."""
    import json

    from cxrlib.paper.items import ITEMS
    from cxrlib.train.layout import RunKey

    report = (results / "REPORT.md").read_text()
    for item in ITEMS:
        assert item.item in report and all(f"`{f}`" in report for f in item.paths("paper"))
    items = report[: report.index("## Mean test AUC")]
    assert re.search(r"\|\s*yes\s*\|", items) and not re.search(r"\|\s*no\s*\|", items)

    finished = [f / "metrics.json" for f in RunKey.started(runs.parent, "smoke")]
    first = [RunKey.from_folder(p.parent) for p in finished if p.is_file()]
    finished = [
        k.folder(runs.parent) / "metrics.json" for k in first if k.seed == 0 and k.split == "paper"
    ]
    assert len(finished) >= 40  # both datasets: variants, baselines and our two models
    start = report.index("## Mean test AUC, ours beside the papers'")
    section = report[start : report.index("\n## ", start + 1)]
    beside = section.splitlines()
    assert max(len(line) for line in beside if line.startswith("|")) <= 160
    reasons = dict(re.findall(r"^- \*\*(\w)\*\*: (.+)$", section, re.M))
    for path in finished:
        key = RunKey.from_folder(path.parent)
        seeds = [
            key.with_seed(k).folder(runs.parent) / "metrics.json"
            for k in range(10)
            if (key.with_seed(k).folder(runs.parent) / "metrics.json").is_file()
        ]
        mean_auc = sum(json.loads(p.read_text())["test"]["mean_auc"] for p in seeds) / len(seeds)
        model, dataset = key.model, key.dataset.upper()
        rows = [line for line in beside if f"| {dataset} " in line and f"| {model} " in line]
        cell = rf"\|\s*{mean_auc:.2f}( ± \d+\.\d\d)?\s*\|"  # the mean, ± sd with seeds
        assert any(re.search(cell, line) for line in rows), (path, rows)
        # a phantom run is listed with its reason (a letter, said once below), never a Δ
        for line in rows:
            marker = line.strip().strip("|").split("|")[-1].strip()
            assert "phantom data" in reasons[marker], (path, line)
        if model in ("ctranscnn_tiny", "chexnet_tiny"):  # the smoke profile's two seeds
            assert len(seeds) == 2 and all(re.search(r"\|\s*2 \(0, 1\)\s*\|", x) for x in rows)
    assert not re.search(r"\bnan\b", report.lower()), "a missing value reads –, never nan"
    assert "78.47" in report  # the published CTransCNN CXR14 mean AUC, for reference
