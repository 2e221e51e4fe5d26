"""Headless Chromium (Debian's package, driven by playwright) for the tests that look at what
people open: the documentation site and REPORT.html. A test skips, saying what is missing, where
either is absent; ``.ci/run`` installs Chromium."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CXRLIB_CHROMIUM", "/usr/bin/chromium")
#: Chromium's flags for a closed machine (no background connections that the network refuses).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def _serve(folder: Path):
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the test reads failures from the browser
        pass


def browser():
    """Headless Chromium (Debian's package) under playwright, or a skip saying what is missing."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the docs extra is not installed")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run installs it)")
    return sync_api.sync_playwright()


#: What the page check runs in the browser: images that did not load, and the page's width
#: against the window's (horizontal overflow).
PAGE_CHECK = """() => ({
  broken: [...document.images].filter(i => (i.src.startsWith(location.origin)
                                         || i.src.startsWith("data:"))
                                        && !(i.complete && i.naturalWidth > 0))
                               .map(i => i.src.slice(0, 80)),
  overflow: document.documentElement.scrollWidth - window.innerWidth,
  text: document.body.innerText.length,
})"""


def check_pages(
    root: Path, paths: list[str], screenshots: dict[str, Path] | None = None, width: int = 1280
):
    """Open each page of ``root`` (served on localhost) in headless Chromium: every local link
    resolves (HTTP 200); returns {path: what the page check found}: images that did not load
    (``broken``), requests that failed (``failed``), horizontal ``overflow`` in pixels, and the
    length of the page's ``text``."""
    server = _serve(root)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    found, failed_requests, checked = {}, [], set()
    try:
        with browser() as p:
            chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = chromium.new_page(viewport={"width": width, "height": 800})
            page.on("response", lambda r: r.status >= 400 and failed_requests.append(r.url))
            for path in paths:
                failed_requests.clear()
                response = page.goto(base + path)
                assert response is not None and response.ok, f"{path}: {response}"
                page.wait_for_load_state("load")
                found[path] = page.evaluate(PAGE_CHECK) | {"failed": list(failed_requests)}
                local = page.eval_on_selector_all(
                    "a[href]",
                    "as => as.map(a => a.href).filter(h => h.startsWith(location.origin))",
                )
                for target in {href.split("#")[0] for href in local} - checked:
                    status = page.request.get(target).status
                    assert status == 200, f"{path}: broken link {target} ({status})"
                    checked.add(target)
                if screenshots and path in screenshots:
                    page.screenshot(path=str(screenshots[path]))
            chromium.close()
    finally:
        server.shutdown()
    return found
