"""Datasets as objects: one definition per dataset holds everything the kit knows about it.

A :class:`DatasetDef` names a dataset's classes, the marker files that identify its folder and
how its layout is recognised among Kaggle inputs, its Kaggle mount points and download, the
reader of its on-disk layout, what its image files look like (file names, for ``predict``), the
configuration field (and environment variable) that gives its root, the authors' split files
and split sizes where the papers have them, the official split lists of its publisher, and
whether a phantom of it can be generated. The rest of the kit asks
:func:`get_dataset` and never spells a dataset's facts again, so adding a dataset is writing
one definition -- as torchxrayvision does it.

* ``cxr14`` -- NIH ChestX-ray14 (X. Wang et al., "ChestX-ray8", CVPR 2017), Kaggle dataset
  ``nih-chest-xrays/data``; the papers' 51,759 abnormal images.
* ``cxr11`` -- RANZCR CLiP (Kaggle competition ``ranzcr-clip-catheter-line-classification``,
  2021), 30,083 images, 11 catheter/line labels.
* ``csv:/path/to/labels.csv`` -- your own chest X-rays (:func:`csv_dataset`): one row per image
  with its path, one 0/1 column per label, optionally a patient and a split column.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlib.data.labels import CXR11_CLASSES, CXR14_CLASSES
from cxrlib.data.splits import (
    AUTHORS_BASE_URL,
    SPLIT_NAMES,
    OfficialSplit,
    SplitFileError,
    SplitFiles,
    fetch_split_files,
    read_paper_split,
    verify_split_files,
)
from cxrlib.data.tables import (
    DatasetLayoutError,
    LabelledImages,
    load_cxr11,
    load_cxr14,
    looks_like_nih,
    looks_like_ranzcr,
)

CSV_PREFIX = "csv:"
#: Columns of a CSV dataset that are not labels.
CSV_IMAGE_COLUMNS = ("path", "image", "image_path", "file")
CSV_PATIENT_COLUMN = "patient_id"
CSV_SPLIT_COLUMN = "split"


@dataclass(frozen=True)
class KaggleSource:
    """Where ``python -m cxrlib download`` gets a dataset (:mod:`cxrlib.data.download`)."""

    kind: str  #: "dataset" or "competition" (a competition needs its rules accepted)
    handle: str  #: e.g. "nih-chest-xrays/data"
    gigabytes: float  #: about the size of its files on Kaggle
    #: where the download fits, for a user whose disk is too small (e.g. free Colab's 60-78 GB)
    route: str = ""

    @property
    def url(self) -> str:
        kind = "datasets" if self.kind == "dataset" else "competitions"
        return f"https://www.kaggle.com/{kind}/{self.handle}"


@dataclass(frozen=True)
class DatasetDef:
    """Everything the kit knows about one dataset."""

    name: str  #: the key used everywhere (``--dataset``, run folders, table names)
    title: str
    classes: tuple[str, ...]
    read: Callable[[Path], LabelledImages]  #: root folder -> the labelled images
    markers: tuple[str, ...] = ()  #: any of these files directly under the root identifies it
    #: root -> True when the folder has this dataset's whole layout (finding Kaggle inputs)
    recognise: Callable[[Path], bool] | None = None
    #: what the dataset's own image files are called (a regex) and look like, in words
    file_pattern: str | None = None
    file_look: str = ""
    kaggle: tuple[str, ...] = ()  #: candidate folders under /kaggle/input
    root_parameter: str | None = None  #: the configuration field that names the root
    split_files: SplitFiles | None = None  #: the authors' split files (the "paper" split)
    official_split: OfficialSplit | None = None  #: the publisher's split lists (SPLIT=official)
    paper_split_sizes: tuple[int, int, int] | None = None  #: train, val, test of the papers
    #: fractions of a drawn split (SPLIT=patient) when the dataset has no split of its own
    default_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    phantom: bool = False  #: a phantom of it can be generated (cxrlib.data.phantom)
    fixed_root: Path | None = None  #: a CSV dataset's folder (no configuration needed)
    download: KaggleSource | None = None  #: where ``python -m cxrlib download`` fetches it

    @property
    def paper(self) -> bool:
        """True for the datasets of the papers (they have published numbers)."""
        return self.split_files is not None

    @property
    def env_var(self) -> str | None:
        return self.root_parameter.upper() if self.root_parameter else None

    def configured_root(self, config) -> str | None:
        """The root the configuration names (parameter or environment variable), if any."""
        if self.fixed_root is not None:
            return str(self.fixed_root)
        return getattr(config.data, self.root_parameter) if self.root_parameter else None

    def has_marker(self, root: Path) -> bool:
        return any((root / marker).is_file() for marker in self.markers)

    def recognised(self, root: Path) -> bool:
        """True when ``root`` holds this dataset in its layout (markers, and the recogniser)."""
        if not self.has_marker(root):
            return False
        return self.recognise is None or self.recognise(root)

    def _split_spec(self) -> SplitFiles:
        if self.split_files is None:
            raise SplitFileError(f"{self.name} has no split files of the papers' authors")
        return self.split_files

    def fetch_split_files(self, dest: Path | None = None, base_url: str = AUTHORS_BASE_URL) -> Path:
        """The authors' split files of this dataset, downloaded once and verified."""
        return fetch_split_files(self._split_spec(), dest, base_url)

    def verify_split_files(self, folder: Path) -> None:
        verify_split_files(self._split_spec(), folder)

    def read_paper_split(self, folder: Path) -> pd.DataFrame:
        """The papers' split (image_id, split, label columns) from a folder of split files."""
        return read_paper_split(self._split_spec(), folder, self.classes, self.name)

    def named_like_mine(self, file_name: str) -> bool:
        """True when an image file is named as this dataset's images are."""
        return bool(self.file_pattern) and re.match(self.file_pattern, file_name, re.I) is not None


