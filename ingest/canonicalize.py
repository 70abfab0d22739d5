"""Canonicalization passes: rewrite exporter and framework idioms into one form.

The same architecture exported by torch's TorchScript exporter, its dynamo
exporter, or Keras through tf2onnx yields different ONNX graphs (docs/ir.md shows how). Each pass below removes one such difference; together
they make the IR depend on the computation, not on who wrote the file.
docs/ir.md lists the passes with the idioms they cover. Each pass returns how
many nodes it changed, so ``hnn ingest -v`` can report them.

Passes run in the order of ``PASSES``: no-ops go first so that later passes
see layer ops adjacent to each other.
"""

from __future__ import annotations

import logging
import math
from typing import Callable

import numpy as np

from hnn.ingest.workgraph import WorkGraph, WorkNode

log = logging.getLogger("hnn.ingest")

# Ops that move or relabel data without computing on it. Reshape-like ops and
# layout Transposes differ most between exporters (Flatten vs Reshape, NHWC
# layout changes in Keras graphs), so they are not part of a layer graph.
LAYOUT_OPS = frozenset(
    {"Identity", "Dropout", "Cast", "CastLike", "Transpose", "Reshape", "Flatten", "Squeeze",
     "Unsqueeze", "Expand"}
)
# Pad in front of these ops is their own padding written out (Keras "same" padding, ZeroPadding2D).
PADDED_OPS = frozenset({"Conv", "ConvTranspose", "MaxPool", "AveragePool"})
GLOBAL_POOL_OF = {"ReduceMean": "GlobalAveragePool", "ReduceMax": "GlobalMaxPool"}
# The final softmax is the classifier's post-processing (Keras applications have it, torchvision does not).
OUTPUT_ACTIVATIONS = frozenset({"Softmax", "LogSoftmax"})
SPATIAL_DEFAULT_ATTRS = ("strides", "dilations")


def remove_layout_ops(graph: WorkGraph) -> int:
    """Drop Identity, Dropout, Cast, Transpose and reshape-like nodes, joining their neighbours."""
    doomed = [key for key, node in graph.nodes.items() if node.op in LAYOUT_OPS]
    for key in doomed:
        graph.remove_bypassing(key)
    return len(doomed)


# Elementwise ops that leave their data input unchanged when the constant operand is
# all ``neutral``, at these operand positions (x - 0 is a no-op, 0 - x is not).
IDENTITY_OPERANDS = {"Add": (0.0, (0, 1)), "Sub": (0.0, (1,)), "Mul": (1.0, (0, 1)), "Div": (1.0, (1,))}


def remove_identity_arithmetic(graph: WorkGraph) -> int:
    """Drop x*1, x/1, x+0 and x-0 (a free way to pad a copied model with layers)."""
    doomed = []
    for key, node in graph.nodes.items():
        rule = IDENTITY_OPERANDS.get(node.op)
        if rule is None or node.data_inputs != 1 or len(node.constants) != 1:
            continue
        neutral, positions = rule
        ((position, values),) = node.constants.items()
        data_shape = node.input_shapes[1 - position] if len(node.input_shapes) == 2 and position in (0, 1) else None
        broadcasts = data_shape is not None and node.output_shape is not None and data_shape != node.output_shape
        if position in positions and values and all(v == neutral for v in values) and not broadcasts:
            doomed.append(key)
    for key in doomed:
        graph.remove_bypassing(key)
    return len(doomed)


INPUT_SCALING_OPS = frozenset({"Add", "Sub", "Mul", "Div"})


def drop_input_scaling(graph: WorkGraph) -> int:
    """Drop the input normalisation ((x - mean) / std, x / 255) a model applies to its own input.

    Keras applications build it in (a Rescaling or Normalization layer, two nodes in
    ConvNeXt and EfficientNet); torchvision leaves it to the data pipeline. It is
    pre-processing, not architecture: an elementwise op by a constant that reads only
    the graph's input, and the chain of them that follows. (tf2onnx makes the mean and
    variance of a Keras Normalization layer graph inputs of their own, so the "constant"
    may be a second, broadcast graph input.)
    """
    removed = 0
    while True:
        doomed = [key for key, node in graph.nodes.items()
                  if node.op in INPUT_SCALING_OPS and not node.preds and node.succs and not node.is_output
                  and (node.data_inputs == 1 or (node.data_inputs == 2 and _one_operand_broadcast(node)))]
        if not doomed:
            return removed
        for key in doomed:
            graph.remove_bypassing(key)
        removed += len(doomed)


def _one_operand_broadcast(node: WorkNode) -> bool:
    """Is one of two operands a small broadcast tensor (a per-channel mean), the other the full shape?"""
    shapes = [shape for shape in node.input_shapes if shape is not None]
    if len(shapes) != 2 or node.output_shape is None or any(d is None or d < 0 for s in shapes for d in s):
        return False
    sizes = sorted(int(np.prod(shape)) for shape in shapes)
    return sizes[0] * 16 <= sizes[1] and max(shapes, key=lambda s: int(np.prod(s))) == node.output_shape


