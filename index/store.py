"""The index file: SQLite storage of codes, structures and weight marks, searched in memory by Hamming distance.

One file, no server. Each entry: a stable id, the model's name and source,
framework, an optional label (family or owner), the code and its bit count,
the digest of the checkpoint that made it, the IR digest, the time it was
added, its structure (hnn.hasher.structure: structure code, topology
digest, scale), its weight marks (hnn.ingest.weights; in their own table,
with an SQL index from mark to entry) and its provenance fingerprint with its
probe (hnn.provenance; in their own table), and the content digests of the
files it was added from (hnn.index.contents: a rerun of a bulk add skips a file
already indexed without converting it). A search ranks its candidates as
hnn.index.ranking says: the entries that share the query's weights first, then
those of the query's topology, then the others by the perceptual code. Older
indexes are upgraded when opened (version 1 had no structure, version 2 no
digest and scale, version 3 no weight marks, version 4 no fingerprints, version 5 no content
digests); their entries keep their codes,
lack what they lack, and so never count as sharing weights or as the query's
topology, and come after entries with a structure code at the same distance.
An index holds codes of one checkpoint only: the first entry fixes it, and
codes of another checkpoint or bit count are refused. One entry per model: a
model is already indexed when an entry has its IR digest and its weights (most
of its weight marks, SAME_WEIGHTS: a re-export is still the same model), or
when either side has no marks to tell them apart; two fine-tuned copies of one
architecture are two models. Version 3 and older files kept one entry per IR (a
UNIQUE column); their upgrade rebuilds the table without that constraint.

Durability: the database runs in WAL mode and each entry is its own
transaction, so an interrupted bulk add keeps every entry committed before the
interruption and never a half entry; concurrent writers wait for each other
(busy timeout) instead of failing.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hnn.errors import InputError, UsageError
from hnn.hasher import bits
from hnn.hasher.structure import STRUCTURE_BITS, Structure
from hnn.index.ranking import StructureColumns, rank
from hnn.index.search import packed_codes
from hnn.index.verdicts import SHARED_SUSPECT
from hnn.provenance.fingerprint import Fingerprint
from hnn.provenance.probe import PROBE_BYTES, probe

FORMAT = "hnn-index"
# 2: the structure column; 3: the topology and scale columns; 4: weight marks, one entry per IR and weights;
# 5: provenance fingerprints; 6: content digests
VERSION = 6
BUSY_TIMEOUT_MS = 60_000
SQL_BATCH = 500  # ids per `IN (...)`: below SQLite's smallest limit on bound parameters (999)

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
    ir_digest TEXT NOT NULL,
    added REAL NOT NULL,
    structure BLOB,
    topology TEXT,
    scale BLOB,
    marks INTEGER NOT NULL DEFAULT 0  -- its rows in weight_marks: with ir_digest, an SQL index finds a mark-less copy
);
CREATE INDEX IF NOT EXISTS entries_by_topology ON entries (topology);
CREATE INDEX IF NOT EXISTS entries_by_ir ON entries (ir_digest, marks);
CREATE TABLE IF NOT EXISTS weight_marks (
    mark INTEGER NOT NULL,
    entry INTEGER NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
    PRIMARY KEY (mark, entry)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS weight_marks_by_entry ON weight_marks (entry);
CREATE TABLE IF NOT EXISTS fingerprints (
    entry INTEGER PRIMARY KEY REFERENCES entries (id) ON DELETE CASCADE,
    probe BLOB NOT NULL,  -- hnn.provenance.probe: read for every entry on a query, so kept apart from the data
    data BLOB NOT NULL  -- hnn.provenance.fingerprint.Fingerprint.to_bytes
);
CREATE TABLE IF NOT EXISTS contents (
    digest TEXT PRIMARY KEY,  -- hnn.index.contents.content_digest of a file or folder added
    entry INTEGER NOT NULL REFERENCES entries (id) ON DELETE CASCADE  -- its entry, or the entry it duplicated
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS contents_by_entry ON contents (entry);
"""
# The tables a file of each version has beside meta and entries: a file without one is damaged.
TABLES_SINCE = {4: "weight_marks", 5: "fingerprints", 6: "contents"}
# Named, not `SELECT *`: an upgraded file has the same columns, but say which order _entry reads.
COLUMNS = "id, name, source, framework, label, code, bits, checkpoint, ir_digest, added, structure, topology, scale"
# Of the marks of the model with fewer, how many another model of the same IR must share to be the
# same model. A re-export keeps every value and so every mark (every dynamo copy of
# benchmarks/evasion.py shares 128 of 128 with its TorchScript original); the margin is for a converter that re-lays out a few
# weights; another fine-tuning or initialisation shares none.
SAME_WEIGHTS = 3 / 4


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
    structure: Structure | None = None

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "source": self.source, "framework": self.framework,
                "label": self.label, "hash": bits.to_hex(self.code), "bits": self.bits,
                "structure": None if self.structure is None else bits.to_hex(self.structure.code),
                "topology": None if self.structure is None else self.structure.topology,
                "checkpoint": self.checkpoint[:16], "ir_digest": self.ir_digest, "added": self.added}


