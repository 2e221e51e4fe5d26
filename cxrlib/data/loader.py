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

import functools
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _CacheBatches(Dataset):
    """The batches :func:`make_loader` serves (torch's map-style adaptor, not a dataset type
    of its own): images ``images[rows[i]]`` with labels ``labels[i]``; indexed by a list, returns
    a batch.

    ``dataset[[i, j, ...]]`` -- or ``dataset[(epoch, [i, j, ...])]``, as
    :class:`EpochBatchSampler` asks -- gives ``(uint8 B×1×S×S, float32 B×K)``; with ``flip``
    each image is mirrored left-right with probability 1/2, decided by (seed, epoch, index).
    The epoch travels with the indices, so persistent loader workers (which keep their own
    copy of the dataset from the first epoch on) flip as the main process would.
    """

    def __init__(
        self, images: np.ndarray, rows: np.ndarray, labels: np.ndarray, *, flip: bool, seed: int
    ) -> None:
        if len(rows) != len(labels):
            raise ValueError(f"{len(rows)} rows but {len(labels)} label vectors")
        self.images = images
        self.rows = np.asarray(rows, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.float32)
        self.flip = flip
        self.seed = seed
        self._flips: tuple[int, np.ndarray] | None = None  # (epoch, its flips), computed once
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """The epoch of batches asked for without one (``dataset[[i, j]]``)."""
        self.epoch = epoch

    def flips(self, epoch: int) -> np.ndarray:
        """Which images epoch ``epoch`` mirrors: a function of (seed, epoch) alone."""
        if self._flips is None or self._flips[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._flips = (epoch, rng.random(len(self.rows)) < 0.5)
        return self._flips[1]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(
        self, index: int | Sequence[int] | tuple[int, Sequence[int]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        epoch = self.epoch
        if isinstance(index, tuple) and len(index) == 2 and not np.isscalar(index[1]):
            epoch, index = index
        indices = np.atleast_1d(np.asarray(index, dtype=np.int64))
        batch = np.asarray(self.images[self.rows[indices]])  # (B, S, S) uint8 copy
        if self.flip:
            mirrored = self.flips(epoch)[indices]
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
        *,
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
            yield self.epoch, batch.tolist()

    def __len__(self) -> int:
        return len(self._all_batches())


def make_loader(
    images: np.ndarray,
    rows: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int,
    shuffle: bool,
    flip: bool = False,
    seed: int = 0,
    num_workers: int = 0,
    drop_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """A DataLoader of ``(uint8 B×1×S×S images[rows], float32 B×K labels)`` batches, each
    fetched from the cache in one indexing call; ``flip`` mirrors each image left-right with
    probability 1/2, decided by (seed, epoch, index).

    Call :func:`set_loader_epoch` before each epoch: the order and the flips are then a
    function of (seed, epoch) alone, with any number of workers or ranks. Workers persist
    from epoch to epoch (no start-up per epoch; each batch names its epoch).
    """
    dataset = _CacheBatches(images, rows, labels, flip=flip, seed=seed)
    sampler = EpochBatchSampler(
        len(dataset),
        batch_size,
        shuffle=shuffle,
        seed=seed,
        drop_last=drop_last,
        rank=rank,
        world_size=world_size,
    )
    return DataLoader(
        dataset,
        sampler=sampler,
        batch_size=None,  # the sampler yields index lists; the dataset returns whole batches
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available(),
        # Its own generator: starting an epoch must not draw from the global RNG, which the
        # model's stochastic depth uses (a resumed run would otherwise drift by one draw).
        generator=torch.Generator().manual_seed(seed),
    )


def set_loader_epoch(loader: DataLoader, epoch: int, skip_batches: int = 0) -> None:
    """Fix epoch ``epoch``'s order and flips; optionally skip its first batches (resume)."""
    loader.dataset.set_epoch(epoch)
    loader.sampler.set_epoch(epoch, skip_batches)


@functools.lru_cache(maxsize=8)
def _normalisation(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel scale and shift folding /255 and ImageNet mean/std, made once per device
    (creating them on every batch is a host-to-device copy per step)."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float64)
    scale, shift = 1 / (255.0 * std), -mean / std
    return (
        scale.float().view(1, 3, 1, 1).to(device),  # (3,) -> (1, 3, 1, 1)
        shift.float().view(1, 3, 1, 1).to(device),
    )


def to_model_input(
    images: torch.Tensor, device: torch.device | str = "cpu", channels_last: bool = False
) -> torch.Tensor:
    """uint8 ``B×1×S×S`` -> normalised float ``B×3×S×S`` on ``device``.

    The grey value is replicated to three channels and normalised with ImageNet mean/std:
    ``(v/255 - mean)/std``, computed as one multiply-add per pixel.
    """
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    scale, shift = _normalisation(device)
    x = images.to(device, non_blocking=True).float()  # (B, 1, S, S)
    x = torch.addcmul(shift, x, scale)  # broadcast (B, 1, S, S) × (1, 3, 1, 1) -> (B, 3, S, S)
    return x.contiguous(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format
    )
