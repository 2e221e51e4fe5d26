"""The final report (notebook 08): ``results/<profile>/REPORT.md``, built from files only.

It reads ``results/<profile>/tables/*.csv`` and ``runs/<profile>/**/metrics.json`` -- never
a notebook's memory -- and states, for every table and figure of both papers (CTransCNN, Wu et
al., KBS 2023; CheXNet, Wu et al., PRCV 2023), the file that regenerates it, our values beside
the published ones with differences and confidence intervals, the papers' split beside the
patient-disjoint split for the main models, the runs still missing with the compute each
would cost (an estimate from FLOPs, stated as such), and, beyond both papers, the runs initialised
from ImageNet (notebook 06) beside their runs from scratch, with the device hours they took.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cxrlib.config import Config, load_config
from cxrlib.data.datasets import PAPER_DATASETS
from cxrlib.fileio import atomic_write_text
from cxrlib.outputs import data_label
from cxrlib.papers import IMAGENET_MODELS, ITEMS, MAIN_MODELS
from cxrlib.papers import expected_models as expected_models_of_papers
from cxrlib.paths import ResultsLayout
from cxrlib.published import mean_auc as published_mean_auc_table
from cxrlib.published import published_mean_auc
from cxrlib.runs import INIT_NAMES, finished_runs, run_coordinates

PAPER_EPOCHS = load_config("paper").train.epochs
#: Estimate of training cost: peak dense bf16 TFLOP/s of an A100 and the assumed utilisation.
A100_TFLOPS, ASSUMED_UTILISATION = 312.0, 0.2


def collect_runs(profile: str) -> pd.DataFrame:
    """Every finished run of ``profile``: where it stands, its test mean AUC with CI, how it
    was computed, and why it may not stand beside a published number (empty: it may)."""
    rows = []
    for run in finished_runs(profile):
        runtime = (run.settings or {}).get("runtime") or run.metrics.get("runtime") or {}
        flat = (run.settings or {}).get("config", {})
        rows.append(
            {
                **run_coordinates(run),
                "mean AUC": run.metrics["test"]["mean_auc"],
                "CI low": run.metrics["test_ci"]["mean_low"],
                "CI high": run.metrics["test_ci"]["mean_high"],
                "epochs": flat.get("epochs"),
                "GPUs/processes": runtime.get("world_size", "–"),
                "per-device batch": runtime.get("per_device_batch", "–"),
                "grad accum": runtime.get("grad_accum", "–"),
                "global batch": runtime.get("global_batch", "–"),
                "precision": runtime.get("precision", "–"),
                "device hours": _hours(run.device_hours),
                "not comparable because": run.not_comparable_because() or "",
            }
        )
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


#: How a run was computed (the report's second table).
COMPUTATION_COLUMNS = [
    "epochs",
    "GPUs/processes",
    "per-device batch",
    "grad accum",
    "global batch",
    "precision",
    "device hours",
]
RUN_COLUMNS = [
    "dataset",
    "split",
    "model",
    "init",
    "seed",
    "mean AUC",
    "CI low",
    "CI high",
    *COMPUTATION_COLUMNS,
    "not comparable because",
]


def _hours(hours: float | None) -> float | None:
    return None if hours is None else round(hours, 3)


def _markdown(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False) if len(frame) else "_(none)_"


def _fmt(value) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:.2f}"


def estimated_gpu_hours(model: str, dataset: str, tables: Path) -> float | None:
    """A100 hours of one run: 3 × forward GFLOPs executed (notebook 02) × epochs × training images
    (notebook 01) ÷ (peak × assumed utilisation). None when a table is missing."""
    summary, sizes = tables / "model_summary.csv", tables / "split_sizes.csv"
    if not (summary.is_file() and sizes.is_file()):
        return None
    gflops = pd.read_csv(summary).set_index("model")
    split_sizes = pd.read_csv(sizes)
    published = split_sizes[
        (split_sizes["dataset"] == dataset.upper()) & (split_sizes["split"] == "published (papers)")
    ]
    if model not in gflops.index or published.empty:
        return None
    # executed FLOPs; tables written before the two counts were named have one column
    column = "GFLOPs @224 executed" if "GFLOPs @224 executed" in gflops else "GFLOPs @224"
    flops = 3 * gflops.loc[model, column] * 1e9 * PAPER_EPOCHS
    flops *= float(published["train"].iloc[0])
    return flops / (A100_TFLOPS * 1e12 * ASSUMED_UTILISATION) / 3600


def build_report(config: Config, expected_models: list[str] | None = None) -> str:
    """The report's Markdown text; ``expected_models`` defaults to every model some paper
    item needs (:func:`cxrlib.papers.expected_models`)."""
    expected_models = expected_models or expected_models_of_papers()
    layout = ResultsLayout(config.profile)
    split = config.data.split
    every_run = collect_runs(config.profile)
    runs = every_run[every_run["init"] == INIT_NAMES["none"]]  # the papers': from scratch
    lines = [
        f"# Replication report — profile `{config.profile}`",
        "",
        f"_Data: {data_label(config)}. Generated by notebook 08 from `results/` and `runs/` "
        "only; do not edit by hand._",
        "",
        "## Every table and figure of both papers",
        "",
        "| paper | item | regenerated by | files | present |",
        "|---|---|---|---|---|",
    ]
    for item in ITEMS:
        files = item.paths(split)
        present = all((layout.root / f).is_file() for f in files)
        note = "" if item.published else " (no published counterpart)"
        lines.append(
            f"| {item.paper} | {item.item}{note} | `{item.notebook}` | "
            f"{', '.join(f'`{f}`' for f in files)} | {'yes' if present else 'no'} |"
        )
    lines += [
        "",
        "## Mean test AUC, ours beside the papers'",
        "",
        "A run stands beside a published number only if it ran the papers' recipe to the end "
        "on the real data with the papers' split; every other run is listed with the reason.",
        "",
    ]
    rows = []
    for _, run in runs[runs["split"] == split].iterrows():
        reason = run["not comparable because"]
        paper = None if reason else published_mean_auc(run["model"], run["dataset"])
        rows.append(
            {
                "dataset": run["dataset"].upper(),
                "model": run["model"],
                "seed": run["seed"],
                "ours": _fmt(run["mean AUC"]),
                "95% CI": f"[{_fmt(run['CI low'])}, {_fmt(run['CI high'])}]",
                "published": _fmt(paper),
                "Δ": _fmt(run["mean AUC"] - paper) if paper is not None else "–",
                "not comparable because": reason or "–",
            }
        )
    lines.append(_markdown(pd.DataFrame(rows)))
    lines += ["", "## How each run was computed", ""]
    lines.append(
        _markdown(
            every_run[["dataset", "split", "model", "init", "seed", *COMPUTATION_COLUMNS]]
            .astype(object)
            .fillna("–")
        )
    )
    lines += ["", "## The papers' published mean AUC (for reference)", ""]
    lines.append(_markdown(published_mean_auc_table().reset_index()))
    lines += ["", "## The papers' split beside the patient-disjoint split (main models)", ""]
    side = []
    for dataset in PAPER_DATASETS:
        for model in MAIN_MODELS:
            row = {"dataset": dataset.upper(), "model": model}
            for name in ("paper", "patient"):
                match = runs[
                    (runs["dataset"] == dataset)
                    & (runs["model"] == model)
                    & (runs["split"] == name)
                ]
                row[f"{name} split"] = _fmt(match["mean AUC"].iloc[0]) if len(match) else "not run"
            side.append(row)
    lines.append(_markdown(pd.DataFrame(side)))
    lines += ["", "## Runs still missing and what they would cost", ""]
    done = set(zip(runs["dataset"], runs["split"], runs["model"], strict=True))
    missing = []
    for dataset in PAPER_DATASETS:
        for name in ("paper", "patient"):
            for model in expected_models:
                if (dataset, name, model) not in done:
                    hours = estimated_gpu_hours(model, dataset, layout.tables)
                    missing.append(
                        {
                            "dataset": dataset.upper(),
                            "split": name,
                            "model": model,
                            "est. A100 hours (paper recipe)": _fmt(hours),
                        }
                    )
    lines.append(_markdown(pd.DataFrame(missing)))
    lines += [
        "",
        f"Estimates: 3 × forward GFLOPs at 224 px (notebook 02) × {PAPER_EPOCHS} "
        f"epochs × the papers' training images, at {ASSUMED_UTILISATION:.0%} of an A100's "
        f"{A100_TFLOPS:.0f} TFLOP/s peak — not measurements.",
        "",
    ]
    lines += imagenet_section(every_run, split, layout.tables)
    return "\n".join(lines)


def imagenet_section(runs: pd.DataFrame, split: str, tables: Path) -> list[str]:
    """Beyond both papers (notebook 06): each model of :data:`~cxrlib.papers.IMAGENET_MODELS`
    from ImageNet weights beside its run from scratch, with what the ImageNet run cost --
    device hours spent where it ran, else the FLOP estimate (the same as from scratch)."""
    rows = []
    for dataset in PAPER_DATASETS:
        for model in IMAGENET_MODELS:
            found = {
                init: runs[
                    (runs["dataset"] == dataset)
                    & (runs["split"] == split)
                    & (runs["model"] == model)
                    & (runs["init"] == name)
                ]
                for init, name in INIT_NAMES.items()
            }
            scratch, imagenet = found["none"], found["imagenet"]
            row = {
                "dataset": dataset.upper(),
                "model": model,
                "scratch": _fmt(scratch["mean AUC"].iloc[0]) if len(scratch) else "not run",
            }
            if len(imagenet):
                run = imagenet.iloc[0]
                row |= {
                    "ImageNet": _fmt(run["mean AUC"]),
                    "95% CI": f"[{_fmt(run['CI low'])}, {_fmt(run['CI high'])}]",
                    "Δ": _fmt(run["mean AUC"] - scratch["mean AUC"].iloc[0])
                    if len(scratch)
                    else "–",
                    "cost": f"{_fmt(run['device hours'])} device hours (measured)",
                }
            else:
                hours = estimated_gpu_hours(model, dataset, tables)
                row |= {
                    "ImageNet": "not run",
                    "95% CI": "–",
                    "Δ": "–",
                    "cost": f"{_fmt(hours)} A100 hours (estimate, paper recipe)",
                }
            rows.append(row)
    return [
        f"## Beyond the papers: from ImageNet weights (`{split}` split)",
        "",
        "Both papers train from scratch; notebook 06 also trains these models from ImageNet "
        'weights (`PRETRAINED = "imagenet"`). Never beside a published number; Δ is '
        "ImageNet − scratch (notebook 06's table gives its paired-bootstrap CI).",
        "",
        _markdown(pd.DataFrame(rows)),
        "",
    ]


def write_report(config: Config, expected_models: list[str] | None = None) -> Path:
    """Write ``results/<profile>/REPORT.md`` (atomically) and return its path."""
    path = ResultsLayout(config.profile).root / "REPORT.md"
    atomic_write_text(path, build_report(config, expected_models))
    return path
