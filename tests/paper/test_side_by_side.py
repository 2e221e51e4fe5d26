"""Runs trained side by side on a CPU (one single-threaded process each) are the runs trained
one after another in one single-threaded process: the same test predictions, byte for byte,
the same folders; a paused run is read back unfinished, and a second call trains nothing."""

from __future__ import annotations

import pytest
import torch

from cxrlib.core.config import load_config
from cxrlib.paper.experiments import train_models
from cxrlib.train.parallel import side_by_side_workers
from tests.conftest import isolate_outputs

CONFIG = {"phantom_images": 40, "epochs": 1, "batch_size": 16, "seeds": 2}
NAMES = ["resnet34", "ctranscnn_tiny"]  # ctranscnn_tiny is a seeded model: 3 runs in all


@pytest.fixture
def threads():
    """Set torch's thread count for the test (the suite may run with one)."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def _predictions(runs: dict) -> dict[str, bytes]:
    return {
        f"{name} {r.key.seed}": (r.folder / "test_predictions.csv").read_bytes()
        for name, run in runs.items()
        for r in run.seeds
    }


@pytest.mark.slow
def test_side_by_side_runs_are_the_runs_trained_in_turn(tmp_path, monkeypatch, threads, capsys):
    threads(1)
    isolate_outputs(monkeypatch, tmp_path / "in_turn")
    assert side_by_side_workers(3) == 1
    in_turn = train_models(load_config("smoke", **CONFIG), "cxr11", NAMES, progress=False)
    assert "side by side" not in capsys.readouterr().out

    threads(2)
    isolate_outputs(monkeypatch, tmp_path / "side_by_side")
    assert side_by_side_workers(3) == 2 and side_by_side_workers(1) == 1
    config = load_config("smoke", **CONFIG)
    beside = train_models(config, "cxr11", NAMES, progress=False)
    out = capsys.readouterr().out
    assert "training 3 runs side by side in 2 processes" in out
    assert out.count(": finished") == 3
    assert _predictions(beside) == _predictions(in_turn)
    assert all(r.finished for run in beside.values() for r in run.seeds)

    again = train_models(config, "cxr11", NAMES, progress=False)  # all finished: read back
    assert "side by side" not in capsys.readouterr().out
    assert _predictions(again) == _predictions(in_turn)


@pytest.mark.slow
def test_a_run_paused_side_by_side_is_read_back_unfinished(isolated_outputs, threads, capsys):
    threads(2)
    config = load_config("smoke", **{**CONFIG, "seeds": 1})
    runs = train_models(config, "cxr11", NAMES, progress=False, max_steps=1)
    assert "paused after 0 epochs" in capsys.readouterr().out
    assert not any(run.finished for run in runs.values())
    runs = train_models(config, "cxr11", NAMES, progress=False)  # resumed, side by side
    assert all(run.finished for run in runs.values())


@pytest.mark.slow
def test_sets_on_both_datasets_share_one_set_of_processes(isolated_outputs, threads, capsys):
    """A notebook's studies on both datasets: one pool for all their runs, read back per set."""
    from cxrlib.paper.experiments import train_model_sets

    threads(2)
    config = load_config("smoke", **{**CONFIG, "seeds": 1})
    sets = [("cxr11", ["resnet34"]), ("cxr14", ["resnet34"])]
    cxr11, cxr14 = train_model_sets(config, sets, progress=False)
    out = capsys.readouterr().out
    assert out.count("side by side") == 1 and "training 2 runs side by side" in out
    assert cxr11["resnet34"].key.dataset == "cxr11" and cxr14["resnet34"].key.dataset == "cxr14"
    assert cxr11["resnet34"].finished and cxr14["resnet34"].finished
