"""The packages an environment already has, as pip constraints (``name==version``), so that
installing the kit changes none of them.

Colab and Kaggle come with hundreds of packages whose versions fit each other (Kaggle even pins
``protobuf==5.29.5``, "greater than v5.29.5 causes issues with numerous packages"). Installing
the kit there with every installed package as a constraint either leaves them all as they are
or fails with pip's explanation -- never a silent upgrade that breaks the platform. The
notebooks' setup cell and ``./run_all.sh`` run this file as a script from the clone, before the
kit is importable, so it uses the standard library alone.

Usage: ``python cxrlib/app/preinstalled.py [--exclude NAME ...] > constraints.txt``;
``--check-floors pyproject.toml`` instead says whether the torch and torchvision already there
are as new as the kit requires (the kit never replaces them; ``./run_all.sh`` asks this first, so
that an old torch gets a sentence saying what to do rather than pip's resolution failure).
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib.metadata import PackageNotFoundError, distributions, version
from pathlib import Path

#: Installed once and never replaced by the kit (Colab's and Kaggle's CUDA builds among them).
NEVER_REPLACED = ("torch", "torchvision")


def normalise(name: str) -> str:
    """A distribution's name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(exclude: tuple[str, ...] = ("cxrlib",)) -> list[str]:
    """``name==version`` of every installed distribution (local version labels such as
    ``+cu128`` kept: pip matches them), sorted; ``exclude`` left out. A distribution installed
    twice (e.g. in the user site and the system's, as on Kaggle) is pinned at the version found
    first on ``sys.path``: the one Python imports and pip sees as installed."""
    skip = {normalise(n) for n in exclude}
    found: dict[str, str] = {}
    for dist in distributions():  # in sys.path order
        name = dist.metadata["Name"]
        if name and normalise(name) not in skip:
            found.setdefault(normalise(name), f"{normalise(name)}=={dist.version}")
    return [found[k] for k in sorted(found)]


def _release(text: str) -> tuple[int, ...]:
    """``2.11.0+cu130`` -> (2, 11, 0): the release numbers, local label and suffixes left out."""
    return tuple(int(part) for part in re.findall(r"\d+", text.split("+")[0])[:3])


def too_old(pyproject_text: str, installed: dict[str, str]) -> list[str]:
    """One sentence per :data:`NEVER_REPLACED` package whose ``installed`` version is below the
    ``name>=floor`` of ``pyproject_text``'s dependencies; empty when all are new enough."""
    problems = []
    for name in NEVER_REPLACED:
        floor = re.search(rf'"{name}>=([0-9.]+)"', pyproject_text)
        have = installed.get(name)
        if floor and have and _release(have) < _release(floor.group(1)):
            problems.append(
                f"{name} {have} is older than {floor.group(1)}, the lowest version the kit is "
                f"tested with (pyproject.toml)"
            )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exclude", nargs="*", default=["cxrlib"])
    parser.add_argument("--check-floors", metavar="PYPROJECT", type=Path)
    args = parser.parse_args(argv)
    if args.check_floors:
        installed = {}
        for name in NEVER_REPLACED:
            try:
                installed[name] = version(name)
            except PackageNotFoundError:
                continue
        problems = too_old(args.check_floors.read_text(), installed)
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    print("\n".join(pins(tuple(args.exclude))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
