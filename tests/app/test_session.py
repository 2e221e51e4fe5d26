"""Sessions that end: folders from notebook parameters, one deadline, a clean pause."""

from __future__ import annotations

import importlib.util
import runpy
import shutil
import subprocess
import time
from importlib.metadata import version

import pytest

from cxrlib.app import config_and_extras
from cxrlib.app.colab import repository_url, setup_cell
from cxrlib.app.time_limit import set_time_limit
from cxrlib.core import clock
from cxrlib.core.config import ConfigError, load_config
from cxrlib.core.workspace import ENV, Workspace
from cxrlib.paper.experiments import train_models
from tests.conftest import PROJECT_ROOT

TINY = {"epochs": 1, "phantom_images": 40, "model": "resnet34"}


def test_folder_parameters_set_the_workspace(tmp_path, monkeypatch):
    for env in ENV.values():
        monkeypatch.delenv(env, raising=False)
    config, _ = config_and_extras(
        {"PROFILE": "smoke", "RUNS_DIR": str(tmp_path / "r"), "DATA_DIR": str(tmp_path / "d")}
    )
    workspace = config.workspace
    assert workspace.runs == tmp_path / "r" and workspace.data == tmp_path / "d"
    assert workspace.results == Workspace.at().results  # not given: the project's default
    assert config.override(epochs=2).workspace == workspace  # carried by every copy
    with pytest.raises(ConfigError, match="TIME_LIMIT_MINUTES must be > 0"):
        config_and_extras({"PROFILE": "smoke", "TIME_LIMIT_MINUTES": 0})
    with pytest.raises(ConfigError, match="RUNS_DIR must be str"):
        config_and_extras({"PROFILE": "smoke", "RUNS_DIR": 3})


def test_the_earliest_deadline_counts(monkeypatch):
    monkeypatch.delenv(clock.DEADLINE_ENV, raising=False)
    set_time_limit(None)
    assert clock.deadline() is None
    set_time_limit(10)
    assert clock.deadline() == pytest.approx(time.time() + 600, abs=5)
    monkeypatch.setenv(clock.DEADLINE_ENV, str(time.time() + 60))
    assert clock.deadline() == pytest.approx(time.time() + 60, abs=5)
    assert clock.deadline(0.5) == pytest.approx(time.time() + 30, abs=5)
    set_time_limit(None)


def test_past_the_deadline_no_run_starts_and_the_pause_is_announced(
    isolated_outputs, monkeypatch, capsys
):
    pause_file = isolated_outputs / "paused.txt"
    monkeypatch.setenv(clock.PAUSE_FILE_ENV, str(pause_file))
    monkeypatch.setenv(clock.DEADLINE_ENV, str(time.time() - 1))
    runs = train_models(load_config("smoke", **TINY), "cxr11", ["resnet34"], progress=False)
    assert not runs["resnet34"].finished
    assert not (runs["resnet34"].folder / "last.pt").exists()
    assert "paused — run again to resume" in capsys.readouterr().out
    assert "resnet34 (seed 0: not started)" in pause_file.read_text()


def test_a_folder_parameter_set_back_to_none_means_the_default_again(tmp_path, monkeypatch):
    """A kernel that ran the notebook with RUNS_DIR set, then with None, uses ./runs again;
    a folder set outside (./run_all.sh --runs-dir) counts when the notebook sets none. Nothing
    is left in the environment for a later cell or command to pick up."""
    monkeypatch.delenv("CXRLIB_RUNS_DIR", raising=False)
    config, _ = config_and_extras({"PROFILE": "smoke", "RUNS_DIR": str(tmp_path / "drive")})
    assert config.workspace.runs == tmp_path / "drive"
    assert "CXRLIB_RUNS_DIR" not in __import__("os").environ
    config, _ = config_and_extras({"PROFILE": "smoke", "RUNS_DIR": None})
    assert config.workspace.runs == Workspace.at().runs
    monkeypatch.setenv("CXRLIB_RUNS_DIR", str(tmp_path / "outside"))
    config, _ = config_and_extras({"PROFILE": "smoke", "RUNS_DIR": None})
    assert config.workspace.runs == tmp_path / "outside"


def test_a_table_label_names_each_dataset_when_only_one_is_real(isolated_outputs, monkeypatch):
    from cxrlib.paper.outputs import PHANTOM_NOTE, data_label

    nih = isolated_outputs / "nih"
    nih.mkdir()
    (nih / "Data_Entry_2017.csv").write_text("x")
    config = load_config("smoke")
    assert data_label(config) == PHANTOM_NOTE
    monkeypatch.setenv(ENV["data_roots"], f"cxr14={nih}")
    config = load_config("smoke")
    assert data_label(config, "cxr14") == "real data, paper split"
    assert data_label(config, "cxr11") == PHANTOM_NOTE
    assert data_label(config) == f"CXR14: real data; CXR11: {PHANTOM_NOTE}; paper split"


