"""Generates the bad-input corpus: files an attacker might upload, each with the rejection expected.

    .venv/bin/python tests/corpus/make_corpus.py OUTPUT_DIR

Nothing here is a binary blob of unknown origin: every case is built by this
script. tests/test_untrusted.py runs it into a temporary folder and feeds every
case to `hnn ingest` and `hnn hash`.
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class _Canary:
    """Unpickling this creates the canary file: proof that loading ran code."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _relu_model(extra_initializers=(), nodes=None, inputs=None):
    nodes = nodes or [helper.make_node("Relu", ["x"], ["y"])]
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])]
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=list(extra_initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _external(location: str) -> onnx.ModelProto:
    weight = numpy_helper.from_array(np.ones(4, dtype=np.float32), "w")
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    return _relu_model([weight], nodes=[helper.make_node("Add", ["x", "w"], ["y"])])


def _nested_if(depth: int) -> onnx.ModelProto:
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    leaf = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "leaf", [], [out])
    body = leaf
    for level in range(depth):  # nested in the then-branch only: the file grows linearly
        branch = helper.make_node("If", ["cond"], ["y"], then_branch=body, else_branch=leaf)
        body = helper.make_graph([branch], f"level{level}", [], [out])
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
              helper.make_tensor_value_info("cond", TensorProto.BOOL, [])]
    graph = helper.make_graph(body.node, "g", inputs, [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def make_corpus(folder: str | Path) -> dict[str, tuple[Path, str]]:
    """Write every case into ``folder``; returns name -> (path, fragment of the expected error)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cases: dict[str, tuple[Path, str]] = {}

    def onnx_case(name, model, expected):
        path = folder / f"{name}.onnx"
        onnx.save(model, str(path))
        cases[name] = (path, expected)

    canary = folder / "CANARY_CREATED"
    path = folder / "pickle_canary.pt"
    path.write_bytes(pickle.dumps({"weights": _Canary(str(canary))}))
    cases["pickle_canary"] = (path, "--trust")

    path = folder / "random_bytes.onnx"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    cases["random_bytes"] = (path, "ONNX model")

    whole = _relu_model([numpy_helper.from_array(np.ones((64, 64), np.float32), "big")])
    path = folder / "truncated.onnx"
    path.write_bytes(whole.SerializeToString()[:1000])
    cases["truncated"] = (path, "ONNX model")

    (folder / "sub").mkdir(exist_ok=True)
    onnx.save(_external("../../etc/passwd"), str(folder / "sub" / "passwd_external.onnx"))
    cases["external_dotdot"] = (folder / "sub" / "passwd_external.onnx", "leaves the model's folder")
    onnx_case("external_absolute", _external("/etc/passwd"), "leaves the model's folder")
    target = folder / "outside.bin"
    target.write_bytes(np.ones(4, np.float32).tobytes())
    link_folder = folder / "linked"
    link_folder.mkdir(exist_ok=True)
    if not (link_folder / "weights.bin").exists():
        os.symlink(target, link_folder / "weights.bin")
    onnx.save(_external("weights.bin"), str(link_folder / "symlink_external.onnx"))
    cases["external_symlink"] = (link_folder / "symlink_external.onnx", "link out of the model's folder")

    cycle = [helper.make_node("Add", ["x", "b"], ["a"]), helper.make_node("Relu", ["a"], ["b"])]
    onnx_case("cycle", _relu_model(nodes=cycle + [helper.make_node("Relu", ["b"], ["y"])]), "cycle")

    huge = TensorProto(name="huge", data_type=TensorProto.FLOAT, dims=[10**6, 10**6])  # and no data
    onnx_case("huge_declared_tensor", _relu_model([huge], nodes=[helper.make_node("Add", ["x", "huge"], ["y"])]),
              "declares 1000000000000 elements but holds 0")
    # 30 levels of If in If: near the protobuf parser's depth limit; must finish cleanly either way
    onnx_case("nested_if", _nested_if(30), "")
    return cases


if __name__ == "__main__":
    for name, (path, expected) in make_corpus(sys.argv[1] if len(sys.argv) > 1 else "corpus").items():
        print(f"{name:<22} {path}  (expect: {expected})")
