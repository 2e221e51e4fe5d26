"""One list of the papers' tables and figures: which notebook and file regenerates each, and
which models each needs.

Papers: CTransCNN (X. Wu et al., Knowledge-Based Systems 281:111030, 2023) and the hybrid
CheXNet (X. Wu et al., PRCV 2023, LNCS 14437). Notebooks 03-09 take their model lists and
table names from here (their ``None`` parameters mean "what the paper items need"), the report
lists every item with its files, and the end-to-end test checks that each file was written.
"""

from __future__ import annotations

import itertools
import os
import re
import string
from dataclasses import KW_ONLY, dataclass
from pathlib import Path
from typing import get_args

from cxrlib.core.config import Config, SeedModels
from cxrlib.data.datasets import PAPER_DATASETS
from cxrlib.models.registry import studies, study
from cxrlib.paper.published import mean_auc
from cxrlib.train.layout import RunKey

#: The ablation studies and their models, in the order of their tables (from the registry:
#: :func:`cxrlib.models.registry.study`): CTransCNN without each of its modules
#: (``-no_<module>``; the paper's ablation is not public, so these have no published
#: counterpart) and CheXNet's Table 3 -- the baseline, M1-M5 and the full model, MEMSP *beside*
#: the token stream (the default reading), and M1 in the other reading, MEMSP *replacing* the
#: Transformer (``cxrlib.models.dual_branch``; no published counterpart).
STUDIES: dict[str, tuple[tuple[str, ...], str]] = {
    name: (tuple(study(name)[0]), study(name)[1]) for name in studies()
}
CTRANSCNN_VARIANTS = STUDIES["ctranscnn"][0]
CHEXNET_VARIANTS = STUDIES["chexnet"][0]
#: The two models of the papers: the full models of the two studies.
MAIN_MODELS = tuple(full for _, full in STUDIES.values())
#: CheXNet Tables 1-2 and CTransCNN's model comparison.
BASELINES = (
    "resnet34",
    "resnet50",
    "resnext50_32x4d",
    "seresnet50",
    "vit_base_patch16_224",
    "swin_tiny_patch4_window7_224",
    "conformer_tiny",
    "convnext_tiny",
    "repvgg_a2",
    "deit_small_patch16_224",
    "densenet121",
    *MAIN_MODELS,
)
#: The Grad-CAM figure: each model with the branches whose maps it shows.
CAM_BRANCHES = {
    "ctranscnn_tiny": ["cnn", "tokens"],
    "chexnet_tiny": ["cnn", "tokens"],
    "resnet50": ["cnn"],
    "vit_base_patch16_224": ["tokens"],
}
#: The reference model of the paired comparisons in notebook 06 (CheXNet Tables 1-2).
PAIRED_REFERENCE = "chexnet_tiny"


def strongest_baselines(count: int = 2) -> tuple[str, ...]:
    """The ``count`` baselines with the best published mean AUC over both datasets (CTransCNN's
    comparison table; :mod:`cxrlib.paper.published`): the ones worth several seeds."""
    table = mean_auc().drop(index=list(MAIN_MODELS), errors="ignore")
    return tuple(table.mean(axis=1).sort_values(ascending=False).index[:count])


#: The models ``SEED_MODELS`` names (each trains ``SEEDS`` times; the others once).
SEED_MODEL_SETS = {
    "main": lambda: MAIN_MODELS,
    "main+strongest": lambda: (*MAIN_MODELS, *strongest_baselines()),
}


assert set(SEED_MODEL_SETS) == set(get_args(SeedModels)), "SEED_MODELS choices differ"


def seeded_models(seed_models: str) -> tuple[str, ...]:
    """The models trained with several seeds under ``SEED_MODELS = seed_models``."""
    return tuple(SEED_MODEL_SETS[seed_models]())


#: Beyond both papers (which train from scratch): the models notebook 06 also trains from
#: ImageNet weights (``PRETRAINED=imagenet``).
IMAGENET_MODELS = (*MAIN_MODELS, "resnet50")

# --------------------------------------------------------------------------------------------
# Every file the notebooks write, named once
# --------------------------------------------------------------------------------------------
TABLE, FIGURE, REPORT = "table", "figure", "report"
#: The files of each kind of output, relative to ``results/<profile>/``.
_FILES = {
    TABLE: ("tables/{name}.csv", "tables/{name}.md"),
    FIGURE: ("figures/{name}.png", "figures/{name}.pdf"),
    REPORT: ("{name}.md", "{name}.html"),
}
#: CheXNet's per-class tables: Table 1 on CXR11, Table 2 on CXR14 (other datasets: neither).
_CHEXNET_TABLES = {"cxr11": "table1", "cxr14": "table2"}


