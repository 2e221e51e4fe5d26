"""The one module the notebooks import: each step of each notebook is one call here.

A notebook's parameters cell sets ALL-CAPS literals; the cell after it calls :func:`start`
(``s = nb.start(globals())``), which validates every parameter, sets the session's workspace
and time limit and says what the notebook will use. Each later cell is one step that takes
``s``: it computes a table or figure of the papers, writes it under its one name
(:data:`cxrlib.paper.items.OUTPUTS`) and returns it for display. Notebooks 03 and 04 are the
same steps with other parameters (``DATASET``).

Papers: CTransCNN (X. Wu et al., Knowledge-Based Systems 281:111030, 2023) and the hybrid
CheXNet (X. Wu et al., PRCV 2023, LNCS 14437).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from cxrlib.app.envinfo import environment_report
from cxrlib.app.parameters import config_and_extras
from cxrlib.core.config import Config
from cxrlib.core.errors import UserError, as_user_error
from cxrlib.data.datasets import PAPER_DATASETS, get_dataset
from cxrlib.data.prepare import PreparedDataset, prepare_dataset
from cxrlib.data.roots import locate
from cxrlib.evaluate.gradcam import localisation_summary, pick_examples
from cxrlib.models.registry import list_models
from cxrlib.models.summary import ablation_differences as parameter_differences
from cxrlib.models.summary import model_summary as summary_table
from cxrlib.models.summary import switch_table
from cxrlib.paper import beyond, data_summary, figures, items, tables
from cxrlib.paper.costs import expected_hours
from cxrlib.paper.experiments import cam_models as load_cam_models
from cxrlib.paper.experiments import imagenet_models, train_model_sets, train_models
from cxrlib.paper.fidelity import FIXTURE_ENV, fidelity_table
from cxrlib.paper.outputs import data_label, save
from cxrlib.paper.report import write_report


def show_user_errors_as_sentences() -> None:
    """In a notebook, an expected error (:class:`~cxrlib.core.errors.UserError`: a Drive that is
    not mounted, bad data, a mismatched run) is shown as its one sentence, not under a traceback
    of the kit's frames; the cell still fails, so ``Run all`` and papermill stop there."""
    try:
        from IPython import get_ipython  # here: only inside an IPython kernel
    except ImportError:  # pragma: no cover - IPython comes with every Jupyter
        return
    shell = get_ipython()
    if shell is None:
        return

    def one_sentence(shell, etype, value, tb, tb_offset=None):
        # IPython leaves the showing to the handler: the kernel's own way of sending an error
        # (an "error" output papermill and Jupyter show), with the sentence as its traceback
        expected = as_user_error(value)
        if expected is None:  # an OSError that is not a full disk: its traceback, as usual
            stb = shell.InteractiveTB.structured_traceback(etype, value, tb, tb_offset)
        else:
            stb = [f"error: {' '.join(str(expected).split())}"]
        shell._showtraceback(etype, value, stb)
        return stb

    shell.set_custom_exc((UserError, OSError, RuntimeError), one_sentence)


show_user_errors_as_sentences()

#: The notebooks' own parameters (beyond the configuration's and the session's) and their
#: types; ``None`` always means "what the paper items need".
NOTEBOOK_PARAMETERS: dict[str, type] = {
    "DATASET": str,  # 03, 04: cxr11, cxr14, or csv:/path/to/labels.csv
    "DATASETS": list,  # 05-08: None: both papers' datasets
    "MODELS": list,  # 03, 04, 06, 08: None: the models of the notebook's paper items
    "CTRANSCNN_VARIANTS": list,  # 05
    "CHEXNET_VARIANTS": list,  # 05
    "IMAGENET_MODELS": list,  # 06: None: CTransCNN, CheXNet, ResNet-50 where they have weights
    "CAMS": dict,  # 07: model -> branches
    "FIGURE_CLASSES": dict,  # 07: dataset -> classes of the figure's rows
    "EXPECTED_MODELS": list,  # 09: the models the report counts as missing when not run
    # 03-08: models whose runs start over, every seed (their files discarded); a one-off --
    # set it back to None once they have started again, or the next run discards them again
    "RESTART": list,
}


