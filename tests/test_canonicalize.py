"""Extraction and canonicalization on hand-built ONNX graphs."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_builders import int_tensor, model, weight

from hnn.errors import InputError
from hnn.ingest.pipeline import onnx_to_ir


def conv(name, inp, out, channels=4):
    return helper.make_node("Conv", [inp, f"{name}_w"], [out], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name=name)


def conv_weights(*names, channels=4):
    return [weight(f"{name}_w", channels, channels, 3, 3) for name in names]


def ops(graph):
    return [node.op for node in graph.nodes]


def op_edges(graph):
    """The edges as (op, op) pairs, sorted: the layer graph whatever the nodes are numbered."""
    op_of = {node.id: node.op for node in graph.nodes}
    return sorted((op_of[a], op_of[b]) for a, b in graph.edges)


def test_identity_and_dropout_are_removed_and_their_edges_joined():
    nodes = [
        conv("a", "x", "t1"),
        helper.make_node("Identity", ["t1"], ["t2"]),
        helper.make_node("Dropout", ["t2"], ["t3"]),
        helper.make_node("Relu", ["t3"], ["y"]),
    ]
    ir = onnx_to_ir(model(nodes, [("x", [1, 4, 8, 8])], ["y"], conv_weights("a")), simplify=False)
    assert ops(ir) == ["Conv", "Relu"]
    assert ir.edges == [("n0", "n1")]


def test_multiplying_by_one_and_adding_zero_are_removed_but_real_arithmetic_stays():
    import numpy as np
    from onnx import numpy_helper

    constants = [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in
                 (("one", 1.0), ("zero", 0.0), ("two", 2.0), ("ones", [1.0, 1.0, 1.0, 1.0]))]
    nodes = [
        conv("a", "x", "t1"),
        helper.make_node("Mul", ["t1", "one"], ["t2"]),
        helper.make_node("Add", ["zero", "t2"], ["t3"]),
        helper.make_node("Sub", ["t3", "zero"], ["t4"]),
        helper.make_node("Relu", ["t4"], ["t5"]),
        helper.make_node("Mul", ["t5", "two"], ["t6"]),  # scales: a real op
        helper.make_node("Sub", ["zero", "t6"], ["y"]),  # 0 - x negates: a real op
    ]
    ir = onnx_to_ir(model(nodes, [("x", [1, 4, 8, 8])], ["y"], conv_weights("a") + constants), simplify=False)
    assert ops(ir) == ["Conv", "Relu", "Mul", "Sub"]


def _masked(mask_value: float, keep: bool = True):
    """x + Where(Expand(all-true, [1, 4, 64, 64]), value, -inf): a mask computed from constants, as dynamo
    writes a ViT's unmasked attention, too large (16384 elements) for folding by value."""
    constants = [
        numpy_helper.from_array(np.full((1, 1, 64, 1), keep), "keep"),
        int_tensor("full", [1, 4, 64, 64]),
        numpy_helper.from_array(np.array(mask_value, np.float32), "value"),
        numpy_helper.from_array(np.array(-3.4e38, np.float32), "minimum"),
    ]
    nodes = [
        conv("a", "x", "t1"),
        helper.make_node("Expand", ["keep", "full"], ["everywhere"]),
        helper.make_node("Where", ["everywhere", "value", "minimum"], ["mask"]),
        helper.make_node("Add", ["t1", "mask"], ["t2"]),
        helper.make_node("Relu", ["t2"], ["y"]),
    ]
    built = model(nodes, [("x", [1, 4, 64, 64])], ["y"], conv_weights("a") + constants)
    return onnx_to_ir(built, simplify=False)


def test_a_computed_all_zero_mask_is_added_as_zero_and_any_other_mask_stays():
    assert ops(_masked(0.0)) == ["Conv", "Relu"]
    assert ops(_masked(0.5)) == ["Conv", "Add", "Relu"]  # adds one half everywhere: a real op
    assert ops(_masked(0.0, keep=False)) == ["Conv", "Add", "Relu"]  # masks everything out
    kept = _masked(0.5).nodes[1]
    assert kept.params == 0  # a computed mask is no weight, whatever its size


def test_a_per_channel_scale_after_a_conv_is_folded_into_it_and_other_products_stay():
    import numpy as np
    from onnx import numpy_helper

    scale = numpy_helper.from_array(np.full((4, 1, 1), 0.5, np.float32), "scale")
    rows = numpy_helper.from_array(np.full((8, 1), 0.5, np.float32), "rows")  # scales rows, not channels
    nodes = [
        conv("a", "x", "t1"),
        helper.make_node("Mul", ["t1", "scale"], ["t2"]),  # a BatchNorm scale left by a converter
        helper.make_node("Relu", ["t2"], ["t3"]),
        conv("b", "t3", "t4"),
        helper.make_node("Mul", ["t4", "rows"], ["y"]),
    ]
    weights = conv_weights("a", "b") + [scale, rows]
    ir = onnx_to_ir(model(nodes, [("x", [1, 4, 8, 8])], ["y"], weights), simplify=False)
    assert ops(ir) == ["Conv", "Relu", "Conv", "Mul"]
    assert ir.nodes[0].params == 4 * 4 * 9  # the Conv's own count: folding changes values, not numbers


