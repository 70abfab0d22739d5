"""The linear walk from a model's input through its weight layers (hnn.provenance.fingerprint says why).

A *state* is a matrix with one row per channel of a tensor (the hidden units
that computed it) and ``ANCHOR_DIMS`` columns: what each channel responds to in
the projected anchor space, taken linearly. The graph inputs are the anchor
itself; the first weight layer that reads one makes the first state from its
own weights. Each weight layer's output state is yielded, in graph order.

Only arithmetic on the weight tensors happens here: no op of the upload is run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from hnn.provenance.weights import constant_tensors, dequantize
from hnn.weight_store import WeightStore

if TYPE_CHECKING:
    import onnx

ANCHOR = "anchor"  # the state of a graph input: its coordinates are the anchor
ANCHOR_DIMS = 24
# A state of more channels than this is dropped: no real layer has them, and a crafted graph of
# concatenations could otherwise double them at every step.
MAX_STATE_ROWS = 1 << 16
# Vocabulary-sized anchors (embedding tables) are sampled to this many rows, chosen by a fixed seed.
MAX_ANCHOR_ROWS = 1 << 16
# The projection of anchor coordinates, the positions and the sketches' hyperplanes are fixed, so two models agree on them.
_SEED = 0x5EED

# Weight layers: op -> (index of the data input, index of the weight, index of the weight's scale or None, zero point).
_CONV = {"Conv": (0, 1, None, None), "ConvInteger": (0, 1, None, 3), "QLinearConv": (0, 3, 4, 5)}
_DENSE = {"Gemm": (0, 1, None, None), "MatMul": (0, 1, None, None), "MatMulInteger": (0, 1, None, 3),
          "QLinearMatMul": (0, 3, 4, 5), "QGemm": (0, 3, 4, 5), "FusedMatMul": (0, 1, None, None)}
# Ops whose data inputs add up (the quantized forms keep their data inputs at these positions).
_SUMS = {"Add": (0, 1), "Sub": (0, 1), "Sum": None, "QLinearAdd": (0, 3)}
_SCALES = {"Mul", "Div", "LayerNormalization", "SimplifiedLayerNormalization", "InstanceNormalization"}
# Rows and columns shorter than this are left as they are (pruned to zero) when normalising.
_FLOOR = 1e-30


@lru_cache(maxsize=16)
def projection(count: int) -> np.ndarray | None:
    """The fixed map from ``count`` anchor coordinates to ANCHOR_DIMS, the same for every model; None for
    fewer coordinates than that.

    Orthonormal columns: the Gram of an isotropic random layer is then a multiple of the identity,
    whatever the projection, so two independent models share nothing through it. (A plain Gaussian
    projection's own Gram is in every model's, and made independent models correlate.)
    """
    if count < ANCHOR_DIMS:
        return None
    rng = np.random.default_rng(_SEED + count)
    columns, _ = np.linalg.qr(rng.standard_normal((count, ANCHOR_DIMS)))
    return columns


@dataclass(frozen=True)
class Layer:
    """A weight layer: what ``digest`` made of its weight laid out (out, in, kernel...) whatever the op's
    own layout, that weight's shape, and what ``state_digest`` made of the state of its output (None where
    the walk from the input does not reach it)."""

    summary: object
    shape: tuple[int, ...]
    state: object
    depth: int  # weight layers on the longest path from an input to this one, itself included


def weight_layers(model: onnx.ModelProto, weights: WeightStore | None = None,
                  digest: Callable[[np.ndarray], object] = lambda weight: weight,
                  state_digest: Callable[[np.ndarray | None], object] = lambda state: state) -> list[Layer]:
    """Every weight layer of the graph, in a canonical order: by depth, then by shape.

    Graph order would not do: a re-export or a quantizer may list the two branches of a block the
    other way round, and the layer sequence is what the positional test pairs layers by. ``digest``
    is applied to each weight as the walk meets it, so a caller that keeps a summary does not hold
    every weight of the model at once (a billion-parameter model's would not fit); ``state_digest``
    likewise for the states. ``weights``: the values of the graph's hollow tensors (hnn.weight_store).
    """
    layers = list(_walk(model, weights, digest, state_digest))
    order = sorted(range(len(layers)), key=lambda i: (layers[i].depth, layers[i].shape, i))
    return [layers[i] for i in order]


def _walk(model: onnx.ModelProto, weights: WeightStore | None, digest, state_digest) -> Iterator[Layer]:
    graph = model.graph
    constants = constant_tensors(graph, weights)
    states: dict[str, object] = {}
    depths: dict[str, int] = {}
    for value in graph.input:
        if value.name not in constants:
            states[value.name] = ANCHOR
    # A state is dropped after its last reader: a transformer has thousands of tensors, each state
    # megabytes (a row per hidden unit), which held to the end came to gigabytes.
    readers = Counter(name for node in graph.node for name in set(node.input))
    for node in graph.node:
        if node.op_type != "Constant":
            layer = _advance(node, states, depths, constants)
            if layer is not None:
                state, weight, depth = layer
                yield Layer(digest(weight), tuple(int(d) for d in weight.shape), state_digest(state), depth)
        for name in set(node.input):
            readers[name] -= 1
            if readers[name] == 0:
                states.pop(name, None)


def _advance(node, states: dict, depths: dict, constants: dict):
    """Set the states of the node's outputs; (its output state, weight, depth) for a weight layer, else None."""
    out = _step(node, states, constants)
    if out is None:
        return None
    state, weight = out
    outputs = [name for name in node.output if name]
    # A Split's outputs each get their part; any other op's extra outputs (DynamicQuantizeLinear's
    # scale and zero point, an optimizer's statistics) are not the channels of its input.
    parts = state if isinstance(state, _Parts) else [state] + [None] * (len(outputs) - 1)
    parts = [part if not isinstance(part, np.ndarray) or part.shape[0] <= MAX_STATE_ROWS else None
             for part in parts]
    depth = max((depths.get(name, 0) for name in node.input), default=0) + (weight is not None)
    for name, part in zip(outputs, parts):
        states[name] = part
        depths[name] = depth
    if weight is None:
        return None
    return (state if isinstance(state, np.ndarray) else None), weight, depth


def _step(node, states: dict, constants: dict):
    """(output state, the weight of a weight layer or None), or None when nothing reaches the output."""
    op = node.op_type
    if op in _CONV or op in _DENSE:
        return _weight_layer(node, states, constants)
    if op == "Gather" and len(node.input) == 2 and node.input[0] in constants and states.get(node.input[1]) is ANCHOR:
        table = constants.get(node.input[0])  # an embedding: one row per token, the anchor coordinates
        if table is None or table.ndim != 2:
            return None
        return (_from_anchor(_sample_rows(table).T) if _informative(table) else None), table.T
    data = [states[name] for name in node.input if name in states]
    if not data:
        return _fold(node, constants)
    if op in _SUMS:
        positions = _SUMS[op]
        inputs = [node.input[i] for i in positions if i < len(node.input)] if positions else list(node.input)
        summed = [states[name] for name in inputs if isinstance(states.get(name), np.ndarray)]
        return (_add(summed) if summed else data[0]), None
    # An elementwise op's channels are its first input's, when that is not a constant: a Mul that
    # rescales a stateless output by a state's scale (dynamic quantization) stays stateless.
    leading = node.input[0] if node.input and node.input[0] not in constants else None
    first = states.get(leading) if leading in states else next(
        (s for s in data if isinstance(s, np.ndarray)), data[0])
    if not isinstance(first, np.ndarray):
        return first, None
    parameters = [constants.get(n) for n in node.input[1:5]] if op == "BatchNormalization" else []
    if len(parameters) == 4 and all(p is not None and p.size == first.shape[0] for p in parameters):
        gamma, _beta, _mean, var = (p.ravel().astype(np.float64) for p in parameters)
        eps = _attribute(node, "epsilon", 1e-5)
        return _scale(first, gamma / np.sqrt(np.abs(var) + eps)), None
    if op in _SCALES:
        factors = [constants.get(n) for n in node.input[1:] if n in constants]
        if factors and factors[0] is not None and factors[0].size == first.shape[0]:
            factor = factors[0].ravel().astype(np.float64)
            return _scale(first, 1.0 / np.where(factor == 0, 1.0, factor) if op == "Div" else factor), None
        return first, None
    if op in ("Concat", "QLinearConcat"):
        parts = [states.get(name) for name in node.input if name not in constants]
        if parts and all(isinstance(p, np.ndarray) for p in parts) and len(parts) > 1:
            return np.vstack(parts), None
        return first, None
    if op == "Split":
        return _split(node, first, constants)
    if op == "MatMul" or op == "Einsum":  # attention: (weights of) values carry the features
        last = [states[name] for name in node.input if isinstance(states.get(name), np.ndarray)]
        return last[-1], None
    return first, None


def _weight_layer(node, states: dict, constants: dict):
    op = node.op_type
    data_at, weight_at, scale_at, zero_at = (_CONV.get(op) or _DENSE[op])
    if len(node.input) <= weight_at or node.input[weight_at] not in constants:
        if op in _DENSE:  # two activations multiplied (attention), quantized or not
            last = [states[name] for name in node.input if isinstance(states.get(name), np.ndarray)]
            return (last[-1], None) if last else None
        return None
    state = states.get(node.input[data_at])
    weight = constants.get(node.input[weight_at])
    if weight is None:
        return None
    scale = constants.get(node.input[scale_at]) if scale_at is not None and scale_at < len(node.input) else None
    zero = constants.get(node.input[zero_at]) if zero_at is not None and zero_at < len(node.input) else None
    # Per-channel scales run along the output channels: a convolution's first axis, a MatMul weight's
    # last (in, out), a Gemm weight's first when it is stored transposed (out, in).
    transposed = op in ("Gemm", "QGemm") and _attribute(node, "transB", 0)
    weight = dequantize(weight, scale, zero, axis=0 if op in _CONV or transposed else -1)
    if weight is None:
        return None
    if not _informative(weight):
        state = None  # a constant or non-finite weight tells nothing, and nothing after it either
    if op in _CONV:
        if weight.ndim < 3:
            return None
        return (_conv(node, state, weight) if state is not None else None), weight
    if weight.ndim != 2:
        return None
    if op in ("Gemm", "QGemm"):
        matrix = weight if _attribute(node, "transB", 0) else weight.T
    else:
        matrix = weight.T  # MatMul(x, W): W is (in, out)
    return (_dense(state, matrix) if state is not None else None), matrix


def _conv(node, state, weight: np.ndarray):
    out_channels, group_inputs = weight.shape[:2]
    if state is ANCHOR:
        return _from_anchor(weight.reshape(out_channels, -1))
    groups = int(_attribute(node, "group", 1))
    if state.shape[0] != group_inputs * groups or out_channels % groups:
        return None
    # Summed over its kernel, a convolution maps channels to channels; each group its own block.
    kernel = _unit_columns(weight.reshape(groups, out_channels // groups, group_inputs, -1).sum(axis=-1))
    blocks = _unit_rows(state).reshape(groups, group_inputs, -1)
    return _unit_rows(np.matmul(kernel, blocks).reshape(out_channels, -1))


def _dense(state, matrix: np.ndarray):
    if state is ANCHOR:
        return _from_anchor(matrix)
    if state.shape[0] != matrix.shape[1]:
        return None
    return _unit_rows(_unit_columns(matrix[None])[0] @ _unit_rows(state))


def _from_anchor(rows: np.ndarray) -> np.ndarray | None:
    mapped = projection(rows.shape[1])
    if mapped is None:
        return None
    return _unit_rows(rows.astype(np.float64) @ mapped)


def _sample_rows(table: np.ndarray) -> np.ndarray:
    if table.shape[0] <= MAX_ANCHOR_ROWS:
        return table
    rows = np.sort(np.random.default_rng(_SEED).choice(table.shape[0], MAX_ANCHOR_ROWS, replace=False))
    return table[rows]


def _add(states: list) -> np.ndarray | object:
    shapes = {s.shape for s in states}
    if len(shapes) != 1:
        return states[0]
    return _unit_rows(np.sum(states, axis=0))


def _scale(state: np.ndarray, factor: np.ndarray) -> np.ndarray:
    if factor.size != state.shape[0]:
        return state
    return state * factor.astype(np.float64).reshape(-1, 1)


def _split(node, state: np.ndarray, constants: dict):
    sizes = None
    if len(node.input) > 1 and constants.get(node.input[1]) is not None:
        sizes = [int(v) for v in constants.get(node.input[1]).ravel()]
    elif _attribute(node, "split", None) is not None:
        sizes = [int(v) for v in _attribute(node, "split", None)]
    outputs = [name for name in node.output if name]
    if sizes is None and outputs and state.shape[0] % len(outputs) == 0:
        sizes = [state.shape[0] // len(outputs)] * len(outputs)
    if not sizes or sum(sizes) != state.shape[0]:
        return state, None
    # One state per output: returned as a marker the caller cannot use, so store them here.
    return _Parts(np.split(state, np.cumsum(sizes)[:-1])), None


class _Parts(list):
    """A Split's outputs, one state each."""


_WEIGHT_FOLDS = ("DequantizeLinear", "Cast", "Identity", "Transpose")


def _fold(node, constants):
    """Constant arithmetic a weight goes through before its layer: dequantizing, casting, transposing.

    The result is registered as a recipe, computed when a layer reads it: a transformer's weights pass
    through a Transpose each, and results kept would add up to a float copy of the whole model."""
    op = node.op_type
    if op not in _WEIGHT_FOLDS or not node.input or node.input[0] not in constants:
        return
    if op == "DequantizeLinear" and (len(node.input) < 2 or node.input[1] not in constants):
        return
    names = list(node.input)

    def compute():
        values = [constants.get(name) for name in names]
        if values[0] is None:
            return None
        if op == "DequantizeLinear":
            scale = values[1]
            zero = values[2] if len(values) > 2 else None
            return None if scale is None else dequantize(values[0], scale, zero, axis=int(_attribute(node, "axis", 1)))
        if op in ("Cast", "Identity"):
            return values[0].astype(np.float32) if values[0].dtype.kind == "f" else values[0]
        perm = _attribute(node, "perm", None)
        return np.transpose(values[0], perm) if perm is not None else values[0].T

    for name in node.output:
        if name:
            constants.derive(name, compute)


def _attribute(node, name: str, default):
    for attribute in node.attribute:
        if attribute.name == name:
            from onnx import helper

            return helper.get_attribute_value(attribute)
    return default


def _informative(weight: np.ndarray) -> bool:
    """Whether a weight's values vary and are finite: a crafted all-equal, NaN or inf tensor carries no evidence."""
    return bool(weight.size) and bool(np.isfinite(weight).all()) and bool(weight.max() > weight.min())


def _unit_rows(state: np.ndarray) -> np.ndarray:
    """Each channel's row scaled to unit length: whatever scaled a channel (BatchNorm, its statistics, a
    copier's rescaling) is gone before the next layer reads it."""
    norms = np.linalg.norm(state, axis=-1, keepdims=True)
    return state / np.where(norms > _FLOOR, norms, 1.0)


def _unit_columns(weight: np.ndarray) -> np.ndarray:
    """A (groups, out, in) weight (a convolution's summed over its kernel) with each input channel's column
    scaled to unit length: a copier who rescaled the channels a layer reads (and the layer before to
    match) is undone here."""
    weight = weight.astype(np.float64)
    norms = np.sqrt(np.sum(weight * weight, axis=1, keepdims=True))
    return weight / np.where(norms > _FLOOR, norms, 1.0)
