"""Atomic writes: a crash mid-write leaves the old file and no temporary behind."""

from __future__ import annotations

import pytest

from cxrlib.fileio import atomic_write, atomic_write_text


def test_atomic_write_replaces_on_success(tmp_path):
    target = tmp_path / "sub" / "file.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["file.txt"]


def test_atomic_write_keeps_old_file_on_crash(tmp_path):
    target = tmp_path / "file.txt"
    atomic_write_text(target, "good")
    with pytest.raises(RuntimeError), atomic_write(target) as handle:
        handle.write("half")
        raise RuntimeError("crash")
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]
