"""The time limit of a session and how a paused notebook behaves.

Colab and Kaggle sessions end (after at most 12 hours, earlier when idle), so a notebook may set
``TIME_LIMIT_MINUTES`` (``./run_all.sh --time-limit-minutes`` sets one deadline for all its
notebooks instead). Training then pauses cleanly at the first gradient-accumulation boundary
after the deadline (a checkpoint is written; :mod:`cxrlib.core.clock` keeps the deadline, the
train layer reads it), later runs are not started, and the notebook ends with "paused -- run
again to resume": the cells after the training cell print that instead of running (an IPython
input transformer that the next run of the notebook's config cell removes). ``./run_all.sh``
then stops with exit status :data:`~cxrlib.core.clock.PAUSED_EXIT_STATUS` and the same words.
"""

from __future__ import annotations

import time

from cxrlib.core import clock
from cxrlib.core.config import ConfigError

#: The calls that start a notebook over (its parameters validated): a cell holding one of them
#: runs after a pause, and ends it.
STARTS = ("start(globals()", "config_and_extras(", "config_from_notebook(")


def set_time_limit(minutes: float | None) -> None:
    """Training in this process pauses ``minutes`` from now (None: no limit of its own)."""
    if minutes is not None and not minutes > 0:
        raise ConfigError(f"parameter TIME_LIMIT_MINUTES must be > 0 or None; got {minutes!r}")
    clock.set_deadline(None if minutes is None else time.time() + minutes * 60)


def _ipython():
    try:
        from IPython import get_ipython  # optional: present in a notebook only
    except ImportError:
        return None
    return get_ipython()


def _skip_cell(lines: list[str]) -> list[str]:
    """An IPython input transformer: a cell after a pause only says so (the config cell, which
    starts the notebook over, runs and ends the pause)."""
    source = "".join(lines)
    if any(call in source for call in STARTS):
        return lines
    message = f"skipped: training {clock.PAUSED} (run the notebook from the top)"
    return [f"print({message!r})\n"]


def skip_later_cells(text: str) -> None:
    """Pause listener (:func:`cxrlib.core.clock.on_pause`): in a notebook, the cells after the
    training cell only print that training paused."""
    shell = _ipython()
    if shell is not None and _skip_cell not in shell.input_transformers_post:
        shell.input_transformers_post.append(_skip_cell)


def end_pause() -> None:
    """A fresh run of the notebook: its cells run again."""
    shell = _ipython()
    if shell is not None:
        shell.input_transformers_post[:] = [
            t for t in shell.input_transformers_post if t is not _skip_cell
        ]


clock.on_pause(skip_later_cells)
