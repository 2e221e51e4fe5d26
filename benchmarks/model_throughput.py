"""Benchmark: training-step and inference throughput and peak memory at 224 px (CPU).

Run: ``python benchmarks/model_throughput.py [--batch-size 8] [--steps 3]``

Each model is measured in a fresh subprocess (so that its peak resident memory is its own):
one warm-up step, then ``--steps`` timed training steps as the kit's loop runs them (its memory
format, fused AdamW, forward, the papers' loss on every head, backward, update) and ``--steps``
timed inference batches (eval, ``inference_mode``). Absolute figures move by up to 2× from day
to day on a shared machine: compare versions with ``cpu_speedup.py`` (side by side).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

MODELS = ("ctranscnn_tiny", "chexnet_tiny", "conformer_tiny", "resnet50")


def measure(name: str, batch_size: int, steps: int, image_size: int) -> dict:
    """The kit's own training step (its memory format, fused AdamW, the papers' loss on
    every head) and eval-mode inference, on this machine's CPU."""
    import torch

    from cxrlib.core.config import load_config
    from cxrlib.data.loader import to_model_input
    from cxrlib.models import create_model, forward_heads
    from cxrlib.train.losses import training_loss
    from cxrlib.train.optim import build_optimizer
    from cxrlib.train.runtime import setup_runtime

    config = load_config("paper", data_source="phantom")
    runtime = setup_runtime(config)
    torch.manual_seed(0)
    memory = torch.channels_last if runtime.channels_last else torch.contiguous_format
    model = create_model(name, num_classes=14, image_size=image_size).to(memory_format=memory)
    optimizer = build_optimizer(model, config)
    images = torch.randint(0, 256, (batch_size, 1, image_size, image_size), dtype=torch.uint8)
    y = (torch.rand(batch_size, 14) < 0.2).float()

    def train_step():
        x = to_model_input(images, runtime.device, runtime.channels_last)
        loss = training_loss(forward_heads(model, x), y, "each")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.train()
    train_step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        train_step()
    train_rate = steps * batch_size / (time.perf_counter() - start)
    model.eval()
    with torch.inference_mode():
        x = to_model_input(images, runtime.device, runtime.channels_last)
        model(x)
        start = time.perf_counter()
        for _ in range(steps):
            model(x)
    infer_rate = steps * batch_size / (time.perf_counter() - start)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "model": name,
        "train img/s": train_rate,
        "infer img/s": infer_rate,
        "peak RSS MiB": peak_mib,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.batch_size, args.steps, args.image_size)))
        return
    print(
        f"CPU cores: {os.cpu_count()}; batch {args.batch_size}; {args.image_size} px; "
        f"{args.steps} timed steps after one warm-up"
    )
    print(f"{'model':16} {'train img/s':>12} {'infer img/s':>12} {'peak RSS MiB':>13}")
    for name in MODELS:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                name,
                "--batch-size",
                str(args.batch_size),
                "--steps",
                str(args.steps),
                "--image-size",
                str(args.image_size),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{name:16} {row['train img/s']:>12.2f} {row['infer img/s']:>12.2f} "
            f"{row['peak RSS MiB']:>13,.0f}"
        )


if __name__ == "__main__":
    main()
