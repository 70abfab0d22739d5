"""The provenance fingerprint: what a model's weights say of where they came from.

The structural code says which architecture a model is; a copier's fine-tuning,
quantization or reordering of hidden units leaves the architecture alone and
changes every weight value. What survives is the *composition* of the weights
seen from the one place nobody reorders: the model's input. A copier may permute
the hidden units of a layer (and the next layer's inputs with them), rescale
them by positive factors (ReLU lets the next layer undo it), fold a BatchNorm
into the convolution before it, store the weights in fp16 or int8: none of
that changes what the layers compute from the input, taken linearly.

So the fingerprint follows the input through the graph, linearly: the input's
anchor coordinates (for an image model, the first convolution's kernel
positions per colour channel; for a language model, its vocabulary rows)
are projected to ``ANCHOR_DIMS`` seeded random directions, and every weight
layer multiplies that state on (a convolution by its kernel summed over
space; elementwise ops and activations pass it through; residual adds sum their
branches). After each weight layer, the state is one row per hidden unit of
what that unit responds to in anchor space. Normalising each row (any rescaling
of the unit) and taking the Gram matrix of the rows (any order of the units)
leaves an ``ANCHOR_DIMS`` x ``ANCHOR_DIMS`` matrix that a copy keeps and an
independently initialised model does not share: the fingerprint is its upper
triangle, per weight layer, at most ``MAX_LAYERS`` layers spread over the depth.

A copy that was fine-tuned hard enough to turn its first layer (every deeper
state depends on it) keeps something else: its units where they were. Each weight
layer's values at ``POSITIONS`` fixed positions (chosen by the layer's shape) are
sketched into ``SKETCH_BITS`` signs of random projections; a layer of a copy
agrees with its original's in most of the signs, and an independent model, whose
units sit in an order nobody chose, in half of them. The two parts of the
fingerprint answer different copiers: the Gram one a copier who reordered or
rescaled units, the positional one a copier who fine-tuned a lot.

Nothing is executed: the walk is this module's own arithmetic on the weight
tensors, and an op it does not know passes its first input's state on (for a
copy, the same pass-through happens on both sides). Quantized weights
(DequantizeLinear of a constant, QLinearConv, QLinearMatMul, ConvInteger,
MatMulInteger) are read dequantized, fp16 and bf16 ones as float32.
"""

from __future__ import annotations

import base64
import logging
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from hnn.errors import first_line
from hnn.provenance.walk import _SEED, ANCHOR_DIMS, weight_layers
from hnn.weight_store import WeightStore

if TYPE_CHECKING:
    import onnx

log = logging.getLogger("hnn.provenance")

FORMAT_VERSION = 1
UNORDERED_VERSION = 2  # bare weights: no Grams, no order, each sketch's tensor
MAX_GRAM_LAYERS = 48
MAX_POSITIONAL_LAYERS = 256
POSITIONS = 4096
SKETCH_BITS = 512
# Layers with fewer weights than this say too little by position (a 3x3 depthwise kernel of 8 channels).
MIN_POSITIONAL = 256
# A hidden unit's row shorter than this (against the layer's largest) is a pruned or dead unit: left out of the Gram.
DEAD_ROW = 1e-6
_TRIU = np.triu_indices(ANCHOR_DIMS, k=1)
FEATURES = len(_TRIU[0])
MAX_DIMENSIONS = 8  # of a layer's shape, as a fingerprint may record it
_SKETCH_BYTES = SKETCH_BITS // 8


