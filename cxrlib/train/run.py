"""One training run from start to metrics: :func:`train_run` (resume, read back, or train).

A run's folder says what to do: finished (``metrics.json``) -- read it back; a checkpoint --
resume it (with the same settings and data, else refused); nothing -- start it. ``max_steps``
and the session's deadline (:mod:`cxrlib.core.clock`) pause a run resumably. Several GPUs:
launch ``python -m cxrlib train`` under ``torchrun`` (DistributedDataParallel, one process per
GPU; rank 0 evaluates the full splits).
"""

from __future__ import annotations

import os
import time
from contextlib import nullcontext

import torch
import torch.distributed as dist
from torch import nn

from cxrlib.core.clock import deadline
from cxrlib.core.config import Config
from cxrlib.core.progress import Progress
from cxrlib.data.datasets import DatasetDef, get_dataset
from cxrlib.data.loader import make_loader
from cxrlib.data.prepare import PreparedDataset, prepare_dataset
from cxrlib.models.dual_branch import TrainingHeads
from cxrlib.models.registry import check_model
from cxrlib.train.checkpoints import CheckpointSaver
from cxrlib.train.finish import evaluate_test
from cxrlib.train.layout import RunFolder
from cxrlib.train.loop import Trainer
from cxrlib.train.model import build_run_model
from cxrlib.train.optim import build_optimizer, build_scaler, schedule
from cxrlib.train.record import (
    check_config,
    check_data,
    read_settings,
    settings_record,
    write_settings,
)
from cxrlib.train.results import RunResult, read_run, write_history
from cxrlib.train.runtime import Runtime, fit_grad_accum, memory_probe, setup_runtime
from cxrlib.train.state import Limits, TrainState

try:  # optional: without tensorboard the CSV and the log still hold everything
    from torch.utils.tensorboard import SummaryWriter
except (
    ImportError
):  # pragma: no cover - tensorboard is a dependency, but a light install may lack it
    SummaryWriter = None


class ProgressLine:
    """What a run shows while it trains (:class:`cxrlib.core.progress.Progress`): epoch, loss,
    validation AUC, images/s and the time left -- a widget in a live notebook, a bar in a
    terminal, and elsewhere (papermill, ``./run_all.sh``) a line per epoch or per minute."""

    def __init__(self, run: RunFolder, state: TrainState, epochs: int, batches: int, show: bool):
        self.epochs, self.val_auc, self.rate = epochs, None, None
        self.progress = Progress(
            run.label,
            total=epochs * batches,
            done=state.epoch * batches + state.batch,
            unit="batch",
            enabled=show,
        )

    def advance(self, batches: int) -> None:
        self.progress.update(batches)

    def _words(self, state: TrainState) -> str:
        parts = [f"epoch {min(state.epoch + 1, self.epochs)}/{self.epochs}"]
        if state.loss_count:
            parts.append(f"loss {state.mean_loss:.4f}")
        if self.val_auc is not None:
            parts.append(f"val AUC {self.val_auc:.2f}")
        if self.rate:
            parts.append(f"{self.rate:.1f} img/s")
        return ", ".join(parts)

    def show(self, state: TrainState, rate: float | None = None) -> None:
        """The latest figures of the epoch in progress."""
        self.rate = rate or self.rate
        self.progress.note(self._words(state))

    def epoch_done(self, row: dict) -> None:
        """An epoch ended (its ``epochs.csv`` row): a line of its own where lines are shown."""
        self.val_auc = row["val_mean_auc"]
        self.progress.milestone(
            f"epoch {row['epoch']}/{self.epochs} done, loss {row['train_loss']:.4f}, "
            f"val AUC {row['val_mean_auc']:.2f}, {row['images_per_s']:.1f} img/s"
        )

    def close(self) -> None:
        self.progress.close()


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


def _prepare(config: Config, dataset: DatasetDef, runtime: Runtime, progress: bool):
    """The data, prepared by rank 0 first (it generates and caches; the others then reuse)."""
    if runtime.distributed and not runtime.is_main:
        dist.barrier()
    data = prepare_dataset(config, dataset, progress=progress and runtime.is_main)
    if runtime.distributed and runtime.is_main:
        dist.barrier()
    return data


def _model(config: Config, data: PreparedDataset, runtime: Runtime, resuming: bool, saved):
    """The run's network on its device, and the runtime with the micro-batch that fits."""
    # a resumed run's weights come from its checkpoint: no ImageNet weights are read then;
    # under DDP only rank 0 reads them (DDP copies rank 0's weights to the others at the start)
    model = build_run_model(config, len(data.classes), initialise=runtime.is_main and not resuming)
    memory = torch.channels_last if runtime.channels_last else torch.contiguous_format
    model.to(runtime.device, memory_format=memory)
    if config.train.grad_accum is None and runtime.device.type == "cuda":
        # a resumed run keeps its micro-batch (batch norm sees it), if this GPU holds it
        only = ((saved or {}).get("runtime") or {}).get("grad_accum")
        probe = memory_probe(model, config, runtime, len(data.classes))
        runtime = fit_grad_accum(runtime, probe, only=only)
    return model, runtime


def _loader(config: Config, data: PreparedDataset, runtime: Runtime):
    return make_loader(
        data.cache.pixels,
        data.cache_rows("train"),
        data.labels("train"),
        batch_size=runtime.micro_batch,
        shuffle=True,
        flip=True,
        seed=config.train.seed,
        num_workers=runtime.num_workers,
        rank=runtime.rank,
        world_size=runtime.world_size,
    )