@dataclass
class Session:
    """What one notebook run works with: its configuration (the workspace in it), its own
    parameters and the datasets it covers (name -> how it was given, e.g. ``csv:/path``)."""

    config: Config
    extras: dict[str, Any]
    datasets: dict[str, str]

    @property
    def split(self) -> str:
        return self.config.data.split

    def label(self, dataset: str | None = None) -> str:
        """Where the numbers come from (phantom or real data, the split), for captions."""
        return data_label(self.config, self.datasets[dataset] if dataset else None)

    def wanted(self, name: str, default) -> list:
        """A notebook parameter's value, or ``default`` where it is None."""
        value = self.extras.get(name)
        return list(default if value is None else value)


def start(namespace: Mapping[str, Any], reads: str = "data") -> Session:
    """Validate a notebook's parameters (``globals()``), set its workspace and time limit, say
    what it will use; an unknown or out-of-range parameter is an error naming what is allowed.
    ``reads="results"`` (the report): with ``PROFILE = None`` and no real data here, the profile
    is that of the results the notebook is pointed at."""
    if reads not in ("data", "results"):
        raise ValueError(f"reads must be 'data' or 'results'; got {reads!r}")
    extra = {n: t for n, t in NOTEBOOK_PARAMETERS.items() if n in namespace}
    config, extras = config_and_extras(namespace, profile_from_results=reads == "results", **extra)
    if extras.get("DATASET"):
        datasets = {get_dataset(extras["DATASET"]).name: extras["DATASET"]}
    else:
        given = extras.get("DATASETS") or PAPER_DATASETS
        datasets = {get_dataset(d).name: d for d in given}
    session = Session(config, extras, datasets)
    print(summary(session))
    return session


def _train(s: Session, source: str, models: list[str], **kwargs) -> dict:
    """:func:`~cxrlib.paper.experiments.train_models` with the notebook's ``RESTART``."""
    return train_models(s.config, source, models, restart=s.wanted("RESTART", []), **kwargs)


def _train_sets(s: Session, sets: dict, **kwargs) -> dict:
    """``{key: runs}`` for ``sets`` of ``{key: (source, models)}``, every run of them side by
    side where the CPU allows (:func:`~cxrlib.paper.experiments.train_model_sets`)."""
    runs = train_model_sets(
        s.config, list(sets.values()), restart=s.wanted("RESTART", []), **kwargs
    )
    return dict(zip(sets, runs, strict=True))


def summary(s: Session) -> str:
    """A few lines on what the notebook uses: profile, split, data, folders."""
    lines = [f"profile {s.config.profile}, {s.split} split"]
    for name, source in s.datasets.items():
        where = locate(s.config, source)
        found = "phantom data" if where.source == "phantom" else f"real data at {where.root}"
        lines.append(f"{name}: {found} ({where.how})")
    workspace = s.config.workspace
    lines.append(f"runs in {workspace.runs}, results in {workspace.results}")
    lines.append("every value: print(s.config.to_json())")
    return "\n".join(lines)


# --- 00 Environment -------------------------------------------------------------------------
def environment(s: Session) -> pd.DataFrame:
    report = environment_report(s.config)
    save("environment", report, s.config)
    return report


# --- 01 Data preparation --------------------------------------------------------------------
def prepare(s: Session) -> dict[str, PreparedDataset]:
    """Every dataset of the notebook, located, split and cached (a second run reuses all)."""
    return {name: prepare_dataset(s.config, source) for name, source in s.datasets.items()}


def split_sizes(s: Session, data: dict[str, PreparedDataset]) -> pd.DataFrame:
    table = data_summary.split_sizes_table(data)
    save("split_sizes", table, s.config)
    return table


def class_positives(s: Session, data: dict[str, PreparedDataset]) -> dict[str, pd.DataFrame]:
    positives = {name: data_summary.class_positives_table(d) for name, d in data.items()}
    for name, table in positives.items():
        save("class_positives", table, s.config, dataset=name)
    figure = data_summary.plot_class_positives(list(positives.values()), s.label())
    save("class_positives_figure", figure, s.config)
    return positives


