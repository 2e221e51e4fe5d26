"""Atomic writes: a crash mid-write leaves the old file and no temporary behind."""

from __future__ import annotations

import os

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


WRITER = """
import sys
from pathlib import Path
from cxrlib.core.fileio import atomic_write_text
path, letter, size = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
for _ in range(150):
    atomic_write_text(path, letter * size)
"""


@pytest.mark.slow  # two writer processes
@pytest.mark.parametrize("where", ["local disk", "Google Drive"])
def test_two_writers_of_one_file_never_interleave_it(tmp_path, monkeypatch, where):
    """Two notebooks writing the same table: whatever is read at any moment, and what stays,
    is one writer's whole file -- never a mix of both (locally: each write is a rename; on
    Drive, written in place: the writers take turns under a lock)."""
    import subprocess
    import sys

    from tests.conftest import PROJECT_ROOT

    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    if where == "Google Drive":
        env["CXRLIB_DRIVE_PATHS"] = str(tmp_path)
    target = tmp_path / "table.md"
    sizes = {"A": 30_000, "B": 70_000}
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(target), letter, str(size)], env=env)
        for letter, size in sizes.items()
    ]
    seen = set()
    while any(w.poll() is None for w in writers):
        if target.is_file():
            text = target.read_text()
            seen.add((set(text) or {"-"}).pop() if len(set(text)) <= 1 else "mixed")
    assert all(w.wait() == 0 for w in writers)
    assert "mixed" not in seen, "a read saw both writers' bytes in one file"
    final = target.read_text()
    assert len(set(final)) == 1 and len(final) == sizes[final[0]]
