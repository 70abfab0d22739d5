"""HNN-Net: features, layer shapes, loss, a short training run, checkpoints, hashing."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_geometric")

from hnn.errors import InputError  # noqa: E402
from hnn.hasher.batching import collate, to_tensors  # noqa: E402
from hnn.hasher.features import BUCKETS, OTHER, build_vocabulary, enc, node_features  # noqa: E402
from hnn.hasher.layers import AttentionPooling, normalized_adjacency  # noqa: E402
from hnn.hasher.model import HNNNet, HNNNetConfig  # noqa: E402
from hnn.hasher.training.losses import LossWeights, pair_loss  # noqa: E402
from hnn.ingest.ir import Graph, GraphMeta, Node  # noqa: E402


def small_graph(ops=("Conv", "Relu", "Gemm"), flops=(1000, 10, 0)):
    flops = tuple(flops) + (100,) * (len(ops) - len(flops))
    nodes = [Node(f"n{i}", op, flops=f, params=f // 2) for i, (op, f) in enumerate(zip(ops, flops))]
    return Graph(nodes, [(f"n{i}", f"n{i + 1}") for i in range(len(ops) - 1)], GraphMeta(framework="test"))


@pytest.mark.parametrize("value, bucket", [(0, 0), (1, 1), (9, 1), (10, 2), (999, 3), (10**9, 10), (10**15, 10)])
def test_enc_buckets(value, bucket):
    assert enc(value) == bucket


def test_node_features_are_three_one_hots_with_other_slot():
    vocabulary = build_vocabulary([small_graph()])
    assert vocabulary == ["Conv", "Gemm", "Relu", OTHER]
    features = node_features(small_graph(("Conv", "Softmax", "Gemm")), vocabulary)
    assert features.shape == (3, 4 + 2 * BUCKETS)
    assert (features.sum(axis=1) == 3).all()
    assert features[1, vocabulary.index(OTHER)] == 1
    assert features[0, 4 + enc(1000)] == 1 and features[0, 4 + BUCKETS + enc(500)] == 1


def test_attention_pooling_shape_formula_and_repr():
    pool = AttentionPooling(4)
    x = torch.randn(5, 4)
    batch = torch.tensor([0, 0, 0, 1, 1])
    out = pool(x, batch)
    assert out.shape == (2, 4)
    first = x[:3]
    context = torch.tanh(first.mean(0) @ pool.weight)
    expected = (torch.sigmoid(first @ context)[:, None] * first).sum(0)
    assert torch.allclose(out[0], expected, atol=1e-6)
    assert repr(pool) == "AttentionPooling(4)"
    with pytest.raises(ValueError, match="AttentionPooling"):
        AttentionPooling(0)


def test_one_propagation_matrix_gives_every_gcnconv_layer_its_output():
    # HNN-Net applies GCNConv's weights to one sparse matrix per batch instead of calling GCNConv:
    # the layers must give what GCNConv gives, also on a self-loop, a repeated edge and a lone node.
    from torch_geometric.nn import GCNConv

    torch.manual_seed(0)
    edge_index = torch.tensor([[0, 1, 1, 2, 2, 3, 0, 1], [1, 0, 2, 1, 2, 0, 1, 3]])
    x = torch.randn(5, 6)
    conv = GCNConv(6, 4)
    torch.nn.init.normal_(conv.bias)
    x.requires_grad_(True)
    expected = conv(x, edge_index)
    got = torch.sparse.mm(normalized_adjacency(edge_index, 5), conv.lin(x)) + conv.bias
    assert torch.allclose(got, expected, atol=1e-6)
    # Training follows the gradients: those of the input and the weights must be GCNConv's too.
    weights = torch.randn_like(expected)
    expected_grads = torch.autograd.grad((expected * weights).sum(), [x, conv.lin.weight])
    got_grads = torch.autograd.grad((got * weights).sum(), [x, conv.lin.weight])
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(got_grads, expected_grads))
    lone = torch.zeros((2, 0), dtype=torch.long)  # no edges: every node its own neighbour
    assert torch.allclose(torch.sparse.mm(normalized_adjacency(lone, 5), conv.lin(x)) + conv.bias, conv(x, lone),
                          atol=1e-6)


@pytest.mark.parametrize("bits", [16, 32, 64])
def test_hnn_net_output_shapes(bits):
    config = HNNNetConfig(in_channels=26, bits=bits, families=3)
    model = HNNNet(config)
    vocabulary = build_vocabulary([small_graph()])
    items = [to_tensors(small_graph(), vocabulary), to_tensors(small_graph(("Conv", "Conv")), vocabulary)]
    out = model(*collate(items))
    assert out["code"].shape == (2, bits) and out["embedding"].shape == (2, 256) and out["logits"].shape == (2, 3)
    assert ((out["code"] > 0) & (out["code"] < 1)).all()
    assert repr(model) == f"HNNNet(in_channels=26, bits={bits}, families=3, gcn=[256, 128, 64], fc=[348, 256, 256, 128])"
    assert sum(p.numel() for p in model.pools.parameters()) == 256**2 + 128**2 + 64**2


def test_training_steps_lower_the_loss():
    torch.manual_seed(0)
    graphs = [small_graph(("Conv", "Relu") * k) for k in range(1, 7)]
    vocabulary = build_vocabulary(graphs)
    model = HNNNet(HNNNetConfig(in_channels=len(vocabulary) + 22, bits=16, families=2))
    items = [to_tensors(g, vocabulary) for g in graphs]
    ged = torch.tensor([[abs(i - j) * 4.0 for j in range(6)] for i in range(6)])
    families = torch.tensor([0, 0, 0, 1, 1, 1])
    weights = LossWeights(topology="code", cap=20)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(60):
        loss, _ = pair_loss(model(*collate(items)), ged, families, weights)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_source_head_adds_its_cross_entropy_to_the_loss():
    torch.manual_seed(1)
    graphs = [small_graph(("Conv", "Relu") * k) for k in range(1, 5)]
    vocabulary = build_vocabulary(graphs)
    model = HNNNet(HNNNetConfig(in_channels=len(vocabulary) + 22, bits=16, families=2, sources=3))
    out = model(*collate([to_tensors(g, vocabulary) for g in graphs]))
    assert out["source_logits"].shape == (4, 3)
    ged = torch.zeros(4, 4)
    families, sources = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 2, 2])
    without, _ = pair_loss(out, ged, families, LossWeights(topology="code"), sources=sources)
    weighted, parts = pair_loss(out, ged, families, LossWeights(topology="code", source_beta=2.0), sources=sources)
    expected = torch.nn.functional.cross_entropy(out["source_logits"], sources)
    assert torch.isclose(weighted - without, 2 * expected) and parts["source_class"] == pytest.approx(expected.item())


def test_decorrelation_term_penalises_bits_that_move_together():
    from hnn.hasher.training.losses import bit_correlation_loss

    uncorrelated = torch.tensor([[1.0, 0], [0, 1], [1, 1], [0, 0]])
    assert bit_correlation_loss(uncorrelated) == pytest.approx(0, abs=1e-6)
    copied = torch.tensor([[0.9], [0.1], [0.8], [0.3]]).repeat(1, 8)  # eight copies of one bit
    assert bit_correlation_loss(copied) == pytest.approx(1, abs=1e-3)
    torch.manual_seed(3)
    graphs = [small_graph(("Conv", "Relu") * k) for k in range(1, 5)]
    vocabulary = build_vocabulary(graphs)
    out = HNNNet(HNNNetConfig(in_channels=len(vocabulary) + 22, bits=16))(*collate([to_tensors(g, vocabulary)
                                                                                    for g in graphs]))
    ged = torch.zeros(4, 4)
    without, _ = pair_loss(out, ged, None, LossWeights(topology="code"))
    weighted, parts = pair_loss(out, ged, None, LossWeights(topology="code", decorrelation=3.0))
    assert torch.isclose(weighted - without, 3 * bit_correlation_loss(out["code"]))
    assert parts["decor"] == pytest.approx(bit_correlation_loss(out["code"]).item())


def test_code_crowding_counts_shared_codes_and_bits_that_copy_one_another():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    from code_crowding import crowding

    one_bit = np.array([[1], [0], [1], [0]], dtype=bool).repeat(8, axis=1)  # eight copies of one bit
    copied = crowding(one_bit, ["a", "b", "c", "d"])
    assert copied["distinct"] == 2 and copied["shared"] == [["a", "c"], ["b", "d"]]
    assert copied["effective_dimension"] == 1.0 and copied["median_abs_bit_correlation"] == 1.0
    independent = crowding(np.array([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=bool), ["a", "b", "c", "d"])
    assert independent["distinct"] == 4 and independent["shared"] == [] and independent["effective_dimension"] == 2.0


def test_pairs_of_unknown_ged_are_left_out_of_the_topology_loss():
    """Transformer pairs of a zoo are not estimated (hnn.zoo.ged.UNKNOWN): they must not pull codes anywhere."""
    torch.manual_seed(2)
    graphs = [small_graph(("Conv", "Relu") * k) for k in range(1, 4)]
    vocabulary = build_vocabulary(graphs)
    model = HNNNet(HNNNetConfig(in_channels=len(vocabulary) + 22, bits=16))
    out = model(*collate([to_tensors(g, vocabulary) for g in graphs]))
    weights = LossWeights(topology="code", gamma=0.0)
    known = torch.tensor([[0.0, 40.0, 0.0], [40.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    unknown = known.clone()
    unknown[0, 2] = unknown[2, 0] = unknown[1, 2] = unknown[2, 1] = -1
    _, parts = pair_loss(out, unknown, None, weights)
    centred = out["code"] - 0.5
    only_pair = ((((centred[0] - centred[1]) ** 2).sum() / 16 - 0.5 * 40 / 100) ** 2).item()
    assert parts["topo"] == pytest.approx(only_pair, rel=1e-5)
    _, all_parts = pair_loss(out, known, None, weights)
    assert all_parts["topo"] != pytest.approx(only_pair, rel=1e-5)

def test_checkpoint_without_a_source_head_still_loads(tmp_path):
    """Checkpoints written before the source head have no ``sources`` in their config."""
    from hnn.hasher.checkpoint import load_checkpoint, save_checkpoint

    model = HNNNet(HNNNetConfig(in_channels=26, bits=16, families=2))
    path = tmp_path / "old.npz"
    save_checkpoint(path, model, ["Conv", "Gemm", "Relu", OTHER], ["a", "b"], "paper", "d", {})
    stored = dict(np.load(path, allow_pickle=False))
    document = json.loads(stored["__meta__"].tobytes())
    del document["config"]["sources"]
    stored["__meta__"] = np.frombuffer(json.dumps(document).encode(), dtype=np.uint8)
    np.savez(path, **stored)
    assert load_checkpoint(path).torch_model().source_classifier is None


def test_checkpoint_round_trip_and_refusals(tmp_path):
    from hnn.hasher.checkpoint import load_checkpoint, save_checkpoint

    model = HNNNet(HNNNetConfig(in_channels=26, bits=16, families=2))
    path = tmp_path / "c.npz"
    save_checkpoint(path, model, ["Conv", "Gemm", "Relu", OTHER], ["a", "b"], "paper", "d", {"note": "x"})
    loaded = load_checkpoint(path)
    assert loaded.bits == 16 and loaded.families == ["a", "b"] and loaded.meta == {"note": "x"}
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.torch_model().state_dict()[key], value)

    stored = dict(np.load(path, allow_pickle=False))
    document = json.loads(stored["__meta__"].tobytes())
    document["version"] = 99
    stored["__meta__"] = np.frombuffer(json.dumps(document).encode(), dtype=np.uint8)
    np.savez(tmp_path / "future.npz", **stored)
    with pytest.raises(InputError, match="version 99"):
        load_checkpoint(tmp_path / "future.npz")
    document["version"] = json.loads(np.load(path)["__meta__"].tobytes())["version"]
    document["config"]["sizes"] = "x"  # a size setting this hnn does not know
    stored["__meta__"] = np.frombuffer(json.dumps(document).encode(), dtype=np.uint8)
    np.savez(tmp_path / "sizes.npz", **stored)
    with pytest.raises(InputError, match="checkpoint sizes 'x' is not one of absolute, resolution, relative"):
        load_checkpoint(tmp_path / "sizes.npz")

    np.savez(tmp_path / "pickled.npz", evil=np.array([object()], dtype=object))
    with pytest.raises(InputError, match="not an hnn checkpoint"):
        load_checkpoint(tmp_path / "pickled.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(InputError, match="not an hnn checkpoint"):
        load_checkpoint(tmp_path / "text.npz")


@pytest.mark.parametrize("size_features, sizes, wl_bins", [
    (False, "absolute", 0), (True, "absolute", 0), (False, "relative", 0), (True, "resolution", 0),
    (False, "ratios", 0), (True, "resolution+ratios", 0), (False, "resolution", 64)])
def test_numpy_forward_equals_torch_forward(tmp_path, size_features, sizes, wl_bins):
    from hnn.hasher.checkpoint import load_checkpoint, save_checkpoint
    from hnn.hasher.features import feature_width
    from hnn.hasher.numpy_model import forward

    torch.manual_seed(3)
    graphs = [small_graph(("Conv", "Relu", "Add", "Conv", "Gemm"), (10**6, 10**3, 50, 10**5, 10**4)),
              small_graph(("Conv",) * 7)]
    vocabulary = build_vocabulary(graphs)
    model = HNNNet(HNNNetConfig(in_channels=feature_width(vocabulary, size_features, sizes), bits=32,
                                size_features=size_features, sizes=sizes, wl_bins=wl_bins)).eval()
    save_checkpoint(tmp_path / "c.npz", model, vocabulary, [], "paper", "", {})
    loaded = load_checkpoint(tmp_path / "c.npz")
    assert (loaded.size_features, loaded.sizes, loaded.wl_bins) == (size_features, sizes, wl_bins)
    for graph in graphs:
        with torch.no_grad():
            expected = model(*collate([to_tensors(graph, vocabulary, size_features, sizes, wl_bins)]))
        got = forward(loaded.arrays, graph, vocabulary, size_features=loaded.size_features,
                      sizes=loaded.sizes, wl_bins=loaded.wl_bins)
        assert np.allclose(got["code"], expected["code"][0].numpy(), atol=1e-5)
        assert np.allclose(got["embedding"], expected["embedding"][0].numpy(), atol=1e-4)


def test_a_model_with_a_wl_branch_refuses_tensors_without_wl_vectors():
    graph = small_graph(("Conv", "Relu", "Conv"))
    vocabulary = build_vocabulary([graph])
    model = HNNNet(HNNNetConfig(in_channels=len(vocabulary) + 22, bits=16, wl_bins=32))
    with pytest.raises(ValueError, match="wl_bins"):
        model(*collate([to_tensors(graph, vocabulary)]))
    assert model(*collate([to_tensors(graph, vocabulary, wl_bins=32)]))["code"].shape == (1, 16)


def test_size_features_tell_apart_graphs_that_differ_only_in_depth():
    from hnn.hasher.features import SIZE_COLUMNS, node_features

    shallow, deep = small_graph(("Conv",) * 4), small_graph(("Conv",) * 8)
    vocabulary = build_vocabulary([shallow, deep])
    assert (node_features(shallow, vocabulary)[0] == node_features(deep, vocabulary)[0]).all()
    a, b = node_features(shallow, vocabulary, True), node_features(deep, vocabulary, True)
    assert a.shape[1] == node_features(shallow, vocabulary).shape[1] + SIZE_COLUMNS
    assert not np.allclose(a[0, -SIZE_COLUMNS:], b[0, -SIZE_COLUMNS:])
    assert np.allclose(a[:, -SIZE_COLUMNS:], a[0, -SIZE_COLUMNS:])  # the same on every node


def test_relative_sizes_keep_still_when_every_size_scales_by_one_factor():
    from hnn.hasher.features import relative_buckets
    from hnn.hasher.training.loop import width_scaled

    graph = small_graph(("Conv", "Relu", "Conv", "Add", "Gemm"), (10**6, 10**3, 4 * 10**6, 0, 10**4))
    vocabulary = build_vocabulary([graph])
    for factor in (0.25, 1.7, 16.0):  # widths halved; another input resolution; widths quadrupled
        scaled = width_scaled(graph, factor)
        assert (node_features(scaled, vocabulary, sizes="relative")
                == node_features(graph, vocabulary, sizes="relative")).all()
    assert (node_features(width_scaled(graph, 16.0), vocabulary) != node_features(graph, vocabulary)).any()
    # The median node is bucket 6, a node 4x (one RELATIVE_STEP) above it 7, none 0, extremes clipped.
    assert relative_buckets([100, 400, 25, 0, 10**12, 1]).tolist() == [6, 7, 5, 0, 10, 3]


def test_resolution_sizes_give_a_cnn_at_256_the_features_it_has_at_224():
    """A copy exported at another input resolution is the same model: with sizes="resolution"
    only the layers after global pooling may move; with absolute sizes the convolutions move."""
    from hnn.hasher.features import resolution_factor
    from hnn.ingest.pipeline import ingest

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        # 12 channels: the first conv's 8.1 MFLOPs at 224 are 10.6 at 256, another order of magnitude
        torch.nn.Conv2d(3, 12, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(12, 32, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(32, 64, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()
    graphs = {side: ingest(net, input_shape=[1, 3, side, side]) for side in (224, 256)}
    assert resolution_factor(graphs[224]) == 1.0 and resolution_factor(graphs[256]) == pytest.approx(49 / 64)
    vocabulary = build_vocabulary(list(graphs.values()))
    convs = [i for i, node in enumerate(graphs[224].nodes) if node.op.startswith("Conv")]
    assert len(convs) == 3 and [n.op for n in graphs[224].nodes] == [n.op for n in graphs[256].nodes]
    same = node_features(graphs[224], vocabulary, sizes="resolution")
    moved = node_features(graphs[256], vocabulary, sizes="resolution")
    assert (same[convs] == moved[convs]).all()
    assert (node_features(graphs[224], vocabulary)[convs] != node_features(graphs[256], vocabulary)[convs]).any()
    # channels last (a Keras export) reads the same pixels; a token input has none
    keras_like = Graph(graphs[256].nodes, graphs[256].edges, GraphMeta("keras", input_shapes={"x": [1, 256, 256, 3]}))
    assert resolution_factor(keras_like) == pytest.approx(49 / 64)
    tokens = Graph(graphs[256].nodes, graphs[256].edges, GraphMeta("onnx", input_shapes={"ids": [1, 128]}))
    assert resolution_factor(tokens) == 1.0


def test_ratio_features_stay_exactly_still_under_a_width_change_and_another_resolution():
    """sizes="ratios" describes each layer by its size over its input's: a copy with every width
    scaled and one exported at another resolution get the features of the original; the buckets
    of "resolution" move with the width, and "resolution+ratios" holds both side by side."""
    from hnn.hasher.features import RATIO_PARTS, feature_width
    from hnn.ingest.pipeline import ingest

    def net(width: int):
        return torch.nn.Sequential(
            torch.nn.Conv2d(3, width, 3, stride=2, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(2 * width, 2 * width, 3, padding=1, groups=2 * width), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(2 * width, 10)).eval()

    torch.manual_seed(0)
    original = ingest(net(16), input_shape=[1, 3, 224, 224])
    copies = [ingest(net(40), input_shape=[1, 3, 224, 224]), ingest(net(16), input_shape=[1, 3, 256, 256])]
    vocabulary = build_vocabulary([original])
    features = node_features(original, vocabulary, sizes="ratios")
    assert features.shape == (len(original.nodes), feature_width(vocabulary, sizes="ratios"))
    assert features.shape[1] == len(vocabulary) + len(RATIO_PARTS)
    for copy in copies:
        assert [node.op for node in copy.nodes] == [node.op for node in original.nodes]
        assert (node_features(copy, vocabulary, sizes="ratios") == features).all()
    assert (node_features(copies[0], vocabulary, sizes="resolution")
            != node_features(original, vocabulary, sizes="resolution")).any()
    both = node_features(original, vocabulary, sizes="resolution+ratios")
    assert (both[:, -len(RATIO_PARTS):] == features[:, len(vocabulary):]).all()
    assert (both[:, :-len(RATIO_PARTS)] == node_features(original, vocabulary, sizes="resolution")).all()
    # the stem reads the data, the depthwise convolution keeps its width with a 3x3 kernel, the Linear is the head
    convs = [row for row, node in enumerate(original.nodes) if node.op.startswith("Conv")]
    column = {part: len(vocabulary) + i for i, part in enumerate(RATIO_PARTS)}
    assert features[convs[0], column["data"]] == 1
    assert features[convs[1], [column["r2"], column["k3"]]].all()
    assert features[convs[2], [column["r0"], column["k3"], column["dw"]]].all()
    assert features[-1, column["head"]] == 1


def test_unknown_sizes_setting_is_a_usage_error():
    from hnn.errors import UsageError
    from hnn.hasher.training.config import configure

    with pytest.raises(UsageError, match="unknown sizes 'pixels'"):
        configure(sizes="pixels")
    with pytest.raises(UsageError, match="needs --wl-bins"):
        configure(wl_init=10.0)
    assert configure(wl_bins=64, wl_init=10.0).wl_init == 10.0


def test_width_jitter_rescales_sizes_of_about_half_the_batch_and_keeps_the_ops():
    from dataclasses import replace as with_fields

    from hnn.hasher.training.config import DEFAULT_CONFIG
    from hnn.hasher.training.loop import Prepared, batch_tensors, width_scaled

    graph = small_graph(flops=(10**6, 10**4, 10**5))
    halved = width_scaled(graph, 0.25)  # widths halved: FLOPs and parameters / 4
    assert [n.flops for n in halved.nodes] == [250000, 2500, 25000] and halved.edges == graph.edges
    vocabulary = build_vocabulary([graph])
    graphs = [graph] * 40
    data = Prepared(names=[], records=[], tensors=[to_tensors(g, vocabulary) for g in graphs], family_index=None,
                    families=[], vocabulary=vocabulary, ged=None, train=None, validation=None, rules="",
                    rules_digest="", graphs=graphs)
    index = np.arange(40)
    plain = batch_tensors(data, index, DEFAULT_CONFIG, np.random.default_rng(0))
    assert all(t is data.tensors[i] for i, t in zip(index, plain))
    jittered = batch_tensors(data, index, with_fields(DEFAULT_CONFIG, width_jitter=0.9), np.random.default_rng(0))
    changed = [not torch.equal(t.x, data.tensors[0].x) for t in jittered]
    assert 5 < sum(changed) < 35  # about half, each rescaled at random
    ops = len(vocabulary)
    assert all(torch.equal(t.x[:, :ops], data.tensors[0].x[:, :ops]) for t in jittered)


def test_hex_round_trip():
    from graph_helpers import hex_to_code

    from hnn.hasher.bits import to_hex as code_to_hex

    code = np.array([1, 0, 1, 1] * 8, dtype=bool)
    assert code_to_hex(code) == "bbbbbbbb"
    assert (hex_to_code("bbbbbbbb", 32) == code).all()
