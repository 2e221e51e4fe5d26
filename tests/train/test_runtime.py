"""The global batch, precision choice and the fixed patient split of SPLIT_SEED."""

from __future__ import annotations

import warnings

import pytest
import torch

from cxrlib.core.config import ConfigError, load_config
from cxrlib.train.runtime import cpu_runtime, micro_batch_size, resolve_precision


def test_batch_size_is_the_global_batch_over_processes_and_accumulation():
    assert micro_batch_size(32, world_size=1, grad_accum=1) == 32
    assert micro_batch_size(32, world_size=4, grad_accum=1) == 8  # 4 GPUs x 8
    assert micro_batch_size(32, world_size=2, grad_accum=2) == 8  # 2 GPUs x 2 steps x 8
    with pytest.raises(ConfigError, match=r"divisible by the number of processes \(3\)"):
        micro_batch_size(32, world_size=3, grad_accum=1)


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "expected"),
    [(False, False, "fp32"), (True, False, "bf16"), (False, True, "bf16")],
)
def test_precision_auto_on_a_cpu_is_bf16_only_with_bf16_instructions(
    monkeypatch, avx512_bf16, amx, expected
):
    """Emulated bf16 is slower than fp32 on a CPU: auto takes it only where it is native."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    assert resolve_precision("auto", torch.device("cpu")) == expected
    assert resolve_precision("fp16", torch.device("cpu")) == "fp16"
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"


def test_a_torch_without_the_cpu_probe_counts_as_no_native_bf16(monkeypatch):
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.delattr(torch.cpu, name, raising=False)
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"


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


def test_a_t4_gets_fp16_with_a_scaler_and_an_ampere_gpu_bf16(monkeypatch):
    """``torch.cuda.is_bf16_supported()`` says yes on a T4 (emulated): the capability decides."""
    cuda = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *_: (7, 5))  # T4
    assert resolve_precision("auto", cuda) == "fp16"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *_: (8, 0))  # A100
    assert resolve_precision("auto", cuda) == "bf16"


def test_accumulation_grows_until_a_micro_batch_fits_and_the_global_batch_stays():
    from cxrlib.train.runtime import Runtime, fit_grad_accum

    tried = []

    def step(micro: int) -> int:  # stands for a GPU on which 8 images fit
        tried.append(micro)
        if micro > 8:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return micro * 2**20

    runtime = fit_grad_accum(Runtime(torch.device("cpu"), micro_batch=32, grad_accum=1), step)
    assert (runtime.grad_accum, runtime.micro_batch, runtime.global_batch) == (4, 8, 32)
    assert tried == [32, 16, 8]
    with pytest.raises(ConfigError, match="one image per micro-batch does not fit"):
        fit_grad_accum(
            Runtime(torch.device("cpu"), micro_batch=4),
            lambda _: (_ for _ in ()).throw(torch.cuda.OutOfMemoryError()),
        )


def test_defaults_choose_for_the_machine():
    from cxrlib.train.runtime import cpu_native_bf16, setup_runtime

    config = load_config("paper")
    assert config.train.grad_accum is None and config.train.num_workers is None
    runtime = setup_runtime(config)  # this CPU: no probe, no workers
    precision = "bf16" if cpu_native_bf16() else "fp32"
    assert (runtime.grad_accum, runtime.num_workers, runtime.precision) == (1, 0, precision)
    # the paper asks for NHWC; a CPU runs NCHW (torch 2.14.1's NHWC backward of the IB block
    # aborted a CheXNet run with heap corruption)
    assert config.train.channels_last and not runtime.channels_last


def test_an_fp16_overflow_is_skipped_by_the_scaler_and_counted():
    """A gradient that overflows: the scaler skips the step (the weights stay), halves its
    scale, and the run's count of skipped steps says so -- read with the loss, one sync."""
    import torch

    from cxrlib.train.state import LossMeter, TrainState

    layer = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    state = TrainState()
    meter = LossMeter(state, torch.device("cpu"))
    weights = layer.weight.detach().clone()
    for value in (1e35, 1.0):  # a loss whose scaled gradient overflows, then a good one
        loss = layer(torch.ones(1, 3)).sum() * value
        meter.add(loss, 0)  # the loss itself is finite: the step is skipped, the run goes on
        scaler.scale(loss).backward()
        meter.scaled_step(scaler, optimizer)
        optimizer.zero_grad()
        if value != 1.0:
            assert torch.equal(layer.weight, weights)  # skipped: unchanged
    assert meter.read(state, cpu_runtime()) is None
    assert state.overflow_steps == 1 and scaler.get_scale() == 2.0**15
    assert not torch.equal(layer.weight, weights)  # the good step was taken
