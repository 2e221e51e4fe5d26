"""The evaluate layer: how good a model is, and how sure we can be.

Owns the papers' multi-label metrics and the per-class operating points
(:mod:`~cxrlib.evaluate.metrics`), confidence intervals and paired tests of test AUCs
(:mod:`~cxrlib.evaluate.statistics`) and Grad-CAM with measured localisation
(:mod:`~cxrlib.evaluate.gradcam`).

Imports: core, data and models; never train or above.
"""
