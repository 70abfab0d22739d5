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
vocabulary or class head: no layer with weights after them) are "head", a layer that reads at most
4 channels (an image's 3, audio's 1) "data", and a ratio beyond 2^3 either way is one label each way.
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
DATA_CHANNELS = 4  # at most this many input channels: the data's (an image's 3), not a width


def relative_size_labels(graph: Graph) -> dict[str, str]:
    """Node id -> its op, and for a node with weights, its size relative to its inputs (the module's doc)."""
    inputs, outputs = defaultdict(list), defaultdict(list)
    by_id = {node.id: node for node in graph.nodes}
    for source, target in graph.edges:
        inputs[target].append(by_id[source])
        outputs[source].append(target)
    heads = _last_weighted(graph, outputs)
    return {node.id: f"{node.op}|head" if node.id in heads else _label(node, inputs[node.id]) for node in graph.nodes}


def _last_weighted(graph: Graph, outputs: dict[str, list[str]]) -> set[str]:
    """Ids of the nodes with weights after which no node has any (an IR is acyclic: hnn.ingest.ir)."""
    params = {node.id: node.params for node in graph.nodes}
    weighted_after: dict[str, bool] = {}  # node id -> a node with weights follows it
    for node_id in reversed(topological_order(params, outputs)):
        weighted_after[node_id] = any(params[target] or weighted_after[target] for target in outputs[node_id])
    return {node_id for node_id, count in params.items() if count and not weighted_after.get(node_id, False)}


def _label(node: Node, inputs: list[Node]) -> str:
    if not node.params or not node.output_shape:
        return node.op
    first = node.members[0] if node.members else node.op
    if "kernel_shape" in node.attrs and len(node.output_shape) >= 3:
        return f"{node.op}|{_convolution(node, inputs)}"
    if first in MATRIX_OPS:
        return f"{node.op}|{_matrix(node, inputs)}"
    # The channel axis is the last ([batch, sequence, width]; a per-head norm's [batch, sequence, heads, head
    # width]) or, for a feature map, the second ([batch, channels, height, width]). The last is tried first:
    # a feature map's spatial width divides its norm's 4 x channels rarely (never in torchvision at 224).
    for axis in (-1, 1)[:len(node.output_shape)]:
        channels = node.output_shape[axis]
        if channels and node.params / channels in VECTORS_KEPT:
            return f"{node.op}|v{node.params // channels}"
    return f"{node.op}|v+"


def _steps(out: int, into: int) -> str:
    if out <= 0 or into <= 0:
        return "r?"
    steps = round(2 * math.log2(out / into))
    if abs(steps) > STEPS_KEPT:
        return "r+" if steps > 0 else "r-"
    return f"r{steps}"


def _convolution(node: Node, inputs: list[Node]) -> str:
    out = node.output_shape[1]
    into = next((source.output_shape[1] for source in inputs
                 if source.output_shape and len(source.output_shape) == len(node.output_shape)), 0)
    if into <= DATA_CHANNELS:
        return "data"
    group = int(node.attrs.get("group", 1) or 1)
    grouping = "" if group == 1 else "|dw" if group == into else "|g"
    kernel = "x".join(str(size) for size in node.attrs.get("kernel_shape") or [])
    return f"{_steps(out, into)}|k{kernel}{grouping}"


def _matrix(node: Node, inputs: list[Node]) -> str:
    """The weight's input width is its parameters per output unit, less one where that one is a bias:
    read off the inputs' shapes, which hold the width as the last axis or, before a removed reshape,
    as heads x head width (the attention's output into its projection).
    """
    out = node.output_shape[-1]
    per_output = node.params // out if out else 0
    widths = set()
    for source in inputs:
        shape = source.output_shape or []
        if shape:
            widths.add(shape[-1])
        if len(shape) >= 2:
            widths.add(shape[-1] * shape[-2])
        if len(shape) == 4:  # [batch, heads, sequence, head width] or [batch, channels, height, width]
            widths.update((shape[1], shape[1] * shape[-1]))
    bias = per_output - 1 in widths and per_output not in widths
    into = per_output - 1 if bias else per_output
    if into <= DATA_CHANNELS:
        return "data"
    return _steps(out, into) + ("|b" if bias else "")
