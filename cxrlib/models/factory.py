"""``create_model``: any registered model by name, as ``timm.create_model`` makes one -- from
scratch (both papers), from ImageNet weights, or from a model file -- carrying its
``pretrained_cfg`` (input size, normalisation, classes, fusion rule); ``reference_model``: the
one the authors' reference fixture describes, with its weights."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from cxrlib.core.errors import ModelFileError
from cxrlib.core.workspace import Workspace
from cxrlib.models.files import attach_cfg, model_card
from cxrlib.models.reference import convert_reference_checkpoint
from cxrlib.models.registry import build_model


def create_model(
    model_name: str,
    pretrained: bool | str | os.PathLike = False,
    *,
    num_classes: int | None = None,
    size: str = "paper",
    image_size: int | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    pretrained_cfg: dict | str | None = None,
    pretrained_cfg_overlay: dict | None = None,
    cache_dir: str | os.PathLike | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build the registered model ``model_name``, as ``timm.create_model`` builds one (the
    same signature; after ``import cxrlib``, ``timm.create_model`` builds the kit's models
    through this function).

    ``pretrained``: ``False`` (from scratch, as both papers); ``True`` or ``"imagenet"``
    (ImageNet weights: timm's for the baselines, the public Conformer-Ti for the dual-branch
    models), unless a weights file is named -- by ``pretrained_cfg_overlay=dict(file=...)``
    as timm takes it, or by timm's ``local-dir:``/``hf-hub:`` names; or a model file or
    folder itself (a run's ``best.pt``, a :func:`~cxrlib.models.hub.save_pretrained` folder,
    a ``model.safetensors``). ``checkpoint_path`` is the same as a path in ``pretrained``.

    ``num_classes``: labels (default 14, CXR14's; with weights, theirs; 0: no classifier, the
    model gives its pooled features). ``size``: ``paper`` or ``micro`` (smoke runs).
    ``image_size`` (or timm's ``img_size``, default 224): checked here, at creation.
    ``kwargs``: timm's ``in_chans``, ``drop_rate``, ``drop_path_rate``, or ArchConfig fields of
    dual-branch models (e.g. ``drop_path=0``), or timm constructor arguments of the baselines.
    Every model carries ``model.pretrained_cfg`` (also ``default_cfg``).
    """
    if not isinstance(pretrained, bool) and isinstance(pretrained, int):
        raise TypeError(
            f"create_model(model_name, pretrained=False, **kwargs) takes its arguments as timm's "
            f"does: give the number of classes as num_classes={pretrained}"
        )
    image_size = image_size or kwargs.pop("img_size", None) or 224
    for timm_only in ("pretrained_model_args", "scriptable", "exportable", "no_jit"):
        kwargs.pop(timm_only, None)  # timm.create_model's own, already applied by it
    source = _weights_source(pretrained, checkpoint_path, pretrained_cfg, pretrained_cfg_overlay)
    if source is not None:
        from cxrlib.models.hub import load_weights_source  # here: safetensors, the Hub client

        model = load_weights_source(source, num_classes, cache_dir=cache_dir, **kwargs)
        if model.card["model"] != model_name:
            raise ModelFileError(f"{source} holds a {model.card['model']!r}, not a {model_name!r}")
        return model.train()
    num_classes = 14 if num_classes is None else num_classes
    return _fresh_model(model_name, num_classes, size, image_size, pretrained, kwargs)


def _fresh_model(name, num_classes, size, image_size, pretrained, kwargs) -> nn.Module:
    """A new model (from ImageNet with ``pretrained`` True or "imagenet") with its card."""
    imagenet = pretrained in (True, "imagenet")
    # a library entry point: ImageNet weights are found in the environment's workspace
    workspace = Workspace.from_env() if imagenet else None
    model = build_model(
        name, num_classes, size, image_size, imagenet=imagenet, workspace=workspace, **kwargs
    )
    card = model_card(
        name=name,
        size=size,
        image_size=image_size,
        overrides=kwargs,
        classes=None,
        num_classes=num_classes,
    )
    attach_cfg(model, card["pretrained_cfg"])
    model.pretrained_cfg["source"] = "imagenet" if imagenet else None
    model.card = card
    return model


def _weights_source(pretrained, checkpoint_path, cfg, overlay) -> str | None:
    """Where the weights of a ``create_model`` call come from: a file, a folder or a Hub id
    (``hf-hub:`` names reach here as timm's ``pretrained_cfg`` with an ``hf_hub_id``)."""
    if checkpoint_path is not None:
        return str(checkpoint_path)
    if pretrained not in (True, False, None, "imagenet"):
        return str(pretrained)
    if pretrained is not True:
        return None
    for given in (overlay, cfg):
        if isinstance(given, dict) and given.get("file"):
            return str(given["file"])
    if isinstance(cfg, dict) and cfg.get("hf_hub_id"):
        return str(cfg["hf_hub_id"])
    return None


@torch.no_grad()
def predict_proba(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Probabilities of the paper's fused prediction rule (eval mode, no gradients)."""
    was_training = model.training
    model.eval()
    try:
        return torch.sigmoid(model(x))
    finally:
        model.train(was_training)


def reference_model(fixture: dict) -> nn.Module:
    """``ctranscnn_tiny`` at the size of the authors' reference fixture (``shared/fixtures``),
    with the fixture's weights loaded through :func:`convert_reference_checkpoint`: the model
    notebook 02 and the faithfulness tests compare with the authors' outputs."""
    arch = fixture["arch"]
    model = create_model(
        "ctranscnn_tiny",
        num_classes=fixture["num_classes"],
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
