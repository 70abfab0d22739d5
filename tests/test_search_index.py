"""Hamming search against brute force; the SQLite index: add, query, remove, refusals, durability."""

import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from hnn.errors import InputError, UsageError
from hnn.hasher.structure import STRUCTURE_BITS, Structure
from hnn.index.ranking import rank_of
from hnn.index.search import packed_codes
from hnn.index.store import VERSION, DuplicateEntry, Index


@pytest.mark.parametrize("backend", ["numpy", "faiss"])
@pytest.mark.parametrize("bits", [16, 64, 100])
def test_top_k_and_radius_equal_brute_force(bits, backend):
    if backend == "faiss":
        pytest.importorskip("faiss")
    rng = np.random.default_rng(bits)
    codes = rng.random((500, bits)) < 0.5
    ids = np.arange(1000, 1500)
    packed = packed_codes(codes, ids, backend=backend)
    for _ in range(20):
        query = rng.random(bits) < 0.5
        brute = (codes != query).sum(axis=1)
        order = np.lexsort((ids, brute))
        assert packed.top_k(query, 10) == [(int(ids[i]), int(brute[i])) for i in order[:10]]
        radius = int(np.sort(brute)[5])
        expected = [(int(ids[i]), int(brute[i])) for i in order if brute[i] <= radius]
        assert packed.within(query, radius) == expected


def code(seed, bits=16):
    return np.random.default_rng(seed).random(bits) < 0.5


def test_add_query_remove_and_duplicates(tmp_path):
    path = tmp_path / "models.db"
    with Index(path, create=True) as index:
        first = index.add("a", "a.onnx", "onnx", code(1), "ck", "digest-a", label="fam")
        second = index.add("b", "b.onnx", "onnx", code(2), "ck", "digest-b")
        with pytest.raises(DuplicateEntry, match="#1"):
            index.add("a-again", "a2.onnx", "onnx", code(1), "ck", "digest-a")
        hits = index.query(code(1), k=2)
        assert hits[0][0].id == first.id and hits[0][1] == 0
        assert {entry.id for entry, _ in hits} == {first.id, second.id}
        assert [e.id for e, _ in index.query(code(1), radius=0)] == [first.id]
        index.remove(first.id)
        assert [e.name for e in index.entries()] == ["b"]
        with pytest.raises(InputError, match="no entry #1"):
            index.get(first.id)
    with Index(path) as reopened:
        assert len(reopened) == 1 and reopened.entries()[0].label is None


def test_ties_of_the_perceptual_code_are_ordered_by_structure_code(tmp_path):
    # Three siblings share one perceptual code; the query's structure code is nearest to the
    # last one added, which must come first (and within k = 1), whatever the insertion order.
    shared = code(7)
    query_structure = code(100, bits=STRUCTURE_BITS)
    near = query_structure.copy()
    near[-20:] = ~near[-20:]  # 20 bits of the sizes half differ
    far = query_structure.copy()
    far[:1] = ~far[:1]  # one bit of the topology half differs: topology comes first
    with Index(tmp_path / "models.db", create=True) as index:
        index.add("no-structure", "x", "onnx", shared, "ck", "d0")
        index.add("far", "x", "onnx", shared, "ck", "d1", structure=Structure(far))
        nearest = index.add("near", "x", "onnx", shared, "ck", "d2", structure=Structure(near))
        index.add("other", "x", "onnx", code(8), "ck", "d3", structure=Structure(query_structure))
        query_structure = Structure(query_structure)
        ranked = index.query(shared, k=3, structure=query_structure)
        assert [entry.name for entry, _ in ranked] == ["near", "far", "no-structure"]
        assert [entry.id for entry, _ in index.query(shared, k=1, structure=query_structure)] == [nearest.id]
        assert [entry.name for entry, _ in index.query(shared, radius=0, structure=query_structure)] == \
            ["near", "far", "no-structure"]
        # Without a structure code, ties keep id order (indexes and callers that predate it).
        assert [entry.name for entry, _ in index.query(shared, k=3)] == ["no-structure", "far", "near"]


def old_index(path, version, later_columns):
    """An open connection to a new index file as an hnn of format ``version`` (1 to 3) made it: one
    entry per IR, ``later_columns`` after version 1's."""
    db = sqlite3.connect(path)
    db.executescript(f"""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE entries (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, source TEXT NOT NULL,
            framework TEXT NOT NULL, label TEXT, code BLOB NOT NULL, bits INTEGER NOT NULL, checkpoint TEXT NOT NULL,
            ir_digest TEXT NOT NULL UNIQUE, added REAL NOT NULL{later_columns});
        INSERT INTO meta VALUES ('format', 'hnn-index'), ('version', '{version}'), ('checkpoint', 'ck'), ('bits', '16');
    """)
    return db