def _idle_gpus(runtime: Runtime) -> int:
    """GPUs this machine has that no process of the run uses (Kaggle's T4×2 in one kernel)."""
    if runtime.device.type != "cuda":
        return 0
    return max(torch.cuda.device_count() - runtime.world_size, 0)


def _announce(trainer: Trainer, dataset: DatasetDef, resuming: bool) -> None:
    config, run, runtime, state = trainer.config, trainer.run, trainer.runtime, trainer.state
    idle = _idle_gpus(runtime)
    if idle and runtime.is_main:
        run.log(
            f"{idle} of this machine's GPUs stay idle: this process uses one. For all "
            f"{idle + runtime.world_size}: torchrun --nproc_per_node="
            f"{idle + runtime.world_size} -m cxrlib train --profile {config.profile} "
            f"--dataset {dataset.name} --model {config.model.model} (same --set values); a "
            f"notebook then reads the finished run back"
        )
    if resuming:
        if runtime.is_main:  # the checkpoint's rows: a damaged epochs.csv heals
            write_history(run, state.history)
        run.log(f"resumed at epoch {state.epoch + 1}, step {state.step}")
        return
    if not runtime.is_main:
        return
    write_settings(run, trainer.settings)
    run.log(
        f"started {config.model.model} on {dataset.name} ({trainer.data.source} data, "
        f"{config.data.split} split) {runtime.describe()}; its history is in {run.log_file}"
    )
    if config.model.pretrained != "none":
        run.log(_init_message(trainer.model, config.model.pretrained))


def start(
    config: Config, dataset: DatasetDef, run: RunFolder, saver: CheckpointSaver, saved, progress
) -> Trainer:
    """Data, runtime, model, optimiser and loader of a run; resumed from ``last.pt`` if any.

    ``saved`` is the run's record (:func:`cxrlib.train.record.read_settings`), None for a new
    run."""
    runtime = setup_runtime(config)
    data = _prepare(config, dataset, runtime, progress)
    torch.manual_seed(config.train.seed)
    checkpoint = saver.load_last()
    resuming = checkpoint is not None and "state" in checkpoint
    model, runtime = _model(config, data, runtime, resuming, saved)
    settings = settings_record(config, data.identity(), runtime.record())
    if saved is not None:
        check_data(run, saved, settings["data"], settings["runtime"])
    loader = _loader(config, data, runtime)
    steps_per_epoch = -(-len(loader) // runtime.grad_accum)
    optimizer = build_optimizer(model, config)
    trainer = Trainer(
        config=config,
        run=run,
        saver=saver,
        data=data,
        runtime=runtime,
        model=model,
        trainable=TrainingHeads(model),  # every head: the loss needs them
        optimizer=optimizer,
        scaler=build_scaler(runtime),
        loader=loader,
        lr_at=schedule(config, steps_per_epoch),
        state=TrainState(),
        settings=settings,
        progress=None,
    )
    if resuming:
        trainer.restore(checkpoint)
    _announce(trainer, dataset, resuming)
    trainer.progress = ProgressLine(
        run, trainer.state, config.train.epochs, len(loader), progress and runtime.is_main
    )
    if runtime.distributed:
        ids = [runtime.device.index] if runtime.device.type == "cuda" else None
        trainer.ddp = nn.parallel.DistributedDataParallel(trainer.trainable, device_ids=ids)
        trainer.trainable = trainer.ddp
    if config.train.compile:  # DDP inside the compiled module: its buckets split the graph
        trainer.trainable = torch.compile(trainer.trainable)
    if runtime.is_main and SummaryWriter is not None:
        trainer.tensorboard = SummaryWriter(str(run.tensorboard_dir))
    return trainer


def _train(trainer: Trainer, limits: Limits) -> str | None:
    """Epochs until the end or a pause; the reason of a pause, or None."""
    try:
        while trainer.state.epoch < trainer.config.train.epochs:
            epoch = trainer.train_one_epoch(limits)
            if epoch.paused is not None:
                return epoch.paused
            trainer.end_epoch(epoch)
        return None
    finally:
        trainer.progress.close()
        trainer.saver.wait()  # every checkpoint handed over is on disk (or its error)
        if trainer.tensorboard is not None:
            trainer.tensorboard.close()


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

    ``max_steps`` / ``time_limit_minutes`` (and the session's deadline) pause this call (a
    checkpoint is written at the next accumulation boundary) so that a later call resumes --
    for sessions with a time limit (Colab, Kaggle); past the deadline a run is not started.
    Returns the run's folder, whether it finished, its metrics and history.
    """
    check_model(config.model.model)  # before any data work
    definition = get_dataset(dataset)  # a name, or csv:/path/to/labels.csv
    run = RunFolder.of(config, definition.name)
    saver = CheckpointSaver(run)
    limits = Limits(max_steps, deadline(time_limit_minutes))
    is_main = int(os.environ.get("RANK", "0")) == 0
    with run.lock() if is_main else nullcontext():
        if restart and is_main:
            run.discard()
        saved = read_settings(run, saver)
        if saved is not None:
            check_config(run, config, saved)  # before any data work
        if run.finished or limits.out_of_time():  # out of time: not even started
            return read_run(run.path)
        trainer = start(config, definition, run, saver, saved, progress)
        started = time.monotonic()
        try:
            reason = _train(trainer, limits)
            if reason is None and trainer.runtime.is_main:
                evaluate_test(trainer)
        finally:
            saver.close()
        if reason is not None and trainer.runtime.is_main:
            minutes = (time.monotonic() - started) / 60
            run.log(
                f"paused at step {trainer.state.step} after {minutes:.1f} min ({reason}); "
                f"run again to resume"
            )
        if trainer.runtime.distributed:
            dist.barrier()  # every rank returns once the run's files are complete
        return read_run(run.path)
