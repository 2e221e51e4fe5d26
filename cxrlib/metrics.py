"""Multi-label metrics as the papers compute them, with bootstrap confidence intervals.

Definitions follow the authors' evaluation code (CTransCNN repository, ``multilabel_auc.py``
and ``multilabel_eval_metrics.py``, themselves from mmcls):

* AUC per class (ROC AUC); the mean AUC is the unweighted mean over classes. A class whose
  test labels are all equal has no AUC: the papers count it as 0.5 -- we do the same in the
  paper-comparable ``mean_auc`` and flag the class (``undefined_auc_classes``).
* mAP: mean over classes of average precision (precision averaged at each positive, ranked by
  score).
* CP, CR, CF1 (per-class precision/recall averaged over classes, F1 of the two) and OP, OR, OF1
  (pooled over all labels), with a label predicted positive when its score >= ``threshold``.

All values are percentages, like the papers' tables. Bootstrap confidence intervals resample
test images with replacement (seeded); :func:`paired_bootstrap` compares two models on the
same images.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

EPS = float(np.finfo(np.float32).eps)


def _check(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_score = np.asarray(y_true), np.asarray(y_score, dtype=np.float64)
    if y_true.shape != y_score.shape or y_true.ndim != 2:
        raise ValueError(f"y_true {y_true.shape} and y_score {y_score.shape} must both be N×K")
    if not np.isin(y_true, (0, 1)).all():
        raise ValueError("y_true must hold 0/1 labels")
    return y_true.astype(np.int64), y_score


def per_class_auc(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """ROC AUC per class (%), NaN where a class has a single label value."""
    y_true, y_score = _check(y_true, y_score)
    out = np.full(y_true.shape[1], np.nan)
    for k in range(y_true.shape[1]):
        if 0 < y_true[:, k].sum() < len(y_true):
            out[k] = roc_auc_score(y_true[:, k], y_score[:, k]) * 100.0
    return out


def paper_mean_auc(aucs: np.ndarray) -> float:
    """The papers' mean AUC: undefined classes count as 50 %."""
    return float(np.where(np.isnan(aucs), 50.0, aucs).mean())


def average_precision(y_true_k: np.ndarray, y_score_k: np.ndarray) -> float:
    """AP of one class (%): precision at each positive, ranked by score, averaged."""
    order = np.argsort(-y_score_k, kind="stable")
    positives = y_true_k[order] == 1
    true_positives = np.cumsum(positives)
    precision = true_positives / np.arange(1, len(order) + 1)
    return float(precision[positives].sum() / max(positives.sum(), EPS) * 100.0)


def evaluate(y_true: np.ndarray, y_score: np.ndarray, threshold: float = 0.5) -> dict:
    """All metrics of the papers for N×K labels and scores (probabilities)."""
    y_true, y_score = _check(y_true, y_score)
    aucs = per_class_auc(y_true, y_score)
    predicted = y_score >= threshold
    tp = (predicted & (y_true == 1)).sum(axis=0)
    fp = (predicted & (y_true == 0)).sum(axis=0)
    fn = (~predicted & (y_true == 1)).sum(axis=0)
    cp = float(np.mean(tp / np.maximum(tp + fp, EPS)) * 100.0)
    cr = float(np.mean(tp / np.maximum(tp + fn, EPS)) * 100.0)
    op = float(tp.sum() / max(tp.sum() + fp.sum(), EPS) * 100.0)
    orc = float(tp.sum() / max(tp.sum() + fn.sum(), EPS) * 100.0)
    return {
        "per_class_auc": aucs.tolist(),
        "mean_auc": paper_mean_auc(aucs),
        "mean_auc_defined_only": float(np.nanmean(aucs)) if np.isfinite(aucs).any() else None,
        "undefined_auc_classes": np.flatnonzero(np.isnan(aucs)).tolist(),
        "mAP": float(
            np.mean(
                [average_precision(y_true[:, k], y_score[:, k]) for k in range(y_true.shape[1])]
            )
        ),
        "CP": cp,
        "CR": cr,
        "CF1": 2 * cp * cr / max(cp + cr, EPS),
        "OP": op,
        "OR": orc,
        "OF1": 2 * op * orc / max(op + orc, EPS),
        "threshold": threshold,
        "num_images": len(y_true),
    }


