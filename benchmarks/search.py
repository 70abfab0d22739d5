"""Top-10 and radius-2 Hamming search latency over random 64-bit codes: hnn's numpy search and
hnn's index search (faiss-backed, as the index uses it) against raw faiss IndexBinaryFlat on the
same data, in the same run, on one core.

    .venv/bin/python benchmarks/search.py [--sizes 10000,100000,1000000,10000000] [--queries 30]

Prints median latency per query, the ratio hnn / faiss, and memory per code.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, for both

import numpy as np


def median_ms(fn, queries):
    times = []
    for query in queries:
        start = time.perf_counter()
        fn(query)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000,10000000")
    parser.add_argument("--queries", type=int, default=30)
    args = parser.parse_args()

    import faiss

    from hnn.index.search import FaissCodes, PackedCodes

    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(0)
    print(f"{'codes':>10} {'numpy top10':>12} {'index top10':>12} {'faiss top10':>12} {'index/faiss':>11} "
          f"{'numpy r<=2':>11} {'index r<=2':>11} {'faiss r<=2':>11} {'index/faiss':>11} {'bytes/code':>10}  (ms)")
    for size in map(int, args.sizes.split(",")):
        words = rng.integers(0, 2**63, size=(size, 1), dtype=np.uint64) ^ rng.integers(0, 2, (size, 1), dtype=np.uint64) << np.uint64(63)
        packed = PackedCodes(words, np.arange(size))
        index = faiss.IndexBinaryFlat(64)
        index.add(words.astype(">u8").view(np.uint8).reshape(size, 8))
        ours = FaissCodes(np.zeros((0, 64), dtype=bool), np.arange(size))  # hnn's index search, same data
        ours.index.add(words.astype(">u8").view(np.uint8).reshape(size, 8))
        queries = [np.unpackbits(rng.integers(0, 256, 8, dtype=np.uint8)).astype(bool) for _ in range(args.queries)]
        faiss_queries = {id(q): np.packbits(q).reshape(1, 8) for q in queries}
        numpy_top = median_ms(lambda q: packed.top_k(q, 10), queries)
        index_top = median_ms(lambda q: ours.top_k(q, 10), queries)
        faiss_top = median_ms(lambda q: index.search(faiss_queries[id(q)], 10), queries)
        numpy_radius = median_ms(lambda q: packed.within(q, 2), queries)
        index_radius = median_ms(lambda q: ours.within(q, 2), queries)
        faiss_radius = median_ms(lambda q: index.range_search(faiss_queries[id(q)], 3), queries)  # faiss: d < radius
        # correctness on one query: the same distances
        q = queries[0]
        from_numpy = [d for _, d in packed.top_k(q, 10)]
        theirs = index.search(faiss_queries[id(q)], 10)[0][0].tolist()
        assert sorted(from_numpy) == sorted(theirs), (from_numpy, theirs)
        assert [d for _, d in ours.top_k(q, 10)] == sorted(theirs)
        print(f"{size:>10} {numpy_top:>12.3f} {index_top:>12.3f} {faiss_top:>12.3f} {index_top / faiss_top:>11.2f} "
              f"{numpy_radius:>11.3f} {index_radius:>11.3f} {faiss_radius:>11.3f} {index_radius / faiss_radius:>11.2f} "
              f"{ours.nbytes / size:>10.1f}")
        del words, packed, index, ours


if __name__ == "__main__":
    main()