def test_a_version_1_index_is_upgraded_in_place_and_keeps_its_entries(tmp_path):
    path = tmp_path / "old.db"
    db = old_index(path, 1, "")
    db.execute("INSERT INTO entries (name, source, framework, label, code, bits, checkpoint, ir_digest, added) "
               "VALUES ('old', 'old.onnx', 'onnx', NULL, ?, 16, 'ck', 'd-old', 0)", (np.packbits(code(1)).tobytes(),))
    db.commit()
    db.close()
    with Index(path) as index:
        assert index.meta("version") == str(VERSION)
        (old,) = index.entries()
        assert old.name == "old" and old.structure is None and (old.code == code(1)).all()
        structure = code(5, bits=STRUCTURE_BITS)
        added = index.add("new", "new.onnx", "onnx", code(1), "ck", "d-new", structure=Structure(structure))
        assert [entry.id for entry, _ in index.query(code(1), k=2, structure=Structure(structure))] == \
            [added.id, old.id]


def of_topology(topology, scale, seed=0):
    return Structure(code(seed, bits=STRUCTURE_BITS), topology, np.array(scale, dtype=float))


def test_entries_of_the_query_topology_come_first_even_beyond_the_k_nearest_codes(tmp_path):
    # A pruned copy: its code moved 6 bits from its original's, towards a sibling of another
    # topology at 1 bit. The original shares the copy's topology digest and must come first,
    # though it is not among the k = 1 nearest codes.
    query = np.zeros(16, dtype=bool)
    moved = query.copy()
    moved[:6] = True
    sibling = query.copy()
    sibling[0] = True
    copy = of_topology("architecture", [10.0, 20.0])
    with Index(tmp_path / "i.db", create=True) as index:
        index.add("sibling", "s", "onnx", sibling, "ck", "d-s", structure=of_topology("other", [10.0, 20.0]))
        index.add("original", "o", "onnx", moved, "ck", "d-o", structure=of_topology("architecture", [11.0, 21.0]))
        index.add("old", "x", "onnx", query, "ck", "d-x")  # no structure (an upgraded index): never the same
        assert [(e.name, d) for e, d in index.query(query, k=2)] == [("old", 0), ("sibling", 1)]
        ranked = index.query(query, k=2, structure=copy)
        assert [(e.name, d) for e, d in ranked] == [("original", 6), ("old", 0)]
        assert ranked[0][0].structure.topology == "architecture"
        assert ranked[0][0].structure.scale.tolist() == [11.0, 21.0]  # stored and read back
        within = index.query(query, radius=1, structure=copy)
        assert [e.name for e, _ in within] == ["old", "sibling"]  # a radius is a radius of the code
        assert [e.name for e, _ in index.query(query, radius=6, structure=copy)][0] == "original"


def test_within_the_query_topology_the_nearest_scale_comes_first_whatever_the_code(tmp_path):
    # Width siblings of one architecture: the copy was pruned from the wide one (scale 0.2 away)
    # but its code lies nearer the narrow one's. Scale decides among them.
    query = np.zeros(16, dtype=bool)
    far_code = query.copy()
    far_code[:4] = True
    copy = of_topology("arch", [10.0, 20.0])
    with Index(tmp_path / "i.db", create=True) as index:
        index.add("narrow", "n", "onnx", query, "ck", "d-n", structure=of_topology("arch", [8.0, 18.0]))
        index.add("wide", "w", "onnx", far_code, "ck", "d-w", structure=of_topology("arch", [10.1, 20.1]))
        assert [e.name for e, _ in index.query(query, k=2, structure=copy)] == ["wide", "narrow"]
        assert [e.name for e, _ in index.query(query, k=1, structure=copy)] == ["wide"]


def test_entries_sharing_the_query_weights_come_first_whatever_their_topology_and_code(tmp_path):
    # A copy with a block removed (another topology) that kept its original's weights: the
    # original shares 40 of its weight marks, and ranks first though its code is the farthest and
    # another entry has the copy's topology. 5 shared marks are chance, not shared weights.
    query = np.zeros(16, dtype=bool)
    far = query.copy()
    far[:9] = True
    marks = list(range(1000, 1128))
    copy = of_topology("shallower", [10.0, 20.0])
    with Index(tmp_path / "i.db", create=True) as index:
        index.add("twin", "t", "onnx", query, "ck", "d-t", structure=of_topology("shallower", [10.0, 20.0]))
        index.add("chance", "c", "onnx", query, "ck", "d-c", structure=of_topology("x", [1, 1]),
                  weight_marks=marks[:5] + list(range(5000, 5123)))
        original = index.add("original", "o", "onnx", far, "ck", "d-o", structure=of_topology("deeper", [11, 21]),
                             weight_marks=marks[88:] + list(range(9000, 9088)))
        assert index.shared_marks(marks) == {original.id: 40, original.id - 1: 5}
        assert [e.name for e, _ in index.query(query, k=1, structure=copy, shared=index.shared_marks(marks))] == ["original"]
        ranked = index.query(query, k=3, structure=copy, shared=index.shared_marks(marks))
        assert [(e.name, d) for e, d in ranked] == [("original", 9), ("twin", 0), ("chance", 0)]
        assert [e.name for e, _ in index.query(query, k=1, structure=copy)] == ["twin"]  # no marks: by structure
        index.remove(original.id)  # its marks go with it
        assert index.shared_marks(marks) == {original.id - 1: 5}


