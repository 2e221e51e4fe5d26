"""``create_model``: any registered model by name, as ``timm.create_model`` makes one -- from
scratch (both papers), from ImageNet weights, or from a model file -- carrying its
``pretrained_cfg`` (input size, normalisation, classes, fusion rule); ``reference_model``: the
one the authors' reference fixture describes, with its weights."""

from __future__ import annotations

import os

import torch
from torch import nn

from cxrlib.core.errors import ModelFileError
from cxrlib.core.workspace import Workspace
from cxrlib.models.files import load_model, pretrained_cfg
from cxrlib.models.reference import convert_reference_checkpoint
from cxrlib.models.registry import build_model


def create_model(
    name: str,
    num_classes: int | None = None,
    size: str = "paper",
    image_size: int = 224,
    *,
    pretrained: bool | str | os.PathLike = False,
    checkpoint_path: str | os.PathLike | None = None,
    **overrides,
) -> nn.Module:
    """Build the registered model ``name`` (as ``timm.create_model``).

    ``num_classes``: labels (default 14, CXR14's; with a checkpoint, the checkpoint's).
    ``size``: ``paper`` or ``micro`` (smoke runs). ``image_size`` matters only for models with
    absolute position embeddings (ViT, DeiT, Swin). ``pretrained``: ``False`` (from scratch, as
    both papers), a model file (a run's ``best.pt``, :func:`~cxrlib.models.files.save_model`),
    or ``"imagenet"`` (timm's ImageNet weights for the baselines; the public Conformer-Ti for
    the dual-branch models). ``checkpoint_path`` is the same as a path in ``pretrained``.
    ``overrides`` replace ArchConfig fields of dual-branch models (e.g. ``drop_path=0``) or go
    to ``timm.create_model``. Every model carries ``model.pretrained_cfg``.
    """
    if pretrained is True:
        raise ValueError(
            "pretrained=True is ambiguous here: give a model file (a run's best.pt) or "
            "'imagenet' (timm baselines)"
        )
    is_file = pretrained not in (False, None, "imagenet")
    source = checkpoint_path or (pretrained if is_file else None)
    if source is not None:
        model = load_model(source, num_classes)
        if model.card["model"] != name:
            raise ModelFileError(f"{source} holds a {model.card['model']!r}, not a {name!r}")
        return model.train()
    num_classes = num_classes or 14
    imagenet = pretrained == "imagenet"
    # a library entry point: ImageNet weights are found in the environment's workspace
    workspace = Workspace.from_env() if imagenet else None
    model = build_model(
        name, num_classes, size, image_size, imagenet=imagenet, workspace=workspace, **overrides
    )
    model.pretrained_cfg = pretrained_cfg(name, num_classes, image_size)
    model.pretrained_cfg["source"] = "imagenet" if imagenet else None
    return model


@torch.no_grad()
def predict_proba(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Probabilities of the paper's fused prediction rule (eval mode, no gradients)."""
    was_training = model.training
    model.eval()
    try:
        return model(x).probabilities()
    finally:
        model.train(was_training)


def reference_model(fixture: dict) -> nn.Module:
    """``ctranscnn_tiny`` at the size of the authors' reference fixture (``shared/fixtures``),
    with the fixture's weights loaded through :func:`convert_reference_checkpoint`: the model
    notebook 02 and the faithfulness tests compare with the authors' outputs."""
    arch = fixture["arch"]
    model = create_model(
        "ctranscnn_tiny",
        fixture["num_classes"],
        embed_dim=arch["embed_dims"],
        depth=arch["depths"],
        num_heads=arch["num_heads"],
        channel_ratio=arch["channel_ratio"],
        patch_size=fixture["patch_size"],
        base_channels=fixture["base_channels"],
        drop_path=fixture["drop_path_rate"],
    )
    state = {f"backbone.{k}": v for k, v in fixture["backbone_state_dict"].items()}
    state |= {f"head.{k}": v for k, v in fixture["head_state_dict"].items()}
    model.load_state_dict(convert_reference_checkpoint(state), strict=True)
    return model
