"""From a prepared ONNX ModelProto to a mutable layer graph (:class:`WorkGraph`).

Only *data* nodes become graph nodes: a node is data when one of its
data-carrying inputs depends on a graph input. Constants, weights and
shape-only computations (``Shape -> Gather -> Unsqueeze -> Concat`` feeding a
Reshape) depend on no graph input, or only on a tensor's shape, so they drop
out. Each data node gets its FLOPs (:mod:`hnn.ingest.flops`) and parameter
count: the elements of the floating-point weights (initializers) it consumes,
BatchNormalization's running mean and variance excluded as they are buffers, not
learnable parameters.
"""

from __future__ import annotations

from math import prod
from typing import Any

import onnx
from onnx import helper

from hnn.errors import InputError
from hnn.ingest.flops import node_flops
from hnn.ingest.toposort import topological_order as kahn
from hnn.ingest.uniform_constants import fold_uniform
from hnn.ingest.workgraph import WorkGraph, WorkNode
from hnn.weight_store import FLOAT_TYPES, is_hollow

# Ops whose output describes a tensor's shape or type, never its values.
SHAPE_ONLY_OPS = frozenset({"Shape", "Size", "ConstantOfShape", "EyeLike", "Range", "RandomNormalLike",
                            "RandomUniformLike", "Constant"})
# For these ops only the listed input positions carry data; the others are shapes, types or indices.
DATA_INPUTS = {
    "CastLike": (0,),
    "Reshape": (0,),
    "Expand": (0,),
    "Tile": (0,),
    "Slice": (0,),
    "Pad": (0,),
    "Resize": (0,),
    "Upsample": (0,),
    "Squeeze": (0,),
    "Unsqueeze": (0,),
    "ReduceMean": (0,),
    "ReduceSum": (0,),
    "ReduceMax": (0,),
    "ReduceMin": (0,),
    "Split": (0,),
    "TopK": (0,),
}
# Inputs that hold learnable parameters, where not all float initializers do: running
# statistics of BatchNormalization (inputs 3, 4) are buffers; Clip's bounds, Pad's value and
# Resize's scales are settings.
PARAMETER_INPUTS = {"BatchNormalization": (1, 2), "Clip": (), "Pad": (), "Resize": (), "Upsample": ()}
# Small integer constants (axes, pads) are kept so canonicalization can read them.
SMALL_CONSTANT = 16
# Float initializers above this many elements are weights, whose values never decide the structure
# (onnx_prepare hides them from onnxsim; common_subexpressions never compares them by value).
WEIGHT_ABOVE_ELEMENTS = 16


def _shape_of(value_info: onnx.ValueInfoProto) -> list[int] | None:
    tensor_type = value_info.type.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    dims = []
    for dim in tensor_type.shape.dim:
        if not dim.HasField("dim_value"):
            return None
        dims.append(dim.dim_value)
    return dims


# Attributes hnn computes with (FLOPs, canonical attributes), and the kind ONNX defines for them.
# A file that gives them another kind is malformed; saying so beats a TypeError deep inside.
INT_LIST_ATTRIBUTES = frozenset({"kernel_shape", "strides", "dilations", "pads", "axes", "perm"})
INT_ATTRIBUTES = frozenset({"group", "axis", "transA", "transB", "keepdims"})
SCALAR_ATTRIBUTE_TYPES = {onnx.AttributeProto.INT, onnx.AttributeProto.FLOAT, onnx.AttributeProto.STRING,
                          onnx.AttributeProto.INTS, onnx.AttributeProto.FLOATS, onnx.AttributeProto.STRINGS}


