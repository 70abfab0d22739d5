"""What the index keeps of a graph beside its perceptual code (docs/index.md, "Ranking").

The perceptual code is trained to give a model and its light derivatives one
code, so close siblings can share it too (squeezenet1_0 and 1_1 with the shipped
64-bit checkpoint; vgg11, vgg13 and vgg16 with the 16-bit one), and it is made
of FLOPs and parameter buckets, so a copy whose every layer was narrowed
(structured pruning) drifts towards a narrower sibling. Four non-learned
descriptions of the same merged graph help:

- the *topology digest*: BLAKE2 of the whole bag of Weisfeiler-Lehman subtree
  features (:func:`wl_features`) with node labels that are the op alone. Two
  graphs share it only when three WL rounds cannot tell their ops and
  connections apart: the same architecture, whatever its widths. Renaming,
  re-exporting, new weights and pruning channels leave it as it is; a block
  more or less changes it.
- the *scale*: the mean of log2(params) over the nodes that have parameters,
  and of log2(FLOPs) likewise. Between two graphs of one topology the means
  run over corresponding nodes, so their difference measures width: pruning
  the input and output channels of every layer by 30% moves the parameter mean
  by about 2 log2(1/0.7) = 1.03, whatever the model.
- the *structure code*: 128 bits of WL-SimHash in two halves, topology (op
  labels) and sizes (op and FLOPs/parameter buckets, as the hasher's
  features). It measures how far two structures are where the digest only says
  equal or not (densenet121 and densenet201, which differ only in how often a
  block repeats, share the topology half, not the digest).
- the *op pattern* (:func:`op_pattern`): the set, not the bag, of WL features
  of two rounds over neighbour sets, which kinds of op neighbourhood a graph
  has, of op-only labels and of labels that say how a layer's size relates to
  its input's (hnn.hasher.relative_sizes: a feed-forward 4x as wide, keys of
  half the heads). Depth, a uniform width change and the input resolution
  leave it alone, so a family shares it; an index stores its MinHash
  (:func:`pattern_signature`) and answers a query's family with it
  (hnn.index.store.Index.family).

WL features: each node starts with its label; ``ITERATIONS`` rounds of WL
refinement (networkx) give every node a hash per round; the graph's feature bag
is the multiset of those hashes. SimHash: each feature maps to a pseudo-random
+-1 vector of Q entries (from its BLAKE2 digest), the vectors are summed, and
bit i is 1 where the sum is positive. ``wl_simhash`` alone is also the
evaluation's non-learned baseline (hnn.evaluation.methods).

How an index ranks entries by these is hnn.index.ranking's.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass

import numpy as np

from hnn.hasher.bits import hamming_matrix
from hnn.ingest.flops import enc
from hnn.ingest.ir import Graph

ITERATIONS = 3
HALF_BITS = 64
STRUCTURE_BITS = 2 * HALF_BITS
# One more than the largest structure distance: what an entry without a structure code scores.
NO_STRUCTURE = (HALF_BITS + 1) ** 2
# Scale distances are compared in these units (1/1000 of a doubling), so a ranking is one integer.
SCALE_UNITS = 1000


@dataclass(frozen=True)
class Structure:
    """Entries of older indexes lack the digest and scale (None): they are never of the query's topology."""

    code: np.ndarray  # bool [STRUCTURE_BITS]: topology half, then sizes half
    topology: str | None = None  # 16 hex digits
    scale: np.ndarray | None = None  # float64 [2]: mean log2(params), mean log2(flops) (scale_of)
    pattern: np.ndarray | None = None  # uint8 [SIGNATURE_BYTES]: the op pattern's MinHash (pattern_signature)
    ops_pattern: np.ndarray | None = None  # the same of the "ops" kind, for an index signed so (PATTERN_KINDS)

    def signature(self, kind: str | None = None) -> np.ndarray | None:
        """The op pattern's MinHash of ``kind`` (PATTERN_KINDS; None: PATTERN_KIND): an index asks for
        the kind its entries were signed with. None where this structure has none of that kind (one
        made without ``ops_pattern``: an index of kind "ops" then stores no signature for it)."""
        return self.ops_pattern if kind == "ops" else self.pattern

    def same_topology(self, other: "Structure | None") -> bool:
        """One digest on both sides, and a scale to order by (an entry of an older index has neither)."""
        return (other is not None and self.topology is not None and self.topology == other.topology
                and self.scale is not None and other.scale is not None)


