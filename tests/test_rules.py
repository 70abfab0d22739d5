"""Merge rules: matching semantics on hand-built IRs, rule-file validation, the CLI."""

import json
import random
from pathlib import Path

import pytest
from conftest import run_hnn
from graph_helpers import merge, to_networkx

from hnn.ingest.ir import Graph, GraphMeta, Node
from hnn.rules import RuleFileError, load_rule_file
from hnn.rules.loader import compile_rules

AGNOSTIC = Path(__file__).parents[1] / "rules" / "agnostic.yaml"


def chain_graph(ops, extra_edges=(), flops=None):
    """Nodes n0..n(k-1) with the given ops, linked in a line, plus extra edges."""
    nodes = [Node(f"n{i}", op, flops=(flops or [10 * (i + 1)] * len(ops))[i], params=i + 1)
             for i, op in enumerate(ops)]
    edges = [(f"n{i}", f"n{i + 1}") for i in range(len(ops) - 1)] + list(extra_edges)
    return Graph(nodes=nodes, edges=edges, meta=GraphMeta(framework="test"))


def merged_ops(graph):
    return sorted(node.op for node in graph.nodes)


@pytest.mark.parametrize(
    "ops, expected",
    [
        (["Conv", "Relu"], ["ConvRelu"]),
        (["Conv", "BatchNormalization"], ["ConvBn"]),
        (["Conv", "BatchNormalization", "Relu"], ["ConvBnRelu"]),
        (["Conv", "Conv", "BatchNormalization", "Relu"], ["ConvConvBnRelu"]),
        (["Gemm", "Relu"], ["Gemm", "Relu"]),
    ],
)
def test_each_default_rule_matches_its_chain(ops, expected):
    graph = chain_graph(ops)
    result, counts = merge(graph)
    assert merged_ops(result) == expected
    assert result.total_flops == graph.total_flops and result.total_params == graph.total_params
    assert sum(counts.values()) == (1 if expected[0].startswith("Conv") else 0)


@pytest.mark.parametrize("kept, folded", [
    (["Conv", "BatchNormalization", "Relu"], ["Conv", "Relu"]),
    (["Conv", "BatchNormalization", "Conv", "BatchNormalization", "Relu"], ["Conv", "Conv", "Relu"]),
    (["Conv", "BatchNormalization", "Conv", "BatchNormalization"], ["Conv", "Conv"]),
])
def test_agnostic_rules_merge_a_folded_batchnorm_like_a_kept_one(kept, folded):
    rules = [AGNOSTIC]
    assert [n.op for n in merge(chain_graph(kept), rules)[0].nodes] == \
        [n.op for n in merge(chain_graph(folded), rules)[0].nodes]


def test_branching_intermediate_tensor_ends_the_chain():
    # n1 (BN) also feeds the Add at n3 (a skip connection): Conv-BN may merge, BN-ReLU may not.
    graph = chain_graph(["Conv", "BatchNormalization", "Relu", "Add"], extra_edges=[("n1", "n3")])
    result, counts = merge(graph)
    assert counts == {"ConvConvBnRelu": 0, "ConvBnRelu": 0, "ConvBn": 1, "ConvRelu": 0}
    assert merged_ops(result) == ["Add", "ConvBn", "Relu"]
    ids = {node.op: node.id for node in result.nodes}
    assert set(result.edges) == {(ids["ConvBn"], ids["Relu"]), (ids["ConvBn"], ids["Add"]),
                                 (ids["Relu"], ids["Add"])}


def test_overlap_longest_wins_then_file_order():
    # Conv-Conv-BN-ReLU could also be read as Conv + ConvBnRelu: the longer rule wins.
    result, counts = merge(chain_graph(["Conv", "Conv", "BatchNormalization", "Relu"]))
    assert counts["ConvConvBnRelu"] == 1 and counts["ConvBnRelu"] == 0
    # equal length: the rule earlier in the file wins
    rules = compile_rules({"rules": [{"name": "First", "chain": ["Conv", "Relu"]},
                                     {"name": "Second", "chain": ["Conv", "Relu|Clip"]}]}, "test")
    merged, counts = rules.apply(chain_graph(["Conv", "Relu"]))
    assert counts == {"First": 1, "Second": 0}


def test_merging_conserves_totals_and_node_count_on_a_residual_block():
    # stem Conv-BN-ReLU feeding a block Conv-BN-ReLU-Conv-BN and a skip into Add, then ReLU
    ops = ["Conv", "BatchNormalization", "Relu", "Conv", "BatchNormalization", "Relu", "Conv",
           "BatchNormalization", "Add", "Relu"]
    graph = chain_graph(ops, extra_edges=[("n2", "n8")])
    result, counts = merge(graph)
    # by hand: [n0 n1 n2] ConvBnRelu, [n3 n4 n5] ConvBnRelu, [n6 n7] ConvBn, n8 Add, n9 Relu -> 5 nodes
    assert len(result.nodes) == 5
    assert counts == {"ConvConvBnRelu": 0, "ConvBnRelu": 2, "ConvBn": 1, "ConvRelu": 0}
    assert result.total_flops == graph.total_flops and result.total_params == graph.total_params
    assert len(result.edges) == 5  # 4 along the chain + the skip
    assert all(src != dst for src, dst in result.edges) and len(set(result.edges)) == len(result.edges)
    nx_graph = to_networkx(result)
    import networkx as nx

    assert nx.is_weakly_connected(nx_graph)


