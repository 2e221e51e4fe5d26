"""Errors a user can act on.

Every expected failure -- a bad parameter, a dataset folder without its Kaggle layout, a split
file that fails its checksum, a run folder that holds another run or is in use, a loss that
became NaN -- raises a subclass of :class:`UserError`. Its message names the file concerned and
the fix. The command line prints such an error as one line and exits with status 2, without a
traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """An expected error whose message says which file is concerned and what to do."""


class RunLockedError(UserError, RuntimeError):
    """Another process is training in the same run folder."""


class RunConfigMismatchError(UserError, ValueError):
    """A run folder holds a run made with other settings or other data."""


class RunNotFinishedError(UserError, FileNotFoundError):
    """A run folder that holds no finished run where one is needed."""


class NonFiniteLossError(UserError, FloatingPointError):
    """The loss became NaN or infinite; the message names the checkpoint to resume from."""


class DiskSpaceError(UserError, OSError):
    """Not enough free disk space for a file that is about to be written."""


class ModelFileError(UserError, ValueError):
    """A model file that is missing, or not one this kit wrote, or holds another model."""


class DriveNotMountedError(UserError, FileNotFoundError):
    """A folder on Google Drive (under ``/content/drive``) while Drive is not mounted."""


class PermissionError_(UserError, PermissionError):
    """A folder or file the kit must write to and may not (read-only, another user's)."""


class DamagedFileError(UserError, OSError):
    """A file the kit wrote reads back otherwise than written (truncated, altered, not parsable):
    detected by its checksum or format, never used; the message names the file and the fix."""


def as_user_error(err: BaseException) -> UserError | None:
    """``err`` as the one-line error a user can act on: itself when it is a :class:`UserError`,
    a full disk (``ENOSPC`` from any write: a log line, an image, a checkpoint) as a
    :class:`DiskSpaceError` saying what to do; None for anything else (a bug: its traceback
    stays)."""
    import errno  # here: only on an error's way out

    if isinstance(err, UserError):
        return err
    full = err
    while full is not None and not (isinstance(full, OSError) and full.errno == errno.ENOSPC):
        full = full.__cause__ or full.__context__  # a writer may wrap it (torch.save)
    if isinstance(err, OSError) and err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        where = f" {err.filename}" if err.filename else " a folder"
        return PermissionError_(
            f"cannot write{where}: {err.strerror} (a read-only or foreign folder); choose one "
            f"this user may write to with --results-dir / --runs-dir / --data-dir (RESULTS_DIR, "
            f"RUNS_DIR, DATA_DIR in a notebook)"
        )
    if full is not None:
        where = f" writing {full.filename}" if full.filename else ""
        return DiskSpaceError(
            f"no space left on the disk{where}; free some space there (or move the outputs with "
            f"--runs-dir / --data-dir / --results-dir) and run the same command again: it "
            f"resumes where it stopped"
        )
    return None