def as_older_format(path, version, *statements):
    """Make an index file the one an hnn of format ``version`` wrote: run ``statements``, set the version."""
    db = sqlite3.connect(path)
    for statement in statements:
        db.execute(statement)
    db.execute("UPDATE meta SET value = ? WHERE key = 'version'", (str(version),))
    db.commit()
    db.close()


def test_the_index_ranks_as_the_ranking_formula_says_for_every_kind_of_entry(tmp_path):
    # Index.query ranks all candidates at once from their stored blobs; rank_of ranks one pair from
    # the entry as read back. Entries: with and without structure, digest or scale, of the
    # query's topology at several scales, sharing weights or not, at many code distances.
    rng = np.random.default_rng(3)
    query_code, query = code(0, bits=16), of_topology("t", [5.0, 9.0], seed=1)
    marks = list(range(1, 129))
    with Index(tmp_path / "i.db", create=True) as index:
        for number in range(60):
            kind = number % 6
            structure = (None if kind == 0 else Structure(code(number, bits=STRUCTURE_BITS)) if kind == 1
                         else of_topology("t" if kind < 5 else "u", rng.random(2) * 10, seed=number))
            shared_marks = marks[:int(rng.integers(0, 40))] if kind in (2, 4) else []
            index.add(f"e{number}", "x", "onnx", code(number % 7, bits=16), "ck", f"d{number}",
                      structure=structure, weight_marks=shared_marks + [1000 + number])
        shared = index.shared_marks(marks)
        expected = sorted((rank_of(query, int((entry.code != query_code).sum()), entry.structure,
                                    shared.get(entry.id, 0)), entry.id) for entry in index.entries())
        ranked = index.query(query_code, k=60, structure=query, shared=shared)
        assert [entry.id for entry, _ in ranked] == [entry_id for _, entry_id in expected]
        assert [distance for _, distance in ranked] == [int((e.code != query_code).sum()) for e, _ in ranked]
        within = index.query(query_code, radius=16, structure=query, shared=shared)
        assert [entry.id for entry, _ in within] == [entry_id for _, entry_id in expected]


def test_a_version_3_index_is_rebuilt_for_weight_marks_and_keeps_entries_and_ids(tmp_path):
    # Version 3 kept one entry per IR (ir_digest UNIQUE), which SQLite cannot drop in place.
    path = tmp_path / "v3.db"
    db = old_index(path, 3, ", structure BLOB, topology TEXT, scale BLOB")
    db.execute("CREATE INDEX entries_by_topology ON entries (topology)")
    for number in (1, 2):
        db.execute("INSERT INTO entries (name, source, framework, code, bits, checkpoint, ir_digest, added, topology) "
                   "VALUES (?, 'x.onnx', 'onnx', ?, 16, 'ck', ?, 0, 't')",
                   (f"old-{number}", np.packbits(code(number)).tobytes(), f"d-{number}"))
    db.execute("DELETE FROM entries WHERE id = 2")  # the highest id was removed: it must not come back
    db.commit()
    db.close()
    with Index(path) as index:
        assert index.meta("version") == str(VERSION)
        (old,) = index.entries()
        assert (old.id, old.name, old.structure) == (1, "old-1", None)
        assert (old.code == code(1)).all()
        with pytest.raises(DuplicateEntry):  # the same IR without weights is still the same model
            index.add("again", "a.onnx", "onnx", code(1), "ck", "d-1")
        with pytest.raises(DuplicateEntry):  # an entry without marks cannot tell: the same model
            index.add("tuned", "b.onnx", "onnx", code(1), "ck", "d-1", weight_marks=[7, 8, 9])
        other_weights = index.add("tuned", "b.onnx", "onnx", code(1), "ck", "d-other", weight_marks=[7, 8, 9])
        assert other_weights.id == 3 and index.shared_marks([8, 9, 10]) == {3: 2}
    db = sqlite3.connect(path)
    assert {row[0] for row in db.execute("SELECT name FROM sqlite_master")} >= {
        "entries_by_topology", "entries_by_ir", "weight_marks", "weight_marks_by_entry"}
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_one_architecture_with_other_weights_is_another_entry_and_the_same_weights_a_duplicate(tmp_path):
    # A platform holds many fine-tuned copies of one architecture: each is its own model.
    with Index(tmp_path / "i.db", create=True) as index:
        first = index.add("owner-a", "a.onnx", "onnx", code(1), "ck", "d-resnet", weight_marks=list(range(20)))
        second = index.add("owner-b", "b.onnx", "onnx", code(1), "ck", "d-resnet", weight_marks=list(range(100, 120)))
        assert first.id != second.id
        with pytest.raises(DuplicateEntry, match=f"#{second.id}"):  # most of its marks: a re-export
            index.add("owner-b-again", "b2.onnx", "onnx", code(1), "ck", "d-resnet",
                      weight_marks=list(range(103, 120)) + [500, 501, 502])
        with pytest.raises(DuplicateEntry, match=f"#{first.id}"):  # no marks to tell: the first of that IR
            index.add("no-marks", "c.onnx", "onnx", code(1), "ck", "d-resnet")
        ranked = index.query(code(1), k=2, structure=of_topology("t", [1, 1]),
                             shared=index.shared_marks(list(range(100, 130))))
        assert [e.name for e, _ in ranked] == ["owner-b", "owner-a"]


