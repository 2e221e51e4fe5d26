"""ImageNet initialisation -- a result neither paper reports (both train from scratch).

* timm baselines: timm's own ImageNet weights (``timm.create_model(..., pretrained=True)``).
* dual-branch models (CTransCNN, CheXNet, Conformer and the ablations): the public ImageNet
  Conformer-Ti of mmpretrain/mmcls (Peng et al., ICCV 2021;
  ``conformer-tiny-p16_3rdparty_8xb128_in1k_20211206-f6860372.pth``), renamed by
  :func:`~cxrlib.models.reference.convert_conformer_checkpoint`. Every tensor whose name and
  shape match is loaded; what the modules add to Conformer (MMAEF's second attention, MBR's
  extra branches, IIM's gates, MEMSP, the IB blocks' inner convolutions) and the classifier
  heads stay randomly initialised -- :func:`init_from_conformer` reports which.

The checkpoint is downloaded once into ``<DATA_DIR>/pretrained/`` and checked against the
SHA-256 prefix in its name (OpenMMLab's convention); the workspace's ``conformer_weights``
(``$CXRLIB_CONFORMER_IMAGENET``) names a local copy instead (machines without internet).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from cxrlib.core.errors import UserError
from cxrlib.core.fileio import sha256_of
from cxrlib.core.workspace import ENV, Workspace
from cxrlib.models.reference import convert_conformer_checkpoint

CONFORMER_TINY_URL = (
    "https://download.openmmlab.com/mmclassification/v0/conformer/"
    "conformer-tiny-p16_3rdparty_8xb128_in1k_20211206-f6860372.pth"
)
CONFORMER_TINY_SHA256_PREFIX = "f6860372"
LOCAL_ENV = ENV["conformer_weights"]


class PretrainedWeightsError(UserError, OSError):
    """The ImageNet checkpoint cannot be had, or is not the expected file."""


def conformer_checkpoint(workspace: Workspace) -> Path:
    """The ImageNet Conformer-Ti file: the workspace's ``conformer_weights``
    (``$CXRLIB_CONFORMER_IMAGENET``), or downloaded once (checksum-checked) into
    ``<DATA_DIR>/pretrained/``."""
    if workspace.conformer_weights is not None:
        path = workspace.conformer_weights
        if not path.is_file():
            raise PretrainedWeightsError(f"${LOCAL_ENV} names {path}, which does not exist")
        return path
    path = workspace.data / "pretrained" / CONFORMER_TINY_URL.rsplit("/", 1)[1]
    if not path.is_file() and workspace.offline:
        raise PretrainedWeightsError(
            f"{path} is missing and offline (CXRLIB_OFFLINE=1) forbids downloading "
            f"{CONFORMER_TINY_URL}: copy the file there or set ${LOCAL_ENV} to its path"
        )
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(CONFORMER_TINY_URL, str(path), progress=True)
        except OSError as error:
            raise PretrainedWeightsError(
                f"could not download {CONFORMER_TINY_URL} ({error}): on a machine without "
                f"internet, copy the file there and set ${LOCAL_ENV} to its path"
            ) from error
        if not sha256_of(path).startswith(CONFORMER_TINY_SHA256_PREFIX):
            path.unlink()
            raise PretrainedWeightsError(
                f"{CONFORMER_TINY_URL} did not match its checksum ({CONFORMER_TINY_SHA256_PREFIX}"
                f"…): the download was removed; try again"
            )
    return path


def init_from_conformer(model: nn.Module, checkpoint: dict) -> dict:
    """Load every tensor of an mmpretrain Conformer checkpoint whose converted name and shape
    match ``model``'s. Returns ``{"loaded": [...], "random": [...], "shape_mismatch": [...]}``
    (parameter and buffer names of ``model``)."""
    weights = convert_conformer_checkpoint(checkpoint)
    own = model.state_dict()
    loaded = {k: v for k, v in weights.items() if k in own and own[k].shape == v.shape}
    mismatch = sorted(k for k in weights if k in own and own[k].shape != weights[k].shape)
    model.load_state_dict(loaded, strict=False)
    return {
        "loaded": sorted(loaded),
        "random": sorted(k for k in own if k not in loaded),
        "shape_mismatch": mismatch,
    }
