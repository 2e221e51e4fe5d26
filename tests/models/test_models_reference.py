"""Faithfulness to the authors' CTransCNN: the shared fixture (outputs of their implementation)
is reproduced to 1e-5, and the parameter counts equal those measured on their code."""

from __future__ import annotations

import pytest
import torch

from cxrlib.models import convert_reference_checkpoint, create_model, reference_model
from cxrlib.models.dual_branch import forward_heads
from cxrlib.paper.fidelity import statistics_after_train_forward
from cxrlib.train.losses import asl_focal_terms, multi_head_loss

TOL = 1e-5


@pytest.fixture(scope="module")
def fixture(shared_dir):
    return torch.load(shared_dir / "fixtures/ctranscnn_reference_fixture.pt", weights_only=True)


@pytest.fixture
def model(fixture):
    """ctranscnn_tiny at the fixture's size with the authors' weights (what notebook 02 uses)."""
    return reference_model(fixture)


def _close(a, b):
    assert a.shape == b.shape
    assert (a - b).abs().max().item() <= TOL


def test_eval_outputs_match_reference(model, fixture):
    model.eval()
    with torch.no_grad():
        out = forward_heads(model, fixture["input"])
    _close(out.features["conv"], fixture["conv_features"])
    _close(out.features["cls"], fixture["cls_token_features"])
    _close(out.conv_logits, fixture["conv_logits"])
    _close(out.token_logits, fixture["trans_logits"])
    _close(out.probabilities(), fixture["fused_probabilities"])


def test_loss_matches_reference(model, fixture):
    model.eval()
    with torch.no_grad():
        heads = forward_heads(model, fixture["input"]).heads()
    terms = torch.stack([asl_focal_terms(h, fixture["target"]) for h in heads])
    _close(terms, fixture["loss_asl_focal_per_head"])
    _close(multi_head_loss(heads, fixture["target"]), fixture["loss"])


def test_batchnorm_statistics_after_one_train_forward(model, fixture):
    """Includes the MBR block's doubly applied BatchNorm (two running-stat updates)."""
    state, expected = statistics_after_train_forward(model, fixture)
    for key, value in expected.items():
        _close(state[key], value)


def test_fixture_backbone_parameter_count(model, fixture):
    heads = sum(
        p.numel() for n, p in model.named_parameters() if n.startswith(("conv_head", "token_head"))
    )
    total = sum(p.numel() for p in model.parameters())
    assert total - heads == fixture["backbone_num_params"]


def test_unknown_reference_keys_are_refused():
    with pytest.raises(KeyError, match="no counterpart"):
        convert_reference_checkpoint({"backbone.mystery.weight": torch.zeros(1)})


def _count(module):
    return sum(p.numel() for p in module.parameters())


def test_paper_size_parameter_counts():
    """models.md 2.5, measured on the authors' code."""
    model = create_model("ctranscnn_tiny", num_classes=14)
    heads = _count(model.conv_head) + _count(model.token_head)
    assert _count(model) - heads == 33_985_392
    assert heads == 8_988
    small = create_model("ctranscnn_tiny", num_classes=11)
    assert _count(small.conv_head) + _count(small.token_head) == 7_062
    assert (
        _count(model.stem),
        _count(model.conv1),
        _count(model.patch_embed),
        _count(model.tokens1),
    ) == (9_536, 13_248, 393_600, 2_366_592)
    assert [_count(b) for b in model.blocks] == [2_695_120] * 3 + [2_760_096] + [2_761_888] * 3 + [
        2_995_264
    ] + [3_002_944] * 2 + [3_068_992]
    block = model.blocks[0]
    assert (
        _count(block.cnn_block),
        _count(block.fusion_block),
        _count(block.c2t),
        _count(block.t2c),
    ) == (9_024, 9_024, 303_744, 6_736)
    layer = block.token_layer
    assert (_count(layer), _count(layer.attn), _count(layer.attn2), _count(layer.ffn)) == (
        2_366_592,
        591_360,
        591_360,
        1_181_568,
    )
    assert _count(model.token_norm) == 768
