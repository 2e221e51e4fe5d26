"""The final report (notebook 08): ``results/<profile>/REPORT.md``, built from files only.

It reads ``results/<profile>/tables/*.csv`` and ``runs/<profile>/**/metrics.json`` -- never
a notebook's memory -- and states, for every table and figure of both papers (CTransCNN, Wu et
al., KBS 2023; CheXNet, Wu et al., PRCV 2023), the file that regenerates it, our values beside
the published ones with differences and confidence intervals (the difference only for runs that
may stand beside them, :mod:`cxrlib.paper.comparability`), how each run computed beside how the
authors did, the best-validation and the final epoch side by side for the main models, the
papers' split beside the patient-disjoint split, the runs still missing with the compute each
would cost (:mod:`cxrlib.paper.costs`, the basis of each figure stated), and, beyond both
papers, the runs initialised from ImageNet beside their runs from scratch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cxrlib.core.config import Config
from cxrlib.core.fileio import atomic_write_text
from cxrlib.data.datasets import PAPER_DATASETS
from cxrlib.paper.comparability import AUTHORS_COMPUTATION, not_comparable_because
from cxrlib.paper.costs import ASSUMED_MFU, PAPER, run_hours
from cxrlib.paper.items import IMAGENET_MODELS, ITEMS, MAIN_MODELS
from cxrlib.paper.items import expected_models as expected_models_of_papers
from cxrlib.paper.outputs import data_label
from cxrlib.paper.published import mean_auc as published_mean_auc_table
from cxrlib.paper.published import published_mean_auc
from cxrlib.train.layout import INIT_NAMES
from cxrlib.train.results import all_runs, run_coordinates

PAPER_EPOCHS = PAPER.train.epochs
#: How a run was computed (the report's table of every run).
COMPUTATION_COLUMNS = [
    "epochs run/planned",
    "GPUs/processes",
    "micro-batch",
    "grad accum",
    "global batch",
    "precision",
    "device",
    "device hours",
]
RUN_COLUMNS = [
    "dataset", "split", "model", "init", "seed", "finished", "data", "mean AUC", "CI low",
    "CI high", *COMPUTATION_COLUMNS, "not comparable because", "epochs run", "paper size",
    "best-epoch AUC", "last-epoch AUC",
]  # fmt: skip


def _run_row(run) -> dict:
    settings, metrics = run.settings or {}, run.metrics or {}
    runtime = settings.get("runtime") or metrics.get("runtime") or {}
    flat, data = settings.get("config", {}), settings.get("data") or {}
    test, ci = metrics.get("test", {}), metrics.get("test_ci", {})
    other = metrics.get("other_checkpoint") or {}
    tested = metrics.get("test_checkpoint", "best")
    by_checkpoint = {
        tested: test.get("mean_auc"),
        other.get("checkpoint"): other.get("test", {}).get("mean_auc"),
    }
    hours = run.device_hours
    return {
        **run_coordinates(run),
        "finished": run.finished,
        "data": data.get("source", flat.get("data_source", "–")),
        "epochs run/planned": f"{run.epochs_run}/{flat.get('epochs', '?')}",
        "epochs run": run.epochs_run,
        # the paper's model and image size: its time measures a paper-recipe run
        "paper size": flat.get("model_size") == PAPER.model.model_size
        and flat.get("image_size") == PAPER.data.image_size,
        "mean AUC": test.get("mean_auc", np.nan),
        "CI low": ci.get("mean_low", np.nan),
        "CI high": ci.get("mean_high", np.nan),
        "GPUs/processes": runtime.get("world_size", "–"),
        "micro-batch": runtime.get("micro_batch", "–"),
        "grad accum": runtime.get("grad_accum", "–"),
        "global batch": runtime.get("global_batch", "–"),
        "precision": runtime.get("precision", "–"),
        "device": runtime.get("gpu") or runtime.get("device", "–"),
        "device hours": None if hours is None else round(hours, 3),
        "not comparable because": not_comparable_because(run) or "",
        "best-epoch AUC": by_checkpoint.get("best", np.nan),
        "last-epoch AUC": by_checkpoint.get("last", np.nan),
    }


def collect_runs(config: Config) -> pd.DataFrame:
    """Every run of ``config``'s profile in its workspace, finished or not: where it stands,
    the data (phantom or real), epochs run of epochs planned, its test mean AUC with CI
    (finished runs), how it was computed, the device hours it took (from its ``epochs.csv``),
    and why it may not stand beside a published number (empty: it may)."""
    frame = pd.DataFrame(
        [_run_row(run) for run in all_runs(config.workspace.runs, config.profile)],
        columns=RUN_COLUMNS,
    )
    return frame.astype({"finished": bool, "paper size": bool})  # masks even with no run


def model_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset and model (its seeds together; ``runs`` of one split and
    initialisation, :func:`collect_runs`): the data, the seeds finished (and unfinished),
    epochs run of planned, precision, micro-batch, global batch, the device hours all its runs
    took, the mean test AUC over finished seeds ± sd with the first seed's CI, and why (if so)
    it may not stand beside a published number."""
    rows = []
    for (dataset, model), group in runs.groupby(["dataset", "model"], sort=False):
        done, waiting = group[group["finished"]], group[~group["finished"]]
        first = done.iloc[0] if len(done) else group.iloc[0]
        seeds = ", ".join(str(s) for s in done["seed"]) or "none finished"
        if len(waiting):
            seeds += f" (unfinished: {', '.join(str(s) for s in waiting['seed'])})"
        hours = group["device hours"].dropna()
        reasons = sorted({r for r in done["not comparable because"] if r})
        rows.append(
            {
                "dataset": dataset,
                "model": model,
                "data": ", ".join(sorted(set(group["data"]))),
                "seeds": seeds,
                "epochs run/planned": first["epochs run/planned"],
                "precision": first["precision"],
                "micro-batch": first["micro-batch"],
                "global batch": first["global batch"],
                "device hours": round(float(hours.sum()), 3) if len(hours) else None,
                "mean AUC": done["mean AUC"].mean() if len(done) else np.nan,
                "sd (seeds)": done["mean AUC"].std(ddof=1) if len(done) > 1 else np.nan,
                "CI low": first["CI low"] if len(done) else np.nan,
                "CI high": first["CI high"] if len(done) else np.nan,
                "best-epoch AUC": done["best-epoch AUC"].mean() if len(done) else np.nan,
                "last-epoch AUC": done["last-epoch AUC"].mean() if len(done) else np.nan,
                "not comparable because": "; ".join(reasons)
                if len(done)
                else f"not finished ({first['epochs run/planned']} epochs)",
            }
        )
    return pd.DataFrame(rows)


