"""Beyond both papers (notebook 08): for whom the models fail -- AUC and missed findings by sex,
age band and view -- and how far their probabilities can be trusted -- calibration before and
after temperature scaling. Neither paper asks either question; see
:mod:`cxrlib.evaluate.subgroups` (Seyyed-Kalantari et al., Nature Medicine 2021) and
:mod:`cxrlib.evaluate.calibration` (Guo et al., ICML 2017) for what is computed and why.

Every finished model of the profile on a dataset and split is analysed, its seeds together
(figures are means over seeds; the seeds are named in every row). The tables' CSVs keep every
value as computed; rates and errors are shares in the CSV and percentages in the Markdown.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cxrlib.core.config import Config
from cxrlib.core.errors import RunConfigMismatchError, RunNotFinishedError
from cxrlib.data.datasets import PAPER_DATASETS
from cxrlib.data.prepare import PreparedDataset
from cxrlib.evaluate.calibration import (
    ECE_BINS,
    apply_temperatures,
    calibration_summary,
    fit_temperatures,
    reliability_curve,
)
from cxrlib.evaluate.subgroups import ATTRIBUTES, subgroup_analysis, subgroups_of
from cxrlib.paper.items import OUTPUTS
from cxrlib.paper.markdown import markdown_table
from cxrlib.paper.run_rows import seeds_text
from cxrlib.paper.style import series_style
from cxrlib.paper.tables import seed_predictions
from cxrlib.train.layout import INIT_NAMES, restart_hint
from cxrlib.train.results import RunResult, all_runs

#: Bootstrap resamples of the subgroup intervals and gap tests.
RESAMPLES = 1000
#: Under the subgroup tables: how they were computed.
SUBGROUP_NOTE = (
    "Intervals: 95% percentile bootstrap over patients ({resamples} resamples, the same for "
    "every subgroup). A subgroup's mean AUC is over the classes with positives and negatives in "
    "it ('classes'); 'few' counts those with fewer than 10 positives there. FNR: false-negative "
    "rate at each class's validation operating point (Youden's J), mean over classes; 'called "
    "normal': images with a finding on which no class reaches its operating point. The papers' "
    "CXR14 holds abnormal images only, so Seyyed-Kalantari et al.'s under-diagnosis rate (the "
    "false-positive rate of a 'No Finding' label) does not apply as such; 'normal flagged' (a "
    "normal image with some class over its point) stands where a split has normal images."
)
GAP_NOTE = (
    "The largest gap of each attribute: the pair of its subgroups whose mean AUCs, over the "
    "classes defined in both, differ most; its 95% CI and two-sided p from the patient "
    "bootstrap of the difference, the p multiplied by the number of pairs it was chosen from "
    "(Bonferroni: 1 for sex and view, 10 for five age bands)."
)
CALIBRATION_NOTE = (
    "ECE: expected calibration error over {bins} equal-mass bins, per class, then the mean over "
    "classes; Brier: mean squared error of the probability. 'after': the test split's "
    "probabilities passed through per-class temperatures fitted on the validation split only "
    "(T > 1 softens over-confident probabilities). Temperature scaling is monotone per class: "
    "AUCs and the decisions at the moved operating points are unchanged."
)


def _name(run: RunResult) -> str:
    """A model's row name: the model, with its initialisation when it is not from scratch."""
    key = run.key
    init = key.init_name
    return key.model if init == INIT_NAMES["none"] else f"{key.model} ({init})"


def finished_models(
    config: Config, dataset: str, trained: dict[str, RunResult] | None = None
) -> dict[str, RunResult]:
    """Every model with a finished run on ``dataset`` in ``config``'s profile and split, its
    seeds together (the first seed's run, the others in ``seed_runs``); the models of
    ``trained`` first, in their order."""
    groups: dict[str, list[RunResult]] = {}
    for run in all_runs(config.workspace.runs, config.profile):
        key = run.key
        if run.finished and key.dataset == dataset and key.split == config.data.split:
            groups.setdefault(_name(run), []).append(run)
    found = {}
    for name, runs in groups.items():
        runs.sort(key=lambda r: r.key.seed)
        runs[0].seed_runs = runs[1:]
        found[name] = runs[0]
    first = {name: found.pop(name) for name in (trained or {}) if name in found}
    return first | found


