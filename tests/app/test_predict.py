"""predict for people: DICOM decoding, operating-point decisions, Grad-CAM files, warnings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cxrlib.app.main import main
from cxrlib.app.predict import model_input, read_xray
from cxrlib.data.cache import load_image
from cxrlib.models import create_model, save_model
from cxrlib.models.files import model_card

SAMPLE = "data/samples/1.2.826.0.1.3680043.8.498.41477985046369504069935954327112429508.jpg"


@pytest.fixture
def xray_png(tmp_path, shared_dir):
    """The real RANZCR X-ray, 8-bit grey at 400×328 (aspect kept), as a PNG."""
    path = shared_dir / SAMPLE
    if not path.is_file():
        pytest.skip(f"the real X-ray sample {path} is absent")
    with Image.open(path) as image:
        grey = image.convert("L").resize((400, 328), Image.Resampling.BICUBIC)
    out = tmp_path / "xray.png"
    grey.save(out)
    return out


def write_dicom(path, pixels, bits=8, photometric="MONOCHROME2", **attributes):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated = 8 if bits == 8 else 16
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits - 1, 0
    ds.PixelData = pixels.astype(np.uint8 if bits == 8 else np.uint16).tobytes()
    for key, value in attributes.items():
        setattr(ds, key, value)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_dicom_decodes_as_the_png(xray_png, tmp_path):
    grey = np.asarray(Image.open(xray_png))
    expected = load_image(xray_png, 64)
    plain = write_dicom(tmp_path / "a.dcm", grey)
    assert np.array_equal(read_xray(plain).pixels, grey)
    assert np.array_equal(model_input(read_xray(plain), 64), expected)
    # 12 bits, white stored as low values (MONOCHROME1), a rescale and a full-range window
    inverted = np.round((255 - grey.astype(np.float64)) * 4095 / 255).astype(np.uint16)
    other = write_dicom(
        tmp_path / "b.dcm", inverted, bits=12, photometric="MONOCHROME1",
        RescaleSlope=1, RescaleIntercept=0, WindowCenter=2048, WindowWidth=4096,
    )  # fmt: skip
    decoded = read_xray(other)
    assert decoded.bits == 12
    assert np.abs(decoded.pixels.astype(int) - grey).max() <= 1
    assert np.abs(model_input(decoded, 64).astype(int) - expected).max() <= 1


@pytest.fixture
def phantom_model(tmp_path):
    torch.manual_seed(0)
    classes = ["ETT - Abnormal", "ETT - Normal", "NGT - Normal"]
    model = create_model(
        "ctranscnn_tiny", num_classes=3, size="micro", image_size=64, drop_path=0.0
    )
    thresholds = dict(zip(classes, [0.3, 0.5, None], strict=True))
    card = model_card(
        name="ctranscnn_tiny", size="micro", image_size=64, overrides={"drop_path": 0.0},
        classes=classes, data={"dataset": "cxr11", "source": "phantom", "split": "paper"},
        operating_points={"method": "Youden", "thresholds": thresholds},
    )  # fmt: skip
    return save_model(model, tmp_path / "best.pt", card)


def test_predict_json_decisions_warnings_and_cams(phantom_model, xray_png, tmp_path, capsys):
    nih_style = tmp_path / "00000001_000.png"
    Image.open(xray_png).save(nih_style)
    dicom = write_dicom(
        tmp_path / "lateral.dcm", np.asarray(Image.open(xray_png)), ViewPosition="LL"
    )
    cams = tmp_path / "cams"
    argv = ["predict", str(phantom_model), str(xray_png), str(nih_style), str(dicom)]
    assert main([*argv, "--json", "--cam", str(cams)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["trained_on"]["source"] == "phantom" and result["operating_points"] == "Youden"
    first, nih, lateral = result["images"]
    assert any("phantom" in w for w in first["warnings"])
    assert any("NIH ChestX-ray14" in w for w in nih["warnings"])
    assert not any("NIH" in w for w in first["warnings"])
    assert any("lateral view" in w for w in lateral["warnings"])
    for p in first["predictions"]:
        if p["threshold"] is None:
            assert p["positive"] is None
        else:
            assert p["positive"] == (p["probability"] >= p["threshold"])
    files = sorted(cams.glob("xray_cam_*.png"))
    assert len(files) == 3  # its top three classes
    width, height = Image.open(xray_png).size
    for f in files:  # the X-ray at its own width above a caption band (class, p, colour bar)
        assert Image.open(f).size[0] == width and Image.open(f).size[1] > height
    band = np.asarray(Image.open(files[0]).convert("RGB"))[height:]
    assert (band < 128).any() and (band > 200).any()  # text and colour bar on white

    assert main([*argv, "--csv"]) == 0  # CSV: probabilities; the warnings go to stderr
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == "image,ETT - Abnormal,ETT - Normal,NGT - Normal"
    assert "warning:" in err and "phantom" in err

    assert main(argv) == 0  # the default: per image, probability, operating point, decision
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == str(xray_png)
    assert lines[1].split() == ["class", "probability", "operating", "point", "decision"]
    for p, line in zip(sorted(first["predictions"], key=lambda p: -p["probability"]),
                       lines[2:5], strict=True):  # fmt: skip
        assert line.split()[-3] == f"{p['probability']:.3f}"
        assert line.split()[-1] in {"positive", "negative", "–"}
    assert "operating points: Youden" in out