def test_a_channels_last_bias_and_batchnorm_written_out_after_a_conv_fold_into_it_as_keras_torch_writes_them():
    # Keras 3 under the torch backend: Conv, Transpose to NHWC, then the bias as an Add and the
    # inference BatchNorm as Sub, Mul, Add of [1, 1, 1, C] constants, each behind a no-op Cast.
    def channel(name, value):
        return numpy_helper.from_array(np.full((1, 1, 1, 4), value, np.float32), name)

    nodes = [conv("a", "x", "t0"), helper.make_node("Transpose", ["t0"], ["t1"], perm=[0, 2, 3, 1])]
    for step, (op, name) in enumerate((("Add", "bias"), ("Sub", "mean"), ("Mul", "scale"), ("Add", "shift"))):
        nodes += [helper.make_node("Cast", [f"t{2 * step + 1}"], [f"t{2 * step + 2}"], to=TensorProto.FLOAT),
                  helper.make_node(op, [f"t{2 * step + 2}", name], [f"t{2 * step + 3}"])]
    nodes += [helper.make_node("Relu", ["t9"], ["t10"]),
              helper.make_node("Div", ["scale", "t10"], ["y"])]  # c / x is not a scale: it stays
    constants = [channel("bias", 0.1), channel("mean", 0.2), channel("scale", 1.5), channel("shift", 0.3)]
    ir = onnx_to_ir(model(nodes, [("x", [1, 4, 8, 8])], ["y"], conv_weights("a") + constants), simplify=False)
    assert ops(ir) == ["Conv", "Relu", "Div"]
    assert ir.nodes[0].params == 4 * 4 * 9  # as the TensorFlow backend's export, whose tf2onnx folds them


def test_a_split_to_sequence_read_by_sequence_at_becomes_slices_as_torchscript_writes_it():
    nodes = [
        conv("a", "x", "t1"),
        helper.make_node("SplitToSequence", ["t1"], ["seq"], axis=1),
        helper.make_node("SequenceAt", ["seq", "zero"], ["left"]),
        helper.make_node("SequenceAt", ["seq", "one"], ["right"]),
        helper.make_node("Relu", ["right"], ["r"]),
        helper.make_node("Concat", ["left", "r"], ["y"], axis=1),
    ]
    initializers = conv_weights("a") + [int_tensor("zero", 0), int_tensor("one", 1)]
    ir = onnx_to_ir(model(nodes, [("x", [1, 4, 8, 8])], ["y"], initializers), simplify=False)
    assert sorted(ops(ir)) == ["Concat", "Conv", "Relu", "Slice", "Slice"]
    conv_id = next(node.id for node in ir.nodes if node.op == "Conv")
    assert sum(1 for src, _ in ir.edges if src == conv_id) == 2  # the Conv feeds both slices directly


def test_shape_only_subgraph_and_constants_do_not_become_nodes():
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Shape", ["r"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["batch"], axis=0),
        helper.make_node("Unsqueeze", ["batch", "axes"], ["b1"]),
        helper.make_node("Concat", ["b1", "minus_one"], ["shape"], axis=0),
        helper.make_node("Reshape", ["r", "shape"], ["flat"]),
        helper.make_node("Constant", [], ["c"], value=weight("cv", 1, 32)),
        helper.make_node("Add", ["flat", "c"], ["y"]),
    ]
    inits = [int_tensor("zero", 0), int_tensor("axes", [0]), int_tensor("minus_one", [-1])]
    ir = onnx_to_ir(model(nodes, [("x", [1, 2, 4, 4])], ["y"], inits), simplify=False)
    assert ops(ir) == ["Relu", "Add"]


def test_reduce_mean_over_space_is_global_average_pool():
    nodes = [
        conv("a", "x", "t"),
        helper.make_node("ReduceMean", ["t", "axes"], ["m"], keepdims=1),
        helper.make_node("Flatten", ["m"], ["y"]),
    ]
    inits = conv_weights("a") + [int_tensor("axes", [2, 3])]
    ir = onnx_to_ir(model(nodes, [("x", [1, 4, 8, 8])], ["y"], inits, opset=18), simplify=False)
    assert ops(ir) == ["Conv", "GlobalAveragePool"]


def test_matmul_by_weight_plus_bias_is_one_gemm():
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["mm"]),
        helper.make_node("Add", ["mm", "b"], ["dense"]),
        helper.make_node("Relu", ["dense"], ["y"]),
    ]
    ir = onnx_to_ir(model(nodes, [("x", [1, 6])], ["y"], [weight("w", 6, 3), weight("b", 3)]), simplify=False)
    assert ops(ir) == ["Gemm", "Relu"]
    assert ir.nodes[0].params == 21 and ir.nodes[0].flops == 2 * 3 * 6


