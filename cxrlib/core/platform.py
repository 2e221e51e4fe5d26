"""Where this process runs: Colab, Kaggle, or elsewhere, and whether a path lies on a mounted
Google Drive.

Google Drive needs care (:mod:`cxrlib.core.fileio`): a file that is deleted or replaced there
(``os.replace`` onto it) goes to Drive's trash and still counts against the user's quota, so
checkpoints on Drive are overwritten in place and emptied before they are deleted. Drive is
recognised by its file system wherever it is mounted: Colab's Drive client is a FUSE file system
of type ``fuse.drive`` (the type ``google.colab.drive`` itself looks for in ``mount``'s table), so
``drive.mount("/content/gdrive")`` is found as well as the usual ``/content/drive``; also a
folder under ``/content/drive`` while that is a mount point, and a folder the user declares as
Drive in ``$CXRLIB_DRIVE_PATHS`` (paths separated by ``os.pathsep``: a stand-in for tests).
``$CXRLIB_DRIVE_MOUNT`` moves the expected mount point and ``$CXRLIB_MOUNTS_FILE`` the mount
table read (tests).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

#: Where Colab mounts Google Drive (``from google.colab import drive; drive.mount(...)``).
DRIVE_MOUNT_ENV = "CXRLIB_DRIVE_MOUNT"
#: Folders the user declares to be on Google Drive (``os.pathsep``-separated).
DRIVE_PATHS_ENV = "CXRLIB_DRIVE_PATHS"
MOUNT_HINT = "from google.colab import drive; drive.mount('/content/drive')"
#: The mount table (``/proc/self/mounts``: device, mount point, type, ...); tests replace it.
MOUNTS_FILE_ENV = "CXRLIB_MOUNTS_FILE"
#: The file-system type of Google Drive's FUSE client on Colab.
DRIVE_FS_TYPES = ("fuse.drive",)


def on_colab() -> bool:
    """True in a Colab runtime (Colab sets ``COLAB_RELEASE_TAG`` in every runtime)."""
    return bool(os.environ.get("COLAB_RELEASE_TAG"))


def drive_mount_point() -> Path:
    return Path(os.environ.get(DRIVE_MOUNT_ENV, "/content/drive"))


def _declared_drive_paths() -> list[Path]:
    raw = os.environ.get(DRIVE_PATHS_ENV, "")
    return [Path(p).expanduser().resolve() for p in raw.split(os.pathsep) if p]


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def under_drive_mount_point(path: str | os.PathLike) -> bool:
    """True for a path under the Drive mount point, mounted or not."""
    return _within(Path(path).expanduser().absolute(), drive_mount_point().absolute())


def _unescape(field: str) -> str:
    """A mount table's field as a path (spaces and tabs are written ``\\040``, ``\\011``)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def drive_mount_points() -> list[Path]:
    """Where Google Drive's FUSE file system is mounted now (none outside Colab)."""
    table = Path(os.environ.get(MOUNTS_FILE_ENV, "/proc/self/mounts"))
    try:
        lines = table.read_text().splitlines()
    except OSError:
        return []
    points = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 3 and fields[2] in DRIVE_FS_TYPES:
            points.append(Path(_unescape(fields[1])))
    return points


def drive_mounted() -> bool:
    """True when Drive is mounted at the expected mount point (``/content/drive``)."""
    point = drive_mount_point()
    return os.path.ismount(point) or point.absolute() in drive_mount_points()


def on_drive(path: str | os.PathLike) -> bool:
    """True for a path on Google Drive: within a mounted Drive, wherever it is mounted (by its
    file system), or under a declared folder."""
    path = Path(path).expanduser().absolute()
    resolved = path.resolve()
    if any(_within(resolved, folder) for folder in _declared_drive_paths()):
        return True
    if any(_within(resolved, point) or _within(path, point) for point in drive_mount_points()):
        return True
    return under_drive_mount_point(path) and drive_mounted()


def unmounted_drive_path(path: str | os.PathLike) -> bool:
    """True for a path meant for Drive (under the mount point, as written or through a symlink
    such as ``/mydrive -> /content/drive/MyDrive``) while Drive is not mounted: writing there
    would fill the VM's disk and make a later ``drive.mount`` fail."""
    path = Path(path).expanduser()
    declared = any(_within(path.resolve(), f) for f in _declared_drive_paths())
    meant = under_drive_mount_point(path) or under_drive_mount_point(path.resolve())
    return meant and not drive_mounted() and not declared


@contextlib.contextmanager
def environment_variable(name: str, value: str) -> Iterator[None]:
    """``$name`` set to ``value`` for the duration of a call into a library that reads its
    setting only from the environment (kagglehub's cache folder), restored afterwards."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before
