"""Approximate graph edit distance (GED) between IR graphs, capped at R.

Exact GED is NP-hard; model graphs have up to about 1,000 nodes. Costs are
unit costs on the undirected graph: substituting a node by one with another
label costs 1 (same label: 0), deleting or inserting a node costs 1, deleting
or inserting an edge costs 1. A node's label is its op with the order of
magnitude of its FLOPs and parameters, the same ``enc`` buckets as the node
features (``Conv/9/5``). With op labels alone, architectures that differ only in
width (mnasnet0_75 and mnasnet1_0, shufflenet x0.5 and x2.0) are at GED 0, and
training on GED would teach the hash to confuse them (measured: validation
source-model mAP 0.60 with op labels).

* **Upper bound** (Riesen-Bunke bipartite assignment): a square cost matrix of
  node substitutions, deletions and insertions is solved with
  ``scipy.optimize.linear_sum_assignment``; the node mapping it yields implies
  a complete edit path, whose exact unit cost is returned. Any mapping gives a
  valid edit path, so this never falls below the exact GED.
  The substitution cost guiding the assignment is richer than the unit cost,
  because model graphs repeat the same op many times and op labels alone leave
  the assignment ambiguous: ``[op differs] + 0.5 |degree difference|
  + 0.5 (L1 distance of neighbour-op histograms) + 5 |topological position
  difference|`` (position = rank in canonical order / node count).
  Deletion/insertion cost ``1 + 0.5 degree``. Then five re-assignments lower
  each pair's cost by 0.5 per neighbour pair the previous mapping already maps
  onto each other, which rewards keeping edges; the cheapest edit path of all
  mappings is kept. On small pairs (up to 40 nodes together) two more
  weightings are tried and a local search moves single nodes while the edit
  path gets cheaper.
* **Lower bound**: ``max(n1, n2) - |common op multiset| + |e1 - e2|``. When it
  is already at least R, the pair is settled at R without an assignment.
* Pairs whose edit count is known by construction (a graph and its own
  augmentation) take ``min(estimate, known edits)``.
* Symmetry: a pair is always computed in one canonical order (by digest), so
  ``ged(a, b) == ged(b, a)`` exactly.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from hnn.ingest.ir import Graph

DEFAULT_CAP = 100
LABELS = "op/enc(flops)/enc(params)"  # part of the cache key: another labelling is another matrix
# (position, degree, neighbour-histogram) weights of the substitution costs tried; the
# cheapest resulting edit path wins. The first suits model graphs (a clear topological
# order), the others graphs whose order says little.
COST_VARIANTS = ((5.0, 0.5, 0.5), (0.0, 0.5, 0.5), (0.0, 1.0, 0.0))
# Re-assignments rewarding preserved edges, and the reward per preserved neighbour pair.
CONSISTENCY_ROUNDS = 5
CONSISTENCY_WEIGHT = 0.5
HOPELESS_FACTOR = 3
# Below this many nodes in both graphs together, the assignment is refined by local search.
REFINE_MAX_NODES = 40


@dataclass(frozen=True)
class GedGraph:
    """What GED needs of a graph: op codes, undirected edges, degrees, positions, neighbour histograms."""

    digest: str
    ops: tuple[str, ...]
    edges: frozenset[tuple[int, int]]
    degree: np.ndarray
    position: np.ndarray
    neighbour_ops: tuple[Counter, ...]

    @classmethod
    def from_ir(cls, graph: Graph) -> "GedGraph":
        from hnn.ingest.flops import enc

        index = {node.id: i for i, node in enumerate(graph.nodes)}
        edges = frozenset(tuple(sorted((index[a], index[b]))) for a, b in graph.edges if a != b)
        n = len(graph.nodes)
        neighbours: list[list[int]] = [[] for _ in range(n)]
        for a, b in edges:
            neighbours[a].append(b)
            neighbours[b].append(a)
        ops = tuple(f"{node.op}/{enc(node.flops)}/{enc(node.params)}" for node in graph.nodes)
        return cls(
            digest=graph.digest(),
            ops=ops,
            edges=edges,
            degree=np.array([len(nb) for nb in neighbours], dtype=np.float64),
            position=np.arange(n, dtype=np.float64) / max(n - 1, 1),
            neighbour_ops=tuple(Counter(ops[j] for j in nb) for nb in neighbours),
        )

    @property
    def size(self) -> int:
        return len(self.ops)


def lower_bound(g1: GedGraph, g2: GedGraph) -> int:
    common = sum((Counter(g1.ops) & Counter(g2.ops)).values())
    return max(g1.size, g2.size) - common + abs(len(g1.edges) - len(g2.edges))


def _histograms(g1: GedGraph, g2: GedGraph) -> tuple[np.ndarray, np.ndarray]:
    vocabulary = {op: i for i, op in enumerate(sorted(set(g1.ops) | set(g2.ops)))}

    def matrix(graph: GedGraph) -> np.ndarray:
        out = np.zeros((graph.size, len(vocabulary)))
        for row, counts in enumerate(graph.neighbour_ops):
            for op, count in counts.items():
                out[row, vocabulary[op]] = count
        return out

    return matrix(g1), matrix(g2)


def _adjacency(graph: GedGraph) -> np.ndarray:
    matrix = np.zeros((graph.size, graph.size))
    for a, b in graph.edges:
        matrix[a, b] = matrix[b, a] = 1
    return matrix


def _assign(g1: GedGraph, g2: GedGraph, substitute: np.ndarray, degree_weight: float) -> dict[int, int]:
    """Solve the Riesen-Bunke assignment in its rectangular form.

    Rows are g1's nodes; columns are g2's nodes, then one deletion column per g1 node.
    Inserting g2's unmatched nodes costs a constant minus what matching them saves, so
    column j carries ``substitute[:, j] - insert[j]``: the same optimum as the square
    (n1 + n2) matrix, at about half the size.
    """
    from scipy.optimize import linear_sum_assignment

    n1, n2 = g1.size, g2.size
    insert = 1 + degree_weight * g2.degree
    cost = np.full((n1, n2 + n1), 1e9)  # 1e9 forbids deleting a node in another node's column
    cost[:, :n2] = substitute - insert[None, :]
    cost[np.arange(n1), n2 + np.arange(n1)] = 1 + degree_weight * g1.degree
    rows, cols = linear_sum_assignment(cost)
    return {int(i): int(j) for i, j in zip(rows, cols) if j < n2}


def node_mappings(g1: GedGraph, g2: GedGraph, weights: tuple[float, float, float] = COST_VARIANTS[0],
                  rounds: int = CONSISTENCY_ROUNDS) -> Iterator[dict[int, int]]:
    """Node mappings i -> j: the bipartite assignment, then ``rounds`` re-assignments that
    reward keeping edges (each pair's cost drops by CONSISTENCY_WEIGHT per neighbour pair the
    previous mapping already maps onto each other)."""
    from scipy.spatial.distance import cdist

    position_weight, degree_weight, neighbour_weight = weights
    ops1, ops2 = np.array(g1.ops, dtype=object), np.array(g2.ops, dtype=object)
    h1, h2 = _histograms(g1, g2)
    substitute = (
        (ops1[:, None] != ops2[None, :]).astype(np.float64)
        + degree_weight * np.abs(g1.degree[:, None] - g2.degree[None, :])
        + neighbour_weight * cdist(h1, h2, "cityblock")
        + position_weight * np.abs(g1.position[:, None] - g2.position[None, :])
    )
    mapping = _assign(g1, g2, substitute, degree_weight)
    yield mapping
    if rounds == 0:
        return
    a1, a2 = _adjacency(g1), _adjacency(g2)
    for _ in range(rounds):
        mapped = np.zeros((g1.size, g2.size))
        for i, j in mapping.items():
            mapped[i, j] = 1
        consistent_neighbours = a1 @ mapped @ a2
        mapping = _assign(g1, g2, substitute - CONSISTENCY_WEIGHT * consistent_neighbours, degree_weight)
        yield mapping


def edit_path_cost(g1: GedGraph, g2: GedGraph, mapping: dict[int, int]) -> int:
    """Exact unit cost of the edit path a node mapping implies."""
    relabels = sum(g1.ops[i] != g2.ops[j] for i, j in mapping.items())
    nodes = relabels + (g1.size - len(mapping)) + (g2.size - len(mapping))
    kept = 0
    for a, b in g1.edges:
        if a in mapping and b in mapping and tuple(sorted((mapping[a], mapping[b]))) in g2.edges:
            kept += 1
    return nodes + len(g1.edges) + len(g2.edges) - 2 * kept


def refine(g1: GedGraph, g2: GedGraph, mapping: dict[int, int]) -> tuple[dict[int, int], int]:
    """Local search: move one node of g1 to another target (swapping with its holder) while that helps."""
    best = edit_path_cost(g1, g2, mapping)
    improved = True
    while improved and best > 0:
        improved = False
        for i in range(g1.size):
            for j in [*range(g2.size), None]:
                if mapping.get(i) == j:
                    continue
                trial = dict(mapping)
                holder = next((k for k, v in trial.items() if v == j), None) if j is not None else None
                old = trial.pop(i, None)
                if holder is not None:
                    trial.pop(holder)
                    if old is not None:
                        trial[holder] = old
                if j is not None:
                    trial[i] = j
                cost = edit_path_cost(g1, g2, trial)
                if cost < best:
                    mapping, best, improved = trial, cost, True
    return mapping, best


def estimate(g1: GedGraph, g2: GedGraph, cap: int | None = None) -> int:
    """Upper bound: the cheapest edit path of the mappings tried.

    Large pairs: the first cost variant with its consistency rounds. Small pairs (up to
    REFINE_MAX_NODES together): every variant, each refined by local search. The search
    stops once it reaches the lower bound (optimal), when a round repeats the previous
    mapping, and, given a cap, when the first estimate is over HOPELESS_FACTOR times the
    cap (the rounds were measured to lower estimates by at most about 2.5x).
    """
    small = g1.size + g2.size <= REFINE_MAX_NODES
    floor = lower_bound(g1, g2)
    best = None
    for weights in COST_VARIANTS if small else COST_VARIANTS[:1]:
        previous = None
        for mapping in node_mappings(g1, g2, weights):
            if mapping == previous:
                break
            previous = mapping
            if small:
                mapping, cost = refine(g1, g2, mapping)
            else:
                cost = edit_path_cost(g1, g2, mapping)
            best = cost if best is None else min(best, cost)
            if best <= floor or (cap is not None and best > HOPELESS_FACTOR * cap):
                return best
    return best


def ged(g1: GedGraph, g2: GedGraph, cap: int = DEFAULT_CAP, known_edits: int | None = None) -> tuple[int, bool]:
    """(min(GED estimate, cap), whether the lower bound settled it without an assignment)."""
    if g1.digest == g2.digest:
        return 0, True
    if g2.digest < g1.digest:
        g1, g2 = g2, g1
    if lower_bound(g1, g2) >= cap:
        return cap, True
    value = estimate(g1, g2, cap)
    if known_edits is not None:
        value = min(value, known_edits)
    return min(value, cap), False


# --- pairwise matrices, in worker processes, cached on disk ------------------------------

_worker_graphs: list[GedGraph] = []
_worker_reused: np.ndarray | None = None


def _init_worker(graphs: list[GedGraph], reused: np.ndarray | None = None) -> None:
    global _worker_graphs, _worker_reused
    _worker_graphs, _worker_reused = graphs, reused


def _rows(task: tuple[list[int], int, dict, frozenset]) -> list[tuple[int, int, int, bool]]:
    rows, cap, known, unestimated = task
    out = []
    for i in rows:
        for j in range(i + 1, len(_worker_graphs)):
            if _worker_reused is not None and _worker_reused[i, j] != NOT_CACHED:
                out.append((i, j, int(_worker_reused[i, j]), False))
                continue
            g1, g2 = _worker_graphs[i], _worker_graphs[j]
            if i in unestimated and j in unestimated and g1.digest != g2.digest and lower_bound(g1, g2) < cap:
                value = min(known[(i, j)], cap) if (i, j) in known else UNKNOWN
                out.append((i, j, value, False))
                continue
            value, settled = ged(g1, g2, cap, known.get((i, j)))
            out.append((i, j, value, settled))
    return out


# The matrix entry of a pair left unestimated (``pairwise(unestimated=...)``): training leaves it out.
UNKNOWN = -1
# In the matrix of values reused from earlier matrices (_reused_pairs): a pair none of them has.
NOT_CACHED = -2
# Stored with each matrix; a change to the estimator (ged, estimate, refine) must raise it, so that
# no pair it estimated the old way is reused.
ESTIMATE_VERSION = 1


def pairwise(
    graphs: list[GedGraph],
    cap: int = DEFAULT_CAP,
    known: dict[tuple[int, int], int] | None = None,
    workers: int | None = None,
    cache_dir: str | Path | None = None,
    progress=None,
    unestimated: frozenset[int] = frozenset(),
) -> tuple[np.ndarray, dict]:
    """Symmetric matrix of capped GEDs and stats; cached in ``cache_dir`` by the graphs' digests.

    ``unestimated``: graphs whose pairs among themselves are not estimated (too slow: a pair of
    transformer graphs of 150 to 400 nodes takes about 0.7 s, and a zoo has 10^5 of them). Such a
    pair gets its known edit count, the cap where the lower bound reaches it, 0 for equal graphs,
    and else UNKNOWN. Their pairs with every other graph are estimated as usual.
    """
    known = {(min(i, j), max(i, j)): v for (i, j), v in (known or {}).items()}
    unestimated = frozenset(unestimated)
    keyed = [LABELS, [g.digest for g in graphs], cap, sorted(known.items())]
    if unestimated:  # (matrices cached before there was this option keep their key)
        keyed.append(sorted(unestimated))
    key = hashlib.sha256(json.dumps(keyed).encode()).hexdigest()
    cache = Path(cache_dir) / f"ged-{key[:24]}.npz" if cache_dir else None
    if cache is not None and cache.exists():
        stored = np.load(cache)
        return stored["matrix"], {"pairs": int(stored["pairs"]), "settled_by_bound": int(stored["settled"]),
                                  "unknown": int((stored["matrix"] == UNKNOWN).sum() // 2), "cached": True}
    n = len(graphs)
    matrix = np.zeros((n, n), dtype=np.int32)
    reused = _reused_pairs(Path(cache_dir), graphs, cap, known, unestimated) if cache_dir else None
    workers = workers or os.cpu_count() or 1
    # Interleave rows so every task has a similar share of long and short rows.
    tasks = [(list(range(start, n, 4 * workers)), cap, known, unestimated) for start in range(4 * workers)]
    settled = pairs = 0
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(graphs, reused)) as pool:
        for done, results in enumerate(pool.map(_rows, tasks), 1):
            for i, j, value, by_bound in results:
                matrix[i, j] = matrix[j, i] = value
                settled += by_bound
                pairs += 1
            if progress:
                progress(done, len(tasks))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(cache.name + ".tmp.npz")
        np.savez_compressed(tmp, matrix=matrix, pairs=pairs, settled=settled, labels=LABELS, cap=cap,
                            estimate_version=ESTIMATE_VERSION, digests=np.array([g.digest for g in graphs]),
                            known=np.array([(i, j, v) for (i, j), v in sorted(known.items())], dtype=np.int64),
                            unestimated=np.array(sorted(unestimated), dtype=np.int64))
        tmp.replace(cache)
    reused_count = 0 if reused is None else int((reused[np.triu_indices(n, 1)] != NOT_CACHED).sum())
    return matrix, {"pairs": pairs, "settled_by_bound": settled, "unknown": int((matrix == UNKNOWN).sum() // 2),
                    "cached": False, "reused": reused_count}


def _reused_pairs(cache_dir: Path, graphs: list[GedGraph], cap: int, known: dict[tuple[int, int], int],
                  unestimated: frozenset[int]) -> np.ndarray | None:
    """[n, n] values of pairs an earlier matrix in ``cache_dir`` already has, NOT_CACHED elsewhere.

    What makes a zoo's GED incremental: adding models to a built zoo estimates only the pairs that
    involve a new graph. A pair is reused when an earlier matrix of the same labels, cap and
    estimator holds both graphs (by digest) with the same known edit count (or none), was or was
    not estimated as this call would (``unestimated`` on both sides or not), and has a value, not
    UNKNOWN. The newest such matrix wins. A file that cannot be read whole (an interrupted write,
    a matrix written before matrices recorded their graphs) is not used."""
    reused = None
    for path in sorted(_matrix_files(cache_dir), key=lambda item: item[0], reverse=True):
        values = _reusable_values(path[1], graphs, cap, known, unestimated)
        if values is not None:
            reused = values if reused is None else np.where(reused == NOT_CACHED, values, reused)
    return reused


def _matrix_files(cache_dir: Path) -> list[tuple[float, Path]]:
    files = []
    for path in cache_dir.glob("ged-*.npz"):
        if path.name.endswith(".tmp.npz"):
            continue
        try:
            files.append((path.stat().st_mtime, path))
        except OSError:  # removed meanwhile by another build
            continue
    return files


def _reusable_values(path: Path, graphs: list[GedGraph], cap: int, known: dict[tuple[int, int], int],
                     unestimated: frozenset[int]) -> np.ndarray | None:
    """The reusable pair values of one cached matrix (see _reused_pairs), or None when it has none."""
    try:
        with np.load(path) as stored:
            if ("digests" not in stored or str(stored["labels"]) != LABELS or int(stored["cap"]) != cap
                    or int(stored["estimate_version"]) != ESTIMATE_VERSION):
                return None
            old_matrix, old_digests = stored["matrix"], [str(digest) for digest in stored["digests"]]
            old_known, old_unestimated = stored["known"].reshape(-1, 3), set(stored["unestimated"].tolist())
        if old_matrix.shape != (len(old_digests), len(old_digests)):
            return None
    except Exception:  # a damaged or foreign file: its pairs are estimated again, not trusted
        return None
    n = len(graphs)
    position = {digest: index for index, digest in enumerate(old_digests)}
    old_index = np.array([position.get(g.digest, -1) for g in graphs])
    here = np.flatnonzero(old_index >= 0)
    if here.size < 2:
        return None
    values = np.full((n, n), NOT_CACHED, dtype=np.int32)
    values[np.ix_(here, here)] = old_matrix[np.ix_(old_index[here], old_index[here])]
    values[values == UNKNOWN] = NOT_CACHED
    # Pairs among unestimated graphs get another kind of value: reused only between like pairs.
    new_flag = np.isin(np.arange(n), sorted(unestimated))
    old_flag = np.isin(old_index, sorted(old_unestimated)) & (old_index >= 0)
    values[np.outer(new_flag, new_flag) != np.outer(old_flag, old_flag)] = NOT_CACHED
    old_edits = {(int(i), int(j)): int(v) for i, j, v in old_known}
    old_edits.update({(j, i): v for (i, j), v in list(old_edits.items())})
    for (i, j), edits in known.items():  # a known edit count bounds the estimate: it must be the same
        if old_edits.get((int(old_index[i]), int(old_index[j]))) != edits:
            values[i, j] = values[j, i] = NOT_CACHED
    new_of_old: dict[int, list[int]] = {}
    for index, old in enumerate(old_index):
        new_of_old.setdefault(int(old), []).append(index)
    for (a, b), edits in old_edits.items():
        for i in new_of_old.get(a, ()):
            for j in new_of_old.get(b, ()):
                if known.get((min(i, j), max(i, j))) != edits:
                    values[i, j] = values[j, i] = NOT_CACHED
    return values
