"""One list of the papers' tables and figures: which notebook and file regenerates each, and
which models each needs.

Papers: CTransCNN (X. Wu et al., Knowledge-Based Systems 281:111030, 2023) and the hybrid
CheXNet (X. Wu et al., PRCV 2023, LNCS 14437). Notebooks 03-08 take their model lists and
table names from here (their ``None`` parameters mean "what the paper items need"), the report
lists every item with its files, and the end-to-end test checks that each file was written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

from cxrlib.core.config import SeedModels
from cxrlib.paper.published import mean_auc

#: The two models of the papers.
MAIN_MODELS = ("ctranscnn_tiny", "chexnet_tiny")
#: CTransCNN without each of its modules (``-no_<module>``); the paper's
#: ablation is not public, so these have no published counterpart.
CTRANSCNN_VARIANTS = (
    "ctranscnn_tiny",
    "ctranscnn_tiny-no_mmaef",
    "ctranscnn_tiny-no_mbr",
    "ctranscnn_tiny-no_iim",
    "ctranscnn_tiny-no_coupling",
)
#: CheXNet Table 3: the baseline, M1-M5 and the full model -- MEMSP *beside* the token stream
#: (the default reading) -- and M1 in the other reading, MEMSP *replacing* the Transformer
#: (``cxrlib.models.dual_branch``; no published counterpart).
CHEXNET_VARIANTS = (
    "chexnet_baseline",
    "chexnet_m1",
    "chexnet_m1-replace",
    "chexnet_m2",
    "chexnet_m3",
    "chexnet_m4",
    "chexnet_m5",
    "chexnet_tiny",
)
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
#: ImageNet weights (``PRETRAINED=imagenet``), and the table of that comparison.
IMAGENET_MODELS = (*MAIN_MODELS, "resnet50")


def imagenet_table(dataset: str, split: str) -> str:
    """Name of notebook 06's scratch-vs-ImageNet table (``imagenet_init_cxr14_paper``, ...)."""
    return f"imagenet_init_{dataset}_{split}"


#: CheXNet's per-class tables: Table 1 on CXR11, Table 2 on CXR14.
_PER_CLASS_TABLES = {"cxr11": "table1", "cxr14": "table2"}


def per_class_table(dataset: str, split: str) -> str:
    """Name of the per-class AUC table of the baselines (``table1_cxr11_paper``, ...)."""
    return f"{_PER_CLASS_TABLES.get(dataset, 'per_class_auc')}_{dataset}_{split}"


@dataclass(frozen=True)
class PaperItem:
    """One table or figure of a paper and where this kit regenerates it."""

    paper: str
    item: str
    notebook: str
    files: tuple[str, ...]  #: relative to results/<profile>/; ``{split}`` = paper or patient
    models: tuple[str, ...] = ()
    published: bool = True  #: False: the paper has no numbers to put beside ours

    def paths(self, split: str) -> tuple[str, ...]:
        return tuple(f.format(split=split) for f in self.files)


ITEMS: tuple[PaperItem, ...] = (
    PaperItem(
        "CheXNet",
        "Table 1: per-class AUC on CXR11",
        "06_baselines",
        (f"tables/{per_class_table('cxr11', '{split}')}.csv",),
        BASELINES,
    ),
    PaperItem(
        "CheXNet",
        "Table 2: per-class AUC on CXR14",
        "06_baselines",
        (f"tables/{per_class_table('cxr14', '{split}')}.csv",),
        BASELINES,
    ),
    PaperItem(
        "CheXNet",
        "Table 3: module ablation on CXR11",
        "05_ablations",
        ("tables/table3_chexnet_cxr11_{split}.csv", "tables/ablation_chexnet_cxr11_{split}.csv"),
        CHEXNET_VARIANTS,
    ),
    PaperItem(
        "CheXNet",
        "Table 3 on CXR14",
        "05_ablations",
        ("tables/table3_chexnet_cxr14_{split}.csv",),
        CHEXNET_VARIANTS,
        published=False,
    ),
    PaperItem(
        "CheXNet",
        "paired comparison with the baselines",
        "06_baselines",
        (
            "tables/paired_vs_chexnet_cxr11_{split}.csv",
            "tables/paired_vs_chexnet_cxr14_{split}.csv",
        ),
        BASELINES,
    ),
    PaperItem(
        "CTransCNN",
        "model comparison: mean AUC on CXR11 and CXR14",
        "06_baselines",
        ("tables/mean_auc_comparison_{split}.csv",),
        BASELINES,
    ),
    PaperItem(
        "CTransCNN",
        "module ablation",
        "05_ablations",
        (
            "tables/ablation_ctranscnn_cxr11_{split}.csv",
            "tables/ablation_ctranscnn_cxr14_{split}.csv",
        ),
        CTRANSCNN_VARIANTS,
        published=False,
    ),
    PaperItem(
        "CTransCNN",
        "mAP, CP, CR, CF1, OP, OR, OF1",
        "03_train_cxr11, 04_train_cxr14",
        ("tables/metrics_cxr11_{split}.csv", "tables/metrics_cxr14_{split}.csv"),
        MAIN_MODELS,
        published=False,
    ),
    PaperItem(
        "both",
        "ROC curves",
        "03_train_cxr11, 04_train_cxr14, 06_baselines",
        ("figures/roc_baselines_cxr11_{split}.png", "figures/roc_baselines_cxr14_{split}.png"),
        BASELINES,
    ),
    PaperItem(
        "both",
        "Grad-CAM figure (with measured localisation)",
        "07_gradcam",
        (
            "figures/gradcam_cxr11_{split}.png",
            "figures/gradcam_cxr14_{split}.png",
            "tables/localisation_cxr11_{split}.csv",
            "tables/localisation_cxr14_{split}.csv",
        ),
        tuple(CAM_BRANCHES),
    ),
    PaperItem(
        "both",
        "dataset splits",
        "01_data_preparation",
        ("tables/split_sizes.csv", "tables/leakage.csv"),
    ),
)


def models_of(notebook: str) -> list[str]:
    """Every model the paper items of ``notebook`` (e.g. ``06_baselines``) need, in order."""
    return list(dict.fromkeys(m for i in ITEMS if notebook in i.notebook for m in i.models))


def expected_models() -> list[str]:
    """Every model some paper item needs (the report lists those still missing)."""
    return list(dict.fromkeys(m for item in ITEMS for m in item.models))
