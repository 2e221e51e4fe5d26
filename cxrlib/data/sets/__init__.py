"""The datasets with a layout of their own: one module each, defining ``DATASET``.

* :mod:`~cxrlib.data.sets.cxr14` -- NIH ChestX-ray14 (X. Wang et al., "ChestX-ray8", CVPR
  2017), the papers' 51,759 abnormal images;
* :mod:`~cxrlib.data.sets.cxr11` -- RANZCR CLiP (Kaggle competition, 2021), 30,083 images,
  11 catheter and line labels.

To add a dataset, write one module here that defines ``DATASET`` =
:class:`~cxrlib.data.definition.DatasetDef` (its classes, how its folder is recognised, its
reader, its split files): :mod:`cxrlib.data.datasets` finds it by itself, and the command line,
the notebooks (``DATASET = "<name>"``) and ``DATA_ROOTS`` know it by its name. A folder of
images with a CSV of labels needs no module at all: ``csv:/path/to/labels.csv``.
"""
