"""The data layer: both papers' datasets and your own, from their files to training batches.

Owns the dataset contract (:mod:`~cxrlib.data.definition`: :class:`~cxrlib.data.definition.
DatasetDef`, everything the kit knows about a dataset), the definitions of the datasets with a
layout of their own, one module each (:mod:`~cxrlib.data.sets`: CXR14, CXR11), every dataset
by name and your own CSV (:mod:`~cxrlib.data.datasets`), the authors' split files, the
patient-disjoint and the official splits (:mod:`~cxrlib.data.splits`), finding the data once per
run in the workspace (:mod:`~cxrlib.data.roots`) or downloading it
(:mod:`~cxrlib.data.download`), the phantom (:mod:`~cxrlib.data.phantom`,
:mod:`~cxrlib.data.phantom_draw`), the image cache (:mod:`~cxrlib.data.cache`), the
training-ready dataset (:mod:`~cxrlib.data.prepare`) and its batches
(:mod:`~cxrlib.data.loader`).

Imports: core only.
"""
