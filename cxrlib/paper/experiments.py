"""The experiments the papers' tables need: which models to train, with how many seeds, and
from which initial weights -- the policy behind notebooks 03 to 07.

:func:`train_models` trains (or resumes, or reads back) each model's runs, every model's first
seed before any second one, so that a session that ends early has them all; when the session's
time limit held some back, it says so once (:func:`cxrlib.core.clock.announce_pause`).
:func:`imagenet_models` is notebook 06's choice of models to train again from ImageNet weights.
"""

from __future__ import annotations

from collections.abc import Collection

from torch import nn

from cxrlib.core.clock import announce_pause
from cxrlib.core.config import Config, ConfigError
from cxrlib.data.datasets import get_dataset
from cxrlib.models.registry import check_model
from cxrlib.paper.items import IMAGENET_MODELS, seeded_models
from cxrlib.train.layout import RunFolder
from cxrlib.train.model import load_run_model
from cxrlib.train.parallel import train_side_by_side
from cxrlib.train.results import RunResult, read_run
from cxrlib.train.run import train_run


def train_models(
    config: Config,
    dataset: str,
    names: list[str],
    *,
    overrides: dict | None = None,
    restart: Collection[str] = (),
    **kwargs,
) -> dict[str, RunResult]:
    """:func:`~cxrlib.train.run.train_run` for each registered model in ``names`` (finished
    runs are read back), with ``overrides`` of the configuration (e.g. ``{"pretrained":
    "imagenet"}``). A model of ``SEED_MODELS`` (:func:`cxrlib.paper.items.seeded_models`)
    trains ``SEEDS`` times (seeds SEED, SEED+1, ...): the first seed's run is returned, the
    others in its ``seed_runs``. The models named in ``restart`` (a notebook's ``RESTART``) are
    started over, every seed: their files are discarded first. On a CPU with threads to
    spare the runs train side by side, one process each, and are then read back
    (:func:`~cxrlib.train.parallel.train_side_by_side`).

    When the session's time limit paused or held back a run, says so: in a notebook the later
    cells then only print "paused -- run again to resume", and the next run resumes.
    """
    (runs,) = train_model_sets(
        config, [(dataset, names)], overrides=overrides, restart=restart, **kwargs
    )
    return runs


def train_model_sets(
    config: Config,
    sets: list[tuple[str, list[str]]],
    *,
    overrides: dict | None = None,
    restart: Collection[str] = (),
    **kwargs,
) -> list[dict[str, RunResult]]:
    """:func:`train_models` for each ``(dataset, names)`` of ``sets``, with one set of
    side-by-side processes for all of their runs (a notebook's studies on both datasets keep
    both processes busy to the end)."""
    plans = [_plan(config, dataset, names, overrides) for dataset, names in sets]
    jobs = [(c, dataset, name in restart) for dataset, plan in plans for (name, _), c in plan]
    read_back = train_side_by_side(jobs, **kwargs) > 1  # trained already: read back
    out = []
    for dataset, plan in plans:
        configs = dict(plan)

        def result(name: str, i: int, dataset=dataset, configs=configs) -> RunResult:
            if read_back:
                return read_run(RunFolder.of(configs[name, i], get_dataset(dataset).name).path)
            return train_run(configs[name, i], dataset, restart=name in restart, **kwargs)

        names = [name for (name, i) in configs if i == 0]
        runs = {name: result(name, 0) for name in names}
        for name in names:
            seeds = sorted(i for (other, i) in configs if other == name and i > 0)
            runs[name].seed_runs = [result(name, i) for i in seeds]
        _announce_unfinished(config, dataset, runs)
        out.append(runs)
    return out


def _plan(
    config: Config, dataset: str, names: list[str], overrides: dict | None
) -> tuple[str, list[tuple[tuple[str, int], Config]]]:
    """Each run of ``names`` on ``dataset`` as ``((model, seed index), config)``, every
    model's first seed before any second one; every name checked before anything starts."""
    for name in names:
        check_model(name)
    bases = {name: config.override(model=name, **(overrides or {})) for name in names}
    seeded = set(seeded_models(config.train.seed_models))
    count = {name: config.train.seeds if name in seeded else 1 for name in names}
    return dataset, [
        ((name, i), bases[name].override(seed=bases[name].train.seed + i))
        for i in range(max(count.values(), default=1))
        for name in names
        if i < count[name]
    ]


def _announce_unfinished(config: Config, dataset: str, runs: dict[str, RunResult]) -> None:
    waiting = {name: run for name, run in runs.items() if not all(r.finished for r in run.seeds)}
    if waiting:
        announce_pause(
            f"{len(waiting)} of {len(runs)} {get_dataset(dataset).name} model(s) unfinished: "
            + "; ".join(f"{name} ({progress(run)})" for name, run in waiting.items())
            + f". Progress of every run: python -m cxrlib status --runs-dir {config.workspace.runs}"
        )


def progress(run: RunResult) -> str:
    """How far each seed of a model got, e.g. ``seed 0: finished; seed 1: 3 of 5 epochs``."""
    parts = []
    for seed_run in run.seeds:
        seed = seed_run.key.seed
        planned = seed_run.epochs_planned
        if seed_run.finished:
            state = "finished"
        elif planned is None:
            state = "not started"
        else:
            state = f"{seed_run.epochs_run} of {planned} epochs"
        parts.append(f"seed {seed}: {state}")
    return "; ".join(parts)


def imagenet_models(config: Config, requested: list[str] | None, scratch: list[str]) -> list[str]:
    """The models notebook 06 trains again from ImageNet weights (a comparison neither paper
    makes): ``requested``, or by default those of :data:`cxrlib.paper.items.IMAGENET_MODELS`
    among ``scratch`` (the models trained from scratch beside them) -- none where the models
    have no ImageNet weights (the smoke profile's micro size; said in a message). A requested
    model must be among ``scratch`` and have ImageNet weights (else :class:`ConfigError`)."""
    if requested is None and config.model.model_size != "paper":
        print(
            f"ImageNet initialisation skipped: MODEL_SIZE {config.model.model_size!r} has no "
            f"ImageNet weights (the paper profile trains {', '.join(IMAGENET_MODELS)} from them)"
        )
        return []
    if requested is None:  # the default: those of the models trained here
        return [n for n in IMAGENET_MODELS if n in scratch]
    names = list(requested)
    if names:
        config.override(pretrained="imagenet")  # validated: raises for micro models
    missing = [n for n in names if n not in scratch]
    if missing:
        raise ConfigError(
            f"IMAGENET_MODELS {missing} are not among MODELS: the comparison needs their "
            f"runs from scratch; add them to MODELS (or set MODELS = None)"
        )
    return names


def cam_models(runs: dict, branches: dict[str, list[str]]) -> dict[str, tuple[nn.Module, str]]:
    """``{"<model> (<branch>)": (model, branch)}`` for each finished run and requested branch."""
    out = {}
    for name, run in runs.items():
        model = load_run_model(run.folder)[0]
        for branch in branches[name]:
            out[f"{name} ({branch})"] = (model, branch)
    return out
