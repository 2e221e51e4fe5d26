"""The real datasets in one call: ``python -m cxrlib download cxr14|cxr11`` (or notebook 01's
``DOWNLOAD`` parameter), through Kaggle's ``kagglehub``.

* CXR14: Kaggle dataset ``nih-chest-xrays/data`` (NIH ChestX-ray14, Wang et al., CVPR 2017);
* CXR11: Kaggle competition ``ranzcr-clip-catheter-line-classification`` (RANZCR CLiP): its
  rules must be accepted once on the competition's page before Kaggle serves the files.

On Kaggle an attached input is used as it is (no download; :mod:`cxrlib.data.roots`). Else
the files go to ``<DATA_DIR>/kagglehub`` (the workspace's ``kagglehub_cache``, from
``$KAGGLEHUB_CACHE``, if set): kagglehub downloads one
archive, resumes it where a dead session left it (HTTP range requests), unpacks it and then
deletes it -- so the disk must hold the archive and the unpacked files at once, about twice the
dataset's size, which is checked before anything is fetched. A finished download is recorded
(``<DATA_DIR>/downloads.json``) and from then on selects the real data by itself.
"""

from __future__ import annotations

from pathlib import Path

from cxrlib.core.errors import UserError
from cxrlib.core.fileio import check_free_space
from cxrlib.core.platform import environment_variable
from cxrlib.core.workspace import Workspace
from cxrlib.data.datasets import get_dataset
from cxrlib.data.definition import DatasetDef
from cxrlib.data.roots import discover_root, record_download

GB = 1024**3
#: kagglehub holds the archive and the unpacked files at once before deleting the archive.
SPACE_FACTOR = 2.0


class DownloadError(UserError, RuntimeError):
    """A download that cannot go on: no credentials, rules not accepted, no kagglehub."""


def download_folder(workspace: Workspace) -> Path:
    """Where kagglehub keeps downloads: the workspace's ``kagglehub_cache``
    (``$KAGGLEHUB_CACHE``), else ``<DATA_DIR>/kagglehub``."""
    return workspace.kagglehub_cache or workspace.data / "kagglehub"


def download(dataset: str, workspace: Workspace) -> Path:
    """The root of ``dataset``'s real data: found (``DATA_ROOTS``, a Kaggle input, an earlier
    download) or downloaded now into the workspace. Returns the folder that holds its marker
    file."""
    definition = get_dataset(dataset)
    source = definition.download
    if source is None:
        raise DownloadError(f"{definition.name} has no Kaggle source to download from")
    given = workspace.root(definition.name)
    found = (given, "DATA_ROOTS") if given else discover_root(definition, workspace)
    if found is not None and definition.has_marker(found[0]):
        print(f"{definition.name}: already here, {found[0]} ({found[1]}); nothing to download")
        return found[0]
    try:
        import kagglehub  # optional: only downloading needs it (preinstalled on Colab, Kaggle)
    except ImportError:
        raise DownloadError(
            "downloading needs kagglehub: pip install kagglehub (it is preinstalled on Colab "
            "and Kaggle)"
        ) from None
    folder = download_folder(workspace)
    folder.mkdir(parents=True, exist_ok=True)
    check_free_space(
        folder,
        int(SPACE_FACTOR * source.gigabytes * GB),
        f"the {definition.title} download (its archive and the unpacked files at once)",
        f"{source.route} Or free some space, or set DATA_DIR (--data-dir, $CXRLIB_DATA_DIR) or "
        f"$KAGGLEHUB_CACHE to a larger disk",
    )
    print(
        f"{definition.name}: downloading {source.url} (about {source.gigabytes:.0f} GB) to {folder}"
    )
    try:
        # kagglehub reads its cache folder only from $KAGGLEHUB_CACHE, at call time
        with environment_variable("KAGGLEHUB_CACHE", str(folder)):
            if source.kind == "competition":
                path = kagglehub.competition_download(source.handle)
            else:
                path = kagglehub.dataset_download(source.handle)
    except Exception as err:  # kagglehub's errors differ between versions: judged by content
        raise _explain(err, definition) from err
    root = _root_in(Path(path), definition)
    record_download(workspace, definition.name, root)
    print(f"{definition.name}: ready at {root}")
    return root


def _root_in(path: Path, definition: DatasetDef) -> Path:
    """The folder under a download that holds the dataset's marker file."""
    for candidate in (path, *sorted(p.parent for m in definition.markers for p in path.rglob(m))):
        if definition.has_marker(candidate):
            return candidate
    raise DownloadError(
        f"the download at {path} holds no {' or '.join(definition.markers)}: it is incomplete "
        f"or Kaggle changed its layout; delete {path} and download again"
    )


def _explain(err: Exception, definition: DatasetDef) -> Exception:
    """A message that says what to do for the usual failures; others pass unchanged."""
    source = definition.download
    text = f"{type(err).__name__}: {err}"
    status = getattr(getattr(err, "response", None), "status_code", None)
    if (
        "Unauthenticated" in type(err).__name__
        or "Credential" in type(err).__name__
        or (status == 401)
    ):
        return DownloadError(
            f"Kaggle credentials are missing ({text}). Create an API token on "
            f"https://www.kaggle.com/settings (API, Create New Token) and put kaggle.json in "
            f"~/.kaggle/, or set KAGGLE_USERNAME and KAGGLE_KEY; on Colab add the secret "
            f"KAGGLE_API_TOKEN (or those two; the key icon), or run kagglehub.login()"
        )
    if status == 403 or "403" in str(err):
        if source.kind == "competition":
            return DownloadError(
                f"Kaggle refused the {definition.title} files ({text}): accept the competition's "
                f"rules once at {source.url}/rules (signed in with the account of your API "
                f"token), then run the download again; it resumes"
            )
        return DownloadError(f"Kaggle refused {source.url} ({text}): check your API token")
    return err
