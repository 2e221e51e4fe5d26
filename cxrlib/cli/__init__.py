"""The entry points: ``python -m cxrlib <command>`` (:mod:`~cxrlib.cli.main`), predictions for
X-ray files (:mod:`~cxrlib.cli.predict`) and model export (:mod:`~cxrlib.cli.export`).

Imports: any layer below (the top of the house); the commands import theirs when they run.
"""

from cxrlib.cli.main import main

__all__ = ["main"]
