"""One call from configuration to training-ready data: table, splits, checks and image cache.

``prepare_dataset(config, "cxr14")`` locates the data once (the real Kaggle folder, or a
phantom generated on demand; :func:`cxrlib.data.roots.locate`), reads it with the real-layout
readers, maps the papers' split files onto it by file name, cross-checks their labels, builds
the patient-disjoint alternative and, where the publisher has one, the official split (NIH's
``train_val_list.txt``/``test_list.txt``), and builds (or reuses) the image cache. Notebooks and
``python -m cxrlib prepare`` both call it.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlib.core.config import Config
from cxrlib.core.errors import UserError
from cxrlib.data.cache import ImageCache, build_cache
from cxrlib.data.datasets import get_dataset
from cxrlib.data.definition import DatasetDef, DatasetLayoutError
from cxrlib.data.phantom import PhantomSpec, generate_phantom
from cxrlib.data.roots import Location, locate
from cxrlib.data.splits import (
    SPLIT_NAMES,
    SplitFileError,
    local_split_files,
    official_split,
    patient_split,
    splits_dir,
)


class MissingImagesError(UserError, FileNotFoundError):
    """Images named by the split that are not on disk."""


@dataclass(kw_only=True)
class PreparedDataset:
    """A dataset ready for training: ``table`` rows are the images used, with columns
    ``image_id, path, patient_id, <classes>, paper_split, patient_split[, official_split], part,
    cache_row``: ``part`` is the train/val/test part of the selected split (SPLIT: paper,
    patient or official)."""

    definition: DatasetDef  #: what the dataset is (its classes, layout, split files)
    root: Path  #: the folder it was read from (the phantom's, for a phantom)
    source: str  #: phantom or real (a CSV dataset is real: your own images)
    split_name: str
    table: pd.DataFrame
    cache: ImageCache
    #: localisation ground truth of the images read (:attr:`DatasetDef.annotations`)
    annotations: pd.DataFrame
    label_disagreements: pd.DataFrame
    dropped_missing: int = 0

    @property
    def dataset(self) -> str:
        return self.definition.name

    @property
    def classes(self) -> tuple[str, ...]:
        return self.definition.classes

    def part(self, name: str) -> pd.DataFrame:
        """The rows of one part (``train``, ``val`` or ``test``) of the selected split."""
        if name not in SPLIT_NAMES:
            raise ValueError(f"unknown part {name!r}; allowed: {', '.join(SPLIT_NAMES)}")
        return self.table[self.table["part"] == name]

    def labels(self, name: str) -> np.ndarray:
        return self.part(name)[list(self.classes)].to_numpy(dtype=np.float32)

    def cache_rows(self, name: str) -> np.ndarray:
        return self.part(name)["cache_row"].to_numpy()

    def split_hash(self) -> str:
        """A digest of which image is in which part with which labels (the data a run saw)."""
        columns = ["image_id", "part", *self.classes]
        text = self.table[columns].sort_values("image_id").to_csv(index=False)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def identity(self) -> dict:
        """What a run records about its data, to refuse a resume on other data."""
        return {
            "dataset": self.dataset,
            "source": self.source,
            "split": self.split_name,
            "image_size": self.cache.size,
            "images": len(self.table),
            "cache_key": self.cache.folder.name,
            "split_hash": self.split_hash(),
        }


def _authors_label_vectors(definition: DatasetDef, data: Path) -> np.ndarray | None:
    """The train label vectors of the authors' split files where they are on disk already
    (verified), else None. Never downloads: a phantom must not wait for a network."""
    spec = definition.split_files
    folder = local_split_files(spec, splits_dir(data)) if spec else None
    if folder is None:
        return None
    paper = definition.read_paper_split(folder)
    return paper.loc[paper["split"] == "train", list(definition.classes)].to_numpy()


def _phantom_root(config: Config, definition: DatasetDef) -> Path:
    """The phantom of ``definition`` (generated on first use), with combinations of the
    authors' labels where their split files are here, else random ones."""
    data = config.workspace.data
    vectors = _authors_label_vectors(definition, data)
    spec = PhantomSpec(
        definition.name,
        num_images=config.data.phantom_images,
        label_source="authors" if vectors is not None else "random",
    )
    return generate_phantom(spec, data / "phantom", real_vectors=vectors)


def locate_dataset(config: Config, where: Location) -> tuple[Path, Path | None]:
    """(dataset root, folder of the authors' split files or None) of a located dataset."""
    definition = where.definition
    if where.source == "phantom":
        root = _phantom_root(config, definition)
        return root, root / "splits"
    if where.root is None:
        name = definition.name
        raise DatasetLayoutError(
            f"no {name.upper()} data found: run `python -m cxrlib download {name}` (or set "
            f"DOWNLOAD = True in notebook 01), attach the Kaggle data to the notebook, or name "
            f"its folder: --data-root {name}=DIR (./run_all.sh, python -m cxrlib) or "
            f"DATA_ROOTS = {{'{name}': DIR}} (a notebook); DATA_SOURCE=phantom uses phantom data"
        )
    if definition.split_files is None:
        return where.root, None
    workspace = config.workspace
    return where.root, definition.fetch_split_files(
        splits_dir(workspace.data), offline=workspace.offline
    )


def _own_split(images: pd.DataFrame, definition: DatasetDef, config: Config) -> pd.DataFrame:
    """A dataset without the authors' split files: its own ``split`` column is the "paper"
    split; without one, only SPLIT=patient (drawn) is possible."""
    table = images.copy()
    if "split" in table.columns:
        return table.rename(columns={"split": "paper_split"})
    if config.data.split == "paper":
        raise DatasetLayoutError(
            f"{definition.title} has no 'split' column: add one (train/val/test), or set "
            f"SPLIT=patient to draw a split (patient-disjoint when a patient_id column is given)"
        )
    table["paper_split"] = ""
    return table


