"""Our trained runs beside the published numbers: tables and figures of notebooks 03 and 04.

Every table reports our test AUC with its bootstrap 95% CI, the published value of the same
model where one of the papers gives it (:mod:`cxrlib.published`), and the difference.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from cxrlib.published import per_class_auc, published_mean_auc
from cxrlib.training import RunResult


def _finished(runs: dict[str, RunResult]) -> dict[str, RunResult]:
    missing = [name for name, run in runs.items() if not run.finished]
    if missing:
        raise ValueError(f"runs not finished: {missing}; train them first")
    return runs


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
        table[name] = np.round(np.asarray(ours, dtype=float), 2)
        table[f"{name} 95% CI"] = [_ci(lo, hi) for lo, hi in zip(lows, highs, strict=True)]
        table[f"{name} published"] = paper
        table[f"{name} Δ"] = np.round(table[name] - paper, 2)
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
    predictions = pd.read_csv(run.folder / "test_predictions.csv")
    classes = run.metrics["classes"]
    fig, ax = plt.subplots(figsize=(7, 6))
    for name, auc in zip(classes, run.metrics["test"]["per_class_auc"], strict=True):
        truth = predictions[f"label_{name}"].to_numpy()
        if np.isnan(auc):
            continue
        fpr, tpr, _ = roc_curve(truth, predictions[f"prob_{name}"].to_numpy())
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
