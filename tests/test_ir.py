"""The IR file format: round trip, validation errors that name the field, networkx."""

import json

import pytest
from graph_helpers import to_networkx

from hnn.errors import IRFormatError
from hnn.ingest.ir import Graph, GraphMeta, Node
from hnn.ingest.pipeline import EXAMPLE_MODEL, ingest


@pytest.fixture(scope="module")
def example():
    return ingest(str(EXAMPLE_MODEL))


def test_round_trip_through_json_file_keeps_everything(example, tmp_path):
    path = tmp_path / "model.json"
    example.to_json_file(path)
    loaded = Graph.from_json_file(path)
    assert loaded == example
    assert loaded.digest() == example.digest()
    assert json.loads(path.read_text())["version"] == 1


def test_example_has_the_expected_layers(example):
    assert example.op_histogram() == {
        "BatchNormalization": 3, "Conv": 3, "Relu": 3, "Add": 1, "Gemm": 1, "GlobalAveragePool": 1,
    }
    assert len(example.edges) == 12
    assert [node.id for node in example.nodes] == [f"n{i}" for i in range(12)]


def test_networkx_view_has_nodes_edges_and_attributes(example):
    graph = to_networkx(example)
    assert graph.number_of_nodes() == len(example.nodes)
    assert graph.number_of_edges() == len(example.edges)
    assert graph.nodes["n0"]["op"] == example.nodes[0].op
    import networkx as nx

    assert nx.is_directed_acyclic_graph(graph) and nx.is_weakly_connected(graph)


def corrupt(example, tmp_path, edit):
    data = example.to_dict()
    edit(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d["nodes"][3].__setitem__("flops", "many"), "nodes[3].flops: expected a non-negative integer"),
        (lambda d: d["nodes"][2].__setitem__("params", -1), "nodes[2].params"),
        (lambda d: d["nodes"][0].pop("op"), "nodes[0]: missing field 'op'"),
        (lambda d: d["nodes"][1].__setitem__("colour", "red"), "nodes[1]: unknown field(s) ['colour']"),
        (lambda d: d["edges"].append(["n0", "n99"]), "unknown node id 'n99'"),
        (lambda d: d["edges"].append(["n5", "n5"]), "self-loop"),
        (lambda d: d["edges"].append(list(d["edges"][0])), "duplicate edge"),
        (lambda d: d["edges"].append(["n11", "n0"]), "cycle"),
        (lambda d: d.__setitem__("version", 99), "newer than this hnn reads"),
        (lambda d: d.__setitem__("format", "other"), "not an hnn IR file"),
        (lambda d: d["meta"].pop("framework"), "meta.framework"),
        (lambda d: d["nodes"][1].__setitem__("id", "n0"), "duplicate id 'n0'"),
    ],
)
def test_hand_edited_file_errors_name_the_field(example, tmp_path, edit, message):
    path = corrupt(example, tmp_path, edit)
    with pytest.raises(IRFormatError) as error:
        Graph.from_json_file(path)
    assert message in str(error.value)
    assert str(path) in str(error.value)


def test_truncated_file_error_gives_the_position(example, tmp_path):
    path = tmp_path / "cut.json"
    path.write_text(example.to_json()[:500])
    with pytest.raises(IRFormatError, match=r"not valid JSON \(line \d+, column \d+.*truncated"):
        Graph.from_json_file(path)


def test_totals_and_summary():
    graph = Graph(
        nodes=[Node("n0", "Conv", flops=10, params=3), Node("n1", "Relu", flops=2)],
        edges=[("n0", "n1")],
        meta=GraphMeta(framework="onnx"),
    )
    summary = graph.summary()
    assert (summary["flops"], summary["params"], summary["nodes"], summary["edges"]) == (12, 3, 2, 1)
    assert summary["ops"] == {"Conv": 1, "Relu": 1}
