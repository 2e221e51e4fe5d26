"""Bad inputs a user can give the kit, and the message each gets -- produced by running the kit
on them (``tests/test_bad_inputs.py`` checks every message; the documentation's reliability page
runs the same cases when it is built and shows what they said).

Each case makes its bad input in a fresh folder and runs one command (``python -m cxrlib ...``
in-process, or a notebook's parameters) and returns ``(exit status, what the user saw)``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

Case = Callable[[Path], tuple[int, str]]


def cli(*argv: str, folder: Path | None = None) -> tuple[int, str]:
    """``python -m cxrlib ARGV`` in this process: its exit status and what it printed on stderr
    (the workspace's folders under ``folder``)."""
    from cxrlib.app.main import main

    if folder is not None:
        argv = (*argv, "--runs-dir", str(folder / "runs"), "--data-dir", str(folder / "data"))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(list(argv))
    return code, err.getvalue().strip()


def notebook(**params) -> tuple[int, str]:
    """A notebook's parameters cell with ``params``: the error its next cell shows."""
    from cxrlib.app import config_and_extras
    from cxrlib.core.errors import as_user_error

    try:
        config_and_extras({"PROFILE": "smoke", **params})
    except Exception as err:  # the notebooks show an expected error as its one sentence
        expected = as_user_error(err)
        if expected is None:
            raise
        return 2, f"error: {' '.join(str(expected).split())}"
    return 0, ""


def _image(path: Path, size: int = 64) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), 120, np.uint8)).save(path)
    return path


def _labels(folder: Path, text: str, images: int = 4) -> Path:
    """A CSV dataset: ``images`` PNGs under ``folder/images`` and ``labels.csv`` of ``text``."""
    for i in range(images):
        _image(folder / "images" / f"{i}.png")
    (folder / "labels.csv").write_text(text)
    return folder / "labels.csv"


def _prepare(csv: Path, folder: Path, *extra: str) -> tuple[int, str]:
    return cli("prepare", "--profile", "smoke", "--dataset", f"csv:{csv}", *extra, folder=folder)


GOOD_ROWS = "".join(
    f"images/{i}.png,{i % 2},p{i},{'train' if i < 2 else 'test'}\n" for i in range(4)
)


def wrong_columns(tmp: Path):
    return _prepare(_labels(tmp, "picture,Effusion\n" + "a.png,1\n"), tmp)


def no_label_columns(tmp: Path):
    return _prepare(_labels(tmp, "path\nimages/0.png\n"), tmp)


def duplicated_ids(tmp: Path):
    return _prepare(_labels(tmp, "path,Effusion\nimages/0.png,1\nimages/0.png,0\n"), tmp)


def label_outside_the_classes(tmp: Path):
    return _prepare(_labels(tmp, "path,Effusion\nimages/0.png,2\nimages/1.png,0\n"), tmp)


def unknown_split_name(tmp: Path):
    return _prepare(_labels(tmp, "path,Effusion,split\nimages/0.png,1,training\n"), tmp)


def non_utf8_labels(tmp: Path):
    csv = _labels(tmp, "")
    csv.write_bytes("path,Épanchement\nimages/0.png,1\n".encode("latin-1") + b"\xff\xfe\n")
    return _prepare(csv, tmp)


def missing_csv(tmp: Path):
    return _prepare(tmp / "nowhere" / "labels.csv", tmp)


def _csv_with(tmp: Path, damage: Callable[[Path], None]) -> tuple[int, str]:
    csv = _labels(tmp, "path,Effusion,patient_id,split\n" + GOOD_ROWS)
    damage(tmp / "images" / "1.png")
    return _prepare(csv, tmp)


def zero_byte_image(tmp: Path):
    return _csv_with(tmp, lambda p: p.write_bytes(b""))


def truncated_image(tmp: Path):
    return _csv_with(tmp, lambda p: p.write_bytes(p.read_bytes()[:60]))


def not_an_image(tmp: Path):
    return _csv_with(tmp, lambda p: p.write_text("this is a text file, not an X-ray"))


def huge_image(tmp: Path):
    """A 20,000 × 20,000 image (400 megapixels): more than PIL agrees to decode by default."""

    def giant(path: Path) -> None:
        Image.new("L", (20_000, 20_000), 0).save(path, compress_level=1)

    return _csv_with(tmp, giant)


def missing_image(tmp: Path):
    return _csv_with(tmp, lambda p: p.unlink())


def symlink_loop_in_a_data_root(tmp: Path):
    root = tmp / "nih"
    root.mkdir()
    (root / "loop").symlink_to(root, target_is_directory=True)
    return cli("data", "--profile", "paper", "--data-root", f"cxr14={root}", folder=tmp)


def data_root_of_no_dataset(tmp: Path):
    return cli("data", "--data-root", f"cxr99={tmp}", folder=tmp)


def data_root_that_does_not_exist(tmp: Path):
    return cli("data", "--data-root", f"cxr14={tmp / 'nowhere'}", folder=tmp)


def unknown_parameter(tmp: Path):
    return cli("config", "--set", "epocs=3")


def parameter_out_of_range(tmp: Path):
    return cli("config", "--set", "epochs=0")


def parameter_of_the_wrong_type(tmp: Path):
    return notebook(EPOCHS="ten")


def unknown_profile(tmp: Path):
    return cli("config", "--profile", "full")


def unknown_model(tmp: Path):
    return cli("train", "--profile", "smoke", "--dataset", "cxr11", "--model", "resnet5",
               folder=tmp)  # fmt: skip


