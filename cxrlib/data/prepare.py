"""One call from configuration to training-ready data: table, splits, checks and image cache.

``prepare_dataset(config, "cxr14")`` locates the data (the real Kaggle folder, or a phantom
generated on demand), reads it with the real-layout readers, maps the papers' split files
onto it by file name, cross-checks their labels, builds the patient-disjoint alternative, and
builds (or reuses) the image cache. Notebooks and ``python -m cxrlib prepare`` both call it.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlib.config import Config
from cxrlib.data.cache import ImageCache, build_cache
from cxrlib.data.datasets import DatasetDef, get_dataset
from cxrlib.data.phantom import PhantomSpec, generate_phantom
from cxrlib.data.roots import data_source, find_data_root
from cxrlib.data.splits import (
    SPLIT_NAMES,
    SplitFileError,
    fetch_split_files,
    patient_split,
    read_paper_split,
)
from cxrlib.data.tables import DatasetLayoutError, LabelledImages
from cxrlib.errors import UserError
from cxrlib.paths import data_root


class MissingImagesError(UserError, FileNotFoundError):
    """Images named by the split that are not on disk."""


@dataclass
class PreparedDataset:
    """A dataset ready for training: ``table`` rows are the images used, with columns
    ``image_id, path, patient_id, <classes>, paper_split, patient_split, part, cache_row``:
    ``part`` is the train/val/test part of the selected split (SPLIT: paper or patient)."""

    dataset: str
    source: str  #: phantom or real (a CSV dataset is real: your own images)
    split_name: str
    labelled: LabelledImages  #: the dataset as read (all its images, boxes, lines)
    table: pd.DataFrame
    cache: ImageCache
    label_disagreements: pd.DataFrame
    dropped_missing: int = 0

    @property
    def classes(self) -> tuple[str, ...]:
        return self.labelled.classes

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


def _authors_label_vectors(dataset: str) -> np.ndarray | None:
    """The train label vectors of the authors' split files, if they can be had (else None)."""
    try:
        folder = fetch_split_files(dataset)
        paper = read_paper_split(dataset, folder)
    except (SplitFileError, OSError) as err:
        warnings.warn(
            f"authors' split files unavailable ({err}); phantom labels are random combinations",
            stacklevel=3,
        )
        return None
    return paper.loc[paper["split"] == "train", list(get_dataset(dataset).classes)].to_numpy()


def locate_dataset(config: Config, definition: DatasetDef) -> tuple[Path, Path | None]:
    """(dataset root, folder of the authors' split files or None) for the data source."""
    name = definition.name
    if data_source(config, definition) == "phantom":
        vectors = _authors_label_vectors(name)
        spec = PhantomSpec(
            name,
            num_images=config.data.phantom_images,
            label_source="authors" if vectors is not None else "random",
        )
        root = generate_phantom(spec, data_root() / "phantom", real_vectors=vectors)
        return root, root / "splits"
    if definition.fixed_root is not None:
        return definition.fixed_root, None
    root = find_data_root(definition, definition.configured_root(config))
    if root is None:
        raise DatasetLayoutError(
            f"no {name.upper()} data found: run `python -m cxrlib download {name}` (or set "
            f"DOWNLOAD = True in notebook 01), attach the Kaggle data to the notebook, or pass "
            f"--{name}-root DIR to ./run_all.sh (or set {definition.env_var}); "
            f"DATA_SOURCE=phantom uses phantom data"
        )
    return root, fetch_split_files(name)


def _own_split(images: LabelledImages, config: Config) -> pd.DataFrame:
    """A dataset without the authors' split files: its own ``split`` column is the "paper"
    split; without one, only SPLIT=patient (drawn) is possible."""
    table = images.table.copy()
    if "split" in table.columns:
        return table.rename(columns={"split": "paper_split"})
    if config.data.split == "paper":
        raise DatasetLayoutError(
            f"{images.dataset} has no 'split' column: add one (train/val/test), or set "
            f"SPLIT=patient to draw a split (patient-disjoint when a patient_id column is given)"
        )
    table["paper_split"] = ""
    return table


def _merge_with_split(
    images: LabelledImages, paper: pd.DataFrame, split_dir: Path
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The dataset rows named by the split, with the split column; and label disagreements."""
    classes = list(images.classes)
    table = images.table.merge(
        paper, on="image_id", how="right", suffixes=("", "_split"), indicator=True
    )
    unknown = table.loc[table["_merge"] == "right_only", "image_id"]
    if len(unknown):
        raise SplitFileError(
            f"{len(unknown)} image(s) of the split files in {split_dir} are not in the "
            f"dataset at {images.root} (e.g. {list(unknown[:3])}): wrong dataset root?"
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


def prepare_dataset(
    config: Config, dataset: str, workers: int | None = None, progress: bool = True
) -> PreparedDataset:
    """Everything training needs for ``dataset`` under ``config`` (idempotent, cached).

    ``dataset`` is a registered name (``cxr14``, ``cxr11``) or ``csv:/path/to/labels.csv``.
    """
    definition = get_dataset(dataset)
    dataset = definition.name
    source = data_source(config, definition)
    root, split_dir = locate_dataset(config, definition)
    images = definition.read(root)
    if split_dir is not None:
        paper = read_paper_split(dataset, split_dir)
        table, disagreements = _merge_with_split(images, paper, split_dir)
    else:
        table, disagreements = _own_split(images, config), pd.DataFrame()
    if len(disagreements):
        warnings.warn(
            f"{dataset}: {len(disagreements)} image(s) whose split-file labels differ from the "
            f"official labels (see PreparedDataset.label_disagreements)",
            stacklevel=2,
        )
    missing = table["path"] == ""
    if missing.any():
        names = table.loc[missing, "image_id"].tolist()
        if not config.data.allow_missing_images:
            raise MissingImagesError(
                f"{len(names)} of {len(table)} images of the {dataset} split are missing under "
                f"{root} (first: {names[:5]}). Complete the download, or set "
                f"ALLOW_MISSING_IMAGES=True to train on the rest (every table then says so)."
            )
        table = table[~missing].reset_index(drop=True)
    sizes = table["paper_split"].value_counts()
    fractions = tuple(float(sizes.get(p, 0)) / len(table) for p in SPLIT_NAMES)
    if not np.isclose(sum(fractions), 1.0):  # no split of its own: the definition's fractions
        fractions = definition.default_fractions
    table["patient_split"] = patient_split(
        table["patient_id"], fractions, seed=config.data.split_seed
    )
    table["part"] = table[f"{config.data.split}_split"]  # train/val/test of the chosen split
    cache = build_cache(
        table["image_id"].tolist(),
        table["path"].tolist(),
        size=config.data.image_size,
        cache_root=data_root() / "cache",
        # one name per image set: a newer cache of the same name replaces the older one
        name=f"{root.name if source == 'phantom' else dataset}-{config.data.image_size}px",
        workers=workers,
        progress=progress,
    )
    table["cache_row"] = cache.rows_of(table["image_id"])
    return PreparedDataset(
        dataset=dataset,
        source=source,
        split_name=config.data.split,
        labelled=images,
        table=table,
        cache=cache,
        label_disagreements=disagreements,
        dropped_missing=int(missing.sum()),
    )
