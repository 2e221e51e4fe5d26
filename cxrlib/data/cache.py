"""The image cache: every image decoded once, stored as 8-bit grey in one memory-mapped array.

Decoding a 1024² NIH PNG or a 2–3k px RANZCR JPEG costs ~20 ms of CPU, so a loader that
decodes the originals every step (as the authors' mmcv pipeline does) starves the GPU on a
2-core Colab machine. The cache decodes each image once, converts it to 8-bit greyscale (RGBA,
RGB, palette and 16-bit inputs handled), resizes it with bicubic interpolation (as the
reference) to ``size × size`` and writes all images of a dataset into ``images.u8``, an
``N × size × size`` uint8 array read through ``np.memmap``.

The cache folder is named by a key over what made it (the files' names, sizes and mtimes,
the size, the interpolation, the code version), so any change builds a new one -- decoding only
the files that changed (the others are copied from the older cache, which is then removed). It
is built in ``<name>.partial`` (named by the image set, not by the files' state) with a per-image
done flag and the file each row was decoded from, which makes an interrupted build -- a crash,
or an unreadable image that is then downloaded again -- resume where it stopped; only a
complete build is renamed to its final name, and then no unfinished build of it is left. The
disk space is checked and reserved first (a memory map that meets a full disk dies with
SIGBUS), and a cache whose ``meta.json`` is missing or garbled, or whose probed pixels differ
from those written (a zeroed file), is rebuilt.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from cxrlib.core.errors import UserError
from cxrlib.core.fileio import atomic_write_text, check_free_space, disk_full_error
from cxrlib.core.progress import Progress

CACHE_VERSION = 1
INTERPOLATION = "bicubic"
CHUNK = 64


class ImageReadError(UserError, OSError):
    """Images that could not be decoded; the message lists them and the fix."""


def to_gray8(image: Image.Image) -> np.ndarray:
    """Any PIL image as an 8-bit greyscale array.

    16-bit and float images are min–max scaled to 0..255 (their bit depth in use varies);
    colour, palette and alpha images are converted with PIL's luminance rule.
    """
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low) * 255.0 if high > low else np.zeros_like(values)
        return np.round(scaled).astype(np.uint8)
    if image.mode != "L":
        image = image.convert("L")
    return np.asarray(image, dtype=np.uint8)


def original_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of an image file, read from its header only."""
    with Image.open(path) as image:
        return image.size


def load_image(path: str | os.PathLike, size: int) -> np.ndarray:
    """Decode ``path`` to 8-bit grey and resize it (bicubic) to ``size × size``.

    Large JPEGs are decoded at a reduced scale first (``Image.draft``, never below twice the
    target size), which is several times faster and visually identical after resizing.
    Raises ``OSError`` for unreadable or truncated files.
    """
    with Image.open(path) as image:
        if image.format == "JPEG":
            image.draft("L", (2 * size, 2 * size))
        image.load()
        gray = Image.fromarray(to_gray8(image))
    return np.asarray(gray.resize((size, size), Image.Resampling.BICUBIC), dtype=np.uint8)


def _decode_rows(job: tuple[list[int], list[str], int]) -> tuple[list[int], np.ndarray, list]:
    """Worker: decode one chunk; failures are returned, never raised, so all are reported."""
    rows, paths, size = job
    ok, pixels, errors = [], [], []
    for row, path in zip(rows, paths, strict=True):
        try:
            pixels.append(load_image(path, size))
            ok.append(row)
        except Image.DecompressionBombError as err:  # before OSError: it is not one
            errors.append((path, f"{err} -- resize it first (chest X-rays are ~2-4k px a side)"))
        except (OSError, ValueError, SyntaxError) as err:
            errors.append((path, f"{type(err).__name__}: {err}"))
    stacked = np.stack(pixels) if pixels else np.zeros((0, size, size), dtype=np.uint8)
    return ok, stacked, errors


def file_entries(paths: Sequence[str]) -> list[str]:
    """``name|bytes|mtime`` of each file: what identifies one image's cached pixels."""
    entries = []
    for path in paths:
        stat = os.stat(path)
        entries.append(f"{os.path.basename(path)}|{stat.st_size}|{stat.st_mtime_ns}")
    return entries


