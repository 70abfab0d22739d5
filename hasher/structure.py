"""What the index keeps of a graph beside its perceptual code (docs/index.md, "Ranking").

The perceptual code is trained to give a model and its light derivatives one
code, so close siblings can share it too (squeezenet1_0 and 1_1 with the shipped
64-bit checkpoint; vgg11, vgg13 and vgg16 with the 16-bit one), and it is made
of FLOPs and parameter buckets, so a copy whose every layer was narrowed
(structured pruning) drifts towards a narrower sibling. Three non-learned
descriptions of the same merged graph help:

- the *topology digest*: BLAKE2 of the whole bag of Weisfeiler-Lehman subtree
  features (hnn.hasher.baselines) with node labels that are the op alone. Two
  graphs share it only when three WL rounds cannot tell their ops and
  connections apart: the same architecture, whatever its widths. Renaming,
  re-exporting, new weights and pruning channels leave it as it is; a block
  more or less changes it.
- the *scale*: the mean of log2(params) over the nodes that have parameters,
  and of log2(FLOPs) likewise. Between two graphs of one topology the means
  run over corresponding nodes, so their difference measures width: pruning
  the input and output channels of every layer by 30% moves the parameter mean
  by about 2 log2(1/0.7) = 1.03, whatever the model.
- the *structure code*: 128 bits of WL-SimHash in two halves, topology (op
  labels) and sizes (op and FLOPs/parameter buckets, as the hasher's
  features). It measures how far two structures are where the digest only says
  equal or not (densenet121 and densenet201, which differ only in how often a
  block repeats, share the topology half, not the digest).

An index query ranks entries that share the query's weights first (the
weight marks of hnn.ingest.weights: a pruned copy, or one with a block more or
less, keeps its original's values), most shared first; then entries of the
query's topology, nearest in scale first; then the others by perceptual
distance, ties by structure distance (:func:`ranking_distance`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass

import numpy as np

from hnn.ingest.ir import Graph
from hnn.ingest.weights import MARKS, SHARED_SUSPECT

HALF_BITS = 64
STRUCTURE_BITS = 2 * HALF_BITS
# One more than the largest structure distance: what an entry without a structure code scores.
NO_STRUCTURE = (HALF_BITS + 1) ** 2
# Scale distances are compared in these units (1/1000 of a doubling), so a ranking is one integer.
SCALE_UNITS = 1000
CODE_SPAN = 4097  # more than any code distance (codes of up to 4096 bits)
# Larger than any code distance times (NO_STRUCTURE + 1) plus a structure distance, and than any
# scale distance in SCALE_UNITS times that: entries of another topology rank after all of the query's.
OTHER_TOPOLOGY = 1 << 50
# Entries sharing weights rank below every other (negative), by how many marks they share:
# each shared mark less moves an entry by more than any rank of the tiers below.
SHARED_WEIGHTS = -(1 << 62)
SHARED_STEP = 1 << 52


@dataclass(frozen=True)
class Structure:
    """Entries of older indexes lack the digest and scale (None): they are never of the query's topology."""

    code: np.ndarray  # bool [STRUCTURE_BITS]: topology half, then sizes half
    topology: str | None = None  # 16 hex digits
    scale: np.ndarray | None = None  # float64 [2]: mean log2(params), mean log2(flops) (scale_of)

    def same_topology(self, other: "Structure | None") -> bool:
        """One digest on both sides, and a scale to order by (an entry of an older index has neither)."""
        return (other is not None and self.topology is not None and self.topology == other.topology
                and self.scale is not None and other.scale is not None)

    def rank(self, code_distance: int, stored: "Structure | None", shared: int = 0) -> int:
        """Where an entry with ``stored`` at ``code_distance`` from the query, sharing ``shared``
        weight marks with it, ranks (smaller first)."""
        if stored is None:
            return int(ranking_distance(code_distance, NO_STRUCTURE, False, 0, shared))
        same = self.same_topology(stored)
        return int(ranking_distance(code_distance, structure_distance(self.code, stored.code), same,
                                    scale_distance(self.scale, stored.scale) if same else 0, shared))


def structure_of(graph: Graph) -> Structure:
    """The structure code, topology digest and scale of a (merged) graph.

    The op-only WL features are computed once and serve both the topology half and the digest.
    """
    from hnn.hasher.baselines import simhash, wl_features, wl_simhash

    topology = wl_features(graph, sizes=False)
    code = np.concatenate([simhash(topology, HALF_BITS), wl_simhash(graph, HALF_BITS, sizes=True)])
    return Structure(code, topology_digest(topology), scale_of(graph))


