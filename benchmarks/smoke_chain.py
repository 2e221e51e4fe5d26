"""How long ``./run_all.sh`` takes in the smoke profile as a new user meets it: the environment
ready, nothing else -- no phantom, no image cache, no run, no result (empty folders given with
``--data-dir``, ``--runs-dir`` and ``--results-dir``, so the checkout's own stay untouched) --
and where the time goes, notebook by notebook (``run_all.sh`` prints each one's seconds) and
cell by cell (the seconds papermill records in each executed notebook).

    OMP_NUM_THREADS=2 python benchmarks/smoke_chain.py [--python PATH]

Writes ``benchmarks/results/smoke_chain.json`` with the date, commit, machine and the load
before the run; ``--python`` is the interpreter the notebooks run on (default: this one, with
the kit installed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.report import provenance, write_result  # noqa: E402 -- after the path is set

#: What run_all.sh prints per notebook: its number and name, then its time.
STARTED = re.compile(r"^==> \[(\d+)/(\d+)\] (\S+\.ipynb)")
DONE = re.compile(r"^\s+done in (\d+) s")


def run_chain(python: str, folder: Path) -> tuple[list[dict], float, int, str]:
    """``./run_all.sh`` in the smoke profile with empty folders under ``folder``: each
    notebook's seconds, the whole wall time, the exit status and the last lines printed."""
    argv = [
        str(ROOT / "run_all.sh"), "--profile", "smoke", "--python", python,
        "--data-dir", str(folder / "open_data"), "--runs-dir", str(folder / "runs"),
        "--results-dir", str(folder / "results"),
    ]  # fmt: skip
    began = time.perf_counter()
    process = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    notebooks, tail = [], []
    for line in process.stdout:
        tail = [*tail[-20:], line.rstrip()]
        if started := STARTED.match(line):
            notebooks.append({"notebook": started.group(3), "seconds": None})
            print(line.rstrip(), flush=True)
        elif (done := DONE.match(line)) and notebooks:
            notebooks[-1]["seconds"] = int(done.group(1))
            print(line.rstrip(), flush=True)
    status = process.wait()
    return notebooks, time.perf_counter() - began, status, "\n".join(tail)


def cell_seconds(executed: Path) -> list[dict]:
    """Where a notebook's time went: each code cell that took a second or more, by the
    seconds papermill recorded for it (``metadata.papermill.duration``), the longest first,
    named by its first line of code."""
    cells = []
    for cell in json.loads(executed.read_text())["cells"]:
        duration = cell.get("metadata", {}).get("papermill", {}).get("duration")
        if cell["cell_type"] != "code" or duration is None or duration < 1:
            continue
        lines = [line.strip() for line in "".join(cell["source"]).splitlines()]
        code = next((line for line in lines if line and not line.startswith("#")), "")
        cells.append({"cell": code[:60], "seconds": round(duration, 1)})
    return sorted(cells, key=lambda c: -c["seconds"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="the notebooks' interpreter")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    before = provenance()  # the load before the chain, not after it
    with tempfile.TemporaryDirectory(prefix="smoke-chain-") as tmp:
        notebooks, seconds, status, tail = run_chain(args.python, Path(tmp))
        executed = Path(tmp) / "results" / "smoke" / "executed"
        for notebook in notebooks:
            if (executed / notebook["notebook"]).is_file():
                cells = cell_seconds(executed / notebook["notebook"])
                notebook["cells"] = cells
                # kernel start, papermill's own work and the cells under a second
                notebook["outside_cells"] = round(
                    (notebook["seconds"] or 0) - sum(c["seconds"] for c in cells), 1
                )
    if status != 0:
        print(tail, file=sys.stderr)
        print(f"run_all.sh failed (exit status {status}): no result written", file=sys.stderr)
        return 1
    total = sum(n["seconds"] or 0 for n in notebooks)
    figures = [
        {"figure": f"{n['notebook']} (s)", "value": n["seconds"],
         "share": round((n["seconds"] or 0) / max(total, 1), 3)}
        for n in notebooks
    ]  # fmt: skip
    figures.append({"figure": "./run_all.sh, smoke profile, empty folders (min)",
                    "value": round(seconds / 60, 2)})  # fmt: skip
    record = {
        **before,
        "benchmark": "smoke_chain",
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "seconds": round(seconds, 1),
        "notebooks": notebooks,
        "summary": figures,
    }
    write_result("smoke_chain", record, Path(args.out))
    for row in figures:
        print(f"{row['figure']:<48} {row['value']}")
    for notebook in notebooks:
        print(f"{notebook['notebook']}: outside cells {notebook.get('outside_cells')} s")
        for cell in notebook.get("cells", []):
            print(f"    {cell['seconds']:>6} s  {cell['cell']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
