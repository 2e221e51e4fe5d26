"""The second half of every notebook's setup cell on Colab and Kaggle: install the kit that the
cell's first half cloned, keeping every package the platform brought.

The setup cell (:func:`cxrlib.app.colab.setup_cell`, five lines) clones the repository into
``cxr-kit/`` at the notebook's ref and runs this file from the clone with
``runpy.run_path(..., run_name="__main__")`` -- in the notebook's own process, so that the next
cell imports the kit at once. The kit is not importable yet, so this file uses the standard
library and its sibling :mod:`preinstalled` alone.

What it does: every installed distribution becomes a pip constraint (``preinstalled.py``), so
torch, Colab's Jupyter, Kaggle's protobuf pin and everything else stay exactly as they are; the
kit is installed (not editable: results, runs and data go under the working folder, never into
site-packages); one line says what was installed. A failed install stops the cell with pip's
last words and what to do, never a bare traceback.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path


def install(kit: Path) -> str:
    """Install the clone ``kit`` into this Python with every installed package pinned; the
    line that says so. Raises SystemExit with pip's message and the fix when pip fails."""
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    try:
        import preinstalled  # the sibling file: standard library only
    finally:
        sys.path.remove(str(here))
    constraints = kit / "preinstalled.txt"
    pins = preinstalled.pins()
    constraints.write_text("\n".join(pins) + "\n")
    command = [sys.executable, "-m", "pip", "install", "-q", "-c", str(constraints), str(kit)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        last = "\n".join(done.stderr.strip().splitlines()[-12:])
        raise SystemExit(
            f"{last}\n\nThe kit could not be installed beside this platform's packages (pip's "
            f"words above). Restart the runtime and run the notebook again; if it persists, "
            f"the platform's image changed: report it with the lines above."
        )
    importlib.invalidate_caches()
    return f"installed cxrlib from {kit} ({len(pins)} preinstalled packages kept as they are)"


if __name__ == "__main__":
    print(install(Path(__file__).resolve().parents[2]), flush=True)