def _attributes(node: onnx.NodeProto) -> dict[str, Any]:
    """Numeric and string attributes, as JSON-ready values; subgraphs and tensors stay opaque."""
    attrs = {}
    for attr in node.attribute:
        if attr.type not in SCALAR_ATTRIBUTE_TYPES:
            continue  # If/Loop bodies, tensor-valued attributes: not part of the layer's description
        value = helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode(errors="replace")
        elif isinstance(value, list):
            value = [v.decode(errors="replace") if isinstance(v, bytes) else v for v in value]
        kind_ok = (attr.name not in INT_LIST_ATTRIBUTES or attr.type == onnx.AttributeProto.INTS) and (
            attr.name not in INT_ATTRIBUTES or attr.type == onnx.AttributeProto.INT)
        if not kind_ok:
            expected = "a list of ints" if attr.name in INT_LIST_ATTRIBUTES else "an int"
            raise InputError(f"node {node.name or node.op_type!r}: attribute {attr.name!r} must be {expected}")
        attrs[attr.name] = value
    return attrs


def topological_order(nodes: list[onnx.NodeProto], known: set[str]) -> list[int]:
    """Indices of ``nodes`` in an order where producers come first.

    ``known`` holds the graph's inputs and initializers. ONNX requires nodes to be
    stored sorted, but a hostile or broken file may not be; a cycle, a tensor with
    two producers, or an input nothing produces is an error. A node with subgraphs
    (If, Loop, Scan) also depends on the outer tensors its subgraphs read, so a cycle
    through a branch is one too.
    """
    producer = {}
    for index, node in enumerate(nodes):
        for name in node.output:
            if not name:
                continue
            if name in producer or name in known:  # SSA: one producer per tensor, or the wiring is ambiguous
                raise InputError(f"tensor {name!r} is produced twice (duplicate outputs); "
                                 "each tensor of an ONNX graph has one producer")
            producer[name] = index
    consumers: dict[int, list[int]] = {i: [] for i in range(len(nodes))}
    for index, node in enumerate(nodes):
        dangling = next((name for name in node.input if name and name not in producer and name not in known), None)
        if dangling is not None:
            raise InputError(f"input {dangling!r} of node {node.name or node.op_type!r} is not produced by any node, "
                             "initializer or graph input (a dangling input)")
        read = [*node.input, *outer_references(node)]
        deps = {producer[name] for name in read if name and name in producer and name not in known}
        if index in deps:
            raise InputError(f"node {node.name or node.op_type!r} consumes its own output (a cycle)")
        for dep in deps:
            consumers[dep].append(index)
    order = kahn(range(len(nodes)), consumers)
    if len(order) != len(nodes):
        raise InputError("the ONNX graph has a cycle; a model's data-flow graph must be acyclic")
    return order


def outer_references(node: onnx.NodeProto) -> set[str]:
    """Tensors that the subgraphs of ``node`` read from the enclosing graph (ONNX's implicit inputs)."""
    found: set[str] = set()
    for attribute in node.attribute:
        for graph in [attribute.g, *attribute.graphs] if attribute.type in (onnx.AttributeProto.GRAPH,
                                                                            onnx.AttributeProto.GRAPHS) else []:
            defined = {value.name for value in [*graph.input, *graph.initializer]}
            defined |= {name for inner in graph.node for name in inner.output}
            for inner in graph.node:
                found |= {name for name in [*inner.input, *outer_references(inner)] if name and name not in defined}
            found |= {output.name for output in graph.output if output.name not in defined}
    return found


def sort_nodes(model: onnx.ModelProto) -> None:
    """Store the nodes in topological order, as ONNX requires and shape inference assumes."""
    graph = model.graph
    known = {init.name for init in graph.initializer} | {inp.name for inp in graph.input}
    order = topological_order(list(graph.node), known)
    if order != list(range(len(order))):
        nodes = [graph.node[i] for i in order]
        del graph.node[:]
        graph.node.extend(nodes)


def _known_shapes_and_constants(graph: onnx.GraphProto) -> tuple[dict, dict[str, onnx.TensorProto]]:
    """Declared or inferred shapes of every tensor, and the constant tensors (with their shapes)."""
    shapes = {vi.name: _shape_of(vi) for vi in [*graph.input, *graph.value_info, *graph.output]}
    constants = constant_tensors(graph)
    for name, tensor in constants.items():
        shapes[name] = list(tensor.dims)
    return shapes, constants