def cache_key(entries: Sequence[str], size: int) -> str:
    """A digest of everything that determines the cache's content."""
    digest = hashlib.sha256()
    digest.update(json.dumps([CACHE_VERSION, size, INTERPOLATION]).encode())
    for entry in entries:
        digest.update(f"{entry}\n".encode())
    return digest.hexdigest()


def _probe_rows(count: int) -> np.ndarray:
    """Up to 64 rows spread over the cache, checked each time it is opened."""
    return np.unique(np.linspace(0, max(count - 1, 0), num=min(count, 64)).astype(np.int64))


def _probe_digest(images: np.ndarray) -> str:
    rows = _probe_rows(len(images))
    return hashlib.sha256(np.ascontiguousarray(images[rows]).tobytes()).hexdigest()


@dataclass
class ImageCache:
    """A finished cache: ``pixels[row]`` (``size × size`` uint8) shows ``image_ids[row]``.

    (The pixels; the table of the images is :class:`cxrlib.data.prepare.PreparedDataset`'s.)
    """

    folder: Path
    pixels: np.ndarray
    image_ids: list[str]

    @property
    def size(self) -> int:
        return int(self.pixels.shape[1])

    def rows_of(self, image_ids: Sequence[str]) -> np.ndarray:
        """Cache rows of ``image_ids`` (KeyError names the first unknown id)."""
        lookup = {name: row for row, name in enumerate(self.image_ids)}
        return np.fromiter((lookup[name] for name in image_ids), dtype=np.int64)


class CacheDamagedError(OSError):
    """A cache folder whose ``meta.json`` or pixels are not what its build wrote."""


def _file_digest(path: Path) -> str:
    """The SHA-256 of a file, read in 8 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 23), b""):
            digest.update(block)
    return digest.hexdigest()


VERIFIED = "verified.json"


def _verify_pixels(folder: Path, pixels: Path, digest: str) -> None:
    """Check the whole pixel file against the digest its build wrote -- once per change of
    the file: a ``verified.json`` beside it remembers the size and time of the file it
    checked, so that an unchanged cache is not read in full at every run."""
    stat = pixels.stat()
    seen = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "digest": digest}
    stamp = folder / VERIFIED
    try:
        if json.loads(stamp.read_text()) == seen:
            return
    except (OSError, ValueError):
        pass
    if _file_digest(pixels) != digest:
        raise CacheDamagedError(f"{pixels} fails its checksum (altered after it was built)")
    with contextlib.suppress(OSError):  # a read-only cache is checked again next time
        atomic_write_text(stamp, json.dumps(seen))


def open_cache(folder: Path) -> ImageCache:
    """Open a finished cache folder read-only (memory-mapped), checking that it is intact.

    Raises :class:`CacheDamagedError` when ``meta.json`` is missing or garbled, the pixel file
    has the wrong size, the probed rows differ from those written (e.g. zeroed), or the whole
    file's SHA-256 differs from its build's (checked once per change of the file).
    """
    try:
        meta = json.loads((folder / "meta.json").read_text())
        shape = (meta["count"], meta["size"], meta["size"])
        expected = meta["count"] * meta["size"] ** 2
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CacheDamagedError(f"{folder}/meta.json is missing or unreadable ({err})") from err
    pixels = folder / "images.u8"
    if not pixels.is_file() or pixels.stat().st_size != expected:
        raise CacheDamagedError(f"{pixels} is missing or not {expected} bytes")
    images = np.memmap(pixels, dtype=np.uint8, mode="r", shape=shape)
    if meta.get("probe") and _probe_digest(images) != meta["probe"]:
        raise CacheDamagedError(f"{pixels} differs from what was written (zeroed or altered)")
    if meta.get("digest"):  # caches of earlier versions have the probe only
        _verify_pixels(folder, pixels, meta["digest"])
    return ImageCache(folder, images, meta["image_ids"])


def _allocate(path: Path, nbytes: int) -> None:
    """Create ``path`` with ``nbytes`` really reserved on disk, so that writing through a
    memory map can never hit a full disk (which kills the process with SIGBUS)."""
    with open(path, "a+b") as handle:
        try:
            os.posix_fallocate(handle.fileno(), 0, nbytes)
        except OSError as err:
            if err.errno == errno.ENOSPC:
                raise disk_full_error(path, err) from err
            if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # e.g. some network disks
                raise
            handle.truncate(nbytes)


def _reuse_rows(old: ImageCache, old_entries: list[str], entries: list[str], images, done) -> int:
    """Copy the pixels of unchanged files from an older cache of the same images."""
    lookup = {entry: row for row, entry in enumerate(old_entries)}
    pairs = [(new, lookup[e]) for new, e in enumerate(entries) if e in lookup and not done[new]]
    for start in range(0, len(pairs), 1024):
        new_rows, old_rows = (list(x) for x in zip(*pairs[start : start + 1024], strict=True))
        images[new_rows] = old.pixels[old_rows]
        done[new_rows] = 1
    images.flush()
    done.flush()
    return len(pairs)


def _reuse_newest(older: list[Path], entries: list[str], partial: _Partial) -> None:
    """Copy the unchanged files' pixels from the newest older cache of the same images."""
    for folder in older[:1]:
        try:
            old = open_cache(folder)
            old_entries = json.loads((folder / "meta.json").read_text()).get("entries", [])
        except (CacheDamagedError, ValueError):
            continue
        _reuse_rows(old, old_entries, entries, partial.images, partial.done)


