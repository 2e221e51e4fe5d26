"""Phantom datasets: exact Kaggle layouts, read by the real loaders, deterministic, annotated."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cxrlib.data.datasets import get_dataset
from cxrlib.data.phantom import (
    AP_HIDDEN_SHARE,
    BBOX_HEADER,
    NIH_HEADER,
    PhantomSpec,
    generate_phantom,
)
from cxrlib.data.sets.cxr11 import CSV_COLUMNS as CXR11_CSV_COLUMNS
from cxrlib.data.sets.cxr11 import read as load_cxr11
from cxrlib.data.sets.cxr14 import read as load_cxr14


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom")
    return {
        name: generate_phantom(PhantomSpec(name, num_images=120, image_size=128), out)
        for name in ("cxr14", "cxr11")
    }


def _digest(folder):
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def test_nih_layout(phantoms):
    root = phantoms["cxr14"]
    assert (root / "Data_Entry_2017.csv").read_text().splitlines()[0] == NIH_HEADER
    assert (root / "BBox_List_2017.csv").read_text().splitlines()[0] == BBOX_HEADER
    assert sorted(p.name for p in root.glob("images_*")) == ["images_001", "images_002"]
    pngs = list(root.glob("images_*/images/*.png"))
    assert len(pngs) == 120
    modes = {Image.open(p).mode for p in pngs}
    assert modes == {"L", "RGBA"}  # a few RGBA, as in the real dataset


def test_cxr14_loads_through_real_reader_with_boxes_for_drawn_lesions(phantoms):
    definition = get_dataset("cxr14")
    table = load_cxr14(phantoms["cxr14"])
    assert 0 < len(table) < 120  # "No Finding" images are in the metadata, not the subset
    assert (table["path"] != "").all()  # every image found
    assert (table[list(definition.classes)].sum(axis=1) > 0).all()
    labelled = table.set_index("image_id")
    boxes = definition.annotations(phantoms["cxr14"])
    for _, box in boxes.iterrows():
        assert labelled.loc[box.image_id, box.label] == 1  # a box only for a drawn finding
    labels = table[list(definition.classes)].to_numpy()
    on_pa = int(labels[(table["view"] == "PA").to_numpy()].sum())
    on_ap = int(labels[(table["view"] == "AP").to_numpy()].sum())
    boxed = boxes["image_id"].map(labelled["view"])
    assert (boxed == "PA").sum() == on_pa  # one box per finding: every PA finding is drawn
    # AP films hide AP_HIDDEN_SHARE of their findings (the subgroup analysis' planted gap)
    assert (boxed == "AP").sum() == pytest.approx(on_ap * (1 - AP_HIDDEN_SHARE), abs=0.1 * on_ap)
    assert set(table["sex"]) == {"F", "M"} and table["age"].between(1, 95).all()
    assert (table.groupby("patient_id")[["sex", "age"]].nunique() == 1).all().all()
    split = definition.read_paper_split(phantoms["cxr14"] / "splits")
    assert set(split["image_id"]) == set(table["image_id"])


def test_ranzcr_layout_and_annotations(phantoms):
    root = phantoms["cxr11"]
    header = pd.read_csv(root / "train.csv", nrows=0).columns.tolist()
    assert header == ["StudyInstanceUID", *CXR11_CSV_COLUMNS, "PatientID"]
    assert len(list((root / "train").glob("*.jpg"))) == 120
    table = load_cxr11(root)
    assert len(table) == 120 and (table["path"] != "").all()
    labelled = table.set_index("image_id")
    lines = get_dataset("cxr11").annotations(root)
    assert set(lines["label"]) <= set(get_dataset("cxr11").classes)  # the classes' own names
    for _, line in lines.iterrows():
        assert labelled.loc[line.image_id, line.label] == 1
        assert len(line.points) >= 2 and all(len(p) == 2 for p in line.points)
    sizes = {Image.open(p).size for p in list((root / "train").glob("*.jpg"))[:20]}
    assert len(sizes) > 1  # varying sizes, like the real images


def test_deterministic_for_a_seed(phantoms, tmp_path):
    again = generate_phantom(PhantomSpec("cxr11", num_images=120, image_size=128), tmp_path)
    assert _digest(again) == _digest(phantoms["cxr11"])
    other = generate_phantom(PhantomSpec("cxr11", num_images=120, image_size=128, seed=1), tmp_path)
    assert _digest(other) != _digest(again)


def test_label_combinations_from_real_vectors(tmp_path):
    real = np.zeros((50, 11), dtype=np.uint8)
    real[:, [2, 6, 9]] = 1  # every real vector is ETT-Normal + NGT-Normal + CVC-Normal
    spec = PhantomSpec("cxr11", num_images=20, image_size=64, label_source="authors")
    table = load_cxr11(generate_phantom(spec, tmp_path, real_vectors=real))
    assert (table[list(get_dataset("cxr11").classes)].to_numpy() == real[:20]).all()


def test_nih_official_split_lists_in_the_real_format(phantoms):
    """One image name per line, every image in one list, whole patients per list (as NIH's
    train_val_list.txt and test_list.txt)."""
    root = phantoms["cxr14"]
    train_val = (root / "train_val_list.txt").read_text().splitlines()
    test = (root / "test_list.txt").read_text().splitlines()
    meta = pd.read_csv(root / "Data_Entry_2017.csv")
    assert sorted(train_val + test) == sorted(meta["Image Index"])
    assert all(name.endswith(".png") and "/" not in name for name in train_val + test)
    patient = meta.set_index("Image Index")["Patient ID"]
    assert not set(patient[train_val]) & set(patient[test])
    assert 0.1 < len(test) / len(meta) < 0.3
