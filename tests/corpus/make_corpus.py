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
import zipfile
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


def _nested_loop(depth: int) -> onnx.ModelProto:
    """Loop in Loop in Loop...: each body runs the next level once and passes x through."""
    def body(level: int) -> onnx.GraphProto:
        inputs = [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                  helper.make_tensor_value_info("c", TensorProto.BOOL, []),
                  helper.make_tensor_value_info(f"x{level}", TensorProto.FLOAT, None)]
        outputs = [helper.make_tensor_value_info("c_out", TensorProto.BOOL, None),
                   helper.make_tensor_value_info(f"y{level}", TensorProto.FLOAT, None)]
        nodes = [helper.make_node("Identity", ["c"], ["c_out"])]
        if level == 0:
            nodes.append(helper.make_node("Relu", [f"x{level}"], [f"y{level}"]))
        else:
            nodes.append(helper.make_node("Loop", ["one", "", f"x{level}"], [f"y{level}"], body=body(level - 1)))
        return helper.make_graph(nodes, f"body{level}", inputs, outputs,
                                 initializer=[numpy_helper.from_array(np.array(1, np.int64), "one")])

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node("Loop", ["trip", "", "x"], ["y"], body=body(depth))], "g", [x], [y],
                              initializer=[numpy_helper.from_array(np.array(1, np.int64), "trip")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _cycle_through_if() -> onnx.ModelProto:
    """y = If(cond) whose then-branch reads z, and z = Relu(y): a cycle only the subgraph shows."""
    out = helper.make_tensor_value_info("branch_out", TensorProto.FLOAT, None)
    then_branch = helper.make_graph([helper.make_node("Identity", ["z"], ["branch_out"])], "then", [], [out])
    else_branch = helper.make_graph([helper.make_node("Identity", ["x"], ["branch_out"])], "else", [], [out])
    nodes = [helper.make_node("If", ["cond"], ["y"], then_branch=then_branch, else_branch=else_branch),
             helper.make_node("Relu", ["y"], ["z"])]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
              helper.make_tensor_value_info("cond", TensorProto.BOOL, [])]
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _recursive_function() -> onnx.ModelProto:
    """A model-local function that calls itself: inlining it would never end."""
    body = [helper.make_node("Loopy", ["a"], ["b"], domain="custom"), helper.make_node("Relu", ["b"], ["c"])]
    function = helper.make_function("custom", "Loopy", ["a"], ["c"], body,
                                    opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("custom", 1)])
    model = _relu_model(nodes=[helper.make_node("Loopy", ["x"], ["y"], domain="custom")])
    model.opset_import.append(helper.make_opsetid("custom", 1))
    model.functions.append(function)
    return model


