"""When a run of ours may stand beside a number of the papers.

A run is *comparable* only if it ran the papers' recipe to the end -- every planned epoch, the
authors' recipe values (:mod:`cxrlib.core.recipe`), the paper-size model from scratch with the
loss on each head -- on the real data with the papers' split, and no image was dropped.
Everything else -- phantom data, another split, a changed recipe, a run cut short -- is listed
with its reasons and never gets a difference to a published value.

Precision and the micro-batch batch norm saw are not reasons (the authors trained in fp32, one
GPU, batch 32 -- their configs have no fp16 key), but every comparison shows them beside the
numbers (:func:`computation_note`).
"""

from __future__ import annotations

from cxrlib.core.recipe import RECIPE
from cxrlib.train.layout import INIT_NAMES
from cxrlib.train.results import RunResult

#: What the authors computed with, for the sentence under every comparison.
AUTHORS_COMPUTATION = "the authors trained in fp32 on one GPU, batch 32 (their configs, train.py)"


def not_comparable_because(run: RunResult | None) -> str | None:
    """None when ``run`` may stand beside a published number; else the reasons it may not."""
    if run is None:
        return "not run"
    if not run.finished or run.settings is None:
        return "not finished"
    flat, data = run.settings["config"], run.settings.get("data", {})
    reasons = []
    if data.get("source", flat.get("data_source")) != "real":
        reasons.append("phantom data")
    if flat.get("split") != "paper":
        reasons.append(f"{flat.get('split')} split (the papers used their split files)")
    if run.metrics.get("dropped_missing", 0):
        reasons.append("images missing on disk were dropped")
    if flat.get("model_size") != "paper":
        reasons.append(f"{flat.get('model_size')} model size")
    if flat.get("pretrained", "none") != "none":
        reasons.append(
            f"{INIT_NAMES[flat['pretrained']]} initialisation (both papers train from scratch)"
        )
    if flat.get("loss_heads") != "each":
        reasons.append(f"loss on {flat.get('loss_heads')} heads")
    differing = [
        f"{name.upper()} {flat.get(name)!r} (paper {value.value!r})"
        for name, value in RECIPE.items()
        if flat.get(name) != value.value
    ]
    if differing:
        reasons.append("recipe differs: " + ", ".join(differing))
    if run.epochs_planned is not None and run.epochs_run < run.epochs_planned:
        reasons.append(f"ran {run.epochs_run} of {run.epochs_planned} epochs")
    return "; ".join(reasons) or None


def comparable(run: RunResult | None) -> bool:
    """True when every seed of ``run`` may stand beside a published number."""
    return run is not None and all(not_comparable_because(r) is None for r in run.seeds)


def reason_of(run: RunResult | None) -> str | None:
    """The first reason any seed of ``run`` is not comparable, or None."""
    if run is None:
        return "not run"
    return next((r for r in map(not_comparable_because, run.seeds) if r), None)


def computation(run: RunResult) -> str:
    """How ``run`` computed, in a few words: precision and the micro-batch batch norm saw."""
    runtime = (run.settings or {}).get("runtime") or (run.metrics or {}).get("runtime") or {}
    precision = runtime.get("precision", "?")
    micro = runtime.get("micro_batch", "?")
    accum = runtime.get("grad_accum", 1)
    return f"{precision}, micro-batch {micro} (× {accum} accumulated)"


def _grouped(pairs: list[tuple[str, str]]) -> str:
    """``"text (a, b); other (c)"``: models that share a text named once with it."""
    groups: dict[str, list[str]] = {}
    for name, text in pairs:
        groups.setdefault(text, []).append(name)
    if len(groups) == 1 and len(pairs) > 1:
        return f"{next(iter(groups))} (all {len(pairs)} models)"
    return "; ".join(f"{text} ({', '.join(names)})" for text, names in groups.items())


def computation_note(runs: dict[str, RunResult]) -> str:
    """One line per table: how the models' runs computed, beside how the authors did."""
    pairs = [(name, computation(run)) for name, run in runs.items() if run.finished]
    return f"Computed in {_grouped(pairs)}. For comparison, {AUTHORS_COMPUTATION}." if pairs else ""


def reasons_note(runs: dict[str, RunResult]) -> str:
    """Once per model, why it does not stand beside the papers' numbers (no Δ then)."""
    pairs = [(name, reason_of(run)) for name, run in runs.items() if reason_of(run)]
    if not pairs:
        return ""
    return f"Not comparable with the papers, so no Δ is given: {_grouped(pairs)}."
