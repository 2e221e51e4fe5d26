"""Export a trained model: ONNX or TorchScript (an image batch in, class probabilities
out), or safetensors weights in the Hugging Face Hub layout.

``python -m cxrlib export RUN_OR_MODEL --format onnx|torchscript|safetensors [--out PATH]``

The exported graph maps a normalised batch ``B×3×H×W`` (normalised as the model's
``pretrained_cfg`` says: the grey X-ray resized to a square, replicated to three channels,
ImageNet mean/std) to ``B×K`` probabilities of the paper's fused rule. ``B`` is free, and so
are ``H`` and ``W`` (multiples of 32, at least 64 px) unless the model has absolute position
embeddings (ViT, DeiT, Swin: their one size); TorchScript refuses a wrong size with a sentence.
Beside the file, ``<file>.json`` holds the model's ``pretrained_cfg`` and card (classes,
operating points, what it was trained on), so the file is usable without this kit.
``safetensors`` writes :func:`cxrlib.models.hub.save_pretrained`'s folder, which
``cxrlib.from_pretrained`` and timm load. Without ``--out`` the export goes into the current
folder, named after the model and its data (:func:`default_name`), never into the run folder.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from cxrlib.core.errors import UserError
from cxrlib.core.fileio import atomic_write, atomic_write_text
from cxrlib.models.dual_branch import image_size_multiple
from cxrlib.models.hub import WEIGHTS_NAME, save_pretrained
from cxrlib.train.model import load_model_file

FORMATS = {"onnx": ".onnx", "torchscript": ".ts.pt", "safetensors": ""}


class ExportError(UserError, ImportError):
    """What an export needs is not installed."""


class Probabilities(nn.Module):
    """``model`` returning the probabilities of its fused prediction rule."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model(images))


class CheckedImages(nn.Module):
    """A traced model behind a scripted check of its input: a wrong shape is refused with a
    sentence, as the model itself refuses it (a trace alone would answer at any size)."""

    def __init__(self, traced: nn.Module, channels: int, multiple: int, fixed: int) -> None:
        super().__init__()
        self.traced = traced
        self.channels, self.multiple, self.fixed = channels, multiple, fixed

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.size(1) != self.channels:
            raise RuntimeError(
                f"expected a batch B×{self.channels}×H×W, normalised as the .json says"
            )
        h, w = images.size(2), images.size(3)
        if self.fixed > 0 and (h != self.fixed or w != self.fixed):
            raise RuntimeError(f"this model takes {self.fixed}×{self.fixed} images only")
        if h % self.multiple != 0 or w % self.multiple != 0 or min(h, w) < 64:
            raise RuntimeError(
                f"image height and width must be multiples of {self.multiple}, at least 64"
            )
        return self.traced(images)


def input_rule(model: nn.Module) -> dict:
    """What an exported model takes: ``channels``, ``multiple`` (of H and W), ``fixed`` (the
    one size of a model with absolute position embeddings, else 0) -- from its cfg."""
    cfg = model.pretrained_cfg
    channels, size = cfg["input_size"][0], cfg["input_size"][-1]
    arch = getattr(model, "arch", None)
    multiple = image_size_multiple(arch.patch_size) if arch is not None else 32
    return {
        "channels": channels,
        "multiple": multiple,
        "fixed": size if cfg.get("fixed_input_size") else 0,
    }


def _onnx(wrapped: nn.Module, example: torch.Tensor, rule: dict, out: Path) -> None:
    """ONNX through torch.export: the batch free; height and width free (multiples of
    ``rule["multiple"]``) unless the model has a fixed size."""
    dims = {0: torch.export.Dim("batch", min=1, max=4096)}
    if not rule["fixed"]:
        top = 4096 // rule["multiple"]
        dims[2] = rule["multiple"] * torch.export.Dim("height", min=64 // rule["multiple"], max=top)
        dims[3] = rule["multiple"] * torch.export.Dim("width", min=64 // rule["multiple"], max=top)
    # onnxscript's optimiser warns once per Split node it leaves unfolded (dozens of lines
    # that say nothing to the user); its warnings are muted for the export, errors still show
    optimiser = logging.getLogger("onnxscript")
    level = optimiser.level
    optimiser.setLevel(logging.ERROR)
    try:
        program = torch.onnx.export(
            wrapped,
            (example,),
            dynamic_shapes={"images": dims},
            input_names=["images"],
            output_names=["probabilities"],
            dynamo=True,
            # onnxscript's graph optimiser took 110 of the 137 s of a paper-size CheXNet's export
            # here; onnxruntime folds constants and fuses when it loads the file, so the file
            # runs as fast without it (benchmarks/export_speed.py measures both)
            optimize=False,
            verbose=False,
        )
    finally:
        optimiser.setLevel(level)
    with atomic_write(out, "wb") as handle:
        handle.write(program.model_proto.SerializeToString())


def default_name(card: dict) -> str:
    """Where an export goes without ``--out``: the current folder, named after the model and
    what it was trained on (``ctranscnn_tiny-cxr14-paper``), never into the run folder."""
    data = card.get("data") or {}
    parts = [card.get("model") or "model", data.get("dataset"), data.get("split")]
    return "-".join(str(p) for p in parts if p).replace("/", "_").replace(":", "_")


def export_model(source: str | os.PathLike, fmt: str, out: str | os.PathLike | None = None) -> Path:
    """Write the model of ``source`` (a run folder or a model file) as ``fmt``; returns the
    file (for ``safetensors``, the folder's ``model.safetensors``). The model runs on the CPU
    in fp32 for the export."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    if fmt == "onnx":
        try:
            import onnxscript  # noqa: F401 -- torch's ONNX exporter needs it
        except ImportError as error:
            raise ExportError(
                "the ONNX exporter needs the packages onnx and onnxscript: "
                "pip install 'cxrlib[export]' (or pip install onnx onnxscript)"
            ) from error
    model = load_model_file(source)
    if fmt == "safetensors":  # the Hub layout: model.safetensors, config.json, README.md
        target = save_pretrained(model, Path(out) if out else default_name(model.card))
        return target / WEIGHTS_NAME
    out = Path(out) if out else Path(default_name(model.card) + FORMATS[fmt])
    wrapped = Probabilities(model).eval()
    rule = input_rule(model)
    size = model.pretrained_cfg["input_size"][-1]
    example = torch.randn(2, rule["channels"], size, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and exporter chatter about shape arithmetic
        if fmt == "torchscript":
            traced = torch.jit.trace(wrapped, example, check_trace=False)
            checked = torch.jit.script(CheckedImages(traced, **rule))
            with atomic_write(out, "wb") as handle:
                torch.jit.save(checked, handle)
        else:
            _onnx(wrapped, example, rule, out)
    sizes = (
        f"{rule['fixed']}×{rule['fixed']} only"
        if rule["fixed"]
        else f"any H, W multiples of {rule['multiple']}, at least 64 (trained at {size})"
    )
    sidecar = {
        "format": fmt,
        "input": f"images: float32 B×{rule['channels']}×H×W, normalised as pretrained_cfg says",
        "image_size": sizes,
        "output": "probabilities: float32 B×K, classes in pretrained_cfg order",
        "pretrained_cfg": model.pretrained_cfg,
        "card": model.card,
    }
    atomic_write_text(out.with_name(out.name + ".json"), json.dumps(sidecar, indent=2))
    return out
