"""CXR14: NIH ChestX-ray14 (X. Wang et al., "ChestX-ray8: Hospital-scale chest X-ray database
and benchmarks", CVPR 2017), Kaggle dataset ``nih-chest-xrays/data``.

Layout: ``Data_Entry_2017.csv`` (the 2017 header with a trailing empty column, or the v2020
file), ``BBox_List_2017.csv`` (984 boxes) and ``images_0XX/images/*.png``. Both papers use the
51,759 images whose ``Finding Labels`` is not ``No Finding``, split by the authors' split files
(github.com/wuliwuxin/CTransCNN, ``open_data/chest14``); NIH's own ``train_val_list.txt`` and
``test_list.txt`` give the official patient-disjoint split.
"""

from __future__ import annotations

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
from cxrlib.data.splits import OfficialSplit, SplitFiles

#: The 14 findings, in the papers' order (the order of the authors' split files).
CLASSES: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Effusion",
    "Emphysema",
    "Fibrosis",
    "Hernia",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pleural_Thickening",
    "Pneumonia",
    "Pneumothorax",
)
METADATA_NAMES = ("Data_Entry_2017.csv", "Data_Entry_2017_v2020.csv")
REQUIRED_COLUMNS = ("Image Index", "Finding Labels", "Patient ID", "View Position")
#: BBox_List_2017.csv spells Infiltration as "Infiltrate".
BBOX_SPELLING = {"Infiltrate": "Infiltration"}
#: CXR14's split in both papers (train, val, test; the authors' split files).
PAPER_SIZES = (46563, 3624, 1572)


def find_metadata(root: Path) -> Path:
    """``Data_Entry_2017.csv`` (or the v2020 file) directly under ``root``."""
    for name in METADATA_NAMES:
        if (root / name).is_file():
            return root / name
    raise DatasetLayoutError(
        f"{root} has no {' or '.join(METADATA_NAMES)}: pass the folder of the Kaggle "
        f"dataset nih-chest-xrays/data (it holds the CSVs and images_001/ ... images_012/)"
    )


def looks_like_nih(root: Path) -> bool:
    """True for a folder in the Kaggle NIH layout: ``Data_Entry_2017*.csv`` beside image folders
    (``images_0NN/`` or ``images/``). Used to recognise the dataset among Kaggle inputs."""
    root = Path(root)
    has_table = any(root.glob("Data_Entry_2017*.csv"))
    has_images = (
        any(p.is_dir() for p in root.glob("images_0[0-9][0-9]")) or (root / "images").is_dir()
    )
    return has_table and has_images


def read_metadata(csv_path: Path, abnormal_only: bool = True) -> pd.DataFrame:
    """The NIH metadata as ``image_id, patient_id, view, sex, age, <14 class columns>`` (sex
    and age where the file has them, as Kaggle's does).

    Handles the 2017 Kaggle header (trailing empty column) and the v2020 one. With
    ``abnormal_only`` (the papers' subset) rows labelled ``No Finding`` are dropped.
    """
    frame = read_csv_file(csv_path, REQUIRED_COLUMNS)
    findings = frame["Finding Labels"].astype(str).str.split("|")
    known = set(CLASSES) | {"No Finding"}
    unknown = sorted(set(findings.explode()) - known)
    if unknown:
        raise DatasetLayoutError(f"{csv_path}: unknown finding labels {unknown[:5]}")
    out = pd.DataFrame(
        {
            "image_id": frame["Image Index"].astype(str),
            "patient_id": frame["Patient ID"].astype(str),
            "view": frame["View Position"].astype(str),
        }
    )
    if "Patient Gender" in frame.columns:
        out["sex"] = frame["Patient Gender"].astype(str).str.strip().str.upper()
    if "Patient Age" in frame.columns:  # years; some copies write "058Y"
        digits = frame["Patient Age"].astype(str).str.extract(r"^\s*(\d+)", expand=False)
        out["age"] = pd.to_numeric(digits, errors="coerce")
    for name in CLASSES:
        out[name] = findings.map(lambda labels, n=name: n in labels).astype(np.uint8)
    duplicated = out["image_id"][out["image_id"].duplicated()]
    if len(duplicated):
        raise DatasetLayoutError(f"{csv_path}: duplicate Image Index, e.g. {list(duplicated[:3])}")
    if abnormal_only:
        out = out[frame["Finding Labels"] != "No Finding"].reset_index(drop=True)
    return out


