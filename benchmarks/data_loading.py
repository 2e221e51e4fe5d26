"""Benchmark: image-cache build rate and training-loader throughput vs decoding every step.

Run: ``python benchmarks/data_loading.py [--images 256] [--size 224]``

Writes phantom images at the real datasets' resolutions (NIH CXR14: 1024² PNG; RANZCR CXR11:
~2000-2500 px JPEG) into a temporary folder, then measures

1. the cache build rate (images/s, all CPU cores), and
2. training-loader throughput at ``--size`` px with the reference's augmentation (random
   horizontal flip) and ImageNet normalisation, with 0, 1 and 2 workers, for
   (a) our cache loader and (b) the reference's approach: decode + convert + bicubic resize +
   flip + normalise the original file at every step.

Cache rates are the median of three epochs. It prints a table; the README quotes it.
Timings assert nothing: they are measurements.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from cxrlib.data.cache import build_cache
from cxrlib.data.datasets import get_dataset
from cxrlib.data.loader import make_loader, set_loader_epoch, to_model_input
from cxrlib.data.phantom import PhantomSpec, generate_phantom


class DecodeEveryStep(Dataset):
    """The reference pipeline per image: load, grey, bicubic resize, flip, normalise."""

    def __init__(self, paths: list[str], size: int) -> None:
        self.paths, self.size = paths, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        with Image.open(self.paths[index]) as image:
            gray = image.convert("L").resize((self.size, self.size), Image.Resampling.BICUBIC)
        x = torch.from_numpy(np.asarray(gray, dtype=np.uint8).copy())
        if torch.rand(()) < 0.5:
            x = torch.flip(x, dims=[1])
        return to_model_input(x[None, None])[0]


def _rate(loader, normalise: bool) -> float:
    """Images/s over one epoch (worker start-up included, as in training)."""
    count, start = 0, time.perf_counter()
    for batch in loader:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        if normalise:
            images = to_model_input(images)
        count += len(images)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    print(f"CPU cores: {os.cpu_count()}; torch {torch.__version__}; {args.images} images/dataset")
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for dataset, resolution in (("cxr14", 1024), ("cxr11", 2048)):
            spec = PhantomSpec(dataset, num_images=args.images, image_size=resolution)
            table = get_dataset(dataset).read(generate_phantom(spec, Path(tmp) / "phantom"))
            ids, paths = table["image_id"].tolist(), table["path"].tolist()
            start = time.perf_counter()
            cache = build_cache(ids, paths, args.size, Path(tmp) / "cache", dataset, progress=False)
            build_rate = len(paths) / (time.perf_counter() - start)
            size_kib = np.mean([os.path.getsize(p) for p in paths]) / 1024
            print(
                f"{dataset}: cache build {build_rate:,.0f} images/s ({resolution} px originals, "
                f"mean file {size_kib:,.0f} KiB -> {args.size} px, {os.cpu_count()} processes)"
            )
            # Epochs as long as a real one's start (10k cached / 1k decoded samples), so that
            # worker start-up weighs as it does in training.
            rows_10k = np.tile(np.arange(len(paths)), -(-10_000 // len(paths)))
            labels = np.zeros((len(rows_10k), 1), dtype=np.float32)
            for workers in (0, 1, 2):
                cached = make_loader(
                    cache.pixels,
                    rows_10k,
                    labels,
                    batch_size=args.batch_size,
                    shuffle=True,
                    flip=True,
                    num_workers=workers,
                )
                set_loader_epoch(cached, 0)
                decoded = DataLoader(
                    DecodeEveryStep(paths * -(-1000 // len(paths)), args.size),
                    batch_size=args.batch_size,
                    shuffle=True,
                    num_workers=workers,
                )
                warm = make_loader(
                    cache.pixels, rows_10k, labels, batch_size=args.batch_size, shuffle=False
                )
                _rate(warm, normalise=True)  # warm the page cache
                fast = float(np.median([_rate(cached, normalise=True) for _ in range(3)]))
                slow = _rate(decoded, normalise=False)
                rows.append((dataset, workers, fast, slow))
        print(
            f"\nTraining-loader throughput at {args.size} px, batch {args.batch_size}, "
            "random flip + ImageNet normalisation (images/s):"
        )
        print(
            f"{'dataset':8} {'workers':>7} {'cache':>10} {'decode every step':>18} {'speed-up':>9}"
        )
        for dataset, workers, fast, slow in rows:
            print(f"{dataset:8} {workers:>7} {fast:>10,.0f} {slow:>18,.1f} {fast / slow:>8,.0f}×")


if __name__ == "__main__":
    main()
