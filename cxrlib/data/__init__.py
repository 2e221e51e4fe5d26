"""The data layer: both papers' datasets and your own, from their files to training batches.

Owns each dataset's definition (:mod:`~cxrlib.data.datasets`: classes, layout, how it is
recognised, its split files), reading the real Kaggle layouts (:mod:`~cxrlib.data.tables`),
the authors' split files, the patient-disjoint and the official splits
(:mod:`~cxrlib.data.splits`), finding the data once per run (:mod:`~cxrlib.data.roots`) or
downloading it (:mod:`~cxrlib.data.download`), the phantom (:mod:`~cxrlib.data.phantom`,
:mod:`~cxrlib.data.phantom_draw`), the image cache (:mod:`~cxrlib.data.cache`), the
training-ready dataset (:mod:`~cxrlib.data.prepare`) and its batches
(:mod:`~cxrlib.data.loader`).

Imports: core only.
"""
