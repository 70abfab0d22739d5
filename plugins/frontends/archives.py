"""Checks on zip archives (``.keras`` files, torch archives) before a framework opens them.

A zip bomb is a small archive that declares, or decompresses to, far more data
than any model needs: opening it exhausts memory or disk in the loader. The
worker's memory limit bounds the damage, but the user deserves the reason, not
"exceeded the memory limit". Python's ``zipfile`` (which Keras and torch use)
stops reading an entry at the size its header declares, so checking the
declared sizes is enough; the ratio check catches archives whose declared
sizes are honest but absurd for model weights (random floats barely compress),
for each large entry and for the archive as a whole (many entries just under the
per-entry threshold). Keras expands a ``.keras`` file into a temporary folder,
which on tmpfs is memory outside the worker's address-space limit: so inside the
worker the archive may expand to no more than the worker's memory limit
(``HNN_WORKER_MAX_MEMORY``, set by hnn.ingest.worker).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path, PurePosixPath

from hnn.errors import InputError

MAX_ENTRIES = 100_000
MAX_UNCOMPRESSED_BYTES = 8 * 1024**3
# Trained or freshly initialised weights compress by well under 10x; 1 GiB of
# zeros deflates by about 1000x. Small entries (configs, zero biases) may be
# as compressible as they like.
MAX_RATIO = 200
RATIO_CHECKED_ABOVE = 64 * 1024**2


def expansion_budget() -> int:
    """How far an archive may expand here: MAX_UNCOMPRESSED_BYTES, or the worker's memory limit if lower."""
    worker_limit = os.environ.get("HNN_WORKER_MAX_MEMORY", "")
    return min(MAX_UNCOMPRESSED_BYTES, int(worker_limit)) if worker_limit.isdigit() else MAX_UNCOMPRESSED_BYTES


def check_zip_archive(path: Path, max_uncompressed: int | None = None) -> list[str]:
    """Refuse zip bombs and entries that escape the archive; returns the entry names."""
    max_uncompressed = expansion_budget() if max_uncompressed is None else max_uncompressed
    if not Path(path).is_file():  # a FIFO or device would block or never end
        raise InputError(f"{path}: not a regular file")
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError) as exc:
        # ValueError: a name that is not UTF-8 though flagged so; NotImplementedError: a zip version
        # Python does not read (both found by scripts/fuzz.py --target keras).
        raise InputError(f"{path}: not a readable zip archive ({type(exc).__name__}: {exc})") from None
    if len(entries) > MAX_ENTRIES:
        raise InputError(f"{path}: rejected: the archive holds {len(entries)} entries (limit {MAX_ENTRIES})")
    total = compressed = 0
    for entry in entries:
        name = PurePosixPath(entry.filename)
        if name.is_absolute() or ".." in name.parts:
            raise InputError(f"{path}: rejected: archive entry {entry.filename!r} points outside the archive")
        if entry.flag_bits & 0x1:  # no model format encrypts its entries; zipfile would stop at them with a bug's error
            raise InputError(f"{path}: rejected: archive entry {entry.filename!r} is encrypted")
        total += entry.file_size
        compressed += entry.compress_size
        if entry.file_size > RATIO_CHECKED_ABOVE and entry.file_size > MAX_RATIO * max(entry.compress_size, 1):
            raise InputError(
                f"{path}: rejected: zip bomb: entry {entry.filename!r} expands {entry.compress_size} bytes to "
                f"{entry.file_size} (over {MAX_RATIO}x)"
            )
    if total > RATIO_CHECKED_ABOVE and total > MAX_RATIO * max(compressed, 1):
        raise InputError(f"{path}: rejected: zip bomb: its entries expand {compressed} bytes to {total} "
                         f"(over {MAX_RATIO}x)")
    if total > max_uncompressed:
        raise InputError(f"{path}: rejected: the archive expands to {total} bytes (limit {max_uncompressed})")
    return [entry.filename for entry in entries]
