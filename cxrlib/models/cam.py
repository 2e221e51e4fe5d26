"""Where Grad-CAM looks in each model: the public helpers pytorch-grad-cam is given.

As pytorch-grad-cam's README uses it, on the model itself (``model(x)`` gives the fused
logits, the papers' prediction rule)::

    from pytorch_grad_cam import GradCAM
    cam = GradCAM(model=model, target_layers=cxrlib.cam_target_layers(model, "tokens"),
                  reshape_transform=cxrlib.cam_reshape_transform(model, "tokens"))

Branches:

* dual-branch models (CTransCNN, CheXNet, Conformer): ``cnn`` -- the last CNN stage at its
  full resolution (the last block's conv block, 14×14 at 224 px, before the final stride-2
  fusion block); ``tokens`` -- the patch tokens entering the last token layer (its first
  norm), reshaped to their grid, because the last layer's own patch outputs reach the heads
  only through the cls token or the label decoder;
* timm CNNs: the last stage (``layer4``/``features``/``stages``); timm ViT/DeiT: the first
  norm of the last block, patch tokens reshaped to the grid (``tokens``; ``cnn`` gives the
  same there: a ViT has no CNN branch).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from cxrlib.models.dual_branch import DualBranchNet

BRANCHES = ("cnn", "tokens")


def _check_branch(branch: str) -> None:
    if branch not in BRANCHES:
        raise ValueError(f"branch must be one of {', '.join(BRANCHES)}; got {branch!r}")


def _is_vit(model: nn.Module) -> bool:
    return (
        hasattr(model, "blocks") and hasattr(model, "patch_embed") and hasattr(model, "cls_token")
    )


def cam_target_layers(model: nn.Module, branch: str = "cnn") -> list[nn.Module]:
    """The layers Grad-CAM reads for ``branch`` (``cnn`` or ``tokens``) of ``model``."""
    _check_branch(branch)
    if isinstance(model, DualBranchNet):
        if branch == "cnn":  # the last stage's map before the final stride-2 fusion block
            return [model.blocks[-1].cnn_block.output]
        layer = model.blocks[-1].token_layer
        if layer is None:
            raise ValueError(
                f"{model.pretrained_cfg.get('architecture', 'this model')} has no token "
                f"layers (MEMSP replaces the Transformer): use branch 'cnn'"
            )
        return [layer.norm1]
    if _is_vit(model):  # ViT / DeiT
        return [model.blocks[-1].norm1]
    for name in ("layer4", "stages", "features"):
        if hasattr(model, name):
            return [getattr(model, name)[-1]]
    raise ValueError(f"no Grad-CAM target layer known for {type(model).__name__}")


def cam_reshape_transform(
    model: nn.Module, branch: str = "cnn"
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """pytorch-grad-cam's ``reshape_transform`` for ``branch``: patch tokens (B×(1+N)×D,
    the cls token first) to a B×D×h×w map on their square grid; None for CNN maps."""
    _check_branch(branch)
    if isinstance(model, DualBranchNet):
        return _tokens_to_map(has_cls=True) if branch == "tokens" else None
    if _is_vit(model):
        return _tokens_to_map(has_cls=not getattr(model, "no_embed_class", False))
    return None


def _tokens_to_map(has_cls: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    def reshape(tensor: torch.Tensor) -> torch.Tensor:
        tokens = tensor[:, 1:] if has_cls else tensor
        b, n, d = tokens.shape
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(f"{n} patch tokens are not a square grid: give a square input")
        return tokens.reshape(b, side, side, d).permute(0, 3, 1, 2)  # (B, N, D) -> (B, D, h, w)

    return reshape