def cooccurrence(s: Session, data: dict[str, PreparedDataset]) -> None:
    for name, prepared in data.items():
        figure = data_summary.plot_cooccurrence(prepared, s.label())
        save("cooccurrence", figure, s.config, dataset=name)


def leakage(s: Session, data: dict[str, PreparedDataset]) -> pd.DataFrame:
    table = data_summary.leakage_table(data)
    save("leakage", table, s.config)
    return table


def samples(s: Session, data: dict[str, PreparedDataset], count: int = 12) -> None:
    for name, prepared in data.items():
        title = f"{name.upper()}: {s.label()}"
        save("samples", data_summary.plot_samples(prepared, count, title), s.config, dataset=name)


# --- 02 Model construction ------------------------------------------------------------------
def model_summary(s: Session) -> pd.DataFrame:
    """Every registered model at paper size and 224 px, 14 classes."""
    table = summary_table(list_models(), num_classes=14, size="paper", image_size=224)
    save("model_summary", table, s.config)
    return table


def model_summary_as_trained(s: Session) -> pd.DataFrame:
    """Every registered model at the size and image size this profile trains."""
    model, data = s.config.model, s.config.data
    table = summary_table(
        list_models(), num_classes=14, size=model.model_size, image_size=data.image_size
    )
    save("model_summary_as_trained", table, s.config)
    return table


def model_switches(s: Session) -> pd.DataFrame:
    table = switch_table(list_models("dual-branch"))
    save("model_switches", table, s.config)
    return table


def ablation_differences(s: Session) -> pd.DataFrame:
    """Each ablation minus its full model, per module group; an error if any differs outside
    the named module."""
    table = parameter_differences(num_classes=14, size="paper")
    save("ablation_parameter_differences", table, s.config)
    wrong = table.loc[~table["only named module"], "ablation"].tolist()
    if wrong:
        raise AssertionError(f"ablations that differ outside their named module: {wrong}")
    return table


def fidelity(s: Session) -> pd.DataFrame:
    """The largest difference per output against the authors' reference fixture
    (``$CXRLIB_REFERENCE_FIXTURE``, else ``shared/fixtures`` beside the project)."""
    table = fidelity_table(os.environ.get(FIXTURE_ENV))
    save("fidelity", table, s.config)
    return table


# --- 03, 04 Training on one dataset ---------------------------------------------------------
def _only(s: Session) -> tuple[str, str]:
    (name, source), *_ = s.datasets.items()
    return name, source


def training_hours(s: Session) -> pd.DataFrame:
    """Expected GPU hours of the notebook's runs in the paper profile."""
    return expected_hours(s.config, s.wanted("MODELS", items.MAIN_MODELS), [_only(s)[1]])


def train(s: Session) -> dict:
    """Each model of ``MODELS`` (default CTransCNN and CheXNet) trained, resumed or read back."""
    return _train(s, _only(s)[1], s.wanted("MODELS", items.MAIN_MODELS))


def per_class_auc(s: Session, runs: dict) -> pd.DataFrame:
    name = _only(s)[0]
    table = tables.auc_comparison(runs, name)
    save("auc", table, s.config, label=s.label(name), dataset=name)
    return table


def metrics(s: Session, runs: dict) -> pd.DataFrame:
    name = _only(s)[0]
    table = tables.metrics_table(runs)
    save("metrics", table, s.config, label=s.label(name), dataset=name)
    return table


def roc_and_training_curves(s: Session, runs: dict) -> None:
    name = _only(s)[0]
    label = s.label(name)
    for model, run in runs.items():
        save("roc", figures.plot_roc_curves(run, label), s.config, dataset=name, model=model)
    figure = figures.plot_training_curves(runs, f"{name}: {label}")
    save("training", figure, s.config, dataset=name)


# --- 05 Ablations ---------------------------------------------------------------------------
def _studies(s: Session) -> dict[str, tuple[list[str], str]]:
    """Each study's models (``CTRANSCNN_VARIANTS``, ``CHEXNET_VARIANTS``) and full model."""
    return {
        study: (s.wanted(f"{study.upper()}_VARIANTS", members), full)
        for study, (members, full) in items.STUDIES.items()
    }


