"""The workspace: one value for the data, runs and results folders and the data roots, read
from the environment at the ground only, carried by the configuration, checked for Drive."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxrlib.core.config import load_config
from cxrlib.core.errors import DriveNotMountedError
from cxrlib.core.workspace import ENV, Workspace, WorkspaceError, parse_data_roots, project_root


def test_defaults_are_the_project_folders():
    workspace = Workspace.from_env({})
    root = project_root()
    assert (workspace.data, workspace.runs, workspace.results) == (
        root / "open_data",
        root / "runs",
        root / "results",
    )
    assert workspace.data_roots == () and not workspace.offline


def test_the_environment_sets_every_field(tmp_path):
    env = {
        ENV["runs"]: str(tmp_path / "r"),
        ENV["data_roots"]: f"cxr14={tmp_path / 'nih'}, cxr11={tmp_path / 'ranzcr'}",
        ENV["offline"]: "1",
        ENV["kaggle_input"]: str(tmp_path / "k"),
    }
    workspace = Workspace.from_env(env)
    assert workspace.runs == tmp_path / "r" and workspace.offline
    assert workspace.root("cxr14") == tmp_path / "nih"
    assert workspace.root("cxr11") == tmp_path / "ranzcr" and workspace.root("x") is None
    assert workspace.kaggle_input == tmp_path / "k"


def test_replace_keeps_what_it_is_not_given_and_adds_roots(tmp_path):
    base = Workspace.at(tmp_path).replace(data_roots={"cxr14": "/a"})
    moved = base.replace(runs="~/runs", data_roots="cxr11=/b", results=None)
    assert moved.runs == Path("~/runs").expanduser() and moved.results == base.results
    assert dict(moved.data_roots) == {"cxr11": moved.root("cxr11"), "cxr14": moved.root("cxr14")}
    with pytest.raises(WorkspaceError, match="no colour"):
        base.replace(colour="red")


@pytest.mark.parametrize("bad", ["cxr14", "=/x", ["cxr14", "/x"]])
def test_data_roots_that_cannot_be_read_say_how_to_write_them(bad):
    with pytest.raises(WorkspaceError, match=r"NAME=DIR|map dataset names"):
        parse_data_roots(bad)


def test_the_configuration_carries_the_workspace_but_does_not_record_it(tmp_path):
    workspace = Workspace.at(tmp_path)
    config = load_config("smoke", workspace=workspace, epochs=2)
    assert config.workspace == workspace and config.override(seed=1).workspace == workspace
    assert "runs" not in config.flat() and config == load_config("smoke", epochs=2)
    assert config.to_dict()["workspace"]["runs"] == str(tmp_path / "runs")


def test_a_drive_folder_is_refused_while_drive_is_unmounted_also_through_a_symlink(
    tmp_path, monkeypatch
):
    """``ln -s /content/drive/MyDrive /mydrive`` and then RUNS_DIR=/mydrive/runs: before
    Drive is mounted the link points into the empty mount point, which must be refused as the
    direct path is."""
    mount = tmp_path / "content" / "drive"
    (mount / "MyDrive").mkdir(parents=True)
    monkeypatch.setenv("CXRLIB_DRIVE_MOUNT", str(mount))
    link = tmp_path / "mydrive"
    link.symlink_to(mount / "MyDrive")
    for runs in (mount / "MyDrive" / "runs", link / "runs"):
        with pytest.raises(DriveNotMountedError, match=r"RUNS_DIR .* mount Drive first"):
            Workspace.at(tmp_path).replace(runs=runs).check()
    assert Workspace.at(tmp_path).check().runs == tmp_path / "runs"
