"""`hnn eval`: train (or compute) each method's codes, retrieve by Hamming distance, report metrics.

docs/evaluation.md defines the protocol. In short, for each graph kind (raw,
merged), bit count, method and seed: codes for every graph of the dataset; the
test split's graphs are the queries; the database is the training split
(``paper`` split) or every other graph (held-out splits, so that a held-out
model's own variants can be found); metrics at k = 10 with two relevance levels,
*family* and *source* (the query's own model and its augmentations).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from hnn.errors import UsageError
from hnn.hasher.metrics import hamming_matrix, retrieval_metrics
from hnn.hasher.train import DEFAULT_CONFIG, TrainConfig, source_of

K = 10
METHODS: dict[str, TrainConfig | None] = {
    "hnn": DEFAULT_CONFIG,
    "hnn-noclass": replace(DEFAULT_CONFIG, beta=0.0, source_beta=0.0),  # no classification head at all
    "hnn-paper": TrainConfig(topology="embedding"),
    "ghashing": replace(DEFAULT_CONFIG, beta=0.0, same_source_shrink=1.0, source_margin=0.0, source_beta=0.0),
    "wl-simhash": None,
    "hnn+wl": DEFAULT_CONFIG,  # half the bits from HNN-Net, half from WL-SimHash, concatenated
    "hnn-size": replace(DEFAULT_CONFIG, size_features=True),  # graph size on every node (not in the paper)
    # `hnn` codes ranked as `hnn index query` ranks them: the query's topology first, ties of the code
    # ordered by the structure code.
    "hnn-index": DEFAULT_CONFIG,
}


def structures(method: str, graphs: list) -> list | None:
    """The structures (hnn.hasher.structure) that ``method``'s ranking uses beside the code, or None."""
    if method != "hnn-index":
        return None
    from hnn.hasher.structure import structure_of

    return [structure_of(graph) for graph in graphs]


def method_codes(method: str, data_dir: Path, kind: str, bits: int, split: str, seed: int, epochs: int,
                 records: list[dict], graphs: list, cache: dict | None = None) -> np.ndarray:
    """Bool codes [graphs, bits] of one method; ``cache`` keeps trained codes that several methods share."""
    if method not in METHODS:
        raise UsageError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    if method == "hnn-index":
        method = "hnn"
    key = (method, kind, bits, seed)
    if cache is not None and key in cache:
        return cache[key]
    codes = _method_codes(method, data_dir, kind, bits, split, seed, epochs, records, graphs, cache)
    if cache is not None:
        cache[key] = codes
    return codes