def written_out_layer_norm(inp, out, prefix):
    """LayerNorm over the last axis as tf2onnx writes it: mean, centre, variance, sqrt, scale, shift."""
    p = prefix
    return [
        helper.make_node("ReduceMean", [inp, "last"], [f"{p}mean"], keepdims=1),
        helper.make_node("Sub", [inp, f"{p}mean"], [f"{p}centred"]),
        helper.make_node("Mul", [f"{p}centred", f"{p}centred"], [f"{p}square"]),
        helper.make_node("ReduceMean", [f"{p}square", "last"], [f"{p}var"], keepdims=1),
        helper.make_node("Add", [f"{p}var", "eps"], [f"{p}var_eps"]),
        helper.make_node("Sqrt", [f"{p}var_eps"], [f"{p}std"]),
        helper.make_node("Reciprocal", [f"{p}std"], [f"{p}inv"]),
        helper.make_node("Mul", [f"{p}inv", "gamma"], [f"{p}scale"]),
        helper.make_node("Mul", [f"{p}centred", f"{p}scale"], [f"{p}scaled"]),
        helper.make_node("Add", [f"{p}scaled", "beta"], [out]),
    ]


def test_written_out_layer_norm_and_gelu_become_one_node_each_and_the_residual_stays():
    import numpy as np
    from onnx import numpy_helper

    constants = [numpy_helper.from_array(np.array(v, np.float32), n)
                 for n, v in (("eps", 1e-6), ("root2", 2 ** 0.5), ("one", 1.0), ("half", 0.5))]
    nodes = [
        helper.make_node("MatMul", ["x", "w0"], ["h"]),
        # pre-norm block: h feeds the LayerNorm and, around it, the residual Add
        *written_out_layer_norm("h", "normed", "ln_"),
        helper.make_node("MatMul", ["normed", "w1"], ["up"]),
        helper.make_node("Div", ["up", "root2"], ["g1"]),
        helper.make_node("Erf", ["g1"], ["g2"]),
        helper.make_node("Add", ["g2", "one"], ["g3"]),
        helper.make_node("Mul", ["up", "g3"], ["g4"]),
        helper.make_node("Mul", ["g4", "half"], ["gelu"]),
        helper.make_node("MatMul", ["gelu", "w2"], ["down"]),
        helper.make_node("Add", ["h", "down"], ["y"]),
    ]
    inits = [weight("w0", 8, 8), weight("w1", 8, 16), weight("w2", 16, 8), weight("gamma", 8), weight("beta", 8),
             int_tensor("last", [-1]), *constants]
    ir = onnx_to_ir(model(nodes, [("x", [1, 4, 8])], ["y"], inits, opset=18), simplify=False)
    assert ops(ir) == ["Gemm", "LayerNormalization", "Gemm", "Gelu", "Gemm", "Add"]
    assert ir.nodes[1].params == 16  # gamma and beta; the epsilon is a setting (one number), not a parameter
    assert sorted(ir.edges) == [("n0", "n1"), ("n0", "n5"), ("n1", "n2"), ("n2", "n3"), ("n3", "n4"), ("n4", "n5")]


def test_arithmetic_that_is_not_a_whole_layer_is_left_alone():
    # A mean and a centring without the variance is not a LayerNorm: nothing is fused.
    nodes = [
        helper.make_node("ReduceMean", ["x", "last"], ["mean"], keepdims=1),
        helper.make_node("Sub", ["x", "mean"], ["centred"]),
        helper.make_node("Relu", ["centred"], ["y"]),
    ]
    ir = onnx_to_ir(model(nodes, [("x", [1, 2, 2, 8])], ["y"], [int_tensor("last", [-1])], opset=18),
                    simplify=False)
    assert ops(ir) == ["ReduceMean", "Sub", "Relu"]


def test_pad_before_conv_and_output_softmax_are_dropped():
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["p"], mode="constant"),
        helper.make_node("Conv", ["p", "a_w"], ["c"], kernel_shape=[3, 3]),
        helper.make_node("Softmax", ["c"], ["y"], axis=1),
    ]
    inits = conv_weights("a") + [int_tensor("pads", [0, 0, 1, 1, 0, 0, 1, 1])]
    ir = onnx_to_ir(model(nodes, [("x", [1, 4, 8, 8])], ["y"], inits), simplify=False)
    assert ops(ir) == ["Conv"]


def test_ids_do_not_depend_on_names_or_stored_node_order():
    def build(prefix, reverse):
        nodes = [
            conv(f"{prefix}a", "x", f"{prefix}t1"),
            conv(f"{prefix}b", f"{prefix}t1", f"{prefix}t2"),
            helper.make_node("Relu", [f"{prefix}t1"], [f"{prefix}t3"]),
            helper.make_node("Add", [f"{prefix}t2", f"{prefix}t3"], ["y"]),
        ]
        if reverse:
            nodes = nodes[::-1]  # not topologically sorted: hnn sorts it itself
        return model(nodes, [("x", [1, 4, 8, 8])], ["y"], conv_weights(f"{prefix}a", f"{prefix}b"))

    first = onnx_to_ir(build("p_", False), simplify=False)
    second = onnx_to_ir(build("renamed_", True), simplify=False)
    assert first.nodes == second.nodes and first.edges == second.edges


def test_cycle_is_refused():
    nodes = [helper.make_node("Add", ["x", "b"], ["a"]), helper.make_node("Relu", ["a"], ["b"])]
    with pytest.raises(InputError, match="cycle"):
        onnx_to_ir(model(nodes, [("x", [1, 4])], ["b"]), simplify=False)


