"""Benchmark: training and inference speed, peak memory and MFU of the models on a GPU.

Run (one GPU; every figure of issue #12 in two commands of under ten minutes each)::

    python benchmarks/gpu_speed.py eager     # 5 models × fp32/bf16/bf16+channels_last,
                                             # largest batch, flex check, one e2e epoch,
                                             # bf16 vs fp32 on phantom data
    python benchmarks/gpu_speed.py compiled  # bf16 + torch.compile, with/without CUDA graphs
    python benchmarks/gpu_speed.py table benchmarks/results/gpu_speed_*.json  # README table

Each part writes JSON (device name, torch version, date, every figure) to ``--out``
(default ``benchmarks/results/``) and prints a table last.

What is measured, per model (``--models``; default ``ctranscnn_tiny chexnet_tiny
conformer_tiny resnet50 densenet121``) at 224 px, 14 classes:

* **training**: the training loop's own step -- ``to_model_input`` on a uint8 batch already
  on the GPU, autocast, the papers' loss on every head, the grad scaler, the fused AdamW --
  at the paper's batch (``--batch``, 32) and, in ``eager``, at the largest power-of-two
  batch that fits (bf16 + channels_last). Timed with CUDA events over ``--steps`` steps after
  warm-up: images/s, peak memory (``max_memory_allocated``), MFU.
* **inference**: eval mode, ``inference_mode``, batch 4 × ``--batch``.
* **MFU** = images/s × 3 × forward FLOPs per image ÷ the device's dense peak for that
  precision (datasheet, :data:`PEAKS`; TF32 for fp32). FLOPs are the kit's own count
  (``torch.utils.flop_counter``) of what it executes; ``mfu_published`` uses the FLOPs of the
  model as published (the authors' order of operations), i.e. the utilisation an
  implementation computing the published way would need for the same speed.

``eager`` also checks the flex_attention MMAEF kernel against the hand-written form on the
GPU (forward and backward, fp32 and bf16), times one end-to-end epoch of
``python -m cxrlib train`` on phantom data at 224 px (loader, validation and checkpoints
included) and trains the smoke profile in bf16 and in fp32 to compare their test AUC and
bootstrap CIs. ``--quick`` shrinks everything so that the script itself can be tested on
a CPU (its figures then mean nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = ("ctranscnn_tiny", "chexnet_tiny", "conformer_tiny", "resnet50", "densenet121")
#: Dense peak TFLOP/s by device (vendor datasheets; sparsity not counted). "fp32" is the
#: precision fp32 runs in: TF32 tensor cores where the GPU has them (this kit enables TF32).
PEAKS = {
    "H200": {"bf16": 989.0, "fp16": 989.0, "fp32": 494.5},
    "H100 PCIe": {"bf16": 756.0, "fp16": 756.0, "fp32": 378.0},
    "H100": {"bf16": 989.0, "fp16": 989.0, "fp32": 494.5},  # SXM
    "A100": {"bf16": 312.0, "fp16": 312.0, "fp32": 156.0},
    "L4": {"bf16": 121.0, "fp16": 121.0, "fp32": 60.0},
    "A10G": {"bf16": 125.0, "fp16": 125.0, "fp32": 62.5},
    "T4": {"fp16": 65.0, "fp32": 8.1},  # no bf16 (emulated), no TF32
    "P100": {"fp16": 18.7, "fp32": 9.3},
}
#: The paper runs whose time the README's table gives: 300 epochs over the training images
#: of the papers' split (CXR14 46,563; CXR11 21,059: notebook 01's split sizes).
PAPER_EPOCHS, TRAIN_IMAGES = 300, {"CXR14": 46_563, "CXR11": 21_059}


def device_peaks(name: str) -> tuple[str, dict[str, float]]:
    """The :data:`PEAKS` entry whose key the device's name contains (most specific first)."""
    for key in sorted(PEAKS, key=len, reverse=True):
        if all(part in name for part in key.split()):
            return key, PEAKS[key]
    return "unknown", {}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, steps: int, device: torch.device) -> float:
    """Seconds per call of ``fn`` over ``steps`` calls (CUDA events on a GPU)."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(steps):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000 / steps
    begin = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - begin) / steps


def forward_flops(name: str, image_size: int, size: str) -> tuple[float, float]:
    """(executed, published) forward FLOPs per image, counted on the CPU."""
    from cxrlib.models import create_model
    from cxrlib.models.summary import forward_gflops

    model = create_model(name, 14, size=size, image_size=image_size)
    return (
        forward_gflops(model, image_size) * 1e9,
        forward_gflops(model, image_size, published=True) * 1e9,
    )


MODES = {  # name: (precision, channels_last, compile mode or None)
    "fp32": ("fp32", False, None),
    "bf16": ("bf16", False, None),
    "bf16+channels_last": ("bf16", True, None),
    "bf16+compile": ("bf16", True, "default"),
    "bf16+compile+cudagraphs": ("bf16", True, "reduce-overhead"),
}


def measure(name: str, mode: str, batch: int, args, device: torch.device) -> dict:
    """One model in one mode: training and inference images/s and peak memory."""
    from cxrlib.config import load_config
    from cxrlib.data.loader import to_model_input
    from cxrlib.models import create_model
    from cxrlib.runtime import Runtime
    from cxrlib.training import build_optimizer, build_scaler, training_loss

    precision, channels_last, compile_mode = MODES[mode]
    if device.type == "cpu" and precision == "bf16" and not args.quick:
        raise SystemExit("bf16 on a CPU is not what this benchmark measures")
    runtime = Runtime(device, precision=precision, micro_batch=batch, channels_last=channels_last)
    torch.manual_seed(0)
    model = create_model(name, 14, size=args.size, image_size=args.image_size)
    memory = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device, memory_format=memory).train()
    optimizer = build_optimizer(model, load_config("paper", data_source="phantom"))
    scaler = build_scaler(runtime)
    trainable = model if compile_mode is None else torch.compile(model, mode=compile_mode)
    size = args.image_size
    images = torch.randint(0, 256, (batch, 1, size, size), dtype=torch.uint8, device=device)
    target = (torch.rand(batch, 14, device=device) < 0.2).float()
    graphs = compile_mode == "reduce-overhead"

    def train_step() -> None:
        if graphs:
            torch.compiler.cudagraph_mark_step_begin()
        x = to_model_input(images, device, channels_last)
        with runtime.autocast():
            out = trainable(x)
        loss = training_loss(out, target, "each")
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    row: dict = {"model": name, "mode": mode, "batch": batch}
    begin = time.perf_counter()
    train_step()  # the first call compiles, where compiled
    _sync(device)
    row["first_step_s"] = time.perf_counter() - begin
    for _ in range(args.warmup):
        train_step()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    row["train_s_per_step"] = _timed(train_step, args.steps, device)
    row["train_images_per_s"] = batch / row["train_s_per_step"]
    if device.type == "cuda":
        row["train_peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30

    eval_images = images.repeat(4, 1, 1, 1)  # (4B, 1, S, S)
    model.eval()

    @torch.inference_mode()
    def infer() -> None:
        if graphs:
            torch.compiler.cudagraph_mark_step_begin()
        with runtime.autocast():
            trainable(to_model_input(eval_images, device, channels_last)).logits.float()

    infer()
    for _ in range(args.warmup):
        infer()
    _sync(device)
    row["infer_images_per_s"] = len(eval_images) / _timed(infer, args.steps, device)
    return row


def measure_clean(name: str, mode: str, batch: int, args, device: torch.device) -> dict:
    """:func:`measure`, then its model, optimiser and compiled graphs are let go."""
    try:
        return measure(name, mode, batch, args, device)
    finally:
        torch._dynamo.reset()
        if device.type == "cuda":
            torch.cuda.empty_cache()


def largest_batch(name: str, args, device: torch.device) -> dict | None:
    """The largest power-of-two batch (up to ``--max-batch``) whose bf16 + channels_last
    training step fits, measured at that batch."""
    best, batch = None, args.batch * 2
    while batch <= args.max_batch:
        try:
            best = measure_clean(name, "bf16+channels_last", batch, args, device)
        except torch.cuda.OutOfMemoryError:
            break
        batch *= 2
    return best


def check_flex(device: torch.device) -> dict:
    """MMAEF through flex_attention against the hand-written form: relative errors of the
    output and of the three gradients (fp32 and bf16 inputs, fresh random data)."""
    from cxrlib.models import blocks

    out = {}
    for dtype in (torch.float32, torch.bfloat16):
        q, k, v = (
            torch.randn(8, 6, 197, 64, device=device, dtype=dtype, requires_grad=True)
            for _ in range(3)
        )
        scale = 64**-0.5
        reference = blocks.mmaef_attention(*(t.double() for t in (q, k, v)), scale)
        ref_grads = torch.autograd.grad(reference.square().sum(), (q, k, v))
        fused = blocks.mmaef_attention(q, k, v, scale)  # flex on a GPU
        grads = torch.autograd.grad(fused.float().square().sum(), (q, k, v))

        def rel(a, b):
            return float((a.double() - b.double()).norm() / b.double().norm())

        out[str(dtype).removeprefix("torch.")] = {
            "kernel": "hand-written" if blocks._FLEX.get("failed") else "flex_attention",
            "failed": blocks._FLEX.get("failed"),
            "output": rel(fused, reference),
            "grad_q": rel(grads[0], ref_grads[0]),
            "grad_k": rel(grads[1], ref_grads[1]),
            "grad_v": rel(grads[2], ref_grads[2]),
        }
    return out


def _cli(*args: str, env: dict) -> float:
    begin = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cxrlib", *args], cwd=ROOT, env=env, check=True)
    return time.perf_counter() - begin


def end_to_end(args, work: Path) -> dict:
    """One epoch of ``python -m cxrlib train`` (ctranscnn_tiny, paper profile, phantom data at
    224 px): wall time, and the epoch's images/s from its epochs.csv."""
    import pandas as pd

    env = dict(os.environ, CXRLIB_HOME=str(work), CXRLIB_RUNS_DIR=str(work / "runs"))
    env["CXRLIB_DATA_DIR"] = str(work / "data")
    settings = [
        "--set",
        "data_source=phantom",
        "--set",
        f"phantom_images={args.e2e_images}",
        "--set",
        "epochs=1",
        "--set",
        f"image_size={args.image_size}",
    ]
    common = ["train", "--profile", "paper", "--dataset", "cxr14", "--model", "ctranscnn_tiny"]
    prepare_s = _cli("prepare", "--profile", "paper", "--dataset", "cxr14", *settings, env=env)
    wall = _cli(*common, *settings, env=env)
    runs = sorted((work / "runs").rglob("epochs.csv"))
    history = pd.read_csv(runs[-1]) if runs else pd.DataFrame()
    metrics = json.loads((runs[-1].parent / "metrics.json").read_text()) if runs else {}
    return {
        "phantom_images": args.e2e_images,
        "prepare_s": prepare_s,
        "train_command_wall_s": wall,
        "epoch_images_per_s": float(history["images_per_s"].iloc[-1]) if len(history) else None,
        "runtime": metrics.get("runtime"),
    }


