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
from cxrlib.paper.items import IMAGENET_MODELS, ITEMS, MAIN_MODELS, figures_present
from cxrlib.paper.items import expected_models as expected_models_of_papers
from cxrlib.paper.markdown import markdown_table
from cxrlib.paper.outputs import PHANTOM_NOTE, data_label
from cxrlib.paper.published import published_mean_auc, published_means
from cxrlib.paper.report_html import render_html
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
        seeds = seeds_text(list(done["seed"]), list(waiting["seed"]))
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


def seeds_text(finished: list[int], unfinished: list[int] | None = None) -> str:
    """How many seeds finished, with their ids beside: ``2 (0, 1)``, ``1 (0; 1 unfinished)``,
    ``none finished (0 unfinished)`` -- a count, never an id that reads as one."""
    unfinished = unfinished or []
    ids = ", ".join(str(s) for s in finished)
    text = f"{len(finished)} ({ids}" if finished else "none finished ("
    if unfinished:
        text += ("; " if finished else "") + f"{', '.join(str(s) for s in unfinished)} unfinished"
    return text + ")"


def _markdown(frame: pd.DataFrame) -> str:
    """A Markdown table: one number format per quantity, parts no wider than a page."""
    return markdown_table(frame)


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
    rows, files_of = [], []
    for item in ITEMS:
        files = item.paths(split)
        present = all((results / f).is_file() for f in files)
        note = "" if item.published else " (no published counterpart)"
        rows.append(
            {
                "paper": item.paper,
                "item": f"{item.item}{note}",
                "regenerated by": f"`{item.notebook}`",
                "present": "yes" if present else "no",
            }
        )
        files_of.append(f"- {item.paper}, {item.item}: {', '.join(f'`{f}`' for f in files)}")
    return [
        "## Every table and figure of both papers",
        "",
        _markdown(pd.DataFrame(rows)),
        "",
        "The files, under `results/<profile>/`:",
        "",
        *files_of,
    ]


def _beside_row(row: pd.Series, markers: dict[str, str]) -> dict:
    reason = row["not comparable because"]
    paper = published_mean_auc(row["model"], row["dataset"])
    ours = _fmt(row["mean AUC"])
    if not pd.isna(row["sd (seeds)"]):
        ours += f" ± {_fmt(row['sd (seeds)'])}"
    return {
        "dataset": row["dataset"].upper(),
        "model": row["model"],
        "seeds": row["seeds"],
        "ours (± sd)": ours,
        "95% CI (first seed)": f"[{_fmt(row['CI low'])}, {_fmt(row['CI high'])}]",
        "published": _fmt(paper),
        "Δ": _fmt(row["mean AUC"] - paper) if paper is not None and not reason else "–",
        "not comparable": markers[reason] if reason else "",
    }


def reason_markers(reasons) -> dict[str, str]:
    """A letter for each distinct reason (``a``, ``b``, ...), in order of first appearance."""
    distinct = list(dict.fromkeys(r for r in reasons if r))
    return {reason: chr(ord("a") + i) for i, reason in enumerate(distinct)}


def _beside_section(runs: pd.DataFrame, split: str) -> list[str]:
    models = model_rows(runs[runs["split"] == split])
    markers = reason_markers(models["not comparable because"] if len(models) else [])
    rows = [_beside_row(row, markers) for _, row in models.iterrows()]
    notes = [f"- **{marker}**: {reason}" for reason, marker in markers.items()]
    return [
        f"## Mean test AUC, ours beside the papers' (`{split}` split)",
        "",
        "One row per model: its mean test AUC over the seeds that finished (± their standard "
        "deviation; the seed ids in brackets), the bootstrap 95% CI of its first seed's run, and "
        "the papers' value, which always stands in its column. The difference Δ is given only "
        "where the run ran the papers' recipe to the end — every planned epoch — on the real "
        "data with the papers' split; the other rows carry a letter saying why not (below). How "
        "each run computed is in the table after the next.",
        "",
        _markdown(pd.DataFrame(rows)),
        "",
        *(["Not comparable with the papers, so no Δ:", "", *notes, ""] if notes else []),
        f"For comparison, {AUTHORS_COMPUTATION}.",
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
        "final epoch (`TEST_CHECKPOINT` chooses the run's result; both are recorded). The "
        "papers do not say which they tested; the authors' config saves no best checkpoint.",
        "",
        _markdown(table),
    ]


def _batch_text(row: pd.Series) -> str:
    """The global batch and how it was made: ``32 = 2 × 16 × 1`` (processes × micro-batch ×
    accumulated micro-batches)."""
    parts = [row["global batch"], row["GPUs/processes"], row["micro-batch"], row["grad accum"]]
    if any(p is None or p == "–" or (isinstance(p, float) and pd.isna(p)) for p in parts):
        return "–" if parts[0] in (None, "–") else str(parts[0])
    return f"{parts[0]} = {parts[1]} × {parts[2]} × {parts[3]}"


