"""Training and evaluation: the papers' recipe, resumable, idempotent and honest.

Recipe (models.md 2.4, from the authors' released mmcls configs; Wu et al., KBS 2023):
AdamW (lr 1e-3, weight decay 0.05 except on norms, biases, the cls token and label
embeddings, betas (0.5, 0.999) for CXR14 and (0.9, 0.999) for CXR11, eps 1e-8), a cosine
schedule by iteration down to 1 % of the peak after a linear warm-up from 0.1 % over 6,260
iterations (mmcv semantics: the warm-up scales the cosine value), 300 epochs, ASL + focal loss
on each head averaged over heads, random horizontal flip, ImageNet normalisation.

A run lives in ``runs/<profile>/<dataset>/<split>/<model>/seed<k>/``:

* ``config.json`` -- the resolved configuration (a resume with different settings is refused);
* ``last.pt`` / ``best.pt`` -- checkpoints, written atomically after every epoch and every
  ``checkpoint_minutes`` (``last.pt`` also mid-epoch), loadable with ``weights_only=True``;
* ``epochs.csv`` and ``train.log`` -- per-epoch loss, learning rate, validation metrics,
  throughput (CSV; and a readable log with pauses and the final result);
* ``metrics.json`` and ``test_predictions.csv`` -- written last; their presence means
  "finished", and a finished run is not redone unless ``restart=True``.

A killed run resumes from ``last.pt`` (model, optimiser, scaler, schedule position, RNG state,
position inside the epoch); on CPU the resumed run ends with exactly the metrics of an
uninterrupted one. A non-finite loss stops the run before the update, keeping the last good
checkpoint. Several GPUs: launch ``python -m cxrlib train`` under ``torchrun``
(DistributedDataParallel, one process per GPU; rank 0 evaluates the full splits).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from cxrlib.config import Config
from cxrlib.data.loader import CachedImageDataset, make_loader, set_loader_epoch, to_model_input
from cxrlib.data.prepare import PreparedDataset, prepare_dataset
from cxrlib.io import atomic_write, atomic_write_text
from cxrlib.losses import multi_head_loss
from cxrlib.metrics import bootstrap_auc_ci, evaluate
from cxrlib.models import create_model
from cxrlib.paths import ResultsLayout

#: AdamW beta1 of the authors' released configs.
DATASET_BETA1 = {"cxr14": 0.5, "cxr11": 0.9}
#: Parameters named like this get no weight decay (besides every 1-D tensor).
NO_DECAY_NAMES = ("cls_token", "label_embed")
#: What a run folder holds (``restart=True`` removes exactly these).
RUN_FILES = (
    "last.pt",
    "best.pt",
    "metrics.json",
    "test_predictions.csv",
    "epochs.csv",
    "config.json",
    "train.log",
)
#: Configuration fields that may differ when a run is resumed (they do not change results).
RESUME_TOLERANT = {"num_workers", "checkpoint_minutes", "cxr14_root", "cxr11_root"}


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the last good checkpoint."""


class RunConfigMismatchError(ValueError):
    """A run directory holds a run made with other settings."""


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


