"""For whom a model fails: AUC and missed findings by patient subgroup (sex, age band, view),
with confidence intervals that resample patients, and a test of the largest gap.

Neither paper asks it; reviewers of chest X-ray classifiers now do: L. Seyyed-Kalantari,
H. Zhang, M. B. A. McDermott, I. Y. Chen and M. Ghassemi, "Underdiagnosis bias of artificial
intelligence algorithms applied to chest radiographs in under-served patient populations",
Nature Medicine 27:2176, 2021. NIH's metadata (X. Wang et al., CVPR 2017) gives every CXR14
image its patient's sex and age and the film's view position (PA or AP).

How it is computed, and why:

* **Patients, not images, are resampled** (a cluster bootstrap): NIH patients have up to
  dozens of films, which are not independent. Every resample draws the test set's patients
  with replacement (an image counts as often as its patient was drawn), once for all
  subgroups, so that a difference between two subgroups is resampled jointly -- a patient with
  AP and PA films, or films in two age bands, is in both.
* A subgroup's **mean AUC** is over the classes with positives and negatives in it; a gap
  between two subgroups is over the classes defined in both, so the two means are of the same
  classes. Classes with fewer than :data:`~cxrlib.evaluate.metrics.SMALL_CLASS` positives in a
  subgroup are counted and shown ("few positives"), never dropped silently.
* **The largest gap** of an attribute is the pair of its subgroups whose mean AUCs differ most;
  its p-value (two-sided, from the bootstrap distribution of the difference) is multiplied by
  the number of pairs it was chosen from (Bonferroni: 1 for sex and view, 10 for five age bands).
* **Missed findings at the operating point**: per class, the false-negative rate at the
  threshold chosen on the validation split (Youden's J); per image, "called normal" -- an image
  with at least one finding on which no class reaches its threshold. Seyyed-Kalantari et al.'s
  under-diagnosis rate is the false-positive rate of a trained "No Finding" label; the papers'
  models have no such label and the papers' CXR14 holds abnormal images only, so it does not
  apply as such: "called normal" is its nearest counterpart on abnormal images, and
  "normal flagged" (a normal image with some class over its threshold) is given where a split
  has images without findings.

AUCs are percentages, as elsewhere in the kit; rates are shares in [0, 1].
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd

from cxrlib.evaluate.metrics import SMALL_CLASS, check_scores
from cxrlib.evaluate.statistics import difference_summary

#: Age bands in years, [low, high): the last is open.
AGE_BANDS: tuple[tuple[str, float, float], ...] = (
    ("0–20", 0, 20),
    ("20–40", 20, 40),
    ("40–60", 40, 60),
    ("60–80", 60, 80),
    ("80+", 80, np.inf),
)
#: The subgroup attributes, the table columns they come from and their groups in order.
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "sex": ("F", "M"),
    "age": tuple(name for name, _, _ in AGE_BANDS),
    "view": ("PA", "AP"),
}


def age_bands(ages) -> np.ndarray:
    """Each age's band name (:data:`AGE_BANDS`); None where the age is missing or not in
    0-120 years (NIH's 2017 file has a few ages over 400)."""
    ages = pd.to_numeric(pd.Series(ages), errors="coerce").to_numpy(dtype=np.float64)
    out = np.full(len(ages), None, dtype=object)
    for name, low, high in AGE_BANDS:
        out[(ages >= low) & (ages < high) & (ages <= 120)] = name
    return out


def subgroups_of(table: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per attribute the table has (columns ``sex``, ``age``, ``view``), each row's group name
    (None where unknown or not one of :data:`ATTRIBUTES`' groups)."""
    out = {}
    for attribute, groups in ATTRIBUTES.items():
        if attribute not in table.columns:
            continue
        if attribute == "age":
            values = age_bands(table["age"])
        else:
            values = table[attribute].astype(str).str.strip().str.upper().to_numpy(dtype=object)
        out[attribute] = np.where(np.isin(values, groups), values, None)
    return out


def patient_weights(patients, resamples: int, seed: int) -> np.ndarray:
    """R×N weights of N images: in each of ``resamples`` resamples the distinct patients are
    drawn with replacement, and an image weighs as often as its patient was drawn."""
    codes, uniques = pd.factorize(pd.Series(patients).astype(str))
    rng = np.random.default_rng([seed, 3])
    counts = rng.multinomial(len(uniques), np.full(len(uniques), 1.0 / len(uniques)), resamples)
    return counts[:, codes].astype(np.float64)  # (R, P) -> (R, N)


def weighted_auc(y_true: np.ndarray, y_score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """One class's AUC (%) under each of R weightings (R×N) of its N images: the weighted share
    of (positive, negative) pairs the score orders correctly, ties counting half -- with integer
    weights, exactly ``roc_auc_score`` of the images repeated that often. NaN where a weighting
    leaves no positive or no negative."""
    order = np.argsort(y_score, kind="stable")
    ranked = np.asarray(y_score)[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])  # tie groups
    y = np.asarray(y_true, dtype=np.float64)[order]
    w = np.atleast_2d(weights)[:, order]
    positive = np.add.reduceat(w * y, starts, axis=1)  # (R, G): weight per tie group
    negative = np.add.reduceat(w * (1 - y), starts, axis=1)
    below = np.cumsum(negative, axis=1) - negative  # negatives strictly below each group
    correct = (positive * (below + 0.5 * negative)).sum(axis=1)
    pairs = positive.sum(axis=1) * negative.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(pairs > 0, correct / pairs * 100.0, np.nan)


def _stacked(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels N×K and scores S×N×K (S seeds; N×K is S = 1)."""
    scores = np.asarray(scores, dtype=np.float64)
    stacked = scores[None] if scores.ndim == 2 else scores
    y_true, _ = check_scores(y_true, stacked[0])
    return y_true, stacked


def _group_aucs(y_true, scores, mask, weights) -> tuple[np.ndarray, np.ndarray]:
    """Per class, the observed AUC of the images in ``mask`` (K,) and under each resample
    (R×K), both averaged over seeds; NaN where a class has one label value there."""
    observed, resampled = [], []
    for k in range(y_true.shape[1]):
        y = y_true[mask, k]
        per_seed = [
            weighted_auc(y, s[mask, k], np.vstack([np.ones(mask.sum()), weights[:, mask]]))
            for s in scores
        ]
        mean = np.mean(per_seed, axis=0)  # (1 + R,)
        observed.append(mean[0])
        resampled.append(mean[1:])
    return np.array(observed), np.stack(resampled, axis=1)


def _nanmean_rows(values: np.ndarray, columns: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample without the class
        return np.nanmean(values[..., columns], axis=-1)


def subgroup_analysis(
    y_true: np.ndarray,
    scores: np.ndarray,
    groups: dict[str, np.ndarray],
    patients,
    thresholds: np.ndarray | None = None,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Subgroup AUCs, missed findings and gaps of one model.

    ``y_true`` N×K labels; ``scores`` N×K probabilities or S×N×K for S seeds (figures are
    means over seeds, every resample taking the same patients for all seeds); ``groups`` each
    attribute's group per image (:func:`subgroups_of`); ``patients`` each image's patient;
    ``thresholds`` the operating points, K or S×K (None: no missed-finding rates).

    Returns three tables: per (attribute, group) -- images, patients, classes in the mean and
    of them with few positives, mean AUC with its CI, "called normal", "normal flagged" and the
    mean false-negative rate; per (attribute, group, class) -- positives, AUC with CI and the
    false-negative rate; per attribute -- the largest gap (:func:`largest_gap`).
    """
    y_true, scores = _stacked(y_true, scores)
    patients = pd.Series(patients).astype(str).to_numpy()
    weights = patient_weights(patients, resamples, seed)
    points = None if thresholds is None else np.atleast_2d(np.asarray(thresholds, np.float64))
    percentiles = ((1 - level) / 2 * 100, (1 + level) / 2 * 100)
    rows, class_rows, gaps = [], [], []
    for attribute, members in groups.items():
        members = np.asarray(members, dtype=object)
        aucs = {}
        for group in (g for g in ATTRIBUTES[attribute] if (members == g).any()):
            mask = members == group
            aucs[group] = _group_aucs(y_true, scores, mask, weights)
            missed = _missed(y_true[mask], scores[:, mask], points)
            where = {"attribute": attribute, "group": group}
            rows.append(where | _group_row(y_true[mask], patients[mask], aucs[group], percentiles)
                        | missed["summary"])  # fmt: skip
            class_rows += [
                where | row | {"fnr": fnr}
                for row, fnr in zip(_class_rows(y_true[mask], aucs[group], percentiles),
                                    missed["fnr"], strict=True)
            ]  # fmt: skip
        gap = largest_gap(aucs, resamples)
        if gap is not None:
            gaps.append({"attribute": attribute, **gap})
    return pd.DataFrame(rows), pd.DataFrame(class_rows), pd.DataFrame(gaps)


def _percentiles(values: np.ndarray, percentiles) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # every resample without the class
        low, high = (float(np.nanpercentile(values, q)) for q in percentiles)
    return low, high


def _group_row(y_true, patients, aucs, percentiles) -> dict:
    """One subgroup's images, patients, classes in its mean (and of them with few positives),
    mean AUC and its interval."""
    observed, resampled = aucs
    defined = np.flatnonzero(np.isfinite(observed))
    low, high = _percentiles(_nanmean_rows(resampled, defined), percentiles)
    return {
        "images": len(y_true),
        "patients": len(set(patients)),
        "classes": len(defined),
        "few_positives": int((y_true.sum(axis=0)[defined] < SMALL_CLASS).sum()),
        "mean_auc": float(observed[defined].mean()) if len(defined) else np.nan,
        "ci_low": low,
        "ci_high": high,
    }


def _class_rows(y_true, aucs, percentiles) -> list[dict]:
    """Per class of one subgroup: its positives, AUC and interval."""
    observed, resampled = aucs
    rows = []
    for k in range(y_true.shape[1]):
        low, high = _percentiles(resampled[:, k], percentiles)
        rows.append(
            {"class": k, "positives": int(y_true[:, k].sum()), "auc": float(observed[k]),
             "ci_low": low, "ci_high": high}
        )  # fmt: skip
    return rows


def _missed(y_true: np.ndarray, scores: np.ndarray, points: np.ndarray | None) -> dict:
    """False-negative rate per class at the operating points, "called normal" and "normal
    flagged" of a subgroup's images, averaged over seeds (NaN without thresholds or cases)."""
    k = y_true.shape[1]
    empty = {"called_normal": np.nan, "normal_flagged": np.nan, "mean_fnr": np.nan}
    if points is None:
        return {"fnr": [np.nan] * k, "summary": empty}
    fnr, called, flagged = [], [], []
    for s, thresholds in zip(scores, itertools.cycle(points), strict=False):
        usable = np.isfinite(thresholds)
        over = (s >= thresholds) & usable  # (n, K): positive calls at each class's point
        with np.errstate(invalid="ignore", divide="ignore"):
            positives = y_true.sum(axis=0)
            rate = ((y_true == 1) & ~over).sum(axis=0) / positives
        fnr.append(np.where((positives > 0) & usable, rate, np.nan))
        abnormal = y_true.any(axis=1)
        called.append((~over[abnormal].any(axis=1)).mean() if abnormal.any() else np.nan)
        flagged.append(over[~abnormal].any(axis=1).mean() if (~abnormal).any() else np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        per_class = np.nanmean(fnr, axis=0)
        return {
            "fnr": per_class.tolist(),
            "summary": {
                "called_normal": float(np.mean(called)),
                "normal_flagged": float(np.mean(flagged)),
                "mean_fnr": float(np.nanmean(per_class))
                if np.isfinite(per_class).any()
                else np.nan,
            },
        }


def largest_gap(aucs: dict[str, tuple[np.ndarray, np.ndarray]], resamples: int) -> dict | None:
    """Of subgroups' (observed K, resampled R×K) AUCs, the pair whose mean AUCs -- over the
    classes defined in both -- differ most: ``worse``, ``better``, the gap (points) with its
    95% CI and its two-sided bootstrap p-value times the number of pairs (Bonferroni);
    None with fewer than two subgroups."""
    best = None
    pairs = list(itertools.combinations(aucs, 2))
    for a, b in pairs:
        (obs_a, _res_a), (obs_b, _res_b) = aucs[a], aucs[b]
        common = np.flatnonzero(np.isfinite(obs_a) & np.isfinite(obs_b))
        if not len(common):
            continue
        gap = float(obs_a[common].mean() - obs_b[common].mean())
        if best is None or abs(gap) > abs(best[0]):
            best = (gap, a, b, common)
    if best is None:
        return None
    gap, a, b, common = best
    diffs = _nanmean_rows(aucs[a][1], common) - _nanmean_rows(aucs[b][1], common)
    diffs = diffs[np.isfinite(diffs)]
    summary = difference_summary(gap, diffs, (1, 1))
    worse, better = (a, b) if gap < 0 else (b, a)
    sign = -1.0 if gap < 0 else 1.0
    return {
        "worse": worse,
        "better": better,
        "gap": abs(gap),
        "ci_low": sign * (summary["ci_low"] if sign > 0 else summary["ci_high"]),
        "ci_high": sign * (summary["ci_high"] if sign > 0 else summary["ci_low"]),
        "p_value": min(1.0, summary["p_value"] * len(pairs)),
        "pairs": len(pairs),
        "resamples": len(diffs),
        "classes": len(common),
    }
