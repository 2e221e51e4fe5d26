"""Progress people can watch, wherever the output goes.

Three ways to show how far a long step (a training run, a cache build) got, chosen for where
its output lands (:func:`progress_mode`):

* ``widget`` -- a live notebook front end (JupyterLab, Colab, Kaggle's interactive editor):
  tqdm's widget, updated in place;
* ``bar`` -- a terminal: tqdm's text bar, redrawn in place on one line;
* ``lines`` -- everything else (``./run_all.sh``, papermill, Kaggle's "Save & Run All", a
  pipe, a log file): plain text lines, at most one per ``interval`` seconds (a minute) plus one
  at each milestone (an epoch's end). A redrawn bar there becomes a new line at every refresh
  (thousands of lines in a Colab cell) or, with papermill's ``--log-output``, freezes at its
  first text ("0%") while the run goes on for hours.

A notebook front end cannot be asked whether it renders widgets, so a kernel counts as live
when a Jupyter server started it (its connection file is ``kernel-<id>.json`` in the server's
runtime folder, as on JupyterLab, Colab and Kaggle) and as not live when papermill/nbclient
started it (a temporary ``tmpXXXX.json``). ``$CXRLIB_PROGRESS`` (widget, bar, lines) decides
instead where it is set: ``./run_all.sh`` sets ``lines``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from cxrlib.core.errors import UserError

#: Overrides the detection (``widget``, ``bar`` or ``lines``); ``./run_all.sh`` sets ``lines``.
PROGRESS_ENV = "CXRLIB_PROGRESS"
MODES = ("widget", "bar", "lines")
#: Seconds between two plain-text progress lines (milestones aside).
LINE_INTERVAL = 60.0


def _kernel_connection_file() -> str | None:
    """The connection file of the IPython kernel this process is, or None outside one."""
    if "ipykernel" not in sys.modules:
        return None
    argv = sys.argv
    for i, arg in enumerate(argv):
        if arg == "-f" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--f="):
            return arg[4:]
    return None


def progress_mode() -> str:
    """How progress is shown in this process: ``widget``, ``bar`` or ``lines`` (see above)."""
    chosen = os.environ.get(PROGRESS_ENV, "").strip().lower()
    if chosen:
        if chosen not in MODES:
            raise UserError(
                f"${PROGRESS_ENV} must be one of {', '.join(MODES)}; got {chosen!r} "
                f"(unset it to let the kit choose)"
            )
        return chosen
    connection = _kernel_connection_file()
    if connection is not None:
        return "widget" if Path(connection).name.startswith("kernel-") else "lines"
    stream = sys.stderr
    return "bar" if hasattr(stream, "isatty") and stream.isatty() else "lines"


def duration(seconds: float) -> str:
    """``seconds`` as people say it: ``45 s``, ``12 min``, ``3 h 20 min``."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 90:
        return f"{minutes:.0f} min"
    hours, rest = divmod(round(minutes), 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


class Progress:
    """One long step's progress: ``total`` units (batches, images) of which ``done`` are done
    before this session; :meth:`update` as units finish, :meth:`note` to set the words that
    follow the count, :meth:`milestone` at an epoch's end (a line always), :meth:`close`.

    In ``lines`` mode a line reads ``<desc>: <note>, <percent> done, <time> left`` and comes at
    most every :data:`LINE_INTERVAL` seconds, besides milestones; the time left is this
    session's pace over what remains."""

    def __init__(
        self,
        desc: str,
        total: int,
        done: int = 0,
        *,
        unit: str = "it",
        enabled: bool = True,
        mode: str | None = None,
        interval: float = LINE_INTERVAL,
    ) -> None:
        self.desc, self.total, self.done, self.unit = desc, total, done, unit
        self.enabled, self.interval = enabled, interval
        self.mode = (mode or progress_mode()) if enabled else "off"
        self.started, self.start_done = time.monotonic(), done
        self.last_line = self.started
        self.words = ""
        self.bar = None
        if self.mode in ("widget", "bar"):
            if self.mode == "widget":
                from tqdm.auto import tqdm  # here: the widget only where it is shown
            else:
                from tqdm import tqdm  # here: the text bar
            self.bar = tqdm(
                total=total,
                initial=done,
                desc=desc,
                unit=unit,
                mininterval=2.0,
                leave=True,
                bar_format="{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} "
                "[{elapsed}<{remaining}] {postfix}",
            )

    def left(self) -> float | None:
        """Seconds left at this session's pace (None before anything was done here)."""
        done_here = self.done - self.start_done
        if done_here <= 0:
            return None
        return (time.monotonic() - self.started) / done_here * max(self.total - self.done, 0)

    def text(self) -> str:
        """The plain-text line of where the step stands now."""
        parts = [self.words] if self.words else []
        percent = 100 * self.done / self.total if self.total else 100.0
        parts.append(f"{percent:.0f}% done")
        left = self.left()
        if left is not None and self.done < self.total:
            parts.append(f"{duration(left)} left")
        return f"{self.desc}: {', '.join(parts)}"

    def _line(self) -> None:
        print(self.text(), flush=True)
        self.last_line = time.monotonic()

    def update(self, units: int = 1) -> None:
        self.done += units
        if self.bar is not None:
            self.bar.update(units)
        elif self.mode == "lines" and time.monotonic() - self.last_line >= self.interval:
            self._line()

    def note(self, words: str) -> None:
        """The words shown after the description (epoch, loss, validation AUC, speed)."""
        self.words = words
        if self.bar is not None:
            self.bar.set_postfix_str(words, refresh=False)

    def milestone(self, words: str | None = None) -> None:
        """A point worth a line of its own in ``lines`` mode (an epoch's end)."""
        if words is not None:
            self.note(words)
        if self.mode == "lines":
            self._line()
        elif self.bar is not None:
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