def _markdown(frame: pd.DataFrame) -> str:
    """A Markdown table that shows each value as given (no re-parsing: "71.00" stays)."""
    return frame.to_markdown(index=False, disable_numparse=True) if len(frame) else "_(none)_"


def _fmt(value, digits: int = 2) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def measured_gpu_hours(runs: pd.DataFrame, model: str, dataset: str) -> tuple[float, str] | None:
    """Device hours of one paper-recipe run of ``model`` on ``dataset`` from a measurement:
    the device hours per epoch that runs of it at the paper's size took here (any split,
    seed or initialisation; ``runs`` of :func:`collect_runs`) × the paper's epochs, and what
    it rests on. None when no such run has recorded its time."""
    same = runs[
        (runs["model"] == model)
        & (runs["dataset"] == dataset)
        & runs["paper size"]
        & runs["device hours"].notna()
    ]
    same = same[same["epochs run"] > 0]
    if same.empty:
        return None
    per_epoch = float((same["device hours"] / same["epochs run"]).median())
    devices = ", ".join(sorted({str(d) for d in same["device"]}))
    return per_epoch * PAPER_EPOCHS, f"measured: {len(same)} run(s) on {devices}"


def cost(runs: pd.DataFrame, model: str, dataset: str, tables: Path) -> str:
    """What a missing run would cost: from a run of it here where one recorded its time, else
    on an A100 (:func:`cxrlib.paper.costs.run_hours`); the text says which."""
    measured = measured_gpu_hours(runs, model, dataset)
    if measured is not None:
        hours, basis = measured
        return f"{_fmt(hours)} device hours ({basis})"
    hours, basis = run_hours(model, dataset, "A100", tables=tables)
    return f"{_fmt(hours)} A100 hours ({basis})"


def _items_section(results: Path, split: str) -> list[str]:
    lines = [
        "## Every table and figure of both papers",
        "",
        "| paper | item | regenerated by | files | present |",
        "|---|---|---|---|---|",
    ]
    for item in ITEMS:
        files = item.paths(split)
        present = all((results / f).is_file() for f in files)
        note = "" if item.published else " (no published counterpart)"
        lines.append(
            f"| {item.paper} | {item.item}{note} | `{item.notebook}` | "
            f"{', '.join(f'`{f}`' for f in files)} | {'yes' if present else 'no'} |"
        )
    return lines


