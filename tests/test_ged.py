"""Approximate GED against exact GED (networkx) on small graphs and known edits on real graphs."""

import random

import networkx as nx
import pytest

from hnn.ingest.ir import Graph, GraphMeta, Node
from hnn.zoo.augment import delete_nodes
from hnn.zoo.ged import GedGraph, ged, lower_bound, pairwise
from hnn.zoo.ged import estimate as ged_estimate

OPS = ["Conv", "Relu", "Add", "Gemm"]  # all with 0 FLOPs and params: labels are the ops


def random_graph(rng, n):
    nodes = [Node(f"n{i}", rng.choice(OPS)) for i in range(n)]
    edges = sorted({(f"n{a}", f"n{b}") for a in range(n) for b in range(a + 1, n) if rng.random() < 0.35})
    return Graph(nodes, edges, GraphMeta(framework="test"))


def exact_ged(g1: Graph, g2: Graph) -> int:
    def undirected(graph):
        nxg = nx.Graph()
        nxg.add_nodes_from((n.id, {"op": n.op}) for n in graph.nodes)
        nxg.add_edges_from(graph.edges)
        return nxg

    return int(nx.graph_edit_distance(undirected(g1), undirected(g2), node_match=lambda a, b: a["op"] == b["op"]))


def estimate(g1: Graph, g2: Graph) -> int:
    return ged_estimate(GedGraph.from_ir(g1), GedGraph.from_ir(g2))


def test_small_graphs_estimate_is_an_upper_bound_and_usually_exact():
    rng = random.Random(7)
    exact_hits, cases = 0, 40
    for _ in range(cases):
        g1, g2 = random_graph(rng, rng.randint(2, 6)), random_graph(rng, rng.randint(2, 6))
        true = exact_ged(g1, g2)
        approx = estimate(g1, g2)
        assert approx >= true
        assert lower_bound(GedGraph.from_ir(g1), GedGraph.from_ir(g2)) <= true
        exact_hits += approx == true
    assert exact_hits >= 0.9 * cases


def test_identity_symmetry_and_cap():
    rng = random.Random(1)
    g1, g2 = GedGraph.from_ir(random_graph(rng, 8)), GedGraph.from_ir(random_graph(rng, 7))
    assert ged(g1, g1) == (0, True)
    assert ged(g1, g2)[0] == ged(g2, g1)[0]
    assert ged(g1, g2, cap=1)[0] == 1


@pytest.fixture(scope="module")
def resnet18_merged():
    pytest.importorskip("torch")
    from graph_helpers import merge

    from hnn.ingest.pipeline import ingest

    return merge(ingest("torchvision.models:resnet18"))[0]


def test_real_graph_with_known_deletions_stays_within_1_5x(resnet18_merged):
    source = GedGraph.from_ir(resnet18_merged)
    ratios = []
    for index in range(10):
        augmented, edits = delete_nodes(resnet18_merged, seed=f"test:{index}")
        copy = GedGraph.from_ir(augmented)
        approx = ged_estimate(source, copy)
        assert lower_bound(source, copy) <= approx
        ratios.append(approx / edits)
    # the estimate is an upper bound of the true GED, which is at most `edits`
    assert max(ratios) <= 1.5, ratios


def _with_copies(graph, seed: str, copies: int = 3):
    """The graph and ``copies`` augmentations of it, and their known edit counts from it."""
    graphs, known = [GedGraph.from_ir(graph)], {}
    for index in range(copies):
        copy, edits = delete_nodes(graph, seed=f"{seed}:{index}")
        graphs.append(GedGraph.from_ir(copy))
        known[(0, index + 1)] = edits
    return graphs, known


def test_pairwise_matrix_is_symmetric_zero_diagonal_and_cached(resnet18_merged, tmp_path):
    graphs, known = _with_copies(resnet18_merged, "pairwise")
    matrix, stats = pairwise(graphs, cap=100, known=known, workers=2, cache_dir=tmp_path)
    assert (matrix == matrix.T).all() and (matrix.diagonal() == 0).all()
    assert all(matrix[0, i + 1] <= known[(0, i + 1)] for i in range(3))
    assert stats["pairs"] == 6 and not stats["cached"]
    again, stats = pairwise(graphs, cap=100, known=known, workers=2, cache_dir=tmp_path)
    assert stats["cached"] and (again == matrix).all()


def test_a_longer_graph_list_estimates_only_the_pairs_of_its_new_graphs(resnet18_merged, tmp_path):
    """Adding models to a built zoo reuses the pairs an earlier matrix has (the GED is incremental)."""
    graphs, known = _with_copies(resnet18_merged, "incremental", copies=4)
    first, _ = pairwise(graphs[:3], cap=100, known={k: v for k, v in known.items() if k[1] < 3}, workers=1,
                        cache_dir=tmp_path)
    fresh, _ = pairwise(graphs, cap=100, known=known, workers=1)
    matrix, stats = pairwise(graphs, cap=100, known=known, workers=1, cache_dir=tmp_path)
    assert stats["reused"] == 3 and not stats["cached"]  # the 3 pairs among the first 3 graphs
    assert (matrix == fresh).all() and (matrix[:3, :3] == first).all()
    # Another known edit count for one pair: that pair is estimated again, the other 9 of 10 reused.
    other_known = {**known, (0, 1): known[(0, 1)] + 1}
    _, stats = pairwise(graphs, cap=100, known=other_known, workers=1, cache_dir=tmp_path)
    assert stats["reused"] == 9 and not stats["cached"]
    # Pairs among unestimated graphs hold another kind of value: not reused where they are estimated.
    _, stats = pairwise(graphs, cap=101, known=known, workers=1, cache_dir=tmp_path, unestimated=frozenset({0, 1}))
    _, stats = pairwise(graphs, cap=101, known=known, workers=1, cache_dir=tmp_path)
    assert stats["reused"] == 9
    # A write cut short (or any file that is not a matrix) is passed over, not read.
    (tmp_path / "ged-interrupted.npz.tmp.npz").write_bytes(b"PK\x03\x04 cut")
    (tmp_path / "ged-damaged.npz").write_bytes(b"not a matrix")
    part, stats = pairwise(graphs[:4], cap=100, known={k: v for k, v in known.items() if k[1] < 4}, workers=1,
                           cache_dir=tmp_path)
    assert stats["reused"] == 6 and (part == fresh[:4, :4]).all()


def test_pairs_among_unestimated_graphs_are_unknown_but_for_known_edits_and_the_bound(resnet18_merged, tmp_path):
    """Transformer graphs are not estimated among themselves (too slow); their other pairs are."""
    from hnn.zoo.ged import UNKNOWN

    graphs, known = _with_copies(resnet18_merged, "unestimated")
    full, _ = pairwise(graphs, cap=100, known=known, workers=1)
    matrix, stats = pairwise(graphs, cap=100, known=known, workers=1, unestimated=frozenset({0, 1, 2}))
    assert matrix[0, 1] == min(known[(0, 1)], 100) and matrix[0, 2] == min(known[(0, 2)], 100)
    assert matrix[1, 2] == UNKNOWN and stats["unknown"] == 1
    assert matrix[0, 3] == full[0, 3] and matrix[1, 3] == full[1, 3] and matrix[2, 3] == full[2, 3]
