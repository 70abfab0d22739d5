"""The index file: SQLite storage of codes, structures and weight marks, searched in memory by Hamming distance.

One file, no server. Each entry: a stable id, the model's name and source,
framework, an optional label (family or owner), the code and its bit count,
the digest of the checkpoint that made it, the IR digest, the time it was
added, its structure (hnn.hasher.structure: structure code, topology
digest, scale), its weight marks (hnn.ingest.weights; in their own table,
with an SQL index from mark to entry) and its provenance fingerprint with its
probe (hnn.provenance; in their own table), the MinHash signature of its op
pattern (hnn.hasher.structure; in its own table: :meth:`Index.family`), and the content digests of the
files it was added from (hnn.index.contents: a rerun of a bulk add skips a file
already indexed without converting it). A search ranks its candidates as
hnn.index.ranking says: the entries that share the query's weights first, then
those of the query's topology, then the others by the perceptual code. Older
indexes are upgraded when opened (version 1 had no structure, version 2 no
digest and scale, version 3 no weight marks, version 4 no fingerprints, version 5 no content
digests, version 6 no op-pattern signatures, version 7 signed op patterns of the "ops" kind alone:
:attr:`Index.pattern_kind`); their entries keep their codes,
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

In memory: what a query reads of every entry (the codes, and the columns the
ranking reads: _EntryTable) and every probe (_ProbeTable) are read from the file
once, in one scan each, and then kept up to date in place: this connection's add
and remove append and delete their rows (arrays with room to grow), and another
connection's commits (PRAGMA data_version) are read as the rows added since, or
after a removal as the whole table again. A query is then one pass of Hamming
distances over the codes, the ranking of its candidates' columns, and the probe
scan: benchmarks/index_scale.py measures it at a million entries. A process's
first query (all that `hnn check` makes) reads the codes alone, its candidates'
rows from the file, and groups only the probes of its layer sequence; a
long-lived index (that asks again, or read everything up front with codes(), as
`hnn serve` does) reads every column and groups every probe once.
"""

from __future__ import annotations

import operator
import sqlite3
import time
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path

import numpy as np

from hnn.errors import InputError, UsageError
from hnn.hasher import bits
from hnn.hasher.bits import to_words
from hnn.hasher.structure import (
    PATTERN_KIND,
    PATTERN_KINDS,
    SIGNATURE_BYTES,
    STRUCTURE_BITS,
    Structure,
    estimated_pattern_similarity,
    family_distance_matrix,
)
from hnn.index.ranking import StructureColumns, rank
from hnn.index.search import PackedCodes
from hnn.index.verdicts import SHARED_SUSPECT
from hnn.provenance.fingerprint import Fingerprint
from hnn.provenance.probe import ANCHORED_WORDS, PROBE_BYTES, ProbeColumns, by_sequence, probe
from hnn.provenance.selection import smallest

FORMAT = "hnn-index"
# 2: the structure column; 3: the topology and scale columns; 4: weight marks, one entry per IR and weights;
# 5: provenance fingerprints; 6: content digests; 7: op-pattern signatures; 8: their kind (meta 'patterns')
VERSION = 8
# Versions whose file an hnn that cannot write it (a read-only file, folder or mount) reads as it is:
# 7 lacks only the meta row that says its op patterns are of the "ops" kind, 6 the patterns table too.
READABLE_WITHOUT_UPGRADE = (6, 7)
BUSY_TIMEOUT_MS = 60_000
SQL_BATCH = 500  # ids per `IN (...)`: below SQLite's smallest limit on bound parameters (999)

# The probes alone, in the order of their entries: a query reads every probe, and this SQL index holds
# them in a few hundred bytes an entry, where the fingerprints table spreads them over the pages of their
# data (a scan of a million probes: 0.12 s of SQLite's time from it, 1.0 s from the table).
PROBE_INDEX = "CREATE INDEX IF NOT EXISTS fingerprints_probes ON fingerprints (entry, probe)"
SCHEMA = f"""
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
{PROBE_INDEX};
CREATE TABLE IF NOT EXISTS contents (
    digest TEXT PRIMARY KEY,  -- hnn.index.contents.content_digest of a file or folder added
    entry INTEGER NOT NULL REFERENCES entries (id) ON DELETE CASCADE  -- its entry, or the entry it duplicated
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS contents_by_entry ON contents (entry);
CREATE TABLE IF NOT EXISTS patterns (
    entry INTEGER PRIMARY KEY REFERENCES entries (id) ON DELETE CASCADE,
    signature BLOB NOT NULL  -- hnn.hasher.structure.pattern_signature: read for every entry by a family answer
);
"""
# The tables a file of each version has beside meta and entries: a file without one is damaged.
TABLES_SINCE = {4: "weight_marks", 5: "fingerprints", 6: "contents", 7: "patterns"}
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


