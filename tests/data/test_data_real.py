"""The real NIH metadata and the authors' split files (../shared/data): the facts of data.md."""

from __future__ import annotations

import numpy as np
import pytest

from cxrlib.data.datasets import get_dataset
from cxrlib.data.sets.cxr14 import read_boxes as read_nih_boxes
from cxrlib.data.sets.cxr14 import read_metadata as read_nih_metadata
from cxrlib.data.splits import (
    leakage_report,
    patient_split,
)

CXR14_TEST_POSITIVES = [348, 89, 145, 67, 425, 74, 53, 9, 583, 173, 193, 110, 51, 163]
CXR11_TEST_POSITIVES = [6, 114, 786, 27, 54, 285, 503, 328, 858, 2132, 83]


@pytest.fixture(scope="module")
def cxr14(shared_dir):
    meta = read_nih_metadata(shared_dir / "data/nih/Data_Entry_2017_v2020.csv")
    split_dir = shared_dir / "data/splits/chest14"
    get_dataset("cxr14").verify_split_files(split_dir)
    paper = get_dataset("cxr14").read_paper_split(split_dir)
    return meta, paper.merge(meta, on="image_id", suffixes=("_split", ""))


def test_subset_is_51759_abnormal_images(cxr14):
    meta, merged = cxr14
    assert len(meta) == 51759
    assert len(merged) == 51759  # every split image is in the subset and vice versa


def test_paper_split_sizes_and_test_positives(cxr14, shared_dir):
    _, merged = cxr14
    counts = merged["split"].value_counts()
    assert (
        tuple(counts[p] for p in ("train", "val", "test")) == get_dataset("cxr14").paper_split_sizes
    )
    test = merged[merged["split"] == "test"]
    assert test[list(get_dataset("cxr14").classes)].sum().tolist() == CXR14_TEST_POSITIVES


def test_split_labels_agree_with_official_metadata(cxr14):
    _, merged = cxr14
    classes = list(get_dataset("cxr14").classes)
    official = merged[classes].to_numpy()
    split = merged[[f"{c}_split" for c in classes]].to_numpy()
    assert (official == split).all()


def test_leakage_paper_vs_patient_split(cxr14):
    _, merged = cxr14
    paper = leakage_report(merged).set_index("parts")
    assert paper.loc["train-test", "shared_patients"] == 1098
    assert paper.loc["train-test", "patients_in_second"] == 1332
    assert paper.loc["train-test", "images_of_shared_patients_in_second"] == 1336
    sizes = np.array(get_dataset("cxr14").paper_split_sizes) / 51759
    merged = merged.assign(split=patient_split(merged["patient_id"], tuple(sizes), seed=0))
    assert (leakage_report(merged)["shared_patients"] == 0).all()
    counts = merged["split"].value_counts()
    assert abs(counts["test"] - 1572) < 100 and abs(counts["train"] - 46563) < 200
    again = patient_split(merged["patient_id"], tuple(sizes), seed=0)
    assert (again == merged["split"]).all()  # seeded: reproducible


def test_both_nih_header_variants(shared_dir, tmp_path):
    """The 2017 Kaggle copy has a trailing empty column; both must read the same."""
    source = shared_dir / "data/nih/Data_Entry_2017_v2020.csv"
    lines = source.read_text().splitlines()
    kaggle_2017 = tmp_path / "Data_Entry_2017.csv"
    kaggle_2017.write_text("\n".join(line + "," for line in lines) + "\n")
    a, b = read_nih_metadata(source), read_nih_metadata(kaggle_2017)
    assert a.equals(b)


def test_nih_boxes(shared_dir):
    boxes = read_nih_boxes(shared_dir / "data/nih/BBox_List_2017.csv")
    assert len(boxes) == 984
    assert boxes["label"].nunique() == 8 and "Infiltration" in set(boxes["label"])


def test_cxr11_split(shared_dir):
    split_dir = shared_dir / "data/splits/chest11"
    get_dataset("cxr11").verify_split_files(split_dir)
    paper = get_dataset("cxr11").read_paper_split(split_dir)
    counts = paper["split"].value_counts()
    assert (
        tuple(counts[p] for p in ("train", "val", "test")) == get_dataset("cxr11").paper_split_sizes
    )
    classes = list(get_dataset("cxr11").classes)
    assert paper.loc[paper["split"] == "test", classes].sum().tolist() == CXR11_TEST_POSITIVES
    assert int((paper[classes].sum(axis=1) == 0).sum()) == 24
