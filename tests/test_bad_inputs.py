"""Bad inputs tried (tests/bad_inputs.py): each ends with exit status 2 and one line that starts
with "error:", names what is wrong -- the file, folder or parameter -- and says what to do; never
a traceback. The documentation's reliability page shows these very messages."""

from __future__ import annotations

import pytest

from tests.bad_inputs import CASES

#: Words of a fix: what the user is told to do.
FIXES = (
    "pass", "name", "write", "download", "set", "choose", "mount", "delete", "copy", "give",
    "allowed", "must be", "resize", "restore", "complete", "start it over", "evaluate", "add",
    "list each", "install",
)  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_a_bad_input_gets_one_line_naming_it_and_the_fix(name, tmp_path, monkeypatch):
    for env in ("CXRLIB_RUNS_DIR", "CXRLIB_RESULTS_DIR", "CXRLIB_DATA_DIR", "CXRLIB_DATA_ROOTS"):
        monkeypatch.delenv(env, raising=False)
    _, case = CASES[name]
    code, said = case(tmp_path)
    assert code == 2, (name, said)
    assert len(said.splitlines()) == 1 and said.startswith("error: "), said
    assert "Traceback" not in said
    assert str(tmp_path) in said or any(w in said for w in ("parameter", "profile", "DATA_ROOTS"))
    assert any(fix in said.lower() for fix in FIXES), said


def test_there_are_at_least_twenty_bad_inputs():
    assert len(CASES) >= 20