def _method_codes(method: str, data_dir: Path, kind: str, bits: int, split: str, seed: int, epochs: int,
                  records: list[dict], graphs: list, cache: dict | None) -> np.ndarray:
    if method == "hnn+wl":
        learned = method_codes("hnn", data_dir, kind, bits - bits // 2, split, seed, epochs, records, graphs, cache)
        return np.concatenate([learned, method_codes("wl-simhash", data_dir, kind, bits // 2, split, seed, epochs,
                                                     records, graphs, cache)], axis=1)
    if METHODS[method] is None:
        from hnn.hasher.baselines import wl_simhash

        return np.array([wl_simhash(graph, bits) for graph in graphs], dtype=bool)
    from hnn.hasher.train import embed, train

    config = replace(METHODS[method], bits=bits, kind=kind, split=split, seed=seed, epochs=epochs, device="cpu")
    result = train(data_dir, config)
    return embed(result["model"], result["data"].tensors, "cpu")["code"] > 0.5


def score(codes: np.ndarray, records: list[dict], split_names: dict, split: str,
          structures: list | None = None) -> dict:
    """Family- and source-level metrics, PR points, distance histograms, held-out variant shares.

    With ``structures`` (one hnn.hasher.structure.Structure per graph), the ranking is the
    index's (:func:`hnn.hasher.structure.ranking_matrix`); the histograms stay those of the code
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
        from hnn.hasher.structure import ranking_matrix

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
    from hnn.hasher.dataset import dataset_graphs
    from hnn.ingest.splits import split as make_split
    from hnn.ingest.zoo import load_manifest

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
        from hnn.hasher.api import code_to_hex

        results["runs"].append({"kind": kind, "bits": bits, "method": method, "seed": seed,
                                "seconds": round(time.perf_counter() - run_started, 1), **scored,
                                "codes": {r["name"]: code_to_hex(c) for r, c in zip(records, codes)}})
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


def write_report(results: dict, folder: str | Path) -> list[Path]:
    """results.json, results.md and PNG plots into ``folder``; returns the files written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=1))
    lines = [f"# hnn eval: split `{results['split']}`, k = {results['k']}, {results['seeds']} seed(s), "
             f"{results['epochs']} epochs, {results['seconds']} s", "",
             "| kind | bits | method | family P@10 | family R@10 | family F1@10 | family R-prec | family mAP "
             "| family top-1 | source P@10 | source R-prec | source mAP | source top-1 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in results["summary"]:
        def cell(name):
            value, spread = row[name], row[f"{name}_std"]
            if value is None:
                return "-"
            return f"{value:.3f}" + (f" ± {spread:.3f}" if results["seeds"] > 1 else "")
        lines.append(f"| {row['kind']} | {row['bits']} | {row['method']} | {cell('family_precision')} | "
                     f"{cell('family_recall')} | {cell('family_f1')} | {cell('family_r_precision')} | "
                     f"{cell('family_map')} | {cell('family_top1')} | {cell('source_precision')} | "
                     f"{cell('source_r_precision')} | {cell('source_map')} | {cell('source_top1')} |")
    held = [run for run in results["runs"] if "held_out_own_variants_in_top10" in run]
    if held:
        lines += ["", "Share of a held-out model's own variants among its top-10 (first seed, merged if run):", ""]
        for run in held:
            if run["seed"] == 0:
                shares = ", ".join(f"{m} {v:.2f}" for m, v in run["held_out_own_variants_in_top10"].items())
                lines.append(f"- {run['kind']} {run['bits']} bits {run['method']}: {shares}")
    (folder / "results.md").write_text("\n".join(lines) + "\n")
    return [folder / "results.json", folder / "results.md", *plot(results, folder)]


def plot(results: dict, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    rows = results["summary"]
    kinds = sorted({row["kind"] for row in rows})
    methods = sorted({row["method"] for row in rows})
    figure, axes = plt.subplots(len(kinds), 2, figsize=(10, 4 * len(kinds)), squeeze=False)
    for r, kind in enumerate(kinds):
        for c, metric in enumerate(("family_f1", "source_precision")):
            axis = axes[r][c]
            for method in methods:
                points = sorted((row["bits"], row[metric]) for row in rows
                                if row["kind"] == kind and row["method"] == method and row[metric] is not None)
                if points:
                    axis.plot(*zip(*points), marker="o", label=method)
            axis.set_title(f"{kind}: {metric.replace('_', ' ')} at k={results['k']}")
            axis.set_xlabel("bits")
            axis.set_ylim(0, 1.02)
            axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(folder / "metrics_vs_bits.png", dpi=90)
    written.append(folder / "metrics_vs_bits.png")

    top_bits = max(row["bits"] for row in rows)
    kind = "merged" if "merged" in kinds else kinds[0]
    chosen = [run for run in results["runs"] if run["bits"] == top_bits and run["kind"] == kind and run["seed"] == 0]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for c, level in enumerate(("family", "source")):
        for run in chosen:
            curve = [(p.get("recall"), p.get("precision")) for p in run["pr_curve"][level] if "recall" in p]
            if curve:
                axes[c].plot(*zip(*curve), marker=".", label=run["method"])
        axes[c].set_title(f"{kind}, {top_bits} bits: {level} precision-recall (k = 1..50)")
        axes[c].set_xlabel("recall")
        axes[c].set_ylabel("precision")
        axes[c].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(folder / "precision_recall.png", dpi=90)
    written.append(folder / "precision_recall.png")

    hnn_run = next((run for run in chosen if run["method"] == "hnn"), chosen[0] if chosen else None)
    if hnn_run:
        figure, axis = plt.subplots(figsize=(6, 4))
        for name, counts in hnn_run["histogram"].items():
            counts = np.array(counts, dtype=float)
            axis.bar(np.arange(len(counts)), counts / max(counts.sum(), 1), alpha=0.5, label=name.replace("_", " "))
        axis.set_title(f"{hnn_run['method']}, {kind}, {top_bits} bits: Hamming distance, query to database")
        axis.set_xlabel("Hamming distance")
        axis.set_ylabel("share of pairs")
        axis.legend()
        figure.tight_layout()
        figure.savefig(folder / "hamming_histogram.png", dpi=90)
        written.append(folder / "hamming_histogram.png")
    plt.close("all")
    return written
