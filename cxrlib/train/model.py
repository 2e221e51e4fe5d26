"""The model of a run: built in one place from the run's configuration, described by a card,
loaded back from its ``best.pt`` -- also from ``best.pt`` files of earlier versions, which
describe themselves only together with their run folder.

Training, the test evaluation, Grad-CAM and prediction all call :func:`build_run_model` or
:func:`load_run_model`; ``cxrlib.load_model`` is :func:`load_model_file`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from cxrlib.core.config import Config
from cxrlib.core.errors import DamagedFileError, ModelFileError, RunNotFinishedError
from cxrlib.models.files import load_checked, load_model, model_card
from cxrlib.models.registry import build_model, check_model, get_spec
from cxrlib.train.layout import RunFolder
from cxrlib.train.record import config_from_settings, normalise_settings, read_settings_file
from cxrlib.train.results import read_metrics


def model_overrides(config: Config) -> dict:
    """The registry overrides a run's configuration sets (dual-branch models: stochastic
    depth)."""
    return {"drop_path": config.model.drop_path} if get_spec(config.model.model).arch else {}


def build_run_model(config: Config, num_classes: int, *, initialise: bool = True) -> nn.Module:
    """The network of ``config`` for ``num_classes`` labels (the one place a run's model is
    built).

    ``initialise``: start from the weights ``PRETRAINED`` names (ImageNet); False when a
    checkpoint's weights are loaded next (nothing is downloaded then)."""
    check_model(config.model.model)
    return build_model(
        config.model.model,
        num_classes,
        size=config.model.model_size,
        image_size=config.data.image_size,
        imagenet=initialise and config.model.pretrained == "imagenet",
        workspace=config.workspace,
        **model_overrides(config),
    )


def run_card(config: Config, settings: dict, classes: list[str]) -> dict:
    """The card of a run's model file: the model, its classes, the data and the recipe."""
    return model_card(
        name=config.model.model,
        size=config.model.model_size,
        image_size=config.data.image_size,
        overrides=model_overrides(config),
        classes=classes,
        data=settings["data"],
        recipe=settings["config"],
        profile=config.profile,
        runtime=settings["runtime"],
        code=settings.get("code"),
    )


def read_model_file(path: Path) -> dict:
    """A model file's content, its checksum verified (a one-line error naming the file)."""
    try:
        return load_checked(path)
    except DamagedFileError as err:
        raise ModelFileError(
            f"{err}; give a run's best.pt (or its folder), copied again if it was altered"
        ) from err


def legacy_card(path: Path, checkpoint: dict | None = None) -> dict | None:
    """The card of a ``best.pt`` of an earlier version (it holds the run's record but no card),
    made from that record and the ``metrics.json`` beside it; None for a file with a card."""
    checkpoint = read_model_file(path) if checkpoint is None else checkpoint
    if not isinstance(checkpoint, dict) or "card" in checkpoint or "settings" not in checkpoint:
        return None
    settings = normalise_settings(checkpoint["settings"])
    metrics_file = path.parent / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    if metrics.get("classes") is None:
        raise ModelFileError(
            f"{path} is a best.pt of an earlier version, which names its classes only in the "
            f"metrics.json of its run folder, and {metrics_file} is missing: load it from there"
        )
    card = run_card(config_from_settings(settings), settings, metrics["classes"])
    return card | {"val": checkpoint.get("val"), "test": metrics.get("test")}


def load_model_file(
    path: str | os.PathLike, num_classes: int | None = None, device: str | torch.device = "cpu"
) -> nn.Module:
    """A trained model from its file (a run's ``best.pt``) or its run folder, in eval mode,
    with ``model.pretrained_cfg`` and ``model.card`` (see :func:`cxrlib.models.load_model`);
    a ``best.pt`` of an earlier version loads from its run folder."""
    path = Path(path)
    if path.is_dir():
        path = path / "best.pt"
    if not path.is_file():
        return load_model(path, num_classes, device)  # its error names the missing file
    checkpoint = read_model_file(path)  # read once, for the card and the weights
    card = legacy_card(path, checkpoint)
    return load_model(path, num_classes, device, card=card, checkpoint=checkpoint)


def load_run_model(folder: str | os.PathLike) -> tuple[nn.Module, Config, list[str]]:
    """The best model of a finished run (eval mode, CPU), its configuration and its classes."""
    run = RunFolder(Path(folder))
    metrics = read_metrics(run)
    if metrics is None or not (run.path / (metrics or {}).get("model_file", "best.pt")).is_file():
        raise RunNotFinishedError(f"{run.path} holds no finished run: train it first")
    model = load_model_file(run.path / metrics.get("model_file", "best.pt"))  # the tested one
    return model, config_from_settings(read_settings_file(run)), list(metrics["classes"])
