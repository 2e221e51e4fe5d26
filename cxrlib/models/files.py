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

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cxrlib.core.errors import DamagedFileError, ModelFileError
from cxrlib.core.fileio import atomic_write
from cxrlib.data.loader import IMAGENET_MEAN, IMAGENET_STD
from cxrlib.models.registry import build_model, get_spec

CARD_FORMAT = 1
FUSION_RULES = {
    "weighted": "sigmoid(0.9 · CNN-head logits + 0.1 · token-head logits)",
    "sum": "sigmoid(CNN-head logits + token/label-head logits)",
    None: "sigmoid(logits)",
}


#: What a grey input (``in_chans=1``) is normalised with: the ImageNet statistics' averages.
GREY_MEAN, GREY_STD = (sum(IMAGENET_MEAN) / 3,), (sum(IMAGENET_STD) / 3,)


def pretrained_cfg(
    name: str,
    num_classes: int,
    image_size: int = 224,
    classes: list[str] | None = None,
    *,
    in_chans: int = 3,
) -> dict[str, Any]:
    """The configuration a model of registered ``name`` carries (``model.pretrained_cfg``, also
    ``model.default_cfg``), in timm's keys, so that ``timm.data.resolve_model_data_config`` +
    ``create_transform`` build the kit's input: the whole image resized (bicubic) to a
    square -- ``crop_pct=1`` with ``crop_mode="squash"``, no centre crop -- and normalised
    with the ImageNet statistics. ``first_conv``/``classifier`` name the model's parameters
    (a timm baseline's as timm registers them); ``label_names`` are the classes (timm's key).
    Beside timm's keys: ``classes`` (the same names), ``grey_to_rgb`` and ``fusion``."""
    spec = get_spec(name)
    if spec.arch is not None:
        head = "token_head" if spec.arch.label_decoder == "off" else "label_head"
        own = {"first_conv": "stem.0", "classifier": ("conv_head", head), "fixed_input_size": False}
        own["min_input_size"] = (in_chans, 64, 64)
    else:
        timm_cfg = timm_pretrained_cfg(spec.timm_name)
        own = {k: timm_cfg[k] for k in ("first_conv", "classifier", "fixed_input_size")}
        if timm_cfg.get("pool_size") and not own["fixed_input_size"]:  # CNNs: at this size
            own["pool_size"] = tuple(image_size // 32 for _ in range(2))
    grey = in_chans == 1
    return {
        "architecture": name,
        "input_size": (in_chans, image_size, image_size),
        "interpolation": "bicubic",
        "crop_pct": 1.0,
        "crop_mode": "squash",  # the whole image to a square, as the kit's cache resizes it
        "mean": GREY_MEAN if grey else IMAGENET_MEAN,
        "std": GREY_STD if grey else IMAGENET_STD,
        "grey_to_rgb": "none (one channel)" if grey else "replicate",
        "resize": "bicubic, to a square (no crop)",
        "num_classes": num_classes,
        **own,
        "label_names": list(classes) if classes is not None else None,
        "classes": list(classes) if classes is not None else None,
        "fusion": FUSION_RULES[spec.arch.head_fusion if spec.arch is not None else None],
        "license": "mit",  # the kit's code; weights trained here are the user's
    }


def timm_pretrained_cfg(timm_name: str) -> dict[str, Any]:
    """timm's registered configuration of ``timm_name`` (first conv, classifier, pool size)."""
    import timm  # here: the registry imports it anyway; this keeps the dependency visible

    return timm.models.get_pretrained_cfg(timm_name).to_dict()


def attach_cfg(model: nn.Module, cfg: dict[str, Any]) -> nn.Module:
    """Give ``model`` its configuration as timm models carry it (``pretrained_cfg`` and
    ``default_cfg``, the same dict) and torchxrayvision's ``pathologies`` (the class names)."""
    model.pretrained_cfg = model.default_cfg = cfg
    model.pathologies = list(cfg["classes"] or [])
    return model


def model_card(
    *,
    name: str,
    size: str,
    image_size: int,
    overrides: dict,
    classes: list[str] | None,
    data: dict | None = None,
    recipe: dict | None = None,
    profile: str | None = None,
    num_classes: int | None = None,
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
        "pretrained_cfg": pretrained_cfg(
            name,
            len(classes) if classes else num_classes,
            image_size,
            classes,
            in_chans=overrides.get("in_chans", 3),
        ),
        "data": data or {},
        "recipe": recipe or {},
        "profile": profile,
        **extra,
    }


#: The key under which a checkpoint or model file stores the digest of the rest of its content.
CHECKSUM_KEY = "checksum"


def state_digest(state) -> str:
    """The SHA-256 of a checkpoint's content -- every tensor's dtype, shape and bytes, every
    other value's type and repr, in a fixed order. ``torch.load`` reads a file whose bytes were
    altered without a word (its zip format stores no checksum it checks), so every file the kit
    writes carries this digest and every read compares it (:func:`load_checked`)."""
    digest = hashlib.sha256()

    def feed(value) -> None:
        if isinstance(value, torch.Tensor):
            tensor = value.detach().to("cpu").contiguous()
            digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}".encode())
            digest.update(
                tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
            )
        elif isinstance(value, dict):
            digest.update(b"{")
            for key in sorted(value, key=str):
                digest.update(repr(key).encode())
                feed(value[key])
            digest.update(b"}")
        elif isinstance(value, (list, tuple)):
            digest.update(b"[" if isinstance(value, list) else b"(")
            for item in value:
                feed(item)
            digest.update(b"]")
        else:
            digest.update(f"{type(value).__name__}:{value!r};".encode())

    feed(state)
    return digest.hexdigest()


