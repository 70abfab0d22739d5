"""Generalization: the learned code against the non-learned baselines, on families a checkpoint never saw.

    .venv/bin/python benchmarks/generalization.py --work data/generalization \
        [--torchvision data/default] [--keras-exports data/keras_exports] [--checkpoint C ...] [--bits 64] \
        [--rows keras,head,dynamo,resolution,widths] [--also-sizes resolution] [--suite main|held-out] [--json]

A model-hosting platform holds a database of models; uploads are looked up in it. This benchmark
builds such a database, the torchvision models the shipped checkpoints train on
(hasher/checkpoints/training-models.txt) and TIMM_DATABASE, timm architectures of families
torchvision lacks, and these queries:

- keras: Keras applications exported by Keras itself (``model.export(format="onnx")``) under the
  TensorFlow and torch backends (benchmarks/keras_backends.py's exports); right: any database
  model of the query's family;
- head: a sibling with another classifier head (10 classes) and its own weights; right: the exact
  model;
- pirate variants of a model, right: the exact model. dynamo: the other torch exporter;
  resolution: exported at 256x256 instead of 224 (a model whose input size is built in is made
  with ``img_size=256``, as a pirate would); widths: a width variant that timm names
  (ghostnet_050 for ghostnet_100), whose original is the one width the database holds.

``--suite held-out`` swaps in other queries (TIMM_HELD_OUT and the lists beside it: 13 timm models of
families none of the rest has, which join the database, 11 other width variants, 8 other torchvision
models, 8 other Keras applications), kept apart from every choice of setting: what the main suite's
figures were tuned to, this one measures.

Each query is scored by top-1 with ties credited as a random pick (a query whose right answer is
one of k equally near entries scores 1/k), by four rankings on the same merged graphs:

- the learned code of each ``--checkpoint`` (default: the shipped one of ``--bits``), Hamming
  distance alone;
- the index ranking built on it (what `hnn index query` ranks: the query's topology first,
  nearest in scale, then code, then structure distance), weight marks aside: this measures the
  perceptual description, not the weight fingerprint (benchmarks/provenance.py measures that);
- WL-SimHash at the code's bit count (the evaluation's non-learned baseline), and the same with node
  labels of op and relative size (hnn.hasher.structure.relative_wl_simhash: what a ``--wl-bins``
  checkpoint's WL branch reads; resolution and uniform width changes leave it alone);
- the structure code (hnn.hasher.structure: 128 bits of WL-SimHash, topology then sizes);
- the op pattern (hnn.hasher.structure.op_pattern: the set of WL features of ops and relative sizes, nearest by
  Jaccard similarity): a family description, which siblings share, so weak on exact-model rows;
- on the keras row, `hnn check`'s family answer of each checkpoint (hnn.index.store.Index.family:
  code and op-pattern signature together).

``--also-sizes S`` scores each checkpoint a second time with its size setting replaced by S
(hnn.hasher.features.SIZES; in memory, the file untouched): the encoding's effect on the same
weights, without a second training's randomness.

For each checkpoint the run also says where its code puts each pirate and sibling query's right
answer: *alone* at the nearest distance, *tied* there with other database models, or *farther*
(the code moved), and how many distinct codes the database has. A tie is crowding, a code
that cannot tell two models apart; a move is a code that is not invariant to the change.

Each row is reported twice: over queries whose family the checkpoint trained on (its
``families``) and over those none of the run's checkpoints saw (so every checkpoint is scored on the
same queries; score one alone for its own unseen set). Train a checkpoint with
families held out (``hnn train --split families=densenet,resnet``) to make the Keras rows unseen.

Everything converted is kept under ``--work`` (one IR file a model and variant, ``.failed`` for
what did not convert) and reused: a second run scores in seconds. Empty it when conversion or
canonicalization changes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

# timm architectures of families torchvision lacks (and one it has: mobilenet v1): name -> family.
TIMM_DATABASE = {
    "ghostnet_100": "ghostnet", "ghostnetv2_100": "ghostnetv2", "repghostnet_100": "repghostnet",
    "rexnet_100": "rexnet", "lcnet_100": "lcnet", "mobilenetv1_100": "mobilenet", "fbnetc_100": "fbnet",
    "spnasnet_100": "spnasnet", "mobilevit_xs": "mobilevit", "pit_ti_224": "pit", "repvgg_a0": "repvgg",
    "dla34": "dla", "cspresnet50": "cspnet", "dpn68": "dpn", "hrnet_w18_small": "hrnet",
    "res2net50_26w_4s": "res2net", "resnest14d": "resnest", "selecsls42b": "selecsls",
    "ese_vovnet19b_dw": "vovnet", "legacy_xception": "xception", "inception_resnet_v2": "inception_resnet",
    "levit_128s": "levit", "poolformer_s12": "poolformer", "xcit_nano_12_p16_224": "xcit",
    "coat_lite_tiny": "coat", "convit_tiny": "convit", "gernet_s": "gernet", "edgenext_xx_small": "edgenext",
    "efficientvit_b0": "efficientvit", "fastvit_t8": "fastvit",
}
# Width variants timm names -> the width the database holds (one topology digest per pair).
TIMM_WIDTHS = {
    "ghostnet_050": "ghostnet_100", "ghostnet_130": "ghostnet_100", "ghostnetv2_130": "ghostnetv2_100",
    "repghostnet_050": "repghostnet_100", "repghostnet_150": "repghostnet_100", "rexnet_130": "rexnet_100",
    "rexnet_150": "rexnet_100", "lcnet_050": "lcnet_100", "lcnet_075": "lcnet_100",
    "mobilenetv1_125": "mobilenetv1_100", "mobilevit_s": "mobilevit_xs", "pit_xs_224": "pit_ti_224",
    "repvgg_a1": "repvgg_a0",
}
# torchvision models whose pirate variants and head swaps are made too (families the shipped
# checkpoints train on: the seen rows).
TORCHVISION_VARIANTS = ("resnet50", "densenet121", "efficientnet_b0", "mobilenet_v3_large", "convnext_tiny",
                        "regnet_y_400mf", "shufflenet_v2_x1_0", "vgg11")
# Keras applications: keras_backends' defaults, and three of families only timm has (or v1 of one).
KERAS_EXTRA = ("Xception", "InceptionResNetV2", "MobileNet")

# The held-out suite (``--suite held-out``): chosen after the main suite's figures had been used to
# choose settings (the WL branch's initial spread and bias-free labels, hnn.hasher.features.wl_vector),
# and scored once per configuration, never to choose. Its timm models are of families that neither the
# main suite, torchvision nor zoo/lists/timm-wide.txt has; they join the main database (a larger,
# more crowded one); its queries are of these models, other torchvision models, other widths and
# Keras applications the main suite does not export.
TIMM_HELD_OUT = {
    "skresnet18": "sknet", "nf_resnet26": "nfnet", "halonet26t": "halonet", "lambda_resnet26t": "lambdanet",
    "eca_resnet33ts": "byobnet", "gcresnet33ts": "gcnet", "bat_resnext26ts": "bat", "convmixer_768_32": "convmixer",
    "mvitv2_tiny": "mvit", "swiftformer_xs": "swiftformer", "ghostnetv3_100": "ghostnetv3",
    "vitamin_small_224": "vitamin", "tresnet_m": "tresnet",
}
TIMM_HELD_OUT_WIDTHS = {
    "ghostnetv3_050": "ghostnetv3_100", "ghostnetv3_130": "ghostnetv3_100", "repghostnet_080": "repghostnet_100",
    "repghostnet_130": "repghostnet_100", "rexnet_200": "rexnet_100", "mobilevit_xxs": "mobilevit_xs",
    "pit_s_224": "pit_ti_224", "repvgg_a2": "repvgg_a0", "lcnet_150": "lcnet_100", "lcnet_035": "lcnet_100",
    "ghostnetv2_160": "ghostnetv2_100",
}
TORCHVISION_HELD_OUT = ("resnet18", "densenet169", "efficientnet_b3", "mobilenet_v2", "mnasnet1_0", "googlenet",
                        "regnet_x_400mf", "squeezenet1_1")
KERAS_HELD_OUT = ("ResNet152", "ResNet101V2", "ResNet152V2", "VGG19", "EfficientNetB2", "EfficientNetB3",
                  "EfficientNetV2B1", "EfficientNetV2B2")


class Suite(NamedTuple):
    """What one run converts: timm models added to the torchvision database, and the queries."""

    timm_database: dict  # name -> family
    timm_queried: tuple  # timm models of the database whose head swaps and pirate variants are queries
    widths: dict  # width variant -> the database model it was made from
    torchvision_variants: tuple
    keras_models: tuple


def suites() -> dict[str, Suite]:
    from keras_backends import DEFAULT_MODELS  # beside this script

    return {
        "main": Suite(TIMM_DATABASE, tuple(TIMM_DATABASE), TIMM_WIDTHS, TORCHVISION_VARIANTS,
                      (*DEFAULT_MODELS, *KERAS_EXTRA)),
        "held-out": Suite({**TIMM_DATABASE, **TIMM_HELD_OUT}, tuple(TIMM_HELD_OUT), TIMM_HELD_OUT_WIDTHS,
                          TORCHVISION_HELD_OUT, KERAS_HELD_OUT),
    }


KERAS_BACKENDS = ("tensorflow", "torch")
ROWS = ("keras", "head", "dynamo", "resolution", "widths")
PIRATE_ROWS = ("dynamo", "resolution", "widths")
RESOLUTION = 256
TRAINING_MODELS = Path(__file__).resolve().parents[1] / "hasher" / "checkpoints" / "training-models.txt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder that keeps every converted graph")
    parser.add_argument("--torchvision", type=Path, default=None,
                        help="a zoo dataset of the torchvision models (its raw IRs); default: export them")
    parser.add_argument("--keras-exports", type=Path, default=None,
                        help="folder of keras_backends' exports (default: WORK/keras)")
    parser.add_argument("--checkpoint", action="append", type=Path, default=None,
                        help="a checkpoint to score; repeat to compare several in one run")
    parser.add_argument("--bits", type=int, default=64, help="the shipped checkpoint's bits (without --checkpoint)")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of {', '.join(ROWS)}")
    parser.add_argument("--also-sizes", default=None,
                        help="also score each checkpoint with this size setting (absolute, resolution, relative)")
    parser.add_argument("--suite", default="main", choices=("main", "held-out"),
                        help="the models and queries: main, or held-out (never used to choose a setting)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    args = parser.parse_args()
    rows = args.rows.split(",")
    if set(rows) - set(ROWS):
        raise SystemExit(f"generalization: unknown rows {', '.join(sorted(set(rows) - set(ROWS)))}; "
                         f"choose from {', '.join(ROWS)}")

    from dataclasses import replace

    from hnn.errors import HnnError
    from hnn.hasher.features import SIZES
    from hnn.hasher.runtime import load

    if args.also_sizes is not None and args.also_sizes not in SIZES:
        raise SystemExit(f"generalization: unknown --also-sizes {args.also_sizes!r}; choose from {', '.join(SIZES)}")
    try:
        checkpoints = [load(path) for path in args.checkpoint] if args.checkpoint else [load(bits=args.bits)]
        suite = suites()[args.suite]
        database = database_graphs(args.work, args.torchvision, suite)
    except HnnError as exc:
        raise SystemExit(f"generalization: {exc}") from None
    queries = query_graphs(args.work, args.keras_exports or args.work / "keras", rows,
                           {name for name, _, _ in database}, {family for _, family, _ in database}, suite)
    labels = [str(path) for path in args.checkpoint] if args.checkpoint else [f"shipped {args.bits}-bit"]
    if args.also_sizes:
        resized = [replace(c, config={**c.config, "sizes": args.also_sizes}, _torch_models={}) for c in checkpoints]
        checkpoints, labels = checkpoints + resized, labels + [f"{label} as {args.also_sizes}" for label in labels]
    results = score(database, queries, checkpoints, labels)
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        print_tables(results)


# ---- the graphs: converted once, kept under --work ----------------------------------------------


class Cache:
    """One raw IR file per key under ``root``; a key that failed to convert keeps its error."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def get(self, key: str, convert):
        """The graph of ``key``, converted by ``convert()`` unless kept; None (reported) if it fails."""
        from hnn.ingest.ir import Graph

        path, failed = self.root / f"{key}.json", self.root / f"{key}.failed"
        if path.exists():
            return Graph.from_json_file(path)
        if failed.exists():
            return None
        started = time.monotonic()
        try:
            graph = convert()
        except Exception as exc:  # a model or variant a converter cannot take is reported, not fatal
            message = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            failed.write_text(message + "\n")
            print(f"  {key}: not converted: {message}", file=sys.stderr, flush=True)
            return None
        partial = path.with_suffix(".partial")
        graph.to_json_file(partial)
        partial.replace(path)
        print(f"  {key}: {len(graph.nodes)} nodes ({time.monotonic() - started:.1f} s)", file=sys.stderr, flush=True)
        return graph


