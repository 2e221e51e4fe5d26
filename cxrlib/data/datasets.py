"""Every dataset by name: the registered definitions and your own CSV.

* ``cxr14``, ``cxr11`` and any other module of :mod:`cxrlib.data.sets` -- found by themselves:
  each module there defines ``DATASET`` (:class:`~cxrlib.data.definition.DatasetDef`), and a new
  module is a new dataset;
* ``csv:/path/to/labels.csv`` -- your own chest X-rays (:func:`csv_dataset`): one row per image
  with its path, one 0/1 column per label, optionally a patient and a split column.

The rest of the kit asks :func:`get_dataset` and never spells a dataset's facts again.
"""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlib.data import sets
from cxrlib.data.definition import SUBGROUP_COLUMNS, DatasetDef, DatasetLayoutError
from cxrlib.data.splits import SPLIT_NAMES

CSV_PREFIX = "csv:"
#: Columns of a CSV dataset that are not labels.
CSV_IMAGE_COLUMNS = ("path", "image", "image_path", "file")
CSV_PATIENT_COLUMN = "patient_id"
CSV_SPLIT_COLUMN = "split"


def _discover() -> dict[str, DatasetDef]:
    """The ``DATASET`` of every module of :mod:`cxrlib.data.sets`, by name and ``order``."""
    found = []
    for module in pkgutil.iter_modules(sets.__path__):
        # imported by name: the package's modules are the datasets (a new file, a new dataset)
        definition = getattr(
            importlib.import_module(f"{sets.__name__}.{module.name}"), "DATASET", None
        )
        if isinstance(definition, DatasetDef):
            found.append(definition)
    names = [d.name for d in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"datasets defined twice in cxrlib.data.sets: {twice}")
    return {d.name: d for d in sorted(found, key=lambda d: (d.order, d.name))}


#: The registered datasets; the papers' two come first, in the order of the notebooks' loops.
REGISTRY: dict[str, DatasetDef] = _discover()
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
    """``all`` -> the papers' datasets; otherwise just ``name`` (validated; a
    ``csv:/path/to/labels.csv`` stays as given: the path is how it is found)."""
    if name == "all":
        return PAPER_DATASETS
    definition = get_dataset(name)
    return (name,) if name.startswith(CSV_PREFIX) else (definition.name,)


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
    extra = {image_columns[0], CSV_PATIENT_COLUMN, CSV_SPLIT_COLUMN, *SUBGROUP_COLUMNS}
    labels = [c for c in frame.columns if c not in extra]
    if not labels:
        raise DatasetLayoutError(
            f"{csv_path} has no label columns: add one 0/1 column per label, named by the label"
        )
    return image_columns[0], labels


def read_csv_dataset(csv_path: Path) -> pd.DataFrame:
    """A CSV dataset's table (:mod:`cxrlib.data.definition`); its ``split`` column, if any, is
    kept."""
    try:
        frame = pd.read_csv(csv_path, dtype={CSV_PATIENT_COLUMN: str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DatasetLayoutError(
            f"{csv_path} is not a readable CSV ({type(err).__name__}: {err}); write it as "
            f"UTF-8 text with a header row"
        ) from err
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
    for name in SUBGROUP_COLUMNS:  # patient facts for the subgroup analysis, where given
        if name in frame.columns:
            table[name] = frame[name].to_numpy()
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
        raise DatasetLayoutError(
            f"{csv_path}: images listed twice, e.g. {list(duplicated[:3])}: list each image once "
            f"(one row per image, all its labels in that row)"
        )
    return table


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
    try:
        header = pd.read_csv(csv_path, nrows=0)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DatasetLayoutError(
            f"{csv_path} is not a readable CSV ({type(err).__name__}: {err}); write it as "
            f"UTF-8 text with a header row"
        ) from err
    _, labels = _csv_columns(header, csv_path)
    digest = hashlib.sha256(str(csv_path).encode()).hexdigest()[:8]
    return DatasetDef(
        name=f"csv-{csv_path.stem}-{digest}",
        title=f"your data ({csv_path.name})",
        classes=tuple(labels),
        read=lambda root, p=csv_path: read_csv_dataset(p),
        fixed_root=csv_path.parent,
    )
