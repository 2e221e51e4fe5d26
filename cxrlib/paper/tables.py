"""Our trained runs beside the published numbers: the tables of notebooks 03 to 06.

Every table gives our test AUC -- the mean over a model's seeds (``SEEDS``) ± their standard
deviation, beside the bootstrap 95% CI of its *first seed's* run -- and the papers' published
value of the same model in its own column, always (a fact about the papers). The difference
(Δ) stands only where the run is comparable (:mod:`cxrlib.paper.comparability`); why a model is
not comparable is said once under the table, with how each model computed (precision, the
micro-batch batch norm saw) beside how the authors did. A missing value reads "–".

Paired comparisons (bootstrap, DeLong) use every seed's test predictions and treat the trained
models as fixed (a line under the table says so); where a model has three or more seeds, a
two-level bootstrap (seeds, then images) adds an interval with training variance in it. The
papers' own p-values (CheXNet's paired t-tests) stand beside ours where they exist. Per-class
tables mark the classes with fewer than :data:`~cxrlib.evaluate.metrics.SMALL_CLASS` test
positives, kept in every mean as in the papers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cxrlib.evaluate.metrics import SMALL_CLASS
from cxrlib.evaluate.statistics import delong_test, format_p, paired_bootstrap, two_level_bootstrap
from cxrlib.paper.comparability import comparable, computation_note, reasons_note
from cxrlib.paper.published import (
    per_class_auc,
    printed_mean_notes,
    published_mean_auc,
    published_p_value,
)
from cxrlib.train.results import Predictions, RunResult

MISSING = "–"
#: Under every paired comparison: what its p-values do and do not say.
CONDITIONAL_NOTE = (
    "Paired bootstrap and DeLong p-values treat the trained models as fixed: they test the "
    "difference on these test images, not whether retraining would reproduce it (the "
    "two-level bootstrap, where a model has three or more seeds, resamples seeds too)."
)
#: Seeds from which a two-level bootstrap (seeds, then images) is computed.
TWO_LEVEL_SEEDS = 3


def finished_runs(runs: dict[str, RunResult]) -> dict[str, RunResult]:
    missing = [name for name, run in runs.items() if not all(r.finished for r in run.seeds)]
    if missing:
        raise ValueError(f"runs not finished: {missing}; train them first")
    return runs


def _value(x, digits: int = 2):
    """A number rounded for a table, or "–" (never NaN)."""
    return MISSING if x is None or not np.isfinite(x) else round(float(x), digits)


def _ci(low: float, high: float) -> str:
    return MISSING if np.isnan(low) or np.isnan(high) else f"[{low:.2f}, {high:.2f}]"


def over_seeds(run: RunResult, pick) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (ddof 1; NaN for one seed) over the run's seeds of
    ``pick(test_metrics)`` (a number or a per-class list)."""
    values = np.array([pick(r.metrics["test"]) for r in run.seeds], dtype=float)
    sd = values.std(axis=0, ddof=1) if len(values) > 1 else np.full(values.shape[1:], np.nan)
    return values.mean(axis=0), sd


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


def notes(runs: dict[str, RunResult], dataset: str | None = None, *extra: str) -> str:
    """The sentences under a table: why models are not comparable (once each), how they
    computed, the papers' printed-mean discrepancies of the models in the table, and
    ``extra``."""
    lines = [reasons_note(runs), computation_note(runs)]
    if dataset is not None:  # each note starts with its model's name
        shown = [n for n in printed_mean_notes(dataset) if n and n.split(":")[0] in runs]
        lines += [f"Published: {note}." for note in shown]
    return "\n\n".join(line for line in [*lines, *extra] if line)


def _published_column(name: str, dataset: str, classes: list[str]) -> np.ndarray:
    """The papers' per-class values and mean of ``name`` (NaN where none is published)."""
    published = per_class_auc(dataset)
    if name in published.columns:
        return published[name].reindex(classes).to_numpy(dtype=float)
    column = np.full(len(classes), np.nan)
    column[-1] = published_mean_auc(name, dataset) or np.nan
    return column


