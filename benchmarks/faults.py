"""A fault campaign: the kit killed, damaged and starved of disk where nobody chose, and what it
lost. The kit's promise -- a stopped run resumes to the same result, a damaged file is detected
-- measured the way crash-tested systems measure theirs: many seeded trials, every outcome
counted.

The workload is the whole chain in small (in a subprocess of its own, on phantom data): phantom
generation, the image cache, a training run that checkpoints often, its evaluation, and the
report. An uninterrupted run of it is the reference. Each trial then

* **kill**: SIGKILL at a seeded random moment -- spread over the phases of the reference run,
  checkpoint writes included (the workload marks them) -- then runs the workload again to the
  end;
* **damage**: kills it, then truncates or overwrites a random part of one file the kit wrote
  (the newest checkpoint, the image cache, ``metrics.json``, ``epochs.csv``, a split file), then
  runs it again;
* **disk full** (``--disk-full``, needs root to mount a tmpfs): runs it on a small tmpfs left
  with a seeded amount of free space, checks that it stops with one line and leaves nothing
  half-written, frees the space and runs it again.

A trial's outcome: **identical** (the test predictions byte for byte and the metrics -- every
field but wall-clock times and the image cache's key, which names the image files' times on
disk -- equal to the reference), **refused** (the run stopped with one
line naming the file and the fix: no traceback), or **lost or different** (anything else: a
traceback, a different result, a crash). The table and ``benchmarks/results/faults.json`` give
the counts per fault and phase.

    OMP_NUM_THREADS=1 python benchmarks/faults.py --trials 50 [--disk-full 10] [--seed 0]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: The workload's configuration: small enough for many trials, with every kind of write.
WORKLOAD = {
    "phantom_images": 120,
    "epochs": 4,
    "checkpoint_minutes": 0.002,
    "model": "ctranscnn_tiny",
}
#: Fields of metrics.json that measure time, not results.
TIMES = ("seconds", "images_per_s")


# --- the workload (run in a subprocess: python faults.py --workload FOLDER) ----------------
def workload(folder: Path) -> None:
    """The chain in small, writing ``phases.log`` (one line per phase start, with a time)."""
    import torch

    torch.set_num_threads(1)
    from cxrlib.core.config import load_config
    from cxrlib.core.workspace import Workspace
    from cxrlib.data.prepare import prepare_dataset
    from cxrlib.paper.report import write_report
    from cxrlib.train import checkpoints
    from cxrlib.train.run import train_run

    marks = open(folder / "phases.log", "a", buffering=1)  # noqa: SIM115 - the process's life

    def mark(phase: str) -> None:
        marks.write(f"{time.time():.4f} {phase}\n")

    write = checkpoints.CheckpointSaver._write

    def marked_write(self, *args, **kwargs):
        mark("checkpoint")
        try:
            return write(self, *args, **kwargs)
        finally:
            mark("train")

    checkpoints.CheckpointSaver._write = marked_write
    config = load_config("smoke", workspace=Workspace.at(folder), **WORKLOAD)
    mark("phantom and cache")
    prepare_dataset(config, "cxr11", workers=0, progress=False)
    mark("train")
    result = train_run(config, "cxr11", progress=False)
    mark("report")
    write_report(config, expected_models=[WORKLOAD["model"]])
    mark("done")
    print(json.dumps({"finished": result.finished, "folder": str(result.folder)}))


# --- the campaign --------------------------------------------------------------------------
def run_workload(folder: Path, env: dict | None = None, timeout: float = 900):
    return subprocess.run(
        [sys.executable, __file__, "--workload", str(folder)],
        capture_output=True, text=True, timeout=timeout, env=env or _env(),
    )  # fmt: skip


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "0"}


def run_folder(folder: Path) -> Path:
    return folder / "runs" / "smoke" / "cxr11" / "paper" / WORKLOAD["model"] / "seed0"


def outcome_files(folder: Path) -> dict | None:
    """The results a trial is judged by: the test predictions' bytes and the metrics without
    their wall-clock times; None when the run has not finished."""
    run = run_folder(folder)
    if not (run / "metrics.json").is_file():
        return None
    metrics = json.loads((run / "metrics.json").read_text())
    metrics.pop("checksum", None)
    metrics["data"].pop("cache_key", None)  # names the image files' times on disk
    for row in metrics.get("history", []):
        for key in TIMES:
            row.pop(key, None)
    return {
        "predictions": (run / "test_predictions.csv").read_bytes(),
        "metrics": json.dumps(metrics, sort_keys=True),
        "report": (folder / "results" / "smoke" / "REPORT.md").is_file(),
    }


def phases(folder: Path) -> list[tuple[float, str]]:
    path = folder / "phases.log"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        when, _, phase = line.partition(" ")
        try:
            out.append((float(when), phase))
        except ValueError:  # a line the kill cut short
            continue
    return out


def one_line_refusal(done: subprocess.CompletedProcess) -> bool:
    """A run that stopped with an expected error: one line on stderr naming what to do, no
    traceback."""
    err = done.stderr.strip()
    return done.returncode != 0 and "Traceback" not in err and len(err.splitlines()) == 1


def judge(done: subprocess.CompletedProcess, folder: Path, reference: dict) -> str:
    if done.returncode == 0:
        got = outcome_files(folder)
        return "identical" if got == reference else "lost or different"
    return "refused" if one_line_refusal(done) else "lost or different"


def kill_at(folder: Path, seconds: float) -> str:
    """Start the workload, SIGKILL it ``seconds`` later; the phase it was in (or "finished")."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--workload", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(),
    )  # fmt: skip
    started = time.time()
    try:
        process.wait(timeout=seconds)
        return "finished"
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    marks = [p for t, p in phases(folder) if t <= started + seconds]
    return marks[-1] if marks else "start-up"


