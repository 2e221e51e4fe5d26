"""The train layer: the papers' recipe run as a resumable, idempotent loop.

Owns the optimiser and the schedule (:mod:`~cxrlib.train.optim`), the loss
(:mod:`~cxrlib.train.losses`), where a run computes -- device, precision, DDP, the micro-batch
that fits, batched inference (:mod:`~cxrlib.train.runtime`) -- the state a run carries between
sessions (:mod:`~cxrlib.train.state`), the loop as named steps (:mod:`~cxrlib.train.loop`:
:class:`~cxrlib.train.loop.Trainer`) and one run from start to metrics
(:mod:`~cxrlib.train.run`: :func:`~cxrlib.train.run.train_run`).

Imports: core, data, models, runs and evaluate; never paper, session or cli.
"""