def extract(model: onnx.ModelProto) -> WorkGraph:
    """Build the layer graph of the data nodes of a prepared model (see the module docstring)."""
    graph = model.graph
    shapes, initializers = _known_shapes_and_constants(graph)
    graph_outputs = {out.name for out in graph.output}
    data_tensors = {inp.name for inp in graph.input if inp.name not in initializers}
    producer: dict[str, int] = {}
    work: dict[int, WorkNode] = {}
    compact: set[str] = set()  # one-value constants stored as one element (hnn.ingest.uniform_constants)

    for index in topological_order(list(graph.node), {t.name for t in [*graph.initializer, *graph.input]}):
        node = graph.node[index]
        op = node.op_type
        carrying = DATA_INPUTS.get(op, range(len(node.input)))
        data_inputs = [node.input[i] for i in carrying if i < len(node.input) and node.input[i] in data_tensors]
        if op in SHAPE_ONLY_OPS or not data_inputs:
            # Only fold_uniform reads a compact tensor's values right; Shape and Size read its true shape.
            if op not in ("Shape", "Size") and any(name in compact for name in node.input):
                folded = fold_uniform(node, initializers, shapes, compact, MAX_FOLD_ELEMENTS, WEIGHT_ABOVE_ELEMENTS)
            else:
                folded = (_fold_constant(node, initializers, shapes) or _relaid_weight(node, initializers, shapes)
                          or _gathered_weight(node, initializers, shapes)
                          or _derived_weight(node, initializers, shapes) or _cast_like_weight(node, initializers)
                          or fold_uniform(node, initializers, shapes, compact, MAX_FOLD_ELEMENTS,
                                          WEIGHT_ABOVE_ELEMENTS))
            for name, value in folded.items():
                initializers[name] = value
                if name not in compact:  # fold_uniform gave a compact tensor its true shape
                    shapes[name] = list(value.dims)
            continue
        data_tensors.update(name for name in node.output if name)
        for name in node.output:
            producer[name] = index
        if op == "Split" and len([name for name in node.output if name]) > 1:
            _split_as_slices(node, index, work, producer, shapes, data_inputs, graph_outputs, len(graph.node))
            continue
        if (op == "Gather" and not compact.intersection(node.input)  # compact indices: a repeat, not a view
                and _gathers_everything_in_order(node, initializers, shapes)):
            op = "Reshape"  # dynamo's as_strided (torch's adaptive pooling on channels-last data)
        attrs = _attributes(node)
        input_shapes = [shapes.get(name) for name in node.input]
        output_shapes = [shapes.get(name) for name in node.output]
        work[index] = WorkNode(
            key=index,
            op=op,
            attrs=attrs,
            output_shape=output_shapes[0] if output_shapes else None,
            input_shapes=input_shapes,
            flops=node_flops(op, attrs, input_shapes, output_shapes),
            params=_parameter_count(node, initializers),
            constants=_small_constants(node, initializers),
            data_inputs=len(set(data_inputs)),
            outside_inputs=len({name for name in data_inputs if name not in producer}),
            preds={producer[name] for name in data_inputs if name in producer},
            is_output=any(name in graph_outputs for name in node.output),
        )
    for key, node in work.items():
        for pred in node.preds:
            work[pred].succs.add(key)
    if not work:
        raise InputError("the ONNX graph computes nothing from its inputs (no data-dependent nodes)")
    return WorkGraph(work)


def _split_as_slices(node: onnx.NodeProto, index: int, work: dict[int, WorkNode], producer: dict[str, int],
                     shapes: dict, data_inputs: list[str], graph_outputs: set[str], node_count: int) -> None:
    """A Split into several outputs as one Slice node per output, each read by its own consumers.

    TorchScript writes GPT-2's ``qkv.split(d, dim=2)`` as one Split, dynamo as three Slices (and
    ``x.chunk(2)`` as two Slices, sequence_split_to_slices): one node per part is the IR's form.
    The first part keeps the Split's key; the others get keys past every node's index."""
    preds = {producer[name] for name in data_inputs if name in producer}
    for part, name in enumerate(name for name in node.output if name):
        key = index if part == 0 else node_count * (part + 1) + index  # unique: beyond every node index
        producer[name] = key
        work[key] = WorkNode(key=key, op="Slice", attrs={}, output_shape=shapes.get(name),
                             input_shapes=[shapes.get(node.input[0])], flops=0, params=0,
                             data_inputs=len(set(data_inputs)), preds=set(preds), is_output=name in graph_outputs)


