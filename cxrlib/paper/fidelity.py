"""How closely ``ctranscnn_tiny`` reproduces the authors' CTransCNN, measured (notebook 02).

The reference fixture (``shared/fixtures/ctranscnn_reference_fixture.pt``, made with the
authors' released code, github.com/wuliwuxin/CTransCNN @ cd1ed1d8; ``shared/design/models.md``
section 2.6) holds their weights for a small configuration, an input and every output of their
implementation. Loading those weights into our network (:func:`~cxrlib.models.reference.
convert_reference_checkpoint`) and computing the same outputs gives the largest absolute
difference per output: floating-point rounding, not zero. :func:`fixture_differences` is the
one place that computes them; the README quotes what it printed, the tests hold it to 1e-5.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from cxrlib.core.workspace import project_root
from cxrlib.models.factory import reference_model
from cxrlib.models.reference import convert_reference_checkpoint
from cxrlib.train.losses import asl_focal_terms, multi_head_loss

#: The tolerance the tests hold every difference to.
TOLERANCE = 1e-5
#: The environment variable that names the fixture elsewhere (read by the entry points).
FIXTURE_ENV = "CXRLIB_REFERENCE_FIXTURE"


def default_fixture_path() -> Path:
    """``shared/fixtures/…`` beside the project: where the project's reference folder is."""
    return project_root().parent / "shared" / "fixtures" / "ctranscnn_reference_fixture.pt"


def _row(name: str, ours: torch.Tensor, theirs: torch.Tensor) -> dict:
    if ours.shape != theirs.shape:
        raise ValueError(f"{name}: shape {tuple(ours.shape)} against {tuple(theirs.shape)}")
    difference = (ours.double() - theirs.double()).abs().max().item()
    return {
        "output": name,
        "shape": "×".join(map(str, theirs.shape)) or "scalar",
        "largest absolute difference": difference,
        "within 1e-5": difference <= TOLERANCE,
    }


def statistics_after_train_forward(
    model: nn.Module, fixture: dict
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Our state dict after one train-mode forward of the fixture's input, and the authors'
    BatchNorm statistics after the same forward, renamed to ours (the MBR block applies one
    BatchNorm twice, so its running statistics are updated twice in both)."""
    model.train()
    with torch.no_grad():
        model(fixture["input"])
    expected = convert_reference_checkpoint(
        {f"backbone.{k}": v for k, v in fixture["running_stats_after_one_train_forward"].items()}
    )
    return model.state_dict(), expected


def fixture_differences(fixture: dict) -> pd.DataFrame:
    """The largest absolute difference of every output of the authors' implementation in the
    fixture: eval-mode features, both heads, the fused probabilities, the loss (per head and
    term, and in all) and the BatchNorm statistics after one train-mode forward."""
    model = reference_model(fixture).eval()
    with torch.no_grad():
        out = model.forward_heads(fixture["input"])
    heads = out.heads()
    terms = torch.stack([asl_focal_terms(h, fixture["target"]) for h in heads])
    rows = [
        _row("CNN features", out.features["conv"], fixture["conv_features"]),
        _row("cls token features", out.features["cls"], fixture["cls_token_features"]),
        _row("CNN head logits", out.conv_logits, fixture["conv_logits"]),
        _row("token head logits", out.token_logits, fixture["trans_logits"]),
        _row("fused probabilities", out.probabilities(), fixture["fused_probabilities"]),
        _row("loss terms per head", terms, fixture["loss_asl_focal_per_head"]),
        _row("loss", multi_head_loss(heads, fixture["target"]), fixture["loss"]),
    ]
    state, expected = statistics_after_train_forward(model, fixture)
    worst = max(expected, key=lambda k: (state[k].double() - expected[k].double()).abs().max())
    row = _row("BatchNorm statistics (worst tensor)", state[worst], expected[worst])
    rows.append(
        row | {"output": f"BatchNorm statistics after a train forward ({len(expected)} tensors)"}
    )
    return pd.DataFrame(rows)


def fidelity_table(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """:func:`fixture_differences` of the fixture at ``path`` (default
    :func:`default_fixture_path`); an empty table, saying where it was looked for, when the
    fixture is not there."""
    path = Path(path) if path else default_fixture_path()
    if not path.is_file():
        print(f"the authors' reference fixture is not at {path}: no comparison (set "
              f"${FIXTURE_ENV} to its path; it is not redistributed with the kit)")  # fmt: skip
        return pd.DataFrame()
    return fixture_differences(torch.load(path, map_location="cpu", weights_only=True))
