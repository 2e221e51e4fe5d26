"""The run folder: its layout, every file in it, and the model of a run.

A training run lives in ``runs/<profile>/<dataset>/<split>/<model>/seed<k>/`` (``<model>+imagenet``
for a run initialised from ImageNet, ``PRETRAINED=imagenet``) and this module is the only one
that reads or writes its files (one writer and one reader each):

* ``config.json`` -- the resolved configuration, the identity of the data (source, dataset,
  split, image size, cache key, a hash of the split) and how it was computed (world size,
  per-device batch, accumulation, precision). Checkpoints hold the same record, so a deleted
  ``config.json`` is rewritten from ``last.pt``, never from today's settings.
* ``last.pt`` (and ``last.prev.pt``, the one before it) and ``best.pt`` -- checkpoints, written
  atomically; a corrupt ``last.pt`` falls back to ``last.prev.pt`` with a message.
* ``epochs.csv`` and ``train.log`` -- per-epoch history, and a readable log.
* ``test_predictions.csv`` and ``metrics.json`` -- written last; ``metrics.json`` means
  "finished", and a finished run is read back instead of trained again.
* ``tensorboard/`` -- per-epoch scalars; ``.lock`` -- held while a process trains there.

A resume with other settings or other data is refused with what differs and the flag that
starts over (``--restart``); a second process on the same folder gets :class:`RunLockedError`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from cxrlib.config import LEAVES, Config, load_config
from cxrlib.errors import RunConfigMismatchError, RunLockedError, RunNotFinishedError
from cxrlib.fileio import atomic_write, atomic_write_text, remove_stale_temp_files
from cxrlib.paths import ResultsLayout, runs_root
from cxrlib.recipe import RECIPE

LOG = logging.getLogger("cxrlib.runs")

SETTINGS_VERSION = 2
#: Configuration fields that may change between sessions of one run: they cannot change
#: its results (where the data lives, how often to checkpoint, loader processes).
#: DATA_SOURCE and GRAD_ACCUM may read "auto"/None: what they resolve to -- the data's source,
#: the micro-batch -- is compared instead (DATA_IDENTITY_KEYS, RUNTIME_KEYS).
RESUME_TOLERANT = frozenset(
    {
        "num_workers",
        "checkpoint_minutes",
        "cxr14_root",
        "cxr11_root",
        "data_source",
        "grad_accum",
        "seeds",  # how many runs a notebook trains, not how one run trains
        "seed_models",
    }
)
#: Parts of the data identity that must match on resume. The cache key is recorded too but
#: not compared: it changes with the files' modification times (a fresh download in a new
#: Colab session), while the images, labels and split -- the split hash -- stay the same.
DATA_IDENTITY_KEYS = ("dataset", "source", "split", "image_size", "images", "split_hash")
#: Runtime facts that must match on resume (they change what is computed; batch norm sees
#: the micro-batch).
RUNTIME_KEYS = ("precision", "global_batch", "micro_batch")


#: The model folder's suffix of each initialisation (PRETRAINED): from scratch (both papers) has
#: none, so the papers' runs keep their place; ``+`` appears in no registered model name.
INIT_SUFFIX = {"none": "", "imagenet": "+imagenet"}
#: The name of each initialisation in tables (``init`` of :func:`run_coordinates`).
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


def model_overrides(config: Config) -> dict:
    """The registry overrides a run's configuration sets (dual-branch models: stochastic
    depth)."""
    from cxrlib.models import get_spec

    return {"drop_path": config.model.drop_path} if get_spec(config.model.model).arch else {}


def build_model(config: Config, num_classes: int, *, initialise: bool = True) -> nn.Module:
    """The network of ``config`` for ``num_classes`` labels (the one place a run's model is
    built: training, the test evaluation, Grad-CAM and prediction all call this).

    ``initialise``: start from the weights ``PRETRAINED`` names (ImageNet); False when a
    checkpoint's weights are loaded next (nothing is downloaded then)."""
    from cxrlib.models import create_model

    imagenet = initialise and config.model.pretrained == "imagenet"
    return create_model(
        config.model.model,
        num_classes,
        size=config.model.model_size,
        image_size=config.data.image_size,
        pretrained="imagenet" if imagenet else False,
        **model_overrides(config),
    )


def run_card(config: Config, settings: dict, classes: list[str]) -> dict:
    """The card of a run's model file: the model, its classes, the data and the recipe."""
    from cxrlib.models.checkpoint import model_card

    return model_card(
        name=config.model.model,
        size=config.model.model_size,
        image_size=config.data.image_size,
        overrides=model_overrides(config),
        classes=classes,
        data=settings["data"],
        recipe=settings["config"],
        profile=config.profile,
        runtime=settings["runtime"],
    )


