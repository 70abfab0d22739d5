"""Large weights kept out of the graph (hnn.weight_store): the ONNX front-end reads a file's
weights one tensor at a time, and what it hashes must be what the whole model in memory hashes."""

import numpy as np
import onnx
import pytest
import torch

from hnn.errors import InputError
from hnn.ingest.pipeline import ingest, onnx_to_ir
from hnn.plugins.frontends.onnx_files import load_onnx_weighted
from hnn.weight_store import HOLLOW_ABOVE, hollow_out, is_hollow


class Net(torch.nn.Module):
    """Weights above and below the hollow bound, a BatchNorm, a residual add, a dense head."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 32, 3, padding=1)
        self.norm = torch.nn.BatchNorm2d(32)
        self.body = torch.nn.Conv2d(32, 32, 3, padding=1)  # 9216 weights: hollow
        self.head = torch.nn.Linear(32, 200)  # 6400 weights: hollow

    def forward(self, x):
        y = torch.relu(self.norm(self.stem(x)))
        y = y + torch.relu(self.body(y))
        return self.head(y.mean((2, 3)))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("store")
    torch.manual_seed(0)
    net = Net().eval()
    with torch.no_grad():  # trained-looking norm statistics, not the fresh zeros and ones
        net.norm.running_mean.uniform_(-1, 1)
        net.norm.running_var.uniform_(0.5, 2)
    inline = folder / "net.onnx"
    torch.onnx.export(net, (torch.zeros(1, 3, 16, 16),), str(inline), dynamo=False, opset_version=17)
    (folder / "external").mkdir()
    external = folder / "external" / "net.onnx"
    onnx.save(onnx.load(str(inline)), str(external), save_as_external_data=True, location="net.weights",
              size_threshold=0)
    return inline, external


def _same_hash(first, second):
    assert first.digest() == second.digest()
    assert first.meta.weight_marks and first.meta.weight_marks == second.meta.weight_marks
    assert first.meta.provenance is not None and first.meta.provenance == second.meta.provenance


@pytest.mark.parametrize("simplify", [False, True])
def test_a_file_read_tensor_by_tensor_hashes_as_the_model_in_memory(exported, simplify):
    inline, external = exported
    whole = onnx_to_ir(onnx.load(str(inline)), simplify=simplify)
    _same_hash(ingest(str(inline), simplify=simplify), whole)
    _same_hash(ingest(str(external), simplify=simplify), whole)


def test_the_graph_keeps_no_large_weight_and_the_store_has_each(exported):
    inline, external = exported
    for path in (inline, external):
        weighted = load_onnx_weighted(path)
        large = [t for t in weighted.model.graph.initializer if np.prod(t.dims) > HOLLOW_ABOVE]
        assert [t.name for t in large] and all(is_hollow(t) and t.name in weighted.weights for t in large)
        full = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(str(inline)).graph.initializer}
        for tensor in large:
            np.testing.assert_array_equal(weighted.weights.read(tensor.name), full[tensor.name])
        assert weighted.model.ByteSize() < sum(v.nbytes for v in full.values()) / 2


def _stored_in_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with every float weight stored in fp16 and read through a Cast to float, as fp16 exports do."""
    graph = model.graph
    casts = []
    for tensor in graph.initializer:
        name, values = tensor.name, onnx.numpy_helper.to_array(tensor).astype(np.float16)
        tensor.CopyFrom(onnx.numpy_helper.from_array(values, name + "_fp16"))
        casts.append(onnx.helper.make_node("Cast", [name + "_fp16"], [name], to=onnx.TensorProto.FLOAT))
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def test_fp16_weights_read_from_the_store_hash_as_in_memory(exported, tmp_path):
    half = _stored_in_fp16(onnx.load(str(exported[0])))
    onnx.save(half, str(tmp_path / "half.onnx"))
    _same_hash(ingest(str(tmp_path / "half.onnx"), simplify=False), onnx_to_ir(half, simplify=False))


def test_external_data_cut_short_is_refused_in_one_line(exported, tmp_path):
    model = onnx.load(str(exported[0]))
    onnx.save(model, str(tmp_path / "net.onnx"), save_as_external_data=True, location="net.weights", size_threshold=0)
    weights = tmp_path / "net.weights"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(InputError, match="does not hold bytes") as caught:
        ingest(str(tmp_path / "net.onnx"))
    assert "\n" not in str(caught.value)


def test_hollow_out_moves_typed_field_values_too():
    values = np.arange(HOLLOW_ABOVE + 1, dtype=np.float32)
    tensor = onnx.helper.make_tensor("w", onnx.TensorProto.FLOAT, values.shape, values.tolist())  # float_data
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["w"], ["y"])], "g", [],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, values.shape)],
                                   [tensor])
    model = onnx.helper.make_model(graph)
    store = hollow_out(model)
    assert is_hollow(model.graph.initializer[0])
    np.testing.assert_array_equal(store.read("w"), values)