# Elementwise ops by a per-channel constant that a Conv absorbs (its weights and bias take other values).
CHANNEL_AFFINE_OPS = frozenset({"Mul", "Add", "Sub", "Div"})


def fold_channel_affine_into_conv(graph: WorkGraph) -> int:
    """Drop the chain of per-channel (or scalar) Mul, Add, Sub or Div by a constant that directly follows a Conv.

    A convolution followed by a per-channel scale or shift is a convolution with
    other weights or bias: it is how a BatchNormalization folded only halfway by a
    converter arrives (tf2onnx leaves the scale of some Keras depthwise convolutions
    as a Mul), how Keras 3 under the torch backend writes every convolution's bias
    (an Add) and inference BatchNormalization (Sub, Mul, Add) in its own ONNX export,
    and a free way to make a copy look different. The Conv keeps its parameter count:
    folding changes its weights' values, not their number (so both Keras backends give
    the IR that tf2onnx's folded export gives).
    """
    folded = 0
    while True:  # one link of each chain per round: the next reads the Conv once this one is gone
        doomed = [key for key, node in graph.nodes.items() if _folds_into_conv(graph, node)]
        if not doomed:
            return folded
        for key in doomed:
            graph.remove_bypassing(key)
        folded += len(doomed)


def _affine_by_weight(node: WorkNode) -> bool:
    """Mul, Add, Sub or x / c by a weight (c / x is not affine in x)."""
    return (node.op in CHANNEL_AFFINE_OPS and node.params > 0 and node.data_inputs == 1
            and (node.op != "Div" or node.input_shapes[0] == node.output_shape))


def _folds_into_conv(graph: WorkGraph, node: WorkNode) -> bool:
    if not _affine_by_weight(node) or len(node.preds) != 1:
        return False
    (pred_key,) = node.preds
    conv = graph.nodes[pred_key]
    if conv.op != "Conv" or len(conv.succs) != 1 or conv.is_output:
        return False
    channels_last = bool(conv.output_shape and node.output_shape and len(conv.output_shape) > 2
                         and conv.output_shape[1] == node.output_shape[-1] != node.output_shape[1])
    return _per_channel(node, channels_last)


def _per_channel(node: WorkNode, channels_last: bool = False) -> bool:
    """Is the constant operand a scalar or shaped [C, 1, ..., 1] against an N, C, ... output?

    With ``channels_last`` (the node reads a Conv whose channel count is the output's last
    dimension), a [C] or [1, ..., 1, C] constant against an N, H, W, C output also counts.
    """
    varies = _channel_constant(node)
    return varies is not None and (varies[0] in (0, 1) or channels_last and varies[0] == -1)


def channel_affine_to_batchnorm(graph: WorkGraph) -> int:
    """A chain of per-channel Sub, Mul, Add or Div by weights on a feature map is one BatchNormalization.

    An inference BatchNorm that no Conv absorbs (DenseNet's, before each convolution) is written
    as BatchNormalization by torch, as a Mul and an Add by tf2onnx (the Add gone when the shift
    is zero), and as Sub, Mul, Add (channels-last) by Keras 3 under the torch backend; each
    becomes one BatchNormalization with a scale and a shift per channel (2 C parameters, 2 FLOPs
    per element), as torch counts it. Only on feature maps (4-d or more), and not after a dense
    layer: a Mul by a per-channel weight there is ConvNeXt's layer scale, not a norm.
    """
    changed = 0
    for key in list(graph.nodes):
        node = graph.nodes.get(key)
        if node is None or not _channel_affine(node):
            continue
        preds = [graph.nodes[p] for p in node.preds]
        if any(p.op in DENSE_OPS for p in preds) or any(_continues_into(graph, p) == node for p in preds):
            continue  # a layer scale, or not the head of its chain
        chain = [node]
        while (succ := _continues_into(graph, chain[-1])) is not None:
            chain.append(succ)
        channels = _channel_count(node)
        elements = math.prod(node.output_shape)
        for extra in chain[1:]:
            graph.remove_bypassing(extra.key)
        node.op, node.attrs, node.constants = "BatchNormalization", {}, {}
        node.params, node.flops = 2 * channels, 2 * elements
        node.output_shape = chain[-1].output_shape
        changed += len(chain)
    return changed


DENSE_OPS = frozenset({"Gemm", "MatMul"})


def _continues_into(graph: WorkGraph, node: WorkNode) -> WorkNode | None:
    """The next link of a chain of per-channel affine ops: the only reader of ``node``, if both are links."""
    if not _channel_affine(node) or len(node.succs) != 1 or node.is_output:
        return None
    (succ_key,) = node.succs
    succ = graph.nodes[succ_key]
    return succ if _channel_affine(succ) and len(succ.preds) == 1 else None


def _channel_affine(node: WorkNode) -> bool:
    """An Add, Sub, Mul or x / c by a per-channel weight (not a scalar) on a feature map."""
    if not _affine_by_weight(node) or not node.output_shape or len(node.output_shape) < 4:
        return False
    return _channel_count(node) > 1


