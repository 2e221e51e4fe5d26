"""Command line: ``python -m cxrlib <command>`` (or the ``cxr`` console script).

The commands call the same functions as the notebooks, so that scripts, batch jobs and
``torchrun`` reproduce exactly what a notebook does. Every command takes ``--profile`` and
any number of ``--set NAME=VALUE`` overrides, validated by :mod:`cxrlib.config`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from cxrlib.config import PROFILES, Config, ConfigError, load_config, parse_override

Handler = Callable[[argparse.Namespace, Config], int]


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile", default="smoke", help=f"one of {', '.join(PROFILES)} (default: smoke)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override one configuration value, e.g. --set epochs=3 (repeatable); "
        "`python -m cxrlib config` lists the names",
    )
    parser.add_argument("--cxr14-root", help="NIH ChestX-ray14 Kaggle folder (or $CXR14_ROOT)")
    parser.add_argument("--cxr11-root", help="RANZCR CLiP Kaggle folder (or $CXR11_ROOT)")


def config_from_args(args: argparse.Namespace) -> Config:
    """The validated configuration named by ``--profile``, ``--set`` and the root options."""
    overrides = dict(parse_override(text) for text in args.overrides)
    if args.cxr14_root:
        overrides["cxr14_root"] = args.cxr14_root
    if args.cxr11_root:
        overrides["cxr11_root"] = args.cxr11_root
    return load_config(args.profile, **overrides)


def _cmd_config(args: argparse.Namespace, config: Config) -> int:
    print(config.to_json())
    return 0


def _cmd_env(args: argparse.Namespace, config: Config) -> int:
    from cxrlib.envinfo import environment_report

    print(environment_report(config).to_string(index=False))
    return 0


COMMANDS: dict[str, tuple[str, Handler, Callable[[argparse.ArgumentParser], None] | None]] = {
    "config": ("print the resolved, validated configuration as JSON", _cmd_config, None),
    "env": ("report Python, torch, GPU, package versions and data roots", _cmd_env, None),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cxrlib",
        description="CTransCNN / CheXNet replication kit: the notebooks' steps as commands.",
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name, (summary, handler, add_arguments) in COMMANDS.items():
        command = sub.add_parser(name, help=summary, description=summary)
        _add_config_options(command)
        if add_arguments is not None:
            add_arguments(command)
        command.set_defaults(handler=handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return args.handler(args, config)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
