"""prepare_dataset on phantom data, and every bad input it must name with its fix."""

from __future__ import annotations

import shutil
import warnings

import pytest

from cxrlib.core.config import load_config
from cxrlib.core.workspace import Workspace
from cxrlib.data.cache import ImageReadError
from cxrlib.data.datasets import get_dataset
from cxrlib.data.definition import DatasetLayoutError
from cxrlib.data.phantom import PhantomSpec, generate_phantom
from cxrlib.data.prepare import MissingImagesError, prepare_dataset
from cxrlib.data.roots import check_root
from cxrlib.data.sets.cxr11 import read as load_cxr11
from cxrlib.data.sets.cxr14 import read as load_cxr14
from cxrlib.data.splits import SplitFileError

SMALL = {"phantom_images": 60}


@pytest.fixture
def config(isolated_outputs):
    warnings.simplefilter("ignore", UserWarning)  # no network: phantom labels are random
    return load_config("smoke", **SMALL)


def _phantom_root(config, dataset):
    spec = PhantomSpec(dataset, num_images=config.data.phantom_images, label_source="random")
    return generate_phantom(spec, config.workspace.data / "phantom")


@pytest.mark.parametrize("dataset", ["cxr14", "cxr11"])
def test_prepare_phantom_end_to_end(config, dataset):
    data = prepare_dataset(config, dataset, workers=0, progress=False)
    assert set(data.table["part"]) == {"train", "val", "test"}
    assert data.cache.pixels.shape[1:] == (64, 64)
    assert len(data.label_disagreements) == 0
    rows = data.cache_rows("test")
    assert len(rows) == len(data.labels("test")) > 0
    patient = load_config("smoke", split="patient", **SMALL)
    other = prepare_dataset(patient, dataset, workers=0, progress=False)
    assert (other.table["part"] == other.table["patient_split"]).all()


def test_missing_images_error_and_explicit_subset(config):
    root = _phantom_root(config, "cxr11")
    victim = sorted((root / "train").glob("*.jpg"))[0]
    victim.unlink()
    with pytest.raises(MissingImagesError, match=r"1 of 60 images .* missing") as info:
        prepare_dataset(config, "cxr11", workers=0, progress=False)
    assert victim.name in str(info.value) and "ALLOW_MISSING_IMAGES" in str(info.value)
    allowed = load_config("smoke", allow_missing_images=True, **SMALL)
    data = prepare_dataset(allowed, "cxr11", workers=0, progress=False)
    assert data.dropped_missing == 1 and len(data.table) == 59


def test_truncated_image_names_the_file(config):
    root = _phantom_root(config, "cxr14")
    victim = sorted(root.glob("images_001/images/*.png"))[3]
    with open(victim, "r+b") as handle:
        handle.truncate(200)
    with pytest.raises(ImageReadError, match=victim.name):
        prepare_dataset(config, "cxr14", workers=0, progress=False)


def test_split_of_another_dataset_is_refused(config):
    root = _phantom_root(config, "cxr14")
    lines = (root / "splits/add72_chest14_test_labels.txt").read_text().splitlines()
    lines[0] = "NIH-Chest_x-rays14_multi-label/Mass/99999999_000.png\t" + ",".join(["0"] * 14)
    (root / "splits/add72_chest14_test_labels.txt").write_text("\n".join(lines))
    with pytest.raises(SplitFileError, match="not in the dataset"):
        prepare_dataset(config, "cxr14", workers=0, progress=False)


def test_duplicate_image_names_are_refused(config):
    root = _phantom_root(config, "cxr14")
    first = sorted(root.glob("images_001/images/*.png"))[0]
    shutil.copy(first, root / "images_002" / "images" / first.name)
    with pytest.raises(DatasetLayoutError, match=f"duplicate image name {first.name}"):
        load_cxr14(root)


def test_wrong_layouts_name_the_file_and_fix(tmp_path):
    with pytest.raises(DatasetLayoutError, match=r"no Data_Entry_2017.csv.*nih-chest-xrays/data"):
        load_cxr14(tmp_path)
    with pytest.raises(DatasetLayoutError, match=r"no train.csv.*ranzcr-clip"):
        load_cxr11(tmp_path)
    (tmp_path / "train.csv").write_text("StudyInstanceUID,PatientID\n1,2\n")
    with pytest.raises(DatasetLayoutError, match=r"lacks the columns \['ETT - Abnormal'"):
        load_cxr11(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_root(get_dataset("cxr14"), str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match=r"has no Data_Entry_2017.csv"):
        check_root(get_dataset("cxr14"), str(tmp_path))


def test_real_profile_without_roots_says_how_to_configure(isolated_outputs):
    with pytest.raises(FileNotFoundError, match="--data-root cxr14=DIR"):
        prepare_dataset(load_config("paper"), "cxr14")


def test_the_official_split_is_patient_disjoint_and_restricted_to_the_papers_images(config):
    """SPLIT='official': NIH's lists, on the papers' abnormal images only, validation drawn
    from train_val by patient with SPLIT_SEED; its sizes stand in the split table."""
    from cxrlib.paper.data_summary import leakage_table, split_sizes_table

    official = config.override(split="official")
    data = prepare_dataset(official, "cxr14", progress=False)
    root = _phantom_root(config, "cxr14")
    test = set((root / "test_list.txt").read_text().split())
    assert set(data.part("test")["image_id"]) == test & set(data.table["image_id"])
    parts = {p: set(data.part(p)["patient_id"]) for p in ("train", "val", "test")}
    assert not parts["train"] & parts["val"] and not parts["val"] & parts["test"]
    assert len(data.part("val")) > 0
    sizes = split_sizes_table({"cxr14": data})
    assert "official (selected)" in set(sizes["split"]) and "paper" in set(sizes["split"])
    leakage = leakage_table({"cxr14": data})
    assert (leakage.loc[leakage["split"] == "official", "shared_patients"] == 0).all()
    with pytest.raises(DatasetLayoutError, match="cxr11 has no official split"):
        prepare_dataset(official, "cxr11", progress=False)


def test_the_official_split_without_its_lists_names_them(config, tmp_path):
    from cxrlib.data.splits import official_split

    data = prepare_dataset(config, "cxr14", progress=False)  # the other splits need no lists
    spec = get_dataset("cxr14").official_split
    with pytest.raises(SplitFileError, match=r"needs .*test_list\.txt .*SPLIT='paper'"):
        official_split(data.table, spec, tmp_path, required=True)
    assert (official_split(data.table, spec, tmp_path, required=False) == "").all()


def test_a_phantom_never_waits_for_the_network(config, monkeypatch):
    """Preparing phantom data downloads nothing (not the authors' split files either): on a
    machine whose network drops packets, that would be minutes of waiting per run."""
    import urllib.request

    def no_network(*args, **kwargs):
        raise AssertionError("the phantom path must not touch the network")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    prepare_dataset(config, "cxr14", progress=False)
    prepare_dataset(config, "cxr11", progress=False)


def test_offline_a_split_file_download_fails_at_once_naming_the_folder(tmp_path, monkeypatch):
    import urllib.request

    monkeypatch.setenv("CXRLIB_OFFLINE", "1")  # read into the workspace at the entry
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("no wait"))
    with pytest.raises(SplitFileError, match=r"CXRLIB_OFFLINE=1\) forbids .* copy the authors'"):
        offline = Workspace.from_env().offline
        get_dataset("cxr11").fetch_split_files(dest=tmp_path, offline=offline)
