"""DeLong's test for correlated ROC AUCs against an independent, literal implementation of
DeLong et al. (Biometrics 44:837, 1988): the pairwise kernel ψ over every positive-negative
pair, structural components V10/V01, and their sample covariance matrices S10, S01."""

from __future__ import annotations

import numpy as np
import pytest

from cxrlib.evaluate.statistics import delong_test, format_p, paired_bootstrap


def _literal_delong(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """z and p of AUC_a − AUC_b for one class, as the 1988 paper writes it (O(m·n))."""
    from scipy.stats import norm

    positives, negatives = y == 1, y == 0
    m, n = positives.sum(), negatives.sum()
    v10, v01 = [], []
    for scores in (a, b):
        x, w = scores[positives][:, None], scores[negatives][None, :]
        psi = (x > w) + 0.5 * (x == w)  # m × n
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
    auc = np.array([v.mean() for v in v10])
    s10, s01 = np.cov(np.array(v10)), np.cov(np.array(v01))  # 2×2, ddof 1
    covariance = s10 / m + s01 / n
    contrast = np.array([1.0, -1.0])
    z = contrast @ auc / np.sqrt(contrast @ covariance @ contrast)
    return float(z), float(2 * norm.sf(abs(z)))


def _data(rng, n=240, k=4, ties=False):
    y = rng.integers(0, 2, (n, k))
    a = y + rng.normal(0, 1.0, (n, k))
    b = y + rng.normal(0, 1.4, (n, k)) + 0.3 * (a - y)  # correlated with a
    if ties:
        a, b = np.round(a, 1), np.round(b, 1)
    return y, a, b


@pytest.mark.parametrize("ties", [False, True])
def test_per_class_delong_equals_the_literal_1988_formulation(ties):
    y, a, b = _data(np.random.default_rng(1), ties=ties)
    result = delong_test(y, a, b)
    for k in range(y.shape[1]):
        z, p = _literal_delong(y[:, k], a[:, k], b[:, k])
        assert result["per_class_z"][k] == pytest.approx(z, rel=1e-9)
        assert result["per_class_p"][k] == pytest.approx(p, rel=1e-9)
    # one class: the mean's test is the class's test
    single = delong_test(y[:, :1], a[:, :1], b[:, :1])
    assert single["z"] == pytest.approx(result["per_class_z"][0], rel=1e-9)


def test_delong_of_the_mean_agrees_with_the_paired_bootstrap():
    y, a, b = _data(np.random.default_rng(2), n=400, k=5)
    delong = delong_test(y, a, b)
    boot = paired_bootstrap(y, a, b, resamples=2000, seed=3)
    assert delong["difference"] == pytest.approx(boot["difference"], abs=1e-9)
    boot_sd = (boot["ci_high"] - boot["ci_low"]) / (2 * 1.96)
    delong_sd = delong["difference"] / delong["z"]
    assert delong_sd == pytest.approx(boot_sd, rel=0.15)


def test_delong_is_calibrated_under_the_null():
    """Two models of the same quality: about 5 % of tests reject at 0.05 (binomial bounds)."""
    rng = np.random.default_rng(4)
    rejections = 0
    trials = 300
    for _ in range(trials):
        y = rng.integers(0, 2, (150, 3))
        common = rng.normal(0, 1, (150, 3))
        a = y + common + rng.normal(0, 1, (150, 3))
        b = y + common + rng.normal(0, 1, (150, 3))
        rejections += delong_test(y, a, b)["p_value"] < 0.05
    assert 3 <= rejections <= 30  # Binomial(300, 0.05): mean 15, P(outside) < 1e-3


def test_seeds_identical_predictions_and_undefined_classes():
    y, a, b = _data(np.random.default_rng(5), k=3)
    same = delong_test(y, a, a)
    assert same["difference"] == 0 and same["p_value"] == 1.0
    y[:, 2] = 0  # no positives: 50 for both models, no test for the class
    result = delong_test(y, a, b)
    assert np.isnan(result["per_class_p"][2]) and np.isfinite(result["p_value"])
    # seeds: the model's AUC is the mean over its seeds; two equal seeds change nothing
    twice = delong_test(y, np.stack([a, a]), b)
    assert twice["z"] == pytest.approx(result["z"]) and twice["seeds"] == (2, 1)
    boot = paired_bootstrap(y, np.stack([a, a]), b)
    assert boot["difference"] == pytest.approx(paired_bootstrap(y, a, b)["difference"])
    with pytest.raises(ValueError, match="S×N×K"):
        delong_test(y, a[None, None], b)


def test_p_values_below_resolution_are_never_zero():
    rng = np.random.default_rng(6)
    y = rng.integers(0, 2, (300, 2))
    good, bad = y + rng.normal(0, 0.3, y.shape), rng.normal(0, 1, y.shape)
    boot = paired_bootstrap(y, good, bad, resamples=1000)
    assert boot["p_below_resolution"] and format_p(boot["p_value"], 1000) == "< 0.001"
    delong = delong_test(y, good, bad)
    assert delong["p_value"] < 1e-10 and format_p(delong["p_value"]) != "0"
    assert format_p(0.0123) == "0.012" and format_p(3.4e-7) == "3.4e-07"
    assert format_p(0.0) == "< 1e-300" and format_p(None) == "–"


def test_the_two_level_bootstrap_puts_training_variance_into_its_interval():
    """Seeds that disagree (training variance) widen the interval of a comparison over seeds
    and images beyond the paired bootstrap's, which holds the trained models fixed; with
    identical seeds the two agree."""
    from cxrlib.evaluate.statistics import two_level_bootstrap

    rng = np.random.default_rng(3)
    y, a, b = _data(rng, n=300)
    noisy = np.stack([a + rng.normal(0, s, a.shape) for s in (0.2, 1.0, 2.0)])  # 3 seeds
    steady = np.stack([a, a, a])
    fixed = paired_bootstrap(y, noisy, b, resamples=1000)
    both = two_level_bootstrap(y, noisy, b, resamples=1000)
    assert both["difference"] == pytest.approx(fixed["difference"])
    assert both["seeds"] == (3, 1)
    assert both["ci_high"] - both["ci_low"] > 1.2 * (fixed["ci_high"] - fixed["ci_low"])
    same = two_level_bootstrap(y, steady, b, resamples=1000)
    one = paired_bootstrap(y, a, b, resamples=1000)
    assert same["ci_low"] == pytest.approx(one["ci_low"]) and same["ci_high"] == pytest.approx(
        one["ci_high"]
    )
