"""The faithfulness table notebook 02 prints and the README quotes."""

from __future__ import annotations

from cxrlib.paper.fidelity import TOLERANCE, fidelity_table


def test_every_output_of_the_authors_fixture_is_within_tolerance(shared_dir):
    table = fidelity_table(shared_dir / "fixtures/ctranscnn_reference_fixture.pt")
    assert len(table) >= 8
    assert table["within 1e-5"].all(), table
    assert (table["largest absolute difference"] <= TOLERANCE).all()
    assert table["output"].str.startswith("BatchNorm statistics").any()


def test_an_absent_fixture_gives_an_empty_table_and_says_where(tmp_path, capsys):
    missing = tmp_path / "nowhere.pt"
    assert fidelity_table(missing).empty
    assert str(missing) in capsys.readouterr().out