def auc_comparison(runs: dict[str, RunResult], dataset: str) -> pd.DataFrame:
    """Per-class and mean test AUC (%) of each model (mean over its seeds, with their sd), the
    bootstrap CI of its first seed, the published value and -- for comparable runs -- the
    difference. Classes with few test positives are marked and listed in ``attrs["note"]``
    (written under the table by :func:`cxrlib.paper.outputs.save_table`)."""
    runs = finished_runs(runs)
    first_run = next(iter(runs.values()))
    classes = [*first_run.metrics["classes"], "Mean"]
    predictions = first_run.predictions()
    small = small_classes(predictions)
    table = pd.DataFrame({"class": classes})
    table["test positives"] = [*(int(p) for p in predictions.labels.sum(axis=0)), MISSING]
    table["small class"] = [f"yes (< {SMALL_CLASS})" if c in small else "" for c in classes]
    for name, run in runs.items():
        ci = run.metrics["test_ci"]
        per_class, per_class_sd = over_seeds(run, lambda t: t["per_class_auc"])
        mean, mean_sd = over_seeds(run, lambda t: t["mean_auc"])
        ours = np.array([*per_class, mean], dtype=float)
        paper = _published_column(name, dataset, classes)
        table[name] = [_value(v) for v in ours]
        if len(run.seeds) > 1:  # a model trained once has no spread to show
            table[f"{name} sd ({len(run.seeds)} seeds)"] = [
                _value(v) for v in [*per_class_sd, mean_sd]
            ]
        lows = [*ci["per_class_low"], ci["mean_low"]]
        highs = [*ci["per_class_high"], ci["mean_high"]]
        table[f"{name} 95% CI (first seed)"] = [
            _ci(lo, hi) for lo, hi in zip(lows, highs, strict=True)
        ]
        table[f"{name} published"] = [_value(v) for v in paper]
        delta = ours - paper if comparable(run) else np.full(len(classes), np.nan)
        table[f"{name} Δ"] = [_value(v) for v in delta]
    table.attrs["note"] = notes(runs, dataset, _small_note(small))
    return table


def metrics_table(runs: dict[str, RunResult]) -> pd.DataFrame:
    """Mean AUC (mean ± sd over seeds) with the first seed's CI and the threshold metrics
    (mAP, CP, CR, CF1, OP, OR, OF1; means over seeds) per model, and the test score of the
    other checkpoint (``TEST_CHECKPOINT``'s alternative) where it was recorded."""
    rows = []
    keys = ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1")
    for name, run in finished_runs(runs).items():
        test, ci = run.metrics["test"], run.metrics["test_ci"]
        mean, sd = over_seeds(run, lambda t: t["mean_auc"])
        others, _ = over_seeds(run, lambda t: [t[k] for k in keys])
        other = run.metrics.get("other_checkpoint")
        rows.append(
            {
                "model": name,
                "split": run.metrics["split"],
                "seeds": len(run.seeds),
                "test images": test["num_images"],
                "tested checkpoint": run.metrics.get("test_checkpoint", "best"),
                "best epoch": run.metrics["best_epoch"],
                "mean AUC": _value(mean),
                "sd (seeds)": _value(sd),
                "95% CI (first seed)": _ci(ci["mean_low"], ci["mean_high"]),
                **{k: _value(v) for k, v in zip(keys, others, strict=True)},
                "classes without AUC": len(test["undefined_auc_classes"]),
                "other checkpoint": other["checkpoint"] if other else MISSING,
                "its mean AUC (first seed)": _value(other["test"]["mean_auc"])
                if other
                else MISSING,
            }
        )
    table = pd.DataFrame(rows)
    table.attrs["note"] = notes(runs)
    return table


def paired_comparison(run_a: RunResult, run_b: RunResult, resamples: int = 1000) -> dict:
    """Mean test AUC of ``a`` − ``b`` on the same test images, over every seed of each (a
    model's AUC is its mean over seeds): the paired bootstrap (CI and p-value), DeLong's test
    (``delong_p``) and, with three or more seeds of either, the two-level bootstrap
    (``two_level``)."""
    a, b = seed_predictions(run_a), seed_predictions(run_b)
    if a.image_ids != b.image_ids:
        raise ValueError(f"{run_a.folder} and {run_b.folder} were tested on different images")
    result = paired_bootstrap(a.labels, a.scores, b.scores, resamples=resamples)
    result["delong_p"] = delong_test(a.labels, a.scores, b.scores)["p_value"]
    if max(len(a.scores), len(b.scores)) >= TWO_LEVEL_SEEDS:
        result["two_level"] = two_level_bootstrap(a.labels, a.scores, b.scores, resamples)
    return result


def paired_columns(paired: dict, against: str) -> dict:
    """A table's columns of one paired comparison (:func:`paired_comparison`): the
    difference with its bootstrap CI and both p-values, written as :func:`format_p` does (a
    bootstrap p below its resolution reads "< 0.001", never 0), and the two-level bootstrap's
    interval where there are enough seeds."""
    two = paired.get("two_level")
    return {
        f"Δ vs {against}": round(paired["difference"], 2),
        "Δ 95% CI (images)": _ci(paired["ci_low"], paired["ci_high"]),
        "p (paired bootstrap)": format_p(paired["p_value"], paired["resamples"]),
        "p (DeLong)": format_p(paired["delong_p"]),
        "Δ 95% CI (seeds and images)": _ci(two["ci_low"], two["ci_high"]) if two else MISSING,
        "p (seeds and images)": format_p(two["p_value"], two["resamples"]) if two else MISSING,
    }


