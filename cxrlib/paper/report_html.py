"""``REPORT.html``: the report as one self-contained page people open in a browser.

The Markdown report (:mod:`cxrlib.paper.report`) rendered with Python-Markdown, its figures
embedded as PNG data (scaled to the page's width, so the file stays a few megabytes), a warning at
the top when the numbers come from phantom data, and a style whose tables fit a laptop screen
(they wrap their text and scroll inside themselves, never the page). Nothing is fetched from the
network when it opens: it can be mailed, archived or opened from Google Drive.
"""

from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path

from PIL import Image

#: The widest figure the page shows, in pixels (a laptop screen's content width).
FIGURE_WIDTH = 1200

STYLE = """
body { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       margin: 0 auto; max-width: 1180px; padding: 0 24px 48px; color: #1f2328;
       line-height: 1.5; }
h1 { font-size: 1.7em; margin-top: 0.6em; }
h2 { font-size: 1.3em; border-bottom: 1px solid #d0d7de; padding-bottom: 0.2em;
     margin-top: 1.8em; }
.warning { background: #fff4e5; border: 2px solid #d97706; border-radius: 6px;
           padding: 10px 16px; margin: 16px 0; font-weight: 600; }
.table { overflow-x: auto; max-width: 100%; margin: 12px 0; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #d0d7de; padding: 3px 8px; vertical-align: top; }
th { background: #f6f8fa; text-align: left; }
td { overflow-wrap: anywhere; }
tr:nth-child(even) td { background: #fbfbfc; }
code { font-size: 0.92em; background: #f6f8fa; padding: 0 3px; border-radius: 3px;
       overflow-wrap: anywhere; }
blockquote { margin: 12px 0; padding: 8px 16px; border-left: 4px solid #d97706;
             background: #fff9f0; }
figure { margin: 18px 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption { font-size: 0.9em; color: #57606a; }
"""


def _png_data(path: Path, width: int = FIGURE_WIDTH) -> str:
    """The PNG at ``path`` scaled down to ``width`` pixels (never up), as a data URL."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        if image.width > width:
            height = round(image.height * width / image.width)
            image = image.resize((width, height), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        # zlib's default level: optimize=True took 5x as long (4.6 s against 1.0 s for the
        # smoke report's 24 figures) for a page 2% smaller
        image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _embed_images(body: str, folder: Path) -> str:
    """Every ``<img src="relative.png">`` of ``body`` with its picture inside the page."""

    def embed(match: re.Match) -> str:
        source = html.unescape(match.group(2))
        path = folder / source
        if source.startswith(("data:", "http:", "https:")) or not path.is_file():
            return match.group(0)
        return f"{match.group(1)}{_png_data(path)}{match.group(3)}"

    return re.sub(r'(<img[^>]*\bsrc=")([^"]+)(")', embed, body)


def render_html(markdown_text: str, folder: Path, title: str, warning: str | None) -> str:
    """The page of ``markdown_text`` (its images relative to ``folder``), with ``warning`` in a
    box at the top when given."""
    import markdown  # here: only the HTML report needs it (Python-Markdown, as tensorboard)

    body = markdown.markdown(markdown_text, extensions=["tables", "sane_lists"])
    body = re.sub(r"<table>", '<div class="table"><table>', body)
    body = re.sub(r"</table>", "</table></div>", body)
    body = _embed_images(body, folder)
    banner = f'<div class="warning">{html.escape(warning)}</div>' if warning else ""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"{banner}\n{body}\n</body>\n</html>\n"
    )
