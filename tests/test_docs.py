"""The front door: a README people finish, a documentation site that builds strictly and renders
in a real browser with no broken link or image, and no internal issue numbers anywhere."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser import check_pages
from tests.conftest import PROJECT_ROOT


def test_the_readme_is_a_front_door():
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for promise in ("./run_all.sh", "./run_all.sh --test", "Colab", "Kaggle", "docs/"):
        assert promise in readme
    assert "no GPU has run the kit yet" in readme.replace("**", "")
    for link in re.findall(r"\]\(((?!https?://)[^)#]+)", readme):  # every local link exists
        assert (PROJECT_ROOT / link).exists(), f"README links to {link}, which does not exist"


ISSUE_NUMBER = re.compile(r"\b[Ii]ssues? ?#?\d+|\(#\d+\)|#\d+,? item")


def test_no_internal_issue_numbers_anywhere():
    """Users cannot see the tracker the kit was built with: history is in CHANGELOG.md."""
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=PROJECT_ROOT, capture_output=True, text=True
    ).stdout.splitlines()
    if not tracked:
        pytest.skip("not a git checkout: the tracked files cannot be listed")
    suffixes = {".py", ".md", ".ipynb", ".sh", ".toml", ".yml", ".yaml", ".txt", ".cfg"}
    found = []
    for name in tracked:
        path = PROJECT_ROOT / name
        if path.suffix in suffixes and path.is_file() and name != "tests/test_docs.py":
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if ISSUE_NUMBER.search(line):
                    found.append(f"{name}:{number}: {line.strip()[:80]}")
    assert not found, "\n".join(found)


@pytest.fixture(scope="session")
def built_site(tmp_path_factory) -> Path:
    """``mkdocs build --strict`` of the documentation into a temporary folder."""
    pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e .[docs])")
    pytest.importorskip("material", reason="the docs extra is not installed")
    site = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return site


@pytest.mark.slow
def test_the_site_builds_strictly_with_every_page_and_generated_table(built_site):
    pages = {p.parent.name for p in built_site.rglob("index.html")}
    for page in ("configuration", "models", "benchmarks", "architecture", "03_train_cxr11"):
        assert page in pages, f"no page {page}"
    config = (built_site / "configuration" / "index.html").read_text()
    from cxrlib.core.config import LEAVES

    assert all(name.upper() in config for name in LEAVES), "every parameter is on the page"
    assert "<!-- generated:" not in config
    models = (built_site / "models" / "index.html").read_text()
    from cxrlib.models.registry import list_models

    assert all(name in models for name in list_models())
    assert not (built_site / "hooks.py").exists()


@pytest.mark.slow
def test_the_site_renders_in_chromium_with_no_broken_link_or_image(built_site, tmp_path):
    paths = sorted(
        str(p.parent.relative_to(built_site)) + "/"
        for p in built_site.rglob("index.html")
        if p.parent != built_site and "assets" not in p.parts
    )
    paths = ["", *[p for p in paths if p != "./"]]
    shots = {"": tmp_path / "home.png", "notebooks/03_train_cxr11/": tmp_path / "notebook.png"}
    found = check_pages(built_site, paths, shots)
    for path, check in found.items():
        assert not check["broken"], f"{path}: images that did not load: {check['broken']}"
        assert not check["failed"], f"{path}: requests that failed: {check['failed']}"
        assert check["text"] > 200, f"{path}: the page rendered (almost) no text"
    assert all(shot.stat().st_size > 10_000 for shot in shots.values())
    keep = os.environ.get("CXRLIB_KEEP_SCREENSHOTS")
    if keep:  # to look at them: CXRLIB_KEEP_SCREENSHOTS=/some/folder
        for shot in shots.values():
            shutil.copy(shot, Path(keep) / shot.name)


@pytest.mark.slow
def test_the_browser_check_sees_overflow_and_broken_images(tmp_path):
    """The page check can fail: a page wider than the window and a missing picture."""
    (tmp_path / "bad.html").write_text(
        '<html><body><p>text</p><div style="width:3000px">wide</div>'
        '<img src="missing.png"><img src="data:image/png;base64,AAAA"></body></html>'
    )
    (found,) = check_pages(tmp_path, ["bad.html"], width=1366).values()
    assert found["overflow"] > 1000 and len(found["broken"]) == 2 and len(found["failed"]) == 1
