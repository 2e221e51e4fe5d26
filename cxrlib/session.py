"""A working session -- a Colab or Kaggle notebook, ``./run_all.sh``, a workstation: where its
files go and when its training must pause.

Colab and Kaggle sessions end (after at most 12 hours, earlier when idle). Everything long is
therefore resumable, and a session says about itself:

* **where** (``RUNS_DIR``, ``DATA_DIR``, ``RESULTS_DIR`` -- notebook parameters and
  ``./run_all.sh`` options; they set ``$CXRLIB_RUNS_DIR`` ... for this process and its
  children, :mod:`cxrlib.paths`). Put ``RUNS_DIR`` on Google Drive on Colab
  (``/content/drive/MyDrive/cxr-runs``) or under ``/kaggle/working`` on Kaggle so that the next
  session finds the checkpoints;
* **which data** (``DOWNLOAD = True`` fetches the paper datasets not found, with kagglehub);
* **until when** (``TIME_LIMIT_MINUTES``; ``./run_all.sh --time-limit-minutes`` sets one
  deadline, ``$CXRLIB_DEADLINE``, for all its notebooks). Training pauses cleanly at the first
  gradient-accumulation boundary after the deadline (a checkpoint is written), later runs are
  not started, and the notebook ends with "paused -- run again to resume": the cells after the
  training cell print that instead of running (an IPython input transformer that the next run
  of the notebook's config cell removes). ``./run_all.sh`` then stops with exit status
  :data:`PAUSED_EXIT_STATUS` and the same words.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from cxrlib.fileio import atomic_write_text

#: The notebook parameters of a session, with the environment variable each one sets.
FOLDER_PARAMETERS = {
    "RUNS_DIR": "CXRLIB_RUNS_DIR",
    "DATA_DIR": "CXRLIB_DATA_DIR",
    "RESULTS_DIR": "CXRLIB_RESULTS_DIR",
}
#: Every session parameter and the types it accepts (``None``: the default).
SESSION_PARAMETERS: dict[str, tuple[type, ...]] = {
    **{name: (str,) for name in FOLDER_PARAMETERS},
    "TIME_LIMIT_MINUTES": (int, float),
    "DOWNLOAD": (bool,),  # True: download the paper datasets not found (cxrlib.data.download)
}
#: Unix time by which training must pause; ``./run_all.sh --time-limit-minutes`` sets it.
DEADLINE_ENV = "CXRLIB_DEADLINE"
#: A file that a pause writes its message to, so that ``./run_all.sh`` can stop and say so.
PAUSE_FILE_ENV = "CXRLIB_PAUSE_FILE"
#: ``./run_all.sh``'s exit status after a pause (sysexits' EX_TEMPFAIL: "try again later").
PAUSED_EXIT_STATUS = 75
PAUSED = "paused — run again to resume"

_time_limit: dict[str, float | None] = {"deadline": None}
_folders_set: dict[str, str] = {}  #: what this process set, so that None can undo it


def apply_session_parameters(params: dict) -> None:
    """Set the folders and the time limit named by a notebook's session parameters.

    Also ends a pause left in this kernel by an earlier run of the notebook (a fresh start)."""
    from cxrlib.config import ConfigError

    for name, kinds in SESSION_PARAMETERS.items():
        value = params.get(name)
        if value is not None and (
            not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)
        ):
            allowed = " or ".join(k.__name__ for k in kinds)
            raise ConfigError(f"parameter {name} must be {allowed} or None; got {value!r}")
    for name, env in FOLDER_PARAMETERS.items():
        if params.get(name):
            os.environ[env] = _folders_set[env] = str(Path(params[name]).expanduser().resolve())
        elif env in _folders_set and os.environ.get(env) == _folders_set.pop(env):
            del os.environ[env]  # None again after an earlier run of the notebook: the default
    set_time_limit(params.get("TIME_LIMIT_MINUTES"))
    _end_pause()
    if params.get("DOWNLOAD"):  # before the profile is chosen: the data then selects "paper"
        from cxrlib.data.datasets import PAPER_DATASETS
        from cxrlib.data.download import download

        for name in PAPER_DATASETS:
            download(name)


def set_time_limit(minutes: float | None) -> None:
    """Training in this process pauses ``minutes`` from now (None: no limit of its own)."""
    from cxrlib.config import ConfigError

    if minutes is not None and not minutes > 0:
        raise ConfigError(f"parameter TIME_LIMIT_MINUTES must be > 0 or None; got {minutes!r}")
    _time_limit["deadline"] = None if minutes is None else time.time() + minutes * 60


def deadline(minutes: float | None = None) -> float | None:
    """The earliest of this process's limit, ``$CXRLIB_DEADLINE`` and ``minutes`` from now
    (unix time), or None when nothing limits this session."""
    limits = [_time_limit["deadline"]]
    if os.environ.get(DEADLINE_ENV):
        limits.append(float(os.environ[DEADLINE_ENV]))
    if minutes is not None:
        limits.append(time.time() + minutes * 60)
    limits = [x for x in limits if x is not None]
    return min(limits) if limits else None


def announce_pause(message: str) -> None:
    """Say that training paused: print it, tell ``./run_all.sh`` (``$CXRLIB_PAUSE_FILE``) and,
    in a notebook, turn the cells after this one into that message."""
    text = f"{PAUSED}: {message}"
    print(text, flush=True)
    if os.environ.get(PAUSE_FILE_ENV):
        atomic_write_text(Path(os.environ[PAUSE_FILE_ENV]), text + "\n")
    shell = _ipython()
    if shell is not None and _skip_cell not in shell.input_transformers_post:
        shell.input_transformers_post.append(_skip_cell)


def _ipython():
    try:
        from IPython import get_ipython
    except ImportError:  # not in IPython: nothing to skip
        return None
    return get_ipython()


def _skip_cell(lines: list[str]) -> list[str]:
    """An IPython input transformer: a cell after a pause only says so (the config cell, which
    starts the notebook over, runs and ends the pause)."""
    source = "".join(lines)
    if "config_and_extras(" in source or "config_from_notebook(" in source:
        return lines
    return [f"print({'skipped: training ' + PAUSED + ' (run the notebook from the top)'!r})\n"]


def _end_pause() -> None:
    shell = _ipython()
    if shell is not None:
        shell.input_transformers_post[:] = [
            t for t in shell.input_transformers_post if t is not _skip_cell
        ]
