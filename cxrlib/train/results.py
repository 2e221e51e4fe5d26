"""What a run folder holds once trained: history, test predictions, metrics; every run of a
profile; and where each run stands, for a person who reconnects to a session.

``metrics.json`` is written last and means "finished": a finished run is read back instead of
trained again. :func:`progress_lines` says of every run under a runs folder how far it got
(``python -m cxrlib status --runs-dir RUNS_DIR``), so that a notebook's lost output costs nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrlib.core.errors import RunNotFinishedError
from cxrlib.core.fileio import atomic_write, atomic_write_text
from cxrlib.train.layout import RunFolder, RunKey
from cxrlib.train.record import normalise_settings


@dataclass
class Predictions:
    """A run's test predictions: image ids, 0/1 labels (N×K) and probabilities (N×K)."""

    image_ids: list[str]
    classes: list[str]
    labels: np.ndarray
    scores: np.ndarray


def write_history(run: RunFolder, rows: list[dict]) -> None:
    with atomic_write(run.history_file, "w", newline="") as handle:
        pd.DataFrame(rows).to_csv(handle, index=False)


def read_history(run: RunFolder) -> pd.DataFrame:
    return pd.read_csv(run.history_file) if run.history_file.is_file() else pd.DataFrame()


def write_predictions(run: RunFolder, predictions: Predictions) -> None:
    frame = pd.DataFrame({"image_id": predictions.image_ids})
    for k, name in enumerate(predictions.classes):
        frame[f"label_{name}"] = predictions.labels[:, k]
    for k, name in enumerate(predictions.classes):
        frame[f"prob_{name}"] = predictions.scores[:, k]
    with atomic_write(run.predictions_file, "w", newline="") as handle:
        frame.to_csv(handle, index=False)


def read_metrics(run: RunFolder) -> dict | None:
    return json.loads(run.metrics_file.read_text()) if run.finished else None


def write_metrics(run: RunFolder, metrics: dict) -> None:
    atomic_write_text(run.metrics_file, json.dumps(metrics, indent=2))


def read_predictions(run: RunFolder) -> Predictions:
    metrics = read_metrics(run)
    if metrics is None or not run.predictions_file.is_file():
        raise RunNotFinishedError(f"{run.path} holds no finished run: train it first")
    frame = pd.read_csv(run.predictions_file, dtype={"image_id": str})
    classes = list(metrics["classes"])
    return Predictions(
        frame["image_id"].tolist(),
        classes,
        frame[[f"label_{c}" for c in classes]].to_numpy(),
        frame[[f"prob_{c}" for c in classes]].to_numpy(),
    )


@dataclass
class RunResult:
    """What a run folder holds: finished or not, its metrics, history and settings."""

    folder: Path
    finished: bool
    metrics: dict | None
    history: pd.DataFrame
    settings: dict | None = None
    _: KW_ONLY
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
    def key(self) -> RunKey:
        return RunKey.from_folder(self.folder)

    @property
    def epochs_planned(self) -> int | None:
        return (self.settings or {}).get("config", {}).get("epochs")

    @property
    def epochs_run(self) -> int:
        """Epochs completed (the history's rows; a finished run's ``epochs_run``)."""
        if self.metrics and "epochs_run" in self.metrics:
            return int(self.metrics["epochs_run"])
        return len(self.history)

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
        return read_predictions(self.run)


def read_run(folder: str | os.PathLike) -> RunResult:
    """What the run folder ``folder`` holds (finished or not)."""
    run = RunFolder(Path(folder))
    settings = None
    if run.settings_file.is_file():
        settings = normalise_settings(json.loads(run.settings_file.read_text()))
    return RunResult(run.path, run.finished, read_metrics(run), read_history(run), settings)


def all_runs(runs: Path, profile: str) -> list[RunResult]:
    """Every run of ``profile`` under the runs folder ``runs`` that has started (it has
    ``config.json``), finished or not, in path order."""
    return [read_run(folder) for folder in RunKey.started(runs, profile)]


def run_coordinates(result: RunResult) -> dict[str, Any]:
    """``dataset``, ``split``, ``model``, ``init`` (scratch, ImageNet) and ``seed`` of a run."""
    return result.key.coordinates()


def progress_line(result: RunResult) -> str:
    """Where one run stands, in one line: finished (test mean AUC), or epochs done of planned,
    the last epoch's loss and validation AUC, and the log to read."""
    label = result.run.label
    if result.finished:
        test = result.metrics["test"]
        return f"{label}: finished, test mean AUC {test['mean_auc']:.2f}"
    planned = result.epochs_planned or "?"
    if result.history.empty:
        return f"{label}: started, no epoch finished yet of {planned} (log: {result.run.log_file})"
    last = result.history.iloc[-1]
    return (
        f"{label}: epoch {int(last['epoch'])} of {planned} done, loss {last['train_loss']:.4f}, "
        f"val mean AUC {last['val_mean_auc']:.2f} (log: {result.run.log_file})"
    )


def progress_lines(root: str | os.PathLike) -> list[str]:
    """:func:`progress_line` of every run under ``root`` -- a runs folder (``RUNS_DIR``), a
    profile's folder in it, or one run's folder."""
    root = Path(root)
    found = sorted(
        {p.parent for p in root.glob("**/config.json") if RunKey.is_run_folder(p.parent)}
    )
    if (root / "config.json").is_file():
        found = [root]
    return [progress_line(read_run(folder)) for folder in found]
