"""FLOPs and parameter counts of single nodes, against values computed by hand."""

import pytest
from onnx import helper
from onnx_builders import int_tensor, model, weight

from hnn.ingest.pipeline import onnx_to_ir


def single_node_ir(node, inputs, initializers=()):
    return onnx_to_ir(model([node], inputs, [node.output[0]], initializers), simplify=False)


def only_node(graph):
    assert len(graph.nodes) == 1, graph.op_histogram()
    return graph.nodes[0]


def test_conv_flops_are_two_macs_per_output_and_kernel_element():
    # Y: 1x4x8x8, kernel 3x3 over 2 input channels: 2 * 256 * 2 * 9 = 9216
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    ir = single_node_ir(node, [("x", [1, 2, 8, 8])], [weight("w", 4, 2, 3, 3), weight("b", 4)])
    conv = only_node(ir)
    assert conv.flops == 2 * (4 * 8 * 8) * 2 * 9
    assert conv.params == 4 * 2 * 9 + 4
    assert conv.attrs == {"kernel_shape": [3, 3], "strides": [1, 1], "dilations": [1, 1], "group": 1}
    assert conv.output_shape == [1, 4, 8, 8]


def test_grouped_conv_counts_channels_per_group():
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], group=4, strides=[2, 2])
    ir = single_node_ir(node, [("x", [1, 4, 9, 9])], [weight("w", 4, 1, 3, 3)])
    conv = only_node(ir)
    assert conv.output_shape == [1, 4, 4, 4]
    assert conv.flops == 2 * (4 * 4 * 4) * 1 * 9
    assert conv.attrs["group"] == 4 and conv.attrs["strides"] == [2, 2]


def test_conv_transpose_flops_follow_the_input():
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], kernel_shape=[2, 2], strides=[2, 2])
    ir = single_node_ir(node, [("x", [1, 3, 4, 4])], [weight("w", 3, 5, 2, 2)])
    assert only_node(ir).flops == 2 * (3 * 4 * 4) * 5 * 4


def test_gemm_counts_the_contracted_dimension_and_not_the_bias():
    node = helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)
    ir = single_node_ir(node, [("x", [2, 6])], [weight("w", 5, 6), weight("b", 5)])
    gemm = only_node(ir)
    assert gemm.flops == 2 * 2 * 5 * 6
    assert gemm.params == 30 + 5


def test_attention_matmul_chain_counts_both_products_and_the_softmax():
    # scores = Q K^T: [1,2,4,8] x [1,2,8,4] -> [1,2,4,4]; out = softmax(scores) V: [1,2,4,4] x [1,2,4,8]
    nodes = [
        helper.make_node("MatMul", ["q", "kt"], ["scores"]),
        helper.make_node("Softmax", ["scores"], ["attn"], axis=-1),
        helper.make_node("MatMul", ["attn", "v"], ["out"]),
        helper.make_node("Relu", ["out"], ["y"]),
    ]
    inputs = [("q", [1, 2, 4, 8]), ("kt", [1, 2, 8, 4]), ("v", [1, 2, 4, 8])]
    ir = onnx_to_ir(model(nodes, inputs, ["y"]), simplify=False)
    flops = {node.op: [] for node in ir.nodes}
    for node in ir.nodes:
        flops[node.op].append(node.flops)
    assert sorted(flops["MatMul"]) == sorted([2 * 32 * 8, 2 * 64 * 4])
    assert flops["Softmax"] == [3 * 32]
    assert flops["Relu"] == [64]


@pytest.mark.parametrize(
    "op, attrs, expected",
    [
        ("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2]}, 1 * 3 * 4 * 4 * 4),
        ("AveragePool", {"kernel_shape": [2, 2], "strides": [2, 2]}, 1 * 3 * 4 * 4 * 4),
        ("GlobalAveragePool", {}, 1 * 3 * 8 * 8),
        ("Relu", {}, 3 * 8 * 8),
        ("Sigmoid", {}, 3 * 8 * 8),
    ],
)
def test_pooling_and_activation_flops(op, attrs, expected):
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    assert only_node(single_node_ir(node, [("x", [1, 3, 8, 8])])).flops == expected


def test_batchnorm_counts_two_flops_per_element_and_only_learnable_parameters():
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"])
    inits = [weight("s", 3), weight("b", 3), weight("m", 3), weight("v", 3)]
    bn = only_node(single_node_ir(node, [("x", [1, 3, 4, 4])], inits))
    assert bn.flops == 2 * 48
    assert bn.params == 6  # scale and bias; the running mean and variance are buffers


def test_layernorm_elementwise_and_concat():
    nodes = [
        helper.make_node("LayerNormalization", ["x", "g", "b"], ["ln"], axis=-1),
        helper.make_node("Add", ["ln", "x"], ["sum"]),
        helper.make_node("Concat", ["sum", "x"], ["y"], axis=1),
    ]
    ir = onnx_to_ir(model(nodes, [("x", [1, 4, 6])], ["y"], [weight("g", 6), weight("b", 6)]), simplify=False)
    by_op = {node.op: node for node in ir.nodes}
    assert by_op["LayerNormalization"].flops == 5 * 24
    assert by_op["LayerNormalization"].params == 12
    assert by_op["Add"].flops == 24
    assert by_op["Concat"].flops == 0
    assert by_op["Concat"].output_shape == [1, 8, 6]


def test_clip_bounds_are_not_parameters():
    node = helper.make_node("Clip", ["x", "lo", "hi"], ["y"])
    lo, hi = weight("lo"), weight("hi")
    assert only_node(single_node_ir(node, [("x", [1, 3, 2, 2])], [lo, hi])).params == 0


def test_reshape_shape_tensor_is_no_parameter_and_reshape_is_no_node():
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Reshape", ["r", "shape"], ["flat"]),
        helper.make_node("Sigmoid", ["flat"], ["y"]),
    ]
    ir = onnx_to_ir(model(nodes, [("x", [1, 2, 3])], ["y"], [int_tensor("shape", [1, 6])]), simplify=False)
    assert [node.op for node in ir.nodes] == ["Relu", "Sigmoid"]
    assert ir.total_params == 0
    assert ir.edges == [("n0", "n1")]
