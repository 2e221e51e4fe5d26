"""The committed notebooks follow the conventions: thin, parametrised, without outputs."""

from __future__ import annotations

import ast
import re
import subprocess

import nbformat
import pytest

from cxrlib.app.colab import NOTEBOOK_REF, refresh, repository_url, setup_cell
from cxrlib.data.datasets import PAPER_DATASETS
from tests.conftest import PROJECT_ROOT

NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
TRAINING = ("03_train_cxr11.ipynb", "04_train_cxr14.ipynb")


def _cxrlib_modules(nb) -> set[str]:
    """The cxrlib modules a notebook's code imports (the setup cell's text aside)."""
    found = set()
    for cell in nb.cells[2:]:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cxrlib"):
                found |= {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("cxrlib")}
    return found


def _parameters(nb) -> dict:
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    values = {}
    for node in ast.parse(cell.source).body:
        for target in node.targets:
            values[target.id] = ast.literal_eval(node.value)
    return values


def test_the_training_notebooks_differ_only_in_their_parameters_and_words():
    """03 (CXR11) and 04 (CXR14) are the same steps: every code cell but the parameters is the
    same, and the parameters differ only in the dataset."""
    a, b = (nbformat.read(PROJECT_ROOT / "notebooks" / n, as_version=4) for n in TRAINING)
    code = [[c.source for c in nb.cells if c.cell_type == "code"][2:] for nb in (a, b)]
    assert code[0] == code[1]
    pa, pb = _parameters(a), _parameters(b)
    assert {k for k in pa if pa[k] != pb.get(k)} == {"DATASET"} and set(pa) == set(pb)


COMMAND = re.compile(r"`([^`]*(?:python -m cxrlib|torchrun)[^`]*)`")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_command_quoted_in_a_notebook_names_its_own_dataset(path):
    nb = nbformat.read(path, as_version=4)
    params = _parameters(nb)
    own = [params["DATASET"]] if params.get("DATASET") else list(PAPER_DATASETS)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for command in COMMAND.findall(text.replace("\n", " ")):
        named = re.findall(r"--dataset\s+(\S+)", command)
        assert all(d in own for d in named), f"{path.name}: {command!r} names {named}, not {own}"


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/NN_*.ipynb missing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_conventions(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert nb.cells[0].cell_type == "markdown", "first cell says what the notebook makes"
    assert not any(c.outputs or c.execution_count for c in code), "commit without outputs"

    assert code[0].source == setup_cell(), "first code cell: the setup cell (cxrlib.app.colab)"
    code = code[1:]
    params = code[0]
    assert "parameters" in params.metadata.get("tags", []), "next code cell tagged parameters"
    names = []
    for node in ast.parse(params.source).body:
        assert isinstance(node, ast.Assign), "parameters cell holds assignments only"
        ast.literal_eval(node.value)  # literals only: raises otherwise
        names += [t.id for t in node.targets]
    assert "PROFILE" in names
    assert "RESULTS_DIR" in names, "each badge opens a fresh VM: say where results go"
    assert all(n.isupper() for n in names), "parameters are ALL-CAPS (cxrlib.core.config names)"
    assert "nb.start(globals()" in code[1].source, "the next cell validates them (nb.start)"
    modules = _cxrlib_modules(nb)
    assert len(modules) <= 3, f"at most three cxrlib modules per notebook: {sorted(modules)}"

    for cell in code[1:]:
        for node in ast.walk(ast.parse(cell.source)):
            assert not isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Lambda)), (
                "definitions belong in cxrlib"
            )
            if isinstance(node, (ast.For, ast.While)):
                assert len(node.body) <= 3, "long loops belong in cxrlib"


def test_badges_and_setup_cells_agree_with_the_one_repository_address():
    """pyproject's [project.urls] Repository and NOTEBOOK_REF make every badge and setup cell;
    after a change of either, ``python -m cxrlib badges --write`` brings them in line."""
    import tomllib

    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    assert repository_url() == project["urls"]["Repository"], "reinstall: metadata is stale"
    assert refresh(PROJECT_ROOT) == [], "run: python -m cxrlib badges --write"
    readme = (PROJECT_ROOT / "README.md").read_text()
    blob = f"blob/{NOTEBOOK_REF}/notebooks/"
    assert f"colab.research.google.com/github/{project['urls']['Repository'][19:]}/{blob}" in readme
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        setup = next(c for c in nb.cells if c.cell_type == "code").source
        assert f"{blob}{path.name}" in nb.cells[0].source
        assert f" -b {NOTEBOOK_REF} " in setup
        assert len(setup.splitlines()) <= 5, "the setup cell: five lines at most"


def test_the_ref_the_badges_name_exists_in_the_repository():
    """Every badge and setup cell opens NOTEBOOK_REF: a branch or tag of this repository (main
    until the first release; the release steps create the tag before they name it)."""
    if not (PROJECT_ROOT / ".git").exists():
        pytest.skip("not a git clone: the refs cannot be read")
    found = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{NOTEBOOK_REF}^{{commit}}"],
        cwd=PROJECT_ROOT, capture_output=True, text=True,
    )  # fmt: skip
    remote = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"origin/{NOTEBOOK_REF}^{{commit}}"],
        cwd=PROJECT_ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert found.returncode == 0 or remote.returncode == 0, (
        f"the badges and setup cells name {NOTEBOOK_REF!r}, which is neither a branch nor a tag "
        "here: create the tag first (CONTRIBUTING.md, release steps)"
    )
