"""Fuzz target for the SavedModel path: hnn's allow-list check of ``saved_model.pb``.

The check is what stands between an upload and TensorFlow loading it (and running
its ops), so it is what this fuzzes: the target writes the bytes as the folder's
``saved_model.pb`` and runs :func:`check_saved_model`. A well-behaved outcome is
a pass or an :class:`~hnn.errors.HnnError`; anything else is a finding. So is a
pass of a file that holds an op that reaches files or Python (DANGEROUS_OPS)
outside TensorFlow's own saver form: the check must never let one through.

Mutations start from real SavedModels built here (a tf.Module, a Keras export)
and change ops, wiring, called functions, attributes and the saver_def; one time
in four, raw bytes of the protobuf.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path

from common import Finding, finding_of, mutate_bytes

from hnn.errors import HnnError

SUFFIX = ".pb"
OP_POOL = ("MatMul", "Relu", "Identity", "StatefulPartitionedCall", "PartitionedCall", "If", "While", "Const",
           "ReadFile", "WriteFile", "PyFunc", "SaveV2", "RestoreV2", "MergeV2Checkpoints", "NotAnOp", "NoOp",
           "VarHandleOp", "ReadVariableOp", "StringJoin", "Placeholder")


def seed_inputs() -> list[bytes]:
    from hnn.plugins.frontends.tf_import import import_keras, import_tensorflow

    tf = import_tensorflow()
    keras = import_keras()

    class Dense(tf.Module):
        def __init__(self):
            self.w = tf.Variable(tf.ones([4, 3]))

        @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)])
        def __call__(self, x):
            return tf.nn.relu(tf.matmul(x, self.w))

    folder = Path(tempfile.mkdtemp(prefix="hnn-fuzz-seeds-"))
    try:
        tf.saved_model.save(Dense(), str(folder / "dense"))
        model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
                                  keras.layers.Dense(2)])
        model.export(str(folder / "keras"), verbose=False)
        return [(folder / name / "saved_model.pb").read_bytes() for name in ("dense", "keras")]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def mutate(data: bytes, rng: random.Random, rounds: int = 3) -> bytes:
    from tensorflow.core.protobuf import saved_model_pb2

    if rng.random() < 0.25:
        return mutate_bytes(data, rng)
    saved = saved_model_pb2.SavedModel()
    try:
        saved.ParseFromString(data)
    except Exception:
        return mutate_bytes(data, rng)
    if not saved.meta_graphs:
        return mutate_bytes(data, rng)
    meta_graph = saved.meta_graphs[0]
    for _ in range(rng.randint(1, rounds)):
        try:
            rng.choice(_MUTATIONS)(meta_graph, rng)
        except (IndexError, ValueError, TypeError, UnicodeDecodeError):
            return mutate_bytes(data, rng)
    try:
        return saved.SerializeToString()
    except Exception:
        return data


def _all_nodes(meta_graph) -> list:
    nodes = list(meta_graph.graph_def.node)
    for function in meta_graph.graph_def.library.function:
        nodes.extend(function.node_def)
    return nodes


def _set_op(meta_graph, rng):
    rng.choice(_all_nodes(meta_graph)).op = rng.choice(OP_POOL)


def _rewire(meta_graph, rng):
    nodes = _all_nodes(meta_graph)
    node = rng.choice(nodes)
    if node.input:
        node.input[rng.randrange(len(node.input))] = rng.choice(nodes).name
    else:
        node.input.append(rng.choice(nodes).name)


def _call_other_function(meta_graph, rng):
    functions = [f.signature.name for f in meta_graph.graph_def.library.function] + ["no_such_function"]
    calls = [node for node in _all_nodes(meta_graph) if "f" in node.attr]
    if calls:
        rng.choice(calls).attr["f"].func.name = rng.choice(functions)


def _saver(meta_graph, rng):
    names = [node.name for node in meta_graph.graph_def.node] + ["", "missing"]
    field = rng.choice(("restore_op_name", "save_tensor_name", "filename_tensor_name"))
    setattr(meta_graph.saver_def, field, rng.choice(names) + ("" if field == "restore_op_name" else ":0"))


def _drop_node(meta_graph, rng):
    container = rng.choice([meta_graph.graph_def.node] + [f.node_def for f in meta_graph.graph_def.library.function])
    if len(container):
        del container[rng.randrange(len(container))]


def _string_constant(meta_graph, rng):
    constants = [node for node in _all_nodes(meta_graph) if node.op == "Const"]
    if constants:
        tensor = rng.choice(constants).attr["value"].tensor
        tensor.string_val.append(rng.choice((b"/etc/passwd", b"../../x", b"_temp/part", b"\xff\xfe")))


_MUTATIONS = (_set_op, _rewire, _call_other_function, _saver, _drop_node, _string_constant)


def run_one(data: bytes, workdir: Path) -> Finding | None:
    """Check ``data`` as an uploaded SavedModel's saved_model.pb; a Finding when the check misbehaves."""
    from hnn.plugins.frontends.savedmodel_policy import check_saved_model

    folder = Path(workdir) / "upload"
    folder.mkdir(exist_ok=True)
    (folder / "saved_model.pb").write_bytes(data)
    try:
        check_saved_model(folder)
    except (HnnError, MemoryError):
        return None
    except Exception as exc:  # noqa: BLE001
        return finding_of(exc)
    return _passed_a_dangerous_op(data)


def _passed_a_dangerous_op(data: bytes) -> Finding | None:
    """A file that passed the check holds no file or Python op, and checkpoint ops only where TensorFlow's
    saver puts them: readers in the restore function, writers in the save function."""
    from tensorflow.core.protobuf import saved_model_pb2

    from hnn.plugins.frontends.savedmodel_policy import CHECKPOINT_OPS, DANGEROUS_OPS, WRITER_OPS

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString(data)
    for meta_graph in saved.meta_graphs:
        top = {node.name: node for node in meta_graph.graph_def.node}

        def called_by(root: str) -> str:
            node = top.get(root.split(":")[0])
            return node.attr["f"].func.name if node is not None and "f" in node.attr else ""

        allowed_in = {"RestoreV2": called_by(meta_graph.saver_def.restore_op_name),
                      **dict.fromkeys(WRITER_OPS, called_by(meta_graph.saver_def.save_tensor_name))}
        places = [("", node) for node in meta_graph.graph_def.node]
        places += [(f.signature.name, node) for f in meta_graph.graph_def.library.function for node in f.node_def]
        for where, node in places:
            misplaced = node.op in allowed_in and where != allowed_in[node.op]
            if (node.op in DANGEROUS_OPS - CHECKPOINT_OPS) or misplaced:
                return Finding(f"Passed {node.op}", f"{node.op} in {where or 'the top-level graph'} passed the check")
    return None