def _seeds(run: RunResult) -> str:
    return seeds_text([r.key.seed for r in run.seeds])


def _thresholds(run: RunResult, classes: list[str]) -> np.ndarray:
    """S×K operating points of the run's seeds (NaN where a class has none)."""
    rows = []
    for r in run.seeds:
        points = ((r.metrics or {}).get("operating_points") or {}).get("thresholds") or {}
        rows.append([np.nan if points.get(c) is None else points[c] for c in classes])
    return np.array(rows, dtype=np.float64)


# --------------------------------------------------------------------------------------------
# Subgroups
# --------------------------------------------------------------------------------------------
def has_subgroups(data: PreparedDataset) -> bool:
    """True when the dataset's table has a subgroup column (NIH's CXR14 has all three)."""
    return bool(subgroups_of(data.part("test")))


def subgroup_tables(
    runs: dict[str, RunResult], data: PreparedDataset, resamples: int = RESAMPLES, seed: int = 0
) -> dict[str, pd.DataFrame]:
    """The subgroup tables of every model in ``runs`` on ``data``'s test split: ``groups``
    (one row per model and subgroup), ``gaps`` (per model and attribute) and ``classes`` (per
    model, class and subgroup)."""
    table = data.table.set_index("image_id")
    out: dict[str, list[pd.DataFrame]] = {"groups": [], "gaps": [], "classes": []}
    for name, run in runs.items():
        predictions = seed_predictions(run)
        unknown = sorted(set(predictions.image_ids) - set(table.index))
        if unknown:
            raise RunConfigMismatchError(
                f"{run.folder} was tested on images the dataset does not hold now (e.g. "
                f"{unknown[:2]}): it was trained on other data; start it over "
                f"({restart_hint(run.folder)})"
            )
        rows = table.loc[predictions.image_ids].reset_index()
        groups, classes, gaps = subgroup_analysis(
            predictions.labels,
            predictions.scores,
            subgroups_of(rows),
            rows["patient_id"],
            thresholds=_thresholds(run, predictions.classes),
            resamples=resamples,
            seed=seed,
        )
        seeds = _seeds(run)
        classes["class"] = [predictions.classes[k] for k in classes["class"]]
        for key, frame in (("groups", groups), ("gaps", gaps), ("classes", classes)):
            frame.insert(0, "model", name)
            frame.insert(1, "seeds", seeds)
            out[key].append(frame)
    return {key: pd.concat(frames, ignore_index=True) for key, frames in out.items() if frames}


def _percent(series: pd.Series) -> pd.Series:
    return series * 100.0


def _interval(low: pd.Series, high: pd.Series) -> list[str]:
    return [
        "–" if not (np.isfinite(a) and np.isfinite(b)) else f"[{a:.2f}, {b:.2f}]"
        for a, b in zip(low, high, strict=True)
    ]


def groups_for_reading(frame: pd.DataFrame) -> pd.DataFrame:
    """The subgroup table as the Markdown shows it (rates in %)."""
    shown = pd.DataFrame(
        {
            "model": frame["model"],
            "seeds": frame["seeds"],
            "attribute": frame["attribute"],
            "group": frame["group"],
            "images": frame["images"],
            "patients": frame["patients"],
            "classes (few)": [f"{c} ({f})" for c, f in zip(frame["classes"], frame["few_positives"],
                                                          strict=True)],
            "mean AUC": frame["mean_auc"],
            "95% CI": _interval(frame["ci_low"], frame["ci_high"]),
            "FNR (%)": _percent(frame["mean_fnr"]),
            "called normal (%)": _percent(frame["called_normal"]),
        }
    )  # fmt: skip
    if frame["normal_flagged"].notna().any():
        shown["normal flagged (%)"] = _percent(frame["normal_flagged"])
    shown.attrs["note"] = SUBGROUP_NOTE.format(resamples=RESAMPLES)
    return shown