def _open_read_only(path: Path, shared: bool = False) -> sqlite3.Connection:
    """A connection that never writes the file nor creates one beside it; ``immutable`` where even
    a read-only open cannot work (a WAL file in a read-only folder: no -shm file can be made)."""
    uri = path.resolve().as_uri()
    try:
        db = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000,
                             check_same_thread=not shared)
        db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError:
        return sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None, check_same_thread=not shared)


def _tables_and_meta(db: sqlite3.Connection) -> tuple[set[str], dict]:
    """The file's table names, and its meta table as a dict (empty when it has none)."""
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return tables, dict(db.execute("SELECT key, value FROM meta")) if "meta" in tables else {}


def _cannot_write(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "readonly" in text or "read-only" in text or "unable to open" in text


class IndexBusy(InputError):
    """Another process held the index's write lock for longer than BUSY_TIMEOUT_MS."""


@contextmanager
def transaction(db: sqlite3.Connection, refused: Callable[[sqlite3.OperationalError], Exception] | None = None):
    """One write transaction (BEGIN IMMEDIATE: concurrent writers wait for each other): committed
    when the block ends, rolled back on any exception. ``refused`` words the error of a BEGIN
    that cannot write (a read-only file)."""
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise IndexBusy(f"index busy: another process held its write lock for over "
                            f"{BUSY_TIMEOUT_MS // 1000} s; nothing was written") from None
        if refused is None:
            raise
        raise refused(exc) from None
    try:
        yield
        db.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        db.execute("ROLLBACK")
        if refused is None or not _cannot_write(exc):  # a file SQLite opened read-only fails here
            raise
        raise refused(exc) from None
    except BaseException:
        db.execute("ROLLBACK")
        raise


class DuplicateEntry(Exception):
    def __init__(self, existing: Entry):
        super().__init__(f"already indexed as #{existing.id} ({existing.name})")
        self.existing = existing


class Index:
    """An open index file. Use as a context manager, or call :meth:`close`."""

    def __init__(self, path: str | Path, create: bool = False, shared: bool = False):
        """Open ``path``; ``create``: make it when it does not exist (or is an empty file).

        ``shared``: the connection may be used from several threads (a service's), one at a time:
        the caller serialises its calls (hnn.serve holds one lock around the index).

        A file that exists is first read without write access, so a file that is not an hnn
        index is refused unchanged. One that cannot be written (a read-only file or folder)
        opens read-only: reading works, and a write says why it cannot.
        """
        self.path = Path(path)
        self.read_only = False
        self.shared = shared
        if self.path.is_dir():
            raise InputError(f"{self.path}: is a directory, not an index file")
        if not self.path.exists() or self.path.stat().st_size == 0:
            if not create:
                raise InputError(f"{self.path}: no such index (`hnn index add` creates one)" if not self.path.exists()
                                 else f"{self.path}: an empty file, not an hnn index")
        else:
            self._refuse_unless_index()
        try:
            self.db = self._connect()
            self._check_or_initialise()
        except sqlite3.OperationalError as exc:
            if not _cannot_write(exc) or not self.path.is_file() or self.path.stat().st_size == 0:
                raise InputError(f"{self.path}: cannot create or write the index ({exc})") from None
            self.db = self._connect(read_only=True)  # a read-only file or folder, or an immutable file
            self.read_only = True
            self._check_or_initialise()
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path}: not an hnn index ({exc})") from None
        self._codes = None
        self._probes = None

    def _connect(self, read_only: bool = False) -> sqlite3.Connection:
        if read_only:
            db = _open_read_only(self.path, self.shared)
        else:
            db = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                 check_same_thread=not self.shared)
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if not read_only:
            db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA foreign_keys = ON")  # removing an entry removes its weight marks
        return db

    def _refuse_unless_index(self) -> None:
        """Read the file's tables and format without write access; refuse it unchanged unless it is an index."""
        try:
            db = _open_read_only(self.path)
            try:
                self._refuse_unless_index_tables(*_tables_and_meta(db))
            finally:
                db.close()
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path}: not an hnn index ({exc})") from None

    def _refuse_unless_index_tables(self, tables: set[str], meta: dict) -> None:
        if not {"meta", "entries"} <= tables or meta.get("format") != FORMAT:
            raise InputError(f"{self.path}: an SQLite file, but not an hnn index")

    def _check_or_initialise(self) -> None:
        tables, meta = _tables_and_meta(self.db)
        if not tables:
            with transaction(self.db):
                self._create_schema()
                self.db.execute("INSERT OR IGNORE INTO meta VALUES ('format', ?), ('version', ?)", (FORMAT, VERSION))
            return
        self._refuse_unless_index_tables(tables, meta)
        version = str(meta.get("version", 0))
        if not version.isdigit():
            raise InputError(f"{self.path}: a damaged hnn index (its format version is {version!r})")
        if int(version) > VERSION:
            raise InputError(f"{self.path}: index format version {version} is newer than this hnn "
                             f"reads ({VERSION}); upgrade hnn")
        # A file of a version always has the tables of that version: one without them was damaged.
        missing = sorted(table for since, table in TABLES_SINCE.items() if since <= int(version) and table not in tables)
        if missing:
            raise InputError(f"{self.path}: a damaged hnn index (its {' and '.join(missing)} table is missing)")
        if int(version) < VERSION:
            self._upgrade(int(version))

    def _upgrade(self, version: int) -> None:
        """An older file -> VERSION in one transaction. Versions 1 to 3: the entries table is rebuilt
        with the columns it lacks (empty) and without version 3's one-entry-per-IR constraint, which
        SQLite cannot drop in place; entries keep their ids and codes, and later ids never reuse one.
        Versions 4 and 5 gain the tables they lack, empty: a version-4 entry has no fingerprint, so
        it is never called derived, only what its code and marks say; an entry of either has no
        content digest, so a bulk add converts its file again (and finds it a duplicate)."""
        def refused(exc: sqlite3.OperationalError) -> InputError:  # a read-only file or folder: say why
            return InputError(f"{self.path}: a version-{self.meta('version')} index, which this hnn upgrades to "
                              f"version {VERSION} when it opens it, and the upgrade cannot write ({exc})")

        with transaction(self.db, refused):
            if version >= 4:
                self._create_schema()
                self.db.execute("UPDATE meta SET value = ? WHERE key = 'version'", (str(VERSION),))
                return
            kept = ", ".join(row[1] for row in self.db.execute("PRAGMA table_info(entries)"))
            self.db.execute("DROP INDEX IF EXISTS entries_by_topology")  # the name moves to the new table's
            self.db.execute("ALTER TABLE entries RENAME TO entries_before_upgrade")
            self._create_schema()
            self.db.execute(f"INSERT INTO entries ({kept}) SELECT {kept} FROM entries_before_upgrade")
            self.db.execute("DELETE FROM sqlite_sequence WHERE name = 'entries'")
            self.db.execute("INSERT INTO sqlite_sequence (name, seq) SELECT 'entries', seq FROM sqlite_sequence "
                            "WHERE name = 'entries_before_upgrade'")
            self.db.execute("DROP TABLE entries_before_upgrade")
            self.db.execute("UPDATE meta SET value = ? WHERE key = 'version'", (str(VERSION),))

    def _create_schema(self) -> None:
        """Every table and SQL index of SCHEMA that is missing (IF NOT EXISTS)."""
        for statement in SCHEMA.split(";"):
            if statement.strip():
                self.db.execute(statement)

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    # --- metadata -----------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def bit_count(self) -> int | None:
        """The bit count of the index's codes, None before its first entry."""
        value = self.meta("bits")
        if value is None:
            return None
        if not str(value).isdigit():
            raise InputError(f"{self.path}: a damaged hnn index (its bit count is {value!r})")
        return int(value)

    def _claim_checkpoint(self, checkpoint_digest: str, bits: int) -> None:
        """Inside a write transaction: fix the index's checkpoint, or refuse another one."""
        stored = self.meta("checkpoint")
        if stored is None:
            self.db.execute("INSERT INTO meta VALUES ('checkpoint', ?), ('bits', ?)", (checkpoint_digest, str(bits)))
            return
        if stored != checkpoint_digest or self.bit_count() != bits:
            raise UsageError(
                f"{self.path}: holds {self.meta('bits')}-bit codes of checkpoint {stored[:12]}; these are "
                f"{bits}-bit codes of checkpoint {checkpoint_digest[:12]}: codes of two checkpoints cannot be compared"
            )

    def check_compatible(self, checkpoint_digest: str, bits: int) -> None:
        stored = self.meta("checkpoint")
        if stored is not None and (stored != checkpoint_digest or self.bit_count() != bits):
            raise UsageError(f"{self.path}: made with checkpoint {stored[:12]} ({self.meta('bits')} bits); "
                             f"the query used {checkpoint_digest[:12]} ({bits} bits)")

    # --- entries ------------------------------------------------------------------------

    def add(self, name: str, source: str, framework: str, code: np.ndarray, checkpoint_digest: str,
            ir_digest: str, label: str | None = None, structure: Structure | None = None,
            weight_marks: list[int] | None = None, fingerprint: Fingerprint | None = None,
            content_digest: str | None = None) -> Entry:
        """Add one entry in its own transaction; raises DuplicateEntry for a model already indexed
        (its IR, and its weights as far as the marks tell). ``content_digest``, of the file or
        folder the model came from, is recorded with the entry, or with the entry it duplicates
        (a duplicate's digest is still committed), so that :meth:`content_entry` finds it."""
        packed = bits.to_bytes(code).tobytes()
        packed_structure = None if structure is None else _pack_structure(structure.code)
        topology = None if structure is None else structure.topology
        scale = None if structure is None or structure.scale is None else np.asarray(structure.scale, "<f8").tobytes()
        with transaction(self.db, self._cannot_write_error):
            self._claim_checkpoint(checkpoint_digest, len(code))
            existing = self._same_model(ir_digest, weight_marks or [])
            if existing is None:
                existing = self._insert(name, source, framework, label, packed, len(code), checkpoint_digest,
                                        ir_digest, packed_structure, topology, scale, weight_marks, fingerprint,
                                        content_digest)
                added = True
            else:
                added = False
                if content_digest is not None:
                    self.db.execute("INSERT OR IGNORE INTO contents (digest, entry) VALUES (?, ?)",
                                    (content_digest, existing.id))
        if not added:
            raise DuplicateEntry(existing)
        self._codes = self._probes = None
        return existing

    def _insert(self, name, source, framework, label, packed, bit_count, checkpoint_digest, ir_digest,
                packed_structure, topology, scale, weight_marks, fingerprint, content_digest) -> Entry:
        """Inside add's transaction: the rows of one new entry."""
        cursor = self.db.execute(
            "INSERT INTO entries (name, source, framework, label, code, bits, checkpoint, ir_digest, added, "
            "structure, topology, scale, marks) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (name, source, framework, label, packed, bit_count, checkpoint_digest, ir_digest, time.time(),
             packed_structure, topology, scale, len(set(weight_marks or []))),
        )
        self.db.executemany("INSERT OR IGNORE INTO weight_marks (mark, entry) VALUES (?, ?)",
                            [(int(mark), cursor.lastrowid) for mark in weight_marks or []])
        if fingerprint is not None:
            self.db.execute("INSERT INTO fingerprints (entry, probe, data) VALUES (?, ?, ?)",
                            (cursor.lastrowid, probe(fingerprint), fingerprint.to_bytes()))
        if content_digest is not None:  # a digest already recorded (another entry's file) stays with it
            self.db.execute("INSERT OR IGNORE INTO contents (digest, entry) VALUES (?, ?)",
                            (content_digest, cursor.lastrowid))
        return self.get(cursor.lastrowid)

    def content_entry(self, content_digest: str) -> Entry | None:
        """The entry a file or folder of this content digest was added as (or found a duplicate of)."""
        row = self.db.execute(f"SELECT {COLUMNS} FROM entries WHERE id = (SELECT entry FROM contents WHERE digest = ?)",
                              (content_digest,)).fetchone()
        return None if row is None else self._entry(row)

    def content_digests(self) -> set[str]:
        """Every content digest recorded: what a bulk add skips without converting."""
        return {row[0] for row in self.db.execute("SELECT digest FROM contents")}

    def _same_model(self, ir_digest: str, weight_marks: list[int]) -> Entry | None:
        """The entry that is this model already: its IR, and its weights unless marks say otherwise.

        Read through the SQL indexes (IR digest; mark -> entry), so adding the thousandth copy of a
        popular architecture does not read the other 999.
        """
        if not weight_marks:  # nothing to tell copies of one IR apart: the first is this model
            row = self.db.execute(f"SELECT {COLUMNS} FROM entries WHERE ir_digest = ? ORDER BY id LIMIT 1",
                                  (ir_digest,)).fetchone()
            return None if row is None else self._entry(row)
        row = self.db.execute(f"SELECT {COLUMNS} FROM entries WHERE ir_digest = ? AND marks = 0 ORDER BY id LIMIT 1",
                              (ir_digest,)).fetchone()
        if row is not None:  # an entry without marks cannot tell either
            return self._entry(row)
        shared = self.shared_marks(weight_marks)
        for entry_id in sorted(shared):
            row = self.db.execute(f"SELECT {COLUMNS}, marks FROM entries WHERE id = ? AND ir_digest = ?",
                                  (entry_id, ir_digest)).fetchone()
            if row is not None and shared[entry_id] >= SAME_WEIGHTS * min(row[-1], len(weight_marks)):
                return self._entry(row[:-1])
        return None

    def remove(self, entry_id: int) -> Entry:
        entry = self.get(entry_id)
        with transaction(self.db, self._cannot_write_error):
            self.db.execute("DELETE FROM entries WHERE id = ?", (entry_id,))
        self._codes = self._probes = None
        return entry

    def _cannot_write_error(self, exc: sqlite3.OperationalError) -> InputError:
        reason = "it is open read-only: the file or its folder cannot be written" if self.read_only else str(exc)
        return InputError(f"{self.path}: cannot write to the index ({reason})")

    def get(self, entry_id: int) -> Entry:
        row = self.db.execute(f"SELECT {COLUMNS} FROM entries WHERE id = ?", (entry_id,)).fetchone()
        if row is None:
            raise InputError(f"{self.path}: no entry #{entry_id}")
        return self._entry(row)

    def entries(self) -> list[Entry]:
        return [self._entry(row) for row in self.db.execute(f"SELECT {COLUMNS} FROM entries ORDER BY id")]

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]

    def _code(self, entry_id: int, blob, bit_count) -> np.ndarray:
        """An entry's code, or a one-line error naming the entry when its stored bytes are damaged."""
        if not isinstance(blob, bytes) or not isinstance(bit_count, int) or len(blob) != (bit_count + 7) // 8:
            raise InputError(f"{self.path}: a damaged hnn index: entry #{entry_id} has no readable {bit_count}-bit "
                             "code (`hnn index remove` it)")
        return bits.from_bytes(blob, bit_count)

    def _entry(self, row) -> Entry:
        entry_id, name, source, framework, label, code, bit_count, checkpoint, ir_digest, added, structure, topology, \
            scale = row
        if structure is not None:
            structure = Structure(_unpack_structure(structure), topology, _unpack_scale(scale))
        return Entry(entry_id, name, source, framework, label, self._code(entry_id, code, bit_count), bit_count,
                     checkpoint, ir_digest, added, structure)

    # --- search -------------------------------------------------------------------------

    def codes(self):
        """All codes, packed in memory (built on first use after a change)."""
        if self._codes is None:
            rows = self.db.execute("SELECT id, code, bits FROM entries ORDER BY id").fetchall()
            bit_count = self.bit_count() or 0
            ids = np.array([row[0] for row in rows], dtype=np.int64)
            width = (bit_count + 7) // 8
            for row in rows:  # one damaged entry is named, as _code names it; the rest decode at once
                if not isinstance(row[1], bytes) or len(row[1]) != width:
                    self._code(row[0], row[1], bit_count)
            packed = np.frombuffer(b"".join(row[1] for row in rows), np.uint8).reshape(len(rows), width)
            codes = bits.from_bytes(packed, bit_count).reshape(len(rows), bit_count)
            self._codes = packed_codes(codes, ids)
        return self._codes

    def query(self, code: np.ndarray, k: int = 10, radius: int | None = None,
              structure: Structure | None = None, shared: dict[int, int] | None = None) -> list[tuple[Entry, int]]:
        """Nearest entries (entry, Hamming distance): the k nearest, or all within ``radius``.

        With the query's ``structure`` (and ``shared``, what :meth:`shared_marks` says of the
        query's weight marks), entries are ordered as :func:`hnn.index.ranking.rank` says: those sharing
        the query's weights first, then those of its topology (both in a k-nearest search even
        when their code is farther than the k-th), ties of the code by structure distance;
        without it, by distance, then id.
        """
        if len(self) == 0:
            return []
        packed = self.codes()
        if radius is not None:
            candidates = packed.within(code, radius)
        else:
            nearest = packed.top_k(code, k)
            if structure is None or not nearest:  # not nearest: k < 1
                return [(self.get(int(entry_id)), int(distance)) for entry_id, distance in nearest]
            # Every entry tied with the k-th, so that the tie-break chooses among all of them, and every
            # entry that shares the query's weights or topology, however far its code.
            candidates = packed.within(code, nearest[-1][1]) + self._related(structure, shared or {})
        if structure is not None:
            candidates = self._ranked(code, structure, shared or {}, candidates)
        if radius is None:
            candidates = candidates[:k]
        return [(self.get(int(entry_id)), int(distance)) for entry_id, distance in candidates]

    def _related(self, structure: Structure, shared: dict[int, int]) -> list[tuple[int, None]]:
        """(id, None) of the entries that share weights with the query, or its topology: found by
        SQL indexes (the mark -> entry table, the digest column), not by reading the whole file."""
        ids = [entry_id for entry_id, count in shared.items() if count >= SHARED_SUSPECT]
        if structure.topology is not None:
            ids += [row[0] for row in self.db.execute("SELECT id FROM entries WHERE topology = ?",
                                                      (structure.topology,))]
        return [(entry_id, None) for entry_id in ids]

    def _ranked(self, code: np.ndarray, structure: Structure, shared: dict[int, int],
                candidates: list[tuple[int, int | None]]) -> list[tuple[int, int]]:
        """``candidates`` (id, code distance or None) once each, with their code distance, best first
        as :func:`hnn.index.ranking.rank` orders them, then by id.

        One batched read of what the ranking needs (code, structure, topology, scale), not whole
        entries: a popular architecture can have thousands of entries tied with the query.
        """
        ids = sorted({entry_id for entry_id, _ in candidates})
        rows = []
        for start in range(0, len(ids), SQL_BATCH):
            batch = ids[start:start + SQL_BATCH]
            rows += self.db.execute(f"SELECT id, code, structure, topology, scale FROM entries WHERE id IN "
                                    f"({', '.join('?' * len(batch))}) ORDER BY id", batch).fetchall()
        if not rows:
            return []
        row_ids = np.array([row[0] for row in rows], dtype=np.int64)
        code_distances, ranks = _rank_rows(rows, code, structure,
                                           np.array([shared.get(int(entry_id), 0) for entry_id in row_ids]))
        order = np.lexsort((row_ids, ranks))
        return [(int(row_ids[i]), int(code_distances[i])) for i in order]

    def probes(self) -> tuple[np.ndarray, np.ndarray]:
        """(entry ids, probes as uint8 rows) of every entry with a fingerprint, read once after a change.
        A probe of the wrong length (a damaged row) is left out: that entry is only never derived."""
        if self._probes is None:
            rows = [row for row in self.db.execute("SELECT entry, probe FROM fingerprints ORDER BY entry")
                    if isinstance(row[1], bytes) and len(row[1]) == PROBE_BYTES]
            ids = np.array([row[0] for row in rows], dtype=np.int64)
            matrix = np.frombuffer(b"".join(row[1] for row in rows), np.uint8).reshape(len(rows), PROBE_BYTES)
            self._probes = ids, matrix
        return self._probes

    def fingerprints(self, entry_ids) -> dict[int, Fingerprint]:
        """{id: fingerprint} of those entries that have a readable one (a damaged one is skipped: no evidence)."""
        ids = sorted({int(entry_id) for entry_id in entry_ids})
        found = {}
        for start in range(0, len(ids), SQL_BATCH):
            batch = ids[start:start + SQL_BATCH]
            for entry_id, data in self.db.execute(f"SELECT entry, data FROM fingerprints WHERE entry IN "
                                                  f"({', '.join('?' * len(batch))})", batch):
                try:
                    found[int(entry_id)] = Fingerprint.from_bytes(bytes(data))
                except (ValueError, TypeError):
                    continue
        return found

    def shared_marks(self, weight_marks: list[int] | None) -> dict[int, int]:
        """{entry id: weight marks it shares with ``weight_marks``}, for entries sharing any.

        One read of the mark -> entry SQL index per mark: the cost grows with the entries that
        share marks, not with the size of the index.
        """
        if not weight_marks:
            return {}
        marks = [int(mark) for mark in weight_marks]
        rows = self.db.execute(f"SELECT entry, COUNT(*) FROM weight_marks WHERE mark IN ({', '.join('?' * len(marks))}) "
                               "GROUP BY entry", marks)
        return {int(entry_id): int(count) for entry_id, count in rows}


