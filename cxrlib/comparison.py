"""Our trained runs beside the published numbers: tables and figures of notebooks 03 to 06.

Every table reports our test AUC with its bootstrap 95% CI. A published value of the same model
(:mod:`cxrlib.published`) and the difference stand beside it only when the run is comparable --
it ran the papers' recipe to the end on the real data with the papers' split
(:meth:`cxrlib.runs.RunResult.not_comparable_because`); otherwise the table says why not.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from cxrlib.metrics import paired_bootstrap
from cxrlib.published import per_class_auc, published_mean_auc
from cxrlib.runs import RunResult


def _finished(runs: dict[str, RunResult]) -> dict[str, RunResult]:
    missing = [name for name, run in runs.items() if not run.finished]
    if missing:
        raise ValueError(f"runs not finished: {missing}; train them first")
    return runs


def _comparable(run: RunResult | None) -> str:
    """``"yes"``, or ``"no: <reasons>"``."""
    if run is None:
        return "no: not run"
    reason = run.not_comparable_because()
    return "yes" if reason is None else f"no: {reason}"


def _published_if_comparable(run: RunResult | None, value):
    """``value`` when ``run`` may stand beside a published number, else NaN."""
    return value if run is not None and run.not_comparable_because() is None else np.nan


def _ci(low: float, high: float) -> str:
    return "n/a" if np.isnan(low) or np.isnan(high) else f"[{low:.2f}, {high:.2f}]"


def auc_comparison(runs: dict[str, RunResult], dataset: str) -> pd.DataFrame:
    """Per-class and mean test AUC (%) of each run, CI, published value and difference."""
    runs = _finished(runs)
    published = per_class_auc(dataset)
    first = next(iter(runs.values())).metrics
    table = pd.DataFrame({"class": [*first["classes"], "Mean"]})
    for name, run in runs.items():
        test, ci = run.metrics["test"], run.metrics["test_ci"]
        ours = [*test["per_class_auc"], test["mean_auc"]]
        lows = [*ci["per_class_low"], ci["mean_low"]]
        highs = [*ci["per_class_high"], ci["mean_high"]]
        if name in published.columns:
            paper = published[name].reindex(table["class"]).to_numpy(dtype=float)
        else:
            paper = np.full(len(table), np.nan)
            paper[-1] = published_mean_auc(name, dataset) or np.nan
        paper = _published_if_comparable(run, paper)
        table[name] = np.round(np.asarray(ours, dtype=float), 2)
        table[f"{name} 95% CI"] = [_ci(lo, hi) for lo, hi in zip(lows, highs, strict=True)]
        table[f"{name} published"] = paper
        table[f"{name} Δ"] = np.round(table[name] - paper, 2)
        table[f"{name} comparable with the paper"] = _comparable(run)
    return table


def metrics_table(runs: dict[str, RunResult]) -> pd.DataFrame:
    """Mean AUC with CI and the threshold metrics (mAP, CP, CR, CF1, OP, OR, OF1) per run."""
    rows = []
    for name, run in _finished(runs).items():
        test, ci = run.metrics["test"], run.metrics["test_ci"]
        rows.append(
            {
                "model": name,
                "split": run.metrics["split"],
                "test images": test["num_images"],
                "best epoch": run.metrics["best_epoch"],
                "mean AUC": round(test["mean_auc"], 2),
                "95% CI": _ci(ci["mean_low"], ci["mean_high"]),
                **{k: round(test[k], 2) for k in ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1")},
                "classes without AUC": len(test["undefined_auc_classes"]),
            }
        )
    return pd.DataFrame(rows)


def plot_roc_curves(run: RunResult, title: str) -> plt.Figure:
    """One ROC curve per class from the run's test predictions."""
    predictions = run.predictions()
    fig, ax = plt.subplots(figsize=(7, 6))
    aucs = run.metrics["test"]["per_class_auc"]
    for k, (name, auc) in enumerate(zip(predictions.classes, aucs, strict=True)):
        if np.isnan(auc):
            continue
        fpr, tpr, _ = roc_curve(predictions.labels[:, k], predictions.scores[:, k])
        ax.plot(fpr, tpr, lw=1, label=f"{name} ({auc:.1f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        title=f"{run.metrics['model']} — {title}",
    )
    ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    return fig


