"""Runs initialised from ImageNet (PRETRAINED=imagenet, a comparison neither paper makes):
the parameter is validated, such runs live in their own folders, are never put beside a
published number, resume without the weights file, and the report lists them with their cost."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cxrlib.app import config_from_notebook
from cxrlib.core.config import ConfigError, load_config, parse_override
from cxrlib.models import load_model
from cxrlib.paper.comparability import not_comparable_because
from cxrlib.paper.experiments import imagenet_models
from cxrlib.paper.tables import init_comparison
from cxrlib.train.checkpoints import CheckpointSaver
from cxrlib.train.layout import RunFolder
from cxrlib.train.results import (
    Predictions,
    read_run,
    run_coordinates,
    write_history,
    write_predictions,
)
from cxrlib.train.run import train_run
from tests.mmpretrain import mmpretrain_conformer_tiny
from tests.paper.test_report import _finished_run


def test_the_pretrained_parameter_is_validated():
    assert load_config("paper").model.pretrained == "none"  # both papers: from scratch
    assert load_config("paper", PRETRAINED="imagenet").model.pretrained == "imagenet"
    with pytest.raises(ConfigError, match="must be one of 'none', 'imagenet'"):
        load_config("paper", pretrained="imagenet21k")
    with pytest.raises(ConfigError, match=r"needs MODEL_SIZE 'paper'.*micro models"):
        load_config("smoke", pretrained="imagenet")  # micro models have no ImageNet weights
    assert load_config("smoke", pretrained="imagenet", model_size="paper").model.pretrained
    # --set pretrained=none is the choice "none", not None
    assert parse_override("pretrained=none") == ("pretrained", "none")
    assert parse_override("PRETRAINED=imagenet") == ("PRETRAINED", "imagenet")
    lower = config_from_notebook({"PROFILE": "paper", "pretrained": "imagenet"})  # papermill -p
    assert lower.model.pretrained == "imagenet"


def test_which_models_notebook_06_trains_from_imagenet(capsys):
    smoke, paper = load_config("smoke"), load_config("paper")
    scratch = ["resnet34", "resnet50", "ctranscnn_tiny", "chexnet_tiny"]
    assert imagenet_models(smoke, None, scratch) == []
    assert "skipped" in capsys.readouterr().out
    assert imagenet_models(paper, None, scratch) == ["ctranscnn_tiny", "chexnet_tiny", "resnet50"]
    assert imagenet_models(paper, None, ["resnet50"]) == ["resnet50"]  # MODELS = a subset
    assert imagenet_models(paper, ["resnet34"], scratch) == ["resnet34"]
    with pytest.raises(ConfigError, match="not among MODELS"):
        imagenet_models(paper, ["densenet121"], scratch)
    with pytest.raises(ConfigError, match="MODEL_SIZE 'paper'"):
        imagenet_models(smoke, ["resnet50"], scratch)  # asked for where no weights exist
    assert imagenet_models(smoke, [], scratch) == []


def _predictions(run: RunFolder, scores: np.ndarray, labels: np.ndarray) -> None:
    ids = [f"img{i}" for i in range(len(labels))]
    write_predictions(run, Predictions(ids, ["a", "b"], labels, scores))


@pytest.fixture
def pair(isolated_outputs):
    """A finished run from scratch and one from ImageNet of the same model and data."""
    paper = load_config("paper")
    scratch = _finished_run(paper, "cxr14", "real", 70.0)
    imagenet = _finished_run(paper.override(pretrained="imagenet"), "cxr14", "real", 74.0)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, (300, 2))
    noise = rng.normal(size=(300, 2))
    _predictions(scratch, labels + 2.0 * noise, labels)
    _predictions(imagenet, labels + 0.7 * noise, labels)
    write_history(imagenet, [{"epoch": 1, "seconds": 5400.0, "devices": 2}])
    return scratch, imagenet


def test_imagenet_runs_have_their_own_folder_and_are_never_comparable(pair):
    scratch, imagenet = pair
    assert scratch.path.name == imagenet.path.name == "seed0"
    assert scratch.path.parent.name == "ctranscnn_tiny"
    assert imagenet.path.parent.name == "ctranscnn_tiny+imagenet"
    coordinates = run_coordinates(read_run(imagenet.path))
    assert coordinates["model"] == "ctranscnn_tiny" and coordinates["init"] == "ImageNet"
    assert run_coordinates(read_run(scratch.path))["init"] == "scratch"
    assert not_comparable_because(read_run(scratch.path)) is None
    assert not_comparable_because(read_run(imagenet.path)) == (
        "ImageNet initialisation (both papers train from scratch)"
    )
    assert read_run(imagenet.path).device_hours == pytest.approx(3.0)  # 5400 s on 2 GPUs
    assert read_run(scratch.path).device_hours is None  # no time recorded: not invented


def test_scratch_vs_imagenet_table_pairs_the_runs(pair):
    scratch, imagenet = pair
    a, b = read_run(imagenet.path), read_run(scratch.path)
    table = init_comparison({"ctranscnn_tiny": b, "resnet50": b}, {"ctranscnn_tiny": a})
    row = table.set_index("model").loc["ctranscnn_tiny"]
    from cxrlib.evaluate.metrics import paper_mean_auc, per_class_auc

    p_a, p_b = a.predictions(), b.predictions()
    expected = paper_mean_auc(per_class_auc(p_a.labels, p_a.scores)) - paper_mean_auc(
        per_class_auc(p_b.labels, p_b.scores)
    )
    assert row["Δ vs scratch"] == pytest.approx(expected, abs=0.01)
    assert expected > 5 and row["p (paired bootstrap)"] == "< 0.001"  # less noise: better
    assert float(row["p (DeLong)"]) < 1e-3
    assert row["ImageNet device hours"] == 3.0
    assert table.set_index("model").loc["resnet50", "ImageNet mean AUC"] == "not run"


@pytest.mark.slow
def test_the_report_lists_imagenet_runs_with_their_cost(pair):
    import pandas as pd

    from cxrlib.core.workspace import Workspace
    from cxrlib.paper.report import build_report

    tables = Workspace.from_env().profile_results("paper") / "tables"  # notebook 02's FLOPs
    tables.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"model": ["resnet50"], "GFLOPs @224 executed": [4.0]}).to_csv(
        tables / "model_summary.csv", index=False
    )
    text = build_report(load_config("paper"))
    beside = text[: text.index("## How each run was computed")]
    assert "ImageNet initialisation" not in beside  # never beside a published number
    section = text[text.index("## Beyond the papers: from ImageNet weights") :]
    rows = {tuple(c.strip() for c in line.split("|")[1:3]): line for line in section.splitlines()}
    measured = rows[("CXR14", "ctranscnn_tiny")]
    assert "74.00" in measured and "70.00" in measured and "4.00" in measured
    assert "3.00 device hours (spent)" in measured
    # per epoch 3 forward passes' FLOPs per training image, one per validation image (CXR11's
    # 21,059 and 6,016 of the papers' split), 300 epochs, at 20% of an A100's 312 TFLOP/s
    flops_hours = 4.0e9 * (3 * 21059 + 6016) * 300 / (312e12 * 0.2) / 3600
    assert "not run" in rows[("CXR11", "resnet50")]
    assert f"{flops_hours:.2f} A100 hours (FLOPs at 20% MFU)" in rows[("CXR11", "resnet50")]

    # without its run from scratch, the model is still missing: an ImageNet run does not count
    pair[0].metrics_file.unlink()
    text = build_report(load_config("paper"))
    missing = text[text.index("## Runs still missing") : text.index("## Beyond the papers")]
    cells = [[c.strip() for c in line.split("|")[1:4]] for line in missing.splitlines()]
    assert ["CXR14", "paper", "ctranscnn_tiny"] in cells


@pytest.mark.slow
def test_a_run_from_imagenet_trains_resumes_without_the_file_and_loads(
    isolated_outputs, tmp_path, monkeypatch
):
    checkpoint = mmpretrain_conformer_tiny()
    weights = tmp_path / "conformer-tiny.pth"
    torch.save(checkpoint, weights)
    monkeypatch.setenv("CXRLIB_CONFORMER_IMAGENET", str(weights))  # offline: a local copy
    config = load_config(
        "smoke",
        model_size="paper",
        pretrained="imagenet",
        phantom_images=40,
        epochs=1,
        batch_size=8,
    )
    first = train_run(config, "cxr11", progress=False, max_steps=1)
    assert first.folder.parent.name == "ctranscnn_tiny+imagenet" and not first.finished
    log = (first.folder / "train.log").read_text()
    backbone = sum(not k.startswith("head.") for k in checkpoint["state_dict"])
    assert f"initialised from imagenet: {backbone} tensors of the public Conformer-Ti" in log
    stem = CheckpointSaver(RunFolder(first.folder)).load_last()["model"]["stem.0.weight"]
    # one small AdamW step away from the ImageNet stem (a random one differs by ~0.1)
    assert (stem - checkpoint["state_dict"]["backbone.conv1.weight"]).abs().max() < 5e-3

    monkeypatch.setenv("CXRLIB_CONFORMER_IMAGENET", str(tmp_path / "gone.pth"))
    done = train_run(config, "cxr11", progress=False)  # resumes from last.pt alone
    assert done.finished and "ImageNet initialisation" in not_comparable_because(done)
    assert done.device_hours > 0 and list(done.history["devices"]) == [1]
    model = load_model(done.folder / "best.pt")  # without the ImageNet file either
    assert model.card["recipe"]["pretrained"] == "imagenet"


def test_the_imagenet_checkpoint_downloads_once_and_is_checksum_checked(
    isolated_outputs, monkeypatch
):
    """The download path, without the internet: a stand-in for torch.hub's download writes
    the file; a wrong file is removed with an error, a right one is fetched only once."""
    import hashlib

    from cxrlib.models import imagenet

    monkeypatch.delenv(imagenet.LOCAL_ENV, raising=False)
    from cxrlib.core.workspace import Workspace

    workspace = Workspace.from_env()
    payload = {"bytes": b"not the Conformer-Ti checkpoint"}
    calls = []

    def fake_download(url, destination, progress=True):
        calls.append(url)
        with open(destination, "wb") as handle:
            handle.write(payload["bytes"])

    monkeypatch.setattr(imagenet.torch.hub, "download_url_to_file", fake_download)
    with pytest.raises(imagenet.PretrainedWeightsError, match="did not match its checksum"):
        imagenet.conformer_checkpoint(workspace)
    target = (
        isolated_outputs
        / "open_data"
        / "pretrained"
        / imagenet.CONFORMER_TINY_URL.rsplit("/", 1)[1]
    )
    assert calls == [imagenet.CONFORMER_TINY_URL] and not target.exists()  # removed

    prefix = hashlib.sha256(payload["bytes"]).hexdigest()[:8]
    monkeypatch.setattr(imagenet, "CONFORMER_TINY_SHA256_PREFIX", prefix)
    assert imagenet.conformer_checkpoint(workspace) == target and target.is_file()
    assert imagenet.conformer_checkpoint(workspace) == target and len(calls) == 2  # not again

    def offline(url, destination, progress=True):
        raise OSError("no route to host")

    target.unlink()
    monkeypatch.setattr(imagenet.torch.hub, "download_url_to_file", offline)
    with pytest.raises(imagenet.PretrainedWeightsError, match=r"\$CXRLIB_CONFORMER_IMAGENET"):
        imagenet.conformer_checkpoint(workspace)