#: CXR14's split in both papers (train, val, test; the authors' split files).
CXR14_PAPER_SIZES = (46563, 3624, 1572)

CXR14 = DatasetDef(
    name="cxr14",
    title="NIH ChestX-ray14",
    classes=CXR14_CLASSES,
    read=load_cxr14,
    markers=("Data_Entry_2017.csv", "Data_Entry_2017_v2020.csv"),
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
    root_parameter="cxr14_root",
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
    paper_split_sizes=CXR14_PAPER_SIZES,
    # NIH's own patient-disjoint lists; validation takes the papers' share of train + val
    official_split=OfficialSplit(
        "train_val_list.txt",
        "test_list.txt",
        val_fraction=CXR14_PAPER_SIZES[1] / (CXR14_PAPER_SIZES[0] + CXR14_PAPER_SIZES[1]),
    ),
    phantom=True,
)

CXR11 = DatasetDef(
    name="cxr11",
    title="RANZCR CLiP",
    classes=CXR11_CLASSES,
    read=load_cxr11,
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
    root_parameter="cxr11_root",
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
)

#: The registered datasets; the papers' two come first, in the order of the notebooks' loops.
REGISTRY: dict[str, DatasetDef] = {d.name: d for d in (CXR14, CXR11)}
#: The datasets of the papers (published numbers, the authors' split files, a phantom).
PAPER_DATASETS: tuple[str, ...] = tuple(n for n, d in REGISTRY.items() if d.paper)


def register(definition: DatasetDef) -> DatasetDef:
    """Add a dataset under its name (an error if the name is taken)."""
    if definition.name in REGISTRY:
        raise ValueError(f"a dataset named {definition.name!r} is registered already")
    REGISTRY[definition.name] = definition
    return definition


def get_dataset(name: str | DatasetDef) -> DatasetDef:
    """The definition of ``name``: a registered name, or ``csv:/path/to/labels.csv``."""
    if isinstance(name, DatasetDef):
        return name
    if name.startswith(CSV_PREFIX):
        return csv_dataset(name[len(CSV_PREFIX) :])
    if name not in REGISTRY:
        raise DatasetLayoutError(
            f"unknown dataset {name!r}; allowed: {', '.join(REGISTRY)}, or "
            f"csv:/path/to/labels.csv for your own images"
        )
    return REGISTRY[name]


def dataset_names(name: str) -> tuple[str, ...]:
    """``all`` -> the papers' datasets; otherwise just ``name`` (validated)."""
    return PAPER_DATASETS if name == "all" else (get_dataset(name).name,)