class _UpgradeRefused(InputError):
    """An older index whose upgrade cannot write (a read-only file or folder)."""


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
        self._table: _EntryTable | None = None  # what a query reads of every entry, in memory (codes())
        self._probe_table: _ProbeTable | None = None  # every probe, in memory (probes())
        self._pattern_table: _PatternTable | None = None  # every op-pattern signature, in memory (_patterns())
        self._pattern_kind: str | None = None  # the meta row, read once (pattern_kind)
        self._version = None  # PRAGMA data_version when the tables were last brought up to date
        # A process's first query (all `hnn check` makes) reads what it needs; a long-lived one (that called
        # codes() to read everything up front, as `hnn serve` does, or asks again) reads every column.
        self._warm = False
        self._ranked_queries = self._probe_reads = 0

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
                self.db.execute("INSERT OR IGNORE INTO meta VALUES ('format', ?), ('version', ?), ('patterns', ?)",
                                (FORMAT, VERSION, PATTERN_KIND))
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
        if int(version) < VERSION and not self._signed_ops_at_version_7(int(version)):
            try:
                self._upgrade(int(version))
            except _UpgradeRefused:
                if int(version) not in READABLE_WITHOUT_UPGRADE:
                    raise
                # A version-6 file that cannot be written is read without a family answer, a version-7
                # one with its "ops" signatures (pattern_kind).
        self._index_probes()

    def _signed_ops_at_version_7(self, version: int) -> bool:
        """A version-7 file with op-only signatures (hnn 0.5.1, 0.5.2) stays version 7: hnn signs its later
        entries so too (pattern_kind), and the hnn that wrote it can go on reading it."""
        return version == 7 and self.db.execute("SELECT 1 FROM patterns LIMIT 1").fetchone() is not None

    def _index_probes(self) -> None:
        """A version-6 file written before the probes had their SQL index (hnn 0.2) gains it when it
        is first opened with write access, unless another writer holds the file now (then later):
        a query then reads the probes from the index, not from the whole fingerprints table."""
        if self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'fingerprints_probes'").fetchone():
            return
        self.db.execute("PRAGMA busy_timeout = 0")  # never wait for it
        try:
            with transaction(self.db):
                self.db.execute(PROBE_INDEX)
        except (IndexBusy, sqlite3.OperationalError):  # busy, or a file opened read-only: the table is read instead
            pass
        finally:
            self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    def _upgrade(self, version: int) -> None:
        """An older file -> VERSION in one transaction. Versions 1 to 3: the entries table is rebuilt
        with the columns it lacks (empty) and without version 3's one-entry-per-IR constraint, which
        SQLite cannot drop in place; entries keep their ids and codes, and later ids never reuse one.
        Versions 4 to 6 gain the tables they lack, empty: a version-4 entry has no fingerprint, so
        it is never called derived, only what its code and marks say; an entry of 4 or 5 has no
        content digest, so a bulk add converts its file again (and finds it a duplicate); an entry
        of 4 to 6 has no op-pattern signature, so it is never a query's family (:meth:`family`). A
        version-7 file with signatures is left as it is (_signed_ops_at_version_7); one without becomes 8.
        The version is read again under the write lock: another process may have upgraded the file, or
        (hnn 0.5.2) signed an entry, since this one opened it."""
        def refused(exc: sqlite3.OperationalError) -> InputError:  # a read-only file or folder: say why
            return _UpgradeRefused(f"{self.path}: a version-{self.meta('version')} index, which this hnn upgrades to "
                              f"version {VERSION} when it opens it, and the upgrade cannot write ({exc})")

        with transaction(self.db, refused):
            version = int(self.meta("version") or 0)
            if version >= VERSION or self._signed_ops_at_version_7(version):
                return
            if version >= 4:
                self._create_schema()
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('patterns', ?)", (PATTERN_KIND,))
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
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('patterns', ?)", (PATTERN_KIND,))
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

    @property
    def pattern_kind(self) -> str:
        """Which op pattern this file's signatures are of (hnn.hasher.structure.PATTERN_KINDS): a query and
        an add sign with it, so every signature of a file is of one kind. A version-7 file records none:
        "ops". Read again after another connection's commit (:meth:`_sync`): an upgrade may have set it."""
        self._sync()
        if self._pattern_kind is None:
            kind = self.meta("patterns")
            if kind is None and int(self.meta("version") or 0) <= 7:
                kind = "ops"
            if kind not in PATTERN_KINDS:
                raise InputError(f"{self.path}: a damaged hnn index (its op patterns are of an unknown kind {kind!r})")
            self._pattern_kind = kind
        return self._pattern_kind

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
        probed = None if fingerprint is None else probe(fingerprint)
        signature = None if structure is None else structure.signature(self.pattern_kind)
        pattern = None if signature is None else np.asarray(signature, np.uint8).tobytes()
        with transaction(self.db, self._cannot_write_error):
            self._claim_checkpoint(checkpoint_digest, len(code))
            existing = self._same_model(ir_digest, weight_marks or [])
            if existing is None:
                existing = self._insert(name, source, framework, label, packed, len(code), checkpoint_digest,
                                        ir_digest, packed_structure, topology, scale, weight_marks, fingerprint,
                                        probed, content_digest, pattern)
                added = True
            else:
                added = False
                if content_digest is not None:
                    self.db.execute("INSERT OR IGNORE INTO contents (digest, entry) VALUES (?, ?)",
                                    (content_digest, existing.id))
        if not added:
            raise DuplicateEntry(existing)
        # The tables in memory gain the entry as a fresh read would give it (after any other writer's).
        self._sync()
        if self._table is not None and not len(self._table):  # read before the first entry fixed the bit count
            self._table = None
        if self._table is not None:
            self._table.append(self, (existing.id, packed, packed_structure, topology, scale))
        if self._probe_table is not None:
            self._probe_table.append(existing.id, probed)
        if self._pattern_table is not None and pattern is not None:
            self._pattern_table.append(existing.id, pattern)
        return existing

    def _insert(self, name, source, framework, label, packed, bit_count, checkpoint_digest, ir_digest,
                packed_structure, topology, scale, weight_marks, fingerprint, probed, content_digest,
                pattern=None) -> Entry:
        """Inside add's transaction: the rows of one new entry (``probed``: the fingerprint's probe,
        ``pattern``: the op-pattern signature's bytes)."""
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
                            (cursor.lastrowid, probed, fingerprint.to_bytes()))
        if pattern is not None:
            self.db.execute("INSERT INTO patterns (entry, signature) VALUES (?, ?)", (cursor.lastrowid, pattern))
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
            fingerprinted = self.db.execute("SELECT 1 FROM fingerprints WHERE entry = ?", (entry_id,)).fetchone()
            self.db.execute("DELETE FROM entries WHERE id = ?", (entry_id,))
        self._sync()
        if self._table is not None:
            self._table.remove(entry_id)
        if self._probe_table is not None:
            self._probe_table.remove(entry_id, fingerprinted is not None)
        if self._pattern_table is not None:
            self._pattern_table.remove(entry_id)
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

    def warm_up(self) -> None:
        """Read every table a query reads now (the codes with their ranking columns, the probes, the op-pattern
        signatures), as a long-lived process such as ``hnn serve`` does before its first request: at 10^6
        entries the signatures alone took the first check after start 1.5 s."""
        self.codes()
        self.probes()
        self._patterns()

    def codes(self) -> PackedCodes:
        """All codes, packed in memory, with every column a query ranks by: read once (what a
        long-lived process, such as ``hnn serve``, does before its first request), then kept up to
        date (:meth:`_sync`). The arrays are the index's own, valid until its next change."""
        self._warm = True
        table = self._entries_table(full=True)
        return PackedCodes(table.rows["words"], table.rows["ids"])

    def _entries_table(self, full: bool) -> _EntryTable:
        """The table in memory, with the ranking columns if ``full`` (read again if it lacks them)."""
        self._sync()
        if self._table is None or (full and not self._table.full):
            self._table = _EntryTable.read(self, full)
        return self._table

    def _sync(self) -> None:
        """Bring the tables in memory up to what the file holds now. This connection's adds and removes
        change them in place; another connection's commits (PRAGMA data_version tells) are read: the
        entries added since (ids only grow), or, after a removal, the whole table when next needed."""
        version = self.db.execute("PRAGMA data_version").fetchone()[0]
        if version == self._version:
            return
        self._version = version
        self._pattern_kind = None
        if self._table is None and self._probe_table is None and self._pattern_table is None:
            return
        with _snapshot(self.db):
            if self._table is not None:
                count = self.db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
                rows = self.db.execute(f"SELECT {TABLE_COLUMNS} FROM entries WHERE id > ? ORDER BY id",
                                       (self._table.last_id,)).fetchall()
                if count != len(self._table) + len(rows) or not len(self._table):  # removed, or before the first
                    self._table = None
                else:
                    self._table.extend(self, rows)
            if self._pattern_table is not None:
                count = self.db.execute("SELECT COUNT(*) FROM patterns").fetchone()[0]
                rows = self.db.execute("SELECT entry, signature FROM patterns WHERE entry > ? ORDER BY entry",
                                       (self._pattern_table.last_id,)).fetchall()
                if count != self._pattern_table.rows_read + len(rows):  # removed: read again when next needed
                    self._pattern_table = None
                else:
                    self._pattern_table.extend(rows)
            if self._probe_table is not None:
                count = self.db.execute("SELECT COUNT(*) FROM fingerprints").fetchone()[0]
                rows = self.db.execute("SELECT entry, probe FROM fingerprints WHERE entry > ? ORDER BY entry",
                                       (self._probe_table.last_id,)).fetchall()
                if count != self._probe_table.rows_read + len(rows):
                    self._probe_table = None
                else:
                    last = self.db.execute("SELECT MAX(id) FROM entries").fetchone()[0]
                    self._probe_table.extend(rows, last or 0)

    def query(self, code: np.ndarray, k: int = 10, radius: int | None = None,
              structure: Structure | None = None, shared: dict[int, int] | None = None) -> list[tuple[Entry, int]]:
        """Nearest entries (entry, Hamming distance): the k nearest, or all within ``radius``.

        With the query's ``structure`` (and ``shared``, what :meth:`shared_marks` says of the
        query's weight marks), entries are ordered as :func:`hnn.index.ranking.rank` says: those sharing
        the query's weights first, then those of its topology (both in a k-nearest search even
        when their code is farther than the k-th), ties of the code by structure distance;
        without it, by distance, then id.

        In memory (the table of codes and ranking columns, :meth:`codes`): one pass of Hamming
        distances over every code gives both the k nearest and every entry tied with the k-th.
        """
        # The first ranked query reads the codes alone and its candidates' rows from the file (what a
        # `hnn check` needs); from the second on, the index lives long: every column is read once.
        table = self._entries_table(full=structure is not None and (self._warm or self._ranked_queries > 0))
        self._ranked_queries += structure is not None
        if not len(table):
            return []
        ids, distances = table.rows["ids"], table.distances(code)
        if radius is not None:
            chosen = np.flatnonzero(distances <= radius)
            if structure is None:
                order = chosen[np.argsort(distances[chosen], kind="stable")]  # positions are in id order
                return self._hits(ids[order], distances[order])
        else:
            nearest = smallest(distances, k)
            if structure is None or not len(nearest):  # not nearest: k < 1
                return self._hits(ids[nearest], distances[nearest])
            # Every entry tied with the k-th, so that the tie-break chooses among all of them, and every
            # entry that shares the query's weights or topology, however far its code.
            candidates = distances <= distances[nearest[-1]]
            candidates[table.related(self, structure, shared or {})] = True
            chosen = np.flatnonzero(candidates)
        order, code_distances = table.ranked(self, chosen, code, structure, shared or {}, distances[chosen],
                                             None if radius is not None else k)
        return self._hits(ids[order], code_distances)

    def _hits(self, entry_ids: np.ndarray, distances: np.ndarray) -> list[tuple[Entry, int]]:
        return [(self.get(int(entry_id)), int(distance)) for entry_id, distance in zip(entry_ids, distances)]

    def probes(self) -> tuple[np.ndarray, ProbeColumns]:
        """(entry ids, their probes) of every entry with a fingerprint, in memory: read once, then kept
        up to date (:meth:`_sync`). A probe of the wrong length (a damaged row) is left out: that entry
        is only never derived."""
        self._sync()
        if self._probe_table is None:
            indexed = self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' "
                                      "AND name = 'fingerprints_probes'").fetchone()
            with _snapshot(self.db):
                last = self.db.execute("SELECT MAX(id) FROM entries").fetchone()[0]
                rows = self.db.execute("SELECT entry, probe FROM fingerprints "
                                       f"{'INDEXED BY fingerprints_probes ' if indexed else ''}ORDER BY entry").fetchall()
            self._probe_table = _ProbeTable(rows, last or 0)
        if (self._warm or self._probe_reads) and not self._probe_table.grouped:
            self._probe_table.group()  # every layer sequence's group at once, not one at each first query of it
        self._probe_reads += 1
        return self._probe_table.columns()

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

    def family(self, code: np.ndarray, signature: np.ndarray | None) -> dict | None:
        """The entry of the query's family: nearest by the code's distance as a share of its bits plus
        FAMILY_PATTERN_WEIGHTS (of the file's pattern_kind) times the op patterns' Jaccard distance, estimated
        from the signatures
        (hnn.hasher.structure.family_distance_matrix); the lowest id of a tie. A different answer from
        the ranking's first: it asks which known models this one is *like* (its family, its kind of
        layers), not which one it is, and holds where the code is far, as for a family at a size
        never trained on. None when the query or no entry has a signature (entries of version 6
        and older files have none); ``patterns`` says among how many entries it chose."""
        if signature is None:
            return None
        patterns = self._patterns()
        if patterns is None or not len(patterns):
            return None
        table = self._entries_table(full=False)
        at, groups = patterns.aligned(table)
        if not len(at):
            return None
        # Entries of one op-pattern signature (a base and its fine-tunes: most of a hub) share the pattern
        # term, so the family distance is computed once per distinct signature, at its entries' nearest
        # code: a query costs a pass over the entries' code distances, not over their signatures.
        code_distances = table.distances(code)[at].astype(np.int64)
        nearest_code = np.full(patterns.distinct, np.iinfo(np.int64).max)
        np.minimum.at(nearest_code, groups, code_distances)
        present = np.flatnonzero(nearest_code < np.iinfo(np.int64).max)
        similarity = estimated_pattern_similarity(signature, patterns.signatures[present], self.pattern_kind)
        distances = family_distance_matrix(nearest_code[None, present], table.bits, 1 - similarity[None, :],
                                           kind=self.pattern_kind)[0]
        winning = np.zeros(patterns.distinct, dtype=bool)
        winning[present[distances == distances.min()]] = True
        # The lowest id of a tie: the first entry (they are in id order) of a winning signature at its nearest code.
        first = int(np.flatnonzero(winning[groups] & (code_distances == nearest_code[groups]))[0])
        group = int(np.searchsorted(present, groups[first]))
        try:
            entry = self.get(int(table.rows["ids"][at[first]]))
        except InputError:  # removed by another process since the tables were read
            return None
        return {"id": entry.id, "name": entry.name, "label": entry.label, "distance": round(float(distances[group]), 4),
                "code_distance": int(code_distances[first]),
                "pattern_similarity": round(float(similarity[group]), 3), "patterns": int(len(at))}

    def _patterns(self) -> _PatternTable | None:
        """Every entry's op-pattern signature in memory: read once, then kept up to date (:meth:`_sync`).
        None for a version-6 file opened read-only, which has no patterns table and cannot gain one."""
        self._sync()
        if self._pattern_table is None:
            exists = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'patterns'"
            if self.db.execute(exists).fetchone() is None:
                return None
            with _snapshot(self.db):
                self._pattern_table = _PatternTable(self.db.execute(
                    "SELECT entry, signature FROM patterns ORDER BY entry").fetchall())
        return self._pattern_table

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
_SCALE_BYTES = 16  # two float64s, as _unpack_scale reads them
# What the table in memory holds of each entry: what a query reads of every entry, and what ranks its candidates.
TABLE_COLUMNS = "id, code, structure, topology, scale"
RANKING = ("structure", "has_structure", "structured", "topology", "scale", "has_scale")  # of a full table
_ANCHORED_END = 1 + ANCHORED_WORDS  # a probe's words: the digest, the anchored signs, then the positional sketches


