"""Open in Colab / Kaggle: the badges and the setup cell of every notebook, made from the one
repository address in ``pyproject.toml`` (``[project.urls] Repository``) and :data:`NOTEBOOK_REF`.

The badges open a notebook at :data:`NOTEBOOK_REF`, and its setup cell clones the kit at that
same ref: the notebook and the code it calls always belong together. Until the first release
the ref is ``main``; the release steps (CONTRIBUTING.md) set it to the new tag ``v<version>``,
rewrite the notebooks (``python -m cxrlib badges --write``) and create the tag, and a test
fails while the ref the badges name does not exist in the repository.

The setup cell is five lines: where ``cxrlib`` is importable already (a clone in JupyterLab,
``./run_all.sh``, a second run of the cell) it does nothing; elsewhere it clones the
repository into ``cxr-kit/`` and runs :mod:`cxrlib.app.bootstrap` from the clone, which
installs the kit with every preinstalled package as a constraint (torch, Colab's Jupyter and
everything else preinstalled stay as they are).

``python -m cxrlib badges --write`` rewrites the notebooks' badges, setup cells and "Produces"
paragraphs (made from the outputs' names, :data:`cxrlib.paper.items.OUTPUTS`) and the README's
badges after the address, the ref or a name changed; a test fails until it is run.
"""

from __future__ import annotations

import re
from importlib.metadata import metadata
from pathlib import Path

import nbformat

from cxrlib.core.fileio import atomic_write_text
from cxrlib.paper.items import PRODUCES_END, PRODUCES_START, produces

SETUP_MARKER = "import importlib.util, os, runpy"
BADGES_START, BADGES_END = "<!-- badges -->", "<!-- /badges -->"
CLONE_FOLDER = "cxr-kit"
#: The git ref the badges open and the setup cells clone: ``main`` until the first release,
#: then the release's tag (the release steps change it here, and only here).
NOTEBOOK_REF = "main"


def repository_url() -> str:
    """The ``Repository`` address of the installed distribution's metadata (pyproject)."""
    for entry in metadata("cxrlib").get_all("Project-URL") or []:
        label, _, url = entry.partition(",")
        if label.strip().lower() == "repository":
            return url.strip().rstrip("/")
    raise RuntimeError("pyproject.toml has no [project.urls] Repository: reinstall the kit")


def badges(notebook: str | None = None) -> str:
    """Markdown of the Open-in-Colab and Open-in-Kaggle badges of ``notebook`` (a file name
    under ``notebooks/``; None: the first notebook, for the README)."""
    name = notebook or "00_environment.ipynb"
    blob = f"{repository_url()}/blob/{NOTEBOOK_REF}/notebooks/{name}"
    colab = blob.replace("https://github.com/", "https://colab.research.google.com/github/")
    kaggle = f"https://kaggle.com/kernels/welcome?src={blob}"
    # the markers on lines of their own: a line that starts with an HTML comment is HTML to
    # Markdown, which would leave the badges' links unrendered (the docs site, nbconvert)
    return (
        f"{BADGES_START}\n"
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab}) "
        f"[![Open In Kaggle](https://kaggle.com/static/images/open-in-kaggle.svg)]({kaggle})\n"
        f"{BADGES_END}"
    )


def setup_cell() -> str:
    """The source of every notebook's first code cell (five lines): where cxrlib is missing,
    clone the kit at :data:`NOTEBOOK_REF` and install it (:mod:`cxrlib.app.bootstrap`). A
    clone that fails (Kaggle's internet off) prints git's reason and the cell stops at the
    missing file; its first line names the fix."""
    clone = f"git clone -q --depth 1 -b {NOTEBOOK_REF} {repository_url()} {CLONE_FOLDER}"
    return (
        f"{SETUP_MARKER}\n\n"
        'if importlib.util.find_spec("cxrlib") is None:  # Colab, Kaggle (Settings > Internet on)\n'
        f'    os.system("{clone}")\n'
        f'    runpy.run_path("{CLONE_FOLDER}/cxrlib/app/bootstrap.py", run_name="__main__")'
        "  # install it"
    )


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
        # the setup cell: this version's, or an earlier one (it asks whether cxrlib is there)
        setup = code[0] if code and 'find_spec("cxrlib")' in code[0].source else None
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
