"""The session's clock: when training must pause, and how a pause is announced.

Colab and Kaggle sessions end (after at most 12 hours, earlier when idle), so a session may set
a deadline: ``TIME_LIMIT_MINUTES`` (a notebook parameter; :mod:`cxrlib.app.parameters` sets it here)
or ``./run_all.sh --time-limit-minutes`` (one deadline for all its notebooks, passed as
``$CXRLIB_DEADLINE``). Training pauses cleanly at the first gradient-accumulation boundary after
the earliest deadline and later runs are not started (:mod:`cxrlib.train`).

A pause is announced once (:func:`announce_pause`): printed, written to ``$CXRLIB_PAUSE_FILE``
so that ``./run_all.sh`` stops with :data:`PAUSED_EXIT_STATUS`, and passed to the listeners a
session registered (:func:`on_pause`; a notebook turns its later cells into the message).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from cxrlib.core.fileio import atomic_write_text

#: Unix time by which training must pause; ``./run_all.sh --time-limit-minutes`` sets it.
DEADLINE_ENV = "CXRLIB_DEADLINE"
#: A file that a pause writes its message to, so that ``./run_all.sh`` can stop and say so.
PAUSE_FILE_ENV = "CXRLIB_PAUSE_FILE"
#: ``./run_all.sh``'s exit status after a pause (sysexits' EX_TEMPFAIL: "try again later").
PAUSED_EXIT_STATUS = 75
PAUSED = "paused — run again to resume"

_process_deadline: dict[str, float | None] = {"unix_time": None}
_listeners: list[Callable[[str], None]] = []


def set_deadline(unix_time: float | None) -> None:
    """This process's own deadline (None: none of its own; ``$CXRLIB_DEADLINE`` still counts)."""
    _process_deadline["unix_time"] = unix_time


def deadline(minutes: float | None = None) -> float | None:
    """The earliest of this process's deadline, ``$CXRLIB_DEADLINE`` and ``minutes`` from now
    (unix time), or None when nothing limits this session."""
    limits = [_process_deadline["unix_time"]]
    if os.environ.get(DEADLINE_ENV):
        limits.append(float(os.environ[DEADLINE_ENV]))
    if minutes is not None:
        limits.append(time.time() + minutes * 60)
    limits = [x for x in limits if x is not None]
    return min(limits) if limits else None


def on_pause(listener: Callable[[str], None]) -> None:
    """Call ``listener(text)`` whenever a pause is announced (registered once)."""
    if listener not in _listeners:
        _listeners.append(listener)


def announce_pause(message: str) -> str:
    """Say that training paused: print it, tell ``./run_all.sh`` (``$CXRLIB_PAUSE_FILE``) and
    every listener. Returns the text said."""
    text = f"{PAUSED}: {message}"
    print(text, flush=True)
    if os.environ.get(PAUSE_FILE_ENV):
        atomic_write_text(Path(os.environ[PAUSE_FILE_ENV]), text + "\n")
    for listener in _listeners:
        listener(text)
    return text
