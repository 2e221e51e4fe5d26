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

import numpy as np
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
from cxrlib.runs import INIT_NAMES, all_runs, run_coordinates

PAPER = load_config("paper")
PAPER_EPOCHS = PAPER.train.epochs
#: Estimate of training cost: peak dense bf16 TFLOP/s of an A100 and the assumed utilisation.
A100_TFLOPS, ASSUMED_UTILISATION = 312.0, 0.2


def collect_runs(profile: str) -> pd.DataFrame:
    """Every run of ``profile``, finished or not: where it stands, the data (phantom or real),
    epochs run of epochs planned, its test mean AUC with CI (finished runs), how it was
    computed, the device hours it took (from its ``epochs.csv``), and why it may not stand
    beside a published number (empty: it may)."""
    rows = []
    for run in all_runs(profile):
        settings = run.settings or {}
        metrics = run.metrics or {}
        runtime = settings.get("runtime") or metrics.get("runtime") or {}
        flat, data = settings.get("config", {}), settings.get("data") or {}
        test, ci = metrics.get("test", {}), metrics.get("test_ci", {})
        rows.append(
            {
                **run_coordinates(run),
                "finished": run.finished,
                "data": data.get("source", flat.get("data_source", "–")),
                "epochs run/planned": f"{len(run.history)}/{flat.get('epochs', '?')}",
                "epochs run": len(run.history),
                # the paper's model and image size: its time measures a paper-recipe run
                "paper size": flat.get("model_size") == PAPER.model.model_size
                and flat.get("image_size") == PAPER.data.image_size,
                "mean AUC": test.get("mean_auc", np.nan),
                "CI low": ci.get("mean_low", np.nan),
                "CI high": ci.get("mean_high", np.nan),
                "GPUs/processes": runtime.get("world_size", "–"),
                "per-device batch": runtime.get("per_device_batch", "–"),
                "grad accum": runtime.get("grad_accum", "–"),
                "global batch": runtime.get("global_batch", "–"),
                "precision": runtime.get("precision", "–"),
                "device": runtime.get("gpu") or runtime.get("device", "–"),
                "device hours": _hours(run.device_hours),
                "not comparable because": run.not_comparable_because() or "",
            }
        )
    frame = pd.DataFrame(rows, columns=RUN_COLUMNS)
    return frame.astype({"finished": bool, "paper size": bool})  # masks even with no run


#: How a run was computed (the report's table of every run).
COMPUTATION_COLUMNS = [
    "epochs run/planned",
    "GPUs/processes",
    "per-device batch",
    "grad accum",
    "global batch",
    "precision",
    "device",
    "device hours",
]
RUN_COLUMNS = [
    "dataset",
    "split",
    "model",
    "init",
    "seed",
    "finished",
    "data",
    "mean AUC",
    "CI low",
    "CI high",
    *COMPUTATION_COLUMNS,
    "not comparable because",
    "epochs run",
    "paper size",
]


def _hours(hours: float | None) -> float | None:
    return None if hours is None else round(hours, 3)