@dataclass(frozen=True)
class Output:
    """One file (a table, a figure, the report) that a notebook writes, and its name: the one
    place each name is spelled. ``pattern`` takes the coordinates the output varies over --
    ``dataset``, ``split``, ``model``, ``study`` -- and ``caption`` also ``label`` (where the
    numbers come from)."""

    key: str
    kind: str  #: TABLE, FIGURE or REPORT
    pattern: str
    notebooks: tuple[str, ...]
    caption: str = ""
    _: KW_ONLY
    #: the profiles that write it (notebook 06's ImageNet comparison needs paper-size models)
    profiles: tuple[str, ...] = ("smoke", "paper")
    #: the papers' datasets it is written for (None: each); the subgroup analysis needs the
    #: patients' sex, age and view, which CXR14 has (and a CSV dataset may have)
    datasets: tuple[str, ...] | None = None

    @property
    def coordinates(self) -> tuple[str, ...]:
        """The coordinates its name varies over, e.g. ``("dataset", "split")``."""
        fields = [f for _, f, _, _ in string.Formatter().parse(self.pattern) if f]
        return tuple(dict.fromkeys("dataset" if f == "chexnet_table" else f for f in fields))

    def name(self, **coordinates: str) -> str:
        """The file name without its suffix, e.g. ``auc_cxr11_paper``."""
        values = dict(coordinates)
        if "dataset" in values:
            values["chexnet_table"] = _CHEXNET_TABLES.get(values["dataset"], "per_class_auc")
        missing = [c for c in self.coordinates if c not in values]
        if missing:
            raise KeyError(f"output {self.key!r} needs {', '.join(missing)}")
        return self.pattern.format(**values)

    def files(self, **coordinates: str) -> tuple[str, ...]:
        """Its files relative to ``results/<profile>/`` (a table's CSV and Markdown, a
        figure's PNG and PDF)."""
        name = self.name(**coordinates)
        return tuple(f.format(name=name) for f in _FILES[self.kind])

    def caption_for(self, **coordinates: str) -> str:
        return self.caption.format(**coordinates)

    def shown(self) -> str:
        """Its name as a notebook's first cell shows it: ``auc_<dataset>_<split>``, and
        CheXNet's per-class tables by their own names."""
        if "{chexnet_table}" in self.pattern:
            return ", ".join(self.name(dataset=d, split="<split>") for d in sorted(_CHEXNET_TABLES))
        return re.sub(r"\{(\w+)\}", r"<\1>", self.pattern)


