"""Statistics over seeds, small classes, and figures a reader can use."""

from __future__ import annotations

import itertools
import json

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgb

from cxrlib.core.config import ConfigError, load_config
from cxrlib.paper.figures import plot_macro_roc, plot_radar, plot_training_curves, radial_limits
from cxrlib.paper.items import seeded_models, strongest_baselines
from cxrlib.paper.outputs import save_figure, save_table
from cxrlib.paper.style import PALETTE, series_style
from cxrlib.paper.tables import auc_comparison, metrics_table, seed_predictions, variant_table
from tests.conftest import isolate_outputs

matplotlib.use("Agg")

TINY = {"phantom_images": 120, "epochs": 2, "batch_size": 16}


def test_the_seeds_parameters():
    assert load_config("paper").train.seeds == 3 and load_config("smoke").train.seeds == 2
    assert seeded_models(load_config("smoke").train.seed_models) == (
        "ctranscnn_tiny",
        "chexnet_tiny",
    )
    paper = seeded_models(load_config("paper").train.seed_models)
    assert paper[:2] == ("ctranscnn_tiny", "chexnet_tiny") and len(paper) == 4
    assert strongest_baselines() == ("repvgg_a2", "conformer_tiny")  # best published means
    with pytest.raises(ConfigError, match="SEEDS must be in"):
        load_config("smoke", seeds=0)
    with pytest.raises(ConfigError, match="SEED_MODELS must be one of"):
        load_config("smoke", seed_models="everything")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """Two smoke seeds of CTransCNN and one run of ResNet-34 on phantom CXR11."""
    from cxrlib.paper.experiments import train_models

    root = tmp_path_factory.mktemp("seeds")
    with pytest.MonkeyPatch.context() as patch:
        isolate_outputs(patch, root)
        config = load_config("smoke", **TINY)
        runs = train_models(config, "cxr11", ["ctranscnn_tiny", "resnet34"], progress=False)
    return runs, root


@pytest.mark.slow
def test_mean_and_sd_over_two_seeds_come_from_the_runs_files(seeded):
    runs, _ = seeded
    ctranscnn = runs["ctranscnn_tiny"]
    assert [r.folder.name for r in ctranscnn.seeds] == ["seed0", "seed1"]
    assert len(runs["resnet34"].seeds) == 1  # not a seeded model: one run
    files = [json.loads((r.folder / "metrics.json").read_text()) for r in ctranscnn.seeds]
    aucs = np.array([m["test"]["mean_auc"] for m in files])
    assert aucs[0] != aucs[1]  # the seeds differ
    row = metrics_table(runs).set_index("model").loc["ctranscnn_tiny"]
    assert row["seeds"] == 2
    assert row["mean AUC"] == pytest.approx(aucs.mean(), abs=0.006)
    assert row["sd (seeds)"] == pytest.approx(aucs.std(ddof=1), abs=0.006)
    per_class = auc_comparison(runs, "cxr11")
    assert per_class["ctranscnn_tiny"].iloc[-1] == pytest.approx(aucs.mean(), abs=0.006)
    assert "ctranscnn_tiny sd (2 seeds)" in per_class
    assert not any(c.startswith("resnet34 sd") for c in per_class)  # one run: no spread
    # paired comparisons use every seed's predictions: the difference of the seeds' mean
    assert seed_predictions(ctranscnn).scores.shape[0] == 2
    files_auc = runs["resnet34"].metrics["test"]["mean_auc"]
    table = variant_table(runs, "ctranscnn_tiny", "cxr11").set_index("model")
    assert table.loc["resnet34", "Δ vs ctranscnn_tiny"] == pytest.approx(
        files_auc - aucs.mean(), abs=0.006
    )
    assert table.loc["resnet34", "p (DeLong)"] != "–"