def mean_columns(run: RunResult, prefix: str = "") -> dict:
    """``mean AUC`` (over seeds), its ``sd``, the number of ``seeds`` and the first seed's CI."""
    mean, sd = over_seeds(run, lambda t: t["mean_auc"])
    ci = run.metrics["test_ci"]
    return {
        f"{prefix}mean AUC": _value(mean),
        f"{prefix}sd (seeds)": _value(sd),
        f"{prefix}seeds": len(run.seeds),
        f"{prefix}95% CI (first seed)": _ci(ci["mean_low"], ci["mean_high"]),
    }


def _reference_row(reference: str) -> dict:
    """The reference's own row of a paired comparison: Δ 0, nothing else to test."""
    nothing = {"difference": 0.0, "ci_low": np.nan, "ci_high": np.nan, "p_value": None}
    keys = paired_columns(nothing | {"delong_p": None, "resamples": 1}, reference)
    return {k: (0.0 if k.startswith("Δ vs") else MISSING) for k in keys}


def variant_table(runs: dict[str, RunResult], reference: str, dataset: str) -> pd.DataFrame:
    """Each variant's mean test AUC (± sd over seeds) with CI, its difference to ``reference``
    with the paired bootstrap CI and p-values (bootstrap, DeLong; seeds and images where there
    are enough seeds), the published mean AUC where a paper gives one, the difference to it for
    comparable runs, and the papers' own p-value against the reference where it exists."""
    runs = finished_runs(runs)
    rows = []
    for name, run in runs.items():
        published = published_mean_auc(name, dataset)
        mean = over_seeds(run, lambda t: t["mean_auc"])[0]
        row = {
            "model": name,
            **mean_columns(run),
            "published": _value(published),
            "Δ published": _value(mean - published) if comparable(run) and published else MISSING,
        }
        if name == reference:
            row |= _reference_row(reference)
        else:
            row |= paired_columns(paired_comparison(run, runs[reference]), reference)
        paper_p = published_p_value(name, dataset) if reference == "chexnet_tiny" else None
        row["p published (paired t-test)"] = MISSING if paper_p is None else f"{paper_p:.4f}"
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs["note"] = notes(runs, dataset, CONDITIONAL_NOTE)
    return table


def _hours(run: RunResult):
    hours = [r.device_hours for r in run.seeds]
    return MISSING if None in hours else round(sum(hours), 2)


def init_comparison(scratch: dict[str, RunResult], imagenet: dict[str, RunResult]) -> pd.DataFrame:
    """Scratch vs ImageNet initialisation (neither paper: both train from scratch): per model,
    both mean test AUCs (± sd over seeds) with CI, the difference ImageNet − scratch with the
    paired bootstrap CI and p-values on the same test images, and the device hours each took
    (all its seeds)."""
    rows = []
    for name, base in finished_runs(scratch).items():
        row = {
            "model": name,
            **mean_columns(base, "scratch "),
            "scratch device hours": _hours(base),
        }
        run = imagenet.get(name)
        if run is None or not all(r.finished for r in run.seeds):
            row["ImageNet mean AUC"] = "not run" if run is None else "not finished"
        else:
            row |= {
                **mean_columns(run, "ImageNet "),
                "ImageNet device hours": _hours(run),
                **paired_columns(paired_comparison(run, base), "scratch"),
            }
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs["note"] = notes(scratch, None, CONDITIONAL_NOTE)
    return table


def mean_auc_table(runs_by_dataset: dict[str, dict[str, RunResult]]) -> pd.DataFrame:
    """CTransCNN's comparison layout: one row per model, per dataset our mean test AUC (mean
    ± sd over seeds) with the first seed's CI, the published value and -- for comparable runs
    -- the difference."""
    models = list(dict.fromkeys(m for runs in runs_by_dataset.values() for m in runs))
    rows = []
    for model in models:
        row = {"model": model}
        for dataset, runs in runs_by_dataset.items():
            run = runs.get(model)
            done = run is not None and all(r.finished for r in run.seeds)
            mean, sd = over_seeds(run, lambda t: t["mean_auc"]) if done else (np.nan, np.nan)
            ci = run.metrics["test_ci"] if done else None
            paper = published_mean_auc(model, dataset)
            row |= {
                f"{dataset} ours": _value(mean),
                f"{dataset} sd (seeds)": _value(sd),
                f"{dataset} seeds": len(run.seeds) if done else 0,
                f"{dataset} 95% CI (first seed)": _ci(ci["mean_low"], ci["mean_high"])
                if ci
                else MISSING,
                f"{dataset} published": _value(paper),
                f"{dataset} Δ": _value(mean - paper)
                if done and paper and comparable(run)
                else MISSING,
            }
        rows.append(row)
    table = pd.DataFrame(rows)
    every = {f"{m} ({d})": r for d, runs in runs_by_dataset.items() for m, r in runs.items()}
    published = [
        n for d, runs in runs_by_dataset.items() for n in printed_mean_notes(d)
        if n.split(":")[0] in runs
    ]  # fmt: skip
    table.attrs["note"] = notes(every, None, *(f"Published: {n}." for n in published))
    return table
