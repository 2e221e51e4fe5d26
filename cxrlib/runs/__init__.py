"""The runs layer: a training run's folder and everything that reads or writes its files.

Owns the folder's layout, its lock and log (:mod:`~cxrlib.runs.layout`), the record of what a
run was trained on and the rule for resuming it (:mod:`~cxrlib.runs.record`), its checkpoints
(:mod:`~cxrlib.runs.checkpoints`: last, previous and best, atomic, in the background,
Drive-safe), its results -- history, predictions, metrics, and every run of a profile
(:mod:`~cxrlib.runs.results`) -- and the model of a run (:mod:`~cxrlib.runs.model`: the one
place a run's network is built, and loaded back).

Imports: core, data and models; never evaluate, train or anything above.
"""
