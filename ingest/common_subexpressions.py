"""Common subexpressions of an ONNX graph, computed once: what onnxsim does, without onnxsim.

`hnn hash` converts without onnxsim and `hnn ingest` and uploads simplified by their authors with
it; onnxsim merges nodes that compute the same thing from the same inputs (the attention mask that
transformers write once per layer, BART's two masks of one input), and the IR must not depend on
whether it ran. Two nodes are the same computation when their op, domain and attributes are equal
and so are their inputs: the same tensor, or constants of equal value. Constants count by value
only when they are settings, not weights (non-float tensors up to MAX_FOLD_ELEMENTS, float ones up
to WEIGHT_ABOVE_ELEMENTS): two branches with equal weights on one input are two layers (a freshly
initialised model has many), so weights count by name alone.
"""

from __future__ import annotations

import hashlib
from math import prod

import onnx

from hnn.ingest.extract import MAX_FOLD_ELEMENTS, WEIGHT_ABOVE_ELEMENTS, constant_tensors
from hnn.weight_store import FLOAT_TYPES, is_hollow

# Ops whose outputs differ between two runs on the same inputs: never one computation.
RANDOM_OPS = frozenset({"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial",
                        "Bernoulli", "Dropout"})


def merge_common_subexpressions(model: onnx.ModelProto) -> int:
    """Drop each node that repeats an earlier one's computation, its readers reading the earlier
    one's outputs; in place, nodes in topological order. Returns how many nodes were dropped."""
    graph = model.graph
    constants = constant_tensors(graph)
    graph_outputs = {output.name for output in graph.output}
    alias: dict[str, str] = {}  # a dropped node's output -> the kept node's
    value_names: dict[str, str] = {}  # a setting's value digest -> the first constant with it
    seen: dict[tuple, onnx.NodeProto] = {}
    kept, dropped = [], 0

    def identity(name: str) -> str:
        name = alias.get(name, name)
        tensor = constants.get(name)
        if tensor is None or not _is_setting(tensor):
            return name
        return value_names.setdefault(_value_digest(tensor), name)

    for node in graph.node:
        if node.input:
            node.input[:] = [alias.get(name, name) for name in node.input]
        if (node.op_type in RANDOM_OPS or node.op_type == "Constant" or not node.output
                or any(name in graph_outputs for name in node.output)
                or any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute)):
            kept.append(node)
            continue
        key = (node.domain, node.op_type, len(node.output),
               tuple(identity(name) if name else "" for name in node.input),
               tuple(sorted(a.SerializeToString(deterministic=True) for a in node.attribute)))
        earlier = seen.setdefault(key, node)
        if earlier is node:
            kept.append(node)
            continue
        for mine, theirs in zip(node.output, earlier.output):
            if mine:
                alias[mine] = theirs
        dropped += 1
    if dropped:
        del graph.node[:]
        graph.node.extend(kept)
        kept_outputs = {name for node in kept for name in node.output}
        stale = [info for info in graph.value_info if info.name in alias and info.name not in kept_outputs]
        for info in stale:
            graph.value_info.remove(info)
    return dropped


def _is_setting(tensor: onnx.TensorProto) -> bool:
    """A constant compared by value: small, held in the file, and not a weight."""
    size = prod(tensor.dims)
    limit = WEIGHT_ABOVE_ELEMENTS if tensor.data_type in FLOAT_TYPES else MAX_FOLD_ELEMENTS
    return size <= limit and not tensor.external_data and not is_hollow(tensor)


def _value_digest(tensor: onnx.TensorProto) -> str:
    try:
        data = onnx.numpy_helper.to_array(tensor).tobytes()
    except (ValueError, TypeError):  # unreadable: compared by name only
        return f"name:{tensor.name}"
    header = f"{tensor.data_type}:{list(tensor.dims)}:".encode()
    return hashlib.blake2b(header + data, digest_size=16).hexdigest()