def database_graphs(work: Path, torchvision_dataset: Path | None, suite: Suite) -> list[tuple[str, str, object]]:
    """(name, family, raw IR) of every database model: the torchvision training list, then the suite's timm ones."""
    cache = Cache(work / "ir")
    entries = _training_entries()
    if torchvision_dataset is not None:
        from cross_framework import originals  # beside this script

        by_name = {name: (name, family, graph) for name, family, graph in originals(torchvision_dataset)}
        missing = [entry.name for entry in entries if entry.name not in by_name]
        if missing:
            raise SystemExit(f"generalization: {torchvision_dataset} lacks {', '.join(missing[:5])}"
                             f"{' ...' if len(missing) > 5 else ''}")
        database = [by_name[entry.name] for entry in entries]
    else:
        print(f"converting the {len(entries)} torchvision models (once)...", file=sys.stderr, flush=True)
        database = [(entry.name, entry.family, cache.get(f"{entry.name}@original",
                                                        lambda e=entry: _export("torchvision", e.name)))
                    for entry in entries]
    database += [(name, family, cache.get(f"{name}@original", lambda n=name: _export("timm", n)))
                 for name, family in suite.timm_database.items()]
    return [entry for entry in database if entry[2] is not None]


def query_graphs(work: Path, keras_exports: Path, rows: list[str], names: set[str], families: set[str],
                 suite: Suite) -> dict[str, list]:
    """Row -> [(query name, family, raw IR, right answer)]: a family for keras, a database name otherwise.
    A query whose right answer is not in the database (its original did not convert) is left out."""
    cache = Cache(work / "ir")
    family_of = {**suite.timm_database, **{entry.name: entry.family for entry in _training_entries()}}
    sources = ([("torchvision", name) for name in suite.torchvision_variants]
               + [("timm", name) for name in suite.timm_queried])
    queries: dict[str, list] = {row: [] for row in rows}
    for row in rows:
        print(f"{row} queries...", file=sys.stderr, flush=True)
        if row == "keras":
            queries[row] = _keras_queries(cache, keras_exports, families, suite.keras_models)
            continue
        if row == "widths":
            pairs = [("timm", variant, original) for variant, original in suite.widths.items()]
        else:
            pairs = [(library, name, name) for library, name in sources]
        for library, name, original in pairs:
            if original not in names:
                print(f"  {name}[{row}]: left out: {original} is not in the database", file=sys.stderr, flush=True)
                continue
            graph = cache.get(f"{name}@{row}", lambda lib=library, n=name, r=row: _variant(lib, n, r))
            if graph is not None:
                queries[row].append((f"{name}[{row}]", family_of[original], graph, original))
    return queries


