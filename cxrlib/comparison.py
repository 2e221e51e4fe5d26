"""Our trained runs beside the published numbers: tables and figures of notebooks 03 to 06.

Every table reports our test AUC with its bootstrap 95% CI. A published value of the same model
(:mod:`cxrlib.published`) and the difference stand beside it only when the run is comparable --
it ran the papers' recipe to the end on the real data with the papers' split
(:meth:`cxrlib.runs.RunResult.not_comparable_because`); otherwise the table says why not.

A model trained with several seeds (``SEEDS``; its :attr:`~cxrlib.runs.RunResult.seeds`) is
given as the mean over its seeds ± their standard deviation, beside the bootstrap CI of its
first seed's run; paired comparisons (bootstrap, DeLong) use every seed's test predictions.
Per-class tables mark the classes with fewer than :data:`~cxrlib.metrics.SMALL_CLASS` test
positives (kept in every mean, as in the papers; listed in the table's note).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import roc_curve

from cxrlib.metrics import SMALL_CLASS, delong_test, format_p, paired_bootstrap
from cxrlib.outputs import legend_outside, series_style
from cxrlib.published import per_class_auc, published_mean_auc
from cxrlib.runs import Predictions, RunResult


def _finished(runs: dict[str, RunResult]) -> dict[str, RunResult]:
    missing = [name for name, run in runs.items() if not all(r.finished for r in run.seeds)]
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


def _over_seeds(run: RunResult, pick) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (ddof 1; NaN for one seed) over the run's seeds of
    ``pick(test_metrics)`` (a number or a per-class list)."""
    values = np.array([pick(r.metrics["test"]) for r in run.seeds], dtype=float)
    sd = values.std(axis=0, ddof=1) if len(values) > 1 else np.full(values.shape[1:], np.nan)
    return values.mean(axis=0), sd


def _sd(value) -> float:
    return round(float(value), 2) if np.isfinite(value) else np.nan


def seed_predictions(run: RunResult) -> Predictions:
    """The test predictions of every seed of ``run``: scores S×N×K (one test set)."""
    first = run.predictions()
    scores = [first.scores]
    for other in run.seed_runs:
        predictions = other.predictions()
        if predictions.image_ids != first.image_ids:
            raise ValueError(f"{other.folder} was tested on other images than {run.folder}")
        scores.append(predictions.scores)
    return Predictions(first.image_ids, first.classes, first.labels, np.stack(scores))


def small_classes(predictions: Predictions) -> dict[str, int]:
    """Classes with fewer than :data:`SMALL_CLASS` positives in a run's test predictions, and
    their count (e.g. CXR14 Hernia 9, CXR11 ETT-Abnormal 6 in the papers' split)."""
    positives = predictions.labels.sum(axis=0)
    return {
        name: int(count)
        for name, count in zip(predictions.classes, positives, strict=True)
        if count < SMALL_CLASS
    }


def _small_note(small: dict[str, int]) -> str:
    if not small:
        return ""
    listed = ", ".join(f"{name} ({count})" for name, count in small.items())
    return (
        f"Classes with fewer than {SMALL_CLASS} test positives (their AUC rests on few "
        f"images; kept in every mean, as in the papers): {listed}."
    )


