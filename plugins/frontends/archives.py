"""Checks on zip archives (``.keras`` files, torch archives) before a framework opens them.

A zip bomb is a small archive that declares, or decompresses to, far more data
than any model needs: opening it exhausts memory or disk in the loader. The
worker's memory limit bounds the damage, but the user deserves the reason, not
"exceeded the memory limit". Python's ``zipfile`` (which Keras and torch use)
stops reading an entry at the size its header declares, so checking the
declared sizes is enough; the ratio check catches archives whose declared
sizes are honest but absurd for model weights (random floats barely compress).
"""

from __future__ import annotations

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


def check_zip_archive(path: Path, max_uncompressed: int = MAX_UNCOMPRESSED_BYTES) -> list[str]:
    """Refuse zip bombs and entries that escape the archive; returns the entry names."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"{path}: not a readable zip archive ({exc})") from None
    if len(entries) > MAX_ENTRIES:
        raise InputError(f"{path}: rejected: the archive holds {len(entries)} entries (limit {MAX_ENTRIES})")
    total = 0
    for entry in entries:
        name = PurePosixPath(entry.filename)
        if name.is_absolute() or ".." in name.parts:
            raise InputError(f"{path}: rejected: archive entry {entry.filename!r} points outside the archive")
        total += entry.file_size
        if entry.file_size > RATIO_CHECKED_ABOVE and entry.file_size > MAX_RATIO * max(entry.compress_size, 1):
            raise InputError(
                f"{path}: rejected: zip bomb: entry {entry.filename!r} expands {entry.compress_size} bytes to "
                f"{entry.file_size} (over {MAX_RATIO}x)"
            )
    if total > max_uncompressed:
        raise InputError(f"{path}: rejected: the archive expands to {total} bytes (limit {max_uncompressed})")
    return [entry.filename for entry in entries]