def precision_agreement(args, work: Path) -> dict:
    """The smoke profile trained in bf16 and in fp32 on the same phantom data: test mean AUC
    with its bootstrap CI for each (bf16 should fall inside fp32's CI)."""
    out = {}
    for precision in ("fp32", "bf16"):
        env = dict(os.environ, CXRLIB_HOME=str(work), CXRLIB_RUNS_DIR=str(work / precision))
        env["CXRLIB_DATA_DIR"] = str(work / "data_smoke")
        sets = ["--set", f"precision={precision}"]
        if args.quick:
            sets += ["--set", "epochs=1", "--set", "phantom_images=120"]
        _cli("train", "--profile", "smoke", "--dataset", "cxr14", *sets, env=env)
        metrics = json.loads(next((work / precision).rglob("metrics.json")).read_text())
        out[precision] = {
            "test_mean_auc": metrics["test"]["mean_auc"],
            "ci": [metrics["test_ci"]["mean_low"], metrics["test_ci"]["mean_high"]],
            "val_mean_auc": metrics["val"]["mean_auc"],
        }
    low, high = out["fp32"]["ci"]
    out["bf16_within_fp32_ci"] = low <= out["bf16"]["test_mean_auc"] <= high
    return out


def _finish(rows: list[dict], args, device: torch.device, part: str, extra: dict) -> Path:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    key, peaks = device_peaks(name)
    flops = {}
    for row in rows:
        if row["model"] not in flops:
            flops[row["model"]] = forward_flops(row["model"], args.image_size, args.size)
        executed, published = flops[row["model"]]
        row["forward_gflop_executed"] = executed / 1e9
        row["forward_gflop_published"] = published / 1e9
        peak = peaks.get(MODES[row["mode"]][0])
        if peak:
            rate = row["train_images_per_s"] * 3
            row["mfu"] = rate * executed / (peak * 1e12)
            row["mfu_published"] = rate * published / (peak * 1e12)
    record = {
        "benchmark": f"gpu_speed {part}",
        "device": name,
        "peak_tflops_used": {"entry": key, **peaks},
        "torch": torch.__version__,
        "date": date.today().isoformat(),
        "image_size": args.image_size,
        "quick": args.quick,
        "rows": rows,
        **extra,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = "".join(c if c.isalnum() else "_" for c in name).strip("_")[:40] or "device"
    path = out / f"gpu_speed_{part}_{tag}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\n{name} ({key} peaks {peaks}), torch {torch.__version__}")
    print(
        f"{'model':16} {'mode':24} {'batch':>5} {'train img/s':>11} {'infer img/s':>11} "
        f"{'peak GiB':>8} {'MFU':>6}"
    )
    for r in rows:
        mfu = f"{100 * r['mfu']:.1f}%" if "mfu" in r else "-"
        print(
            f"{r['model']:16} {r['mode']:24} {r['batch']:5d} {r['train_images_per_s']:11.1f} "
            f"{r['infer_images_per_s']:11.1f} {r.get('train_peak_gib', float('nan')):8.2f} "
            f"{mfu:>6}"
        )
    for key_, value in extra.items():
        print(f"{key_}: {json.dumps(value)}")
    print(f"written: {path}")
    return path