def config_from_settings(settings: dict) -> Config:
    """The :class:`Config` a run was made with, from its ``config.json`` record."""
    flat = settings["config"]
    # names this version no longer has (e.g. the never-read CACHE_SIZE of earlier runs) are
    # ignored: they cannot change how the saved weights are rebuilt
    known = {k: v for k, v in flat.items() if k in LEAVES}
    return load_config(settings["profile"], **known)


def normalise_settings(raw: dict) -> dict:
    """Read both the current record and the flat one of version-1 runs."""
    if "config" in raw:
        return raw
    flat = {k: v for k, v in raw.items() if k != "profile"}
    if flat.get("beta1") is None:  # version 1 let BETA1 be None: the dataset's default
        flat.pop("beta1", None)
    return {"version": 1, "profile": raw["profile"], "config": flat, "data": {}, "runtime": {}}


def settings_record(config: Config, data: dict, runtime: dict) -> dict:
    """What ``config.json`` and every checkpoint hold about a run."""
    return {
        "version": SETTINGS_VERSION,
        "profile": config.profile,
        "config": config.flat(),
        "data": data,
        "runtime": runtime,
    }


def _differences(saved: dict, now: dict, keys) -> list[str]:
    return [
        f"{k.upper()}: run has {saved.get(k)!r}, now {now.get(k)!r}"
        for k in keys
        if saved.get(k) != now.get(k)
    ]


@dataclass
class Predictions:
    """A run's test predictions: image ids, 0/1 labels (N×K) and probabilities (N×K)."""

    image_ids: list[str]
    classes: list[str]
    labels: np.ndarray
    scores: np.ndarray


@dataclass
class RunResult:
    """What a run folder holds: finished or not, its metrics, history and settings."""

    folder: Path
    finished: bool
    metrics: dict | None
    history: pd.DataFrame
    settings: dict | None = None
    #: the same model and recipe with the other seeds of ``SEEDS`` (set by ``train_models``)
    seed_runs: list[RunResult] = field(default_factory=list)

    @property
    def seeds(self) -> list[RunResult]:
        """This run and its other seeds' runs (one test set: SPLIT_SEED is shared)."""
        return [self, *self.seed_runs]

    @property
    def run(self) -> RunFolder:
        return RunFolder(self.folder)

    @property
    def device_hours(self) -> float | None:
        """Device (GPU, or CPU process) hours its epochs took, from ``epochs.csv`` (wall time
        × devices, over sessions); None for runs of versions that did not record the time."""
        if self.history.empty or "seconds" not in self.history:
            return None
        spent = self.history["seconds"] * self.history["devices"]
        return float(spent.sum()) / 3600 if spent.notna().all() else None

    def predictions(self) -> Predictions:
        """The test predictions (raises :class:`RunNotFinishedError` for an unfinished run)."""
        return self.run.read_predictions()

    def not_comparable_because(self) -> str | None:
        """None when the run may stand beside a published number: it ran the papers' recipe
        to the end on the real data with the papers' split; else the reasons it may not."""
        if not self.finished or self.settings is None:
            return "not finished"
        flat, data = self.settings["config"], self.settings.get("data", {})
        reasons = []
        source = data.get("source", flat.get("data_source"))
        if source != "real":
            reasons.append("phantom data")
        if flat.get("split") != "paper":
            reasons.append(f"{flat.get('split')} split (the papers used their split files)")
        if flat.get("allow_missing_images") and self.metrics.get("dropped_missing", 0):
            reasons.append("images missing on disk were dropped")
        if flat.get("model_size") != "paper":
            reasons.append(f"{flat.get('model_size')} model size")
        if flat.get("pretrained", "none") != "none":
            reasons.append(
                f"{INIT_NAMES[flat['pretrained']]} initialisation (both papers train from scratch)"
            )
        if flat.get("loss_heads") != "each":
            reasons.append(f"loss on {flat.get('loss_heads')} heads")
        differing = [
            f"{name.upper()} {flat.get(name)!r} (paper {value.value!r})"
            for name, value in RECIPE.items()
            if flat.get(name) != value.value
        ]
        if differing:
            reasons.append("recipe differs: " + ", ".join(differing))
        return "; ".join(reasons) or None


