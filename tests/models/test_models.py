"""Every registered model: forward/backward, gradients, ablation structure, determinism."""

from __future__ import annotations

import pytest
import torch

from cxrlib.models import ArchConfig, create_model, list_models, predict_proba
from cxrlib.models.dual_branch import TrainingHeads, forward_heads
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
    model = create_model(name, num_classes=5, **MICRO)
    _unzero_residual_bns(model)
    model.eval()  # no stochastic depth: a dropped branch would hide a missing gradient
    out = forward_heads(model, torch.randn(2, 3, 64, 64))
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
    model = create_model("ctranscnn_tiny", num_classes=3, **MICRO)
    x = torch.randn(2, 3, 64, 64)
    model.eval()
    out = forward_heads(model, x)
    assert torch.allclose(out.logits, 0.9 * out.conv_logits + 0.1 * out.token_logits)
    assert torch.allclose(predict_proba(model, x), torch.sigmoid(out.logits))
    chexnet = create_model("chexnet_tiny", num_classes=3, **MICRO).eval()
    out = forward_heads(chexnet, x)
    assert torch.allclose(out.logits, out.conv_logits + out.token_logits)
    assert out.features["labels"].shape == (2, 3, 48)
    single = forward_heads(create_model("resnet50", num_classes=3, **MICRO).eval(), x)
    assert single.conv_logits is None and len(single.heads()) == 1


def _names_removed(variant, full):
    a, b = create_model(variant, num_classes=5, **MICRO), create_model(full, num_classes=5, **MICRO)
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
    model = create_model("ctranscnn_tiny-no_mmaef", num_classes=5, **MICRO)
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
        outputs.append(create_model("chexnet_tiny", num_classes=4, **MICRO).eval()(x))
    assert torch.equal(outputs[0], outputs[1])
    torch.manual_seed(124)
    assert not torch.equal(
        outputs[0], create_model("chexnet_tiny", num_classes=4, **MICRO).eval()(x)
    )


@pytest.mark.parametrize("size", [64, 96, 128])
def test_input_sizes_multiple_of_32(size):
    model = create_model("ctranscnn_tiny", num_classes=2, **MICRO).eval()
    assert model(torch.randn(1, 3, size, size)).shape == (1, 2)


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
    model = create_model("ctranscnn_tiny", num_classes=2, **MICRO)
    with pytest.raises(ValueError, match=message):
        model(torch.randn(*shape))


def test_registry_and_switch_validation():
    with pytest.raises(KeyError, match="unknown model 'ctranscnn'"):
        create_model("ctranscnn", num_classes=2)
    with pytest.raises(ValueError, match="coupling must be one of none, fcu, iim"):
        ArchConfig(coupling="cross")
    with pytest.raises(ValueError, match="size must be one of"):
        create_model("resnet50", num_classes=2, size="huge")
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


# --------------------------------------------------------------------------------------------
# What the model executes against what the papers describe
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ctranscnn_tiny", "ctranscnn_tiny-no_iim", "chexnet_tiny"])
def test_faster_cnn_to_tokens_order_is_the_published_function(name):
    """Pooling before the 1x1 convs and the gate's fused conv: same outputs and gradients
    (in float64, where rounding cannot hide a difference; conv biases that a training-mode
    batch norm follows have a zero gradient, so gradients are compared on the model's scale)."""
    from cxrlib.models.blocks import as_published

    torch.manual_seed(0)
    model = create_model(name, num_classes=5, drop_path=0.0, **MICRO).double()
    _unzero_residual_bns(model)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)

    def outputs_and_grads():
        model.zero_grad()
        out = forward_heads(model, x)
        sum(h.square().mean() for h in out.heads()).backward()
        return out.logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    fast_logits, fast_grads = outputs_and_grads()  # train mode: batch-norm statistics too
    with as_published(model):
        published_logits, published_grads = outputs_and_grads()
    assert all(m.fast for m in model.modules() if hasattr(m, "fast"))  # restored
    assert (fast_logits - published_logits).abs().max() < 1e-12
    scale = max(g.norm() for g in published_grads.values())
    for n, g in published_grads.items():
        assert (fast_grads[n] - g).norm() <= 1e-10 * scale, n


