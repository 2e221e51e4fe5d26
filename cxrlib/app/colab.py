"""Open in Colab / Kaggle: the badges and the setup cell of every notebook, made from the one
repository address in ``pyproject.toml`` (``[project.urls] Repository``) and the version.

The badges open a notebook at the release tag ``v<version>``, and its setup cell clones the
kit at that same tag: the notebook and the code it calls always belong together. Where
``cxrlib`` is importable already (a clone in JupyterLab, ``./run_all.sh``) the setup cell does
nothing. Elsewhere it clones the repository and ``pip install``\\s it -- not editable, so the
running kernel imports it at once, and results, runs and data go under the working directory
(:mod:`cxrlib.core.workspace`) -- with every preinstalled package as a constraint, so that torch,
Colab's Jupyter and everything else preinstalled stay as they are (the JupyterLab front end is
the optional ``lab`` extra). ``$CXRLIB_REPOSITORY`` replaces the address (a fork, a test).

``python -m cxrlib badges --write`` rewrites the notebooks' badges, setup cells and "Produces"
paragraphs (made from the outputs' names, :data:`cxrlib.paper.items.OUTPUTS`) and the README's
badges after the address, the version or a name changed; a test fails until it is run.
"""

from __future__ import annotations

import re
from importlib.metadata import metadata
from pathlib import Path

import nbformat

from cxrlib.core.fileio import atomic_write_text
from cxrlib.paper.items import PRODUCES_END, PRODUCES_START, produces

SETUP_MARKER = "# Setup (Colab, Kaggle)"
BADGES_START, BADGES_END = "<!-- badges -->", "<!-- /badges -->"
CLONE_FOLDER = "cxr-kit"


def repository_url() -> str:
    """The ``Repository`` address of the installed distribution's metadata (pyproject)."""
    for entry in metadata("cxrlib").get_all("Project-URL") or []:
        label, _, url = entry.partition(",")
        if label.strip().lower() == "repository":
            return url.strip().rstrip("/")
    raise RuntimeError("pyproject.toml has no [project.urls] Repository: reinstall the kit")


def release_tag() -> str:
    return f"v{metadata('cxrlib')['Version']}"


def badges(notebook: str | None = None) -> str:
    """Markdown of the Open-in-Colab and Open-in-Kaggle badges of ``notebook`` (a file name
    under ``notebooks/``; None: the first notebook, for the README)."""
    name = notebook or "00_environment.ipynb"
    blob = f"{repository_url()}/blob/{release_tag()}/notebooks/{name}"
    colab = blob.replace("https://github.com/", "https://colab.research.google.com/github/")
    kaggle = f"https://kaggle.com/kernels/welcome?src={blob}"
    return (
        f"{BADGES_START}[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"({colab}) [![Open In Kaggle](https://kaggle.com/static/images/open-in-kaggle.svg)]"
        f"({kaggle}){BADGES_END}"
    )


def setup_cell() -> str:
    """The source of every notebook's first code cell: where cxrlib is missing, clone the kit
    at the notebook's tag (quietly: no detached-HEAD notice), then install it with every
    preinstalled package as a constraint (:mod:`cxrlib.app.preinstalled`), so that Colab's
    and Kaggle's own packages stay as they are; a clone that fails says what to do."""
    tag, folder = release_tag(), CLONE_FOLDER
    return f'''{SETUP_MARKER}: installs this kit at the notebook's version where cxrlib is
# missing; does nothing in a clone (JupyterLab, ./run_all.sh). Changes no preinstalled package.
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("cxrlib") is None:
    kit = os.environ.get("CXRLIB_REPOSITORY", "{repository_url()}")
    if not os.path.isdir("{folder}"):
        clone = ["git", "-c", "advice.detachedHead=false", "clone", "-q", "--depth", "1"]
        done = subprocess.run([*clone, "--branch", "{tag}", kit, "{folder}"], text=True,
                              capture_output=True)  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(
                f"could not clone {{kit}} at {tag}: {{done.stderr.strip()}}\\nOn Kaggle: turn "
                "Internet on (Settings > Internet) and run this cell again. Elsewhere: check "
                "the network, or that the release {tag} exists (open the notebook from "
                "the README's badges)."
            )
    pins = subprocess.run([sys.executable, "{folder}/cxrlib/app/preinstalled.py"],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    with open("{folder}/preinstalled.txt", "w") as handle:
        handle.write(pins)
    install = ["install", "-q", "-c", "{folder}/preinstalled.txt", "./{folder}"]
    subprocess.run([sys.executable, "-m", "pip", *install], check=True)
    importlib.invalidate_caches()'''


def _with_badges(text: str, notebook: str | None) -> str:
    """``text`` with its badges replaced, or added after its first line."""
    pattern = re.compile(re.escape(BADGES_START) + ".*?" + re.escape(BADGES_END), re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: badges(notebook), text, count=1)
    first, _, rest = text.partition("\n")
    return f"{first}\n\n{badges(notebook)}\n{rest}"


def _with_produces(text: str, notebook: str) -> str:
    """``text`` with its "Produces" paragraph made from the outputs' names
    (:func:`cxrlib.paper.items.produces`), replaced or added at its end."""
    pattern = re.compile(re.escape(PRODUCES_START) + ".*?" + re.escape(PRODUCES_END), re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: produces(notebook), text, count=1)
    return f"{text.rstrip()}\n\n{produces(notebook)}"


def refresh(project: Path, write: bool = False) -> list[Path]:
    """The files whose badges, "Produces" paragraph or setup cell are not what the address,
    the version and the outputs' names make (rewritten when ``write``)."""
    stale = []
    for path in sorted((project / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        title = nb.cells[0]
        code = [c for c in nb.cells if c.cell_type == "code"]
        new_title = _with_produces(_with_badges(title.source, path.name), path.stem)
        setup = code[0] if code and code[0].source.startswith(SETUP_MARKER) else None
        if new_title == title.source and setup is not None and setup.source == setup_cell():
            continue
        stale.append(path)
        if write:
            title.source = new_title
            if setup is None:
                setup = nbformat.v4.new_code_cell(setup_cell())
                nb.cells.insert(1, setup)
            setup.source = setup_cell()
            atomic_write_text(path, nbformat.writes(nb) + "\n")
    readme = project / "README.md"
    text = readme.read_text()
    if _with_badges(text, None) != text:
        stale.append(readme)
        if write:
            atomic_write_text(readme, _with_badges(text, None))
    return stale
