"""Image cache: pixel-exact read-back, keyed rebuilds, resume, unreadable files reported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrlib.data import cache as cache_module
from cxrlib.data.cache import ImageReadError, build_cache, load_image, to_gray8


@pytest.fixture
def images(tmp_path):
    """Ten small images in every mode the datasets use: L, RGBA and 16-bit PNG, JPEG."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "src"
    folder.mkdir()
    paths = []
    for i in range(10):
        pixels = rng.integers(0, 256, (70 + i, 90), dtype=np.uint8)
        if i % 4 == 1:
            image, name = Image.fromarray(pixels).convert("RGBA"), f"{i}.png"
        elif i % 4 == 2:
            image, name = Image.fromarray(pixels.astype(np.uint16) * 200), f"{i}.png"
        elif i % 4 == 3:
            image, name = Image.fromarray(pixels), f"{i}.jpg"
        else:
            image, name = Image.fromarray(pixels), f"{i}.png"
        image.save(folder / name)
        paths.append(str(folder / name))
    return paths


def test_gray8_conversions():
    sixteen = Image.fromarray(np.array([[0, 1000], [2000, 4000]], dtype=np.uint16))
    assert to_gray8(sixteen).tolist() == [[0, 64], [128, 255]]  # min-max scaled
    rgba = Image.fromarray(np.full((2, 2, 4), 100, dtype=np.uint8))  # 4 channels: RGBA
    assert to_gray8(rgba).dtype == np.uint8 and to_gray8(rgba)[0, 0] == 100


def test_build_and_read_back_pixel_exact(images, tmp_path):
    cache = build_cache([f"id{i}" for i in range(10)], images, 32, tmp_path / "c", "t", workers=2)
    assert cache.pixels.shape == (10, 32, 32) and cache.pixels.dtype == np.uint8
    for row, path in enumerate(images):
        assert np.array_equal(cache.pixels[row], load_image(path, 32))
    assert cache.rows_of(["id3", "id0"]).tolist() == [3, 0]
    assert not list((tmp_path / "c").glob("*.partial"))
    # built once: a second call reuses the folder without decoding anything
    again = build_cache([f"id{i}" for i in range(10)], images, 32, tmp_path / "c", "t")
    assert again.folder == cache.folder


def test_changed_parameters_or_files_rebuild(images, tmp_path):
    ids = [f"id{i}" for i in range(10)]
    first = build_cache(ids, images, 32, tmp_path / "c", "t", workers=0)
    assert build_cache(ids, images, 48, tmp_path / "c", "t", workers=0).folder != first.folder
    Image.fromarray(np.zeros((50, 50), dtype=np.uint8)).save(images[0])
    rebuilt = build_cache(ids, images, 32, tmp_path / "c", "t", workers=0)
    assert rebuilt.folder != first.folder and rebuilt.pixels[0].max() == 0


def test_interrupted_build_resumes(images, tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "CHUNK", 3)
    ids = [f"id{i}" for i in range(10)]

    def interrupt(chunk_index):
        if chunk_index == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_cache(ids, images, 32, tmp_path / "c", "t", workers=0, on_chunk=interrupt)
    assert list((tmp_path / "c").glob("*.partial")) and not list((tmp_path / "c").glob("t-*[!l]"))

    decoded = []
    real_load = cache_module.load_image
    monkeypatch.setattr(
        cache_module, "load_image", lambda p, s: decoded.append(p) or real_load(p, s)
    )
    cache = build_cache(ids, images, 32, tmp_path / "c", "t", workers=0)
    assert len(decoded) == 4  # 6 of 10 were done before the interruption
    for row, path in enumerate(images):
        assert np.array_equal(cache.pixels[row], real_load(path, 32))


def test_truncated_image_is_reported_not_dropped(images, tmp_path):
    with open(images[4], "r+b") as handle:
        handle.truncate(100)
    ids = [f"id{i}" for i in range(10)]
    with pytest.raises(ImageReadError, match=r"1 image\(s\) could not be read") as info:
        build_cache(ids, images, 32, tmp_path / "c", "t", workers=0)
    assert images[4] in str(info.value) and "Download them again" in str(info.value)
    assert not [p for p in (tmp_path / "c").iterdir() if not p.name.endswith(".partial")]