def test_a_version_2_index_gets_the_new_columns_and_keeps_its_structure_codes(tmp_path):
    path = tmp_path / "v2.db"
    structure = code(5, bits=STRUCTURE_BITS)
    with Index(path, create=True) as index:
        index.add("v2-entry", "a.onnx", "onnx", code(1), "ck", "d-a", structure=Structure(structure))
    as_older_format(path, 2, "DROP TABLE weight_marks", "DROP INDEX entries_by_topology", "DROP INDEX entries_by_ir",
                    "ALTER TABLE entries DROP COLUMN topology", "ALTER TABLE entries DROP COLUMN scale")
    with Index(path) as index:
        assert index.meta("version") == str(VERSION)
        (old,) = index.entries()
        assert old.structure.topology is None and old.structure.scale is None
        assert (old.structure.code == structure).all() and (old.code == code(1)).all()
        new = index.add("v3-entry", "b.onnx", "onnx", code(2), "ck", "d-b", structure=of_topology("t", [1, 1]))
        assert [e.id for e, _ in index.query(code(1), k=1, structure=of_topology("t", [1, 1]))] == [new.id]


def one_entry_index_as(path, version, *statements):
    """An index of one entry (with weight marks), then made as :func:`as_older_format` says."""
    with Index(path, create=True) as index:
        index.add("a", "a", "onnx", code(1), "ck", "d1", weight_marks=[1, 2, 3])
    as_older_format(path, version, *statements)
    return path


@pytest.mark.parametrize("version, table", [(4, "weight_marks"), (VERSION, "weight_marks"), (VERSION, "fingerprints"),
                                            (VERSION, "contents"), (VERSION, "patterns")])
def test_an_index_without_a_table_its_version_has_is_refused_as_damaged(tmp_path, version, table):
    path = one_entry_index_as(tmp_path / "i.db", version, f"DROP TABLE {table}")
    with pytest.raises(InputError, match=f"damaged hnn index \\(its {table} table is missing"):
        Index(path)


def test_a_version_4_index_gains_an_empty_fingerprints_table_and_keeps_its_entries(tmp_path):
    path = one_entry_index_as(tmp_path / "i.db", 4, "DROP TABLE fingerprints")
    with Index(path) as index:
        assert index.meta("version") == str(VERSION) and [e.name for e in index.entries()] == ["a"]
        assert index.shared_marks([1, 2, 3]) == {1: 3} and len(index.probes()[0]) == 0


def test_a_version_5_index_gains_an_empty_contents_table_and_keeps_its_entries(tmp_path):
    path = one_entry_index_as(tmp_path / "i.db", 5, "DROP TABLE contents")
    with Index(path) as index:
        assert index.meta("version") == str(VERSION) and [e.name for e in index.entries()] == ["a"]
        assert index.content_digests() == set()


def test_content_digests_are_recorded_for_the_entry_and_for_a_duplicate_and_go_with_it(tmp_path):
    with Index(tmp_path / "i.db", create=True) as index:
        first = index.add("a", "a", "onnx", code(1), "ck", "d1", content_digest="sha256:aa")
        with pytest.raises(DuplicateEntry):  # the same model from another file: that file is known too
            index.add("a2", "a2", "onnx", code(1), "ck", "d1", content_digest="sha256:bb")
        assert index.content_entry("sha256:aa").id == first.id == index.content_entry("sha256:bb").id
        assert index.content_entry("sha256:cc") is None
        index.remove(first.id)
        assert index.content_digests() == set()  # a removed entry's files are new again


def test_content_digest_of_files_and_folders(tmp_path):
    from hnn.index.contents import content_digest

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "w.bin").write_bytes(b"weights")
    (tmp_path / "m" / "sub").mkdir()
    (tmp_path / "m" / "sub" / "c.json").write_text("{}")
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(tmp_path / "m"), str(copy)], check=True)
    assert content_digest(tmp_path / "m") == content_digest(copy)
    (copy / "sub" / "c.json").write_text("{ }")
    assert content_digest(tmp_path / "m") != content_digest(copy)
    assert content_digest(tmp_path / "m" / "w.bin") != content_digest(tmp_path / "m")
    import os

    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(InputError, match="not a regular file"):
        content_digest(tmp_path / "fifo")


def test_codes_of_another_checkpoint_or_bit_count_are_refused(tmp_path):
    with Index(tmp_path / "i.db", create=True) as index:
        index.add("a", "a", "onnx", code(1), "ck-1", "d1")
        with pytest.raises(UsageError, match="two checkpoints"):
            index.add("b", "b", "onnx", code(2), "ck-2", "d2")
        with pytest.raises(UsageError, match="two checkpoints"):
            index.add("c", "c", "onnx", code(3, bits=32), "ck-1", "d3")
        assert len(index) == 1