def model_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset and model (its seeds together; ``runs`` of one split and
    initialisation, :func:`collect_runs`): the data, the seeds finished (and unfinished),
    epochs run of planned, precision, global batch, the device hours all its runs took, the
    mean test AUC over finished seeds ± sd with the first seed's CI, and whether (why not) it
    may stand beside a published number."""
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
                "global batch": first["global batch"],
                "device hours": round(float(hours.sum()), 3) if len(hours) else None,
                "mean AUC": done["mean AUC"].mean() if len(done) else np.nan,
                "sd (seeds)": done["mean AUC"].std(ddof=1) if len(done) > 1 else np.nan,
                "CI low": first["CI low"] if len(done) else np.nan,
                "CI high": first["CI high"] if len(done) else np.nan,
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


def _cost(runs: pd.DataFrame, model: str, dataset: str, tables: Path) -> str:
    """What a missing run would cost: from a measurement where one exists, else from FLOPs;
    the text says which."""
    measured = measured_gpu_hours(runs, model, dataset)
    if measured is not None:
        hours, basis = measured
        return f"{_fmt(hours)} device hours ({basis})"
    estimate = estimated_gpu_hours(model, dataset, tables)
    return f"{_fmt(estimate)} A100 hours (FLOPs estimate)" if estimate is not None else "–"


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
        f"## Mean test AUC, ours beside the papers' (`{split}` split)",
        "",
        "One row per model: its mean test AUC over the seeds that finished (± their standard "
        "deviation) with the bootstrap 95% CI of its first seed's run, the data it ran on, "
        "epochs run of planned, precision, global batch and the device hours its runs took. "
        "A model stands beside a published number only if it ran the papers' recipe to the "
        "end on the real data with the papers' split; every other row says why not.",
        "",
    ]
    rows = []
    for _, row in model_rows(runs[runs["split"] == split]).iterrows():
        reason = row["not comparable because"]
        paper = None if reason else published_mean_auc(row["model"], row["dataset"])
        rows.append(
            {
                "dataset": row["dataset"].upper(),
                "model": row["model"],
                "data": row["data"],
                "seeds": row["seeds"],
                "epochs run/planned": row["epochs run/planned"],
                "precision": row["precision"],
                "global batch": row["global batch"],
                "device hours": _fmt(row["device hours"], 3),
                "ours": _fmt(row["mean AUC"]),
                "± sd": _fmt(row["sd (seeds)"]),
                "95% CI (first seed)": f"[{_fmt(row['CI low'])}, {_fmt(row['CI high'])}]",
                "published": _fmt(paper),
                "Δ": _fmt(row["mean AUC"] - paper) if paper is not None else "–",
                "not comparable because": reason or "–",
            }
        )
    lines.append(_markdown(pd.DataFrame(rows)))
    lines += ["", "## How each run was computed", ""]
    lines.append(
        _markdown(
            every_run[["dataset", "split", "model", "init", "seed", "data", *COMPUTATION_COLUMNS]]
            .astype(object)
            .fillna("–")
        )
    )
    lines += ["", "## The papers' published mean AUC (for reference)", ""]
    lines.append(_markdown(published_mean_auc_table().reset_index()))
    lines += ["", "## The papers' split beside the patient-disjoint split (main models)", ""]
    finished = runs[runs["finished"]]
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
    lines.append(_markdown(pd.DataFrame(side)))
    lines += ["", "## Runs still missing and what they would cost", ""]
    done = set(zip(finished["dataset"], finished["split"], finished["model"], strict=True))
    missing = []
    for dataset in PAPER_DATASETS:
        for name in ("paper", "patient"):
            for model in expected_models:
                if (dataset, name, model) not in done:
                    missing.append(
                        {
                            "dataset": dataset.upper(),
                            "split": name,
                            "model": model,
                            "cost of one run (paper recipe)": _cost(
                                every_run, model, dataset, layout.tables
                            ),
                        }
                    )
    lines.append(_markdown(pd.DataFrame(missing)))
    lines += [
        "",
        "Cost: measured where a run of the model at the paper's size has recorded its time "
        f"(its device hours per epoch × {PAPER_EPOCHS} epochs, on the device named); otherwise "
        f"an estimate: 3 × forward GFLOPs at 224 px (notebook 02) × {PAPER_EPOCHS} epochs × "
        f"the papers' training images, at {ASSUMED_UTILISATION:.0%} of an A100's "
        f"{A100_TFLOPS:.0f} TFLOP/s peak — not a measurement.",
        "",
    ]
    lines += imagenet_section(every_run, split, layout.tables)
    return "\n".join(lines)


def imagenet_section(runs: pd.DataFrame, split: str, tables: Path) -> list[str]:
    """Beyond both papers (notebook 06): each model of :data:`~cxrlib.papers.IMAGENET_MODELS`
    from ImageNet weights beside its runs from scratch (means over finished seeds), with what
    the ImageNet runs cost -- the device hours they took where they ran, else what one would
    cost (measured or from FLOPs, as for the missing runs: the same per epoch as from scratch)."""
    in_split = runs[(runs["split"] == split) & runs["finished"]]
    by_init = {
        init: model_rows(in_split[in_split["init"] == name]).set_index(["dataset", "model"])
        if len(in_split[in_split["init"] == name])
        else pd.DataFrame()
        for init, name in INIT_NAMES.items()
    }
    rows = []
    for dataset in PAPER_DATASETS:
        for model in IMAGENET_MODELS:
            found = {
                init: frame.loc[(dataset, model)] if (dataset, model) in frame.index else None
                for init, frame in by_init.items()
            }
            scratch, imagenet = found["none"], found["imagenet"]
            row = {
                "dataset": dataset.upper(),
                "model": model,
                "scratch": _fmt(scratch["mean AUC"]) if scratch is not None else "not run",
            }
            if imagenet is not None:
                row |= {
                    "ImageNet": _fmt(imagenet["mean AUC"]),
                    "seeds": imagenet["seeds"],
                    "95% CI (first seed)": f"[{_fmt(imagenet['CI low'])}, "
                    f"{_fmt(imagenet['CI high'])}]",
                    "Δ": _fmt(imagenet["mean AUC"] - scratch["mean AUC"])
                    if scratch is not None
                    else "–",
                    "cost": f"{_fmt(imagenet['device hours'])} device hours (spent)",
                }
            else:
                row |= {
                    "ImageNet": "not run",
                    "seeds": "–",
                    "95% CI (first seed)": "–",
                    "Δ": "–",
                    "cost": _cost(runs, model, dataset, tables),
                }
            rows.append(row)
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
    path = ResultsLayout(config.profile).root / "REPORT.md"
    atomic_write_text(path, build_report(config, expected_models))
    return path
