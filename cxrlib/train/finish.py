"""The end of a run: its tested weights scored on the test split, its files completed.

``TEST_CHECKPOINT`` names the weights that are the run's result: ``best`` (the epoch with the
best validation mean AUC, in ``best.pt``) or ``last`` (the final epoch, written as ``final.pt``).
Both are scored, so a table can show the difference; the other one's metrics are kept in
``metrics.json`` under ``other_checkpoint``. Predictions are written before ``metrics.json``,
which marks the run finished; then the resume checkpoints go.
"""

from __future__ import annotations

from cxrlib.evaluate.calibration import (
    ECE_BINS,
    TEMPERATURE_METHOD,
    apply_temperatures,
    calibration_summary,
    fit_temperatures,
)
from cxrlib.evaluate.metrics import YOUDEN, evaluate, operating_points
from cxrlib.evaluate.statistics import bootstrap_auc_ci
from cxrlib.models.attention import attention_path
from cxrlib.models.registry import get_spec
from cxrlib.train.loop import Trainer
from cxrlib.train.model import build_run_model, run_card
from cxrlib.train.results import Predictions, RunResult, read_run, write_metrics, write_predictions
from cxrlib.train.runtime import predict

#: The other checkpoint of each choice of ``TEST_CHECKPOINT``.
OTHER = {"best": "last", "last": "best"}


def _scores(trainer: Trainer, model, part: str):
    data = trainer.data
    return predict(model, data.cache.pixels, data.cache_rows(part), trainer.runtime)


def _tested_models(trainer: Trainer) -> dict:
    """The weights of both choices: ``best`` (from ``best.pt``) and ``last`` (in memory)."""
    best = trainer.saver.load_best()
    model = build_run_model(trainer.config, len(trainer.data.classes), initialise=False)
    model.load_state_dict(best["model"])
    model.to(trainer.runtime.device)
    return {"best": (model, best), "last": (trainer.model, None)}


def _run_facts(trainer: Trainer) -> dict:
    """What ``metrics.json`` says about the run besides its scores."""
    config, data, state = trainer.config, trainer.data, trainer.state
    facts = {
        "dataset": data.dataset,
        "classes": list(data.classes),
        "model": config.model.model,
        "split": config.data.split,
        "data_source": data.source,  # resolved: phantom or real
        "data": trainer.settings["data"],
        "runtime": trainer.settings["runtime"],
        "code": trainer.settings.get("code"),
        "epochs_run": state.epoch,
        "steps": state.step,
        "dropped_missing": data.dropped_missing,
        "warnings": state.warnings,
        "overflow_steps": state.overflow_steps,  # fp16 steps the gradient scaler skipped
        "history": state.history,  # epochs.csv's rows: a damaged epochs.csv is rewritten from here
    }
    arch = get_spec(config.model.model).arch
    if arch is not None and arch.attention == "mmaef":
        facts["mmaef_attention"] = attention_path()
    return facts


def calibration(classes: list[str], val_labels, val_scores, test_labels, test_scores) -> dict:
    """Temperatures fitted per class on the validation split, and the test split's expected
    calibration error and Brier score before and after them (:mod:`cxrlib.evaluate.calibration`)."""
    temperatures = fit_temperatures(val_labels, val_scores)
    return {
        "method": TEMPERATURE_METHOD,
        "temperatures": dict(zip(classes, temperatures, strict=True)),
        "bins": ECE_BINS,
        "test_before": calibration_summary(test_labels, test_scores),
        "test_after": calibration_summary(
            test_labels, apply_temperatures(test_scores, temperatures)
        ),
    }


def evaluate_test(trainer: Trainer) -> RunResult:
    """Score the tested weights (``TEST_CHECKPOINT``) on the test part, and the other choice
    too; write predictions, the model file's card, then ``metrics.json``."""
    config, data, run, saver = trainer.config, trainer.data, trainer.run, trainer.saver
    choice = config.train.test_checkpoint
    models = _tested_models(trainer)
    test = data.part("test")
    labels = test[list(data.classes)].to_numpy()
    scores = {name: _scores(trainer, model, "test") for name, (model, _) in models.items()}
    tested, best = models[choice][0], models["best"][1]
    val, val_labels = data.part("val"), data.labels("val")
    val_scores = _scores(trainer, tested, "val")
    thresholds = operating_points(val_labels, val_scores)
    write_predictions(
        run, Predictions(test["image_id"].tolist(), list(data.classes), labels, scores[choice])
    )
    write_predictions(
        run,
        Predictions(val["image_id"].tolist(), list(data.classes), val_labels, val_scores),
        part="val",
    )
    metrics = _run_facts(trainer) | {
        "best_epoch": best["epoch"],
        "test_checkpoint": choice,
        "tested_epoch": best["epoch"] if choice == "best" else trainer.state.epoch,
        "val": best["val"] if choice == "best" else trainer.validate(tested),
        "test": evaluate(labels, scores[choice]),
        "test_ci": bootstrap_auc_ci(labels, scores[choice], resamples=1000, seed=config.train.seed),
        "operating_points": {
            "method": YOUDEN,
            "thresholds": dict(zip(data.classes, thresholds, strict=True)),
        },
        "calibration": calibration(
            list(data.classes), val_labels, val_scores, labels, scores[choice]
        ),
        "other_checkpoint": {
            "checkpoint": OTHER[choice],
            "epoch": best["epoch"] if choice == "last" else trainer.state.epoch,
            "test": evaluate(labels, scores[OTHER[choice]]),
        },
    }
    card_results = {
        k: metrics[k] for k in ("test", "test_ci", "operating_points", "calibration", "epochs_run")
    }
    if choice == "best":
        saver.complete_best_card(card_results)
    else:
        card = run_card(config, trainer.settings, list(data.classes))
        card |= card_results | {"val": metrics["val"], "epoch": trainer.state.epoch}
        saver.write_model_file(run.path / "final.pt", trainer.model.state_dict(), card)
        metrics["model_file"] = "final.pt"
    saver.keep_best_only()
    write_metrics(run, metrics)
    saver.drop_resume_checkpoints()
    ci = metrics["test_ci"]
    run.log(
        f"finished: {choice} epoch {metrics['tested_epoch']}, test mean AUC "
        f"{metrics['test']['mean_auc']:.2f} [{ci['mean_low']:.2f}, {ci['mean_high']:.2f}]"
    )
    return read_run(run.path)