def test_files_that_are_not_indexes_are_refused(tmp_path):
    text = tmp_path / "notes.db"
    text.write_text("hello, not a database " * 100)
    with pytest.raises(InputError, match="not an hnn index"):
        Index(text)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(InputError, match="not an hnn index"):
        Index(other)
    newer = tmp_path / "newer.db"
    Index(newer, create=True).close()
    sqlite3.connect(newer).execute("UPDATE meta SET value = '99' WHERE key = 'version'").connection.commit()
    with pytest.raises(InputError, match="newer than this hnn"):
        Index(newer)
    with pytest.raises(InputError, match="no such index"):
        Index(tmp_path / "missing.db")


WRITER = """
import sys, numpy as np
from hnn.index.store import Index
path, prefix, count, pause = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
import time
with Index(path, create=True) as index:
    for i in range(count):
        code = np.random.default_rng(hash((prefix, i)) % 2**32).random(16) < 0.5
        index.add(f"{prefix}{i}", "src", "onnx", code, "ck", f"{prefix}-{i}")
        print(i, flush=True)
        time.sleep(pause)
"""


def test_killed_bulk_add_keeps_every_committed_entry(tmp_path):
    path = tmp_path / "i.db"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "m", "1000", "0.01"],
                              stdout=subprocess.PIPE, text=True)
    committed = -1
    for line in writer.stdout:
        committed = int(line)
        if committed >= 20:
            break
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    with Index(path) as index:
        names = {entry.name for entry in index.entries()}
        assert {f"m{i}" for i in range(committed + 1)} <= names
        assert all(entry.code.shape == (16,) for entry in index.entries())
        assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_two_processes_add_to_one_index_at_once(tmp_path):
    path = tmp_path / "i.db"
    Index(path, create=True).close()
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), prefix, "40", "0"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for prefix in "xy"]
    for writer in writers:
        assert writer.wait(timeout=120) == 0, writer.stderr.read()
    with Index(path) as index:
        assert len(index) == 80


def test_a_damaged_scale_reads_as_none_and_the_entry_still_ranks(tmp_path):
    path = tmp_path / "i.db"
    with Index(path, create=True) as index:
        index.add("damaged", "d", "onnx", code(1), "ck", "d-1", structure=of_topology("t", [1.0, 2.0]))
    db = sqlite3.connect(path)
    db.execute("UPDATE entries SET scale = x'0102'")
    db.commit()
    db.close()
    with Index(path) as index:
        (entry,) = index.entries()
        assert entry.structure.topology == "t" and entry.structure.scale is None
        ranked = index.query(code(1), k=1, structure=of_topology("t", [1.0, 2.0]))
        assert [(e.name, d) for e, d in ranked] == [("damaged", 0)]  # found by its code, not as the same topology


def test_smallest_is_the_head_of_a_stable_argsort():
    from hnn.provenance.selection import smallest

    rng = np.random.default_rng(3)
    for size in (0, 1, 5, 200):
        for values in (rng.integers(0, 4, size), rng.integers(0, 1 << 40, size), np.zeros(size, np.uint8),
                       rng.integers(0, 3, size).astype(np.uint8), rng.integers(0, 65, size).astype(np.uint8),
                       rng.integers(0, 257, size).astype(np.uint16)):
            for count in (0, 1, 4, 300):
                assert smallest(values, count).tolist() == np.argsort(values, kind="stable")[:max(count, 0)].tolist()


