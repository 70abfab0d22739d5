"""Copies of an ONNX model as a pirate would make them without touching PyTorch.

Used by benchmarks/evasion.py and by tests/test_hash_cli.py (a disguised copy
must hash like the original). Each function returns a new model.
"""

from __future__ import annotations

import copy

import numpy as np
import onnx
from onnx import helper


def rename_everything(model: onnx.ModelProto) -> onnx.ModelProto:
    """Every node and tensor renamed; the graph's inputs and outputs keep their names."""
    model = copy.deepcopy(model)
    graph = model.graph
    keep = {v.name for v in [*graph.input, *graph.output]}
    names: dict[str, str] = {}

    def rename(name: str) -> str:
        return name if not name or name in keep else names.setdefault(name, f"x{len(names)}")

    for init in graph.initializer:
        init.name = rename(init.name)
    for index, node in enumerate(graph.node):
        node.name = f"n{index}"
        node.input[:] = [rename(n) for n in node.input]
        node.output[:] = [rename(n) for n in node.output]
    for value in graph.value_info:
        value.name = rename(value.name)
    return model


def insert_noops(model: onnx.ModelProto) -> onnx.ModelProto:
    """An Identity and a Dropout after every fifth node's first output."""
    model = copy.deepcopy(model)
    nodes = []
    for index, node in enumerate(model.graph.node):
        nodes.append(node)
        if index % 5 == 0 and node.output and node.output[0] not in {o.name for o in model.graph.output}:
            original = node.output[0]
            node.output[0] = f"{original}__pre"
            nodes.append(helper.make_node("Identity", [f"{original}__pre"], [f"{original}__mid"]))
            nodes.append(helper.make_node("Dropout", [f"{original}__mid"], [original]))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def insert_arithmetic_noops(model: onnx.ModelProto) -> onnx.ModelProto:
    """A multiplication by 1 and an addition of 0 after every seventh node's first output."""
    from onnx import numpy_helper

    model = copy.deepcopy(model)
    model.graph.initializer.extend([numpy_helper.from_array(np.array(1.0, np.float32), "__one"),
                                    numpy_helper.from_array(np.array(0.0, np.float32), "__zero")])
    outputs = {o.name for o in model.graph.output}
    nodes = []
    for index, node in enumerate(model.graph.node):
        nodes.append(node)
        if index % 7 == 3 and node.output and node.output[0] not in outputs and node.op_type != "Constant":
            original = node.output[0]
            node.output[0] = f"{original}__pre"
            nodes.append(helper.make_node("Mul", [f"{original}__pre", "__one"], [f"{original}__mid"]))
            nodes.append(helper.make_node("Add", ["__zero", f"{original}__mid"], [original]))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def upgrade_opset(model: onnx.ModelProto) -> onnx.ModelProto:
    from onnx import version_converter

    return version_converter.convert_version(model, 21)
