"""Preparing an ONNX ModelProto for extraction.

Preparation fixes every graph input to a concrete *trigger input* shape,
simplifies the model with onnxsim (folding constants and shape computations;
BatchNormalization is deliberately not fused into Conv, see docs/ir.md), and
runs ONNX shape inference so that every tensor has a concrete shape for the
FLOPs count.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import onnx

from hnn.errors import InputError, UsageError, summary
from hnn.ingest.common_subexpressions import merge_common_subexpressions
from hnn.ingest.extract import WEIGHT_ABOVE_ELEMENTS, fold_constant_nodes, sort_nodes
from hnn.stdio import stdout_to_stderr

log = logging.getLogger("hnn.ingest")

DEFAULT_BATCH = 1
# The dynamic second axis of a [batch, sequence] integer input (token ids, their attention mask, token
# types, positions) is the sequence: it gets the transformers front-end's own length (its TEXT_LENGTH),
# so that an ONNX export with dynamic axes hashes as `hnn hash` of the folder it came from does.
DEFAULT_TOKENS = 128
_TOKEN_TYPES = frozenset({onnx.TensorProto.INT64, onnx.TensorProto.INT32})


def check_text_fields(model: onnx.ModelProto) -> None:
    """Refuse names and op types that are not UTF-8: protobuf hands them back as bytes, not str.
    In the subgraphs of If, Loop and Scan too (the fuzzer's finding: a branch's name reached a sort)."""
    bad = next(((what, value) for what, value in _text_fields(model.graph) if not isinstance(value, str)), None)
    if bad is not None:
        raise InputError(f"an ONNX {bad[0]} is not UTF-8 text: {bad[1][:40]!r}")


def _text_fields(graph: onnx.GraphProto):
    yield from (("op type", node.op_type) for node in graph.node)
    yield from (("domain", node.domain) for node in graph.node)
    yield from (("tensor name", name) for node in graph.node for name in [*node.input, *node.output])
    yield from (("tensor name", value.name) for value in [*graph.initializer, *graph.input, *graph.output,
                                                           *graph.value_info])
    for node in graph.node:
        for attribute in node.attribute:
            for subgraph in [attribute.g, *attribute.graphs]:
                yield from _text_fields(subgraph)


def parse_input_shape(text: str | None) -> dict[str, list[int]] | list[int] | None:
    """Parse ``--input-shape``: ``1,3,224,224`` for the only input, or ``name=1,3,224,224;other=1,10``."""
    if text is None or not text.strip():
        return None

    def dims(part: str) -> list[int]:
        try:
            values = [int(d) for d in part.replace("x", ",").split(",") if d.strip()]
        except ValueError:
            raise UsageError(f"--input-shape {text!r}: dimensions must be integers, e.g. 1,3,224,224") from None
        if not values or any(v <= 0 for v in values):
            raise UsageError(f"--input-shape {text!r}: dimensions must be positive integers")
        return values

    if "=" not in text:
        return dims(text)
    shapes = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--input-shape {text!r}: expected name=d1,d2,...; separated by ';'")
        shapes[name.strip()] = dims(value)
    return shapes


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The real inputs: older exporters also list every initializer as a graph input."""
    initializers = {init.name for init in model.graph.initializer}
    return [inp for inp in model.graph.input if inp.name not in initializers]


def resolve_trigger_shapes(
    model: onnx.ModelProto, requested: dict[str, list[int]] | list[int] | None
) -> dict[str, list[int]]:
    """Concrete shapes for every graph input: the user's, else the declared ones, a symbolic axis the
    user fixed on another input as there, a dynamic batch set to 1 and the dynamic sequence of
    [batch, sequence] token ids to DEFAULT_TOKENS."""
    inputs = graph_inputs(model)
    if isinstance(requested, list):
        if len(inputs) != 1:
            names = ", ".join(inp.name for inp in inputs)
            raise UsageError(f"the model has {len(inputs)} inputs ({names}); give --input-shape as name=d1,d2;...")
        requested = {inputs[0].name: requested}
    requested = dict(requested or {})
    unknown = set(requested) - {inp.name for inp in inputs}
    if unknown:
        raise UsageError(f"--input-shape names unknown input(s) {sorted(unknown)}")
    # A symbolic axis shared with an input the user fixed takes the user's size (an attention mask's
    # "sequence" is its ids'), before any default.
    given = {dim.dim_param: size for inp in inputs if inp.name in requested
             for dim, size in zip(inp.type.tensor_type.shape.dim, requested[inp.name]) if dim.dim_param}
    shapes = {}
    for inp in inputs:
        if inp.name in requested:
            shapes[inp.name] = requested[inp.name]
            continue
        dims = inp.type.tensor_type.shape.dim
        resolved = []
        for axis, dim in enumerate(dims):
            if dim.HasField("dim_value") and dim.dim_value > 0:
                resolved.append(dim.dim_value)
            elif dim.dim_param and dim.dim_param in given:
                resolved.append(given[dim.dim_param])
            elif axis == 0:
                resolved.append(DEFAULT_BATCH)  # a symbolic batch dimension is the common case
            elif axis == 1 and len(dims) == 2 and inp.type.tensor_type.elem_type in _TOKEN_TYPES:
                log.info("input %r: its dynamic sequence axis taken as %d tokens", inp.name, DEFAULT_TOKENS)
                resolved.append(DEFAULT_TOKENS)
            else:
                raise UsageError(
                    f"input {inp.name!r} has a dynamic dimension {axis} "
                    f"({dim.dim_param or '?'}); pass --input-shape to fix it"
                )
        shapes[inp.name] = resolved
    return shapes