def test_dynamic_input_needs_an_input_shape():
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    built = model(nodes, [("x", ["batch", 3, "height", "width"])], ["y"])
    from hnn.errors import UsageError

    with pytest.raises(UsageError, match="--input-shape"):
        onnx_to_ir(built)
    ir = onnx_to_ir(built, input_shape="1,3,16,16")
    assert ir.meta.input_shapes == {"x": [1, 3, 16, 16]}
    assert ir.nodes[0].output_shape == [1, 3, 16, 16]


def test_a_dynamic_sequence_of_token_ids_gets_the_transformers_front_ends_length():
    """An ONNX export of a text model with dynamic axes ([batch, sequence] of int64 ids): the sequence is
    the transformers front-end's 128 tokens, as `hnn hash` of the folder builds it; a float input's
    dynamic axis (an image's height) still needs --input-shape."""
    from hnn.errors import UsageError
    from hnn.plugins.frontends.transformers_frontend import TEXT_LENGTH

    nodes = [helper.make_node("Gather", ["table", "ids"], ["embedded"]),
             helper.make_node("Cast", ["mask"], ["m"], to=1), helper.make_node("Unsqueeze", ["m", "last"], ["m3"]),
             helper.make_node("Mul", ["embedded", "m3"], ["y"])]
    inputs = [helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "seq"]) for name in ("ids", "mask")]
    graph = helper.make_graph(nodes, "text", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [weight("table", 50, 8), int_tensor("last", [2])])
    text = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    ir = onnx_to_ir(text, simplify=False)
    assert ir.meta.input_shapes == {"ids": [1, TEXT_LENGTH], "mask": [1, TEXT_LENGTH]} and TEXT_LENGTH == 128
    # The ids' length given alone: the mask, of the same symbolic axes, follows it (not the default).
    given = onnx_to_ir(text, input_shape="ids=2,16", simplify=False)
    assert given.meta.input_shapes == {"ids": [2, 16], "mask": [2, 16]}
    image = model([helper.make_node("Relu", ["x"], ["y"])], [("x", [1, 3, "height", 16])], ["y"])
    with pytest.raises(UsageError, match="--input-shape"):
        onnx_to_ir(image, simplify=False)


def test_symbolic_batch_alone_defaults_to_one():
    built = model([helper.make_node("Relu", ["x"], ["y"])], [("x", ["N", 3, 4, 4])], ["y"])
    assert onnx_to_ir(built).meta.input_shapes == {"x": [1, 3, 4, 4]}


def test_single_input_and_nested_concats_take_the_flat_form_and_other_concats_stay():
    # TorchScript: cat([x]) as a Concat of one input; dynamo: cat([cat([a, b]), c]) nested.
    def build(nested):
        nodes = [conv("a", "x", "ta"), conv("b", "x", "tb"), conv("c", "x", "tc"),
                 helper.make_node("Concat", ["ta"], ["single"], axis=1)]
        if nested:
            nodes += [helper.make_node("Concat", ["single", "tb"], ["inner"], axis=-3),
                      helper.make_node("Concat", ["inner", "tc"], ["outer"], axis=1)]
        else:
            nodes += [helper.make_node("Concat", ["single", "tb", "tc"], ["outer"], axis=1)]
        nodes += [helper.make_node("Concat", ["outer", "ta"], ["y"], axis=2)]  # another axis: stays
        return onnx_to_ir(model(nodes, [("x", [1, 4, 8, 8])], ["y"], conv_weights("a", "b", "c")), simplify=False)

    nested, flat = build(nested=True), build(nested=False)
    assert sorted(ops(flat)) == ["Concat", "Concat", "Conv", "Conv", "Conv"]
    assert ops(nested) == ops(flat) and nested.edges == flat.edges


def test_a_kv_cache_concat_into_attention_is_dropped_and_an_input_joined_to_features_stays():
    """cat([past, k]) of a graph input with a computed tensor, read by attention's MatMuls (through a
    Transpose and a constant scale), is a KV cache; the same Concat read by a convolution is a layer."""
    def attention(past: bool, into_conv: bool = False):
        keys = "kp" if past else "k"
        nodes = [helper.make_node("MatMul", ["x", "wq"], ["q"]), helper.make_node("MatMul", ["x", "wk"], ["k"])]
        if past:
            nodes.append(helper.make_node("Concat", ["past", "k"], ["kp"], axis=1))
        nodes += [helper.make_node("Transpose", [keys], ["kt"], perm=[0, 2, 1]),
                  helper.make_node("Mul", ["kt", "scale"], ["ks"]), helper.make_node("MatMul", ["q", "ks"], ["s"]),
                  helper.make_node("Softmax", ["s"], ["y"], axis=-1)]
        inputs = [("x", [1, 4, 16])] + ([("past", [1, 3, 16])] if past else [])
        return model(nodes, inputs, ["y"], [weight("wq", 16, 16), weight("wk", 16, 16),
                                            numpy_helper.from_array(np.array(0.5, np.float32), "scale")])

    plain, cached = (onnx_to_ir(attention(flag), simplify=False) for flag in (False, True))
    assert "Concat" not in ops(cached) and sorted(ops(cached)) == sorted(ops(plain))
    assert op_edges(cached) == op_edges(plain)

    joined = [conv("a", "x", "features"), helper.make_node("Concat", ["x", "features"], ["both"], axis=1),
              conv("b", "both", "y")]
    ir = onnx_to_ir(model(joined, [("x", [1, 4, 8, 8])], ["y"], conv_weights("a") + [weight("b_w", 4, 8, 3, 3)]),
                    simplify=False)
    assert sorted(ops(ir)) == ["Concat", "Conv", "Conv"]
    # A conditioning input joined to features before a Linear layer (tf2onnx's Dense: MatMul + Add): a layer.
    dense = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Concat", ["condition", "r"], ["both"], axis=-1),
             helper.make_node("MatMul", ["both", "w2"], ["m"]), helper.make_node("Add", ["m", "b2"], ["y"])]
    ir = onnx_to_ir(model(dense, [("x", [1, 16]), ("condition", [1, 4])], ["y"],
                          [weight("w1", 16, 8), weight("w2", 12, 3), weight("b2", 3)]), simplify=False)
    assert "Concat" in ops(ir)


