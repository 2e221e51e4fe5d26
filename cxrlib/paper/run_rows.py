"""Every run of a profile as rows a report can show: one row per run (:func:`collect_runs`:
where it stands, its data, its test mean AUC with CI, how it was computed, the device hours it
took, why it may not stand beside a published number) and one per model, its seeds together
(:func:`model_rows`). The report (:mod:`cxrlib.paper.report`) reads these only."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cxrlib.core.config import Config
from cxrlib.paper.comparability import not_comparable_because
from cxrlib.paper.costs import PAPER
from cxrlib.train.results import all_runs, run_coordinates

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