def make_corpus(folder: str | Path, framework_cases: bool = True) -> dict[str, tuple[Path, str]]:
    """Write every case into ``folder``; returns name -> (path, fragment of the expected error).

    ``framework_cases=False`` leaves out the cases that need torch and TensorFlow to build.
    """
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
    onnx_case("nested_loop", _nested_loop(20), "")

    # Cases found by scripts/fuzz.py --target onnx, rebuilt here by hand: each crashed the ONNX-to-IR path once.
    duplicate = [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Sigmoid", ["x"], ["y"])]
    onnx_case("duplicate_outputs", _relu_model(nodes=duplicate), "produced twice")
    dangling = [helper.make_node("Add", ["x", "nowhere"], ["y"])]
    onnx_case("dangling_input", _relu_model(nodes=dangling), "a dangling input")
    model = _relu_model()
    model.graph.node[0].op_type = "Re\xfflu"  # 6 bytes in UTF-8, swapped below for 6 bytes that are not UTF-8
    path = folder / "op_type_not_utf8.onnx"
    path.write_bytes(model.SerializeToString().replace("Re\xfflu".encode("utf-8"), b"Re\xff\xfelu"))
    cases["op_type_not_utf8"] = (path, "op type is not UTF-8")
    model = _relu_model()
    model.graph.node[0].output[0] = model.graph.output[0].name = "\xff\xff"  # found by the fuzzer
    path = folder / "tensor_name_not_utf8.onnx"
    path.write_bytes(model.SerializeToString().replace("\xff\xff".encode("utf-8"), b"\xff\xfe\xff\xfe"))
    cases["tensor_name_not_utf8"] = (path, "tensor name is not UTF-8")
    model = _nested_if(1)  # found by scripts/fuzz.py --target onnx: a branch's tensor name, not UTF-8
    model.graph.node[0].attribute[0].g.node[0].input[0] = "\xfe\xfe"
    path = folder / "branch_name_not_utf8.onnx"
    path.write_bytes(model.SerializeToString().replace("\xfe\xfe".encode("utf-8"), b"\xfe\xff\xfe\xff"))
    cases["branch_name_not_utf8"] = (path, "tensor name is not UTF-8")
    pool = [helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=3)]  # ONNX: a list of ints
    onnx_case("attribute_wrong_kind", _relu_model(nodes=pool, inputs=[
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])]), "must be a list of ints")
    unknown_type = numpy_helper.from_array(np.ones(4, np.float32), "w")
    unknown_type.data_type = 0
    onnx_case("unknown_data_type", _relu_model([unknown_type], nodes=[helper.make_node("Add", ["x", "w"], ["y"])]),
              "unknown data type 0")
    short = numpy_helper.from_array(np.ones(4, np.float32), "w")
    short.raw_data = short.raw_data[:10]
    onnx_case("raw_data_size_mismatch", _relu_model([short], nodes=[helper.make_node("Add", ["x", "w"], ["y"])]),
              "but holds 10 bytes")
    retyped = helper.make_tensor("w", TensorProto.FLOAT, [4], [1.0, 2.0, 3.0, 4.0])
    retyped.data_type = TensorProto.INT64  # the values sit in float_data, which INT64 does not read
    onnx_case("typed_field_mismatch", _relu_model([retyped], nodes=[helper.make_node("Add", ["x", "w"], ["y"])]),
              "declares 4 elements but holds 0")
    huge_string = numpy_helper.from_array(np.ones(4, np.float32), "w")
    huge_string.data_type, huge_string.dims[:] = TensorProto.STRING, [10**12]  # found by the fuzzer: 4 GB+
    onnx_case("raw_string_tensor", _relu_model([huge_string], nodes=[helper.make_node("Add", ["x", "w"], ["y"])]),
              "stores raw data")
    onnx_case("recursive_function", _recursive_function(), "recursive")
    onnx_case("cycle_through_if", _cycle_through_if(), "cycle")
    ones = numpy_helper.from_array(np.ones(4, np.float32), "w")
    twice = numpy_helper.from_array(np.zeros(4, np.float32), "w")
    onnx_case("duplicate_initializer", _relu_model([ones, twice], nodes=[helper.make_node("Add", ["x", "w"], ["y"])]),
              "two initializers are named 'w'")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    onnx_case("duplicate_input", _relu_model(inputs=[x, x]), "two graph inputs are named 'x'")
    doubled = _relu_model()
    doubled.graph.output.append(doubled.graph.output[0])
    onnx_case("duplicate_output", doubled, "two graph outputs are named 'y'")

    path = folder / "zip_bomb.keras"
    _zip_bomb(path, 1024**3)
    cases["zip_bomb"] = (path, "zip bomb")
    # Found by scripts/fuzz.py --target keras: zipfile raised these past the archive check.
    cases["zip_future_version"] = (_patched_zip(folder / "zip_future_version.keras", extract_version=175),
                                   "not a readable zip archive")
    cases["zip_name_not_utf8"] = (_patched_zip(folder / "zip_name_not_utf8.keras", name=b"\xa0\xff.json"),
                                  "not a readable zip archive")
    path = folder / "many_members.keras"
    _many_members_keras(path)
    cases["keras_many_members"] = (path, "zip bomb: its entries expand")
    if framework_cases:
        cases.update(_framework_cases(folder, canary))
    return cases