@pytest.mark.slow
def test_small_classes_are_marked_and_listed(seeded, monkeypatch):
    runs, root = seeded
    monkeypatch.setenv("CXRLIB_RESULTS_DIR", str(root / "results"))
    table = auc_comparison(runs, "cxr11")
    labels = runs["ctranscnn_tiny"].predictions().labels
    positives = dict(zip(table["class"][:-1], labels.sum(axis=0), strict=True))
    small = {name for name, count in positives.items() if count < 10}
    assert small, "the tiny phantom test set has classes with few positives"
    marked = set(table.loc[table["small class"] != "", "class"])
    assert marked == small and table["class"].iloc[-1] == "Mean"  # the mean keeps them
    assert list(table["test positives"][:-1]) == [int(positives[c]) for c in positives]
    name = sorted(small)[0]
    assert f"{name} ({positives[name]})" in table.attrs["note"]
    path = save_table(table, "small_classes_check", load_config("smoke"))
    assert "fewer than 10 test positives" in path.with_suffix(".md").read_text()


def test_thirteen_series_have_distinct_colours():
    styles = [series_style(i) for i in range(16)]
    colours = [to_rgb(s["color"]) for s in styles]
    assert len(set(colours)) == 16 == len(PALETTE)
    distances = [
        np.linalg.norm(np.subtract(a, b)) for i, a in enumerate(colours) for b in colours[i + 1 :]
    ]
    assert min(distances) > 0.15  # no two near-identical colours
    # neighbours differ in line style or marker too (grey print, colour-blind readers)
    for a, b in itertools.pairwise(styles):
        assert (a["linestyle"], a["marker"]) != (b["linestyle"], b["marker"])


@pytest.mark.slow
def test_figures_distinct_series_legends_outside_integer_epochs_and_pdf_twins(seeded, monkeypatch):
    runs, root = seeded
    monkeypatch.setenv("CXRLIB_RESULTS_DIR", str(root / "results"))
    thirteen = {f"model {i}": runs["resnet34"] for i in range(13)}
    for figure in (plot_macro_roc(thirteen, "t"), plot_radar(thirteen, "t")):
        ax = figure.axes[0]
        lines = [line for line in ax.get_lines() if line.get_label() in thirteen]
        lines = lines or [line for line in ax.get_lines() if not line.get_label().startswith("_")]
        assert len({to_rgb(line.get_color()) for line in lines[:13]}) == 13
        figure.canvas.draw()
        legend = ax.get_legend().get_window_extent()
        assert legend.x0 >= ax.get_window_extent().x1 - 1  # beside the data, not over it
    curves = plot_training_curves(runs, "t")
    assert all(float(t).is_integer() for t in curves.axes[0].get_xticks())
    radar = plot_radar(runs, "t")
    values = np.concatenate(  # the radar draws each model's mean over its seeds
        [
            np.mean([s.metrics["test"]["per_class_auc"] for s in r.seeds], axis=0)
            for r in runs.values()
        ]
    )
    low, high = radar.axes[0].get_ylim()
    assert low <= np.nanmin(values) and high >= np.nanmax(values) and (low > 0 or high < 100)
    path = save_figure(curves, "curves_check", load_config("smoke"))
    assert path.with_suffix(".pdf").read_bytes().startswith(b"%PDF")
    from PIL import Image

    assert round(Image.open(path).info["dpi"][0]) == 300


def test_radial_limits_follow_the_data():
    assert radial_limits(np.array([62.0, 71.0, 88.0])) == (55.0, 90.0)
    assert radial_limits(np.array([50.0, 50.0])) == (45.0, 50.0)
    assert radial_limits(np.array([3.0, 99.0])) == (0.0, 100.0)