@dataclass(frozen=True)
class RunFolder:
    """One run's folder and its files."""

    path: Path

    @classmethod
    def of(cls, config: Config, dataset: str) -> RunFolder:
        return cls(run_path(config, dataset))

    # file names -----------------------------------------------------------------------------
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
            self.history_file,
            self.log_file,
            self.predictions_file,
            self.metrics_file,
        ]

    @property
    def finished(self) -> bool:
        return self.metrics_file.is_file()

    # the lock -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder for this process; :class:`RunLockedError` if another holds it.

        An OS file lock (``flock``): it goes with the process, so a killed run leaves no
        stale lock behind. Inside it, temp files of killed writes are removed.
        """
        import fcntl

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

    # settings -------------------------------------------------------------------------------
    def read_settings(self) -> dict | None:
        """The run's record; rewritten from ``last.pt`` (or ``best.pt``) when ``config.json``
        was lost."""
        if self.settings_file.is_file():
            try:
                return normalise_settings(json.loads(self.settings_file.read_text()))
            except (json.JSONDecodeError, KeyError):
                self.log(f"{self.settings_file.name} is unreadable; recovering it")
        checkpoint = self.load_checkpoint(quiet=True)
        if (checkpoint is None or "settings" not in checkpoint) and self.best.is_file():
            checkpoint = self.load_best()
        if checkpoint is None or "settings" not in checkpoint:
            return None
        settings = checkpoint["settings"]
        self.write_settings(settings)
        self.log("config.json was missing: rewritten from the checkpoint")
        return settings

    def write_settings(self, settings: dict) -> None:
        atomic_write_text(self.settings_file, json.dumps(settings, indent=2))

    def check_config(self, config: Config, settings: dict) -> None:
        """Refuse to resume (or read back) a run made with other settings."""
        saved = settings["config"]
        now = config.flat()
        keys = [k for k in now if k not in RESUME_TOLERANT and k in saved]
        differing = _differences(saved, now, keys)
        if settings["profile"] != config.profile:
            differing.insert(0, f"PROFILE: run has {settings['profile']!r}, now {config.profile!r}")
        self._refuse(differing, "settings")

    def check_data(self, settings: dict, data: dict, runtime: dict) -> None:
        """Refuse to resume a run on other data or with another precision or global batch."""
        saved_data, saved_runtime = settings.get("data") or {}, settings.get("runtime") or {}
        differing = []
        if saved_data:
            differing += _differences(saved_data, data, DATA_IDENTITY_KEYS)
            if saved_data.get("cache_key") != data.get("cache_key"):
                self.log("the image cache was rebuilt since the last session (same images)")
        if saved_runtime:
            differing += _differences(saved_runtime, runtime, RUNTIME_KEYS)
        self._refuse(differing, "data or computation")

    def _refuse(self, differing: list[str], what: str) -> None:
        if differing:
            raise RunConfigMismatchError(
                f"{self.path} holds a run made with other {what} ({'; '.join(differing)}). "
                f"Resume it with the same settings, choose another SEED for a new run, or "
                f"start it over with --restart (restart=True)."
            )

    # checkpoints ----------------------------------------------------------------------------
    def save_checkpoint(self, state: dict) -> None:
        """Write ``last.pt`` atomically, keeping the one before as ``last.prev.pt``."""
        if self.last.is_file():
            os.replace(self.last, self.previous)
        with atomic_write(self.last, "wb") as handle:
            torch.save(state, handle)

    def load_checkpoint(self, quiet: bool = False) -> dict | None:
        """``last.pt``; if it is unreadable, ``last.prev.pt`` (with a message); None if none."""
        for path in (self.last, self.previous):
            if not path.is_file():
                continue
            try:
                checkpoint = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as err:  # a truncated or corrupt file: fall back
                message = f"{path.name} is unreadable ({type(err).__name__}); trying the previous"
                LOG.warning("%s: %s", self.path, message)
                if not quiet:
                    self.log(message)
                continue
            if path == self.previous and not quiet:
                self.log("resuming from last.prev.pt, the checkpoint before the corrupt last.pt")
            return checkpoint
        return None

    def save_best(
        self, weights: dict, epoch: int, val: dict, settings: dict, card: dict | None = None
    ) -> None:
        """``best.pt``: the weights (a state dict) of the best validation epoch, the run's
        record and the model's card (:mod:`cxrlib.models.checkpoint`: it loads on its own)."""
        state = {"model": weights, "epoch": epoch, "val": val, "settings": settings}
        if card is not None:
            state["card"] = card
        with atomic_write(self.best, "wb") as handle:
            torch.save(state, handle)

    def complete_best_card(self, results: dict) -> None:
        """Add the finished run's test results and operating points to ``best.pt``'s card."""
        state = self.load_best()
        if "card" not in state:
            return
        state["card"] |= results
        with atomic_write(self.best, "wb") as handle:
            torch.save(state, handle)

    def drop_resume_checkpoints(self) -> None:
        """A finished run needs only ``best.pt``: ``last.pt`` and ``last.prev.pt`` (weights
        plus AdamW's two moment buffers, three times its size together) go, so that a full
        set of runs fits on Google Drive or in Kaggle's working folder."""
        for path in (self.last, self.previous):
            path.unlink(missing_ok=True)

    def load_best(self) -> dict:
        if not self.best.is_file():
            raise RunNotFinishedError(f"{self.best} is missing: train the run first")
        return torch.load(self.best, map_location="cpu", weights_only=True)

    # history, log, predictions, metrics -----------------------------------------------------
    def write_history(self, rows: list[dict]) -> None:
        with atomic_write(self.history_file, "w", newline="") as handle:
            pd.DataFrame(rows).to_csv(handle, index=False)

    def read_history(self) -> pd.DataFrame:
        return pd.read_csv(self.history_file) if self.history_file.is_file() else pd.DataFrame()

    def log(self, message: str, level: int = logging.INFO) -> None:
        """Append a timestamped line to ``train.log`` and pass it to :mod:`logging`."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "a", encoding="utf-8") as handle:
            handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")
        LOG.log(level, "%s: %s", self.label, message)

    @property
    def label(self) -> str:
        """``<dataset>/<split>/<model>/seed<k>``: the run's name in messages."""
        return "/".join(self.path.parts[-4:])

    def write_predictions(self, predictions: Predictions) -> None:
        frame = pd.DataFrame({"image_id": predictions.image_ids})
        for k, name in enumerate(predictions.classes):
            frame[f"label_{name}"] = predictions.labels[:, k]
        for k, name in enumerate(predictions.classes):
            frame[f"prob_{name}"] = predictions.scores[:, k]
        with atomic_write(self.predictions_file, "w", newline="") as handle:
            frame.to_csv(handle, index=False)

    def read_predictions(self) -> Predictions:
        metrics = self.read_metrics()
        if metrics is None or not self.predictions_file.is_file():
            raise RunNotFinishedError(f"{self.path} holds no finished run: train it first")
        frame = pd.read_csv(self.predictions_file, dtype={"image_id": str})
        classes = list(metrics["classes"])
        return Predictions(
            frame["image_id"].tolist(),
            classes,
            frame[[f"label_{c}" for c in classes]].to_numpy(),
            frame[[f"prob_{c}" for c in classes]].to_numpy(),
        )

    def write_metrics(self, metrics: dict) -> None:
        atomic_write_text(self.metrics_file, json.dumps(metrics, indent=2))

    def read_metrics(self) -> dict | None:
        return json.loads(self.metrics_file.read_text()) if self.finished else None

    def result(self) -> RunResult:
        settings = None
        if self.settings_file.is_file():
            settings = normalise_settings(json.loads(self.settings_file.read_text()))
        return RunResult(
            self.path, self.finished, self.read_metrics(), self.read_history(), settings
        )

    def discard(self) -> None:
        """Remove the run's files (``restart``); says so loudly when it was finished."""
        metrics = self.read_metrics()
        if metrics is not None:
            message = (
                f"restart: discarding the FINISHED run in {self.path} (test mean AUC "
                f"{metrics['test']['mean_auc']:.2f}, best epoch {metrics['best_epoch']})"
            )
            LOG.warning(message)
            print(message, flush=True)
        for path in self.files():
            path.unlink(missing_ok=True)
        shutil.rmtree(self.tensorboard_dir, ignore_errors=True)


