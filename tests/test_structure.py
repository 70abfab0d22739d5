"""The structure code and the topology digest (hnn.hasher.structure) on hand-made graphs."""

from dataclasses import replace

import numpy as np

from hnn.hasher.structure import HALF_BITS, STRUCTURE_BITS, structure_of
from hnn.index.ranking import rank_of
from hnn.ingest.ir import Graph, GraphMeta, Node


def blocks(repeats: int, width: int = 64) -> Graph:
    """A stem, then ``repeats`` residual blocks Conv-Relu-Conv-Add, then a head; FLOPs grow with width."""
    nodes = [Node("stem", "Conv", flops=width * 1000, params=width * 27)]
    edges = []
    previous = "stem"
    for block in range(repeats):
        a, relu, b, add = (f"b{block}.{part}" for part in ("conv1", "relu", "conv2", "add"))
        nodes += [Node(a, "Conv", flops=width * width * 90, params=width * width * 9), Node(relu, "Relu", flops=width),
                  Node(b, "Conv", flops=width * width * 90, params=width * width * 9), Node(add, "Add", flops=width)]
        edges += [(previous, a), (a, relu), (relu, b), (b, add), (previous, add)]
        previous = add
    nodes += [Node("pool", "GlobalAveragePool", flops=width), Node("fc", "Gemm", flops=width * 1000, params=width * 1000)]
    edges += [(previous, "pool"), ("pool", "fc")]
    return Graph(nodes, edges, GraphMeta(framework="test"))


def test_one_architecture_at_other_widths_has_one_topology_and_other_sizes():
    wide, narrow = structure_of(blocks(3, width=64)), structure_of(blocks(3, width=16))  # every layer 75% narrower
    assert wide.topology == narrow.topology and len(wide.topology) == 16
    assert (wide.code[:HALF_BITS] == narrow.code[:HALF_BITS]).all()
    assert (wide.code[HALF_BITS:] != narrow.code[HALF_BITS:]).any()  # the size half tells them apart
    assert wide.code.shape == (STRUCTURE_BITS,) and wide.code.dtype == bool
    # Scale: the mean log2 parameters of the conv layers fall by 2 log2(4) = 4; the stem and head by 2.
    assert 2 < wide.scale[0] - narrow.scale[0] < 4 and wide.scale[1] > narrow.scale[1]


def test_the_rank_puts_the_query_topology_first_then_scale_then_code():
    query = structure_of(blocks(3, width=32))
    same_wide, same_narrow = structure_of(blocks(3, width=36)), structure_of(blocks(3, width=8))
    other = structure_of(blocks(4, width=32))
    assert rank_of(query, 9, same_wide) < rank_of(query, 0, same_narrow) < rank_of(query, 0, other) \
        < rank_of(query, 1, other)
    assert rank_of(query, 0, other) < rank_of(query, 0, None)  # an entry without a structure: after one with it


def test_one_block_more_is_another_topology_and_names_do_not_matter():
    three = blocks(3)
    assert structure_of(blocks(4)).topology != structure_of(three).topology
    renamed = Graph([replace(node, id=f"x{i}") for i, node in enumerate(three.nodes)],
                    [(f"x{[n.id for n in three.nodes].index(a)}", f"x{[n.id for n in three.nodes].index(b)}")
                     for a, b in three.edges], three.meta)
    assert structure_of(renamed).topology == structure_of(three).topology
    assert np.array_equal(structure_of(renamed).code, structure_of(three).code)
    assert np.array_equal(structure_of(renamed).scale, structure_of(three).scale)


def test_the_op_pattern_is_one_for_a_family_at_any_depth_and_width_and_tells_families_apart():
    """A family's members differ in how often a block repeats and how wide it is, not in which blocks it has."""
    from hnn.hasher.structure import op_pattern, pattern_distance_matrix

    deep = op_pattern(blocks(8, width=64))
    assert op_pattern(blocks(5, width=16)) == deep  # every kind of neighbourhood is there from 5 blocks on
    assert structure_of(blocks(5)).topology != structure_of(blocks(8)).topology  # the digest counts blocks
    plain = blocks(8)  # the same without the residual connections: another family
    plain = Graph(plain.nodes, [edge for edge in plain.edges if not edge[1].endswith(".add")
                                or edge[0].endswith(".conv2")], plain.meta)
    # Fewer blocks than that: some neighbourhoods are missing, and the family is still far nearer.
    distances = pattern_distance_matrix([op_pattern(blocks(3, width=16))], [deep, op_pattern(plain)])
    assert 0 < distances[0, 0] < 0.2 and distances[0, 1] > 0.5