def gaps_for_reading(frame: pd.DataFrame) -> pd.DataFrame:
    shown = pd.DataFrame(
        {
            "model": frame["model"],
            "seeds": frame["seeds"],
            "attribute": frame["attribute"],
            "worse": frame["worse"],
            "better": frame["better"],
            "gap (AUC points)": frame["gap"],
            "95% CI": _interval(frame["ci_low"], frame["ci_high"]),
            "p (Bonferroni)": frame["p_value"],
            "pairs": frame["pairs"],
            "classes compared": frame["classes"],
        }
    )
    shown.attrs["note"] = GAP_NOTE
    return shown


def classes_for_reading(frame: pd.DataFrame) -> pd.DataFrame:
    shown = pd.DataFrame(
        {
            "model": frame["model"],
            "class": frame["class"],
            "attribute": frame["attribute"],
            "group": frame["group"],
            "test positives": frame["positives"],
            "AUC": frame["auc"],
            "95% CI": _interval(frame["ci_low"], frame["ci_high"]),
            "FNR (%)": _percent(frame["fnr"]),
        }
    )
    shown.attrs["note"] = (
        "Per class and subgroup; a subgroup with fewer than 10 positives of a class is kept and "
        "its interval is wide. " + SUBGROUP_NOTE.format(resamples=RESAMPLES).split(". ")[0] + "."
    )
    return shown


def plot_subgroups(groups: pd.DataFrame, title: str) -> plt.Figure:
    """Mean AUC with its patient-bootstrap 95% CI per model (rows) and subgroup (markers), one
    panel per attribute; a subgroup with classes of few positives is drawn hollow."""
    attributes = [a for a in ATTRIBUTES if a in set(groups["attribute"])]
    models = list(dict.fromkeys(groups["model"]))
    height = 2.4 + 0.42 * len(models)
    fig, axes = plt.subplots(1, len(attributes), figsize=(3.6 * len(attributes) + 1.6, height),
                             sharey=True, layout="constrained", squeeze=False)  # fmt: skip
    y = np.arange(len(models))[::-1]
    for ax, attribute in zip(axes[0], attributes, strict=True):
        mine = groups[groups["attribute"] == attribute]
        present = [g for g in ATTRIBUTES[attribute] if g in set(mine["group"])]
        offsets = np.linspace(-0.28, 0.28, len(present)) if len(present) > 1 else [0.0]
        for i, (group, offset) in enumerate(zip(present, offsets, strict=True)):
            rows = mine[mine["group"] == group].set_index("model").reindex(models)
            style = series_style(i)
            mean, low, high = rows["mean_auc"], rows["ci_low"], rows["ci_high"]
            ax.errorbar(mean, y + offset, xerr=[mean - low, high - mean], fmt="none",
                        ecolor=style["color"], elinewidth=1, capsize=2)  # fmt: skip
            few = rows["few_positives"].fillna(0) > 0
            ax.scatter([], [], marker=style["marker"], s=26, color=style["color"], label=group)
            for hollow in (False, True):
                pick = (few == hollow).to_numpy()
                ax.scatter(mean[pick], (y + offset)[pick], marker=style["marker"], s=26,
                           facecolors="white" if hollow else style["color"],
                           edgecolors=style["color"], zorder=3)  # fmt: skip
        ax.set_xlabel("mean test AUC (%)")
        ax.grid(axis="x", color="0.9")
        # the legend above the panel, as its title: nothing under it, nothing over the label
        ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(0.0, 1.01), frameon=False,
                  ncols=min(5, len(present)), title=attribute, title_fontsize=9,
                  alignment="left", handletextpad=0.2, columnspacing=0.8)  # fmt: skip
    axes[0][0].set_yticks(y, models)
    fig.suptitle(f"{title}\nhollow: a subgroup with classes of fewer than 10 positives",
                 fontsize=9)  # fmt: skip
    return fig