# --------------------------------------------------------------------------------------------
# Devices, precision, distribution
# --------------------------------------------------------------------------------------------
@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1
    amp_dtype: torch.dtype | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_runtime(config: Config) -> Runtime:
    """Device (one GPU per process under torchrun), and the autocast dtype of PRECISION."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    precision = config.train.precision
    if precision == "auto":
        if device.type != "cuda":
            precision = "fp32"
        else:
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return Runtime(device, rank, world_size, dtype)


# --------------------------------------------------------------------------------------------
# Run directories
# --------------------------------------------------------------------------------------------
def run_dir(config: Config, dataset: str) -> Path:
    """``runs/<profile>/<dataset>/<split>/<model>/seed<k>``."""
    return (
        ResultsLayout(config.profile).runs
        / dataset
        / config.data.split
        / config.model.model
        / f"seed{config.train.seed}"
    )


def _check_same_settings(folder: Path, config: Config) -> None:
    saved = json.loads((folder / "config.json").read_text())
    now = {"profile": config.profile, **config.flat()}
    differing = {
        k: (saved.get(k), v)
        for k, v in now.items()
        if k not in RESUME_TOLERANT and saved.get(k) != v
    }
    if differing:
        listed = ", ".join(
            f"{k.upper()}: run has {a!r}, now {b!r}" for k, (a, b) in differing.items()
        )
        raise RunConfigMismatchError(
            f"{folder} holds a run with other settings ({listed}). Use the same settings to "
            f"resume, another SEED for a new run, or restart=True to discard it."
        )


def save_checkpoint(path: Path, state: dict) -> None:
    """Atomically write a checkpoint (temp file + rename)."""
    with atomic_write(path, "wb") as handle:
        torch.save(state, handle)


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------
@torch.no_grad()
def predict(
    model: nn.Module,
    images: np.ndarray,
    rows: np.ndarray,
    runtime: Runtime,
    batch_size: int = 64,
    channels_last: bool = False,
) -> np.ndarray:
    """Probabilities of the fused rule for cache ``rows`` (N×K), in order."""
    model.eval()
    dataset = CachedImageDataset(images, rows, np.zeros((len(rows), 1), dtype=np.float32))
    out = []
    for x, _ in make_loader(dataset, batch_size, shuffle=False):
        x = to_model_input(x, runtime.device, channels_last)
        with _autocast(runtime):
            out.append(model(x).probabilities().float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0))


def _autocast(runtime: Runtime):
    if runtime.amp_dtype is None:
        return nullcontext()
    return torch.autocast(runtime.device.type, dtype=runtime.amp_dtype)


# --------------------------------------------------------------------------------------------
# The training run
# --------------------------------------------------------------------------------------------
@dataclass
class RunResult:
    """What a finished (or stopped) run left in its folder."""

    folder: Path
    finished: bool
    metrics: dict | None
    history: pd.DataFrame


def read_run(folder: Path) -> RunResult:
    history = (
        pd.read_csv(folder / "epochs.csv")
        if (folder / "epochs.csv").is_file()
        else (pd.DataFrame())
    )
    metrics_path = folder / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else None
    return RunResult(folder, metrics is not None, metrics, history)


def _loss(output, target: torch.Tensor, where: str) -> torch.Tensor:
    heads = {
        "each": output.heads(),
        "fused": [output.logits],
        "each+fused": [*output.heads(), output.logits],
    }[where]
    return multi_head_loss([h.float() for h in heads], target)


def train_run(
    config: Config,
    dataset: str,
    *,
    restart: bool = False,
    max_steps: int | None = None,
    time_limit_minutes: float | None = None,
    progress: bool = True,
) -> RunResult:
    """Train ``config.model.model`` on ``dataset``; resume or skip as the run folder says.

    ``max_steps`` / ``time_limit_minutes`` end this call early (a checkpoint is written) so
    that a later call resumes -- for sessions with a time limit (Colab, Kaggle). Returns the
    run's folder, whether it finished, its final metrics and its per-epoch history.
    """
    folder = run_dir(config, dataset)
    if restart and folder.exists():
        for name in RUN_FILES:
            (folder / name).unlink(missing_ok=True)
        shutil.rmtree(folder / "tensorboard", ignore_errors=True)
    if (folder / "config.json").is_file():
        _check_same_settings(folder, config)
    existing = read_run(folder)
    if existing.finished:
        return existing

    runtime = setup_runtime(config)
    distributed = runtime.world_size > 1
    if distributed and not runtime.is_main:
        dist.barrier()  # rank 0 generates/caches the data first; the others then reuse it
    data = prepare_dataset(config, dataset, progress=progress and runtime.is_main)
    if distributed and runtime.is_main:
        dist.barrier()
    train_cfg = config.train
    torch.manual_seed(train_cfg.seed)
    model = create_model(
        config.model.model,
        len(data.classes),
        size=config.model.model_size,
        image_size=config.data.image_size,
        **_model_overrides(config),
    )
    channels_last = train_cfg.channels_last and runtime.device.type == "cuda"
    model.to(
        runtime.device,
        memory_format=torch.channels_last if channels_last else torch.contiguous_format,
    )
    beta1 = train_cfg.beta1 if train_cfg.beta1 is not None else DATASET_BETA1[dataset]
    optimizer = torch.optim.AdamW(
        parameter_groups(model, train_cfg.weight_decay),
        lr=train_cfg.lr,
        betas=(beta1, train_cfg.beta2),
        eps=train_cfg.adam_eps,
    )
    scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.amp_dtype == torch.float16)
    train_loader = make_loader(
        CachedImageDataset(
            data.cache.images,
            data.cache_rows("train"),
            data.labels("train"),
            flip=True,
            seed=train_cfg.seed,
        ),
        train_cfg.batch_size,
        shuffle=True,
        num_workers=train_cfg.num_workers,
        seed=train_cfg.seed,
        rank=runtime.rank,
        world_size=runtime.world_size,
    )
    steps_per_epoch = math.ceil(len(train_loader) / train_cfg.grad_accum)
    schedule = partial(
        learning_rate,
        total_steps=steps_per_epoch * train_cfg.epochs,
        base_lr=train_cfg.lr,
        warmup_steps=train_cfg.warmup_iters,
        warmup_ratio=train_cfg.warmup_ratio,
        min_lr_ratio=train_cfg.min_lr_ratio,
    )

    state = {
        "epoch": 0,
        "batch": 0,
        "step": 0,
        "best_auc": -1.0,
        "history": [],
        "loss_sum": 0.0,
        "loss_count": 0,
        "seen": 0,
    }  # the last three: this epoch so far
    if (folder / "last.pt").is_file():
        checkpoint = load_checkpoint(folder / "last.pt")
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scaler.load_state_dict(checkpoint["scaler"])
        state = checkpoint["progress"]
        torch.set_rng_state(checkpoint["rng_cpu"])
        if torch.cuda.is_available() and "rng_cuda" in checkpoint:
            torch.cuda.set_rng_state(checkpoint["rng_cuda"])
    elif runtime.is_main:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(
            folder / "config.json",
            json.dumps({"profile": config.profile, **config.flat()}, indent=2),
        )

    trainable = model
    if train_cfg.compile:
        trainable = torch.compile(model)
    if runtime.world_size > 1:
        trainable = nn.parallel.DistributedDataParallel(
            trainable, device_ids=[runtime.device.index] if runtime.device.type == "cuda" else None
        )

    def checkpoint_state() -> dict:
        for name, param in model.named_parameters():
            if not torch.isfinite(param).all():
                raise NonFiniteLossError(
                    f"parameter {name} is not finite; not saving. The last good checkpoint is "
                    f"{folder / 'last.pt'}"
                )
        out = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "progress": state,
            "rng_cpu": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            out["rng_cuda"] = torch.cuda.get_rng_state()
        return out

    started = time.monotonic()
    last_save = time.monotonic()
    stop_reason = None
    val_rows, val_labels = data.cache_rows("val"), data.labels("val")
    while state["epoch"] < train_cfg.epochs and stop_reason is None:
        epoch = state["epoch"]
        set_loader_epoch(train_loader, epoch, skip_batches=state["batch"])
        trainable.train()
        bar = tqdm(
            total=len(train_loader),
            initial=state["batch"],
            desc=f"epoch {epoch + 1}/{train_cfg.epochs}",
            disable=not (progress and runtime.is_main),
            mininterval=2.0,
            leave=False,
        )
        epoch_start, seen_before = time.monotonic(), state["seen"]
        lr = schedule(state["step"])
        for x, y in train_loader:
            lr = schedule(state["step"])
            for group in optimizer.param_groups:
                group["lr"] = lr
            x = to_model_input(x, runtime.device, channels_last)
            y = y.to(runtime.device, non_blocking=True)
            with _autocast(runtime):
                output = trainable(x)
            loss = _loss(output, y, train_cfg.loss_heads)
            if not torch.isfinite(loss):
                _log(folder, f"stopped: loss {loss.item()} at epoch {epoch + 1}")
                raise NonFiniteLossError(
                    f"loss is {loss.item()} at epoch {epoch + 1}, batch {state['batch'] + 1}; "
                    f"stopped before the update. The last good checkpoint is "
                    f"{folder / 'last.pt'}. Try a lower LR, PRECISION='fp32', or check the data."
                )
            scaler.scale(loss / train_cfg.grad_accum).backward()
            state["batch"] += 1
            if state["batch"] % train_cfg.grad_accum == 0 or state["batch"] == len(train_loader):
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                state["step"] += 1
            state["seen"] += len(x)
            state["loss_sum"] += loss.item()
            state["loss_count"] += 1
            rate = (state["seen"] - seen_before) / max(time.monotonic() - epoch_start, 1e-9)
            bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.2e}", img_s=f"{rate:.1f}")
            bar.update(1)
            if max_steps is not None and state["step"] >= max_steps:
                stop_reason = f"max_steps={max_steps}"
            elif (
                time_limit_minutes is not None
                and time.monotonic() - started > time_limit_minutes * 60
            ):
                stop_reason = f"time_limit_minutes={time_limit_minutes}"
            due = time.monotonic() - last_save > train_cfg.checkpoint_minutes * 60
            if stop_reason or (due and state["batch"] < len(train_loader)):
                if runtime.is_main:
                    save_checkpoint(folder / "last.pt", checkpoint_state())
                last_save = time.monotonic()
            if stop_reason:
                break
        bar.close()
        if stop_reason:
            break
        # end of epoch: validate on rank 0, keep best and last
        elapsed = max(time.monotonic() - epoch_start, 1e-9)
        row = {
            "epoch": epoch + 1,
            "train_loss": state["loss_sum"] / max(state["loss_count"], 1),
            "lr": lr,
            "images_per_s": (state["seen"] - seen_before) * runtime.world_size / elapsed,
        }
        state |= {"loss_sum": 0.0, "loss_count": 0, "seen": 0}
        if runtime.is_main:
            scores = predict(
                model, data.cache.images, val_rows, runtime, channels_last=channels_last
            )
            val = evaluate(val_labels, scores)
            row |= {"val_mean_auc": val["mean_auc"], "val_mAP": val["mAP"], "val_OF1": val["OF1"]}
            state["history"].append(row)
            state["epoch"], state["batch"] = epoch + 1, 0
            if val["mean_auc"] > state["best_auc"]:
                state["best_auc"] = val["mean_auc"]
                state["best_epoch"] = epoch + 1
                save_checkpoint(
                    folder / "best.pt",
                    {"model": model.state_dict(), "epoch": epoch + 1, "val": val},
                )
            save_checkpoint(folder / "last.pt", checkpoint_state())
            _write_history(folder, state["history"])
            _log(
                folder,
                "epoch {epoch}: loss {train_loss:.4f}, lr {lr:.2e}, val mean AUC "
                "{val_mean_auc:.2f}, {images_per_s:.1f} img/s".format(**row),
            )
            last_save = time.monotonic()
        else:
            state["epoch"], state["batch"] = epoch + 1, 0
        if runtime.world_size > 1:
            dist.barrier()
        _tensorboard_log(folder, row, runtime)
    if stop_reason is not None and runtime.is_main:
        _log(folder, f"paused at step {state['step']} ({stop_reason}); run again to resume")
    if stop_reason is None and runtime.is_main:
        _finish(folder, config, data, runtime, channels_last)
    if distributed:
        dist.barrier()  # every rank returns once the run's files are complete
    return read_run(folder)


def _model_overrides(config: Config) -> dict:
    """ArchConfig overrides from the configuration (dual-branch models only)."""
    from cxrlib.models import get_spec

    return {"drop_path": config.model.drop_path} if get_spec(config.model.model).arch else {}


def _log(folder: Path, message: str) -> None:
    """Append a timestamped line to the run's ``train.log`` (human-readable history)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "train.log", "a", encoding="utf-8") as handle:
        handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")


