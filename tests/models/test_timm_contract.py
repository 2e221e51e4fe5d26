"""timm's generic model contract, applied to every registered model as timm's own
``tests/test_models.py`` applies it to timm's (forward, backward, default cfgs, the classifier
interface, features, in_chans, torch.jit.trace, torch.export), and the ways timm users reach
the kit's models: ``timm.create_model`` after ``import cxrlib``, timm's data configuration, and
weights shared as safetensors.

The models are built at their micro size (the smoke profile's; the same architecture and
switches) and 64 px, as timm's tests shrink inputs, so that the suite stays fast on a CPU;
``test_paper_size_models_through_timm`` covers the paper sizes of the papers' models.
"""

from __future__ import annotations

import glob
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import cxrlib
from cxrlib.models.registry import get_spec, list_models
from tests.conftest import PROJECT_ROOT

MICRO = {"size": "micro", "image_size": 64}
SAMPLES = sorted(glob.glob(str(PROJECT_ROOT.parent / "shared" / "data" / "samples" / "*.jpg")))


def _input(model, batch=1) -> torch.Tensor:
    return torch.randn(batch, *model.pretrained_cfg["input_size"])


def _feature_dim(model, outputs: torch.Tensor) -> int:
    """The features' axis as timm's test finds it (``feature_dim``, else last for tokens)."""
    dim = getattr(model, "feature_dim", None)
    if dim is None and getattr(model, "output_fmt", "NCHW") == "NHWC":  # Swin: channels last
        dim = -1
    return dim if dim is not None else (-1 if outputs.ndim == 3 else 1)


@pytest.mark.parametrize("name", list_models())
def test_forward_gives_a_tensor_of_logits(name):
    model = cxrlib.create_model(name, **MICRO).eval()
    out = model(_input(model))
    assert isinstance(out, torch.Tensor) and out.shape == (1, 14)
    assert not torch.isnan(out).any()


@pytest.mark.parametrize("name", list_models())
def test_backward_reaches_every_trainable_parameter(name):
    model = cxrlib.create_model(name, num_classes=42, **MICRO).train()
    out = model(_input(model, batch=2))
    out.mean().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient for {missing[:5]}"
    assert out.shape[-1] == 42 and not torch.isnan(out).any()


@pytest.mark.parametrize("name", list_models())
def test_default_cfg_names_real_parameters(name):
    model = cxrlib.create_model(name, **MICRO)
    cfg = model.pretrained_cfg
    assert model.default_cfg is cfg
    for key in ("input_size", "mean", "std", "num_classes", "first_conv", "classifier"):
        assert cfg.get(key) is not None, key
    assert cfg["interpolation"] == "bicubic" and cfg["crop_pct"] == 1.0
    assert cfg["crop_mode"] == "squash" and cfg["num_classes"] == model.num_classes == 14
    state = model.state_dict()
    classifier = cfg["classifier"]
    for c in (classifier,) if isinstance(classifier, str) else classifier:
        assert c + ".weight" in state, f"{c} not in model params"
    first_conv = cfg["first_conv"]
    for c in (first_conv,) if isinstance(first_conv, str) else first_conv:
        assert c + ".weight" in state, f"{c} not in model params"


