"""What tests do with graphs and codes that the package itself has no use for."""

from __future__ import annotations

import numpy as np

from hnn.rules import combine, load_rule_sets


def merge(graph, rule_files=None):
    """Apply rule files (default: the paper's rules) to an IR graph: (merged graph, matches per rule)."""
    return combine(load_rule_sets(rule_files)).apply(graph)


def to_networkx(graph):
    """A ``networkx.DiGraph`` of an IR graph, the node fields as node attributes."""
    import networkx as nx

    digraph = nx.DiGraph(**graph.meta.to_dict())
    for node in graph.nodes:
        fields = node.to_dict()
        del fields["id"]
        digraph.add_node(node.id, **fields)
    digraph.add_edges_from(graph.edges)
    return digraph


def hex_to_code(text: str, bits: int) -> np.ndarray:
    """The inverse of hnn.hasher.bits.to_hex."""
    value = int(text, 16)
    assert not value >> bits, f"{text!r} has more than {bits} bits"
    return np.array([(value >> (bits - 1 - i)) & 1 for i in range(bits)], dtype=bool)
