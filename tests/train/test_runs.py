"""Trustworthy runs: identical resume in every setting, runs that know what they were trained
on, the lock, recovery from killed writes, and errors a user can act on (through the public
API and the CLI, at smoke size)."""

from __future__ import annotations

import json
import warnings

import pytest

from cxrlib.core.config import load_config
from cxrlib.core.errors import NonFiniteLossError, RunConfigMismatchError, RunLockedError
from cxrlib.paper.comparability import not_comparable_because
from cxrlib.train import loop, state
from cxrlib.train import run as train_module
from cxrlib.train.checkpoints import CheckpointSaver
from cxrlib.train.layout import RunFolder
from cxrlib.train.results import read_run
from cxrlib.train.run import train_run

TINY = {"phantom_images": 120, "epochs": 2, "batch_size": 16}


@pytest.fixture(autouse=True)
def _quiet(isolated_outputs):
    warnings.simplefilter("ignore", UserWarning)  # offline: random phantom label combinations


def _predictions_bytes(result) -> bytes:
    return (result.folder / "test_predictions.csv").read_bytes()


class Killed(BaseException):
    """Stands for the process being killed (not an Exception: nothing may catch it)."""


@pytest.mark.slow
@pytest.mark.parametrize("grad_accum", [1, 2])
def test_paused_and_killed_runs_resume_to_byte_equal_predictions(
    grad_accum, isolated_outputs, monkeypatch
):
    # checkpoint at every optimiser step, so that a kill lands between checkpoints
    config = load_config("smoke", grad_accum=grad_accum, checkpoint_minutes=1e-9, **TINY)
    straight = train_run(config, "cxr11", progress=False)
    assert straight.finished

    config = config.in_workspace(config.workspace.replace(runs=isolated_outputs / "runs2"))
    # the time limit runs out right after the run started (mid-group when GRAD_ACCUM=2): the
    # pause takes effect at the accumulation boundary
    checks = []
    with monkeypatch.context() as patch:
        patch.setattr(state.Limits, "out_of_time", lambda _: len(checks.append(1) or checks) > 1)
        paused = train_run(config, "cxr11", progress=False, time_limit_minutes=60)
    assert not paused.finished and len(checks) > 1
    saved = CheckpointSaver(RunFolder(paused.folder)).load_last()["state"]
    assert saved["batch"] == grad_accum and saved["step"] == 1

    # then a hard kill in the middle of an accumulation group of epoch 1
    real_loss, calls = loop.training_loss, []

    def dying_loss(*args):
        calls.append(1)
        if len(calls) == 2 * grad_accum + 1:
            raise Killed
        return real_loss(*args)

    monkeypatch.setattr(loop, "training_loss", dying_loss)
    with pytest.raises(Killed):
        train_run(config, "cxr11", progress=False)
    monkeypatch.setattr(loop, "training_loss", real_loss)

    resumed = train_run(config, "cxr11", progress=False)
    assert resumed.finished
    assert _predictions_bytes(resumed) == _predictions_bytes(straight)
    cols = ["epoch", "train_loss", "lr", "val_mean_auc"]
    assert resumed.history[cols].equals(straight.history[cols])