def structure_of(graph: Graph) -> Structure:
    """The structure code, topology digest, scale and op-pattern signatures of a (merged) graph.

    The op-only WL rounds are computed once: all of them make the topology half and the digest, the
    first PATTERN_ITERATIONS the op patterns.
    """
    labels, rounds = _wl_rounds(graph, ITERATIONS, sizes=False)
    topology = _feature_bag(labels, rounds, ITERATIONS)
    code = np.concatenate([simhash(topology, HALF_BITS), wl_simhash(graph, HALF_BITS, sizes=True)])
    patterns = {kind: pattern_signature(_pattern_of(graph, labels, rounds, PATTERN_ITERATIONS, kind), kind)
                for kind in PATTERN_KINDS}
    return Structure(code, topology_digest(topology), scale_of(graph), patterns[PATTERN_KIND], patterns["ops"])


def topology_digest(features: Counter) -> str:
    """16 hex digits of BLAKE2 over the sorted (feature, count) pairs of an op-only WL feature bag."""
    digest = hashlib.blake2b(digest_size=8)
    for feature, count in sorted(features.items()):
        digest.update(f"{feature}\t{count}\n".encode())
    return digest.hexdigest()


def scale_of(graph: Graph) -> np.ndarray:
    """Mean log2 parameters over the nodes that have any, mean log2 FLOPs likewise (0 where none has)."""
    def mean_log2(values: list[int]) -> float:
        positive = [value for value in values if value > 0]
        return float(np.mean(np.log2(positive))) if positive else 0.0

    return np.array([mean_log2([node.params for node in graph.nodes]), mean_log2([node.flops for node in graph.nodes])])


def compare_structures(first: Structure, second: Structure | None) -> dict:
    """What `hnn compare` and `hnn index query` report of two structures (JSON-ready)."""
    if second is None:
        return {"structure_distance": NO_STRUCTURE, "same_topology": False, "scale_distance": None}
    scale = None if second.scale is None else int(scale_distance(first.scale, second.scale)) / SCALE_UNITS
    return {"structure_distance": structure_distance(first.code, second.code),
            "same_topology": first.same_topology(second), "scale_distance": scale}


