"""``python -m cxrlib status``: how far every run under a runs folder got -- after a reconnect,
when a notebook's output is gone.

One line per run that has started (finished with its test mean AUC; or epochs done of planned,
the last loss and validation AUC, and the log to read), then, per dataset and split, the runs the
profile plans that have not started yet (:func:`cxrlib.paper.items.planned_runs`, at the
profile's default seeds). A runs folder on a Google Drive that is not mounted cannot be read:
the command says so and how to mount it -- it writes nothing, so it does not speak of writing.
"""

from __future__ import annotations

from pathlib import Path

from cxrlib.core import platform
from cxrlib.core.config import PROFILES, load_config
from cxrlib.core.errors import DriveNotMountedError
from cxrlib.core.workspace import Workspace
from cxrlib.paper.items import planned_runs
from cxrlib.train.layout import RunKey
from cxrlib.train.results import progress_lines


def _profile_folders(folder: Path) -> list[Path]:
    """The profiles' folders at or under ``folder`` (none for one run's folder)."""
    if folder.name in PROFILES and folder.is_dir():
        return [folder]
    return [folder / p for p in PROFILES if (folder / p).is_dir()]


def not_started_lines(folder: Path, workspace: Workspace) -> list[str]:
    """Per profile, dataset and split: the planned runs whose folder does not exist yet."""
    lines = []
    for profile_folder in _profile_folders(folder):
        profile, runs = profile_folder.name, profile_folder.parent
        started = {RunKey.from_folder(p) for p in RunKey.started(runs, profile)}
        splits = sorted({k.split for k in started} | {"paper"})
        for split in splits:
            config = load_config(profile, workspace=workspace, split=split)
            waiting: dict[str, list[str]] = {}
            for key in planned_runs(config):
                if key not in started:
                    name = key.model if key.seed == 0 else f"{key.model} (seed {key.seed})"
                    waiting.setdefault(key.dataset, []).append(name)
            for dataset, names in waiting.items():
                lines.append(
                    f"{dataset} ({profile} profile, {split} split): not started: {', '.join(names)}"
                )
    return lines


def status_lines(folder: Path, workspace: Workspace) -> list[str]:
    """What ``status`` prints for ``folder`` (a runs folder, a profile's folder or one run)."""
    if platform.unmounted_drive_path(folder):
        raise DriveNotMountedError(
            f"{folder} is on Google Drive, which is not mounted, so its runs cannot be read: "
            f"mount it ({platform.MOUNT_HINT}), then run status again to see how far every "
            "run there got"
        )
    if not folder.exists():
        return [f"no runs folder at {folder} (nothing has been trained there yet)"]
    lines = progress_lines(folder) + not_started_lines(folder, workspace)
    return lines or [f"no run under {folder}"]