def _bootstrap_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _resampled_auc(y_true: np.ndarray, y_score: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Per-class AUC (%) of every resample at once (R×K; NaN where a resample has a single
    label value): Mann-Whitney U from average ranks, the same number as ``roc_auc_score``."""
    out = np.full((len(indices), y_true.shape[1]), np.nan)
    for k in range(y_true.shape[1]):
        labels = y_true[indices, k]  # (R, N)
        ranks = rankdata(y_score[indices, k], axis=1)  # average ranks handle ties
        positives = labels.sum(axis=1)
        negatives = labels.shape[1] - positives
        u = (ranks * labels).sum(axis=1) - positives * (positives + 1) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            auc = u / (positives * negatives) * 100.0
        out[:, k] = np.where((positives > 0) & (negatives > 0), auc, np.nan)
    return out


def _paper_means(samples: np.ndarray) -> np.ndarray:
    """Row-wise paper mean AUC of R×K samples (undefined classes count 50)."""
    return np.where(np.isnan(samples), 50.0, samples).mean(axis=1)


def bootstrap_auc_ci(
    y_true: np.ndarray,
    y_score: np.ndarray,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """Percentile bootstrap CIs of every per-class AUC and of the paper's mean AUC (%).

    Resamples in which a class has a single label value are skipped for that class (its CI
    then rests on fewer resamples, reported in ``resamples_used``).
    """
    y_true, y_score = _check(y_true, y_score)
    if resamples < 1000:
        raise ValueError("use at least 1,000 bootstrap resamples")
    samples = _resampled_auc(y_true, y_score, _bootstrap_indices(len(y_true), resamples, seed))
    alpha = (1 - level) / 2 * 100
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN bounds
        low = np.nanpercentile(samples, alpha, axis=0)
        high = np.nanpercentile(samples, 100 - alpha, axis=0)
    means = _paper_means(samples)
    return {
        "per_class_low": low.tolist(),
        "per_class_high": high.tolist(),
        "resamples_used": np.isfinite(samples).sum(axis=0).tolist(),
        "mean_low": float(np.percentile(means, alpha)),
        "mean_high": float(np.percentile(means, 100 - alpha)),
        "level": level,
        "resamples": resamples,
        "seed": seed,
    }


def paired_bootstrap(
    y_true: np.ndarray,
    score_a: np.ndarray,
    score_b: np.ndarray,
    resamples: int = 1000,
    seed: int = 0,
) -> dict:
    """Compare the mean AUC of two models on the same images (paired bootstrap).

    Returns the observed difference (a − b, in AUC points), its 95% CI, and the two-sided
    p-value: twice the smaller share of resampled differences on either side of zero.
    """
    y_true, score_a = _check(y_true, score_a)
    _, score_b = _check(y_true, score_b)
    observed = paper_mean_auc(per_class_auc(y_true, score_a)) - paper_mean_auc(
        per_class_auc(y_true, score_b)
    )
    indices = _bootstrap_indices(len(y_true), resamples, seed)
    diffs = _paper_means(_resampled_auc(y_true, score_a, indices)) - _paper_means(
        _resampled_auc(y_true, score_b, indices)
    )
    p = 2 * min((diffs <= 0).mean(), (diffs >= 0).mean())
    return {
        "difference": float(observed),
        "ci_low": float(np.percentile(diffs, 2.5)),
        "ci_high": float(np.percentile(diffs, 97.5)),
        "p_value": float(min(1.0, max(p, 1.0 / resamples))),
        "resamples": resamples,
    }


YOUDEN = "Youden's J (sensitivity + specificity - 1) maximised on the validation split"


def operating_points(y_true: np.ndarray, y_score: np.ndarray) -> list[float | None]:
    """Per class, the probability threshold that maximises Youden's J on (``y_true``,
    ``y_score``) -- the validation split's; None for a class with one label value only."""
    from sklearn.metrics import roc_curve

    y_true, y_score = _check(y_true, y_score)
    points: list[float | None] = []
    for k in range(y_true.shape[1]):
        if y_true[:, k].min() == y_true[:, k].max():
            points.append(None)
            continue
        fpr, tpr, thresholds = roc_curve(y_true[:, k], y_score[:, k])
        best = int(np.argmax(tpr - fpr))
        points.append(float(min(thresholds[best], 1.0)))  # roc_curve's first threshold is inf
    return points
