"""Weight marks (hnn.ingest.weights): what a pruned copy keeps of its original, and what it does not."""

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from hnn.errors import IRFormatError
from hnn.index.verdicts import SHARED_SUSPECT
from hnn.ingest.ir import Graph
from hnn.ingest.pipeline import onnx_to_ir
from hnn.ingest.weights import MARKS, shared_marks, weight_marks

torch = pytest.importorskip("torch")
from hnn.plugins.frontends.pytorch_frontend import export_module  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from onnx_edits import rename_everything  # noqa: E402
from torch_edits import inherit_weights  # noqa: E402  (the evasion benchmark's pruning)

SHAPE = [1, 3, 32, 32]


def cnn(width: int, seed: int = 0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, width, 3, padding=1), torch.nn.BatchNorm2d(width), torch.nn.ReLU(),
        torch.nn.Conv2d(width, 2 * width, 3, padding=1), torch.nn.BatchNorm2d(2 * width), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(2 * width, 10))


def marks_of(module) -> list[int]:
    return weight_marks(export_module(module, SHAPE))


def test_a_pruned_copy_shares_its_original_marks_and_an_independent_model_none():
    original = cnn(32)
    marks = marks_of(original)
    assert len(marks) == MARKS and marks == sorted(set(marks))
    pruned = inherit_weights(cnn(22, seed=5), original)  # every layer 30% narrower, original values kept
    assert shared_marks(marks_of(pruned), marks) >= 4 * SHARED_SUSPECT  # a quarter of the sample, and more
    assert shared_marks(marks_of(cnn(32, seed=1)), marks) < SHARED_SUSPECT  # same architecture, own weights


def test_renaming_keeps_the_marks_and_fine_tuning_or_fp16_loses_them():
    original = cnn(16)
    model = export_module(original, SHAPE)
    assert weight_marks(rename_everything(model)) == weight_marks(model)
    with torch.no_grad():
        half = cnn(16)
        half.load_state_dict(original.state_dict())
        for parameter in half.parameters():
            parameter.copy_(parameter.half().float())  # fp16 weights: every value rounded
        tuned = cnn(16)
        tuned.load_state_dict(original.state_dict())
        for parameter in tuned.parameters():
            parameter.mul_(1 + 1e-3 * torch.randn_like(parameter))
    assert shared_marks(marks_of(half), weight_marks(model)) < SHARED_SUSPECT
    assert shared_marks(marks_of(tuned), weight_marks(model)) < SHARED_SUSPECT


def test_constant_tensors_are_not_weights():
    # Freshly initialised biases and normalization parameters are all zeros or all ones in every
    # model: they must not make two unrelated models share marks.
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3), torch.nn.BatchNorm2d(32))
    with torch.no_grad():
        module[0].weight.fill_(0.5)
        module[0].bias.zero_()
    assert marks_of(module) == []


def test_the_ir_keeps_the_marks_through_json_and_merging(tmp_path):
    from hnn.hasher.runtime import load, to_hashable_graph

    graph = onnx_to_ir(export_module(cnn(8), SHAPE), simplify=False)
    assert len(graph.meta.weight_marks) == MARKS
    graph.to_json_file(tmp_path / "ir.json")
    reread = Graph.from_json_file(tmp_path / "ir.json")
    assert reread.meta.weight_marks == graph.meta.weight_marks and reread.digest() == graph.digest()
    merged = to_hashable_graph(reread, load(bits=64))
    assert merged.meta.rules and merged.meta.weight_marks == graph.meta.weight_marks


@pytest.mark.parametrize("marks, problem", [
    (list(range(MARKS + 1)), "more than the 128"),
    ([-1], "non-negative"),
    ([1 << 63], "more than 63 bits"),
    ("abc", "a list"),
])
def test_bad_marks_in_an_ir_file_are_refused_naming_the_field(tmp_path, marks, problem):
    data = json.loads(onnx_to_ir(export_module(cnn(8), SHAPE), simplify=False).to_json())
    data["meta"]["weight_marks"] = marks
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(IRFormatError, match="meta.weight_marks") as error:
        Graph.from_json_file(tmp_path / "bad.json")
    assert problem in str(error.value)


def test_the_float_types_are_onnx_own():
    # hnn.weight_store names them by number, so that importing it (ingest/weights.py does) does not import onnx.
    from hnn.weight_store import FLOAT_TYPES

    assert FLOAT_TYPES == {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
                            onnx.TensorProto.BFLOAT16}


def one_weight_model(values: np.ndarray) -> onnx.ModelProto:
    """The weight ``w`` read by an Identity."""
    return onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["w"], ["y"])], "g", [],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, list(values.shape))],
        [onnx.numpy_helper.from_array(values, "w")]))


@pytest.mark.parametrize("shape", [(5000,), (50, 100), (2, 3, 20, 40)])
def test_a_huge_weight_is_hashed_in_chunks_without_losing_a_pair(monkeypatch, shape):
    # The sketch of one tensor is the same whether it is hashed whole or in chunks.
    from hnn.ingest import weights

    values = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    whole = weights.weight_marks(one_weight_model(values), marks=20000)
    monkeypatch.setattr(weights, "CHUNK", 777)
    assert weights.weight_marks(one_weight_model(values), marks=20000) == whole
    assert len(whole) == (2 * 50 * 100 - 50 - 100 if len(shape) == 2 else values.size - 1)  # every pair


def test_an_unused_tensor_of_random_values_does_not_dilute_the_marks():
    model = export_module(cnn(16), SHAPE)
    padded = onnx.ModelProto()
    padded.CopyFrom(model)
    noise = np.random.default_rng(2).standard_normal(1_000_000).astype(np.float32)
    padded.graph.initializer.append(onnx.numpy_helper.from_array(noise, "unused"))
    assert weight_marks(padded) == weight_marks(model)


def test_a_matrix_stored_transposed_has_the_same_marks():
    # The dynamo exporter stores a Linear weight as MatMul's (in, out); TorchScript as Gemm's (out, in).
    values = np.random.default_rng(1).standard_normal((64, 300)).astype(np.float32)
    assert weight_marks(one_weight_model(values)) == weight_marks(one_weight_model(np.ascontiguousarray(values.T)))
