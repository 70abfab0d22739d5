"""The content digest of a model file or folder: what a bulk add or a rerun recognises without converting.

A platform's store is hashed again and again (a crawl resumed, a cluster job
retried); converting every model to find it is already indexed would cost the
whole run again. The digest is SHA-256 over the bytes, read in blocks (a
multi-gigabyte file never sits in memory). A folder (a SavedModel, a Hugging
Face folder) digests the sorted relative paths of its regular files with each
file's digest, so a copy of the folder elsewhere has the same digest and a
changed byte anywhere gives another. Symbolic links inside a folder are not
followed (a link out of the folder must not pull in other files): a link
contributes its target text. A link named as the model itself is followed: its
target is what converts. Anything that is neither a regular file nor a folder (a FIFO would block
the reader) is refused.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from hnn.errors import InputError

BLOCK_BYTES = 1 << 20
PREFIX = "sha256:"


def content_digest(path: str | Path) -> str:
    """``sha256:<hex>`` of a regular file's bytes, or of a folder's files (names and digests)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode  # a link given as the model is followed; links inside a folder are not
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if stat.S_ISREG(mode):
        return PREFIX + _file_digest(path)
    if stat.S_ISDIR(mode):
        return PREFIX + _folder_digest(path)
    raise InputError(f"{path}: not a regular file or folder")


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as file:
            while block := file.read(BLOCK_BYTES):
                digest.update(block)
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    return digest.hexdigest()


def _folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for root, folders, files in os.walk(folder):  # does not descend into linked folders
        folders.sort()
        for name in sorted(files + [f for f in folders if os.path.islink(os.path.join(root, f))]):
            path = Path(root, name)
            relative = path.relative_to(folder).as_posix()
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                part = "link:" + os.readlink(path)
            elif stat.S_ISREG(mode):
                part = "file:" + _file_digest(path)
            else:
                raise InputError(f"{path}: not a regular file (inside the model folder {folder})")
            digest.update(f"{relative}\0{part}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()