_DATA, _MODELS = "01_data_preparation", "02_model_construction"
_TRAIN = ("03_train_cxr11", "04_train_cxr14")
_ABLATIONS, _BASELINES, _GRADCAM = "05_ablations", "06_baselines", "07_gradcam"
_BEYOND, _REPORT = "08_subgroups_calibration", "09_report"
OUTPUTS: dict[str, Output] = {
    o.key: o
    for o in (
        Output("environment", TABLE, "environment", ("00_environment",),
               "Machine and software of this run."),
        Output("split_sizes", TABLE, "split_sizes", (_DATA,),
               "Images per split part, ours beside the papers'."),
        Output("class_positives", TABLE, "class_positives_{dataset}", (_DATA,),
               "Positive images per class."),
        Output("class_positives_figure", FIGURE, "class_positives", (_DATA,),
               "Positive images per class and split part."),
        Output("cooccurrence", FIGURE, "cooccurrence_{dataset}", (_DATA,),
               "Label co-occurrence on {dataset}."),
        Output("leakage", TABLE, "leakage", (_DATA,), "Patients shared between split parts."),
        Output("samples", FIGURE, "samples_{dataset}", (_DATA,),
               "Sample images of {dataset} with their annotations."),
        Output("model_summary", TABLE, "model_summary", (_MODELS,),
               "Registered models at paper size, 224 px."),
        Output("model_summary_as_trained", TABLE, "model_summary_as_trained", (_MODELS,),
               "Models as this profile trains them."),
        Output("model_switches", TABLE, "model_switches", (_MODELS,),
               "Switch settings, side by side."),
        Output("ablation_parameter_differences", TABLE, "ablation_parameter_differences",
               (_MODELS,), "Parameter differences per module group."),
        Output("fidelity", TABLE, "fidelity_to_authors", (_MODELS,),
               "Largest absolute difference per output against the authors' implementation "
               "(their reference fixture)."),
        Output("auc", TABLE, "auc_{dataset}_{split}", _TRAIN,
               "Test AUC (%) on {dataset}, {label}."),
        Output("metrics", TABLE, "metrics_{dataset}_{split}", _TRAIN,
               "Test metrics (%) on {dataset}."),
        Output("roc", FIGURE, "roc_{dataset}_{split}_{model}", _TRAIN,
               "Per-class ROC curves of {model} on {dataset}."),
        Output("training", FIGURE, "training_{dataset}_{split}", _TRAIN,
               "Training loss and validation mean AUC per epoch on {dataset}."),
        Output("ablation", TABLE, "ablation_{study}_{dataset}_{split}", (_ABLATIONS,),
               "{study} ablation on {dataset}, {label}."),
        Output("ablation_figure", FIGURE, "ablation_{study}_{dataset}_{split}", (_ABLATIONS,),
               "{study} ablation on {dataset}: mean test AUC with 95% CIs."),
        Output("table3", TABLE, "table3_chexnet_{dataset}_{split}", (_ABLATIONS,),
               "CheXNet Table 3 variants on {dataset}, {label}."),
        Output("per_class", TABLE, "{chexnet_table}_{dataset}_{split}", (_BASELINES,),
               "Per-class test AUC on {dataset}, {label}."),
        Output("paired", TABLE, "paired_vs_chexnet_{dataset}_{split}", (_BASELINES,),
               "Paired comparison with CheXNet on {dataset}, {label}."),
        Output("mean_auc_comparison", TABLE, "mean_auc_comparison_{split}", (_BASELINES,),
               "Mean test AUC per model and dataset."),
        Output("roc_baselines", FIGURE, "roc_baselines_{dataset}_{split}", (_BASELINES,),
               "Macro-average ROC curves of every model on {dataset}."),
        Output("radar_baselines", FIGURE, "radar_baselines_{dataset}_{split}", (_BASELINES,),
               "Per-class test AUC of every model on {dataset}."),
        Output("imagenet_init", TABLE, "imagenet_init_{dataset}_{split}", (_BASELINES,),
               "Scratch vs ImageNet initialisation on {dataset}, {label} (neither paper).",
               profiles=("paper",)),
        Output("gradcam", FIGURE, "gradcam_{dataset}_{split}", (_GRADCAM,),
               "Grad-CAM of CTransCNN, CheXNet and two baselines on {dataset}, with ground truth."),
        Output("localisation", TABLE, "localisation_{dataset}_{split}", (_GRADCAM,),
               "Grad-CAM localisation on {dataset}, {label}."),
        Output("subgroups", TABLE, "subgroups_{dataset}_{split}", (_BEYOND,),
               "Mean test AUC and missed findings by sex, age band and view on {dataset}, "
               "{label} (neither paper).", datasets=("cxr14",)),
        Output("subgroup_gaps", TABLE, "subgroup_gaps_{dataset}_{split}", (_BEYOND,),
               "The largest subgroup gap of each model and attribute on {dataset}, {label} "
               "(neither paper).", datasets=("cxr14",)),
        Output("subgroup_classes", TABLE, "subgroup_classes_{dataset}_{split}", (_BEYOND,),
               "Per-class test AUC and false-negative rate by subgroup on {dataset}, {label} "
               "(neither paper).", datasets=("cxr14",)),
        Output("subgroup_figure", FIGURE, "subgroup_auc_{dataset}_{split}", (_BEYOND,),
               "Mean test AUC by sex, age band and view on {dataset}, with patient-bootstrap "
               "95% CIs (neither paper).", datasets=("cxr14",)),
        Output("calibration", TABLE, "calibration_{dataset}_{split}", (_BEYOND,),
               "Calibration of every model on {dataset} before and after temperature scaling, "
               "{label} (neither paper)."),
        Output("calibration_classes", TABLE, "calibration_classes_{dataset}_{split}", (_BEYOND,),
               "Per-class temperature, ECE and Brier score on {dataset}, {label} (neither "
               "paper)."),
        Output("reliability", FIGURE, "reliability_{dataset}_{split}", (_BEYOND,),
               "Reliability diagrams on {dataset}, before and after temperature scaling "
               "(neither paper)."),
        Output("report", REPORT, "REPORT", (_REPORT,)),
    )
}  # fmt: skip