def test_the_family_distance_lets_the_op_pattern_outvote_a_few_code_bits():
    """A query 3 bits from another family's model and 10 bits from a deeper member of its own family."""
    from hnn.hasher.structure import family_distance_matrix, op_pattern, pattern_distance_matrix

    query, member = op_pattern(blocks(5)), op_pattern(blocks(8))
    plain = blocks(5)
    other = op_pattern(Graph(plain.nodes, [edge for edge in plain.edges if not edge[1].endswith(".add")
                                           or edge[0].endswith(".conv2")], plain.meta))
    patterns = pattern_distance_matrix([query], [member, other])
    distances = family_distance_matrix(np.array([[10, 3]]), 64, patterns)
    assert distances.argmin() == 0
    assert family_distance_matrix(np.array([[10, 3]]), 64, patterns, pattern_weight=0).argmin() == 1


def test_the_stored_signature_estimates_the_op_patterns_jaccard_similarity():
    """What an index stores of the op pattern (structure_of's MinHash) answers as the exact sets do."""
    from hnn.hasher.structure import (
        SIGNATURE_BYTES,
        estimated_pattern_similarity,
        op_pattern,
        pattern_distance_matrix,
        pattern_signature,
    )

    graphs = [blocks(3, width=16), blocks(8, width=64), blocks(8)]
    plain = blocks(8)
    graphs.append(Graph(plain.nodes, [edge for edge in plain.edges if not edge[1].endswith(".add")
                                      or edge[0].endswith(".conv2")], plain.meta))
    signatures = np.array([structure_of(graph).pattern for graph in graphs])
    assert signatures.shape == (4, SIGNATURE_BYTES) and signatures.dtype == np.uint8
    assert np.array_equal(signatures[1], pattern_signature(op_pattern(graphs[1])))  # the shared WL rounds
    assert np.array_equal(signatures[1], signatures[2])  # one pattern at two widths: one signature
    exact = 1 - pattern_distance_matrix([op_pattern(graphs[0])], [op_pattern(g) for g in graphs])[0]
    estimated = estimated_pattern_similarity(signatures[0], signatures)
    assert estimated[0] == 1.0 and np.abs(estimated - exact).max() < 0.15
    assert estimated[1] > estimated[3]  # its own family nearer than the one without residuals
    assert pattern_signature(frozenset()) is None