def test_result_does_not_depend_on_node_storage_order():
    ops = ["Conv", "BatchNormalization", "Relu", "Conv", "Relu", "Conv", "BatchNormalization"]
    graph = chain_graph(ops, extra_edges=[("n2", "n5")])
    shuffled_nodes = list(graph.nodes)
    random.Random(3).shuffle(shuffled_nodes)
    shuffled = Graph(nodes=shuffled_nodes, edges=list(reversed(graph.edges)), meta=graph.meta)
    first, _ = merge(graph)
    second, _ = merge(shuffled)
    assert first.nodes == second.nodes and first.edges == second.edges


def test_optional_elements_alternatives_and_attribute_conditions():
    rules = compile_rules({"rules": [
        {"name": "DepthwiseBnAct", "chain": [{"op": "Conv", "attrs": {"group": "channels"}},
                                             "BatchNormalization?", "Relu|Clip"]},
    ]}, "test")
    depthwise = Node("n0", "Conv", attrs={"group": 8}, output_shape=[1, 8, 4, 4])
    graph = Graph([depthwise, Node("n1", "Clip")], [("n0", "n1")], GraphMeta(framework="test"))
    assert merged_ops(rules.apply(graph)[0]) == ["DepthwiseBnAct"]
    dense = Node("n0", "Conv", attrs={"group": 1}, output_shape=[1, 8, 4, 4])
    graph = Graph([dense, Node("n1", "Clip")], [("n0", "n1")], GraphMeta(framework="test"))
    assert merged_ops(rules.apply(graph)[0]) == ["Clip", "Conv"]


def test_merged_node_records_members_and_first_member_attributes():
    conv = Node("n0", "Conv", attrs={"kernel_shape": [3, 3], "group": 1}, output_shape=[1, 4, 8, 8], flops=5)
    graph = Graph([conv, Node("n1", "Relu", output_shape=[1, 4, 8, 8], flops=2)], [("n0", "n1")],
                  GraphMeta(framework="test"))
    (node,) = merge(graph)[0].nodes
    assert node.members == ["Conv", "Relu"] and node.attrs == conv.attrs and node.flops == 7


@pytest.mark.parametrize(
    "text, suffix, message",
    [
        ("rules:\n  - name: A\n    chain: [Conv, Rellu]\n", ".yaml", "rule 'A': chain[1]: unknown op 'Rellu'"),
        ("rules:\n  - name: A\n    chian: [Conv]\n", ".yaml", "rule 'A': unknown field(s) ['chian']"),
        ("rules:\n  - name: A\n    chain: [Conv, Relu\n", ".yaml", "bad YAML at line"),
        ("[[rules]]\nname = 'A'\nchain = ['Conv',\n", ".toml", "bad TOML"),
        ("rules:\n  - name: A\n    chain: [{op: Conv, optinal: true}]\n", ".yaml", "unknown field(s) ['optinal']"),
        ("rules: []\n", ".yaml", "non-empty list"),
    ],
)
def test_rule_file_typos_give_one_line_errors_and_exit_2(tmp_path, text, suffix, message):
    path = tmp_path / f"mine{suffix}"
    path.write_text(text)
    with pytest.raises(RuleFileError) as error:
        load_rule_file(path)
    assert message in str(error.value) and str(path) in str(error.value)
    result = run_hnn("rules", "check", path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr


def test_toml_rule_file_and_cli_apply(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\n[[rules]]\nname = "ConvAct"\nchain = ["Conv", "BatchNormalization?", "Relu"]\n')
    assert [r.name for r in load_rule_file(path).rules] == ["ConvAct"]
    ir = tmp_path / "raw.json"
    assert run_hnn("ingest", "--no-merge", "-o", ir).returncode == 0
    result = run_hnn("rules", "apply", ir, "--rules", path, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["matches"] == {"ConvAct": 2} and (report["nodes_before"], report["nodes_after"]) == (12, 8)


def test_plugin_rule_file_is_listed_with_its_source_and_selectable_by_name(tmp_path):
    from hnn.plugins import hookimpl
    from hnn.plugins.manager import get_plugin_manager
    from hnn.rules.loader import load_rule_sets, registered_rule_files

    path = tmp_path / "extra.yaml"
    path.write_text("name: extra\nrules:\n  - name: GemmRelu\n    chain: [Gemm, Relu]\n")

    class Plugin:
        @hookimpl
        def hnn_register_rule_files(self, register):
            register(str(path))

    manager = get_plugin_manager()
    plugin = Plugin()
    manager.register(plugin, name="extra-rules-plugin")
    try:
        listed = {rs.name: (p, plugin_name) for rs, p, plugin_name in registered_rule_files()}
        assert listed["extra"] == (str(path), "extra-rules-plugin")
        assert listed["paper"][1] == "hnn.rules.plugin"
        (rule_set,) = load_rule_sets(["extra"])
        assert merged_ops(rule_set.apply(chain_graph(["Gemm", "Relu"]))[0]) == ["GemmRelu"]
    finally:
        manager.unregister(plugin)
