"""The global batch, precision choice and the fixed patient split of SPLIT_SEED."""

from __future__ import annotations

import warnings

import pytest
import torch

from cxrlib.config import ConfigError, load_config
from cxrlib.runtime import micro_batch_size, resolve_precision


def test_batch_size_is_the_global_batch_over_processes_and_accumulation():
    assert micro_batch_size(32, world_size=1, grad_accum=1) == 32
    assert micro_batch_size(32, world_size=4, grad_accum=1) == 8  # 4 GPUs x 8
    assert micro_batch_size(32, world_size=2, grad_accum=2) == 8  # 2 GPUs x 2 steps x 8
    with pytest.raises(ConfigError, match=r"divisible by the number of processes \(3\)"):
        micro_batch_size(32, world_size=3, grad_accum=1)


def test_precision_auto_is_fp32_on_cpu_and_explicit_values_stay():
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("fp16", torch.device("cpu")) == "fp16"


def test_runs_with_other_seeds_share_the_patient_split(isolated_outputs):
    from cxrlib.data.prepare import prepare_dataset

    warnings.simplefilter("ignore", UserWarning)
    base = {"phantom_images": 120, "split": "patient"}
    first = prepare_dataset(load_config("smoke", seed=0, **base), "cxr11", progress=False)
    other = prepare_dataset(load_config("smoke", seed=5, **base), "cxr11", progress=False)
    assert first.split_hash() == other.split_hash()
    moved = prepare_dataset(
        load_config("smoke", seed=0, split_seed=1, **base), "cxr11", progress=False
    )
    assert moved.split_hash() != first.split_hash()