def run_part(part: str, args) -> Path:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu" and not args.quick:
        raise SystemExit("no GPU here: this benchmark is for a GPU (--quick tests it on a CPU)")
    if device.type == "cuda":  # as the kit's runtime sets them
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    rows, extra = [], {}
    if part == "eager":
        if device.type == "cuda":
            extra["flex_check"] = check_flex(device)
        for name in args.models:
            for mode in ("fp32", "bf16", "bf16+channels_last"):
                if device.type == "cpu" and mode != "fp32":
                    continue
                rows.append(measure_clean(name, mode, args.batch, args, device))
            if device.type == "cuda":
                biggest = largest_batch(name, args, device)
                if biggest is not None:
                    rows.append(biggest)
        with tempfile.TemporaryDirectory() as tmp:
            if not args.skip_e2e:
                extra["end_to_end_epoch"] = end_to_end(args, Path(tmp))
                extra["bf16_vs_fp32_smoke"] = precision_agreement(args, Path(tmp))
    else:
        for name in args.compile_models:
            for mode in ("bf16+compile", "bf16+compile+cudagraphs"):
                if device.type == "cpu" and "cudagraphs" in mode:
                    continue
                rows.append(measure_clean(name, mode, args.batch, args, device))
    return _finish(rows, args, device, part, extra)


