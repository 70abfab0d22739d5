"""The model registry: an SQLite file of hash codes, searched in memory by Hamming distance.

One file, no server. Each entry: a stable id, the model's name and source,
framework, an optional label (family or owner), the code and its bit count,
the digest of the checkpoint that made it, the IR digest, the time it was
added, and the structure code (hnn.hasher.structure) that orders entries at the
same Hamming distance: a search returns the k nearest by the perceptual code,
and among equal distances the one whose structure code is nearest first. A
version-1 index (made before the structure code) is upgraded when opened; its
entries have none and come after those that have one at the same distance.
An index holds codes of one checkpoint only: the first entry fixes it, and
codes of another checkpoint or bit count are refused.

Durability: the database runs in WAL mode and each entry is its own
transaction, so an interrupted bulk add keeps every entry committed before the
interruption and never a half entry; concurrent writers wait for each other
(busy timeout) instead of failing.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hnn.errors import InputError, UsageError
from hnn.hasher.search import packed_codes
from hnn.hasher.structure import structure_distance

FORMAT = "hnn-index"
VERSION = 2  # 2: the structure column
BUSY_TIMEOUT_MS = 60_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    framework TEXT NOT NULL,
    label TEXT,
    code BLOB NOT NULL,
    bits INTEGER NOT NULL,
    checkpoint TEXT NOT NULL,
    ir_digest TEXT NOT NULL UNIQUE,
    added REAL NOT NULL,
    structure BLOB
);
"""


@dataclass(frozen=True)
class Entry:
    id: int
    name: str
    source: str
    framework: str
    label: str | None
    code: np.ndarray
    bits: int
    checkpoint: str
    ir_digest: str
    added: float
    structure: np.ndarray | None = None

    def to_dict(self) -> dict:
        from hnn.hasher.api import code_to_hex

        return {"id": self.id, "name": self.name, "source": self.source, "framework": self.framework,
                "label": self.label, "hash": code_to_hex(self.code), "bits": self.bits,
                "structure": None if self.structure is None else code_to_hex(self.structure),
                "checkpoint": self.checkpoint[:16], "ir_digest": self.ir_digest, "added": self.added}


class DuplicateEntry(Exception):
    def __init__(self, existing: Entry):
        super().__init__(f"already indexed as #{existing.id} ({existing.name})")
        self.existing = existing