@dataclass(frozen=True, eq=False)
class Fingerprint:
    """grams: one row per sampled weight layer reached from the input, the upper triangle of its anchor
    Gram; shapes and sketches: one per weight layer, its (out, in, kernel...) shape and positional sketch.

    ``tensors``: None for a graph's fingerprint, whose layers are in the walk's canonical order. A file
    of bare weights (hnn.provenance.weights_only) has no order and no Grams: ``tensors`` then gives,
    per sketch, the stored tensor it was made from (a 2-D tensor is sketched in both layouts)."""

    grams: np.ndarray  # (layers, FEATURES) float32
    shapes: tuple[tuple[int, ...], ...]
    sketches: np.ndarray  # (layers, SKETCH_BITS // 8) uint8
    tensors: np.ndarray | None = None  # (layers,) int64, ascending, or None

    @property
    def ordered(self) -> bool:
        return self.tensors is None

    def __eq__(self, other) -> bool:  # by what is stored: arrays have no single truth value
        return isinstance(other, Fingerprint) and self.to_bytes() == other.to_bytes()

    def __hash__(self) -> int:
        return hash(self.to_bytes())

    def to_bytes(self) -> bytes:
        """The compact form the index and IR files keep: a header, the shapes, the sketches, and the Grams
        as int8 with one float32 scale per layer (a Gram's entries are small; 1/254 of the largest is
        far below what tells a copy from an independent model). An unordered fingerprint is version 2:
        its tensor numbers follow the sketches (a graph's fingerprint is written as version 1 always)."""
        scales = np.abs(self.grams).max(axis=1) / 127.0 if len(self.grams) else np.zeros(0)
        scales = np.where(scales > 0, scales, 1.0).astype("<f4")
        grams = np.round(self.grams / scales[:, None]).astype(np.int8)
        shapes = b"".join(bytes([len(shape)]) + np.asarray(shape, "<i8").tobytes() for shape in self.shapes)
        version = FORMAT_VERSION if self.ordered else UNORDERED_VERSION
        header = np.asarray([version, ANCHOR_DIMS, len(self.grams), len(self.shapes)], "<u2").tobytes()
        tensors = b"" if self.ordered else np.asarray(self.tensors, "<u4").tobytes()
        return header + shapes + self.sketches.tobytes() + tensors + scales.tobytes() + grams.tobytes()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Fingerprint:
        """A fingerprint from :meth:`to_bytes`; ValueError says why bytes are not one this module writes."""
        view = memoryview(raw)
        if len(view) < 8:
            raise ValueError("too short to be a fingerprint")
        version, dims, gram_count, shape_count = (int(v) for v in np.frombuffer(view[:8], "<u2"))
        if version not in (FORMAT_VERSION, UNORDERED_VERSION) or dims != ANCHOR_DIMS:
            raise ValueError(f"not a version-{FORMAT_VERSION} or {UNORDERED_VERSION} fingerprint of "
                             f"{ANCHOR_DIMS} anchor dimensions")
        ordered = version == FORMAT_VERSION
        most = MAX_POSITIONAL_LAYERS if ordered else 2 * MAX_POSITIONAL_LAYERS
        if gram_count > (MAX_GRAM_LAYERS if ordered else 0) or shape_count > most:
            raise ValueError(f"more than {MAX_GRAM_LAYERS} Gram layers or {most} weight layers")
        at, shapes = 8, []
        for _ in range(shape_count):
            rank = view[at] if at < len(view) else 0
            if not 1 <= rank <= MAX_DIMENSIONS or at + 1 + 8 * rank > len(view):
                raise ValueError("a damaged shape")
            shape = struct.unpack_from(f"<{rank}q", view, at + 1)
            if not all(0 < d < 1 << 40 for d in shape):
                raise ValueError("a shape with a dimension out of range")
            shapes.append(shape)
            at += 1 + 8 * rank
        tensor_bytes = 0 if ordered else 4 * shape_count
        expected = at + shape_count * _SKETCH_BYTES + tensor_bytes + gram_count * (4 + FEATURES)
        if len(view) != expected:
            raise ValueError(f"{len(view)} bytes where the header says {expected}")
        sketches = np.frombuffer(view[at:at + shape_count * _SKETCH_BYTES], np.uint8).reshape(shape_count, _SKETCH_BYTES)
        at += shape_count * _SKETCH_BYTES
        tensors = None
        if not ordered:
            tensors = np.frombuffer(view[at:at + tensor_bytes], "<u4").astype(np.int64)
            if np.any(np.diff(tensors) < 0):
                raise ValueError("tensor numbers out of order")
            at += tensor_bytes
        scales = np.frombuffer(view[at:at + 4 * gram_count], "<f4").astype(np.float32)
        at += 4 * gram_count
        if not np.all(np.isfinite(scales)) or np.any(scales <= 0) or np.any(scales > 1.0):
            raise ValueError("a Gram scale that is not in (0, 1]")
        grams = np.frombuffer(view[at:], np.int8).reshape(gram_count, FEATURES).astype(np.float32) * scales[:, None]
        return cls(grams, tuple(shapes), sketches.copy(), tensors)

    def to_dict(self) -> dict:
        return {"format": FORMAT_VERSION if self.ordered else UNORDERED_VERSION,
                "data": base64.b64encode(self.to_bytes()).decode("ascii")}

    @classmethod
    def from_dict(cls, data: dict) -> Fingerprint:
        """A fingerprint from IR JSON; ValueError says why it is not one this module writes."""
        if not isinstance(data, dict) or set(data) != {"format", "data"} or not isinstance(data["data"], str):
            raise ValueError('not a fingerprint: expected {"format": ..., "data": base64 text}')
        try:
            raw = base64.b64decode(data["data"], validate=True)
        except ValueError:
            raise ValueError("its data is not base64") from None
        return cls.from_bytes(raw)