def _gathers_everything_in_order(node: onnx.NodeProto, tensors: dict[str, onnx.TensorProto],
                                 shapes: dict[str, list[int] | None]) -> bool:
    """A Gather whose constant indices are 0, 1, ..., n - 1 over an axis of length n: a reshape."""
    import numpy as np

    if len(node.input) < 2 or node.input[1] not in tensors or shapes.get(node.input[0]) is None:
        return False
    data_shape, indices = shapes[node.input[0]], tensors[node.input[1]]
    axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
    if not -len(data_shape) <= axis < len(data_shape) or prod(indices.dims) != data_shape[axis]:
        return False
    if prod(indices.dims) > MAX_FOLD_ELEMENTS * 256:  # a bound on what is read of an untrusted file
        return False
    try:
        values = onnx.numpy_helper.to_array(indices).reshape(-1)
    except ValueError:
        return False
    return values.dtype.kind in "iu" and bool((values == np.arange(values.size)).all())


def _constant_value(node: onnx.NodeProto) -> onnx.TensorProto | None:
    """The tensor of a Constant node, whichever of its value attributes it uses."""
    import numpy as np

    for attr in node.attribute:
        if attr.name == "value" and attr.type == onnx.AttributeProto.TENSOR:
            return attr.t
        if attr.name in ("value_int", "value_ints", "value_float", "value_floats"):
            dtype = np.int64 if "int" in attr.name else np.float32
            return onnx.numpy_helper.from_array(np.array(helper.get_attribute_value(attr), dtype=dtype))
    return None


