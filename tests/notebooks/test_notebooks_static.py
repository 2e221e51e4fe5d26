"""The committed notebooks follow the conventions: thin, parametrised, without outputs."""

from __future__ import annotations

import ast

import nbformat
import pytest

from cxrlib.app.colab import refresh, repository_url, setup_cell
from tests.conftest import PROJECT_ROOT

NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


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
    assert "RESULTS_DIR" in names, "each badge opens a fresh VM: say where results go (#21)"
    assert all(n.isupper() for n in names), "parameters are ALL-CAPS (cxrlib.core.config names)"
    assert "globals()" in code[1].source and "config" in code[1].source, (
        "the next cell validates them (config_from_notebook or config_and_extras)"
    )

    for cell in code[1:]:
        for node in ast.walk(ast.parse(cell.source)):
            assert not isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Lambda)), (
                "definitions belong in cxrlib"
            )
            if isinstance(node, (ast.For, ast.While)):
                assert len(node.body) <= 3, "long loops belong in cxrlib"


def test_badges_and_setup_cells_agree_with_the_one_repository_address():
    """pyproject's [project.urls] Repository makes every badge and setup cell; after a change
    of address or version, ``python -m cxrlib badges --write`` brings them in line."""
    import tomllib

    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    assert repository_url() == project["urls"]["Repository"], "reinstall: metadata is stale"
    assert refresh(PROJECT_ROOT) == [], "run: python -m cxrlib badges --write"
    readme = (PROJECT_ROOT / "README.md").read_text()
    tag = f"blob/v{project['version']}/notebooks/"
    assert f"colab.research.google.com/github/{project['urls']['Repository'][19:]}/{tag}" in readme
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        setup = next(c for c in nb.cells if c.cell_type == "code").source
        assert f"{tag}{path.name}" in nb.cells[0].source
        assert f'"--branch", "v{project["version"]}"' in setup