def ablation_hours(s: Session) -> pd.DataFrame:
    models = [m for members, _ in _studies(s).values() for m in members]
    return expected_hours(s.config, models, list(s.datasets.values()))


def train_ablations(s: Session) -> dict:
    """Every variant of both studies on every dataset: ``{(study, dataset): runs}``."""
    return _train_sets(
        s,
        {
            (study, name): (source, members)
            for study, (members, _) in _studies(s).items()
            for name, source in s.datasets.items()
        },
    )


def ablation_tables(s: Session, runs: dict) -> pd.DataFrame:
    """Each variant against its full model (paired tests), table and figure per study and
    dataset; returns the last table."""
    fulls = {study: full for study, (_, full) in _studies(s).items()}
    for (study, name), study_runs in runs.items():
        table = tables.variant_table(study_runs, fulls[study], name)
        save("ablation", table, s.config, label=s.label(name), study=study, dataset=name)
        title = f"{study} ablation, {name}: {s.label(name)}"
        figure = figures.plot_mean_auc(study_runs, title)
        save("ablation_figure", figure, s.config, study=study, dataset=name)
    return table


def table3(s: Session, runs: dict) -> pd.DataFrame:
    """CheXNet Table 3: per-class AUC of its variants beside the published (CXR11)."""
    for name in s.datasets:
        table = tables.auc_comparison(runs[("chexnet", name)], name)
        save("table3", table, s.config, label=s.label(name), dataset=name)
    return table


# --- 06 Baselines ---------------------------------------------------------------------------
def baseline_hours(s: Session) -> pd.DataFrame:
    models = s.wanted("MODELS", items.models_of("06_baselines"))
    return expected_hours(s.config, models, list(s.datasets.values()))


def train_baselines(s: Session) -> dict:
    """Every model of CheXNet Tables 1-2 and CTransCNN's comparison: ``{dataset: runs}``."""
    models = s.wanted("MODELS", items.models_of("06_baselines"))
    return _train_sets(s, {name: (source, models) for name, source in s.datasets.items()})


def chexnet_tables_1_2(s: Session, runs: dict) -> pd.DataFrame:
    for name in s.datasets:
        table = tables.auc_comparison(runs[name], name)
        save("per_class", table, s.config, label=s.label(name), dataset=name)
    return table


def paired_with_chexnet(s: Session, runs: dict) -> pd.DataFrame | None:
    table, reference = None, items.PAIRED_REFERENCE
    for name in s.datasets:
        if reference in runs[name]:
            table = tables.variant_table(runs[name], reference, name)
            save("paired", table, s.config, label=s.label(name), dataset=name)
    return table


def mean_auc_comparison(s: Session, runs: dict) -> pd.DataFrame:
    table = tables.mean_auc_table(runs)
    label = "; ".join(sorted({s.label(name) for name in s.datasets}))
    save("mean_auc_comparison", table, s.config, label=label)
    return table


def roc_and_radar(s: Session, runs: dict) -> None:
    for name in s.datasets:
        title = f"{name}: {s.label(name)}"
        save("roc_baselines", figures.plot_macro_roc(runs[name], title), s.config, dataset=name)
        save("radar_baselines", figures.plot_radar(runs[name], title), s.config, dataset=name)


def train_from_imagenet(s: Session, runs: dict) -> dict:
    """CTransCNN, CheXNet and ResNet-50 again from ImageNet weights (neither paper; skipped,
    saying so, where the models have none): ``{dataset: runs}``."""
    scratch = s.wanted("MODELS", items.models_of("06_baselines"))
    models = imagenet_models(s.config, s.extras.get("IMAGENET_MODELS"), scratch)
    overrides = {"pretrained": "imagenet"}
    sets = {name: (source, models) for name, source in s.datasets.items() if models}
    return _train_sets(s, sets, overrides=overrides)


def scratch_vs_imagenet(s: Session, runs: dict, imagenet: dict) -> pd.DataFrame | None:
    table = None
    for name, pretrained in imagenet.items():
        table = tables.init_comparison({m: runs[name][m] for m in pretrained}, pretrained)
        save("imagenet_init", table, s.config, label=s.label(name), dataset=name)
    return table


