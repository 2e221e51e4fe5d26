"""The papers' split files (downloaded, verified, parsed), a patient-disjoint split, leakage.

The authors published their splits in github.com/wuliwuxin/CTransCNN, folder ``open_data/``
(identical bytes in wuliwuxin/CheXNet). They are downloaded at run time from a pinned commit
and checked against the SHA-256 recorded here; this repository never ships them.

Split-file format, one image per line: ``<relative path>\\t<comma-separated 0/1 labels>``; only
the file name of the path maps to the Kaggle layouts. The CXR14 split is image-level random,
so patients leak between train and test (1,098 of 1,332 test patients); :func:`patient_split`
builds the patient-disjoint alternative and :func:`leakage_report` measures both.
"""

from __future__ import annotations

import hashlib
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlib.data.labels import CLASSES, check_dataset
from cxrlib.errors import UserError
from cxrlib.fileio import atomic_write
from cxrlib.paths import data_root

AUTHORS_COMMIT = "cd1ed1d8ea43c1510de5018de3fa90f149f76e56"
AUTHORS_BASE_URL = (
    f"https://raw.githubusercontent.com/wuliwuxin/CTransCNN/{AUTHORS_COMMIT}/open_data"
)
SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True)
class SplitFiles:
    """Relative paths (under ``open_data/`` of the authors' repo) and SHA-256 of one dataset."""

    folder: str
    classes: str
    parts: dict[str, str]
    sha256: dict[str, str]

    def names(self) -> list[str]:
        return [self.classes, *self.parts.values()]


SPLIT_FILES: dict[str, SplitFiles] = {
    "cxr14": SplitFiles(
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
    ),
    "cxr11": SplitFiles(
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
    ),
}

#: The papers' split sizes (train, val, test).
PAPER_SPLIT_SIZES = {"cxr14": (46563, 3624, 1572), "cxr11": (21059, 6016, 3008)}


class SplitFileError(UserError, ValueError):
    """A split file that is corrupt, tampered with or inconsistent with the dataset."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_split_files(
    dataset: str, dest: Path | None = None, base_url: str = AUTHORS_BASE_URL
) -> Path:
    """Download (once) and verify the authors' split files of ``dataset``; return their folder.

    Files already present with the right SHA-256 are not downloaded again. A download whose
    checksum differs is refused and nothing is written.
    """
    spec = SPLIT_FILES[check_dataset(dataset)]
    folder = (dest or data_root() / "splits" / AUTHORS_COMMIT[:7]) / spec.folder
    for name in spec.names():
        target = folder / name
        local = sha256_of(target) if target.is_file() else None
        if local == spec.sha256[name]:
            continue
        url = f"{base_url.rstrip('/')}/{spec.folder}/{name}"
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                payload = response.read()
        except OSError as err:
            if local is not None:
                raise SplitFileError(
                    f"the local split file {target} fails its checksum (SHA-256 {local}, the "
                    f"authors' file at commit {AUTHORS_COMMIT[:7]} has {spec.sha256[name]}): it "
                    f"is not the authors' file. Replace it with theirs (open_data/{spec.folder}/"
                    f"{name}) or delete it to download it again (the download failed: {err})"
                ) from err
            raise SplitFileError(
                f"could not download {url}: {err}. Without internet, copy the authors' "
                f"open_data/{spec.folder}/ files into {folder}"
            ) from err
        actual = hashlib.sha256(payload).hexdigest()
        if actual != spec.sha256[name]:
            raise SplitFileError(
                f"{url} has SHA-256 {actual}, expected {spec.sha256[name]} (commit "
                f"{AUTHORS_COMMIT}); the file was altered: delete it and download again"
            )
        with atomic_write(target, "wb") as handle:
            handle.write(payload)
    return folder


def verify_split_files(dataset: str, folder: Path) -> None:
    """Raise :class:`SplitFileError` naming the first file whose SHA-256 is not the authors'."""
    spec = SPLIT_FILES[check_dataset(dataset)]
    for name in spec.names():
        path = Path(folder) / name
        if not path.is_file():
            raise SplitFileError(f"split file {path} is missing; run fetch_split_files first")
        if sha256_of(path) != spec.sha256[name]:
            raise SplitFileError(
                f"{path} does not match the authors' SHA-256; delete it and fetch it again"
            )


