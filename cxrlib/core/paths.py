"""Where everything lives: the results, runs and data folders of the project.

Layout (all generated, all git-ignored)::

    results/<profile>/tables/<name>.csv + <name>.md
    results/<profile>/figures/<name>.png
    results/<profile>/executed/<notebook>.ipynb   (papermill's executed copies)
    runs/<profile>/<dataset>/<split>/<model>/seed<k>/   (training runs)
    open_data/                                       (split files, phantom data, image caches)

The three roots default to folders of the project root and can be moved with the
environment variables ``CXRLIB_RESULTS_DIR``, ``CXRLIB_RUNS_DIR`` and ``CXRLIB_DATA_DIR``
(``./run_all.sh --results-dir/--runs-dir/--data-dir`` and the notebooks' ``RESULTS_DIR``,
``RUNS_DIR`` and ``DATA_DIR`` parameters set them). Installed without a checkout (``pip install``
on Colab or Kaggle) the project root is the working directory, never site-packages.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cxrlib.core import platform
from cxrlib.core.errors import DriveNotMountedError

#: The folder parameters of a session (notebooks, ./run_all.sh options) and the environment
#: variable each one sets.
FOLDER_ENV = {
    "RUNS_DIR": "CXRLIB_RUNS_DIR",
    "DATA_DIR": "CXRLIB_DATA_DIR",
    "RESULTS_DIR": "CXRLIB_RESULTS_DIR",
}


def project_root() -> Path:
    """The project folder: ``$CXRLIB_HOME``, else the nearest parent of the working directory
    holding ``run_all.sh`` and ``cxrlib/``, else the checkout this package was imported from
    (an editable install), else the working directory (a plain ``pip install``: results, runs
    and data then go beside the notebook, e.g. ``/content`` on Colab, ``/kaggle/working``)."""
    if os.environ.get("CXRLIB_HOME"):
        return Path(os.environ["CXRLIB_HOME"]).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if is_checkout(candidate):
            return candidate
    package_parent = Path(__file__).resolve().parent.parent
    return package_parent if is_checkout(package_parent) else here


def is_checkout(folder: Path) -> bool:
    """True for a clone of this project (not for site-packages, which holds only cxrlib/)."""
    return (folder / "run_all.sh").is_file() and (folder / "cxrlib").is_dir()


def check_folder(folder: str | os.PathLike, name: str) -> None:
    """A :class:`DriveNotMountedError` for a folder under ``/content/drive`` while Google Drive
    is not mounted there (writing would fill the VM's disk, vanish at disconnect and make a
    later ``drive.mount`` fail: "Mountpoint must not already contain files")."""
    if platform.unmounted_drive_path(folder):
        raise DriveNotMountedError(
            f"{name} {folder} is on Google Drive, which is not mounted: mount Drive first "
            f"({platform.MOUNT_HINT}), then run again; nothing was written there"
        )


def _root(env: str, default: str) -> Path:
    value = os.environ.get(env)
    if not value:
        return project_root() / default
    folder = Path(value).expanduser().absolute()
    check_folder(folder, next(k for k, v in FOLDER_ENV.items() if v == env))
    return folder.resolve()


def results_root() -> Path:
    return _root("CXRLIB_RESULTS_DIR", "results")


def runs_root() -> Path:
    return _root("CXRLIB_RUNS_DIR", "runs")


def data_root() -> Path:
    """``open_data/``: downloaded split files, phantom datasets and image caches."""
    return _root("CXRLIB_DATA_DIR", "open_data")


@dataclass(frozen=True)
class ResultsLayout:
    """The output folders of one profile."""

    profile: str

    @property
    def root(self) -> Path:
        return results_root() / self.profile

    @property
    def tables(self) -> Path:
        return self.root / "tables"

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    @property
    def executed(self) -> Path:
        return self.root / "executed"

    @property
    def runs(self) -> Path:
        return runs_root() / self.profile