def _training_entries():
    from hnn.zoo.presets import list_file_preset

    return list_file_preset(TRAINING_MODELS)


def _keras_queries(cache: Cache, exports: Path, families: set[str], models: tuple) -> list:
    from keras_backends import applications, export  # beside this script

    from hnn.errors import HnnError
    from hnn.ingest.pipeline import ingest_safely

    family_of = dict(applications(KERAS_BACKENDS[0]))
    queries = []
    for backend in KERAS_BACKENDS:
        for name in models:
            if family_of.get(name) not in families:
                continue
            path = exports / backend / f"{name}.onnx"
            error = export(name, backend, path, timeout=900.0, retry=False)
            if error:
                print(f"  keras {name}[{backend}]: not exported: {error}", file=sys.stderr, flush=True)
                continue

            def convert(p=path):
                try:
                    return ingest_safely(str(p), simplify=False)  # as `hnn hash` reads an upload
                except HnnError as exc:
                    raise RuntimeError(str(exc)) from None

            graph = cache.get(f"keras_{name}@{backend}", convert)
            if graph is not None:
                queries.append((f"{name}[{backend}]", family_of[name], graph, family_of[name]))
    return queries


def _build(library: str, name: str, seed_offset: int = 0, **keywords):
    """The module ``name`` of torchvision or timm, with a seed of its own (torch_edits.seed_of)."""
    import torch
    from torch_edits import seed_of  # beside this script

    torch.manual_seed(seed_of(name) + seed_offset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if library == "timm":
            import timm

            return timm.create_model(name, pretrained=False, **keywords)
        import torchvision

        return torchvision.models.get_model(name, **keywords)


def _input_shape(name: str, side: int = 224) -> list[int]:
    return [1, 3, 299, 299] if name == "inception_v3" else [1, 3, side, side]


def _export(library: str, name: str, exporter: str = "torchscript", side: int = 224, seed_offset: int = 0,
            **keywords):
    from hnn.ingest.pipeline import onnx_to_ir
    from hnn.plugins.frontends.pytorch_frontend import export_module

    model = export_module(_build(library, name, seed_offset, **keywords), _input_shape(name, side), exporter)
    return onnx_to_ir(model, framework="onnx", simplify=False)


def _variant(library: str, name: str, row: str):
    """The IR of one query: ``row`` applied to model ``name``."""
    if row == "head":  # a sibling trained for another task: a new head, and weights of its own
        return _export(library, name, seed_offset=1, num_classes=10)
    if row == "dynamo":
        return _export(library, name, exporter="dynamo")
    if row == "resolution":
        try:
            return _export(library, name, side=RESOLUTION)
        except Exception:
            if library != "timm":
                raise
            return _export(library, name, side=RESOLUTION, img_size=RESOLUTION)  # its input size built in
    if row == "widths":
        return _export(library, name)
    raise ValueError(row)


# ---- scoring -----------------------------------------------------------------------------------


def expected_top1(distances: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Per query: the share of right answers among the nearest (ties broken at random, in expectation)."""
    nearest = distances == distances.min(axis=1, keepdims=True)
    return (nearest & right).sum(axis=1) / nearest.sum(axis=1)


def placement(distances: np.ndarray, right: np.ndarray) -> dict[str, int]:
    """How many queries have their one right answer alone at the nearest distance, tied there, or farther."""
    nearest = distances == distances.min(axis=1, keepdims=True)
    at_nearest = (nearest & right).any(axis=1)
    alone = at_nearest & (nearest.sum(axis=1) == 1)
    return {"alone": int(alone.sum()), "tied": int((at_nearest & ~alone).sum()), "farther": int((~at_nearest).sum())}


def score(database: list, queries: dict[str, list], checkpoints: list, labels: list[str]) -> dict:
    """Per row, per seen/unseen: query count and the expected top-1 of every method; and each miss."""
    from hnn.hasher.bits import hamming_matrix
    from hnn.hasher.runtime import hash_graphs, to_hashable_graph
    from hnn.hasher.structure import (
        estimated_pattern_similarity,
        family_distance_matrix,
        op_pattern,
        pattern_distance_matrix,
        relative_wl_simhash,
        structure_distance_matrix,
        structure_of,
        wl_simhash,
    )
    from hnn.index.ranking import ranking_matrix

    # Unseen: by every checkpoint of the run, so that each compares on the same queries, none on a family
    # it trained on (a held-out checkpoint beside the shipped one: unseen by both).
    seen_families = set().union(*(checkpoint.families for checkpoint in checkpoints))
    names = np.array([name for name, _, _ in database])
    families = np.array([family for _, family, _ in database])
    merged_db = [[to_hashable_graph(graph, c) for _, _, graph in database] for c in checkpoints]
    db_codes = [hash_graphs(graphs, c) for graphs, c in zip(merged_db, checkpoints)]
    db_structures = [[structure_of(g) for g in graphs] for graphs in merged_db]
    bits = checkpoints[0].bits
    db_wl = np.array([wl_simhash(g, bits) for g in merged_db[0]])
    db_relative_wl = np.array([relative_wl_simhash(g, bits) for g in merged_db[0]])
    db_structure_codes = np.array([s.code for s in db_structures[0]])
    db_patterns = [op_pattern(g) for g in merged_db[0]]
    results = {"database": len(database), "bits": bits, "checkpoints": labels, "rows": {},
               "distinct_codes": {label: len({c.tobytes() for c in codes})
                                  for label, codes in [*zip(labels, db_codes), ("wl-simhash", db_wl),
                                                       ("wl-simhash relative", db_relative_wl)]}}
    for row, row_queries in queries.items():
        if not row_queries:
            continue
        right = np.array([(families == answer) if row == "keras" else (names == answer)
                          for _, _, _, answer in row_queries])
        seen = np.array([family in seen_families for _, family, _, _ in row_queries])
        methods, placements = {}, {}
        for label, checkpoint, codes, structures in zip(labels, checkpoints, db_codes, db_structures):
            merged = [to_hashable_graph(graph, checkpoint) for _, _, graph, _ in row_queries]
            distances = hamming_matrix(hash_graphs(merged, checkpoint), codes)
            query_structures = [structure_of(g) for g in merged]
            methods[f"hnn {label}"] = expected_top1(distances, right)
            if row != "keras":  # one right answer per query
                placements[label] = {part: placement(distances[mask], right[mask])
                                     for part, mask in (("unseen", ~seen), ("seen", seen)) if mask.any()}
            methods[f"index {label}"] = expected_top1(ranking_matrix(distances, query_structures, structures), right)
            if row == "keras":  # a family question: what `hnn check` answers as `family`
                signatures = np.array([s.pattern for s in structures])
                patterns = 1 - np.array([estimated_pattern_similarity(q.pattern, signatures) for q in query_structures])
                methods[f"family {label}"] = expected_top1(family_distance_matrix(distances, bits, patterns), right)
        merged = [to_hashable_graph(graph, checkpoints[0]) for _, _, graph, _ in row_queries]
        methods["wl-simhash"] = expected_top1(hamming_matrix(np.array([wl_simhash(g, bits) for g in merged]), db_wl),
                                              right)
        methods["wl-simhash relative"] = expected_top1(
            hamming_matrix(np.array([relative_wl_simhash(g, bits) for g in merged]), db_relative_wl), right)
        methods["structure"] = expected_top1(
            structure_distance_matrix(np.array([structure_of(g).code for g in merged]), db_structure_codes), right)
        methods["op pattern"] = expected_top1(pattern_distance_matrix([op_pattern(g) for g in merged], db_patterns),
                                              right)
        results["rows"][row] = {
            part: {"queries": int(mask.sum()), **{m: round(float(v[mask].mean()), 3) for m, v in methods.items()}}
            for part, mask in (("unseen", ~seen), ("seen", seen)) if mask.any()}
        if placements:
            results["rows"][row]["placement"] = placements
        results["rows"][row]["misses"] = {
            method: [row_queries[i][0] for i in np.flatnonzero(values < 1)] for method, values in methods.items()}
    _pirates_all(results, queries)
    return results


def _pirates_all(results: dict, queries: dict[str, list]) -> None:
    """The 'pirate, all' row: the pirate rows pooled, weighted by their query counts."""
    parts = [row for row in PIRATE_ROWS if row in results["rows"]]
    if not parts:
        return
    pooled = {}
    for part in ("unseen", "seen"):
        rows = [results["rows"][row][part] for row in parts if part in results["rows"][row]]
        count = sum(r["queries"] for r in rows)
        if count:
            methods = [key for key in rows[0] if key != "queries"]
            pooled[part] = {"queries": count,
                            **{m: round(sum(r[m] * r["queries"] for r in rows) / count, 3) for m in methods}}
    results["rows"]["pirate, all"] = pooled


ROW_TITLES = {"keras": "Keras export -> family", "head": "head-swapped sibling -> exact model",
              "dynamo": "pirate: other exporter (dynamo)", "resolution": f"pirate: input {RESOLUTION} instead of 224",
              "widths": "pirate: other channel widths", "pirate, all": "pirate variant -> source, all"}


def print_tables(results: dict) -> None:
    print(f"\n{results['database']} database models, {results['bits']} bits; top-1, ties credited as a random pick")
    for part in ("unseen", "seen"):
        rows = {row: figures[part] for row, figures in results["rows"].items() if part in figures}
        if not rows:
            continue
        methods = [key for key in next(iter(rows.values())) if key != "queries"]
        print(f"\n### Families the checkpoint {'never trained on' if part == 'unseen' else 'trained on'}\n")
        print("| query set | queries | " + " | ".join(methods) + " |")
        print("|---|---|" + "---|" * len(methods))
        for row, figures in rows.items():
            print(f"| {ROW_TITLES[row]} | {figures['queries']} | "
                  + " | ".join(f"{figures[m]:.2f}" for m in methods) + " |")
    print("\nDistinct codes among the database models: "
          + ", ".join(f"{label} {count}" for label, count in results["distinct_codes"].items()))
    print("\nWhere the code puts the right answer, unseen families (alone / tied at the nearest / farther):")
    for row, figures in results["rows"].items():
        for label, parts in figures.get("placement", {}).items():
            if "unseen" in parts:
                p = parts["unseen"]
                print(f"- {row}, {label}: {p['alone']} / {p['tied']} / {p['farther']}")
    print("\nMisses (top-1 below 1):")
    for row, figures in results["rows"].items():
        for method, missed in figures.get("misses", {}).items():
            if missed:
                print(f"- {row}, {method}: {', '.join(missed)}")


if __name__ == "__main__":
    main()
