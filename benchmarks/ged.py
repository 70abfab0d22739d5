"""Pairwise GED over a zoo dataset: wall time, pairs per second, pairs settled by the lower bound,
and the estimate's ratio to the known edit count of each (model, own augmentation) pair.

    .venv/bin/python benchmarks/ged.py [--data DIR] [--kind merged|raw] [--cap 100]

Without --data, builds the paper preset into a temporary folder first (about 75 s).
The matrix is computed afresh (the cache is not read).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--kind", default="merged", choices=("merged", "raw"))
    parser.add_argument("--cap", type=int, default=100)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()

    from hnn.zoo.build import build
    from hnn.zoo.dataset import dataset_graphs
    from hnn.zoo.ged import GedGraph, estimate, pairwise

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = Path(tmp) / "paper"
            start = time.perf_counter()
            build("paper", data)
            print(f"built the paper preset in {time.perf_counter() - start:.1f} s")
        records, graphs = dataset_graphs(data, args.kind)
        ged_graphs = [GedGraph.from_ir(g) for g in graphs]
        position = {r["name"]: i for i, r in enumerate(records)}
        known = {(position[r["source"]], i): r["edits"][args.kind] for i, r in enumerate(records) if "source" in r}

        start = time.perf_counter()
        _, stats = pairwise(ged_graphs, cap=args.cap, known=known, workers=args.workers)
        seconds = time.perf_counter() - start
        print(f"{len(graphs)} {args.kind} graphs: {stats['pairs']} pairs in {seconds:.1f} s "
              f"({stats['pairs'] / seconds:.0f} pairs/s), {stats['settled_by_bound']} settled by the lower bound "
              f"(cap R = {args.cap})")

        ratios = []
        start = time.perf_counter()
        for (i, j), edits in known.items():
            ratios.append(estimate(ged_graphs[i], ged_graphs[j]) / edits)
        ratios.sort()
        quantiles = statistics.quantiles(ratios, n=20)
        print(f"estimate / known edits over {len(ratios)} (model, own augmentation) pairs, "
              f"uncapped, in {time.perf_counter() - start:.1f} s: min {ratios[0]:.2f}, "
              f"median {statistics.median(ratios):.2f}, p95 {quantiles[-1]:.2f}, max {ratios[-1]:.2f}, "
              f"share <= 1.5: {sum(r <= 1.5 for r in ratios) / len(ratios):.2f}")


if __name__ == "__main__":
    main()
