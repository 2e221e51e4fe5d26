"""The run folder: where a run lives, the files in it, its lock and its log.

A training run lives in ``runs/<profile>/<dataset>/<split>/<model>/seed<k>/`` (``<model>+imagenet``
for a run initialised from ImageNet, ``PRETRAINED=imagenet``). Its files, each with one writer
and one reader in this layer:

* ``config.json`` -- the run's record (:mod:`cxrlib.train.record`): the resolved configuration,
  the identity of the data and how it was computed. Checkpoints hold the same record, so a
  deleted ``config.json`` is rewritten from them, never from today's settings.
* ``last.pt`` (and ``last.prev.pt``, the one before it) and ``best.pt`` -- checkpoints
  (:mod:`cxrlib.train.checkpoints`).
* ``epochs.csv`` and ``train.log`` -- per-epoch history, and a readable log.
* ``test_predictions.csv`` and ``metrics.json`` -- written last; ``metrics.json`` means
  "finished", and a finished run is read back instead of trained again
  (:mod:`cxrlib.train.results`).
* ``tensorboard/`` -- per-epoch scalars; ``.lock`` -- held while a process trains there.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cxrlib.core.config import Config
from cxrlib.core.errors import RunLockedError
from cxrlib.core.fileio import remove_file, remove_stale_temp_files
from cxrlib.core.paths import ResultsLayout

LOG = logging.getLogger("cxrlib.train")

#: The model folder's suffix of each initialisation (PRETRAINED): from scratch (both papers) has
#: none, so the papers' runs keep their place; ``+`` appears in no registered model name.
INIT_SUFFIX = {"none": "", "imagenet": "+imagenet"}
#: The name of each initialisation in tables (``init`` of the run's coordinates).
INIT_NAMES = {"none": "scratch", "imagenet": "ImageNet"}


def run_path(config: Config, dataset: str) -> Path:
    """``runs/<profile>/<dataset>/<split>/<model>[+imagenet]/seed<k>`` of ``config``."""
    return (
        ResultsLayout(config.profile).runs
        / dataset
        / config.data.split
        / f"{config.model.model}{INIT_SUFFIX[config.model.pretrained]}"
        / f"seed{config.train.seed}"
    )


@dataclass(frozen=True)
class RunFolder:
    """One run's folder: the names of its files, its lock and its log."""

    path: Path

    @classmethod
    def of(cls, config: Config, dataset: str) -> RunFolder:
        return cls(run_path(config, dataset))

    @property
    def settings_file(self) -> Path:
        return self.path / "config.json"

    @property
    def last(self) -> Path:
        return self.path / "last.pt"

    @property
    def previous(self) -> Path:
        return self.path / "last.prev.pt"

    @property
    def best(self) -> Path:
        return self.path / "best.pt"

    @property
    def final(self) -> Path:
        """The final epoch's model file (written only with ``TEST_CHECKPOINT = "last"``)."""
        return self.path / "final.pt"

    @property
    def history_file(self) -> Path:
        return self.path / "epochs.csv"

    @property
    def log_file(self) -> Path:
        return self.path / "train.log"

    @property
    def predictions_file(self) -> Path:
        return self.path / "test_predictions.csv"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.json"

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / "tensorboard"

    def files(self) -> list[Path]:
        """Every file a run writes (``restart`` removes exactly these)."""
        return [
            self.settings_file,
            self.last,
            self.previous,
            self.best,
            self.path / "best.prev.pt",  # the best file's alternate on Google Drive
            self.final,
            self.history_file,
            self.log_file,
            self.predictions_file,
            self.metrics_file,
        ]

    @property
    def finished(self) -> bool:
        return self.metrics_file.is_file()

    @property
    def label(self) -> str:
        """``<dataset>/<split>/<model>/seed<k>``: the run's name in messages."""
        return "/".join(self.path.parts[-4:])

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder for this process; :class:`RunLockedError` if another holds it.

        An OS file lock (``flock``): it goes with the process, so a killed run leaves no
        stale lock behind. Inside it, temp files of killed writes are removed.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        handle = open(self.path / ".lock", "a+")  # noqa: SIM115 - held for the with-block
        try:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise RunLockedError(
                    f"{self.path} is in use by {holder}: one process trains a run at a time. "
                    f"Wait for it to end (or stop it), or train another SEED or model"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"process {os.getpid()} on {os.uname().nodename}")
            handle.flush()
            for path in remove_stale_temp_files(self.path):
                self.log(f"removed {path.name}, left by a write that was killed")
            yield
        finally:
            handle.close()  # releases the lock

    def log(self, message: str, level: int = logging.INFO, echo: bool = True) -> None:
        """Append a timestamped line to ``train.log``; with ``echo``, pass it to
        :mod:`logging` too (the notebook's or terminal's output)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "a", encoding="utf-8") as handle:
            handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")
        if echo:
            LOG.log(level, "%s: %s", self.label, message)

    def discard(self) -> None:
        """Remove the run's files (``restart``); says so loudly when it was finished."""
        if self.finished:
            metrics = json.loads(self.metrics_file.read_text())
            message = (
                f"restart: discarding the FINISHED run in {self.path} (test mean AUC "
                f"{metrics['test']['mean_auc']:.2f}, best epoch {metrics['best_epoch']})"
            )
            LOG.warning(message)
            print(message, flush=True)
        for path in self.files():
            remove_file(path)  # a checkpoint on Drive is emptied first: nothing in its trash
        shutil.rmtree(self.tensorboard_dir, ignore_errors=True)