def _write_history(folder: Path, history: list[dict]) -> None:
    with atomic_write(folder / "epochs.csv", "w", newline="") as handle:
        pd.DataFrame(history).to_csv(handle, index=False)


def _tensorboard_log(folder: Path, row: dict, runtime: Runtime) -> None:
    """Per-epoch scalars to TensorBoard, when it is installed (optional)."""
    if not runtime.is_main:
        return
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return
    with SummaryWriter(str(folder / "tensorboard")) as writer:
        for key, value in row.items():
            if key != "epoch":
                writer.add_scalar(key, value, row["epoch"])


def _finish(
    folder: Path, config: Config, data: PreparedDataset, runtime: Runtime, channels_last: bool
) -> RunResult:
    """Evaluate the best checkpoint on test; write predictions, then metrics.json (last)."""
    torch.manual_seed(config.train.seed)
    model = create_model(
        config.model.model,
        len(data.classes),
        size=config.model.model_size,
        image_size=config.data.image_size,
        **_model_overrides(config),
    )
    best = load_checkpoint(folder / "best.pt")
    model.load_state_dict(best["model"])
    model.to(runtime.device)
    test = data.part("test")
    scores = predict(
        model, data.cache.images, test["cache_row"].to_numpy(), runtime, channels_last=channels_last
    )
    labels = test[list(data.classes)].to_numpy()
    predictions = pd.DataFrame({"image_id": test["image_id"].to_numpy()})
    for k, name in enumerate(data.classes):
        predictions[f"label_{name}"] = labels[:, k]
    for k, name in enumerate(data.classes):
        predictions[f"prob_{name}"] = scores[:, k]
    with atomic_write(folder / "test_predictions.csv", "w", newline="") as handle:
        predictions.to_csv(handle, index=False)
    metrics = {
        "dataset": data.dataset,
        "classes": list(data.classes),
        "model": config.model.model,
        "split": config.data.split,
        "data_source": config.data.data_source,
        "best_epoch": best["epoch"],
        "val": best["val"],
        "test": evaluate(labels, scores),
        "test_ci": bootstrap_auc_ci(labels, scores, resamples=1000, seed=config.train.seed),
    }
    atomic_write_text(folder / "metrics.json", json.dumps(metrics, indent=2))
    _log(
        folder,
        f"finished: best epoch {best['epoch']}, test mean AUC "
        f"{metrics['test']['mean_auc']:.2f} [{metrics['test_ci']['mean_low']:.2f}, "
        f"{metrics['test_ci']['mean_high']:.2f}]",
    )
    return read_run(folder)