def _constant_shapes(node: WorkNode) -> list[list[int]]:
    """The shapes of an elementwise node's operands but its data operand (the first of the output's
    shape: on a 1 x 1 map a per-channel constant has that shape too)."""
    shapes, data_seen = [], False
    for shape in node.input_shapes:
        if shape is None or (shape == node.output_shape and not data_seen):
            data_seen = data_seen or shape is not None
            continue
        shapes.append(shape)
    return shapes


def _channel_count(node: WorkNode) -> int:
    """The channels of a per-channel (not scalar) constant operand, on either channel axis; else 0."""
    varies = _channel_constant(node)
    return varies[1] if varies is not None and varies[0] != 0 else 0


def _channel_constant(node: WorkNode) -> tuple[int, int] | None:
    """How an elementwise node's constant operand varies over its output: (0, 1) for a scalar;
    (1, C) for [C, 1, ..., 1] against N, C, ...; (-1, C) for [C] or [1, ..., 1, C] against
    N, ..., C; None when it varies along another axis, or more than one."""
    out = node.output_shape
    if not out or len(out) < 2:
        return None
    for shape in _constant_shapes(node):
        shape = list(shape)
        while len(shape) > len(out) and shape[0] == 1:
            shape.pop(0)
        if len(shape) > len(out):
            return None
        aligned = [1] * (len(out) - len(shape)) + shape  # numpy broadcasting aligns on the right
        varying = [axis for axis, size in enumerate(aligned) if size != 1]
        if not varying:
            return 0, 1
        if len(varying) == 1 and aligned[varying[0]] == out[varying[0]]:
            if varying[0] == 1:
                return 1, out[1]
            if varying[0] == len(out) - 1:
                return -1, out[-1]
        return None
    return None


def sequence_split_to_slices(graph: WorkGraph) -> int:
    """SplitToSequence read by SequenceAt nodes is a split into slices: write it as Slice nodes.

    torch's ``x.chunk(2)`` (ShuffleNetV2's channel split) arrives from the TorchScript
    exporter as two Slice nodes and from the dynamo exporter as SplitToSequence with two
    SequenceAt readers; this pass gives both the TorchScript form.
    """
    changed = 0
    for key in [k for k, node in graph.nodes.items() if node.op == "SplitToSequence"]:
        node = graph.nodes[key]
        readers = [graph.nodes[s] for s in node.succs]
        if not readers or node.is_output or any(reader.op != "SequenceAt" for reader in readers):
            continue
        view = node.input_shapes[0] if node.input_shapes else None
        for reader in readers:  # with the split's input and axis, as a TorchScript Slice has them
            reader.op, reader.attrs = "Slice", {}
            reader.input_shapes, reader.constants = [view], {3: [node.attrs.get("axis", 0)]}
        graph.remove_bypassing(key)
        changed += 1 + len(readers)
    return changed


def flatten_concat(graph: WorkGraph) -> int:
    """A Concat of one input is that input; a Concat feeding a Concat on the same axis is part of it.

    TorchScript writes ``torch.cat([x])`` (DenseNet's first layer of each block) as a Concat of
    one input, which dynamo drops; dynamo keeps ``cat([cat([a, b]), cat([c, d]), e])`` (Inception)
    nested where TorchScript writes one Concat of all. The IR keeps the flat form. A Concat also
    read by other nodes stays, and a Concat on the same axis reading it reads its parts instead.
    """
    changed = 0
    for key in list(graph.nodes):
        node = graph.nodes.get(key)
        if node is None or node.op != "Concat" or node.is_output:
            continue
        if len(node.input_shapes) == 1:
            graph.remove_bypassing(key)
            changed += 1
            continue
        if len(node.input_shapes) != node.data_inputs or _concat_axis(node) is None:
            continue
        outers = [graph.nodes[s] for s in node.succs
                  if graph.nodes[s].op == "Concat" and _concat_axis(graph.nodes[s]) == _concat_axis(node)]
        if outers and len(outers) == len(node.succs):
            graph.remove_bypassing(key)
            changed += 1
            continue
        for outer in outers:
            # Read by others too (Keras's DenseNet: concat(x, new) feeds the next layer's norm and the
            # next concat): the outer Concat reads the parts, as torchvision's cat of all features does.
            outer.preds.discard(key)
            node.succs.discard(outer.key)
            for pred in node.preds:
                outer.preds.add(pred)
                graph.nodes[pred].succs.add(outer.key)
            changed += 1
    return changed


