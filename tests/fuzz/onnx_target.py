"""Fuzz target for the ONNX-to-IR path, and a structure-aware mutator of real model protobufs.

The target is what the worker runs on an uploaded ``.onnx`` file: write the
bytes to a file, then :func:`hnn.ingest.pipeline.ingest` with the onnx
front-end. A well-behaved outcome is an IR or an :class:`~hnn.errors.HnnError`
(the one-line rejection a user sees); a MemoryError is the worker's memory
limit doing its job. Anything else is a finding: a bug that reaches the user
as "rejected: SomeError" instead of a reason, or a native crash.

Mutations start from real models (the bundled example, small models built
here the way the tests build them) and change what a hostile file can change:
dimensions, attributes, data types, op types, node wiring, initializer bytes,
and, one time in four, raw bytes of the serialized protobuf.

Used by ``scripts/fuzz.py --target onnx`` (atheris, for minutes or hours) and by
``tests/test_fuzz_target.py`` (a fixed, seeded sample of mutations in CI).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import onnx
from common import Finding, finding_of, mutate_bytes
from onnx import TensorProto, helper, numpy_helper

from hnn.errors import HnnError

SUFFIX = ".onnx"

# Ops the mutator may swap in: real ONNX ops, with and without weights, some with subgraphs.
OP_POOL = ("Conv", "Relu", "Add", "MatMul", "Gemm", "BatchNormalization", "MaxPool", "Concat", "Reshape",
           "Transpose", "Identity", "If", "Loop", "Split", "Gather", "Resize", "Slice", "Pad", "Softmax",
           "GlobalAveragePool", "Flatten", "NotAnOp")
DATA_TYPES = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.INT64, TensorProto.STRING, TensorProto.BOOL,
              TensorProto.UNDEFINED, 99)
INTERESTING_INTS = (0, 1, -1, 2, 3, 7, 2**31 - 1, -(2**31), 2**40, 10**12)


def seed_models() -> list[bytes]:
    """Serialized real models the mutations start from."""
    from hnn.ingest.pipeline import EXAMPLE_MODEL

    seeds = [EXAMPLE_MODEL.read_bytes()]
    rng = np.random.default_rng(0)

    def weight(name, *shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    residual = helper.make_graph(
        [helper.make_node("Conv", ["x", "w1"], ["a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
         helper.make_node("BatchNormalization", ["a", "s", "b", "m", "v"], ["bn"]),
         helper.make_node("Relu", ["bn"], ["r"]),
         helper.make_node("Add", ["r", "x"], ["sum"]),
         helper.make_node("GlobalAveragePool", ["sum"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["flat"]),
         helper.make_node("Gemm", ["flat", "fc", "fcb"], ["y"], transB=1)],
        "residual", [x], [y],
        [weight("w1", 3, 3, 3, 3), weight("s", 3), weight("b", 3), weight("m", 3),
         numpy_helper.from_array(np.ones(3, np.float32), "v"), weight("fc", 5, 3), weight("fcb", 5)])
    branch = helper.make_graph([helper.make_node("Relu", ["x"], ["z"])], "branch", [],
                               [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)])
    cond = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
    with_if = helper.make_graph([helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch)],
                                "with_if", [x, cond], [y])
    for graph in (residual, with_if):
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        seeds.append(model.SerializeToString())
    return seeds


def mutate(data: bytes, rng: random.Random, rounds: int = 3) -> bytes:
    """A few structural mutations of a serialized model; raw byte edits when it does not parse."""
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception:
        return mutate_bytes(data, rng)
    if rng.random() < 0.25 or not model.graph.node:
        return mutate_bytes(data, rng)
    for _ in range(rng.randint(1, rounds)):
        if not model.graph.node:  # a dropped node may have been the last
            break
        try:
            rng.choice(_STRUCTURAL)(model, rng)
        except (UnicodeDecodeError, ValueError, TypeError, IndexError):  # unreadable or emptied fields
            return mutate_bytes(data, rng)
    try:
        return model.SerializeToString()
    except Exception:  # e.g. a mutation made a field invalid for serialization
        return data


def _set_dim(model, rng):
    values = [*model.graph.input, *model.graph.value_info, *model.graph.output]
    if values:
        shape = rng.choice(values).type.tensor_type.shape
        if shape.dim:
            shape.dim[rng.randrange(len(shape.dim))].dim_value = rng.choice(INTERESTING_INTS[:8])


def _set_attribute(model, rng):
    node = rng.choice(model.graph.node)
    if node.attribute:
        attribute = rng.choice(node.attribute)
        if attribute.ints:
            attribute.ints[rng.randrange(len(attribute.ints))] = rng.choice(INTERESTING_INTS)
        else:
            attribute.i = rng.choice(INTERESTING_INTS)
    else:
        node.attribute.append(helper.make_attribute(rng.choice(("group", "axis", "kernel_shape", "pads")),
                                                    rng.choice(INTERESTING_INTS[:6])))


def _set_op(model, rng):
    rng.choice(model.graph.node).op_type = rng.choice(OP_POOL)


def _rewire(model, rng):
    names = [name for node in model.graph.node for name in node.output] + [i.name for i in model.graph.input]
    node = rng.choice(model.graph.node)
    if node.input:
        node.input[rng.randrange(len(node.input))] = rng.choice([*names, "", "dangling"])
    else:
        node.input.append(rng.choice(names))


def _duplicate_or_drop_node(model, rng):
    index = rng.randrange(len(model.graph.node))
    if rng.random() < 0.5:
        model.graph.node.append(model.graph.node[index])
    else:
        del model.graph.node[index]


def _initializer(model, rng):
    if not model.graph.initializer:
        return
    tensor = rng.choice(model.graph.initializer)
    choice = rng.random()
    if choice < 0.4 and tensor.dims:
        tensor.dims[rng.randrange(len(tensor.dims))] = rng.choice(INTERESTING_INTS)
    elif choice < 0.7:
        tensor.data_type = rng.choice(DATA_TYPES)
    else:
        tensor.raw_data = tensor.raw_data[: rng.randrange(len(tensor.raw_data) + 1)]


def _opset(model, rng):
    if model.opset_import:
        model.opset_import[0].version = rng.choice((1, 7, 11, 13, 17, 21, 23, 999))
    if rng.random() < 0.3:
        model.ir_version = rng.choice((0, 3, 7, 8, 10, 99))


_STRUCTURAL = (_set_dim, _set_attribute, _set_op, _rewire, _duplicate_or_drop_node, _initializer, _opset)


def run_one(data: bytes, workdir: Path, simplify: bool = False) -> Finding | None:
    """Ingest ``data`` as an uploaded .onnx file; a Finding when it fails in a way a user must not see."""
    from hnn.ingest.pipeline import ingest

    path = Path(workdir) / "upload.onnx"
    path.write_bytes(data)
    try:
        ingest(path, framework="onnx", simplify=simplify)
    except (HnnError, MemoryError):
        return None
    except Exception as exc:  # noqa: BLE001 - the point is to catch what nobody expected
        return finding_of(exc)
    return None


seed_inputs = seed_models  # the name every target gives its seeds (scripts/fuzz.py)
