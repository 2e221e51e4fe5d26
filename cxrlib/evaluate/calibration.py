"""How far a model's probabilities can be trusted: expected calibration error over equal-mass
bins, the Brier score, reliability curves, and temperature scaling fitted per class.

Neither paper asks it. References: C. Guo, G. Pleiss, Y. Sun and K. Q. Weinberger, "On
calibration of modern neural networks", ICML 2017 (ECE, temperature scaling); J. Nixon et al.,
"Measuring calibration in deep learning", CVPR Workshops 2019 (equal-mass -- "adaptive" --
bins, which put the same number of predictions in every bin, so that the many near-zero
probabilities of a rare finding do not leave most bins empty).

Multi-label: every class is its own binary problem (a sigmoid output), so every quantity here
is per class; a model's figure is the unweighted mean over its classes, like the mean AUC.
Temperature scaling divides a class's logit by one positive number ``T`` fitted on the
validation split (negative log-likelihood): a monotone map, so AUC, ranking and the decisions
at thresholds moved the same way never change -- only how far the probabilities can be read as
frequencies. Pure functions of NumPy arrays; probabilities in [0, 1], not percentages.
"""

from __future__ import annotations

import numpy as np

from cxrlib.evaluate.metrics import check_scores

#: The number of equal-mass bins of the expected calibration error and the reliability curves.
ECE_BINS = 15
#: Logits are clipped to +-this while a temperature is fitted (a probability of exactly 0 or 1
#: -- a saturated float32 sigmoid -- would make the log-likelihood infinite).
_FIT_CLIP = 40.0
#: Temperatures are searched in [1/20, 20]: outside it the model says (almost) nothing.
_LOG_T_BOUND = float(np.log(20.0))
TEMPERATURE_METHOD = (
    "temperature scaling per class: p' = sigmoid(logit(p) / T), T fitted on the validation "
    "split by negative log-likelihood"
)


def equal_mass_bins(y_prob: np.ndarray, bins: int = ECE_BINS) -> list[np.ndarray]:
    """The indices of ``y_prob`` (1-D) cut into ``bins`` groups of (nearly) equal size in order
    of probability (ties stay in input order); fewer groups when there are fewer values."""
    y_prob = np.asarray(y_prob, dtype=np.float64)
    if bins < 1:
        raise ValueError(f"bins must be at least 1; got {bins}")
    order = np.argsort(y_prob, kind="stable")
    return [part for part in np.array_split(order, min(bins, len(order))) if len(part)]


def reliability_curve(
    y_true: np.ndarray, y_prob: np.ndarray, bins: int = ECE_BINS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One class's reliability curve over equal-mass bins: per bin the mean predicted
    probability, the observed share of positives and the number of predictions."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    groups = equal_mass_bins(y_prob, bins)
    predicted = np.array([y_prob[g].mean() for g in groups])
    observed = np.array([y_true[g].mean() for g in groups])
    counts = np.array([len(g) for g in groups])
    return predicted, observed, counts


def expected_calibration_error(
    y_true: np.ndarray, y_prob: np.ndarray, bins: int = ECE_BINS
) -> float:
    """One class's ECE: the count-weighted mean over equal-mass bins of |mean predicted
    probability - observed share of positives| (0 = calibrated; in probability units)."""
    predicted, observed, counts = reliability_curve(y_true, y_prob, bins)
    return float(np.sum(counts * np.abs(predicted - observed)) / counts.sum())


def brier_score(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    """One class's Brier score: the mean squared difference of probability and 0/1 label."""
    y_true = np.asarray(y_true, dtype=np.float64)
    return float(np.mean((np.asarray(y_prob, dtype=np.float64) - y_true) ** 2))


def logit(y_prob: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)): -inf at 0 and inf at 1 (no clipping, so that no two probabilities
    become one and no ranking -- no AUC -- changes)."""
    p = np.asarray(y_prob, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)) without overflow, and exact in the far tails (tiny probabilities stay
    apart instead of becoming 0)."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _nll(y_true: np.ndarray, z: np.ndarray) -> float:
    """Mean binary negative log-likelihood of labels ``y_true`` under logits ``z``."""
    return float(np.mean(np.logaddexp(0.0, z) - y_true * z))


def fit_temperature(y_true: np.ndarray, y_prob: np.ndarray) -> float | None:
    """One class's temperature: the T in [1/20, 20] minimising the negative log-likelihood of
    ``sigmoid(logit(y_prob) / T)``; None when the labels are all equal (nothing to fit)."""
    y_true = np.asarray(y_true, dtype=np.float64)
    if y_true.min() == y_true.max():
        return None
    from scipy.optimize import minimize_scalar  # here: predict applies temperatures without it

    z = np.clip(logit(y_prob), -_FIT_CLIP, _FIT_CLIP)
    found = minimize_scalar(
        lambda log_t: _nll(y_true, z / np.exp(log_t)),
        bounds=(-_LOG_T_BOUND, _LOG_T_BOUND),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(np.exp(found.x))


def fit_temperatures(y_true: np.ndarray, y_prob: np.ndarray) -> list[float | None]:
    """:func:`fit_temperature` of every class of N×K labels and probabilities."""
    y_true, y_prob = check_scores(y_true, y_prob)
    return [fit_temperature(y_true[:, k], y_prob[:, k]) for k in range(y_true.shape[1])]


def apply_temperature(y_prob: np.ndarray, temperature: float | None) -> np.ndarray:
    """``sigmoid(logit(p) / T)`` of one class's probabilities; ``None`` keeps them as they are."""
    y_prob = np.asarray(y_prob, dtype=np.float64)
    if temperature is None:
        return y_prob
    if not temperature > 0:
        raise ValueError(f"a temperature must be positive; got {temperature}")
    return _sigmoid(logit(y_prob) / float(temperature))


def apply_temperatures(y_prob: np.ndarray, temperatures) -> np.ndarray:
    """:func:`apply_temperature` to every column of N×K probabilities, one temperature each."""
    y_prob = np.asarray(y_prob, dtype=np.float64)
    if y_prob.ndim != 2 or y_prob.shape[1] != len(temperatures):
        raise ValueError(
            f"probabilities {y_prob.shape} need one temperature per column; got {len(temperatures)}"
        )
    columns = [apply_temperature(y_prob[:, k], t) for k, t in enumerate(temperatures)]
    return np.stack(columns, axis=1)  # (N, K)


def calibration_summary(y_true: np.ndarray, y_prob: np.ndarray, bins: int = ECE_BINS) -> dict:
    """Per-class and mean ECE and Brier score of N×K labels and probabilities (probability
    units); a class with all labels equal has neither (None), and the means skip it."""
    y_true, y_prob = check_scores(y_true, y_prob)
    ece, brier = [], []
    for k in range(y_true.shape[1]):
        defined = 0 < y_true[:, k].sum() < len(y_true)
        ece.append(
            expected_calibration_error(y_true[:, k], y_prob[:, k], bins) if defined else None
        )
        brier.append(brier_score(y_true[:, k], y_prob[:, k]) if defined else None)

    def mean(values):
        kept = [v for v in values if v is not None]
        return float(np.mean(kept)) if kept else None

    return {
        "per_class_ece": ece,
        "per_class_brier": brier,
        "mean_ece": mean(ece),
        "mean_brier": mean(brier),
        "bins": bins,
    }
