"""A notebook's parameters cell: every ALL-CAPS global validated, the session's workspace and
time limit applied, before any work.

A session says about itself:

* **where** its files go (``RUNS_DIR``, ``DATA_DIR``, ``RESULTS_DIR``) and where real data is
  (``DATA_ROOTS = {"cxr14": "/path"}``): together the session's workspace
  (:class:`~cxrlib.core.workspace.Workspace`, starting from the environment's, which
  ``./run_all.sh`` sets), carried by the configuration to everything the notebook calls. On
  Colab, put the folders on Google Drive (``/content/drive/MyDrive/cxr-runs``, after
  ``drive.mount``) so that the next session finds them; on Kaggle under ``/kaggle/working``. A
  folder under ``/content/drive`` while Drive is not mounted is an error before anything is
  written; runs on a Colab VM's own disk get one warning that they vanish at disconnect;
* **which data** (``DOWNLOAD = True`` fetches the paper datasets not found, with kagglehub);
* **until when** (``TIME_LIMIT_MINUTES``, :mod:`cxrlib.app.time_limit`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cxrlib.app.time_limit import end_pause, set_time_limit
from cxrlib.core import platform
from cxrlib.core.config import PARAMETER_NAMES, PROFILES, Config, ConfigError, load_config
from cxrlib.core.workspace import FOLDER_PARAMETERS, Workspace
from cxrlib.data.datasets import PAPER_DATASETS
from cxrlib.data.download import download
from cxrlib.data.roots import auto_profile, check_data_roots
from cxrlib.models.registry import check_model

#: Every session parameter and the types it accepts (``None``: the default).
SESSION_PARAMETERS: dict[str, tuple[type, ...]] = {
    **{name: (str,) for name in FOLDER_PARAMETERS.values()},
    "DATA_ROOTS": (dict,),  # {"cxr14": "/path/to/nih"}: where a dataset's real data is
    "TIME_LIMIT_MINUTES": (int, float),
    "DOWNLOAD": (bool,),  # True: download the paper datasets not found (cxrlib.data.download)
}
_warned: set[str] = set()
_PARAM_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def _check_types(params: dict) -> None:
    for name, kinds in SESSION_PARAMETERS.items():
        value = params.get(name)
        if value is not None and (
            not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)
        ):
            allowed = " or ".join(k.__name__ for k in kinds)
            raise ConfigError(f"parameter {name} must be {allowed} or None; got {value!r}")


def session_workspace(params: dict, base: Workspace | None = None) -> Workspace:
    """The workspace a session's parameters name: ``base`` (default: the environment's) with
    ``RUNS_DIR``, ``DATA_DIR``, ``RESULTS_DIR`` and ``DATA_ROOTS`` where given; checked (a
    Drive that is not mounted, a data root of no dataset: an error before anything is written)."""
    _check_types(params)
    base = base if base is not None else Workspace.from_env()
    folders = {field: params.get(name) for field, name in FOLDER_PARAMETERS.items()}
    workspace = base.replace(**folders, data_roots=params.get("DATA_ROOTS"))
    return check_data_roots(workspace.check())


def apply_session_parameters(params: dict) -> Workspace:
    """The session's workspace (:func:`session_workspace`), its time limit set, a download done
    if asked; also ends a pause left in this kernel by an earlier run of the notebook."""
    workspace = session_workspace(params)
    warn_if_on_the_vm(workspace)
    set_time_limit(params.get("TIME_LIMIT_MINUTES"))
    end_pause()
    if params.get("DOWNLOAD"):  # before the profile is chosen: the data then selects "paper"
        for name in PAPER_DATASETS:
            download(name, workspace)
    return workspace


def warn_if_on_the_vm(workspace: Workspace) -> None:
    """On Colab, one warning when runs or results would stay on the VM's disk, which is gone
    at disconnect."""
    for field in ("runs", "results"):
        name, folder = FOLDER_PARAMETERS[field], getattr(workspace, field)
        if platform.on_colab() and not platform.on_drive(folder) and name not in _warned:
            _warned.add(name)
            print(
                f"warning: {name} is {folder}, on this Colab VM's own disk, which is erased "
                f"when the runtime disconnects. To keep them: {platform.MOUNT_HINT}, then "
                f'{name} = "/content/drive/MyDrive/cxr-{field}"'
            )


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


def profile_of_results(workspace: Workspace) -> str | None:
    """The profile whose results or runs the workspace holds, when that is one profile; None
    when it holds none. Both held is an error that names them: the user says which."""
    found = [
        p for p in PROFILES
        if (workspace.results / p).is_dir() or (workspace.runs / p).is_dir()
    ]  # fmt: skip
    if len(found) > 1:
        raise ConfigError(
            f"PROFILE = None, no real data is found here, and {workspace.results} and "
            f"{workspace.runs} hold results of both profiles ({', '.join(found)}): set PROFILE "
            "to the one to report"
        )
    return found[0] if found else None


def config_and_extras(
    namespace: Mapping[str, Any], *, profile_from_results: bool = False, **extra_types: type
) -> tuple[Config, dict]:
    """Like :func:`config_from_notebook`, for notebooks with their own parameters too.

    ``extra_types`` names them and their type, e.g. ``MODELS=list``; their values are checked
    (``None`` is allowed and means the notebook's default, e.g. the models the paper items
    need) and returned in a dict (``{"MODELS": [...]}``). The session parameters (folders and
    ``DATA_ROOTS``: the workspace; ``TIME_LIMIT_MINUTES``, ``DOWNLOAD``) are applied here; every
    other ALL-CAPS name is a config value. ``PROFILE = None``: ``paper`` where real data is
    found, else ``smoke`` -- except for a notebook that only reads results
    (``profile_from_results``, the report): without real data on this machine it takes the
    profile of the results it is pointed at (a fresh Colab VM reporting runs kept on Drive).
    """
    params = _parameters(namespace, tuple(extra_types))
    if "PROFILE" not in params:
        raise ConfigError(
            "the notebook's parameters cell must set PROFILE (smoke, paper, or None: paper "
            "when real data is found)"
        )
    profile = params.pop("PROFILE")
    session = {n: params.pop(n) for n in SESSION_PARAMETERS if n in params}
    workspace = apply_session_parameters(session)
    extras = {}
    for name, kind in extra_types.items():
        if name not in params:
            raise ConfigError(f"the notebook's parameters cell must set {name}")
        value = params.pop(name)
        if value is not None and not isinstance(value, kind):  # None: the notebook's default
            raise ConfigError(f"parameter {name} must be {kind.__name__} or None; got {value!r}")
        extras[name] = value
    if profile is None:
        profile = auto_profile(workspace)
        if profile != "paper" and profile_from_results:
            profile = profile_of_results(workspace) or profile
    config = load_config(profile, workspace=workspace, **params)
    check_model(config.model.model)
    return config, extras
