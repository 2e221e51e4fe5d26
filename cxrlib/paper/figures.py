"""The figures of notebooks 03 to 07: ROC and training curves, mean AUC with its spread,
macro-average ROC and radar charts, and the Grad-CAM grid -- all in one style
(:mod:`cxrlib.paper.style`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import roc_curve
from torch import nn

from cxrlib.data.prepare import PreparedDataset
from cxrlib.evaluate.gradcam import cache_batch, gradcam_maps, is_all_zero
from cxrlib.paper.style import (
    CAM_CMAP,
    TRUTH_COLOUR,
    legend_outside,
    overlay_annotations,
    series_style,
)
from cxrlib.paper.tables import finished_runs, over_seeds
from cxrlib.train.results import RunResult


def _seed_of(run: RunResult) -> int:
    return run.key.seed


def plot_roc_curves(run: RunResult, title: str) -> plt.Figure:
    """One ROC curve per class from the run's test predictions (its first seed: the title
    and the legend say which)."""
    predictions = run.predictions()
    fig, ax = plt.subplots(figsize=(7, 5.5))
    aucs = run.metrics["test"]["per_class_auc"]
    for k, (name, auc) in enumerate(zip(predictions.classes, aucs, strict=True)):
        if np.isnan(auc):
            continue
        fpr, tpr, _ = roc_curve(predictions.labels[:, k], predictions.scores[:, k])
        ax.plot(fpr, tpr, lw=1.2, label=f"{name} ({auc:.1f})", **series_style(k))
    ax.plot([0, 1], [0, 1], color="0.5", ls=":", lw=0.8)
    ax.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        title=f"{run.metrics['model']}, seed {_seed_of(run)} — {title}",
    )
    legend_outside(ax, title=f"class (test AUC, seed {_seed_of(run)})")
    return fig


def plot_training_curves(runs: dict[str, RunResult], title: str) -> plt.Figure:
    """Training loss and validation mean AUC per epoch, one line per model: its first seed's
    run (the legend says which seed)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    for i, (name, run) in enumerate(runs.items()):
        history = run.history
        if history.empty:
            continue
        style = series_style(i)
        label = f"{name} (seed {_seed_of(run)})"
        left.plot(history["epoch"], history["train_loss"], label=label, **style)
        right.plot(history["epoch"], history["val_mean_auc"], label=label, **style)
    left.set(xlabel="epoch", ylabel="training loss")
    right.set(xlabel="epoch", ylabel="validation mean AUC (%)")
    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title)
    legend_outside(right)
    return fig


