"""Multi-label metrics as the papers compute them, and per-class operating points.

Definitions follow the authors' evaluation code (CTransCNN repository, ``multilabel_auc.py``
and ``multilabel_eval_metrics.py``, themselves from mmcls):

* AUC per class (ROC AUC); the mean AUC is the unweighted mean over classes. A class whose
  test labels are all equal has no AUC: the papers count it as 0.5 -- we do the same in the
  paper-comparable ``mean_auc`` and flag the class (``undefined_auc_classes``).
* mAP: mean over classes of average precision (precision averaged at each positive, ranked by
  score).
* CP, CR, CF1 (per-class precision/recall averaged over classes, F1 of the two) and OP, OR, OF1
  (pooled over all labels), with a label predicted positive when its score >= ``threshold``.

All values are percentages, like the papers' tables. Confidence intervals and tests are
:mod:`cxrlib.evaluate.statistics`.
"""

from __future__ import annotations

import numpy as np

EPS = float(np.finfo(np.float32).eps)
#: A class with fewer test positives than this is flagged in per-class tables: its AUC rests
#: on a handful of images (CXR14 Hernia has 9 in the papers' split, CXR11 ETT-Abnormal 6).
SMALL_CLASS = 10


def check_scores(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels (0/1, N×K) and scores (N×K) as arrays, or a ValueError saying what is wrong."""
    y_true, y_score = np.asarray(y_true), np.asarray(y_score, dtype=np.float64)
    if y_true.shape != y_score.shape or y_true.ndim != 2:
        raise ValueError(f"y_true {y_true.shape} and y_score {y_score.shape} must both be N×K")
    if not np.isin(y_true, (0, 1)).all():
        raise ValueError("y_true must hold 0/1 labels")
    return y_true.astype(np.int64), y_score


def per_class_auc(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """ROC AUC per class (%), NaN where a class has a single label value."""
    from sklearn.metrics import roc_auc_score  # here: scikit-learn takes 1 s to import

    y_true, y_score = check_scores(y_true, y_score)
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
    y_true, y_score = check_scores(y_true, y_score)
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


YOUDEN = "Youden's J (sensitivity + specificity - 1) maximised on the validation split"


def operating_points(y_true: np.ndarray, y_score: np.ndarray) -> list[float | None]:
    """Per class, the probability threshold that maximises Youden's J on (``y_true``,
    ``y_score``) -- the validation split's; None for a class with one label value only."""
    from sklearn.metrics import roc_curve  # here: scikit-learn takes 1 s to import

    y_true, y_score = check_scores(y_true, y_score)
    points: list[float | None] = []
    for k in range(y_true.shape[1]):
        if y_true[:, k].min() == y_true[:, k].max():
            points.append(None)
            continue
        fpr, tpr, thresholds = roc_curve(y_true[:, k], y_score[:, k])
        best = int(np.argmax(tpr - fpr))
        points.append(float(min(thresholds[best], 1.0)))  # roc_curve's first threshold is inf
    return points