def test_a_transposed_weight_counts_as_the_matmuls_parameters_and_makes_it_a_dense_layer():
    # dynamo writes Linear(256 -> 64) as MatMul(x, Transpose(W)); W is too large to fold by value.
    nodes = [helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0]),
             helper.make_node("MatMul", ["x", "wt"], ["y"])]
    ir = onnx_to_ir(model(nodes, [("x", [1, 256])], ["y"], [weight("w", 64, 256)]), simplify=False)
    assert ops(ir) == ["Gemm"] and ir.nodes[0].params == 64 * 256


def test_a_gather_of_every_index_in_order_is_a_reshape_and_a_real_gather_stays():
    nodes = [conv("a", "x", "t1"), helper.make_node("Reshape", ["t1", "flat"], ["t2"]),
             helper.make_node("Gather", ["t2", "all"], ["t3"], axis=0),
             helper.make_node("Gather", ["t3", "some"], ["y"], axis=0)]
    initializers = conv_weights("a") + [int_tensor("flat", [-1]), int_tensor("all", list(range(256))),
                                        int_tensor("some", [3, 1])]
    ir = onnx_to_ir(model(nodes, [("x", [1, 4, 8, 8])], ["y"], initializers), simplify=False)
    assert ops(ir) == ["Conv", "Gather"]


def test_a_slice_of_the_whole_tensor_is_dropped_and_a_flip_or_a_part_stays():
    """TorchScript writes GhostNet's ``cat([x1, x2], 1)[:, :out]`` with ``out`` every channel; dynamo drops it."""
    def sliced(starts, ends, steps):
        return helper.make_node("Slice", ["t1", starts, ends, "axis", steps], [f"s_{starts}_{ends}_{steps}"])

    nodes = [conv("a", "x", "t1"), sliced("zero", "four", "one"), sliced("zero", "two", "one"),
             sliced("last", "before", "back")]  # the whole tensor; a part; a flip of the channels
    nodes.append(helper.make_node("Concat", [node.output[0] for node in nodes[1:]], ["y"], axis=1))
    initializers = conv_weights("a") + [int_tensor(name, [value]) for name, value in
                                        (("zero", 0), ("four", 4), ("two", 2), ("one", 1), ("axis", 1),
                                         ("last", -1), ("before", -5), ("back", -1))]
    ir = onnx_to_ir(model(nodes, [("x", [1, 4, 8, 8])], ["y"], initializers), simplify=False)
    assert sorted(ops(ir)) == ["Concat", "Conv", "Slice", "Slice"]


def test_a_weight_cast_like_the_activation_is_the_weight_as_dynamo_writes_a_group_norms_affine():
    """dynamo: Mul(x, CastLike(Unsqueeze(w, axes), x)); TorchScript: Mul(x, w[C, 1, 1])."""
    import numpy as np

    gamma = np.arange(1, 5, dtype=np.float32)
    plain = [conv("a", "x", "t1"), helper.make_node("Relu", ["t1"], ["t2"]),
             helper.make_node("Mul", ["t2", "gamma_c11"], ["y"])]
    plain_weights = conv_weights("a") + [numpy_helper.from_array(gamma.reshape(4, 1, 1), "gamma_c11")]
    dynamo = plain[:2] + [helper.make_node("Unsqueeze", ["gamma", "axes"], ["g1"]),
                          helper.make_node("CastLike", ["g1", "t2"], ["g2"]),
                          helper.make_node("Mul", ["t2", "g2"], ["y"])]
    dynamo_weights = conv_weights("a") + [numpy_helper.from_array(gamma, "gamma"), int_tensor("axes", [1, 2])]
    irs = [onnx_to_ir(model(nodes, [("x", [1, 4, 8, 8])], ["y"], weights), simplify=False)
           for nodes, weights in ((plain, plain_weights), (dynamo, dynamo_weights))]
    assert irs[0].digest() == irs[1].digest()
    assert [(n.op, n.params) for n in irs[1].nodes] == [("Conv", 144), ("Relu", 0), ("BatchNormalization", 8)]


