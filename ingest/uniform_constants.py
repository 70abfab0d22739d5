"""Large constants whose every element is one value, computed from constants: kept as that value.

dynamo writes a ViT's unmasked attention as ``scores + Where(Expand(all_true, [1, 1, T, T]), 0, -inf)``:
a [1, 1, T, T] tensor of zeros computed from constants. It is too large for extraction's folding by
value (MAX_FOLD_ELEMENTS), so without onnxsim the Add read a constant of unknown values, and the
x + 0 pass (canonicalize.remove_identity_arithmetic) could not drop it: two more IR nodes than
TorchScript, which writes no mask at all. A tensor of one value stays one value through broadcasting
elementwise ops and through ops that only move elements, so such a tensor is computed as that value:
stored as a one-element tensor of its rank (*compact*), its true shape in extraction's shapes. A data
node then reads it as a small constant, ``[0.0]``, and never as a weight.

Only tensors extraction could read anyway are looked at (at most MAX_FOLD_ELEMENTS elements, none
hollow), and never a weight's values (float constants above WEIGHT_ABOVE_ELEMENTS), so a fresh
model's zero bias is not a zero, and an upload's large weights are never read here.
"""

from __future__ import annotations

from math import prod

import numpy as np
import onnx

from hnn.weight_store import FLOAT_TYPES, is_hollow

# Ops whose output elements are each a function of the broadcast input elements at the same place.
ELEMENTWISE = frozenset({
    "Add", "Sub", "Mul", "Div", "Pow", "Min", "Max", "Sum", "Mean", "Where", "Equal", "Greater",
    "GreaterOrEqual", "Less", "LessOrEqual", "And", "Or", "Xor", "Not", "Cast", "CastLike", "Neg", "Abs",
    "Sqrt", "Exp", "Log", "Reciprocal", "IsNaN", "IsInf", "Sigmoid", "Tanh", "Relu", "Clip", "Identity",
})
# Ops whose output elements are some of the data input's (input 0) elements, moved or repeated.
ELEMENT_MOVING = frozenset({"Expand", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Transpose", "Slice",
                            "Tile", "Gather"})


# A rank no real tensor has (numpy's own limit is 64): such a declared shape is not folded.
MAX_RANK = 32


def fold_uniform(node: onnx.NodeProto, tensors: dict[str, onnx.TensorProto], shapes: dict[str, list[int] | None],
                 compact: set[str], max_elements: int, weight_above: int) -> dict[str, onnx.TensorProto]:
    """The output of ``node`` (inputs all constants) when it is one value throughout; {} when not.

    A result of at most ``max_elements`` elements is written out in full (extraction's other folding
    then reads it as any small constant); a larger one is compact: its name joins ``compact`` and
    its true shape goes into ``shapes``. Float constants of more than ``weight_above`` elements are
    weights, whose values never decide the structure (a fresh model's zero bias, expanded, is not a
    zero to drop), so they are never read as one value.
    """
    if len([name for name in node.output if name]) != 1:
        return {}
    output = node.output[0]
    value = _uniform_result(node, tensors, compact, max_elements, weight_above)
    shape = shapes.get(output) or _broadcast_shape(node, shapes)
    if value is None or shape is None or len(shape) > MAX_RANK or any(d < 0 for d in shape):
        return {}
    if prod(shape) <= max_elements:
        return {output: onnx.numpy_helper.from_array(np.full(shape, value, dtype=value.dtype), output)}
    compact.add(output)
    shapes[output] = list(shape)
    return {output: onnx.numpy_helper.from_array(np.full([1] * len(shape), value, dtype=value.dtype), output)}


def _uniform_result(node: onnx.NodeProto, tensors: dict[str, onnx.TensorProto], compact: set[str],
                    max_elements: int, weight_above: int):
    """The one value (a 0-d array) of the node's output, or None."""
    inputs = [name for name in node.input if name]
    if node.op_type == "ConstantOfShape":
        attribute = next((a.t for a in node.attribute if a.name == "value"), None)
        if attribute is None:
            return np.array(0.0, dtype=np.float32)
        return _one_value(attribute, False, 1, 1) if prod(attribute.dims) == 1 else None
    if not inputs or any(name not in tensors for name in inputs):
        return None
    if node.op_type in ELEMENT_MOVING:
        return _one_value(tensors[node.input[0]], node.input[0] in compact, max_elements, weight_above)
    if node.op_type not in ELEMENTWISE:
        return None
    values = [_one_value(tensors[name], name in compact, max_elements, weight_above) for name in inputs]
    if any(v is None for v in values):
        return None
    from onnx.reference import ReferenceEvaluator

    try:
        (result, *_) = ReferenceEvaluator(node).run(None, dict(zip(inputs, values)))
    except Exception:  # an op the reference runtime rejects for these operands: not folded
        return None
    result = np.asarray(result)
    return result.reshape(-1)[0] if result.size == 1 else None


def _one_value(tensor: onnx.TensorProto, is_compact: bool, max_elements: int, weight_above: int):
    """The tensor's value as a 0-d array when every element is that value (compact ones are)."""
    if is_hollow(tensor) or prod(tensor.dims) == 0:
        return None
    if not is_compact and (prod(tensor.dims) > max_elements
                           or (tensor.data_type in FLOAT_TYPES and prod(tensor.dims) > weight_above)):
        return None  # a weight: its values are not read here
    try:
        array = onnx.numpy_helper.to_array(tensor).reshape(-1)
    except Exception:  # data that does not fit its declared type or shape: not folded
        return None
    if array.size == 0 or array.dtype.kind not in "biuf" or not (array == array[0]).all():
        return None
    return np.array(array[0], dtype=array.dtype)


def _broadcast_shape(node: onnx.NodeProto, shapes: dict[str, list[int] | None]) -> list[int] | None:
    """The output shape of an elementwise node from its inputs' shapes, when inference left it unknown."""
    if node.op_type not in ELEMENTWISE:
        return None
    input_shapes = [shapes.get(name) for name in node.input if name]
    if node.op_type == "CastLike":
        input_shapes = input_shapes[:1]
    if not input_shapes or any(shape is None for shape in input_shapes):
        return None
    try:
        return list(np.broadcast_shapes(*(tuple(shape) for shape in input_shapes)))
    except ValueError:
        return None
