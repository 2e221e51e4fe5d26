"""A run's checkpoints: ``last.pt`` and the one before it, ``best.pt``, written in the
background, read back with a fallback, and cleaned up when the run finishes.

:class:`CheckpointSaver` owns these files; the training loop hands it states and asks for them
back. Two ways of writing, chosen by where the run folder is:

* **on a local disk** (the default): each file is written to a temporary file and renamed, so a
  crash never leaves a half-written checkpoint; ``last.pt`` moves to ``last.prev.pt`` first,
  and a ``last.pt`` that cannot be read falls back to it.
* **on Google Drive** (:func:`cxrlib.core.platform.on_drive`): a replaced or deleted file goes
  to Drive's trash and keeps counting against the user's 15 GB (a paper-size run would leave
  about 0.41 GB × 300 epochs there). Nothing named ``*.pt`` is ever renamed or renamed onto:
  each checkpoint is written in place into one of two fixed files (``last.pt``/``last.prev.pt``,
  and ``best.pt``/``best.prev.pt``), alternating, each stamped with a sequence number, so that
  a session that dies mid-write leaves the other one complete; reading takes the newest one
  that loads. A file that must go is emptied before it is deleted. The run's Drive space stays
  at two resume checkpoints and two best files, whatever the number of epochs.

Writes happen in a background thread, one at a time and in order: the caller hands over a copy
on the CPU (:func:`cpu_copy`) and training continues; :meth:`CheckpointSaver.wait` returns once
everything handed over is on disk and re-raises what went wrong there (a full disk, say).
"""

from __future__ import annotations

import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

from cxrlib.core.errors import DamagedFileError, RunNotFinishedError
from cxrlib.core.fileio import atomic_write, overwrite_in_place, remove_file
from cxrlib.core.platform import on_drive
from cxrlib.models.files import load_checked, with_checksum
from cxrlib.train.layout import LOG, RunFolder, restart_hint