def with_checksum(state: dict) -> dict:
    """``state`` with the digest of its content under :data:`CHECKSUM_KEY`."""
    return {**state, CHECKSUM_KEY: state_digest(state)}


def load_checked(path: str | os.PathLike) -> dict:
    """A checkpoint or model file, its digest verified (files of earlier versions carry none
    and load as they are); :class:`~cxrlib.core.errors.DamagedFileError` when it does not match
    -- bytes altered on disk or in a copy -- or when the file cannot be read at all."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, not a zip, not a checkpoint
        first = str(err).split(". ")[0].strip()[:160]  # torch's own advice is not the user's
        raise DamagedFileError(
            f"{path} cannot be read as a checkpoint ({type(err).__name__}: {first})"
        ) from err
    stored = state.pop(CHECKSUM_KEY, None) if isinstance(state, dict) else None
    if stored is not None and stored != state_digest(state):
        raise DamagedFileError(f"{path} fails its checksum: its bytes changed after writing")
    return state


def save_model(model: nn.Module, path: str | os.PathLike, card: dict) -> Path:
    """Write ``{"model": weights, "card": card}`` (with its checksum) to ``path`` atomically."""
    path = Path(path)
    with atomic_write(path, "wb") as handle:
        torch.save(with_checksum({"model": model.state_dict(), "card": card}), handle)
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
    checkpoint: dict | None = None,
    **kwargs: Any,
) -> nn.Module:
    """The model of a model file (a run's ``best.pt`` or :func:`save_model`'s file), in eval
    mode, with ``model.pretrained_cfg`` and ``model.card``. ``card``: the file's card when the
    file has none of its own (an earlier version's ``best.pt``; the run layer makes it).

    ``num_classes`` other than the file's: every weight but the classifier heads is loaded
    (fine-tuning on other labels), and the heads start afresh. ``kwargs`` (``in_chans=1``,
    ``drop_path_rate``, ...) change the rebuilt model as :func:`create_model` would."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file (give a run's best.pt or a run folder)")
    if checkpoint is None:  # (the caller may have read it already: once is enough)
        try:
            checkpoint = load_checked(path)
        except DamagedFileError as err:
            raise ModelFileError(
                f"{err}: copy the model file again, or train the run again"
            ) from err
    card = card or read_card(checkpoint, path)
    return model_from_card(card, checkpoint["model"], path, num_classes, **kwargs).to(device)