def drop_cache_concats(graph: WorkGraph) -> int:
    """A Concat of a tensor the graph is given with the one tensor it computes, read by attention's
    MatMuls only, is a KV cache: ``cat([past_keys, keys], seq)`` of a decoder exported to take its
    past keys and values as inputs. The layer graph is the export's without a cache (which keeps
    ``keys``): the Concat is dropped. A Concat of computed tensors, or of a graph input read by
    layers (an input image joined to a feature map, a conditioning input before a Linear), stays."""
    doomed = [key for key, node in graph.nodes.items()
              if node.op == "Concat" and not node.constants and len(node.input_shapes) == node.data_inputs
              and len(node.preds) == 1 and node.outside_inputs >= 1 and node.data_inputs == node.outside_inputs + 1
              and node.succs and all(_into_attention(graph, graph.nodes[succ]) for succ in node.succs)]
    for key in doomed:
        graph.remove_bypassing(key)
    return len(doomed)


def _into_attention(graph: WorkGraph, node: WorkNode) -> bool:
    """An attention MatMul (of two computed tensors: ``q @ k^T``, ``p @ v``; a Linear layer is still a
    MatMul with a weight here), or a scaling by a constant read only by them (dynamo scales the keys
    by d^-1/4 before ``q @ k^T``, and the queries alike)."""
    if node.op in ("Mul", "Div"):
        return (bool(node.constants) and node.data_inputs == 1 and bool(node.succs)
                and all(_attention_matmul(graph.nodes[succ]) for succ in node.succs))
    return _attention_matmul(node)


def _attention_matmul(node: WorkNode) -> bool:
    return node.op == "MatMul" and node.params == 0 and node.data_inputs == 2


def _concat_axis(node: WorkNode) -> int | None:
    """The axis as a non-negative number (exporters write -3 and 1 for the same one), if the rank is known."""
    axis = node.attrs.get("axis")
    if axis is None or node.output_shape is None:
        return None
    return axis % len(node.output_shape) if node.output_shape else None


def fold_pad_into_consumer(graph: WorkGraph) -> int:
    """Drop a Pad whose every consumer is a Conv or pooling op (the padding is theirs)."""
    doomed = [
        key
        for key, node in graph.nodes.items()
        if node.op == "Pad" and node.succs and all(graph.nodes[s].op in PADDED_OPS for s in node.succs)
    ]
    for key in doomed:
        graph.remove_bypassing(key)
    return len(doomed)


def reductions_to_global_pool(graph: WorkGraph) -> int:
    """ReduceMean/ReduceMax over all spatial axes is global pooling.

    Spatial axes are 2.. of an N, C, ... tensor, or 1..rank-2 of a channels-last N, H, W, C
    one of rank 4 or more (Keras's squeeze-and-excitation pooling reaches the IR that way:
    tf2onnx moves only convolutions to channels-first).
    """
    changed = 0
    for node in graph.nodes.values():
        target = GLOBAL_POOL_OF.get(node.op)
        shape = node.input_shapes[0] if node.input_shapes else None
        if target is None or shape is None or len(shape) < 3:
            continue
        axes = node.attrs.get("axes", node.constants.get(1))
        if axes is None:
            continue
        rank = len(shape)
        reduced = sorted(axis % rank for axis in axes)
        if reduced == list(range(2, rank)) or (rank >= 4 and reduced == list(range(1, rank - 1))):
            node.op = target
            node.attrs = {}
            changed += 1
    return changed


def matmul_with_weight_to_gemm(graph: WorkGraph) -> int:
    """A MatMul by a weight matrix is a dense layer: call it Gemm and absorb its bias Add.

    torch writes ``Gemm`` (weight, bias); Keras through tf2onnx writes ``MatMul``
    followed by ``Add`` of the bias. A MatMul of two activations (attention) stays MatMul.
    """
    changed = 0
    for key in list(graph.nodes):
        node = graph.nodes.get(key)
        if node is None or node.op != "MatMul" or node.params == 0 or node.data_inputs != 1:
            continue
        node.op = "Gemm"
        changed += 1
        _absorb_bias(graph, key)
    return changed


def _absorb_bias(graph: WorkGraph, key: int) -> None:
    """The Add of a bias vector that alone reads dense layer ``key`` becomes part of it."""
    node = graph.nodes[key]
    if len(node.succs) == 1 and not node.is_output:
        (succ_key,) = node.succs
        bias = graph.nodes[succ_key]
        # A dense layer of one output feature has a bias of one number, which extraction does not
        # count as a weight (it cannot tell it from a setting): ELECTRA's discriminator head, which
        # onnxsim writes as one Gemm.
        single = (node.output_shape and node.output_shape[-1] == 1 and len(bias.constants) == 1
                  and len(next(iter(bias.constants.values()))) == 1)
        if bias.op == "Add" and (bias.params > 0 or single) and bias.data_inputs == 1:
            node.params += bias.params  # (a one-number bias counts for nothing, as in a Gemm); no FLOPs
            node.output_shape = bias.output_shape
            node.is_output = node.is_output or bias.is_output
            graph.nodes.pop(succ_key)
            node.succs = set(bias.succs)
            for succ in bias.succs:
                graph.nodes[succ].preds.discard(succ_key)
                graph.nodes[succ].preds.add(key)