def plot_training_curves(runs: dict[str, RunResult], title: str) -> plt.Figure:
    """Training loss and validation mean AUC per epoch, one line per run."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name, run in runs.items():
        history = run.history
        if history.empty:
            continue
        left.plot(history["epoch"], history["train_loss"], marker="o", label=name)
        right.plot(history["epoch"], history["val_mean_auc"], marker="o", label=name)
    left.set(xlabel="epoch", ylabel="training loss")
    right.set(xlabel="epoch", ylabel="validation mean AUC (%)")
    right.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def paired_comparison(run_a: RunResult, run_b: RunResult, resamples: int = 1000) -> dict:
    """Paired bootstrap of mean test AUC, ``a`` − ``b``, on the same test images."""
    a, b = run_a.predictions(), run_b.predictions()
    if a.image_ids != b.image_ids:
        raise ValueError(f"{run_a.folder} and {run_b.folder} were tested on different images")
    return paired_bootstrap(a.labels, a.scores, b.scores, resamples=resamples)


def variant_table(runs: dict[str, RunResult], reference: str, dataset: str) -> pd.DataFrame:
    """Each variant's mean test AUC with CI, its difference to ``reference`` with the paired
    bootstrap CI and p-value, and the published mean AUC where a paper gives one."""
    runs = _finished(runs)
    rows = []
    for name, run in runs.items():
        test, ci = run.metrics["test"], run.metrics["test_ci"]
        row = {
            "model": name,
            "mean AUC": round(test["mean_auc"], 2),
            "95% CI": _ci(ci["mean_low"], ci["mean_high"]),
            "published": _published_if_comparable(run, published_mean_auc(name, dataset)),
            "comparable with the paper": _comparable(run),
        }
        if name == reference:
            row |= {f"Δ vs {reference}": 0.0, "Δ 95% CI": "-", "p (paired bootstrap)": None}
        else:
            paired = paired_comparison(run, runs[reference])
            row |= {
                f"Δ vs {reference}": round(paired["difference"], 2),
                "Δ 95% CI": _ci(paired["ci_low"], paired["ci_high"]),
                "p (paired bootstrap)": round(paired["p_value"], 4),
            }
        rows.append(row)
    return pd.DataFrame(rows)


def _hours(run: RunResult) -> float:
    hours = run.device_hours
    return np.nan if hours is None else round(hours, 2)


def init_comparison(scratch: dict[str, RunResult], imagenet: dict[str, RunResult]) -> pd.DataFrame:
    """Scratch vs ImageNet initialisation (neither paper: both train from scratch): per model,
    both runs' mean test AUC with CI, the difference ImageNet − scratch with the paired
    bootstrap CI and p-value on the same test images, and the device hours each run took."""
    rows = []
    for name, base in _finished(scratch).items():
        row = {
            "model": name,
            "scratch mean AUC": round(base.metrics["test"]["mean_auc"], 2),
            "scratch 95% CI": _ci(
                base.metrics["test_ci"]["mean_low"], base.metrics["test_ci"]["mean_high"]
            ),
            "scratch device hours": _hours(base),
        }
        run = imagenet.get(name)
        if run is None or not run.finished:
            row["ImageNet mean AUC"] = "not run" if run is None else "not finished"
        else:
            ci = run.metrics["test_ci"]
            paired = paired_comparison(run, base)
            row |= {
                "ImageNet mean AUC": round(run.metrics["test"]["mean_auc"], 2),
                "ImageNet 95% CI": _ci(ci["mean_low"], ci["mean_high"]),
                "ImageNet device hours": _hours(run),
                "Δ (ImageNet − scratch)": round(paired["difference"], 2),
                "Δ 95% CI": _ci(paired["ci_low"], paired["ci_high"]),
                "p (paired bootstrap)": round(paired["p_value"], 4),
            }
        rows.append(row)
    return pd.DataFrame(rows)


def plot_mean_auc(runs: dict[str, RunResult], title: str) -> plt.Figure:
    """Mean test AUC per model with its bootstrap 95% CI as error bars."""
    runs = _finished(runs)
    names = list(runs)
    means = np.array([runs[n].metrics["test"]["mean_auc"] for n in names])
    low = np.array([runs[n].metrics["test_ci"]["mean_low"] for n in names])
    high = np.array([runs[n].metrics["test_ci"]["mean_high"] for n in names])
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(names)), 4))
    ax.bar(range(len(names)), means, color="tab:blue", alpha=0.7)
    ax.errorbar(
        range(len(names)),
        means,
        yerr=[means - low, high - means],
        fmt="none",
        ecolor="black",
        capsize=3,
    )
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_ylabel("mean test AUC (%) with 95% CI")
    ax.set_ylim(max(0, low.min() - 5), min(100, high.max() + 5))
    ax.set_title(title)
    fig.tight_layout()
    return fig


def mean_auc_table(runs_by_dataset: dict[str, dict[str, RunResult]]) -> pd.DataFrame:
    """CTransCNN's comparison layout: one row per model, per dataset our mean test AUC with CI,
    the published value and the difference."""
    models = list(dict.fromkeys(m for runs in runs_by_dataset.values() for m in runs))
    rows = []
    for model in models:
        row = {"model": model}
        for dataset, runs in runs_by_dataset.items():
            run = runs.get(model)
            paper = _published_if_comparable(run, published_mean_auc(model, dataset))
            ours = run.metrics["test"]["mean_auc"] if run and run.finished else np.nan
            ci = run.metrics["test_ci"] if run and run.finished else None
            row |= {
                f"{dataset} ours": round(ours, 2),
                f"{dataset} 95% CI": _ci(ci["mean_low"], ci["mean_high"]) if ci else "n/a",
                f"{dataset} published": paper,
                f"{dataset} Δ": round(ours - paper, 2) if paper is not None else np.nan,
                f"{dataset} comparable with the paper": _comparable(run),
            }
        rows.append(row)
    return pd.DataFrame(rows)


def plot_macro_roc(runs: dict[str, RunResult], title: str) -> plt.Figure:
    """Macro-average ROC curve of each model (per-class curves interpolated, then averaged)."""
    grid = np.linspace(0, 1, 201)
    fig, ax = plt.subplots(figsize=(7, 6))
    for name, run in _finished(runs).items():
        predictions = run.predictions()
        labels, scores = predictions.labels, predictions.scores
        curves = []
        for k in range(labels.shape[1]):
            if 0 < labels[:, k].sum() < len(labels):
                fpr, tpr, _ = roc_curve(labels[:, k], scores[:, k])
                curves.append(np.interp(grid, fpr, tpr))
        mean_auc = run.metrics["test"]["mean_auc"]
        ax.plot(grid, np.mean(curves, axis=0), lw=1.2, label=f"{name} ({mean_auc:.1f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate (macro average)", title=title)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def plot_radar(runs: dict[str, RunResult], title: str) -> plt.Figure:
    """Per-class test AUC of each model on a radar chart (undefined classes at 50)."""
    runs = _finished(runs)
    classes = next(iter(runs.values())).metrics["classes"]
    angles = np.linspace(0, 2 * np.pi, len(classes), endpoint=False)
    fig, ax = plt.subplots(figsize=(8, 8), subplot_kw={"projection": "polar"})
    for name, run in runs.items():
        values = np.nan_to_num(np.asarray(run.metrics["test"]["per_class_auc"], float), nan=50.0)
        ax.plot(np.append(angles, angles[0]), np.append(values, values[0]), lw=1, label=name)
    ax.set_xticks(angles, classes, fontsize=7)
    ax.set_ylim(0, 100)
    ax.set_title(title, pad=20)
    ax.legend(fontsize=7, loc="upper right", bbox_to_anchor=(1.35, 1.1))
    fig.tight_layout()
    return fig