@pytest.mark.parametrize("name", list_models())
def test_classifier_interface_and_features(name):
    """timm's test_model_default_cfgs(_non_std): forward_features, forward_head with
    pre_logits, reset_classifier(0) giving pooled features, num_classes=0 at creation."""
    model = cxrlib.create_model(name, **MICRO).eval()
    assert model.num_features > 0 and model.head_hidden_size > 0
    assert model.get_classifier() is not None
    x = _input(model)
    with torch.no_grad():
        features = model.forward_features(x)
        assert isinstance(features, torch.Tensor)
        pre = model.forward_head(features, pre_logits=True)
        assert torch.allclose(model.forward_head(features), model(x), atol=1e-5)
        if model.pretrained_cfg.get("pool_size"):  # timm's CNNs: unpooled maps
            assert features.shape[-2:] == model.pretrained_cfg["pool_size"]
        else:
            assert features.shape[_feature_dim(model, features)] == model.num_features
        assert pre.shape[1] == model.head_hidden_size
        model.reset_classifier(0)
        assert model.num_classes == 0
        pooled = model(x)
        assert pooled.shape == pre.shape and pooled.shape[1] == model.head_hidden_size
        model.reset_classifier(5)
        assert model(x).shape == (1, 5) and model.num_classes == 5
        bare = cxrlib.create_model(name, num_classes=0, **MICRO).eval()
        assert bare(x).shape[-1] == bare.num_features


@pytest.mark.parametrize("name", list_models())
def test_grey_input_and_drop_path_rate(name):
    """``in_chans=1`` (timm's way for grey input) and timm's regularisation names."""
    regularised = {"drop_rate": 0.1}
    if name != "densenet121":  # timm's DenseNet has no stochastic depth
        regularised["drop_path_rate"] = 0.2
    grey = cxrlib.create_model(name, in_chans=1, **regularised, **MICRO)
    assert grey.pretrained_cfg["input_size"][0] == 1 and len(grey.pretrained_cfg["mean"]) == 1
    assert grey.eval()(torch.randn(2, 1, 64, 64)).shape == (2, 14)
    if get_spec(name).arch is not None:
        assert grey.arch.drop_path == 0.2 and grey.arch.drop_rate == 0.1
        with pytest.raises(ValueError, match=r"B×1×H×W"):
            grey(torch.randn(2, 3, 64, 64))


@pytest.mark.parametrize("name", list_models("dual-branch"))
def test_unknown_keyword_is_a_type_error_naming_the_accepted_ones(name):
    with pytest.raises(TypeError, match="drop_path_rate"):
        cxrlib.create_model(name, dropout=0.5, **MICRO)


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models())
def test_trace_and_export_the_model_itself(name):
    model = cxrlib.create_model(name, **MICRO).eval()
    x = _input(model, batch=2)
    with torch.no_grad():
        expected = model(x)
        traced = torch.jit.trace(model, x, check_trace=False)
        assert torch.allclose(traced(x), expected, atol=1e-5)
        program = torch.export.export(model, (x,))
        assert torch.allclose(program.module()(x), expected, atol=1e-5)


def test_script_is_not_supported_and_says_why():
    """torch.jit.script of a dual-branch model: not feasible (optional submodules chosen by
    switches); the class docstring says so, and trace/export are the supported routes."""
    from cxrlib.models.dual_branch import DualBranchNet

    assert "torch.jit.script" in DualBranchNet.__doc__ and "not supported" in DualBranchNet.__doc__
    with pytest.raises(Exception):  # noqa: B017 -- TorchScript's own error types vary
        torch.jit.script(cxrlib.create_model("ctranscnn_tiny", **MICRO).eval())


def test_timm_builds_the_kits_models_after_import_cxrlib():
    """In a fresh interpreter, both import orders: ``import cxrlib`` loads neither torch nor
    timm, and ``timm.create_model`` then builds the kit's architectures."""
    code = """
import sys
{first}
assert "torch" not in sys.modules or "timm" in sys.modules, "import cxrlib loaded torch"
{second}
import timm, torch
assert "ctranscnn_tiny" in timm.list_models("ctranscnn*")
model = timm.create_model("ctranscnn_tiny", pretrained=False, num_classes=14)
assert type(model).__name__ == "DualBranchNet" and model.num_classes == 14
assert model(torch.randn(1, 3, 64, 64)).shape == (1, 14)
print("ok")
"""
    for first, second in (("import cxrlib", "import timm"), ("import timm", "import cxrlib")):
        result = subprocess.run(
            [sys.executable, "-c", code.format(first=first, second=second)],
            capture_output=True,
            text=True,
            cwd=PROJECT_ROOT,
            timeout=300,
        )
        assert result.stdout.strip() == "ok", result.stderr[-2000:]


