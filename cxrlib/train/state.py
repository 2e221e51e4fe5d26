"""What a run carries from step to step and from session to session.

:class:`TrainState` travels in every checkpoint (plain types, ``weights_only``-safe);
:class:`LossMeter` keeps the epoch's loss on the device so that the host does not wait for
the GPU at every step; :class:`Limits` says when a call must pause (a step count, the
session's deadline); :func:`diverging` watches for a loss that rises without becoming NaN.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from cxrlib.train.runtime import Runtime

#: Micro-batches between reads of the loss from the device (progress, non-finite check): the
#: host does not wait for the GPU at every step (the loss is also read at every checkpoint,
#: pause and epoch end).
READ_EVERY = 50
#: Under DDP, optimiser steps between the processes' agreement on the time limit (a
#: collective that makes every process wait for the slowest).
AGREE_EVERY = 20
#: An epoch whose mean training loss exceeds this multiple of the best epoch's is reported as
#: diverging (the loss of a healthy run falls or stays flat after the warm-up).
DIVERGENCE_FACTOR = 2.0


@dataclass(kw_only=True)
class TrainState:
    """Where a run stands; saved in every checkpoint (plain types, ``weights_only`` safe)."""

    epoch: int = 0  #: epochs completed
    batch: int = 0  #: micro-batches consumed in the current epoch (a multiple of GRAD_ACCUM)
    step: int = 0  #: optimiser steps taken
    best_auc: float = -1.0  #: best validation mean AUC so far
    best_epoch: int = 0
    history: list[dict] = field(default_factory=list)  #: one row per finished epoch
    loss_sum: float = 0.0  #: this epoch so far: summed micro-batch losses,
    loss_count: int = 0  #: their number,
    seen: int = 0  #: and the images this process saw
    #: wall seconds spent on the current epoch up to the last checkpoint, over sessions
    #: (training and validation; work lost to a crash after a checkpoint is not counted)
    epoch_seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)  #: e.g. a diverging loss
    #: optimiser steps the fp16 gradient scaler skipped (a gradient overflowed; its scale is
    #: then halved and training goes on, as designed): counted, not hidden
    overflow_steps: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainState:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / max(self.loss_count, 1)


class LossMeter:
    """This epoch's summed loss and its first non-finite micro-batch, kept on the device.

    The running sum continues ``TrainState.loss_sum`` in the same order whenever it is read,
    so an interrupted and resumed epoch sums exactly as an uninterrupted one."""

    def __init__(self, state: TrainState, device: torch.device) -> None:
        self.total = torch.tensor(state.loss_sum, dtype=torch.float64, device=device)
        self.first_bad = torch.tensor(-1, dtype=torch.int64, device=device)
        self.skipped = torch.zeros((), dtype=torch.int64, device=device)

    def scaled_step(self, scaler: torch.amp.GradScaler, optimizer) -> None:
        """The optimiser step through ``scaler``; a step it skips for an overflowed gradient
        (its scale then drops) is counted on the device, read with the loss."""
        before = getattr(scaler, "_scale", None)
        before = before.clone() if isinstance(before, torch.Tensor) else None
        scaler.step(optimizer)
        scaler.update()
        after = getattr(scaler, "_scale", None)
        if before is not None and isinstance(after, torch.Tensor):
            self.skipped += (after < before).to(torch.int64)

    def add(self, loss: torch.Tensor, batch: int) -> None:
        loss = loss.detach()
        self.total += loss.double()
        new_bad = ~torch.isfinite(loss) & (self.first_bad < 0)
        self.first_bad = torch.where(new_bad, batch, self.first_bad)

    def read(self, state: TrainState, runtime: Runtime) -> int | None:
        """Fold the device's sum into ``state``; the first non-finite micro-batch (0-based,
        of any process) or None. One wait for the device."""
        bad = self.first_bad.clone()
        if runtime.distributed:
            dist.all_reduce(bad, op=dist.ReduceOp.MAX)
        values = torch.stack([self.total, bad.double(), self.skipped.double()]).cpu()  # one sync
        state.loss_sum = float(values[0])
        state.overflow_steps += int(values[2])
        self.skipped.zero_()
        return None if values[1] < 0 else int(values[1])


@dataclass
class Limits:
    """When this call should pause (resumably): a step count, or a deadline (unix time: the
    session's, :func:`cxrlib.core.clock.deadline`, shared by every run of a notebook)."""

    max_steps: int | None = None
    deadline: float | None = None

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.time() >= self.deadline

    def reason(self, step: int) -> str | None:
        if self.max_steps is not None and step >= self.max_steps:
            return f"max_steps={self.max_steps}"
        if self.out_of_time():
            return "the session's time limit"
        return None


def agree(flag: bool, runtime: Runtime) -> bool:
    """Under DDP every rank pauses together: the flag of any rank counts for all."""
    if not runtime.distributed:
        return flag
    value = torch.tensor([int(flag)], device=runtime.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


@dataclass
class EpochOutcome:
    """What one call of :meth:`cxrlib.train.loop.Trainer.train_one_epoch` did."""

    paused: str | None  #: why it paused before the epoch's end, or None
    lr: float  #: learning rate of its last step
    images: int  #: images this process trained on
    seconds: float


def diverging(history: list[dict]) -> str | None:
    """A message when the last epoch's mean training loss exceeds ``DIVERGENCE_FACTOR`` times
    the lowest of the epochs before it (a divergence that has not reached NaN), else None."""
    if len(history) < 2:
        return None
    last, best = history[-1]["train_loss"], min(r["train_loss"] for r in history[:-1])
    if last > DIVERGENCE_FACTOR * best:
        return (
            f"training loss is diverging: epoch {history[-1]['epoch']} has mean loss "
            f"{last:.4f}, more than {DIVERGENCE_FACTOR:g}× the best epoch's {best:.4f}; "
            f"consider a lower LR"
        )
    return None
