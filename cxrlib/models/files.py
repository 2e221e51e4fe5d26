"""Models people can take away: the configuration every model carries, and model files that
describe themselves.

``pretrained_cfg`` (as timm's): what a model expects and what its outputs mean -- input size,
normalisation, how a grey X-ray becomes three channels, its classes, the rule that fuses its
heads. The data pipeline and :mod:`cxrlib.app.predict` read it instead of hard-coding those.

A *model file* (a finished run's ``best.pt``, or :func:`save_model`) holds the weights and a
*card*: the registered model and its settings, ``pretrained_cfg``, the data it was trained on
(dataset, split, phantom or real), the recipe, validation and test metrics and the per-class
operating points. :func:`load_model` needs nothing else: ``cxrlib.load_model("best.pt")``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cxrlib.core.errors import ModelFileError
from cxrlib.core.fileio import atomic_write
from cxrlib.data.loader import IMAGENET_MEAN, IMAGENET_STD
from cxrlib.models.registry import build_model, get_spec

CARD_FORMAT = 1
FUSION_RULES = {
    "weighted": "sigmoid(0.9 · CNN-head logits + 0.1 · token-head logits)",
    "sum": "sigmoid(CNN-head logits + token/label-head logits)",
    None: "sigmoid(logits)",
}


def pretrained_cfg(
    name: str, num_classes: int, image_size: int = 224, classes: list[str] | None = None
) -> dict[str, Any]:
    """The configuration a model of registered ``name`` carries (``model.pretrained_cfg``)."""
    spec = get_spec(name)
    return {
        "architecture": name,
        "input_size": (3, image_size, image_size),
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "grey_to_rgb": "replicate",  # the grey value copied to the three channels
        "resize": "bicubic, to a square (no crop)",
        "num_classes": num_classes,
        "classes": list(classes) if classes is not None else None,
        "fusion": FUSION_RULES[spec.arch.head_fusion if spec.arch is not None else None],
    }


def model_card(
    *,
    name: str,
    size: str,
    image_size: int,
    overrides: dict,
    classes: list[str],
    data: dict | None = None,
    recipe: dict | None = None,
    profile: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """What a model file says about its model (plain types: loads with ``weights_only``),
    including a dual-branch model's switch settings, so that it is rebuilt as it was trained
    even if the registry's defaults change (e.g. Conformer's up-sampling)."""
    spec = get_spec(name)
    return {
        "format": CARD_FORMAT,
        "model": name,
        "switches": spec.arch.switches() if spec.arch is not None else {},
        "size": size,
        "image_size": image_size,
        "overrides": dict(overrides),
        "pretrained_cfg": pretrained_cfg(name, len(classes), image_size, classes),
        "data": data or {},
        "recipe": recipe or {},
        "profile": profile,
        **extra,
    }


def save_model(model: nn.Module, path: str | os.PathLike, card: dict) -> Path:
    """Write ``{"model": weights, "card": card}`` to ``path`` atomically."""
    path = Path(path)
    with atomic_write(path, "wb") as handle:
        torch.save({"model": model.state_dict(), "card": card}, handle)
    return path


def read_card(checkpoint: dict, path: Path) -> dict:
    """The card of a loaded model file. A ``best.pt`` of an earlier version has none: its card
    is made from its run folder (:func:`cxrlib.train.model.load_run_model` does that)."""
    if "card" in checkpoint:
        return checkpoint["card"]
    if "settings" in checkpoint:
        raise ModelFileError(
            f"{path} is a best.pt of an earlier version, which describes itself only together "
            f"with its run folder: load it with cxrlib.load_model({str(path.parent)!r})"
        )
    raise ModelFileError(
        f"{path} is not a model file of this kit (no 'card' or 'settings'): save one with "
        f"cxrlib.models.files.save_model, or load a run's best.pt"
    )


def load_model(
    path: str | os.PathLike,
    num_classes: int | None = None,
    device: str | torch.device = "cpu",
    card: dict | None = None,
) -> nn.Module:
    """The model of a model file (a run's ``best.pt`` or :func:`save_model`'s file), in eval
    mode, with ``model.pretrained_cfg`` and ``model.card``. ``card``: the file's card when the
    file has none of its own (an earlier version's ``best.pt``; the run layer makes it).

    ``num_classes`` other than the file's: every weight but the classifier heads is loaded
    (fine-tuning on other labels), and the heads start afresh."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file (give a run's best.pt or a run folder)")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    card = card or read_card(checkpoint, path)
    classes = card["pretrained_cfg"]["classes"]
    wanted = num_classes or len(classes)
    overrides = {**card.get("switches", {}), **card["overrides"]}  # as it was trained
    model = build_model(
        card["model"], wanted, size=card["size"], image_size=card["image_size"], **overrides
    )
    weights = checkpoint["model"]
    if wanted != len(classes):
        own = model.state_dict()
        weights = {k: v for k, v in weights.items() if own[k].shape == v.shape}
        classes = None
    missing, unexpected = model.load_state_dict(weights, strict=wanted == len(classes or []))
    if unexpected:
        raise ModelFileError(f"{path}: weights the model does not have: {unexpected[:5]}")
    model.pretrained_cfg = pretrained_cfg(card["model"], wanted, card["image_size"], classes)
    model.pretrained_cfg["source"] = str(path)
    model.card = card
    model.reset_heads = missing  # the heads that start afresh (other num_classes), else []
    return model.to(device).eval()
