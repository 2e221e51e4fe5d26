"""Where a run computes: device, process group, precision, batch per device, batched inference.

``BATCH_SIZE`` is the *global* batch of one optimiser step, as in the papers (32): under
``torchrun`` each of the ``world_size`` processes takes ``BATCH_SIZE / world_size`` images per
step, in ``GRAD_ACCUM`` micro-batches of ``BATCH_SIZE / (world_size * GRAD_ACCUM)``. A batch
that does not divide is an error, never a silently different recipe.

The GPU that is there (a free Colab/Kaggle T4 as much as an H100) runs the paper recipe
without editing: ``PRECISION=auto`` takes bf16 only where it is native (compute capability 8+)
and fp16 with a gradient scaler elsewhere (a T4 emulates bf16, slowly); on a CPU, bf16 where
the CPU has bf16 instructions (AVX-512 BF16 or AMX) and fp32 elsewhere; ``GRAD_ACCUM=None``
measures one training step of the actual model at growing accumulation until a micro-batch
fits the GPU's memory (:func:`fit_grad_accum`; the global batch stays the recipe's);
``NUM_WORKERS=None`` takes up to 4 loader processes on a GPU machine (the cache is
memory-mapped: workers only slice and flip), none on a CPU.
"""

from __future__ import annotations

import copy
import os
from contextlib import nullcontext
from dataclasses import KW_ONLY, dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from cxrlib.core.config import Config, ConfigError
from cxrlib.data.loader import make_loader, to_model_input
from cxrlib.models.dual_branch import forward_heads
from cxrlib.train.losses import training_loss

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Runtime:
    """The resolved execution settings of one process."""

    device: torch.device
    _: KW_ONLY
    rank: int = 0
    world_size: int = 1
    precision: str = "fp32"  #: resolved: fp32, bf16 or fp16 (never "auto")
    micro_batch: int = 32  #: images per forward pass on this device
    grad_accum: int = 1
    channels_last: bool = False
    num_workers: int = 0  #: DataLoader worker processes

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return DTYPES[self.precision]

    @property
    def eval_batch(self) -> int:
        """Images per evaluation batch: 4 micro-batches, at least 64."""
        return max(64, 4 * self.micro_batch)

    @property
    def global_batch(self) -> int:
        return self.micro_batch * self.grad_accum * self.world_size

    def autocast(self):
        """Autocast to the run's precision (a no-op in fp32)."""
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def describe(self) -> str:
        """How the run computes, as a sentence: ``on the CPU in fp32, batch 16 (1 process ×
        16 images, 1 micro-batch per step), 0 loader workers``."""
        where = (
            f"on {self.world_size} × {torch.cuda.get_device_name(self.device)}"
            if self.device.type == "cuda"
            else f"on the {self.device.type.upper()}"
        )
        processes = "process" if self.world_size == 1 else "processes"
        steps = "micro-batch" if self.grad_accum == 1 else "micro-batches"
        return (
            f"{where} in {self.precision}, batch {self.global_batch} ({self.world_size} "
            f"{processes} × {self.micro_batch} images × {self.grad_accum} {steps} per step), "
            f"{self.num_workers} loader workers"
        )

    def record(self) -> dict:
        """What a run stores about how it was computed (shown in the report)."""
        return {
            "device": str(self.device.type),
            "world_size": self.world_size,
            "per_device_batch": self.micro_batch * self.grad_accum,
            "micro_batch": self.micro_batch,
            "grad_accum": self.grad_accum,
            "global_batch": self.global_batch,
            "precision": self.precision,
            "num_workers": self.num_workers,
            "channels_last": self.channels_last,
            "tf32": self.device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32,
            "gpu": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else None,
        }


def cpu_native_bf16() -> bool:
    """True where this CPU computes bf16 natively: AVX-512 BF16 (Intel Cooper Lake and later,
    AMD Zen 4 and later) or AMX (Sapphire Rapids and later), the instructions oneDNN's bf16
    convolutions and matrix products use. Elsewhere bf16 is emulated and slower than fp32.
    (``torch.cpu``'s checks are private; a torch without them counts as no.)"""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    try:
        return any(getattr(torch.cpu, name, lambda: False)() for name in checks)
    except RuntimeError:  # pragma: no cover - a build without the CPU feature probe
        return False


def native_bf16(device: torch.device) -> bool:
    """True only where bf16 runs natively: NVIDIA compute capability 8.0+ (Ampere on), or a
    CPU with AVX-512 BF16 or AMX (:func:`cpu_native_bf16`).

    ``torch.cuda.is_bf16_supported()`` also says yes for the emulated bf16 of a T4 or V100,
    which is slower than fp16 there.
    """
    if device.type == "cpu":
        return cpu_native_bf16()
    return device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8


def resolve_precision(requested: str, device: torch.device) -> str:
    """``auto``: bf16 where native (GPU or CPU); fp16 with a grad scaler on other GPUs; fp32 on
    other CPUs (fp16 autocast on a CPU is emulated)."""
    if requested != "auto":
        return requested
    if native_bf16(device):
        return "bf16"
    return "fp16" if device.type == "cuda" else "fp32"


def micro_batch_size(batch_size: int, world_size: int, grad_accum: int) -> int:
    """Images per forward pass so that ``world_size × grad_accum`` of them make the global
    batch; a :class:`ConfigError` when that does not divide."""
    parts = world_size * grad_accum
    if batch_size % parts:
        raise ConfigError(
            f"BATCH_SIZE {batch_size} is the global batch and must be divisible by the number "
            f"of processes ({world_size}) × GRAD_ACCUM ({grad_accum}) = {parts}; choose a "
            f"BATCH_SIZE or GRAD_ACCUM that divides"
        )
    return batch_size // parts


