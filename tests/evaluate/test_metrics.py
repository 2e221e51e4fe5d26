"""Metrics: against scikit-learn and hand-computed cases; CIs cover and shrink; paired test."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from cxrlib.evaluate.metrics import evaluate, per_class_auc
from cxrlib.evaluate.statistics import bootstrap_auc_ci, paired_bootstrap


def _data(n=300, k=4, seed=0, signal=1.5):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, k)) < 0.3).astype(int)
    scores = 1 / (1 + np.exp(-(rng.normal(size=(n, k)) + signal * (2 * y - 1))))
    return y, scores


def test_auc_and_map_match_sklearn():
    y, s = _data()
    out = evaluate(y, s)
    expected = [roc_auc_score(y[:, k], s[:, k]) * 100 for k in range(4)]
    assert np.allclose(out["per_class_auc"], expected)
    assert out["mean_auc"] == pytest.approx(np.mean(expected))
    ap = np.mean([average_precision_score(y[:, k], s[:, k]) for k in range(4)]) * 100
    assert out["mAP"] == pytest.approx(ap)  # no ties: the reference AP equals sklearn's


def test_hand_computed_threshold_metrics():
    y = np.array([[1, 0], [1, 1], [0, 0], [0, 1]])
    s = np.array([[0.9, 0.2], [0.4, 0.7], [0.6, 0.1], [0.3, 0.5]])
    out = evaluate(y, s, threshold=0.5)
    # class 0: TP 1 (row0), FP 1 (row2), FN 1 (row1); class 1: TP 2, FP 0, FN 0
    assert out["CP"] == pytest.approx((0.5 + 1.0) / 2 * 100)
    assert out["CR"] == pytest.approx((0.5 + 1.0) / 2 * 100)
    assert out["OP"] == pytest.approx(3 / 4 * 100) and out["OR"] == pytest.approx(3 / 4 * 100)
    assert out["OF1"] == pytest.approx(75.0) and out["CF1"] == pytest.approx(75.0)
    assert out["per_class_auc"] == [75.0, 100.0]


def test_class_without_positives_counts_as_half_and_is_flagged():
    y, s = _data(k=3)
    y[:, 1] = 0
    out = evaluate(y, s)
    assert np.isnan(out["per_class_auc"][1]) and out["undefined_auc_classes"] == [1]
    defined = [out["per_class_auc"][0], out["per_class_auc"][2]]
    assert out["mean_auc"] == pytest.approx((sum(defined) + 50.0) / 3)
    assert out["mean_auc_defined_only"] == pytest.approx(np.mean(defined))


def test_bootstrap_ci_covers_point_estimate_and_shrinks():
    small_y, small_s = _data(n=100)
    big_y, big_s = _data(n=1600)
    small = bootstrap_auc_ci(small_y, small_s, resamples=1000, seed=1)
    big = bootstrap_auc_ci(big_y, big_s, resamples=1000, seed=1)
    for y, s, ci in ((small_y, small_s, small), (big_y, big_s, big)):
        point = per_class_auc(y, s)
        assert (np.array(ci["per_class_low"]) <= point).all()
        assert (point <= np.array(ci["per_class_high"])).all()
        assert ci["mean_low"] <= evaluate(y, s)["mean_auc"] <= ci["mean_high"]
    assert big["mean_high"] - big["mean_low"] < (small["mean_high"] - small["mean_low"]) / 2
    assert bootstrap_auc_ci(small_y, small_s, seed=1) == small  # seeded
    with pytest.raises(ValueError, match="at least 1,000"):
        bootstrap_auc_ci(small_y, small_s, resamples=100)


def test_paired_bootstrap_detects_a_better_model():
    y, good = _data(n=500, signal=2.0)
    rng = np.random.default_rng(5)
    bad = np.clip(good + rng.normal(0, 0.4, good.shape), 0, 1)
    result = paired_bootstrap(y, good, bad, resamples=1000)
    assert result["difference"] > 0 and result["ci_low"] > 0 and result["p_value"] < 0.01
    same = paired_bootstrap(y, good, good, resamples=1000)
    assert same["difference"] == 0 and same["p_value"] == 1.0


def test_bad_inputs():
    with pytest.raises(ValueError, match="must both be N×K"):
        evaluate(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="0/1"):
        evaluate(np.full((3, 2), 2), np.zeros((3, 2)))


def test_published_numbers_equal_the_papers_tables(shared_dir):
    """The project's copy (cxrlib.paper.published) equals ../shared/design/paper_results."""
    import pandas as pd

    from cxrlib.paper import published

    folder = shared_dir / "design/paper_results"
    for text, name in (
        (published.CHEXNET_TABLE1_CXR11, "chexnet_table1_cxr11_auc.csv"),
        (published.CHEXNET_TABLE2_CXR14, "chexnet_table2_cxr14_auc.csv"),
        (published.CHEXNET_TABLE3_ABLATION_CXR11, "chexnet_table3_ablation_cxr11_auc.csv"),
        (published.CTRANSCNN_MEAN_AUC, "ctranscnn_mean_auc.csv"),
    ):
        assert text.strip() == (folder / name).read_text().strip()
    assert published.published_mean_auc("ctranscnn_tiny", "cxr14") == 78.47
    assert published.published_mean_auc("chexnet_tiny", "cxr11") == 82.56
    assert published.published_mean_auc("chexnet_m3", "cxr11") == 81.78
    assert published.published_mean_auc("densenet121", "cxr11") is None
    assert isinstance(published.per_class_auc("cxr14"), pd.DataFrame)


def test_vectorised_bootstrap_auc_equals_sklearn_per_resample():
    from cxrlib.evaluate.statistics import _bootstrap_indices, _resampled_auc

    y, s = _data(n=60, k=3)
    s = np.round(s, 1)  # ties, handled as scikit-learn does
    y[:, 2] = 0
    y[0, 2] = 1  # a rare class: some resamples have no positive
    indices = _bootstrap_indices(60, 50, seed=3)
    fast = _resampled_auc(y, s, indices)
    for row, index in zip(fast, indices, strict=True):
        slow = per_class_auc(y[index], s[index])
        assert np.allclose(row, slow, equal_nan=True)