def random_fingerprint(rng, shapes):
    from hnn.provenance.fingerprint import FEATURES, SKETCH_BITS, Fingerprint

    return Fingerprint(rng.standard_normal((3, FEATURES)).astype(np.float32), shapes,
                       rng.integers(0, 256, (len(shapes), SKETCH_BITS // 8), dtype=np.uint8))


def random_entry(rng, number):
    """add()'s arguments for an entry of one of a few architectures (some without structure, topology,
    scale, marks or fingerprint), so that queries tie, share topologies and share weights."""
    architecture = int(rng.integers(0, 4))
    kind = rng.random()
    structure = None if kind < 0.1 else Structure(code(50 + architecture, STRUCTURE_BITS),
                                                   None if kind < 0.2 else f"t{architecture}",
                                                   None if kind < 0.3 else rng.random(2).round(1))
    shapes = ((8, 4, 3, 3), (16, 8 + architecture % 2))
    return {"name": f"m{number}", "source": "x", "framework": "onnx", "code": code(architecture),
            "checkpoint_digest": "ck", "ir_digest": f"d{architecture}", "structure": structure,
            "weight_marks": [int(m) for m in rng.choice(200, int(rng.integers(0, 12)), replace=False)],
            "fingerprint": None if rng.random() < 0.2 else random_fingerprint(rng, shapes)}


def add(index, entry: dict) -> int | None:
    """The new entry's id, or None for a model already indexed."""
    try:
        return index.add(**entry).id
    except DuplicateEntry:
        return None


def answers(index, rng_seed=0):
    """What queries of every kind answer, and the probes as the provenance lookup reads them."""
    rng = np.random.default_rng(rng_seed)
    said = []
    for architecture in range(5):
        query = code(architecture)
        query[int(rng.integers(0, 16))] ^= True
        structure = Structure(code(50 + architecture, STRUCTURE_BITS), f"t{architecture}", np.array([0.5, 0.5]))
        shared = index.shared_marks([int(m) for m in rng.choice(200, 30, replace=False)])
        for k, radius in ((3, None), (1000, None), (10, 2)):
            said.append([(e.id, d) for e, d in index.query(query, k, radius, structure=structure, shared=shared)])
        said.append([(e.id, d) for e, d in index.query(query, k=4)])
        said.append([(e.id, d) for e, d in index.query(query, radius=3)])
    ids, probes = index.probes()
    said.append([ids.tolist(), probes.digests.tolist(), probes.anchored.tolist(),
                 sorted((digest, positions.tolist(), sketches.tolist())
                        for digest, (positions, sketches) in probes.sequences.items())])
    return said


def test_adds_and_removes_between_queries_answer_as_a_freshly_opened_index(tmp_path):
    # The codes, ranking columns and probes are kept in memory and changed in place by add and remove
    # (growing past their room several times); every answer must be a fresh open's.
    path = tmp_path / "i.db"
    rng = np.random.default_rng(0)
    with Index(path, create=True) as index:
        for number in range(90):
            add(index, random_entry(rng, number))
    with Index(path) as index:
        answers(index)  # the tables are read now
        number = 90
        for step in range(60):
            if rng.random() < 0.7 or len(index) < 5:
                entry = random_entry(rng, number)
                number += 1
                add(index, entry)
                if step % 7 == 0:  # the same model again: a duplicate, nothing changes
                    with pytest.raises(DuplicateEntry):
                        index.add(**{**entry, "name": "again"})
            else:
                ids = [e.id for e in index.entries()]
                index.remove(ids[int(rng.integers(0, len(ids)))] if step % 3 else ids[-1])
            if step % 5 == 0 or step > 50:
                with Index(path) as fresh:
                    assert answers(index, step) == answers(fresh, step), step
        for entry in index.entries():  # down to none, and back
            index.remove(entry.id)
        assert index.query(code(1), k=3) == [] and len(index.probes()[0]) == 0
        add(index, random_entry(rng, number))
        with Index(path) as fresh:
            assert answers(index) == answers(fresh)


def test_an_index_queried_before_its_first_entry_answers_as_a_fresh_one_after(tmp_path):
    path = tmp_path / "i.db"
    rng = np.random.default_rng(5)
    with Index(path, create=True) as index, Index(path) as other:
        assert answers(index)[0] == answers(index)[0] == answers(other)[0] == []  # both read their (empty) tables
        add(index, random_entry(rng, 0))  # the first entry fixes the bit count, and starts a layer sequence
        add(index, random_entry(rng, 1))
        with Index(path) as fresh:
            assert answers(index) == answers(fresh) == answers(other)


def test_what_another_connection_commits_is_seen_by_an_open_index(tmp_path):
    # A service keeps its index open while `hnn index add` or `remove` writes from another process.
    path = tmp_path / "i.db"
    rng = np.random.default_rng(1)
    with Index(path, create=True) as writer:
        for number in range(10):
            add(writer, random_entry(rng, number))
        with Index(path) as reader:
            answers(reader)
            added = [add(writer, random_entry(rng, number)) for number in range(10, 30)]
            with Index(path) as fresh:
                assert answers(reader) == answers(fresh)  # appended
            writer.remove(next(entry_id for entry_id in added if entry_id is not None))
            add(writer, random_entry(rng, 30))
            add(reader, random_entry(rng, 31))  # its own add, after another connection's
            with Index(path) as fresh:
                assert answers(reader) == answers(fresh)  # read again


def test_a_version_6_file_without_the_probes_sql_index_gains_it_and_reads_the_same(tmp_path):
    path = tmp_path / "i.db"
    rng = np.random.default_rng(2)
    with Index(path, create=True) as index:
        for number in range(12):
            add(index, random_entry(rng, number))
        expected = answers(index)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("DROP INDEX fingerprints_probes")  # as hnn 0.2 wrote version 6
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the file: opening does not wait for it
    try:
        started = time.perf_counter()
        with Index(path) as index:
            assert answers(index) == expected  # the probes read from the table
        assert time.perf_counter() - started < 10
    finally:
        holder.execute("ROLLBACK")
    def probes_indexed():
        return holder.execute("SELECT 1 FROM sqlite_master WHERE name = 'fingerprints_probes'").fetchone() is not None
    assert not probes_indexed()
    with Index(path) as index:
        assert answers(index) == expected
    assert probes_indexed()
    holder.close()


def test_fine_tunes_of_one_architecture_rank_as_the_formula_says_on_the_first_query_and_after(tmp_path):
    # A hub: many entries of one IR (one code, structure, topology, scale: ranked alike), some of which
    # share the query's weights, beside other architectures. The first query of an open index ranks
    # its candidates' rows read from the file, the later ones the columns kept in memory (by group).
    rng = np.random.default_rng(4)
    architectures = [(code(number % 3, bits=16), of_topology(f"t{number % 2}", [number, 2.0], seed=number))
                     for number in range(4)]
    marks = list(range(1, 129))
    path = tmp_path / "i.db"
    with Index(path, create=True) as index:
        for number in range(150):
            architecture = int(rng.integers(0, 4))
            copied = marks[:int(rng.integers(0, 30))] if rng.random() < 0.2 else []
            index.add(f"e{number}", "x", "onnx", architectures[architecture][0], "ck", f"d{number}",
                      structure=architectures[architecture][1], weight_marks=copied + [1000 + number])
    query_code, query = code(0, bits=16), of_topology("t0", [1.5, 2.0], seed=0)
    with Index(path) as index:
        shared = index.shared_marks(marks)
        expected = [entry_id for _, entry_id in sorted(
            (rank_of(query, int((entry.code != query_code).sum()), entry.structure, shared.get(entry.id, 0)), entry.id)
            for entry in index.entries())]
        for k in (5, 150, 5):
            assert [entry.id for entry, _ in index.query(query_code, k=k, structure=query, shared=shared)] == expected[:k]
        assert [entry.id for entry, _ in index.query(query_code, radius=16, structure=query, shared=shared)] == expected


def patterned(*features, seed=0):
    """A structure whose op pattern is ``features`` (the rest random: the family answer reads the pattern)."""
    from hnn.hasher.structure import pattern_signature

    rng = np.random.default_rng(seed)
    return Structure(rng.random(STRUCTURE_BITS) < 0.5, f"{seed:016x}", rng.random(2),
                     pattern_signature(frozenset(features)))


def test_the_family_answer_is_the_entry_nearest_by_code_and_op_pattern_together(tmp_path):
    layers = [f"op{i}" for i in range(40)]
    query_code = code(1, bits=64)
    near_code = query_code.copy()
    near_code[:4] ^= True  # 4 bits from the query
    far_code = query_code.copy()
    far_code[:16] ^= True  # 16 bits from the query
    with Index(tmp_path / "i.db", create=True) as index:
        index.add("other kind", "x", "onnx", near_code, "ck", "d1", label="cnn",
                  structure=patterned("conv", "relu", seed=1))
        index.add("own kind", "x", "onnx", far_code, "ck", "d2", label="bert", structure=patterned(*layers, seed=2))
        index.add("no pattern", "x", "onnx", query_code, "ck", "d3", structure=Structure(code(3, STRUCTURE_BITS)))
        family = index.family(query_code, patterned(*layers[:36], seed=4).pattern)
        # The entry without a signature (code distance 0) is never the answer; the op patterns (36 of 40
        # alike, against none) outweigh 12 more bits of code distance.
        assert family["name"] == "own kind" and family["label"] == "bert" and family["code_distance"] == 16
        assert 0.75 < family["pattern_similarity"] < 1.0
        assert index.family(query_code, patterned("conv", "relu", seed=5).pattern)["name"] == "other kind"
        assert index.family(query_code, None) is None
        newer = index.add("own kind, nearer", "x", "onnx", near_code, "ck", "d4", structure=patterned(*layers, seed=6))
        assert index.family(query_code, patterned(*layers, seed=7).pattern)["id"] == newer.id  # the cache is read again
        index.remove(newer.id)
        assert index.family(query_code, patterned(*layers, seed=7).pattern)["name"] == "own kind"


def test_the_family_answer_is_the_nearest_of_every_entry_and_the_lowest_id_of_a_tie(tmp_path):
    """Against every entry's family distance computed one by one: many entries share a signature (a base
    and its fine-tunes), some none; 16-bit codes make ties common."""
    from hnn.hasher.structure import estimated_pattern_similarity, family_distance_matrix

    rng = np.random.default_rng(3)
    kinds = [patterned(*(f"op{j}" for j in rng.choice(60, 30, replace=False)), seed=i).pattern for i in range(12)]
    stored = []

    def add(index, number):
        signature = kinds[int(rng.integers(0, len(kinds)))] if number % 10 else None
        entry_code = code(int(rng.integers(0, 40)))
        structure = Structure(code(number, STRUCTURE_BITS), f"{number:016x}", rng.random(2), signature)
        entry = index.add(f"m{number}", "x", "onnx", entry_code, "ck", f"d{number}", structure=structure)
        if signature is not None:
            stored.append((entry.id, entry_code, signature))

    with Index(tmp_path / "i.db", create=True) as index:
        for number in range(300):
            add(index, number)
        removed = stored.pop(7)
        index.remove(removed[0])
        for query in range(80):
            if query >= 40:  # adds between queries: the positions are extended, not located again
                add(index, 300 + query)
            query_code = code(1000 + query)
            signature = kinds[query % len(kinds)] if query % 4 else patterned("conv", seed=query).pattern
            expected = family_distance_matrix(
                np.array([[int((query_code != c).sum()) for _, c, _ in stored]]), 16,
                1 - estimated_pattern_similarity(signature, np.stack([s for _, _, s in stored]))[None, :])[0]
            best = int(np.argmin(expected))  # stored is in id order: the first of a tie is the lowest id
            family = index.family(query_code, signature)
            assert family["id"] == stored[best][0] and family["distance"] == round(float(expected[best]), 4)
            assert family["patterns"] == len(stored)


def test_a_version_6_index_gains_an_empty_patterns_table_and_has_no_family_answer_until_an_add(tmp_path):
    path = one_entry_index_as(tmp_path / "i.db", 6, "DROP TABLE patterns")
    with Index(path) as index:
        assert index.meta("version") == str(VERSION) and [e.name for e in index.entries()] == ["a"]
        assert index.family(code(1), patterned("conv").pattern) is None
        index.add("b", "b", "onnx", code(2), "ck", "d2", structure=patterned("conv"))
        assert index.family(code(1), patterned("conv").pattern)["name"] == "b"


def test_the_family_answer_of_an_open_index_sees_another_connections_adds_and_removes(tmp_path):
    path = tmp_path / "i.db"
    layers = [f"op{i}" for i in range(20)]
    with Index(path, create=True) as reader:
        reader.add("cnn", "x", "onnx", code(1, 64), "ck", "d1", structure=patterned("conv", "relu", seed=1))
        query = patterned(*layers, seed=2).pattern
        assert reader.family(code(2, 64), query)["name"] == "cnn"  # the only one: the signatures are read
        with Index(path) as writer:
            added = writer.add("own kind", "x", "onnx", code(3, 64), "ck", "d2", structure=patterned(*layers, seed=3))
            assert reader.family(code(2, 64), query)["name"] == "own kind"  # the other's add, read as rows after
            writer.remove(added.id)
        family = reader.family(code(2, 64), query)
        assert family["name"] == "cnn" and family["patterns"] == 1  # a removal: read again


def test_a_new_index_signs_sized_op_patterns_and_a_version_7_one_goes_on_signing_op_only_ones(tmp_path):
    """Version 7 (hnn 0.5.1, 0.5.2) stored op-only signatures: a query must be signed alike to be compared
    with them, so the upgraded file records that kind, and its later adds are signed so too."""
    from dataclasses import replace

    from hnn.hasher.structure import PATTERN_KIND, pattern_signature

    both = replace(patterned("conv", "gemm|r4", seed=1),
                   ops_pattern=pattern_signature(frozenset({"conv", "gemm"}), "ops"))

    def stored_signatures(path):
        db = sqlite3.connect(path)
        try:
            rows = db.execute("SELECT signature FROM patterns ORDER BY entry")
            return [np.frombuffer(row[0], np.uint8) for row in rows]
        finally:
            db.close()

    path = tmp_path / "i.db"
    with Index(path, create=True) as index:
        assert index.pattern_kind == index.meta("patterns") == PATTERN_KIND == "ops+sizes"
        index.add("a", "a", "onnx", code(1), "ck", "d1", structure=both)
    assert np.array_equal(stored_signatures(path)[0], both.pattern)
    db = sqlite3.connect(path)  # as hnn 0.5.2 wrote it: op-only signatures, no kind recorded
    db.execute("UPDATE patterns SET signature = ?", (both.ops_pattern.tobytes(),))
    db.commit()
    db.close()
    as_older_format(path, 7, "DELETE FROM meta WHERE key = 'patterns'")
    with Index(path) as index:  # it stays version 7, which hnn 0.5.2 goes on reading
        assert index.meta("version") == "7" and index.meta("patterns") is None and index.pattern_kind == "ops"
        index.add("b", "b", "onnx", code(2), "ck", "d2", structure=both)
        family = index.family(code(2), both.signature(index.pattern_kind))
        assert family["name"] == "b" and family["pattern_similarity"] == 1.0
        index._upgrade(7)  # as a second process that read version 7 before the first add: nothing changes
        assert index.meta("version") == "7" and index.pattern_kind == "ops"
    assert all(np.array_equal(signature, both.ops_pattern) for signature in stored_signatures(path))
    # A version-7 file with no signature yet becomes version 8, signed with sizes; a stale second
    # upgrade after an add leaves it so.
    empty = one_entry_index_as(tmp_path / "e.db", 7, "DELETE FROM meta WHERE key = 'patterns'")
    with Index(empty) as index, Index(empty) as other:
        assert index.meta("version") == str(VERSION) and index.pattern_kind == PATTERN_KIND
        index.add("c", "c", "onnx", code(3), "ck", "d3", structure=both)
        other._upgrade(7)
        assert other.pattern_kind == index.pattern_kind == PATTERN_KIND


def test_an_index_of_an_unknown_op_pattern_kind_is_refused_as_damaged(tmp_path):
    path = one_entry_index_as(tmp_path / "i.db", VERSION, "UPDATE meta SET value = 'colours' WHERE key = 'patterns'")
    with Index(path) as index, pytest.raises(InputError, match="damaged hnn index .*unknown kind 'colours'"):
        index.pattern_kind  # what hnn check signs its query with
