"""Node features of HNN-Net: one-hot(op) ++ one-hot(enc(FLOPs)) ++ one-hot(enc(params)) [++ graph size].

enc(x) = min(floor(log10 x) + 1, 10) for x >= 1, and 0 for x = 0, so each
count falls in one of 11 buckets (the paper prints ``max``; its text says
values fall in 0..10, which only ``min`` gives). The op vocabulary is stored
with the checkpoint; ops not in it share the ``<other>`` slot.
"""

from __future__ import annotations

import math

import numpy as np

from hnn.ingest.flops import BUCKETS, enc
from hnn.ingest.ir import Graph

OTHER = "<other>"
def build_vocabulary(graphs: list[Graph], extra: tuple[str, ...] = ()) -> list[str]:
    """Sorted op names of the graphs (and ``extra``, e.g. rule names), then the ``<other>`` slot."""
    ops = {node.op for graph in graphs for node in graph.nodes} | set(extra)
    ops.discard(OTHER)
    return sorted(ops) + [OTHER]


def feature_width(vocabulary: list[str], size_features: bool = False) -> int:
    return len(vocabulary) + 2 * BUCKETS + (SIZE_COLUMNS if size_features else 0)


# Optional (HNNNetConfig.size_features): the whole graph's size, on every node. Without it,
# sibling architectures that differ only in depth (resnet18/34) or width can share codes.
SIZE_COLUMNS = 3


def graph_size_features(graph: Graph) -> np.ndarray:
    """[log2(nodes + 1), log10(FLOPs + 1), log10(params + 1)] / 10, float32."""
    return np.array([math.log2(1 + len(graph.nodes)), math.log10(1 + graph.total_flops),
                     math.log10(1 + graph.total_params)], dtype=np.float32) / 10


def node_features(graph: Graph, vocabulary: list[str], size_features: bool = False) -> np.ndarray:
    """Float32 matrix [nodes, len(vocabulary) + 22 (+ 3 with size_features)]."""
    index = {op: i for i, op in enumerate(vocabulary)}
    other = index[OTHER]
    n_ops = len(vocabulary)
    features = np.zeros((len(graph.nodes), feature_width(vocabulary, size_features)), dtype=np.float32)
    for row, node in enumerate(graph.nodes):
        features[row, index.get(node.op, other)] = 1
        features[row, n_ops + enc(node.flops)] = 1
        features[row, n_ops + BUCKETS + enc(node.params)] = 1
    if size_features:
        features[:, -SIZE_COLUMNS:] = graph_size_features(graph)
    return features


def undirected_edge_index(graph: Graph) -> np.ndarray:
    """int64 [2, 2E]: each data-flow edge in both directions (the paper treats graphs as undirected)."""
    position = {node.id: i for i, node in enumerate(graph.nodes)}
    pairs = [(position[a], position[b]) for a, b in graph.edges]
    both = pairs + [(b, a) for a, b in pairs]
    return np.array(both, dtype=np.int64).T.reshape(2, -1)