def figures_present(figures: Path, split: str) -> list[tuple[str, str]]:
    """Every figure of :data:`OUTPUTS` in the folder ``figures`` for ``split``, in the order of
    the outputs: ``(file name, caption)`` (the caption's coordinates read from the name)."""
    found = []
    for output in OUTPUTS.values():
        if output.kind != FIGURE:
            continue
        fields = re.split(r"\{(\w+)\}", output.pattern)
        regex = "".join(
            f"(?P<{part}>.+?)" if i % 2 else re.escape(part) for i, part in enumerate(fields)
        )
        for path in sorted(figures.glob("*.png")):
            match = re.fullmatch(regex, path.stem)
            if match and match.groupdict().get("split", split) == split:
                values = {
                    k: v.upper() if k == "dataset" else v for k, v in match.groupdict().items()
                }
                found.append((path.name, output.caption.format(**values) or path.stem))
    return found


def outputs_of(notebook: str) -> list[Output]:
    """The outputs ``notebook`` (e.g. ``03_train_cxr11``) writes, in order."""
    return [o for o in OUTPUTS.values() if notebook in o.notebooks]


PRODUCES_START, PRODUCES_END = "<!-- produces -->", "<!-- /produces -->"
_KIND_WORDS = {TABLE: "tables", FIGURE: "figures", REPORT: "the report"}


def produces(notebook: str) -> str:
    """The "Produces" paragraph of ``notebook``'s first cell, made from :data:`OUTPUTS`
    (``python -m cxrlib badges --write`` keeps the notebooks' copies in line)."""
    parts, names = [], []
    for kind, word in _KIND_WORDS.items():
        shown = [n for o in outputs_of(notebook) if o.kind == kind for n in o.shown().split(", ")]
        mine = list(dict.fromkeys(shown))
        names += mine
        if kind == REPORT and mine:
            parts.append(", ".join(f"`{name}.md`, `{name}.html`" for name in mine))
        elif mine:
            parts.append(f"{word} " + ", ".join(f"`{name}`" for name in mine))
    only_paper = [o.shown() for o in outputs_of(notebook) if o.profiles == ("paper",)]
    extra = f" (`{'`, `'.join(only_paper)}` in the paper profile only)" if only_paper else ""
    some = [o for o in outputs_of(notebook) if o.datasets]
    if some:
        prefix = os.path.commonprefix([o.shown() for o in some]).rstrip("_")  # noqa: RUF071 (names, not paths)
        sets = ", ".join(d.upper() for d in dict.fromkeys(d for o in some for d in o.datasets))
        extra += f" (`{prefix}…` only where the data give the patients' sex, age or view: {sets})"
    where = "under `results/<profile>/`"
    if any("<split>" in name for name in names):
        where += "; `<split>` is the `SPLIT` parameter"
    # the markers on lines of their own: Markdown reads a line that starts with an HTML comment
    # as HTML, and would leave the paragraph's own Markdown unrendered
    return f"{PRODUCES_START}\n**Produces** ({where}): {'; '.join(parts)}{extra}.\n{PRODUCES_END}"


def promised_files(notebook: str, profile: str, **domains: tuple[str, ...]) -> list[str]:
    """Every file ``notebook`` writes in ``profile``, relative to ``results/<profile>/``, for
    each combination of the coordinates in ``domains`` (e.g. ``dataset=("cxr11",),
    split=("paper",), model=MAIN_MODELS, study=tuple(STUDIES)``)."""
    files = []
    for output in outputs_of(notebook):
        if profile not in output.profiles:
            continue
        combos = itertools.product(*(domains[c] for c in output.coordinates))
        for values in combos:
            named = dict(zip(output.coordinates, values, strict=True))
            if (
                output.datasets is None
                or named.get("dataset", output.datasets[0]) in output.datasets
            ):
                files += output.files(**named)
    return files


