"""Crash-safe file writing: write to a temporary file beside the target, then rename.

A crash (or a killed Colab session) mid-write leaves the previous file intact and never a
half-written one, because ``os.replace`` is atomic on POSIX and Windows. On Google Drive a
replaced or deleted file goes to the trash and still counts against the user's quota, so large
files there are overwritten in place (:func:`overwrite_in_place`) and emptied before they are
deleted (:func:`remove_file`). The temporary file is
named ``.<target>.<random>.tmp``; :func:`remove_stale_temp_files` removes those that a killed
process left behind. The finished file gets the permissions an ordinary ``open`` would give it
(0666 less the umask), not the 0600 of ``tempfile.mkstemp``.

(Named ``fileio`` rather than ``io`` so that it never shadows the standard library's module.)
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from cxrlib.core.errors import DiskSpaceError


def human_size(nbytes: int) -> str:
    return f"{nbytes / 2**30:.2f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


def check_free_space(folder: Path, needed: int, what: str, fix: str) -> None:
    """A :class:`DiskSpaceError` naming ``folder``, both sizes and ``fix`` when ``folder``'s
    disk has fewer than ``needed`` bytes free (checked before a long write, not after)."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise DiskSpaceError(
            f"{what} needs {human_size(needed)} in {folder} but only {human_size(free)} are "
            f"free; {fix}"
        )


TEMP_SUFFIX = ".tmp"


def _umask() -> int:
    """The process umask (read without changing it for longer than one call)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def disk_full_error(path: Path, err: OSError) -> DiskSpaceError:
    """A :class:`DiskSpaceError` naming ``path`` and what to do."""
    return DiskSpaceError(
        f"no space left on the disk of {path} ({err.strerror}); free some space there, or "
        f"move the output with --runs-dir / --data-dir (CXRLIB_RUNS_DIR / CXRLIB_DATA_DIR)"
    )


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """Open a temporary file for writing; on success rename it to ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched. A full disk
    raises :class:`~cxrlib.core.errors.DiskSpaceError` naming the file.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent
    )
    try:
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~_umask())
        os.replace(tmp_name, target)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            raise disk_full_error(target, err) from err
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def remove_file(path: str | os.PathLike) -> None:
    """Delete ``path`` if it exists, emptying it first (truncated to 0 bytes): on Google Drive a
    deleted file goes to the trash and keeps counting against the quota unless it is empty."""
    path = Path(path)
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_size:
            with open(path, "r+b") as handle:
                handle.truncate(0)
        path.unlink()


def overwrite_in_place(path: str | os.PathLike, write: Callable[[IO], None]) -> None:
    """Write ``path``'s new content into the same file (truncated, written, flushed to disk):
    never a rename onto it, which on Google Drive sends the replaced file to the trash. A crash
    mid-write leaves it incomplete, so callers keep a second copy (:mod:`cxrlib.train.checkpoints`
    alternates between two files)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "r+b" if path.exists() else "wb") as handle:
            handle.truncate(0)
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise disk_full_error(path, err) from err
        raise


def remove_stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that killed :func:`atomic_write` calls left in ``folder``.

    Call it only while no other process writes there (e.g. holding the run folder's lock).
    Returns the removed paths.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in folder.glob(f".*{TEMP_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed


def sha256_of(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
