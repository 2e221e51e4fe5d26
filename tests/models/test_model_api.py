"""Models people take away: the timm-like API, self-describing model files, export parity on a
real X-ray (ONNX through onnxruntime, TorchScript)."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import cxrlib
from cxrlib.core.config import load_config
from cxrlib.core.errors import ModelFileError
from cxrlib.data.cache import load_image
from cxrlib.data.loader import to_model_input
from cxrlib.models import create_model, get_spec, list_models, load_model, save_model
from cxrlib.models.files import CHECKSUM_KEY, model_card
from tests.mmpretrain import mmpretrain_conformer_tiny

SAMPLE = "data/samples/1.2.826.0.1.3680043.8.498.41477985046369504069935954327112429508.jpg"


@pytest.mark.parametrize("name", list_models())
def test_every_model_carries_its_configuration(name):
    model = create_model(name, num_classes=3, size="micro", image_size=64)
    cfg = model.pretrained_cfg
    assert cfg["architecture"] == name and cfg["num_classes"] == 3
    assert cfg["input_size"] == (3, 64, 64) and cfg["grey_to_rgb"] == "replicate"
    assert len(cfg["mean"]) == len(cfg["std"]) == 3 and cfg["fusion"].startswith("sigmoid(")
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 3)


def test_pretrained_values_are_checked(monkeypatch, tmp_path):
    from cxrlib.models.imagenet import PretrainedWeightsError

    with pytest.raises(TypeError, match="num_classes=3"):  # timm's order: pretrained second
        create_model("resnet50", 3)
    monkeypatch.setenv("CXRLIB_CONFORMER_IMAGENET", str(tmp_path / "missing.pth"))
    for imagenet in ("imagenet", True):  # True: ImageNet weights, as timm's pretrained=True
        with pytest.raises(PretrainedWeightsError, match=r"missing\.pth, which does not exist"):
            create_model("ctranscnn_tiny", pretrained=imagenet)
    with pytest.raises(ModelFileError, match="no such model file"):
        create_model("ctranscnn_tiny", pretrained="/nonexistent/best.pt")


def _saved(tmp_path, name="ctranscnn_tiny", classes=("A", "B", "C")):
    torch.manual_seed(0)
    overrides = {"drop_path": 0.0} if get_spec(name).arch else {}
    model = create_model(name, num_classes=len(classes), size="micro", image_size=64, **overrides)
    card = model_card(
        name=name, size="micro", image_size=64, overrides=overrides,
        classes=list(classes), data={"dataset": "cxr11", "source": "phantom"},
    )  # fmt: skip
    return model.eval(), save_model(model, tmp_path / "model.pt", card)


def test_model_file_round_trip_and_other_num_classes(tmp_path):
    model, path = _saved(tmp_path)
    x = torch.randn(2, 3, 64, 64)
    loaded = cxrlib.load_model(path)
    assert not loaded.training and loaded.pretrained_cfg["classes"] == ["A", "B", "C"]
    assert loaded.card["data"]["source"] == "phantom"
    assert torch.equal(loaded(x), model(x))
    again = create_model("ctranscnn_tiny", pretrained=path)  # timm style, from the file
    assert torch.equal(again.eval()(x), model(x))
    five = load_model(path, num_classes=5)  # fine-tuning on other labels: heads afresh
    assert five(x).shape == (2, 5) and five.reset_heads
    assert all(k.startswith(("conv_head", "token_head")) for k in five.reset_heads)
    assert torch.equal(five.state_dict()["stem.0.weight"], model.state_dict()["stem.0.weight"])
    with pytest.raises(ModelFileError, match="not a 'resnet50'"):
        create_model("resnet50", checkpoint_path=path)


@pytest.mark.slow
def test_a_finished_runs_best_pt_loads_on_its_own(isolated_outputs, tmp_path):
    from cxrlib.train.model import load_run_model
    from cxrlib.train.run import train_run

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        config = load_config("smoke", phantom_images=120, epochs=2, batch_size=16)
        result = train_run(config, "cxr11", progress=False)
    alone = tmp_path / "elsewhere" / "best.pt"
    alone.parent.mkdir()
    shutil.copy(result.folder / "best.pt", alone)
    model = cxrlib.load_model(alone)
    card = model.card
    assert card["model"] == "ctranscnn_tiny" and card["data"]["source"] == "phantom"
    assert card["data"]["dataset"] == "cxr11" and card["recipe"]["epochs"] == 2
    assert card["pretrained_cfg"]["classes"] == result.metrics["classes"]
    assert card["test"] == result.metrics["test"] and card["val"] == result.metrics["val"]
    points = card["operating_points"]
    assert "Youden" in points["method"]
    assert set(points["thresholds"]) == set(card["pretrained_cfg"]["classes"])
    # torchxrayvision's conveniences: the class names and one operating point per class
    assert model.pathologies == card["pretrained_cfg"]["classes"]
    thresholds = [points["thresholds"][c] for c in model.pathologies]
    thresholds = torch.tensor([float("nan") if t is None else t for t in thresholds])
    assert torch.allclose(model.op_threshs, thresholds, equal_nan=True)
    reference = load_run_model(result.folder)[0]
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(model(x), reference(x))

    # a best.pt of an earlier version (no card): loads from its run folder, not alone
    state = torch.load(result.folder / "best.pt", weights_only=True)
    del state["card"], state[CHECKSUM_KEY]  # files of earlier versions had no checksum either
    torch.save(state, result.folder / "best.pt")
    torch.save(state, alone)
    legacy = cxrlib.load_model(result.folder)
    assert legacy.pretrained_cfg["classes"] == result.metrics["classes"]
    assert torch.equal(legacy(x), reference(x))
    with pytest.raises(ModelFileError, match=r"metrics\.json"):
        cxrlib.load_model(alone)


def _real_xray_batch(shared_dir, size, n=3):
    path = shared_dir / SAMPLE
    if not path.is_file():
        pytest.skip(f"the real X-ray sample {path} is absent")
    grey = load_image(path, size)  # (S, S) uint8, as the cache makes it
    flipped = grey[:, ::-1].copy()
    images = torch.from_numpy(np.stack([grey, flipped, grey // 2][:n]))[:, None]  # (n, 1, S, S)
    return to_model_input(images)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ctranscnn_tiny", "chexnet_tiny", "resnet50"])
def test_exports_agree_with_pytorch_on_a_real_xray(name, tmp_path, shared_dir, monkeypatch, caplog):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is in the dev extra")
    from cxrlib.app.export import export_model

    model, path = _saved(tmp_path, name)
    x = _real_xray_batch(shared_dir, 64)
    with torch.no_grad():
        expected = torch.sigmoid(model(x)).numpy()

    here = tmp_path / "elsewhere"
    here.mkdir()
    monkeypatch.chdir(here)  # without --out: the current folder, named after model and data
    default = export_model(path, "torchscript")
    assert default == Path(f"{name}-cxr11.ts.pt") and (here / default).is_file()
    assert not list(tmp_path.glob("*.ts.pt")), "nothing is written beside the model file"
    scripted = torch.jit.load(default)
    for batch in (1, 3):  # the batch is free
        with torch.no_grad():
            got = scripted(x[:batch]).numpy()
        assert np.abs(got - expected[:batch]).max() < 1e-4

    onnx_file = export_model(path, "onnx", tmp_path / "m.onnx")
    chatter = [r.getMessage() for r in caplog.records if "constant folding" in r.getMessage()]
    assert not chatter, "onnxscript's optimiser notes are muted"
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        (got,) = session.run(None, {"images": x[:batch].numpy()})
        assert np.abs(got - expected[:batch]).max() < 1e-4
    sidecar = json.loads((tmp_path / "m.onnx.json").read_text())
    assert sidecar["pretrained_cfg"]["classes"] == ["A", "B", "C"]

    # other image sizes: ONNX takes any multiple of 32 (the model has no absolute position
    # embedding); TorchScript refuses a size the model cannot take, with a sentence
    bigger = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        expected = torch.sigmoid(model(bigger)).numpy()
    (got,) = session.run(None, {"images": bigger.numpy()})
    assert np.abs(got - expected).max() < 1e-4
    with torch.no_grad():
        assert np.abs(scripted(bigger).numpy() - expected).max() < 1e-4
    with pytest.raises(Exception, match="multiples of 32"):
        scripted(torch.randn(1, 3, 48, 48))

    weights = export_model(path, "safetensors", tmp_path / "hub")
    assert weights.name == "model.safetensors"
    with torch.no_grad():
        assert torch.equal(cxrlib.from_pretrained(weights.parent)(x), model(x))


@pytest.mark.parametrize("name", ["conformer_tiny", "ctranscnn_tiny", "chexnet_tiny"])
def test_imagenet_init_from_an_mmpretrain_conformer_file(name, tmp_path, monkeypatch):
    checkpoint = mmpretrain_conformer_tiny()
    path = tmp_path / "conformer-tiny.pth"
    torch.save(checkpoint, path)
    monkeypatch.setenv("CXRLIB_CONFORMER_IMAGENET", str(path))  # offline: a local copy
    model = create_model(name, num_classes=14, pretrained="imagenet")
    report = model.pretrained_report
    backbone = [k for k in checkpoint["state_dict"] if not k.startswith("head.")]
    own = model.state_dict()
    if name == "conformer_tiny":  # the same skeleton: every backbone tensor loads
        assert len(report["loaded"]) == len(backbone)
        assert set(report["random"]) == {
            k for k in own if k.startswith(("conv_head", "token_head"))
        }
    elif name == "ctranscnn_tiny":  # a superset of Conformer: all load, its modules stay random
        assert len(report["loaded"]) == len(backbone)
        assert any(".attn2." in k for k in report["random"])  # MMAEF
        assert any(".c2t.gate." in k for k in report["random"])  # IIM
        assert any(".outer." in k for k in report["random"])  # MBR
    else:  # CheXNet's IB blocks and label decoder: fewer tensors match
        assert 0 < len(report["loaded"]) < len(backbone)
        assert any(k.startswith("label") for k in report["random"])
    assert not report["shape_mismatch"] or name == "chexnet_tiny"
    stem = checkpoint["state_dict"]["backbone.conv1.weight"]
    assert torch.equal(own["stem.0.weight"], stem)
    assert model.pretrained_cfg["source"] == "imagenet"
