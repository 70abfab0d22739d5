"""The index at platform scale: `hnn check`'s query time, the file's size and the add throughput at 10^6 entries.

    .venv/bin/python benchmarks/index_scale.py [--entries 1000000] [--path /tmp/hnn-scale/models.db]
        [--queries 30] [--adds 1000] [--json]

A hub holds many architectures, each with many fine-tunes: one IR, one code, one topology, each
owner's weights. The index built here holds ``--entries`` entries of ``--topologies``
architectures, Zipf-distributed (``--skew``: the largest of 1000 holds 13% of the entries at
skew 1, as the most fine-tuned bases of a hub do). Architectures come in families of five whose
codes differ by a few bits (siblings: the hasher gives close models close codes). Every entry's
rows are what :meth:`hnn.index.store.Index.add` writes (checked against it at every build): a
64-bit code, the structure blob, the topology digest and scale, 128 weight marks, a fingerprint
and its probe made by the real ``Fingerprint.to_bytes`` and ``probe``, and a content digest. The
fingerprints have the layer shapes and Gram layers of real torchvision models (resnet18,
squeezenet1_1, shufflenet_v2_x1_0, mnasnet0_5, mobilenet_v2: 8 to 19 KB), widened or narrowed and
with a layer left out per architecture; each entry's values are independent (random sketches,
Grams of the real spread), as those of independently trained models look to the test. The file
is bulk-loaded (large transactions, SQL indexes made after), so a million entries take minutes.

Queries are what `hnn check` sees after hashing an upload (``check_hashed``, k = 5):

- ``derived-marks``: a copy of a stored entry (population-weighted) that kept 100 of its 128 weight
  marks, its fingerprint noised (10% of the sketch bits flipped, Gram noise of half their spread);
- ``derived-tuned``: the same copy fine-tuned: its fingerprint noised alike, no mark kept;
- ``derived-largest``: a ``derived-tuned`` copy of an entry of the largest architecture;
- ``independent``: another owner's model of a stored architecture (its code, structure and shapes;
  its own weights);
- ``new``: an architecture the index does not hold.

Measured: the build, the file size, the first query after opening the index (cold: it reads every
code and probe), the reading of every column that ``hnn serve`` does before its first request, the
median and p90 of the following queries (warm: what ``hnn serve`` pays, the index kept open) and
the medians of their parts (the structural search, the probe scan, the exact tests), the same query from a freshly started process (what the `hnn check` CLI pays per
call, without converting the model), ``--adds`` adds through ``Index.add`` on top of the big file,
queries interleaved with adds, and the removal of what was added. Every derived query must name its
source (``derived_from``), and the long-lived index must answer as a freshly opened one does.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TEMPLATES = ("resnet18", "squeezenet1_1", "shufflenet_v2_x1_0", "mnasnet0_5", "mobilenet_v2")
FAMILY = 5  # architectures per family: codes a few bits apart
WIDTHS = 40  # width variants per template
KINDS = ("derived-marks", "derived-tuned", "derived-largest", "independent", "new")
KEPT_MARKS = 100
FLIP = 0.1  # share of a derived copy's sketch bits flipped
GRAM_NOISE = 0.5  # a derived copy's Gram noise, in each layer's spread
CHUNK = 2000  # entries a worker makes at once


# --- the population -------------------------------------------------------------------------


def template_fingerprints() -> dict:
    """{name: (grams, shapes, sketches)} of real torchvision models (seeded init, exported to ONNX)."""
    import warnings

    import torch
    import torchvision

    from hnn.plugins.frontends.pytorch_frontend import export_module
    from hnn.provenance.fingerprint import fingerprint

    found = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in TEMPLATES:
            torch.manual_seed(0)
            made = fingerprint(export_module(getattr(torchvision.models, name)(num_classes=10).eval(), [1, 3, 64, 64]))
            found[name] = (made.grams, made.shapes, made.sketches)
    return found


def architectures(count: int, entries: int, skew: float, templates: dict, seed: int) -> list[dict]:
    """One dict per architecture: its code, structure, IR digest, fingerprint shapes and Gram spread, entries."""
    from hnn.hasher.structure import HALF_BITS, SIGNATURE_BYTES, STRUCTURE_BITS

    rng = np.random.default_rng([seed, 1])
    weights = 1.0 / np.arange(1, count + 1) ** skew
    sizes = np.floor(weights / weights.sum() * entries).astype(int)
    sizes[: entries - sizes.sum()] += 1  # the remainder to the largest
    names = list(templates)
    found = []
    for number in range(count):
        if number % FAMILY == 0:
            family_code = rng.random(64) < 0.5
            family_topology = rng.random(HALF_BITS) < 0.5
            family_pattern = rng.integers(0, 256, SIGNATURE_BYTES).astype(np.uint8)
        pattern = family_pattern.copy()  # siblings: op patterns of Jaccard similarity about 0.9
        changed = rng.choice(SIGNATURE_BYTES, int(rng.integers(0, SIGNATURE_BYTES // 10)), replace=False)
        pattern[changed] = rng.integers(0, 256, len(changed)).astype(np.uint8)
        code = family_code.copy()
        code[rng.choice(64, int(rng.integers(0, 3)), replace=False)] ^= True  # siblings: 0 to 2 bits apart
        structure = np.concatenate([family_topology, rng.random(STRUCTURE_BITS - HALF_BITS) < 0.5])
        template = names[number % len(names)]
        grams, shapes, _ = templates[template]
        width = 0.5 + 0.05 * ((number // len(names)) % WIDTHS)
        shapes = [tuple(max(1, round(d * width)) if d > 16 else d for d in shape) for shape in shapes]
        dropped = (number // (len(names) * WIDTHS)) % len(shapes)
        if number >= len(names) * WIDTHS:
            del shapes[dropped]  # a block less: another layer sequence
        found.append({
            "name": f"{template}-w{width:.2f}-{number}", "code": code, "structure": structure,
            "topology": hashlib.blake2b(f"topology {seed} {number}".encode(), digest_size=8).hexdigest(),
            "scale": np.array([18.0 + 6 * rng.random(), 22.0 + 6 * rng.random()]),
            "ir_digest": hashlib.sha256(f"ir {seed} {number}".encode()).hexdigest(),
            "shapes": tuple(shapes), "gram_std": grams.std(axis=1).astype(np.float32), "entries": int(sizes[number]),
            "pattern": pattern,
        })
    return found


def independent_fingerprint(shapes, gram_std, rng):
    """A fingerprint of these layer shapes with independent values (random signs; Grams of that spread)."""
    from hnn.provenance.fingerprint import FEATURES, SKETCH_BITS, Fingerprint

    grams = rng.standard_normal((len(gram_std), FEATURES), dtype=np.float32) * gram_std[:, None]
    sketches = rng.integers(0, 256, (len(shapes), SKETCH_BITS // 8), dtype=np.uint8)
    return Fingerprint(grams, tuple(shapes), sketches)


def derived_fingerprint(source, rng):
    """A copy's fingerprint: ``source``'s with FLIP of its sketch bits flipped and Gram noise of GRAM_NOISE."""
    from hnn.provenance.fingerprint import Fingerprint

    flips = np.packbits(rng.random((len(source.sketches), source.sketches.shape[1] * 8)) < FLIP, axis=1)
    noise = rng.standard_normal(source.grams.shape, dtype=np.float32) * source.grams.std(axis=1, keepdims=True)
    return Fingerprint(source.grams + GRAM_NOISE * noise, source.shapes, source.sketches ^ flips)


def new_marks(rng, count: int = 128) -> list[int]:
    return [int(mark) for mark in rng.integers(0, 1 << 63, count, dtype=np.int64)]


# --- building the file ----------------------------------------------------------------------------


_ARCHITECTURES: list[dict] = []


def _initialise(found: list[dict]) -> None:
    global _ARCHITECTURES
    _ARCHITECTURES = found


def make_rows(spec: tuple[int, int, list[tuple[int, int]]], keep: list | None = None) -> list[tuple]:
    """For a chunk (seed, first entry number, [(architecture, fine-tune number)]): one tuple per
    entry of what bulk_insert writes, fingerprint and probe made by the real functions (the
    Fingerprint objects are appended to ``keep``)."""
    from hnn.hasher import bits
    from hnn.index.store import _pack_structure
    from hnn.provenance.probe import probe

    seed, first, members = spec
    rng = np.random.default_rng([seed, 2, first])
    rows = []
    for number, (architecture, tune) in enumerate(members, start=first):
        arch = _ARCHITECTURES[architecture]
        made = independent_fingerprint(arch["shapes"], arch["gram_std"], rng)
        if keep is not None:
            keep.append(made)
        owner = int(rng.integers(0, 50_000))
        name = f"{arch['name']}-ft{tune}"
        rows.append((name, f"hub/owner{owner}/{name}.onnx", "onnx", f"owner{owner}" if owner % 2 else None,
                     bits.to_bytes(arch["code"]).tobytes(), 64, arch["ir_digest"], _pack_structure(arch["structure"]),
                     arch["topology"], np.asarray(arch["scale"], "<f8").tobytes(), probe(made), made.to_bytes(),
                     "sha256:" + hashlib.sha256(f"content {seed} {number}".encode()).hexdigest(),
                     arch["pattern"].tobytes()))
    return rows


def bulk_insert(db: sqlite3.Connection, rows: list[tuple], checkpoint: str, first_id: int, marks: np.ndarray | None):
    """The rows Index.add writes for each entry (ids first_id, first_id + 1, ...; ``marks``: [len(rows), 128]),
    weight marks included unless ``marks`` is None (the big build inserts them sorted at the end)."""
    now = time.time()
    db.executemany("INSERT INTO entries (id, name, source, framework, label, code, bits, checkpoint, ir_digest, added, "
                   "structure, topology, scale, marks) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [(first_id + i, row[0], row[1], row[2], row[3], row[4], row[5], checkpoint, row[6], now, row[7],
                     row[8], row[9], 128) for i, row in enumerate(rows)])
    db.executemany("INSERT INTO fingerprints (entry, probe, data) VALUES (?, ?, ?)",
                   [(first_id + i, row[10], row[11]) for i, row in enumerate(rows)])
    db.executemany("INSERT OR IGNORE INTO contents (digest, entry) VALUES (?, ?)",
                   [(row[12], first_id + i) for i, row in enumerate(rows)])
    db.executemany("INSERT INTO patterns (entry, signature) VALUES (?, ?)",
                   [(first_id + i, row[13]) for i, row in enumerate(rows)])
    if marks is not None:
        db.executemany("INSERT OR IGNORE INTO weight_marks (mark, entry) VALUES (?, ?)",
                       [(int(mark), first_id + i) for i, row in enumerate(marks) for mark in row])


def _index_statements() -> list[str]:
    from hnn.index.store import SCHEMA

    return [line for line in SCHEMA.splitlines() if line.startswith("CREATE INDEX")]


def check_rows_are_what_add_writes(found: list[dict], checkpoint: str, folder: Path) -> None:
    """The same three entries written by bulk_insert and by Index.add give the same rows (but the time added)."""
    from hnn.hasher.structure import Structure
    from hnn.index.store import Index

    _initialise(found)
    made: list = []
    rows = make_rows((7, 0, [(0, 0), (1, 0), (2, 5)]), made)
    marks = np.random.default_rng(7).integers(0, 1 << 63, (len(rows), 128), dtype=np.int64)
    bulk, added = folder / "bulk.db", folder / "added.db"
    with Index(bulk, create=True) as index:
        index.db.execute("INSERT INTO meta VALUES ('checkpoint', ?), ('bits', '64')", (checkpoint,))
        bulk_insert(index.db, rows, checkpoint, 1, marks)
    with Index(added, create=True) as index:
        for row, entry_marks, print_ in zip(rows, marks, made):
            arch = next(a for a in found if a["topology"] == row[8])
            index.add(row[0], row[1], row[2], arch["code"], checkpoint, row[6], label=row[3],
                      structure=Structure(arch["structure"], arch["topology"], arch["scale"], arch["pattern"]),
                      weight_marks=[int(m) for m in entry_marks], fingerprint=print_,
                      content_digest=row[12])
    tables = {"meta": "SELECT * FROM meta ORDER BY key",
              "entries": "SELECT id, name, source, framework, label, code, bits, checkpoint, ir_digest, typeof(added), "
                         "structure, topology, scale, marks FROM entries ORDER BY id",
              "weight_marks": "SELECT * FROM weight_marks ORDER BY mark, entry",
              "fingerprints": "SELECT * FROM fingerprints ORDER BY entry",
              "contents": "SELECT * FROM contents ORDER BY digest", "patterns": "SELECT * FROM patterns ORDER BY entry",
              "sqlite_sequence": "SELECT * FROM sqlite_sequence"}
    first, second = sqlite3.connect(bulk), sqlite3.connect(added)
    for table, sql in tables.items():
        assert first.execute(sql).fetchall() == second.execute(sql).fetchall(), f"bulk rows differ from Index.add's: {table}"
    first.close()
    second.close()


def build(path: Path, entries: int, topologies: int, skew: float, seed: int, workers: int) -> dict:
    """The index file of ``entries`` synthetic entries; what it took."""
    from multiprocessing import get_context

    from hnn.hasher.runtime import load
    from hnn.index.store import Index

    started = time.perf_counter()
    templates = template_fingerprints()
    found = architectures(topologies, entries, skew, templates, seed)
    checkpoint = load(None, 64).digest
    with tempfile.TemporaryDirectory() as folder:
        check_rows_are_what_add_writes(found, checkpoint, Path(folder))
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        stale.unlink(missing_ok=True)
    with Index(path, create=True):
        pass  # the schema as hnn writes it
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = OFF")
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA cache_size = -1000000")
    db.execute("PRAGMA threads = 2")
    for statement in _index_statements():
        db.execute(f"DROP INDEX {statement.split()[5]}")
    db.execute("BEGIN")
    db.execute("INSERT INTO meta VALUES ('checkpoint', ?), ('bits', '64')", (checkpoint,))
    # Entries in a shuffled order of architectures, as a hub receives them.
    members = [(arch, tune) for arch, spec in enumerate(found) for tune in range(spec["entries"])]
    order = np.random.default_rng([seed, 3]).permutation(len(members))
    members = [members[i] for i in order]
    specs = [(seed, start, members[start:start + CHUNK]) for start in range(0, len(members), CHUNK)]
    made = 0
    with get_context("spawn").Pool(workers, initializer=_initialise, initargs=(found,)) as pool:
        for rows in pool.imap(make_rows, specs):
            bulk_insert(db, rows, checkpoint, made + 1, None)
            made += len(rows)
            if made % 100_000 < CHUNK:
                print(f"  {made} entries, {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    rows_done = time.perf_counter()
    marks = np.random.default_rng([seed, 4]).integers(0, 1 << 63, (entries, 128), dtype=np.int64).reshape(-1)
    by_mark = np.argsort(marks, kind="stable")
    marks, owners = marks[by_mark], by_mark // 128 + 1
    del by_mark
    step = 1_000_000
    for start in range(0, len(marks), step):  # in key order: appended to the B-tree, not scattered in it
        db.executemany("INSERT OR IGNORE INTO weight_marks (mark, entry) VALUES (?, ?)",
                       zip(marks[start:start + step].tolist(), owners[start:start + step].tolist()))
    del marks, owners
    db.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'entries'", (entries,))
    db.execute("COMMIT")
    marks_done = time.perf_counter()
    for statement in _index_statements():
        db.execute(statement)
    db.execute("PRAGMA journal_mode = WAL")
    db.close()
    done = time.perf_counter()
    return {"build_s": round(done - started, 1), "rows_s": round(rows_done - started, 1),
            "marks_s": round(marks_done - rows_done, 1), "sql_indexes_s": round(done - marks_done, 1)}


# --- queries ----------------------------------------------------------------------------------------


def population(index) -> dict:
    """What the queries are drawn from: the entry count, the largest architecture and its size."""
    count, last = index.db.execute("SELECT COUNT(*), MAX(id) FROM entries").fetchone()
    topology, size = index.db.execute("SELECT topology, COUNT(*) AS n FROM entries GROUP BY topology "
                                      "ORDER BY n DESC LIMIT 1").fetchone()
    return {"entries": count, "last_id": last, "largest_topology": topology, "largest": size}


def make_query(index, kind: str, number: int, seed: int, facts: dict):
    """(what hash_with would return for the upload, the entry it derives from or None)."""
    from hnn.hasher.bits import to_hex
    from hnn.hasher.runtime import HashResult
    from hnn.hasher.structure import SIGNATURE_BYTES, STRUCTURE_BITS, Structure

    rng = np.random.default_rng([seed, 5, KINDS.index(kind), number])
    if kind == "derived-largest":
        offset = int(rng.integers(0, facts["largest"]))
        source_id = index.db.execute("SELECT id FROM entries WHERE topology = ? ORDER BY id LIMIT 1 OFFSET ?",
                                     (facts["largest_topology"], offset)).fetchone()[0]
    else:
        source_id = None
        while source_id is None:  # population-weighted: a random entry (ids removed by a run are skipped)
            row = index.db.execute("SELECT id FROM entries WHERE id >= ? ORDER BY id LIMIT 1",
                                   (int(rng.integers(1, facts["last_id"] + 1)),)).fetchone()
            source_id = None if row is None else row[0]
    source = index.get(source_id)
    stored = index.fingerprints([source_id])[source_id]
    marks = [row[0] for row in index.db.execute("SELECT mark FROM weight_marks WHERE entry = ? ORDER BY mark",
                                                (source_id,))]
    signature = index.db.execute("SELECT signature FROM patterns WHERE entry = ?", (source_id,)).fetchone()
    code, ir_digest = source.code, source.ir_digest
    structure = Structure(source.structure.code, source.structure.topology, source.structure.scale,
                          np.frombuffer(signature[0], np.uint8) if signature else None)
    derives = source_id
    if kind == "derived-marks":
        kept = rng.choice(len(marks), KEPT_MARKS, replace=False)
        weight_marks = sorted([marks[i] for i in kept] + new_marks(rng, 128 - KEPT_MARKS))
        made = derived_fingerprint(stored, rng)
    elif kind in ("derived-tuned", "derived-largest"):
        weight_marks, made = new_marks(rng), derived_fingerprint(stored, rng)
    else:
        derives = None
        weight_marks = new_marks(rng)
        shapes = stored.shapes
        if kind == "new":
            code = rng.random(64) < 0.5
            structure = Structure(rng.random(STRUCTURE_BITS) < 0.5, f"{int(rng.integers(0, 1 << 62)):016x}",
                                  rng.random(2) * 10 + 15, rng.integers(0, 256, SIGNATURE_BYTES).astype(np.uint8))
            ir_digest = hashlib.sha256(f"new {seed} {number}".encode()).hexdigest()
            shapes = tuple((shape[0] + 1, *shape[1:]) for shape in shapes)  # a layer sequence nobody has
        made = independent_fingerprint(shapes, stored.grams.std(axis=1), rng)
    hashed = HashResult(model=f"{kind}-{number}", framework="onnx", bits=64, hash=to_hex(code), nodes=0, code=code,
                        structure=structure, weight_marks=weight_marks, ir_digest=ir_digest, fingerprint=made)
    return hashed, derives


def answered(result: dict, derives: int | None) -> bool:
    """Whether `hnn check` named the right source (a derived query) or none (the others)."""
    source = result["derived_from"]
    if derives is None:
        return source is None and result["verdict"] != "derived"
    return source is not None and source["id"] == derives and result["verdict"] == "derived"


def one_fresh_query(path: Path, kind: str, number: int, seed: int, facts: dict) -> dict:
    """In a fresh process: the `hnn check` path (imports, checkpoint, open, query) without the conversion."""
    started = time.perf_counter()
    from hnn.hasher.runtime import load
    from hnn.index.registry import _loaded_for, check_hashed
    from hnn.index.store import Index

    load(None, 64)
    imported = time.perf_counter()
    with Index(path) as index:
        hashed, derives = make_query(index, kind, number, seed, facts)
    start = time.perf_counter()
    with Index(path) as index:
        loaded = _loaded_for(index, None)
        result = check_hashed(index, loaded, hashed, hashed.model, k=5)
    done = time.perf_counter()
    return {"open_and_query_ms": (done - start) * 1000, "imports_ms": (imported - started) * 1000,
            "correct": answered(result, derives), "rss_mb": peak_rss_mb()}


def warm_parts(index, hashed) -> dict:
    """A warm check's parts, run alone (ms): the structural search (shared marks, the ranked query, the
    nearest code), the probe scan, the exact provenance tests with the fingerprints they read, and
    the family answer (Index.family: code distances and op-pattern signatures)."""
    from hnn.index.derivation import PROBE_CANDIDATES, derivation_evidence
    from hnn.provenance.probe import best_probes, probe

    began = time.perf_counter()
    shared = index.shared_marks(hashed.weight_marks)
    found = index.query(hashed.code, 5, structure=hashed.structure, shared=shared)
    index.query(hashed.code, k=1)
    structural = time.perf_counter()
    best_probes(probe(hashed.fingerprint), index.probes()[1], PROBE_CANDIDATES)
    probed = time.perf_counter()
    derivation_evidence(index, hashed.fingerprint, [entry.id for entry, _ in found])
    tested = time.perf_counter()
    index.family(hashed.code, hashed.structure.pattern)
    family = time.perf_counter()
    return {"structural": (structural - began) * 1000, "probes": (probed - structural) * 1000,
            "tests": (tested - probed - (probed - structural)) * 1000, "family": (family - tested) * 1000}


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited from a parent)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def measure_queries(path: Path, queries: int, seed: int, facts: dict, fresh: int) -> dict:
    from hnn.hasher.runtime import load
    from hnn.index.registry import check_hashed
    from hnn.index.store import Index

    loaded = load(None, 64)
    found = {}
    for kind in KINDS:
        with Index(path) as index:
            prepared = [make_query(index, kind, number, seed, facts) for number in range(queries + 1)]
            apart = [make_query(index, kind, 500 + number, seed, facts)[0] for number in range(queries)]
        start = time.perf_counter()
        with Index(path) as index:
            opened = time.perf_counter()
            results = [check_hashed(index, loaded, prepared[0][0], kind, k=5)]
            cold = time.perf_counter()
            index.warm_up()  # what `hnn serve` reads before its first request: every column of every entry
            warmed = time.perf_counter()
            warm = []
            for hashed, _ in prepared[1:]:
                began = time.perf_counter()
                results.append(check_hashed(index, loaded, hashed, kind, k=5))
                warm.append((time.perf_counter() - began) * 1000)
            parts = [warm_parts(index, hashed) for hashed in apart]  # other queries: nothing read for them yet
        correct = [answered(result, derives) for result, (_, derives) in zip(results, prepared)]
        runs = [json.loads(subprocess.run([sys.executable, __file__, "--path", str(path), "--seed", str(seed),
                                           "--fresh-query", f"{kind}:{number}", "--facts", json.dumps(facts)],
                                          check=True, capture_output=True, text=True).stdout)
                for number in range(fresh)]
        found[kind] = {"cold_ms": round((cold - start) * 1000, 1), "open_ms": round((opened - start) * 1000, 1),
                       "serve_warm_up_ms": round((warmed - cold) * 1000, 1),
                       "warm_median_ms": round(statistics.median(warm), 2), "warm_p90_ms": round(percentile(warm, 0.9), 2),
                       **{f"warm_{part}_median_ms": round(statistics.median(times[part] for times in parts), 2)
                          for part in parts[0]},
                       "fresh_process_ms": round(statistics.median(run["open_and_query_ms"] for run in runs), 1),
                       "fresh_imports_ms": round(statistics.median(run["imports_ms"] for run in runs), 1),
                       "fresh_peak_rss_mb": round(max(run["rss_mb"] for run in runs)),
                       "correct": f"{sum(correct) + sum(run['correct'] for run in runs)}/{len(correct) + len(runs)}",
                       "verdicts": {v: sum(r["verdict"] == v for r in results) for v in {r["verdict"] for r in results}}}
    return found


def measure_adds(path: Path, adds: int, seed: int, facts: dict, interleaved: int) -> dict:
    """``adds`` new fine-tunes through Index.add on the open big index (its caches warm), queries
    right after adds, the long-lived index against a fresh one, then the removal of what was added."""
    from hnn.hasher.runtime import load
    from hnn.index.registry import check_hashed
    from hnn.index.store import Index

    loaded = load(None, 64)
    rng = np.random.default_rng([seed, 6])
    with Index(path) as index:
        sources = [make_query(index, "independent", 10_000 + number, seed, facts)[0]
                   for number in range(adds + interleaved)]
        probe_queries = [make_query(index, kind, 20_000 + number, seed, facts)
                         for number, kind in enumerate(KINDS * 2)]
        index.warm_up()  # as `hnn serve` starts: everything a query reads, in memory before the adds
        added = []
        start = time.perf_counter()
        for number, hashed in enumerate(sources[:adds]):
            added.append(index.add(f"added-{number}", "x", "onnx", hashed.code, loaded.digest, hashed.ir_digest,
                                   structure=hashed.structure, weight_marks=hashed.weight_marks,
                                   fingerprint=hashed.fingerprint).id)
        add_s = time.perf_counter() - start
        began = time.perf_counter()
        check_hashed(index, loaded, probe_queries[1][0], "after-adds", k=5)
        first_after = (time.perf_counter() - began) * 1000
        after_add = []
        for number, hashed in enumerate(sources[adds:]):
            added.append(index.add(f"added-{adds + number}", "x", "onnx", hashed.code, loaded.digest, hashed.ir_digest,
                                   structure=hashed.structure, weight_marks=hashed.weight_marks,
                                   fingerprint=hashed.fingerprint).id)
            query = probe_queries[number % len(probe_queries)][0]
            began = time.perf_counter()
            check_hashed(index, loaded, query, "interleaved", k=5)
            after_add.append((time.perf_counter() - began) * 1000)
        # Of a query that derives from an entry just added: found by the long-lived index.
        copy = sources[0]
        from hnn.hasher.runtime import HashResult

        copied = HashResult(model="copy-of-added", framework="onnx", bits=64, hash=copy.hash, nodes=0, code=copy.code,
                            structure=copy.structure, weight_marks=[], ir_digest=copy.ir_digest,
                            fingerprint=derived_fingerprint(copy.fingerprint, rng))
        long_lived = [check_hashed(index, loaded, hashed, hashed.model, k=5) for hashed, _ in probe_queries]
        found_added = check_hashed(index, loaded, copied, copied.model, k=5)
        with Index(path) as fresh:
            fresh_answers = [check_hashed(fresh, loaded, hashed, hashed.model, k=5) for hashed, _ in probe_queries]
        start = time.perf_counter()
        for entry_id in added:
            index.remove(entry_id)
        remove_s = time.perf_counter() - start
        after_removal = [check_hashed(index, loaded, hashed, hashed.model, k=5) for hashed, _ in probe_queries]
    with Index(path) as fresh:
        fresh_after_removal = [check_hashed(fresh, loaded, hashed, hashed.model, k=5) for hashed, _ in probe_queries]
    return {"adds": adds, "add_s": round(add_s, 2), "adds_per_s": round(adds / add_s, 1),
            "first_query_after_adds_ms": round(first_after, 1),
            "query_after_an_add_median_ms": round(statistics.median(after_add), 2) if after_add else None,
            "removes_per_s": round(len(added) / remove_s, 1),
            "long_lived_equals_fresh": long_lived == fresh_answers and after_removal == fresh_after_removal,
            "copy_of_an_added_entry_found": (found_added["derived_from"] or {}).get("id") == added[0]}


def file_facts(path: Path, entries: int, by_table: bool) -> dict:
    """The file's size, and with ``by_table`` each table's and SQL index's (dbstat: reads every page)."""
    size = path.stat().st_size
    facts = {"file_bytes": size, "bytes_per_entry": round(size / entries)}
    if not by_table:
        return facts
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        tables = db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall()
        facts["bytes_by_table"] = {name: int(total) for name, total in tables}
    except sqlite3.OperationalError:
        pass  # an SQLite without the dbstat table
    db.close()
    return facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--topologies", type=int, default=1000)
    parser.add_argument("--skew", type=float, default=1.0, help="Zipf exponent of the entries per architecture")
    parser.add_argument("--path", type=Path, help="keep the built index here, and reuse it when it exists")
    parser.add_argument("--queries", type=int, default=30, help="warm queries of each kind")
    parser.add_argument("--fresh", type=int, default=3, help="fresh processes per kind")
    parser.add_argument("--adds", type=int, default=1000)
    parser.add_argument("--interleaved", type=int, default=50, help="adds each followed by a query")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--table-sizes", action="store_true", help="each table's size, also of a reused file")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--fresh-query", help=argparse.SUPPRESS)
    parser.add_argument("--facts", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.fresh_query:
        kind, number = args.fresh_query.split(":")
        print(json.dumps(one_fresh_query(args.path, kind, int(number), args.seed, json.loads(args.facts))))
        return

    from hnn.index.store import Index

    folder = None
    path = args.path
    if path is None:
        folder = tempfile.mkdtemp(prefix="hnn-scale-")
        path = Path(folder) / "models.db"
    report = {"entries": args.entries, "topologies": args.topologies, "skew": args.skew}
    try:
        if not path.exists():
            report["build"] = build(path, args.entries, args.topologies, args.skew, args.seed, args.workers)
            report["build"]["entries_per_s"] = round(args.entries / report["build"]["build_s"])
        with Index(path) as index:
            facts = population(index)
        report["entries"] = facts["entries"]
        report["largest_topology_entries"] = facts["largest"]
        report["file"] = file_facts(path, facts["entries"], args.table_sizes or "build" in report)
        report["queries"] = measure_queries(path, args.queries, args.seed, facts, args.fresh)
        if args.adds:
            report["adds"] = measure_adds(path, args.adds, args.seed, facts, args.interleaved)
        report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(f"{report['entries']} entries of {args.topologies} architectures (skew {args.skew}; the largest "
          f"{report['largest_topology_entries']}): {report['file']['file_bytes'] / 1e9:.2f} GB, "
          f"{report['file']['bytes_per_entry']} bytes/entry")
    if "build" in report:
        print("build: " + ", ".join(f"{key} {value}" for key, value in report["build"].items()))
    if "bytes_by_table" in report["file"]:
        print("by table (MB): " + ", ".join(f"{name} {size / 1e6:.0f}"
                                            for name, size in report["file"]["bytes_by_table"].items()))
    print(f"{'query':>16} {'cold ms':>8} {'warm-up':>8} {'warm median':>12} {'warm p90':>9} {'(structural':>12} "
          f"{'probes':>7} {'tests)':>7} {'fresh process':>14} {'correct':>8}  verdicts")
    for kind, row in report["queries"].items():
        print(f"{kind:>16} {row['cold_ms']:>8.0f} {row['serve_warm_up_ms']:>8.0f} {row['warm_median_ms']:>12.1f} "
              f"{row['warm_p90_ms']:>9.1f} "
              f"{row['warm_structural_median_ms']:>12.1f} {row['warm_probes_median_ms']:>7.1f} "
              f"{row['warm_tests_median_ms']:>7.1f} {row['fresh_process_ms']:>14.0f} {row['correct']:>8}  {row['verdicts']}")
    print("(warm-up: codes() and probes() after the cold query, what `hnn serve` does at start; the parts of a warm "
          "check, of other queries of the kind: the shared marks and ranked query; the probe scan; the exact tests)")
    if "adds" in report:
        print("adds: " + ", ".join(f"{key} {value}" for key, value in report["adds"].items()))
    print(f"peak RSS {report['peak_rss_mb']} MB (this process, the build included); a fresh process's after its query: "
          f"{max(row['fresh_peak_rss_mb'] for row in report['queries'].values())} MB")


if __name__ == "__main__":
    main()
