"""The optimiser and the learning-rate schedule of the authors' recipe.

From the configs released with CTransCNN (Wu et al., KBS 2023; :mod:`cxrlib.core.recipe`):
AdamW (lr 1e-3, weight decay 0.05 except on norms, biases, the cls token and label embeddings,
betas (0.5, 0.999) on both datasets, eps 1e-8) and a cosine schedule by iteration down to 1 %
of the peak after a linear warm-up from 0.1 % over 6,260 iterations (mmcv semantics: the
warm-up scales the cosine value).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cxrlib.core.config import Config
from cxrlib.train.runtime import Runtime

#: Parameters named like this get no weight decay (besides every 1-D tensor).
NO_DECAY_NAMES = ("cls_token", "label_embed")


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


def schedule(config: Config, steps_per_epoch: int):
    """``step -> learning rate`` of ``config``'s recipe over its epochs."""
    t = config.train
    total = steps_per_epoch * t.epochs

    def lr_at(step: int) -> float:
        return learning_rate(step, total, t.lr, t.warmup_iters, t.warmup_ratio, t.min_lr_ratio)

    return lr_at
