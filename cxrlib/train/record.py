"""What a run records about itself, and when it may be resumed.

``config.json`` (and every checkpoint) holds the run's record: the resolved configuration,
the identity of the data (source, dataset, split, image size, cache key, a hash of the split),
how it was computed (world size, per-device batch, accumulation, precision) and the version of
the kit that made it (the git commit in a clone, else the package version). A resume with
other settings or other data is refused with what differs and the flag that starts over
(``--restart``); a deleted ``config.json`` is rewritten from a checkpoint, never from today's
settings.
"""

from __future__ import annotations

import json
import subprocess
from importlib import metadata
from pathlib import Path

from cxrlib.core.config import LEAVES, Config, load_config
from cxrlib.core.errors import RunConfigMismatchError, RunNotFinishedError
from cxrlib.core.fileio import atomic_write_text
from cxrlib.core.workspace import is_checkout
from cxrlib.train.checkpoints import CheckpointSaver
from cxrlib.train.layout import RunFolder, restart_hint

SETTINGS_VERSION = 2
#: Configuration fields that may change between sessions of one run: they cannot change
#: its results (where the data lives, how often to checkpoint, loader processes).
#: DATA_SOURCE and GRAD_ACCUM may read "auto"/None: what they resolve to -- the data's source,
#: the micro-batch -- is compared instead (DATA_IDENTITY_KEYS, RUNTIME_KEYS).
RESUME_TOLERANT = frozenset(
    {
        "num_workers",
        "checkpoint_minutes",
        "cxr14_root",
        "cxr11_root",
        "data_source",
        "grad_accum",
        "seeds",  # how many runs a notebook trains, not how one run trains
        "seed_models",
        # the evaluation's choice, not the training's: a finished run keeps the checkpoint it
        # was tested with (metrics.json says which; both are scored)
        "test_checkpoint",
    }
)
#: Parts of the data identity that must match on resume. The cache key is recorded too but
#: not compared: it changes with the files' modification times (a fresh download in a new
#: Colab session), while the images, labels and split -- the split hash -- stay the same.
DATA_IDENTITY_KEYS = ("dataset", "source", "split", "image_size", "images", "split_hash")
#: Runtime facts that must match on resume (they change what is computed; batch norm sees
#: the micro-batch).
RUNTIME_KEYS = ("precision", "global_batch", "micro_batch")


def code_version() -> str:
    """The kit's version: the git commit of the clone it runs from (``+dirty`` with uncommitted
    changes), else the installed package's version."""
    root = Path(__file__).resolve().parents[2]
    if not is_checkout(root):  # installed (site-packages): the package's version
        return f"cxrlib {metadata.version('cxrlib')}"

    def git(*args: str) -> str:
        command = ["git", "-C", str(root), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=True)
        return done.stdout

    try:
        commit = git("rev-parse", "--short=12", "HEAD").strip()
        dirty = git("status", "--porcelain", "--untracked-files=no").strip()
    except (OSError, subprocess.SubprocessError):
        return f"cxrlib {metadata.version('cxrlib')}"
    return f"git {commit}{'+dirty' if dirty else ''}"


def settings_record(config: Config, data: dict, runtime: dict) -> dict:
    """What ``config.json`` and every checkpoint hold about a run."""
    return {
        "version": SETTINGS_VERSION,
        "profile": config.profile,
        "config": config.flat(),
        "data": data,
        "runtime": runtime,
        "code": code_version(),
    }


def normalise_settings(raw: dict) -> dict:
    """Read both the current record and the flat one of version-1 runs."""
    if "config" in raw:
        return raw
    flat = {k: v for k, v in raw.items() if k != "profile"}
    if flat.get("beta1") is None:  # version 1 let BETA1 be None: the dataset's default
        flat.pop("beta1", None)
    return {"version": 1, "profile": raw["profile"], "config": flat, "data": {}, "runtime": {}}


def config_from_settings(settings: dict) -> Config:
    """The :class:`Config` a run was made with, from its ``config.json`` record."""
    flat = settings["config"]
    # names this version no longer has (e.g. the never-read CACHE_SIZE of earlier runs) are
    # ignored: they cannot change how the saved weights are rebuilt
    known = {k: v for k, v in flat.items() if k in LEAVES}
    return load_config(settings["profile"], **known)


def read_settings_file(run: RunFolder) -> dict | None:
    """The record in ``config.json``, or None when it is missing or unreadable."""
    if not run.settings_file.is_file():
        return None
    try:
        return normalise_settings(json.loads(run.settings_file.read_text()))
    except (json.JSONDecodeError, KeyError):
        run.log(f"{run.settings_file.name} is unreadable; recovering it")
        return None


def write_settings(run: RunFolder, settings: dict) -> None:
    atomic_write_text(run.settings_file, json.dumps(settings, indent=2))


def _differences(saved: dict, now: dict, keys) -> list[str]:
    return [
        f"{k.upper()}: run has {saved.get(k)!r}, now {now.get(k)!r}"
        for k in keys
        if saved.get(k) != now.get(k)
    ]


def _refuse(run: RunFolder, differing: list[str], what: str) -> None:
    if differing:
        raise RunConfigMismatchError(
            f"{run.path} holds a run made with other {what} ({'; '.join(differing)}). "
            f"Resume it with the same settings, choose another SEED for a new run, or "
            f"start it over ({restart_hint(run.path)})."
        )


def check_config(run: RunFolder, config: Config, settings: dict) -> None:
    """Refuse to resume (or read back) a run made with other settings."""
    saved = settings["config"]
    now = config.flat()
    keys = [k for k in now if k not in RESUME_TOLERANT and k in saved]
    differing = _differences(saved, now, keys)
    if settings["profile"] != config.profile:
        differing.insert(0, f"PROFILE: run has {settings['profile']!r}, now {config.profile!r}")
    _refuse(run, differing, "settings")


def check_data(run: RunFolder, settings: dict, data: dict, runtime: dict) -> None:
    """Refuse to resume a run on other data or with another precision or global batch."""
    saved_data, saved_runtime = settings.get("data") or {}, settings.get("runtime") or {}
    differing = []
    if saved_data:
        differing += _differences(saved_data, data, DATA_IDENTITY_KEYS)
        if saved_data.get("cache_key") != data.get("cache_key"):
            run.log("the image cache was rebuilt since the last session (same images)")
    if saved_runtime:
        differing += _differences(saved_runtime, runtime, RUNTIME_KEYS)
    _refuse(run, differing, "data or computation")


def read_settings(run: RunFolder, saver: CheckpointSaver) -> dict | None:
    """The run's record; rewritten from a checkpoint (``last.pt``, else ``best.pt``) when
    ``config.json`` was lost; None for a run never started."""
    settings = read_settings_file(run)
    if settings is not None:
        return settings
    checkpoint = saver.load_last(quiet=True)
    if checkpoint is None or "settings" not in checkpoint:
        try:
            checkpoint = saver.load_best()
        except RunNotFinishedError:
            return None
    if "settings" not in checkpoint:
        return None
    settings = checkpoint["settings"]
    write_settings(run, settings)
    run.log("config.json was missing: rewritten from the checkpoint")
    return settings