def test_simplification_sees_no_weight_values():
    """Zero biases (a fresh model's) are kept as a trained model's are, and two branches with equal weights
    on one input stay two: onnxsim would drop an Add of zeros and merge identical branches."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"]),
        helper.make_node("Add", ["h", "bias"], ["b"]),
        helper.make_node("Relu", ["b"], ["r"]),
        conv("left", "image", "l"), conv("right", "image", "r2"),
        helper.make_node("Add", ["l", "r2"], ["y"]),
    ]
    initializers = [weight("w", 32, 32), numpy_helper.from_array(np.zeros(32, np.float32), "bias"),
                    *conv_weights("left", "right")]  # equal weights: ones
    built = model(nodes, [("x", [1, 32]), ("image", [1, 4, 8, 8])], ["r", "y"], initializers)
    for output, shape in zip(built.graph.output, ([1, 32], [1, 4, 8, 8])):  # onnxsim wants output shapes
        output.CopyFrom(helper.make_tensor_value_info(output.name, onnx.TensorProto.FLOAT, shape))
    for simplify in (True, False):
        ir = onnx_to_ir(built, simplify=simplify)
        assert sorted(ops(ir)) == ["Add", "Conv", "Conv", "Gemm", "Relu"], simplify
        assert next(node for node in ir.nodes if node.op == "Gemm").params == 32 * 32 + 32


def test_a_split_becomes_one_slice_per_part_each_read_by_its_own_consumers():
    """TorchScript writes GPT-2's qkv split as one Split, dynamo as three Slices."""
    split = helper.make_node("Split", ["r", "sizes"], ["q", "k", "v"], axis=1)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["r"]), split,
             helper.make_node("Relu", ["q"], ["a"]), helper.make_node("Sigmoid", ["k"], ["b"]),
             helper.make_node("Tanh", ["v"], ["c"])]
    built = model(nodes, [("x", [1, 8])], ["a", "b", "c"], [weight("w", 8, 24), int_tensor("sizes", [8, 8, 8])])
    ir = onnx_to_ir(built, simplify=False)
    slices = [node.id for node in ir.nodes if node.op == "Slice"]
    assert len(slices) == 3 and all(node.output_shape == [1, 8] for node in ir.nodes if node.op == "Slice")
    readers = {ir.nodes[int(dst[1:])].op for src, dst in ir.edges if src in slices}
    assert readers == {"Relu", "Sigmoid", "Tanh"}
    assert all(sum(src == s for src, _ in ir.edges) == 1 for s in slices)


def test_a_dense_layer_read_in_slices_is_one_dense_layer_per_slice():
    """GPT-2's fused qkv projection (and onnxsim's merge of parallel MatMuls) equals three projections."""
    fused = model([helper.make_node("MatMul", ["x", "w"], ["h"]),
                   helper.make_node("Split", ["h", "sizes"], ["q", "k", "v"], axis=1),
                   helper.make_node("Relu", ["q"], ["a"]), helper.make_node("Sigmoid", ["k"], ["b"]),
                   helper.make_node("Tanh", ["v"], ["c"])],
                  [("x", [1, 8])], ["a", "b", "c"], [weight("w", 8, 24), int_tensor("sizes", [8, 8, 8])])
    separate = model([helper.make_node("MatMul", ["x", f"w{part}"], [f"h{part}"]) for part in "qkv"]
                     + [helper.make_node("Relu", ["hq"], ["a"]), helper.make_node("Sigmoid", ["hk"], ["b"]),
                        helper.make_node("Tanh", ["hv"], ["c"])],
                     [("x", [1, 8])], ["a", "b", "c"], [weight(f"w{part}", 8, 8) for part in "qkv"])
    fused_ir, separate_ir = onnx_to_ir(fused, simplify=False), onnx_to_ir(separate, simplify=False)
    assert sorted(ops(fused_ir)) == ["Gemm", "Gemm", "Gemm", "Relu", "Sigmoid", "Tanh"]
    assert [n.params for n in fused_ir.nodes if n.op == "Gemm"] == [64, 64, 64]
    assert fused_ir.digest() == separate_ir.digest()