def encoder(layers: int, width: int, feed_forward: float = 4, tokens: int = 1, key_value: float = 1) -> Graph:
    """A transformer encoder's layer graph with shapes: ``tokens`` learned tokens joined to the patches,
    then per layer q/k/v projections (k and v ``key_value`` as wide), attention, a feed-forward of
    ``feed_forward`` x the width, LayerNorms of scale and bias."""
    seq = 50
    nodes = [Node("patch", "Conv", {"kernel_shape": [16, 16], "group": 1}, [1, width, 7, 7], params=width * 768),
             Node("tokens", "Concat", output_shape=[1, seq, width], params=tokens * width)]
    edges = [("patch", "tokens")]
    previous = "tokens"

    def linear(name, source, out, into):
        nodes.append(Node(name, "Gemm", output_shape=[seq, out], params=into * out + out))
        edges.append((source, name))

    for layer in range(layers):
        p = f"l{layer}."
        nodes.append(Node(p + "norm1", "LayerNormalization", output_shape=[1, seq, width], params=2 * width))
        edges.append((previous, p + "norm1"))
        linear(p + "q", p + "norm1", width, width)
        linear(p + "k", p + "norm1", int(width * key_value), width)
        linear(p + "v", p + "norm1", int(width * key_value), width)
        nodes += [Node(p + "scores", "MatMul", output_shape=[1, 4, seq, seq]), Node(p + "softmax", "Softmax"),
                  Node(p + "context", "MatMul", output_shape=[1, 4, seq, width // 4])]
        edges += [(p + "q", p + "scores"), (p + "k", p + "scores"), (p + "scores", p + "softmax"),
                  (p + "softmax", p + "context"), (p + "v", p + "context")]
        linear(p + "out", p + "context", width, width)
        nodes.append(Node(p + "add1", "Add", output_shape=[1, seq, width]))
        edges += [(p + "out", p + "add1"), (previous, p + "add1")]
        nodes.append(Node(p + "norm2", "LayerNormalization", output_shape=[1, seq, width], params=2 * width))
        edges.append((p + "add1", p + "norm2"))
        linear(p + "up", p + "norm2", int(width * feed_forward), width)
        nodes.append(Node(p + "gelu", "Gelu", output_shape=[seq, int(width * feed_forward)]))
        edges.append((p + "up", p + "gelu"))
        linear(p + "down", p + "gelu", width, int(width * feed_forward))
        nodes.append(Node(p + "add2", "Add", output_shape=[1, seq, width]))
        edges += [(p + "down", p + "add2"), (p + "add1", p + "add2")]
        previous = p + "add2"
    linear("head", previous, 1000, width)
    return Graph(nodes, edges, GraphMeta(framework="test"))


def test_the_sized_op_pattern_keeps_a_family_across_depth_and_width_and_tells_its_twins_apart():
    """Relative sizes (hnn.hasher.relative_sizes) do not move with depth or a uniform width change; they
    tell families the op graph alone cannot: one learned token or two (ViT, DeiT), a feed-forward 4x or
    2x as wide, keys and values of half the heads (grouped-query attention)."""
    from hnn.hasher.relative_sizes import relative_size_labels
    from hnn.hasher.structure import op_pattern

    base = op_pattern(encoder(3, 256))
    assert op_pattern(encoder(5, 96)) == base
    twins = [encoder(3, 256, tokens=2), encoder(3, 256, feed_forward=2), encoder(3, 256, key_value=0.5)]
    for twin in twins:
        assert op_pattern(twin, kind="ops") == op_pattern(encoder(3, 256), kind="ops")  # one op graph
        assert op_pattern(twin) != base
    labels = relative_size_labels(encoder(1, 64, key_value=0.5))
    assert labels["l0.up"] == "Gemm|r4|b" and labels["l0.down"] == "Gemm|r-4|b" and labels["l0.k"] == "Gemm|r-2|b"
    assert labels["l0.out"] == "Gemm|r0|b"  # its input is heads x head width before the reshape: still 1:1
    assert labels["tokens"] == "Concat|v1" and labels["l0.norm1"] == "LayerNormalization|v2"
    assert labels["head"] == "Gemm|head" and labels["l0.softmax"] == "Softmax"  # a class head: the data's size


def test_the_wl_vector_ignores_a_uniform_width_change_and_tells_depth_and_twins_apart():
    """The hasher's WL branch (hnn.hasher.features.wl_vector) reads op and relative-size labels: a
    copy with every width scaled has the same vector; a deeper model or a wider feed-forward does not."""
    from hnn.hasher.features import wl_vector

    base = wl_vector(encoder(3, 256), 512)
    assert base.shape == (512,) and np.isclose(np.linalg.norm(base), 1.0)
    assert np.array_equal(wl_vector(encoder(3, 96), 512), base)
    for other in (encoder(5, 256), encoder(3, 256, feed_forward=2), encoder(3, 256, key_value=0.5)):
        assert float(wl_vector(other, 512) @ base) < 0.99


def test_a_structure_carries_both_kinds_of_op_pattern_signature():
    from hnn.hasher.structure import op_pattern, pattern_signature

    graph = encoder(2, 64)
    structure = structure_of(graph)
    assert np.array_equal(structure.signature(), pattern_signature(op_pattern(graph)))
    assert np.array_equal(structure.signature("ops"), pattern_signature(op_pattern(graph, kind="ops"), "ops"))
    assert not np.array_equal(structure.signature(), structure.signature("ops"))


def test_a_node_every_layer_reads_leaves_the_sized_op_pattern_alone_at_any_depth():
    """An attention mask (or an encoder's output) read by every layer has as many neighbours as there are
    layers: WL over neighbour multisets (the "ops" kind) changes with depth, over sets it does not."""
    from hnn.hasher.structure import op_pattern

    def with_shared_mask(layers):
        graph = encoder(layers, 128)
        mask = Node("mask", "Where", output_shape=[1, 1, 50, 50])
        return Graph(graph.nodes + [mask], graph.edges + [("mask", f"l{layer}.scores") for layer in range(layers)],
                     graph.meta)

    assert op_pattern(with_shared_mask(3)) == op_pattern(with_shared_mask(7))
    assert op_pattern(with_shared_mask(3), kind="ops") != op_pattern(with_shared_mask(7), kind="ops")


def test_the_two_bit_signature_estimates_the_jaccard_similarity_closer_in_the_same_bytes():
    """512 slots of 2 bits ("ops+sizes") against 128 of 8 bits ("ops"): both 128 bytes, the first nearer
    the exact similarity over many pairs of sets (fixed strings: the result is deterministic)."""
    from hnn.hasher.structure import SIGNATURE_BYTES, estimated_pattern_similarity, pattern_signature

    errors = {"ops": [], "ops+sizes": []}
    for pair in range(40):
        shared = 20 + 10 * (pair % 9)
        first = frozenset(f"p{pair}-shared{i}" for i in range(shared)) | {f"p{pair}-a{i}" for i in range(60)}
        second = frozenset(f"p{pair}-shared{i}" for i in range(shared)) | {f"p{pair}-b{i}" for i in range(60)}
        exact = len(first & second) / len(first | second)
        for kind, found in errors.items():
            one, other = pattern_signature(first, kind), pattern_signature(second, kind)
            assert one.shape == (SIGNATURE_BYTES,) and one.dtype == np.uint8
            assert estimated_pattern_similarity(one, one[None, :], kind)[0] == 1.0
            found.append(abs(estimated_pattern_similarity(one, other[None, :], kind)[0] - exact))
    assert max(errors["ops+sizes"]) < 0.15 and max(errors["ops"]) < 0.2
    assert np.mean(errors["ops+sizes"]) < np.mean(errors["ops"])


def test_relative_sizes_read_channels_last_maps_pooled_gemms_and_norms_at_any_resolution():
    """Layouts an IR holds after its layout Transposes go: a channels-last depthwise convolution
    (ConvNeXt's blocks, Keras), a 1x1 convolution on a pooled map made a Gemm ([units, 1], squeeze and
    excitation), a standalone norm on a channels-first map. Their labels move with neither width nor
    resolution."""
    from hnn.hasher.relative_sizes import relative_size_labels

    def block(width, pixels):
        nodes = [Node("stem", "Conv", {"kernel_shape": [4, 4], "group": 1}, [1, width, pixels, pixels],
                      params=width * 48 + width),
                 Node("norm", "BatchNormalization", output_shape=[1, width, pixels, pixels], params=4 * width),
                 Node("last", "Transpose", output_shape=[1, pixels, pixels, width]),
                 Node("dw", "Conv", {"kernel_shape": [7, 7], "group": width}, [1, pixels, pixels, width],
                      params=width * 49 + width),
                 Node("pool", "GlobalAveragePool", output_shape=[1, width, 1, 1]),
                 Node("squeeze", "Gemm", output_shape=[width // 4, 1], params=width * (width // 4) + width // 4),
                 Node("excite", "Gemm", output_shape=[width, 1], params=(width // 4) * width + width),
                 Node("head", "Gemm", output_shape=[1, 1000], params=width * 1000 + 1000)]
        edges = [("stem", "norm"), ("norm", "last"), ("last", "dw"), ("dw", "pool"), ("pool", "squeeze"),
                 ("squeeze", "excite"), ("excite", "head")]
        return relative_size_labels(Graph(nodes, edges, GraphMeta(framework="test")))

    labels = block(96, 56)
    assert labels["dw"] == "Conv|r0|k7x7|dw" and labels["norm"] == "BatchNormalization|v4"
    assert labels["squeeze"] == "Gemm|r-4|b" and labels["excite"] == "Gemm|r4|b"
    assert labels["stem"] == "Conv|data" and labels["head"] == "Gemm|head"
    for width, pixels in ((192, 56), (96, 64), (128, 32), (48, 112)):
        assert block(width, pixels) == labels, (width, pixels)
