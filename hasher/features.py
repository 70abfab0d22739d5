"""Node features of HNN-Net: one-hot(op) ++ one-hot(enc(FLOPs)) ++ one-hot(enc(params)) [++ graph size].

enc(x) = min(floor(log10 x) + 1, 10) for x >= 1, and 0 for x = 0, so each
count falls in one of 11 buckets (the paper prints ``max``; its text says
values fall in 0..10, which only ``min`` gives). The op vocabulary is stored
with the checkpoint; ops not in it share the ``<other>`` slot.

``sizes`` chooses how the two size buckets are read (a checkpoint's setting; the
paper's is ``absolute``). A copy exported at another input resolution multiplies
every spatial layer's FLOPs by one factor, and a copy with every width scaled
multiplies every layer's parameters by about one factor: the absolute buckets of
many nodes move. Not in the paper:

* ``resolution``: FLOPs as at the reference input, 224x224 pixels: each node's
  FLOPs times 224^2 / (H W) of the graph's image input (:func:`resolution_factor`).
  Every layer before global pooling scales exactly with the pixel count (a CNN's
  strides divide both 224 and 256), so at another resolution only the layers after
  pooling move, and those the other way. Graphs without an image input (tokens,
  audio) keep their FLOPs. Parameters are absolute, as in the paper.
* ``relative``: bucket 0 for 0, else 1..10 by how many factors of RELATIVE_STEP the
  node lies above or below the median over the graph's nodes that have any
  (:func:`relative_buckets`): still under resolution and uniform width changes, but
  architectures that differ mostly in size collide.
* ``ratios``: no size buckets; instead one-hot columns of the node's size relative to its input
  (hnn.hasher.relative_sizes: output over input width in half octaves, bias, kernel, grouping,
  vectors of the channel width, first and last layers). Resolution and uniform width changes leave
  them exactly alone; a layer's absolute size is gone.
* ``resolution+ratios``: the ``resolution`` buckets and the ``ratios`` columns side by side.

Optional, beside the node features (``wl_bins``, not in the paper): the graph's Weisfeiler-Lehman
feature bag (:func:`wl_vector`), whose labels are each node's op and relative size, so that the
input resolution and a uniform width change leave it alone. HNN-Net's code layer reads it through
a learned projection beside FC4 (hnn.hasher.model): a GCN with attention pooling averages a node's
neighbourhood and cannot count distinct substructures, so unseen graphs crowd onto few codes, where
WL-SimHash, a fixed random projection of the same kind of bag, tells them apart.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from hnn.hasher.relative_sizes import STEPS_KEPT, relative_size_labels
from hnn.ingest.flops import BUCKETS, enc
from hnn.ingest.ir import Graph

OTHER = "<other>"
SIZES = ("absolute", "resolution", "relative", "ratios", "resolution+ratios")
# The reference input of ``sizes="resolution"``: what torchvision's and most timm models take.
REFERENCE_PIXELS = 224 * 224
# log2 units per relative bucket: a factor of 4, which a 3x3 layer's parameters and FLOPs span
# between two stages of a CNN (double the channels), so a stage is one bucket.
RELATIVE_STEP = 2.0


def build_vocabulary(graphs: list[Graph], extra: tuple[str, ...] = ()) -> list[str]:
    """Sorted op names of the graphs (and ``extra``, e.g. rule names), then the ``<other>`` slot."""
    ops = {node.op for graph in graphs for node in graph.nodes} | set(extra)
    ops.discard(OTHER)
    return sorted(ops) + [OTHER]


# The ``ratios`` columns: the parts of a relative-size label (hnn.hasher.relative_sizes) that have one.
# A part not listed (an unknown ratio "r?", an operator's name) sets none.
RATIO_PARTS = (*(f"r{step}" for step in range(-STEPS_KEPT, STEPS_KEPT + 1)), "r+", "r-", "b",
               "k1", "k3", "k5", "k7", "k+", "dw", "g", "v1", "v2", "v3", "v4", "v+", "head", "data")
RATIO_COLUMN = {part: column for column, part in enumerate(RATIO_PARTS)}


def has_buckets(sizes: str) -> bool:
    return sizes != "ratios"


def has_ratios(sizes: str) -> bool:
    return sizes.endswith("ratios")


def feature_width(vocabulary: list[str], size_features: bool = False, sizes: str = "absolute") -> int:
    return (len(vocabulary) + (2 * BUCKETS if has_buckets(sizes) else 0)
            + (len(RATIO_PARTS) if has_ratios(sizes) else 0) + (SIZE_COLUMNS if size_features else 0))


# Optional (HNNNetConfig.size_features): the whole graph's size, on every node. Without it,
# sibling architectures that differ only in depth (resnet18/34) or width can share codes.
SIZE_COLUMNS = 3


def graph_size_features(graph: Graph, flops_factor: float = 1.0) -> np.ndarray:
    """[log2(nodes + 1), log10(FLOPs * flops_factor + 1), log10(params + 1)] / 10, float32."""
    return np.array([math.log2(1 + len(graph.nodes)), math.log10(1 + graph.total_flops * flops_factor),
                     math.log10(1 + graph.total_params)], dtype=np.float32) / 10


def resolution_factor(graph: Graph) -> float:
    """REFERENCE_PIXELS over the pixels of the graph's largest image input; 1.0 without one.

    An image input is a rank-4 trigger shape, channels first (NCHW) or last (NHWC): the channel
    axis is the smaller of axes 1 and 3, as no image is narrower than its channel count."""
    pixels = 0
    for shape in graph.meta.input_shapes.values():
        if len(shape) == 4 and all(dim > 0 for dim in shape):
            height, width = (shape[2], shape[3]) if shape[1] <= shape[3] else (shape[1], shape[2])
            pixels = max(pixels, height * width)
    return REFERENCE_PIXELS / pixels if pixels else 1.0


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
                  sizes: str = "absolute") -> np.ndarray:
    """Float32 matrix [nodes, len(vocabulary) + 22 (+ 3 with size_features)]."""
    index = {op: i for i, op in enumerate(vocabulary)}
    other = index[OTHER]
    n_ops = len(vocabulary)
    if sizes not in SIZES:
        raise ValueError(f"sizes {sizes!r}: one of {', '.join(SIZES)}")
    features = np.zeros((len(graph.nodes), feature_width(vocabulary, size_features, sizes)), dtype=np.float32)
    factor = resolution_factor(graph) if sizes.startswith("resolution") else 1.0
    if sizes == "relative":
        flops = relative_buckets([node.flops for node in graph.nodes])
        params = relative_buckets([node.params for node in graph.nodes])
    else:
        flops = [enc(round(node.flops * factor)) for node in graph.nodes]
        params = [enc(node.params) for node in graph.nodes]
    for row, node in enumerate(graph.nodes):
        features[row, index.get(node.op, other)] = 1
    if has_buckets(sizes):
        rows = np.arange(len(graph.nodes))
        features[rows, n_ops + np.asarray(flops, dtype=np.int64)] = 1
        features[rows, n_ops + BUCKETS + np.asarray(params, dtype=np.int64)] = 1
    if has_ratios(sizes):
        first = n_ops + (2 * BUCKETS if has_buckets(sizes) else 0)
        labels = relative_size_labels(graph)
        for row, node in enumerate(graph.nodes):
            for column in ratio_columns(labels[node.id]):
                features[row, first + column] = 1
    if size_features:
        features[:, -SIZE_COLUMNS:] = graph_size_features(graph, factor)
    return features


def ratio_columns(label: str) -> list[int]:
    """The RATIO_PARTS columns of a relative-size label such as ``Conv|r2|k3x3|dw`` (its op part sets none;
    a kernel counts by its largest side)."""
    columns = []
    for part in label.split("|")[1:]:
        if part.startswith("k") and part[1:2].isdigit():
            side = max(int(side) for side in part[1:].split("x") if side.isdigit())
            part = f"k{side}" if f"k{side}" in RATIO_COLUMN else "k+"
        if part in RATIO_COLUMN:
            columns.append(RATIO_COLUMN[part])
    return columns


# WL rounds of the wl_bins vector: the structure code's (hnn.hasher.structure.ITERATIONS).
WL_VECTOR_ITERATIONS = 3


def wl_vector(graph: Graph, bins: int) -> np.ndarray:
    """Float32 [bins], unit length: the WL feature bag of op and relative-size labels
    (hnn.hasher.structure.relative_wl_features), feature-hashed.

    Each feature adds its count, with a sign of its own, to one of ``bins`` slots (both from its
    BLAKE2 digest, so the vector is the same in every process); a slot holds sign x log(1 + |sum|),
    so that a block repeated twice as often weighs less than twice. The graph's own size is kept
    out by the unit length (the node features and FC layers carry it)."""
    from hnn.hasher.structure import relative_wl_features

    vector = np.zeros(bins, dtype=np.float64)
    for feature, count in relative_wl_features(graph, WL_VECTOR_ITERATIONS).items():
        value = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
        vector[value % bins] += count if value >> 63 else -count
    vector = np.sign(vector) * np.log1p(np.abs(vector))
    norm = np.linalg.norm(vector)
    return (vector / norm if norm else vector).astype(np.float32)


def undirected_edge_index(graph: Graph) -> np.ndarray:
    """int64 [2, 2E]: each data-flow edge in both directions (the paper treats graphs as undirected)."""
    position = {node.id: i for i, node in enumerate(graph.nodes)}
    pairs = [(position[a], position[b]) for a, b in graph.edges]
    both = pairs + [(b, a) for a, b in pairs]
    return np.array(both, dtype=np.int64).T.reshape(2, -1)