def plot_mean_auc(runs: dict[str, RunResult], title: str) -> plt.Figure:
    """Mean test AUC per model as a dot plot: the mean over seeds (a diamond), each seed (a
    small dot) and the first seed's bootstrap 95% CI (a bar). Dots need no zero on their axis,
    so the axis spans the data -- unlike bars, whose length would mislead from any other
    origin."""
    runs = finished_runs(runs)
    names = list(runs)
    means = np.array([over_seeds(runs[n], lambda t: t["mean_auc"])[0] for n in names])
    low = np.array([runs[n].metrics["test_ci"]["mean_low"] for n in names])
    high = np.array([runs[n].metrics["test_ci"]["mean_high"] for n in names])
    first = np.array([runs[n].metrics["test"]["mean_auc"] for n in names])
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(names)) + 2.5, 4.2), layout="constrained")
    x = np.arange(len(names))
    ax.errorbar(x, first, yerr=[first - low, high - first], fmt="none", ecolor="0.35",
                elinewidth=1.2, capsize=4, label="95% CI (first seed)")  # fmt: skip
    for i, name in enumerate(names):
        seeds = [r.metrics["test"]["mean_auc"] for r in runs[name].seeds]
        ax.scatter([i] * len(seeds), seeds, color="black", s=12, zorder=3,
                   label="each seed" if i == 0 else None)  # fmt: skip
    ax.scatter(x, means, marker="D", s=46, color=series_style(0)["color"], zorder=4,
               label="mean over seeds")  # fmt: skip
    ax.set_xticks(x, names, rotation=45, ha="right")
    ax.set_ylabel("mean test AUC (%)")
    ax.set_ylim(max(0, low.min() - 3), min(100, high.max() + 3))
    ax.grid(axis="y", color="0.9")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def plot_macro_roc(runs: dict[str, RunResult], title: str) -> plt.Figure:
    """Macro-average ROC curve of each model's first seed's run (per-class curves
    interpolated, then averaged); the legend names the seed and the run's test mean AUC."""
    grid = np.linspace(0, 1, 201)
    fig, ax = plt.subplots(figsize=(7, 5.5))
    for i, (name, run) in enumerate(finished_runs(runs).items()):
        predictions = run.predictions()
        labels, scores = predictions.labels, predictions.scores
        curves = []
        for k in range(labels.shape[1]):
            if 0 < labels[:, k].sum() < len(labels):
                fpr, tpr, _ = roc_curve(labels[:, k], scores[:, k])
                curves.append(np.interp(grid, fpr, tpr))
        mean_auc = run.metrics["test"]["mean_auc"]
        label = f"{name} (seed {_seed_of(run)}: {mean_auc:.1f})"
        ax.plot(grid, np.mean(curves, axis=0), lw=1.3, label=label, **series_style(i))
    ax.plot([0, 1], [0, 1], color="0.5", ls=":", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate (macro average)", title=title)
    legend_outside(ax, title="model (seed: test mean AUC)")
    return fig


def plot_radar(runs: dict[str, RunResult], title: str) -> plt.Figure:
    """Per-class test AUC of each model (mean over its seeds) on a radar chart whose radial
    axis spans the data (undefined classes at 50). The rings' values sit in the middle of the
    gap between the first two classes' spokes, on white, above the lines, so that neither the
    data nor a class name hides them; the class names stand outside the outer ring."""
    runs = finished_runs(runs)
    classes = next(iter(runs.values())).metrics["classes"]
    angles = np.linspace(0, 2 * np.pi, len(classes), endpoint=False)
    fig, ax = plt.subplots(figsize=(8.5, 7.5), subplot_kw={"projection": "polar"})
    everything = []
    for i, (name, run) in enumerate(runs.items()):
        values, _ = over_seeds(run, lambda t: t["per_class_auc"])
        values = np.nan_to_num(values, nan=50.0)
        everything.append(values)
        style = series_style(i) | {"marker": None}
        ax.plot(
            np.append(angles, angles[0]), np.append(values, values[0]), lw=1.2, label=name,
            zorder=2, **style,
        )  # fmt: skip
    ax.set_xticks(angles, classes, fontsize=7)
    ax.tick_params(axis="x", pad=14)  # class names clear of the outer ring and its value
    ax.set_ylim(*radial_limits(np.concatenate(everything)))
    ax.set_rlabel_position(np.degrees(np.pi / len(classes)))  # mid-gap of the first spokes
    for label in ax.get_yticklabels():
        label.set(fontsize=7, zorder=5, ha="center", va="center")
        label.set_bbox({"facecolor": "white", "edgecolor": "none", "alpha": 0.9, "pad": 1.2})
    ax.set_title(title, pad=30)
    legend_outside(ax, anchor=(1.15, 1.0), title="model (mean over seeds)")
    return fig


def radial_limits(values: np.ndarray, step: float = 5.0) -> tuple[float, float]:
    """A radar chart's radial range: the data's, widened to multiples of ``step`` (at least
    one step wide), within 0-100."""
    low = max(0.0, np.floor(np.min(values) / step) * step - step)
    high = min(100.0, np.ceil(np.max(values) / step) * step)
    return low, max(high, low + step)


def plot_cam_grid(
    models: dict[str, tuple[nn.Module, str]],
    data: PreparedDataset,
    image_ids: list[str],
    classes: list[str],
    title: str,
) -> plt.Figure:
    """Rows = images (with their target class), columns = the image then each model's CAM;
    the ground truth (NIH boxes, RANZCR lines) drawn on every panel, one colour bar for the
    CAM scale, and all-zero maps marked "all-zero map"."""
    test = data.part("test").set_index("image_id")
    x = cache_batch(data, image_ids)
    targets = [data.classes.index(c) for c in classes]
    cams = {
        name: gradcam_maps(model, x, targets, branch) for name, (model, branch) in models.items()
    }
    fig, axes = plt.subplots(
        len(image_ids),
        len(models) + 1,
        figsize=(2.4 * (len(models) + 1) + 0.8, 2.4 * len(image_ids) + 0.6),
        squeeze=False,
        layout="constrained",
    )
    size = data.cache.size
    shown = None
    for i, (image_id, cls) in enumerate(zip(image_ids, classes, strict=True)):
        image = data.cache.pixels[test.loc[image_id, "cache_row"]]
        row = test.loc[image_id].copy()
        row["image_id"] = image_id
        axes[i, 0].imshow(image, cmap="gray")
        axes[i, 0].set_title(cls, fontsize=8)
        overlay_annotations(axes[i, 0], data, row, size, TRUTH_COLOUR)
        for j, name in enumerate(models, start=1):
            ax, cam = axes[i, j], cams[name][i]
            ax.imshow(image, cmap="gray")
            if is_all_zero(cam):
                ax.text(
                    0.5, 0.5, "all-zero map", transform=ax.transAxes, ha="center",
                    va="center", fontsize=8, color="white",
                    bbox={"facecolor": "black", "alpha": 0.6, "edgecolor": "none"},
                )  # fmt: skip
            else:
                shown = ax.imshow(cam, cmap=CAM_CMAP, alpha=0.5, vmin=0, vmax=1)
            overlay_annotations(ax, data, row, size, TRUTH_COLOUR)
            if i == 0:
                ax.set_title(name, fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    if shown is not None:
        colour_bar = fig.colorbar(shown, ax=axes, shrink=0.6, pad=0.02)
        colour_bar.set_label("Grad-CAM (normalised per map)", fontsize=8)
    fig.suptitle(f"{title}\n(ground truth drawn in blue where annotated)", fontsize=9)
    return fig
