"""The paper's augmentation: delete a random share of a graph's nodes, with their edges.

Edges through a deleted node are dropped, not bridged, as in the paper: a
deleted node's predecessors lose that successor and its successors lose that
predecessor, so a chain may split into pieces. The number of edits applied
(nodes deleted plus edges deleted) is returned: it bounds the graph edit
distance between a graph and its augmentation from above.

Deterministic: the same graph, seed and index give the same result on every
machine (Python's ``random.Random`` seeded with a string is stable).
"""

from __future__ import annotations

import math
import random
from dataclasses import replace

from hnn.ingest.ir import Graph

DELETE_SHARE = 0.10


def delete_nodes(graph: Graph, seed: str, share: float = DELETE_SHARE) -> tuple[Graph, int]:
    """A copy of ``graph`` without ``ceil(share * n)`` random nodes; (graph, edits applied).

    Node ids of the survivors are kept, so an augmented node can be traced back
    to its source node; the metadata records the augmentation.
    """
    if not 0 <= share < 1:
        raise ValueError(f"delete_nodes: share must be in [0, 1), got {share}")
    rng = random.Random(seed)
    count = min(len(graph.nodes) - 1, math.ceil(share * len(graph.nodes))) if graph.nodes else 0
    doomed = set(rng.sample([node.id for node in graph.nodes], count)) if count > 0 else set()
    nodes = [node for node in graph.nodes if node.id not in doomed]
    edges = [(src, dst) for src, dst in graph.edges if src not in doomed and dst not in doomed]
    edits = len(doomed) + (len(graph.edges) - len(edges))
    return Graph(nodes=nodes, edges=edges, meta=replace(graph.meta)), edits
