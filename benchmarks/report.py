"""Where a benchmark's figures come from, and the documentation's benchmarks page.

Every benchmark writes one JSON file under ``benchmarks/results/`` through
:func:`write_result`, which adds the provenance a reader needs to weigh a figure: the date, the
git commit (``+dirty`` when the working tree had changes), the machine (processor, cores,
memory), torch, and the machine's load when it started (this development machine is shared and
its speed varies by up to 2x from day to day). A benchmark also gives ``summary``: the rows
``{"figure", "value"}`` that the page shows.

:func:`benchmark_sections` turns the folder into the Markdown of the docs' benchmarks page
(``docs/hooks.py``); files written before provenance was recorded show "not recorded" where a
field is missing, never a guess.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def _commit() -> str:
    """The checkout's commit, with ``+dirty`` when tracked files have changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
    except OSError:
        return "not a git checkout"
    return f"{head}+dirty" if head and dirty else head or "not a git checkout"


def _processor() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """The processor, its cores and memory, in one phrase."""
    memory = ""
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f", {pages / 2**30:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        pass
    return f"{_processor()}, {os.cpu_count()} cores{memory}"


def provenance() -> dict:
    """date, commit, machine, torch and the load average when the benchmark started."""
    try:
        import torch  # here: the version only, and only where torch is installed

        torch_version = torch.__version__
    except ImportError:
        torch_version = "not installed"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "date": date.today().isoformat(),
        "commit": _commit(),
        "machine": machine(),
        "torch": torch_version,
        "load_1min": None if load is None else round(load, 2),
    }


def write_result(name: str, record: dict, folder: Path = RESULTS) -> Path:
    """``record`` with its provenance as ``folder/<name>.json`` (a temp file, then a rename:
    an interrupted benchmark never leaves half a file)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    full = {**provenance(), **record}
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(full, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return path


def _rows_cpu_speedup(record: dict) -> list[dict]:
    rows = []
    for v in record.get("variants", []):
        value = f"{v['median_s_per_step']:.2f} s/step, {v['speedup_over_baseline']:.2f}×"
        if "compile_seconds" in v:
            value += f" (after {v['compile_seconds']:.0f} s of compiling)"
        rows.append(
            {"figure": f"{record.get('model')} training step: {v['variant']}", "value": value}
        )
    return rows


def _rows_run_storage(record: dict) -> list[dict]:
    gb = 1e9
    rows = [
        {"figure": "paper-size CTransCNN run while training (last.pt)",
         "value": f"{record['ctranscnn_tiny_paused_run_bytes'] / gb:.2f} GB"},
        {"figure": "the same run finished (what later notebooks read)",
         "value": f"{record['ctranscnn_tiny_finished_run_bytes'] / gb:.3f} GB"},
        {"figure": "bytes per further epoch", "value": f"{record['bytes_per_epoch']}"},
    ]  # fmt: skip
    return rows


KNOWN = {"cpu_speedup": _rows_cpu_speedup, "run_storage": _rows_run_storage}


def summary_rows(name: str, record: dict) -> list[dict]:
    """The figures of one result file: its ``summary``, else read from a known older format,
    else its top-level numbers."""
    if record.get("summary"):
        return list(record["summary"])
    kind = record.get("benchmark", name.split("_")[0] if name.startswith("gpu") else name)
    for prefix, rows in KNOWN.items():
        if kind.startswith(prefix) or name.startswith(prefix):
            return rows(record)
    return [
        {"figure": key, "value": value}
        for key, value in record.items()
        if isinstance(value, (int, float, str)) and key not in PROVENANCE
    ]


PROVENANCE = ("date", "commit", "machine", "torch", "load_1min", "device", "benchmark")


def benchmark_sections(folder: Path = RESULTS) -> list[str]:
    """One Markdown section per result file, newest first: what, when, where, the figures."""
    records = []
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text())
        records.append((record.get("date", ""), path.stem, record))
    sections = []
    for when, name, record in sorted(records, key=lambda r: (r[0], r[1]), reverse=True):

        def said(key: str, record: dict = record) -> str:
            value = record.get(key)
            return "not recorded" if value in (None, "") else str(value)

        machine_text = record.get("machine") or record.get("device")
        head = (
            f"### `{name}`\n\n"
            f"Date **{when or 'not recorded'}** · commit `{said('commit')}` · machine "
            f"{machine_text or 'not recorded'} · torch {said('torch')} · "
            f"load {said('load_1min')} · file `benchmarks/results/{name}.json`"
        )
        lines = ["| figure | value |", "|---|---|"]
        for row in summary_rows(name, record):
            figure = str(row["figure"]).replace("|", "\\|")
            value = str(row["value"]).replace("|", "\\|")
            lines.append(f"| {figure} | {value} |")
        sections.append(head + "\n\n" + "\n".join(lines))
    return sections or ["No benchmark has written a result yet."]


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(
        description="Print the benchmarks page (Markdown) from benchmarks/results/*.json: each "
        "file's figures with its date, commit, machine and load."
    )
    parser.add_argument("--results", default=str(RESULTS), help="the folder of result files")
    args = parser.parse_args()
    print("\n\n".join(benchmark_sections(Path(args.results))))


if __name__ == "__main__":
    main()
