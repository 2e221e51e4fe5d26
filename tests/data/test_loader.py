"""Cached loader: batches, deterministic flips per (seed, epoch), worker-independent output."""

from __future__ import annotations

import numpy as np
import torch

from cxrlib.data.loader import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    make_loader,
    set_loader_epoch,
    to_model_input,
)

IMAGES = np.arange(20 * 4 * 4, dtype=np.uint8).reshape(20, 4, 4)


def _loader(flip=True, **kwargs):
    """20 cache rows in reverse order, one-hot labels of 3 classes."""
    labels = np.eye(20, 3, dtype=np.float32)
    rows = np.arange(20)[::-1].copy()
    return make_loader(IMAGES, rows, labels, flip=flip, **kwargs)


def _epoch(loader, epoch, skip=0):
    set_loader_epoch(loader, epoch, skip)
    return [(x.clone(), y.clone()) for x, y in loader]


def test_batches_shapes_and_rows():
    x, y = next(iter(_loader(flip=False, batch_size=2, shuffle=False)))
    assert x.shape == (2, 1, 4, 4) and x.dtype == torch.uint8 and y.shape == (2, 3)
    assert torch.equal(x[0, 0], torch.from_numpy(IMAGES[19]))  # rows map to cache rows


def test_flips_and_order_depend_only_on_seed_and_epoch():
    loader = _loader(batch_size=8, shuffle=True, seed=3)
    a0, a1 = _epoch(loader, 0), _epoch(loader, 1)
    again = _epoch(_loader(batch_size=8, shuffle=True, seed=3), 0)
    assert all(torch.equal(p[0], q[0]) for p, q in zip(a0, again, strict=True))
    assert not all(torch.equal(p[0], q[0]) for p, q in zip(a0, a1, strict=True))
    plain = _epoch(_loader(flip=False, batch_size=8, shuffle=True, seed=3), 0)
    mirrored = [
        torch.equal(x, torch.flip(p, dims=[-1]))
        for (batch, _), (plain_batch, _) in zip(a0, plain, strict=True)
        for x, p in zip(batch, plain_batch, strict=True)
        if not torch.equal(x, p)
    ]
    assert mirrored and all(mirrored)  # each image is either itself or its mirror image
    assert 0 < len(mirrored) < 20  # and only some are mirrored


def test_workers_give_the_same_batches_epoch_after_epoch():
    serial = _loader(batch_size=8, shuffle=True, seed=1)
    parallel = _loader(batch_size=8, shuffle=True, seed=1, num_workers=2)
    assert parallel.persistent_workers  # kept between epochs: each batch names its epoch
    for epoch in (2, 3):  # the second epoch reuses the workers of the first
        a, b = _epoch(serial, epoch), _epoch(parallel, epoch)
        assert all(torch.equal(p[0], q[0]) for p, q in zip(a, b, strict=True))
    assert not all(
        torch.equal(p[0], q[0]) for p, q in zip(_epoch(serial, 2), _epoch(serial, 3), strict=True)
    )


def test_to_model_input_normalises_grey_to_three_channels():
    x = torch.full((2, 1, 4, 4), 255, dtype=torch.uint8)
    out = to_model_input(x)
    assert out.shape == (2, 3, 4, 4)
    expected = [(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)]
    assert torch.allclose(out[0, :, 0, 0], torch.tensor(expected))


def test_resume_skips_the_batches_already_seen():
    loader = _loader(batch_size=4, shuffle=True, seed=5)
    full = _epoch(loader, 3)
    rest = _epoch(loader, 3, skip=2)
    assert len(rest) == len(full) - 2
    assert all(torch.equal(p[0], q[0]) for p, q in zip(full[2:], rest, strict=True))


def test_ranks_take_disjoint_shards_of_one_permutation():
    shards = []
    for rank in range(2):
        loader = _loader(flip=False, batch_size=3, shuffle=True, seed=2, rank=rank, world_size=2)
        set_loader_epoch(loader, 0)
        shards.append([int(i) for _, batch in loader.sampler for i in batch])
    assert len(shards[0]) == len(shards[1])  # equal step counts on every rank
    assert not set(shards[0]) & set(shards[1])