def test_published_and_executed_flops_are_both_counted():
    from cxrlib.models.summary import forward_gflops

    model = create_model("ctranscnn_tiny", num_classes=14)
    published = forward_gflops(model, published=True)
    executed = forward_gflops(model)
    assert published == pytest.approx(22.43, abs=0.01)  # the authors' model, as measured
    assert executed < 0.75 * published


def test_flex_attention_score_modifier_is_mmaef():
    """The GPU kernel's definition (forward, eager, on CPU) equals the hand-written MMAEF."""
    flex = pytest.importorskip("torch.nn.attention.flex_attention")
    from cxrlib.models.attention import _sigmoid_score, mmaef_attention

    q, k, v = torch.randn(3, 2, 4, 17, 8, dtype=torch.float64).unbind(0)
    scale = 8**-0.5
    ours = mmaef_attention(q, k, v, scale)  # CPU: the hand-written form
    with pytest.warns(UserWarning, match="without torch.compile"):  # eager: a reference
        kernel = flex.flex_attention(q, k, v, score_mod=_sigmoid_score, scale=scale)
    assert (ours - kernel).abs().max() < 1e-12


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models())
def test_compiles_without_graph_breaks(name):
    """torch.compile captures every model whole (forward in train and eval mode): a graph
    break fails here. The eager backend traces as inductor would, without generating code."""
    torch._dynamo.reset()
    model = create_model(name, num_classes=5, **MICRO)
    heads = torch.compile(TrainingHeads(model), fullgraph=True, backend="eager")  # training
    out = heads(torch.randn(2, 3, 64, 64))
    sum(h.square().mean() for h in out.heads()).backward()
    model.eval()
    compiled = torch.compile(model, fullgraph=True, backend="eager")  # prediction
    with torch.no_grad():
        assert torch.isfinite(compiled(torch.randn(2, 3, 64, 64))).all()


def test_exportable_adaptive_max_pooling_equals_the_librarys():
    from cxrlib.models.attention import adaptive_max_pool2d

    for shape in [(2, 6, 14, 8), (1, 4, 5, 12), (2, 3, 11, 16)]:
        z = torch.randn(shape)
        for s in (2, 3, 4):
            assert torch.equal(
                adaptive_max_pool2d(z, s), torch.nn.functional.adaptive_max_pool2d(z, s)
            )


def test_each_models_up_sampling_is_its_source_code_s():
    """Conformer's FCUUp calls F.interpolate with its default (nearest); the authors' CTransCNN
    code asks for bilinear, and its fixture pins it; the IIM coupling taken from that code keeps
    bilinear in CheXNet's M4, M5 and full model."""
    from cxrlib.models import get_spec

    expected = {
        "conformer_tiny": "nearest",
        "ctranscnn_tiny": "bilinear",
        "ctranscnn_tiny-no_iim": "bilinear",
        "chexnet_baseline": "nearest",
        "chexnet_m3": "nearest",
        "chexnet_m4": "bilinear",
        "chexnet_m5": "bilinear",
        "chexnet_tiny": "bilinear",
    }
    assert {name: get_spec(name).arch.upsample for name in expected} == expected
    coupling = create_model("conformer_tiny", num_classes=5, size="micro").blocks[0].t2c
    tokens = torch.randn(2, 1 + 4, coupling.project.in_channels)  # cls + a 2×2 grid
    nearest = coupling(tokens, size=(8, 8), grid=(2, 2))
    assert torch.equal(nearest[..., :4, :4], nearest[..., :4, :4][..., :1, :1].expand(-1, -1, 4, 4))
    coupling.upsample = "bilinear"
    assert not torch.allclose(coupling(tokens, size=(8, 8), grid=(2, 2)), nearest)


