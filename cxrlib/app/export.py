"""Export a trained model to ONNX or TorchScript: an image batch in, class probabilities out.

``python -m cxrlib export RUN_OR_MODEL --format onnx|torchscript [--out FILE]``

The exported graph maps a normalised batch ``B×3×S×S`` (``B`` free; ``S`` and the
normalisation as the model's ``pretrained_cfg`` says: the grey X-ray resized to S×S,
replicated to three channels, ImageNet mean/std) to ``B×K`` probabilities of the paper's fused
rule. Beside the file, ``<file>.json`` holds the model's ``pretrained_cfg`` and card (classes,
operating points, what it was trained on), so the file is usable without this kit.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from cxrlib.core.errors import UserError
from cxrlib.core.fileio import atomic_write, atomic_write_text
from cxrlib.train.model import load_model_file

FORMATS = {"onnx": ".onnx", "torchscript": ".ts.pt"}


class ExportError(UserError, ImportError):
    """What an export needs is not installed."""


class Probabilities(nn.Module):
    """``model`` returning a plain tensor: the probabilities of its fused prediction rule."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images).probabilities()


def export_model(source: str | os.PathLike, fmt: str, out: str | os.PathLike | None = None) -> Path:
    """Write the model of ``source`` (a run folder or a model file) as ``fmt``; returns the
    file. The model runs on the CPU in fp32 for the export."""
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
    source = Path(source)
    folder = source if source.is_dir() else source.parent
    out = Path(out) if out else folder / f"model{FORMATS[fmt]}"
    wrapped = Probabilities(model).eval()
    size = model.pretrained_cfg["input_size"][-1]
    example = torch.randn(2, 3, size, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and exporter chatter about shape arithmetic
        if fmt == "torchscript":
            traced = torch.jit.trace(wrapped, example, check_trace=False)
            with atomic_write(out, "wb") as handle:
                torch.jit.save(traced, handle)
        else:
            batch = torch.export.Dim("batch", min=1, max=4096)
            program = torch.onnx.export(
                wrapped,
                (example,),
                dynamic_shapes={"images": {0: batch}},
                input_names=["images"],
                output_names=["probabilities"],
                dynamo=True,
                verbose=False,
            )
            with atomic_write(out, "wb") as handle:
                handle.write(program.model_proto.SerializeToString())
    sidecar = {
        "format": fmt,
        "input": "images: float32 B×3×S×S, normalised as pretrained_cfg says",
        "output": "probabilities: float32 B×K, classes in pretrained_cfg order",
        "pretrained_cfg": model.pretrained_cfg,
        "card": model.card,
    }
    atomic_write_text(out.with_name(out.name + ".json"), json.dumps(sidecar, indent=2))
    return out