def damage(folder: Path, rng: random.Random) -> str:
    """Truncate or overwrite part of one file the kit wrote; what was damaged, in words."""
    run = run_folder(folder)
    candidates = {
        "newest checkpoint": [run / "last.pt"],
        "image cache": sorted((folder / "open_data").rglob("images.u8")),
        "metrics.json": [run / "metrics.json"],
        "epochs.csv": [run / "epochs.csv"],
        "split file": sorted((folder / "open_data" / "phantom").rglob("*.txt")),
    }
    present = {
        k: [p for p in v if p.is_file() and p.stat().st_size > 16] for k, v in candidates.items()
    }
    present = {k: v for k, v in present.items() if v}
    if not present:
        return "nothing to damage"
    kind = rng.choice(sorted(present))
    path = rng.choice(present[kind])
    data = bytearray(path.read_bytes())
    if rng.random() < 0.5:
        cut = rng.randrange(1, len(data))
        path.write_bytes(bytes(data[:cut]))
        return f"{kind} truncated"
    start = rng.randrange(0, len(data) - 8)
    for i in range(start, min(len(data), start + rng.randrange(1, 64))):
        data[i] = rng.randrange(256)
    path.write_bytes(bytes(data))
    return f"{kind} overwritten"


def tally(rows: list[dict], key: str) -> list[dict]:
    table: dict[str, dict] = {}
    for row in rows:
        entry = table.setdefault(
            row[key], {key: row[key], "trials": 0, "identical": 0, "refused": 0,
                       "lost or different": 0},
        )  # fmt: skip
        entry["trials"] += 1
        entry[row["outcome"]] += 1
    return list(table.values())


def last_line(stderr: str, base: Path) -> list[str]:
    """The last line a run printed on stderr, its paths under the campaign's temporary folder
    written from ``<campaign>`` (the JSON names no folder of this machine)."""
    return [line.replace(str(base), "<campaign>") for line in stderr.strip().splitlines()[-1:]]


def campaign(args) -> dict:
    rng = random.Random(args.seed)
    base = Path(tempfile.mkdtemp(prefix="cxrlib-faults-"))
    reference_folder = base / "reference"
    reference_folder.mkdir()
    began = time.time()
    done = run_workload(reference_folder)
    if done.returncode != 0:
        raise SystemExit(f"the uninterrupted workload failed:\n{done.stderr[-3000:]}")
    reference = outcome_files(reference_folder)
    marks = phases(reference_folder)
    start = began
    windows: dict[str, list[tuple[float, float]]] = {}
    for (t0, phase), (t1, _) in itertools.pairwise(marks):
        windows.setdefault(phase, []).append((t0 - start, t1 - start))
    windows.pop("done", None)
    spent = ", ".join(f"{p} {sum(b - a for a, b in w):.1f} s" for p, w in windows.items())
    print(f"reference run: {time.time() - began:.1f} s; phases: {spent}")
    rows = []
    for trial in range(args.trials):
        folder = base / f"trial{trial:03d}"
        folder.mkdir()
        aimed = sorted(windows)[trial % len(windows)]  # spread over the phases, in turn
        low, high = rng.choice(windows[aimed])
        when = rng.uniform(low, high)
        killed_in = kill_at(folder, when)
        fault = "kill"
        if trial % 2 == 1:  # every other trial also damages a file the kill left
            fault = f"kill + {damage(folder, rng)}"
        resumed = run_workload(folder)
        outcome = judge(resumed, folder, reference)
        rows.append(
            {
                "trial": trial,
                "fault": "kill + damage" if " + " in fault else "kill",
                "detail": fault,
                "phase": killed_in,
                "seconds": round(when, 2),
                "outcome": outcome,
                "stderr": last_line(resumed.stderr, base),
            }
        )
        print(f"trial {trial:3d}: {fault:38s} at {when:6.2f} s in {killed_in:18s} -> {outcome}")
        shutil.rmtree(folder, ignore_errors=True)
    if args.disk_full:
        rows += disk_full_trials(args, rng, reference, base)
    shutil.rmtree(base, ignore_errors=True)
    return {"trials": rows, "by_fault": tally(rows, "fault"), "by_phase": tally(rows, "phase")}