def fingerprint(model: onnx.ModelProto, weights: WeightStore | None = None) -> Fingerprint | None:
    """The model's provenance fingerprint, or None when it has no weight layer, or its weights cannot be
    read as this module expects (a malformed upload: no fingerprint is no evidence, never a crash)."""
    try:
        layers = weight_layers(model, weights, digest=_sketch,
                               state_digest=lambda state: _gram(state) if state is not None else None)
    except (ValueError, TypeError, IndexError, KeyError, np.linalg.LinAlgError) as exc:
        log.warning("no provenance fingerprint: %s", first_line(exc))
        return None
    grams, shapes, sketches = [], [], []
    for layer in layers:
        if layer.state is not None:
            grams.append(layer.state)
        if layer.summary is not None:
            shapes.append(layer.shape)
            sketches.append(layer.summary)
    if not grams and not shapes:
        return None
    grams = _evenly(grams, MAX_GRAM_LAYERS)
    keep = _evenly(list(range(len(shapes))), MAX_POSITIONAL_LAYERS)
    return Fingerprint(np.stack(grams).astype(np.float32) if grams else np.zeros((0, FEATURES), np.float32),
                       tuple(shapes[i] for i in keep),
                       np.stack([sketches[i] for i in keep]) if keep else np.zeros((0, _SKETCH_BYTES), np.uint8))


def _sketch(weight: np.ndarray) -> np.ndarray | None:
    return positional_sketch(weight) if weight.ndim <= MAX_DIMENSIONS else None


def positional_sketch(weight: np.ndarray) -> np.ndarray | None:
    """SKETCH_BITS signs of random projections of the (centred) weights at the layer shape's fixed positions;
    None for a layer too small to tell, or one whose values do not vary or are not finite (no evidence)."""
    positions = sketch_positions(weight.shape)
    if positions is None:
        return None
    return sketch_of(weight.reshape(-1)[positions])


def sketch_positions(shape) -> np.ndarray | None:
    """Where a layer of this (out, in, kernel...) shape is sketched, as flat positions: every one of a
    layer up to POSITIONS weights, else POSITIONS drawn by a generator seeded with the shape, so that
    two models read a layer of one shape at the same places. None for a layer too small to tell."""
    size = int(np.prod(shape, dtype=np.int64))
    if size < MIN_POSITIONAL:
        return None
    if size <= POSITIONS:
        return np.arange(size)
    return np.random.default_rng([_SEED, *shape]).integers(0, size, POSITIONS)


def sketch_of(values: np.ndarray) -> np.ndarray | None:
    """The sketch of a layer's values at its :func:`sketch_positions`; None where they are not finite or all equal."""
    values = values.astype(np.float32)
    if not np.all(np.isfinite(values)):
        return None
    values -= values.mean(dtype=np.float64)
    if not np.any(values):
        return None
    signs = _hyperplanes()[:, :len(values)] @ values > 0
    return np.packbits(signs)


@lru_cache(maxsize=1)
def _hyperplanes() -> np.ndarray:
    return np.random.default_rng(_SEED).standard_normal((SKETCH_BITS, POSITIONS)).astype(np.float32)


def _evenly(items: list, most: int) -> list:
    """At most ``most`` of ``items``, spread evenly over them (the first and the last kept)."""
    if len(items) <= most:
        return items
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, most).round()]


def _gram(state: np.ndarray) -> np.ndarray | None:
    """Upper triangle of the Gram matrix of a layer's unit rows, each normalised; None for fewer than two live units."""
    norms = np.linalg.norm(state, axis=1)
    if not np.all(np.isfinite(norms)) or norms.max(initial=0.0) == 0.0:
        return None
    live = norms > DEAD_ROW * norms.max()
    if live.sum() < 2:
        return None
    rows = state[live] / norms[live, None]
    gram = rows.T @ rows / live.sum()
    return gram[_TRIU]