def _beside_row(row: pd.Series) -> dict:
    reason = row["not comparable because"]
    paper = published_mean_auc(row["model"], row["dataset"])
    return {
        "dataset": row["dataset"].upper(),
        "model": row["model"],
        "data": row["data"],
        "seeds": row["seeds"],
        "epochs run/planned": row["epochs run/planned"],
        "precision": row["precision"],
        "micro-batch": row["micro-batch"],
        "global batch": row["global batch"],
        "device hours": _fmt(row["device hours"], 3),
        "ours": _fmt(row["mean AUC"]),
        "± sd": _fmt(row["sd (seeds)"]),
        "95% CI (first seed)": f"[{_fmt(row['CI low'])}, {_fmt(row['CI high'])}]",
        "published": _fmt(paper),
        "Δ": _fmt(row["mean AUC"] - paper) if paper is not None and not reason else "–",
        "not comparable because": reason or "–",
    }


def _beside_section(runs: pd.DataFrame, split: str) -> list[str]:
    rows = [_beside_row(row) for _, row in model_rows(runs[runs["split"] == split]).iterrows()]
    return [
        f"## Mean test AUC, ours beside the papers' (`{split}` split)",
        "",
        "One row per model: its mean test AUC over the seeds that finished (± their standard "
        "deviation) with the bootstrap 95% CI of its first seed's run, the data it ran on, "
        "epochs run of planned, precision, the micro-batch batch norm saw, the global batch "
        "and the device hours its runs took. The papers' value always stands in its column; "
        "the difference Δ only where the run ran the papers' recipe to the end -- every planned "
        "epoch -- on the real data with the papers' split; every other row says why not. "
        f"For comparison, {AUTHORS_COMPUTATION}.",
        "",
        _markdown(pd.DataFrame(rows)),
    ]


def _checkpoint_section(runs: pd.DataFrame, split: str) -> list[str]:
    """The main models scored with both checkpoints (``TEST_CHECKPOINT``)."""
    rows = model_rows(runs[(runs["split"] == split) & runs["model"].isin(MAIN_MODELS)])
    table = pd.DataFrame(
        {
            "dataset": rows["dataset"].str.upper() if len(rows) else [],
            "model": rows["model"] if len(rows) else [],
            "best validation epoch": [_fmt(v) for v in rows.get("best-epoch AUC", [])],
            "final epoch": [_fmt(v) for v in rows.get("last-epoch AUC", [])],
        }
    )
    return [
        "## The tested checkpoint: best validation epoch beside the final epoch (main models)",
        "",
        "Mean test AUC of the weights of the epoch with the best validation mean AUC and of the "
        "final epoch (``TEST_CHECKPOINT`` chooses the run's result; both are recorded). The "
        "papers do not say which they tested; the authors' config saves no best checkpoint.",
        "",
        _markdown(table),
    ]


def _computation_section(every_run: pd.DataFrame) -> list[str]:
    columns = ["dataset", "split", "model", "init", "seed", "data", *COMPUTATION_COLUMNS]
    return [
        "## How each run was computed",
        "",
        _markdown(every_run[columns].astype(object).where(every_run[columns].notna(), "–")),
        "",
        "## The papers' published mean AUC (for reference)",
        "",
        _markdown(published_mean_auc_table().reset_index()),
    ]


def _splits_section(finished: pd.DataFrame) -> list[str]:
    side = []
    for dataset in PAPER_DATASETS:
        for model in MAIN_MODELS:
            row = {"dataset": dataset.upper(), "model": model}
            for name in ("paper", "patient"):
                match = finished[
                    (finished["dataset"] == dataset)
                    & (finished["model"] == model)
                    & (finished["split"] == name)
                ]
                row[f"{name} split"] = _fmt(match["mean AUC"].mean()) if len(match) else "not run"
            side.append(row)
    return [
        "## The papers' split beside the patient-disjoint split (main models)",
        "",
        _markdown(pd.DataFrame(side)),
    ]


