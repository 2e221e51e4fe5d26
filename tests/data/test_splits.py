"""Split files: download from a (file) URL with SHA-256 checks, parsing errors, class lists."""

from __future__ import annotations

import shutil

import pytest

from cxrlib.data.datasets import get_dataset
from cxrlib.data.splits import (
    SplitFileError,
    read_split_file,
)


@pytest.fixture
def mirror(shared_dir, tmp_path):
    """A local copy of the authors' open_data/ tree, served as a file:// URL."""
    root = tmp_path / "mirror"
    for folder in ("chest14", "chest11"):
        shutil.copytree(shared_dir / "data/splits" / folder, root / folder)
    return root


def test_download_verify_and_cache(mirror, tmp_path, monkeypatch):
    dest = tmp_path / "open_data"
    folder = get_dataset("cxr11").fetch_split_files(dest=dest, base_url=mirror.as_uri())
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(get_dataset("cxr11").split_files.names())
    assert len(get_dataset("cxr11").read_paper_split(folder)) == 30083

    # Cached: a second call must not touch the network at all.
    def no_network(*args, **kwargs):
        raise AssertionError("downloaded again")

    monkeypatch.setattr("urllib.request.urlopen", no_network)
    assert get_dataset("cxr11").fetch_split_files(dest=dest, base_url=mirror.as_uri()) == folder


def test_tampered_download_is_refused_and_not_written(mirror, tmp_path):
    victim = mirror / "chest14" / "add72_chest14_test_labels.txt"
    data = bytearray(victim.read_bytes())
    data[-1] = ord("1") if data[-1] == ord("0") else ord("0")  # flip one label
    victim.write_bytes(bytes(data))
    dest = tmp_path / "open_data"
    with pytest.raises(SplitFileError, match=r"add72_chest14_test_labels\.txt has SHA-256"):
        get_dataset("cxr14").fetch_split_files(dest=dest, base_url=mirror.as_uri())
    assert not (dest / "chest14" / "add72_chest14_test_labels.txt").exists()


def test_unreachable_url_says_what_to_do(tmp_path):
    with pytest.raises(SplitFileError, match="copy the authors' open_data/chest11/ files"):
        get_dataset("cxr11").fetch_split_files(
            dest=tmp_path, base_url=(tmp_path / "nowhere").as_uri()
        )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a/x.png\t0,1\nb/y.png", "expected '<path>"),
        ("a/x.png\t0,1,0", "expected 2 labels"),
        ("a/x.png\t0,2", "expected 2 labels in 0/1"),
        ("a/x.png\t0,1\nb/x.png\t1,0", "duplicate image names"),
    ],
)
def test_malformed_split_files(tmp_path, content, message):
    path = tmp_path / "split.txt"
    path.write_text(content)
    with pytest.raises(SplitFileError, match=message):
        read_split_file(path, num_classes=2)


def test_class_list_must_match_dataset(shared_dir, tmp_path):
    folder = tmp_path / "chest14"
    shutil.copytree(shared_dir / "data/splits/chest14", folder)
    with pytest.raises(SplitFileError, match="is missing"):
        get_dataset("cxr14").read_paper_split(shared_dir / "data/splits/chest11")
    # a CXR11 class list under the CXR14 name: refused, naming the expected classes
    shutil.copy(
        shared_dir / "data/splits/chest11/chest_x-rays11_multi_label_classes.txt",
        folder / "add72_chest14_classes.txt",
    )
    with pytest.raises(SplitFileError, match="does not belong to cxr14"):
        get_dataset("cxr14").read_paper_split(folder)


def test_a_local_file_that_fails_its_checksum_says_so(tmp_path):
    folder = tmp_path / "chest11"
    folder.mkdir()
    (folder / "chest_x-rays11_multi_label_classes.txt").write_text("edited\n")
    with pytest.raises(SplitFileError, match=r"local split file .* fails its checksum") as info:
        get_dataset("cxr11").fetch_split_files(
            dest=tmp_path, base_url=(tmp_path / "nowhere").as_uri()
        )
    assert "delete it" in str(info.value)


@pytest.mark.parametrize("reader", ["split", "classes", "list"])
def test_damaged_bytes_in_any_split_folder_file_name_the_file(tmp_path, reader):
    """A kill that leaves garbage in the class list (not only a split file) was a traceback
    (``UnicodeDecodeError``) in the fault campaign; each reader now names the file."""
    from cxrlib.data.splits import read_image_list, read_split_classes

    spec = get_dataset("cxr11").split_files
    path = tmp_path / (spec.classes if reader == "classes" else "part.txt")
    path.write_bytes(b"ETT - Abnormal\n\xf4\x80garbage\xe6\n")
    read = {
        "split": lambda: read_split_file(path, num_classes=11),
        "classes": lambda: read_split_classes(spec, tmp_path, ("ETT - Abnormal",)),
        "list": lambda: read_image_list(path),
    }[reader]
    with pytest.raises(SplitFileError, match=rf"{path.name} is not a split file .*delete it"):
        read()
