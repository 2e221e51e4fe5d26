"""Runs on Google Drive: no ``*.pt`` is ever renamed or renamed onto, one that must go is
emptied before it is deleted (Drive's trash keeps nothing of it), the space used stays bounded
whatever the number of epochs, and a session killed mid-write resumes from the other copy --
to the same result as a run never interrupted. Drive is a stand-in: a folder declared as Drive
(``$CXRLIB_DRIVE_PATHS``), as a user with Drive mounted elsewhere would."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from cxrlib.core.config import load_config
from cxrlib.core.errors import DriveNotMountedError
from cxrlib.core.platform import DRIVE_MOUNT_ENV, DRIVE_PATHS_ENV, on_drive
from cxrlib.train.checkpoints import CheckpointSaver
from cxrlib.train.layout import RunFolder
from cxrlib.train.run import train_run

TINY = {"epochs": 3, "phantom_images": 60, "checkpoint_minutes": 1e-9}


@pytest.fixture
def drive(isolated_outputs, monkeypatch):
    """RUNS_DIR on a stand-in Drive; every rename and deletion of a ``*.pt`` file there is
    recorded (deletions with the file's size at that moment)."""
    folder = isolated_outputs / "drive"
    folder.mkdir()
    monkeypatch.setenv(DRIVE_PATHS_ENV, str(folder))
    monkeypatch.setenv("CXRLIB_RUNS_DIR", str(folder / "runs"))
    events: list[tuple[str, str, int]] = []
    real_replace, real_rename, real_unlink = os.replace, os.rename, os.unlink

    def on(path) -> bool:
        return str(path).endswith(".pt") and str(folder) in str(Path(path).absolute())

    def replace(src, dst, *a, **k):
        if on(src) or on(dst):
            events.append(("rename", str(dst), 0))
        return real_replace(src, dst, *a, **k)

    def rename(src, dst, *a, **k):
        if on(src) or on(dst):
            events.append(("rename", str(dst), 0))
        return real_rename(src, dst, *a, **k)

    def unlink(path, *a, **k):
        if on(path):
            events.append(("delete", str(path), os.stat(path).st_size))
        return real_unlink(path, *a, **k)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "unlink", unlink)
    return folder, events


def _pt_files(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in folder.rglob("*.pt")}


def test_a_run_on_drive_renames_no_checkpoint_and_leaves_nothing_in_the_trash(drive):
    folder, events = drive
    config = load_config("smoke", **TINY)
    assert on_drive(folder / "runs")
    result = train_run(config, "cxr11", progress=False)
    assert result.finished
    renames = [e for e in events if e[0] == "rename"]
    full_deletions = [e for e in events if e[0] == "delete" and e[2] > 0]
    assert renames == [] and full_deletions == [], events
    assert [e for e in events if e[0] == "delete"], "the resume checkpoints were removed"
    assert set(_pt_files(result.folder)) == {"best.pt"}  # a finished run keeps best.pt alone


@pytest.mark.slow
def test_drive_space_stays_bounded_whatever_the_epochs(drive):
    seen: set[str] = set()
    config = load_config("smoke", **(TINY | {"epochs": 4}))
    for steps in (3, 6, 9, 12):  # pause every few steps: many checkpoints of each kind
        run = train_run(config, "cxr11", progress=False, max_steps=steps)
        seen |= set(_pt_files(run.folder))
    assert seen <= {"last.pt", "last.prev.pt", "best.pt", "best.prev.pt"}


@pytest.mark.slow
def test_a_session_killed_mid_write_resumes_from_the_other_copy(
    drive, isolated_outputs, monkeypatch
):
    """The newest checkpoint on Drive is half-written (the session died while copying): the
    next session takes the other, complete one and ends exactly as an uninterrupted run."""
    config = load_config("smoke", **TINY)
    paused = train_run(config, "cxr11", progress=False, max_steps=5)
    run = RunFolder(paused.folder)
    sequence = {p: torch.load(p, weights_only=True)["sequence"] for p in (run.last, run.previous)}
    newest = max(sequence, key=sequence.get)
    complete_step = CheckpointSaver(run).load_last()["state"]["step"]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # killed mid-copy
    fallback = CheckpointSaver(run).load_last()
    assert fallback is not None and fallback["state"]["step"] < complete_step
    resumed = train_run(config, "cxr11", progress=False)
    monkeypatch.setenv("CXRLIB_RUNS_DIR", str(isolated_outputs / "local_runs"))
    straight = train_run(config, "cxr11", progress=False)
    a, b = resumed.predictions(), straight.predictions()
    assert (a.scores == b.scores).all()  # byte-equal on a CPU


def test_a_drive_folder_that_is_not_mounted_is_refused_before_any_work(
    isolated_outputs, monkeypatch
):
    from cxrlib.app import config_and_extras

    mount = isolated_outputs / "content" / "drive"  # /content/drive of a VM without drive.mount
    monkeypatch.setenv(DRIVE_MOUNT_ENV, str(mount))
    wanted = mount / "MyDrive" / "cxr-runs"
    with pytest.raises(DriveNotMountedError, match=r"mount Drive first .*drive\.mount"):
        config_and_extras({"PROFILE": "smoke", "RUNS_DIR": str(wanted)})
    assert not mount.exists()  # nothing was created there
    monkeypatch.setenv("CXRLIB_RESULTS_DIR", str(mount / "MyDrive" / "results"))
    with pytest.raises(DriveNotMountedError, match="RESULTS_DIR"):
        config_and_extras({"PROFILE": "smoke"})
    assert not mount.exists()


