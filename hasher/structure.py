"""The structure code: the tie-break of index searches (docs/index.md, "Ties").

The perceptual code is trained to give a model and its light derivatives one
code, so close siblings can share it too (squeezenet1_0 and 1_1 with the shipped
64-bit checkpoint; vgg11, vgg13 and vgg16 with the 16-bit one). The structure code is a second,
non-learned code of the same merged graph, in two halves of WL-SimHash
(hnn.hasher.baselines):

- topology: node labels are the op alone. Renaming, re-exporting, new weights,
  and pruning channels leave it unchanged; a block more or less changes it.
- sizes: node labels are op and FLOPs/parameter buckets, as the hasher's
  features. It tells width siblings apart (mnasnet0_75 from mnasnet1_0).

Entries at the same perceptual distance are ordered by topology distance, then
by size distance: topology first, because it is what a pirate's cheap edits
(pruning, fine-tuning) leave alone.
"""

from __future__ import annotations

import numpy as np

from hnn.ingest.ir import Graph

HALF_BITS = 64
STRUCTURE_BITS = 2 * HALF_BITS
# One more than the largest structure distance: what an entry without a structure code scores.
NO_STRUCTURE = (HALF_BITS + 1) ** 2


def structure_code(graph: Graph) -> np.ndarray:
    """Bool [STRUCTURE_BITS]: topology half, then sizes half."""
    from hnn.hasher.baselines import wl_simhash

    return np.concatenate([wl_simhash(graph, HALF_BITS, sizes=False), wl_simhash(graph, HALF_BITS, sizes=True)])


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
    """int64 [nq, nd]: :func:`structure_distance` of every pair (evaluation and benchmarks)."""
    from hnn.hasher.metrics import hamming_matrix

    topology = hamming_matrix(queries[:, :HALF_BITS], database[:, :HALF_BITS]).astype(np.int64)
    return topology * (HALF_BITS + 1) + hamming_matrix(queries[:, HALF_BITS:], database[:, HALF_BITS:])


def ranking_distance(code_distance: np.ndarray, structure: np.ndarray) -> np.ndarray:
    """Perceptual distance, then structure distance, as one integer: what an index query sorts by."""
    return code_distance.astype(np.int64) * (NO_STRUCTURE + 1) + structure