def setup_runtime(config: Config) -> Runtime:
    """Device (one GPU per process under torchrun), process group, precision, micro-batch."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    train = config.train
    accum = train.grad_accum or 1  # None: fitted to the GPU later (fit_grad_accum)
    micro = micro_batch_size(train.batch_size, world_size, accum)
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if device.type == "cuda":
        # fp32 matrix products on tensor cores (TF32) and convolution algorithms chosen by
        # measurement for each input shape: both change the last bits only
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Runtime(
        device=device,
        rank=rank,
        world_size=world_size,
        precision=resolve_precision(train.precision, device),
        micro_batch=micro,
        grad_accum=accum,
        # NHWC on GPUs only: on a CPU it gains little and torch 2.14.1's CPU backward of a
        # micro CheXNet with IB blocks in NHWC corrupted the heap (aborted, every time)
        channels_last=train.channels_last and device.type == "cuda",
        num_workers=train.num_workers
        if train.num_workers is not None
        else (min(4, os.cpu_count() or 1) if device.type == "cuda" else 0),
    )


def accumulation_choices(per_device_batch: int) -> list[int]:
    """The accumulation counts that divide the per-device batch, fewest first."""
    return [a for a in range(1, per_device_batch + 1) if per_device_batch % a == 0]


def fit_grad_accum(
    runtime: Runtime, step, memory_share: float = 0.9, only: int | None = None
) -> Runtime:
    """The runtime with the fewest micro-batches per step whose training step fits.

    ``step(micro_batch)`` runs one forward and backward pass at that micro-batch (on a copy of
    the model: nothing of the run changes) and returns the peak memory in bytes it took; a
    CUDA out-of-memory error, or a peak above ``memory_share`` of the device's memory, means
    it does not fit. Under DDP every process takes the largest count any of them needs.
    ``only``: the count a resumed run was trained with (its micro-batch is part of what batch
    norm computes), tried alone.
    """
    per_device = runtime.micro_batch * runtime.grad_accum
    total = (
        torch.cuda.get_device_properties(runtime.device).total_memory
        if runtime.device.type == "cuda"
        else None
    )
    chosen = None
    for accum in [only] if only else accumulation_choices(per_device):
        try:
            peak = step(per_device // accum)
        except torch.cuda.OutOfMemoryError:
            peak = None
        finally:
            if runtime.device.type == "cuda":
                torch.cuda.empty_cache()
        if peak is not None and (total is None or peak <= memory_share * total):
            chosen = accum
            break
    if chosen is None and only:
        raise ConfigError(
            f"the run's micro-batch of {per_device // only} images does not fit in the memory "
            f"of this GPU ({runtime.device}): resume it on a GPU with more memory, or start "
            f"it over with --restart"
        )
    if chosen is None:
        raise ConfigError(
            f"one image per micro-batch does not fit in the memory of {runtime.device}: choose "
            f"a smaller IMAGE_SIZE or model, or PRECISION=fp16"
        )
    if runtime.distributed:
        value = torch.tensor([chosen], device=runtime.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        chosen = int(value.item())
    runtime.grad_accum, runtime.micro_batch = chosen, per_device // chosen
    return runtime


def memory_probe(model: nn.Module, config: Config, runtime: Runtime, classes: int):
    """``step(micro_batch) -> peak bytes`` of one training step of a copy of ``model`` (the
    run's weights and batch-norm statistics stay untouched), plus AdamW's two moment buffers,
    for :func:`fit_grad_accum`."""
    size = config.data.image_size
    optimizer_bytes = 2 * sum(p.numel() * 4 for p in model.parameters())

    def step(micro: int) -> int:
        probe = copy.deepcopy(model).train()
        torch.cuda.reset_peak_memory_stats(runtime.device)
        memory = torch.channels_last if runtime.channels_last else torch.contiguous_format
        x = torch.randn(micro, 3, size, size, device=runtime.device)
        x = x.contiguous(memory_format=memory)
        y = torch.zeros(micro, classes, device=runtime.device)
        try:
            with runtime.autocast():
                output = forward_heads(probe, x)
            training_loss(output, y, config.train.loss_heads).backward()
            return torch.cuda.max_memory_allocated(runtime.device) + optimizer_bytes
        finally:
            del probe, x, y

    return step


def cpu_runtime() -> Runtime:
    """A single-process fp32 CPU runtime (prediction on files, tests)."""
    return Runtime(torch.device("cpu"))


@torch.inference_mode()
def predict(
    model: nn.Module,
    images: np.ndarray,
    rows: np.ndarray,
    runtime: Runtime,
    batch_size: int | None = None,
) -> np.ndarray:
    """Probabilities of the fused rule for ``images[rows]`` (N×K), in order.

    ``batch_size``: default :attr:`Runtime.eval_batch` (no activations are kept for a
    backward pass, so evaluation takes larger batches than training)."""
    model.eval()
    labels = np.zeros((len(rows), 1), dtype=np.float32)  # not read: inference only
    out = []
    loader = make_loader(
        images, rows, labels, batch_size=batch_size or runtime.eval_batch, shuffle=False
    )
    for x, _ in loader:
        x = to_model_input(x, runtime.device, runtime.channels_last)
        with runtime.autocast():
            out.append(torch.sigmoid(model(x).float()))
    return torch.cat(out).cpu().numpy() if out else np.zeros((0, 0))
