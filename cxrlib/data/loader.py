"""Training-time data: batches straight from the image cache, with near-free augmentation.

The authors' pipeline (mmcls) decodes and resizes every image at every step; here a batch is
one fancy-indexing copy out of the memory-mapped uint8 cache, the random horizontal flip (the
reference's only augmentation) is a reversed view, and normalisation -- ImageNet mean/std on
the grey value replicated to three channels, as both papers -- happens on the device after the
(4× smaller) uint8 transfer.

Flips are a pure function of (seed, epoch, image index), so a resumed run sees exactly the
augmentations an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class CachedImageDataset(Dataset):
    """Images ``images[rows[i]]`` with labels ``labels[i]``; indexed by a list, returns a batch.

    ``dataset[[i, j, ...]]`` gives ``(uint8 B×1×S×S, float32 B×K)``; with ``flip`` each image is
    mirrored left-right with probability 1/2, decided by (seed, epoch, index).
    """

    def __init__(
        self,
        images: np.ndarray,
        rows: np.ndarray,
        labels: np.ndarray,
        flip: bool = False,
        seed: int = 0,
    ) -> None:
        if len(rows) != len(labels):
            raise ValueError(f"{len(rows)} rows but {len(labels)} label vectors")
        self.images = images
        self.rows = np.asarray(rows, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.float32)
        self.flip = flip
        self.seed = seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Fix this epoch's flips (call before iterating; workers copy the dataset then)."""
        self.epoch = epoch
        rng = np.random.default_rng([self.seed, epoch])
        self._flips = rng.random(len(self.rows)) < 0.5 if self.flip else None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int | Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        indices = np.atleast_1d(np.asarray(index, dtype=np.int64))
        batch = np.asarray(self.images[self.rows[indices]])  # (B, S, S) uint8 copy
        if self._flips is not None:
            mirrored = self._flips[indices]
            batch[mirrored] = batch[mirrored][:, :, ::-1]
        images = torch.from_numpy(np.ascontiguousarray(batch)).unsqueeze(1)  # (B, 1, S, S)
        return images, torch.from_numpy(self.labels[indices])


class EpochBatchSampler(Sampler):
    """Batches of indices whose order is a function of (seed, epoch) alone.

    With ``world_size`` > 1 each rank takes every ``world_size``-th batch of the same
    permutation (DistributedDataParallel); ``skip_batches`` resumes an epoch mid-way.
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.size, self.batch_size, self.shuffle = size, batch_size, shuffle
        self.seed, self.drop_last, self.rank, self.world_size = seed, drop_last, rank, world_size
        self.epoch, self.skip_batches = 0, 0

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.epoch, self.skip_batches = epoch, skip_batches

    def _all_batches(self) -> list[np.ndarray]:
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch, 7]).permutation(self.size)
        else:
            order = np.arange(self.size)
        batches = [order[i : i + self.batch_size] for i in range(0, self.size, self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        usable = len(batches) - len(batches) % self.world_size if self.world_size > 1 else None
        return batches[:usable][self.rank :: self.world_size]

    def __iter__(self):
        for batch in self._all_batches()[self.skip_batches :]:
            yield batch.tolist()

    def __len__(self) -> int:
        return len(self._all_batches())


def make_loader(
    dataset: CachedImageDataset,
    batch_size: int,
    shuffle: bool,
    num_workers: int = 0,
    seed: int = 0,
    drop_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """A DataLoader that fetches whole batches from ``dataset`` in one indexing call.

    Call :func:`set_loader_epoch` before each epoch: the order and the flips are then a
    function of (seed, epoch) alone, with any number of workers or ranks.
    """
    sampler = EpochBatchSampler(
        len(dataset), batch_size, shuffle, seed, drop_last, rank, world_size
    )
    return DataLoader(
        dataset,
        sampler=sampler,
        batch_size=None,  # the sampler yields index lists; the dataset returns whole batches
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
        # Its own generator: starting an epoch must not draw from the global RNG, which the
        # model's stochastic depth uses (a resumed run would otherwise drift by one draw).
        generator=torch.Generator().manual_seed(seed),
    )


def set_loader_epoch(loader: DataLoader, epoch: int, skip_batches: int = 0) -> None:
    """Fix epoch ``epoch``'s order and flips; optionally skip its first batches (resume)."""
    loader.dataset.set_epoch(epoch)
    loader.sampler.set_epoch(epoch, skip_batches)


def to_model_input(
    images: torch.Tensor, device: torch.device | str = "cpu", channels_last: bool = False
) -> torch.Tensor:
    """uint8 ``B×1×S×S`` -> normalised float ``B×3×S×S`` on ``device``.

    The grey value is replicated to three channels and normalised with ImageNet mean/std.
    """
    x = images.to(device, non_blocking=True).float().div_(255.0)
    x = x.expand(-1, 3, -1, -1)  # (B, 1, S, S) -> (B, 3, S, S), a view
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    x = (x - mean) / std
    return x.contiguous(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format
    )