def _decode_counter(monkeypatch):
    decoded = []
    real_load = cache_module.load_image
    monkeypatch.setattr(
        cache_module, "load_image", lambda p, s: decoded.append(p) or real_load(p, s)
    )
    return decoded


def test_one_changed_file_decodes_only_it_and_replaces_the_old_cache(images, tmp_path, monkeypatch):
    ids = [f"id{i}" for i in range(10)]
    first = build_cache(ids, images, 32, tmp_path / "c", "t", workers=0)
    other_size = build_cache(ids, images, 48, tmp_path / "c", "t", workers=0)
    Image.fromarray(np.zeros((50, 50), dtype=np.uint8)).save(images[0])  # downloaded again
    decoded = _decode_counter(monkeypatch)
    rebuilt = build_cache(ids, images, 32, tmp_path / "c", "t", workers=0)
    assert decoded == [images[0]]
    assert not first.folder.exists() and other_size.folder.exists()  # only the superseded one
    for row, path in enumerate(images):
        assert np.array_equal(rebuilt.pixels[row], load_image(path, 32))


@pytest.mark.parametrize("damage", ["missing meta", "garbled meta", "zeroed pixels"])
def test_a_damaged_cache_is_detected_and_rebuilt(damage, images, tmp_path, monkeypatch):
    ids = [f"id{i}" for i in range(10)]
    first = build_cache(ids, images, 32, tmp_path / "c", "t", workers=0)
    expected = np.array(first.pixels)
    del first.pixels
    if damage == "missing meta":
        (first.folder / "meta.json").unlink()
    elif damage == "garbled meta":
        (first.folder / "meta.json").write_text('{"count": 10, "si')
    else:
        pixels = first.folder / "images.u8"
        pixels.write_bytes(bytes(pixels.stat().st_size))
    decoded = _decode_counter(monkeypatch)
    with pytest.warns(UserWarning, match="rebuilding the image cache"):
        again = build_cache(ids, images, 32, tmp_path / "c", "t", workers=0)
    assert len(decoded) == 10 and np.array_equal(np.asarray(again.pixels), expected)


def test_a_full_disk_gives_a_clear_message_and_no_cache(images, tmp_path, monkeypatch):
    from collections import namedtuple

    from cxrlib.core.errors import DiskSpaceError

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(cache_module.shutil, "disk_usage", lambda p: usage(10**6, 10**6, 1000))
    with pytest.raises(
        DiskSpaceError, match=r"needs 0\.0 MiB .* only 0\.0 MiB are free.*--data-dir"
    ):
        build_cache([f"id{i}" for i in range(10)], images, 32, tmp_path / "c", "t", workers=0)
    assert not [p for p in (tmp_path / "c").iterdir() if not p.name.endswith(".partial")]


def test_a_build_stopped_by_an_unreadable_image_resumes_once_it_is_replaced(
    images, tmp_path, monkeypatch
):
    """As its message says: the partial build is kept, replacing the file resumes it (only
    that file is decoded), and once the cache is finished no unfinished build is left."""
    ids = [f"id{i}" for i in range(10)]
    good = Path(images[4]).read_bytes()
    with open(images[4], "r+b") as handle:
        handle.truncate(100)
    with pytest.raises(ImageReadError, match="resumes where it stopped"):
        build_cache(ids, images, 32, tmp_path / "c", "t", workers=0)
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["t.partial"]
    with open(images[4], "wb") as handle:  # downloaded again: other size and mtime
        handle.write(good)
    decoded = _decode_counter(monkeypatch)
    cache = build_cache(ids, images, 32, tmp_path / "c", "t", workers=0)
    assert decoded == [images[4]]
    assert not list((tmp_path / "c").glob("*.partial"))
    for row, path in enumerate(images):
        assert np.array_equal(cache.pixels[row], load_image(path, 32))


def test_a_partial_build_of_an_earlier_version_is_removed_once_the_cache_exists(images, tmp_path):
    ids = [f"id{i}" for i in range(10)]
    stale = tmp_path / "c" / "t-0123456789abcdef.partial"  # named by key, as before
    stale.mkdir(parents=True)
    other = tmp_path / "c" / "tx.partial"  # another image set's build: left alone
    other.mkdir()
    build_cache(ids, images, 32, tmp_path / "c", "t", workers=0)
    assert not stale.exists() and other.exists()