@pytest.fixture
def whole_drive(isolated_outputs, monkeypatch):
    """Runs and results on a stand-in Drive; every rename on it and every deletion of a file
    that still had content is recorded -- what Drive's trash would keep."""
    folder = isolated_outputs / "drive"
    folder.mkdir()
    monkeypatch.setenv(DRIVE_PATHS_ENV, str(folder))
    monkeypatch.setenv("CXRLIB_RUNS_DIR", str(folder / "runs"))
    monkeypatch.setenv("CXRLIB_RESULTS_DIR", str(folder / "results"))
    trashed: list[tuple[str, str, int]] = []
    real_replace, real_rename, real_unlink = os.replace, os.rename, os.unlink

    def on(path) -> bool:
        return str(folder) in str(Path(path).absolute())

    def replace(src, dst, *a, **k):
        if on(src) or on(dst):
            size = os.stat(dst).st_size if os.path.exists(dst) else 0
            trashed.append(("rename", str(dst), size))
        return real_replace(src, dst, *a, **k)

    def rename(src, dst, *a, **k):
        if on(src) or on(dst):
            size = os.stat(dst).st_size if os.path.exists(dst) else 0
            trashed.append(("rename", str(dst), size))
        return real_rename(src, dst, *a, **k)

    def unlink(path, *a, **k):
        if on(path) and os.stat(path).st_size:
            trashed.append(("delete", str(path), os.stat(path).st_size))
        return real_unlink(path, *a, **k)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "unlink", unlink)
    return folder, trashed


@pytest.mark.slow
def test_nothing_the_kit_rewrites_on_drive_goes_to_the_trash(whole_drive):
    """A run (epochs.csv every epoch, config.json, metrics.json, predictions, the log), a table,
    a figure and the report (Markdown and HTML), all written twice: on Drive every file is
    written in place -- no rename, no deletion of a file with content -- and epochs.csv grows
    by appending, as train.log does."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from cxrlib.paper.outputs import save_figure, save_table
    from cxrlib.paper.report import write_report

    folder, trashed = whole_drive
    config = load_config("smoke", **TINY)
    result = train_run(config, "cxr11", progress=False)
    history = RunFolder(result.folder).history_file
    assert history.read_text().count("\n") == 1 + config.train.epochs
    for _ in range(2):  # written again: replaced in place, not renamed onto
        save_table(pd.DataFrame({"model": ["a"], "mean AUC": [71.0]}), "drive_table", config)
        fig, ax = plt.subplots()
        ax.plot([0, 1])
        save_figure(fig, "drive_figure", config)
        plt.close(fig)
        write_report(config)
    assert (folder / "results" / "smoke" / "REPORT.html").is_file()
    assert trashed == [], trashed


def test_an_emptied_file_is_flushed_before_it_is_deleted(tmp_path, monkeypatch):
    """Drive uploads what is on disk: the emptied version must reach it before the unlink."""
    from cxrlib.core import fileio

    path = tmp_path / "last.pt"
    path.write_bytes(b"x" * 1000)
    calls: list[str] = []
    real_fsync, real_unlink = os.fsync, os.unlink

    def fsync(fd):
        calls.append(f"fsync {os.fstat(fd).st_size}")
        return real_fsync(fd)

    def unlink(target, *a, **k):
        calls.append("unlink")
        return real_unlink(target, *a, **k)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "unlink", unlink)
    fileio.remove_file(path)
    assert calls == ["fsync 0", "unlink"] and not path.exists()


def test_drive_is_found_by_its_file_system_wherever_it_is_mounted(tmp_path, monkeypatch):
    """drive.mount('/content/gdrive'): Colab's Drive client is a FUSE file system of type
    fuse.drive; a folder under it is on Drive even away from /content/drive."""
    from cxrlib.core import platform

    gdrive = tmp_path / "content" / "gdrive"
    (gdrive / "MyDrive").mkdir(parents=True)
    table = tmp_path / "mounts"
    table.write_text(
        "overlay / overlay rw,relatime 0 0\n"
        f"drive {gdrive} fuse.drive rw,nosuid,nodev,relatime,user_id=0,group_id=0 0 0\n"
    )
    monkeypatch.setenv(platform.MOUNTS_FILE_ENV, str(table))
    monkeypatch.setenv(DRIVE_MOUNT_ENV, str(tmp_path / "content" / "drive"))
    assert platform.drive_mount_points() == [gdrive]
    assert on_drive(gdrive / "MyDrive" / "cxr-runs")
    assert not on_drive(tmp_path / "content" / "runs")
    link = tmp_path / "mydrive"  # ln -s /content/gdrive/MyDrive /mydrive
    link.symlink_to(gdrive / "MyDrive", target_is_directory=True)
    assert on_drive(link / "cxr-runs")
    spaced = tmp_path / "with space"
    table.write_text(f"drive {str(spaced).replace(' ', chr(92) + '040')} fuse.drive rw 0 0\n")
    assert platform.drive_mount_points() == [spaced]