def test_a_dense_layer_read_in_slices_of_each_head_is_one_dense_layer_per_slice():
    """GPT-NeoX interleaves q, k and v per head (a view [.., heads, 3 * d_head], then slices of its
    last axis): three projections with their features permuted. Slices of the token axis are not."""
    def interleaved(axis, starts):
        nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Reshape", ["h", "view"], ["r"])]
        for part, (start, out) in enumerate(zip(starts, "abc")):
            nodes += [helper.make_node("Slice", ["r", f"s{part}", f"e{part}", "axis"], [f"p{part}"]),
                      helper.make_node(("Relu", "Sigmoid", "Tanh")[part], [f"p{part}"], [out])]
        size = {-1: 4, 1: 2}[axis]
        constants = [int_tensor(f"s{p}", [v]) for p, v in enumerate(starts)]
        constants += [int_tensor(f"e{p}", [v + size]) for p, v in enumerate(starts)]
        return model(nodes, [("x", [6, 8])], ["a", "b", "c"],
                     [weight("w", 8, 24), int_tensor("view", [6, 2, 12]) if axis == -1 else
                      int_tensor("view", [1, 6, 24]), int_tensor("axis", [axis])] + constants)

    separate = model([helper.make_node("MatMul", ["x", f"w{part}"], [f"h{part}"]) for part in "qkv"]
                     + [helper.make_node("Relu", ["hq"], ["a"]), helper.make_node("Sigmoid", ["hk"], ["b"]),
                        helper.make_node("Tanh", ["hv"], ["c"])],
                     [("x", [6, 8])], ["a", "b", "c"], [weight(f"w{part}", 8, 8) for part in "qkv"])
    per_head = onnx_to_ir(interleaved(-1, [0, 4, 8]), simplify=False)
    assert [n.params for n in per_head.nodes if n.op == "Gemm"] == [64, 64, 64]
    assert per_head.digest() == onnx_to_ir(separate, simplify=False).digest()
    by_tokens = onnx_to_ir(interleaved(1, [0, 2, 4]), simplify=False)  # rows 0-1, 2-3, 4-5 of every feature
    assert sorted(ops(by_tokens)).count("Slice") == 3


def test_the_same_computation_of_one_input_written_twice_is_one_node():
    """The exporters write the attention mask's Where once per layer, onnxsim once in all."""
    def built(copies):
        nodes = [helper.make_node("Not", ["m"], ["n"])]
        nodes += [helper.make_node("Where", ["n", "zero", "low"], [f"bias{i}"]) for i in range(copies)]
        nodes += [helper.make_node("Add", ["x", f"bias{i % copies}"], [f"y{i}"]) for i in range(2)]
        nodes += [helper.make_node("Add", ["y0", "y1"], ["y"])]
        graph = helper.make_graph(
            nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
                         helper.make_tensor_value_info("m", TensorProto.BOOL, [1, 4])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
            [numpy_helper.from_array(np.zeros(1, np.float32), "zero"),
             numpy_helper.from_array(np.full(1, -1e9, np.float32), "low")])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    once, twice = onnx_to_ir(built(1), simplify=False), onnx_to_ir(built(2), simplify=False)
    assert ops(twice).count("Where") == 1 and once.digest() == twice.digest()


def test_two_layers_with_equal_weights_on_one_input_stay_two_layers():
    """Common subexpressions are merged by value only for settings: a fresh model's equal weights are weights."""
    nodes = [helper.make_node("MatMul", ["x", "wa"], ["a"]), helper.make_node("MatMul", ["x", "wb"], ["b"]),
             helper.make_node("Relu", ["a"], ["ra"]), helper.make_node("Sigmoid", ["b"], ["sb"])]
    ir = onnx_to_ir(model(nodes, [("x", [1, 8])], ["ra", "sb"], [weight("wa", 8, 8), weight("wb", 8, 8)]),
                    simplify=False)
    assert sorted(ops(ir)) == ["Gemm", "Gemm", "Relu", "Sigmoid"]


def test_a_weight_computed_from_weights_counts_as_the_layers_parameters():
    """Weight normalisation (Wav2Vec2's positional convolution) writes g * v / |v|; onnxsim folds it."""
    v = numpy_helper.from_array(np.random.default_rng(0).normal(size=(32, 16, 9)).astype(np.float32), "v")
    g = numpy_helper.from_array(np.ones((1, 1, 9), np.float32), "g")
    nodes = [helper.make_node("ReduceL2", ["v"], ["norm"], axes=[0, 1], keepdims=1),
             helper.make_node("Div", ["v", "norm"], ["direction"]), helper.make_node("Mul", ["g", "direction"], ["w"]),
             helper.make_node("Conv", ["x", "w"], ["y"], pads=[4, 4])]
    built = model(nodes, [("x", [1, 16, 64])], ["y"], [v, g])
    for simplify in (False, True):
        (conv,) = onnx_to_ir(built, simplify=simplify).nodes
        assert conv.op == "Conv" and conv.params == 32 * 16 * 9, simplify


def _norm_forms():
    """One BatchNorm between two ReLUs, as torch, tf2onnx and Keras's torch backend write it."""
    def constant(name, value, shape):
        return numpy_helper.from_array(np.full(shape, value, np.float32), name)

    def build(middle, constants):
        nodes = [helper.make_node("Relu", ["x"], ["r"])] + middle + [helper.make_node("Relu", ["n"], ["y"])]
        return model(nodes, [("x", [1, 4, 8, 8])], ["y"], constants)

    stats = [constant("gamma", 1.5, (4,)), constant("beta", 0.1, (4,)), constant("mean", 0.2, (4,)),
             constant("var", 2.0, (4,))]
    torch_form = build([helper.make_node("BatchNormalization", ["r", "gamma", "beta", "mean", "var"], ["n"])], stats)
    tf2onnx_form = build(
        [helper.make_node("Mul", ["r", "scale"], ["m"]), helper.make_node("Add", ["m", "shift"], ["n"])],
        [constant("scale", 1.5, (4, 1, 1)), constant("shift", 0.1, (4, 1, 1))])
    keras_torch_form = build(
        [helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 3, 1]),
         helper.make_node("Sub", ["t", "mean"], ["s"]), helper.make_node("Mul", ["s", "scale"], ["m"]),
         helper.make_node("Add", ["m", "shift"], ["a"]),
         helper.make_node("Transpose", ["a"], ["n"], perm=[0, 3, 1, 2])],
        [constant(name, value, (1, 1, 1, 4)) for name, value in (("mean", 0.2), ("scale", 1.5), ("shift", 0.1))])
    return torch_form, tf2onnx_form, keras_torch_form


