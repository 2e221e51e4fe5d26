"""The report's comparability rule: a run stands beside a published number only if it ran the
papers' recipe to the end on the real data with the papers' split; others say why not."""

from __future__ import annotations

import pytest

from cxrlib.core.config import load_config
from cxrlib.paper.comparability import not_comparable_because
from cxrlib.train.layout import RunFolder
from cxrlib.train.record import settings_record, write_settings
from cxrlib.train.results import read_run, write_history, write_metrics


def _finished_run(
    config, dataset: str, source: str, auc: float, epochs_run: int | None = None
) -> RunFolder:
    """A run folder as training leaves it (settings and metrics), without training; it ran
    all its planned epochs unless ``epochs_run`` says otherwise."""
    run = RunFolder.of(config, dataset)
    data = {"dataset": dataset, "source": source, "split": config.data.split}
    runtime = {
        "world_size": 2,
        "per_device_batch": 16,
        "grad_accum": 1,
        "global_batch": 32,
        "precision": "bf16",
        "micro_batch": 16,
    }
    write_settings(run, settings_record(config, data, runtime))
    write_metrics(
        run,
        {
            "classes": ["a", "b"],
            "test": {"mean_auc": auc},
            "test_ci": {"mean_low": auc - 1, "mean_high": auc + 1},
            "best_epoch": 1,
            "epochs_run": config.train.epochs if epochs_run is None else epochs_run,
        },
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
        "cut short": _finished_run(
            paper.override(model="repvgg_a2"), "cxr14", "real", 72.55, epochs_run=2
        ),
    }


def test_only_a_paper_recipe_run_on_real_data_is_comparable(runs):
    reasons = {k: not_comparable_because(read_run(r.path)) for k, r in runs.items()}
    assert reasons["comparable"] is None
    assert reasons["short"] == "recipe differs: EPOCHS 100 (paper 300)"
    assert reasons["patient"].startswith("patient split")
    assert reasons["phantom"] == "phantom data"
    # a run that stopped after 2 of its 300 epochs (and was evaluated) stands beside nothing
    assert reasons["cut short"] == "ran 2 of 300 epochs"


@pytest.mark.slow
def test_report_puts_only_comparable_runs_beside_published_numbers(runs):
    from cxrlib.paper.report import build_report

    text = build_report(load_config("paper"))
    rows = {
        line.split("|")[2].strip(): line
        for line in text.splitlines()
        if line.startswith("| CXR") and "[" in line
    }
    assert "78.47" in rows["ctranscnn_tiny"] and "-1.36" in rows["ctranscnn_tiny"]
    assert beside_row(text, "ctranscnn_tiny")["not comparable"] == ""  # comparable: no letter
    chexnet = beside_row(text, "chexnet_tiny")
    assert chexnet["published"] == "76.80" and chexnet["Δ"] == "–"  # the paper's, no difference
    assert "EPOCHS 100 (paper 300)" in reason(text, chexnet)
    # the patient-split run is not in the paper-split table; the phantom one says why not
    assert "resnet50" not in rows
    beside = {r["model"]: r for r in markdown_table(text, "## Mean test AUC, ours beside")}
    assert beside["conformer_tiny"]["published"] == "81.45"  # a fact about the paper: shown
    assert beside["conformer_tiny"]["Δ"] == "–"  # but no difference for a phantom run
    assert reason(text, beside["conformer_tiny"]) == "phantom data"
    assert beside["repvgg_a2"]["published"] == "76.53" and beside["repvgg_a2"]["Δ"] == "–"
    assert "ran 2 of 300 epochs" in reason(text, beside["repvgg_a2"])
    assert "authors trained in fp32" in text
    table = text[text.index("## Mean test AUC") : text.index("## The tested checkpoint")]
    assert max(len(line) for line in table.splitlines() if line.startswith("|")) <= 160
    computed = markdown_table(text, "## How each run was computed")
    row = next(r for r in computed if r["model"] == "ctranscnn_tiny")
    assert row["batch"] == "32 = 2 × 16 × 1" and row["precision"] == "bf16"


def reason(text: str, row: dict[str, str]) -> str:
    """The reason a row of the main table is not comparable: its letter, said below it once."""
    section = text[text.index("## Mean test AUC") :]
    for line in section.splitlines():
        if line.startswith(f"- **{row['not comparable']}**: "):
            return line.split("**: ", 1)[1]
    raise AssertionError(f"no reason {row['not comparable']!r} under the table")


