"""Node labels for sizes that a uniform width change and a change of input resolution leave alone.

The hasher's size features (hnn.ingest.flops.enc buckets of FLOPs and parameters) move when a copy is
exported at another resolution or every layer is made wider, and the op pattern (hnn.hasher.structure)
ignores sizes altogether, so it cannot tell apart two families with one op graph (a ViT and a DeiT,
which has one more learned token; a Llama and a Mistral, whose keys and values have fewer heads).
What stays is how a layer's size relates to its input's, which is a trait of the architecture:

- a matrix layer (Gemm, MatMul with weights): output over input width, in half-octave steps (4 for a
  feed-forward layer four times as wide, -2 for the keys of grouped-query attention with half the
  heads), and whether it has a bias;
- a convolution: output over input channels likewise, the kernel, and whether it is grouped or
  depthwise;
- another layer with weights: how many vectors of its channel width it holds (1 to 4, else "many"):
  a LayerNorm's scale and bias are 2, RMSNorm's scale 1, a class token 1, a class and a
  distillation token 2.

Sizes set by the data, not the architecture, say nothing: the last layers with weights (a
vocabulary or class head: no layer with weights after them) are "head", the first ones (an
embedding table, a stem convolution reading an image's 3 channels: none before them) "data", and a
ratio beyond 2^3 either way is one label each way.
"""

from __future__ import annotations

import math
from collections import defaultdict

from hnn.ingest.ir import Graph, Node
from hnn.ingest.toposort import topological_order

MATRIX_OPS = frozenset({"Gemm", "MatMul"})
# Half octaves: round(2 log2(out / in)), so 1, 1.41, 2, 2.83, 4 are 0 to 4. Beyond STEPS_KEPT: one label.
STEPS_KEPT = 6
VECTORS_KEPT = (1, 2, 3, 4)
MERGED_VECTORS = 6  # a convolution's parameters beyond its weights: a bias and a merged norm's 4 or 5 vectors


def relative_size_labels(graph: Graph) -> dict[str, str]:
    """Node id -> its op, and for a node with weights, its size relative to its inputs (the module's doc)."""
    inputs, outputs = defaultdict(list), defaultdict(list)
    by_id = {node.id: node for node in graph.nodes}
    for source, target in graph.edges:
        inputs[target].append(by_id[source])
        outputs[source].append(target)
    params = {node.id: node.params for node in graph.nodes}
    order = topological_order(params, outputs)  # an IR is acyclic (hnn.ingest.ir)
    heads = _weighted_without_weights(reversed(order), outputs, params)
    firsts = _weighted_without_weights(order, {target: [s.id for s in sources] for target, sources in inputs.items()},
                                       params)
    return {node.id: f"{node.op}|head" if node.id in heads else f"{node.op}|data" if node.id in firsts
            else _label(node, inputs[node.id]) for node in graph.nodes}


def _weighted_without_weights(order, neighbours: dict[str, list[str]], params: dict[str, int]) -> set[str]:
    """Ids of the nodes with weights that no node with weights precedes, in ``order`` along ``neighbours``
    (each node's neighbours come before it in ``order``): the first layers, or in reverse the last."""
    weighted_before: dict[str, bool] = {}
    for node_id in order:
        weighted_before[node_id] = any(params[other] or weighted_before.get(other, False)
                                       for other in neighbours.get(node_id, ()))
    return {node_id for node_id, count in params.items() if count and not weighted_before.get(node_id, False)}


def _label(node: Node, inputs: list[Node]) -> str:
    if not node.params or not node.output_shape:
        return node.op
    first = node.members[0] if node.members else node.op
    if "kernel_shape" in node.attrs and len(node.output_shape) >= 3:
        return f"{node.op}|{_convolution(node, inputs)}"
    if first in MATRIX_OPS:
        return f"{node.op}|{_matrix(node, inputs)}"
    for axis in _channel_axes(node.output_shape):
        channels = node.output_shape[axis]
        if channels > 0 and node.params / channels in VECTORS_KEPT:
            return f"{node.op}|v{node.params // channels}"
    return f"{node.op}|v+"


