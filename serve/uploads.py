"""An uploaded model on disk: a private folder per request, a safe file name, a zip of a model folder unpacked.

The service never opens an upload itself beyond copying its bytes: the model is
converted by hnn's sandboxed worker (hnn.ingest.worker), which is handed a path
inside the request's folder. That folder is made by ``mkdtemp`` (mode 0700,
inside the service's own 0700 scratch folder) and removed when the request
ends, whatever happened. The client's file name keeps only its last component
and safe characters (the suffix tells the front-ends what the file is), so it
can never name a path outside the folder. A ``.zip`` upload is a model folder
(a SavedModel, a Hugging Face folder, an ONNX file with its external data): it
is checked as hnn checks every archive (hnn.plugins.frontends.archives: no entry
outside the archive, no zip bomb, a bounded total) and unpacked by Python's
``zipfile``, which writes regular files only (no links, no device files).
"""

from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

from hnn.errors import InputError, summary
from hnn.plugins.frontends.archives import check_zip_archive

CHUNK_BYTES = 1 << 20
MAX_NAME_CHARS = 120
ARCHIVE_SUFFIX = ".zip"
UNPACKED = "model"  # the folder a zip upload is unpacked into


def safe_name(client_name: str | None) -> str:
    """A file name for the upload: the last path component of the client's name, with characters
    other than letters, digits, ``.``, ``_`` and ``-`` replaced; never empty, never hidden."""
    name = re.split(r"[/\\]", client_name or "")[-1]
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name)[-MAX_NAME_CHARS:].lstrip(".")
    return name or "upload"


@contextmanager
def request_folder(scratch: Path):
    """A private folder for one request's files, removed when the block ends."""
    folder = Path(tempfile.mkdtemp(prefix="upload-", dir=scratch))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def save_upload(upload, folder: Path, name: str) -> Path:
    """Copy the uploaded file (a starlette UploadFile, already received) into ``folder`` as ``name``,
    block by block; blocking: call it from a thread, not the event loop."""
    path = folder / name
    upload.file.seek(0)
    with open(path, "xb") as file:
        shutil.copyfileobj(upload.file, file, CHUNK_BYTES)
    return path


def model_path(saved: Path, max_unpacked: int) -> Path:
    """What to convert: the saved file, or for a ``.zip`` the folder it holds (unpacked beside it;
    a single top-level folder in the archive is the model folder)."""
    if saved.suffix.lower() != ARCHIVE_SUFFIX:
        return saved
    names = check_zip_archive(saved, max_uncompressed=max_unpacked)
    target = saved.parent / UNPACKED
    target.mkdir()
    try:
        with zipfile.ZipFile(saved) as archive:
            archive.extractall(target)
    except Exception as exc:  # noqa: BLE001  (corrupt deflate or LZMA data, a bad CRC, ...: zipfile raises many types)
        raise InputError(f"{saved.name}: cannot unpack the archive ({summary(exc)})") from None
    saved.unlink()  # the unpacked copy is what counts from here on
    tops = {Path(name).parts[0] for name in names if Path(name).parts}
    if not tops:
        raise InputError(f"{saved.name}: the archive is empty")
    folder = target / next(iter(tops)) if len(tops) == 1 and (target / next(iter(tops))).is_dir() else target
    return _model_in(folder, saved.name)


def _model_in(folder: Path, archive: str) -> Path:
    """The folder when a front-end reads it as a model (a SavedModel, ...); else the one model file
    directly inside it (an ONNX file with its external data beside it)."""
    from hnn.plugins.manager import frontends

    readers = [frontend for frontend, _ in frontends().values()]
    if any(frontend.claims(str(folder)) for frontend in readers):
        return folder
    files = sorted(path for path in folder.iterdir() if path.is_file() and any(f.claims(str(path)) for f in readers))
    if len(files) == 1:
        return files[0]
    found = f"{len(files)} model files" if files else "no model file"
    raise InputError(f"{archive}: the archive holds {found} and no model folder hnn reads; zip one model "
                     "(a file with what it needs beside it, or a model folder)")
