"""Finding the real datasets on disk, once per run.

* CXR14: NIH ChestX-ray14 (Wang et al., CVPR 2017), Kaggle dataset ``nih-chest-xrays/data``:
  ``Data_Entry_2017.csv`` beside ``images_001/images/*.png`` ... ``images_012/``.
* CXR11: RANZCR CLiP (Kaggle competition ``ranzcr-clip-catheter-line-classification``):
  ``train.csv`` beside ``train/<StudyInstanceUID>.jpg``.

Where a root comes from, first found first (:func:`locate`), all of it in the configuration's
workspace (:class:`~cxrlib.core.workspace.Workspace`):

1. given explicitly: the workspace's ``DATA_ROOTS`` (a notebook's ``DATA_ROOTS = {"cxr14":
   "/path"}``, ``--data-root cxr14=/path``, ``$CXRLIB_DATA_ROOTS``);
2. a Kaggle input (``/kaggle/input/...``; its exact path varies between notebooks, so the
   first three levels are searched for a folder that the dataset's definition recognises --
   its metadata file *and* its image layout, so another competition's ``train.csv`` is not
   taken for RANZCR's);
3. a finished ``python -m cxrlib download`` (recorded in ``<DATA_DIR>/downloads.json``).

:func:`locate` answers once what a run needs to know -- phantom or real, the root, how it was
found -- and everything else (the data plan, preparation, the profile chosen when none is
given) asks it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from cxrlib.core.config import Config, ConfigError
from cxrlib.core.fileio import atomic_write_text
from cxrlib.core.workspace import Workspace
from cxrlib.data.datasets import PAPER_DATASETS, REGISTRY, get_dataset
from cxrlib.data.definition import DatasetDef, DatasetLayoutError


@dataclass(frozen=True)
class Location:
    """Where one dataset's images come from under a configuration."""

    definition: DatasetDef
    source: str  #: "real" or "phantom"
    root: Path | None  #: the real data's folder (None for a phantom, or real data not found)
    how: str  #: how it was chosen: "DATA_ROOTS", "Kaggle input", ... or why phantom

    @property
    def dataset(self) -> str:
        return self.definition.name

    @property
    def found(self) -> bool:
        return self.source == "phantom" or self.root is not None


def check_data_roots(workspace: Workspace) -> Workspace:
    """The workspace, after checking that each of its ``DATA_ROOTS`` names a dataset (a
    :class:`~cxrlib.core.config.ConfigError` listing them otherwise): at the entry points."""
    unknown = [name for name, _ in workspace.data_roots if name not in REGISTRY]
    if unknown:
        raise ConfigError(
            f"DATA_ROOTS names no dataset called {', '.join(map(repr, unknown))}; datasets: "
            f"{', '.join(REGISTRY)} (a CSV of your own is DATASET='csv:/path/to/labels.csv')"
        )
    return workspace


def downloads_record(workspace: Workspace) -> Path:
    """The file in which :mod:`cxrlib.data.download` records each finished download."""
    return workspace.data / "downloads.json"


def record_download(workspace: Workspace, dataset: str, root: Path) -> None:
    """Remember where the finished download of ``dataset`` is (atomically)."""
    record = _read_downloads(workspace)
    record[dataset] = str(Path(root).resolve())
    atomic_write_text(downloads_record(workspace), json.dumps(record, indent=2, sort_keys=True))


