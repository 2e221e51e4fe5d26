"""A working session -- a notebook on Colab, Kaggle or JupyterLab, ``./run_all.sh``, a shell:
its parameters, its folders and their safety, its time limit, the machine it runs on.

Owns the notebooks' parameters cell (:mod:`~cxrlib.session.parameters`: every ALL-CAPS global
validated, the folders and the time limit applied, a Google Drive that is not mounted refused
before any work), the pause of a time-limited notebook (:mod:`~cxrlib.session.time_limit`), the
Open-in-Colab/Kaggle badges and setup cell (:mod:`~cxrlib.session.colab`) and the report of the
machine and software (:mod:`~cxrlib.session.envinfo`).

Imports: every layer below it (core, data, models, runs, evaluate, train, paper); never cli.
"""

from cxrlib.session.parameters import config_and_extras, config_from_notebook

__all__ = ["config_and_extras", "config_from_notebook"]
