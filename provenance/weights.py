"""A model's constant tensors as numbers: initializers and Constant nodes, quantized ones dequantized."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hnn.weight_store import WeightStore, tensor_values

if TYPE_CHECKING:
    import onnx

# Tensors above this many elements are not read: the worker's memory limit bounds the model, and
# this bounds what one tensor may cost here (a crafted header declaring a huge shape is refused by onnx).
MAX_ELEMENTS = 1 << 28


class ConstantTensors(dict):
    """Name -> value of every initializer and Constant output, converted when first read: floats as
    float32, integers as they are. Large tensors are converted on every read, not kept, so the walk
    holds one weight at a time beside the model, not a float copy of all of them."""

    def __init__(self, graph: onnx.GraphProto, weights: WeightStore | None = None):
        super().__init__()
        self._weights = weights
        self._derived: dict = {}
        self._tensors = {tensor.name: tensor for tensor in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant" and node.output:
                for attribute in node.attribute:
                    if attribute.name == "value":
                        self._tensors[node.output[0]] = attribute.t

    def __contains__(self, name) -> bool:
        return dict.__contains__(self, name) or name in self._tensors or name in self._derived

    def derive(self, name: str, compute) -> None:
        """``name`` is ``compute()`` (None when it cannot be computed), computed when read, kept only if small."""
        self._derived[name] = compute

    def __getitem__(self, name):
        if dict.__contains__(self, name):
            return dict.__getitem__(self, name)
        value = self._derived[name]() if name in self._derived else _read(self._tensors[name], self._weights)
        if value is None:
            raise KeyError(name)
        if value.size <= KEEP_ELEMENTS:
            self[name] = value
        return value

    def get(self, name, default=None):
        try:
            return self[name] if name in self else default
        except KeyError:
            return default


# Tensors up to this many elements (scales, zero points, biases, shapes) are kept once read.
KEEP_ELEMENTS = 1 << 16


def constant_tensors(graph: onnx.GraphProto, weights: WeightStore | None = None) -> ConstantTensors:
    return ConstantTensors(graph, weights)


def _read(tensor, weights: WeightStore | None) -> np.ndarray | None:
    """A tensor's values, or None for one too large to read or unreadable (not evidence: the walk goes on)."""
    if int(np.prod(tensor.dims, dtype=np.int64)) > MAX_ELEMENTS:
        return None
    try:
        value = tensor_values(tensor, weights)
    except Exception:
        return None
    if value.dtype.kind == "f" or value.dtype.name == "bfloat16" or str(value.dtype).startswith("float8"):
        value = value.astype(np.float32)
    return value


def dequantize(values: np.ndarray, scale: np.ndarray | None, zero: np.ndarray | None, axis: int) -> np.ndarray | None:
    """``(values - zero) * scale`` as float32, per tensor or per channel along ``axis``; None where the shapes
    or types do not fit (a malformed upload: no evidence, never an error). ``scale`` None: no scaling
    (ConvInteger and MatMulInteger apply theirs after the op); ``zero`` None: zero."""
    if scale is None and zero is None and values.dtype == np.float32:
        return values  # a float weight (most of them): no copy of what may be the model's largest tensor
    numeric_zero = numeric(zero) if zero is not None else None
    values = numeric(values)
    numeric_scale = numeric(scale) if scale is not None else np.ones(1, np.float32)
    if values is None or numeric_scale is None or numeric_scale.size == 0 or (scale is not None and scale.dtype.kind != "f"):
        return None
    if zero is not None and (numeric_zero is None or zero.size not in (1, numeric_scale.size, _length(values, axis))):
        return None  # a zero point that is not a number is malformed, not absent
    channels = max(numeric_scale.size, 1 if numeric_zero is None else numeric_zero.size)
    if channels == 1:
        shape = ()
    else:
        if values.ndim == 0 or not -values.ndim <= axis < values.ndim or values.shape[axis] != channels:
            return None
        shape = [1] * values.ndim
        shape[axis] = channels
    wide = np.float64 if values.dtype.itemsize >= 4 and values.dtype.kind in "iu" else np.float32  # int32 biases
    result = values.astype(wide)
    if numeric_zero is not None:
        result = result - numeric_zero.astype(wide).reshape(shape if numeric_zero.size > 1 else ())
    return (result * numeric_scale.astype(wide).reshape(shape if numeric_scale.size > 1 else ())).astype(np.float32)


def numeric(array: np.ndarray) -> np.ndarray | None:
    """``array`` as numbers: int4, uint4 and float8 (ml_dtypes, kind "V") as float32; None if not numbers."""
    if array.dtype.kind in "iuf":
        return array
    if array.dtype.kind != "V":
        return None  # strings, booleans, complex: not quantized data
    try:
        return array.astype(np.float32)
    except (TypeError, ValueError):
        return None


def _length(values: np.ndarray, axis: int) -> int:
    return values.shape[axis] if values.ndim and -values.ndim <= axis < values.ndim else -1
