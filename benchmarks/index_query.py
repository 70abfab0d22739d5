"""Latency of an index query (hnn.index.store.Index.query, as `hnn index query` and `hnn check`
run it after hashing) on a real index file, when many entries share one architecture.

    .venv/bin/python benchmarks/index_query.py [--entries 10000] [--same 10,1000,10000] [--queries 20]

A platform holds many fine-tuned copies of popular architectures: one IR, one code, one topology,
each with its own weights (its own weight marks). The index is ``--entries`` random entries
plus, for each size in ``--same``, that many entries of one architecture; a query is one more
copy of that architecture (its code, structure and topology) sharing the marks of one of them.
Prints the median query latency (k = 10) per size, and how long adding the entries took.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10000)
    parser.add_argument("--same", default="10,1000,10000")
    parser.add_argument("--queries", type=int, default=20)
    args = parser.parse_args()

    from hnn.hasher.structure import STRUCTURE_BITS, Structure
    from hnn.index.store import Index

    rng = np.random.default_rng(0)

    def marks() -> list[int]:
        return sorted(int(m) for m in rng.integers(0, 1 << 62, 128))

    print(f"{'entries':>8} {'same architecture':>18} {'median query ms':>16} {'add s':>7}")
    for same in (int(size) for size in args.same.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "models.db"
            architecture = Structure(rng.random(STRUCTURE_BITS) < 0.5, "popular", np.array([10.0, 20.0]))
            popular_code = rng.random(64) < 0.5
            start = time.perf_counter()
            with Index(path, create=True) as index:
                owned = []
                for number in range(args.entries):
                    structure = Structure(rng.random(STRUCTURE_BITS) < 0.5, f"t{number}", rng.random(2) * 20)
                    index.add(f"m{number}", "x", "onnx", rng.random(64) < 0.5, "ck", f"d{number}",
                              structure=structure, weight_marks=marks())
                for number in range(same):
                    owned.append(marks())
                    index.add(f"copy{number}", "x", "onnx", popular_code, "ck", "d-popular",
                              structure=architecture, weight_marks=owned[-1])
            added = time.perf_counter() - start
            latencies = []
            with Index(path) as index:
                for query in range(args.queries + 1):
                    source = owned[query % same]
                    start = time.perf_counter()
                    hits = index.query(popular_code, k=10, structure=architecture, shared=index.shared_marks(source))
                    if query:  # the first builds the in-memory codes
                        latencies.append((time.perf_counter() - start) * 1000)
                    assert hits[0][0].name == f"copy{query % same}"
            print(f"{args.entries + same:>8} {same:>18} {statistics.median(latencies):>16.1f} {added:>7.1f}")


if __name__ == "__main__":
    main()
