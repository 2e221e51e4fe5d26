"""The published numbers of both papers (test AUC, %), to put beside ours.

Sources:

* ``CHEXNET_TABLE1_CXR11`` / ``CHEXNET_TABLE2_CXR14`` / ``CHEXNET_TABLE3_ABLATION_CXR11`` --
  X. Wu et al., "CheXNet: Combing Transformer and CNN for Thorax Disease Diagnosis from Chest
  X-ray Images", PRCV 2023, LNCS 14437, pp. 73-84: Tables 1, 2 (per-class test AUC of CheXNet
  and its baselines) and 3 (module ablation, CXR11 only).
* ``CTRANSCNN_MEAN_AUC`` -- X. Wu et al., "CTransCNN: Combining transformer and CNN in
  multilabel medical image classification", Knowledge-Based Systems 281:111030, 2023: mean test
  AUC of CTransCNN and its baselines, read from the legends of the authors' ROC figures
  (project page). Its per-class tables, other metrics and module ablation were not publicly
  reachable: our numbers for them are new results without a published counterpart.

The two papers' baseline numbers are one set of runs (identical up to rounding), so one
baseline run serves both comparisons. Class names follow the split files' class lists.
"""

from __future__ import annotations

import io

import pandas as pd

#: Published column name -> our registry name.
MODEL_NAMES = {
    "ResNet34": "resnet34",
    "ResNet50": "resnet50",
    "ResNeXt50": "resnext50_32x4d",
    "SEResNet50": "seresnet50",
    "ViT": "vit_base_patch16_224",
    "Swin": "swin_tiny_patch4_window7_224",
    "Conformer": "conformer_tiny",
    "ConvNeXt": "convnext_tiny",
    "RepVGG": "repvgg_a2",
    "DeiT": "deit_small_patch16_224",
    "CheXNet": "chexnet_tiny",
    "CTransCNN": "ctranscnn_tiny",
    "Baseline": "chexnet_baseline",
    "M1": "chexnet_m1",
    "M2": "chexnet_m2",
    "M3": "chexnet_m3",
    "M4": "chexnet_m4",
    "M5": "chexnet_m5",
}

CHEXNET_TABLE1_CXR11 = """\
class,ResNet34,ResNet50,ResNeXt50,SEResNet50,ViT,Swin,ConvNeXt,DeiT,CheXNet
ETT-Abnormal,78.26,82.97,74.16,85.95,77.68,67.23,74.96,79.36,92.49
ETT-Borderline,88.51,89.33,85.96,89.96,83.02,78.49,81.99,83.56,88.04
ETT-Normal,96.96,97.37,96.95,97.29,88.18,83.84,94.96,87.95,97.92
NGT-Abnormal,78.15,80.69,79.63,77.26,77.18,74.09,72.54,76.48,81.38
NGT-Borderline,78.10,79.35,81.14,78.58,73.41,69.74,69.40,74.51,81.72
NGT-Incompletely-Imaged,92.94,93.09,93.20,92.37,87.88,82.97,88.66,87.25,94.19
NGT-Normal,91.19,92.72,91.57,91.55,85.09,81.86,88.74,85.93,92.72
CVC-Abnormal,59.64,61.26,62.11,61.66,60.60,59.29,56.05,61.44,62.88
CVC-Borderline,58.80,58.89,59.26,58.99,56.36,56.18,58.57,57.44,59.36
CVC-Normal,57.20,59.14,61.32,57.89,55.80,53.38,59.19,56.23,60.70
Swan-Ganz-Catheter-Present,92.95,95.72,97.11,93.44,87.48,84.99,90.51,89.31,96.72
Mean,79.34,80.96,80.22,80.45,75.70,72.01,75.97,76.32,82.56
"""

