"""The paper layer: both papers' tables and figures, regenerated and set beside the published
numbers.

Owns the list of the papers' items and which notebook, files and models make each
(:mod:`~cxrlib.paper.items`), the published numbers (:mod:`~cxrlib.paper.published`), when a
run may stand beside them (:mod:`~cxrlib.paper.comparability`), the experiments each table
needs (:mod:`~cxrlib.paper.experiments`), the comparison tables and figures
(:mod:`~cxrlib.paper.tables`, :mod:`~cxrlib.paper.figures`, :mod:`~cxrlib.paper.style`), the
tables of the data (:mod:`~cxrlib.paper.data_summary`), writing outputs
(:mod:`~cxrlib.paper.outputs`), what runs cost (:mod:`~cxrlib.paper.costs`) and the report
(:mod:`~cxrlib.paper.report`).

Imports: every layer below it (core, data, models, evaluate, train); never app.
"""