def _read_downloads(workspace: Workspace) -> dict[str, str]:
    try:
        return json.loads(downloads_record(workspace).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _kaggle_root(definition: DatasetDef, base: Path) -> Path | None:
    if not base.is_dir():
        return None
    for rel in definition.kaggle:
        if definition.recognised(base / rel):
            return base / rel
    for marker in definition.markers:
        for pattern in (f"*/{marker}", f"*/*/{marker}", f"*/*/*/{marker}"):
            for found in sorted(base.glob(pattern)):
                if definition.recognised(found.parent):
                    return found.parent
    return None


def discover_root(definition: DatasetDef, workspace: Workspace) -> tuple[Path, str] | None:
    """(root, how it was found) of a dataset that ``DATA_ROOTS`` does not name, or None."""
    kaggle = _kaggle_root(definition, workspace.kaggle_input)
    if kaggle is not None:
        return kaggle, "Kaggle input"
    downloaded = _read_downloads(workspace).get(definition.name)
    if downloaded and definition.recognised(Path(downloaded)):
        return Path(downloaded), "python -m cxrlib download"
    return None


def found_roots(workspace: Workspace) -> dict[str, tuple[Path, str]]:
    """Every paper dataset whose real data is there: name -> (root, how it was found)."""
    found = {}
    for name in PAPER_DATASETS:
        given = workspace.root(name)
        hit = (given, "DATA_ROOTS") if given else discover_root(get_dataset(name), workspace)
        if hit is not None:
            found[name] = hit
    return found


def check_root(definition: DatasetDef, root: str | os.PathLike) -> Path:
    """An explicitly given root, checked: it exists and holds the dataset's marker file (an
    error naming the fix otherwise, never a silent fallback)."""
    name, markers = definition.name, " or ".join(definition.markers)
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetLayoutError(
            f"{name.upper()} root {root} (DATA_ROOTS) does not exist; pass the folder that "
            f"holds {markers} (e.g. --data-root {name}=/path/to/data)"
        )
    if not definition.has_marker(root):
        raise DatasetLayoutError(
            f"{name.upper()} root {root} has no {markers}; pass the folder of the Kaggle "
            f"download that holds it"
        )
    return root


def locate(config: Config, dataset: str | DatasetDef) -> Location:
    """Where ``dataset``'s images come from under ``config`` (looked up once per run): a
    dataset without a phantom (your CSV) is always real; ``DATA_SOURCE=auto`` takes the real
    data wherever it is found, else the phantom; ``real`` finds it or says it did not."""
    definition = get_dataset(dataset)
    wanted = config.data.data_source
    if definition.fixed_root is not None:
        return Location(definition, "real", definition.fixed_root, "your CSV")
    if definition.phantom and wanted == "phantom":
        return Location(definition, "phantom", None, "DATA_SOURCE=phantom")
    given = config.workspace.root(definition.name)
    if given:
        return Location(definition, "real", check_root(definition, given), "DATA_ROOTS")
    hit = discover_root(definition, config.workspace)
    if hit is not None:
        return Location(definition, "real", hit[0], hit[1])
    if definition.phantom and wanted == "auto":
        return Location(definition, "phantom", None, "none found")
    return Location(definition, "real", None, "not found")


def data_source(config: Config, dataset: str | DatasetDef) -> str:
    """``phantom`` or ``real`` for this dataset under ``config``."""
    return locate(config, dataset).source


def is_phantom(config: Config) -> bool:
    """True when every paper dataset comes from the synthetic phantom under ``config``."""
    return all(data_source(config, name) == "phantom" for name in PAPER_DATASETS)


def auto_profile(workspace: Workspace) -> str:
    """The profile when none is given: ``paper`` where the real data of a paper dataset is
    given (``DATA_ROOTS``) or found (a Kaggle input, a finished download), else ``smoke``."""
    return "paper" if found_roots(workspace) else "smoke"


def data_plan(config: Config) -> list[str]:
    """One line per paper dataset: the data it will use under ``config`` and where from
    (``./run_all.sh`` prints these before it starts; ``python -m cxrlib data``)."""
    lines = []
    for name in PAPER_DATASETS:
        where = locate(config, name)
        if where.source == "phantom":
            lines.append(f"{name}: phantom data ({where.how})")
        elif where.root is not None:
            lines.append(f"{name}: real data at {where.root} ({where.how})")
        else:
            lines.append(
                f"{name}: real data NOT FOUND: python -m cxrlib download {name}, attach it on "
                f"Kaggle, or --data-root {name}=DIR"
            )
    return lines
