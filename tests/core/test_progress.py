"""Progress that moves wherever the output goes: a widget in a live notebook, a bar in a
terminal, plain lines under papermill and in logs (one per epoch or per minute)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nbformat
import pytest

from cxrlib.core import progress as progress_module
from cxrlib.core.errors import UserError
from cxrlib.core.progress import Progress, duration, progress_mode
from tests.conftest import PROJECT_ROOT


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        # only the connection file's name counts, not the folder a machine keeps it in
        (["ipykernel_launcher", "-f", "jupyter/runtime/kernel-1a2b.json"],
         "widget"),  # a Jupyter server's kernel: JupyterLab, Colab, Kaggle's editor
        (["ipykernel_launcher", "-f", "tmpl6vpakmc.json"], "lines"),  # papermill, nbclient
    ],
)  # fmt: skip
def test_a_kernel_is_live_when_a_server_started_it(monkeypatch, argv, expected):
    monkeypatch.delenv(progress_module.PROGRESS_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "ipykernel", sys.modules.get("ipykernel", object()))
    monkeypatch.setattr(sys, "argv", argv)
    assert progress_mode() == expected


def test_the_environment_decides_and_a_wrong_value_is_refused(monkeypatch):
    monkeypatch.setenv(progress_module.PROGRESS_ENV, "lines")
    assert progress_mode() == "lines"
    monkeypatch.setenv(progress_module.PROGRESS_ENV, "spinner")
    with pytest.raises(UserError, match="widget, bar, lines"):
        progress_mode()


def test_lines_come_at_most_once_per_interval_and_at_every_milestone(monkeypatch, capsys):
    now = [0.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: now[0])
    bar = Progress("cxr11 run", total=100, done=20, unit="batch", mode="lines", interval=60)
    for _ in range(30):  # 30 batches, one every 10 s: a line at 60, 120, 180, 240, 300 s
        now[0] += 10
        bar.update(1)
    bar.milestone("epoch 1/2 done")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6 and lines[-1].startswith("cxr11 run: epoch 1/2 done, 50% done")
    percents = [int(line.split("% done")[0].split()[-1]) for line in lines]
    assert percents == sorted(percents) and percents[0] < percents[-1]  # it moves
    # 30 batches in 300 s at this session's pace: 50 left take 500 s
    assert lines[-1].endswith("8 min left")


def test_durations_read_as_people_say_them():
    assert [duration(s) for s in (5, 300, 5400, 7260)] == [
        "5 s",
        "5 min",
        "1 h 30 min",
        "2 h 1 min",
    ]


@pytest.mark.slow  # papermill runs a notebook that trains
def test_progress_logged_by_papermill_moves(tmp_path):
    """Papermill (as ./run_all.sh calls it, but without the kit's environment variable) logs a
    line at the end of every epoch -- not a bar frozen at its first text."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "from cxrlib.core.config import load_config\n"
            "from cxrlib.core.workspace import Workspace\n"
            "from cxrlib.train.run import train_run\n"
            f"workspace = Workspace.at({str(tmp_path)!r})\n"
            "config = load_config('smoke', workspace=workspace, phantom_images=120, epochs=3)\n"
            "result = train_run(config, 'cxr11')"
        )
    ]
    source = tmp_path / "train.ipynb"
    nbformat.write(nb, source)
    env = {k: v for k, v in os.environ.items() if k != progress_module.PROGRESS_ENV}
    env |= {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "papermill", str(source), str(tmp_path / "out.ipynb"),
         "--log-output", "--no-progress-bar", "--kernel", "python3"],
        capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    logged = done.stdout + done.stderr
    epochs = [line for line in logged.splitlines() if "/3 done, loss" in line]
    assert [line.split("epoch ")[1][:8] for line in epochs] == ["1/3 done", "2/3 done", "3/3 done"]
    assert "smoke profile, paper split" in epochs[0]
    executed = json.loads((tmp_path / "out.ipynb").read_text())
    outputs = executed["cells"][0]["outputs"]
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
