"""The one ranking formula: where an index entry ranks for a query (docs/index.md, "Ranking").

Entries that share at least SHARED_SUSPECT of the query's weight marks come
first, most shared first. Then the entries of the query's topology (the same
digest, hnn.hasher.structure: one architecture at any widths), nearest in scale
first, then by code distance, then structure distance. Every other entry comes
after them by code distance, then structure distance. An entry that lacks a
structure code (an older index) scores NO_STRUCTURE and so sorts after every
entry that has one at the same code distance; one that lacks a digest or a
scale is never of the query's topology.

:func:`rank` is the formula for one query against many entries, given as
:class:`StructureColumns`; the index (its stored columns), the evaluation and
the benchmarks (:func:`ranking_matrix`) all call it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hnn.hasher.structure import (
    NO_STRUCTURE,
    STRUCTURE_BITS,
    Structure,
    scale_distance,
    structure_distance_matrix,
)
from hnn.index.verdicts import SHARED_SUSPECT
from hnn.ingest.weights import MARKS

CODE_SPAN = 4097  # more than any code distance (codes of up to 4096 bits)
# Larger than any code distance times (NO_STRUCTURE + 1) plus a structure distance, and than any
# scale distance in SCALE_UNITS times that: entries of another topology rank after all of the query's.
OTHER_TOPOLOGY = 1 << 50
# Entries sharing weights rank below every other (negative), by how many marks they share:
# each shared mark less moves an entry by more than any rank of the tiers below.
SHARED_WEIGHTS = -(1 << 62)
SHARED_STEP = 1 << 52


@dataclass(frozen=True)
class StructureColumns:
    """The structures of many entries as columns, with what each entry lacks masked out.

    ``codes`` rows where ``has_code`` is False, and ``scales`` rows where ``has_scale`` is
    False, are placeholders; ``topologies`` holds None where an entry has no digest.
    """

    codes: np.ndarray  # bool [n, STRUCTURE_BITS]
    has_code: np.ndarray  # bool [n]
    topologies: np.ndarray  # object [n]: 16 hex digits or None
    scales: np.ndarray  # float64 [n, 2]
    has_scale: np.ndarray  # bool [n]

    @classmethod
    def of(cls, structures: list[Structure | None]) -> "StructureColumns":
        has_code = np.array([s is not None and len(s.code) == STRUCTURE_BITS for s in structures], dtype=bool)
        has_scale = np.array([s is not None and s.scale is not None for s in structures], dtype=bool)
        codes = np.zeros((len(structures), STRUCTURE_BITS), dtype=bool)
        scales = np.zeros((len(structures), 2))
        for row, structure in enumerate(structures):
            if has_code[row]:
                codes[row] = structure.code
            if has_scale[row]:
                scales[row] = structure.scale
        topologies = np.array([None if s is None else s.topology for s in structures], dtype=object)
        return cls(codes, has_code, topologies, scales, has_scale)


def rank(query: Structure, code_distances: np.ndarray, stored: StructureColumns,
         shared: np.ndarray | None = None) -> np.ndarray:
    """int64 [n]: where each stored entry ranks for ``query`` (smaller first).

    ``code_distances``: the perceptual codes' Hamming distances, one per entry; ``shared``: the
    weight marks each entry shares with the query, or None to rank by structure alone.
    """
    count = len(stored.has_code)
    structure = np.full(count, NO_STRUCTURE, dtype=np.int64)
    if len(query.code) == STRUCTURE_BITS and stored.has_code.any():
        structure[stored.has_code] = structure_distance_matrix(query.code[None], stored.codes[stored.has_code])[0]
    # One digest on both sides, and a scale on both sides to order by.
    same = np.zeros(count, dtype=bool)
    scale = np.zeros(count, dtype=np.int64)
    if query.topology is not None and query.scale is not None:
        same = stored.has_scale & (stored.topologies == query.topology).astype(bool)
        if same.any():
            scale[same] = scale_distance(query.scale, stored.scales[same])
    return ranking_distance(code_distances, structure, same, scale, shared)


def rank_of(query: Structure, code_distance: int, stored: Structure | None, shared: int = 0) -> int:
    """:func:`rank` of one entry (``stored``, None for an entry without a structure)."""
    return int(rank(query, np.array([code_distance]), StructureColumns.of([stored]), np.array([shared]))[0])


def ranking_matrix(code_distances: np.ndarray, queries: list[Structure], database: list[Structure],
                   shared: np.ndarray | None = None) -> np.ndarray:
    """int64 [nq, nd]: :func:`rank` of every query against every database entry (evaluation,
    benchmarks); ``shared``: weight marks in common per pair, or None to rank by structure alone."""
    columns = StructureColumns.of(database)
    return np.stack([rank(query, code_distances[row], columns, None if shared is None else shared[row])
                     for row, query in enumerate(queries)]).reshape(len(queries), len(database))


def ranking_distance(code_distance: np.ndarray, structure: np.ndarray, same_topology: np.ndarray,
                     scale: np.ndarray, shared: np.ndarray | None) -> np.ndarray:
    """The tiers of the module docstring as one int64 per entry (arrays broadcast)."""
    ranked = np.asarray(code_distance).astype(np.int64) * (NO_STRUCTURE + 1) + structure
    within_topology = np.asarray(scale, dtype=np.int64) * CODE_SPAN * (NO_STRUCTURE + 1) + ranked
    ranked = np.where(same_topology, within_topology, OTHER_TOPOLOGY + ranked)
    if shared is None:
        return ranked
    shared = np.asarray(shared, dtype=np.int64)
    return np.where(shared >= SHARED_SUSPECT, SHARED_WEIGHTS + (MARKS - shared) * SHARED_STEP + ranked, ranked)