# --------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------
def _temperatures(run: RunResult, classes: list[str]) -> list[float | None] | None:
    """The temperatures fitted when the run finished; fitted now from its validation
    predictions where it finished before they were; None when it kept none."""
    fitted = ((run.metrics or {}).get("calibration") or {}).get("temperatures")
    if fitted:
        return [fitted.get(c) for c in classes]
    try:
        val = run.predictions("val")
    except RunNotFinishedError:
        return None
    return fit_temperatures(val.labels, val.scores)


def calibration_tables(runs: dict[str, RunResult]) -> dict[str, pd.DataFrame]:
    """``models`` (one row per model: mean ECE and Brier before and after temperature scaling,
    means over seeds) and ``classes`` (per model and class, the first seed's)."""
    model_rows, class_rows = [], []
    for name, run in runs.items():
        per_seed = []
        for r in run.seeds:
            test = r.predictions()
            temperatures = _temperatures(r, test.classes)
            before = calibration_summary(test.labels, test.scores)
            after = (
                None
                if temperatures is None
                else calibration_summary(test.labels, apply_temperatures(test.scores, temperatures))
            )
            per_seed.append((test, temperatures, before, after))
        test, temperatures, before, after = per_seed[0]

        def mean(part: str, key: str, seeds=per_seed) -> float:
            values = [s[2 if part == "before" else 3] for s in seeds]
            found = [v[key] for v in values if v is not None and v[key] is not None]
            return float(np.mean(found)) if found and len(found) == len(values) else np.nan

        known = [t for t in (temperatures or []) if t is not None]
        model_rows.append(
            {
                "model": name,
                "seeds": _seeds(run),
                "ece_before": mean("before", "mean_ece"),
                "ece_after": mean("after", "mean_ece"),
                "brier_before": mean("before", "mean_brier"),
                "brier_after": mean("after", "mean_brier"),
                "temperature_median": float(np.median(known)) if known else np.nan,
                "temperature_min": float(np.min(known)) if known else np.nan,
                "temperature_max": float(np.max(known)) if known else np.nan,
                "fitted": temperatures is not None,
            }
        )
        for k, cls in enumerate(test.classes):
            class_rows.append(
                {
                    "model": name,
                    "class": cls,
                    "positives": int(test.labels[:, k].sum()),
                    "temperature": np.nan
                    if temperatures is None or temperatures[k] is None
                    else temperatures[k],
                    "ece_before": before["per_class_ece"][k],
                    "ece_after": None if after is None else after["per_class_ece"][k],
                    "brier_before": before["per_class_brier"][k],
                    "brier_after": None if after is None else after["per_class_brier"][k],
                }
            )
    return {"models": pd.DataFrame(model_rows), "classes": pd.DataFrame(class_rows)}


def calibration_for_reading(frame: pd.DataFrame) -> pd.DataFrame:
    shown = pd.DataFrame(
        {
            "model": frame["model"],
            "seeds": frame["seeds"],
            "ECE before (%)": _percent(frame["ece_before"]),
            "ECE after (%)": _percent(frame["ece_after"]),
            "Brier ×100 before": _percent(frame["brier_before"]),
            "Brier ×100 after": _percent(frame["brier_after"]),
            "T median": frame["temperature_median"],
            "T range": [
                "–" if not np.isfinite(a) else f"{a:.2f}–{b:.2f}"
                for a, b in zip(frame["temperature_min"], frame["temperature_max"], strict=True)
            ],
        }
    )
    shown.attrs["note"] = (
        CALIBRATION_NOTE.format(bins=ECE_BINS) + " A '–' after: the run kept no validation "
        "predictions (finished by an earlier version of the kit)."
    )
    return shown


