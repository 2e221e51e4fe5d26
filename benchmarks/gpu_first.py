"""Benchmark: the first look at a GPU, in one command that fits a short lease and always returns
figures.

Run (one GPU; everything is written to ``--out`` after every step, so a command killed at any
moment still returns what it measured)::

    timeout 540 python3 benchmarks/gpu_first.py --budget-seconds 420 --out "$OUT"

Steps, in priority order; a step whose estimated time no longer fits in what is left of the
budget is skipped (and says so), a step that fails is recorded and the next one runs:

a. **environment** -- GPU, driver, CUDA, torch/triton/timm versions, the peak FLOP/s used for
   MFU (:func:`cxrlib.paper.costs.device_peaks`, matched from the exact device name) -- and a
   **flex-attention check**: MMAEF's compiled ``flex_attention`` forward *and* backward against
   a hand-written float64 reference on the same device, and its gradients against the
   hand-written attention's at the same precision;
b. **ctranscnn_tiny training** at 224 px, global batch 32, the kit's own step (``to_model_input``
   on uint8, autocast, the papers' loss on each head, the grad scaler, fused AdamW): bf16 +
   channels_last eager, fp32 (TF32) eager, a ``torch.profiler`` breakdown of the bf16 step (top
   kernels), then bf16 under ``torch.compile`` -- each images/s, peak memory and MFU; the bf16
   step's loss beside fp32's on the same batch and weights. A GPU without native bf16 (T4)
   times fp16 with a gradient scaler instead, as training does there;
c. **end to end**: ``python -m cxrlib train`` on phantom data at 224 px for two epochs, the
   second epoch timed from its ``epochs.csv`` (loader, validation and checkpoints included);
d. while the budget lasts: ``chexnet_tiny`` (eager modes, then compiled), ``resnet50``, CUDA
   graphs (``mode="reduce-overhead"``), and the largest batch that fits.

MFU = training images/s × 3 × forward FLOPs per image (the kit's own count of what it
executes) ÷ the device's dense peak for the precision. ``--quick`` runs every step on a CPU at
micro size (the suite runs it; its figures mean nothing).
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
import traceback
from collections.abc import Callable
from datetime import date
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cxrlib.core.config import load_config  # noqa: E402 - after the path is set
from cxrlib.data.loader import to_model_input  # noqa: E402
from cxrlib.models import TrainingHeads, create_model  # noqa: E402
from cxrlib.models.attention import _sigmoid_score, flex_kernel, hand_written_attention  # noqa: E402
from cxrlib.models.summary import forward_gflops  # noqa: E402
from cxrlib.paper.costs import device_peaks  # noqa: E402
from cxrlib.train.losses import training_loss  # noqa: E402
from cxrlib.train.optim import build_optimizer, build_scaler  # noqa: E402
from cxrlib.train.record import code_version  # noqa: E402
from cxrlib.train.runtime import Runtime, native_bf16  # noqa: E402


class Bench:
    """The budget, the record and its files: rewritten after every step."""

    def __init__(self, args) -> None:
        self.args, self.start = args, time.monotonic()
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.record: dict = {"benchmark": "gpu_first", "date": date.today().isoformat(),
                             "budget_s": args.budget_seconds, "quick": args.quick,
                             "steps": [], "training": []}  # fmt: skip
        self.log_path = self.out / "gpu_first.log"
        self.flops: dict[str, float] = {}

    def left(self) -> float:
        return self.args.budget_seconds - (time.monotonic() - self.start)

    def log(self, text: str) -> None:
        line = f"[{time.monotonic() - self.start:7.1f}s] {text}"
        print(line, flush=True)
        with open(self.log_path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def save(self) -> None:
        name = self.record.get("environment", {}).get("gpu") or "cpu"
        tag = "".join(c if c.isalnum() else "_" for c in name).strip("_")[:40]
        path = self.out / f"gpu_first_{tag}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.record, indent=2, default=str) + "\n")
        os.replace(tmp, path)  # a command killed mid-write still leaves the previous file

    def step(self, name: str, estimate: float, fn: Callable[[], object]) -> object:
        """Run ``fn`` if its estimate fits the budget left; record the outcome either way."""
        entry = {"step": name, "estimate_s": estimate}
        if estimate > self.left():
            entry |= {
                "status": "skipped",
                "why": f"needs ~{estimate:.0f}s, {self.left():.0f}s left",
            }
            self.log(f"skip {name}: {entry['why']}")
        else:
            self.log(f"start {name} (~{estimate:.0f}s)")
            begin = time.monotonic()
            try:
                entry["result"] = fn()
                entry["status"] = "ok"
            except Exception as error:  # recorded; the next step runs
                entry |= {"status": "failed", "error": f"{type(error).__name__}: {error}"}
                entry["traceback"] = traceback.format_exc()[-3000:]
                self.log(f"FAILED {name}: {entry['error'][:500]}")
            entry["seconds"] = round(time.monotonic() - begin, 1)
            self.log(f"end {name}: {entry['status']} in {entry['seconds']}s")
        self.record["steps"].append(entry)
        self.save()
        return entry.get("result")


# --- (a) environment and the flex-attention check ----------------------------------------------
def environment(bench: Bench) -> dict:
    env = {"python": sys.version.split()[0], "torch": torch.__version__,
           "cuda": torch.version.cuda, "platform": platform.platform()}  # fmt: skip
    for package in ("triton", "timm", "numpy"):
        try:
            env[package] = __import__(package).__version__
        except ImportError:
            env[package] = None
    if bench.device.type == "cuda":
        props = torch.cuda.get_device_properties(bench.device)
        env |= {"gpu": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
                "capability": f"{props.major}.{props.minor}", "sms": props.multi_processor_count,
                "native_bf16": native_bf16(bench.device)}  # fmt: skip
        env["driver"] = _nvidia_smi("driver_version")
    key, peaks = device_peaks(env.get("gpu", ""))
    env["peaks_entry"], env["peak_tflops"] = key, peaks
    env["cxrlib"] = code_version()
    bench.record["environment"] = env
    return env


def _nvidia_smi(field: str) -> str | None:
    try:
        result = subprocess.run(["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=20)  # fmt: skip
        return result.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))


def flex_check(bench: Bench) -> dict:
    """MMAEF through compiled flex_attention against a hand-written float64 reference on the
    same device (never through flex itself), forward and backward, fp32 and bf16 inputs; and the
    flex gradients against the hand-written attention's at the same precision."""
    if bench.device.type != "cuda":
        return {"skipped": "no CUDA device: flex_attention runs only on the GPU here"}
    out = {}
    shape = (8, 6, 197, 64)  # (B, heads, N, d_head) of Conformer-tiny at 224 px
    for dtype in (torch.float32, torch.bfloat16):
        q, k, v = (torch.randn(shape, device=bench.device, dtype=dtype) for _ in range(3))
        scale, probe = 64**-0.5, torch.randn(shape, device=bench.device, dtype=torch.float64)
        leaves = [t.double().requires_grad_() for t in (q, k, v)]
        reference = hand_written_attention(*leaves, scale)
        ref_grads = torch.autograd.grad((reference * probe).sum(), leaves)
        same = [t.clone().requires_grad_() for t in (q, k, v)]
        hand = hand_written_attention(*same, scale)
        hand_grads = torch.autograd.grad((hand.double() * probe).sum(), same)
        row: dict = {"hand_written_vs_fp64_output": _relative(hand, reference)}
        inputs = [t.clone().requires_grad_() for t in (q, k, v)]
        try:
            fused = flex_kernel()(*inputs, score_mod=_sigmoid_score, scale=scale)
            row["forward"] = "ok"
            row["output_vs_fp64"] = _relative(fused, reference)
        except Exception as error:  # recorded: training falls back
            row["forward"] = f"failed: {type(error).__name__}: {error}"[:500]
            out[str(dtype).removeprefix("torch.")] = row
            continue
        try:
            grads = torch.autograd.grad((fused.double() * probe).sum(), inputs)
            row["backward"] = "ok"
            for name, g, r, h in zip("qkv", grads, ref_grads, hand_grads, strict=True):
                row[f"grad_{name}_vs_fp64"] = _relative(g, r)
                row[f"grad_{name}_vs_hand_written"] = _relative(g, h)
        except Exception as error:
            row["backward"] = f"failed: {type(error).__name__}: {error}"[:500]
        out[str(dtype).removeprefix("torch.")] = row
    return out


