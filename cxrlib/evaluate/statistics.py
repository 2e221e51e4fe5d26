"""Statistics of test AUCs: bootstrap confidence intervals, paired comparisons of two models
on the same test images (paired bootstrap, DeLong's test), a comparison over seeds and images
together, and p-values written honestly.

All AUCs are percentages. The paired bootstrap and DeLong's test treat the trained models as
fixed: they say whether the difference on *these* test images is larger than image sampling
explains, not whether retraining would reproduce it. :func:`two_level_bootstrap` resamples the
seeds of each model as well (seeds, then images), so training variance enters its interval.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import norm, rankdata

from cxrlib.evaluate.metrics import check_scores, paper_mean_auc, per_class_auc


def _bootstrap_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _resampled_auc(y_true: np.ndarray, y_score: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Per-class AUC (%) of every resample at once (R×K; NaN where a resample has a single
    label value): the Mann-Whitney U with ties counted a half, the same number as
    ``roc_auc_score``.

    A resample is a weighting of the N test images (how often each was drawn), so nothing is
    sorted per resample: the images are sorted by score once per class, and each resample's
    U is its positives' weights times the negative weight below them (plus half the negative
    weight tied with them), from one running sum -- O(R·N) per class instead of a sort of
    every resample."""
    resamples, n = indices.shape
    rows = np.arange(resamples)[:, None] * n
    # (R, N): how often resample r drew image i
    weights = np.bincount((indices + rows).ravel(), minlength=resamples * n).reshape(resamples, n)
    out = np.full((resamples, y_true.shape[1]), np.nan)
    for k in range(y_true.shape[1]):
        order = np.argsort(y_score[:, k], kind="stable")
        scores, labels = y_score[order, k], y_true[order, k].astype(bool)
        # each image's tie group in sorted order: [first, last + 1) of its equal scores
        first = np.searchsorted(scores, scores, side="left")
        after = np.searchsorted(scores, scores, side="right")
        drawn = weights[:, order]  # (R, N) in score order
        negatives = np.where(labels, 0, drawn)
        below = np.zeros((resamples, n + 1))
        np.cumsum(negatives, axis=1, out=below[:, 1:])  # below[:, j]: negatives among the first j
        tied = below[:, after] - below[:, first]
        u = (np.where(labels, drawn, 0) * (below[:, first] + tied / 2)).sum(axis=1)
        positives = drawn[:, labels].sum(axis=1)
        negative_count = n - positives
        with np.errstate(divide="ignore", invalid="ignore"):
            auc = u / (positives * negative_count) * 100.0
        out[:, k] = np.where((positives > 0) & (negative_count > 0), auc, np.nan)
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
    y_true, y_score = check_scores(y_true, y_score)
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


