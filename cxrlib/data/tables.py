"""Reading the two datasets from their real Kaggle layouts into one table format.

* CXR14 -- NIH ChestX-ray14 (Wang et al., CVPR 2017; Kaggle ``nih-chest-xrays/data``):
  ``Data_Entry_2017.csv`` (2017 header with a trailing empty column, or the v2020 file),
  ``BBox_List_2017.csv``, and ``images_0XX/images/*.png``. The papers use the 51,759 images
  whose ``Finding Labels`` is not ``No Finding``.
* CXR11 -- RANZCR CLiP (Kaggle 2021): ``train.csv`` (``StudyInstanceUID``, 11 labels,
  ``PatientID``), ``train_annotations.csv`` (line points per label), ``train/<uid>.jpg``.

Both readers return a :class:`LabelledImages`: one row per image with ``image_id`` (file name),
``path`` (absolute, or empty when the image is absent), ``patient_id`` and one 0/1 column per
class in the papers' order. Phantom data goes through exactly these readers.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlib.core.errors import UserError
from cxrlib.data.labels import CXR11_CLASSES, CXR11_CSV_COLUMNS, CXR14_CLASSES, NIH_BBOX_SPELLING

NIH_METADATA_NAMES = ("Data_Entry_2017.csv", "Data_Entry_2017_v2020.csv")
NIH_REQUIRED_COLUMNS = ("Image Index", "Finding Labels", "Patient ID", "View Position")
RANZCR_REQUIRED_COLUMNS = ("StudyInstanceUID", *CXR11_CSV_COLUMNS, "PatientID")


class DatasetLayoutError(UserError, FileNotFoundError):
    """A dataset folder or file that does not have the expected Kaggle layout."""


@dataclass
class LabelledImages:
    """One dataset as a table: ``image_id, path, patient_id, <class columns>`` (+ extras)."""

    dataset: str
    root: Path
    table: pd.DataFrame
    boxes: pd.DataFrame = field(default_factory=pd.DataFrame)
    lines: pd.DataFrame = field(default_factory=pd.DataFrame)
    classes: tuple[str, ...] = ()  #: the label columns, in the papers' order

    def labels(self) -> np.ndarray:
        """The N×K 0/1 label matrix (uint8) in the papers' class order."""
        return self.table[list(self.classes)].to_numpy(dtype=np.uint8)

    def missing_images(self) -> pd.Series:
        """The ``image_id`` of rows whose image file was not found."""
        return self.table.loc[self.table["path"] == "", "image_id"]


def _index_files(folders: list[Path], suffix: str) -> dict[str, str]:
    """Map file name -> absolute path for every ``*suffix`` in ``folders`` (fast scandir)."""
    index: dict[str, str] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.endswith(suffix):
                    if entry.name in index:
                        raise DatasetLayoutError(
                            f"duplicate image name {entry.name}: {index[entry.name]} and "
                            f"{entry.path}; keep one copy of the dataset under the root"
                        )
                    index[entry.name] = os.path.abspath(entry.path)
    return index