CHEXNET_TABLE2_CXR14 = """\
class,ResNet34,ResNet50,ResNeXt50,SEResNet50,ViT,Swin,ConvNeXt,DeiT,CheXNet
Atelectasis,73.35,73.87,73.51,73.81,53.53,62.48,73.31,70.19,74.24
Cardiomegaly,91.00,89.18,89.03,89.72,50.18,56.67,91.42,80.81,91.76
Consolidation,70.19,71.72,72.98,71.73,52.43,64.33,71.19,68.06,71.69
Edema,85.40,85.08,84.32,86.02,68.78,76.52,84.89,83.85,83.76
Effusion,81.02,81.79,82.09,81.40,44.74,64.95,82.77,77.17,81.96
Emphysema,76.39,83.29,80.63,80.88,53.19,55.94,80.79,75.45,81.09
Fibrosis,76.66,76.37,78.26,77.18,60.02,69.27,73.94,73.84,78.27
Hernia,69.00,79.62,80.96,78.88,67.29,69.35,88.84,69.99,89.04
Infiltration,69.12,68.85,69.24,69.78,56.07,61.89,68.87,67.16,68.41
Mass,74.96,77.04,76.07,74.92,47.56,57.07,73.97,66.77,76.29
Nodule,69.65,68.94,71.36,69.34,50.83,61.15,72.73,65.79,69.71
Pleural_Thickening,67.83,66.99,69.23,67.43,46.46,57.09,70.51,63.99,67.39
Pneumonia,59.02,59.21,58.32,60.39,48.97,54.07,55.68,50.50,59.61
Pneumothorax,82.39,83.32,81.81,85.75,55.90,61.65,85.34,74.86,81.96
Mean,74.71,76.09,76.27,76.23,54.00,62.32,76.73,70.60,76.80
"""

CHEXNET_TABLE3_ABLATION_CXR11 = """\
class,Baseline,M1,M2,M3,M4,M5,CheXNet
ETT-Abnormal,80.63,93.70,83.74,90.87,88.75,90.08,92.49
ETT-Borderline,88.18,85.00,87.08,87.93,84.93,85.46,88.04
ETT-Normal,97.57,97.05,97.85,97.88,97.84,97.84,97.92
NGT-Abnormal,78.39,74.76,81.02,79.39,81.22,80.92,81.38
NGT-Borderline,78.64,78.97,80.40,81.53,81.86,82.05,81.72
NGT-Incompletely-Imaged,92.86,92.17,93.39,93.60,94.26,94.33,94.19
NGT-Normal,91.96,89.93,91.73,92.57,92.18,92.18,92.72
CVC-Abnormal,60.14,63.90,64.05,64.56,63.11,61.83,62.88
CVC-Borderline,57.66,58.63,58.74,56.39,59.99,60.00,59.36
CVC-Normal,58.04,58.32,60.02,57.32,58.33,58.70,60.70
Swan-Ganz-Catheter-Present,98.11,94.68,97.73,97.50,95.65,96.36,96.72
Mean,80.20,80.65,81.50,81.78,81.65,81.79,82.56
"""

CTRANSCNN_MEAN_AUC = """\
model,CXR11,CXR14
ResNet34,79.34,74.71
ResNet50,80.96,76.09
ResNeXt50,80.22,76.27
SEResNet50,80.45,76.23
ViT,75.70,54.00
Swin,72.01,62.32
Conformer,81.45,76.39
ConvNeXt,75.96,76.73
RepVGG,83.14,76.53
DeiT,76.32,70.60
CTransCNN,83.37,78.47
"""

#: Paired t-test p-values vs CheXNet reported with Tables 1 and 2.
CHEXNET_P_VALUES = {
    "cxr11": {
        "ResNet34": 0.0108,
        "ResNet50": 0.0435,
        "ResNeXt50": 0.0896,
        "SEResNet50": 0.0054,
        "ViT": 0.0001,
        "Swin": 0.0001,
        "ConvNeXt": 0.0006,
        "DeiT": 0.0001,
    },
    "cxr14": {
        "ResNet34": 0.0706,
        "ResNet50": 0.1638,
        "ResNeXt50": 0.2041,
        "SEResNet50": 0.2400,
        "ViT": 0.0000,
        "Swin": 0.0000,
        "ConvNeXt": 0.4559,
        "DeiT": 0.0001,
    },
}


def _frame(text: str, index: str) -> pd.DataFrame:
    frame = pd.read_csv(io.StringIO(text)).set_index(index)
    return frame.rename(columns=MODEL_NAMES)