#: state-dict names of earlier versions -> today's (timm baselines were wrapped as ``net``;
#: CheXNet's label head was two bare parameters)
LEGACY_NAMES = (
    ("net.", ""),
    ("label_weight", "label_head.weight"),
    ("label_bias", "label_head.bias"),
)


def _current_names(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in weights.items():
        for old, new in LEGACY_NAMES:
            if key.startswith(old):
                key = new + key[len(old) :]
        out[key] = value
    return out


#: torch.nn.init's functions, which a model's constructor calls to draw its initial weights.
_INIT_FUNCTIONS = (
    "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_",
    "sparse_",
)  # fmt: skip


@contextmanager
def skipped_init() -> Iterator[None]:
    """Build a model without drawing its initial weights (they are all loaded next): every
    ``torch.nn.init`` function leaves its tensor as it is. A paper-size CTransCNN is built
    a second faster, which ``predict`` feels at every start."""
    saved = {name: getattr(torch.nn.init, name) for name in _INIT_FUNCTIONS}
    try:
        for name in _INIT_FUNCTIONS:
            setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for name, function in saved.items():
            setattr(torch.nn.init, name, function)


def model_from_card(
    card: dict,
    weights: dict[str, torch.Tensor],
    source: str | os.PathLike,
    num_classes: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    """The model a card describes, with ``weights`` (from a ``.pt`` model file or a
    safetensors file, named by ``source`` in errors), in eval mode, carrying its
    ``pretrained_cfg``, ``card``, ``pathologies`` and ``op_threshs``.

    ``num_classes`` other than the card's: the heads start afresh; ``in_chans`` other than 3:
    the first convolution's weights are adapted as timm adapts them (summed for grey)."""
    classes = card["pretrained_cfg"]["classes"] or None
    known = len(classes) if classes else card["pretrained_cfg"]["num_classes"]
    wanted = known if num_classes is None else num_classes
    overrides = {**card.get("switches", {}), **card["overrides"], **kwargs}  # as it was trained
    same_classes = wanted == known
    # every weight is about to be loaded: drawing random initial ones first is wasted time
    with skipped_init() if same_classes and "in_chans" not in overrides else nullcontext():
        model = build_model(
            card["model"], wanted, size=card["size"], image_size=card["image_size"], **overrides
        )
    weights = _current_names(weights)
    own = model.state_dict()
    first_conv = own_cfg_first_conv(card["model"]) + ".weight"
    if first_conv in weights and weights[first_conv].shape != own[first_conv].shape:
        from timm.models import adapt_input_conv  # timm's rule for other input channels

        weights[first_conv] = adapt_input_conv(own[first_conv].shape[1], weights[first_conv])
    if not same_classes:
        weights = {k: v for k, v in weights.items() if k in own and own[k].shape == v.shape}
        classes = None
    missing, unexpected = model.load_state_dict(weights, strict=same_classes)
    if unexpected:
        raise ModelFileError(f"{source}: weights the model does not have: {unexpected[:5]}")
    in_chans = overrides.get("in_chans", 3)
    cfg = pretrained_cfg(card["model"], wanted, card["image_size"], classes, in_chans=in_chans)
    cfg["source"] = str(source)
    attach_cfg(model, cfg)
    model.card = card
    model.reset_heads = missing  # the heads that start afresh (other num_classes), else []
    points = (card.get("operating_points") or {}).get("thresholds") or {}
    if classes and points:  # torchxrayvision's name: one operating point per class
        # a class without one (too few positives on validation) is NaN, as torchxrayvision's
        model.op_threshs = torch.tensor(
            [float("nan") if points.get(c) is None else float(points[c]) for c in classes]
        )
    else:
        model.op_threshs = None
    return model.eval()


def own_cfg_first_conv(name: str) -> str:
    """The first convolution's name in a model of registered ``name``."""
    return pretrained_cfg(name, 1)["first_conv"]