# --------------------------------------------------------------------------------------------
# Your own dataset: a CSV file
# --------------------------------------------------------------------------------------------
def _csv_columns(frame: pd.DataFrame, csv_path: Path) -> tuple[str, list[str]]:
    image_columns = [c for c in CSV_IMAGE_COLUMNS if c in frame.columns]
    if not image_columns:
        raise DatasetLayoutError(
            f"{csv_path} has no image column: name it one of {', '.join(CSV_IMAGE_COLUMNS)} "
            f"(a path, absolute or relative to the CSV's folder)"
        )
    extra = {image_columns[0], CSV_PATIENT_COLUMN, CSV_SPLIT_COLUMN}
    labels = [c for c in frame.columns if c not in extra]
    if not labels:
        raise DatasetLayoutError(f"{csv_path} has no label columns (one 0/1 column per label)")
    return image_columns[0], labels


def read_csv_dataset(csv_path: Path) -> LabelledImages:
    """A CSV dataset as :class:`LabelledImages`; its ``split`` column, if any, is kept."""
    try:
        frame = pd.read_csv(csv_path, dtype={CSV_PATIENT_COLUMN: str})
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DatasetLayoutError(f"{csv_path} is not a readable CSV ({err})") from err
    image_column, labels = _csv_columns(frame, csv_path)
    bad = [c for c in labels if not frame[c].isin([0, 1]).all()]
    if bad:
        raise DatasetLayoutError(
            f"{csv_path}: label columns must hold 0/1 only; these do not: {bad} (name a patient "
            f"column {CSV_PATIENT_COLUMN!r} and a split column {CSV_SPLIT_COLUMN!r})"
        )
    paths = (
        frame[image_column]
        .astype(str)
        .map(lambda p: str(Path(p) if Path(p).is_absolute() else (csv_path.parent / p).resolve()))
    )
    table = pd.DataFrame(
        {
            "image_id": frame[image_column].astype(str).str.replace("/", "_"),
            "path": [p if Path(p).is_file() else "" for p in paths],
            "patient_id": (
                frame[CSV_PATIENT_COLUMN].astype(str)
                if CSV_PATIENT_COLUMN in frame.columns
                else frame[image_column].astype(str)  # no patients given: each image its own
            ),
        }
    )
    for name in labels:
        table[name] = frame[name].astype(np.uint8)
    if CSV_SPLIT_COLUMN in frame.columns:
        parts = frame[CSV_SPLIT_COLUMN].astype(str).str.lower()
        unknown = sorted(set(parts) - set(SPLIT_NAMES))
        if unknown:
            raise DatasetLayoutError(
                f"{csv_path}: the {CSV_SPLIT_COLUMN!r} column holds {unknown}; allowed: "
                f"{', '.join(SPLIT_NAMES)}"
            )
        table[CSV_SPLIT_COLUMN] = parts.to_numpy()
    duplicated = table["image_id"][table["image_id"].duplicated()]
    if len(duplicated):
        raise DatasetLayoutError(f"{csv_path}: images listed twice, e.g. {list(duplicated[:3])}")
    return LabelledImages(f"csv:{csv_path}", csv_path.parent, table, classes=tuple(labels))


def csv_dataset(path: str | Path) -> DatasetDef:
    """The definition of a CSV dataset (its name: ``csv-<file stem>-<8 hex of its path>``).

    The CSV holds one row per image: an image column (``path``, ``image``, ``image_path`` or
    ``file``), one 0/1 column per label, optionally ``patient_id`` (then SPLIT=patient draws a
    patient-disjoint split) and ``split`` (train/val/test: SPLIT=paper uses it as given).
    """
    csv_path = Path(path).expanduser().resolve()
    if not csv_path.is_file():
        raise DatasetLayoutError(
            f"{csv_path} does not exist: pass csv:/path/to/labels.csv naming your label file"
        )
    header = pd.read_csv(csv_path, nrows=0)
    _, labels = _csv_columns(header, csv_path)
    digest = hashlib.sha256(str(csv_path).encode()).hexdigest()[:8]
    return DatasetDef(
        name=f"csv-{csv_path.stem}-{digest}",
        title=f"your data ({csv_path.name})",
        classes=tuple(labels),
        read=lambda root, p=csv_path: read_csv_dataset(p),
        fixed_root=csv_path.parent,
    )
