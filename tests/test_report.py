"""The report's comparability rule: a run stands beside a published number only if it ran the
papers' recipe to the end on the real data with the papers' split; others say why not."""

from __future__ import annotations

import pytest

from cxrlib.config import load_config
from cxrlib.runs import RunFolder, read_run, settings_record


def _finished_run(config, dataset: str, source: str, auc: float) -> RunFolder:
    """A run folder as training leaves it (settings and metrics), without training."""
    run = RunFolder.of(config, dataset)
    data = {"dataset": dataset, "source": source, "split": config.data.split}
    runtime = {
        "world_size": 2,
        "per_device_batch": 16,
        "grad_accum": 1,
        "global_batch": 32,
        "precision": "bf16",
    }
    run.write_settings(settings_record(config, data, runtime))
    run.write_metrics(
        {
            "classes": ["a", "b"],
            "test": {"mean_auc": auc},
            "test_ci": {"mean_low": auc - 1, "mean_high": auc + 1},
            "best_epoch": 1,
        }
    )
    return run


@pytest.fixture
def runs(isolated_outputs):
    paper = load_config("paper")
    return {
        "comparable": _finished_run(paper, "cxr14", "real", 77.11),
        "short": _finished_run(
            paper.override(model="chexnet_tiny", epochs=100), "cxr14", "real", 70.22
        ),
        "patient": _finished_run(
            paper.override(model="resnet50", split="patient"), "cxr14", "real", 71.33
        ),
        "phantom": _finished_run(paper.override(model="conformer_tiny"), "cxr11", "phantom", 60.44),
    }


def test_only_a_paper_recipe_run_on_real_data_is_comparable(runs):
    reasons = {k: read_run(r.path).not_comparable_because() for k, r in runs.items()}
    assert reasons["comparable"] is None
    assert reasons["short"] == "recipe differs: EPOCHS 100 (paper 300)"
    assert reasons["patient"].startswith("patient split")
    assert reasons["phantom"] == "phantom data"


def test_report_puts_only_comparable_runs_beside_published_numbers(runs):
    from cxrlib.report import build_report

    text = build_report(load_config("paper"))
    rows = {
        line.split("|")[2].strip(): line
        for line in text.splitlines()
        if line.startswith("| CXR") and "[" in line
    }
    assert "78.47" in rows["ctranscnn_tiny"] and "-1.36" in rows["ctranscnn_tiny"]
    assert "76.8" not in rows["chexnet_tiny"] and "EPOCHS 100 (paper 300)" in rows["chexnet_tiny"]
    # the patient-split run is not in the paper-split table; the phantom one says why not
    assert "resnet50" not in rows
    assert "phantom data" in rows["conformer_tiny"] and "–" in rows["conformer_tiny"]
    computed = text[text.index("## How each run was computed") :].splitlines()
    line = next(x for x in computed if "| ctranscnn_tiny " in x)
    assert [c.strip() for c in line.split("|")[7:12]] == ["2", "16", "1", "32", "bf16"]
