"""``python -m cxrlib``: help for every command, validated configuration."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cxrlib.app.main import COMMANDS, CONFIG_OPTIONS, main


def run_module(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cxrlib", *args], capture_output=True, text=True, timeout=120
    )


def test_top_level_help_lists_commands():
    result = run_module("--help")
    assert result.returncode == 0
    assert "usage: python -m cxrlib" in result.stdout
    for name in COMMANDS:
        assert name in result.stdout


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_has_help_listing_only_its_own_options(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    takes = COMMANDS[command][3]
    for option in CONFIG_OPTIONS:
        assert (f"--{option}" in out) == (option in takes), (command, option)


def test_commands_that_use_no_configuration_take_no_profile(capsys):
    """predict, export and metrics read a model or a run, never a profile: their --help is
    theirs alone, and a folder option they do not take is refused by argparse."""
    for command in ("predict", "export", "metrics", "badges", "hours"):
        assert not COMMANDS[command][3]
    assert set(COMMANDS["train"][3]) == set(CONFIG_OPTIONS)
    assert COMMANDS["status"][3] == ("runs-dir",)


def test_a_folder_given_as_a_parameter_names_the_option_to_use(capsys):
    assert main(["config", "--set", "runs_dir=elsewhere"]) == 2
    err = capsys.readouterr().err
    assert "--runs-dir on the command line" in err and "RUNS_DIR in a notebook" in err


def test_config_command_prints_validated_json(capsys):
    assert main(["config", "--profile", "paper", "--set", "epochs=7"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["train"]["epochs"] == 7 and data["profile"] == "paper"


def test_bad_profile_and_parameter_fail_with_allowed_values(capsys):
    assert main(["config", "--profile", "bogus"]) == 2
    assert "allowed profiles: smoke, paper" in capsys.readouterr().err
    assert main(["config", "--set", "epocs=1"]) == 2
    assert "allowed parameters" in capsys.readouterr().err


def test_env_command_reports_torch(capsys, isolated_outputs):
    assert main(["env"]) == 0
    out = capsys.readouterr().out
    assert "version torch" in out and "CXR14 data" in out


def test_phantom_command_writes_loadable_datasets(tmp_path, capsys):
    from cxrlib.data.sets.cxr11 import read as load_cxr11

    args = ["phantom", "--dataset", "cxr11", "--num-images", "12", "--image-size", "64"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    folder = capsys.readouterr().out.strip()
    assert len(load_cxr11(folder)) == 12


def test_outputs_say_when_images_were_dropped():
    from cxrlib.core.config import load_config
    from cxrlib.paper.outputs import data_label

    assert "ALLOW_MISSING_IMAGES" in data_label(load_config("paper", allow_missing_images=True))
    assert data_label(load_config("paper")) == "real data, paper split"


def test_status_says_how_far_every_run_got(isolated_outputs, capsys):
    """After a reconnect, when a notebook's output is gone: one line per run."""
    from cxrlib.core.config import load_config
    from cxrlib.train.run import train_run

    tiny = {"phantom_images": 60, "epochs": 2, "model": "resnet34"}
    train_run(load_config("smoke", **tiny), "cxr11", progress=False)
    train_run(load_config("smoke", seed=1, **tiny), "cxr11", progress=False, max_steps=1)
    capsys.readouterr()
    assert main(["status", str(isolated_outputs / "runs")]) == 0
    everything = capsys.readouterr().out.splitlines()
    lines, planned = everything[:2], everything[2:]
    # each run named with its profile and split, so that neither is taken for the other
    assert "cxr11 resnet34 seed 0 (smoke profile, paper split): finished, test mean AUC" in lines[0]
    assert (
        "resnet34 seed 1 (smoke profile, paper split): started, no epoch finished yet" in lines[1]
    )
    assert main(["status", "--runs-dir", str(isolated_outputs / "runs")]) == 0  # the same
    assert capsys.readouterr().out.splitlines() == everything
    assert "train.log" in lines[1]
    # the runs the profile plans and nobody started yet, per dataset and split
    assert [p.split(":")[0] for p in planned] == [
        "cxr14 (smoke profile, paper split)",
        "cxr11 (smoke profile, paper split)",
    ]
    cxr11 = planned[1].split("not started: ")[1].split(", ")
    assert "ctranscnn_tiny" in cxr11 and "ctranscnn_tiny (seed 1)" in cxr11
    assert "resnet34" not in cxr11  # started


def test_status_on_an_unmounted_drive_says_to_mount_it_and_writes_nothing(
    isolated_outputs, monkeypatch, capsys
):
    from cxrlib.core.platform import DRIVE_MOUNT_ENV

    mount = isolated_outputs / "content" / "drive"  # /content/drive without drive.mount
    monkeypatch.setenv(DRIVE_MOUNT_ENV, str(mount))
    runs = mount / "MyDrive" / "cxr-runs"
    assert main(["status", "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err
    assert "not mounted, so its runs cannot be read" in err and "drive.mount(" in err
    assert "nothing was written" not in err and "run status again" in err
    link = isolated_outputs / "mydrive"  # ln -s /content/drive/MyDrive /mydrive
    link.symlink_to(mount / "MyDrive", target_is_directory=True)
    assert main(["status", str(link / "cxr-runs")]) == 2
    assert "not mounted" in capsys.readouterr().err
    assert not mount.exists()