def auc_comparison(runs: dict[str, RunResult], dataset: str) -> pd.DataFrame:
    """Per-class and mean test AUC (%) of each model (mean over its seeds, with their sd), the
    bootstrap CI of its first run, the published value and the difference. Classes with few
    test positives are marked (``test positives``, ``small class``) and listed in
    ``table.attrs["note"]`` (written under the table by :func:`cxrlib.outputs.save_table`)."""
    runs = _finished(runs)
    published = per_class_auc(dataset)
    first_run = next(iter(runs.values()))
    first = first_run.metrics
    table = pd.DataFrame({"class": [*first["classes"], "Mean"]})
    predictions = first_run.predictions()
    table["test positives"] = [*(int(p) for p in predictions.labels.sum(axis=0)), "–"]
    small = small_classes(predictions)
    table["small class"] = [
        f"yes (< {SMALL_CLASS} positives)" if c in small else "" for c in table["class"]
    ]
    for name, run in runs.items():
        ci = run.metrics["test_ci"]
        per_class, per_class_sd = _over_seeds(run, lambda t: t["per_class_auc"])
        mean, mean_sd = _over_seeds(run, lambda t: t["mean_auc"])
        ours = [*per_class, mean]
        lows = [*ci["per_class_low"], ci["mean_low"]]
        highs = [*ci["per_class_high"], ci["mean_high"]]
        if name in published.columns:
            paper = published[name].reindex(table["class"]).to_numpy(dtype=float)
        else:
            paper = np.full(len(table), np.nan)
            paper[-1] = published_mean_auc(name, dataset) or np.nan
        paper = _published_if_comparable(run, paper)
        table[name] = np.round(np.asarray(ours, dtype=float), 2)
        if len(run.seeds) > 1:  # a model trained once has no spread to show
            spread = [_sd(v) for v in [*per_class_sd, mean_sd]]
            table[f"{name} sd ({len(run.seeds)} seeds)"] = spread
        table[f"{name} 95% CI"] = [_ci(lo, hi) for lo, hi in zip(lows, highs, strict=True)]
        table[f"{name} published"] = paper
        table[f"{name} Δ"] = np.round(table[name] - paper, 2)
        table[f"{name} comparable with the paper"] = _comparable(run)
    table.attrs["note"] = _small_note(small)
    return table


def metrics_table(runs: dict[str, RunResult]) -> pd.DataFrame:
    """Mean AUC (mean ± sd over seeds) with the first run's CI and the threshold metrics
    (mAP, CP, CR, CF1, OP, OR, OF1; means over seeds) per model."""
    rows = []
    keys = ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1")
    for name, run in _finished(runs).items():
        test, ci = run.metrics["test"], run.metrics["test_ci"]
        mean, sd = _over_seeds(run, lambda t: t["mean_auc"])
        others, _ = _over_seeds(run, lambda t: [t[k] for k in keys])
        rows.append(
            {
                "model": name,
                "split": run.metrics["split"],
                "seeds": len(run.seeds),
                "test images": test["num_images"],
                "best epoch": run.metrics["best_epoch"],
                "mean AUC": round(float(mean), 2),
                "sd (seeds)": _sd(sd),
                "95% CI": _ci(ci["mean_low"], ci["mean_high"]),
                **{k: round(float(v), 2) for k, v in zip(keys, others, strict=True)},
                "classes without AUC": len(test["undefined_auc_classes"]),
            }
        )
    return pd.DataFrame(rows)


def plot_roc_curves(run: RunResult, title: str) -> plt.Figure:
    """One ROC curve per class from the run's test predictions (its first seed)."""
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
        title=f"{run.metrics['model']} — {title}",
    )
    legend_outside(ax)
    return fig