# --- (b, d) the training step ------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, steps: int, device: torch.device) -> float:
    """Seconds per call over ``steps`` calls (CUDA events on a GPU)."""
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


def low_precision(bench: Bench) -> str:
    """bf16 where the GPU has it natively, fp16 (with a scaler) elsewhere: as training."""
    if bench.device.type == "cuda" and not native_bf16(bench.device):
        return "fp16"
    return "bf16"


def _step_fn(bench: Bench, name: str, precision: str, channels_last: bool, compile_mode, batch):
    """The kit's training step for ``name`` (a fresh model with seed 0), its first loss, the
    model, and a function that runs one step."""
    args, device = bench.args, bench.device
    runtime = Runtime(device, precision=precision, micro_batch=batch, channels_last=channels_last)
    torch.manual_seed(0)
    model = create_model(name, num_classes=14, size=args.size, image_size=args.image_size)
    memory = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device, memory_format=memory).train()
    optimizer = build_optimizer(model, load_config("paper", data_source="phantom"))
    scaler = build_scaler(runtime)
    heads = TrainingHeads(model)  # every head, as the training loop calls the model
    if compile_mode == "eager-backend":  # --quick on a CPU: the tracing without code generation
        trainable = torch.compile(heads, backend="eager")
    else:
        trainable = heads if compile_mode is None else torch.compile(heads, mode=compile_mode)
    generator = torch.Generator(device="cpu").manual_seed(1)
    size = args.image_size
    images = torch.randint(0, 256, (batch, 1, size, size), dtype=torch.uint8, generator=generator)
    target = (torch.rand(batch, 14, generator=generator) < 0.2).float()
    images, target = images.to(device), target.to(device)
    graphs = compile_mode == "reduce-overhead"
    losses: list[float] = []

    def train_step(keep_loss: bool = False) -> None:
        if graphs:
            torch.compiler.cudagraph_mark_step_begin()
        x = to_model_input(images, device, channels_last)
        with runtime.autocast():
            out = trainable(x)
        loss = training_loss(out, target, "each")
        if keep_loss:
            losses.append(float(loss))
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    return train_step, losses