def load_run_model(folder: Path) -> tuple[nn.Module, Config, list[str]]:
    """The best model of a finished run (eval mode, CPU), its configuration and its classes."""
    from cxrlib.config import LEAVES, load_config

    folder = Path(folder)
    if not (folder / "best.pt").is_file() or not (folder / "metrics.json").is_file():
        raise FileNotFoundError(f"{folder} holds no finished run: train it first")
    saved = json.loads((folder / "config.json").read_text())
    # names this version no longer has (e.g. the never-read CACHE_SIZE of earlier runs) are
    # ignored: they cannot change how the saved weights are rebuilt
    known = {k: v for k, v in saved.items() if k in LEAVES}
    config = load_config(saved["profile"], **known)
    classes = json.loads((folder / "metrics.json").read_text())["classes"]
    model = create_model(
        config.model.model,
        len(classes),
        size=config.model.model_size,
        image_size=config.data.image_size,
        **_model_overrides(config),
    )
    model.load_state_dict(load_checkpoint(folder / "best.pt")["model"])
    return model.eval(), config, classes


def predict_files(folder: Path, paths: list[str]) -> pd.DataFrame:
    """Probabilities of a finished run's best model for image files (any format the cache
    reads), preprocessed exactly as in training (grey, bicubic resize, ImageNet norm)."""
    from cxrlib.data.cache import load_image

    model, config, classes = load_run_model(folder)
    size = config.data.image_size
    images = np.stack([load_image(path, size) for path in paths])  # (N, S, S) uint8
    scores = predict(model, images, np.arange(len(paths)), Runtime(torch.device("cpu")))
    table = pd.DataFrame(scores, columns=classes)
    table.insert(0, "image", [str(p) for p in paths])
    return table


def train_models(config: Config, dataset: str, names: list[str], **kwargs) -> dict[str, RunResult]:
    """:func:`train_run` for each registered model in ``names`` (finished runs are read back)."""
    return {name: train_run(config.override(model=name), dataset, **kwargs) for name in names}