def test_a_batchnorm_no_conv_absorbs_is_one_node_however_it_is_written():
    from hnn.hasher.structure import structure_of

    irs = [onnx_to_ir(form, simplify=False) for form in _norm_forms()]
    for ir in irs:
        assert ops(ir) == ["Relu", "BatchNormalization", "Relu"]
        assert (ir.nodes[1].params, ir.nodes[1].flops) == (2 * 4, 2 * 4 * 8 * 8)  # a scale and a shift per channel
    assert len({structure_of(ir).topology for ir in irs}) == 1


def test_a_per_channel_scale_after_a_dense_layer_stays_a_mul():
    """ConvNeXt's layer scale: a Mul by a per-channel weight after a Linear, on an N, H, W, C map."""
    scale = numpy_helper.from_array(np.full((4,), 0.5, np.float32), "gamma")
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("MatMul", ["r", "w"], ["h"]),
             helper.make_node("Mul", ["h", "gamma"], ["y"])]
    ir = onnx_to_ir(model(nodes, [("x", [1, 8, 8, 4])], ["y"], [weight("w", 4, 4), scale]), simplify=False)
    assert ops(ir) == ["Relu", "Gemm", "Mul"]


def test_a_concat_also_read_by_another_layer_gives_its_parts_to_the_next_concat():
    """Keras's DenseNet concatenates one new feature map at a time, torchvision's all of them at once."""
    def dense_block(incremental):
        nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Sigmoid", ["a"], ["b"]),
                 helper.make_node("Concat", ["a", "b"], ["c1"], axis=1), helper.make_node("Tanh", ["c1"], ["d"]),
                 helper.make_node("Concat", ["c1", "d"] if incremental else ["a", "b", "d"], ["y"], axis=1)]
        return model(nodes, [("x", [1, 4, 8, 8])], ["y"])

    incremental, at_once = (onnx_to_ir(dense_block(flag), simplify=False) for flag in (True, False))
    assert incremental.digest() == at_once.digest()
    assert sorted(ops(incremental)) == ["Concat", "Concat", "Relu", "Sigmoid", "Tanh"]


def test_gelu_written_with_erfc_as_keras_exports_it_under_tensorflow_is_one_gelu():
    """Keras's own export of ConvNeXt under TensorFlow (ONNX has no Erfc: tf2onnx let it through, with
    a StatefulPartitionedCall per depthwise convolution, in a file onnxruntime refuses)."""
    constants = [numpy_helper.from_array(np.array(v, np.float32), n)
                 for n, v in (("inv_root2", 2 ** -0.5), ("half", 0.5))]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["up"]), helper.make_node("Neg", ["up"], ["g1"]),
             helper.make_node("Mul", ["g1", "inv_root2"], ["g2"]), helper.make_node("Erfc", ["g2"], ["g3"]),
             helper.make_node("Mul", ["up", "g3"], ["g4"]), helper.make_node("Mul", ["g4", "half"], ["y"])]
    ir = onnx_to_ir(model(nodes, [("x", [1, 4, 8])], ["y"], [weight("w", 8, 16), *constants]), simplify=False)
    assert ops(ir) == ["Gemm", "Gelu"]


def test_a_weight_of_one_value_is_no_constant_to_drop_and_compact_indices_are_no_view():
    """A fresh model's zero bias, expanded, is a weight like any other (values never decide the structure);
    a Gather of a computed index tensor of one value repeats a slice, which is no reshape."""
    shapes = {"zeros": np.zeros((1, 4, 1, 64), np.float32), "random": np.random.default_rng(0).normal(
        size=(1, 4, 1, 64)).astype(np.float32)}
    graphs = []
    for name, values in shapes.items():
        nodes = [conv("a", "x", "t1"), helper.make_node("Expand", ["bias", "full"], ["wide"]),
                 helper.make_node("Add", ["t1", "wide"], ["t2"]), helper.make_node("Relu", ["t2"], ["y"])]
        weights = conv_weights("a") + [numpy_helper.from_array(values, "bias"), int_tensor("full", [1, 4, 64, 64])]
        graphs.append(onnx_to_ir(model(nodes, [("x", [1, 4, 64, 64])], ["y"], weights), simplify=False))
    assert ops(graphs[0]) == ops(graphs[1]) == ["Conv", "Add", "Relu"]
    nodes = [helper.make_node("Expand", ["zero", "many"], ["indices"]),
             helper.make_node("Gather", ["x", "indices"], ["t1"], axis=1), helper.make_node("Relu", ["t1"], ["y"])]
    built = model(nodes, [("x", [2, 1, 3])], ["y"], [int_tensor("zero", [0]), int_tensor("many", [5000])])
    assert ops(onnx_to_ir(built, simplify=False)) == ["Gather", "Relu"]