def plot_training_curves(runs: dict[str, RunResult], title: str) -> plt.Figure:
    """Training loss and validation mean AUC per epoch, one line per run (first seeds)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (name, run) in enumerate(runs.items()):
        history = run.history
        if history.empty:
            continue
        style = series_style(i)
        left.plot(history["epoch"], history["train_loss"], label=name, **style)
        right.plot(history["epoch"], history["val_mean_auc"], label=name, **style)
    left.set(xlabel="epoch", ylabel="training loss")
    right.set(xlabel="epoch", ylabel="validation mean AUC (%)")
    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title)
    legend_outside(right)
    return fig


def paired_comparison(run_a: RunResult, run_b: RunResult, resamples: int = 1000) -> dict:
    """Mean test AUC of ``a`` − ``b`` on the same test images, over every seed of each (a
    model's AUC is its mean over seeds): the paired bootstrap (CI and p-value) and DeLong's
    test (``delong_p``)."""
    a, b = seed_predictions(run_a), seed_predictions(run_b)
    if a.image_ids != b.image_ids:
        raise ValueError(f"{run_a.folder} and {run_b.folder} were tested on different images")
    result = paired_bootstrap(a.labels, a.scores, b.scores, resamples=resamples)
    result["delong_p"] = delong_test(a.labels, a.scores, b.scores)["p_value"]
    return result


def paired_columns(paired: dict, against: str) -> dict:
    """A table's columns of one paired comparison (:func:`paired_comparison`): the
    difference with its bootstrap CI and both p-values, written as :func:`format_p` does
    (a bootstrap p below its resolution reads "< 0.001", never 0)."""
    return {
        f"Δ vs {against}": round(paired["difference"], 2),
        "Δ 95% CI": _ci(paired["ci_low"], paired["ci_high"]),
        "p (paired bootstrap)": format_p(paired["p_value"], paired["resamples"]),
        "p (DeLong)": format_p(paired["delong_p"]),
    }


def _mean_columns(run: RunResult, prefix: str = "") -> dict:
    """``mean AUC`` (over seeds), its ``sd``, the number of ``seeds`` and the first run's CI."""
    mean, sd = _over_seeds(run, lambda t: t["mean_auc"])
    ci = run.metrics["test_ci"]
    return {
        f"{prefix}mean AUC": round(float(mean), 2),
        f"{prefix}sd (seeds)": _sd(sd),
        f"{prefix}seeds": len(run.seeds),
        f"{prefix}95% CI": _ci(ci["mean_low"], ci["mean_high"]),
    }


def variant_table(runs: dict[str, RunResult], reference: str, dataset: str) -> pd.DataFrame:
    """Each variant's mean test AUC (± sd over seeds) with CI, its difference to ``reference``
    with the paired bootstrap CI and p-values (bootstrap, DeLong), and the published mean AUC
    where a paper gives one."""
    runs = _finished(runs)
    rows = []
    for name, run in runs.items():
        row = {
            "model": name,
            **_mean_columns(run),
            "published": _published_if_comparable(run, published_mean_auc(name, dataset)),
            "comparable with the paper": _comparable(run),
        }
        if name == reference:
            row |= {
                f"Δ vs {reference}": 0.0,
                "Δ 95% CI": "–",
                "p (paired bootstrap)": "–",
                "p (DeLong)": "–",
            }
        else:
            row |= paired_columns(paired_comparison(run, runs[reference]), reference)
        rows.append(row)
    return pd.DataFrame(rows)


def _hours(run: RunResult) -> float:
    hours = [r.device_hours for r in run.seeds]
    return np.nan if None in hours else round(sum(hours), 2)


def init_comparison(scratch: dict[str, RunResult], imagenet: dict[str, RunResult]) -> pd.DataFrame:
    """Scratch vs ImageNet initialisation (neither paper: both train from scratch): per model,
    both mean test AUCs (± sd over seeds) with CI, the difference ImageNet − scratch with the
    paired bootstrap CI and p-values (bootstrap, DeLong) on the same test images, and the
    device hours each took (all its seeds)."""
    rows = []
    for name, base in _finished(scratch).items():
        row = {
            "model": name,
            **_mean_columns(base, "scratch "),
            "scratch device hours": _hours(base),
        }
        run = imagenet.get(name)
        if run is None or not all(r.finished for r in run.seeds):
            row["ImageNet mean AUC"] = "not run" if run is None else "not finished"
        else:
            row |= {
                **_mean_columns(run, "ImageNet "),
                "ImageNet device hours": _hours(run),
                **paired_columns(paired_comparison(run, base), "scratch"),
            }
        rows.append(row)
    return pd.DataFrame(rows)


def plot_mean_auc(runs: dict[str, RunResult], title: str) -> plt.Figure:
    """Mean test AUC per model (mean over seeds, each seed a dot) with the first run's
    bootstrap 95% CI as error bars."""
    runs = _finished(runs)
    names = list(runs)
    means = np.array([_over_seeds(runs[n], lambda t: t["mean_auc"])[0] for n in names])
    low = np.array([runs[n].metrics["test_ci"]["mean_low"] for n in names])
    high = np.array([runs[n].metrics["test_ci"]["mean_high"] for n in names])
    first = np.array([runs[n].metrics["test"]["mean_auc"] for n in names])
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(names)), 4))
    ax.bar(range(len(names)), means, color=series_style(0)["color"], alpha=0.6)
    ax.errorbar(
        range(len(names)),
        first,
        yerr=[first - low, high - first],
        fmt="none",
        ecolor="black",
        capsize=3,
    )
    for i, name in enumerate(names):
        seeds = [r.metrics["test"]["mean_auc"] for r in runs[name].seeds]
        ax.scatter([i] * len(seeds), seeds, color="black", s=10, zorder=3)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_ylabel("mean test AUC (%): bar mean over seeds,\ndots seeds, bars 95% CI (first run)")
    ax.set_ylim(max(0, low.min() - 5), min(100, high.max() + 5))
    ax.set_title(title)
    fig.tight_layout()
    return fig