def _computation_section(every_run: pd.DataFrame) -> list[str]:
    keys = ["dataset", "split", "model", "init", "seed", "data", "epochs run/planned"]
    table = every_run[keys].astype(object).copy()
    table["batch"] = [_batch_text(r) for _, r in every_run.iterrows()]
    for column in ("precision", "device", "device hours"):
        table[column] = every_run[column]
    table = table.rename(columns={"epochs run/planned": "epochs"})
    return [
        "## How each run was computed",
        "",
        "Each run: the data it trained on, epochs run of planned, its global batch (`batch`) as "
        "processes × micro-batch (what batch norm saw) × accumulated micro-batches, its "
        "precision and device, and the device hours its epochs took (over every session).",
        "",
        _markdown(table.where(table.notna(), "–")),
        "",
        "## The papers' published mean AUC (for reference)",
        "",
        _markdown(published_means()),
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


def _missing_section(
    every_run, finished, expected: list[str], tables: Path, split: str
) -> list[str]:
    """The runs this profile plans (every model the papers' items need, on both datasets, in
    the configuration's split) that have not finished, with what each would cost. Runs of
    another split are not planned by this profile: they are not "missing"."""
    done = set(zip(finished["dataset"], finished["split"], finished["model"], strict=True))
    missing = [
        {
            "dataset": dataset.upper(),
            "split": split,
            "model": model,
            "cost of one run (paper recipe)": cost(every_run, model, dataset, tables),
        }
        for dataset in PAPER_DATASETS
        for model in expected
        if (dataset, split, model) not in done
    ]
    if not missing:
        return [
            "## Runs still missing",
            "",
            f"None: every run this profile plans (`{split}` split) has finished.",
            "",
        ]
    return [
        "## Runs still missing and what they would cost",
        "",
        _markdown(pd.DataFrame(missing)),
        "",
        "Cost: measured where a run of the model at the paper's size has recorded its time "
        f"(its device hours per epoch × {PAPER_EPOCHS} epochs, on the device named); otherwise "
        "from a benchmark of the model on a GPU, scaled by peak FLOP/s, or an estimate: "
        f"training FLOPs at {ASSUMED_MFU:.0%} of an A100's dense bf16 peak — not a "
        "measurement. Each figure says which.",
        "",
    ]


def _figures_section(results: Path, split: str) -> list[str]:
    """Every figure the notebooks wrote for ``split``, with its caption (embedded in the HTML
    report; linked from the Markdown one)."""
    figures = figures_present(results / "figures", split)
    if not figures:
        return []
    lines = ["## Figures", ""]
    for name, caption in figures:
        lines += [f"![{caption}](figures/{name})", "", f"_{caption}_ (`figures/{name}`)", ""]
    return lines


def _phantom_split_note(label: str, split: str) -> list[str]:
    """On phantom data the split names mean the phantom's own parts: say so once."""
    if PHANTOM_NOTE not in label:
        return []
    meaning = {
        "paper": "the phantom's own train/validation/test parts, written in the format of the "
        "authors' split files (the real files name real images)",
        "patient": "a patient-disjoint split of the phantom's images, drawn with SPLIT_SEED",
        "official": "the phantom's own lists, written in the format of NIH's official lists",
    }.get(split, "the phantom's own split")
    return [
        f"> **Phantom data.** Every number here comes from synthetic images: it tests the "
        f"pipeline and says nothing about the papers. The `{split}` split here means {meaning}.",
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
    label = data_label(config)
    lines = [
        f"# Replication report — profile `{config.profile}`",
        "",
        f"_Data: {label}. Generated by notebook 08 from `results/` and `runs/` "
        "only; do not edit by hand._",
        "",
        *_phantom_split_note(label, split),
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
        *_missing_section(every_run, finished, expected, results / "tables", split),
        *imagenet_section(every_run, split, results / "tables", config.profile),
        *_figures_section(results, split),
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


def imagenet_section(
    runs: pd.DataFrame, split: str, tables: Path, profile: str = "paper"
) -> list[str]:
    """Beyond both papers (notebook 06): each model of :data:`~cxrlib.paper.items.IMAGENET_MODELS`
    from ImageNet weights beside its runs from scratch (means over finished seeds), with what
    the ImageNet runs cost -- the device hours they took where they ran, else what one would
    cost (measured or estimated, as for the missing runs)."""
    heading = f"## Beyond the papers: from ImageNet weights (`{split}` split)"
    if profile != "paper":
        return [
            heading,
            "",
            f"Not planned in the `{profile}` profile: its micro models have no ImageNet weights. "
            "The paper profile trains CTransCNN, CheXNet and ResNet-50 from ImageNet weights "
            "beside their runs from scratch (notebook 06).",
            "",
        ]
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
        heading,
        "",
        "Both papers train from scratch; notebook 06 also trains these models from ImageNet "
        'weights (`PRETRAINED = "imagenet"`). Never beside a published number; Δ is '
        "ImageNet − scratch (notebook 06's table gives its paired CI and p-values).",
        "",
        _markdown(pd.DataFrame(rows)),
        "",
    ]


def write_report(config: Config, expected_models: list[str] | None = None) -> Path:
    """Write ``results/<profile>/REPORT.md`` and ``REPORT.html`` (each atomically: a temp file,
    then a rename) and return the Markdown's path."""
    folder = config.workspace.profile_results(config.profile)
    text = build_report(config, expected_models)
    path = folder / "REPORT.md"
    atomic_write_text(path, text)
    label = data_label(config)
    warning = (
        f"Phantom data: every number in this report comes from synthetic images ({label}). It "
        "tests the pipeline and says nothing about the papers."
        if PHANTOM_NOTE in label
        else None
    )
    title = f"Replication report — profile {config.profile}"
    atomic_write_text(folder / "REPORT.html", render_html(text, folder, title, warning))
    return path
