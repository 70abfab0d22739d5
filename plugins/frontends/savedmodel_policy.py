"""An allow-list of TensorFlow ops, checked on a SavedModel before anything converts it.

A SavedModel is a graph of TensorFlow ops plus a library of functions; loading
and tracing it (as tf2onnx does) can run them, and ops such as ``WriteFile``,
``ReadFile``, ``MatchingFiles`` or ``PyFunc`` reach the file system or the
Python interpreter. So ``saved_model.pb`` is parsed as a protobuf (nothing in it
runs) and every op, in the graph and in every function of the library, nested
ones (``If`` branches, ``While`` bodies, called functions) included, must be on
:data:`MODEL_OPS`.

One exception: every SavedModel carries the save and restore functions of its
variables checkpoint, which use ``SaveV2``/``RestoreV2``. The file writes them,
saver_def included, so they are allowed only in the exact form TensorFlow's saver
writes (:func:`_check_saver`):

* the ``saver_def``'s save and restore nodes are calls (``StatefulPartitionedCall``)
  whose first input is its filename tensor, a ``Placeholder`` that the loader feeds
  with the model's own variables path;
* the restore function (what loading runs) reads with ``RestoreV2`` at exactly its
  first argument, that path, and holds no op that writes;
* the ops that write (``SaveV2``, ``MergeV2Checkpoints``, ``ShardedFilename``) stand
  only in the save function, which loading never runs, on paths made from its first
  argument and string constants without ``..`` or a leading ``/``;
* a file op anywhere else (the model's own functions, the top-level graph, a
  function the saver's functions call) is refused.
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
WRITER_OPS = frozenset({"SaveV2", "MergeV2Checkpoints", "ShardedFilename"})
# The inputs of a writer that name files.
PATH_INPUTS = {"SaveV2": (0,), "MergeV2Checkpoints": (0, 1), "ShardedFilename": (0,), "RestoreV2": (0,)}
CALL_OPS = frozenset({"StatefulPartitionedCall", "PartitionedCall"})


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
    nodes = {node.name: node for node in meta_graph.graph_def.node}
    save_root = meta_graph.saver_def.save_tensor_name.split(":")[0]
    restore_root = meta_graph.saver_def.restore_op_name
    saver_roots = {save_root, restore_root} - {""}
    save_function, restore_function = _check_saver(folder, meta_graph.saver_def, nodes, functions)

    refused = []  # (op, where)
    for node in meta_graph.graph_def.node:
        if node.op not in MODEL_OPS and node.op not in functions:  # a call by name is checked in its function
            refused.append((node.op, "the top-level graph"))
    # Checkpoint ops stand only in the saver's own two functions; what they call is strict.
    non_saver = [node for node in meta_graph.graph_def.node if node.name not in saver_roots]
    strict = _reachable(non_saver, functions) | (set(functions) - {save_function, restore_function})
    for name, function in functions.items():
        allowed = MODEL_OPS if name in strict else MODEL_OPS | CHECKPOINT_OPS
        if name == restore_function:
            allowed = allowed - WRITER_OPS
        elif name == save_function:
            allowed = allowed - {"RestoreV2"}
        refused.extend((node.op, f"function {name}") for node in function.node_def
                       if node.op not in allowed and node.op not in functions)
    if refused:
        # Name the op that does the harm, not an innocent unknown one next to it.
        op, where = next((item for item in refused if item[0] in DANGEROUS_OPS), refused[0])
        hint = " (it reaches files or Python)" if op in DANGEROUS_OPS else ""
        raise InputError(f"{folder}: rejected: TensorFlow op {op}{hint} in {where} is not on hnn's allow-list "
                         "of model ops; pass --trust only if you trust its author")
    for name in (save_function, restore_function):
        if name:
            _check_checkpoint_paths(folder, functions[name])


def _check_saver(folder: Path, saver_def, nodes: dict, functions: dict) -> tuple[str | None, str | None]:
    """The names of the save and restore functions, after checking the saver is TensorFlow's form."""
    filename = saver_def.filename_tensor_name.split(":")[0]
    called = []
    for role, root in (("save", saver_def.save_tensor_name.split(":")[0]), ("restore", saver_def.restore_op_name)):
        if not root:
            called.append(None)
            continue
        node = nodes.get(root)
        function = node.attr["f"].func.name if node is not None and "f" in node.attr else ""
        if node is None or node.op not in CALL_OPS or function not in functions:
            raise InputError(f"{folder}: rejected: the saver's {role} node {root!r} is not a call of a saver "
                             "function, as TensorFlow writes it; pass --trust only if you trust its author")
        if not node.input or node.input[0] != filename or nodes.get(filename) is None \
                or nodes[filename].op != "Placeholder":
            raise InputError(f"{folder}: rejected: the saver's {role} function is not given the checkpoint path "
                             "the loader feeds; pass --trust only if you trust its author")
        called.append(function)
    return called[0], called[1]


def _check_checkpoint_paths(folder: Path, function) -> None:
    """RestoreV2 reads at the function's first argument itself; a writer's paths are made from it
    and from string constants that cannot leave its folder."""
    first_argument = function.signature.input_arg[0].name if function.signature.input_arg else None
    by_name = {node.name: node for node in function.node_def}
    for node in function.node_def:
        for position in PATH_INPUTS.get(node.op, ()):
            source = node.input[position].split(":")[0] if position < len(node.input) else ""
            if node.op == "RestoreV2" and source != first_argument:
                reason = "RestoreV2 reads from a path other than the loader's"
            elif node.op != "RestoreV2" and not _made_from(source, first_argument, by_name):
                reason = f"{node.op} writes to a path not made from the checkpoint path"
            else:
                continue
            raise InputError(f"{folder}: rejected: in function {function.signature.name}, {reason}; pass --trust "
                             "only if you trust its author")


def _made_from(name: str, argument: str | None, by_name: dict) -> bool:
    """Whether tensor ``name`` is computed from ``argument``, with string constants that stay in its folder."""
    seen, stack, reaches = set(), [name], False
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        if current == argument:
            reaches = True
            continue
        node = by_name.get(current)
        if node is None:
            return False  # another argument: a path the caller chose
        if node.op == "Const":
            for value in node.attr["value"].tensor.string_val:
                text = value.decode("utf-8", "replace")
                if ".." in text or text.startswith("/"):
                    return False
        stack.extend(entry.lstrip("^").split(":")[0] for entry in node.input if not entry.startswith("^"))
    return reaches


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
