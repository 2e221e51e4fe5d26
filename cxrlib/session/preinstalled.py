"""The packages an environment already has, as pip constraints (``name==version``), so that
installing the kit changes none of them.

Colab and Kaggle come with hundreds of packages whose versions fit each other (Kaggle even pins
``protobuf==5.29.5``, "greater than v5.29.5 causes issues with numerous packages"). Installing
the kit there with every installed package as a constraint either leaves them all as they are
or fails with pip's explanation -- never a silent upgrade that breaks the platform. The
notebooks' setup cell and ``./run_all.sh`` run this file as a script from the clone, before the
kit is importable, so it uses the standard library alone.

Usage: ``python cxrlib/session/preinstalled.py [--exclude NAME ...] > constraints.txt``
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib.metadata import distributions


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exclude", nargs="*", default=["cxrlib"])
    args = parser.parse_args(argv)
    print("\n".join(pins(tuple(args.exclude))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