def test_import_cxrlib_stays_light():
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, cxrlib; print(sorted({'torch', 'timm'} & set(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
    )
    assert result.stdout.strip() == "[]", result.stderr
    assert callable(cxrlib.create_model) and "ctranscnn_tiny" in cxrlib.list_models()


@pytest.mark.skipif(not SAMPLES, reason="../shared/data/samples/ (a real RANZCR X-ray) is absent")
def test_timm_data_config_gives_the_kits_input_on_a_real_xray():
    """``resolve_model_data_config`` + ``create_transform`` on a real X-ray (RANZCR, 2500×2048
    JPEG) give the kit's model input: the same numbers as the whole image decoded and resized
    (bicubic) to a square; against the image cache, which decodes large JPEGs at a reduced
    scale first (``Image.draft``), within a few grey levels at single pixels."""
    from PIL import Image
    from timm.data import create_transform, resolve_model_data_config

    from cxrlib.data.cache import load_image
    from cxrlib.data.loader import to_model_input

    model = cxrlib.create_model("ctranscnn_tiny", num_classes=11)
    transform = create_transform(**resolve_model_data_config(model), is_training=False)
    level = 1 / 255 / 0.229  # one grey level, normalised (the smallest std)
    with Image.open(SAMPLES[0]) as image:
        theirs = transform(image.convert("RGB"))
        whole = np.asarray(image.convert("L").resize((224, 224), Image.Resampling.BICUBIC))
    ours = to_model_input(torch.from_numpy(whole.copy())[None, None])[0]
    assert (theirs - ours).abs().max() < 0.01 * level
    cached = to_model_input(torch.from_numpy(load_image(SAMPLES[0], 224))[None, None])[0]
    difference = (theirs - cached).abs()
    assert difference.mean() < 0.5 * level and difference.max() < 6 * level


@pytest.mark.slow
def test_paper_size_models_through_timm():
    """The papers' main models at their paper size, as a timm user makes them."""
    import timm

    for name in ("ctranscnn_tiny", "chexnet_tiny"):
        model = timm.create_model(name, pretrained=False, num_classes=14).train()
        out = model(torch.randn(2, 3, 128, 128))
        out.mean().backward()
        assert out.shape == (2, 14)
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_weights_shared_as_safetensors_load_in_the_kit_and_in_timm(tmp_path):
    """save_pretrained -> a Hub-layout folder; from_pretrained (never unpickling) and timm
    (``pretrained_cfg_overlay=dict(file=...)`` and ``local-dir:``) give the same outputs."""
    import json

    import timm

    torch.manual_seed(0)
    model = cxrlib.create_model("chexnet_tiny", num_classes=3, **MICRO).eval()
    folder = cxrlib.save_pretrained(model, tmp_path / "chexnet")
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "chexnet_tiny" and config["num_classes"] == 3
    assert config["pretrained_cfg"]["crop_pct"] == 1.0 and config["model_args"]["size"] == "micro"
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        loaded = cxrlib.from_pretrained(folder)
        assert torch.equal(loaded(x), expected)
        overlay = timm.create_model(
            "chexnet_tiny",
            pretrained=True,
            pretrained_cfg_overlay=dict(file=str(folder / "model.safetensors")),
        ).eval()
        assert torch.equal(overlay(x), expected)
        local = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
        assert torch.equal(local(x), expected)
        grey = cxrlib.from_pretrained(folder, in_chans=1)  # timm's adaptation of the first conv
        assert grey(x[:, :1]).shape == (2, 3)


def test_from_pretrained_never_unpickles(tmp_path, monkeypatch):
    model = cxrlib.create_model("resnet34", num_classes=2, **MICRO)
    folder = cxrlib.save_pretrained(model, tmp_path / "resnet")

    def refuse(*args, **kwargs):
        raise AssertionError("torch.load (pickle) was called")

    monkeypatch.setattr(torch, "load", refuse)
    loaded = cxrlib.from_pretrained(folder)
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(loaded.eval()(x), model.eval()(x))


def test_from_pretrained_reads_a_hub_id_through_huggingface_hub(tmp_path, monkeypatch):
    """A Hub id is fetched with huggingface_hub.hf_hub_download (config.json, then the
    weights); here the download is a copy of a local folder (no network)."""
    import huggingface_hub

    model = cxrlib.create_model("ctranscnn_tiny", num_classes=2, **MICRO).eval()
    folder = cxrlib.save_pretrained(model, tmp_path / "saved")
    asked = []

    def download(repo_id, filename, **kwargs):
        asked.append((repo_id, filename))
        return str(folder / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    loaded = cxrlib.from_pretrained("someone/ctranscnn-cxr11")
    assert asked == [
        ("someone/ctranscnn-cxr11", "config.json"),
        ("someone/ctranscnn-cxr11", "model.safetensors"),
    ]
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(loaded(x), model(x))


def test_push_to_hub_uploads_the_saved_folder(monkeypatch):
    """push_to_hub needs the network: tested up to the upload call, which gets the three files."""
    import huggingface_hub

    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, private, exist_ok):
            calls["repo"] = (repo_id, private, exist_ok)

        def upload_folder(self, repo_id, folder_path, commit_message):
            calls["files"] = sorted(p.name for p in Path(folder_path).iterdir())
            return type("Info", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/1"})()

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    model = cxrlib.create_model("ctranscnn_tiny", num_classes=2, **MICRO)
    url = cxrlib.push_to_hub(model, "someone/model", token="t")
    assert url.endswith("/commit/1") and calls["repo"] == ("someone/model", True, True)
    assert calls["files"] == ["README.md", "config.json", "model.safetensors"]


def test_from_pretrained_errors_name_the_fix(tmp_path):
    from cxrlib.core.errors import ModelFileError

    with pytest.raises(ModelFileError, match="save_pretrained"):
        cxrlib.from_pretrained(tmp_path / "nothing-here")
    (tmp_path / "weights").mkdir()
    with pytest.raises(ModelFileError, match=r"config\.json is missing"):
        cxrlib.from_pretrained(tmp_path / "weights")


@pytest.mark.parametrize(
    ("name", "branch"),
    [
        ("ctranscnn_tiny", "cnn"),
        ("ctranscnn_tiny", "tokens"),
        ("chexnet_tiny", "tokens"),
        ("resnet34", "cnn"),
        ("vit_base_patch16_224", "tokens"),
    ],
)
def test_pytorch_grad_cam_as_its_readme_uses_it(name, branch):
    """GradCAM(model=model, target_layers=..., reshape_transform=...) on the model itself."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch.manual_seed(0)
    model = cxrlib.create_model(name, num_classes=3, **MICRO).eval()
    images = torch.randn(2, 3, 64, 64)
    with GradCAM(
        model=model,
        target_layers=cxrlib.cam_target_layers(model, branch),
        reshape_transform=cxrlib.cam_reshape_transform(model, branch),
    ) as cam:
        maps = cam(
            input_tensor=images, targets=[ClassifierOutputTarget(0), ClassifierOutputTarget(2)]
        )
    assert maps.shape == (2, 64, 64) and np.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1


def test_an_image_size_the_network_cannot_take_is_refused_at_creation():
    with pytest.raises(ValueError, match=r"multiple of 32 .* got 100×100 \(e\.g\. 96\)"):
        cxrlib.create_model("ctranscnn_tiny", num_classes=3, image_size=100)
    with pytest.raises(ValueError, match="multiple of 32"):
        cxrlib.create_model("chexnet_tiny", num_classes=3, img_size=48)  # timm's name