def _read_csv(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DatasetLayoutError(
            f"{path} is not a readable CSV ({err}); download it again"
        ) from err
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DatasetLayoutError(
            f"{path} lacks the columns {missing}; is it the original Kaggle file?"
        )
    return frame


def find_nih_metadata(root: Path) -> Path:
    """``Data_Entry_2017.csv`` (or the v2020 file) directly under ``root``."""
    for name in NIH_METADATA_NAMES:
        if (root / name).is_file():
            return root / name
    raise DatasetLayoutError(
        f"{root} has no {' or '.join(NIH_METADATA_NAMES)}: pass the folder of the Kaggle "
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
    if not set(RANZCR_REQUIRED_COLUMNS) <= header:
        return False
    with os.scandir(images) as entries:
        return any(e.name.lower().endswith(".jpg") for e in entries)


def read_nih_metadata(csv_path: Path, abnormal_only: bool = True) -> pd.DataFrame:
    """The NIH metadata as ``image_id, patient_id, view, age, sex, <14 class columns>``.

    Handles the 2017 Kaggle header (trailing empty column) and the v2020 one. With
    ``abnormal_only`` (the papers' subset) rows labelled ``No Finding`` are dropped.
    """
    frame = _read_csv(csv_path, NIH_REQUIRED_COLUMNS)
    findings = frame["Finding Labels"].astype(str).str.split("|")
    known = set(CXR14_CLASSES) | {"No Finding"}
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
    for name in CXR14_CLASSES:
        out[name] = findings.map(lambda labels, n=name: n in labels).astype(np.uint8)
    duplicated = out["image_id"][out["image_id"].duplicated()]
    if len(duplicated):
        raise DatasetLayoutError(f"{csv_path}: duplicate Image Index, e.g. {list(duplicated[:3])}")
    if abnormal_only:
        out = out[frame["Finding Labels"] != "No Finding"].reset_index(drop=True)
    return out


def read_nih_boxes(csv_path: Path) -> pd.DataFrame:
    """``BBox_List_2017.csv`` as ``image_id, label, x, y, w, h`` (pixels of the image)."""
    frame = pd.read_csv(csv_path)
    frame = frame.iloc[:, :6]
    frame.columns = ["image_id", "label", "x", "y", "w", "h"]
    frame["label"] = frame["label"].replace(NIH_BBOX_SPELLING)
    unknown = sorted(set(frame["label"]) - set(CXR14_CLASSES))
    if unknown:
        raise DatasetLayoutError(f"{csv_path}: unknown box labels {unknown}")
    return frame


def load_cxr14(root: str | Path) -> LabelledImages:
    """The papers' CXR14 subset from a Kaggle NIH folder (images located by file name)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"CXR14 root {root} does not exist; pass --cxr14-root DIR")
    table = read_nih_metadata(find_nih_metadata(root))
    folders = [*sorted(root.glob("images_*/images")), root / "images"]
    files = _index_files(folders, ".png")
    table.insert(1, "path", table["image_id"].map(files).fillna(""))
    boxes_csv = root / "BBox_List_2017.csv"
    boxes = read_nih_boxes(boxes_csv) if boxes_csv.is_file() else pd.DataFrame()
    return LabelledImages("cxr14", root, table, boxes=boxes, classes=CXR14_CLASSES)


def read_ranzcr_annotations(csv_path: Path) -> pd.DataFrame:
    """``train_annotations.csv`` as ``image_id, label, points`` (a list of [x, y])."""
    frame = _read_csv(csv_path, ("StudyInstanceUID", "label", "data"))
    try:
        points = frame["data"].map(json.loads)
    except json.JSONDecodeError as err:
        raise DatasetLayoutError(f"{csv_path}: a 'data' cell is not a point list ({err})") from err
    return pd.DataFrame(
        {
            "image_id": frame["StudyInstanceUID"].astype(str) + ".jpg",
            "label": frame["label"],
            "points": points,
        }
    )


def load_cxr11(root: str | Path) -> LabelledImages:
    """All 30,083 RANZCR CLiP training images (``train.csv`` + ``train/*.jpg``)."""
    root = Path(root)
    csv_path = root / "train.csv"
    if not csv_path.is_file():
        raise DatasetLayoutError(
            f"{root} has no train.csv: pass the folder of the Kaggle competition "
            f"ranzcr-clip-catheter-line-classification (it holds train.csv and train/)"
        )
    frame = _read_csv(csv_path, RANZCR_REQUIRED_COLUMNS)
    table = pd.DataFrame(
        {
            "image_id": frame["StudyInstanceUID"].astype(str) + ".jpg",
            "patient_id": frame["PatientID"].astype(str),
        }
    )
    for column, name in zip(CXR11_CSV_COLUMNS, CXR11_CLASSES, strict=True):
        values = frame[column]
        if not values.isin([0, 1]).all():
            raise DatasetLayoutError(f"{csv_path}: column {column!r} holds values other than 0/1")
        table[name] = values.astype(np.uint8)
    duplicated = table["image_id"][table["image_id"].duplicated()]
    if len(duplicated):
        raise DatasetLayoutError(f"{csv_path}: duplicate StudyInstanceUID {list(duplicated[:3])}")
    files = _index_files([root / "train"], ".jpg")
    table.insert(1, "path", table["image_id"].map(files).fillna(""))
    annotations = root / "train_annotations.csv"
    lines = read_ranzcr_annotations(annotations) if annotations.is_file() else pd.DataFrame()
    return LabelledImages("cxr11", root, table, lines=lines, classes=CXR11_CLASSES)