def read_run(folder: str | os.PathLike) -> RunResult:
    """What the run folder ``folder`` holds (finished or not)."""
    return RunFolder(Path(folder)).result()


def all_runs(profile: str, root: Path | None = None) -> list[RunResult]:
    """Every run of ``profile`` that has started (it has ``config.json``), finished or not,
    in path order."""
    base = (root or runs_root()) / profile
    return [read_run(path.parent) for path in sorted(base.glob("*/*/*/seed*/config.json"))]


def run_coordinates(result: RunResult) -> dict[str, Any]:
    """``dataset``, ``split``, ``model``, ``init`` (scratch, ImageNet) and ``seed`` of a run,
    from its folder's place."""
    dataset, split, folder, seed = result.folder.parts[-4:]
    model, init = folder, "none"
    for key, suffix in INIT_SUFFIX.items():
        if suffix and folder.endswith(suffix):
            model, init = folder[: -len(suffix)], key
    return {
        "dataset": dataset,
        "split": split,
        "model": model,
        "init": INIT_NAMES[init],
        "seed": int(seed[4:]),
    }


def load_run_model(folder: str | os.PathLike) -> tuple[nn.Module, Config, list[str]]:
    """The best model of a finished run (eval mode, CPU), its configuration and its classes."""
    run = RunFolder(Path(folder))
    metrics = run.read_metrics()
    if metrics is None or not run.best.is_file():
        raise RunNotFinishedError(f"{run.path} holds no finished run: train it first")
    from cxrlib.models.checkpoint import load_model

    model = load_model(run.path)  # its best.pt, read through its card (or this folder)
    return model, config_from_settings(run.read_settings()), list(metrics["classes"])