def split_fused_dense(graph: WorkGraph) -> int:
    """A dense layer read only through slices of its features is one dense layer per slice.

    ``q, k, v = qkv(x).split(d)`` (GPT-2's ``c_attn``, fused exports) and three Linears on ``x``
    compute the same thing, and onnxsim writes the second form as the first (it concatenates
    parallel MatMuls on one input); the IR keeps one Gemm per slice, each with its share of the
    FLOPs and weights. GPT-NeoX interleaves the three per head (``qkv.view(b, s, heads, 3 * d_head)``
    then slices of the last axis): the same three Linears with their output features permuted.
    A part sliced again is split again (a partial rotary embedding slices q and k into the
    features it rotates and the rest), so the result does not depend on how the parts were
    fused. Applies only when the slices partition the features exactly.
    """
    changed = 0
    pending = [k for k, node in graph.nodes.items() if node.op == "Gemm"]
    while pending:  # a part may be sliced again (q into its rotary and its plain features): split it too
        key = pending.pop(0)
        dense = graph.nodes[key]
        readers = [graph.nodes[s] for s in dense.succs]
        shares = None if dense.is_output or len(readers) < 2 else _feature_shares(dense, readers)
        if shares is None:
            continue
        pending += [reader.key for reader in readers]
        width = dense.output_shape[-1]
        for reader, share in zip(readers, shares):
            reader.op, reader.attrs, reader.constants = "Gemm", {}, {}
            reader.output_shape = list(dense.output_shape[:-1]) + [share]
            reader.flops, reader.params = dense.flops * share // width, dense.params * share // width
            reader.input_shapes, reader.data_inputs = list(dense.input_shapes), dense.data_inputs
            reader.preds = set(dense.preds)
            for pred in dense.preds:
                graph.nodes[pred].succs.add(reader.key)
        for pred in dense.preds:
            graph.nodes[pred].succs.discard(key)
        del graph.nodes[key]
        for reader in readers:  # onnxsim concatenates the MatMuls but leaves each bias Add
            _absorb_bias(graph, reader.key)
        changed += 1 + len(readers)
    return changed


