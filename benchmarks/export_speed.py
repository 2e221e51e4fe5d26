"""How long ``python -m cxrlib export --format onnx`` takes for the papers' models at paper size,
and what the exported file does in onnxruntime.

For each model (random weights: the time does not depend on them): the wall seconds of the
whole export (torch.export, the ONNX translation, the file and its sidecar), the largest
difference of onnxruntime's probabilities from PyTorch's on a batch (with the share of them
that random weights leave short of exactly 0 or 1: where it is small, the difference says
little), and onnxruntime's and
PyTorch's images/s on this CPU. ``--optimised`` also times the export with onnxscript's graph
optimiser (the kit leaves it to onnxruntime, which folds and fuses when it loads the file).

    OMP_NUM_THREADS=2 python benchmarks/export_speed.py [--models ctranscnn_tiny chexnet_tiny]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def measure(name: str, folder: Path, optimised: bool) -> dict:
    import numpy as np
    import onnxruntime as ort
    import torch

    from cxrlib.app import export as export_module
    from cxrlib.models import create_model
    from cxrlib.models.files import model_card, save_model

    torch.manual_seed(0)
    model = create_model(name, num_classes=14, size="paper").eval()
    card = model_card(name=name, size="paper", image_size=224, overrides={}, classes=None,
                      num_classes=14)  # fmt: skip
    path = save_model(model, folder / f"{name}.pt", card)
    row = {"model": name}
    began = time.perf_counter()
    onnx_file = export_module.export_model(path, "onnx", folder / f"{name}.onnx")
    row["export s"] = time.perf_counter() - began
    if optimised:
        real = torch.onnx.export

        def with_optimiser(*args, **kwargs):
            return real(*args, **{**kwargs, "optimize": True})

        torch.onnx.export = with_optimiser
        try:
            began = time.perf_counter()
            export_module.export_model(path, "onnx", folder / f"{name}.optimised.onnx")
            row["export s (optimiser on)"] = time.perf_counter() - began
        finally:
            torch.onnx.export = real
    x = torch.randn(8, 3, 224, 224)
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"images": x.numpy()})
    with torch.no_grad():
        expected = torch.sigmoid(model(x)).numpy()
    # random paper-size weights give logits far from 0: most probabilities are exactly 0 or 1,
    # so agreement is judged by the share that is not (a trained model's agreement on a real
    # X-ray is a test of the suite: tests/models/test_model_api.py)
    row["largest difference"] = float(np.abs(got - expected).max())
    row["share of probabilities in (0, 1)"] = float(((expected > 0) & (expected < 1)).mean())
    began = time.perf_counter()
    for _ in range(3):
        session.run(None, {"images": x.numpy()})
    row["onnxruntime img/s"] = 24 / (time.perf_counter() - began)
    with torch.no_grad():
        began = time.perf_counter()
        for _ in range(3):
            model(x)
    row["PyTorch img/s"] = 24 / (time.perf_counter() - began)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["ctranscnn_tiny", "chexnet_tiny"])
    parser.add_argument("--optimised", action="store_true", help="also time onnxscript's optimiser")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    logging.getLogger("onnxscript").setLevel(logging.ERROR)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            rows.append(measure(name, Path(tmp), args.optimised))
            print({k: round(v, 4) if isinstance(v, float) else v for k, v in rows[-1].items()})
    from benchmarks.report import write_result

    summary = []
    for row in rows:
        text = (f"{row['export s']:.1f} s; onnxruntime {row['onnxruntime img/s']:.1f} img/s "
                f"(PyTorch {row['PyTorch img/s']:.1f}), largest difference "
                f"{row['largest difference']:.1e}")  # fmt: skip
        if "export s (optimiser on)" in row:
            text += f"; with onnxscript's optimiser {row['export s (optimiser on)']:.1f} s"
        summary.append({"figure": f"ONNX export of {row['model']} (paper size)", "value": text})
    path = write_result(
        "export_speed", {"benchmark": "export_speed", "rows": rows, "summary": summary},
        Path(args.out),
    )  # fmt: skip
    print(f"written {path}")


if __name__ == "__main__":
    main()
