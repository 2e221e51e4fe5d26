"""Subgroup statistics against independent computations (scikit-learn's AUC on images repeated
as a resample repeats them, rates counted by hand), a planted gap found and an absent one not --
on synthetic scores and on the phantom, whose AP films hide findings by design -- and NIH's
real metadata read into the subgroup columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from cxrlib.data.phantom import AP_HIDDEN_SHARE, PhantomSpec, generate_phantom
from cxrlib.data.sets.cxr14 import CLASSES, read_boxes, read_metadata
from cxrlib.evaluate.subgroups import (
    ATTRIBUTES,
    age_bands,
    patient_weights,
    subgroup_analysis,
    subgroups_of,
    weighted_auc,
)


def test_weighted_auc_is_roc_auc_of_the_images_repeated_as_often():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 250)
    s = np.round(rng.random(250) + 0.4 * y, 1)  # many ties
    weights = rng.integers(0, 4, (6, 250)).astype(float)
    got = weighted_auc(y, s, weights)
    for r in range(6):
        repeated = np.repeat(np.arange(250), weights[r].astype(int))
        assert got[r] == pytest.approx(roc_auc_score(y[repeated], s[repeated]) * 100, abs=1e-10)
    assert np.isnan(weighted_auc(np.ones(5), np.arange(5.0), np.ones((1, 5))))[0]


def test_patient_weights_draw_patients_not_images():
    patients = np.array(["a", "a", "a", "b", "c", "c"])
    w = patient_weights(patients, resamples=200, seed=1)
    assert w.shape == (200, 6)
    assert (w[:, 0] == w[:, 1]).all() and (w[:, 1] == w[:, 2]).all() and (w[:, 4] == w[:, 5]).all()
    assert (w[:, [0, 3, 4]].sum(axis=1) == 3).all()  # three patients drawn in every resample


def test_age_bands_and_subgroup_columns():
    assert list(age_bands([0, 19.9, 20, 59, 80, 95, 414, None, "x"])) == [
        "0–20", "0–20", "20–40", "40–60", "80+", "80+", None, None, None,
    ]  # fmt: skip
    table = pd.DataFrame({"sex": ["f", "M", "O"], "age": [30, 70, 85], "view": ["ap", "PA", "LL"]})
    groups = subgroups_of(table)
    assert list(groups) == ["sex", "age", "view"]
    assert list(groups["sex"]) == ["F", "M", None] and list(groups["view"]) == ["AP", "PA", None]
    assert subgroups_of(table[["sex"]]).keys() == {"sex"}


def test_false_negative_rates_and_called_normal_counted_by_hand():
    y = np.array([[1, 0], [1, 1], [0, 1], [1, 0], [0, 0]])
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.3], [0.4, 0.2], [0.6, 0.1]])
    groups = {"sex": np.array(["F", "F", "F", "M", "M"])}
    table, classes, _ = subgroup_analysis(
        y, p, groups, ["p1", "p2", "p3", "p4", "p5"], thresholds=[0.5, 0.5], resamples=10
    )
    female = classes[classes["group"] == "F"].set_index("class")["fnr"]
    assert female[0] == pytest.approx(1 / 2) and female[1] == pytest.approx(1 / 2)
    rows = table.set_index("group")
    assert rows.loc["F", "called_normal"] == pytest.approx(1 / 3)  # image 3: 0.1, 0.3
    assert rows.loc["M", "called_normal"] == pytest.approx(1.0)  # image 4: 0.4, 0.2
    assert rows.loc["M", "normal_flagged"] == pytest.approx(1.0)  # image 5: 0.6 >= 0.5
    assert np.isnan(rows.loc["F", "normal_flagged"])  # no normal image there


def _planted(seed: int = 0, n: int = 1800, k: int = 4):
    """Scores whose separation is weaker on AP films than on PA films, and the same for both
    sexes; patients with three films each, views mixed within a patient."""
    rng = np.random.default_rng(seed)
    patients = np.repeat(np.arange(n // 3), 3)
    sex = np.repeat(np.where(rng.random(n // 3) < 0.5, "F", "M"), 3)
    view = np.where(rng.random(n) < 0.45, "AP", "PA")
    y = (rng.random((n, k)) < 0.25).astype(int)
    signal = np.where(view[:, None] == "AP", 0.6, 1.6)
    p = 1 / (1 + np.exp(-(rng.normal(size=(n, k)) + signal * y - 1)))
    return y, p, {"sex": sex, "view": view}, patients


def test_a_planted_gap_is_found_and_an_absent_one_is_not():
    y, p, groups, patients = _planted()
    table, _, gaps = subgroup_analysis(y, p, groups, patients, resamples=1000, seed=0)
    gaps = gaps.set_index("attribute")
    assert gaps.loc["view", "worse"] == "AP" and gaps.loc["view", "gap"] > 10
    assert gaps.loc["view", "p_value"] <= 0.002 and gaps.loc["view", "ci_low"] > 0
    assert (
        gaps.loc["sex", "p_value"] > 0.05
        and gaps.loc["sex", "ci_low"] < 0 < gaps.loc["sex", "ci_high"]
    )
    rows = table.set_index(["attribute", "group"])
    for group in ("F", "M", "AP", "PA"):
        row = rows.loc[("sex" if group in "FM" else "view", group)]
        assert row["ci_low"] < row["mean_auc"] < row["ci_high"]


def test_several_seeds_average_and_share_the_resamples():
    y, p, groups, patients = _planted(n=600)
    other = np.clip(p + np.random.default_rng(9).normal(0, 0.05, p.shape), 0, 1)
    one, _, _ = subgroup_analysis(y, p, groups, patients, resamples=200)
    two, _, _ = subgroup_analysis(y, np.stack([p, p]), groups, patients, resamples=200)
    pd.testing.assert_frame_equal(one, two)  # two identical seeds: the same as one
    mixed, _, _ = subgroup_analysis(y, np.stack([p, other]), groups, patients, resamples=200)
    alone, _, _ = subgroup_analysis(y, other, groups, patients, resamples=200)
    expected = (one["mean_auc"] + alone["mean_auc"]) / 2
    np.testing.assert_allclose(mixed["mean_auc"], expected, rtol=1e-12)


def test_age_gap_is_bonferroni_adjusted_over_its_ten_pairs():
    y, p, groups, patients = _planted(n=1500)
    groups = {"age": age_bands(np.random.default_rng(3).integers(1, 95, len(y)))}
    _, _, gaps = subgroup_analysis(y, p, groups, patients, resamples=300)
    assert gaps.loc[0, "pairs"] == 10 and gaps.loc[0, "p_value"] >= 10 / 300


@pytest.mark.slow
def test_the_phantoms_planted_view_gap_is_found_and_no_sex_gap(tmp_path):
    """A perfect reader of the phantom (it scores a finding by whether it was drawn -- its box)
    does worse on AP films, where the phantom hides AP_HIDDEN_SHARE of the findings, and the
    same for women and men, whose films the phantom draws alike."""
    folder = generate_phantom(PhantomSpec("cxr14", num_images=900, image_size=64), tmp_path)
    table = read_metadata(folder / "Data_Entry_2017.csv")
    boxes = read_boxes(folder / "BBox_List_2017.csv")
    drawn = set(zip(boxes["image_id"], boxes["label"], strict=True))
    y = table[list(CLASSES)].to_numpy()
    noise = np.random.default_rng(0).random(y.shape) * 0.5
    scores = np.array(
        [[(image, c) in drawn for c in CLASSES] for image in table["image_id"]], float
    ) * 0.5 + noise  # fmt: skip
    hidden = 1 - scores[y == 1].round().mean()  # share of findings not drawn
    ap_share = (table["view"] == "AP").mean()
    assert hidden == pytest.approx(AP_HIDDEN_SHARE * ap_share, abs=0.05)
    assert set(subgroups_of(table)) == set(ATTRIBUTES)
    _, _, gaps = subgroup_analysis(
        y, scores, subgroups_of(table), table["patient_id"], resamples=500, seed=0
    )
    gaps = gaps.set_index("attribute")
    assert gaps.loc["view", "worse"] == "AP" and gaps.loc["view", "p_value"] < 0.01
    # a perfect reader scores a hidden finding as a negative: AUC 1 - share/2 on AP films
    assert gaps.loc["view", "gap"] == pytest.approx(100 * AP_HIDDEN_SHARE / 2, abs=3)
    assert gaps.loc["sex", "p_value"] > 0.05 and gaps.loc["sex", "gap"] < 5


def test_nih_metadata_gives_sex_age_and_view(shared_dir):
    table = read_metadata(shared_dir / "data/nih/Data_Entry_2017_v2020.csv")
    assert len(table) == 51759 and table[["sex", "age", "view"]].notna().all().all()
    assert (table["sex"] == "M").sum() == 29418 and set(table["view"]) == {"PA", "AP"}
    groups = subgroups_of(table)
    assert all((groups[a] != None).all() for a in groups)  # noqa: E711 -- every image placed


def test_the_2017_files_ages_with_a_unit_are_read(tmp_path):
    csv = tmp_path / "Data_Entry_2017.csv"
    csv.write_text(
        "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
        "View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],\n"
        "00000001_000.png,Mass,0,1,058Y,M,PA,2500,2048,0.14,0.14,\n"
        "00000002_000.png,Mass,0,2,414,F,AP,2500,2048,0.14,0.14,\n"
    )
    table = read_metadata(csv)
    assert list(table["age"]) == [58, 414] and list(table["sex"]) == ["M", "F"]
    assert list(age_bands(table["age"])) == ["40–60", None]  # 414 years: not an age
