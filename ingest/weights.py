"""Weight marks: a fixed-size sample of a model's weight values that survives pruning.

The perceptual code and the structure describe the architecture alone, so a copy
whose every layer was narrowed (structured pruning) looks like the original's
narrower sibling, and one with a block removed like a shallower one. What such a
copy keeps is the original's *values*: pruning drops channels and layers, and
every value that remains is bit for bit one of the original's, until the copy
is fine-tuned.

The marks of a model are the ``MARKS`` smallest 63-bit hashes of the distinct
*pairs of neighbouring values* in its weight tensors (a bottom-k sketch): along
both axes of a matrix, so that a weight stored transposed gives the same pairs,
and in stored order in any other tensor. A single float32 value is not specific
enough: weights crowd into a few tens of millions of bit patterns, so unrelated
models share values by chance, more the larger they are (docs/RESULTS.md,
Evasion, says what marks of single values did). Two
neighbours are specific (a chance collision is about as likely as one of two
64-bit hashes), and pruning keeps most of them: every pair inside a kept
convolution kernel, and a pair across kernels or rows where both of its channels
are kept.

For two models A and B, the number of marks they share estimates
``|pairs(A) & pairs(B)| / max(|pairs(A)|, |pairs(B)|) * MARKS``: a copy pruned by
30% shares 41 or more of its original's marks (benchmarks/evasion.py); two
independently initialised models share none.

What counts as a weight: every floating-point initializer that a node reads,
and every Constant tensor, of at least ``MIN_ELEMENTS`` elements that is not
constant (freshly initialised biases and normalization parameters, all zeros or
ones, are the same in every model); a pair of two zeros (what sparse pruning writes) is left out. Exact
bits, so renaming, re-exporting and converting keep the marks, while fp16
weights and fine-tuning replace every value and leave the copy to the structural
ranking (docs/index.md). A convolution weight stored in another layout
(a framework that keeps kernels last rather than first, if its converter does
not put them back) has other neighbours, and so other marks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hnn.weight_store import FLOAT_TYPES, WeightStore, is_hollow, tensor_values

if TYPE_CHECKING:
    import onnx

MARKS = 128
MIN_ELEMENTS = 16
# A tensor is hashed in chunks of this many values, so a 100M-element weight costs
# tens of MB of hashes at a time, not 800 MB.
CHUNK = 1 << 22



def weight_marks(model: onnx.ModelProto, marks: int = MARKS, weights: WeightStore | None = None) -> list[int]:
    """The model's weight marks, ascending; fewer than ``marks`` when it has fewer distinct values.
    ``weights``: the values of the model's hollow tensors (hnn.weight_store), read one at a time."""

    smallest = np.empty(0, dtype=np.uint64)
    for tensor in _weight_tensors(model.graph):
        if is_hollow(tensor) and (weights is None or tensor.name not in weights):
            continue  # a graph built without its weights (a config alone): no values, no marks
        values = tensor_values(tensor, weights).astype(np.float32, copy=False)
        if values.size < MIN_ELEMENTS or values.min() == values.max():
            continue
        for pairs in _neighbour_pairs(values.view(np.uint32)):
            hashes = _hashes(pairs)
            if smallest.size == marks:  # only what beats the current k-th can enter: skip the rest cheaply
                hashes = hashes[hashes < smallest[-1]]
            smallest = _bottom(np.concatenate([smallest, hashes]), marks)
    return [int(mark) for mark in smallest]


def _neighbour_pairs(bits: np.ndarray):
    """Chunks of uint64 pairs (first value's bits high) of neighbouring values of one tensor.

    A matrix gives the pairs along its rows and along its columns, so that the same weights stored
    transposed (a MatMul's (in, out) weight, where Gemm keeps (out, in)) give the same pairs; any
    other tensor the pairs of its values in stored order. A huge tensor comes in chunks of about
    CHUNK values (overlapping by a row, or one value, so that no pair is lost).
    """
    if bits.ndim == 2 and min(bits.shape) > 1 and bits.shape[1] <= CHUNK:
        rows = max(1, CHUNK // bits.shape[1])
        for start in range(0, bits.shape[0], rows):
            block = bits[start:start + rows + 1].astype(np.uint64)
            if start + rows < bits.shape[0]:  # the extra row only pairs down with the block's last
                yield _pair(block[:-1, :-1], block[:-1, 1:])
            else:
                yield _pair(block[:, :-1], block[:, 1:])
            yield _pair(block[:-1], block[1:])
        return
    flat = bits.ravel()
    for start in range(0, flat.size - 1, CHUNK):
        chunk = flat[start:start + CHUNK + 1].astype(np.uint64)
        yield _pair(chunk[:-1], chunk[1:])


def _pair(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    return ((first << np.uint64(32)) | second).ravel()


def shared_marks(first: list[int] | np.ndarray, second: list[int] | np.ndarray) -> int:
    """How many marks two models have in common."""
    return len(np.intersect1d(np.asarray(first, dtype=np.int64), np.asarray(second, dtype=np.int64)))


def _weight_tensors(graph: onnx.GraphProto):
    # Only initializers a node reads: a pirate's unused tensor of random values would otherwise
    # crowd the original's pairs out of the sample for free.
    consumed = {name for node in graph.node for name in node.input}
    for tensor in graph.initializer:
        if tensor.data_type in FLOAT_TYPES and tensor.name in consumed:
            yield tensor
    for node in graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value" and attribute.t.data_type in FLOAT_TYPES:
                    yield attribute.t


def _hashes(pairs: np.ndarray) -> np.ndarray:
    """63-bit hashes (SQLite integers are signed) of pairs of float32 bit patterns."""
    pairs = pairs[(pairs & np.uint64(0x7FFFFFFF7FFFFFFF)) != 0]  # two zeros (of either sign)
    # splitmix64's finalizer: every input bit moves every output bit, so the smallest hashes are a
    # uniform sample of the distinct pairs. uint64 arithmetic wraps, as the mix expects.
    # In place: the chunk is the only large array alive.
    z = pairs + np.uint64(0x9E3779B97F4A7C15)
    for shift, multiplier in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
        z ^= z >> np.uint64(shift)
        z *= np.uint64(multiplier)
    z ^= z >> np.uint64(31)
    z >>= np.uint64(1)
    return z


def _bottom(hashes: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` smallest distinct values of ``hashes``, ascending."""
    if hashes.size > 4 * count:
        # Partition first: linear, where np.unique of millions of hashes would sort them all.
        candidates = np.unique(np.partition(hashes, 4 * count)[:4 * count + 1])
        if candidates.size >= count:
            return candidates[:count]
    return np.unique(hashes)[:count]
