"""Crash-safe file writing: write to a temporary file beside the target, then rename.

A crash (or a killed Colab session) mid-write leaves the previous file intact and never a
half-written one, because ``os.replace`` is atomic on POSIX and Windows. On Google Drive a
replaced or deleted file goes to the trash and still counts against the user's quota, so every
file there is written in place instead (:func:`atomic_write` does it by itself: a file that only
grew -- ``epochs.csv`` each epoch -- gets its new tail appended, any other is truncated and
rewritten from memory in one write), and one that must go is emptied, flushed to Drive, then
deleted (:func:`remove_file`). Checkpoints, which a crash mid-write on Drive must not lose,
alternate between two files (:mod:`cxrlib.train.checkpoints`). The temporary file is
named ``.<target>.<random>.tmp``; :func:`remove_stale_temp_files` removes those that a killed
process left behind. The finished file gets the permissions an ordinary ``open`` would give it
(0666 less the umask), not the 0600 of ``tempfile.mkstemp``.

(Named ``fileio`` rather than ``io`` so that it never shadows the standard library's module.)
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from cxrlib.core.errors import DiskSpaceError
from cxrlib.core.platform import on_drive


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


def disk_full_cause(err: BaseException) -> OSError | None:
    """The full-disk ``OSError`` behind ``err``, if any: a writer may wrap it (torch.save's
    zip writer raises a ``RuntimeError`` whose context is the ``ENOSPC`` of the file's write)."""
    seen = 0
    while err is not None and seen < 10:
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            return err
        err, seen = err.__cause__ or err.__context__, seen + 1
    return None


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
    raises :class:`~cxrlib.core.errors.DiskSpaceError` naming the file. On Google Drive the
    content is gathered in memory and written into ``path`` itself (:func:`write_on_drive`).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if on_drive(target):
        buffer = io.BytesIO() if "b" in mode else io.StringIO(newline=open_kwargs.get("newline"))
        yield buffer
        data = buffer.getvalue()
        if isinstance(data, str):
            data = data.encode(open_kwargs.get("encoding") or "utf-8")
        write_on_drive(target, data)
        return
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
        full = disk_full_cause(err)
        if full is not None:
            raise disk_full_error(target, full) from err
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(text)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created empty if absent) for a read-then-write that
    must not interleave with another process's; where the file system cannot lock, nothing."""
    with open(path, "ab") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        except OSError:  # a file system without locks: the write goes ahead unlocked
            yield
            return
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def write_on_drive(path: Path, data: bytes) -> None:
    """``data`` into the file ``path`` itself (Google Drive keeps every replaced file in its
    trash): only the new tail appended when the file already holds the rest (a history that
    grew by a row), else truncated and rewritten in one write; flushed to disk either way."""
    try:
        with _locked(path):  # two writers of one file (two notebooks) take turns
            old = path.read_bytes() if path.is_file() else None
            if old is not None and len(data) >= len(old) and data.startswith(old):
                if len(data) > len(old):
                    with open(path, "ab") as handle:
                        handle.write(data[len(old) :])
                        handle.flush()
                        os.fsync(handle.fileno())
                return
            overwrite_in_place(path, lambda handle: handle.write(data))
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise disk_full_error(path, err) from err
        raise


def remove_file(path: str | os.PathLike) -> None:
    """Delete ``path`` if it exists, emptying it first (truncated to 0 bytes and flushed to
    disk, so that the emptied version is the one Drive uploads): on Google Drive a deleted file
    goes to the trash and keeps counting against the quota unless it is empty."""
    path = Path(path)
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_size:
            with open(path, "r+b") as handle:
                handle.truncate(0)
                handle.flush()
                os.fsync(handle.fileno())
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
    except Exception as err:
        full = disk_full_cause(err)
        if full is not None:
            raise disk_full_error(path, full) from err
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
