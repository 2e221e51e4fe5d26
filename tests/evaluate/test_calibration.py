"""Calibration against independent computations: scikit-learn's ``calibration_curve`` and
``brier_score_loss``, a literal ECE written out bin by bin, temperatures recovered from data
made with a known one, and AUC unchanged by temperature scaling."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, roc_auc_score

from cxrlib.evaluate.calibration import (
    apply_temperature,
    apply_temperatures,
    brier_score,
    calibration_summary,
    equal_mass_bins,
    expected_calibration_error,
    fit_temperature,
    fit_temperatures,
    reliability_curve,
)
from cxrlib.evaluate.metrics import per_class_auc


def _data(n: int, seed: int = 0, temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from sigmoid(z) and the probabilities of a model whose logit is
    z · temperature (over-confident for temperature > 1): the temperature that calibrates it
    is ``temperature``."""
    rng = np.random.default_rng(seed)
    z = rng.normal(-1.0, 1.5, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return y, 1 / (1 + np.exp(-z * temperature))


def _literal_ece(y: np.ndarray, p: np.ndarray, bins: int) -> float:
    """ECE as Guo et al. write it: sum over bins of |B|/n · |acc(B) − conf(B)|, the bins the
    sorted probabilities cut into ``bins`` runs of equal length."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    size = len(p) // bins
    total = 0.0
    for b in range(bins):
        members = order[b * size : (b + 1) * size]
        accuracy = sum(y[i] for i in members) / len(members)
        confidence = sum(p[i] for i in members) / len(members)
        total += len(members) / len(p) * abs(accuracy - confidence)
    return total


def test_reliability_curve_and_ece_match_scikit_learn_and_a_literal_ece():
    y, p = _data(1500, temperature=2.0)
    predicted, observed, counts = reliability_curve(y, p, bins=15)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=15, strategy="quantile")
    np.testing.assert_allclose(observed, prob_true, atol=1e-12)
    np.testing.assert_allclose(predicted, prob_pred, atol=1e-12)
    assert set(counts) == {100}
    ece = expected_calibration_error(y, p, bins=15)
    assert ece == pytest.approx(_literal_ece(y, p, 15), abs=1e-12)
    assert ece == pytest.approx(np.mean(np.abs(prob_true - prob_pred)), abs=1e-12)
    assert ece > 0.03  # an over-confident model is visibly miscalibrated


def test_brier_score_matches_scikit_learn():
    y, p = _data(500, seed=1)
    assert brier_score(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-15)


def test_equal_mass_bins_are_equal_and_cover_every_prediction():
    p = np.random.default_rng(2).random(1003)
    groups = equal_mass_bins(p, 15)
    sizes = [len(g) for g in groups]
    assert len(groups) == 15 and max(sizes) - min(sizes) <= 1
    assert sorted(np.concatenate(groups)) == list(range(1003))
    assert all(p[a].max() <= p[b].min() for a, b in itertools.pairwise(groups))
    assert len(equal_mass_bins(p[:4], 15)) == 4  # fewer predictions than bins


@pytest.mark.parametrize("true_temperature", [0.6, 1.0, 2.5])
def test_fitted_temperature_recovers_the_one_the_data_were_made_with(true_temperature):
    y, p = _data(40_000, seed=3, temperature=true_temperature)
    fitted = fit_temperature(y, p)
    assert fitted == pytest.approx(true_temperature, rel=0.08)
    scaled = apply_temperature(p, fitted)
    assert expected_calibration_error(y, scaled) < 0.01
    if true_temperature != 1.0:
        assert expected_calibration_error(y, scaled) < expected_calibration_error(y, p)


def test_temperature_scaling_never_changes_auc():
    rng = np.random.default_rng(4)
    y = (rng.random((800, 5)) < 0.3).astype(int)
    p = 1 / (1 + np.exp(-(rng.normal(size=(800, 5)) * 2 + 1.5 * y)))
    p[:5, 0] = [0.0, 1.0, 1e-9, 1 - 1e-9, 0.5]  # saturated and extreme probabilities included
    for temperatures in ([0.3, 0.7, 1.0, 2.0, 8.0], fit_temperatures(y, p)):
        scaled = apply_temperatures(p, temperatures)
        np.testing.assert_array_equal(per_class_auc(y, scaled), per_class_auc(y, p))
        for k in range(5):
            assert roc_auc_score(y[:, k], scaled[:, k]) == roc_auc_score(y[:, k], p[:, k])


def test_a_class_with_one_label_value_has_no_temperature_and_no_ece():
    y, p = _data(200, seed=5)
    labels = np.stack([y, np.zeros_like(y)], axis=1)
    scores = np.stack([p, p], axis=1)
    assert fit_temperatures(labels, scores)[1] is None
    summary = calibration_summary(labels, scores)
    assert (
        summary["per_class_ece"][1] is None and summary["mean_ece"] == summary["per_class_ece"][0]
    )
    np.testing.assert_array_equal(apply_temperatures(scores, [1.5, None])[:, 1], p)
    with pytest.raises(ValueError, match="positive"):
        apply_temperature(p, 0.0)
