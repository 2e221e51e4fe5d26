"""Command line: ``python -m cxrlib <command>`` (or the ``cxr`` console script).

The commands call the same functions as the notebooks, so that scripts, batch jobs and
``torchrun`` reproduce exactly what a notebook does. Every command takes ``--profile`` and
any number of ``--set NAME=VALUE`` overrides, validated by :mod:`cxrlib.core.config`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from cxrlib.core.config import PROFILES, Config, load_config, parse_override
from cxrlib.core.errors import RunNotFinishedError, as_user_error
from cxrlib.core.workspace import Workspace, project_root

Handler = Callable[[argparse.Namespace, Config], int]
#: Commands that only read: a folder on an unmounted Google Drive is theirs to explain.
READ_ONLY = frozenset({"status"})


#: The options that set the configuration and the workspace, by name; each command takes those
#: it uses (its ``--help`` lists only its own options).
PROFILE_OPTIONS = ("profile", "set")
FOLDER_OPTIONS = ("data-root", "data-dir", "runs-dir", "results-dir")
CONFIG_OPTIONS = (*PROFILE_OPTIONS, *FOLDER_OPTIONS)


def _add_config_options(parser: argparse.ArgumentParser, options: Sequence[str]) -> None:
    """The configuration and workspace ``options`` a command takes (``CONFIG_OPTIONS``)."""
    helps = {
        "profile": f"one of {', '.join(PROFILES)} (default: paper where real data is found, "
        "else smoke)",
        "set": "override one configuration value, e.g. --set epochs=3 (repeatable); "
        "`python -m cxrlib config --reference` lists the names",
        "data-root": "the folder of a dataset's real data, e.g. --data-root cxr14=/data/nih "
        "(repeatable; or $CXRLIB_DATA_ROOTS)",
        "data-dir": "split files, phantom, caches (default ./open_data; or $CXRLIB_DATA_DIR)",
        "runs-dir": "training runs (default ./runs; or $CXRLIB_RUNS_DIR)",
        "results-dir": "tables, figures, report (default ./results; or $CXRLIB_RESULTS_DIR)",
    }
    for option in options:
        if option == "set":
            parser.add_argument(
                "--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                help=helps[option],
            )  # fmt: skip
        elif option == "data-root":
            parser.add_argument(
                "--data-root", dest="data_roots", action="append", default=[],
                metavar="NAME=DIR", help=helps[option],
            )  # fmt: skip
        else:
            parser.add_argument(f"--{option}", help=helps[option])


def workspace_from_args(args: argparse.Namespace, writing: bool = True) -> Workspace:
    """The environment's workspace with the folders and data roots the options name; a data
    root of no dataset is an error at once, and so, for a command that writes, is a folder on a
    Google Drive that is not mounted (a command that only reads says so itself)."""
    roots = getattr(args, "data_roots", [])
    workspace = Workspace.from_env().replace(
        data=getattr(args, "data_dir", None),
        runs=getattr(args, "runs_dir", None),
        results=getattr(args, "results_dir", None),
        data_roots=",".join(roots) or None,
    )
    if workspace.data_roots:
        from cxrlib.data.roots import check_data_roots  # start-up time: only with a root

        check_data_roots(workspace)
    return workspace.check() if writing else workspace


def config_from_args(args: argparse.Namespace) -> Config:
    """The validated configuration named by ``--profile``, ``--set`` and the workspace options
    (no profile: ``paper`` where real data is found, else ``smoke``)."""
    overrides = dict(parse_override(text) for text in getattr(args, "overrides", []))
    workspace = workspace_from_args(args)
    profile = getattr(args, "profile", None)
    if profile is None:
        from cxrlib.data.roots import auto_profile  # start-up time: only without --profile

        profile = auto_profile(workspace)
    config = load_config(profile, workspace=workspace, **overrides)
    if "model" in overrides:
        from cxrlib.models.registry import check_model  # start-up time: loads torch

        check_model(config.model.model)
    return config


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reference",
        action="store_true",
        help="list every parameter: what it takes, its value in each profile, what it does",
    )


def _cmd_config(args: argparse.Namespace, config: Config) -> int:
    if args.reference:
        from cxrlib.core.config import reference  # only here

        for row in reference():
            values = ", ".join(f"{p} {row[p]}" for p in PROFILES)
            print(f"{row['name']} ({row['takes']}; {values}): {row['help']}")
        return 0
    print(config.to_json())
    return 0


def _cmd_env(args: argparse.Namespace, config: Config) -> int:
    from cxrlib.app.envinfo import environment_report  # start-up time

    print(environment_report(config).to_string(index=False))
    return 0


DATASET_HELP = "cxr14, cxr11, or csv:/path/to/labels.csv (your own images; see the README)"


def _add_phantom_arguments(parser: argparse.ArgumentParser) -> None:
    from cxrlib.data.datasets import REGISTRY  # start-up time

    phantoms = [name for name, definition in REGISTRY.items() if definition.phantom]
    parser.add_argument("--dataset", choices=[*phantoms, "all"], default="all")
    parser.add_argument("--num-images", type=int, help="images per dataset (default: profile)")
    parser.add_argument("--image-size", type=int, default=256, help="pixels (default 256)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="output folder (default: open_data/phantom)")


def _cmd_phantom(args: argparse.Namespace, config: Config) -> int:
    from cxrlib.data.datasets import dataset_names  # start-up time
    from cxrlib.data.phantom import PhantomSpec, generate_phantom  # start-up time

    out = Path(args.out) if args.out else config.workspace.data / "phantom"
    for dataset in dataset_names(args.dataset):
        spec = PhantomSpec(
            dataset,
            num_images=args.num_images or config.data.phantom_images,
            image_size=args.image_size,
            seed=args.seed,
        )
        print(generate_phantom(spec, out))
    return 0


def _add_dataset_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="all", help=f"{DATASET_HELP}, or all (default)")
    parser.add_argument("--workers", type=int, help="decoding processes (default: CPU count)")


def _cmd_prepare(args: argparse.Namespace, config: Config) -> int:
    from cxrlib.data.datasets import dataset_names  # start-up time
    from cxrlib.data.prepare import prepare_dataset  # start-up time

    for dataset in dataset_names(args.dataset):
        data = prepare_dataset(config, dataset, workers=args.workers)
        sizes = data.table["part"].value_counts().to_dict()
        print(
            f"{dataset}: {len(data.table)} images, {config.data.split} split {sizes}, "
            f"cache {data.cache.folder}"
        )
    return 0


def _add_download_arguments(parser: argparse.ArgumentParser) -> None:
    from cxrlib.data.datasets import REGISTRY  # start-up time

    names = [name for name, definition in REGISTRY.items() if definition.download]
    parser.add_argument("dataset", choices=[*names, "all"], help="which dataset to download")


def _cmd_download(args: argparse.Namespace, config: Config) -> int:
    from cxrlib.data.datasets import dataset_names  # start-up time
    from cxrlib.data.download import download  # start-up time

    for dataset in dataset_names(args.dataset):
        download(dataset, config.workspace)
    return 0


def _cmd_data(args: argparse.Namespace, config: Config) -> int:
    from cxrlib.data.roots import data_plan  # start-up time

    print(f"profile {config.profile}")
    for line in data_plan(config):
        print(line)
    return 0


def _add_badges_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--write", action="store_true", help="rewrite the stale files")


def _cmd_badges(args: argparse.Namespace, config: Config) -> int:
    from cxrlib.app.colab import refresh  # start-up time

    stale = refresh(project_root(), write=args.write)
    for path in stale:
        print(f"{'rewrote' if args.write else 'stale'}: {path}")
    return 1 if stale and not args.write else 0


def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help=DATASET_HELP)
    parser.add_argument("--model", help="registered model (default: the profile's MODEL)")
    parser.add_argument(
        "--restart",
        action="store_true",
        help="discard the run's files and train it over (says so when the run had finished)",
    )
    parser.add_argument("--max-steps", type=int, help="stop (resumably) after this many steps")
    parser.add_argument("--time-limit-minutes", type=float, help="stop (resumably) after this long")


def _cmd_train(args: argparse.Namespace, config: Config) -> int:
    from cxrlib.train.run import train_run  # start-up time

    if args.model:
        config = config.override(model=args.model)
    result = train_run(
        config,
        args.dataset,
        restart=args.restart,
        max_steps=args.max_steps,
        time_limit_minutes=args.time_limit_minutes,
    )
    if result.finished:
        test = result.metrics["test"]
        print(f"finished: {result.folder}\ntest mean AUC {test['mean_auc']:.2f}")
    else:
        print(f"stopped early, resumable: {result.folder}")
    return 0


def _add_metrics_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="a run folder (runs/<profile>/<dataset>/...)")


def _cmd_metrics(args: argparse.Namespace, config: Config) -> int:
    from cxrlib.train.results import read_run  # start-up time

    result = read_run(Path(args.run))
    if not result.finished:
        raise RunNotFinishedError(
            f"{args.run} has no metrics.json (not finished): train it with python -m cxrlib "
            f"train, or run again the command that started it to resume it"
        )
    keys = ("model", "dataset", "split", "test")
    print(json.dumps({k: result.metrics[k] for k in keys}, indent=2))
    return 0


def _add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="a finished run folder, or a model file (best.pt)")
    parser.add_argument("images", nargs="+", help="X-ray files: PNG, JPEG or DICOM, any size")
    parser.add_argument("--cam", metavar="DIR", help="write Grad-CAM overlays of the top classes")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print JSON: per image its warnings and, per class, probability, operating point "
        "and decision (default: a table of the same; warnings on stderr)",
    )
    parser.add_argument(
        "--csv", action="store_true", help="print CSV: one row per image, one probability per class"
    )
    parser.add_argument(
        "--calibrated",
        action="store_true",
        help="probabilities after the temperatures fitted on the validation split (the model "
        "file's calibration); the operating points move with them, so decisions stay the same",
    )


def _cmd_predict(args: argparse.Namespace, config: Config) -> int:
    from cxrlib.app.predict import decisions_text, predict_files, predictions_table  # start-up

    result = predict_files(
        Path(args.run), args.images, cam_dir=args.cam, calibrated=args.calibrated
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for image in result["images"]:
        for warning in image["warnings"]:
            print(f"warning: {image['image']}: {warning}", file=sys.stderr)
    if args.csv:
        print(predictions_table(result).to_csv(index=False), end="")
    else:
        print(decisions_text(result), end="")
    return 0


def _add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="a finished run folder, or a model file (best.pt)")
    parser.add_argument("--format", required=True, choices=("onnx", "torchscript", "safetensors"))
    parser.add_argument(
        "--out",
        help="file to write; for safetensors a folder (default: in the current folder, "
        "named after the model and its data, e.g. ctranscnn_tiny-cxr14-paper.onnx)",
    )


def _cmd_export(args: argparse.Namespace, config: Config) -> int:
    from cxrlib.app.export import export_model  # start-up time

    path = export_model(args.run, args.format, args.out)
    if args.format == "safetensors":
        print(
            f"written: {path.parent}/ (model.safetensors, config.json, README.md): load it "
            f"with cxrlib.from_pretrained({str(path.parent)!r}) or timm"
        )
    else:
        print(f"written: {path} (and {path.name}.json: classes, input size, normalisation)")
    return 0


def _add_status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "folder",
        nargs="?",
        help="a runs folder (RUNS_DIR), a profile's folder in it, or one run "
        "(default: --runs-dir, else ./runs)",
    )


def _cmd_status(args: argparse.Namespace, config: Config) -> int:
    from cxrlib.app.status import status_lines  # start-up time

    folder = Path(args.folder) if args.folder else config.workspace.runs
    print("\n".join(status_lines(folder, config.workspace)))
    return 0


def _add_hours_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--models", nargs="+", help="registered models (default: CTransCNN, CheXNet)"
    )
    parser.add_argument(
        "--dataset",
        nargs="+",
        default=["cxr11", "cxr14"],
        help="cxr11, cxr14 and/or csv:/path/to/labels.csv",
    )


def _cmd_hours(args: argparse.Namespace, config: Config) -> int:
    from cxrlib.paper.costs import hours_table  # start-up time
    from cxrlib.paper.items import MAIN_MODELS  # start-up time

    table = hours_table(args.models or list(MAIN_MODELS), args.dataset)
    print(table.to_markdown(index=False))
    return 0


#: Every command: its summary, its handler, what adds its own arguments, and the configuration
#: and workspace options it takes (``CONFIG_OPTIONS``).
COMMANDS: dict[
    str,
    tuple[str, Handler, Callable[[argparse.ArgumentParser], None] | None, tuple[str, ...]],
] = {
    "config": (
        "print the resolved, validated configuration as JSON (--reference: every parameter)",
        _cmd_config,
        _add_config_arguments,
        CONFIG_OPTIONS,
    ),
    "env": (
        "report Python, torch, GPU, package versions and data roots",
        _cmd_env,
        None,
        CONFIG_OPTIONS,
    ),
    "badges": (
        "check (or --write) the notebooks' Colab/Kaggle badges and setup cells and the README's",
        _cmd_badges,
        _add_badges_arguments,
        (),
    ),
    "data": (
        "say which data each dataset will use (real: where found; phantom)",
        _cmd_data,
        None,
        CONFIG_OPTIONS,
    ),
    "download": (
        "download CXR14 (NIH) or CXR11 (RANZCR) from Kaggle with kagglehub (resumes)",
        _cmd_download,
        _add_download_arguments,
        ("data-dir",),
    ),
    "phantom": (
        "write phantom CXR14/CXR11 datasets in the real Kaggle layouts",
        _cmd_phantom,
        _add_phantom_arguments,
        (*PROFILE_OPTIONS, "data-dir"),
    ),
    "train": (
        "train (or resume) one model on one dataset; a finished run is not redone",
        _cmd_train,
        _add_train_arguments,
        CONFIG_OPTIONS,
    ),
    "metrics": (
        "print the test metrics of a finished run (JSON)",
        _cmd_metrics,
        _add_metrics_arguments,
        (),
    ),
    "predict": (
        "class probabilities and decisions of a trained model for X-ray files (PNG/JPEG/DICOM)",
        _cmd_predict,
        _add_predict_arguments,
        (),
    ),
    "export": (
        "write a trained model as ONNX, TorchScript or safetensors (a Hugging Face folder)",
        _cmd_export,
        _add_export_arguments,
        (),
    ),
    "status": (
        "how far every run under a runs folder got (after a reconnect, when the output is gone)",
        _cmd_status,
        _add_status_arguments,
        ("runs-dir",),
    ),
    "hours": (
        "expected GPU hours of paper-recipe runs on T4, L4, A100 and H100 (basis stated)",
        _cmd_hours,
        _add_hours_arguments,
        (),
    ),
    "prepare": (
        "locate the data, map the split files, check labels, build the image cache",
        _cmd_prepare,
        _add_dataset_argument,
        CONFIG_OPTIONS,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cxrlib",
        description="CTransCNN / CheXNet replication kit: the notebooks' steps as commands.",
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name, (summary, handler, add_arguments, options) in COMMANDS.items():
        command = sub.add_parser(name, help=summary, description=summary)
        if add_arguments is not None:
            add_arguments(command)
        _add_config_options(command, options)
        command.set_defaults(handler=handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Expected errors (:class:`~cxrlib.core.errors.UserError`: bad data, a missing
    or mismatched run, a NaN loss, ...) print one line naming the file and the fix, exit 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if hasattr(args, "profile"):
            config = config_from_args(args)
        else:  # a command with no profile reads only the workspace's folders
            writing = args.command not in READ_ONLY
            config = load_config("smoke", workspace=workspace_from_args(args, writing))
        return args.handler(args, config)
    except Exception as err:  # an expected one is a sentence; any other keeps its traceback
        expected = as_user_error(err)
        if expected is None:
            raise
        print(f"error: {' '.join(str(expected).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
