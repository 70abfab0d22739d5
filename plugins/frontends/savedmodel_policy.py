"""An allow-list of TensorFlow ops, checked on a SavedModel before anything converts it.

A SavedModel is a graph of TensorFlow ops plus a library of functions; loading
and tracing it (as tf2onnx does) can run them, and ops such as ``WriteFile``,
``ReadFile``, ``MatchingFiles`` or ``PyFunc`` reach the file system or the
Python interpreter. So ``saved_model.pb`` is parsed as a protobuf (nothing in it
runs) and every op, in the graph and in every function of the library, nested
ones (``If`` branches, ``While`` bodies, called functions) included, must be on
:data:`MODEL_OPS`.

One exception: every SavedModel carries the save and restore functions of its
variables checkpoint, which use ``SaveV2``/``RestoreV2``. Those ops are allowed
only in functions reached from the ``saver_def``'s save and restore nodes and
from nowhere else; a file op in the model's own functions is refused.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

from hnn.errors import InputError

MAX_SAVED_MODEL_BYTES = 2 * 1024**3  # protobuf's own limit

# Ops of inference graphs as Keras and tf.function write them: arithmetic, nn
# layers, array manipulation, resource variables and control flow. Not here:
# anything with file, network or interpreter access, and anything unknown.
MODEL_OPS = frozenset("""
Abs Acos Acosh Add AddN AddV2 All Any ArgMax ArgMin Asin Asinh Assert AssignAddVariableOp AssignSubVariableOp
AssignVariableOp Atan Atan2 Atanh AvgPool AvgPool3D BatchMatMul BatchMatMulV2 BatchMatMulV3 BatchToSpaceND BiasAdd
BroadcastArgs BroadcastGradientArgs BroadcastTo Case Cast Ceil CheckNumerics ClipByValue ConcatV2 Const Conv2D
Conv2DBackpropInput Conv3D Conv3DBackpropInputV2 Cos Cosh Cumsum DepthToSpace DepthwiseConv2dNative
DisableCopyOnRead Div DivNoNan Einsum Elu EnsureShape Equal Erf Erfc Exp ExpandDims Expm1 Fill Floor FloorDiv
FloorMod FusedBatchNorm FusedBatchNormV3 Gather GatherNd GatherV2 Greater GreaterEqual Identity IdentityN If
IsFinite IsInf IsNan L2Loss LRN LeakyRelu Less LessEqual Log Log1p LogSoftmax LogicalAnd LogicalNot LogicalOr
MatMul MatrixBandPart Max MaxPool MaxPool3D MaxPoolV2 Maximum Mean Min Minimum MirrorPad Mod Mul Neg NoOp NotEqual
OneHot OnesLike Pack Pad PadV2 PartitionedCall Placeholder PlaceholderWithDefault Pow Prod Range Rank
ReadVariableOp RealDiv Reciprocal Relu Relu6 Reshape ResizeBicubic ResizeBilinear ResizeNearestNeighbor ReverseV2
Round Rsqrt ScatterNd Select SelectV2 Selu Shape ShapeN Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign
SpaceToBatchND SpaceToDepth Split SplitV Sqrt Square SquaredDifference Squeeze StatefulPartitionedCall
StatelessCase StatelessIf StatelessWhile StopGradient StridedSlice Sub Sum Tan Tanh TensorListElementShape
TensorListFromTensor TensorListGetItem TensorListLength TensorListReserve TensorListSetItem TensorListStack Tile
TopKV2 Transpose Unpack VarHandleOp VarIsInitializedOp Where While ZerosLike
""".split())

# What the checkpoint save/restore functions use, on top of MODEL_OPS.
CHECKPOINT_OPS = frozenset(
    "MergeV2Checkpoints RestoreV2 SaveV2 ShardedFilename StaticRegexFullMatch StringJoin".split()
)


# Ops refused with a reason, named first when a file holds several refused ops.
DANGEROUS_OPS = CHECKPOINT_OPS | frozenset(
    "DeleteFile EagerPyFunc FixedLengthRecordReaderV2 ImmutableConst MatchingFiles PrintV2 PyFunc PyFuncStateless "
    "ReadFile Restore RestoreSlice Save SaveSlices TFRecordReaderV2 WholeFileReaderV2 WriteFile".split()
)


def check_saved_model(folder: Path) -> None:
    """Raise InputError naming the first op off the allow-list, and the function holding it."""
    from hnn.plugins.frontends.tf_import import import_tensorflow

    import_tensorflow()  # triton first (see there), then TensorFlow
    from tensorflow.core.protobuf import (
        saved_model_pb2,  # only the protobuf schema is used
    )

    path = Path(folder) / "saved_model.pb"
    if path.stat().st_size > MAX_SAVED_MODEL_BYTES:
        raise InputError(f"{folder}: rejected: saved_model.pb is over 2 GiB")
    saved = saved_model_pb2.SavedModel()
    try:
        saved.ParseFromString(path.read_bytes())
    except Exception as exc:  # protobuf's DecodeError and its C++ relatives
        raise InputError(f"{folder}: rejected: saved_model.pb is not a SavedModel protobuf ({exc})") from None
    for meta_graph in saved.meta_graphs:
        _check_meta_graph(folder, meta_graph)


def _check_meta_graph(folder: Path, meta_graph) -> None:
    functions = {f.signature.name: f for f in meta_graph.graph_def.library.function}
    saver_roots = {meta_graph.saver_def.save_tensor_name.split(":")[0], meta_graph.saver_def.restore_op_name}
    saver_roots.discard("")

    top_level = [node for node in meta_graph.graph_def.node if node.name not in saver_roots]
    strict = _reachable(top_level, functions)
    strict |= set(functions) - _reachable(meta_graph.graph_def.node, functions)  # uncalled: strict too
    refused = []  # (op, where)
    for node in meta_graph.graph_def.node:
        allowed = MODEL_OPS | CHECKPOINT_OPS if node.name in saver_roots else MODEL_OPS
        if node.op not in allowed and node.op not in functions:  # a call by name is checked in its function
            refused.append((node.op, "the top-level graph"))
    for name, function in functions.items():
        allowed = MODEL_OPS if name in strict else MODEL_OPS | CHECKPOINT_OPS
        refused.extend((node.op, f"function {name}") for node in function.node_def
                       if node.op not in allowed and node.op not in functions)
    if refused:
        # Name the op that does the harm, not an innocent unknown one next to it.
        op, where = next((item for item in refused if item[0] in DANGEROUS_OPS), refused[0])
        hint = " (it reaches files or Python)" if op in DANGEROUS_OPS else ""
        raise InputError(f"{folder}: rejected: TensorFlow op {op}{hint} in {where} is not on hnn's allow-list "
                         "of model ops; pass --trust only if you trust its author")


def _called_functions(node, functions) -> list[str]:
    """Functions a node calls: through a func attribute (calls, If/While bodies) or by op name."""
    called = [node.op] if node.op in functions else []
    for value in node.attr.values():
        if value.HasField("func"):
            called.append(value.func.name)
        called.extend(f.name for f in value.list.func)
    return called


def _reachable(roots, functions) -> set[str]:
    """Names of the functions that the nodes ``roots`` call, directly or through other functions."""
    seen: set[str] = set()
    queue = deque(name for node in roots for name in _called_functions(node, functions))
    while queue:
        name = queue.popleft()
        if name in seen or name not in functions:
            continue
        seen.add(name)
        for node in functions[name].node_def:
            queue.extend(_called_functions(node, functions))
    return seen
