"""A model's constant tensors as numbers: initializers and Constant nodes, quantized ones dequantized."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx

# Tensors above this many elements are not read: the worker's memory limit bounds the model, and
# this bounds what one tensor may cost here (a crafted header declaring a huge shape is refused by onnx).
MAX_ELEMENTS = 1 << 28


class ConstantTensors(dict):
    """Name -> value of every initializer and Constant output, converted when first read: floats as
    float32, integers as they are. Large tensors are converted on every read, not kept, so the walk
    holds one weight at a time beside the model, not a float copy of all of them."""

    def __init__(self, graph: "onnx.GraphProto"):
        super().__init__()
        self._tensors = {tensor.name: tensor for tensor in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant" and node.output:
                for attribute in node.attribute:
                    if attribute.name == "value":
                        self._tensors[node.output[0]] = attribute.t

    def __contains__(self, name) -> bool:
        return dict.__contains__(self, name) or name in self._tensors

    def __getitem__(self, name):
        if dict.__contains__(self, name):
            return dict.__getitem__(self, name)
        value = _read(self._tensors[name])
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


def constant_tensors(graph: "onnx.GraphProto") -> ConstantTensors:
    return ConstantTensors(graph)


def _read(tensor) -> np.ndarray | None:
    """A tensor's values, or None for one too large to read or unreadable (not evidence: the walk goes on)."""
    from onnx import numpy_helper

    if int(np.prod(tensor.dims, dtype=np.int64)) > MAX_ELEMENTS:
        return None
    try:
        value = numpy_helper.to_array(tensor)
    except Exception:  # noqa: BLE001  (any decoding failure of an upload's tensor)
        return None
    if value.dtype.kind == "f" or value.dtype.name == "bfloat16" or str(value.dtype).startswith("float8"):
        value = value.astype(np.float32)
    return value


def dequantize(values: np.ndarray, scale: np.ndarray | None, zero: np.ndarray | None, axis: int) -> np.ndarray:
    """``(values - zero) * scale`` as float32, per channel along ``axis`` when scale is a vector."""
    values = values.astype(np.float32)
    for vector in (scale, zero):
        if vector is not None and vector.size > 1 and (values.ndim == 0 or vector.size != values.shape[axis % values.ndim]):
            raise ValueError(f"a per-channel scale or zero point of {vector.size} values for {values.shape}")
    if zero is not None:
        values = values - _along(zero.astype(np.float32), values.ndim, axis)
    if scale is not None:
        values = values * _along(scale.astype(np.float32), values.ndim, axis)
    return values


def _along(vector: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    if vector.size <= 1 or ndim == 0:
        return vector.reshape(-1)[:1].reshape(())
    shape = [1] * ndim
    shape[axis % ndim] = vector.size
    return vector.reshape(shape)
