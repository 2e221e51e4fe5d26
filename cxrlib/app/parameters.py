"""A notebook's parameters cell: every ALL-CAPS global validated, the session's folders and
time limit applied, before any work.

A session says about itself:

* **where** its files go (``RUNS_DIR``, ``DATA_DIR``, ``RESULTS_DIR``; they set
  ``$CXRLIB_RUNS_DIR`` ... for this process and its children, :mod:`cxrlib.core.paths`). On
  Colab, put them on Google Drive (``/content/drive/MyDrive/cxr-runs``, after
  ``drive.mount``) so that the next session finds them; on Kaggle under ``/kaggle/working``. A
  folder under ``/content/drive`` while Drive is not mounted is an error before anything is
  written; runs on a Colab VM's own disk get one warning that they vanish at disconnect;
* **which data** (``DOWNLOAD = True`` fetches the paper datasets not found, with kagglehub);
* **until when** (``TIME_LIMIT_MINUTES``, :mod:`cxrlib.app.time_limit`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cxrlib.app.time_limit import end_pause, set_time_limit
from cxrlib.core import paths, platform
from cxrlib.core.config import PARAMETER_NAMES, Config, ConfigError, load_config
from cxrlib.data.datasets import PAPER_DATASETS
from cxrlib.data.download import download
from cxrlib.data.roots import auto_profile
from cxrlib.models.registry import check_model

#: Every session parameter and the types it accepts (``None``: the default).
SESSION_PARAMETERS: dict[str, tuple[type, ...]] = {
    **{name: (str,) for name in paths.FOLDER_ENV},
    "TIME_LIMIT_MINUTES": (int, float),
    "DOWNLOAD": (bool,),  # True: download the paper datasets not found (cxrlib.data.download)
}
_folders_set: dict[str, str] = {}  #: what this process set, so that None can undo it
_warned: set[str] = set()
_PARAM_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def apply_session_parameters(params: dict) -> None:
    """Set the folders and the time limit named by a notebook's session parameters; check the
    folders (a Drive that is not mounted: an error); download if asked.

    Also ends a pause left in this kernel by an earlier run of the notebook (a fresh start)."""
    for name, kinds in SESSION_PARAMETERS.items():
        value = params.get(name)
        if value is not None and (
            not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)
        ):
            allowed = " or ".join(k.__name__ for k in kinds)
            raise ConfigError(f"parameter {name} must be {allowed} or None; got {value!r}")
    for name, env in paths.FOLDER_ENV.items():
        if params.get(name):
            folder = Path(params[name]).expanduser().absolute()
            paths.check_folder(folder, name)  # before anything is written there
            os.environ[env] = _folders_set[env] = str(folder.resolve())
        elif env in _folders_set and os.environ.get(env) == _folders_set.pop(env):
            del os.environ[env]  # None again after an earlier run of the notebook: the default
    check_session_folders()
    set_time_limit(params.get("TIME_LIMIT_MINUTES"))
    end_pause()
    if params.get("DOWNLOAD"):  # before the profile is chosen: the data then selects "paper"
        for name in PAPER_DATASETS:
            download(name)


def check_session_folders() -> None:
    """Every output folder checked (:func:`cxrlib.core.paths.check_folder`); on Colab, one
    warning when the runs would stay on the VM's disk, which is gone at disconnect."""
    for name, root in (("RUNS_DIR", paths.runs_root), ("RESULTS_DIR", paths.results_root)):
        folder = root()
        if platform.on_colab() and not platform.on_drive(folder) and name not in _warned:
            _warned.add(name)
            print(
                f"warning: {name} is {folder}, on this Colab VM's own disk, which is erased "
                f"when the runtime disconnects. To keep them: {platform.MOUNT_HINT}, then "
                f'{name} = "/content/drive/MyDrive/cxr-{name.split("_")[0].lower()}"'
            )
    paths.data_root()  # raises for a Drive path that is not mounted


def _parameters(namespace: Mapping[str, Any], extra: tuple[str, ...]) -> dict[str, Any]:
    """The ALL-CAPS globals, and lower-case spellings of known names (``papermill -p epochs
    3`` injects ``epochs = 3`` after the parameters cell: it overrides ``EPOCHS``)."""
    params = {k: v for k, v in namespace.items() if _PARAM_NAME.match(k)}
    known = {n.upper() for n in (*PARAMETER_NAMES, *extra, *SESSION_PARAMETERS)}
    for key, value in namespace.items():
        if key.upper() in known and key != key.upper():
            params[key.upper()] = value
    return params


def config_from_notebook(namespace: Mapping[str, Any]) -> Config:
    """Validate a notebook's parameters: every ALL-CAPS global is a parameter.

    Call it as ``config = config_from_notebook(globals())`` in the cell after the one tagged
    ``parameters``. A name papermill injected that is not a known parameter is an error
    (papermill itself would only warn and run on with the default).
    """
    return config_and_extras(namespace)[0]


def config_and_extras(namespace: Mapping[str, Any], **extra_types: type) -> tuple[Config, dict]:
    """Like :func:`config_from_notebook`, for notebooks with their own parameters too.

    ``extra_types`` names them and their type, e.g. ``MODELS=list``; their values are checked
    (``None`` is allowed and means the notebook's default, e.g. the models the paper items
    need) and returned in a dict (``{"MODELS": [...]}``). The session parameters (folders,
    ``TIME_LIMIT_MINUTES``, ``DOWNLOAD``) are applied here; every other ALL-CAPS name is a
    config value. ``PROFILE = None``: ``paper`` where real data is found, else ``smoke``.
    """
    params = _parameters(namespace, tuple(extra_types))
    if "PROFILE" not in params:
        raise ConfigError(
            "the notebook's parameters cell must set PROFILE (smoke, paper, or None: paper "
            "when real data is found)"
        )
    profile = params.pop("PROFILE")
    apply_session_parameters({n: params.pop(n) for n in SESSION_PARAMETERS if n in params})
    extras = {}
    for name, kind in extra_types.items():
        if name not in params:
            raise ConfigError(f"the notebook's parameters cell must set {name}")
        value = params.pop(name)
        if value is not None and not isinstance(value, kind):  # None: the notebook's default
            raise ConfigError(f"parameter {name} must be {kind.__name__} or None; got {value!r}")
        extras[name] = value
    config = load_config(auto_profile(params) if profile is None else profile, **params)
    check_model(config.model.model)
    return config, extras
