"""The top floor, the entry points: where a session starts and the workspace is set.

Owns the one module the notebooks import (:mod:`~cxrlib.app.notebook`), a notebook's parameters
(:mod:`~cxrlib.app.parameters`: every ALL-CAPS global validated, the workspace and the time limit
applied, a Google Drive that is not mounted refused before any work), the pause of a
time-limited notebook (:mod:`~cxrlib.app.time_limit`), the Open-in-Colab/Kaggle badges and setup
cell (:mod:`~cxrlib.app.colab`, :mod:`~cxrlib.app.bootstrap`), preinstalled packages as pip
constraints (:mod:`~cxrlib.app.preinstalled`, also a script), the machine's report
(:mod:`~cxrlib.app.envinfo`) and the command line ``python -m cxrlib`` (:mod:`~cxrlib.app.main`),
with its predictions for X-ray files (:mod:`~cxrlib.app.predict`), model export
(:mod:`~cxrlib.app.export`) and the runs' status (:mod:`~cxrlib.app.status`).

This layer and the ground layer (:mod:`cxrlib.core`) are the only ones that read the
environment; everything below receives what it needs as arguments (the workspace travels in
the configuration).

Imports: every layer below it (the top of the house). Importing the package itself loads
nothing heavy (``python -m cxrlib --help`` must answer at once): its two public names are
imported on first use.
"""

from __future__ import annotations

__all__ = ["config_and_extras", "config_from_notebook"]


def __getattr__(name: str):
    if name in __all__:
        from cxrlib.app import parameters  # here: on first use (it loads torch and timm)

        return getattr(parameters, name)
    raise AttributeError(f"module 'cxrlib.app' has no attribute {name!r}")
