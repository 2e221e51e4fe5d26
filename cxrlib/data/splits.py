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

from cxrlib.core.errors import UserError
from cxrlib.core.fileio import atomic_write, sha256_of

AUTHORS_COMMIT = "cd1ed1d8ea43c1510de5018de3fa90f149f76e56"
AUTHORS_BASE_URL = (
    f"https://raw.githubusercontent.com/wuliwuxin/CTransCNN/{AUTHORS_COMMIT}/open_data"
)
SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True, kw_only=True)
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


@dataclass(frozen=True)
class OfficialSplit:
    """The publisher's own split lists in the dataset's folder, one image name per line: NIH
    ChestX-ray14's ``train_val_list.txt`` and ``test_list.txt`` (patient-disjoint; the split
    most of the CXR14 literature reports). Validation is drawn from ``train_val``, whole
    patients at a time, with ``SPLIT_SEED``: ``val_fraction`` of its images."""

    train_val: str
    test: str
    val_fraction: float

    def names(self) -> list[str]:
        return [self.train_val, self.test]


class SplitFileError(UserError, ValueError):
    """A split file that is corrupt, tampered with or inconsistent with the dataset."""


#: Seconds a split-file download may wait for the server (the files are small).
DOWNLOAD_TIMEOUT = 20


def splits_dir(data: Path) -> Path:
    """``<DATA_DIR>/splits/<commit>``: where the authors' split files of every dataset go."""
    return data / "splits" / AUTHORS_COMMIT[:7]


def split_folder(spec: SplitFiles, dest: Path) -> Path:
    """Where the authors' split files of ``spec`` live under ``dest`` (:func:`splits_dir`)."""
    return dest / spec.folder


def local_split_files(spec: SplitFiles, dest: Path) -> Path | None:
    """The folder of the authors' split files when every one is there with the authors' SHA-256,
    else None -- without touching the network."""
    folder = split_folder(spec, dest)
    ok = all(
        (folder / n).is_file() and sha256_of(folder / n) == spec.sha256[n] for n in spec.names()
    )
    return folder if ok else None


def _download(url: str, target: Path, spec: SplitFiles, local: str | None, offline: bool) -> bytes:
    folder = target.parent
    if offline:
        raise SplitFileError(
            f"{target.name} is not in {folder} and offline (CXRLIB_OFFLINE=1) forbids "
            f"downloading it "
            f"from {url}: copy the authors' open_data/{spec.folder}/ files into {folder}"
        )
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
            return response.read()
    except OSError as err:
        if local is not None:
            raise SplitFileError(
                f"the local split file {target} fails its checksum (SHA-256 {local}, the "
                f"authors' file at commit {AUTHORS_COMMIT[:7]} has {spec.sha256[target.name]}): "
                f"it is not the authors' file. Replace it with theirs (open_data/{spec.folder}/"
                f"{target.name}) or delete it to download it again (the download failed: {err})"
            ) from err
        raise SplitFileError(
            f"could not download {url}: {err}. Without internet, copy the authors' "
            f"open_data/{spec.folder}/ files into {folder}"
        ) from err


def fetch_split_files(
    spec: SplitFiles, dest: Path, base_url: str = AUTHORS_BASE_URL, offline: bool = False
) -> Path:
    """Download (once) into ``dest`` (:func:`splits_dir`) and verify the authors' split files of
    ``spec``; return their folder. ``offline`` (no network here: a GPU box, CI): fail at once,
    naming the folder to copy the files into, instead of waiting for a connection.

    Files already present with the right SHA-256 are not downloaded again. A download whose
    checksum differs is refused and nothing is written; the first failure ends the call (one
    wait for a network that is not there, not one per file).
    """
    folder = split_folder(spec, dest)
    for name in spec.names():
        target = folder / name
        local = sha256_of(target) if target.is_file() else None
        if local == spec.sha256[name]:
            continue
        url = f"{base_url.rstrip('/')}/{spec.folder}/{name}"
        payload = _download(url, target, spec, local, offline)
        actual = hashlib.sha256(payload).hexdigest()
        if actual != spec.sha256[name]:
            raise SplitFileError(
                f"{url} has SHA-256 {actual}, expected {spec.sha256[name]} (commit "
                f"{AUTHORS_COMMIT}); the file was altered: delete it and download again"
            )
        with atomic_write(target, "wb") as handle:
            handle.write(payload)
    return folder


