"""The run folder: where a run lives, the files in it, its lock and its log.

A training run lives in ``<RUNS_DIR>/<profile>/<dataset>/<split>/<model>/seed<k>/``
(``<model>+imagenet`` for a run initialised from ImageNet, ``PRETRAINED=imagenet``).
:class:`RunKey` is the one place that maps a run's coordinates to that folder and back; nothing
else builds or parses run paths. Its files, each with one writer and one reader in this layer:

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
import dataclasses
import errno
import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import KW_ONLY, dataclass
from pathlib import Path

from cxrlib.core.config import Config
from cxrlib.core.errors import RunLockedError
from cxrlib.core.fileio import remove_file, remove_stale_temp_files

LOG = logging.getLogger("cxrlib.train")

#: The model folder's suffix of each initialisation (PRETRAINED): from scratch (both papers) has
#: none, so the papers' runs keep their place; ``+`` appears in no registered model name.
INIT_SUFFIX = {"none": "", "imagenet": "+imagenet"}
#: The name of each initialisation in tables and labels.
INIT_NAMES = {"none": "scratch", "imagenet": "ImageNet"}
SEED_PREFIX = "seed"


@dataclass(frozen=True)
class RunKey:
    """A run's coordinates -- profile, dataset, split, model, initialisation, seed -- and the
    folder they name (:meth:`folder`) and are read back from (:meth:`from_folder`)."""

    profile: str
    dataset: str
    split: str
    model: str
    _: KW_ONLY
    init: str = "none"  #: the PRETRAINED value: ``none`` (from scratch) or ``imagenet``
    seed: int = 0

    @classmethod
    def of(cls, config: Config, dataset: str) -> RunKey:
        """The run ``config`` trains on ``dataset`` (a dataset's registered name)."""
        return cls(
            config.profile,
            dataset,
            config.data.split,
            config.model.model,
            init=config.model.pretrained,
            seed=config.train.seed,
        )

    def folder(self, runs: Path) -> Path:
        """``<runs>/<profile>/<dataset>/<split>/<model>[+imagenet]/seed<k>``."""
        model = f"{self.model}{INIT_SUFFIX[self.init]}"
        return runs / self.profile / self.dataset / self.split / model / f"{SEED_PREFIX}{self.seed}"

    @classmethod
    def from_folder(cls, path: str | os.PathLike) -> RunKey:
        """The coordinates of a run folder (the inverse of :meth:`folder`); ValueError for a
        folder that is not laid out as a run's."""
        parts = Path(path).parts[-5:]
        if len(parts) < 5 or not parts[4].startswith(SEED_PREFIX):
            raise ValueError(f"{path} is not a run folder (<profile>/<dataset>/<split>/...)")
        profile, dataset, split, model, seed = parts
        init = "none"
        for key, suffix in INIT_SUFFIX.items():
            if suffix and model.endswith(suffix):
                model, init = model[: -len(suffix)], key
        return cls(profile, dataset, split, model, init=init, seed=int(seed[len(SEED_PREFIX) :]))

    @staticmethod
    def is_run_folder(path: Path) -> bool:
        try:
            RunKey.from_folder(path)
        except ValueError:
            return False
        return True

    @staticmethod
    def started(runs: Path, profile: str) -> list[Path]:
        """Every run folder of ``profile`` under ``runs`` that has started (has
        ``config.json``), in path order."""
        pattern = f"*/*/*/{SEED_PREFIX}*/config.json"
        return [p.parent for p in sorted((runs / profile).glob(pattern))]

    def with_seed(self, seed: int) -> RunKey:
        return dataclasses.replace(self, seed=seed)

    @property
    def init_name(self) -> str:
        return INIT_NAMES[self.init]

    @property
    def label(self) -> str:
        """The run in messages, naming profile and split so that neither is taken for the
        other: ``cxr11 ctranscnn_tiny seed 0 (smoke profile, paper split)``."""
        init = "" if self.init == "none" else f" from {self.init_name}"
        return (
            f"{self.dataset} {self.model}{init} seed {self.seed} "
            f"({self.profile} profile, {self.split} split)"
        )

    def coordinates(self) -> dict:
        """The coordinates for a table row (``init`` by name: scratch, ImageNet)."""
        return {
            "dataset": self.dataset,
            "split": self.split,
            "model": self.model,
            "init": self.init_name,
            "seed": self.seed,
        }


def restart_hint(path: str | os.PathLike) -> str:
    """How to start the run in ``path`` over, from the command line and from a notebook."""
    try:
        model = RunKey.from_folder(path).model
    except ValueError:
        model = "<model>"
    return f"--restart on the command line, RESTART = [{model!r}] in a notebook"


@dataclass(frozen=True)
class RunFolder:
    """One run's folder: the names of its files, its lock and its log."""

    path: Path

    @classmethod
    def of(cls, config: Config, dataset: str) -> RunFolder:
        """The folder of the run ``config`` trains on ``dataset``, in its workspace."""
        return cls(RunKey.of(config, dataset).folder(config.workspace.runs))

    @property
    def key(self) -> RunKey:
        return RunKey.from_folder(self.path)

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
    def val_predictions_file(self) -> Path:
        """The tested weights' validation predictions (temperature scaling is fitted on them)."""
        return self.path / "val_predictions.csv"

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
            self.val_predictions_file,
            self.metrics_file,
        ]

    @property
    def finished(self) -> bool:
        return self.metrics_file.is_file()

    @property
    def label(self) -> str:
        """The run's name in messages (:attr:`RunKey.label`)."""
        return self.key.label

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder for this process; :class:`RunLockedError` if another holds it.

        An OS file lock (``flock``): it goes with the process, so a killed run leaves no
        stale lock behind -- the next process takes the folder over. The lock file names its
        holder (process and host) for the refusal's message; a finished run keeps none. Inside
        it, temp files of killed writes are removed.
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
            if self.finished:  # a finished run keeps no lock file (emptied, then removed)
                remove_file(self.path / ".lock")
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