def calibration_classes_for_reading(frame: pd.DataFrame) -> pd.DataFrame:
    shown = pd.DataFrame(
        {
            "model": frame["model"],
            "class": frame["class"],
            "test positives": frame["positives"],
            "T": frame["temperature"],
            "ECE before (%)": _percent(frame["ece_before"].astype(float)),
            "ECE after (%)": _percent(frame["ece_after"].astype(float)),
            "Brier ×100 before": _percent(frame["brier_before"].astype(float)),
            "Brier ×100 after": _percent(frame["brier_after"].astype(float)),
        }
    )
    shown.attrs["note"] = CALIBRATION_NOTE.format(bins=ECE_BINS) + " First seed's run."
    return shown


def plot_reliability(runs: dict[str, RunResult], title: str, columns: int = 4) -> plt.Figure:
    """Reliability diagrams, one panel per model (its first seed's run): every class's test
    probabilities pooled, in equal-mass bins, before and after temperature scaling, with the
    diagonal of perfect calibration."""
    names = list(runs)
    columns = max(1, min(columns, len(names)))
    rows = int(np.ceil(len(names) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns + 1.8, 2.6 * rows + 0.6),
                             sharex=True, sharey=True, layout="constrained",
                             squeeze=False)  # fmt: skip
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, names, strict=False):
        run = runs[name]
        test = run.predictions()
        temperatures = _temperatures(run, test.classes)
        ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls=":", label="perfect calibration")
        curves = [("before", test.scores)]
        if temperatures is not None:
            scaled = apply_temperatures(test.scores, temperatures)
            curves.append(("after temperature scaling", scaled))
        for i, (label, scores) in enumerate(curves):
            predicted, observed, _ = reliability_curve(test.labels.ravel(), scores.ravel())
            style = series_style(i)
            ax.plot(predicted, observed, color=style["color"], linestyle=style["linestyle"],
                    marker=style["marker"], markersize=3, lw=1.1, label=label)  # fmt: skip
        ax.set_title(f"{name} (seed {run.key.seed})", fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.grid(color="0.92")
    for ax in axes[-1]:
        ax.set_xlabel("mean predicted probability")
    for ax in axes[:, 0]:
        ax.set_ylabel("observed share positive")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    pooled = f"{ECE_BINS} equal-mass bins,\nall classes pooled"
    fig.legend(handles, labels, loc="outside right upper", fontsize=7, frameon=False,
               title=pooled, title_fontsize=7)  # fmt: skip
    fig.suptitle(title, fontsize=10)
    return fig


# --------------------------------------------------------------------------------------------
# The report's section
# --------------------------------------------------------------------------------------------
def report_section(results: Path, split: str, models: tuple[str, ...]) -> list[str]:
    """The report's "beyond the papers" section: the largest subgroup gaps and the
    calibration of ``models`` (the papers' two) on the papers' datasets, read from notebook
    08's tables in ``results`` (the profile's results folder), or a line saying to run it."""
    lines = [
        "## Beyond the papers: for whom the models fail, and how far their probabilities can "
        "be trusted",
        "",
        "Neither paper asks these; notebook 08 answers them for every trained model (its tables "
        "hold them all; here the papers' two).",
        "",
    ]
    notes = {"subgroup_gaps": GAP_NOTE, "calibration": CALIBRATION_NOTE.format(bins=ECE_BINS)}
    headings = {"subgroup_gaps": "Largest subgroup gap", "calibration": "Calibration"}
    shown = 0
    for key, note in notes.items():
        written = False
        for dataset in PAPER_DATASETS:
            path = results / OUTPUTS[key].files(dataset=dataset, split=split)[0]
            if not path.is_file():
                continue
            frame = pd.read_csv(path)
            mine = frame[frame["model"].isin(models)]
            lines += [
                f"### {headings[key]}, {dataset.upper()} (`{path.relative_to(results)}`)",
                "",
                markdown_table(mine if len(mine) else frame),
                "",
            ]
            shown += 1
            written = True
        if written:  # the note once, under the last of its tables
            lines += [f"_{note}_", ""]
    if not shown:
        lines += ["Not written yet: run notebook 08.", ""]
    return lines
