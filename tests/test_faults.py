"""The fault campaign in short (benchmarks/faults.py runs it at length): the whole chain in small
killed at seeded random moments -- one of them followed by a damaged file -- and, where a tmpfs
can be mounted (root), started on a nearly full disk; every trial ends identical to an
uninterrupted run or refused in one line, none lost or silently different."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT


@pytest.mark.slow  # a few runs of the chain in small, each in its own process
def test_killed_damaged_and_starved_runs_lose_nothing(tmp_path):
    script = PROJECT_ROOT / "benchmarks" / "faults.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(script), "--trials", "2", "--disk-full", "1", "--seed", "7",
         "--out", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads((tmp_path / "faults.json").read_text())
    trials = record["trials"]
    assert len([t for t in trials if t["fault"] != "disk full"]) == 2
    assert any(t["fault"] == "kill + damage" for t in trials)
    assert all(t["outcome"] in ("identical", "refused") for t in trials), trials
    assert record["commit"] and record["machine"] and record["date"]
