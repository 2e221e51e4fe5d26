"""cxrlib: the helper package behind the CTransCNN / CheXNet replication notebooks.

Papers replicated:
* X. Wu et al., "CTransCNN: Combining transformer and CNN in multilabel medical image
  classification", Knowledge-Based Systems 281:111030 (2023).
* X. Wu et al., "CheXNet: Combing Transformer and CNN for Thorax Disease Diagnosis from
  Chest X-ray Images", PRCV 2023, LNCS 14437, pp. 73-84.

Datasets: NIH ChestX-ray14 (Wang et al., CVPR 2017) and RANZCR CLiP (Kaggle, 2021).
"""

__version__ = "0.1.0"