def test_both_readings_of_chexnet_m1_are_models_of_their_own():
    """'beside': MEMSP runs beside the token stream and reads its tokens (our default tables);
    'replace': MEMSP replaces the Transformer -- no token layers, its cross-attention reads the
    CNN maps. Registered for M1 and every model built on it; the parameter counts differ."""
    from cxrlib.models import get_spec, list_models

    for name in ("chexnet_m1", "chexnet_m3", "chexnet_m5", "chexnet_tiny"):
        assert f"{name}-replace" in list_models()
        arch = get_spec(f"{name}-replace").arch
        assert (arch.token_stream, arch.label_kv) == ("off", "conv")
        assert get_spec(name).arch.token_stream == "on"
    beside = create_model("chexnet_m1", num_classes=11)
    replace = create_model("chexnet_m1-replace", num_classes=11)
    assert not any(
        ".token_layer." in n or n.startswith("tokens1.") for n, _ in replace.named_parameters()
    )
    assert any(".label_keys." in n for n, _ in replace.named_parameters())
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(beside) > count(replace) > count(create_model("chexnet_baseline", num_classes=11))
    x = torch.randn(2, 3, 64, 64)
    micro = create_model("chexnet_m1-replace", num_classes=11, size="micro", image_size=64)
    assert micro(x).shape == (2, 11)
    with pytest.raises(ValueError, match="needs a label decoder"):
        from dataclasses import replace as with_

        with_(get_spec("conformer_tiny").arch, token_stream="off")


def test_a_flex_kernel_that_fails_in_backward_falls_back_once_and_training_goes_on(monkeypatch):
    """A flex_attention that compiles its forward but not its backward (a compiler failure on
    first backward) must not kill a run: one warning, the hand-written attention from then on,
    and attention_path says so. (The GPU path, forced on the CPU with a stand-in kernel.)"""
    from cxrlib.models import attention

    class BackwardFails(torch.autograd.Function):
        @staticmethod
        def forward(ctx, q, k, v):
            return attention.hand_written_attention(q, k, v, q.shape[-1] ** -0.5)

        @staticmethod
        def backward(ctx, grad):
            raise RuntimeError("triton: backward kernel could not be compiled")

    monkeypatch.setattr(attention, "_wants_flex", lambda q: attention._FLEX["failed"] is None)
    monkeypatch.setattr(
        attention, "flex_kernel", lambda: lambda q, k, v, **_: BackwardFails.apply(q, k, v)
    )
    monkeypatch.setattr(
        attention, "_FLEX", {"kernel": None, "checked": set(), "failed": None, "ran": False}
    )
    model = create_model("ctranscnn_tiny", num_classes=5, size="micro", image_size=64)
    x = torch.randn(2, 3, 64, 64)
    with pytest.warns(RuntimeWarning, match="hand-written attention for the rest"):
        loss = model(x).sum()
    loss.backward()  # the probe failed, not the run: the step's own backward is hand-written
    assert attention.attention_path().startswith(
        "hand-written (flex_attention failed: RuntimeError"
    )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning
        model(x).sum().backward()


def test_micro_baselines_are_distinct_networks_that_keep_their_relative_sizes():
    """The smoke profile's micro baselines must not collapse into one network (DeiT-S and ViT-B
    once reported identical numbers): every one differs, and ViT-B stays twice DeiT-S's width
    with twice its heads, at the same depth."""
    micro = {
        n: create_model(n, num_classes=11, size="micro", image_size=64) for n in list_models("timm")
    }
    counts = {n: sum(p.numel() for p in m.parameters()) for n, m in micro.items()}
    assert len(set(counts.values())) == len(counts), counts
    vit, deit = micro["vit_base_patch16_224"], micro["deit_small_patch16_224"]
    assert vit.embed_dim == 2 * deit.embed_dim
    assert len(vit.blocks) == len(deit.blocks)
    assert vit.blocks[0].attn.num_heads == 2 * deit.blocks[0].attn.num_heads