def _fix_input_shapes(model: onnx.ModelProto, shapes: dict[str, list[int]]) -> None:
    for inp in model.graph.input:
        if inp.name not in shapes:
            continue
        dims = inp.type.tensor_type.shape.dim
        del dims[:]
        for value in shapes[inp.name]:
            dims.add().dim_value = value


def prepare(model: onnx.ModelProto, shapes: dict[str, list[int]], simplify: bool = True) -> onnx.ModelProto:
    """Fix inputs, simplify (falling back with a warning) and infer shapes."""
    model_copy = onnx.ModelProto()
    model_copy.CopyFrom(model)
    sort_nodes(model_copy)
    _fix_input_shapes(model_copy, shapes)
    if simplify:
        model_copy = _simplify(_without_neutral_weights(model_copy))
    inferred = _infer_shapes(model_copy)
    for _ in range(FOLD_ROUNDS):  # fold shape arithmetic, infer again: what onnxsim would see
        if inferred is None or not fold_constant_nodes(inferred):
            break
        inferred = _infer_shapes(inferred)
    prepared = model_copy if inferred is None else inferred
    merge_common_subexpressions(prepared)  # onnxsim's too (a no-op after it): one IR either way
    return prepared


# Rounds of constant folding and shape inference; each round unlocks the shapes the
# previous fold made computable (ShuffleNetV2 from TorchScript needs 2).
FOLD_ROUNDS = 4


# Float initializers above this many elements go to shape inference without their values: it
# reads only their type and dims (the values it propagates are small integer tensors: shapes,
# axes, indices), and onnx serialises the model to C++ and parses the result back, so every
# weight byte would be copied twice more (a third of resnet18's ingest time, and memory a
# multi-gigabyte model does not have).
LIGHT_ABOVE_ELEMENTS = 1024
_FLOAT_DATA_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16,
                     onnx.TensorProto.DOUBLE}


def _float_weights(model: onnx.ModelProto, above: int) -> list[onnx.TensorProto]:
    """The float initializers held in the file (not external data) with more than ``above`` elements."""
    return [tensor for tensor in model.graph.initializer
            if tensor.data_type in _FLOAT_DATA_TYPES and tensor.data_location != onnx.TensorProto.EXTERNAL
            and math.prod(tensor.dims) > above]


def _without_weight_values(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, onnx.TensorProto]]:
    """A copy of ``model`` whose large float initializers hold no values, and those initializers by name."""
    held = {}
    for tensor in _float_weights(model, LIGHT_ABOVE_ELEMENTS):
        held.setdefault(tensor.name, tensor)
    if not held:
        return model, held
    light = onnx.ModelProto()
    light.CopyFrom(model)  # cheap next to inference: the values are cleared below, not serialised
    for tensor in light.graph.initializer:
        if tensor.name in held:
            for field in ("raw_data", "float_data", "double_data", "int32_data"):
                tensor.ClearField(field)
    return light, held


def _without_neutral_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` (a copy of its own, changed in place) with each weight's values set to a constant of its own.

    onnxsim removes an Add of zeros and a Mul by ones. A freshly initialised model is full of them (zero
    biases, unit norm scales) and a trained one is not; and TorchScript writes a zero bias into its Gemm,
    where onnxsim keeps it, while dynamo writes it as an Add, which onnxsim drops. The structure must not
    depend on the values, so onnxsim sees none of them: each weight becomes one value in [0.25, 0.5),
    never 0 or 1, and different for different weights (two branches with equal weights on one input
    would be merged as one: GoogLeNet lost two). A constant costs no random draws and no more memory
    than the copy. The weight marks and the fingerprint are read from the model as given."""
    weights = _float_weights(model, WEIGHT_ABOVE_ELEMENTS)
    for number, tensor in enumerate(weights):
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
        for field in ("float_data", "double_data", "int32_data"):
            tensor.ClearField(field)
        tensor.raw_data = np.full(math.prod(tensor.dims), 0.25 + 0.25 * number / len(weights), dtype).tobytes()
    return model


def _infer_shapes(model: onnx.ModelProto) -> onnx.ModelProto | None:
    try:
        light, held = _without_weight_values(model)
        inferred = onnx.shape_inference.infer_shapes(light, data_prop=True)
        for tensor in inferred.graph.initializer:
            if tensor.name in held:
                tensor.CopyFrom(held[tensor.name])
        return inferred
    except MemoryError:
        raise  # a memory limit must reject the model, not degrade its IR
    except Exception as exc:  # onnx raises several unrelated types here
        log.warning("shape inference failed (%s); FLOPs of nodes with unknown shapes count as 0", summary(exc))
        return None


def _simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    # onnxsim prints progress from C++ to stdout; keep stdout for our own output (--json).
    import onnxsim

    try:
        with stdout_to_stderr():
            simplified, ok = onnxsim.simplify(model, skip_fuse_bn=True, check_n=0)
    except MemoryError:
        raise  # a memory limit must reject the model, not degrade its IR
    except Exception as exc:
        log.warning("onnxsim failed (%s); using the unsimplified graph", summary(exc))
        return model
    if not ok:
        log.warning("onnxsim could not validate its result; using the unsimplified graph")
        return model
    return simplified