def _missing_section(every_run, finished, expected: list[str], tables: Path) -> list[str]:
    done = set(zip(finished["dataset"], finished["split"], finished["model"], strict=True))
    missing = [
        {
            "dataset": dataset.upper(),
            "split": name,
            "model": model,
            "cost of one run (paper recipe)": cost(every_run, model, dataset, tables),
        }
        for dataset in PAPER_DATASETS
        for name in ("paper", "patient")
        for model in expected
        if (dataset, name, model) not in done
    ]
    return [
        "## Runs still missing and what they would cost",
        "",
        _markdown(pd.DataFrame(missing)),
        "",
        "Cost: measured where a run of the model at the paper's size has recorded its time "
        f"(its device hours per epoch × {PAPER_EPOCHS} epochs, on the device named); otherwise "
        "from a benchmark of the model on a GPU, scaled by peak FLOP/s, or an estimate: "
        f"training FLOPs at {ASSUMED_MFU:.0%} of an A100's dense bf16 peak -- not a "
        "measurement. Each figure says which.",
        "",
    ]


def build_report(config: Config, expected_models: list[str] | None = None) -> str:
    """The report's Markdown text; ``expected_models`` defaults to every model some paper
    item needs (:func:`cxrlib.paper.items.expected_models`)."""
    expected = expected_models or expected_models_of_papers()
    results = config.workspace.profile_results(config.profile)
    split = config.data.split
    every_run = collect_runs(config)
    runs = every_run[every_run["init"] == INIT_NAMES["none"]]  # the papers': from scratch
    finished = runs[runs["finished"]]
    lines = [
        f"# Replication report — profile `{config.profile}`",
        "",
        f"_Data: {data_label(config)}. Generated by notebook 08 from `results/` and `runs/` "
        "only; do not edit by hand._",
        "",
        *_items_section(results, split),
        "",
        *_beside_section(runs, split),
        "",
        *_checkpoint_section(runs, split),
        "",
        *_computation_section(every_run),
        "",
        *_splits_section(finished),
        "",
        *_missing_section(every_run, finished, expected, results / "tables"),
        *imagenet_section(every_run, split, results / "tables"),
    ]
    return "\n".join(lines)


def _imagenet_row(dataset: str, model: str, found: dict, runs, tables) -> dict:
    scratch, imagenet = found["none"], found["imagenet"]
    row = {
        "dataset": dataset.upper(),
        "model": model,
        "scratch": _fmt(scratch["mean AUC"]) if scratch is not None else "not run",
    }
    if imagenet is None:
        return row | {"ImageNet": "not run", "seeds": "–", "95% CI (first seed)": "–", "Δ": "–",
                      "cost": cost(runs, model, dataset, tables)}  # fmt: skip
    ci = f"[{_fmt(imagenet['CI low'])}, {_fmt(imagenet['CI high'])}]"
    delta = imagenet["mean AUC"] - scratch["mean AUC"] if scratch is not None else None
    return row | {
        "ImageNet": _fmt(imagenet["mean AUC"]),
        "seeds": imagenet["seeds"],
        "95% CI (first seed)": ci,
        "Δ": _fmt(delta),
        "cost": f"{_fmt(imagenet['device hours'])} device hours (spent)",
    }


def imagenet_section(runs: pd.DataFrame, split: str, tables: Path) -> list[str]:
    """Beyond both papers (notebook 06): each model of :data:`~cxrlib.paper.items.IMAGENET_MODELS`
    from ImageNet weights beside its runs from scratch (means over finished seeds), with what
    the ImageNet runs cost -- the device hours they took where they ran, else what one would
    cost (measured or estimated, as for the missing runs)."""
    in_split = runs[(runs["split"] == split) & runs["finished"]]
    by_init = {}
    for init, name in INIT_NAMES.items():
        chosen = in_split[in_split["init"] == name]
        by_init[init] = model_rows(chosen).set_index(["dataset", "model"]) if len(chosen) else None
    rows = []
    for dataset in PAPER_DATASETS:
        for model in IMAGENET_MODELS:
            found = {
                init: frame.loc[(dataset, model)]
                if frame is not None and (dataset, model) in frame.index
                else None
                for init, frame in by_init.items()
            }
            rows.append(_imagenet_row(dataset, model, found, runs, tables))
    return [
        f"## Beyond the papers: from ImageNet weights (`{split}` split)",
        "",
        "Both papers train from scratch; notebook 06 also trains these models from ImageNet "
        'weights (`PRETRAINED = "imagenet"`). Never beside a published number; Δ is '
        "ImageNet − scratch (notebook 06's table gives its paired CI and p-values).",
        "",
        _markdown(pd.DataFrame(rows)),
        "",
    ]


def write_report(config: Config, expected_models: list[str] | None = None) -> Path:
    """Write ``results/<profile>/REPORT.md`` (atomically) and return its path."""
    path = config.workspace.profile_results(config.profile) / "REPORT.md"
    atomic_write_text(path, build_report(config, expected_models))
    return path
