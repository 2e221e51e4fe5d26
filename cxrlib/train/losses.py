"""The papers' training loss: asymmetric loss + sigmoid focal loss on each head.

From the authors' CTransCNN code (``BCE_ASL_Focal`` and ``My_Hybird_Head``; Wu et al., KBS
2023; models.md 2.4): for each head, two terms, each summed over classes and batch and divided
by the batch size:

* ASL (Ridnik et al., ICCV 2021) with γ+ = 0, γ− = 4, clip 0.05 (the negative probability is
  shifted: p_m = min(1 − p + 0.05, 1)), log clamped at eps = 1e-8;
* sigmoid focal loss (Lin et al., ICCV 2017) with γ = 2, α = 0.25.

The loss of a head is the mean of its two terms; the training loss is the mean over heads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def asymmetric_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma_neg: float = 4.0,
    gamma_pos: float = 0.0,
    clip: float = 0.05,
    eps: float = 1e-8,
):
    """Summed over classes and batch, divided by the batch size."""
    p = torch.sigmoid(logits)
    target = target.type_as(logits)
    pt = (1 - p + clip).clamp(max=1) * (1 - target) + p * target
    weight = (1 - pt).pow(gamma_pos * target + gamma_neg * (1 - target))
    return (-torch.log(pt.clamp(min=eps)) * weight).sum() / logits.shape[0]


def sigmoid_focal_loss(
    logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, alpha: float = 0.25
) -> torch.Tensor:
    """Summed over classes and batch, divided by the batch size."""
    p = torch.sigmoid(logits)
    target = target.type_as(logits)
    pt = (1 - p) * target + p * (1 - target)
    weight = (alpha * target + (1 - alpha) * (1 - target)) * pt.pow(gamma)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (bce * weight).sum() / logits.shape[0]


def asl_focal_terms(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The two loss terms of one head, as a tensor ``[asl, focal]``."""
    return torch.stack([asymmetric_loss(logits, target), sigmoid_focal_loss(logits, target)])


def multi_head_loss(heads: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """Mean over heads of the mean of each head's two terms (the authors' training loss)."""
    return torch.stack([asl_focal_terms(h, target).mean() for h in heads]).mean()


def training_loss(output, target: torch.Tensor, where: str) -> torch.Tensor:
    """The papers' loss (ASL + focal) on the heads that ``LOSS_HEADS`` names: ``each`` (the
    CTransCNN recipe), ``fused`` or ``each+fused``."""
    heads = {
        "each": output.heads(),
        "fused": [output.logits],
        "each+fused": [*output.heads(), output.logits],
    }[where]
    return multi_head_loss([h.float() for h in heads], target)
