"""CXR11: RANZCR CLiP catheter and line position (Kaggle competition
``ranzcr-clip-catheter-line-classification``, 2021), 30,083 images, 11 labels.

Layout: ``train.csv`` (``StudyInstanceUID``, 11 labels, ``PatientID``),
``train_annotations.csv`` (the points of each annotated line) and ``train/<uid>.jpg``. The
authors' split files (github.com/wuliwuxin/CTransCNN, ``open_data/chest11``) spell the labels
``ETT-Abnormal``; RANZCR's ``train.csv`` spells them ``ETT - Abnormal``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlib.data.definition import (
    DatasetDef,
    DatasetLayoutError,
    KaggleSource,
    index_files,
    read_csv_file,
)
from cxrlib.data.splits import SplitFiles

#: RANZCR ``train.csv`` column names, in the papers' order.
CSV_COLUMNS: tuple[str, ...] = (
    "ETT - Abnormal",
    "ETT - Borderline",
    "ETT - Normal",
    "NGT - Abnormal",
    "NGT - Borderline",
    "NGT - Incompletely Imaged",
    "NGT - Normal",
    "CVC - Abnormal",
    "CVC - Borderline",
    "CVC - Normal",
    "Swan Ganz Catheter Present",
)


def class_name(column: str) -> str:
    """``'NGT - Incompletely Imaged'`` -> ``'NGT-Incompletely-Imaged'`` (the split files' name)."""
    return column.replace(" - ", "-").replace(" ", "-")


#: The 11 labels as the papers (and their split files) name them.
CLASSES: tuple[str, ...] = tuple(class_name(c) for c in CSV_COLUMNS)
REQUIRED_COLUMNS = ("StudyInstanceUID", *CSV_COLUMNS, "PatientID")


def looks_like_ranzcr(root: Path) -> bool:
    """True for a folder in the RANZCR CLiP layout: a ``train.csv`` whose header has RANZCR's
    columns, beside a ``train/`` folder of ``.jpg`` images. A foreign ``train.csv`` (another
    competition's) is not taken for it."""
    root = Path(root)
    csv_path, images = root / "train.csv", root / "train"
    if not (csv_path.is_file() and images.is_dir()):
        return False
    try:
        with open(csv_path, encoding="utf-8", errors="replace") as handle:
            header = {c.strip().strip('"') for c in handle.readline().split(",")}
    except OSError:
        return False
    if not set(REQUIRED_COLUMNS) <= header:
        return False
    with os.scandir(images) as entries:
        return any(e.name.lower().endswith(".jpg") for e in entries)


def read_annotations(csv_path: Path) -> pd.DataFrame:
    """``train_annotations.csv`` as ``image_id, label, points`` (label: the class name; points:
    a list of [x, y])."""
    frame = read_csv_file(csv_path, ("StudyInstanceUID", "label", "data"))
    try:
        points = frame["data"].map(json.loads)
    except json.JSONDecodeError as err:
        raise DatasetLayoutError(f"{csv_path}: a 'data' cell is not a point list ({err})") from err
    return pd.DataFrame(
        {
            "image_id": frame["StudyInstanceUID"].astype(str) + ".jpg",
            "label": frame["label"].map(class_name),
            "points": points,
        }
    )


def read(root: str | Path) -> pd.DataFrame:
    """All 30,083 RANZCR CLiP training images (``train.csv`` + ``train/*.jpg``)."""
    root = Path(root)
    csv_path = root / "train.csv"
    if not csv_path.is_file():
        raise DatasetLayoutError(
            f"{root} has no train.csv: pass the folder of the Kaggle competition "
            f"ranzcr-clip-catheter-line-classification (it holds train.csv and train/)"
        )
    frame = read_csv_file(csv_path, REQUIRED_COLUMNS)
    table = pd.DataFrame(
        {
            "image_id": frame["StudyInstanceUID"].astype(str) + ".jpg",
            "patient_id": frame["PatientID"].astype(str),
        }
    )
    for column, name in zip(CSV_COLUMNS, CLASSES, strict=True):
        values = frame[column]
        if not values.isin([0, 1]).all():
            raise DatasetLayoutError(f"{csv_path}: column {column!r} holds values other than 0/1")
        table[name] = values.astype(np.uint8)
    duplicated = table["image_id"][table["image_id"].duplicated()]
    if len(duplicated):
        raise DatasetLayoutError(f"{csv_path}: duplicate StudyInstanceUID {list(duplicated[:3])}")
    files = index_files([root / "train"], ".jpg")
    table.insert(1, "path", table["image_id"].map(files).fillna(""))
    return table


def annotations(root: str | Path) -> pd.DataFrame:
    """The annotated lines where the folder has ``train_annotations.csv``."""
    path = Path(root) / "train_annotations.csv"
    return read_annotations(path) if path.is_file() else pd.DataFrame()


DATASET = DatasetDef(
    name="cxr11",
    title="RANZCR CLiP",
    classes=CLASSES,
    read=read,
    annotations=annotations,
    markers=("train.csv",),
    recognise=looks_like_ranzcr,
    # JPEGs of 2000-3000 px named by their DICOM StudyInstanceUID
    file_pattern=r"^1\.2\.826\.[\d.]+\.jpe?g$",
    file_look="a RANZCR CLiP JPEG",
    kaggle=("ranzcr-clip-catheter-line-classification", "ranzcr-clip"),
    download=KaggleSource(
        "competition",
        "ranzcr-clip-catheter-line-classification",
        12.0,
        route="It fits a Colab VM once about 24 GB are free; on Kaggle, attach the competition "
        "instead (nothing is downloaded).",
    ),
    split_files=SplitFiles(
        folder="chest11",
        classes="chest_x-rays11_multi_label_classes.txt",
        parts={
            "train": "chest_x-rays11_kaggle_train.txt",
            "val": "chest_x-rays11_kaggle_val.txt",
            "test": "chest_x-rays11_kaggle_test.txt",
        },
        sha256={
            "chest_x-rays11_multi_label_classes.txt": "fd93159d5929288468d9112f6e11bed7214e89b533bcffec6a4879adb6a55c66",  # noqa: E501
            "chest_x-rays11_kaggle_train.txt": "d35b87e6da4731f0736f3389751ac52b598d1f90fee6ba05361ba371a0817ac8",  # noqa: E501
            "chest_x-rays11_kaggle_val.txt": "feb236df7d4381a9e8886745c31c2158a4051e4b88b21c2b71e1c50e719d95c9",  # noqa: E501
            "chest_x-rays11_kaggle_test.txt": "2175d201c25f4c72ccaf2821fb47455b4d07162bd5fcc765aace3753a2cf176c",  # noqa: E501
        },
        path_prefix="chest_x-rays11_kaggle",
    ),
    paper_split_sizes=(21059, 6016, 3008),
    phantom=True,
    order=1,
)
