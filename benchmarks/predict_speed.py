"""How long people wait for ``python -m cxrlib``: its help, one X-ray's prediction from a cold
start, and a folder of X-rays against the model's own inference speed.

Measured on this machine with a paper-size ``ctranscnn_tiny`` model file (random weights: the
time does not depend on them) and copies of the real RANZCR sample X-ray (2048 × 2500 PNG):

* cold commands, each a fresh interpreter, the median of ``--repeats``: ``python -c pass``,
  ``import cxrlib``, ``python -m cxrlib --help``, ``python -m cxrlib predict MODEL one.png``;
* where one prediction's time goes, in one process: imports, the model file (build and
  weights), decoding the image, the forward pass, a Grad-CAM overlay, writing the answer;
* a folder of ``--images`` X-rays through ``predict`` against the model's inference speed on
  the same inputs already decoded (batches of 16): the folder's share of it.

    OMP_NUM_THREADS=2 python benchmarks/predict_speed.py [--images 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SAMPLES = ROOT.parent / "shared" / "data" / "samples"


def cold(argv: list[str], repeats: int) -> float:
    """Median wall seconds of ``argv`` run ``repeats`` times, each in a fresh process."""
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True, cwd=ROOT)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def make_inputs(folder: Path, images: int) -> tuple[Path, list[Path]]:
    """A paper-size model file and ``images`` copies of the real sample X-ray as PNGs."""
    import torch
    from PIL import Image

    from cxrlib.data.sets.cxr14 import CLASSES
    from cxrlib.models import create_model
    from cxrlib.models.files import model_card, save_model

    torch.manual_seed(0)
    model = create_model("ctranscnn_tiny", num_classes=len(CLASSES), size="paper")
    thresholds = dict.fromkeys(CLASSES, 0.5)
    card = model_card(
        name="ctranscnn_tiny", size="paper", image_size=224, overrides={}, classes=list(CLASSES),
        data={"dataset": "cxr14", "source": "phantom", "split": "paper"},
        operating_points={"method": "Youden", "thresholds": thresholds},
    )  # fmt: skip
    path = save_model(model, folder / "best.pt", card)
    sample = next(iter(sorted(SAMPLES.glob("*.jpg"))), None)
    grey = Image.open(sample).convert("L") if sample else Image.new("L", (2048, 2500), 90)
    pngs = []
    for i in range(images):
        pngs.append(folder / "xrays" / f"xray{i:03d}.png")
        pngs[-1].parent.mkdir(exist_ok=True)
        grey.save(pngs[-1])
    return path, pngs


def parts(model_file: Path, png: Path, folder: Path) -> dict:
    """Where one prediction's time goes, in this process (imports first, cold)."""
    out = {}
    began = time.perf_counter()
    from cxrlib.app import predict as predict_module
    from cxrlib.train.model import load_model_file
    from cxrlib.train.runtime import cpu_runtime, predict

    out["imports"] = time.perf_counter() - began
    began = time.perf_counter()
    model = load_model_file(model_file)
    out["model file (build and weights)"] = time.perf_counter() - began
    began = time.perf_counter()
    xray = predict_module.read_xray(png)
    pixels = predict_module.model_input(xray, 224)[None]
    out["decode"] = time.perf_counter() - began
    began = time.perf_counter()
    scores = predict(model, pixels, [0], cpu_runtime())
    out["forward"] = time.perf_counter() - began
    began = time.perf_counter()
    predict_module.write_cams(model, pixels, [xray], scores, model.pretrained_cfg["classes"],
                              folder / "cams", top=1)  # fmt: skip
    out["Grad-CAM overlay"] = time.perf_counter() - began
    began = time.perf_counter()
    result = predict_module.predict_files(model_file, [str(png)])
    with redirect_stdout(io.StringIO()):
        print(predict_module.decisions_text(result))
    out["writing the answer (with a second model load)"] = time.perf_counter() - began
    return out


def folder_vs_model(model_file: Path, pngs: list[Path]) -> dict:
    """A folder through predict_files against the model alone on the decoded inputs."""
    import numpy as np
    import torch

    from cxrlib.app.predict import model_input, predict_files, read_xray
    from cxrlib.train.model import load_model_file
    from cxrlib.train.runtime import Runtime, predict

    model = load_model_file(model_file)
    pixels = np.stack([model_input(read_xray(p), 224) for p in pngs])
    runtime = Runtime(torch.device("cpu"))
    predict(model, pixels[:16], np.arange(16), runtime)  # warm-up
    began = time.perf_counter()
    predict(model, pixels, np.arange(len(pngs)), runtime, batch_size=16)
    model_rate = len(pngs) / (time.perf_counter() - began)
    began = time.perf_counter()
    predict_files(model_file, [str(p) for p in pngs])
    folder_rate = len(pngs) / (time.perf_counter() - began)
    return {"model images/s": model_rate, "predict images/s": folder_rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--parts", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.parts:
        model_file, png, folder = (Path(p) for p in args.parts)
        print(json.dumps(parts(model_file, png, folder)))
        return
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model_file, pngs = make_inputs(folder, args.images)
        env_free = {
            "interpreter (python -c pass)": cold([python, "-c", "pass"], args.repeats),
            "import cxrlib": cold([python, "-c", "import cxrlib"], args.repeats),
            "python -m cxrlib --help": cold([python, "-m", "cxrlib", "--help"], args.repeats),
            "python -m cxrlib predict, one PNG, cold": cold(
                [python, "-m", "cxrlib", "predict", str(model_file), str(pngs[0])], args.repeats
            ),
        }
        done = subprocess.run(  # a fresh process, so that its imports are cold
            [python, __file__, "--parts", str(model_file), str(pngs[0]), str(folder)],
            capture_output=True, text=True, check=True, cwd=ROOT,
        )  # fmt: skip
        inside = json.loads(done.stdout.strip().splitlines()[-1])
        rates = folder_vs_model(model_file, pngs)
    share = rates["predict images/s"] / rates["model images/s"]
    print("cold commands (median wall seconds):")
    for name, seconds in env_free.items():
        print(f"  {name:45s} {seconds:6.2f} s")
    print("one prediction, in one process:")
    for name, seconds in inside.items():
        print(f"  {name:45s} {seconds:6.2f} s")
    print(f"{args.images} X-rays: predict {rates['predict images/s']:.2f} img/s, the model alone "
          f"{rates['model images/s']:.2f} img/s: {share:.0%} of it")  # fmt: skip
    from benchmarks.report import write_result

    summary = [{"figure": k, "value": f"{v:.2f} s"} for k, v in {**env_free, **inside}.items()]
    summary += [
        {"figure": f"{args.images} X-rays through predict", "value":
         f"{rates['predict images/s']:.2f} img/s = {share:.0%} of the model's "
         f"{rates['model images/s']:.2f} img/s"},
    ]  # fmt: skip
    path = write_result(
        "predict_speed",
        {"benchmark": "predict_speed", "threads": os.environ.get("OMP_NUM_THREADS"),
         "cold": env_free, "parts": inside, "folder": rates, "images": args.images,
         "summary": summary},
        Path(args.out),
    )  # fmt: skip
    print(f"written {path}")


if __name__ == "__main__":
    main()