def beside_row(text: str, model: str) -> dict[str, str]:
    rows = markdown_table(text, "## Mean test AUC, ours beside the papers'")
    return next(r for r in rows if r["model"] == model)


def markdown_table(text: str, heading: str) -> list[dict[str, str]]:
    """The first Markdown table after ``heading`` in ``text``, as one dict per row."""
    lines = text[text.index(heading) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append([c.strip() for c in line.strip().strip("|").split("|")])
    header, rows = table[0], table[2:]
    return [dict(zip(header, row, strict=True)) for row in rows]


@pytest.mark.slow
def test_report_columns_of_a_finished_an_unfinished_and_a_phantom_run(isolated_outputs):
    """Per model: the seeds as a count with their ids, the mean ± sd, the reason once; per run:
    the data, epochs run of planned, precision, global batch and the device hours it took; a
    missing run's cost measured where a run measured it."""
    from cxrlib.paper.report import build_report

    paper = load_config("paper")
    history = [{"epoch": e, "seconds": 1800.0, "devices": 2} for e in (1, 2)]
    for seed, auc in ((0, 77.0), (1, 79.0)):  # two finished seeds (of all 300 epochs)
        run = _finished_run(paper.override(seed=seed), "cxr14", "real", auc)
        write_history(run, history)
    unfinished = RunFolder.of(paper.override(model="chexnet_tiny"), "cxr14")
    data = {"dataset": "cxr14", "source": "real", "split": "paper"}
    runtime = {"world_size": 1, "global_batch": 32, "precision": "fp16", "gpu": "Tesla T4"}
    write_settings(unfinished, settings_record(paper.override(model="chexnet_tiny"), data, runtime))
    write_history(unfinished, [{"epoch": 1, "seconds": 7200.0, "devices": 1}])
    _finished_run(paper.override(model="conformer_tiny"), "cxr11", "phantom", 60.0)

    text = build_report(paper)
    rows = {
        r["model"]: r for r in markdown_table(text, "## Mean test AUC, ours beside the papers'")
    }
    finished = rows["ctranscnn_tiny"]
    assert finished["seeds"] == "2 (0, 1)"  # a count, with the ids beside
    assert finished["ours (± sd)"] == "78.00 ± 1.41"  # mean, sd of 77 and 79
    assert finished["Δ"] == "-0.47"  # 78.00 - 78.47: both seeds are comparable
    waiting = rows["chexnet_tiny"]
    assert waiting["seeds"] == "none finished (0 unfinished)" and waiting["ours (± sd)"] == "–"
    assert reason(text, waiting) == "not finished (1/300 epochs)"
    phantom = rows["conformer_tiny"]
    assert reason(text, phantom) == "phantom data" and "nan" not in text
    assert phantom["published"] == "81.45" and phantom["Δ"] == "–"
    per_run = markdown_table(text, "## How each run was computed")
    run = next(r for r in per_run if r["model"] == "ctranscnn_tiny" and r["seed"] == "0")
    assert run["data"] == "real" and run["epochs"] == "300/300" and run["precision"] == "bf16"
    assert run["batch"].startswith("32 = ")
    assert run["device hours"] == "2.000"  # 2 epochs × 1800 s × 2 devices
    assert next(r for r in per_run if r["model"] == "chexnet_tiny")["device hours"] == "2.000"
    # a missing run's cost: measured from the unfinished run's epoch on a T4 (2 h × 300), or
    # from FLOPs where nothing was measured (counted now: no notebook 02 table is needed)
    missing = markdown_table(text, "## Runs still missing")
    assert {r["split"] for r in missing} == {"paper"}  # another split is not planned: not missing
    chexnet = next(r for r in missing if r["model"] == "chexnet_tiny")
    cost = chexnet["cost of one run (paper recipe)"]
    assert cost.startswith("600.00 device hours (measured: 1 run(s) on Tesla T4)"), cost
    resnet = next(r for r in missing if r["model"] == "resnet50" and r["dataset"] == "CXR14")
    assert resnet["cost of one run (paper recipe)"].endswith("A100 hours (FLOPs at 20% MFU)")


@pytest.mark.slow
def test_a_report_before_any_run(isolated_outputs):
    from cxrlib.paper.report import build_report

    text = build_report(load_config("paper"))  # a fresh checkout: nothing trained yet
    beside = text[text.index("## Mean test AUC") : text.index("## How each run")]
    assert "_(none)_" in beside
    missing = markdown_table(text, "## Runs still missing")
    assert {r["model"] for r in missing} >= {"ctranscnn_tiny", "chexnet_tiny", "resnet50"}
