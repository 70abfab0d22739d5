"""Family retrieval among transformer models: the shipped code against the non-learned baselines.

    hnn zoo build --preset transformers --augmentations 0 --rules agnostic -o data/transformers \
        [--reuse-raw data/training]
    .venv/bin/python benchmarks/transformer_retrieval.py --zoo data/transformers [--bits 64] [--checkpoint C] \
        [--queries data/transformers-unseen --queries data/transformers-default-ratios]

Each model of the zoo is a query against all the others (leave one out): family top-1 is the
share of the nearest others (by Hamming distance; ties credited as a random pick among them)
that are of the query's family. Methods, in one run on the same graphs: the checkpoint's
perceptual code (the rules it names applied to the raw IR, as ``hnn hash`` does), WL-SimHash of
the same graph at the same bit count, the structure code (hnn.hasher.structure), and the op
pattern (hnn.hasher.structure.op_pattern: which op neighbourhoods a graph has, not how often,
nearest by Jaccard similarity), the two together (hnn.hasher.structure.family_distance_matrix),
and that sum as an index answers it ("index family": the Jaccard similarity estimated from the
MinHash signatures an index stores, hnn.hasher.structure.pattern_signature).

Rows (hnn.zoo.transformer_presets says what the shipped checkpoints train on): *unseen sizes*,
the held-out size of each training family; *unseen families*, every size of the held-out
families; *trained on*, the training sizes of the training families; *all*. Each query's database
is every other model of the zoo, whatever its row. ``--held-out FAMILY,...`` scores only
queries of those families instead. ``--queries DIR`` (repeatable) adds a row of another zoo's
models, each a query against both zoos' other models: zoo/lists/transformers-unseen.txt (16
families the zoo lacks, 3 sizes each) and zoo/lists/transformers-default-ratios.txt (the zoo's
families at their default configs' feed-forward and key/value ratios) are such zoos. A query zoo
of the zoo's families only is also scored against the zoo alone ("... vs zoo").

"(ops)" columns: the op pattern of op-only features (hnn 0.5.1 and 0.5.2, and indexes they
wrote: hnn.hasher.structure.PATTERN_KINDS); the others: with relative sizes (hnn.hasher.relative_sizes).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def family_top1(distances: np.ndarray, families: list[str], queries: list[int], among: int | None = None) -> float:
    """Mean over queries of the share of the nearest others (ties included) of the query's family;
    ``among``: only the first so many models are the database (default: all)."""
    scores = []
    for query in queries:
        row = distances[query].astype(float)
        row[query] = np.inf
        if among is not None:
            row[among:] = np.inf
        nearest = np.flatnonzero(row == row.min())
        scores.append(np.mean([families[other] == families[query] for other in nearest]))
    return float(np.mean(scores))


def main() -> None:
    from hnn.hasher.bits import hamming_matrix
    from hnn.hasher.runtime import hash_graphs, load, to_hashable_graph
    from hnn.hasher.structure import (
        PATTERN_KIND,
        estimated_pattern_similarity,
        family_distance_matrix,
        op_pattern,
        pattern_distance_matrix,
        pattern_signature,
        structure_of,
        wl_simhash,
    )
    from hnn.zoo.build import load_dataset_graph, load_manifest

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", type=Path, required=True)
    parser.add_argument("--queries", type=Path, action="append", default=[],
                        help="another zoo whose every model is a query (its own row), against both zoos")
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument("--checkpoint")
    parser.add_argument("--held-out", default="", help="families to score (default: every family)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    models, extra_rows = [], {}
    for zoo in [args.zoo] + args.queries:
        zoo_models = [dict(model, zoo=zoo) for model in load_manifest(zoo)["models"]]
        if zoo != args.zoo:
            extra_rows[f"{zoo.name}"] = list(range(len(models), len(models) + len(zoo_models)))
        models += zoo_models
    raw = [load_dataset_graph(model["zoo"], model["files"]["raw"]) for model in models]
    families = [model["family"] for model in models]
    checkpoint = load(args.checkpoint, args.bits)
    merged = [to_hashable_graph(graph, checkpoint) for graph in raw]
    codes = {
        "hnn code": hash_graphs(merged, checkpoint),
        f"WL-SimHash {args.bits}": np.array([wl_simhash(graph, args.bits) for graph in merged], dtype=bool),
        "structure code": np.array([structure_of(graph).code for graph in merged], dtype=bool),
    }
    methods = {name: hamming_matrix(values, values) for name, values in codes.items()}
    for kind, suffix in (("ops", " (ops)"), (PATTERN_KIND, "")):
        patterns = [op_pattern(graph, kind=kind) for graph in merged]
        methods["op pattern" + suffix] = pattern_distance_matrix(patterns, patterns)
        methods["code + pattern" + suffix] = family_distance_matrix(methods["hnn code"], checkpoint.bits,
                                                                    methods["op pattern" + suffix], kind=kind)
        # What an index answers (hnn check's "family"): the same sum, the pattern's Jaccard estimated from
        # the signatures its entries store. "(ops)": the op-only patterns of hnn 0.5.1 and 0.5.2.
        signatures = np.array([pattern_signature(pattern, kind) for pattern in patterns])
        estimated = 1 - np.array([estimated_pattern_similarity(signature, signatures, kind)
                                  for signature in signatures])
        methods["index family" + suffix] = family_distance_matrix(methods["hnn code"], checkpoint.bits, estimated,
                                                                  kind=kind)
    zoo_models = len(models) - sum(len(indices) for indices in extra_rows.values())
    rows = query_rows([model["name"] for model in models[:zoo_models]], families[:zoo_models], args.held_out)
    rows.update(extra_rows)
    # A query zoo of the zoo's own families is scored a second time against the zoo alone: without its
    # other models, which share its ratios, so that only other configurations of its family are right.
    zoo_alone = {f"{row} vs zoo": queries for row, queries in extra_rows.items()
                 if {families[i] for i in queries} <= set(families[:zoo_models])}
    rows.update(zoo_alone)
    report = {"models": len(models), "families": len(set(families)), "checkpoint": args.checkpoint or "shipped",
              "rows": {row: {"queries": len(queries),
                             "family_top1": {name: round(family_top1(distances, families, queries,
                                                                     None if row in extra_rows else zoo_models), 3)
                                             for name, distances in methods.items()}}
                       for row, queries in rows.items() if queries}}
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(f"{report['models']} models, {report['families']} families; family top-1, leave one out")
    width = max(len(name) for name in methods)
    print(f"{'queries':>28}  " + "  ".join(f"{name:>{width}}" for name in methods))
    for row, result in report["rows"].items():
        label = f"{row} ({result['queries']})"
        print(f"{label:>28}  " + "  ".join(f"{value:>{width}.3f}" for value in result["family_top1"].values()))


def query_rows(names: list[str], families: list[str], held_out: str = "") -> dict[str, list[int]]:
    """Query indices per row: unseen sizes, unseen families, trained on, all (or ``held_out`` families)."""
    from hnn.zoo.transformer_presets import HELD_OUT_SIZES, held_out_families, model_name

    if held_out:
        chosen = set(held_out.split(","))
        return {"chosen families": [i for i, family in enumerate(families) if family in chosen]}
    unseen_families = set(held_out_families())
    unseen_size = {model_name(family, layers, width) for family in set(families) for layers, width, _ in HELD_OUT_SIZES}
    rows = {"unseen sizes": [], "unseen families": [], "trained on": []}
    for i, (name, family) in enumerate(zip(names, families)):
        if family in unseen_families:
            rows["unseen families"].append(i)
        elif name in unseen_size:
            rows["unseen sizes"].append(i)
        else:
            rows["trained on"].append(i)
    rows["all"] = list(range(len(names)))
    return rows


if __name__ == "__main__":
    main()