def test_on_colab_runs_on_the_vms_own_disk_get_one_warning(isolated_outputs, monkeypatch, capsys):
    from cxrlib.app import parameters
    from cxrlib.core.platform import DRIVE_PATHS_ENV

    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-test")
    monkeypatch.setattr(parameters, "_warned", set())
    config_and_extras({"PROFILE": "smoke"})
    out = capsys.readouterr().out
    assert out.count("erased when the runtime disconnects") == 2  # runs and results
    assert "drive.mount('/content/drive')" in out
    config_and_extras({"PROFILE": "smoke"})
    assert "erased" not in capsys.readouterr().out  # once per session
    monkeypatch.setattr(parameters, "_warned", set())
    monkeypatch.setenv(DRIVE_PATHS_ENV, str(isolated_outputs))  # both folders on Drive now
    config_and_extras({"PROFILE": "smoke"})
    assert "erased" not in capsys.readouterr().out


def test_a_setup_cell_whose_clone_fails_stops_at_once(tmp_path, monkeypatch):
    """Kaggle's internet off (here: a repository address git cannot reach): git says why, the
    cell stops before anything is installed, and its first line names Kaggle's fix."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")  # the address leads nowhere, as offline
    monkeypatch.setenv("GIT_CONFIG_KEY_0", f"url.{tmp_path / 'nowhere'}.insteadOf")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", repository_url())
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)  # a fresh VM
    cell = setup_cell()
    assert len(cell.splitlines()) <= 5 and "Settings > Internet on" in cell
    with pytest.raises(FileNotFoundError, match=r"bootstrap\.py"):
        exec(cell, {})
    assert not (tmp_path / "cxr-kit").exists()


def test_bootstrap_installs_with_every_preinstalled_package_pinned(tmp_path, monkeypatch):
    """The setup cell's second half (cxrlib/app/bootstrap.py, run from the clone): pip gets
    every installed distribution as a constraint; a failure stops with pip's words."""
    kit = tmp_path / "cxr-kit"
    shutil.copytree(
        PROJECT_ROOT / "cxrlib", kit / "cxrlib", ignore=shutil.ignore_patterns("__pycache__")
    )
    calls = []

    def fake_pip(command, **kwargs):
        calls.append(command)
        return subprocess.CompletedProcess(command, 0 if len(calls) == 1 else 1, "", "ERROR: x\n")

    monkeypatch.setattr(subprocess, "run", fake_pip)
    namespace = runpy.run_path(str(kit / "cxrlib/app/bootstrap.py"))
    said = namespace["install"](kit)
    assert calls[0][1:5] == ["-m", "pip", "install", "-q"] and calls[0][-1] == str(kit)
    pins = (kit / "preinstalled.txt").read_text().splitlines()
    assert f"torch=={version('torch')}" in pins and not any(p.startswith("cxrlib==") for p in pins)
    assert f"{len(pins)} preinstalled packages kept" in said
    with pytest.raises(SystemExit, match="ERROR: x"):
        namespace["install"](kit)


@pytest.mark.slow  # papermill starts a kernel
def test_an_expected_error_in_a_notebook_is_its_one_sentence(tmp_path):
    """An unmounted Drive (a UserError) stops the notebook with one line, not under a
    traceback of the kit's frames; papermill still sees the cell fail."""
    import json
    import os
    import sys

    import nbformat

    nb = nbformat.v4.new_notebook()
    runs = tmp_path / "content" / "drive" / "MyDrive" / "runs"
    nb.cells = [
        nbformat.v4.new_code_cell(
            f"from cxrlib.app import notebook as nb\nPROFILE = 'smoke'\nRUNS_DIR = {str(runs)!r}\n"
            "RESULTS_DIR = None\ns = nb.start(globals())"
        )
    ]
    nbformat.write(nb, tmp_path / "in.ipynb")
    env = {**os.environ, "CXRLIB_DRIVE_MOUNT": str(tmp_path / "content" / "drive")}
    done = subprocess.run(
        [sys.executable, "-m", "papermill", str(tmp_path / "in.ipynb"),
         str(tmp_path / "out.ipynb"), "--kernel", "python3"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode != 0  # the cell failed: Run all and papermill stop there
    cells = json.loads((tmp_path / "out.ipynb").read_text())["cells"]
    (error,) = [o for c in cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert error["ename"] == "DriveNotMountedError"
    assert len(error["traceback"]) == 1 and error["traceback"][0].startswith("error: RUNS_DIR")
    assert "drive.mount(" in error["traceback"][0]


def test_restart_starts_the_named_models_over_and_no_other(isolated_outputs):
    """A notebook's RESTART (the message of a refused resume names it): the named model's run
    starts over from its first step, the other resumes."""
    from cxrlib.train.checkpoints import CheckpointSaver
    from cxrlib.train.layout import RunFolder

    config = load_config("smoke", phantom_images=40, epochs=2, seeds=1)
    names = ["resnet34", "resnet50"]
    first = train_models(config, "cxr11", names, progress=False, max_steps=1)
    again = train_models(config, "cxr11", names, restart=["resnet34"], progress=False, max_steps=2)
    steps = {
        name: CheckpointSaver(RunFolder(again[name].folder)).load_last()["state"]["step"]
        for name in names
    }
    assert steps == {"resnet34": 2, "resnet50": 2}
    assert first["resnet34"].folder == again["resnet34"].folder
    log = (again["resnet34"].folder / "train.log").read_text()
    assert log.count("started resnet34") == 1 and "resumed" not in log  # a new log: restarted
    assert "resumed" in (again["resnet50"].folder / "train.log").read_text()