class Index:
    """An open index file. Use as a context manager, or call :meth:`close`."""

    def __init__(self, path: str | Path, create: bool = False):
        self.path = Path(path)
        if not self.path.exists() and not create:
            raise InputError(f"{self.path}: no such index (`hnn index add` creates one)")
        if self.path.exists() and self.path.is_dir():
            raise InputError(f"{self.path}: is a directory, not an index file")
        try:
            self.db = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self.db.execute("PRAGMA journal_mode = WAL")
            self._check_or_initialise()
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path}: not an hnn index ({exc})") from None
        self._codes = None

    def _check_or_initialise(self) -> None:
        tables = {row[0] for row in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute("INSERT OR IGNORE INTO meta VALUES ('format', ?), ('version', ?)", (FORMAT, VERSION))
                self.db.execute("COMMIT")
            except Exception:
                self.db.execute("ROLLBACK")
                raise
            return
        if not {"meta", "entries"} <= tables:
            raise InputError(f"{self.path}: an SQLite file, but not an hnn index")
        meta = dict(self.db.execute("SELECT key, value FROM meta"))
        if meta.get("format") != FORMAT:
            raise InputError(f"{self.path}: an SQLite file, but not an hnn index")
        if int(meta.get("version", 0)) > VERSION:
            raise InputError(f"{self.path}: index format version {meta['version']} is newer than this hnn "
                             f"reads ({VERSION}); upgrade hnn")
        if int(meta.get("version", 0)) < VERSION:
            self._upgrade()

    def _upgrade(self) -> None:
        """Version 1 -> 2 in one transaction: add the (empty) structure column; entries keep their codes."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:  # a read-only file or folder: say why, not "not an index"
            raise InputError(f"{self.path}: a version-1 index, which this hnn upgrades to version {VERSION} "
                             f"when it opens it, and the upgrade cannot write ({exc})") from None
        try:
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(entries)")}
            if "structure" not in columns:
                self.db.execute("ALTER TABLE entries ADD COLUMN structure BLOB")
            self.db.execute("UPDATE meta SET value = ? WHERE key = 'version'", (str(VERSION),))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def __enter__(self) -> "Index":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    # --- metadata -----------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _claim_checkpoint(self, checkpoint_digest: str, bits: int) -> None:
        """Inside a write transaction: fix the index's checkpoint, or refuse another one."""
        stored = self.meta("checkpoint")
        if stored is None:
            self.db.execute("INSERT INTO meta VALUES ('checkpoint', ?), ('bits', ?)", (checkpoint_digest, str(bits)))
            return
        if stored != checkpoint_digest or int(self.meta("bits")) != bits:
            raise UsageError(
                f"{self.path}: holds {self.meta('bits')}-bit codes of checkpoint {stored[:12]}; these are "
                f"{bits}-bit codes of checkpoint {checkpoint_digest[:12]}: codes of two checkpoints cannot be compared"
            )

    def check_compatible(self, checkpoint_digest: str, bits: int) -> None:
        stored = self.meta("checkpoint")
        if stored is not None and (stored != checkpoint_digest or int(self.meta("bits")) != bits):
            raise UsageError(f"{self.path}: made with checkpoint {stored[:12]} ({self.meta('bits')} bits); "
                             f"the query used {checkpoint_digest[:12]} ({bits} bits)")

    # --- entries ------------------------------------------------------------------------

    def add(self, name: str, source: str, framework: str, code: np.ndarray, checkpoint_digest: str,
            ir_digest: str, label: str | None = None, structure: np.ndarray | None = None) -> Entry:
        """Add one entry in its own transaction; raises DuplicateEntry for an IR already indexed."""
        packed = np.packbits(code.astype(bool)).tobytes()
        packed_structure = None if structure is None else _pack_structure(structure)
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self._claim_checkpoint(checkpoint_digest, len(code))
            existing = self.db.execute("SELECT * FROM entries WHERE ir_digest = ?", (ir_digest,)).fetchone()
            if existing is not None:
                raise DuplicateEntry(self._entry(existing))
            cursor = self.db.execute(
                "INSERT INTO entries (name, source, framework, label, code, bits, checkpoint, ir_digest, added, "
                "structure) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, source, framework, label, packed, len(code), checkpoint_digest, ir_digest, time.time(),
                 packed_structure),
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self._codes = None
        return self.get(cursor.lastrowid)

    def remove(self, entry_id: int) -> Entry:
        entry = self.get(entry_id)
        self.db.execute("DELETE FROM entries WHERE id = ?", (entry_id,))
        self._codes = None
        return entry

    def get(self, entry_id: int) -> Entry:
        row = self.db.execute("SELECT * FROM entries WHERE id = ?", (entry_id,)).fetchone()
        if row is None:
            raise InputError(f"{self.path}: no entry #{entry_id}")
        return self._entry(row)

    def entries(self) -> list[Entry]:
        return [self._entry(row) for row in self.db.execute("SELECT * FROM entries ORDER BY id")]

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]

    @staticmethod
    def _entry(row) -> Entry:
        entry_id, name, source, framework, label, code, bits, checkpoint, ir_digest, added, structure = row
        bits_array = np.unpackbits(np.frombuffer(code, dtype=np.uint8))[:bits].astype(bool)
        return Entry(entry_id, name, source, framework, label, bits_array, bits, checkpoint, ir_digest, added,
                     None if structure is None else _unpack_structure(structure))

    # --- search -------------------------------------------------------------------------

    def codes(self):
        """All codes, packed in memory (built on first use after a change)."""
        if self._codes is None:
            rows = self.db.execute("SELECT id, code, bits FROM entries ORDER BY id").fetchall()
            bits = int(self.meta("bits") or 0)
            ids = np.array([row[0] for row in rows], dtype=np.int64)
            codes = np.array([np.unpackbits(np.frombuffer(row[1], np.uint8))[:bits] for row in rows],
                             dtype=bool).reshape(len(rows), bits)
            self._codes = packed_codes(codes, ids)
        return self._codes

    def query(self, code: np.ndarray, k: int = 10, radius: int | None = None,
              structure: np.ndarray | None = None) -> list[tuple[Entry, int]]:
        """Nearest entries (entry, Hamming distance): the k nearest, or all within ``radius``.

        With the query's ``structure`` code, entries at the same distance are ordered by
        :func:`structure_distance` (then by id); without it, by id.
        """
        if len(self) == 0:
            return []
        packed = self.codes()
        if radius is None:
            nearest = packed.top_k(code, k)
            if structure is None or not nearest:
                return [(self.get(int(entry_id)), int(distance)) for entry_id, distance in nearest]
            # Every entry tied with the k-th, so that the tie-break chooses among all of them.
            found = packed.within(code, nearest[-1][1])
        else:
            found = packed.within(code, radius)
        hits = [(self.get(int(entry_id)), int(distance)) for entry_id, distance in found]
        if structure is not None:
            hits.sort(key=lambda hit: (hit[1], structure_distance(structure, hit[0].structure), hit[0].id))
        return hits if radius is not None else hits[:k]


def _pack_structure(structure: np.ndarray) -> bytes:
    return len(structure).to_bytes(2, "big") + np.packbits(structure.astype(bool)).tobytes()


def _unpack_structure(blob: bytes) -> np.ndarray:
    bits = int.from_bytes(blob[:2], "big")
    return np.unpackbits(np.frombuffer(blob[2:], dtype=np.uint8))[:bits].astype(bool)