@contextmanager
def _snapshot(db: sqlite3.Connection):
    """One read transaction (outside any other): the reads inside it see one state of the file."""
    if db.in_transaction:
        yield
        return
    db.execute("BEGIN")
    try:
        yield
    finally:
        db.execute("COMMIT")


class _Rows:
    """Columns of one row per entry, in id order, with room to grow: an append is amortised constant
    time (a full array grows by half), a removal moves the rows after it. The views handed out
    (``rows[name]``) are valid until the next change. A column named in ``across`` holds its rows
    along its second axis (each of its words contiguous over the entries: what one query scans)."""

    def __init__(self, columns: dict[str, np.ndarray], across: tuple[str, ...] = (), copy: bool = True):
        """``columns``: name -> its rows; ``copy``: False to keep those arrays (the caller's own, or
        read-only views, copied on the first change), with no room until the first append."""
        self._across = set(across)
        self.count = next(iter(columns.values())).shape[1 if next(iter(columns)) in self._across else 0]
        self._data = {name: self._moved(name, array, self.count, _room(self.count)) if copy else array
                      for name, array in columns.items()}

    def _rows(self, name: str, data: np.ndarray) -> np.ndarray:
        """``data`` of column ``name`` as a view with one row per entry along its first axis."""
        return data.T if name in self._across else data

    def _moved(self, name: str, array: np.ndarray, count: int, capacity: int) -> np.ndarray:
        rows = self._rows(name, array)
        data = np.zeros((rows.shape[1], capacity) if name in self._across else (capacity, *rows.shape[1:]), rows.dtype)
        self._rows(name, data)[:count] = rows[:count]
        return data

    def __len__(self) -> int:
        return self.count

    def drop(self, name: str) -> None:
        """Forget a column (its memory is freed with the last view of it)."""
        del self._data[name]

    def __getitem__(self, name: str) -> np.ndarray:
        data = self._data[name]
        return data[:, :self.count] if name in self._across else data[:self.count]

    def append(self, **row) -> None:
        if self.count == len(self._rows(next(iter(self._data)), next(iter(self._data.values())))):
            self._data = {name: self._moved(name, data, self.count, _room(self.count))
                          for name, data in self._data.items()}
        for name, value in row.items():
            self._rows(name, self._data[name])[self.count] = value
        self.count += 1

    def delete(self, position: int) -> None:
        for name, data in self._data.items():
            if not data.flags.writeable:  # a view of what was read: the rows are copied first
                data = self._data[name] = self._moved(name, data, self.count, len(self._rows(name, data)))
            rows = self._rows(name, data)
            rows[position:self.count - 1] = rows[position + 1:self.count]  # numpy copies overlapping rows right
        self.count -= 1


