"""The committed notebooks follow the conventions: thin, parametrised, without outputs."""

from __future__ import annotations

import ast

import nbformat
import pytest

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

    params = code[0]
    assert "parameters" in params.metadata.get("tags", []), "first code cell tagged parameters"
    names = []
    for node in ast.parse(params.source).body:
        assert isinstance(node, ast.Assign), "parameters cell holds assignments only"
        ast.literal_eval(node.value)  # literals only: raises otherwise
        names += [t.id for t in node.targets]
    assert "PROFILE" in names
    assert all(n.isupper() for n in names), "parameters are ALL-CAPS (cxrlib.config names)"
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