def verify_split_files(spec: SplitFiles, folder: Path) -> None:
    """Raise :class:`SplitFileError` naming the first file whose SHA-256 is not the authors'."""
    for name in spec.names():
        path = Path(folder) / name
        if not path.is_file():
            raise SplitFileError(f"split file {path} is missing; run fetch_split_files first")
        if sha256_of(path) != spec.sha256[name]:
            raise SplitFileError(
                f"{path} does not match the authors' SHA-256; delete it and fetch it again"
            )


def _split_text(path: Path) -> str:
    """The text of a split, class or list file; damaged bytes are one line naming the file."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise SplitFileError(
            f"{path} is not a split file (not text at byte {err.start}): it was damaged; delete "
            f"it and run again to fetch it again (a phantom's: delete the phantom's folder, "
            f"which is then written again, the same)"
        ) from err


def read_split_classes(
    spec: SplitFiles, folder: Path, classes: tuple[str, ...], dataset: str = "this dataset"
) -> list[str]:
    """The class list of a split folder; it must equal ``classes`` (``dataset``'s), in order."""
    path = Path(folder) / spec.classes
    if not path.is_file():
        raise SplitFileError(f"{path} is missing: is {folder} the {spec.folder} split folder?")
    found = [line.strip() for line in _split_text(path).splitlines() if line.strip()]
    if tuple(found) != tuple(classes):
        raise SplitFileError(
            f"{path} lists classes {found}, expected {list(classes)} in this order; it does "
            f"not belong to {dataset}"
        )
    return found


def read_split_file(path: Path, num_classes: int) -> pd.DataFrame:
    """Parse one split file into columns ``image_id`` (file name) and ``labels`` (K ints)."""
    names, labels = [], []
    text = _split_text(path)
    for line_no, line in enumerate(text.splitlines(), start=1):
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


def read_paper_split(
    spec: SplitFiles, folder: Path, classes: tuple[str, ...], dataset: str = "this dataset"
) -> pd.DataFrame:
    """All parts of the papers' split: ``image_id``, ``split`` and the label matrix as
    columns named by class."""
    classes = read_split_classes(spec, folder, classes, dataset)
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


def read_image_list(path: Path) -> list[str]:
    """The image names of a list file (one per line; blank lines skipped)."""
    return [line.strip() for line in _split_text(path).splitlines() if line.strip()]


def official_split(
    table: pd.DataFrame, spec: OfficialSplit, root: Path, seed: int = 0, required: bool = True
) -> pd.Series:
    """train/val/test of each row of ``table`` in the publisher's split (:class:`OfficialSplit`),
    restricted to the table's images; "" for an image in neither list. Without the list files:
    an error naming them when ``required``, else "" everywhere."""
    paths = [Path(root) / name for name in spec.names()]
    absent = [p for p in paths if not p.is_file()]
    if absent:
        if required:
            raise SplitFileError(
                f"SPLIT='official' needs {' and '.join(str(p) for p in absent)} (the Kaggle "
                f"dataset nih-chest-xrays/data has them beside Data_Entry_2017.csv): download "
                f"the dataset again, or use SPLIT='paper' or 'patient'"
            )
        return pd.Series("", index=table.index)
    train_val, test = (set(read_image_list(p)) for p in paths)
    part = pd.Series("", index=table.index, dtype=object)
    part[table["image_id"].isin(test)] = "test"
    pool = table["image_id"].isin(train_val) & (part == "")
    fractions = (1.0 - spec.val_fraction, spec.val_fraction, 0.0)
    part[pool] = patient_split(table.loc[pool, "patient_id"], fractions, seed=seed)
    return part


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