def _merge_with_split(
    images: pd.DataFrame, classes: list[str], paper: pd.DataFrame, split_dir: Path, root: Path
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The dataset rows named by the split, with the split column; and label disagreements."""
    table = images.merge(paper, on="image_id", how="right", suffixes=("", "_split"), indicator=True)
    unknown = table.loc[table["_merge"] == "right_only", "image_id"]
    if len(unknown):
        raise SplitFileError(
            f"{len(unknown)} image(s) of the split files in {split_dir} are not in the "
            f"dataset at {root} (e.g. {list(unknown[:3])}): wrong dataset root?"
        )
    official = table[classes].to_numpy()
    split_labels = table[[f"{c}_split" for c in classes]].to_numpy()
    differs = (official != split_labels).any(axis=1)
    disagreements = table.loc[differs, ["image_id"]].assign(
        official=[",".join(map(str, r)) for r in official[differs]],
        split_file=[",".join(map(str, r)) for r in split_labels[differs]],
    )
    table[classes] = split_labels.astype(np.uint8)  # the papers trained on the split's labels
    table = table.drop(columns=["_merge", *[f"{c}_split" for c in classes]])
    return table.rename(columns={"split": "paper_split"}), disagreements


def _split_table(
    images: pd.DataFrame, definition: DatasetDef, root: Path, split_dir: Path | None, config
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The images of the papers' split (their split files mapped by file name), or a dataset's
    own split; and the images whose split-file labels differ from the official ones."""
    if split_dir is None:
        return _own_split(images, definition, config), pd.DataFrame()
    paper = definition.read_paper_split(split_dir)
    classes = list(definition.classes)
    table, disagreements = _merge_with_split(images, classes, paper, split_dir, root)
    if len(disagreements):
        warnings.warn(
            f"{definition.name}: {len(disagreements)} image(s) whose split-file labels differ "
            f"from the official labels (see PreparedDataset.label_disagreements)",
            stacklevel=3,
        )
    return table, disagreements


def _drop_missing(table: pd.DataFrame, config: Config, root: Path) -> tuple[pd.DataFrame, int]:
    """The rows whose image is on disk: missing images are an error naming them, or dropped
    (and counted) with ``ALLOW_MISSING_IMAGES``."""
    missing = table["path"] == ""
    if not missing.any():
        return table, 0
    names = table.loc[missing, "image_id"].tolist()
    if not config.data.allow_missing_images:
        raise MissingImagesError(
            f"{len(names)} of {len(table)} images of the split are missing under {root} "
            f"(first: {names[:5]}). Complete the download, or set ALLOW_MISSING_IMAGES=True "
            f"to train on the rest (every table then says so)."
        )
    return table[~missing].reset_index(drop=True), int(missing.sum())


def _add_splits(table: pd.DataFrame, definition: DatasetDef, root: Path, config: Config) -> None:
    """The patient-disjoint split (``patient_split``), the publisher's official split where the
    dataset has one (``official_split``), and ``part``: the chosen split's train/val/test."""
    sizes = table["paper_split"].value_counts()
    fractions = tuple(float(sizes.get(p, 0)) / len(table) for p in SPLIT_NAMES)
    if not np.isclose(sum(fractions), 1.0):  # no split of its own: the definition's fractions
        fractions = definition.default_fractions
    seed = config.data.split_seed
    table["patient_split"] = patient_split(table["patient_id"], fractions, seed=seed)
    if definition.official_split is not None:
        table["official_split"] = official_split(
            table,
            definition.official_split,
            root,
            seed=seed,
            required=config.data.split == "official",
        )
    elif config.data.split == "official":
        raise DatasetLayoutError(
            f"{definition.name} has no official split of its publisher (SPLIT='official' is "
            f"NIH ChestX-ray14's train_val_list.txt/test_list.txt); use SPLIT='paper' or "
            f"'patient'"
        )
    table["part"] = table[f"{config.data.split}_split"]  # train/val/test of the chosen split


def prepare_dataset(
    config: Config, dataset: str, workers: int | None = None, progress: bool = True
) -> PreparedDataset:
    """Everything training needs for ``dataset`` under ``config`` (idempotent, cached): the
    data located once, read from its layout, its splits, and the image cache.

    ``dataset`` is a registered name (``cxr14``, ``cxr11``) or ``csv:/path/to/labels.csv``.
    """
    definition = get_dataset(dataset)
    where = locate(config, definition)
    root, split_dir = locate_dataset(config, where)
    images = definition.read(root)
    table, disagreements = _split_table(images, definition, root, split_dir, config)
    table, dropped = _drop_missing(table, config, root)
    _add_splits(table, definition, root, config)
    cache = build_cache(
        table["image_id"].tolist(),
        table["path"].tolist(),
        size=config.data.image_size,
        cache_root=config.workspace.data / "cache",
        # one name per image set: a newer cache of the same name replaces the older one
        name=f"{root.name if where.source == 'phantom' else definition.name}"
        f"-{config.data.image_size}px",
        workers=workers,
        progress=progress,
    )
    table["cache_row"] = cache.rows_of(table["image_id"])
    return PreparedDataset(
        definition=definition,
        root=root,
        source=where.source,
        split_name=config.data.split,
        table=table,
        cache=cache,
        annotations=definition.annotations(root),
        label_disagreements=disagreements,
        dropped_missing=dropped,
    )
