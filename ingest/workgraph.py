"""The mutable layer graph that canonicalization and merging rewrite, and its conversions to and from the IR.

:func:`~hnn.ingest.extract.extract` builds a :class:`WorkGraph` from ONNX; the
passes of :mod:`hnn.ingest.canonicalize` and the merge rules (hnn.rules) rewrite
it; :func:`to_ir` freezes it into an IR :class:`~hnn.ingest.ir.Graph` with
canonical ids (:mod:`hnn.ingest.ordering`), and :func:`from_ir` thaws an IR graph
for merging.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hnn.ingest.ir import Graph, GraphMeta, Node
from hnn.ingest.ordering import canonical_ids


@dataclass
class WorkNode:
    """A node during canonicalization: mutable, with neighbour sets."""

    key: int
    op: str
    attrs: dict[str, Any]
    output_shape: list[int] | None
    input_shapes: list[list[int] | None]
    flops: int
    params: int
    constants: dict[int, list] = field(default_factory=dict)
    data_inputs: int = 1
    outside_inputs: int = 0  # of the data inputs, those that are graph inputs (computed by no node)
    preds: set[int] = field(default_factory=set)
    succs: set[int] = field(default_factory=set)
    is_output: bool = False
    members: list[str] = field(default_factory=list)


@dataclass
class WorkGraph:
    nodes: dict[int, WorkNode]

    def remove_bypassing(self, key: int) -> None:
        """Remove a node, joining each predecessor to each successor (for no-op nodes)."""
        node = self.nodes.pop(key)
        for pred in node.preds:
            self.nodes[pred].succs.discard(key)
            if node.is_output:
                self.nodes[pred].is_output = True
        for succ in node.succs:
            self.nodes[succ].preds.discard(key)
        for pred in node.preds:
            for succ in node.succs:
                self.nodes[pred].succs.add(succ)
                self.nodes[succ].preds.add(pred)


def from_ir(graph: Graph) -> tuple[WorkGraph, dict[str, int]]:
    """A mutable copy of an IR graph (for merging), with the key given to each node id."""
    key_of_id = {node.id: index for index, node in enumerate(graph.nodes)}
    nodes = {
        key_of_id[node.id]: WorkNode(
            key=key_of_id[node.id], op=node.op, attrs=dict(node.attrs), output_shape=node.output_shape,
            input_shapes=[], flops=node.flops, params=node.params, members=list(node.members),
        )
        for node in graph.nodes
    }
    for src, dst in graph.edges:
        nodes[key_of_id[src]].succs.add(key_of_id[dst])
        nodes[key_of_id[dst]].preds.add(key_of_id[src])
    return WorkGraph(nodes), key_of_id


def to_ir(graph: WorkGraph, meta: GraphMeta) -> Graph:
    """Freeze a canonicalized WorkGraph into an IR Graph with canonical ids."""
    ids = canonical_ids(graph)
    ordered = sorted(graph.nodes.values(), key=lambda n: int(ids[n.key][1:]))
    nodes = [
        Node(id=ids[n.key], op=n.op, attrs=n.attrs, output_shape=n.output_shape,
             flops=int(n.flops), params=int(n.params), members=list(n.members))
        for n in ordered
    ]
    edges = sorted(
        ((ids[n.key], ids[s]) for n in ordered for s in n.succs),
        key=lambda e: (int(e[0][1:]), int(e[1][1:])),
    )
    return Graph(nodes=nodes, edges=edges, meta=meta)
