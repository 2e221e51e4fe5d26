"""Training and evaluation: the papers' recipe, resumable, idempotent and honest.

Recipe (:mod:`cxrlib.recipe`, from the authors' released configs; Wu et al., KBS 2023): AdamW
(lr 1e-3, weight decay 0.05 except on norms, biases, the cls token and label embeddings, betas
(0.5, 0.999) on both datasets, eps 1e-8), a cosine schedule by iteration down to 1 % of the peak
after a linear warm-up from 0.1 % over 6,260 iterations (mmcv semantics: the warm-up scales the
cosine value), 300 epochs, global batch 32, ASL + focal loss on each head averaged over heads,
random horizontal flip, ImageNet normalisation.

The loop reads as named steps (as timm's ``train_one_epoch`` / ``validate``):
:func:`train_one_epoch`, :func:`validate`, :func:`end_epoch` (history, best and last
checkpoint), :func:`evaluate_test`; :func:`train_run` orchestrates them. Its files are those of
:mod:`cxrlib.runs`; device, precision and batched inference are :mod:`cxrlib.runtime`'s.

Resume is identical in every setting: checkpoints and pauses fall on gradient-accumulation
boundaries (a pause asked for mid-group takes effect when the group is complete), and a
checkpoint holds the model, optimiser, scaler, :class:`TrainState` and RNG state; on CPU a
resumed run ends with byte-equal test predictions. A non-finite loss stops the run before the
update; a loss that rises well above its best epoch without becoming NaN is reported in
``train.log`` and ``metrics.json``. Several GPUs: launch ``python -m cxrlib train`` under
``torchrun`` (DistributedDataParallel, one process per GPU; rank 0 evaluates the full splits).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from cxrlib.config import Config
from cxrlib.data.datasets import DatasetDef, get_dataset
from cxrlib.data.loader import CachedImageDataset, make_loader, set_loader_epoch, to_model_input
from cxrlib.data.prepare import PreparedDataset, prepare_dataset
from cxrlib.errors import NonFiniteLossError
from cxrlib.losses import multi_head_loss
from cxrlib.metrics import YOUDEN, bootstrap_auc_ci, evaluate, operating_points
from cxrlib.runs import (
    Predictions,
    RunFolder,
    RunResult,
    build_model,
    run_card,
    settings_record,
)
from cxrlib.runtime import Runtime, fit_grad_accum, predict, setup_runtime
from cxrlib.session import announce_pause
from cxrlib.session import deadline as session_deadline

#: Parameters named like this get no weight decay (besides every 1-D tensor).
NO_DECAY_NAMES = ("cls_token", "label_embed")
#: An epoch whose mean training loss exceeds this multiple of the best epoch's is reported as
#: diverging (the loss of a healthy run falls or stays flat after the warm-up).
DIVERGENCE_FACTOR = 2.0


# --------------------------------------------------------------------------------------------
# Optimiser and schedule
# --------------------------------------------------------------------------------------------
def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: decayed weights, and norms/biases/cls token/label embeddings without decay."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim <= 1 or name.split(".")[-1] in NO_DECAY_NAMES:
            no_decay.append(param)
        else:
            decay.append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, config: Config) -> torch.optim.AdamW:
    """AdamW of the recipe over :func:`parameter_groups`.

    Fused (one kernel for all parameters) where the parameters live on a CPU or a CUDA GPU:
    faster, and it takes the grad scaler's "skip this step" flag on the device, so a step
    with non-finite gradients is skipped without the host waiting for the GPU."""
    t = config.train
    device = next(model.parameters()).device.type
    return torch.optim.AdamW(
        parameter_groups(model, t.weight_decay),
        lr=t.lr,
        betas=(t.beta1, t.beta2),
        eps=t.adam_eps,
        fused=device in ("cpu", "cuda") or None,
    )


def build_scaler(runtime: Runtime) -> torch.amp.GradScaler:
    """The gradient scaler: dynamic loss scaling in fp16; in fp32 and bf16 a fixed scale of 1
    (exact), kept for its on-device check that skips a step whose gradients are not finite."""
    if runtime.precision == "fp16":
        return torch.amp.GradScaler(runtime.device.type)
    return torch.amp.GradScaler(
        runtime.device.type, init_scale=1.0, growth_factor=2.0, growth_interval=2**31 - 1
    )


def learning_rate(
    step: int,
    total_steps: int,
    base_lr: float,
    warmup_steps: int,
    warmup_ratio: float,
    min_lr_ratio: float,
) -> float:
    """mmcv CosineAnnealing (by iteration, to ``min_lr_ratio``·base) with linear warm-up.

    The warm-up multiplies the cosine value by ``1 - (1 - step/warmup)(1 - warmup_ratio)``, so
    the first step runs at ``warmup_ratio`` of the scheduled rate.
    """
    target = base_lr * min_lr_ratio
    progress = min(step / max(total_steps, 1), 1.0)
    lr = target + (base_lr - target) * (1 + math.cos(math.pi * progress)) / 2
    if step < warmup_steps:
        lr *= 1 - (1 - step / warmup_steps) * (1 - warmup_ratio)
    return lr


def training_loss(output, target: torch.Tensor, where: str) -> torch.Tensor:
    """The papers' loss (ASL + focal) on the heads that ``LOSS_HEADS`` names."""
    heads = {
        "each": output.heads(),
        "fused": [output.logits],
        "each+fused": [*output.heads(), output.logits],
    }[where]
    return multi_head_loss([h.float() for h in heads], target)