def _seeds(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels (N×K) and scores as S×N×K: one model's test scores from S seeds (runs that
    share one test set), or a single N×K array (S = 1)."""
    scores = np.asarray(scores, dtype=np.float64)
    stacked = scores[None] if scores.ndim == 2 else scores
    if stacked.ndim != 3:
        raise ValueError(f"scores must be N×K or S×N×K (S seeds); got shape {scores.shape}")
    y_true, _ = check_scores(y_true, stacked[0])
    for seed_scores in stacked[1:]:
        check_scores(y_true, seed_scores)
    return y_true, stacked


def paired_bootstrap(
    y_true: np.ndarray,
    score_a: np.ndarray,
    score_b: np.ndarray,
    resamples: int = 1000,
    seed: int = 0,
) -> dict:
    """Compare the mean AUC of two models on the same images (paired bootstrap).

    Scores are N×K, or S×N×K for S seeds of a model (its mean AUC is then the mean over its
    seeds; every resample takes the same images for all seeds and both models). Returns the
    observed difference (a − b, in AUC points), its 95% CI, and the two-sided p-value: twice
    the smaller share of resampled differences on either side of zero. A p-value below the
    bootstrap's resolution is returned as ``1/resamples`` with ``p_below_resolution`` True
    (to be read "< 1/resamples", :func:`format_p`), never as 0.
    """
    y_true, a = _seeds(y_true, score_a)
    _, b = _seeds(y_true, score_b)
    indices = _bootstrap_indices(len(y_true), resamples, seed)

    def resampled(scores: np.ndarray) -> np.ndarray:
        return np.mean([_paper_means(_resampled_auc(y_true, s, indices)) for s in scores], axis=0)

    observed = _mean_over_seeds(y_true, a) - _mean_over_seeds(y_true, b)
    return difference_summary(observed, resampled(a) - resampled(b), (len(a), len(b)))


def _mean_over_seeds(y_true: np.ndarray, scores: np.ndarray) -> float:
    """The paper mean AUC of S×N×K scores, averaged over the S seeds."""
    return float(np.mean([paper_mean_auc(per_class_auc(y_true, s)) for s in scores]))


def difference_summary(observed: float, diffs: np.ndarray, seeds: tuple[int, int]) -> dict:
    """A bootstrap's answer about a mean-AUC difference: the observed value, the 95% percentile
    interval of the R resampled ``diffs``, and the two-sided p-value (twice the smaller share on
    either side of zero), floored at 1/R with ``p_below_resolution`` saying so."""
    resamples = len(diffs)
    p = 2 * min((diffs <= 0).mean(), (diffs >= 0).mean())
    return {
        "difference": float(observed),
        "ci_low": float(np.percentile(diffs, 2.5)),
        "ci_high": float(np.percentile(diffs, 97.5)),
        "p_value": float(min(1.0, max(p, 1.0 / resamples))),
        "p_below_resolution": bool(p < 1.0 / resamples),
        "resamples": resamples,
        "seeds": seeds,
    }


def two_level_bootstrap(
    y_true: np.ndarray,
    score_a: np.ndarray,
    score_b: np.ndarray,
    resamples: int = 1000,
    seed: int = 0,
) -> dict:
    """The mean-AUC difference a − b with training variance in it: every resample draws each
    model's seeds with replacement, then the test images (the same for both), so the interval
    covers what retraining with other seeds and testing on other images would give. Scores are
    S×N×K (S seeds of a model on one test set); returns the observed difference (points), its
    95% interval and a two-sided p-value as :func:`paired_bootstrap`'s, with the seed counts.
    """
    y_true, a = _seeds(y_true, score_a)
    _, b = _seeds(y_true, score_b)
    rng = np.random.default_rng([seed, 2])
    indices = _bootstrap_indices(len(y_true), resamples, seed)
    # paper mean AUC of every seed on every image resample: (S, R)
    means_a = np.stack([_paper_means(_resampled_auc(y_true, s, indices)) for s in a])
    means_b = np.stack([_paper_means(_resampled_auc(y_true, s, indices)) for s in b])
    columns = np.arange(resamples)
    pick_a = rng.integers(0, len(a), size=(len(a), resamples))  # seeds drawn per resample
    pick_b = rng.integers(0, len(b), size=(len(b), resamples))
    diffs = means_a[pick_a, columns].mean(axis=0) - means_b[pick_b, columns].mean(axis=0)
    observed = _mean_over_seeds(y_true, a) - _mean_over_seeds(y_true, b)
    return difference_summary(observed, diffs, (len(a), len(b)))


def _structural_components(y_k: np.ndarray, scores_k: np.ndarray) -> tuple[float, np.ndarray]:
    """DeLong's structural components of one class: the AUC (0-1) and, per image, its
    influence -- (V10 − AUC)/m for a positive, (V01 − AUC)/n for a negative, each scaled by
    √(m/(m−1)) or √(n/(n−1)) so that the summed squares give DeLong's variance S10/m + S01/n
    exactly. V10 and V01 come from midranks (Sun & Xu, IEEE Signal Process. Lett. 21:1389,
    2014), the same numbers as DeLong et al.'s pairwise kernel (Biometrics 44:837, 1988)."""
    positive = y_k == 1
    m, n = int(positive.sum()), int((~positive).sum())
    combined = rankdata(scores_k)
    v10 = (combined[positive] - rankdata(scores_k[positive])) / n
    v01 = 1.0 - (combined[~positive] - rankdata(scores_k[~positive])) / m
    auc = float(v10.mean())
    influence = np.empty(len(y_k))
    influence[positive] = (v10 - auc) / m * np.sqrt(m / max(m - 1, 1))
    influence[~positive] = (v01 - auc) / n * np.sqrt(n / max(n - 1, 1))
    return auc, influence