def _older_caches(cache_root: Path, name: str, size: int, final: Path) -> list[Path]:
    """Finished caches of the same ``name`` and size, other than ``final`` (newest first)."""
    found = []
    for folder in Path(cache_root).glob(f"{name}-*"):
        if folder == final or folder.name.endswith(".partial") or not folder.is_dir():
            continue
        if len(folder.name) != len(name) + 17:  # <name>-<16 hex digits>
            continue
        try:
            if json.loads((folder / "meta.json").read_text())["size"] != size:
                continue
        except (OSError, ValueError, KeyError):
            continue
        found.append(folder)
    return sorted(found, key=lambda f: f.stat().st_mtime, reverse=True)


def _remove_partials(cache_root: Path, name: str) -> None:
    """Unfinished builds of ``name`` (this version's ``<name>.partial`` and the per-key
    ``<name>-<key>.partial`` of earlier versions): a finished cache of the data exists."""
    pattern = re.compile(re.escape(name) + r"(-[0-9a-f]{16})?\.partial")
    for folder in Path(cache_root).glob(f"{name}*.partial"):
        if pattern.fullmatch(folder.name):
            shutil.rmtree(folder, ignore_errors=True)


@dataclass
class _Partial:
    """An unfinished build: pixels and a done flag per row, memory-mapped, and what each done
    row was decoded from (``build.json``), so that a build resumes after any interruption."""

    folder: Path
    images: np.ndarray
    done: np.ndarray


def _open_partial(
    cache_root: Path, name: str, image_ids: Sequence[str], entries: list[str], size: int
) -> _Partial:
    """The build of ``name`` to continue (its rows whose file changed since are decoded again)
    or a new one. Its folder is named by the image set, not by the files' state, so replacing a
    broken image resumes the same build instead of starting another."""
    folder = Path(cache_root) / f"{name}.partial"
    count = len(entries)
    try:
        build = json.loads((folder / "build.json").read_text())
        same = build["image_ids"] == list(image_ids) and build["size"] == size
    except (OSError, ValueError, KeyError):
        same = False
    if not same or not (folder / "images.u8").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        check_free_space(
            folder,
            count * size * size + count,
            "the image cache",
            "free space there, or put the data folder on a larger disk with --data-dir DIR "
            "(CXRLIB_DATA_DIR)",
        )
        _allocate(folder / "images.u8", count * size * size)
        _allocate(folder / "done.u8", count)
        build = {"image_ids": list(image_ids), "size": size, "entries": entries}
    shape = (count, size, size)
    images = np.memmap(folder / "images.u8", dtype=np.uint8, mode="r+", shape=shape)
    done = np.memmap(folder / "done.u8", dtype=np.uint8, mode="r+", shape=(count,))
    changed = [
        row for row, (a, b) in enumerate(zip(build["entries"], entries, strict=True)) if a != b
    ]
    if changed:  # a file replaced since it was decoded (a re-downloaded image)
        done[changed] = 0
        done.flush()
    build["entries"] = entries
    atomic_write_text(folder / "build.json", json.dumps(build))
    return _Partial(folder, images, done)