def cpu_copy(value):
    """A copy of ``value`` (nested dicts/lists of tensors) on the CPU that training cannot
    change any more (tensors already on the CPU are cloned)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: cpu_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(cpu_copy(v) for v in value)
    return value


def _load(path: Path) -> dict:
    """A checkpoint, its checksum verified (:func:`cxrlib.models.files.load_checked`)."""
    return load_checked(path)


class CheckpointSaver:
    """The checkpoint files of one run folder (see the module docstring)."""

    def __init__(self, run: RunFolder, drive: bool | None = None) -> None:
        self.run = run
        self.drive = on_drive(run.path) if drive is None else drive
        self.best_spare = run.path / "best.prev.pt"  #: Drive only: best.pt's alternate
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")
        self._pending: list[Future] = []
        self._sequence = 0  #: stamped on every file written, to find the newest on Drive
        self._holds_newest: dict[Path, Path | None] = {}  #: Drive: which file of a pair

    # --- writing -------------------------------------------------------------------------
    def _write(self, pair: tuple[Path, Path], state: dict, rotate: bool) -> None:
        """Write ``state`` into ``pair[0]`` (local: atomically, moving the old one to
        ``pair[1]`` when ``rotate``) or, on Drive, in place into the file of the pair that does
        not hold the newest complete copy."""
        if not self.drive:
            if rotate and pair[0].is_file():
                LOG.debug("keeping %s as %s", pair[0].name, pair[1].name)
                pair[0].replace(pair[1])
            with atomic_write(pair[0], "wb") as handle:
                torch.save(with_checksum(state), handle)
            return
        if pair[0] not in self._holds_newest:  # once per session: which file is newer
            self._holds_newest[pair[0]] = self._newest(pair)[0]
        target = pair[1] if self._holds_newest[pair[0]] == pair[0] else pair[0]
        overwrite_in_place(target, lambda handle: torch.save(with_checksum(state), handle))
        self._holds_newest[pair[0]] = target

    def _newest(self, pair: tuple[Path, Path]) -> tuple[Path | None, dict | None]:
        """The file of ``pair`` with the highest sequence number that loads, and its content
        ((None, None): neither loads)."""
        found = []
        for order, path in enumerate(pair):
            if path.is_file() and path.stat().st_size:
                try:
                    checkpoint = _load(path)
                except Exception:
                    continue
                found.append((checkpoint.get("sequence", 0), -order, path, checkpoint))
        if not found:
            return None, None
        newest = max(found, key=lambda item: item[:2])
        return newest[2], newest[3]

    def _submit(self, pair: tuple[Path, Path], state: dict, rotate: bool) -> None:
        self._sequence += 1
        state["sequence"] = self._sequence
        self._pending.append(self._pool.submit(self._write, pair, state, rotate))

    def save_last(self, state: dict) -> None:
        """Hand over a resume checkpoint (model, optimiser, scaler, state, RNG, record)."""
        self._submit((self.run.last, self.run.previous), cpu_copy(state), rotate=True)

    def save_best(self, weights: dict, epoch: int, val: dict, settings: dict, card: dict) -> None:
        """Hand over ``best.pt``: the weights of the best validation epoch, the run's record and
        the model's card (:mod:`cxrlib.models.files`: it loads on its own)."""
        state = {"model": cpu_copy(weights), "epoch": epoch, "val": val, "settings": settings}
        state["card"] = card
        self._submit((self.run.best, self.best_spare), state, rotate=False)

    def write_model_file(self, path: Path, weights: dict, card: dict) -> None:
        """A model file (``{"model", "card"}``, :mod:`cxrlib.models.files`) written now: in
        place on Drive, atomically elsewhere."""
        state = with_checksum({"model": cpu_copy(weights), "card": card})
        if self.drive:
            overwrite_in_place(path, lambda handle: torch.save(state, handle))
        else:
            with atomic_write(path, "wb") as handle:
                torch.save(state, handle)

    def wait(self) -> None:
        """Return once every checkpoint handed over is written (or raise its error)."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)

    # --- reading -------------------------------------------------------------------------
    def load_last(self, quiet: bool = False) -> dict | None:
        """The newest resume checkpoint that loads, or None. Locally ``last.pt``, falling back
        to ``last.prev.pt`` (with a message) when it cannot be read; on Drive the newer of the
        two that loads."""
        pair = (self.run.last, self.run.previous)
        if self.drive:
            path, checkpoint = self._newest(pair)
            self._holds_newest[pair[0]] = path
        else:
            checkpoint = self._first_readable(pair, quiet)
        if checkpoint is not None:
            self._sequence = max(self._sequence, checkpoint.get("sequence", 0))
        return checkpoint

    def _first_readable(self, pair: tuple[Path, Path], quiet: bool) -> dict | None:
        for path in pair:
            if not path.is_file():
                continue
            try:
                checkpoint = _load(path)
            except Exception as err:
                message = f"{path.name} is unreadable ({type(err).__name__}); trying the previous"
                LOG.warning("%s: %s", self.run.path, message)
                if not quiet:
                    self.run.log(message)
                continue
            if path == pair[1] and not quiet:
                self.run.log(
                    "resuming from last.prev.pt, the checkpoint before the corrupt last.pt"
                )
            return checkpoint
        return None

    def load_best(self) -> dict:
        """``best.pt`` (on Drive: the newer of ``best.pt`` and its alternate that loads)."""
        if self.drive:
            path, checkpoint = self._newest((self.run.best, self.best_spare))
            self._holds_newest[self.run.best] = path
        else:
            path = self.run.best
            try:
                checkpoint = _load(path) if path.is_file() else None
            except DamagedFileError as err:
                raise DamagedFileError(
                    f"{err}; it held the run's best weights, which no other file keeps: restore "
                    f"it from a copy, or start the run over ({restart_hint(self.run.path)})"
                ) from err
        if checkpoint is None:
            raise RunNotFinishedError(f"{self.run.best} is missing: train the run first")
        self._sequence = max(self._sequence, checkpoint.get("sequence", 0))
        return checkpoint

    def last_good(self) -> str:
        """Where a run that stopped on a bad step resumes from, in words."""
        for path in (self.run.last, self.run.previous):
            if path.is_file():
                return f"The last good checkpoint is {path}; running again resumes from it"
        return "No checkpoint was written yet: running again starts the run from the beginning"

    # --- finishing -------------------------------------------------------------------------
    def complete_best_card(self, results: dict) -> None:
        """Add the finished run's test results and operating points to ``best.pt``'s card
        (written as a new best file, so the one before stays whole until it is)."""
        state = self.load_best()
        if "card" not in state:
            return
        state["card"] |= results
        self._submit((self.run.best, self.best_spare), state, rotate=False)
        self.wait()

    def keep_best_only(self) -> None:
        """The best weights into ``best.pt`` (on Drive: copied in place from its alternate when
        that is the newer), before the run is marked finished."""
        self.wait()
        if not self.drive or self._newest((self.run.best, self.best_spare))[0] != self.best_spare:
            return
        with open(self.best_spare, "rb") as source:
            overwrite_in_place(self.run.best, lambda handle: shutil.copyfileobj(source, handle))

    def drop_resume_checkpoints(self) -> None:
        """A finished run needs only ``best.pt``: ``last.pt`` and ``last.prev.pt`` (weights
        plus AdamW's two moment buffers, three times its size together) and, on Drive, the
        best file's alternate go -- emptied first -- so that a full set of runs fits on Google
        Drive or in Kaggle's working folder."""
        self.wait()
        for path in (self.run.last, self.run.previous, self.best_spare):
            remove_file(path)


def check_finite(model: torch.nn.Module) -> str | None:
    """The name of the first parameter that is not finite, or None (one wait for the device,
    not one per parameter)."""
    finite = torch.stack([torch.isfinite(p).all() for p in model.parameters()])
    if bool(finite.all()):
        return None
    flags = zip(model.named_parameters(), finite.tolist(), strict=True)
    return next(n for (n, _), ok in flags if not ok)