def delong_test(y_true: np.ndarray, score_a: np.ndarray, score_b: np.ndarray) -> dict:
    """DeLong's test for two correlated ROC AUCs (the same test images), per class and for
    the papers' mean AUC (DeLong, DeLong & Clarke-Pearson, Biometrics 44:837, 1988).

    Per class it is the classic test: z = (AUC_a − AUC_b) / √(S10/m + S01/n) of the two
    models' structural components. The mean AUC is a mean of per-class AUCs computed on the
    same images, so its variance needs their covariances too: every image's influence on the
    difference of means is the mean of its per-class influences, and the variance is the sum
    of their squares (the same estimator; for one class it is exactly DeLong's). A class with
    one label value counts 50 for both models, as in the papers' mean, and adds nothing.
    Scores are N×K, or S×N×K for S seeds (a model's AUC is then its mean over seeds). AUC
    differences are in points (%); p-values are two-sided, from the normal distribution.
    """
    y_true, a = _seeds(y_true, score_a)
    _, b = _seeds(y_true, score_b)
    n_images, n_classes = y_true.shape
    differences = np.full(n_classes, np.nan)
    z = np.full(n_classes, np.nan)
    p = np.full(n_classes, np.nan)
    mean_influence = np.zeros(n_images)
    for k in range(n_classes):
        if not 0 < y_true[:, k].sum() < n_images:
            continue  # undefined AUC: 50 for both in the mean
        components_a = [_structural_components(y_true[:, k], s[:, k]) for s in a]
        components_b = [_structural_components(y_true[:, k], s[:, k]) for s in b]
        auc_a = np.mean([c[0] for c in components_a])
        auc_b = np.mean([c[0] for c in components_b])
        influence = np.mean([c[1] for c in components_a], axis=0) - np.mean(
            [c[1] for c in components_b], axis=0
        )
        differences[k] = (auc_a - auc_b) * 100.0
        z[k], p[k] = _z_and_p(auc_a - auc_b, float(np.sum(influence**2)), norm)
        mean_influence += influence / n_classes
    mean_difference = float(np.nansum(differences) / n_classes)
    mean_z, mean_p = _z_and_p(mean_difference / 100.0, float(np.sum(mean_influence**2)), norm)
    return {
        "per_class_difference": differences.tolist(),
        "per_class_z": z.tolist(),
        "per_class_p": p.tolist(),
        "difference": mean_difference,
        "z": mean_z,
        "p_value": mean_p,
        "seeds": (len(a), len(b)),
    }


def _z_and_p(difference: float, variance: float, norm) -> tuple[float, float]:
    """z and the two-sided p of a difference with its variance (p 1 when both are 0:
    identical predictions)."""
    if variance <= 0:
        return (0.0, 1.0) if difference == 0 else (float("inf"), 0.0)
    z = difference / np.sqrt(variance)
    return float(z), float(2 * norm.sf(abs(z)))


def format_p(p: float | None, resamples: int | None = None) -> str:
    """A p-value for a table: ``< 0.001`` when it is below a bootstrap's resolution
    (``1/resamples``), else two significant digits (``0.012``, ``3.4e-07``) -- never 0."""
    if p is None or np.isnan(p):
        return "–"
    if resamples is not None and p <= 1.0 / resamples:
        return f"< {1.0 / resamples:g}"
    if p == 0:  # a normal tail beyond double precision
        return "< 1e-300"
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"
