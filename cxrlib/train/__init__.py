"""The train layer: one run of the papers' recipe, from its folder to its metrics.

The run's folder (:mod:`~cxrlib.train.layout`: :class:`~cxrlib.train.layout.RunKey`, the one
place that maps a run's coordinates to its folder and back, and the folder's files, lock and
log), what a run records about itself and when it may resume (:mod:`~cxrlib.train.record`),
its checkpoints (:mod:`~cxrlib.train.checkpoints`: last, previous and best, atomic, in the
background, Drive-safe), its results -- history, predictions, metrics, every run of a profile
(:mod:`~cxrlib.train.results`) -- and its model (:mod:`~cxrlib.train.model`: the one place a
run's network is built, and loaded back). Then the optimiser and schedule
(:mod:`~cxrlib.train.optim`), the loss (:mod:`~cxrlib.train.losses`), where a run computes --
device, precision, DDP, the micro-batch that fits, batched inference
(:mod:`~cxrlib.train.runtime`) -- the state carried between sessions
(:mod:`~cxrlib.train.state`), the loop as named steps (:mod:`~cxrlib.train.loop`), its end
(:mod:`~cxrlib.train.finish`) and one run from start to metrics (:mod:`~cxrlib.train.run`:
:func:`~cxrlib.train.run.train_run`).

Imports: core, data, models and evaluate; never paper or app.
"""