def forward_flops(bench: Bench, name: str) -> float:
    if name not in bench.flops:
        model = create_model(
            name, num_classes=14, size=bench.args.size, image_size=bench.args.image_size
        )
        bench.flops[name] = forward_gflops(model, bench.args.image_size) * 1e9
    return bench.flops[name]


def measure(bench: Bench, name: str, mode: str, batch: int | None = None) -> dict:
    """One model in one mode: training images/s, peak memory, MFU, the first step's loss."""
    args, device = bench.args, bench.device
    batch = batch or args.batch
    low = low_precision(bench)
    precision, channels_last, compile_mode = {
        "low+channels_last": (low, True, None),
        "fp32": ("fp32", False, None),
        "low+compile": (low, True, "eager-backend" if args.quick else "default"),
        "low+cudagraphs": (low, True, "reduce-overhead"),
    }[mode]
    row = {"model": name, "mode": mode.replace("low", precision), "batch": batch}
    try:
        step, losses = _step_fn(bench, name, precision, channels_last, compile_mode, batch)
        begin = time.perf_counter()
        step(keep_loss=True)  # the first call compiles, where compiled
        _sync(device)
        row["first_step_s"] = round(time.perf_counter() - begin, 2)
        row["first_loss"] = losses[0]
        for _ in range(args.warmup):
            step()
        _sync(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        seconds = _timed(step, args.steps, device)
        row["images_per_s"] = round(batch / seconds, 1)
        if device.type == "cuda":
            row["peak_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        peak = bench.record["environment"].get("peak_tflops", {}).get(precision)
        flops = forward_flops(bench, name)
        row["forward_gflop"] = round(flops / 1e9, 2)
        if peak:
            row["mfu"] = round(row["images_per_s"] * 3 * flops / (peak * 1e12), 4)
    finally:
        torch._dynamo.reset()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    bench.record["training"].append(row)
    bench.log(f"  {name} {row['mode']} b{batch}: {row.get('images_per_s')} img/s, "
              f"MFU {row.get('mfu')}, peak {row.get('peak_gib')} GiB")  # fmt: skip
    return row


def profile(bench: Bench, name: str) -> dict:
    """Where the low-precision eager step's time goes: the top kernels by device time."""
    step, _ = _step_fn(bench, name, low_precision(bench), True, None, bench.args.batch)
    for _ in range(2):
        step()
    _sync(bench.device)
    activities = [torch.profiler.ProfilerActivity.CPU]
    if bench.device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(3):
            step()
        _sync(bench.device)
    sort = "cuda_time_total" if bench.device.type == "cuda" else "cpu_time_total"
    table = prof.key_averages().table(sort_by=sort, row_limit=20)
    bench.log("profile of the step (3 steps):\n" + table)
    events = sorted(prof.key_averages(), key=lambda e: getattr(e, "device_time_total", 0) or 0,
                    reverse=True)[:15]  # fmt: skip
    return {"top": [{"name": e.key[:80], "device_us": getattr(e, "device_time_total", None),
                     "cpu_us": e.cpu_time_total, "calls": e.count} for e in events]}  # fmt: skip


def largest_batch(bench: Bench, name: str) -> dict:
    """The largest power-of-two batch (up to ``--max-batch``) whose step fits, measured."""
    best, batch = None, bench.args.batch * 2
    while batch <= bench.args.max_batch and bench.left() > 30:
        try:
            best = measure(bench, name, "low+channels_last", batch)
        except torch.cuda.OutOfMemoryError:
            break
        batch *= 2
    return best or {"none": "no batch above the paper's fitted or the budget ran out"}


# --- (c) end to end ----------------------------------------------------------------------------
def end_to_end(bench: Bench) -> dict:
    """``python -m cxrlib train`` on phantom data for two epochs; the second epoch's images/s
    and seconds from its epochs.csv (loader, validation and checkpoints included)."""
    import pandas as pd

    args = bench.args
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = dict(os.environ, CXRLIB_HOME=str(work), CXRLIB_RUNS_DIR=str(work / "runs"),
                   CXRLIB_DATA_DIR=str(work / "data"), CXRLIB_RESULTS_DIR=str(work / "results"),
                   CXRLIB_OFFLINE="1", PYTHONPATH=str(ROOT))  # fmt: skip
        profile = "smoke" if args.quick else "paper"
        sets = ["data_source=phantom", f"phantom_images={args.e2e_images}", "epochs=2",
                f"image_size={args.image_size}"]  # fmt: skip
        if args.quick:
            sets += ["batch_size=8"]
        options = [x for s in sets for x in ("--set", s)]
        command = [sys.executable, "-m", "cxrlib", "train", "--profile", profile,
                   "--dataset", "cxr14", "--model", "ctranscnn_tiny", *options]  # fmt: skip
        begin = time.perf_counter()
        done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True,
                              timeout=max(bench.left(), 30))  # fmt: skip
        wall = time.perf_counter() - begin
        if done.returncode != 0:
            raise RuntimeError(f"train exited {done.returncode}: {done.stderr[-1500:]}")
        history = pd.read_csv(next((work / "runs").rglob("epochs.csv")))
        metrics = json.loads(next((work / "runs").rglob("metrics.json")).read_text())
    second = history.iloc[-1]
    return {
        "command_wall_s": round(wall, 1),
        "phantom_images": args.e2e_images,
        "second_epoch_s": round(float(second["seconds"]), 2),
        "second_epoch_train_images_per_s": round(float(second["images_per_s"]), 1),
        "runtime": metrics.get("runtime"),
        "mmaef_attention": metrics.get("mmaef_attention"),
    }


# --- the plan ------------------------------------------------------------------------------------
def plan(bench: Bench) -> list[tuple[str, float, Callable[[], object]]]:
    """(name, estimated seconds, function) in priority order. Estimates are for an H100/H200
    with cuDNN tuning and compiling included; ``--quick`` shrinks them."""
    q = 0.2 if bench.args.quick else 1.0
    main, second = "ctranscnn_tiny", "chexnet_tiny"
    fast = "low+channels_last"
    steps = [
        ("environment", 5, lambda: environment(bench)),
        ("flex_check", 60 * q, lambda: flex_check(bench)),
        (f"{main} {fast}", 25 * q, lambda: measure(bench, main, fast)),
        (f"{main} fp32", 25 * q, lambda: measure(bench, main, "fp32")),
        (f"{main} profile", 20 * q, lambda: profile(bench, main)),
        (f"{main} low+compile", 180 * q, lambda: measure(bench, main, "low+compile")),
        ("end_to_end", 90 * q, lambda: end_to_end(bench)),
        (f"{second} {fast}", 25 * q, lambda: measure(bench, second, fast)),
        (f"{second} fp32", 25 * q, lambda: measure(bench, second, "fp32")),
        (f"resnet50 {fast}", 20 * q, lambda: measure(bench, "resnet50", fast)),
        (f"{second} low+compile", 180 * q, lambda: measure(bench, second, "low+compile")),
    ]  # fmt: skip
    if bench.device.type == "cuda":
        steps += [
            (f"{main} low+cudagraphs", 180, lambda: measure(bench, main, "low+cudagraphs")),
            (f"{main} largest batch", 60, lambda: largest_batch(bench, main)),
        ]
    return steps


def summary(bench: Bench) -> None:
    """The short table the lease's reply carries (its tail)."""
    env = bench.record.get("environment", {})
    print(f"\n{env.get('gpu', 'cpu')} ({env.get('peaks_entry')}), torch {env.get('torch')}, "
          f"triton {env.get('triton')}")  # fmt: skip
    print(f"{'model':16} {'mode':22} {'batch':>5} {'img/s':>9} {'GiB':>6} {'MFU':>6} {'loss':>8}")
    for r in bench.record["training"]:
        mfu = f"{100 * r['mfu']:.1f}%" if r.get("mfu") else "-"
        speed, memory = r.get("images_per_s", 0), r.get("peak_gib", float("nan"))
        print(f"{r['model']:16} {r['mode']:22} {r['batch']:5d} {speed:9.1f} {memory:6.2f} "
              f"{mfu:>6} {r.get('first_loss', 0):8.4f}")  # fmt: skip
    for entry in bench.record["steps"]:
        if entry["step"] in ("flex_check", "end_to_end") and entry.get("status") == "ok":
            print(f"{entry['step']}: {json.dumps(entry['result'])}")
        elif entry.get("status") != "ok":
            why = entry.get("why") or entry.get("error", "")
            print(f"{entry['step']}: {entry.get('status')} {why}"[:300])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the JSON and the log")
    parser.add_argument("--budget-seconds", type=float, default=420)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-batch", type=int, default=512)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--size", default="paper", choices=("paper", "micro"))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--e2e-images", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="a CPU test of the script itself")
    args = parser.parse_args()
    if args.quick:
        args.size, args.image_size, args.steps, args.warmup = "micro", 64, 2, 1
        args.batch, args.e2e_images = 8, 60
    bench = Bench(args)
    if bench.device.type == "cuda":  # as the kit's runtime sets them
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    elif not args.quick:
        raise SystemExit("no GPU here: this benchmark is for a GPU (--quick tests it on a CPU)")
    for name, estimate, fn in plan(bench):
        bench.step(name, estimate, fn)
    bench.record["total_s"] = round(time.monotonic() - bench.start, 1)
    bench.save()
    summary(bench)


if __name__ == "__main__":
    main()