def _unknown_class_keras(template: Path, path: Path, canary: Path) -> Path:
    """The Lambda file with its layer replaced by ``os.system("touch CANARY")`` as a 'class' to deserialize."""
    import json

    with zipfile.ZipFile(template) as source:
        members = {name: source.read(name) for name in source.namelist()}
    config = json.loads(members["config.json"])
    config["config"]["layers"][1].update({"module": "os", "class_name": "system", "registered_name": None,
                                          "config": {"command": f"touch {canary}"}})
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as target:
        for name, data in members.items():
            target.writestr(name, data)
    return path


def _zip_bomb(path: Path, size: int) -> None:
    """A .keras-shaped zip whose weights entry deflates ``size`` zero bytes into about size/1000."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", "{}")
        with archive.open("model.weights.h5", "w", force_zip64=True) as entry:
            chunk = bytes(1 << 24)
            for _ in range(size // len(chunk)):
                entry.write(chunk)


def _patched_zip(path: Path, extract_version: int | None = None, name: bytes | None = None) -> Path:
    """A one-entry zip whose central directory says what zipfile cannot read: a version it does not
    implement, or a name flagged UTF-8 that is not."""
    import struct

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")
    data = bytearray(path.read_bytes())
    central = data.rindex(b"PK\x01\x02")
    if extract_version is not None:
        struct.pack_into("<H", data, central + 6, extract_version)
    if name is not None:
        struct.pack_into("<H", data, central + 8, struct.unpack_from("<H", data, central + 8)[0] | 0x800)
        length = struct.unpack_from("<H", data, central + 28)[0]
        data[central + 46:central + 46 + length] = name.ljust(length, b"x")[:length]
    path.write_bytes(bytes(data))
    return path


def _many_members_keras(path: Path, members: int = 3, size: int = 30 * 1024**2) -> None:
    """A .keras-shaped zip of entries each under the per-entry ratio check, expanding 1000x together."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", "{}")
        for index in range(members):
            archive.writestr(f"assets/part{index}.bin", bytes(size))


def _framework_cases(folder: Path, canary: Path) -> dict[str, tuple[Path, str]]:
    """Cases that need torch and TensorFlow to write: a TorchScript archive, Lambda, file-op SavedModels."""
    import torch

    class Scripted(torch.nn.Module):
        def forward(self, x):
            return torch.relu(x)

    cases = {}
    path = folder / "torchscript.pt"
    torch.jit.save(torch.jit.script(Scripted()), str(path))
    cases["torchscript"] = (path, "TorchScript archive can run code")

    from hnn.plugins.frontends.tf_import import import_keras, import_tensorflow

    keras = import_keras()
    tf = import_tensorflow()
    # The Lambda would create the canary when called: safe mode must refuse it before that.
    inputs = keras.Input((4,))
    # eval: the path must be a constant of the lambda's code, which Keras serializes, not a closure
    creates_canary = eval(f"lambda x: x + 0 * len(open({str(canary)!r}, 'w').name)")  # noqa: S307
    outputs = keras.layers.Lambda(creates_canary)(inputs)
    path = folder / "lambda_layer.keras"
    keras.Model(inputs, outputs).save(path)
    cases["keras_lambda"] = (path, "safe mode")
    if canary.exists():  # building the Lambda model above called it once, here in the test's own process
        canary.unlink()
    cases["keras_unknown_class"] = (_unknown_class_keras(path, folder / "unknown_class.keras", canary),
                                    "cannot load as a Keras model")

    class WritesFile(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)])
        def __call__(self, x):
            tf.io.write_file(str(canary), "written by a SavedModel")
            return tf.nn.relu(x)

    class ReadsFileInABranch(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)])
        def __call__(self, x):
            secret = lambda: x + tf.cast(tf.strings.length(tf.io.read_file("/etc/passwd")), tf.float32)  # noqa: E731
            return tf.nn.relu(tf.cond(tf.reduce_sum(x) > 0, secret, lambda: x))

    tf.saved_model.save(WritesFile(), str(folder / "savedmodel_writefile"))
    cases["savedmodel_writefile"] = (folder / "savedmodel_writefile", "TensorFlow op WriteFile")
    tf.saved_model.save(ReadsFileInABranch(), str(folder / "savedmodel_nested_readfile"))
    cases["savedmodel_nested_readfile"] = (folder / "savedmodel_nested_readfile", "TensorFlow op ReadFile")
    cases.update(_saver_attacks(tf, folder, canary))
    return cases