def folder_given_as_a_parameter(tmp: Path):
    return cli("config", "--set", f"runs_dir={tmp}")


def drive_not_mounted(tmp: Path):
    os.environ["CXRLIB_DRIVE_MOUNT"] = str(tmp / "content" / "drive")
    try:
        return notebook(RUNS_DIR=str(tmp / "content" / "drive" / "MyDrive" / "runs"))
    finally:
        del os.environ["CXRLIB_DRIVE_MOUNT"]


def read_only_results_folder(tmp: Path):
    """A results folder the process may not write to: a read-only file system where it can be
    mounted (root ignores a folder's mode), else a folder of mode 0500."""
    import subprocess

    from cxrlib.core.config import load_config
    from cxrlib.core.errors import as_user_error
    from cxrlib.core.workspace import Workspace
    from cxrlib.paper.outputs import save_figure

    results = tmp / "results" / "smoke" / "figures"
    results.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(results)], capture_output=True
    ).returncode == 0  # fmt: skip
    if not mounted:
        results.chmod(0o500)
    config = load_config("smoke", workspace=Workspace.at(tmp))
    try:
        import matplotlib.pyplot as plt

        fig, _ = plt.subplots()
        save_figure(fig, "figure", config)
        plt.close(fig)
    except Exception as err:
        expected = as_user_error(err)
        if expected is None:
            raise
        return 2, f"error: {' '.join(str(expected).split())}"
    finally:
        if mounted:
            subprocess.run(["umount", str(results)], capture_output=True)
        results.chmod(0o700)
    return 0, ""


def _model_file(tmp: Path) -> Path:
    import torch

    from cxrlib.models import create_model
    from cxrlib.models.files import model_card, save_model

    torch.manual_seed(0)
    model = create_model("resnet34", num_classes=2, size="micro", image_size=64)
    data = {"dataset": "cxr11", "source": "phantom"}
    card = model_card(name="resnet34", size="micro", image_size=64, overrides={},
                      classes=["A", "B"], data=data)  # fmt: skip
    return save_model(model, tmp / "best.pt", card)


def model_file_that_is_not_one(tmp: Path):
    (tmp / "best.pt").write_text("not a model")
    return cli("predict", str(tmp / "best.pt"), str(_image(tmp / "x.png")))


def model_file_altered_on_disk(tmp: Path):
    path = _model_file(tmp)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return cli("predict", str(path), str(_image(tmp / "x.png")))


def unreadable_dicom(tmp: Path):
    path = _model_file(tmp)
    dicom = tmp / "scan.dcm"
    dicom.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00garbage")
    return cli("predict", str(path), str(dicom))


def x_ray_that_is_not_an_image(tmp: Path):
    path = _model_file(tmp)
    (tmp / "x.png").write_text("not a picture")
    return cli("predict", str(path), str(tmp / "x.png"))


def metrics_file_damaged(tmp: Path):
    run = tmp / "runs" / "smoke" / "cxr11" / "paper" / "resnet34" / "seed0"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"test": {"mean_auc": 70.0}, "checksum": "0"}))
    return cli("metrics", str(run))


#: Every case: what it gives the kit, and the function that gives it.
CASES: dict[str, tuple[str, Case]] = {
    "CSV without an image column": ("picture,Effusion", wrong_columns),
    "CSV without label columns": ("path only", no_label_columns),
    "an image listed twice": ("two rows of images/0.png", duplicated_ids),
    "a label outside 0/1": ("Effusion = 2", label_outside_the_classes),
    "an unknown split name": ("split = training", unknown_split_name),
    "labels not in UTF-8": ("a Latin-1 CSV", non_utf8_labels),
    "a label file that does not exist": ("csv:/…/nowhere/labels.csv", missing_csv),
    "an empty (zero-byte) image": ("images/1.png of 0 bytes", zero_byte_image),
    "a truncated image": ("the first 60 bytes of a PNG", truncated_image),
    "a text file named .png": ("not an image", not_an_image),
    "a 20,000-pixel image": ("20,000 × 20,000 PNG", huge_image),
    "an image listed but missing": ("images/1.png deleted", missing_image),
    "a symlink loop in a data root": ("nih/loop -> nih", symlink_loop_in_a_data_root),
    "a data root of no dataset": ("--data-root cxr99=…", data_root_of_no_dataset),
    "a data root that does not exist": ("--data-root cxr14=…/x", data_root_that_does_not_exist),
    "an unknown parameter": ("--set epocs=3", unknown_parameter),
    "a parameter out of range": ("--set epochs=0", parameter_out_of_range),
    "a parameter of the wrong type": ('EPOCHS = "ten"', parameter_of_the_wrong_type),
    "an unknown profile": ("--profile full", unknown_profile),
    "an unknown model": ("--model resnet5", unknown_model),
    "a folder given as a parameter": ("--set runs_dir=…", folder_given_as_a_parameter),
    "Google Drive not mounted": ("RUNS_DIR under /content/drive", drive_not_mounted),
    "a read-only results folder": ("figures/ mode 0500", read_only_results_folder),
    "a model file that is not one": ("best.pt of text", model_file_that_is_not_one),
    "a model file altered on disk": ("one byte of best.pt flipped", model_file_altered_on_disk),
    "an unreadable DICOM": ("a .dcm of garbage", unreadable_dicom),
    "an X-ray that is not an image": ("x.png of text", x_ray_that_is_not_an_image),
    "a damaged metrics.json": ("its checksum wrong", metrics_file_damaged),
}  # fmt: skip