def constant_tensors(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    """Initializers, plus outputs of Constant nodes and of Identity nodes over constants.

    The TorchScript exporter shares weights through ``Identity(initializer)``; without
    onnxsim to fold those, the weights would not be seen as the consuming node's parameters.
    """
    tensors = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and len(node.output) == 1:
            value = _constant_value(node)
            if value is not None:
                tensors[node.output[0]] = value
        elif node.op_type == "Identity" and node.input and node.input[0] in tensors:
            tensors[node.output[0]] = tensors[node.input[0]]
    return tensors


# Constant subgraphs (shape computations, axes built by Reshape of a Constant) are
# evaluated when small, so that what onnxsim would fold is known without onnxsim:
# ingestion then gives the same IR with or without simplification.
MAX_FOLD_ELEMENTS = 4096
GENERATORS = frozenset({"ConstantOfShape", "Expand", "Tile", "Range", "Resize", "Upsample", "RandomNormal",
                        "RandomUniform", "EyeLike", "Pad", "Concat", "OneHot"})


def _fold_constant(node: onnx.NodeProto, tensors: dict[str, onnx.TensorProto],
                   shapes: dict[str, list[int] | None]) -> dict[str, onnx.TensorProto]:
    """Outputs of a node computed from constants (or a Shape of a known shape); {} when not foldable."""
    import numpy as np

    if (node.op_type == "Size" and node.input and shapes.get(node.input[0]) is not None
            and all(isinstance(d, int) and d >= 0 for d in shapes[node.input[0]])):
        return {node.output[0]: onnx.numpy_helper.from_array(np.array(prod(shapes[node.input[0]]), dtype=np.int64),
                                                            node.output[0])}
    if node.op_type == "Shape" and node.input and shapes.get(node.input[0]) is not None:
        dims = shapes[node.input[0]]
        attrs = {a.name: a.i for a in node.attribute}
        start, end = attrs.get("start", 0), attrs.get("end", len(dims))
        return {node.output[0]: onnx.numpy_helper.from_array(np.array(dims[start:end], dtype=np.int64),
                                                            node.output[0])}
    inputs = [name for name in node.input if name]
    if node.op_type in ("Constant", "Identity") or not inputs or any(name not in tensors for name in inputs):
        return {}
    if any(prod(tensors[name].dims) > MAX_FOLD_ELEMENTS or is_hollow(tensors[name]) for name in inputs):
        return {}  # a hollow input (a weight's size without its values) has nothing to compute with
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
        return {}
    # A small input can declare a huge output (ConstantOfShape of [10^6, 10^6]): fold only
    # outputs whose inferred size is known and small, and never an unknown-size generator.
    for name in node.output:
        shape = shapes.get(name) or _expanded_shape(node, tensors)
        if shape is None and node.op_type in GENERATORS:
            return {}
        if shape is not None and prod(shape) > MAX_FOLD_ELEMENTS:
            return {}
    try:
        from onnx.reference import ReferenceEvaluator

        feeds = {name: onnx.numpy_helper.to_array(tensors[name]) for name in inputs}
        own = OWN_KERNELS.get(node.op_type)
        results = own(node, *feeds.values()) if own else ReferenceEvaluator(node).run(None, feeds)
    except MemoryError:
        raise
    except Exception:  # an op the reference runtime lacks or rejects: leave it unfolded
        return {}
    folded = {}
    for name, value in zip(node.output, results):
        array = np.asarray(value)
        if name and array.size <= MAX_FOLD_ELEMENTS and array.dtype != object:
            try:
                folded[name] = onnx.numpy_helper.from_array(array, name)
            except ValueError:  # e.g. bytes that are not UTF-8 in a string result: leave it unfolded
                return {}
    return folded


def _gather_elements(node: onnx.NodeProto, data, indices) -> list:
    """GatherElements by numpy: onnx's reference kernel fails once an axis holds more than 64 entries
    (it uses ``np.choose``), and BERT's token-type ids are such a gather over 512 positions."""
    import numpy as np

    axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
    indices = np.where(indices < 0, indices + data.shape[axis], indices)
    return [np.take_along_axis(data, indices, axis=axis)]


OWN_KERNELS = {"GatherElements": _gather_elements}


def _derived_weight(node: onnx.NodeProto, tensors: dict[str, onnx.TensorProto],
                    shapes: dict[str, list[int] | None]) -> dict[str, onnx.TensorProto]:
    """Any other computation on weights too large to fold (weight normalisation, ``g * v / |v|``,
    Wav2Vec2's positional convolution): its outputs as constants of their inferred size, without values.

    onnxsim folds such a weight into a constant of the layer; without it the layer must still count
    it. Only float computations whose every input is a known constant and every output's shape is
    inferred; the values are never computed."""
    inputs = [name for name in node.input if name]
    if (not inputs or node.op_type in GENERATORS or any(name not in tensors for name in inputs)
            or not any(tensors[name].data_type in FLOAT_TYPES and prod(tensors[name].dims) > MAX_FOLD_ELEMENTS
                       or is_hollow(tensors[name]) for name in inputs)):
        return {}
    dtype = next((tensors[name].data_type for name in inputs if tensors[name].data_type in FLOAT_TYPES),
                 tensors[inputs[0]].data_type)
    derived = {}
    for name in node.output:
        dims = shapes.get(name)
        if not name or dims is None or any(d < 0 for d in dims):
            return {}
        derived[name] = _sized_constant(name, dtype, dims)
    return derived


def _expanded_shape(node: onnx.NodeProto, tensors: dict[str, onnx.TensorProto]) -> list[int] | None:
    """The output shape of an Expand of constants, from its shape operand, when inference left it unknown.

    BERT's ``token_type_ids`` buffer is expanded to a shape computed by a Where over shapes, which
    shape inference does not evaluate; the folding does, so the size bound can be checked here."""
    if node.op_type != "Expand" or len(node.input) != 2 or node.input[1] not in tensors:
        return None
    target = tensors[node.input[1]]
    if prod(target.dims) > 16:  # a shape has a handful of dimensions; anything else is not one
        return None
    try:
        wanted = [int(v) for v in onnx.numpy_helper.to_array(target).reshape(-1)]
        data = list(tensors[node.input[0]].dims)
    except (ValueError, TypeError):
        return None
    rank = max(len(wanted), len(data))
    wanted, data = [1] * (rank - len(wanted)) + wanted, [1] * (rank - len(data)) + data
    if any(w < 0 for w in wanted) or any(w != d and 1 not in (w, d) for w, d in zip(wanted, data)):
        return None
    return [max(w, d) for w, d in zip(wanted, data)]


# Ops that only relay out a weight. The dynamo exporter writes a Linear layer as
# MatMul(x, Transpose(W)) where TorchScript writes Gemm(x, W): a weight too large to fold
# would then count as nobody's parameters and the MatMul would not pass for a dense layer.
WEIGHT_LAYOUT_OPS = frozenset({"Transpose", "Reshape", "Cast", "Squeeze", "Unsqueeze", "Flatten", "Identity"})


def _relaid_weight(node: onnx.NodeProto, tensors: dict[str, onnx.TensorProto],
                   shapes: dict[str, list[int] | None]) -> dict[str, onnx.TensorProto]:
    """A layout op over a large constant: its output as a constant of known size and type, without values.

    Counting parameters needs only the size, and nothing reads the values of a tensor above
    MAX_FOLD_ELEMENTS, so none are computed (no memory for an attacker's 10^12-element weight).
    """
    if node.op_type not in WEIGHT_LAYOUT_OPS or not node.input or node.input[0] not in tensors or not node.output:
        return {}
    weight, name = tensors[node.input[0]], node.output[0]
    if prod(weight.dims) <= MAX_FOLD_ELEMENTS and not is_hollow(weight):  # folded by value: _fold_constant's case
        return {}
    dims = shapes.get(name) or list(weight.dims)
    if prod(dims) != prod(weight.dims) or any(d < 0 for d in dims):
        return {}
    cast_to = next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None
    return {name: _sized_constant(name, cast_to or weight.data_type, dims)}


def _cast_like_weight(node: onnx.NodeProto, tensors: dict[str, onnx.TensorProto]) -> dict[str, onnx.TensorProto]:
    """``CastLike(weight, x)``: the weight, in x's type. dynamo writes a GroupNorm's affine weights so
    (Unsqueeze, then CastLike to the activation's type) where TorchScript reads them as they are. Only x's
    type is read, so the result is the weight whatever x holds. Folded in extraction only, where no shape
    inference follows (prepare's folding leaves it: a constant of the weight's own type beside a float16
    activation would fail it); the copy keeps the weight's type, which counting does not read."""
    if node.op_type != "CastLike" or len(node.input) < 2 or node.input[0] not in tensors or not node.output:
        return {}
    weight, name = tensors[node.input[0]], node.output[0]
    if prod(weight.dims) <= 1:  # a setting, not a weight: dynamo expands CastLike(0, x) into a bias-free Conv's bias
        return {}
    if is_hollow(weight) or prod(weight.dims) > MAX_FOLD_ELEMENTS:
        return {name: _sized_constant(name, weight.data_type, list(weight.dims))}
    copy = onnx.TensorProto()
    copy.CopyFrom(weight)
    copy.name = name
    return {name: copy}


def _sized_constant(name: str, data_type: int, dims: list[int]) -> onnx.TensorProto:
    """A constant of known type and dims without values (hollow): what extraction counts of a weight."""
    tensor = onnx.TensorProto(name=name, data_type=data_type)
    tensor.dims.extend(dims)
    return tensor

def _gathered_weight(node: onnx.NodeProto, tensors: dict[str, onnx.TensorProto],
                     shapes: dict[str, list[int] | None]) -> dict[str, onnx.TensorProto]:
    """Rows of a large constant picked by constant indices (an embedding of fixed positions): a constant of
    known size and type, without values, as in _relaid_weight.

    BERT adds ``position_embeddings(arange(T))`` and ``token_type_embeddings(zeros(T))``; onnxsim folds
    those lookups into weights of the Add, and without onnxsim the Add must count the same weights.
    """
    if (node.op_type != "Gather" or len(node.input) < 2 or node.input[0] not in tensors
            or node.input[1] not in tensors or not node.output):
        return {}
    weight, indices, name = tensors[node.input[0]], tensors[node.input[1]], node.output[0]
    if not weight.dims:
        return {}
    axis = next((a.i for a in node.attribute if a.name == "axis"), 0) % len(weight.dims)
    dims = shapes.get(name) or [*weight.dims[:axis], *indices.dims, *weight.dims[axis + 1:]]
    # Small in and out is _fold_constant's case (the token-type table is small, its rows are not).
    if any(d < 0 for d in dims) or (max(prod(weight.dims), prod(dims)) <= MAX_FOLD_ELEMENTS
                                    and not is_hollow(weight)):
        return {}
    return {name: _sized_constant(name, weight.data_type, dims)}


def fold_constant_nodes(model: onnx.ModelProto) -> int:
    """Replace nodes computed from constants alone by initializers, in place; returns how many.

    Shape inference cannot see through some shape arithmetic: the TorchScript export of
    ShuffleNetV2 computes a Slice's end from the tensor's Shape with Div and Mul, and
    every shape after that first chunk stayed unknown (FLOPs 0 for most of the model)
    unless onnxsim ran first. Folding those nodes (with the shapes inferred so far) and
    inferring again gives the shapes onnxsim would, without it. Only small results are
    folded (:func:`_fold_constant`), and graph outputs are never removed.
    """
    graph = model.graph
    shapes, tensors = _known_shapes_and_constants(graph)
    outputs = {out.name for out in graph.output}
    kept, new_tensors = [], {}
    for node in graph.node:
        folded = {}
        if node.op_type not in ("Constant", "Identity") and not any(name in outputs for name in node.output):
            folded = _fold_constant(node, tensors, shapes)
        if not folded or set(folded) != {name for name in node.output if name}:
            kept.append(node)
            continue
        tensors.update(folded)
        new_tensors.update(folded)
        for name, tensor in folded.items():
            shapes[name] = list(tensor.dims)
    if not new_tensors:
        return 0
    removed = len(graph.node) - len(kept)
    del graph.node[:]  # one rebuild, not a linear remove() per folded node
    graph.node.extend(kept)
    still_read = {name for node in graph.node for name in node.input}
    graph.initializer.extend(tensor for name, tensor in new_tensors.items() if name in still_read)
    stale = [vi for vi in graph.value_info if vi.name in new_tensors]
    for vi in stale:
        graph.value_info.remove(vi)
    return removed


def _parameter_count(node: onnx.NodeProto, initializers: dict[str, onnx.TensorProto]) -> int:
    positions = PARAMETER_INPUTS.get(node.op_type, range(len(node.input)))
    total = 0
    for position in positions:
        if position >= len(node.input):
            continue
        init = initializers.get(node.input[position])
        # A single number is a setting (attention's 1/sqrt(d), an epsilon, the 1 of 1/x), not a weight:
        # TorchScript stores it as an initializer, dynamo computes it from Constant nodes.
        if init is not None and init.data_type in FLOAT_TYPES and prod(init.dims) > 1:
            total += prod(init.dims)
    return total


def _small_constants(node: onnx.NodeProto, initializers: dict[str, onnx.TensorProto]) -> dict[int, list]:
    constants = {}
    for position, name in enumerate(node.input):
        init = initializers.get(name)
        if init is not None and prod(init.dims) <= SMALL_CONSTANT:
            try:
                constants[position] = onnx.numpy_helper.to_array(init).reshape(-1).tolist()
            except ValueError as exc:  # data that does not fit its declared type or shape
                raise InputError(f"tensor {name!r} cannot be read: {exc}") from None
    return constants