def read_split_classes(dataset: str, folder: Path) -> list[str]:
    """The class list of a split folder; it must equal the dataset's, in order."""
    path = Path(folder) / SPLIT_FILES[check_dataset(dataset)].classes
    if not path.is_file():
        raise SplitFileError(f"{path} is missing: is {folder} the {dataset} split folder?")
    classes = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if tuple(classes) != CLASSES[dataset]:
        raise SplitFileError(
            f"{path} lists classes {classes}, expected {list(CLASSES[dataset])} in this order; "
            f"it does not belong to {dataset}"
        )
    return classes


def read_split_file(path: Path, num_classes: int) -> pd.DataFrame:
    """Parse one split file into columns ``image_id`` (file name) and ``labels`` (K ints)."""
    names, labels = [], []
    for line_no, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rel, label_text = line.split("\t")
            values = [int(v) for v in label_text.split(",")]
        except ValueError as err:
            raise SplitFileError(f"{path}:{line_no}: expected '<path>\\t<0/1,...>'") from err
        if len(values) != num_classes or set(values) - {0, 1}:
            raise SplitFileError(f"{path}:{line_no}: expected {num_classes} labels in 0/1")
        names.append(rel.rsplit("/", 1)[-1])
        labels.append(values)
    frame = pd.DataFrame({"image_id": names})
    duplicated = frame["image_id"][frame["image_id"].duplicated()]
    if len(duplicated):
        raise SplitFileError(f"{path}: duplicate image names, e.g. {list(duplicated[:3])}")
    frame["labels"] = labels
    return frame


def read_paper_split(dataset: str, folder: Path) -> pd.DataFrame:
    """All parts of the papers' split: ``image_id``, ``split`` and the label matrix as
    columns named by class."""
    spec = SPLIT_FILES[check_dataset(dataset)]
    classes = read_split_classes(dataset, folder)
    parts = []
    for split, name in spec.parts.items():
        part = read_split_file(Path(folder) / name, len(classes))
        part.insert(1, "split", split)
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    overlap = frame["image_id"][frame["image_id"].duplicated()]
    if len(overlap):
        raise SplitFileError(f"{folder}: images in more than one part, e.g. {list(overlap[:3])}")
    matrix = pd.DataFrame(frame.pop("labels").tolist(), columns=classes, dtype=np.uint8)
    return pd.concat([frame, matrix], axis=1)


def patient_split(
    patient_ids: pd.Series,
    fractions: tuple[float, float, float],
    seed: int = 0,
) -> pd.Series:
    """Assign whole patients to train/val/test with a seeded shuffle.

    Patients are shuffled, then taken in order until each part holds about its fraction of the
    *images*; no patient is in two parts. Returns the split name per row of ``patient_ids``.
    """
    if not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must sum to 1; got {fractions}")
    counts = patient_ids.value_counts(sort=False)
    order = np.random.default_rng(seed).permutation(len(counts))
    shuffled = counts.iloc[order]
    cumulative = shuffled.cumsum().to_numpy() / len(patient_ids)
    bounds = np.cumsum(fractions)[:2]
    part = np.searchsorted(bounds, cumulative, side="left").clip(0, 2)
    assignment = {pid: SPLIT_NAMES[k] for pid, k in zip(shuffled.index, part, strict=True)}
    return patient_ids.map(assignment)


def leakage_report(table: pd.DataFrame, split_column: str = "split") -> pd.DataFrame:
    """Patients shared between parts of a split, and how many images they hold.

    One row per pair of parts (train-val, train-test, val-test): shared patients, the
    patients of the second part, and the second part's images that belong to a shared patient.
    """
    rows = []
    for first, second in (("train", "val"), ("train", "test"), ("val", "test")):
        a = table.loc[table[split_column] == first, "patient_id"]
        b = table.loc[table[split_column] == second, "patient_id"]
        shared = set(a) & set(b)
        rows.append(
            {
                "parts": f"{first}-{second}",
                "shared_patients": len(shared),
                "patients_in_second": b.nunique(),
                "images_of_shared_patients_in_second": int(b.isin(shared).sum()),
                "images_in_second": len(b),
            }
        )
    return pd.DataFrame(rows)