def disk_full_trials(args, rng: random.Random, reference: dict, base: Path) -> list[dict]:
    """Runs on a small tmpfs left with a seeded amount of free space (needs root)."""
    rows = []
    mount = base / "tmpfs"
    mount.mkdir()
    size_mb = 64
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:  # fmt: skip
        print("disk full: skipped (mounting a tmpfs needs root)")
        return rows
    try:
        for trial in range(args.disk_full):
            folder = mount / "trial"  # not "work": no result line should read like a machine path
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            ballast = mount / "ballast"
            free = rng.randrange(200_000, 12_000_000)  # bytes left for the workload
            with open(ballast, "wb") as handle:
                handle.truncate(0)
            stat = shutil.disk_usage(mount)
            with open(ballast, "wb") as handle:
                handle.write(b"\0" * max(stat.free - free, 0))
            first = run_workload(folder)
            clean = first.returncode == 0 or one_line_refusal(first)
            intact = all_files_intact(folder)
            ballast.unlink()
            second = run_workload(folder)
            outcome = judge(second, folder, reference)
            if not (clean and intact):
                outcome = "lost or different"
            rows.append({"trial": trial, "fault": "disk full", "detail": f"{free} bytes free",
                         "phase": "disk full", "outcome": outcome,
                         "stderr": last_line(first.stderr, base)})  # fmt: skip
            print(f"disk full {trial:3d}: {free:9d} bytes free -> first run "
                  f"{'ok' if first.returncode == 0 else 'stopped'}; {outcome}")  # fmt: skip
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)
    return rows


def all_files_intact(folder: Path) -> bool:
    """Every JSON parses and every checkpoint verifies: nothing half-written was left."""
    from cxrlib.core.errors import DamagedFileError
    from cxrlib.models.files import load_checked

    for path in folder.rglob("*.json"):
        try:
            json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError):
            return False
    for path in folder.rglob("*.pt"):
        try:
            load_checked(path)
        except DamagedFileError:
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", help=argparse.SUPPRESS)
    parser.add_argument("--trials", type=int, default=50, help="kill (and damage) trials")
    parser.add_argument("--disk-full", type=int, default=0, help="disk-full trials (root)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    if args.workload:
        from cxrlib.core.errors import as_user_error

        try:
            workload(Path(args.workload))
        except Exception as err:  # as python -m cxrlib says it: one line, exit status 2
            expected = as_user_error(err)
            if expected is None:
                raise
            print(f"error: {' '.join(str(expected).split())}", file=sys.stderr)
            raise SystemExit(2) from None
        return
    began = time.time()
    found = campaign(args)
    print("\n  fault            trials  identical  refused  lost or different")
    for row in found["by_fault"]:
        print(f"  {row['fault']:16s} {row['trials']:6d} {row['identical']:10d} "
              f"{row['refused']:8d} {row['lost or different']:18d}")  # fmt: skip
    lost = sum(r["lost or different"] for r in found["by_fault"])
    from benchmarks.report import write_result

    summary = [
        {"figure": f"{r['fault']}: trials / identical / refused in one line / lost or different",
         "value": f"{r['trials']} / {r['identical']} / {r['refused']} / {r['lost or different']}"}
        for r in found["by_fault"]
    ] + [
        {"figure": f"killed during {r['phase']}: trials / identical / refused / lost",
         "value": f"{r['trials']} / {r['identical']} / {r['refused']} / {r['lost or different']}"}
        for r in found["by_phase"]
    ]  # fmt: skip
    path = write_result(
        "faults",
        {"benchmark": "faults", "seed": args.seed, "workload": WORKLOAD, "summary": summary,
         "seconds": round(time.time() - began), **found},
        Path(args.out),
    )  # fmt: skip
    print(f"\n{lost} lost or different; written {path}")
    if lost:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