def mean_auc_table(runs_by_dataset: dict[str, dict[str, RunResult]]) -> pd.DataFrame:
    """CTransCNN's comparison layout: one row per model, per dataset our mean test AUC (mean
    ± sd over seeds) with the first run's CI, the published value and the difference."""
    models = list(dict.fromkeys(m for runs in runs_by_dataset.values() for m in runs))
    rows = []
    for model in models:
        row = {"model": model}
        for dataset, runs in runs_by_dataset.items():
            run = runs.get(model)
            done = run is not None and all(r.finished for r in run.seeds)
            paper = _published_if_comparable(run, published_mean_auc(model, dataset))
            mean, sd = _over_seeds(run, lambda t: t["mean_auc"]) if done else (np.nan, np.nan)
            ci = run.metrics["test_ci"] if done else None
            row |= {
                f"{dataset} ours": round(float(mean), 2),
                f"{dataset} sd (seeds)": _sd(sd),
                f"{dataset} seeds": len(run.seeds) if done else 0,
                f"{dataset} 95% CI": _ci(ci["mean_low"], ci["mean_high"]) if ci else "n/a",
                f"{dataset} published": paper,
                f"{dataset} Δ": round(float(mean) - paper, 2) if paper is not None else np.nan,
                f"{dataset} comparable with the paper": _comparable(run),
            }
        rows.append(row)
    return pd.DataFrame(rows)


def plot_macro_roc(runs: dict[str, RunResult], title: str) -> plt.Figure:
    """Macro-average ROC curve of each model's first run (per-class curves interpolated,
    then averaged)."""
    grid = np.linspace(0, 1, 201)
    fig, ax = plt.subplots(figsize=(7, 5.5))
    for i, (name, run) in enumerate(_finished(runs).items()):
        predictions = run.predictions()
        labels, scores = predictions.labels, predictions.scores
        curves = []
        for k in range(labels.shape[1]):
            if 0 < labels[:, k].sum() < len(labels):
                fpr, tpr, _ = roc_curve(labels[:, k], scores[:, k])
                curves.append(np.interp(grid, fpr, tpr))
        mean_auc = run.metrics["test"]["mean_auc"]
        label = f"{name} ({mean_auc:.1f})"
        ax.plot(grid, np.mean(curves, axis=0), lw=1.3, label=label, **series_style(i))
    ax.plot([0, 1], [0, 1], color="0.5", ls=":", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate (macro average)", title=title)
    legend_outside(ax)
    return fig


def plot_radar(runs: dict[str, RunResult], title: str) -> plt.Figure:
    """Per-class test AUC of each model (mean over its seeds) on a radar chart whose radial
    axis spans the data (undefined classes at 50)."""
    runs = _finished(runs)
    classes = next(iter(runs.values())).metrics["classes"]
    angles = np.linspace(0, 2 * np.pi, len(classes), endpoint=False)
    fig, ax = plt.subplots(figsize=(8, 7), subplot_kw={"projection": "polar"})
    everything = []
    for i, (name, run) in enumerate(runs.items()):
        values, _ = _over_seeds(run, lambda t: t["per_class_auc"])
        values = np.nan_to_num(values, nan=50.0)
        everything.append(values)
        style = series_style(i) | {"marker": None}
        ax.plot(
            np.append(angles, angles[0]), np.append(values, values[0]), lw=1.2, label=name, **style
        )
    ax.set_xticks(angles, classes, fontsize=7)
    ax.set_ylim(*radial_limits(np.concatenate(everything)))
    ax.set_title(title, pad=24)
    legend_outside(ax, anchor=(1.12, 1.0))
    return fig


def radial_limits(values: np.ndarray, step: float = 5.0) -> tuple[float, float]:
    """A radar chart's radial range: the data's, widened to multiples of ``step`` (at least
    one step wide), within 0-100."""
    low = max(0.0, np.floor(np.min(values) / step) * step - step)
    high = min(100.0, np.ceil(np.max(values) / step) * step)
    return low, max(high, low + step)
