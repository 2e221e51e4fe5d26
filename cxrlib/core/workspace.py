"""Where a session's files are: its :class:`Workspace`, one value that travels in the
configuration (``config.workspace``).

Layout (all generated, all git-ignored)::

    <results>/<profile>/tables/<name>.csv + <name>.md    (paper.outputs names every file)
    <results>/<profile>/figures/<name>.png + <name>.pdf
    <results>/<profile>/executed/<notebook>.ipynb       (papermill's executed copies)
    <runs>/<profile>/<dataset>/<split>/<model>/seed<k>/  (training runs: train.layout.RunKey)
    <data>/                                              (split files, phantom data, caches)

A workspace is set where a session starts -- a notebook's parameters (``RUNS_DIR``,
``RESULTS_DIR``, ``DATA_DIR``, ``DATA_ROOTS``), the command line's options (``--runs-dir``,
``--results-dir``, ``--data-dir``, ``--data-root NAME=DIR``), ``./run_all.sh``'s same options,
or the environment (:data:`ENV`) -- and passed down: no layer above the ground reads a folder
from the environment. :meth:`Workspace.from_env` is the one place the environment is read for
it; without any setting the folders are ``results/``, ``runs/`` and ``open_data/`` of the
project (:func:`project_root`: installed without a checkout, ``pip install`` on Colab or Kaggle,
the working directory, never site-packages).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass
from pathlib import Path

from cxrlib.core import platform
from cxrlib.core.errors import DriveNotMountedError, UserError

#: The environment variables a workspace is read from (:meth:`Workspace.from_env`), by field.
ENV = {
    "data": "CXRLIB_DATA_DIR",
    "runs": "CXRLIB_RUNS_DIR",
    "results": "CXRLIB_RESULTS_DIR",
    "data_roots": "CXRLIB_DATA_ROOTS",  # "cxr14=/path,cxr11=/path"
    "kaggle_input": "CXRLIB_KAGGLE_INPUT",  # where Kaggle mounts inputs (tests move it)
    "offline": "CXRLIB_OFFLINE",  # "1": never wait for a network (a GPU box, CI)
    "conformer_weights": "CXRLIB_CONFORMER_IMAGENET",  # a local ImageNet Conformer-Ti file
    "kagglehub_cache": "KAGGLEHUB_CACHE",  # kagglehub's own download folder
}
#: The folders of a workspace by the name a session gives them (notebook parameter; the CLI
#: and ./run_all.sh take them as --data-dir, --runs-dir, --results-dir).
FOLDER_PARAMETERS = {"data": "DATA_DIR", "runs": "RUNS_DIR", "results": "RESULTS_DIR"}
#: Their default names under the project folder.
DEFAULT_FOLDERS = {"data": "open_data", "runs": "runs", "results": "results"}


class WorkspaceError(UserError, ValueError):
    """A workspace value that cannot be used (a data root spelled wrongly, say)."""


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
    package_parent = Path(__file__).resolve().parent.parent.parent
    return package_parent if is_checkout(package_parent) else here


def is_checkout(folder: Path) -> bool:
    """True for a clone of this project (not for site-packages, which holds only cxrlib/)."""
    return (folder / "run_all.sh").is_file() and (folder / "cxrlib").is_dir()


def parse_data_roots(value: str | Mapping[str, str | os.PathLike] | None) -> dict[str, Path]:
    """``{"cxr14": "/a"}`` or ``"cxr14=/a,cxr11=/b"`` (the environment's and the command line's
    form) -> ``{name: Path}``; names lower case. Whether a name is a dataset is the data layer's
    check (:func:`cxrlib.data.roots.check_data_roots`)."""
    if not value:
        return {}
    if isinstance(value, str):
        pairs = [part.strip() for part in value.split(",") if part.strip()]
        bad = [p for p in pairs if "=" not in p or not p.partition("=")[0].strip()]
        if bad:
            raise WorkspaceError(
                f"data roots must read NAME=DIR, e.g. cxr14=/data/nih; got {bad[0]!r}"
            )
        value = dict(p.split("=", 1) for p in pairs)
    if not isinstance(value, Mapping):
        raise WorkspaceError(
            f"DATA_ROOTS must map dataset names to folders, e.g. {{'cxr14': '/data/nih'}}; "
            f"got {value!r}"
        )
    roots = {}
    for name, folder in value.items():
        if not isinstance(name, str) or not isinstance(folder, (str, os.PathLike)):
            raise WorkspaceError(f"DATA_ROOTS: {name!r}: {folder!r} is not a name and a folder")
        roots[name.strip().lower()] = Path(folder).expanduser()
    return roots


def _folder(value: str | os.PathLike) -> Path:
    return Path(value).expanduser().absolute()


@dataclass(frozen=True)
class Workspace:
    """The folders a session reads and writes, and where real data is to be found.

    Not part of a run's record: moving a workspace (the VM's disk to Google Drive, a new Colab
    session) never changes what a run computes, so a run resumes wherever its folder is."""

    data: Path  #: split files, phantom data, image caches, downloads (``DATA_DIR``)
    runs: Path  #: training runs (``RUNS_DIR``)
    results: Path  #: tables, figures, executed notebooks, the report (``RESULTS_DIR``)
    _: KW_ONLY
    #: dataset name -> the folder of its real data (``DATA_ROOTS``), in name order
    data_roots: tuple[tuple[str, Path], ...] = ()
    kaggle_input: Path = Path("/kaggle/input")  #: where Kaggle mounts attached inputs
    offline: bool = False  #: never wait for a network: downloads fail at once, saying why
    conformer_weights: Path | None = None  #: a local ImageNet Conformer-Ti checkpoint
    kagglehub_cache: Path | None = None  #: kagglehub's downloads (default ``<data>/kagglehub``)

    @classmethod
    def at(cls, project: str | os.PathLike | None = None) -> Workspace:
        """The default folders under ``project`` (default :func:`project_root`)."""
        base = Path(project) if project is not None else project_root()
        return cls(**{field: base / name for field, name in DEFAULT_FOLDERS.items()})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Workspace:
        """The defaults, changed by whatever :data:`ENV` sets (``environ``: ``os.environ``)."""
        env = os.environ if environ is None else environ
        given = {field: env[name] for field, name in ENV.items() if env.get(name)}
        if "offline" in given:
            given["offline"] = given["offline"] == "1"
        return cls.at().replace(**given)

    def replace(self, **changes) -> Workspace:
        """A copy with some fields changed (None leaves a field as it is); folders are made
        absolute (``~`` expanded) and data roots parsed (:func:`parse_data_roots`)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise WorkspaceError(f"a workspace has no {', '.join(unknown)}")
        for name in ("data", "runs", "results", "kaggle_input", "conformer_weights"):
            if name in changes:
                changes[name] = _folder(changes[name])
        if "kagglehub_cache" in changes:
            changes["kagglehub_cache"] = _folder(changes["kagglehub_cache"])
        if "data_roots" in changes:
            roots = dict(self.data_roots) | parse_data_roots(changes["data_roots"])
            changes["data_roots"] = tuple(sorted(roots.items()))
        return dataclasses.replace(self, **changes)

    def root(self, dataset: str) -> Path | None:
        """The folder ``DATA_ROOTS`` gives for ``dataset``, or None."""
        return dict(self.data_roots).get(dataset)

    def profile_results(self, profile: str) -> Path:
        """``<results>/<profile>``: one profile's tables, figures, executed notebooks, report."""
        return self.results / profile

    def profile_runs(self, profile: str) -> Path:
        """``<runs>/<profile>``: one profile's training runs."""
        return self.runs / profile

    def check(self) -> Workspace:
        """Itself, after refusing a folder meant for Google Drive while Drive is not mounted --
        by its path or through a symlink (``ln -s /content/drive/MyDrive /mydrive``): writing
        there would fill the VM's disk, vanish at disconnect and make a later ``drive.mount``
        fail ("Mountpoint must not already contain files"). Call it before any work."""
        for field, parameter in FOLDER_PARAMETERS.items():
            folder = getattr(self, field)
            if platform.unmounted_drive_path(folder):
                raise DriveNotMountedError(
                    f"{parameter} {folder} is on Google Drive, which is not mounted: mount Drive "
                    f"first ({platform.MOUNT_HINT}), then run again; nothing was written there"
                )
        return self

    def describe(self) -> dict[str, str | dict[str, str] | bool]:
        """The workspace in plain types (printed by notebooks and ``python -m cxrlib config``)."""
        out: dict = {f: str(getattr(self, f)) for f in FOLDER_PARAMETERS}
        out["data_roots"] = {name: str(folder) for name, folder in self.data_roots}
        if self.offline:
            out["offline"] = True
        return out