def read_boxes(csv_path: Path) -> pd.DataFrame:
    """``BBox_List_2017.csv`` as ``image_id, label, x, y, w, h`` (pixels of the image)."""
    frame = pd.read_csv(csv_path)
    frame = frame.iloc[:, :6]
    frame.columns = ["image_id", "label", "x", "y", "w", "h"]
    frame["label"] = frame["label"].replace(BBOX_SPELLING)
    unknown = sorted(set(frame["label"]) - set(CLASSES))
    if unknown:
        raise DatasetLayoutError(f"{csv_path}: unknown box labels {unknown}")
    return frame


def read(root: str | Path) -> pd.DataFrame:
    """The papers' CXR14 subset from a Kaggle NIH folder (images located by file name)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(
            f"CXR14 root {root} does not exist; pass --data-root cxr14=DIR (the NIH folder)"
        )
    table = read_metadata(find_metadata(root))
    folders = [*sorted(root.glob("images_*/images")), root / "images"]
    files = index_files(folders, ".png")
    table.insert(1, "path", table["image_id"].map(files).fillna(""))
    return table


def annotations(root: str | Path) -> pd.DataFrame:
    """The NIH boxes where the folder has ``BBox_List_2017.csv``."""
    boxes_csv = Path(root) / "BBox_List_2017.csv"
    return read_boxes(boxes_csv) if boxes_csv.is_file() else pd.DataFrame()


DATASET = DatasetDef(
    name="cxr14",
    title="NIH ChestX-ray14",
    classes=CLASSES,
    read=read,
    annotations=annotations,
    markers=METADATA_NAMES,
    recognise=looks_like_nih,
    # 1024×1024 8-bit PNGs named <patient>_<follow-up>.png, e.g. 00000001_000.png
    file_pattern=r"^\d{8}_\d{3}\.png$",
    file_look="an NIH ChestX-ray14 PNG",
    kaggle=("nih-chest-xrays/data", "data", "nih-chest-xrays"),
    download=KaggleSource(
        "dataset",
        "nih-chest-xrays/data",
        45.0,
        route="It does not fit a free Colab VM (60-78 GB of disk): on Kaggle, attach the "
        "dataset nih-chest-xrays/data to the notebook instead (nothing is downloaded), or use a "
        "machine with about 100 GB free.",
    ),
    split_files=SplitFiles(
        folder="chest14",
        classes="add72_chest14_classes.txt",
        parts={
            "train": "add72_chest14_train_labels.txt",
            "val": "add72_chest14_val_labels.txt",
            "test": "add72_chest14_test_labels.txt",
        },
        sha256={
            "add72_chest14_classes.txt": "2545c8291c3d85b0f792bbd7995d04d2f2ce709d086b0610a715a992962a261f",  # noqa: E501
            "add72_chest14_train_labels.txt": "75f146b4ec7ac554396995538f2f026116e7a7ad75d7f21bb7773f87bb1b1f45",  # noqa: E501
            "add72_chest14_val_labels.txt": "bd8d3f01240a41228b0ac8aa902487cdb44aece7fa76362608428b144d27f946",  # noqa: E501
            "add72_chest14_test_labels.txt": "947b820d2cd70560343f1d9f934abe1f51a9a16237a9a92b66d22b3a0354c377",  # noqa: E501
        },
        path_prefix="NIH-Chest_x-rays14_multi-label",
        class_folders=True,
    ),
    paper_split_sizes=PAPER_SIZES,
    # NIH's own patient-disjoint lists; validation takes the papers' share of train + val
    official_split=OfficialSplit(
        "train_val_list.txt",
        "test_list.txt",
        val_fraction=PAPER_SIZES[1] / (PAPER_SIZES[0] + PAPER_SIZES[1]),
    ),
    phantom=True,
    order=0,
)
