"""Family retrieval among transformer models: the shipped code against the non-learned baselines.

    hnn zoo build --preset transformers --augmentations 0 -o data/transformers
    .venv/bin/python benchmarks/transformer_retrieval.py --zoo data/transformers [--bits 64] [--checkpoint C]

Each model of the zoo is a query against all the others (leave one out): family top-1 is the
share of the nearest others (by Hamming distance; ties credited as a random pick among them)
that are of the query's family. Methods, in one run on the same graphs: the checkpoint's
perceptual code (the rules it names applied to the raw IR, as ``hnn hash`` does), WL-SimHash of
the same graph at the same bit count, and the structure code (hnn.hasher.structure). The shipped
checkpoints are trained on CNNs only, so every transformer family here is unseen by them; once a
checkpoint is trained on some of these families, ``--held-out FAMILY,...`` scores only queries of
those families (their other sizes stay in the database).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def family_top1(codes: np.ndarray, families: list[str], queries: list[int]) -> float:
    """Mean over queries of the share of the nearest others (ties included) of the query's family."""
    distances = (codes[:, None, :] != codes[None, :, :]).sum(axis=2)
    scores = []
    for query in queries:
        row = distances[query].astype(float)
        row[query] = np.inf
        nearest = np.flatnonzero(row == row.min())
        scores.append(np.mean([families[other] == families[query] for other in nearest]))
    return float(np.mean(scores))


def main() -> None:
    from hnn.hasher.runtime import hash_graphs, load, to_hashable_graph
    from hnn.hasher.structure import structure_of, wl_simhash
    from hnn.zoo.build import load_dataset_graph, load_manifest

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", type=Path, required=True)
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument("--checkpoint")
    parser.add_argument("--held-out", default="", help="families to score (default: every family)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    manifest = load_manifest(args.zoo)
    models = manifest["models"]
    raw = [load_dataset_graph(args.zoo, model["files"]["raw"]) for model in models]
    families = [model["family"] for model in models]
    held = set(filter(None, args.held_out.split(",")))
    queries = [i for i, family in enumerate(families) if not held or family in held]
    checkpoint = load(args.checkpoint, args.bits)
    merged = [to_hashable_graph(graph, checkpoint) for graph in raw]
    methods = {
        "hnn code": hash_graphs(merged, checkpoint),
        f"WL-SimHash {args.bits}": np.array([wl_simhash(graph, args.bits) for graph in merged], dtype=bool),
        "structure code": np.array([structure_of(graph).code for graph in merged], dtype=bool),
    }
    report = {"models": len(models), "families": len(set(families)), "queries": len(queries),
              "family_top1": {name: round(family_top1(codes, families, queries), 3) for name, codes in methods.items()}}
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(f"{report['models']} models, {report['families']} families, {report['queries']} queries")
    for name, value in report["family_top1"].items():
        print(f"{name:>16}: family top-1 {value:.3f}")


if __name__ == "__main__":
    main()
