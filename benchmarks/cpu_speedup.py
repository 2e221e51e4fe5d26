"""Benchmark: a training step of this kit against an earlier version, side by side (CPU).

Run: ``python benchmarks/cpu_speedup.py [--baseline 043f46a] [--model ctranscnn_tiny]
[--batch-size 8] [--rounds 5] [--compile]``

This machine's speed varies by 2× from day to day, so absolute times taken at different
moments cannot be compared. Here both versions live in one process: the baseline's
``cxrlib`` is exported from git (``git archive``) into a temporary folder, imported, its
model and optimiser built, and then the working tree's ``cxrlib`` is imported in its place.
Each round times one training step of every variant in turn (interleaved), after a warm-up
step each; the script prints the median seconds per step and each variant's speed-up over
the baseline, and writes them as JSON to ``benchmarks/results/`` with the machine, torch
version and date.

A training step is what each version's training loop does for one batch of ``--batch-size``
images at 224 px: its model (paper size, 14 classes) in its memory format on this device,
forward, the papers' loss on every head, backward, its AdamW step (each version's own
``build_optimizer``). ``--compile`` adds this version under ``torch.compile`` (its compile
time is printed: minutes on a CPU).
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import date
from io import BytesIO
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _purge_cxrlib() -> None:
    for name in [n for n in sys.modules if n == "cxrlib" or n.startswith("cxrlib.")]:
        del sys.modules[name]


def _module(*names: str):
    """The first of ``names`` that imports: the same code lives in different modules in
    different versions of the kit (before and after its layers)."""
    for name in names:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError:
            continue
    raise ModuleNotFoundError(f"none of {names}")


def _kit_step(folder: Path | None, model_name: str, batch: int, compile_model: bool = False):
    """A training-step closure built with the ``cxrlib`` found in ``folder`` (None: this
    checkout), imported fresh."""
    _purge_cxrlib()
    if folder is not None:
        sys.path.insert(0, str(folder))
    try:
        cxrlib = importlib.import_module("cxrlib")
        config_mod = _module("cxrlib.core.config", "cxrlib.config")
        optim = _module("cxrlib.train.optim", "cxrlib.training")
        losses = _module("cxrlib.train.losses", "cxrlib.training")
        runtime_mod = _module("cxrlib.train.runtime", "cxrlib.runtime")
        models = importlib.import_module("cxrlib.models")
        loader = importlib.import_module("cxrlib.data.loader")
        config = config_mod.load_config("paper", data_source="phantom")
        runtime = runtime_mod.setup_runtime(config)
        torch.manual_seed(0)
        model = models.create_model(model_name, num_classes=14)
        memory = torch.channels_last if runtime.channels_last else torch.contiguous_format
        model.to(runtime.device, memory_format=memory).train()
        optimizer = optim.build_optimizer(model, config)
        # versions whose model(x) is a tensor give every head through TrainingHeads
        wrap = getattr(models, "TrainingHeads", None)
        trainable = wrap(model) if wrap is not None else model
        trainable = torch.compile(trainable) if compile_model else trainable
        images = torch.randint(0, 256, (batch, 1, 224, 224), dtype=torch.uint8)
        target = (torch.rand(batch, 14) < 0.2).float()
        origin = Path(cxrlib.__file__).parent
    finally:
        if folder is not None:
            sys.path.remove(str(folder))

    def step() -> None:
        x = loader.to_model_input(images, runtime.device, runtime.channels_last)
        loss = losses.training_loss(trainable(x), target, "each")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    if folder is not None and folder not in origin.parents:
        raise RuntimeError(f"imported cxrlib from {origin}, not from {folder}")
    where = "this checkout" if folder is None else f"git archive of {folder.name}"
    return step, {"cxrlib": where, "channels_last": runtime.channels_last}


def _export(ref: str, into: Path) -> Path:
    """``cxrlib`` of git ref ``ref``, extracted into ``into/<ref>/``."""
    archive = subprocess.run(
        ["git", "archive", ref, "cxrlib"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    folder = into / ref
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="043f46a", help="git ref of the earlier version")
    parser.add_argument("--model", default="ctranscnn_tiny")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        variants, about = {}, {}
        variants["baseline"], about["baseline"] = _kit_step(
            _export(args.baseline, Path(tmp)), args.model, args.batch_size
        )
        variants["this version"], about["this version"] = _kit_step(
            None, args.model, args.batch_size
        )
        if args.compile:
            step, info = _kit_step(None, args.model, args.batch_size, compile_model=True)
            start = time.perf_counter()
            step()  # compiles forward and backward
            info["compile_seconds"] = time.perf_counter() - start
            variants["this version, compiled"], about["this version, compiled"] = step, info
        for step in variants.values():
            step()  # warm-up
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, step in variants.items():
                start = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - start)

    base = statistics.median(times["baseline"])
    print(
        f"{args.model}, batch {args.batch_size}, 224 px, {torch.get_num_threads()} threads, "
        f"{args.rounds} interleaved rounds; baseline = {args.baseline}"
    )
    print(f"{'variant':26} {'s/step':>8} {'img/s':>7} {'speed-up':>9}")
    rows = []
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:26} {median:8.3f} {args.batch_size / median:7.2f} {base / median:8.2f}×")
        rows.append(
            {
                "variant": name,
                "median_s_per_step": median,
                "seconds": values,
                "images_per_s": args.batch_size / median,
                "speedup_over_baseline": base / median,
                **about[name],
            }
        )
    if "compile_seconds" in about.get("this version, compiled", {}):
        print(f"compile time: {about['this version, compiled']['compile_seconds']:.0f} s")
    record = {
        "benchmark": "cpu_speedup",
        "date": date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} "
        f"threads",
        "torch": torch.__version__,
        "model": args.model,
        "batch_size": args.batch_size,
        "baseline": args.baseline,
        "rounds": args.rounds,
        "variants": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"cpu_speedup_{args.model}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"written: {path}")


if __name__ == "__main__":
    main()