def _saver_attacks(tf, folder: Path, canary: Path) -> dict[str, tuple[Path, str]]:
    """SavedModels whose saver_def the attacker rewrote so that loading writes or reads a file of theirs."""
    class Dense(tf.Module):
        def __init__(self):
            self.w = tf.Variable(tf.ones([4, 3]))

        @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)])
        def __call__(self, x):
            return tf.matmul(x, self.w)

    from tensorflow.core.protobuf import saved_model_pb2

    def rewritten(name: str, rewrite) -> Path:
        target = folder / name
        tf.saved_model.save(Dense(), str(target))
        saved = saved_model_pb2.SavedModel()
        saved.ParseFromString((target / "saved_model.pb").read_bytes())
        rewrite(saved.meta_graphs[0])
        (target / "saved_model.pb").write_bytes(saved.SerializeToString())
        return target

    def constant(graph_nodes, name: str, values: list[bytes]):
        node = graph_nodes.add(name=name, op="Const")
        node.attr["dtype"].type = tf.string.as_datatype_enum
        tensor = node.attr["value"].tensor
        tensor.dtype = tf.string.as_datatype_enum
        tensor.tensor_shape.dim.add().size = len(values)
        tensor.string_val.extend(values)
        return node

    def restore_is_a_top_level_save(meta_graph):  # loading "restores" by writing the attacker's file
        nodes = meta_graph.graph_def.node
        constant(nodes, "evil/prefix", [str(canary).encode()]).attr["value"].tensor.tensor_shape.ClearField("dim")
        constant(nodes, "evil/names", [b"x"])
        constant(nodes, "evil/slices", [b""])
        constant(nodes, "evil/data", [b"written by a SavedModel"])
        save = nodes.add(name="evil", op="SaveV2", input=["evil/prefix", "evil/names", "evil/slices", "evil/data"])
        save.attr["dtypes"].list.type.append(tf.string.as_datatype_enum)
        meta_graph.saver_def.restore_op_name = "evil"

    def restore_reads_elsewhere(meta_graph):  # RestoreV2 at a constant path, not the loader's
        restore = next(f for f in meta_graph.graph_def.library.function if "restore" in f.signature.name)
        constant(restore.node_def, "evil/prefix", [b"/etc/other-tenant/variables"]).attr["value"].tensor \
            .tensor_shape.ClearField("dim")
        reader = next(node for node in restore.node_def if node.op == "RestoreV2")
        reader.input[0] = "evil/prefix:output:0"

    def restore_also_saves(meta_graph):  # a writer in what loading runs
        restore = next(f for f in meta_graph.graph_def.library.function if "restore" in f.signature.name)
        save = restore.node_def.add(name="evil", op="SaveV2",
                                    input=["file_prefix", "RestoreV2/tensor_names:output:0",
                                           "RestoreV2/shape_and_slices:output:0", "RestoreV2:tensors:0"])
        save.attr["dtypes"].list.type.append(tf.float32.as_datatype_enum)

    return {
        "savedmodel_saver_top_level_save": (rewritten("savedmodel_saver_top_level_save", restore_is_a_top_level_save),
                                            "restore node 'evil' is not a call of a saver function"),
        "savedmodel_restore_other_path": (rewritten("savedmodel_restore_other_path", restore_reads_elsewhere),
                                          "RestoreV2 reads from a path other than the loader's"),
        "savedmodel_restore_writes": (rewritten("savedmodel_restore_writes", restore_also_saves),
                                      "TensorFlow op SaveV2"),
    }


if __name__ == "__main__":
    for name, (path, expected) in make_corpus(sys.argv[1] if len(sys.argv) > 1 else "corpus").items():
        print(f"{name:<22} {path}  (expect: {expected})")
