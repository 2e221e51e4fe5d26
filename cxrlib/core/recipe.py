"""The authors' training recipe, as data, with the file and line each value comes from.

Source: the configs released with CTransCNN (X. Wu et al., Knowledge-Based Systems 281:111030,
2023), github.com/wuliwuxin/CTransCNN at commit ``0448b22``:
``configs/NIH_ChestX-ray14_CTransCNN.py`` (CXR14) and ``configs/ChestX-ray11_CTransCNN.py``
(CXR11), and their ``tools/train.py`` (one GPU). The hybrid CheXNet (Wu et al., PRCV 2023) gives
no training settings -- neither the paper nor its supplement -- and released no code: using
CTransCNN's configs for CheXNet too is our reading (same authors, same datasets and splits).

Both configs give the same values -- AdamW betas are (0.5, 0.999) on CXR11 as well as on CXR14
(CXR11 config, line 96; an earlier reading that gave 0.9 for CXR11 was wrong). The paper
profile's training defaults in :mod:`cxrlib.core.config` are read from :data:`RECIPE`, so each value
is written once, here.
"""

from __future__ import annotations

from dataclasses import dataclass

AUTHORS_CONFIG_COMMIT = "0448b2202a69eb8735290aa54c88f7969d5139cc"
CONFIG_FILES = {
    "cxr14": "configs/NIH_ChestX-ray14_CTransCNN.py",
    "cxr11": "configs/ChestX-ray11_CTransCNN.py",
}


@dataclass(frozen=True)
class RecipeValue:
    """One value of the recipe and the line of each dataset's config that states it."""

    value: float | int | tuple
    text: str  #: the config's own spelling
    lines: dict[str, int]  #: dataset -> line number in :data:`CONFIG_FILES`

    def source(self, dataset: str) -> str:
        """``configs/<file>.py:<line>`` for ``dataset``."""
        return f"{CONFIG_FILES[dataset]}:{self.lines[dataset]}"


#: Configuration field name -> the recipe value (training fields of ``cxrlib.core.config``).
RECIPE: dict[str, RecipeValue] = {
    "drop_path": RecipeValue(0.1, "drop_path_rate=0.1", {"cxr14": 8, "cxr11": 8}),
    "image_size": RecipeValue(224, "size=(224, 224)", {"cxr14": 34, "cxr11": 34}),
    # samples_per_gpu=32 is per GPU; the authors' config and train.py run one GPU, so the
    # global batch is 32 (see BATCH_SIZE in cxrlib.core.config)
    "batch_size": RecipeValue(32, "samples_per_gpu=32", {"cxr14": 58, "cxr11": 58}),
    "lr": RecipeValue(1e-3, "lr=1e-3", {"cxr14": 89, "cxr11": 93}),
    "weight_decay": RecipeValue(0.05, "weight_decay=0.05", {"cxr14": 90, "cxr11": 94}),
    "adam_eps": RecipeValue(1e-8, "eps=1e-8", {"cxr14": 91, "cxr11": 95}),
    "beta1": RecipeValue(0.5, "betas=(0.5, 0.999)", {"cxr14": 92, "cxr11": 96}),
    "beta2": RecipeValue(0.999, "betas=(0.5, 0.999)", {"cxr14": 92, "cxr11": 96}),
    "min_lr_ratio": RecipeValue(1e-2, "min_lr_ratio=1e-2", {"cxr14": 100, "cxr11": 105}),
    "warmup_ratio": RecipeValue(1e-3, "warmup_ratio=1e-3", {"cxr14": 102, "cxr11": 107}),
    "warmup_iters": RecipeValue(6260, "warmup_iters=5 * 1252", {"cxr14": 103, "cxr11": 108}),
    "epochs": RecipeValue(300, "max_epochs=300", {"cxr14": 106, "cxr11": 111}),
}


def recipe_value(name: str) -> float | int:
    """The recipe's value of configuration field ``name`` (KeyError if the recipe has none)."""
    return RECIPE[name].value
