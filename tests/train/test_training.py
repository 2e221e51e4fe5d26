"""Training: schedule, weight decay groups, resume == uninterrupted, idempotence, NaN stop,
and that a smoke run actually learns."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch

from cxrlib.core.config import load_config
from cxrlib.core.errors import NonFiniteLossError, RunConfigMismatchError
from cxrlib.evaluate.calibration import apply_temperature, fit_temperatures
from cxrlib.models import create_model
from cxrlib.train.checkpoints import CheckpointSaver
from cxrlib.train.layout import RunFolder
from cxrlib.train.optim import learning_rate, parameter_groups
from cxrlib.train.run import train_run

TINY = {"phantom_images": 120, "epochs": 2, "batch_size": 16}


def load_checkpoint(path):
    return CheckpointSaver(RunFolder(path.parent)).load_last()


@pytest.fixture(autouse=True)
def _quiet(isolated_outputs):
    warnings.simplefilter("ignore", UserWarning)  # offline: random phantom label combinations


def test_learning_rate_schedule_values():
    args = {
        "total_steps": 1000,
        "base_lr": 1e-3,
        "warmup_steps": 100,
        "warmup_ratio": 1e-3,
        "min_lr_ratio": 1e-2,
    }
    cosine = lambda s: 1e-5 + (1e-3 - 1e-5) * (1 + math.cos(math.pi * s / 1000)) / 2  # noqa: E731
    assert learning_rate(0, **args) == pytest.approx(cosine(0) * 1e-3)  # starts at 0.1 %
    assert learning_rate(50, **args) == pytest.approx(cosine(50) * (1 - 0.5 * (1 - 1e-3)))
    assert learning_rate(100, **args) == pytest.approx(cosine(100))  # warm-up over
    assert learning_rate(500, **args) == pytest.approx((1e-3 + 1e-5) / 2)  # half-way
    assert learning_rate(1000, **args) == pytest.approx(1e-5)  # ends at 1 % of the peak


def test_no_weight_decay_on_norms_biases_cls_token_and_label_embeddings():
    model = create_model("chexnet_tiny", num_classes=5, size="micro")
    decayed, free = parameter_groups(model, 0.05)
    assert decayed["weight_decay"] == 0.05 and free["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    free_names = {names[id(p)] for p in free["params"]}
    assert {"cls_token", "label_embed"} <= free_names
    assert all(p.ndim >= 2 for p in decayed["params"])
    assert any(n.endswith("norm1.weight") for n in free_names)
    assert any(n.endswith("qkv.bias") for n in free_names)
    assert len(decayed["params"]) + len(free["params"]) == len(list(model.parameters()))


def _best_weights(result):
    """The kept model of a finished run (``last.pt`` goes when a run finishes)."""
    return CheckpointSaver(RunFolder(result.folder)).load_best()["model"]


@pytest.mark.slow
def test_killed_and_resumed_run_equals_uninterrupted(isolated_outputs, monkeypatch):
    config = load_config("smoke", **TINY)
    straight = train_run(config, "cxr11", progress=False)
    assert straight.finished

    config = config.in_workspace(config.workspace.replace(runs=isolated_outputs / "runs2"))
    stopped = train_run(config, "cxr11", progress=False, max_steps=3)  # killed mid-epoch 1
    assert not stopped.finished and (stopped.folder / "last.pt").is_file()
    state = load_checkpoint(stopped.folder / "last.pt")["state"]
    assert state["batch"] == 3 and state["epoch_seconds"] > 0  # the time so far travels
    resumed = train_run(config, "cxr11", progress=False)
    assert resumed.finished
    # the resumed epoch's time counts both sessions; the cost is read from epochs.csv
    assert resumed.history["seconds"].iloc[0] > state["epoch_seconds"]
    assert list(resumed.history["devices"]) == [1, 1]
    assert resumed.device_hours == pytest.approx(resumed.history["seconds"].sum() / 3600)
    assert resumed.metrics["test"] == straight.metrics["test"]
    a, b = _best_weights(straight), _best_weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    cols = ["epoch", "train_loss", "lr", "val_mean_auc"]
    assert resumed.history[cols].equals(straight.history[cols])


def test_finished_run_is_not_redone_and_other_settings_are_refused(monkeypatch):
    config = load_config("smoke", lr=2e-3, **TINY)
    first = train_run(config, "cxr11", progress=False)
    stamp = (first.folder / "metrics.json").stat().st_mtime_ns
    calls = []
    monkeypatch.setattr("cxrlib.train.run.prepare_dataset", lambda *a, **k: calls.append(1))
    again = train_run(config, "cxr11", progress=False)
    assert not calls and (again.folder / "metrics.json").stat().st_mtime_ns == stamp
    with pytest.raises(RunConfigMismatchError, match=r"LR: run has 0\.002, now 0\.003"):
        train_run(load_config("smoke", lr=3e-3, **TINY), "cxr11", progress=False)


def test_outputs_of_a_finished_run(isolated_outputs):
    result = train_run(load_config("smoke", **TINY), "cxr11", progress=False)
    files = {p.name for p in result.folder.iterdir()}
    assert {
        "config.json",
        "best.pt",
        "epochs.csv",
        "metrics.json",
        "test_predictions.csv",
        "val_predictions.csv",
    } <= files
    assert not files & {"last.pt", "last.prev.pt"}, "a finished run keeps only best.pt"
    metrics = json.loads((result.folder / "metrics.json").read_text())
    assert len(metrics["test"]["per_class_auc"]) == 11
    assert metrics["test_ci"]["resamples"] >= 1000
    # calibration: temperatures fitted on the validation predictions it kept, test ECE beside
    val = result.predictions("val")
    calibration = metrics["calibration"]
    assert list(calibration["temperatures"]) == metrics["classes"]
    fitted = fit_temperatures(val.labels, val.scores)
    assert list(calibration["temperatures"].values()) == pytest.approx(fitted, nan_ok=True)
    assert calibration["test_before"]["mean_ece"] >= 0 and calibration["bins"] == 15
    card = torch.load(result.folder / "best.pt", weights_only=True)["card"]
    assert card["calibration"] == calibration
    torch.load(result.folder / "best.pt", weights_only=True)  # loads safely
    assert len(result.history) == 2


def test_nan_loss_stops_and_keeps_last_good_checkpoint(monkeypatch):
    config = load_config("smoke", **TINY)
    first = train_run(config, "cxr11", progress=False, max_steps=2)
    good = load_checkpoint(first.folder / "last.pt")
    from cxrlib.train.losses import training_loss

    monkeypatch.setattr(
        "cxrlib.train.loop.training_loss", lambda *a: training_loss(*a) * float("nan")
    )
    with pytest.raises(NonFiniteLossError, match=r"last good checkpoint is .*last\.pt"):
        train_run(config, "cxr11", progress=False)
    kept = load_checkpoint(first.folder / "last.pt")
    assert kept["state"]["step"] == good["state"]["step"] == 2
    assert all(torch.equal(kept["model"][k], good["model"][k]) for k in good["model"])


@pytest.mark.slow
def test_smoke_training_improves_validation_auc(smoke_cxr14_run, use_folders):
    """The smoke profile's own recipe (micro CTransCNN, phantom CXR14) clearly learns."""
    use_folders(smoke_cxr14_run["folders"])
    history = smoke_cxr14_run["run"].history
    assert history["val_mean_auc"].max() > _untrained_val_auc(smoke_cxr14_run["config"]) + 8


