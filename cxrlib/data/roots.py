"""Finding the real datasets on disk.

* CXR14: NIH ChestX-ray14 (Wang et al., CVPR 2017), Kaggle dataset ``nih-chest-xrays/data``:
  ``Data_Entry_2017.csv`` beside ``images_001/images/*.png`` ... ``images_012/``.
* CXR11: RANZCR CLiP (Kaggle competition ``ranzcr-clip-catheter-line-classification``):
  ``train.csv`` beside ``train/<StudyInstanceUID>.jpg``.

Where a root comes from, first found first (:func:`find_data_root`):

1. given explicitly: a parameter, ``--cxr14-root``, or ``$CXR14_ROOT`` / ``$CXR11_ROOT``;
2. a Kaggle input (``/kaggle/input/...``; its exact path varies between notebooks, so the
   first three levels are searched for the dataset's marker file);
3. a finished ``python -m cxrlib download`` (recorded in ``<DATA_DIR>/downloads.json``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cxrlib.data.datasets import PAPER_DATASETS, DatasetDef, get_dataset
from cxrlib.data.tables import DatasetLayoutError
from cxrlib.fileio import atomic_write_text

#: Kaggle mounts attached datasets and competitions here (``$CXRLIB_KAGGLE_INPUT`` moves it,
#: for tests that build a Kaggle-like tree).
KAGGLE_INPUT_ENV = "CXRLIB_KAGGLE_INPUT"


def kaggle_input() -> Path:
    return Path(os.environ.get(KAGGLE_INPUT_ENV, "/kaggle/input"))


def downloads_record() -> Path:
    """The file in which :mod:`cxrlib.data.download` records each finished download."""
    from cxrlib.paths import data_root

    return data_root() / "downloads.json"


def record_download(dataset: str, root: Path) -> None:
    """Remember where the finished download of ``dataset`` is (atomically)."""
    record = _read_downloads()
    record[dataset] = str(Path(root).resolve())
    atomic_write_text(downloads_record(), json.dumps(record, indent=2, sort_keys=True))


def _read_downloads() -> dict[str, str]:
    try:
        return json.loads(downloads_record().read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def discover_root(definition: DatasetDef) -> tuple[Path, str] | None:
    """(root, how it was found) of a dataset no parameter names, or None."""
    if definition.env_var and os.environ.get(definition.env_var):
        return Path(os.environ[definition.env_var]).expanduser(), f"${definition.env_var}"
    base = kaggle_input()
    if base.is_dir():
        for rel in definition.kaggle:
            if definition.has_marker(base / rel):
                return base / rel, "Kaggle input"
        for marker in definition.markers:
            for pattern in (f"*/{marker}", f"*/*/{marker}", f"*/*/*/{marker}"):
                for found in sorted(base.glob(pattern)):
                    return found.parent, "Kaggle input"
    downloaded = _read_downloads().get(definition.name)
    if downloaded and definition.has_marker(Path(downloaded)):
        return Path(downloaded), "python -m cxrlib download"
    return None


def found_roots() -> dict[str, tuple[Path, str]]:
    """Every paper dataset whose real data is there: name -> (root, how it was found)."""
    found = {}
    for name in PAPER_DATASETS:
        hit = discover_root(get_dataset(name))
        if hit is not None:
            found[name] = hit
    return found


def find_data_root(dataset: str | DatasetDef, explicit: str | None = None) -> Path | None:
    """The root of ``dataset`` (a name or definition), or None when none is found.

    An explicit root that does not hold the dataset's marker file is an error, not a fallback.
    """
    definition = get_dataset(dataset)
    name, markers = definition.name, " or ".join(definition.markers)
    if explicit:
        root = Path(explicit).expanduser()
        if not root.is_dir():
            raise DatasetLayoutError(
                f"{name.upper()} root {root} does not exist; pass the folder that holds "
                f"{markers} (e.g. --{name}-root /path/to/data)"
            )
        if not definition.has_marker(root):
            raise DatasetLayoutError(
                f"{name.upper()} root {root} has no {markers}; pass the folder of the Kaggle "
                f"download that holds it"
            )
        return root
    hit = discover_root(definition)
    return None if hit is None else hit[0]


def data_source(config, definition: DatasetDef) -> str:
    """``phantom`` or ``real`` for this dataset under ``config``: a dataset without a phantom
    (your CSV) is always real; ``DATA_SOURCE=auto`` takes the real data wherever it is found."""
    if not definition.phantom or config.data.data_source == "real":
        return "real"
    if config.data.data_source == "phantom":
        return "phantom"
    return "real" if find_data_root(definition, definition.configured_root(config)) else "phantom"


def data_plan(config) -> list[str]:
    """One line per paper dataset: the data it will use under ``config`` and where from
    (``./run_all.sh`` prints these before it starts; ``python -m cxrlib data``)."""
    lines = []
    for name in PAPER_DATASETS:
        definition = get_dataset(name)
        if data_source(config, definition) == "phantom":
            why = "DATA_SOURCE=phantom" if config.data.data_source == "phantom" else "none found"
            lines.append(f"{name}: phantom data ({why})")
            continue
        given = definition.configured_root(config)
        how = f"${definition.env_var}" if given == os.environ.get(definition.env_var) else "given"
        hit = (Path(given), how) if given else discover_root(definition)
        lines.append(
            f"{name}: real data at {hit[0]} ({hit[1]})"
            if hit
            else f"{name}: real data NOT FOUND: python -m cxrlib download {name}, attach it on "
            f"Kaggle, or --{name}-root DIR"
        )
    return lines
