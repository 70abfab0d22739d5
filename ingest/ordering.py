"""Canonical node order and ids, from structure alone.

Node names, tensor names and the order in which an exporter wrote the nodes
say nothing about the model, so ids must not depend on them. Each node gets
a structural signature: a hash of its own fields and, recursively, of its
ancestors (upward) and of its descendants (downward), in the spirit of
Weisfeiler-Lehman refinement. Nodes are then emitted in topological order,
choosing among ready nodes the one with the smallest signature. Two nodes
with equal signatures have the same ancestors and descendants up to
isomorphism, so either choice gives the same labelled graph in practice.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from typing import TYPE_CHECKING

from hnn.ingest.toposort import topological_order

if TYPE_CHECKING:  # for annotations only: hnn.ingest.workgraph imports this module
    from hnn.ingest.workgraph import WorkGraph, WorkNode


def _label(node: WorkNode) -> str:
    return json.dumps([node.op, node.attrs, node.output_shape, node.flops, node.params, node.members],
                      sort_keys=True)


def _digest(*parts: str) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()


def _signatures(graph: WorkGraph, order: list[int], towards: str) -> dict[int, str]:
    """Hash of each node with the multiset of its neighbours' hashes in one direction."""
    signatures: dict[int, str] = {}
    for key in order:
        node = graph.nodes[key]
        neighbours = node.preds if towards == "preds" else node.succs
        signatures[key] = _digest(_label(node), *sorted(signatures[n] for n in neighbours))
    return signatures


def canonical_ids(graph: WorkGraph) -> dict[int, str]:
    """``n0``, ``n1``, ... for each node key: topological, ties by structural signature."""
    topo = topological_order(graph.nodes, {key: node.succs for key, node in graph.nodes.items()})
    up = _signatures(graph, topo, "preds")
    down = _signatures(graph, topo[::-1], "succs")
    rank = {key: (up[key], down[key]) for key in graph.nodes}
    indegree = {key: len(node.preds) for key, node in graph.nodes.items()}
    heap = [(rank[key], key) for key, degree in indegree.items() if degree == 0]
    heapq.heapify(heap)
    ids: dict[int, str] = {}
    while heap:
        _, key = heapq.heappop(heap)
        ids[key] = f"n{len(ids)}"
        for succ in graph.nodes[key].succs:
            indegree[succ] -= 1
            if indegree[succ] == 0:
                heapq.heappush(heap, (rank[succ], succ))
    return ids
