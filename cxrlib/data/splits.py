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

from cxrlib.errors import UserError
from cxrlib.fileio import atomic_write, sha256_of
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
    path_prefix: str = ""  #: the folder their lines start with (only the file name is used)
    class_folders: bool = False  #: lines name a folder per first positive class (CXR14)

    def names(self) -> list[str]:
        return [self.classes, *self.parts.values()]


def _definition(dataset):
    from cxrlib.data.datasets import get_dataset  # the definitions hold the split files

    definition = get_dataset(dataset)
    if definition.split_files is None:
        raise SplitFileError(f"{definition.name} has no split files of the papers' authors")
    return definition


class SplitFileError(UserError, ValueError):
    """A split file that is corrupt, tampered with or inconsistent with the dataset."""


def fetch_split_files(
    dataset: str, dest: Path | None = None, base_url: str = AUTHORS_BASE_URL
) -> Path:
    """Download (once) and verify the authors' split files of ``dataset``; return their folder.

    Files already present with the right SHA-256 are not downloaded again. A download whose
    checksum differs is refused and nothing is written.
    """
    spec = _definition(dataset).split_files
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
    spec = _definition(dataset).split_files
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
    definition = _definition(dataset)
    path = Path(folder) / definition.split_files.classes
    if not path.is_file():
        raise SplitFileError(f"{path} is missing: is {folder} the {dataset} split folder?")
    classes = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if tuple(classes) != definition.classes:
        raise SplitFileError(
            f"{path} lists classes {classes}, expected {list(definition.classes)} in this "
            f"order; it does not belong to {dataset}"
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
    spec = _definition(dataset).split_files
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
