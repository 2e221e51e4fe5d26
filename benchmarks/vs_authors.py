"""Benchmark: this kit's CTransCNN training step against the authors' own code, side by side in
one process (CPU).

Run (from the checkout's root)::

    git clone https://github.com/wuliwuxin/CTransCNN /path/to/CTransCNN
    pip install --target /path/to/mmcv-site mmcv==1.7.2 addict yapf   # mmcv 1.x, no ops
    PYTHONPATH=/path/to/mmcv-site python benchmarks/vs_authors.py \\
        --authors-code /path/to/CTransCNN [--threads 1 2] [--rounds 7] [--profile]

The authors (X. Wu et al., CTransCNN, Knowledge-Based Systems 281:111030, 2023) released their
model on mmcv 1.x/mmcls. This script imports *their files* from ``--authors-code``, unmodified:
``model/models/backbones/CTransCNN.py`` and ``my_transformer.py`` (the network),
``model/models/utils/attention.py`` (MMAEF's two attentions), ``model/models/heads/
my_hybird_head.py`` (the two heads and their loss rule) and ``model/models/losses/
BCE_ASL_Sigmoid_Focal.py`` (the loss), with the real mmcv 1.x for their bricks (FFN, DropPath,
norm and activation builders) and mmcv's optimiser constructor with their config's
``paramwise_cfg``. Only mmcls's plumbing is replaced here by a few lines (registries, a logger,
``to_2tuple``, the ``BaseBackbone`` and ``ClsHead`` base classes, ``weight_reduce_loss``): none
of it runs in the step's arithmetic except ``weight_reduce_loss``'s ``sum / avg_factor``.

Then, in the same process:

1. both networks get the same weights (the authors' initialisation, renamed into ours by
   :func:`cxrlib.models.reference.convert_reference_checkpoint`), and the script checks that
   they compute the same thing: the largest difference of each head's logits (eval mode) and
   of the loss on one batch;
2. for each ``--threads`` count, each round times one training step of each (interleaved,
   after warm-up steps): batch 8 at 224 px, 14 classes, forward, the papers' loss on both heads,
   backward, AdamW. The authors' step is what their ``train_step`` + mmcv's ``OptimizerHook``
   do (``loss = losses['loss'].mean()``, ``zero_grad``, ``backward``, ``step``) in fp32, as their
   config trains, on an input their data pipeline has already normalised. The kit's is its
   training loop's own arithmetic (uint8 images normalised in the step, autocast to the run's
   precision, the recipe's fused AdamW), twice: in fp32, and at the paper profile's
   ``PRECISION=auto``, which is bf16 on a CPU with AVX-512 BF16 or AMX and fp32 elsewhere;
3. ``--profile``: ``torch.profiler`` over steps of each, top operators by self CPU time, and the
   number of operator calls per step (each one a kernel launch on a GPU).

Results: ``benchmarks/results/vs_authors.json`` (medians, every round, the check's differences,
the sha256 of each authors' file read, machine, torch, date, commit).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import logging
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

#: The authors' files this benchmark imports, relative to their repository's root.
AUTHORS_FILES = (
    "model/models/backbones/CTransCNN.py",
    "model/models/backbones/my_transformer.py",
    "model/models/utils/attention.py",
    "model/models/heads/my_hybird_head.py",
    "model/models/losses/BCE_ASL_Sigmoid_Focal.py",
)

#: mmcls plumbing their files import, written here (none of it is arithmetic of the step except
#: ``weight_reduce_loss``, which is mmcls's: ``sum / avg_factor`` for ``reduction='mean'``).
_SHIMS = {
    "model/__init__.py": "",
    "model/utils.py": """
        import logging
        def get_root_logger(log_file=None, log_level=logging.INFO):
            return logging.getLogger("authors")
    """,
    "model/models/__init__.py": "",
    "model/models/builder.py": """
        from mmcv.utils import Registry
        BACKBONES = Registry("backbone")
        HEADS = Registry("head")
        LOSSES = Registry("loss")
        ATTENTION = Registry("attention")
        def build_loss(cfg):
            return LOSSES.build(cfg)
    """,
    "model/models/utils/__init__.py": """
        from mmcv.utils import to_2tuple
        from .attention import MultiheadAttention, MSS_block
        def resize_pos_embed(*args, **kwargs):
            raise NotImplementedError("not used by CTransCNN")
    """,
    "model/models/utils/helpers.py": "from mmcv.utils import to_2tuple\n",
    "model/models/backbones/__init__.py": "",
    "model/models/backbones/base_backbone.py": """
        from mmcv.runner import BaseModule
        class BaseBackbone(BaseModule):
            def __init__(self, init_cfg=None):
                super().__init__(init_cfg)
    """,
    "model/models/heads/__init__.py": "",
    "model/models/heads/cls_head.py": """
        from mmcv.runner import BaseModule
        from ..builder import build_loss
        class ClsHead(BaseModule):
            def __init__(self, loss=dict(type="CrossEntropyLoss", loss_weight=1.0),
                         topk=(1,), cal_acc=False, init_cfg=None):
                super().__init__(init_cfg=init_cfg)
                self.topk = (topk,) if isinstance(topk, int) else topk
                self.compute_loss = build_loss(loss)
                self.cal_acc = cal_acc
    """,
    "model/models/losses/__init__.py": "",
    "model/models/losses/utils.py": """
        import torch.nn.functional as F
        def convert_to_one_hot(targets, classes):
            return F.one_hot(targets.flatten(), classes)
        def weight_reduce_loss(loss, weight=None, reduction="mean", avg_factor=None):
            if weight is not None:
                loss = loss * weight
            if avg_factor is None:
                return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]
            if reduction == "mean":
                return loss.sum() / avg_factor
            if reduction != "none":
                raise ValueError('avg_factor can not be used with reduction="sum"')
            return loss
    """,
}

#: From the authors' ``configs/NIH_ChestX-ray14_CTransCNN.py`` (model, optimizer).
AUTHORS_BACKBONE = dict(arch="tiny", patch_size=16, drop_path_rate=0.1)
AUTHORS_HEAD = dict(
    num_classes=14,
    in_channels=[256, 384],
    init_cfg=None,
    loss=dict(type="BCE_ASL_Focal", reduction="mean", loss_weight=1),
    cal_acc=False,
)
AUTHORS_OPTIMIZER = dict(
    type="AdamW",
    lr=1e-3,
    weight_decay=0.05,
    eps=1e-8,
    betas=(0.5, 0.999),
    paramwise_cfg=dict(
        norm_decay_mult=0.0, bias_decay_mult=0.0, custom_keys={".cls_token": dict(decay_mult=0.0)}
    ),
)


def authors_package(checkout: Path, into: Path) -> dict[str, str]:
    """Lay out ``model/`` in ``into``: the authors' files copied byte for byte from
    ``checkout`` and the shims; returns each authors' file's sha256."""
    digests = {}
    for rel, text in _SHIMS.items():
        path = into / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    for rel in AUTHORS_FILES:
        source = checkout / rel
        if not source.is_file():
            raise SystemExit(
                f"{source} not found: --authors-code must be a clone of "
                f"https://github.com/wuliwuxin/CTransCNN"
            )
        data = source.read_bytes()
        (into / rel).write_bytes(data)
        digests[rel] = hashlib.sha256(data).hexdigest()
    return digests


def build_authors(into: Path):
    """The authors' backbone and head (their classes, their config) and mmcv's optimiser."""
    try:
        from mmcv.runner import build_optimizer
    except ImportError as error:
        raise SystemExit(
            f"mmcv 1.x is needed ({error}): pip install --target DIR mmcv==1.7.2 addict yapf, "
            "then PYTHONPATH=DIR"
        ) from error
    sys.path.insert(0, str(into))
    backbone_mod = importlib.import_module("model.models.backbones.CTransCNN")
    importlib.import_module("model.models.losses.BCE_ASL_Sigmoid_Focal")  # registers the loss
    head_mod = importlib.import_module("model.models.heads.my_hybird_head")
    torch.manual_seed(0)
    logging.disable(logging.INFO)  # mmcv logs every parameter's initialisation
    try:
        backbone = backbone_mod.my_hybird_CTransCNN(**AUTHORS_BACKBONE)
        backbone.init_weights()
        head = head_mod.My_Hybird_Head(**AUTHORS_HEAD)
        head.init_weights()
    finally:
        logging.disable(logging.NOTSET)
    model = torch.nn.ModuleDict({"backbone": backbone, "head": head})
    optimizer = build_optimizer(model, dict(AUTHORS_OPTIMIZER))
    return model, optimizer


def build_kit(authors_model, precision: str):
    """The kit's model with the authors' weights, its runtime (``precision``: ``fp32``, or
    ``auto``, the paper profile's default) and its optimiser."""
    from cxrlib.core.config import load_config
    from cxrlib.models import TrainingHeads, create_model
    from cxrlib.models.reference import convert_reference_checkpoint
    from cxrlib.train.optim import build_optimizer
    from cxrlib.train.runtime import setup_runtime

    config = load_config("paper", data_source="phantom", precision=precision)
    runtime = setup_runtime(config)
    model = create_model("ctranscnn_tiny", num_classes=14)
    model.load_state_dict(convert_reference_checkpoint(authors_model.state_dict()))
    memory = torch.channels_last if runtime.channels_last else torch.contiguous_format
    model.to(runtime.device, memory_format=memory).train()
    return model, TrainingHeads(model), build_optimizer(model, config), runtime


def same_computation(authors, kit, images, target) -> dict[str, float]:
    """Largest differences between the two networks, same weights, same input (eval mode)."""
    from cxrlib.data.loader import to_model_input
    from cxrlib.models import forward_heads
    from cxrlib.train.losses import multi_head_loss

    authors.eval()
    kit.eval()
    x = to_model_input(images)
    with torch.no_grad():
        conv_feat, token_feat = authors["backbone"](x)[-1]
        head = authors["head"]
        theirs = [head.conv_cls_head(conv_feat), head.trans_cls_head(token_feat)]
        their_loss = authors["head"].loss(theirs, target)["loss"].mean()
        ours = forward_heads(kit, x).heads()
        our_loss = multi_head_loss(ours, target)
    authors.train()
    kit.train()
    return {
        "conv_head_max_abs_diff": float((theirs[0] - ours[0]).abs().max()),
        "token_head_max_abs_diff": float((theirs[1] - ours[1]).abs().max()),
        "loss": float(their_loss),
        "loss_abs_diff": float((their_loss - our_loss).abs()),
    }


def authors_step(authors, optimizer, images, target):
    """What the authors' ``train_step`` and mmcv's ``OptimizerHook`` do for one batch."""
    from cxrlib.data.loader import to_model_input

    normalised = to_model_input(images)  # the authors' pipeline normalises in its workers

    def step() -> None:
        losses = authors["head"].forward_train(authors["backbone"](normalised), target)
        loss = losses["loss"].mean()  # mmcls ImageClassifier._parse_losses
        optimizer.zero_grad()  # mmcv OptimizerHook.after_train_iter
        loss.backward()
        optimizer.step()

    return step


def kit_step(trainable, optimizer, runtime, images, target):
    """The kit's training loop's arithmetic for one batch (``TrainingLoop._forward_backward``
    with one micro-batch and its optimiser step)."""
    from cxrlib.data.loader import to_model_input
    from cxrlib.train.losses import training_loss

    def step() -> None:
        x = to_model_input(images, runtime.device, runtime.channels_last)
        with runtime.autocast():
            output = trainable(x)
        loss = training_loss(output, target, "each")
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def profile(step, steps_: int = 2, top: int = 15) -> dict:
    """Top operators by self CPU time over ``steps_`` steps, and operator calls per step."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    step()
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps_):
            step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    rows = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return {
        "operator_calls_per_step": sum(e.count for e in events) / steps_,
        "self_cpu_ms_per_step": total / 1e3 / steps_,
        "top": [
            {
                "op": e.key,
                "self_cpu_ms_per_step": e.self_cpu_time_total / 1e3 / steps_,
                "share": e.self_cpu_time_total / total,
                "calls_per_step": e.count / steps_,
            }
            for e in rows
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors-code", required=True, type=Path, help="clone of their repo")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="torch.profiler, top operators")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from benchmarks.report import provenance, write_result
    from cxrlib.train.runtime import cpu_native_bf16

    before = provenance()  # the machine's load before the benchmark, not its own

    with tempfile.TemporaryDirectory() as tmp:
        digests = authors_package(args.authors_code.resolve(), Path(tmp))
        authors, authors_opt = build_authors(Path(tmp))
        generator = torch.Generator().manual_seed(0)
        images = torch.randint(
            0, 256, (args.batch_size, 1, 224, 224), dtype=torch.uint8, generator=generator
        )
        target = (torch.rand(args.batch_size, 14, generator=generator) < 0.2).float()
        closures = {"authors": authors_step(authors, authors_opt, images, target)}
        runtimes, check = {}, None
        for precision in ("fp32", "auto"):
            kit, trainable, kit_opt, runtime = build_kit(authors, precision)
            name = f"kit {precision}" if precision == "fp32" else f"kit auto ({runtime.precision})"
            runtimes[name] = runtime.record()
            if check is None:
                check = same_computation(authors, kit, images, target)
                print("same weights, same input (eval, fp32):",
                      ", ".join(f"{k} {v:.2e}" for k, v in check.items()))  # fmt: skip
            closures[name] = kit_step(trainable, kit_opt, runtime, images, target)

        by_threads = []
        for threads in args.threads:
            torch.set_num_threads(threads)
            for step in closures.values():
                for _ in range(args.warmup):
                    step()
            times: dict[str, list[float]] = {name: [] for name in closures}
            for _ in range(args.rounds):
                for name, step in closures.items():
                    start = time.perf_counter()
                    step()
                    times[name].append(time.perf_counter() - start)
            medians = {name: statistics.median(values) for name, values in times.items()}
            speedups = {}
            for name in closures:
                if name != "authors":
                    pairs = zip(times["authors"], times[name], strict=True)
                    ratios = sorted(a / k for a, k in pairs)
                    speedups[name] = {
                        "median": medians["authors"] / medians[name],
                        "per_round_min_max": [ratios[0], ratios[-1]],
                    }
            row = {
                "threads": threads,
                "median_s_per_step": medians,
                "seconds": times,
                "speedup_over_authors": speedups,
            }
            if args.profile:
                row["profile"] = {name: profile(step) for name, step in closures.items()}
            by_threads.append(row)
            print(f"{threads} thread(s): authors {medians['authors']:.3f} s/step")
            for name, ratio in speedups.items():
                low, high = ratio["per_round_min_max"]
                print(
                    f"  {name:20} {medians[name]:.3f} s/step  {ratio['median']:.2f}× "
                    f"(rounds {low:.2f}-{high:.2f})"
                )
            for name, prof in row.get("profile", {}).items():
                print(f"  {name}: {prof['operator_calls_per_step']:.0f} operator calls per step")
                for op in prof["top"][:10]:
                    print(
                        f"    {op['op'][:40]:40} {op['self_cpu_ms_per_step']:8.1f} ms "
                        f"{100 * op['share']:5.1f}% {op['calls_per_step']:6.0f} calls"
                    )

    summary = [
        {"figure": "same weights, same input: largest logit difference (fp32, eval)",
         "value": f"{max(check['conv_head_max_abs_diff'], check['token_head_max_abs_diff']):.1e}"},
    ]  # fmt: skip
    for row in by_threads:
        authors_s = row["median_s_per_step"]["authors"]
        summary.append({"figure": f"authors' step, {row['threads']} thread(s)",
                        "value": f"{authors_s:.2f} s"})  # fmt: skip
        for name, ratio in row["speedup_over_authors"].items():
            low, high = ratio["per_round_min_max"]
            summary.append({
                "figure": f"{name} step, {row['threads']} thread(s)",
                "value": f"{row['median_s_per_step'][name]:.2f} s: {ratio['median']:.2f}× the "
                f"authors' (rounds {low:.2f}–{high:.2f}×)",
            })  # fmt: skip
    path = write_result(
        "vs_authors",
        {
            **before,
            "benchmark": "vs_authors",
            "mmcv": importlib.import_module("mmcv").__version__,
            "model": "ctranscnn_tiny (authors: my_hybird_CTransCNN, arch tiny)",
            "batch_size": args.batch_size,
            "image_size": 224,
            "rounds": args.rounds,
            "kit_runtimes": runtimes,
            "cpu_native_bf16": cpu_native_bf16(),
            "authors_files_sha256": digests,
            "same_computation": check,
            "by_threads": by_threads,
            "summary": summary,
        },
        args.out,
    )
    print(f"written: {path}")


if __name__ == "__main__":
    main()