def _untrained_val_auc(config):
    from cxrlib.data.prepare import prepare_dataset
    from cxrlib.evaluate.metrics import evaluate
    from cxrlib.train.runtime import cpu_runtime, predict

    data = prepare_dataset(config, "cxr14", progress=False)
    torch.manual_seed(config.train.seed)
    model = create_model(config.model.model, num_classes=14, size="micro")
    scores = predict(model, data.cache.pixels, data.cache_rows("val"), cpu_runtime())
    return evaluate(data.labels("val"), scores)["mean_auc"]


def test_predict_files_matches_the_runs_test_predictions(capsys):
    import pandas as pd

    from cxrlib.app.main import main
    from cxrlib.data.prepare import prepare_dataset

    config = load_config("smoke", **TINY)
    result = train_run(config, "cxr11", progress=False)
    test = prepare_dataset(config, "cxr11", progress=False).part("test").iloc[:3]
    assert main(["predict", str(result.folder), *test["path"], "--csv"]) == 0
    from io import StringIO

    ours = pd.read_csv(StringIO(capsys.readouterr().out))
    saved = pd.read_csv(result.folder / "test_predictions.csv").set_index("image_id")
    expected = saved.loc[test["image_id"], [f"prob_{c}" for c in result.metrics["classes"]]]
    assert list(ours.columns[1:]) == result.metrics["classes"]
    assert abs(ours.iloc[:, 1:].to_numpy() - expected.to_numpy()).max() < 1e-5

    # --calibrated: the card's temperatures applied to probabilities and operating points alike,
    # so every decision stays the same
    assert main(["predict", str(result.folder), *test["path"], "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main(["predict", str(result.folder), *test["path"], "--json", "--calibrated"]) == 0
    calibrated = json.loads(capsys.readouterr().out)
    assert "temperature scaling" in calibrated["calibrated"] and plain["calibrated"] is None
    temperatures = result.metrics["calibration"]["temperatures"]
    for before, after in zip(plain["images"], calibrated["images"], strict=True):
        for a, b in zip(before["predictions"], after["predictions"], strict=True):
            t = temperatures[a["class"]]
            assert b["probability"] == pytest.approx(float(apply_temperature(a["probability"], t)))
            assert b["positive"] == a["positive"]


def test_gradient_accumulation_steps_once_per_group_of_batches():
    # 72 training images; global batch 16 = 2 micro-batches of 8: 9 micro-batches per epoch
    config = load_config("smoke", grad_accum=2, **TINY)
    result = train_run(config, "cxr11", progress=False)
    assert result.finished
    assert result.metrics["steps"] == 2 * 5  # ceil(9 / 2) optimiser steps per epoch, 2 epochs
    runtime = json.loads((result.folder / "config.json").read_text())["runtime"]
    assert runtime["global_batch"] == 16 and runtime["micro_batch"] == 8
    assert runtime["grad_accum"] == 2 and runtime["world_size"] == 1


def test_bf16_autocast_path_trains_on_cpu():
    """The mixed-precision code path (bf16 autocast; on GPUs the default) runs and stays finite."""
    config = load_config("smoke", precision="bf16", **TINY)
    result = train_run(config, "cxr11", progress=False, max_steps=2)
    state = load_checkpoint(result.folder / "last.pt")
    assert state["state"]["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_runs_of_earlier_versions_still_load(monkeypatch):
    """A version-1 config.json (flat, BETA1 None, a dropped CACHE_SIZE) still loads its model."""
    from cxrlib.train.model import load_run_model

    result = train_run(load_config("smoke", **TINY), "cxr11", progress=False)
    saved = json.loads((result.folder / "config.json").read_text())
    flat = {"profile": "smoke", **saved["config"], "cache_size": 64, "beta1": None}
    (result.folder / "config.json").write_text(json.dumps(flat))
    model, config, classes = load_run_model(result.folder)
    assert config.train.epochs == 2 and len(classes) == 11 and not model.training


def test_a_step_with_non_finite_gradients_is_skipped_on_the_device():
    """What stops a run before a non-finite update without a host sync per step: the grad
    scaler's flag, taken by the fused AdamW, skips the step; in fp32 the scale of 1 is exact."""
    from cxrlib.train.optim import build_optimizer, build_scaler
    from cxrlib.train.runtime import Runtime

    config = load_config("smoke")
    runtime = Runtime(torch.device("cpu"))
    x = torch.randn(2, 3, 64, 64)

    def setup():
        torch.manual_seed(0)
        model = create_model("ctranscnn_tiny", num_classes=5, size="micro", drop_path=0.0)
        return model, build_optimizer(model, config), build_scaler(runtime)

    model, optimizer, scaler = setup()
    assert optimizer.defaults["fused"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss = model(x).sum() * float("nan")
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    after = model.state_dict()
    weights = [k for k in before if before[k].is_floating_point() and "running" not in k]
    assert all(torch.equal(before[k], after[k]) for k in weights), "a NaN step was applied"

    model, optimizer, scaler = setup()  # a finite step: same as AdamW without any scaler
    plain, plain_optimizer, _ = setup()
    scaler.scale(model(x).sum()).backward()
    scaler.step(optimizer)
    plain(x).sum().backward()
    plain_optimizer.step()
    new, reference = model.state_dict(), plain.state_dict()
    assert not torch.equal(new["conv_head.weight"], before["conv_head.weight"])
    assert all(torch.equal(new[k], reference[k]) for k in new)


def test_a_non_finite_loss_mid_epoch_is_caught_at_the_next_read(monkeypatch):
    from cxrlib.train.losses import training_loss

    calls = []

    def third_is_nan(*args):
        calls.append(1)
        loss = training_loss(*args)
        return loss * float("nan") if len(calls) == 3 else loss

    monkeypatch.setattr("cxrlib.train.loop.READ_EVERY", 1000)  # read only at the epoch's end
    monkeypatch.setattr("cxrlib.train.loop.training_loss", third_is_nan)
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, batch 3 .*update was skipped"):
        train_run(load_config("smoke", **TINY), "cxr11", progress=False)
    assert len(calls) > 3  # the host did not wait for the loss at the NaN batch


def test_the_checkpoint_saver_reports_a_failed_write(tmp_path, monkeypatch):
    """A checkpoint written in the background that fails (a full disk) is not lost silently:
    waiting for the saver raises its error."""
    saver = CheckpointSaver(RunFolder(tmp_path / "run"))
    saver.save_last({"model": {}, "state": {}})
    saver.wait()
    assert (tmp_path / "run" / "last.pt").is_file()

    def fails(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr("cxrlib.train.checkpoints.torch.save", fails)
    saver.save_last({"model": {}, "state": {}})
    with pytest.raises(OSError, match="No space"):
        saver.close()


@pytest.mark.slow
def test_both_checkpoints_are_scored_and_the_chosen_one_is_the_result(isolated_outputs):
    """TEST_CHECKPOINT: 'best' (the default) tests best.pt; 'last' tests the final epoch's
    weights, written as final.pt, which the run's model then is. Either way the other one is
    scored too, so that the report can show the difference."""
    from cxrlib.train.model import load_run_model

    best = train_run(load_config("smoke", **TINY), "cxr11", progress=False)
    assert best.metrics["test_checkpoint"] == "best" and best.metrics["tested_epoch"] >= 1
    assert best.metrics["other_checkpoint"]["checkpoint"] == "last"
    assert best.metrics["other_checkpoint"]["epoch"] == TINY["epochs"]
    assert not (best.folder / "final.pt").exists()
    config = load_config("smoke", test_checkpoint="last", seed=1, **TINY)
    last = train_run(config, "cxr11", progress=False)
    assert last.metrics["test_checkpoint"] == "last" and last.metrics["model_file"] == "final.pt"
    assert last.metrics["tested_epoch"] == TINY["epochs"]
    assert last.metrics["other_checkpoint"]["checkpoint"] == "best"
    model = load_run_model(last.folder)[0]
    assert model.card["epoch"] == TINY["epochs"] and model.card["test"] == last.metrics["test"]
    # reading a finished run back with the other choice keeps what it was tested with
    again = train_run(load_config("smoke", seed=1, **TINY), "cxr11", progress=False)
    assert again.metrics["test_checkpoint"] == "last"
    with pytest.raises(Exception, match="TEST_CHECKPOINT must be one of 'best', 'last'"):
        load_config("smoke", test_checkpoint="first")
