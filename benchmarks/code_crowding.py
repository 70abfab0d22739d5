"""How crowded a checkpoint's codes are: distinct codes, which models share one, how much the bits move together.

    .venv/bin/python benchmarks/code_crowding.py --zoo data/wide --checkpoint C [--checkpoint C2 ...] \
        [--models vgg11,vgg13,...] [--json]

Hashes the original (not augmented) models of a zoo dataset, or only the ``--models`` named, with
each checkpoint and reports: the number of distinct codes and the groups of models that share one
(a copy of any of them is then a tie by the code alone); the median absolute Pearson correlation
between two bits over the models; and the codes' effective dimension, the exponential of the
entropy of their normalised principal-component variances (64 for independent balanced bits, 1
when every bit is a copy of one). docs/RESULTS.md ("Decorrelated bits") uses it.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from cross_framework import originals  # beside this script


def crowding(codes: np.ndarray, names: list[str]) -> dict:
    """Distinct codes, groups sharing one, median |bit correlation| and effective dimension of bool ``codes``."""
    groups = defaultdict(list)
    for name, code in zip(names, codes):
        groups[code.tobytes()].append(name)
    values = codes.astype(float)
    varying = values.std(axis=0) > 0  # a constant bit has no correlation with anything
    correlation = np.corrcoef(values[:, varying].T) if varying.sum() > 1 else np.zeros((1, 1))
    upper = np.abs(correlation[np.triu_indices(len(correlation), 1)])
    spectrum = np.linalg.svd(values - values.mean(axis=0), compute_uv=False) ** 2
    shares = spectrum[spectrum > 0] / spectrum.sum() if spectrum.sum() else np.ones(1)
    return {"models": len(names), "distinct": len(groups), "constant_bits": int((~varying).sum()),
            "shared": sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: g[0]),
            "median_abs_bit_correlation": round(float(np.median(upper)), 3) if len(upper) else 0.0,
            "effective_dimension": round(float(np.exp(-(shares * np.log(shares)).sum())), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", type=Path, required=True, help="a zoo dataset (hnn zoo build)")
    parser.add_argument("--checkpoint", action="append", type=Path, required=True)
    parser.add_argument("--models", default=None, help="comma-separated model names of the zoo (default: all)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from hnn.errors import HnnError
    from hnn.hasher.runtime import hash_graphs, load, to_hashable_graph

    try:
        checkpoints = [load(path) for path in args.checkpoint]
        models = originals(args.zoo)
    except HnnError as exc:
        raise SystemExit(f"code_crowding: {exc}") from None
    if args.models:
        wanted = args.models.split(",")
        unknown = sorted(set(wanted) - {name for name, _, _ in models})
        if unknown:
            raise SystemExit(f"code_crowding: {args.zoo} has no model {', '.join(unknown)}")
        models = [m for m in models if m[0] in wanted]
    names = [name for name, _, _ in models]
    results = {}
    for path, checkpoint in zip(args.checkpoint, checkpoints):
        codes = hash_graphs([to_hashable_graph(graph, checkpoint) for _, _, graph in models], checkpoint)
        results[str(path)] = crowding(codes, names)
    if args.json:
        print(json.dumps(results, indent=1))
        return
    for path, r in results.items():
        print(f"{path}: {r['models']} models, {r['distinct']} distinct codes, median |bit correlation| "
              f"{r['median_abs_bit_correlation']}, effective dimension {r['effective_dimension']}, "
              f"{r['constant_bits']} constant bits")
        for group in r["shared"]:
            print(f"  share a code: {', '.join(group)}")


if __name__ == "__main__":
    main()
