"""Cross-framework retrieval: each Keras model as a query against a database of torchvision models.

    .venv/bin/python benchmarks/cross_framework.py --torchvision data/tv --keras data/keras [--bits 64]

Uses the shipped checkpoint (or --checkpoint) on the original (not augmented) raw graphs, merged
with the checkpoint's rules. Reports top-1 family accuracy over the Keras models whose family
torchvision also has, by the code alone and as `hnn index query` ranks (the query's topology
first: docs/index.md), and each query's nearest torchvision model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def originals(root: Path):
    from hnn.zoo.build import load_dataset_graph, load_manifest

    manifest = load_manifest(root)
    return [(m["name"], m["family"], load_dataset_graph(root, m["files"]["raw"])) for m in manifest["models"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torchvision", type=Path, required=True)
    parser.add_argument("--keras", type=Path, required=True)
    parser.add_argument("--bits", type=int, default=None)
    parser.add_argument("--checkpoint", type=Path, default=None)
    args = parser.parse_args()

    from hnn.errors import HnnError
    from hnn.hasher.runtime import load

    try:
        checkpoint = load(args.checkpoint, args.bits)
        database, keras = originals(args.torchvision), originals(args.keras)
    except HnnError as exc:
        raise SystemExit(f"cross_framework: {exc}") from None
    queries = [q for q in keras if q[1] in {family for _, family, _ in database}]
    figures = score_family_retrieval(queries, database, checkpoint)
    print(f"top-1 family accuracy, Keras queries vs torchvision database ({checkpoint.bits} bits, "
          f"{len(queries)} queries): expected {figures['expected']:.2f}, "
          f"strict {figures['strict']:.2f}, index ranking {figures['index']:.2f}; "
          f"op pattern (non-learned) {figures['op pattern']:.2f}, family answer {figures['family answer']:.2f} "
          f"(op-only patterns, hnn 0.5.2: {figures['op pattern (ops)']:.2f}, {figures['family answer (ops)']:.2f})")


def score_family_retrieval(queries: list, database: list, checkpoint) -> dict:
    """Family top-1 of (name, family, raw IR) queries against such a database; prints each query's nearest.

    Returns the shares "expected", "strict" and "index" (the ranking of `hnn index query`), and "op
    pattern": the expected share by the nearest op pattern (hnn.hasher.structure.op_pattern), a
    non-learned family description, and "family answer": the expected share (ties as a random pick,
    where the index names the lowest id) by `hnn check`'s family answer (hnn.index.store.Index.family:
    code and op-pattern signature together).
    """
    from hnn.hasher.bits import hamming_matrix
    from hnn.hasher.runtime import hash_graphs, to_hashable_graph
    from hnn.hasher.structure import (
        PATTERN_KIND,
        estimated_pattern_similarity,
        family_distance_matrix,
        op_pattern,
        pattern_distance_matrix,
        structure_of,
    )
    from hnn.index.ranking import ranking_matrix

    db_graphs = [to_hashable_graph(g, checkpoint) for _, _, g in database]
    q_graphs = [to_hashable_graph(g, checkpoint) for _, _, g in queries]
    db_codes, q_codes = hash_graphs(db_graphs, checkpoint), hash_graphs(q_graphs, checkpoint)
    distances = hamming_matrix(q_codes, db_codes)
    q_structures, db_structures = [structure_of(g) for g in q_graphs], [structure_of(g) for g in db_graphs]
    ranked = ranking_matrix(distances, q_structures, db_structures)
    index_top1 = sum(all(database[i][1] == query[1] for i in np.flatnonzero(ranked[row] == ranked[row].min()))
                     for row, query in enumerate(queries))  # a tie counts only when all tied are right
    # Ties at the smallest distance are common with short codes; database order must not
    # decide them. "expected": the share of the tied nearest of the right family (a random
    # tie-break); "strict": every tied nearest is of the right family.
    expected, strict = 0.0, 0
    for row, (name, family, _) in enumerate(queries):
        nearest = np.flatnonzero(distances[row] == distances[row].min())
        right = sum(database[i][1] == family for i in nearest)
        expected += right / len(nearest)
        strict += right == len(nearest)
        shown = database[nearest[0]] if right == 0 else next(database[i] for i in nearest if database[i][1] == family)
        by_index = database[int(np.argmin(ranked[row]))]
        print(f"{name:<28} {family:<12} -> {shown[0]:<22} {shown[1]:<12} d={distances[row].min():<3} "
              f"{right}/{len(nearest)} nearest of its family; index ranks first {by_index[0]}")
    count = max(len(queries), 1)

    def expected_share(matrix: np.ndarray) -> float:
        total = 0.0
        for row, (_, family, _) in enumerate(queries):
            nearest = np.flatnonzero(matrix[row] == matrix[row].min())
            total += sum(database[i][1] == family for i in nearest) / len(nearest)
        return total / count

    figures = {"expected": expected / count, "strict": strict / count, "index": index_top1 / count}
    for kind, suffix in (("ops", " (ops)"), (PATTERN_KIND, "")):  # "(ops)": hnn 0.5.1 and 0.5.2's op patterns
        patterns = pattern_distance_matrix([op_pattern(g, kind=kind) for g in q_graphs],
                                           [op_pattern(g, kind=kind) for g in db_graphs])
        db_signatures = np.array([structure.signature(kind) for structure in db_structures])
        estimated = 1 - np.array([estimated_pattern_similarity(structure.signature(kind), db_signatures, kind)
                                  for structure in q_structures])
        figures["op pattern" + suffix] = expected_share(patterns)
        figures["family answer" + suffix] = expected_share(family_distance_matrix(distances, checkpoint.bits, estimated,
                                                                                  kind=kind))
    return figures


if __name__ == "__main__":
    main()