class _PatternTable:
    """The op-pattern signatures of the entries that have one, in id order (Index.family reads them all):
    each entry's number of its signature among the distinct ones (``rows["groups"]``), and those
    (``signatures``: an index holds few architectures for its entries, so few distinct signatures).
    ``rows_read``: the rows read, damaged ones included; ``last_id``: the largest entry id read."""

    def __init__(self, rows: list[tuple]):
        """``rows``: (entry id, signature) in id order, as the patterns table gives them."""
        self._numbers: dict[bytes, int] = {}  # a distinct signature -> its number
        self._aligned = None  # (the entry table, its length and last id, this table's length), positions
        # All at once, not row by row: a fresh process reads 10^6 of them for its first family answer.
        ids = np.fromiter((row[0] for row in rows), np.int64, len(rows))
        ok = np.fromiter((isinstance(row[1], bytes) and len(row[1]) == SIGNATURE_BYTES for row in rows), bool,
                         len(rows))
        kept = [row[1] for row, good in zip(rows, ok) if good]
        groups = np.fromiter((self._numbers.setdefault(blob, len(self._numbers)) for blob in kept), np.int64, len(kept))
        self._distinct = np.zeros((max(64, 2 * len(self._numbers)), SIGNATURE_BYTES), np.uint8)
        if self._numbers:
            joined = np.frombuffer(b"".join(self._numbers), np.uint8)  # the keys in their numbers' order
            self._distinct[:len(self._numbers)] = joined.reshape(-1, SIGNATURE_BYTES)
        self.rows = _Rows({"ids": ids[ok], "groups": groups})
        self.rows_read, self.last_id = len(rows), int(ids.max()) if len(rows) else 0

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def distinct(self) -> int:
        return len(self._numbers)

    @property
    def signatures(self) -> np.ndarray:
        """uint8 [distinct, SIGNATURE_BYTES]: the distinct signatures, by number (one that no entry has any
        more stays: it is never any entry's group)."""
        return self._distinct[:self.distinct]

    def extend(self, rows: list[tuple]) -> None:
        for entry_id, signature in rows:
            self.append(int(entry_id), signature)

    def append(self, entry_id: int, signature) -> None:
        """One entry's signature, unless the table holds it already (a row of the wrong length is skipped)."""
        if entry_id <= self.last_id:
            return
        self.rows_read, self.last_id = self.rows_read + 1, entry_id
        if isinstance(signature, (bytes, np.ndarray)) and len(signature) == SIGNATURE_BYTES:
            key = bytes(signature)
            if key not in self._numbers:
                if self.distinct == len(self._distinct):
                    self._distinct = np.concatenate([self._distinct, np.zeros_like(self._distinct)])
                self._distinct[self.distinct] = np.frombuffer(key, np.uint8)
                self._numbers[key] = self.distinct
            self.rows.append(ids=entry_id, groups=self._numbers[key])  # aligned() extends its positions

    def remove(self, entry_id: int) -> None:
        at, _ = _located(self.rows["ids"], np.array([entry_id]))
        if len(at):
            self.rows.delete(int(at[0]))
            self.rows_read -= 1
            self._aligned = None

    def aligned(self, table: _EntryTable) -> tuple[np.ndarray, np.ndarray]:
        """(positions in ``table`` of the entries here that it holds, in id order, and their signatures'
        numbers); kept until either table changes, and extended where both only grew (an add: locating
        every entry again took 25 ms of the first query after it at 10^6 entries)."""
        key = (table, len(table), table.last_id, len(self))
        if self._aligned is not None and self._aligned[0] == key:
            return self._aligned[1][:2]
        ids = table.rows["ids"]
        if self._aligned is not None and self._only_grew(table):
            (_, _, _, rows), (at, groups, located) = self._aligned
            new_at, new_kept = _located(ids, self.rows["ids"][rows:])
            at, groups = np.concatenate([at, new_at]), np.concatenate([groups, self.rows["groups"][rows + new_kept]])
            located = located + len(new_kept)
        else:
            at, kept = _located(ids, self.rows["ids"])
            groups, located = self.rows["groups"][kept], len(kept)
        self._aligned = key, (at, groups, located)
        return at, groups

    def _only_grew(self, table: _EntryTable) -> bool:
        """Whether both tables only gained rows since :meth:`aligned` last located them, and every row of
        this one was located then (then the old positions still hold: a removal shifts those after it)."""
        (old_table, table_rows, table_last, rows), (_, _, located) = self._aligned
        ids = table.rows["ids"]
        return (old_table is table and located == rows and len(self) >= rows and len(table) >= table_rows
                and (table_rows == 0 or int(ids[table_rows - 1]) == table_last))