def time_to_result(paths: list[str], full_set: bool = True) -> str:
    """The README's table: hours per paper run (300 epochs) on each GPU, from the measured
    training images/s (best mode at the paper batch) -- measured where the device is the one
    that ran, else scaled by the ratio of dense bf16/fp16 peaks -- and, with ``full_set``,
    the hours of every run both papers' tables need (:func:`cxrlib.papers.expected_models` on
    both datasets): models not measured are given the measured CTransCNN's utilisation
    (its images/s × its FLOPs ÷ theirs), which the table says."""
    best: dict[str, tuple[float, str]] = {}
    device = ""
    for path in paths:
        record = json.loads(Path(path).read_text())
        device = record["device"]
        for row in record["rows"]:
            if row["batch"] != 32:
                continue
            rate = row["train_images_per_s"]
            if rate > best.get(row["model"], (0.0, ""))[0]:
                best[row["model"]] = (rate, row["mode"])
    key, peaks = device_peaks(device)
    measured_peak = peaks.get("bf16") or peaks.get("fp16")
    if measured_peak is None:
        raise SystemExit(f"no peak FLOP/s known for {device!r}: add it to PEAKS")
    gpus = list(dict.fromkeys(("T4", "A100", "H100", key)))

    def scaled(rate: float, gpu: str) -> float:
        return rate * (PEAKS[gpu].get("bf16") or PEAKS[gpu]["fp16"]) / measured_peak

    def hours(rate: float) -> dict[str, float]:
        return {d: PAPER_EPOCHS * n / rate / 3600 for d, n in TRAIN_IMAGES.items()}

    lines = [
        f"Measured on {device} ({date.today().isoformat()}); other GPUs scaled by dense "
        f"bf16/fp16 peak (T4: fp16).",
        "",
        "| model | mode | GPU | img/s | CXR14 h | CXR11 h | |",
        "|---|---|---|---|---|---|---|",
    ]
    for model, (rate, mode) in best.items():
        for gpu in gpus:
            how = "measured" if gpu == key else f"scaled from {key}"
            h = hours(scaled(rate, gpu))
            lines.append(
                f"| {model} | {mode} | {gpu} | {scaled(rate, gpu):,.0f} | {h['CXR14']:.2f} | "
                f"{h['CXR11']:.2f} | {how} |"
            )
    if full_set and "ctranscnn_tiny" in best:
        from cxrlib.papers import expected_models

        models = expected_models()
        reference = best["ctranscnn_tiny"][0] * forward_flops("ctranscnn_tiny", 224, "paper")[0]
        rates = {m: best[m][0] if m in best else None for m in models}
        for m in models:
            if rates[m] is None:
                rates[m] = reference / forward_flops(m, 224, "paper")[0]
        guessed = sum(m not in best for m in models)
        lines += ["", f"Full set: {len(models)} models × 2 datasets ({guessed} models not "
                  f"measured: at CTransCNN's measured utilisation).", "",
                  "| GPU | hours, all runs |", "|---|---|"]  # fmt: skip
        for gpu in gpus:
            total = sum(sum(hours(scaled(rates[m], gpu)).values()) for m in models)
            lines.append(f"| {gpu} | {total:,.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("eager", "compiled", "table"))
    parser.add_argument("files", nargs="*", help="table: the JSON files of eager/compiled")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--compile-models", nargs="+", default=["ctranscnn_tiny", "chexnet_tiny"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-batch", type=int, default=512)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--size", default="paper", choices=("paper", "micro"))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--e2e-images", type=int, default=3000)
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: tests the script")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    if args.part == "table":
        print(time_to_result(args.files))
        return
    if args.quick:
        args.size, args.image_size, args.steps, args.warmup = "micro", 64, 1, 0
        args.batch, args.e2e_images = 4, 120
    run_part(args.part, args)


if __name__ == "__main__":
    main()
