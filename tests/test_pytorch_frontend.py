"""PyTorch front-end on real torchvision models, both exporters, and PyTorch files."""

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from graph_helpers import to_networkx  # noqa: E402

from hnn.errors import InputError, UntrustedInputError  # noqa: E402
from hnn.ingest.pipeline import ingest  # noqa: E402

pytestmark = pytest.mark.slow  # end to end: subprocesses, frameworks (the quick loop skips it)


@pytest.fixture(scope="module")
def resnet18_irs():
    return {exporter: ingest("torchvision.models:resnet18", exporter=exporter)
            for exporter in ("torchscript", "dynamo")}


def test_both_torch_exporters_give_identical_ir_for_resnet18(resnet18_irs):
    torchscript, dynamo = resnet18_irs["torchscript"], resnet18_irs["dynamo"]
    assert torchscript.nodes == dynamo.nodes
    assert torchscript.edges == dynamo.edges
    assert torchscript.digest() == dynamo.digest()


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "squeezenet1_0", "shufflenet_v2_x0_5"])
def test_ir_is_the_same_with_and_without_onnxsim(name, exporter):
    # shufflenet: TorchScript computes a chunk's end from the Shape with Div and Mul, which
    # shape inference alone cannot follow; without folding, its shapes (and FLOPs) were lost.
    from hnn.ingest.pipeline import onnx_to_ir
    from hnn.plugins.frontends.pytorch_frontend import export_module

    model = export_module(getattr(torchvision.models, name)(), [1, 3, 224, 224], exporter)
    simplified = onnx_to_ir(model, simplify=True)
    direct = onnx_to_ir(model, simplify=False)
    assert simplified.nodes == direct.nodes and simplified.edges == direct.edges
    assert all(node.output_shape is not None for node in direct.nodes)


def test_resnet18_keeps_batchnorm_and_matches_torch_parameter_count(resnet18_irs):
    graph = resnet18_irs["torchscript"]
    model = torchvision.models.resnet18()
    assert graph.total_params == sum(p.numel() for p in model.parameters())
    assert graph.op_histogram()["BatchNormalization"] == sum(
        isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    # every BatchNormalization follows a Conv, so the Conv-BN merge rules have something to merge
    ops = {node.id: node.op for node in graph.nodes}
    bn_inputs = [ops[src] for src, dst in graph.edges if ops[dst] == "BatchNormalization"]
    assert set(bn_inputs) == {"Conv"}


def test_conv_and_gemm_flops_match_torch_flop_counter(resnet18_irs):
    from torch.utils.flop_counter import FlopCounterMode

    model = torchvision.models.resnet18().eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, 224, 224))
    ours = sum(node.flops for node in resnet18_irs["torchscript"].nodes if node.op in ("Conv", "Gemm", "MatMul"))
    assert ours == counter.get_total_flops()


@pytest.mark.parametrize("name", ["mobilenet_v2", "squeezenet1_0"])
def test_more_torchvision_models_ingest_with_exact_parameter_counts(name):
    graph = ingest(f"torchvision.models:{name}")
    model = getattr(torchvision.models, name)()
    assert graph.total_params == sum(p.numel() for p in model.parameters())
    assert graph.meta.framework == "pytorch"
    assert to_networkx(graph).number_of_nodes() == len(graph.nodes) > 50


def test_module_object_is_exported_and_left_in_its_training_mode():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).train()
    graph = ingest(model, input_shape=[1, 3, 8, 8])
    assert [node.op for node in graph.nodes] == ["Conv", "Relu"]
    assert model.training


def test_state_dict_file_asks_for_an_architecture(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(InputError, match="only weights .*architecture"):
        ingest(str(path))


def test_pickled_module_and_torchscript_need_trust(tmp_path):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    pickled = tmp_path / "whole.pt"
    torch.save(model, pickled)
    scripted = tmp_path / "scripted.pt"
    torch.jit.script(model).save(str(scripted))
    with pytest.raises(UntrustedInputError, match="--trust"):
        ingest(str(pickled))
    with pytest.raises(UntrustedInputError, match="TorchScript.*--trust"):
        ingest(str(scripted))
    for path in (pickled, scripted):
        graph = ingest(str(path), trust=True, input_shape="1,3,8,8")
        assert [node.op for node in graph.nodes] == ["Conv", "Relu"]


def test_default_merge_rules_fire_on_resnet18_and_conserve_totals(resnet18_irs):
    from graph_helpers import merge

    raw = resnet18_irs["torchscript"]
    merged, counts = merge(raw)
    # 20 Conv each followed by BN: 9 of the BNs feed a ReLU alone, 11 feed an Add (or the downsample path)
    assert counts == {"ConvConvBnRelu": 0, "ConvBnRelu": 9, "ConvBn": 11, "ConvRelu": 0}
    assert len(merged.nodes) == len(raw.nodes) - 2 * 9 - 11 == 39
    assert (merged.total_flops, merged.total_params) == (raw.total_flops, raw.total_params)
    assert merged.meta.rules == ["paper"]


class NestedCat(torch.nn.Module):
    """Inception's idiom: branches concatenated in pairs, then all together."""

    def __init__(self):
        super().__init__()
        self.convs = torch.nn.ModuleList(torch.nn.Conv2d(3, 4, 3, padding=1) for _ in range(4))

    def forward(self, x):
        a, b, c, d = (conv(x) for conv in self.convs)
        return torch.cat([torch.cat([a, b], 1), torch.cat([c, d], 1)], 1).relu()


def small_models():
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    return {"densenet": torchvision.models.DenseNet(growth_rate=8, block_config=(2, 2), num_init_features=16),
            "convnext": ConvNeXt([CNBlockConfig(16, 32, 1), CNBlockConfig(32, None, 1)]),
            "nested cat": NestedCat()}


@pytest.mark.parametrize("name", ["densenet", "convnext", "nested cat"])
def test_both_torch_exporters_give_one_topology_where_they_write_layers_differently(name):
    # DenseNet: TorchScript writes cat([x]) as a one-input Concat; ConvNeXt: dynamo writes Linear as
    # MatMul(x, Transpose(W)) and adaptive pooling as as_strided (a Gather of every index);
    # Inception: dynamo keeps nested cats. A pruned or re-exported copy must keep the digest.
    from hnn.hasher.runtime import load, to_hashable_graph
    from hnn.hasher.structure import structure_of
    from hnn.ingest.pipeline import onnx_to_ir
    from hnn.plugins.frontends.pytorch_frontend import export_module

    module, checkpoint = small_models()[name], load()
    graphs = {exporter: to_hashable_graph(onnx_to_ir(export_module(module, [1, 3, 64, 64], exporter), simplify=False),
                                          checkpoint) for exporter in ("torchscript", "dynamo")}
    torchscript, dynamo = graphs["torchscript"], graphs["dynamo"]
    assert sorted(n.op for n in torchscript.nodes) == sorted(n.op for n in dynamo.nodes)
    assert sum(n.params for n in torchscript.nodes) == sum(n.params for n in dynamo.nodes)
    assert structure_of(torchscript).topology == structure_of(dynamo).topology