def _feature_shares(dense: WorkNode, readers: list[WorkNode]) -> list[int] | None:
    """How many of ``dense``'s output features each reader takes, when the readers are Slices that
    partition them; else None.

    A Slice reads either the dense output's last axis itself, or the last axis of a view of it
    whose last axis divides the features (per-head interleaving): a slice of that axis takes the
    same share of every head's features.
    """
    shape = dense.output_shape
    if not shape or any(r.op != "Slice" or r.preds != {dense.key} or not r.output_shape for r in readers):
        return None
    width, total = shape[-1], math.prod(shape)
    rows = total // width
    shares = []
    for reader in readers:
        view = reader.input_shapes[0] if reader.input_shapes else None
        if math.prod(reader.output_shape[:-1]) == rows:  # a slice of the features themselves
            shares.append(reader.output_shape[-1])
        elif (view and math.prod(view) == total and width % view[-1] == 0 and _slices_last_axis(reader, view)
              and list(reader.output_shape[:-1]) == list(view[:-1])):
            shares.append(reader.output_shape[-1] * width // view[-1])
        else:
            return None
    return shares if sum(shares) == width else None


def _slices_last_axis(reader: WorkNode, view: list[int]) -> bool:
    axes = reader.constants.get(3)
    return axes is not None and len(axes) == 1 and axes[0] in (-1, len(view) - 1)


# The ops from which exporters write out each layer (a region grows only over these).
LAYER_NORM_OPS = frozenset({"Add", "Sub", "Mul", "Div", "Neg", "Pow", "Sqrt", "Reciprocal", "ReduceMean"})
GELU_OPS = frozenset({"Add", "Sub", "Mul", "Div", "Neg", "Pow", "Erf", "Erfc", "Tanh"})
HARD_ACTIVATION_OPS = frozenset({"Add", "Mul", "Div", "Clip"})
# How far from its input a written-out layer may reach (LayerNorm from tf2onnx: 5 steps).
REGION_DEPTH = 8
REGION_NODES = 16


def fuse_layer_norm(graph: WorkGraph) -> int:
    """A LayerNorm written out as arithmetic (mean, centre, variance, sqrt, scale) is LayerNormalization.

    torch exports ``LayerNormalization``; Keras through tf2onnx writes the same layer as
    ReduceMean, Sub, Mul, ReduceMean, Add, Sqrt, Reciprocal, Mul, Mul, Mul, Add (Keras
    ConvNeXt: 11 nodes for each of torch's one).
    """
    return _fuse_regions(graph, "ReduceMean", LAYER_NORM_OPS, lambda ops, _: "LayerNormalization"
                         if ops.count("ReduceMean") >= 2 and ("Sqrt" in ops or "Pow" in ops) else None)


def fuse_gelu(graph: WorkGraph) -> int:
    """GELU written out, x * 0.5 * (1 + erf(x / sqrt 2)) or its tanh form, is one ``Gelu`` node.

    torch writes Div, Erf, Add, Mul, Mul; Keras through tf2onnx Mul or Div, Erf, Add, Mul, Mul;
    Keras's own export under TensorFlow (``model.export``) ``0.5 * x * erfc(-x / sqrt 2)``: Neg,
    Mul, Erfc, Mul, Mul; opset 20 has a ``Gelu`` op. All of them become ``Gelu``.
    """
    fused = _fuse_regions(graph, "Erf", GELU_OPS, lambda ops, _: "Gelu" if "Mul" in ops else None)
    fused += _fuse_regions(graph, "Erfc", GELU_OPS, lambda ops, _: "Gelu" if "Mul" in ops else None)
    fused += _fuse_regions(graph, "Tanh", GELU_OPS, lambda ops, _: "Gelu"
                           if "Pow" in ops or ops.count("Mul") >= 4 else None)
    # One cost per element however it is written (onnxsim folds one of the erf form's five ops
    # into a constant in Whisper and Wav2Vec2; the tanh form has eight, opset 20's op one).
    for node in graph.nodes.values():
        if node.op == "Gelu" and node.output_shape:
            node.flops = GELU_FLOPS_PER_ELEMENT * math.prod(node.output_shape)
    return fused


# The erf form as torch writes it, Div, Erf, Add, Mul, Mul: what IRs made before this count held.
GELU_FLOPS_PER_ELEMENT = 5


def fuse_hard_activations(graph: WorkGraph) -> int:
    """relu6(x + 3) / 6 is HardSigmoid, and x times it HardSwish, as torch exports them.

    Keras MobileNetV3 writes them out: Add, Clip, Mul (and a Mul by x for hard-swish);
    tf2onnx folds the + 3 into the bias of a convolution right before, leaving Clip, Mul.
    A ReLU6 alone (a Clip with no scale after it) stays a Clip.
    """
    def name(ops: list[str], reads_entry_twice: bool) -> str | None:
        if not ({"Mul", "Div"} & set(ops)):
            return None
        return "HardSwish" if reads_entry_twice else "HardSigmoid"

    fused = _fuse_regions(graph, "Clip", HARD_ACTIVATION_OPS, name)
    # One FLOP per element, as torch's own op counts, however many ops wrote it out (Keras's three
    # or four: its MobileNetV3 read 3-4 times torch's cost, a size the code could tell apart).
    for node in graph.nodes.values():
        if node.op in ("HardSwish", "HardSigmoid") and node.output_shape:
            node.flops = math.prod(node.output_shape)
    return fused


def _fuse_regions(graph: WorkGraph, seed_op: str, layer_ops: frozenset[str],
                  name_region: Callable[[list[str], bool], str | None]) -> int:
    """Collapse each written-out layer around a ``seed_op`` node into one node.

    The region is the arithmetic (``layer_ops``) between one input node X and one exit:
    X is found by walking back from the seed through such nodes that have a single
    consumer (a node read by several is where the layer's input fans out); the region is
    every such node within REGION_DEPTH steps of X whose inputs all come from X or the
    region. It is fused only when exactly one of its nodes is read from outside (the
    exit) and ``name_region(ops, reads_entry_twice)`` names it (x * f(x) layers read X
    twice); otherwise the graph is left as it is.
    """
    changed = 0
    for seed_key in [k for k, node in graph.nodes.items() if node.op == seed_op]:
        seed = graph.nodes.get(seed_key)
        if seed is None or len(seed.preds) != 1:
            continue
        entry = next(iter(seed.preds))
        while graph.nodes[entry].op in layer_ops and len(graph.nodes[entry].succs) == 1 \
                and len(graph.nodes[entry].preds) == 1:
            entry = next(iter(graph.nodes[entry].preds))
        # The walk stops at a layer op of two inputs; the layer may start before it: the tanh GELU
        # tanh(c (x + 0.044715 x^3)) reads x twice before its Tanh (GPT-2's gelu_new).
        candidates = [entry, *(sorted(graph.nodes[entry].preds) if graph.nodes[entry].op in layer_ops else [])]
        for entry in candidates:
            region = _region_after(graph, entry, layer_ops)
            exits = [key for key in region if graph.nodes[key].is_output or graph.nodes[key].succs - region]
            if seed_key not in region or len(exits) != 1 or len(region) > REGION_NODES:
                continue
            reads_entry_twice = len(graph.nodes[entry].succs & region) > 1
            new_op = name_region([graph.nodes[key].op for key in region], reads_entry_twice)
            if new_op is not None:
                _collapse(graph, entry, region, exits[0], new_op)
                changed += len(region)
                break
    return changed


def _region_after(graph: WorkGraph, entry: int, layer_ops: frozenset[str]) -> set[int]:
    """``layer_ops`` nodes within REGION_DEPTH of ``entry`` whose inputs are ``entry`` or each other."""
    region, frontier = set(), {s for s in graph.nodes[entry].succs if graph.nodes[s].op in layer_ops}
    for _ in range(REGION_DEPTH):
        region |= frontier
        frontier = {s for key in frontier for s in graph.nodes[key].succs
                    if s not in region and graph.nodes[s].op in layer_ops}
        if not frontier:
            break
    pruned = True
    while pruned:  # a node fed from outside (a residual Add, a second branch) is not the layer's
        doomed = {key for key in region if not graph.nodes[key].preds <= region | {entry}}
        region -= doomed
        pruned = bool(doomed)
    return region


def _collapse(graph: WorkGraph, entry: int, region: set[int], exit_key: int, new_op: str) -> None:
    """Replace ``region`` by its exit node, renamed ``new_op``, reading ``entry``, with the region's costs."""
    exit_node = graph.nodes[exit_key]
    exit_node.flops = sum(graph.nodes[key].flops for key in region)
    exit_node.params = sum(graph.nodes[key].params for key in region)
    exit_node.op, exit_node.attrs, exit_node.constants, exit_node.data_inputs = new_op, {}, {}, 1
    exit_node.input_shapes = [graph.nodes[entry].output_shape]
    for key in region - {exit_key}:
        graph.nodes.pop(key)
    graph.nodes[entry].succs = (graph.nodes[entry].succs - region) | {exit_key}
    exit_node.preds = {entry}


def pointwise_conv_on_a_point_to_gemm(graph: WorkGraph) -> int:
    """A 1x1 convolution (group 1) of a 1x1 feature map is a dense layer: call it Gemm.

    Keras MobileNetV3 writes its classifier as 1x1 Conv2D layers after global pooling, and
    squeeze-and-excitation blocks of either framework may use a 1x1 Conv or a Linear for the
    same product. Same FLOPs and parameters either way.
    """
    changed = 0
    for node in graph.nodes.values():
        if node.op != "Conv" or int(node.attrs.get("group", 1)) != 1:
            continue
        data = node.input_shapes[0] if node.input_shapes else None
        weight = node.input_shapes[1] if len(node.input_shapes) > 1 else None
        kernel = node.attrs.get("kernel_shape") or (weight[2:] if weight else None)
        if data is None or kernel is None or len(data) < 3 or any(int(k) != 1 for k in kernel):
            continue
        if all(d == 1 for d in data[2:]):
            node.op, node.attrs = "Gemm", {}
            changed += 1
    return changed


def drop_output_softmax(graph: WorkGraph) -> int:
    """Remove a Softmax or LogSoftmax that only produces a graph output."""
    doomed = [
        key
        for key, node in graph.nodes.items()
        if node.op in OUTPUT_ACTIVATIONS and node.is_output and not node.succs and node.preds
    ]
    for key in doomed:
        graph.remove_bypassing(key)
    return len(doomed)


def dense_outputs_as_matrices(graph: WorkGraph) -> int:
    """A dense layer's output as a matrix: rows (every leading dimension), then its features.

    A Linear on a [batch, tokens, features] tensor is a Gemm on the [batch * tokens, features]
    matrix between two Reshapes when TorchScript writes it, a MatMul on the 3-d tensor when dynamo
    does; the Reshapes are gone by now, so only the shapes differ: the IR keeps the matrix."""
    changed = 0
    for node in graph.nodes.values():
        shape = node.output_shape
        if node.op == "Gemm" and shape is not None and len(shape) > 2:
            node.output_shape = [math.prod(shape[:-1]), shape[-1]]
            changed += 1
    # The activation of a dense layer on tokens has its shape: onnxsim moves TorchScript's Reshape
    # back to [batch, tokens, features] from before BERT's GELU to after it. (Only token tensors:
    # the 1x1 convolutions of squeeze-excitation blocks keep the shapes they always had.)
    for node in graph.nodes.values():
        if node.op in MATRIX_ACTIVATIONS and len(node.preds) == 1 and node.output_shape \
                and len(node.output_shape) == 3:
            dense = graph.nodes[next(iter(node.preds))]
            if (dense.op == "Gemm" and dense.output_shape and node.output_shape != dense.output_shape
                    and math.prod(node.output_shape) == math.prod(dense.output_shape)):
                node.output_shape = list(dense.output_shape)
                changed += 1
    return changed


# Elementwise activations that keep a dense layer's output shape (dense_outputs_as_matrices).
MATRIX_ACTIVATIONS = frozenset({"Relu", "Gelu", "Sigmoid", "Tanh", "Silu", "HardSwish", "HardSigmoid", "Elu",
                                "LeakyRelu", "Selu", "Softplus", "Mish", "Clip"})


def one_over_to_reciprocal(graph: WorkGraph) -> int:
    """``1 / x`` is Reciprocal: TorchScript writes RMSNorm's ``rsqrt`` as Div(1, Sqrt), dynamo as
    Reciprocal(Sqrt). The FLOPs are the same (one per element)."""
    changed = 0
    for node in graph.nodes.values():
        if node.op == "Div" and node.data_inputs == 1 and node.constants.get(0) == [1.0]:
            node.op, node.constants = "Reciprocal", {}
            changed += 1
    return changed


def remove_fixed_selections(graph: WorkGraph) -> int:
    """Drop a GatherND that picks fixed positions of its data (its indices are constants, and it holds no
    weights): a rearrangement, as a Reshape is. dynamo writes the attention mask's broadcast indexing
    ``mask[batch, None, None, key]`` so; TorchScript writes layout ops, which remove_layout_ops drops."""
    doomed = [key for key, node in graph.nodes.items()
              if node.op == "GatherND" and node.data_inputs == 1 and node.params == 0 and not node.is_output]
    for key in doomed:
        graph.remove_bypassing(key)
    return len(doomed)


def remove_whole_slices(graph: WorkGraph) -> int:
    """Drop a Slice that keeps the whole tensor (its output shape is its input's, steps 1). TorchScript
    writes GhostNet's ``cat([x1, x2], 1)[:, :out]`` so when ``out`` is every channel; dynamo drops it.
    A step of -1 (``flip``) keeps the shape too and moves data, so a Slice with other steps stays."""
    doomed = []
    for key, node in graph.nodes.items():
        if node.op != "Slice" or node.data_inputs != 1 or node.is_output or len(node.input_shapes) < 1:
            continue
        shape, steps = node.input_shapes[0], node.constants.get(4, [1])
        whole = shape is not None and shape == node.output_shape and all(d is not None and d > 0 for d in shape)
        if whole and all(step == 1 for step in steps):
            doomed.append(key)
    for key in doomed:
        graph.remove_bypassing(key)
    return len(doomed)


def remove_nan_guards(graph: WorkGraph) -> int:
    """Drop ``Where(IsNaN(x), 0, x)``: a guard against the NaNs of a fully masked softmax row, which
    dynamo writes after attention with no mask (ViT, Wav2Vec2) and TorchScript does not. It computes
    nothing for any input a model is meant to see; the IsNaN and the Where go, x feeds the Where's readers."""
    changed = 0
    for key in [k for k, node in graph.nodes.items() if node.op == "IsNaN"]:
        guard = graph.nodes.get(key)
        if guard is None or len(guard.preds) != 1 or len(guard.succs) != 1 or guard.is_output:
            continue
        (source,), (where_key,) = guard.preds, guard.succs
        where = graph.nodes[where_key]
        if where.op != "Where" or where.preds != {key, source}:
            continue
        graph.nodes[source].succs.discard(key)
        where.preds.discard(key)
        del graph.nodes[key]
        graph.remove_bypassing(where_key)
        changed += 2
    return changed


def canonical_attributes(graph: WorkGraph) -> int:
    """Keep only kernel shape, strides, dilations and group, with ONNX defaults filled in."""
    for node in graph.nodes.values():
        node.attrs = _layer_attributes(node)
    return 0


def _layer_attributes(node: WorkNode) -> dict:
    attrs = {}
    if node.op in ("Conv", "ConvTranspose"):
        weight = node.input_shapes[1] if len(node.input_shapes) > 1 else None
        kernel = node.attrs.get("kernel_shape") or (list(weight[2:]) if weight else None)
        if kernel is not None:
            attrs["kernel_shape"] = [int(k) for k in kernel]
            for name in SPATIAL_DEFAULT_ATTRS:
                attrs[name] = [int(v) for v in node.attrs.get(name, [1] * len(kernel))]
        attrs["group"] = int(node.attrs.get("group", 1))
    elif node.op in ("MaxPool", "AveragePool", "LpPool"):
        kernel = [int(k) for k in node.attrs.get("kernel_shape", [])]
        attrs["kernel_shape"] = kernel
        attrs["strides"] = [int(v) for v in node.attrs.get("strides", [1] * len(kernel))]
    return attrs


PASSES: tuple[Callable[[WorkGraph], int], ...] = (
    remove_layout_ops,
    drop_cache_concats,  # after remove_layout_ops: the cache's Concat feeds attention through Transposes
    remove_fixed_selections,
    remove_whole_slices,
    remove_identity_arithmetic,
    drop_input_scaling,
    fold_channel_affine_into_conv,
    sequence_split_to_slices,
    flatten_concat,
    fold_pad_into_consumer,
    fuse_layer_norm,  # before reductions_to_global_pool: a LayerNorm's mean over the last axis of an
    fuse_gelu,        # [N, T, D] tensor would otherwise pass for global pooling over T
    fuse_hard_activations,
    channel_affine_to_batchnorm,  # after the fusions: a written-out LayerNorm ends in a Mul and an Add
    reductions_to_global_pool,
    matmul_with_weight_to_gemm,
    split_fused_dense,
    pointwise_conv_on_a_point_to_gemm,
    dense_outputs_as_matrices,
    drop_output_softmax,
    one_over_to_reciprocal,
    remove_nan_guards,
    canonical_attributes,
)


def canonicalize(graph: WorkGraph) -> dict[str, int]:
    """Run every pass in order; returns the number of nodes each pass changed."""
    counts = {}
    for apply in PASSES:
        counts[apply.__name__] = apply(graph)
        if counts[apply.__name__]:
            log.info("canonicalize: %s changed %d node(s)", apply.__name__, counts[apply.__name__])
    return counts