def per_class_auc(dataset: str) -> pd.DataFrame:
    """Every published per-class AUC on ``dataset``: CheXNet Table 1 (cxr11) or 2 (cxr14), and
    on CXR11 also the Table 3 variants. Rows = classes + ``Mean``, columns = our model names;
    empty for a dataset neither paper used."""
    tables = {
        "cxr11": (CHEXNET_TABLE1_CXR11, CHEXNET_TABLE3_ABLATION_CXR11),
        "cxr14": (CHEXNET_TABLE2_CXR14,),
    }.get(dataset, ())
    frames = [_frame(text, "class") for text in tables]
    if not frames:
        return pd.DataFrame()
    out = frames[0]
    for frame in frames[1:]:
        out = out.join(frame[frame.columns.difference(out.columns)])
    return out


def ablation_auc_cxr11() -> pd.DataFrame:
    """CheXNet Table 3 (CXR11): rows = classes + ``Mean``, columns = our names."""
    return _frame(CHEXNET_TABLE3_ABLATION_CXR11, "class")


def mean_auc() -> pd.DataFrame:
    """CTransCNN's comparison: rows = our model names, columns ``cxr11``, ``cxr14``."""
    frame = pd.read_csv(io.StringIO(CTRANSCNN_MEAN_AUC))
    frame["model"] = frame["model"].map(MODEL_NAMES)
    return frame.set_index("model").rename(columns={"CXR11": "cxr11", "CXR14": "cxr14"})


def published_mean_auc(model: str, dataset: str) -> float | None:
    """The published mean AUC of a registered model on a dataset, if either paper gives one."""
    means = mean_auc()
    if model in means.index and dataset in means.columns:
        return float(means.loc[model, dataset])
    table = per_class_auc(dataset)
    if model in table.columns:
        return float(table.loc["Mean", model])
    return None


def published_means() -> pd.DataFrame:
    """Every model either paper reports a mean AUC for, with each dataset's value (None where
    neither gives one) and where it is printed: CTransCNN's comparison, CheXNet's Tables 1-3."""
    comparison = mean_auc()
    models = list(comparison.index)
    for dataset in ("cxr11", "cxr14"):
        models += [m for m in per_class_auc(dataset).columns if m not in models]
    rows = []
    for model in models:
        sources = []
        if model in comparison.index:
            sources.append("CTransCNN comparison")
        if any(model in per_class_auc(d).columns for d in ("cxr11", "cxr14")):
            sources.append("CheXNet Tables 1-3")
        rows.append(
            {
                "model": model,
                "cxr11": published_mean_auc(model, "cxr11"),
                "cxr14": published_mean_auc(model, "cxr14"),
                "printed in": ", ".join(sources),
            }
        )
    return pd.DataFrame(rows)


def published_p_value(model: str, dataset: str) -> float | None:
    """CheXNet's paired t-test p-value of ``model`` against CheXNet on ``dataset`` (Tables 1-2),
    or None where the paper gives none."""
    names = {ours: theirs for theirs, ours in MODEL_NAMES.items()}
    return CHEXNET_P_VALUES.get(dataset, {}).get(names.get(model, ""))


def printed_mean_notes(dataset: str) -> list[str]:
    """Where a paper's printed mean AUC disagrees with the mean of its own per-class values, or
    with the other paper's number for the same runs: one sentence each (tables show both)."""
    notes = []
    table = per_class_auc(dataset)
    if table.empty:
        return notes
    computed = table.drop(index="Mean").mean().round(2)
    for model in table.columns:
        printed = float(table.loc["Mean", model])
        gap = abs(printed - computed[model])
        if gap >= 0.005:
            rounding = " (within the rounding of the per-class values)" if gap < 0.015 else ""
            notes.append(
                f"{model}: the paper prints a mean AUC of {printed:.2f}; its per-class values "
                f"average {computed[model]:.2f}{rounding}"
            )
    means = mean_auc()
    for model in table.columns.intersection(means.index):
        other = float(means.loc[model, dataset])
        printed = float(table.loc["Mean", model])
        if abs(other - printed) >= 0.005:
            notes.append(
                f"{model}: CheXNet's table prints {printed:.2f}, CTransCNN's comparison "
                f"{other:.2f} (the same runs)"
            )
    return notes