# --- 07 Grad-CAM ----------------------------------------------------------------------------
def _branches(s: Session) -> dict[str, list[str]]:
    return s.extras.get("CAMS") or items.CAM_BRANCHES


def train_cam_models(s: Session) -> dict:
    """The models of the Grad-CAM figure, read back from their runs (trained if missing)."""
    models = list(_branches(s))
    return _train_sets(s, {name: (source, models) for name, source in s.datasets.items()})


def cam_models(s: Session, runs: dict) -> dict:
    """``{dataset: {"<model> (<branch>)": (model, branch)}}`` with the prepared data."""
    return {
        name: (load_cam_models(runs[name], _branches(s)), prepare_dataset(s.config, source))
        for name, source in s.datasets.items()
    }


def gradcam_figures(s: Session, cams: dict) -> None:
    chosen = s.extras.get("FIGURE_CLASSES") or {}
    for name, (models, data) in cams.items():
        wanted = chosen.get(name) or list(data.classes[:4])
        image_ids, classes = pick_examples(data, wanted)
        figure = figures.plot_cam_grid(models, data, image_ids, classes, f"{name}: {s.label(name)}")
        save("gradcam", figure, s.config, dataset=name)


def localisation(s: Session, cams: dict) -> pd.DataFrame:
    for name, (models, data) in cams.items():
        table = localisation_summary(models, data)
        save("localisation", table, s.config, label=s.label(name), dataset=name)
    return table


# --- 08 Subgroups and calibration -----------------------------------------------------------
def trained_models(s: Session) -> dict:
    """Per dataset, every model with a finished run in the profile and split, its seeds
    together -- the papers' two first (trained here if missing): ``{dataset: {model: run}}``."""
    found = {}
    for name, source in s.datasets.items():
        main = _train(s, source, s.wanted("MODELS", items.MAIN_MODELS))
        found[name] = beyond.finished_models(s.config, name, main)
        print(f"{name}: {len(found[name])} models ({', '.join(found[name])})")
    return found


def subgroups(s: Session, runs: dict) -> pd.DataFrame | None:
    """AUC, missed findings and the largest gap by sex, age band and view (datasets whose
    data give them: CXR14); returns the gaps of the last such dataset."""
    gaps = None
    for name, source in s.datasets.items():
        data = prepare_dataset(s.config, source, progress=False)
        if not beyond.has_subgroups(data):
            print(f"{name}: its data give no sex, age or view: no subgroup analysis")
            continue
        found = beyond.subgroup_tables(runs[name], data, seed=s.config.train.seed)
        label = s.label(name)
        save("subgroups", beyond.groups_for_reading(found["groups"]), s.config, label=label,
             dataset=name)  # fmt: skip
        gaps = beyond.gaps_for_reading(found["gaps"])
        save("subgroup_gaps", gaps, s.config, label=label, dataset=name)
        save("subgroup_classes", beyond.classes_for_reading(found["classes"]), s.config,
             label=label, dataset=name)  # fmt: skip
        figure = beyond.plot_subgroups(found["groups"], f"{name}: {label}")
        save("subgroup_figure", figure, s.config, dataset=name)
    return gaps


def calibration(s: Session, runs: dict) -> pd.DataFrame:
    """ECE and Brier score before and after temperature scaling, per model and per class, and
    reliability diagrams, on every dataset; returns the last dataset's model table."""
    for name in s.datasets:
        found = beyond.calibration_tables(runs[name])
        label = s.label(name)
        table = beyond.calibration_for_reading(found["models"])
        save("calibration", table, s.config, label=label, dataset=name)
        save("calibration_classes", beyond.calibration_classes_for_reading(found["classes"]),
             s.config, label=label, dataset=name)  # fmt: skip
        figure = beyond.plot_reliability(runs[name], f"{name}: {label}")
        save("reliability", figure, s.config, dataset=name)
    return table


# --- 09 Report ------------------------------------------------------------------------------
def report(s: Session):
    """``results/<profile>/REPORT.md`` from the tables and runs alone; displayed."""
    from IPython.display import Markdown  # here: a notebook front end, present in a kernel

    path = write_report(s.config, s.extras.get("EXPECTED_MODELS"))
    print(path)
    return Markdown(path.read_text())