def scale_distance(query: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """Sum of the absolute differences of the two means, in SCALE_UNITS (int64; broadcasts over rows)."""
    return np.rint(np.abs(np.asarray(stored) - np.asarray(query)).sum(axis=-1) * SCALE_UNITS).astype(np.int64)


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
    """int64 [nq, nd]: :func:`structure_distance` of every pair of structure codes."""
    topology = hamming_matrix(queries[:, :HALF_BITS], database[:, :HALF_BITS]).astype(np.int64)
    sizes = hamming_matrix(queries[:, HALF_BITS:], database[:, HALF_BITS:]).astype(np.int64)
    return topology * (HALF_BITS + 1) + sizes


def wl_features(graph: Graph, iterations: int = ITERATIONS, sizes: bool = True) -> Counter:
    """The WL feature bag; node labels are op and size buckets, or the op alone (``sizes=False``)."""
    return _feature_bag(*_wl_rounds(graph, iterations, sizes), iterations)


def relative_wl_features(graph: Graph, iterations: int = ITERATIONS) -> Counter:
    """The WL feature bag with node labels of op and relative size (hnn.hasher.relative_sizes) in place
    of op and size buckets: another input resolution or a uniform width change leaves it alone.

    A matrix layer's bias mark is left out: a bias of zeros, as every untrained Keras layer has, is
    dropped by tf2onnx and by hnn's identity-arithmetic pass alike (Keras applications' squeeze and
    excitation layers then differ from torchvision's in that mark alone)."""
    from hnn.hasher.relative_sizes import relative_size_labels

    labels = {node: "|".join(part for part in label.split("|") if part != "b")
              for node, label in relative_size_labels(graph).items()}
    return _feature_bag(*_wl_rounds(graph, iterations, sizes=False, labels=labels), iterations)


def _wl_rounds(graph: Graph, iterations: int, sizes: bool, labels: dict[str, str] | None = None
               ) -> tuple[list[str], list[list[str]]]:
    """Each node's label, and each node's WL hash of every round (a round's hash depends on the rounds
    before it only, so the first k of ``iterations`` rounds are what k rounds give). ``labels``: node
    id -> label, in place of the op (and sizes)."""
    import networkx as nx

    undirected = nx.Graph()
    for node in graph.nodes:
        if labels is not None:
            label = labels[node.id]
        else:
            label = f"{node.op}/{enc(node.flops)}/{enc(node.params)}" if sizes else node.op
        undirected.add_node(node.id, label=label)
    undirected.add_edges_from(graph.edges)
    hashes = nx.weisfeiler_lehman_subgraph_hashes(undirected, node_attr="label", iterations=iterations)
    return [undirected.nodes[n]["label"] for n in undirected.nodes], list(hashes.values())


def _feature_bag(labels: list[str], rounds: list[list[str]], iterations: int) -> Counter:
    """The bag of the labels and the first ``iterations`` rounds of :func:`_wl_rounds`."""
    assert all(len(per_node) >= iterations for per_node in rounds), "fewer WL rounds computed than asked for"
    features = Counter(labels)
    for per_node in rounds:
        features.update(per_node[:iterations])
    return features


# WL rounds of the op pattern: 2 is where family retrieval of Keras exports (0.94) and of transformer
# families at unseen sizes (0.76) are both near their best (docs/RESULTS.md, "Op patterns").
PATTERN_ITERATIONS = 2
# What an op pattern holds. "ops+sizes" (hnn 0.5.3): the WL features, over neighbour sets, of the op labels
# and of the relative-size labels (hnn.hasher.relative_sizes). "ops" (hnn 0.5.1 and 0.5.2): WL proper of the
# op labels alone; an index whose entries were signed so goes on being answered so (hnn.index.store.Index.pattern_kind).
PATTERN_KINDS = ("ops", "ops+sizes")
PATTERN_KIND = "ops+sizes"
_SIZED = "s:"  # the relative-size features' prefix: a set of strings, kept apart from the op-only ones


def op_pattern(graph: Graph, iterations: int = PATTERN_ITERATIONS, kind: str = PATTERN_KIND) -> frozenset[str]:
    """Which local op patterns a graph has, not how often: the *set* of its WL features.

    A family's members differ in depth (how often a block repeats) and width (sizes), which the
    feature bag counts and the code and the structure code read; the set of patterns stays
    (a transformer of 2 and of 8 layers has the same kinds of layer and neighbourhood). So it
    is a non-learned description of the *family*, not of the model: siblings share it. With
    ``kind`` "ops+sizes" (the default) the rounds run over neighbour sets
    (:func:`_neighbour_set_features`), and the set also holds the features of labels that say how
    each layer's size relates to its input's (a feed-forward layer 4x as wide, keys of fewer heads,
    two learned tokens where a twin family has one): traits of an architecture that neither depth,
    nor a uniform width change, nor the input resolution moves. "ops" is hnn 0.5.2's: WL proper
    of the op labels.
    """
    labels, rounds = _wl_rounds(graph, iterations, sizes=False)
    return _pattern_of(graph, labels, rounds, iterations, kind)


def _pattern_of(graph: Graph, labels: list[str], rounds: list[list[str]], iterations: int, kind: str
                ) -> frozenset[str]:
    """The op pattern of ``kind`` from the op-only WL rounds already computed."""
    if kind not in PATTERN_KINDS:
        raise ValueError(f"op pattern kind {kind!r}: expected one of {', '.join(PATTERN_KINDS)}")
    if kind == "ops":
        return frozenset(_feature_bag(labels, rounds, iterations))
    from hnn.hasher.relative_sizes import relative_size_labels

    ops = _neighbour_set_features(graph, {node.id: node.op for node in graph.nodes}, iterations)
    sized = _neighbour_set_features(graph, relative_size_labels(graph), iterations)
    return frozenset(ops) | frozenset(_SIZED + feature for feature in sized)


def _hashed_label(label: str, neighbour_labels: set[str]) -> str:
    return hashlib.blake2b("|".join([label, *sorted(neighbour_labels)]).encode(), digest_size=16).hexdigest()


def _neighbour_set_features(graph: Graph, labels: dict[str, str], iterations: int) -> set[str]:
    """The labels and ``iterations`` rounds of WL refinement in which a node's next label is its label
    and the *set* of its neighbours' labels, not their multiset as in WL proper (:func:`_wl_rounds`).

    One node can be read by every layer: an attention mask, an encoder's output that every decoder
    layer's cross-attention reads, a DenseNet block's growing concatenation. Its neighbour multiset,
    and with it its label and every neighbour's next one, then changes with the depth; the set does
    not, so the op pattern of a 2-layer and an 8-layer model of one family is one (tests/test_structure.py).
    """
    neighbours: dict[str, set[str]] = {node.id: set() for node in graph.nodes}
    for source, target in graph.edges:
        neighbours[source].add(target)
        neighbours[target].add(source)
    current = dict(labels)
    features = set(current.values())
    for _ in range(iterations):
        current = {node: _hashed_label(current[node], {current[other] for other in around})
                   for node, around in neighbours.items()}
        features.update(current.values())
    return features


# What an index stores per entry of an op pattern to find the nearest family: a b-bit MinHash signature
# (Li and Koenig, WWW 2010) of SIGNATURE_BYTES. Of the "ops" kind: 128 slots of 8 bits. Of "ops+sizes": 512
# slots of 2 bits, which estimate a Jaccard similarity of 0.5 within about 0.029 (one standard deviation)
# where 128 slots of 8 bits do within 0.044, in the same bytes: the family answer weighs the pattern 2x, so
# the estimate's noise decides near-ties (docs/RESULTS.md, "Relative sizes").
SIGNATURE_BYTES = 128
_SLOT_BITS = {"ops": 8, "ops+sizes": 2}
_SLOT_BLOCKS = {kind: [b"hnn-pattern-%d" % block if kind == "ops" else b"hnn-sized-%d" % block
                       for block in range(SIGNATURE_BYTES * 8 // bits // 16)]  # 16 slots per BLAKE2 digest
                for kind, bits in _SLOT_BITS.items()}
_LOW_BIT_OF_EACH_PAIR = np.uint64(0x5555555555555555)


def pattern_signature(pattern: frozenset[str], kind: str = PATTERN_KIND) -> np.ndarray | None:
    """uint8 [SIGNATURE_BYTES]: per slot, the low bits of the smallest of the features' hashes (None: no
    feature); slots of ``kind``'s bits (_SLOT_BITS), packed four to a byte for 2 bits.

    Two signatures agree in a slot with probability J + (1 - J) / 2^bits for op patterns of Jaccard
    similarity J (:func:`estimated_pattern_similarity` undoes the second term)."""
    if not pattern:
        return None
    hashes = np.array([np.frombuffer(b"".join(hashlib.blake2b(feature.encode(), digest_size=64, person=block).digest()
                                              for block in _SLOT_BLOCKS[kind]), "<u4") for feature in sorted(pattern)])
    bits = _SLOT_BITS[kind]
    slots = hashes.min(axis=0) % (1 << bits)
    if bits == 8:
        return slots.astype(np.uint8)
    return (slots.reshape(-1, 4) << np.array([0, 2, 4, 6])).sum(axis=1).astype(np.uint8)


def estimated_pattern_similarity(query: np.ndarray, stored: np.ndarray, kind: str = PATTERN_KIND) -> np.ndarray:
    """float [n]: the Jaccard similarity of the op patterns behind ``query`` [S] and each row of ``stored`` [n, S],
    signatures of ``kind``."""
    bits = _SLOT_BITS[kind]
    if bits == 8:
        agree = (np.asarray(stored) == np.asarray(query)).mean(axis=-1)
    else:
        # As 64-bit words (a signature is 16 of them): a 2-bit slot agrees where both bits of the XOR are 0.
        differing = (np.ascontiguousarray(stored, np.uint8).view(np.uint64)
                     ^ np.ascontiguousarray(query, np.uint8).view(np.uint64))
        agreeing = ~(differing | (differing >> np.uint64(1))) & _LOW_BIT_OF_EACH_PAIR
        agree = np.bitwise_count(agreeing).sum(axis=-1, dtype=np.int64) / (np.shape(query)[-1] * 8 // bits)
    chance = 1 / (1 << bits)
    return np.clip((agree - chance) / (1 - chance), 0.0, 1.0)


def pattern_distance_matrix(queries: list[frozenset[str]], database: list[frozenset[str]]) -> np.ndarray:
    """float [nq, nd]: 1 - Jaccard similarity of every pair of op patterns (0: the same patterns)."""
    distances = np.ones((len(queries), len(database)))
    for row, query in enumerate(queries):
        for column, stored in enumerate(database):
            union = len(query | stored)
            if union:
                distances[row, column] = 1 - len(query & stored) / union
    return distances


# How much a whole op pattern apart (Jaccard distance 1) weighs against a whole code apart (every bit), per
# kind of op pattern. "ops": 0.5, chosen on the transformer families a candidate checkpoint trained on
# (docs/RESULTS.md, "Op patterns"). "ops+sizes": 3, the smallest of the best on the transformer families the
# shipped checkpoints trained on and the Keras queries of benchmarks/cross_framework.py, with the patterns as
# an index estimates them and as the exact sets give them (docs/RESULTS.md, "Relative sizes"): the pattern
# now tells most twins apart, and the code, which moves with a model's size, weighs less.
FAMILY_PATTERN_WEIGHTS = {"ops": 0.5, "ops+sizes": 3.0}


def family_distance_matrix(code_distances: np.ndarray, bits: int, pattern_distances: np.ndarray,
                           pattern_weight: float | None = None, kind: str = PATTERN_KIND) -> np.ndarray:
    """float [nq, nd]: the code's Hamming distance as a share of its bits plus the weighted op-pattern distance
    (``pattern_weight``; None: that of the patterns' ``kind``, FAMILY_PATTERN_WEIGHTS).

    The code tells sizes and the families it trained on apart; the op pattern holds a family together
    across depth and width, and does not depend on training. Where they disagree the sum decides."""
    weight = FAMILY_PATTERN_WEIGHTS[kind] if pattern_weight is None else pattern_weight
    return np.asarray(code_distances) / bits + weight * np.asarray(pattern_distances)


def _signs(feature: str, bits: int) -> np.ndarray:
    digest = hashlib.blake2b(feature.encode(), digest_size=(bits + 7) // 8).digest()
    return np.unpackbits(np.frombuffer(digest, dtype=np.uint8))[:bits].astype(np.float64) * 2 - 1


def wl_simhash(graph: Graph, bits: int, sizes: bool = True) -> np.ndarray:
    """Bool code [bits]."""
    return simhash(wl_features(graph, sizes=sizes), bits)


def relative_wl_simhash(graph: Graph, bits: int, iterations: int = ITERATIONS) -> np.ndarray:
    """Bool code [bits] of :func:`relative_wl_features`: what the hasher's WL branch reads
    (hnn.hasher.features.wl_vector), unlearned; a baseline of benchmarks/generalization.py."""
    return simhash(relative_wl_features(graph, iterations), bits)


def simhash(features: Counter, bits: int) -> np.ndarray:
    """Bool code [bits] of a feature bag: the sign of the count-weighted sum of each feature's +-1 vector."""
    total = np.zeros(bits)
    for feature, count in features.items():
        total += count * _signs(feature, bits)
    return total > 0