def _decode_rows_into(
    partial: _Partial,
    paths: Sequence[str],
    size: int,
    workers: int | None,
    progress: bool,
    on_chunk: Callable[[int], None] | None,
    desc: str,
) -> list[tuple[str, str]]:
    """Decode every row not done yet into ``partial`` (in ``workers`` processes); the files
    that could not be read, with why."""
    images, done, count = partial.images, partial.done, len(paths)
    todo = np.flatnonzero(done == 0).tolist()
    jobs = [
        (todo[i : i + CHUNK], [paths[r] for r in todo[i : i + CHUNK]], size)
        for i in range(0, len(todo), CHUNK)
    ]
    workers = (os.cpu_count() or 1) if workers is None else workers
    errors: list[tuple[str, str]] = []
    bar = Progress(desc, total=count, done=count - len(todo), unit="image", enabled=progress)
    executor = ProcessPoolExecutor(workers) if workers > 0 and len(jobs) > 1 else None
    try:
        results = executor.map(_decode_rows, jobs) if executor else map(_decode_rows, jobs)
        for index, (rows, pixels, failed) in enumerate(results):
            if rows:
                images[rows] = pixels
                images.flush()
                done[rows] = 1
                done.flush()
            errors += failed
            bar.update(len(rows) + len(failed))
            if on_chunk is not None:
                on_chunk(index)
        bar.milestone()
    finally:
        bar.close()
        if executor is not None:
            executor.shutdown(cancel_futures=True)
    return errors


def _finish_build(partial: _Partial, final: Path, meta: dict) -> None:
    """Seal a complete build: its ``meta.json`` (with the probe), then its final name."""
    meta["probe"] = _probe_digest(partial.images)
    partial.images.flush()
    folder = partial.folder
    del partial.images, partial.done
    meta["digest"] = _file_digest(folder / "images.u8")
    (folder / "done.u8").unlink()
    (folder / "build.json").unlink()
    atomic_write_text(folder / "meta.json", json.dumps(meta))
    if final.exists():  # a concurrent build finished first
        shutil.rmtree(folder)
    else:
        os.replace(folder, final)


def build_cache(
    image_ids: Sequence[str],
    paths: Sequence[str],
    size: int,
    cache_root: Path,
    name: str,
    workers: int | None = None,
    progress: bool = True,
    on_chunk: Callable[[int], None] | None = None,
) -> ImageCache:
    """Build (or reuse, or resume) the cache of ``paths`` at ``size`` under ``cache_root``.

    ``name`` prefixes the folder (e.g. ``cxr14-224px``); ``workers`` defaults to the CPU
    count (0 decodes in this process). A damaged cache is rebuilt; when some files changed
    (one image downloaded again), the pixels of the unchanged ones are copied from the older
    cache of the same name, only the changed ones are decoded, and the older cache is removed.
    Raises :class:`ImageReadError` listing unreadable files (the partial build is kept, so
    replacing them and calling again resumes it) and :class:`DiskSpaceError` when the disk is
    full. Once the cache is finished, no unfinished build of the same name is left.
    """
    if len(image_ids) != len(paths):
        raise ValueError("image_ids and paths must have the same length")
    entries = file_entries(paths)
    key = cache_key(entries, size)
    final = Path(cache_root) / f"{name}-{key[:16]}"
    if final.exists():
        try:
            cache = open_cache(final)
            _remove_partials(Path(cache_root), name)
            return cache
        except CacheDamagedError as err:
            warnings.warn(f"rebuilding the image cache: {err}", stacklevel=2)
            shutil.rmtree(final)
    partial = _open_partial(Path(cache_root), name, image_ids, entries, size)
    older = _older_caches(Path(cache_root), name, size, final)
    _reuse_newest(older, entries, partial)
    errors = _decode_rows_into(
        partial, paths, size, workers, progress, on_chunk, desc=f"caching {name}"
    )
    if errors:
        listed = "\n".join(f"  {path}: {message}" for path, message in errors[:10])
        raise ImageReadError(
            f"{len(errors)} image(s) could not be read (first {min(len(errors), 10)} below). "
            f"Download them again (a truncated file is usually an interrupted copy); the "
            f"cache build resumes where it stopped.\n{listed}"
        )
    meta = {
        "version": CACHE_VERSION,
        "key": key,
        "size": size,
        "count": len(paths),
        "interpolation": INTERPOLATION,
        "image_ids": list(image_ids),
        "entries": entries,
    }
    _finish_build(partial, final, meta)
    for folder in older:  # superseded: the same images, some files changed
        shutil.rmtree(folder, ignore_errors=True)
    _remove_partials(Path(cache_root), name)
    return open_cache(final)