def test_resume_with_other_settings_is_refused_naming_the_difference_and_the_flag(capsys):
    from cxrlib.app.main import main

    train_run(load_config("smoke", lr=2e-3, **TINY), "cxr11", progress=False, max_steps=1)
    with pytest.raises(RunConfigMismatchError, match=r"LR: run has 0\.002, now 0\.003.*--restart"):
        train_run(load_config("smoke", lr=3e-3, **TINY), "cxr11", progress=False)
    sets = [arg for k, v in TINY.items() for arg in ("--set", f"{k}={v}")]
    code = main(["train", "--dataset", "cxr11", *sets, "--set", "lr=0.003"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: ") and "--restart" in err and "LR" in err
    assert f"RESTART = [{TINY.get('model', 'ctranscnn_tiny')!r}] in a notebook" in err
    # the flag the message names starts it over
    assert main(["train", "--dataset", "cxr11", *sets, "--set", "lr=0.003", "--restart"]) == 0


def test_resume_on_other_data_is_refused(isolated_outputs):
    config = load_config("smoke", **TINY)
    paused = train_run(config, "cxr11", progress=False, max_steps=1)
    assert not paused.finished
    # the same images with one image moved from train to val: other data, same settings
    (folder,) = (isolated_outputs / "open_data" / "phantom").glob("cxr11*/splits")
    train, val = sorted(folder.glob("*train*")), sorted(folder.glob("*val*"))
    lines = train[0].read_text().splitlines(keepends=True)
    train[0].write_text("".join(lines[1:]))
    val[0].write_text(val[0].read_text().rstrip("\n") + "\n" + lines[0])
    with pytest.raises(RunConfigMismatchError, match="SPLIT_HASH"):
        train_run(config, "cxr11", progress=False)


def test_a_second_process_on_the_same_run_gets_a_clear_error():
    config = load_config("smoke", **TINY)
    run = RunFolder.of(config, "cxr11")
    with run.lock(), pytest.raises(RunLockedError, match="in use by process"):
        train_run(config, "cxr11", progress=False)
    assert train_run(config, "cxr11", progress=False, max_steps=1).folder == run.path  # freed


def test_missing_config_is_rewritten_from_the_checkpoint_not_from_todays_settings():
    config = load_config("smoke", **TINY)
    paused = train_run(config, "cxr11", progress=False, max_steps=1)
    original = json.loads((paused.folder / "config.json").read_text())
    (paused.folder / "config.json").unlink()
    with pytest.raises(RunConfigMismatchError, match="LR"):
        train_run(load_config("smoke", lr=3e-3, **TINY), "cxr11", progress=False)
    assert json.loads((paused.folder / "config.json").read_text()) == original
    assert "rewritten from the checkpoint" in (paused.folder / "train.log").read_text()


@pytest.mark.slow
def test_temp_files_of_killed_writes_are_removed_and_a_corrupt_last_falls_back():
    config = load_config("smoke", checkpoint_minutes=1e-9, **TINY)
    paused = train_run(config, "cxr11", progress=False, max_steps=2)
    run = RunFolder(paused.folder)
    assert run.previous.is_file()  # the checkpoint before last.pt is kept
    previous_step = CheckpointSaver(run).load_last()["state"]["step"] - 1
    stale = paused.folder / ".last.pt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    run.last.write_bytes(run.last.read_bytes()[:100])  # a truncated last.pt
    assert CheckpointSaver(run).load_last()["state"]["step"] == previous_step
    result = train_run(config, "cxr11", progress=False)
    assert result.finished and not stale.exists()
    log = (paused.folder / "train.log").read_text()
    assert "last.pt is unreadable" in log and "removed .last.pt.abc123.tmp" in log


def test_restart_of_a_finished_run_says_so(capsys):
    config = load_config("smoke", **TINY)
    first = train_run(config, "cxr11", progress=False)
    auc = first.metrics["test"]["mean_auc"]
    capsys.readouterr()
    train_run(config, "cxr11", progress=False, restart=True, max_steps=1)
    out = capsys.readouterr().out
    assert "discarding the FINISHED run" in out and f"{auc:.2f}" in out


def test_nan_before_any_checkpoint_says_the_run_starts_over(monkeypatch):
    real_loss = loop.training_loss
    monkeypatch.setattr(loop, "training_loss", lambda *a: real_loss(*a) * float("nan"))
    with pytest.raises(NonFiniteLossError, match="No checkpoint was written yet"):
        train_run(load_config("smoke", **TINY), "cxr11", progress=False)


def test_a_diverging_loss_is_reported_in_the_log_and_the_result(monkeypatch):
    healthy = [{"epoch": 1, "train_loss": 1.0}, {"epoch": 2, "train_loss": 0.9}]
    assert state.diverging(healthy) is None
    # epoch 2's loss five times epoch 1's, finite: 72 training images = 5 batches an epoch
    real_loss, calls = loop.training_loss, []

    def rising(*args):
        calls.append(1)
        return real_loss(*args) * (5.0 if len(calls) > 5 else 1.0)

    monkeypatch.setattr(loop, "training_loss", rising)
    result = train_run(load_config("smoke", **TINY), "cxr11", progress=False)
    assert result.finished and len(result.metrics["warnings"]) == 1
    assert "epoch 2" in result.metrics["warnings"][0]
    assert "training loss is diverging" in (result.folder / "train.log").read_text()


def test_runs_record_the_data_and_computation():
    result = train_run(load_config("smoke", **TINY), "cxr11", progress=False)
    settings = json.loads((result.folder / "config.json").read_text())
    assert settings["data"]["source"] == "phantom" and settings["data"]["dataset"] == "cxr11"
    assert len(settings["data"]["split_hash"]) == 16 and settings["data"]["cache_key"]
    assert settings["runtime"]["precision"] == "fp32"
    assert not_comparable_because(read_run(result.folder)).startswith("phantom data")
    assert result.metrics["runtime"]["global_batch"] == 16


def test_a_resume_with_another_micro_batch_is_refused(isolated_outputs, monkeypatch):
    """GRAD_ACCUM=None fits the accumulation to the GPU, but batch norm sees the micro-batch:
    a session whose GPU would fit another one must not continue the run with it."""
    config = load_config("smoke", **TINY)
    assert config.train.grad_accum is None
    train_run(config, "cxr11", progress=False, max_steps=2)
    real_setup = train_module.setup_runtime

    def smaller_gpu(cfg):
        runtime = real_setup(cfg)
        runtime.grad_accum, runtime.micro_batch = 2, runtime.micro_batch // 2
        return runtime

    monkeypatch.setattr(train_module, "setup_runtime", smaller_gpu)
    with pytest.raises(RunConfigMismatchError, match="MICRO_BATCH: run has 16, now 8"):
        train_run(config, "cxr11", progress=False)


def test_a_history_without_epochs_reads_back_empty_without_a_warning(tmp_path):
    """A run paused before its first epoch ended has no epoch to write: its epochs.csv is the
    header alone, read back as an empty history, not as a damaged file."""
    import warnings

    from cxrlib.train.layout import RunFolder
    from cxrlib.train.results import read_history, write_history

    run = RunFolder(tmp_path / "runs/smoke/cxr11/paper/resnet34/seed0")
    run.path.mkdir(parents=True)
    write_history(run, [])
    assert run.history_file.read_text().strip() == "epoch"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_history(run).empty
