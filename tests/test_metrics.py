"""Retrieval metrics on hand-made rankings with known answers (no training)."""

import numpy as np
import pytest

from hnn.hasher.bits import hamming_matrix
from hnn.hasher.training.metrics import retrieval_metrics


def test_hamming_matrix():
    a = np.array([[1, 0, 1, 1], [0, 0, 0, 0]], dtype=bool)
    b = np.array([[1, 0, 1, 1], [1, 1, 1, 1], [0, 1, 0, 0]], dtype=bool)
    assert hamming_matrix(a, b).tolist() == [[0, 1, 4], [3, 4, 1]]


def test_known_precision_recall_f1_ap_top1():
    # one query, database of 5 ranked by distance 0..4; relevant at ranks 1 and 3 (of 3 relevant in total)
    distances = np.array([[0, 1, 2, 3, 4]])
    relevant = np.array([[True, False, True, False, True]])
    at2 = retrieval_metrics(distances, relevant, k=2)
    assert at2["precision"] == pytest.approx(1 / 2)
    assert at2["recall"] == pytest.approx(1 / 3)
    assert at2["f1"] == pytest.approx(2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3))
    assert at2["map"] == pytest.approx((1 / 1 + 2 / 3 + 3 / 5) / 3)
    assert at2["top1"] == 1.0
    assert at2["r_precision"] == pytest.approx(2 / 3)  # R = 3: two relevant in the top 3


def test_macro_average_over_queries_and_skipping_queries_without_answers():
    distances = np.array([[0, 1], [0, 1], [0, 1]])
    relevant = np.array([[True, False], [False, True], [False, False]])
    result = retrieval_metrics(distances, relevant, k=1)
    assert result["queries"] == 2 and result["skipped"] == 1
    assert result["precision"] == pytest.approx(0.5) and result["top1"] == pytest.approx(0.5)
    assert result["map"] == pytest.approx((1 + 0.5) / 2)


def test_ties_keep_database_order():
    distances = np.array([[1, 1, 1]])
    relevant = np.array([[False, False, True]])
    assert retrieval_metrics(distances, relevant, k=1)["top1"] == 0.0


def test_structure_codes_order_ties_of_the_code_as_the_index_does():
    from hnn.evaluation.protocol import score

    # Database: the query's sibling (added first) and its own source share the query's code;
    # only the structure code tells them apart. A third graph is 1 bit away in code.
    records = [{"name": "q", "family": "f", "source": "own"}, {"name": "sibling", "family": "f"},
               {"name": "own~aug", "family": "f", "source": "own"}, {"name": "far", "family": "g"}]
    from hnn.hasher.structure import STRUCTURE_BITS, Structure

    codes = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]], dtype=bool)
    structures = np.zeros((4, STRUCTURE_BITS), dtype=bool)
    structures[1, 0] = True  # the sibling: one topology bit off
    structures[2, -30:] = True  # the query's own source: 30 size bits off, topology equal
    split = {"test": ["q"], "train": ["sibling", "own~aug", "far"]}
    # No graph shares the query's topology digest: only the structure code orders the tie.
    structures = [Structure(code, f"topology-{i}", np.zeros(2)) for i, code in enumerate(structures)]
    by_code = score(codes, records, split, "paper")
    by_index = score(codes, records, split, "paper", structures)
    assert by_code["source"]["top1"] == 0.0 and by_index["source"]["top1"] == 1.0
    assert by_index["source"]["map"] == 1.0 and by_code["source"]["map"] == 0.5
    # The tie-break never lifts a farther code over a nearer one: "far" has the query's structure.
    assert by_index["family"]["map"] == 1.0 and by_index["histogram"] == by_code["histogram"]


def test_the_query_topology_comes_first_in_the_index_ranking_but_never_itself():
    from hnn.evaluation.protocol import score
    from hnn.hasher.structure import STRUCTURE_BITS, Structure

    # The query's own source is 5 bits away in code (a pruned copy), an unrelated graph 1 bit away;
    # only the shared topology digest puts the own source first. In a held-out split the query is
    # also in the database, with its own digest: it must not be its own answer.
    records = [{"name": "q", "family": "f", "source": "own"}, {"name": "own", "family": "f"},
               {"name": "near", "family": "g"}]
    codes = np.array([[0] * 8, [1] * 5 + [0] * 3, [1] + [0] * 7], dtype=bool)
    structure = [Structure(np.zeros(STRUCTURE_BITS, dtype=bool), topology, np.array([10.0, 20.0]))
                 for topology in ("t", "t", "u")]
    for split, names in (("paper", {"test": ["q"], "train": ["own", "near"]}),
                         ("models", {"test": ["q"], "train": ["own", "near"]})):
        by_code = score(codes, records, names, split)
        by_index = score(codes, records, names, split, structure)
        assert by_code["source"]["top1"] == 0.0 and by_index["source"]["top1"] == 1.0