# --------------------------------------------------------------------------------------------
# State of a run
# --------------------------------------------------------------------------------------------
@dataclass
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

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainState:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


#: Micro-batches between reads of the loss from the device (progress bar, non-finite check):
#: the host does not wait for the GPU at every step (the loss is also read at every
#: checkpoint, pause and epoch end).
READ_EVERY = 50
#: Under DDP, optimiser steps between the processes' agreement on the time limit (a
#: collective that makes every process wait for the slowest).
AGREE_EVERY = 20


class LossMeter:
    """This epoch's summed loss and its first non-finite micro-batch, kept on the device.

    The running sum continues ``TrainState.loss_sum`` in the same order whenever it is read,
    so an interrupted and resumed epoch sums exactly as an uninterrupted one."""

    def __init__(self, state: TrainState, device: torch.device) -> None:
        self.total = torch.tensor(state.loss_sum, dtype=torch.float64, device=device)
        self.first_bad = torch.tensor(-1, dtype=torch.int64, device=device)

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
        values = torch.stack([self.total, bad.double()]).cpu()  # the one sync
        state.loss_sum = float(values[0])
        return None if values[1] < 0 else int(values[1])


class CheckpointWriter:
    """Writes checkpoints in a background thread, one at a time and in order.

    The caller hands over a copy on the CPU (:func:`cpu_copy`), so training continues while
    the file is written; :meth:`wait` returns once everything handed over is on disk and
    re-raises what went wrong there (a full disk, say)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")
        self._pending: list[Future] = []

    def submit(self, write, *args) -> None:
        self._pending.append(self._pool.submit(write, *args))

    def wait(self) -> None:
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)


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


@dataclass
class Session:
    """Everything one process needs to train a run (built by :func:`start_session`)."""

    config: Config
    run: RunFolder
    data: PreparedDataset
    runtime: Runtime
    model: nn.Module  #: the plain module (checkpoints, evaluation)
    trainable: nn.Module  #: what the loop calls: DDP-wrapped and/or compiled ``model``
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    loader: DataLoader
    state: TrainState
    settings: dict
    tensorboard: object | None = None
    ddp: nn.parallel.DistributedDataParallel | None = None  #: for ``no_sync``
    writer: CheckpointWriter = field(default_factory=CheckpointWriter)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.loader) / self.runtime.grad_accum)

    def lr(self, step: int) -> float:
        t = self.config.train
        return learning_rate(
            step,
            self.steps_per_epoch * t.epochs,
            t.lr,
            t.warmup_iters,
            t.warmup_ratio,
            t.min_lr_ratio,
        )


def _check_finite(model: nn.Module, run: RunFolder) -> None:
    finite = torch.stack([torch.isfinite(p).all() for p in model.parameters()])
    if bool(finite.all()):  # one wait for the device, not one per parameter
        return
    flags = zip(model.named_parameters(), finite.tolist(), strict=True)
    name = next(n for (n, _), ok in flags if not ok)
    raise NonFiniteLossError(f"parameter {name} is not finite; not saving. {_last_good(run)}")


def _last_good(run: RunFolder) -> str:
    for path in (run.last, run.previous):
        if path.is_file():
            return f"The last good checkpoint is {path}; running again resumes from it"
    return "No checkpoint was written yet: running again starts the run from the beginning"


def save_checkpoint(session: Session) -> None:
    """``last.pt`` of the session (rank 0): model, optimiser, scaler, state, RNG, settings.

    The tensors are copied to the CPU here; the file is written in the background
    (:class:`CheckpointWriter`: one thread, so files are written in the order handed over)."""
    if not session.runtime.is_main:
        return
    _check_finite(session.model, session.run)
    checkpoint = {
        "model": session.model.state_dict(),
        "optimizer": session.optimizer.state_dict(),
        "scaler": session.scaler.state_dict(),
        "state": session.state.to_dict(),
        "settings": session.settings,
        "rng_cpu": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        checkpoint["rng_cuda"] = torch.cuda.get_rng_state()
    session.writer.submit(session.run.save_checkpoint, cpu_copy(checkpoint))


def _restore(session: Session, checkpoint: dict) -> None:
    session.model.load_state_dict(checkpoint["model"])
    session.optimizer.load_state_dict(checkpoint["optimizer"])
    if checkpoint["scaler"]:  # empty from versions whose fp32/bf16 runs had no scaler
        session.scaler.load_state_dict(checkpoint["scaler"])
    session.state = TrainState.from_dict(checkpoint["state"])
    torch.set_rng_state(checkpoint["rng_cpu"])
    if torch.cuda.is_available() and "rng_cuda" in checkpoint:
        torch.cuda.set_rng_state(checkpoint["rng_cuda"])


# --------------------------------------------------------------------------------------------
# The steps
# --------------------------------------------------------------------------------------------
@dataclass
class Limits:
    """When this call should pause (resumably): a step count, or a deadline (unix time: the
    session's, :func:`cxrlib.session.deadline`, shared by every run of a notebook)."""

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


def _agree(flag: bool, runtime: Runtime) -> bool:
    """Under DDP every rank pauses together: the flag of any rank counts for all."""
    if not runtime.distributed:
        return flag
    value = torch.tensor([int(flag)], device=runtime.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


@dataclass
class EpochOutcome:
    """What one call of :func:`train_one_epoch` did."""

    paused: str | None  #: why it paused before the epoch's end, or None
    lr: float  #: learning rate of its last step
    images: int  #: images this process trained on
    seconds: float


def _stop_non_finite(session: Session, batch: int) -> None:
    state = session.state
    session.run.log(f"stopped: non-finite loss at epoch {state.epoch + 1}, batch {batch + 1}")
    raise NonFiniteLossError(
        f"loss is not finite at epoch {state.epoch + 1}, batch {batch + 1} of "
        f"{session.run.path}; its update was skipped and the run stopped. "
        f"{_last_good(session.run)}. Try a lower LR or PRECISION=fp32, or check the data; "
        f"--restart starts the run over."
    )


def train_one_epoch(session: Session, limits: Limits, progress: bool = True) -> EpochOutcome:
    """Train the rest of the current epoch (or until ``limits`` pause it).

    Gradients are accumulated over ``GRAD_ACCUM`` micro-batches; pauses and mid-epoch
    checkpoints happen only once a group is complete, so no accumulated gradient is lost.
    The host does not wait for the device at each step: the loss stays there
    (:class:`LossMeter`) and is read every :data:`READ_EVERY` micro-batches and before any
    checkpoint; a step whose gradients are not finite is skipped on the device (the grad
    scaler's flag, taken by the fused optimiser), and the run then stops at the next read.
    """
    state, runtime, t = session.state, session.runtime, session.config.train
    accum, total = runtime.grad_accum, len(session.loader)
    set_loader_epoch(session.loader, state.epoch, skip_batches=state.batch)
    session.trainable.train()
    bar = tqdm(
        total=total,
        initial=state.batch,
        desc=f"{session.run.label} epoch {state.epoch + 1}/{t.epochs}",
        disable=not (progress and runtime.is_main),
        mininterval=2.0,
        leave=True,
    )
    start, seen_before, last_save = time.monotonic(), state.seen, time.monotonic()
    clock = start
    lr = session.lr(state.step)
    meter = LossMeter(state, runtime.device)

    def account() -> None:  # the epoch's time so far goes into the state (and checkpoint)
        nonlocal clock
        now = time.monotonic()
        state.epoch_seconds += now - clock
        clock = now

    def read_loss() -> None:
        bad = meter.read(state, runtime)
        if bad is not None:
            _stop_non_finite(session, bad)
        rate = (state.seen - seen_before) / max(time.monotonic() - start, 1e-9)
        mean = state.loss_sum / max(state.loss_count, 1)
        bar.set_postfix(loss=f"{mean:.4f}", lr=f"{lr:.2e}", img_s=f"{rate:.1f}", refresh=False)

    def outcome(paused: str | None) -> EpochOutcome:
        return EpochOutcome(paused, lr, state.seen - seen_before, time.monotonic() - start)

    try:
        for x, y in session.loader:
            lr = session.lr(state.step)
            for group in session.optimizer.param_groups:
                group["lr"] = lr
            x = to_model_input(x, runtime.device, runtime.channels_last)
            y = y.to(runtime.device, non_blocking=True)
            ends_group = (state.batch + 1) % accum == 0 or state.batch + 1 == total
            sync = nullcontext()
            if session.ddp is not None and not ends_group:
                sync = session.ddp.no_sync()  # all-reduce once per optimiser step
            with sync:
                with runtime.autocast():
                    output = session.trainable(x)
                loss = training_loss(output, y, t.loss_heads)
                meter.add(loss, state.batch)
                session.scaler.scale(loss / accum).backward()
            state.batch += 1
            state.seen += len(x)
            state.loss_count += 1
            if ends_group:
                # fused AdamW skips the step on the device if a gradient is not finite
                session.scaler.step(session.optimizer)
                session.scaler.update()
                session.optimizer.zero_grad(set_to_none=True)
                state.step += 1
            bar.update(1)
            if state.batch % READ_EVERY == 0:
                read_loss()
            if not ends_group:
                continue
            reason = limits.reason(state.step)
            # every process computes the same step count: only the clock needs agreement
            agree_now = not runtime.distributed or state.step % AGREE_EVERY == 0
            at_max = reason is not None and reason.startswith("max_steps")
            if (at_max or agree_now) and _agree(reason is not None, runtime):
                read_loss()
                account()
                save_checkpoint(session)
                return outcome(reason or "another process reached its limit")
            due = time.monotonic() - last_save > t.checkpoint_minutes * 60
            if due and state.batch < total:
                read_loss()
                account()
                save_checkpoint(session)
                last_save = time.monotonic()
        read_loss()
        account()
    finally:
        bar.close()
    return outcome(None)


def validate(session: Session) -> dict:
    """Metrics of the current model on the validation part (rank 0)."""
    data = session.data
    scores = predict(session.model, data.cache.pixels, data.cache_rows("val"), session.runtime)
    return evaluate(data.labels("val"), scores)


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


def end_epoch(session: Session, epoch: EpochOutcome) -> None:
    """Validate, record the epoch, keep the best and the last checkpoint (rank 0)."""
    state, runtime = session.state, session.runtime
    row = {
        "epoch": state.epoch + 1,
        "train_loss": state.loss_sum / max(state.loss_count, 1),
        "lr": epoch.lr,
        # of this session's part of the epoch (a resumed epoch counts from the resume)
        "images_per_s": epoch.images * runtime.world_size / max(epoch.seconds, 1e-9),
    }
    state.loss_sum, state.loss_count, state.seen = 0.0, 0, 0
    state.epoch, state.batch = state.epoch + 1, 0
    spent, state.epoch_seconds = state.epoch_seconds, 0.0
    if runtime.is_main:
        started = time.monotonic()
        val = validate(session)
        row |= {"val_mean_auc": val["mean_auc"], "val_mAP": val["mAP"], "val_OF1": val["OF1"]}
        # the epoch's wall time over its sessions, and the devices that spent it (cost)
        row["seconds"] = spent + time.monotonic() - started
        row["devices"] = runtime.world_size
        state.history.append(row)
        if val["mean_auc"] > state.best_auc:
            state.best_auc, state.best_epoch = val["mean_auc"], row["epoch"]
            best = cpu_copy(session.model.state_dict())
            card = run_card(session.config, session.settings, list(session.data.classes))
            card["val"], card["epoch"] = val, row["epoch"]
            session.writer.submit(
                session.run.save_best, best, row["epoch"], val, session.settings, card
            )
        warning = diverging(state.history)
        if warning:
            state.warnings.append(warning)
            session.run.log(warning, logging.WARNING)
        save_checkpoint(session)
        session.run.write_history(state.history)
        session.run.log(
            "epoch {epoch}: loss {train_loss:.4f}, lr {lr:.2e}, val mean AUC "
            "{val_mean_auc:.2f}, {images_per_s:.1f} img/s".format(**row)
        )
        if session.tensorboard is not None:
            for key, value in row.items():
                if key != "epoch":
                    session.tensorboard.add_scalar(key, value, row["epoch"])
            session.tensorboard.flush()
    if runtime.distributed:
        dist.barrier()


def evaluate_test(session: Session) -> RunResult:
    """Evaluate the best checkpoint on the test part; write predictions, then metrics.json."""
    config, data, run = session.config, session.data, session.run
    model = build_model(config, len(data.classes), initialise=False)
    best = run.load_best()
    model.load_state_dict(best["model"])
    model.to(session.runtime.device)
    test = data.part("test")
    scores = predict(model, data.cache.pixels, test["cache_row"].to_numpy(), session.runtime)
    labels = test[list(data.classes)].to_numpy()
    val_scores = predict(model, data.cache.pixels, data.cache_rows("val"), session.runtime)
    thresholds = operating_points(data.labels("val"), val_scores)
    run.write_predictions(
        Predictions(test["image_id"].tolist(), list(data.classes), labels, scores)
    )
    metrics = {
        "dataset": data.dataset,
        "classes": list(data.classes),
        "model": config.model.model,
        "split": config.data.split,
        "data_source": data.source,  # resolved: phantom or real
        "data": session.settings["data"],
        "runtime": session.settings["runtime"],
        "epochs_run": session.state.epoch,
        "steps": session.state.step,
        "dropped_missing": data.dropped_missing,
        "best_epoch": best["epoch"],
        "warnings": session.state.warnings,
        "val": best["val"],
        "test": evaluate(labels, scores),
        "test_ci": bootstrap_auc_ci(labels, scores, resamples=1000, seed=config.train.seed),
        "operating_points": {
            "method": YOUDEN,
            "thresholds": dict(zip(data.classes, thresholds, strict=True)),
        },
    }
    run.complete_best_card(
        {k: metrics[k] for k in ("test", "test_ci", "operating_points", "epochs_run")}
    )
    run.write_metrics(metrics)
    run.drop_resume_checkpoints()
    run.log(
        f"finished: best epoch {best['epoch']}, test mean AUC "
        f"{metrics['test']['mean_auc']:.2f} [{metrics['test_ci']['mean_low']:.2f}, "
        f"{metrics['test_ci']['mean_high']:.2f}]"
    )
    return run.result()


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------
def memory_probe(model: nn.Module, config: Config, runtime: Runtime, classes: int):
    """``step(micro_batch) -> peak bytes`` of one training step of a copy of ``model`` on
    zeros (the run's weights and batch-norm statistics stay untouched), plus AdamW's two
    moment buffers, for :func:`cxrlib.runtime.fit_grad_accum`."""
    import copy

    size = config.data.image_size
    optimizer_bytes = 2 * sum(p.numel() * 4 for p in model.parameters())

    def step(micro: int) -> int:
        probe = copy.deepcopy(model).train()
        torch.cuda.reset_peak_memory_stats(runtime.device)
        memory = torch.channels_last if runtime.channels_last else torch.contiguous_format
        x = torch.zeros(micro, 3, size, size, device=runtime.device).contiguous(
            memory_format=memory
        )
        y = torch.zeros(micro, classes, device=runtime.device)
        try:
            with runtime.autocast():
                output = probe(x)
            training_loss(output, y, config.train.loss_heads).backward()
            return torch.cuda.max_memory_allocated(runtime.device) + optimizer_bytes
        finally:
            del probe, x, y

    return step


def _tensorboard_writer(run: RunFolder):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard not installed: the CSV and the log still have it all
        return None
    return SummaryWriter(str(run.tensorboard_dir))


def _init_message(model: nn.Module, pretrained: str) -> str:
    """The log line of an initialisation from ImageNet: what loaded, what stays random."""
    report = getattr(model, "pretrained_report", None)
    if report is None:  # a timm baseline: timm loaded all but the classifier
        return f"initialised from {pretrained} (timm's weights; the classifier is new)"
    random = report["random"]
    return (
        f"initialised from {pretrained}: {len(report['loaded'])} tensors of the public "
        f"Conformer-Ti loaded, {len(random)} random ({', '.join(random[:6])}"
        f"{', …' if len(random) > 6 else ''})"
    )


def start_session(
    config: Config, dataset: DatasetDef, run: RunFolder, saved: dict | None, progress: bool
) -> Session:
    """Data, runtime, model, optimiser and loader of a run; resumed from ``last.pt`` if any.

    ``saved`` is the run's record (:meth:`RunFolder.read_settings`), None for a new run."""
    runtime = setup_runtime(config)
    if runtime.distributed and not runtime.is_main:
        dist.barrier()  # rank 0 generates/caches the data first; the others then reuse it
    data = prepare_dataset(config, dataset, progress=progress and runtime.is_main)
    if runtime.distributed and runtime.is_main:
        dist.barrier()
    torch.manual_seed(config.train.seed)
    checkpoint = run.load_checkpoint()
    resuming = checkpoint is not None and "state" in checkpoint
    # a resumed run's weights come from its checkpoint: no ImageNet weights are read then;
    # under DDP only rank 0 reads them (DDP copies rank 0's weights to the others at the start)
    model = build_model(config, len(data.classes), initialise=runtime.is_main and not resuming)
    memory = torch.channels_last if runtime.channels_last else torch.contiguous_format
    model.to(runtime.device, memory_format=memory)
    if config.train.grad_accum is None and runtime.device.type == "cuda":
        # a resumed run keeps its micro-batch (batch norm sees it), if this GPU holds it
        only = ((saved or {}).get("runtime") or {}).get("grad_accum")
        probe = memory_probe(model, config, runtime, len(data.classes))
        runtime = fit_grad_accum(runtime, probe, only=only)
    settings = settings_record(config, data.identity(), runtime.record())
    if saved is not None:
        run.check_data(saved, settings["data"], settings["runtime"])
    optimizer = build_optimizer(model, config)
    scaler = build_scaler(runtime)
    loader = make_loader(
        CachedImageDataset(
            data.cache.pixels,
            data.cache_rows("train"),
            data.labels("train"),
            flip=True,
            seed=config.train.seed,
        ),
        runtime.micro_batch,
        shuffle=True,
        num_workers=runtime.num_workers,
        seed=config.train.seed,
        rank=runtime.rank,
        world_size=runtime.world_size,
    )
    session = Session(
        config, run, data, runtime, model, model, optimizer, scaler, loader, TrainState(), settings
    )
    if resuming:
        _restore(session, checkpoint)
        run.log(f"resumed at epoch {session.state.epoch + 1}, step {session.state.step}")
    elif runtime.is_main:
        run.write_settings(settings)
        run.log(
            f"started: {config.model.model} on {dataset.name} ({data.source} data, "
            f"{config.data.split} split), {runtime.record()}"
        )
        if config.model.pretrained != "none":
            run.log(_init_message(model, config.model.pretrained))
    if runtime.distributed:
        ids = [runtime.device.index] if runtime.device.type == "cuda" else None
        session.ddp = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        session.trainable = session.ddp
    if config.train.compile:  # DDP inside the compiled module: its buckets split the graph
        session.trainable = torch.compile(session.trainable)
    if runtime.is_main:
        session.tensorboard = _tensorboard_writer(run)
    return session


def train_run(
    config: Config,
    dataset: str,
    *,
    restart: bool = False,
    max_steps: int | None = None,
    time_limit_minutes: float | None = None,
    progress: bool = True,
) -> RunResult:
    """Train ``config.model.model`` on ``dataset`` (a registered name or
    ``csv:/path/to/labels.csv``); resume or read back as the run folder says.

    ``max_steps`` / ``time_limit_minutes`` (and the session's deadline, :mod:`cxrlib.session`)
    pause this call (a checkpoint is written at the next accumulation boundary) so that a
    later call resumes -- for sessions with a time limit (Colab, Kaggle); past the deadline a
    run is not started. Returns the run's folder, whether it finished, its metrics and history.
    """
    definition = get_dataset(dataset)  # a name, or csv:/path/to/labels.csv
    run = RunFolder.of(config, definition.name)
    limits = Limits(max_steps, session_deadline(time_limit_minutes))
    is_main = int(os.environ.get("RANK", "0")) == 0
    with run.lock() if is_main else nullcontext():
        if restart and is_main:
            run.discard()
        saved = run.read_settings()
        if saved is not None:
            run.check_config(config, saved)  # before any data work
        if run.finished or limits.out_of_time():  # out of time: not even started
            return run.result()
        session = start_session(config, definition, run, saved, progress)
        reason = None
        try:
            while session.state.epoch < config.train.epochs:
                epoch = train_one_epoch(session, limits, progress)
                reason = epoch.paused
                if reason is not None:
                    break
                end_epoch(session, epoch)
        finally:
            session.writer.close()  # every checkpoint handed over is on disk (or its error)
            if session.tensorboard is not None:
                session.tensorboard.close()
        if reason is not None:
            if session.runtime.is_main:
                run.log(f"paused at step {session.state.step} ({reason}); run again to resume")
        elif session.runtime.is_main:
            evaluate_test(session)
        if session.runtime.distributed:
            dist.barrier()  # every rank returns once the run's files are complete
        return run.result()


def train_models(
    config: Config,
    dataset: str,
    names: list[str],
    *,
    overrides: dict | None = None,
    **kwargs,
) -> dict[str, RunResult]:
    """:func:`train_run` for each registered model in ``names`` (finished runs are read back),
    with ``overrides`` of the configuration (e.g. ``{"pretrained": "imagenet"}``). A model of
    ``SEED_MODELS`` (:func:`cxrlib.papers.seeded_models`) trains ``SEEDS`` times (seeds SEED,
    SEED+1, ...): the first seed's run is returned, the others in its ``seed_runs``.

    When the session's time limit paused or held back a run, says so
    (:func:`cxrlib.session.announce_pause`): in a notebook the later cells then only print
    "paused -- run again to resume", and the next run of the notebook resumes.
    """
    from cxrlib.papers import seeded_models

    bases = {name: config.override(model=name, **(overrides or {})) for name in names}
    runs = {name: train_run(base, dataset, **kwargs) for name, base in bases.items()}
    # every model's first seed before any second one: a session that ends early has them all
    for name in seeded_models(config.train.seed_models):
        if name in runs:
            base = bases[name]
            runs[name].seed_runs = [
                train_run(base.override(seed=base.train.seed + i), dataset, **kwargs)
                for i in range(1, base.train.seeds)
            ]
    waiting = {name: run for name, run in runs.items() if not all(r.finished for r in run.seeds)}
    if waiting:
        announce_pause(
            f"{len(waiting)} of {len(runs)} {get_dataset(dataset).name} run(s) unfinished: "
            + ", ".join(f"{name} ({_progress(run)})" for name, run in waiting.items())
        )
    return runs


def _progress(run: RunResult) -> str:
    parts = []
    for seed_run in run.seeds:
        epochs = seed_run.settings["config"]["epochs"] if seed_run.settings else None
        done = len(seed_run.history)
        parts.append(f"{done}/{epochs} epochs" if epochs else "not started")
    return ", ".join(parts) if len(parts) == 1 else "seeds: " + ", ".join(parts)


def imagenet_models(config: Config, requested: list[str] | None, scratch: list[str]) -> list[str]:
    """The models notebook 06 trains again from ImageNet weights (a comparison neither paper
    makes): ``requested``, or by default those of :data:`cxrlib.papers.IMAGENET_MODELS` among
    ``scratch`` (the models trained from scratch beside them) -- none where the models have no
    ImageNet weights (the smoke profile's micro size; said in a message). A requested model
    must be among ``scratch`` and have ImageNet weights (else :class:`ConfigError`)."""
    from cxrlib.papers import IMAGENET_MODELS

    if requested is None and config.model.model_size != "paper":
        print(
            f"ImageNet initialisation skipped: MODEL_SIZE {config.model.model_size!r} has no "
            f"ImageNet weights (the paper profile trains {', '.join(IMAGENET_MODELS)} from them)"
        )
        return []
    if requested is None:  # the default: those of the models trained here
        return [n for n in IMAGENET_MODELS if n in scratch]
    names = list(requested)
    if names:
        config.override(pretrained="imagenet")  # validated: raises for micro models
    missing = [n for n in names if n not in scratch]
    if missing:
        from cxrlib.config import ConfigError

        raise ConfigError(
            f"IMAGENET_MODELS {missing} are not among MODELS: the comparison needs their "
            f"runs from scratch; add them to MODELS (or set MODELS = None)"
        )
    return names