def test_notebooks_write_figures_only_through_save_figure(project_root):
    """save_figure (PNG + PDF twin) is the one way figures are written: never savefig."""
    import nbformat

    for path in sorted((project_root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        source = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells)
        assert "savefig" not in source, f"{path.name}: use cxrlib.paper.outputs.save_figure"


@pytest.mark.slow
def test_tables_a_person_can_read(seeded, monkeypatch):
    """The papers' values always in their column, a Δ only for comparable runs, why a run is
    not comparable said once under the table, CI columns headed "first seed", the p-values'
    condition stated, a missing value "–" and never "nan"."""
    runs, root = seeded
    monkeypatch.setenv("CXRLIB_RESULTS_DIR", str(root / "results"))
    table = auc_comparison(runs, "cxr11")
    assert table.loc[table["class"] == "Mean", "resnet34 published"].item() == 79.34
    assert set(table["resnet34 Δ"]) == {"–"}  # phantom runs: no difference
    assert "ctranscnn_tiny 95% CI (first seed)" in table
    note = table.attrs["note"]
    assert note.count("phantom data") == 1 and "(all 2 models)" in note
    assert "authors trained in fp32" in note
    assert not any("comparable" in str(column) for column in table.columns)
    assert max(len(str(c)) for c in table.iloc[0]) < 40  # no reason repeated in the cells
    paired = variant_table(runs, "ctranscnn_tiny", "cxr11")
    assert "treat the trained models as fixed" in paired.attrs["note"]
    assert "Δ 95% CI (seeds and images)" in paired  # the comparison with training variance
    config = load_config("smoke")
    for name, frame in (("readable_auc", table), ("readable_paired", paired)):
        text = save_table(frame, name, config).with_suffix(".md").read_text()
        csv = save_table(frame, name, config).read_text()
        assert "nan" not in text.lower() and "nan" not in csv.lower()


def test_the_papers_p_values_and_printed_mean_discrepancies_are_facts_shown():
    from cxrlib.paper.published import printed_mean_notes, published_p_value

    assert published_p_value("resnet50", "cxr11") == 0.0435
    assert published_p_value("conformer_tiny", "cxr11") is None
    notes = " ".join(printed_mean_notes("cxr11"))
    assert (
        "chexnet_m2: the paper prints a mean AUC of 81.50; its per-class values average 81.43"
        in notes
    )
    assert "convnext_tiny: CheXNet's table prints 75.97, CTransCNN's comparison 75.96" in notes


def _drawn_texts(fig):
    """The texts matplotlib draws: every visible, non-empty Text, but of the tick labels only
    those of ticks inside their axis's view limits (the others exist and are not drawn)."""
    ticks = {}
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks():
                inside = low - 1e-9 <= tick.get_loc() <= high + 1e-9
                ticks[id(tick.label1)] = ticks[id(tick.label2)] = inside
    return [
        t for t in fig.findobj(matplotlib.text.Text)
        if t.get_visible() and t.get_text().strip() and ticks.get(id(t), True)
    ]  # fmt: skip


def _overlapping_texts(fig) -> list[tuple[str, str]]:
    """Pairs of drawn texts of ``fig`` whose boxes overlap."""
    fig.canvas.draw()  # (polar axes included: the radar's class names and ring values)
    renderer = fig.canvas.get_renderer()
    boxes = [(t, t.get_window_extent(renderer)) for t in _drawn_texts(fig)]
    boxes = [(t, box.shrunk(0.98, 0.9)) for t, box in boxes if box.width > 0]
    return [
        (a.get_text(), b.get_text())
        for (a, ba), (b, bb) in itertools.combinations(boxes, 2)
        # two rotated labels side by side: their upright boxes overlap, the letters do not
        if ba.overlaps(bb) and not (a.get_rotation() and b.get_rotation())
    ]


def _texts_hidden_by_lines(fig) -> list[str]:
    """Drawn texts that a data line crosses without the text standing on an opaque box above
    it: a tick label written over the curves (as the radar's ring values once were)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    hidden = []
    for text in _drawn_texts(fig):
        box = text.get_window_extent(renderer).shrunk(0.9, 0.8)
        patch = text.get_bbox_patch()
        shielded = patch is not None and (patch.get_alpha() or 1) >= 0.8
        for ax in fig.axes:
            for line in ax.get_lines():
                xs, ys = line.get_xdata(orig=False), line.get_ydata(orig=False)
                if len(xs) < 2 or not line.get_visible():
                    continue
                # the line as drawn: each segment sampled in data space, then to the screen
                t = np.linspace(0, 1, 40)[:, None]
                x = (np.asarray(xs[:-1], float) * (1 - t) + np.asarray(xs[1:], float) * t).ravel()
                y = (np.asarray(ys[:-1], float) * (1 - t) + np.asarray(ys[1:], float) * t).ravel()
                points = line.get_transform().transform(np.column_stack([x, y]))
                px, py = points[:, 0], points[:, 1]
                inside = ((box.x0 <= px) & (px <= box.x1) & (box.y0 <= py) & (py <= box.y1)).any()
                if inside and not (shielded and text.get_zorder() > line.get_zorder()):
                    hidden.append(f"{text.get_text()!r} under {line.get_label()!r}")
                    break
    return hidden


def _subgroup_rows():
    """Subgroup rows of three models on synthetic scores (every attribute, a sparse band)."""
    from cxrlib.evaluate.subgroups import age_bands, subgroup_analysis

    rng = np.random.default_rng(0)
    n = 600
    y = (rng.random((n, 4)) < 0.2).astype(int)
    groups = {
        "sex": np.where(rng.random(n) < 0.5, "F", "M"),
        "age": age_bands(rng.integers(1, 90, n)),
        "view": np.where(rng.random(n) < 0.45, "AP", "PA"),
    }
    frames = []
    for model in ("ctranscnn_tiny", "chexnet_tiny", "resnet50"):
        scores = 1 / (1 + np.exp(-(rng.normal(size=y.shape) + 1.2 * y)))
        table, _, _ = subgroup_analysis(y, scores, groups, np.arange(n), resamples=100)
        frames.append(table.assign(model=model))
    return pd.concat(frames, ignore_index=True)


@pytest.mark.slow
def test_figures_have_no_overlapping_text(seeded, monkeypatch):
    """The ablation dot plot's labels (once a two-line y-label that ran into the title), the
    ROC, radar and training figures: no two texts drawn over each other, and no label under
    a data line (the radar's ring values once sat on the curves and on the class names)."""
    from cxrlib.paper.beyond import plot_reliability, plot_subgroups
    from cxrlib.paper.figures import plot_mean_auc

    runs, _ = seeded
    figures = {
        "mean AUC": plot_mean_auc(runs, "ctranscnn ablation, cxr11: phantom data, not comparable"),
        "training": plot_training_curves(
            runs, "cxr11: phantom data, not comparable with the paper"
        ),
        "macro ROC": plot_macro_roc(runs, "cxr11: phantom data"),
        "radar": plot_radar(runs, "cxr11: phantom data, not comparable with the paper"),
        "reliability": plot_reliability(runs, "cxr11: phantom data, not comparable"),
        "subgroups": plot_subgroups(_subgroup_rows(), "cxr14: phantom data, not comparable"),
    }
    for name, fig in figures.items():
        assert _overlapping_texts(fig) == [], name
        assert _texts_hidden_by_lines(fig) == [], name


def test_the_overlap_checks_catch_the_old_radar():
    """The radar as it was drawn before (ring values at matplotlib's default place, on the
    curves, the outer value on a class name): both checks fail on it."""
    import matplotlib.pyplot as plt

    classes = ["ETT-Abnormal", "ETT-Borderline", "ETT-Normal", "NGT-Abnormal", "NGT-Borderline"]
    angles = np.linspace(0, 2 * np.pi, len(classes), endpoint=False)
    fig, ax = plt.subplots(figsize=(8, 7), subplot_kw={"projection": "polar"})
    for i, values in enumerate(([95, 90, 80, 60, 70], [99, 97, 60, 55, 65])):
        ax.plot(np.append(angles, 0), [*values, values[0]], label=f"model {i}")
    ax.set_xticks(angles, classes, fontsize=7)
    ax.set_ylim(40, 100)
    problems = _texts_hidden_by_lines(fig) + [" ".join(p) for p in _overlapping_texts(fig)]
    assert problems, "the old radar passes the checks: they would not see its overlaps"
    plt.close(fig)
