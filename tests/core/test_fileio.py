"""Atomic writes: a crash mid-write leaves the old file and no temporary behind."""

from __future__ import annotations

import pytest

from cxrlib.core.fileio import atomic_write, atomic_write_text


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


def test_written_files_honour_the_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "table.csv", "a,b\n")
        assert (tmp_path / "table.csv").stat().st_mode & 0o777 == 0o644
        os.umask(0o002)
        atomic_write_text(tmp_path / "table.csv", "a,b\n")
        assert (tmp_path / "table.csv").stat().st_mode & 0o777 == 0o664
    finally:
        os.umask(old)


def test_stale_temp_files_are_removed(tmp_path):
    from cxrlib.core.fileio import remove_stale_temp_files

    (tmp_path / ".last.pt.x1y2.tmp").write_bytes(b"half")
    (tmp_path / "last.pt").write_bytes(b"whole")
    assert [p.name for p in remove_stale_temp_files(tmp_path)] == [".last.pt.x1y2.tmp"]
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
