"""`hnn eval`: train (or compute) each method's codes, retrieve by Hamming distance, report metrics.

docs/evaluation.md defines the protocol. In short, for each graph kind (raw,
merged), bit count, method and seed: codes for every graph of the dataset; the
test split's graphs are the queries; the database is the training split
(``paper`` split) or every other graph (held-out splits, so that a held-out
model's own variants can be found); metrics at k = 10 with two relevance levels,
*family* and *source* (the query's own model and its augmentations).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from hnn.errors import UsageError
from hnn.evaluation.methods import METHODS, method_codes, structures
from hnn.hasher.bits import hamming_matrix, to_hex
from hnn.hasher.training.metrics import retrieval_metrics
from hnn.zoo.dataset import source_of

K = 10


def score(codes: np.ndarray, records: list[dict], split_names: dict, split: str,
          structures: list | None = None) -> dict:
    """Family- and source-level metrics, PR points, distance histograms, held-out variant shares.

    With ``structures`` (one hnn.hasher.structure.Structure per graph), the ranking is the
    index's (:func:`hnn.index.ranking.ranking_matrix`); the histograms stay those of the code
    distance.
    """
    position = {record["name"]: i for i, record in enumerate(records)}
    queries = np.array([position[name] for name in split_names["test"]])
    if split == "paper":
        database = np.array([position[name] for name in split_names["train"]])
    else:
        database = np.arange(len(records))
    code_distances = hamming_matrix(codes[queries], codes[database]).astype(np.int64)
    if split != "paper":  # a query is not its own answer
        code_distances[queries[:, None] == database[None, :]] = codes.shape[1] + 1
    distances = code_distances
    if structures is not None:
        from hnn.index.ranking import ranking_matrix

        distances = ranking_matrix(code_distances, [structures[i] for i in queries], [structures[i] for i in database])
        if split != "paper":  # nor is it its own topology
            distances[queries[:, None] == database[None, :]] = np.iinfo(np.int64).max
    families = np.array([r["family"] for r in records])
    sources = np.array([source_of(r) for r in records])
    self_match = queries[:, None] == database[None, :]
    levels = {
        "family": (families[queries][:, None] == families[database][None, :]) & ~self_match,
        "source": (sources[queries][:, None] == sources[database][None, :]) & ~self_match,
    }
    out = {level: retrieval_metrics(distances, relevant, K) for level, relevant in levels.items()}
    out["pr_curve"] = {level: [retrieval_metrics(distances, relevant, k) for k in (1, 2, 5, 10, 20, 50)]
                       for level, relevant in levels.items()}
    valid = ~self_match
    out["histogram"] = {
        "same_family": np.bincount(code_distances[levels["family"]], minlength=codes.shape[1] + 2).tolist(),
        "different_family": np.bincount(code_distances[valid & ~levels["family"]],
                                        minlength=codes.shape[1] + 2).tolist(),
    }
    if split != "paper":
        order = np.argsort(distances, axis=1, kind="stable")[:, :K]
        shares: dict[str, list[float]] = {}
        for row, query in enumerate(queries):
            own = sources[database[order[row]]] == sources[query]
            shares.setdefault(str(sources[query]), []).append(float(own.mean()))
        out["held_out_own_variants_in_top10"] = {model: float(np.mean(v)) for model, v in sorted(shares.items())}
    return out


def evaluate(data_dir: str | Path, split: str = "paper", bits_list=(16, 32, 64), methods=tuple(METHODS),
             kinds=("merged", "raw"), seeds: int = 1, epochs: int = 60,
             progress: Callable | None = None) -> dict:
    from hnn.zoo.build import load_manifest
    from hnn.zoo.dataset import dataset_graphs
    from hnn.zoo.splits import split as make_split

    data_dir = Path(data_dir)
    manifest = load_manifest(data_dir)
    split_names = make_split(manifest, split)
    if not split_names["test"]:
        raise UsageError(f"{data_dir}: the {split} split leaves no test graphs")
    runs = [(kind, bits, method, seed) for kind in kinds for bits in bits_list for method in methods
            for seed in range(seeds)]
    results: dict = {"data": str(data_dir), "split": split, "k": K, "seeds": seeds, "epochs": epochs, "runs": []}
    started = time.perf_counter()
    graphs_by_kind = {kind: dataset_graphs(data_dir, kind) for kind in kinds}
    trained: dict = {}  # codes by (method, kind, bits, seed): hnn-index ranks the codes hnn trained
    for done, (kind, bits, method, seed) in enumerate(runs):
        if progress:
            progress(done, len(runs), f"{kind} {bits} bits {method} seed {seed}")
        records, graphs = graphs_by_kind[kind]
        run_started = time.perf_counter()
        codes = method_codes(method, data_dir, kind, bits, split, seed, epochs, records, graphs, trained)
        scored = score(codes, records, split_names, split, structures(method, graphs))
        results["runs"].append({"kind": kind, "bits": bits, "method": method, "seed": seed,
                                "seconds": round(time.perf_counter() - run_started, 1), **scored,
                                "codes": {r["name"]: to_hex(c) for r, c in zip(records, codes)}})
    if progress:
        progress(len(runs), len(runs), "")
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["summary"] = summarise(results["runs"])
    return results


def summarise(runs: list[dict]) -> list[dict]:
    """Mean and standard deviation over seeds of each (kind, bits, method)."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        groups.setdefault((run["kind"], run["bits"], run["method"]), []).append(run)
    rows = []
    for (kind, bits, method), group in groups.items():
        row = {"kind": kind, "bits": bits, "method": method}
        for level in ("family", "source"):
            for metric in ("precision", "recall", "f1", "map", "top1", "r_precision"):
                values = [run[level][metric] for run in group if metric in run[level]]
                row[f"{level}_{metric}"] = float(np.mean(values)) if values else None
                row[f"{level}_{metric}_std"] = float(np.std(values)) if values else None
        rows.append(row)
    return rows