def topology_digest(features: Counter) -> str:
    """16 hex digits of BLAKE2 over the sorted (feature, count) pairs of an op-only WL feature bag."""
    digest = hashlib.blake2b(digest_size=8)
    for feature, count in sorted(features.items()):
        digest.update(f"{feature}\t{count}\n".encode())
    return digest.hexdigest()


def scale_of(graph: Graph) -> np.ndarray:
    """Mean log2 parameters over the nodes that have any, mean log2 FLOPs likewise (0 where none has)."""
    def mean_log2(values: list[int]) -> float:
        positive = [value for value in values if value > 0]
        return float(np.mean(np.log2(positive))) if positive else 0.0

    return np.array([mean_log2([node.params for node in graph.nodes]), mean_log2([node.flops for node in graph.nodes])])


def compare_structures(first: Structure, second: Structure | None) -> dict:
    """What `hnn compare` and `hnn index query` report of two structures (JSON-ready)."""
    if second is None:
        return {"structure_distance": NO_STRUCTURE, "same_topology": False, "scale_distance": None}
    scale = None if second.scale is None else int(scale_distance(first.scale, second.scale)) / SCALE_UNITS
    return {"structure_distance": structure_distance(first.code, second.code),
            "same_topology": first.same_topology(second), "scale_distance": scale}


def scale_distance(query: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """Sum of the absolute differences of the two means, in SCALE_UNITS (int64; broadcasts over rows)."""
    return np.rint(np.abs(np.asarray(stored) - np.asarray(query)).sum(axis=-1) * SCALE_UNITS).astype(np.int64)


def structure_distance(query: np.ndarray, stored: np.ndarray | None) -> int:
    """Topology distance, then size distance, as one integer (0 .. NO_STRUCTURE - 1).

    An entry without a structure code, or with one of another layout (an older hnn), scores
    NO_STRUCTURE and so sorts after every entry that has one.
    """
    if stored is None or len(stored) != STRUCTURE_BITS or len(query) != STRUCTURE_BITS:
        return NO_STRUCTURE
    topology = int((query[:HALF_BITS] != stored[:HALF_BITS]).sum())
    return topology * (HALF_BITS + 1) + int((query[HALF_BITS:] != stored[HALF_BITS:]).sum())


def structure_distance_matrix(queries: np.ndarray, database: np.ndarray) -> np.ndarray:
    """int64 [nq, nd]: :func:`structure_distance` of every pair of structure codes."""
    from hnn.hasher.metrics import hamming_matrix

    topology = hamming_matrix(queries[:, :HALF_BITS], database[:, :HALF_BITS]).astype(np.int64)
    return topology * (HALF_BITS + 1) + hamming_matrix(queries[:, HALF_BITS:], database[:, HALF_BITS:])


def ranking_matrix(code_distances: np.ndarray, queries: list[Structure], database: list[Structure],
                   shared: np.ndarray | None = None) -> np.ndarray:
    """int64 [nq, nd]: :meth:`Structure.rank` of every pair at once (evaluation and benchmarks);
    ``shared``: weight marks in common per pair, or None to rank by structure alone."""
    codes = structure_distance_matrix(np.array([q.code for q in queries]), np.array([d.code for d in database]))
    same = np.array([[query.same_topology(entry) for entry in database] for query in queries], dtype=bool)
    scales = scale_distance(np.array([q.scale for q in queries])[:, None, :],
                            np.array([d.scale for d in database])[None, :, :])
    return ranking_distance(code_distances, codes, same, np.where(same, scales, 0), shared)


def ranking_distance(code_distance: np.ndarray, structure: np.ndarray, same_topology: np.ndarray | None = None,
                     scale: np.ndarray | None = None, shared: np.ndarray | int | None = None) -> np.ndarray:
    """What an index query sorts by, as one int64 (arrays broadcast).

    Entries sharing at least SHARED_SUSPECT of the query's ``shared`` weight marks come first,
    most shared first. Then, with ``same_topology`` (and the ``scale`` distance of each entry),
    entries of the query's topology, by scale distance, then code distance, then structure
    distance; every other entry after them by code distance, then structure distance.
    """
    ranked = np.asarray(code_distance).astype(np.int64) * (NO_STRUCTURE + 1) + structure
    if same_topology is not None:
        within_topology = np.asarray(scale, dtype=np.int64) * CODE_SPAN * (NO_STRUCTURE + 1) + ranked
        ranked = np.where(same_topology, within_topology, OTHER_TOPOLOGY + ranked)
    if shared is None:
        return ranked
    shared = np.asarray(shared, dtype=np.int64)
    return np.where(shared >= SHARED_SUSPECT, SHARED_WEIGHTS + (MARKS - shared) * SHARED_STEP + ranked, ranked)
