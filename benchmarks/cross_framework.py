"""Cross-framework retrieval: each Keras model as a query against a database of torchvision models.

    .venv/bin/python benchmarks/cross_framework.py --torchvision data/tv --keras data/keras [--bits 64]

Uses the shipped checkpoint (or --checkpoint) on the original (not augmented) raw graphs, merged
with the checkpoint's rules. Reports top-1 family accuracy over the Keras models whose family
torchvision also has, and each query's nearest torchvision model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def originals(root: Path):
    from hnn.ingest.zoo import load_dataset_graph, load_manifest

    manifest = load_manifest(root)
    return [(m["name"], m["family"], load_dataset_graph(root, m["files"]["raw"])) for m in manifest["models"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torchvision", type=Path, required=True)
    parser.add_argument("--keras", type=Path, required=True)
    parser.add_argument("--bits", type=int, default=None)
    parser.add_argument("--checkpoint", type=Path, default=None)
    args = parser.parse_args()

    from hnn.hasher.api import hash_graphs, load, to_hashable_graph
    from hnn.hasher.metrics import hamming_matrix

    checkpoint = load(args.checkpoint, args.bits)
    database = originals(args.torchvision)
    queries = [q for q in originals(args.keras) if q[1] in {family for _, family, _ in database}]
    db_codes = hash_graphs([to_hashable_graph(g, checkpoint) for _, _, g in database], checkpoint)
    q_codes = hash_graphs([to_hashable_graph(g, checkpoint) for _, _, g in queries], checkpoint)
    distances = hamming_matrix(q_codes, db_codes)
    hits = 0
    for row, (name, family, _) in enumerate(queries):
        nearest = int(np.argsort(distances[row], kind="stable")[0])
        hit = database[nearest][1] == family
        hits += hit
        print(f"{name:<28} {family:<12} -> {database[nearest][0]:<22} {database[nearest][1]:<12} "
              f"d={distances[row, nearest]:<3} {'ok' if hit else 'MISS'}")
    print(f"top-1 family accuracy, Keras queries vs torchvision database ({checkpoint.bits} bits): "
          f"{hits}/{len(queries)} = {hits / max(len(queries), 1):.2f}")


if __name__ == "__main__":
    main()