_STRUCTURE_BLOB_BYTES = 2 + STRUCTURE_BITS // 8  # what _pack_structure writes for a structure code


def _rank_rows(rows: list[tuple], code: np.ndarray, structure: Structure,
               shared: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(code distances, ranks) of rows (id, code, structure, topology, scale), read as _entry reads
    them: the blobs of all rows are joined and decoded at once."""
    def column(index: int, length: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Which rows hold a blob of ``length`` bytes in that column, and those blobs as uint8 rows."""
        ok = np.array([row[index] is not None and len(row[index]) == length for row in rows], dtype=bool)
        blobs = b"".join(row[index] for row, keep in zip(rows, ok) if keep)
        return ok, (np.frombuffer(blobs, np.uint8).reshape(-1, length) if ok.any() else None)

    has_code, codes = column(1, (len(code) + 7) // 8)
    code_distances = np.full(len(rows), len(code), dtype=np.int64)  # a damaged code: as far as can be
    if codes is not None:
        code_distances[has_code] = (bits.from_bytes(codes, len(code)) != code).sum(axis=1)
    has_structure, stored = column(2, _STRUCTURE_BLOB_BYTES)
    structure_codes = np.zeros((len(rows), STRUCTURE_BITS), dtype=bool)
    if stored is not None:
        structure_codes[has_structure] = bits.from_bytes(stored[:, 2:], STRUCTURE_BITS)
    has_scale, scales = column(4, 16)  # two float64s, as _unpack_scale reads them
    scale_values = np.zeros((len(rows), 2))
    if scales is not None:
        scale_values[has_scale] = scales.view("<f8").reshape(-1, 2)
    # A digest counts only beside a structure blob, as _entry reads it.
    topologies = np.array([row[3] if row[2] is not None else None for row in rows], dtype=object)
    columns = StructureColumns(structure_codes, has_structure, topologies, scale_values, has_scale)
    return code_distances, rank(structure, code_distances, columns, shared)


def _pack_structure(structure: np.ndarray) -> bytes:
    """Two bytes of bit count, then the bits: older hnn versions wrote other lengths."""
    return len(structure).to_bytes(2, "big") + bits.to_bytes(structure).tobytes()


def _unpack_structure(blob: bytes) -> np.ndarray:
    return bits.from_bytes(blob[2:], int.from_bytes(blob[:2], "big"))


def _unpack_scale(blob: bytes | None) -> np.ndarray | None:
    """Two float64s; anything else (a damaged file) reads as no scale, so the entry is never of the query's topology."""
    if blob is None or len(blob) != 16:
        return None
    return np.frombuffer(blob, dtype="<f8").copy()
