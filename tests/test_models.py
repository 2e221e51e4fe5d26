"""Every registered model: forward/backward, gradients, ablation structure, determinism."""

from __future__ import annotations

import pytest
import torch

from cxrlib.models import ArchConfig, create_model, list_models, predict_proba
from cxrlib.models.summary import ABLATIONS, ablation_differences, parameter_name_diff

MICRO = {"size": "micro", "image_size": 64}


def _unzero_residual_bns(model):
    """Zero-initialised last BNs block gradients to their branch until the first step; give
    them weight 1 so that the check sees every parameter that will learn."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d) and not module.weight.detach().any():
            torch.nn.init.ones_(module.weight)


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_reaches_every_parameter(name):
    torch.manual_seed(0)
    model = create_model(name, 5, **MICRO)
    _unzero_residual_bns(model)
    model.eval()  # no stochastic depth: a dropped branch would hide a missing gradient
    out = model(torch.randn(2, 3, 64, 64))
    assert out.logits.shape == (2, 5)
    for head in out.heads():
        assert head.shape == (2, 5) and torch.isfinite(head).all()
    sum(h.square().mean() for h in out.heads()).backward()
    missing = [
        n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert not missing, f"no gradient reaches {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_output_contract_and_probabilities():
    model = create_model("ctranscnn_tiny", 3, **MICRO)
    x = torch.randn(2, 3, 64, 64)
    model.eval()
    out = model(x)
    assert torch.allclose(out.logits, 0.9 * out.conv_logits + 0.1 * out.token_logits)
    assert torch.allclose(predict_proba(model, x), torch.sigmoid(out.logits))
    chexnet = create_model("chexnet_tiny", 3, **MICRO).eval()
    out = chexnet(x)
    assert torch.allclose(out.logits, out.conv_logits + out.token_logits)
    assert out.features["labels"].shape == (2, 3, 48)
    single = create_model("resnet50", 3, **MICRO).eval()(x)
    assert single.conv_logits is None and len(single.heads()) == 1


def _names_removed(variant, full):
    a, b = create_model(variant, 5, **MICRO), create_model(full, 5, **MICRO)
    only_variant, only_full, changed = parameter_name_diff(a, b)
    assert not changed, f"shapes changed: {sorted(changed)[:5]}"
    return only_variant, only_full


def test_removing_iim_removes_exactly_the_gates():
    added, removed = _names_removed("ctranscnn_tiny-no_iim", "ctranscnn_tiny")
    assert not added and removed
    assert all(".c2t.gate" in n or ".t2c.refine" in n for n in removed)


def test_removing_mmaef_removes_exactly_the_second_attention():
    added, removed = _names_removed("ctranscnn_tiny-no_mmaef", "ctranscnn_tiny")
    assert not added and removed
    assert all(".attn2." in n or ".norm2." in n for n in removed)
    # and the remaining attention switches from sigmoid-softmax to softmax
    model = create_model("ctranscnn_tiny-no_mmaef", 5, **MICRO)
    assert not model.blocks[0].token_layer.attn.sigmoid_logits


def test_removing_mbr_removes_exactly_its_extra_branches():
    added, removed = _names_removed("ctranscnn_tiny-no_mbr", "ctranscnn_tiny")
    assert not added and removed
    assert all(n.split(".")[-2] in ("outer", "outer_bn", "inner") for n in removed)


def test_no_coupling_removes_exactly_the_couplings():
    added, removed = _names_removed("ctranscnn_tiny-no_coupling", "ctranscnn_tiny")
    assert not added and all(".c2t." in n or ".t2c." in n for n in removed)


def test_msp_is_the_only_difference_between_chexnet_and_m5():
    added, removed = _names_removed("chexnet_m5", "chexnet_tiny")
    assert not added and removed and all(".msp." in n or ".norms.3." in n for n in removed)


def test_every_ablation_changes_only_its_module():
    table = ablation_differences(num_classes=5, size="micro")
    assert list(table["ablation"]) == list(ABLATIONS)
    assert table["only named module"].all()


def test_same_seed_same_output():
    x = torch.randn(2, 3, 64, 64)
    outputs = []
    for _ in range(2):
        torch.manual_seed(123)
        outputs.append(create_model("chexnet_tiny", 4, **MICRO).eval()(x).logits)
    assert torch.equal(outputs[0], outputs[1])
    torch.manual_seed(124)
    assert not torch.equal(outputs[0], create_model("chexnet_tiny", 4, **MICRO).eval()(x).logits)


@pytest.mark.parametrize("size", [64, 96, 128])
def test_input_sizes_multiple_of_32(size):
    model = create_model("ctranscnn_tiny", 2, **MICRO).eval()
    assert model(torch.randn(1, 3, size, size)).logits.shape == (1, 2)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((1, 1, 64, 64), "B×3×H×W"),
        ((1, 3, 80, 80), "multiple of 32"),
        ((3, 64, 64), "B×3×H×W"),
        ((1, 3, 32, 32), "at least 64"),
    ],
)
def test_wrong_input_shape_says_what_is_expected(shape, message):
    model = create_model("ctranscnn_tiny", 2, **MICRO)
    with pytest.raises(ValueError, match=message):
        model(torch.randn(*shape))


def test_registry_and_switch_validation():
    with pytest.raises(KeyError, match="unknown model 'ctranscnn'"):
        create_model("ctranscnn", 2)
    with pytest.raises(ValueError, match="coupling must be one of none, fcu, iim"):
        ArchConfig(coupling="cross")
    with pytest.raises(ValueError, match="size must be one of"):
        create_model("resnet50", 2, size="huge")
    required = {
        "ctranscnn_tiny",
        "chexnet_tiny",
        "conformer_tiny",
        "chexnet_baseline",
        "chexnet_m1",
        "chexnet_m5",
        "resnet34",
        "densenet121",
        "repvgg_a2",
    }
    assert required <= set(list_models())
