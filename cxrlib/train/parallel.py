"""Several runs side by side on a CPU: one process per run, one thread each.

A small model on a CPU uses a second thread poorly (the smoke profile's micro models on
64-pixel images give each thread little work), while two single-threaded processes each keep a
core busy (``benchmarks/smoke_chain.py`` times the chain; with ``OMP_NUM_THREADS=1`` it trains
in turn). :func:`train_side_by_side` trains a list of runs that way before the caller reads
them back one by one; what a run computes is the same as in one process (its folder,
checkpoints, resume and records are those of :func:`~cxrlib.train.run.train_run`), to the
last bits that a different thread count changes in a CPU's floating-point sums.

It never runs on a GPU (one process owns it), under torchrun, or with a single thread to
spend (``OMP_NUM_THREADS=1``, as CI's side-by-side suite sets): there the caller trains the
runs in order as before.
"""

from __future__ import annotations

import multiprocessing
import os
import time

import torch

from cxrlib.core.clock import deadline
from cxrlib.core.config import Config
from cxrlib.data.datasets import get_dataset
from cxrlib.data.prepare import prepare_dataset
from cxrlib.train.layout import RunFolder
from cxrlib.train.run import train_run


def side_by_side_workers(jobs: int) -> int:
    """How many processes :func:`train_side_by_side` would use for ``jobs`` runs here: the
    threads torch may use on this CPU (one per process), at most one per run; 1 where a GPU
    is present or torchrun started this process."""
    if torch.cuda.is_available() or "RANK" in os.environ:
        return 1
    return max(1, min(jobs, torch.get_num_threads()))


def _one_thread() -> None:
    torch.set_num_threads(1)


def _train_one(job: tuple[Config, str, bool, float | None, dict]) -> str:
    """One run in a worker process; returns the line the parent prints for it. The session's
    deadline (unix time) becomes the minutes left when the run starts."""
    config, dataset, restart, until, kwargs = job
    minutes = None if until is None else max(0.0, (until - time.time()) / 60)
    kwargs = {**kwargs, "progress": False}  # a worker's progress line would go nowhere
    result = train_run(config, dataset, restart=restart, time_limit_minutes=minutes, **kwargs)
    state = "finished" if result.finished else f"paused after {result.epochs_run} epochs"
    return f"{result.run.label}: {state}"


def train_side_by_side(
    jobs: list[tuple[Config, str, bool]],
    *,
    time_limit_minutes: float | None = None,
    **kwargs,
) -> int:
    """Train each ``(config, dataset, restart)`` of ``jobs`` in :func:`side_by_side_workers`
    processes, in the order given (finished runs are skipped). Returns the number of
    processes used; 1 means nothing was done here and the caller trains the runs itself.
    Each dataset is prepared first, in this process, so that no two processes build its
    cache. A failed run stops the others (they resume next time) and its error is raised
    here."""
    todo = [(c, d, r) for c, d, r in jobs if r or not RunFolder.of(c, get_dataset(d).name).finished]
    workers = side_by_side_workers(len(todo))
    if workers < 2:
        return 1
    for dataset in dict.fromkeys(d for _, d, _ in todo):
        prepare_dataset(next(c for c, d, _ in todo if d == dataset), dataset, progress=False)
    until = deadline(time_limit_minutes)
    print(f"training {len(todo)} runs side by side in {workers} processes (one thread each)")
    context = multiprocessing.get_context("spawn")  # no fork of a process holding torch threads
    with context.Pool(workers, initializer=_one_thread) as pool:
        tasks = [(c, d, r, until, kwargs) for c, d, r in todo]
        for done in pool.imap_unordered(_train_one, tasks):
            print(f"  {done}", flush=True)
    return workers
