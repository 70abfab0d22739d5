"""Node features of HNN-Net: one-hot(op) ++ one-hot(enc(FLOPs)) ++ one-hot(enc(params)) [++ graph size].

enc(x) = min(floor(log10 x) + 1, 10) for x >= 1, and 0 for x = 0, so each
count falls in one of 11 buckets (the paper prints ``max``; its text says
values fall in 0..10, which only ``min`` gives). The op vocabulary is stored
with the checkpoint; ops not in it share the ``<other>`` slot.

With ``relative_sizes`` (not in the paper) the two size buckets measure a node
against its own graph instead: bucket 0 for 0, else 1..10 by how many factors of
RELATIVE_STEP the node lies above or below the median over the graph's nodes
that have any (:func:`relative_buckets`). A copy exported at another input
resolution multiplies every spatial layer's FLOPs by one factor, and a copy with
every width scaled multiplies every layer's parameters by about one factor: the
absolute buckets of many nodes move, the relative ones only where a node does not
scale with the rest (the classifier after global pooling, the stem).
"""

from __future__ import annotations

import math

import numpy as np

from hnn.ingest.flops import BUCKETS, enc
from hnn.ingest.ir import Graph

OTHER = "<other>"
# log2 units per relative bucket: a factor of 4, which a 3x3 layer's parameters and FLOPs span
# between two stages of a CNN (double the channels), so a stage is one bucket.
RELATIVE_STEP = 2.0


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


def relative_buckets(values: list[int]) -> np.ndarray:
    """int [n]: 0 for 0; else 1..BUCKETS-1, the node's log2 distance from the median in RELATIVE_STEPs."""
    counts = np.asarray(values, dtype=np.float64)
    buckets = np.zeros(len(counts), dtype=np.int64)
    positive = counts > 0
    if positive.any():
        logs = np.log2(counts[positive])
        middle = (BUCKETS - 1) // 2 + 1  # the median node's bucket: 6 of 1..10
        steps = np.floor((logs - np.median(logs)) / RELATIVE_STEP + 0.5).astype(np.int64)
        buckets[positive] = np.clip(steps + middle, 1, BUCKETS - 1)
    return buckets


def node_features(graph: Graph, vocabulary: list[str], size_features: bool = False,
                  relative_sizes: bool = False) -> np.ndarray:
    """Float32 matrix [nodes, len(vocabulary) + 22 (+ 3 with size_features)]."""
    index = {op: i for i, op in enumerate(vocabulary)}
    other = index[OTHER]
    n_ops = len(vocabulary)
    features = np.zeros((len(graph.nodes), feature_width(vocabulary, size_features)), dtype=np.float32)
    if relative_sizes:
        flops = relative_buckets([node.flops for node in graph.nodes])
        params = relative_buckets([node.params for node in graph.nodes])
    else:
        flops = [enc(node.flops) for node in graph.nodes]
        params = [enc(node.params) for node in graph.nodes]
    for row, node in enumerate(graph.nodes):
        features[row, index.get(node.op, other)] = 1
        features[row, n_ops + flops[row]] = 1
        features[row, n_ops + BUCKETS + params[row]] = 1
    if size_features:
        features[:, -SIZE_COLUMNS:] = graph_size_features(graph)
    return features


def undirected_edge_index(graph: Graph) -> np.ndarray:
    """int64 [2, 2E]: each data-flow edge in both directions (the paper treats graphs as undirected)."""
    position = {node.id: i for i, node in enumerate(graph.nodes)}
    pairs = [(position[a], position[b]) for a, b in graph.edges]
    both = pairs + [(b, a) for a, b in pairs]
    return np.array(both, dtype=np.int64).T.reshape(2, -1)