@dataclass(frozen=True)
class PaperItem:
    """One table or figure of a paper and the outputs that regenerate it."""

    paper: str
    item: str
    #: (output key, the coordinates it is fixed at) -- ``split`` is left to :meth:`paths`
    outputs: tuple[tuple[str, dict], ...]
    models: tuple[str, ...] = ()
    published: bool = True  #: False: the paper has no numbers to put beside ours

    @property
    def notebook(self) -> str:
        """The notebook(s) that write it, e.g. ``06_baselines``."""
        books = [b for key, _ in self.outputs for b in OUTPUTS[key].notebooks]
        return ", ".join(dict.fromkeys(books))

    def paths(self, split: str) -> tuple[str, ...]:
        """The first file of each of its outputs (a table's CSV, a figure's PNG)."""
        return tuple(OUTPUTS[key].files(split=split, **fixed)[0] for key, fixed in self.outputs)


#: The "paper" of the items neither paper has.
BEYOND = "beyond the papers"


def _each_paper_dataset(key: str, **fixed) -> tuple[tuple[str, dict], ...]:
    return tuple((key, {"dataset": d, **fixed}) for d in ("cxr11", "cxr14"))


ITEMS: tuple[PaperItem, ...] = (
    PaperItem("CheXNet", "Table 1: per-class AUC on CXR11",
              (("per_class", {"dataset": "cxr11"}),), BASELINES),
    PaperItem("CheXNet", "Table 2: per-class AUC on CXR14",
              (("per_class", {"dataset": "cxr14"}),), BASELINES),
    PaperItem("CheXNet", "Table 3: module ablation on CXR11",
              (("table3", {"dataset": "cxr11"}),
               ("ablation", {"study": "chexnet", "dataset": "cxr11"})), CHEXNET_VARIANTS),
    PaperItem("CheXNet", "Table 3 on CXR14", (("table3", {"dataset": "cxr14"}),),
              CHEXNET_VARIANTS, published=False),
    PaperItem("CheXNet", "paired comparison with the baselines",
              _each_paper_dataset("paired"), BASELINES),
    PaperItem("CTransCNN", "model comparison: mean AUC on CXR11 and CXR14",
              (("mean_auc_comparison", {}),), BASELINES),
    PaperItem("CTransCNN", "module ablation", _each_paper_dataset("ablation", study="ctranscnn"),
              CTRANSCNN_VARIANTS, published=False),
    PaperItem("CTransCNN", "mAP, CP, CR, CF1, OP, OR, OF1", _each_paper_dataset("metrics"),
              MAIN_MODELS, published=False),
    PaperItem("both", "ROC curves", _each_paper_dataset("roc_baselines"), BASELINES),
    PaperItem("both", "Grad-CAM figure (with measured localisation)",
              _each_paper_dataset("gradcam") + _each_paper_dataset("localisation"),
              tuple(CAM_BRANCHES)),
    PaperItem("both", "dataset splits", (("split_sizes", {}), ("leakage", {}))),
    PaperItem(BEYOND, "subgroups: AUC and missed findings by sex, age, view",
              (("subgroups", {"dataset": "cxr14"}), ("subgroup_gaps", {"dataset": "cxr14"}),
               ("subgroup_classes", {"dataset": "cxr14"}),
               ("subgroup_figure", {"dataset": "cxr14"})), MAIN_MODELS, published=False),
    PaperItem(BEYOND, "calibration and temperature scaling",
              _each_paper_dataset("calibration") + _each_paper_dataset("calibration_classes")
              + _each_paper_dataset("reliability"), MAIN_MODELS, published=False),
)  # fmt: skip


def models_of(notebook: str) -> list[str]:
    """Every model the paper items of ``notebook`` (e.g. ``06_baselines``) need, in order."""
    return list(dict.fromkeys(m for i in ITEMS if notebook in i.notebook for m in i.models))


def expected_models() -> list[str]:
    """Every model some paper item needs (the report lists those still missing)."""
    return list(dict.fromkeys(m for item in ITEMS for m in item.models))


def planned_runs(config: Config) -> list[RunKey]:
    """Every run the notebooks train under ``config``: each model some paper item needs, on
    both papers' datasets, in its split, from scratch -- ``SEEDS`` seeds for the models of
    ``SEED_MODELS``, one for the others (what ``python -m cxrlib status`` lists as not
    started until a run's folder exists)."""
    seeded = set(seeded_models(config.train.seed_models))
    keys = []
    for dataset in PAPER_DATASETS:
        for model in expected_models():
            seeds = config.train.seeds if model in seeded else 1
            for k in range(seeds):
                keys.append(
                    RunKey(config.profile, dataset, config.data.split, model,
                           seed=config.train.seed + k)
                )  # fmt: skip
    return keys