def _channel_axes(shape: list[int]) -> tuple[int, ...]:
    """The axes that may hold the channels, likelier first. The last ([batch, sequence, width]; a
    per-head norm's [batch, sequence, heads, head width]; a feature map channels last, as Keras and
    ConvNeXt's blocks lay it out) or the second (a feature map channels first). A feature map is
    square more often than not, so its two equal axes are height and width, not the channels."""
    if len(shape) < 2:
        return (-1,)
    if len(shape) >= 4 and shape[-1] == shape[-2] and shape[1] != shape[2]:
        return (1, -1)
    return (-1, 1)


def _ints(value) -> list[int]:
    """An attribute as a list of ints: an IR written by hand may hold one int where ONNX has a list."""
    values = value if isinstance(value, list) else [value]
    return [item for item in values if isinstance(item, int) and not isinstance(item, bool)]


def _steps(out: int, into: int) -> str:
    if out <= 0 or into <= 0:
        return "r?"
    steps = round(2 * math.log2(out / into))
    if abs(steps) > STEPS_KEPT:
        return "r+" if steps > 0 else "r-"
    return f"r{steps}"


def _convolution(node: Node, inputs: list[Node]) -> str:
    """Output over input channels, kernel and grouping. Which axes hold the channels (a layout
    Transpose removed leaves channels-last maps) is the pair whose weight count the parameters
    match: out x in / group x kernel, plus at most a few vectors of ``out`` (a bias, a merged norm)."""
    kernel = _ints(node.attrs.get("kernel_shape"))
    group = (_ints(node.attrs.get("group", 1)) or [1])[0] or 1
    source = next((source.output_shape for source in inputs
                   if source.output_shape and len(source.output_shape) == len(node.output_shape)), None)
    if source is None:
        return f"r?|k{'x'.join(map(str, kernel))}"  # a graph input: the first layers are "data" (above)
    weights_per_pair = math.prod(kernel) if kernel else 1
    pairs = [(node.output_shape[o], source[i]) for o in _channel_axes(node.output_shape) for i in _channel_axes(source)]
    out, into = next(((out, into) for out, into in pairs
                      if out > 0 and into > 0 and into % group == 0
                      and 0 <= node.params - out * (into // group) * weights_per_pair <= MERGED_VECTORS * out
                      and (node.params - out * (into // group) * weights_per_pair) % out == 0), pairs[0])
    grouping = "" if group == 1 else "|dw" if group == into else "|g"
    return f"{_steps(out, into)}|k{'x'.join(map(str, kernel))}{grouping}"


def _matrix(node: Node, inputs: list[Node]) -> str:
    """The weight's input width is its parameters per output unit, less one where that one is a bias:
    read off the inputs' shapes, which hold the width as the last axis or, before a removed reshape,
    as heads x head width (the attention's output into its projection) or channels x height x width
    (a flattened feature map). A 1x1 convolution on a pooled map made a Gemm writes [units, 1]."""
    shape = node.output_shape
    out = shape[0] if len(shape) == 2 and shape[-1] == 1 else shape[-1]
    per_output = node.params // out if out > 0 else 0
    widths = set()
    for source in inputs:
        dims = source.output_shape or []
        if dims:
            widths.update((dims[-1], math.prod(dims), math.prod(dims[1:]) if len(dims) > 1 else dims[-1]))
        if len(dims) >= 2:
            widths.add(dims[-1] * dims[-2])
        if len(dims) == 4:  # [batch, heads, sequence, head width] or [batch, channels, height, width]
            widths.update((dims[1], dims[1] * dims[-1]))
    bias = per_output - 1 in widths and per_output not in widths
    into = per_output - 1 if bias else per_output
    return _steps(out, into) + ("|b" if bias else "")
