"""The kit's own architectures as timm models: each dual-branch name of the registry is a
timm entry point (``timm.models.register_model``), so that ``timm.create_model(
"ctranscnn_tiny", pretrained=False, num_classes=14)`` -- and timm's ``local-dir:``/``hf-hub:``
names of a :func:`~cxrlib.models.hub.save_pretrained` folder -- build them through
:func:`cxrlib.models.factory.create_model`.

Importing this module registers them; ``import cxrlib`` arranges that when timm is (or gets)
imported, so that ``import cxrlib`` itself stays light. The timm baselines are timm's own
models and are not registered again.
"""

from __future__ import annotations

from collections.abc import Callable

import timm.models
from torch import nn

from cxrlib.data.loader import IMAGENET_MEAN, IMAGENET_STD
from cxrlib.models.factory import create_model
from cxrlib.models.registry import get_spec, list_models

#: timm's default configuration of each entry point (no weights: the authors released none)
default_cfgs = {
    name: {
        "input_size": (3, 224, 224),
        "interpolation": "bicubic",
        "crop_pct": 1.0,
        "crop_mode": "squash",
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "num_classes": 14,
        "first_conv": "stem.0",
        "classifier": ("conv_head", "token_head" if arch.label_decoder == "off" else "label_head"),
        "license": "mit",
    }
    for name in list_models("dual-branch")
    if (arch := get_spec(name).arch) is not None
}


def _entry_point(name: str) -> Callable[..., nn.Module]:
    def entry(pretrained: bool = False, **kwargs) -> nn.Module:
        return create_model(name, pretrained, **kwargs)

    entry.__name__ = entry.__qualname__ = name  # timm registers an entry point by its name
    entry.__module__ = __name__
    entry.__doc__ = f"{name}: cxrlib.create_model({name!r}, pretrained, **kwargs)."
    return entry


def register() -> list[str]:
    """Register every dual-branch model with timm (again: timm keeps the last); the names."""
    names = list(default_cfgs)
    for name in names:
        if (
            not timm.models.is_model(name)
            or timm.models.model_entrypoint(name).__module__ != __name__
        ):
            timm.models.register_model(_entry_point(name))
    return names


REGISTERED = register()