def _located(ids: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(where in the sorted ``ids`` those of ``wanted`` are that it holds, which of ``wanted`` they are)."""
    if not len(ids) or not len(wanted):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    at = np.minimum(np.searchsorted(ids, wanted), len(ids) - 1)
    found = np.flatnonzero(ids[at] == wanted)
    return at[found], found


def _room(rows: int) -> int:
    return rows + rows // 2 + 64


def _joined(blobs: list, length: int) -> np.ndarray | None:
    """The blobs as uint8 rows (n, length) when every one is bytes of that length, else None."""
    try:
        joined = b"".join(blobs)
    except TypeError:  # a NULL, or a value of another type
        return None
    if len(joined) != len(blobs) * length or (blobs and min(map(len, blobs)) != length):
        return None
    return np.frombuffer(joined, np.uint8).reshape(len(blobs), length)


def _blobs(blobs: list, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Which of ``blobs`` are bytes of ``length``, and those as uint8 rows (zeros in the others)."""
    joined = _joined(blobs, length)
    if joined is not None:
        return np.ones(len(blobs), dtype=bool), joined
    ok = np.fromiter((isinstance(blob, bytes) and len(blob) == length for blob in blobs), dtype=bool, count=len(blobs))
    rows = np.zeros((len(blobs), length), np.uint8)
    if ok.any():
        rows[ok] = np.frombuffer(b"".join(blob for blob, keep in zip(blobs, ok) if keep), np.uint8).reshape(-1, length)
    return ok, rows


def _code_words(packed: np.ndarray, bit_count: int) -> np.ndarray:
    """Codes as stored (uint8 rows of ceil(bits/8)) -> uint64 words as hnn.hasher.bits.to_words makes them."""
    width = max(1, (bit_count + 63) // 64)
    padded = np.zeros((len(packed), width * 8), np.uint8)
    padded[:, :packed.shape[1]] = packed
    if bit_count % 8 and packed.shape[1]:  # only the code's bits, as bits.from_bytes reads them
        padded[:, packed.shape[1] - 1] &= (0xFF << (8 - bit_count % 8)) & 0xFF
    return padded.view(">u8").astype(np.uint64)


class _EntryTable:
    """What a query reads of every entry, in memory, in id order: the codes as 64-bit words and, once
    ``full``, what the ranking reads of its candidates (RANKING: structure code, whether there is a
    structure blob, topology digest as a number, scale), decoded as :meth:`Index._entry` decodes them.
    A table that is not full (a process's first query, which is all `hnn check` makes) reads its
    candidates' columns from the file, and decodes them the same way."""

    def __init__(self, bit_count: int, rows: _Rows, numbers: dict[str, int], groups: dict[bytes, int], full: bool):
        self.bits = bit_count
        self.rows = rows
        self.numbers = numbers  # topology digest -> its number in the "topology" column
        self.groups = groups  # what ranks an entry (_group_keys) -> its number in the "group" column
        self.full = full
        self._names = None  # the digest of each number as an object array, None last (number -1)
        self._last = None  # (query code, its distances): `hnn check` asks twice, ranked then nearest

    @classmethod
    def read(cls, index: Index, full: bool) -> _EntryTable:
        """Every entry's row; a damaged code is a one-line error naming its entry (Index._code)."""
        bit_count = index.bit_count() or 0
        rows = index.db.execute(f"SELECT {TABLE_COLUMNS if full else 'id, code'} FROM entries ORDER BY id").fetchall()
        numbers: dict[str, int] = {}
        groups: dict[bytes, int] = {}
        columns = cls._columns(index, rows, bit_count, numbers if full else None, groups if full else None)
        return cls(bit_count, _Rows(columns), numbers, groups, full)

    @staticmethod
    def _columns(index: Index, rows: list[tuple], bit_count: int, numbers: dict[str, int] | None,
                 groups: dict[bytes, int] | None = None) -> dict:
        """The columns of rows of TABLE_COLUMNS (of their first two, id and code, with ``numbers`` None),
        their topology digests numbered in ``numbers`` and, with ``groups``, their ranking groups in
        it (new ones added to both). Column by column, in C where it can be: a million rows are read
        at once."""
        count = len(rows)
        ids, codes = (list(map(operator.itemgetter(column), rows)) for column in range(2))
        packed = _joined(codes, (bit_count + 7) // 8)
        if packed is None:
            for row in rows:  # the first damaged entry is named, as _code names it
                index._code(row[0], row[1], bit_count)
            raise InputError(f"{index.path}: a damaged hnn index: a code is not readable")  # not reached
        columns = {"ids": np.array(ids, dtype=np.int64), "words": _code_words(packed, bit_count)}
        if numbers is None:
            return columns
        structures, topologies, scales = (list(map(operator.itemgetter(column), rows)) for column in range(2, 5))
        has_structure, structure = _blobs(structures, _STRUCTURE_BLOB_BYTES)
        has_scale, scale = _blobs(scales, _SCALE_BYTES)
        for name in dict.fromkeys(topologies):  # each digest once, in order
            if name is not None and name not in numbers:
                numbers[name] = len(numbers)
        numbered = {**numbers, None: -1}
        columns.update({"structure": structure[:, 2:], "has_structure": has_structure,
                        # A digest counts only beside a structure blob, as _entry reads it.
                        "structured": np.fromiter(map(operator.is_not, structures, repeat(None)), dtype=bool,
                                                  count=count),
                        "topology": np.fromiter(map(numbered.__getitem__, topologies), dtype=np.int32, count=count),
                        "scale": scale.view("<f8").reshape(count, 2).astype(np.float64), "has_scale": has_scale})
        if groups is not None:
            columns["group"] = _grouped(_group_keys(columns), groups)
        return columns

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def last_id(self) -> int:
        return int(self.rows["ids"][-1]) if len(self.rows) else 0

    def extend(self, index: Index, rows: list[tuple]) -> None:
        """Rows of TABLE_COLUMNS of entries added after the last one held (by id)."""
        for row in rows:
            self.append(index, row)

    def append(self, index: Index, row: tuple) -> None:
        """One entry added (a row of TABLE_COLUMNS), unless the table holds it already."""
        if row[0] <= self.last_id:
            return
        before, self._last = len(self.numbers), None
        columns = self._columns(index, [row], self.bits, *((self.numbers, self.groups) if self.full else (None, None)))
        if len(self.numbers) != before:
            self._names = None
        self.rows.append(**{name: column[0] for name, column in columns.items()})

    def remove(self, entry_id: int) -> None:
        ids = self.rows["ids"]
        at = int(np.searchsorted(ids, entry_id))
        if at < len(ids) and ids[at] == entry_id:
            self.rows.delete(at)
            self._last = None

    def distances(self, code: np.ndarray) -> np.ndarray:
        """The Hamming distance of ``code`` to every entry's (a code of another length: padded or cut);
        read-only, and kept until the next query of another code or the next change."""
        code = np.asarray(code, dtype=bool)
        fitted = np.zeros(self.bits, dtype=bool)
        fitted[:min(len(code), self.bits)] = code[:self.bits]
        query, words = to_words(fitted)[0], self.rows["words"]
        if self._last is not None and np.array_equal(self._last[0], query):
            return self._last[1]
        if words.shape[1] == 1:  # the common case (Q <= 64): one word, no reduction
            distances = np.bitwise_count(words[:, 0] ^ query[0])
        else:
            distances = np.bitwise_count(words ^ query).sum(axis=1, dtype=np.uint32)
        distances.setflags(write=False)
        self._last = query, distances
        return distances

    def positions(self, entry_ids) -> np.ndarray:
        """Where those of ``entry_ids`` that the table holds are."""
        return _located(self.rows["ids"], np.fromiter(entry_ids, dtype=np.int64))[0]

    def related(self, index: Index, structure: Structure, shared: dict[int, int]) -> np.ndarray:
        """Positions of the entries that share weights with the query, or its topology (the digest
        column; of a table that is not full, read through the SQL index on it)."""
        found = self.positions(entry_id for entry_id, count in shared.items() if count >= SHARED_SUSPECT)
        if structure.topology is None:
            return found
        if not self.full:
            return np.concatenate([found, self.positions(row[0] for row in index.db.execute(
                "SELECT id FROM entries WHERE topology = ?", (structure.topology,)))])
        number = self.numbers.get(structure.topology)
        return found if number is None else np.concatenate([found, np.flatnonzero(self.rows["topology"] == number)])

    def ranked(self, index: Index, positions: np.ndarray, code: np.ndarray, structure: Structure,
               shared: dict[int, int], distances: np.ndarray, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
        """(positions, code distances) of the first ``limit`` (or all) of ``positions`` (in id order) as
        :func:`hnn.index.ranking.rank` orders them, then by id.

        Of a full table, entries of one ranking group (the same code and ranking columns: a hub's
        fine-tunes of one IR) rank alike unless they share the query's weights: the ranking is made
        of one entry of each group and of those that share weights, then spread to the others."""
        if self.full:
            columns = {name: self.rows[name][positions] for name in ("ids", "group")}
        else:  # one batched read of the candidates' rows, decoded as a full table's
            ids, rows = self.rows["ids"][positions], []
            for start in range(0, len(ids), SQL_BATCH):
                batch = ids[start:start + SQL_BATCH].tolist()
                rows += index.db.execute(f"SELECT {TABLE_COLUMNS} FROM entries WHERE id IN "
                                         f"({', '.join('?' * len(batch))}) ORDER BY id", batch).fetchall()
            numbers: dict[str, int] = {}
            columns = self._columns(index, rows, self.bits, numbers)
            columns["names"] = _names(numbers)
            kept = np.isin(ids, columns["ids"])  # all of them, unless another writer removed one since
            positions, distances = positions[kept], distances[kept]
        # A code of another length than the index's is as far as can be from every entry.
        code_distances = distances.astype(np.int64) if len(code) == self.bits else np.full(len(positions), len(code))
        counts = np.zeros(len(positions), dtype=np.int64)
        if shared and len(positions):
            wanted = np.fromiter(shared, dtype=np.int64, count=len(shared))
            at = np.minimum(np.searchsorted(columns["ids"], wanted), len(positions) - 1)
            hit = columns["ids"][at] == wanted
            counts[at[hit]] = np.fromiter(shared.values(), dtype=np.int64, count=len(shared))[hit]
        if not self.full:
            ranks = self._rank(columns, np.arange(len(positions)), structure, code_distances, counts)
        else:
            _, first, spread = np.unique(columns["group"], return_index=True, return_inverse=True)
            ranks = self._rank(self._at(positions[first]), np.arange(len(first)), structure, code_distances[first],
                               np.zeros(len(first), dtype=np.int64))[spread]
            alone = np.flatnonzero(counts >= SHARED_SUSPECT)
            if len(alone):
                ranks[alone] = self._rank(self._at(positions[alone]), np.arange(len(alone)), structure,
                                          code_distances[alone], counts[alone])
        order = smallest(ranks, limit) if limit is not None else np.argsort(ranks, kind="stable")
        return positions[order], code_distances[order]

    def _at(self, positions: np.ndarray) -> dict[str, np.ndarray]:
        """The ranking columns of a full table at ``positions``."""
        if self._names is None:
            self._names = _names(self.numbers)
        return {**{name: self.rows[name][positions] for name in RANKING}, "names": self._names}

    @staticmethod
    def _rank(columns: dict[str, np.ndarray], rows: np.ndarray, structure: Structure, code_distances: np.ndarray,
              counts: np.ndarray) -> np.ndarray:
        """:func:`hnn.index.ranking.rank` of ``rows`` of decoded ranking columns."""
        topology = np.where(columns["structured"][rows], columns["topology"][rows], -1)
        stored = StructureColumns(bits.from_bytes(columns["structure"][rows], STRUCTURE_BITS),
                                  columns["has_structure"][rows], columns["names"][topology], columns["scale"][rows],
                                  columns["has_scale"][rows])
        return rank(structure, code_distances, stored, counts)


def _group_keys(columns: dict[str, np.ndarray]) -> np.ndarray:
    """uint8 rows: what ranks an entry (its code and ranking columns), byte for byte, padded to whole words."""
    count = len(columns["ids"])
    parts = [columns["words"].view(np.uint8).reshape(count, 8 * columns["words"].shape[1]), columns["structure"],
             columns["topology"].astype("<i4").view(np.uint8).reshape(count, 4),
             columns["scale"].astype("<f8").view(np.uint8).reshape(count, 16),
             np.stack([columns["has_structure"], columns["structured"], columns["has_scale"]], axis=1).view(np.uint8)]
    width = sum(part.shape[1] for part in parts)
    parts.append(np.zeros((count, -width % 8), np.uint8))
    return np.concatenate(parts, axis=1)


def _grouped(keys: np.ndarray, groups: dict[bytes, int]) -> np.ndarray:
    """The ranking group of each key row, numbered in ``groups`` (new ones added). Many rows into an
    empty numbering: by a 64-bit hash of each row, checked against the rows themselves (a collision
    falls back to comparing the rows)."""
    if groups or len(keys) <= 64:
        return np.array([groups.setdefault(key.tobytes(), len(groups)) for key in keys], dtype=np.int32)
    words = keys.view(np.uint64)
    hashed = np.zeros(len(keys), np.uint64)
    with np.errstate(over="ignore"):
        for column in words.T:  # FNV-style: multiply and fold each word in
            hashed = (hashed ^ column) * np.uint64(0x100000001B3)
    _, first, numbers = np.unique(hashed, return_index=True, return_inverse=True)
    if not np.array_equal(keys, keys[first[numbers]]):
        _, first, numbers = np.unique(keys.view(f"V{keys.shape[1]}").ravel(), return_index=True, return_inverse=True)
    groups.update((keys[row].tobytes(), number) for number, row in enumerate(first))
    return numbers.astype(np.int32)


def _names(numbers: dict[str, int]) -> np.ndarray:
    """The topology digest of each number (an object array), and None last: number -1 reads as no digest."""
    names = [None] * (len(numbers) + 1)
    for name, number in numbers.items():
        names[number] = name
    return np.array(names, dtype=object)


class _ProbeTable:
    """Every entry's probe in memory as hnn.provenance.probe.ProbeColumns lays them out, in id order,
    kept up to date. The positional sketches are kept in rows, and grouped by layer sequence (each
    word contiguous: what a query of that sequence scans) when a query of the sequence first asks,
    or all at once (``group``: a long-lived index). ``rows_read``: the fingerprint rows read, damaged ones included; ``last_id``:
    the last entry seen."""

    def __init__(self, rows: list[tuple], last_id: int):
        probes = _joined([row[1] for row in rows], PROBE_BYTES)
        valid = rows
        if probes is None:
            valid = [row for row in rows if isinstance(row[1], bytes) and len(row[1]) == PROBE_BYTES]
            probes = _joined([row[1] for row in valid], PROBE_BYTES)
        words = probes.view(np.uint64)
        self.rows = _Rows({"ids": np.array([row[0] for row in valid], dtype=np.int64), "digests": words[:, 0].copy(),
                           "anchored": np.ascontiguousarray(words[:, 1:_ANCHORED_END].T),
                           # the rows as read (a view of them: copied on the first change)
                           "positional": words[:, _ANCHORED_END:]}, across=("anchored",), copy=False)
        self.sequences: dict[int, _Rows] = {}  # digest -> (positions, sketches across): the groups made so far
        self.grouped = False  # whether every group is made
        self.rows_read, self.last_id = len(rows), last_id

    def group(self) -> None:
        """Every layer sequence's group (ProbeColumns.sequences), made now; the sketches' rows are then
        let go (the groups hold them all, and an entry added later goes into its group at once)."""
        self.sequences = {digest: _Rows({"positions": positions, "positional": sketches}, across=("positional",),
                                        copy=False)
                          for digest, (positions, sketches) in by_sequence(self.rows["digests"],
                                                                           self.rows["positional"]).items()}
        self.rows.drop("positional")
        self.grouped = True

    def columns(self) -> tuple[np.ndarray, ProbeColumns]:
        rows = self.rows
        return rows["ids"], ProbeColumns(rows["digests"], rows["anchored"], _Sequences(self))

    def sequence(self, digest: int) -> _Rows | None:
        """The group of the probes of that layer sequence (made now if it was not), None if there are none."""
        if digest not in self.sequences and not self.grouped:
            positions = np.flatnonzero(self.rows["digests"] == np.uint64(digest))
            if not len(positions):
                return None
            self.sequences[digest] = _Rows({"positions": positions, "positional": np.ascontiguousarray(
                self.rows["positional"][positions].T)}, across=("positional",), copy=False)
        return self.sequences.get(digest)

    def extend(self, rows: list[tuple], last_id: int) -> None:
        """Fingerprint rows (entry, probe) of entries added since; ``last_id``: the last entry now."""
        for entry_id, probed in rows:
            self.append(entry_id, probed)
        self.last_id = max(self.last_id, last_id)

    def append(self, entry_id: int, probed: bytes | None) -> None:
        """An entry added, with its probe (None: no fingerprint), unless the table has seen it already."""
        if entry_id <= self.last_id:
            return
        self.last_id = entry_id
        if probed is None:
            return
        self.rows_read += 1
        if not isinstance(probed, bytes) or len(probed) != PROBE_BYTES:
            return
        words = np.frombuffer(probed, np.uint64)
        position, digest, sketches = len(self.rows), int(words[0]), words[_ANCHORED_END:]
        self.rows.append(ids=entry_id, digests=words[0], anchored=words[1:_ANCHORED_END],
                         **({} if self.grouped else {"positional": sketches}))
        if digest in self.sequences:
            self.sequences[digest].append(positions=position, positional=sketches)
        elif self.grouped:  # the first of its layer sequence
            self.sequences[digest] = _Rows({"positions": np.array([position], dtype=np.int64),
                                            "positional": sketches[:, None]}, across=("positional",))

    def remove(self, entry_id: int, had_fingerprint: bool) -> None:
        self.rows_read -= int(had_fingerprint)
        ids = self.rows["ids"]
        at = int(np.searchsorted(ids, entry_id))
        if at >= len(ids) or ids[at] != entry_id:
            return
        digest = int(self.rows["digests"][at])
        self.rows.delete(at)
        if digest in self.sequences:
            sequence = self.sequences[digest]
            sequence.delete(int(np.searchsorted(sequence["positions"], at)))
            if not len(sequence):
                del self.sequences[digest]
        for sequence in self.sequences.values():  # the positions after it move up by one
            positions = sequence["positions"]
            positions[positions > at] -= 1


class _Sequences(Mapping):
    """ProbeColumns.sequences of a _ProbeTable: a group's (positions, sketches) as views, made when asked."""

    def __init__(self, table: _ProbeTable):
        self._table = table

    def __getitem__(self, digest: int) -> tuple[np.ndarray, np.ndarray]:
        group = self._table.sequence(int(digest))
        if group is None:
            raise KeyError(digest)
        return group["positions"], group["positional"]

    def __iter__(self):
        return (int(digest) for digest in np.unique(self._table.rows["digests"]))

    def __len__(self) -> int:
        return len(np.unique(self._table.rows["digests"]))


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
