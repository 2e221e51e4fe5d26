"""MkDocs hooks: the pages that are generated from the kit's own definitions, never retyped.

A page asks for a generated part with an HTML comment on a line of its own:

* ``<!-- generated: configuration -->`` -- every parameter (:func:`cxrlib.core.config.reference`);
* ``<!-- generated: commands -->`` -- every ``python -m cxrlib`` command (``cxrlib.app.main``);
* ``<!-- generated: models -->`` -- every registered model (``cxrlib.models.registry``);
* ``<!-- generated: layers -->`` -- the floors of ``cxrlib`` from their own docstrings;
* ``<!-- generated: bad inputs -->`` -- the bad inputs of ``tests/bad_inputs.py``, run at build
  time, with the message each gets;
* ``<!-- generated: hours -->`` -- expected GPU hours of a run (:mod:`cxrlib.paper.costs`);
* ``<!-- generated: benchmarks -->`` -- every figure under ``benchmarks/results/*.json`` with
  its date, commit and machine (:mod:`benchmarks.report`).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _checkout_first() -> None:
    """Put the checkout first on the path: benchmarks/ and tests/ are not installed packages,
    and under the ``mkdocs`` script (unlike ``python -m mkdocs``) the path the plugins leave at
    page time does not hold the checkout."""
    sys.path[:] = [str(ROOT), *(p for p in sys.path if p != str(ROOT))]


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(rows: list[dict], columns: dict[str, str]) -> str:
    """A Markdown table of ``rows`` with ``columns`` (key -> heading)."""
    lines = [
        "| " + " | ".join(columns.values()) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    lines += ["| " + " | ".join(_cell(r.get(k, "")) for k in columns) + " |" for r in rows]
    return "\n".join(lines)


def configuration() -> str:
    from cxrlib.core.config import PROFILES, reference

    rows = []
    for row in reference():
        rows.append(
            {
                "name": f"`{row['name']}`",
                "takes": row["takes"],
                **{p: f"`{row[p]}`" for p in PROFILES},
                "help": row["help"] + (f" (authors' `{row['source']}`)" if row["source"] else ""),
            }
        )
    columns = {"name": "parameter", "takes": "takes", **{p: p for p in PROFILES}, "help": "what"}
    return _table(rows, columns)


def commands() -> str:
    from cxrlib.app.main import COMMANDS

    rows = [
        {
            "command": f"`python -m cxrlib {name}`",
            "what": summary,
            "options": ", ".join(f"`--{o}`" for o in options) or "–",
        }
        for name, (summary, _, _, options) in COMMANDS.items()
    ]
    return _table(
        rows, {"command": "command", "what": "what it does", "options": "folders, profile"}
    )


def models() -> str:
    from cxrlib.models.registry import get_spec, list_models

    rows = []
    for name in list_models():
        spec = get_spec(name)
        kind = f"timm `{spec.timm_name}`" if spec.timm_name else spec.family
        study = f"`{spec.ablation_of}`" if spec.ablation_of else "–"
        rows.append({"name": f"`{name}`", "what": spec.description, "kind": kind, "study": study})
    return _table(
        rows, {"name": "model", "what": "what it is", "kind": "built as", "study": "compared with"}
    )


def layers() -> str:
    """The floors of the house, ground first, each described by its own package docstring."""
    import importlib

    import cxrlib

    rows = []
    for depth, layer in enumerate(cxrlib.LAYERS):
        doc = importlib.import_module(f"cxrlib.{layer}").__doc__ or ""
        first = " ".join(doc.strip().split("\n\n")[0].split())
        imports = next((p for p in doc.split("\n\n") if p.strip().startswith("Imports:")), "")
        rows.append(
            {
                "floor": depth,
                "layer": f"`cxrlib.{layer}`",
                "owns": first,
                "imports": " ".join(imports.strip().removeprefix("Imports:").split()),
            }
        )
    return _table(
        rows, {"floor": "floor", "layer": "layer", "owns": "what it is", "imports": "imports"}
    )


def bad_inputs() -> str:
    """Every bad input of ``tests/bad_inputs.py``, run now, with the message the user saw."""
    import tempfile

    _checkout_first()
    from tests.bad_inputs import CASES

    rows = []
    for name, (given, case) in CASES.items():
        with tempfile.TemporaryDirectory() as folder:
            _, said = case(Path(folder))
            said = said.replace(str(Path(folder).resolve()), "…").replace(folder, "…")
        rows.append({"input": name, "given": f"`{given}`", "said": said})
    return _table(rows, {"input": "bad input", "given": "what was given", "said": "what it says"})


def hours() -> str:
    """One paper-recipe run of the main models and ResNet-50 on each GPU people have."""
    from cxrlib.paper.costs import hours_table
    from cxrlib.paper.items import MAIN_MODELS

    table = hours_table([*MAIN_MODELS, "resnet50"], ["cxr11", "cxr14"])
    keep = [
        c for c in table.columns if c == "dataset" or c == "model" or "h/run" in c or c == "basis"
    ]
    rows = table[table["dataset"] != "all"][keep].to_dict("records")
    return _table(rows, {c: c for c in keep})


def benchmarks() -> str:
    _checkout_first()
    from benchmarks.report import benchmark_sections

    return "\n\n".join(benchmark_sections(ROOT / "benchmarks" / "results"))


GENERATORS = {
    "configuration": configuration,
    "commands": commands,
    "models": models,
    "benchmarks": benchmarks,
    "hours": hours,
    "layers": layers,
    "bad inputs": bad_inputs,
}


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Replace every ``<!-- generated: NAME -->`` line by its generated Markdown."""
    out = []
    for line in markdown.splitlines():
        marker = line.strip()
        if marker.startswith("<!-- generated:") and marker.endswith("-->"):
            name = marker[len("<!-- generated:") : -3].strip()
            if name not in GENERATORS:
                raise ValueError(f"{page.file.src_path}: no generator {name!r} in docs/hooks.py")
            out.append(GENERATORS[name]())
        else:
            out.append(line)
    return "\n".join(out)
