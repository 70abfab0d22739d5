"""A non-learned baseline: Weisfeiler-Lehman subtree features of the IR, turned into bits by SimHash.

Each node starts with its label (op and the FLOPs/params buckets, as the hasher's
features); ``ITERATIONS`` rounds of WL refinement (networkx) give every node a
hash per round. The graph's feature bag is the multiset of those hashes. SimHash:
each feature maps to a pseudo-random +-1 vector of Q entries (from its BLAKE2
digest), the vectors are summed, and bit i is 1 where the sum is positive.
"""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np

from hnn.hasher.features import enc
from hnn.ingest.ir import Graph

ITERATIONS = 3


def wl_features(graph: Graph, iterations: int = ITERATIONS, sizes: bool = True) -> Counter:
    """The WL feature bag; node labels are op and size buckets, or the op alone (``sizes=False``)."""
    import networkx as nx

    undirected = nx.Graph()
    for node in graph.nodes:
        undirected.add_node(node.id, label=f"{node.op}/{enc(node.flops)}/{enc(node.params)}" if sizes else node.op)
    undirected.add_edges_from(graph.edges)
    hashes = nx.weisfeiler_lehman_subgraph_hashes(undirected, node_attr="label", iterations=iterations)
    features = Counter(undirected.nodes[n]["label"] for n in undirected.nodes)
    for per_node in hashes.values():
        features.update(per_node)
    return features


def _signs(feature: str, bits: int) -> np.ndarray:
    digest = hashlib.blake2b(feature.encode(), digest_size=(bits + 7) // 8).digest()
    return np.unpackbits(np.frombuffer(digest, dtype=np.uint8))[:bits].astype(np.float64) * 2 - 1


def wl_simhash(graph: Graph, bits: int, sizes: bool = True) -> np.ndarray:
    """Bool code [bits]."""
    return simhash(wl_features(graph, sizes=sizes), bits)


def simhash(features: Counter, bits: int) -> np.ndarray:
    """Bool code [bits] of a feature bag: the sign of the count-weighted sum of each feature's +-1 vector."""
    total = np.zeros(bits)
    for feature, count in features.items():
        total += count * _signs(feature, bits)
    return total > 0
