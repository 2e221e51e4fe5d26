"""The final report (notebook 08): ``results/<profile>/REPORT.md``, built from files only.

It reads ``results/<profile>/tables/*.csv`` and ``runs/<profile>/**/metrics.json`` -- never
a notebook's memory -- and states, for every table and figure of both papers (CTransCNN, Wu et
al., KBS 2023; CheXNet, Wu et al., PRCV 2023), the file that regenerates it, our values beside
the published ones with differences and confidence intervals, the papers' split beside the
patient-disjoint split for the main models, and the runs still missing with the compute each
would cost (an estimate from FLOPs, stated as such).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cxrlib.config import Config, load_config
from cxrlib.data.labels import DATASETS
from cxrlib.fileio import atomic_write_text
from cxrlib.outputs import data_label
from cxrlib.paths import ResultsLayout
from cxrlib.published import mean_auc as published_mean_auc_table
from cxrlib.published import published_mean_auc
from cxrlib.runs import finished_runs, run_coordinates

MAIN_MODELS = ("ctranscnn_tiny", "chexnet_tiny")
PAPER_EPOCHS = load_config("paper").train.epochs
#: Estimate of training cost: peak dense bf16 TFLOP/s of an A100 and the assumed utilisation.
A100_TFLOPS, ASSUMED_UTILISATION = 312.0, 0.2


@dataclass(frozen=True)
class PaperItem:
    """One table or figure of a paper and where this kit regenerates it."""

    paper: str
    item: str
    notebook: str
    files: tuple[str, ...]
    published: bool = True


def paper_items(split: str) -> list[PaperItem]:
    s = split
    return [
        PaperItem(
            "CheXNet",
            "Table 1: per-class AUC on CXR11",
            "06_baselines",
            (f"tables/table1_cxr11_{s}.csv",),
        ),
        PaperItem(
            "CheXNet",
            "Table 2: per-class AUC on CXR14",
            "06_baselines",
            (f"tables/table2_cxr14_{s}.csv",),
        ),
        PaperItem(
            "CheXNet",
            "Table 3: module ablation on CXR11",
            "05_ablations",
            (f"tables/table3_chexnet_cxr11_{s}.csv", f"tables/ablation_chexnet_cxr11_{s}.csv"),
        ),
        PaperItem(
            "CheXNet",
            "Table 3 on CXR14",
            "05_ablations",
            (f"tables/table3_chexnet_cxr14_{s}.csv",),
            published=False,
        ),
        PaperItem(
            "CheXNet",
            "paired comparison with the baselines",
            "06_baselines",
            (f"tables/paired_vs_chexnet_cxr11_{s}.csv", f"tables/paired_vs_chexnet_cxr14_{s}.csv"),
        ),
        PaperItem(
            "CTransCNN",
            "model comparison: mean AUC on CXR11 and CXR14",
            "06_baselines",
            (f"tables/mean_auc_comparison_{s}.csv",),
        ),
        PaperItem(
            "CTransCNN",
            "module ablation",
            "05_ablations",
            (
                f"tables/ablation_ctranscnn_cxr11_{s}.csv",
                f"tables/ablation_ctranscnn_cxr14_{s}.csv",
            ),
            published=False,
        ),
        PaperItem(
            "CTransCNN",
            "mAP, CP, CR, CF1, OP, OR, OF1",
            "03_train_cxr11, 04_train_cxr14",
            (f"tables/metrics_cxr11_{s}.csv", f"tables/metrics_cxr14_{s}.csv"),
            published=False,
        ),
        PaperItem(
            "both",
            "ROC curves",
            "03, 04, 06",
            (f"figures/roc_baselines_cxr11_{s}.png", f"figures/roc_baselines_cxr14_{s}.png"),
        ),
        PaperItem(
            "both",
            "Grad-CAM figure (with measured localisation)",
            "07_gradcam",
            (
                f"figures/gradcam_cxr11_{s}.png",
                f"figures/gradcam_cxr14_{s}.png",
                f"tables/localisation_cxr11_{s}.csv",
                f"tables/localisation_cxr14_{s}.csv",
            ),
        ),
        PaperItem(
            "both",
            "dataset splits",
            "01_data_preparation",
            ("tables/split_sizes.csv", "tables/leakage.csv"),
        ),
    ]


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
                "not comparable because": run.not_comparable_because() or "",
            }
        )
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


RUN_COLUMNS = [
    "dataset",
    "split",
    "model",
    "seed",
    "mean AUC",
    "CI low",
    "CI high",
    "epochs",
    "GPUs/processes",
    "per-device batch",
    "grad accum",
    "global batch",
    "precision",
    "not comparable because",
]


def _markdown(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False) if len(frame) else "_(none)_"


def _fmt(value) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:.2f}"


def estimated_gpu_hours(model: str, dataset: str, tables: Path) -> float | None:
    """A100 hours of one run: 3 × forward GFLOPs (notebook 02) × epochs × training images
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
    flops = 3 * gflops.loc[model, "GFLOPs @224"] * 1e9 * PAPER_EPOCHS
    flops *= float(published["train"].iloc[0])
    return flops / (A100_TFLOPS * 1e12 * ASSUMED_UTILISATION) / 3600


def build_report(config: Config, expected_models: list[str]) -> str:
    """The report's Markdown text."""
    layout = ResultsLayout(config.profile)
    split = config.data.split
    runs = collect_runs(config.profile)
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
    for item in paper_items(split):
        present = all((layout.root / f).is_file() for f in item.files)
        note = "" if item.published else " (no published counterpart)"
        lines.append(
            f"| {item.paper} | {item.item}{note} | `{item.notebook}` | "
            f"{', '.join(f'`{f}`' for f in item.files)} | {'yes' if present else 'no'} |"
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
            runs[
                [
                    "dataset",
                    "split",
                    "model",
                    "seed",
                    "epochs",
                    "GPUs/processes",
                    "per-device batch",
                    "grad accum",
                    "global batch",
                    "precision",
                ]
            ]
        )
    )
    lines += ["", "## The papers' published mean AUC (for reference)", ""]
    lines.append(_markdown(published_mean_auc_table().reset_index()))
    lines += ["", "## The papers' split beside the patient-disjoint split (main models)", ""]
    side = []
    for dataset in DATASETS:
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
    for dataset in DATASETS:
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
    return "\n".join(lines)


def write_report(config: Config, expected_models: list[str]) -> Path:
    """Write ``results/<profile>/REPORT.md`` (atomically) and return its path."""
    path = ResultsLayout(config.profile).root / "REPORT.md"
    atomic_write_text(path, build_report(config, expected_models))
    return path
