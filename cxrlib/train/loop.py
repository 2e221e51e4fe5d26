"""The training loop as named steps, as timm's ``train_one_epoch``/``validate`` read:
:meth:`Trainer.train_one_epoch`, :meth:`Trainer.validate`, :meth:`Trainer.end_epoch` (history,
best and last checkpoint) and :meth:`Trainer.evaluate_test`. :func:`cxrlib.train.run.train_run`
builds a :class:`Trainer` and drives it.

Resume is identical in every setting: checkpoints and pauses fall on gradient-accumulation
boundaries (a pause asked for mid-group takes effect when the group is complete), and a
checkpoint holds the model, optimiser, scaler, :class:`~cxrlib.train.state.TrainState` and RNG
state; on a CPU a resumed run ends with byte-equal test predictions. A non-finite loss stops
the run before the update; a loss that rises well above its best epoch without becoming NaN is
reported in ``train.log`` and ``metrics.json``.

Progress is one line per run that updates in place (epoch, loss, validation AUC, time left);
the per-epoch history goes to ``train.log``, ``epochs.csv`` and TensorBoard, and
``python -m cxrlib status --runs-dir RUNS_DIR`` prints every run's progress after a reconnect.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader

from cxrlib.core.config import Config
from cxrlib.core.errors import NonFiniteLossError
from cxrlib.data.loader import set_loader_epoch, to_model_input
from cxrlib.data.prepare import PreparedDataset
from cxrlib.evaluate.metrics import evaluate
from cxrlib.train.checkpoints import CheckpointSaver, check_finite
from cxrlib.train.layout import RunFolder, restart_hint
from cxrlib.train.losses import training_loss
from cxrlib.train.model import run_card
from cxrlib.train.results import write_history
from cxrlib.train.runtime import Runtime, predict
from cxrlib.train.state import (
    AGREE_EVERY,
    READ_EVERY,
    EpochOutcome,
    Limits,
    LossMeter,
    TrainState,
    agree,
    diverging,
)


@dataclass(kw_only=True)
class Trainer:
    """Everything one process needs to train a run (built by :func:`cxrlib.train.run.start`)."""

    config: Config
    run: RunFolder
    saver: CheckpointSaver
    data: PreparedDataset
    runtime: Runtime
    model: nn.Module  #: the plain module (checkpoints, evaluation)
    trainable: nn.Module  #: what the loop calls: DDP-wrapped and/or compiled ``model``
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    loader: DataLoader
    lr_at: Callable[[int], float]  #: the schedule: optimiser step -> learning rate
    state: TrainState
    settings: dict
    progress: object  #: the run's one progress line (:class:`cxrlib.train.run.ProgressLine`)
    tensorboard: object | None = None
    ddp: nn.parallel.DistributedDataParallel | None = None  #: for ``no_sync``

    # --- one epoch ---------------------------------------------------------------------------
    def train_one_epoch(self, limits: Limits) -> EpochOutcome:
        """Train the rest of the current epoch (or until ``limits`` pause it).

        Gradients are accumulated over ``GRAD_ACCUM`` micro-batches; pauses and mid-epoch
        checkpoints happen only once a group is complete, so no accumulated gradient is lost.
        The host does not wait for the device at each step: the loss stays there
        (:class:`~cxrlib.train.state.LossMeter`) and is read every ``READ_EVERY`` micro-batches
        and before any checkpoint; a step whose gradients are not finite is skipped on the
        device (the grad scaler's flag, taken by the fused optimiser), and the run then stops
        at the next read.
        """
        state, accum, total = self.state, self.runtime.grad_accum, len(self.loader)
        set_loader_epoch(self.loader, state.epoch, skip_batches=state.batch)
        self.trainable.train()
        meter = LossMeter(state, self.runtime.device)
        clock = _EpochClock(state)
        lr = self.lr_at(state.step)
        for x, y in self.loader:
            lr = self.lr_at(state.step)
            ends_group = (state.batch + 1) % accum == 0 or state.batch + 1 == total
            self._forward_backward(x, y, meter, lr, ends_group)
            if state.batch % READ_EVERY == 0:
                self._read_loss(meter, clock)
            if not ends_group:
                continue
            paused = self._pause_or_checkpoint(limits, meter, clock, total)
            if paused is not None:
                return clock.outcome(paused, lr)
        self._read_loss(meter, clock)
        clock.account()
        return clock.outcome(None, lr)

    def _forward_backward(self, x, y, meter: LossMeter, lr: float, ends_group: bool) -> None:
        """One micro-batch forward and backward; at the end of a group, the optimiser step."""
        state, runtime = self.state, self.runtime
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x = to_model_input(x, runtime.device, runtime.channels_last)
        y = y.to(runtime.device, non_blocking=True)
        sync = nullcontext()
        if self.ddp is not None and not ends_group:
            sync = self.ddp.no_sync()  # all-reduce once per optimiser step
        with sync:
            with runtime.autocast():
                output = self.trainable(x)
            loss = training_loss(output, y, self.config.train.loss_heads)
            meter.add(loss, state.batch)
            self.scaler.scale(loss / runtime.grad_accum).backward()
        state.batch += 1
        state.seen += len(x)
        state.loss_count += 1
        if ends_group:  # fused AdamW skips the step on the device if a gradient is not finite
            meter.scaled_step(self.scaler, self.optimizer)
            self.optimizer.zero_grad(set_to_none=True)
            state.step += 1
        self.progress.advance(1)

    def _pause_or_checkpoint(
        self, limits: Limits, meter: LossMeter, clock: _EpochClock, total: int
    ) -> str | None:
        """At a group's end: pause (with a checkpoint) when a limit says so -- every process
        together -- or write the mid-epoch checkpoint that is due."""
        state, runtime = self.state, self.runtime
        reason = limits.reason(state.step)
        # every process computes the same step count: only the clock needs agreement
        agree_now = not runtime.distributed or state.step % AGREE_EVERY == 0
        at_max = reason is not None and reason.startswith("max_steps")
        if (at_max or agree_now) and agree(reason is not None, runtime):
            self._read_loss(meter, clock)
            clock.account()
            self.checkpoint()
            return reason or "another process reached its limit"
        if clock.checkpoint_due(self.config.train.checkpoint_minutes) and state.batch < total:
            self._read_loss(meter, clock)
            clock.account()
            self.checkpoint()
            clock.saved()
        return None

    def _read_loss(self, meter: LossMeter, clock: _EpochClock) -> None:
        bad = meter.read(self.state, self.runtime)
        if bad is not None:
            self._stop_non_finite(bad)
        self.progress.show(self.state, rate=clock.rate())

    def _stop_non_finite(self, batch: int) -> None:
        state = self.state
        self.run.log(f"stopped: non-finite loss at epoch {state.epoch + 1}, batch {batch + 1}")
        raise NonFiniteLossError(
            f"loss is not finite at epoch {state.epoch + 1}, batch {batch + 1} of "
            f"{self.run.path}; its update was skipped and the run stopped. "
            f"{self.saver.last_good()}. Try a lower LR or PRECISION=fp32, or check the data; "
            f"Starting the run over: {restart_hint(self.run.path)}."
        )

    # --- the epoch's end ---------------------------------------------------------------------
    def validate(self, model: nn.Module | None = None, part: str = "val") -> dict:
        """Metrics of ``model`` (default: the run's) on a part of the split (rank 0)."""
        data = self.data
        scores = predict(
            model or self.model, data.cache.pixels, data.cache_rows(part), self.runtime
        )
        return evaluate(data.labels(part), scores)

    def end_epoch(self, epoch: EpochOutcome) -> None:
        """Validate, record the epoch, keep the best and the last checkpoint (rank 0)."""
        state, runtime = self.state, self.runtime
        row = {
            "epoch": state.epoch + 1,
            "train_loss": state.mean_loss,
            "lr": epoch.lr,
            # of this session's part of the epoch (a resumed epoch counts from the resume)
            "images_per_s": epoch.images * runtime.world_size / max(epoch.seconds, 1e-9),
        }
        state.loss_sum, state.loss_count, state.seen = 0.0, 0, 0
        state.epoch, state.batch = state.epoch + 1, 0
        spent, state.epoch_seconds = state.epoch_seconds, 0.0
        if runtime.is_main:
            started = time.monotonic()
            val = self.validate()
            row |= {"val_mean_auc": val["mean_auc"], "val_mAP": val["mAP"], "val_OF1": val["OF1"]}
            # the epoch's wall time over its sessions, and the devices that spent it (cost)
            row["seconds"] = spent + time.monotonic() - started
            row["devices"] = runtime.world_size
            state.history.append(row)
            self._keep_best(val, row["epoch"])
            warning = diverging(state.history)
            if warning:
                state.warnings.append(warning)
                self.run.log(warning, logging.WARNING)
            self.checkpoint()
            self._record_epoch(row)
        if runtime.distributed:
            torch.distributed.barrier()

    def _keep_best(self, val: dict, epoch: int) -> None:
        if val["mean_auc"] <= self.state.best_auc:
            return
        self.state.best_auc, self.state.best_epoch = val["mean_auc"], epoch
        card = run_card(self.config, self.settings, list(self.data.classes))
        card["val"], card["epoch"] = val, epoch
        self.saver.save_best(self.model.state_dict(), epoch, val, self.settings, card)

    def _record_epoch(self, row: dict) -> None:
        """The epoch in ``epochs.csv``, ``train.log`` (not the console: the progress line shows
        it) and TensorBoard."""
        write_history(self.run, self.state.history)
        self.run.log(
            "epoch {epoch}: loss {train_loss:.4f}, lr {lr:.2e}, val mean AUC "
            "{val_mean_auc:.2f}, {images_per_s:.1f} img/s".format(**row),
            echo=False,
        )
        self.progress.epoch_done(row)
        if self.tensorboard is not None:
            for key, value in row.items():
                if key != "epoch":
                    self.tensorboard.add_scalar(key, value, row["epoch"])
            self.tensorboard.flush()

    # --- checkpoints -------------------------------------------------------------------------
    def checkpoint(self) -> None:
        """Hand ``last.pt`` to the saver (rank 0): model, optimiser, scaler, state, RNG, record.
        The tensors are copied to the CPU here; the file is written in the background."""
        if not self.runtime.is_main:
            return
        bad = check_finite(self.model)
        if bad is not None:
            raise NonFiniteLossError(
                f"parameter {bad} is not finite; not saving. {self.saver.last_good()}"
            )
        checkpoint = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "state": self.state.to_dict(),
            "settings": self.settings,
            "rng_cpu": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            checkpoint["rng_cuda"] = torch.cuda.get_rng_state()
        self.saver.save_last(checkpoint)

    def restore(self, checkpoint: dict) -> None:
        """Continue from a resume checkpoint (:meth:`checkpoint`'s)."""
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        if checkpoint["scaler"]:  # empty from versions whose fp32/bf16 runs had no scaler
            self.scaler.load_state_dict(checkpoint["scaler"])
        self.state = TrainState.from_dict(checkpoint["state"])
        torch.set_rng_state(checkpoint["rng_cpu"])
        if torch.cuda.is_available() and "rng_cuda" in checkpoint:
            torch.cuda.set_rng_state(checkpoint["rng_cuda"])


class _EpochClock:
    """The time of one call of :meth:`Trainer.train_one_epoch`: images per second, when a
    checkpoint is due, and the epoch's seconds carried in the state over sessions."""

    def __init__(self, state: TrainState) -> None:
        self.state = state
        self.start = self.last = self.last_save = time.monotonic()
        self.seen_before = state.seen

    def account(self) -> None:
        """The time so far goes into the state (and so into the next checkpoint)."""
        now = time.monotonic()
        self.state.epoch_seconds += now - self.last
        self.last = now

    def rate(self) -> float:
        return (self.state.seen - self.seen_before) / max(time.monotonic() - self.start, 1e-9)

    def checkpoint_due(self, minutes: float) -> bool:
        return time.monotonic() - self.last_save > minutes * 60

    def saved(self) -> None:
        self.last_save = time.monotonic()

    def outcome(self, paused: str | None, lr: float) -> EpochOutcome:
        seen = self.state.seen - self.seen_before
        return EpochOutcome(paused, lr, seen, time.monotonic() - self.start)
