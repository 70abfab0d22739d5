"""FLOPs of one ONNX node for concrete input and output shapes.

Conventions (docs/ir.md repeats them with examples):

* A multiply-accumulate counts as 2 FLOPs. Bias additions of Conv, ConvTranspose
  and Gemm are not counted, as in ``torch.utils.flop_counter`` and fvcore, so
  the model total of these ops can be checked against torch's own counter.
* Conv: ``2 * numel(Y) * (C_in / group) * prod(kernel)``.
* ConvTranspose: ``2 * numel(X) * (C_out / group) * prod(kernel)``.
* Gemm and MatMul (including attention's Q.K^T and A.V): ``2 * numel(Y) * K``,
  K the contracted dimension.
* BatchNormalization (inference): 2 per element (scale and shift).
* LayerNormalization and other normalisations: 5 per element (mean, centre,
  variance, normalise, affine), an estimate.
* Pooling: ``numel(Y) * prod(kernel)``; global pooling and reductions: ``numel(X)``.
* Softmax and LogSoftmax: 3 per element (exp, sum, divide).
* Elementwise arithmetic and activations: 1 per output element.
* Data movement (Concat, Reshape, Transpose, Slice, Gather, Pad, ...) and unknown ops: 0.

Shapes may be unknown (None) when shape inference could not resolve them;
the node then counts 0 FLOPs rather than a guess.

:func:`enc` buckets a count (FLOPs or parameters) by order of magnitude: the
hasher's node features, the structure code and the GED's node labels all see
sizes through it.
"""

from __future__ import annotations

import math
from math import prod
from typing import Any, Sequence

Shape = Sequence[int] | None
BUCKETS = 11


def enc(value: int) -> int:
    """Order-of-magnitude bucket 0..10 of a non-negative count: min(floor(log10 x) + 1, 10), 0 for 0."""
    if value < 1:
        return 0
    return min(int(math.floor(math.log10(value))) + 1, BUCKETS - 1)

ELEMENTWISE = frozenset(
    """Abs Acos Acosh Add And Asin Asinh Atan Atanh BitShift Ceil Celu Clip Cos Cosh Div Elu Equal
    Erf Exp Floor Gelu Greater GreaterOrEqual HardSigmoid HardSwish LeakyRelu Less LessOrEqual Log
    Max Mean Min Mish Mod Mul Neg Not Or PRelu Pow Reciprocal Relu Round Selu Shrink Sigmoid Sign Sin
    Sinh Softplus Softsign Sqrt Sub Sum Tan Tanh ThresholdedRelu Where Xor IsNaN IsInf Resize
    QuickGelu""".split()
)
REDUCTIONS = frozenset(
    """GlobalAveragePool GlobalMaxPool GlobalLpPool ReduceMean ReduceSum ReduceMax ReduceMin
    ReduceProd ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceSumSquare ArgMax ArgMin""".split()
)
POOLS = frozenset({"MaxPool", "AveragePool", "LpPool"})
NORMALIZATIONS = frozenset(
    {"LayerNormalization", "InstanceNormalization", "GroupNormalization", "LpNormalization",
     "MeanVarianceNormalization", "RMSNormalization", "SimplifiedLayerNormalization"}
)


def _numel(shape: Shape) -> int | None:
    if shape is None or any(dim is None for dim in shape):
        return None
    return prod(shape)


def node_flops(
    op: str,
    attrs: dict[str, Any],
    input_shapes: Sequence[Shape],
    output_shapes: Sequence[Shape],
) -> int:
    """FLOPs of one node; 0 where a needed shape is unknown or the op moves data only."""
    out = _numel(output_shapes[0]) if output_shapes else None
    first_in = input_shapes[0] if input_shapes else None
    if op == "Conv":
        weight = input_shapes[1] if len(input_shapes) > 1 else None
        if out is None or weight is None:
            return 0
        return 2 * out * prod(weight[1:])
    if op == "ConvTranspose":
        weight = input_shapes[1] if len(input_shapes) > 1 else None
        x = _numel(first_in)
        if x is None or weight is None:
            return 0
        return 2 * x * prod(weight[1:])
    if op in ("Gemm", "MatMul"):
        if out is None or first_in is None or not first_in:
            return 0
        transposed = op == "Gemm" and attrs.get("transA", 0)
        contracted = first_in[0] if transposed else first_in[-1]
        return 2 * out * contracted
    if op == "BatchNormalization":
        return 2 * (out or 0)
    if op in NORMALIZATIONS:
        return 5 * (out or 0)
    if op in POOLS:
        return (out or 0) * prod(attrs.get("kernel_shape", [1]))
    if op in REDUCTIONS:
        return _numel(first_in) or 0
    if op in ("Softmax", "LogSoftmax"):
        return 3 * (out or 0)
    if op in ELEMENTWISE:
        return out or 0
    return 0
