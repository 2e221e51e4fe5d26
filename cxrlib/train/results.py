"""What a run folder holds once trained: history, test predictions, metrics; every run of a
profile; and where each run stands, for a person who reconnects to a session.

``metrics.json`` is written last and means "finished": a finished run is read back instead of
trained again. :func:`progress_lines` says of every run under a runs folder how far it got
(``python -m cxrlib status --runs-dir RUNS_DIR``), so that a notebook's lost output costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrlib.core.errors import DamagedFileError, RunNotFinishedError
from cxrlib.core.fileio import atomic_write, atomic_write_text
from cxrlib.train.layout import RunFolder, RunKey, restart_hint
from cxrlib.train.record import normalise_settings


@dataclass
class Predictions:
    """A run's test predictions: image ids, 0/1 labels (N×K) and probabilities (N×K)."""

    image_ids: list[str]
    classes: list[str]
    labels: np.ndarray
    scores: np.ndarray


HISTORY_COLUMNS = ("epoch",)


def write_history(run: RunFolder, rows: list[dict]) -> None:
    """``epochs.csv``: one row per finished epoch (the checkpoint and, once finished,
    ``metrics.json`` hold the same rows, from which a damaged file is written again)."""
    frame = pd.DataFrame(rows) if rows else pd.DataFrame(columns=list(HISTORY_COLUMNS))
    with atomic_write(run.history_file, "w", newline="") as handle:  # no rows: the header
        frame.to_csv(handle, index=False)


def _history_problem(frame: pd.DataFrame) -> str | None:
    """Why a read ``epochs.csv`` cannot be right (a format check), or None."""
    if not set(HISTORY_COLUMNS) <= set(frame.columns):
        return (
            f"it lacks the columns {', '.join(sorted(set(HISTORY_COLUMNS) - set(frame.columns)))}"
        )
    epochs = pd.to_numeric(frame["epoch"], errors="coerce")
    if epochs.isna().any() or list(epochs) != list(range(1, len(frame) + 1)):
        return "its epochs are not 1, 2, 3, ..."
    gaps = [c for c in frame.columns if frame[c].isna().any() and not frame[c].isna().all()]
    if gaps:  # a row cut short: values missing where the other rows have them
        return f"values are missing in {', '.join(map(str, gaps))}"
    return None


def read_history(run: RunFolder, metrics: dict | None = None) -> pd.DataFrame:
    """The run's per-epoch history. A damaged ``epochs.csv`` (cut short, garbled) is written
    again from ``metrics.json`` where the run finished, saying so in the run's log; an
    unfinished run's is written again from its checkpoint when it resumes -- until then its
    history reads as empty, with a warning naming the file."""
    if not run.history_file.is_file():
        return pd.DataFrame()
    try:
        frame = pd.read_csv(run.history_file)
        problem = _history_problem(frame)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        problem = f"it cannot be parsed ({type(err).__name__})"
    if problem is None:
        return frame
    if metrics and metrics.get("history"):
        write_history(run, metrics["history"])
        run.log(f"epochs.csv was damaged ({problem}); written again from metrics.json")
        return pd.DataFrame(metrics["history"])
    warnings.warn(
        f"{run.history_file} is damaged ({problem}): resuming the run writes it again from its "
        f"checkpoint; until then its history is not shown",
        stacklevel=2,
    )
    return pd.DataFrame()


def _predictions_file(run: RunFolder, part: str) -> Path:
    if part not in ("test", "val"):
        raise ValueError(f"a run keeps test and val predictions; got {part!r}")
    return run.predictions_file if part == "test" else run.val_predictions_file


def write_predictions(run: RunFolder, predictions: Predictions, part: str = "test") -> None:
    """``test_predictions.csv`` (or ``val_predictions.csv``): image id, labels, probabilities."""
    frame = pd.DataFrame({"image_id": predictions.image_ids})
    for k, name in enumerate(predictions.classes):
        frame[f"label_{name}"] = predictions.labels[:, k]
    for k, name in enumerate(predictions.classes):
        frame[f"prob_{name}"] = predictions.scores[:, k]
    with atomic_write(_predictions_file(run, part), "w", newline="") as handle:
        frame.to_csv(handle, index=False)


def _metrics_digest(metrics: dict) -> str:
    return hashlib.sha256(json.dumps(metrics, sort_keys=True).encode()).hexdigest()


def read_metrics(run: RunFolder) -> dict | None:
    """A finished run's ``metrics.json`` (None while unfinished), its checksum verified:
    :class:`~cxrlib.core.errors.DamagedFileError` naming the file and the fix when it cannot be
    parsed or its content changed after writing (files of earlier versions carry no checksum)."""
    if not run.finished:
        return None
    try:
        metrics = json.loads(run.metrics_file.read_text())
        stored = metrics.pop("checksum", None)
        damaged = stored is not None and stored != _metrics_digest(metrics)
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as err:
        damaged, metrics = True, err
    if damaged:
        raise DamagedFileError(
            f"{run.metrics_file} is damaged (it cannot be parsed, or its checksum does not "
            f"match): restore it from a copy, or evaluate the run again by starting it over "
            f"({restart_hint(run.path)}); its test predictions are in test_predictions.csv"
        )
    return metrics


def write_metrics(run: RunFolder, metrics: dict) -> None:
    """``metrics.json`` with the checksum of its content (verified by :func:`read_metrics`)."""
    metrics = {**metrics, "checksum": _metrics_digest(metrics)}
    atomic_write_text(run.metrics_file, json.dumps(metrics, indent=2))


def read_predictions(run: RunFolder, part: str = "test") -> Predictions:
    """A finished run's test (or validation) predictions; a run finished by a version that
    kept no validation predictions raises :class:`RunNotFinishedError` saying so."""
    metrics = read_metrics(run)
    path = _predictions_file(run, part)
    if metrics is None:
        raise RunNotFinishedError(f"{run.path} holds no finished run: train it first")
    if not path.is_file():
        raise RunNotFinishedError(
            f"{path} is missing: the run was finished by an earlier version of the kit, which "
            f"did not keep it; start the run over to have it ({restart_hint(run.path)})"
        )
    frame = pd.read_csv(path, dtype={"image_id": str})
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

    def predictions(self, part: str = "test") -> Predictions:
        """The test (or validation) predictions (raises :class:`RunNotFinishedError` for an
        unfinished run)."""
        return read_predictions(self.run, part)


def read_run(folder: str | os.PathLike) -> RunResult:
    """What the run folder ``folder`` holds (finished or not)."""
    run = RunFolder(Path(folder))
    settings = None
    if run.settings_file.is_file():
        settings = normalise_settings(json.loads(run.settings_file.read_text()))
    metrics = read_metrics(run)
    return RunResult(run.path, run.finished, metrics, read_history(run, metrics), settings)


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
