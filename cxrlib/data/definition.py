"""The dataset contract: one :class:`DatasetDef` holds everything the kit knows about a dataset.

A dataset with its own on-disk layout is one file in :mod:`cxrlib.data.sets` that defines
``DATASET = DatasetDef(...)`` and nothing else is needed: its classes; how its folder is
recognised (marker files and, among Kaggle inputs, its whole layout); its reader -- folder ->
one row per image with ``image_id`` (file name), ``path`` (absolute, or empty when the image is
absent), ``patient_id`` and one 0/1 column per class in the definition's order, optionally a
``split`` column (train/val/test) and the patient facts of :data:`SUBGROUP_COLUMNS` -- and,
where it has them, its localisation annotations (boxes or lines, labelled with the
definition's class names), the authors' split files and the publisher's official split. The
rest of the kit asks :func:`cxrlib.data.datasets.get_dataset` and never spells a dataset's
facts again -- as torchxrayvision does it.

From files to batches there are two types: this definition, and what
:func:`cxrlib.data.prepare.prepare_dataset` makes of it (:class:`~cxrlib.data.prepare.
PreparedDataset`: the table with its splits, the annotations and the image cache, which gives
the batches).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cxrlib.core.errors import UserError
from cxrlib.data.splits import (
    AUTHORS_BASE_URL,
    OfficialSplit,
    SplitFileError,
    SplitFiles,
    fetch_split_files,
    read_paper_split,
    verify_split_files,
)

#: Columns every reader's table has besides one 0/1 column per class.
TABLE_COLUMNS = ("image_id", "path", "patient_id")
#: Optional columns of a reader's table, what the subgroup analysis splits by: ``sex`` (F/M),
#: ``age`` (years) and ``view`` (the film's view position, PA/AP) -- NIH's metadata has all
#: three; a CSV dataset may have them.
SUBGROUP_COLUMNS = ("sex", "age", "view")


class DatasetLayoutError(UserError, FileNotFoundError):
    """A dataset folder or file that does not have the expected layout."""


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


def _no_annotations(root: Path) -> pd.DataFrame:
    return pd.DataFrame()


@dataclass(frozen=True, kw_only=True)
class DatasetDef:
    """Everything the kit knows about one dataset (see the module docstring)."""

    name: str  #: the key used everywhere (``--dataset``, ``DATA_ROOTS``, run folders, tables)
    title: str
    classes: tuple[str, ...]
    read: Callable[[Path], pd.DataFrame]  #: root folder -> the table (module docstring)
    #: root folder -> ground truth for localisation: ``image_id, label`` (a class name) and
    #: either ``x, y, w, h`` (boxes, in the image's pixels) or ``points`` (lines: [[x, y], ...])
    annotations: Callable[[Path], pd.DataFrame] = _no_annotations
    markers: tuple[str, ...] = ()  #: any of these files directly under the root identifies it
    #: root -> True when the folder has this dataset's whole layout (finding Kaggle inputs)
    recognise: Callable[[Path], bool] | None = None
    #: what the dataset's own image files are called (a regex) and look like, in words
    file_pattern: str | None = None
    file_look: str = ""
    kaggle: tuple[str, ...] = ()  #: candidate folders under /kaggle/input
    split_files: SplitFiles | None = None  #: the authors' split files (the "paper" split)
    official_split: OfficialSplit | None = None  #: the publisher's split lists (SPLIT=official)
    paper_split_sizes: tuple[int, int, int] | None = None  #: train, val, test of the papers
    #: fractions of a drawn split (SPLIT=patient) when the dataset has no split of its own
    default_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    phantom: bool = False  #: a phantom of it can be generated (cxrlib.data.phantom)
    fixed_root: Path | None = None  #: a CSV dataset's folder (no DATA_ROOTS entry needed)
    download: KaggleSource | None = None  #: where ``python -m cxrlib download`` fetches it
    order: int = 100  #: place in listings (the papers' CXR14 and CXR11 first)

    @property
    def paper(self) -> bool:
        """True for the datasets of the papers (they have published numbers)."""
        return self.split_files is not None

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

    def fetch_split_files(
        self, dest: Path, base_url: str = AUTHORS_BASE_URL, offline: bool = False
    ) -> Path:
        """The authors' split files of this dataset, downloaded once into ``dest`` (see
        :func:`~cxrlib.data.splits.splits_dir`) and verified."""
        return fetch_split_files(self._split_spec(), dest, base_url, offline)

    def verify_split_files(self, folder: Path) -> None:
        verify_split_files(self._split_spec(), folder)

    def read_paper_split(self, folder: Path) -> pd.DataFrame:
        """The papers' split (image_id, split, label columns) from a folder of split files."""
        return read_paper_split(self._split_spec(), folder, self.classes, self.name)

    def named_like_mine(self, file_name: str) -> bool:
        """True when an image file is named as this dataset's images are."""
        return bool(self.file_pattern) and re.match(self.file_pattern, file_name, re.I) is not None


# --------------------------------------------------------------------------------------------
# Helpers for readers
# --------------------------------------------------------------------------------------------
def index_files(folders: list[Path], suffix: str) -> dict[str, str]:
    """Map file name -> absolute path for every ``*suffix`` in ``folders`` (fast scandir); a
    name found twice is an error naming both copies."""
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


def read_csv_file(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    """A dataset's CSV with its ``required`` columns, or an error naming the file."""
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DatasetLayoutError(
            f"{path} is not a readable CSV ({err}); download it again"
        ) from err
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DatasetLayoutError(
            f"{path} lacks the columns {missing}; is it the original file of the dataset?"
        )
    return frame
