"""The WL branch's two measurements (docs/RESULTS.md, "A WL branch"): how a node deletion moves WL
features, and how much of a checkpoint's code the branch decides.

    .venv/bin/python benchmarks/wl_branch.py --zoo data/default [--checkpoint C.npz ...] [--every 3] [--json]

- *Deletion*: for every ``--every``-th model of the zoo, the bits of relative WL-SimHash
  (hnn.hasher.structure.relative_wl_simhash, 64 bits) that differ between the model and each of its
  augmentations (the zoo's graphs with nodes deleted, what the paper's protocol calls a copy), and
  between two different models, for 1, 2 and 3 WL rounds (the branch reads 3).
- *Share*: for each checkpoint with a WL branch (``hnn train --wl-bins``), over the same models'
  merged graphs: the spread (standard deviation) of FC5's logits and of the branch's, and the share
  of bits whose sign follows each part alone.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", type=Path, required=True, help="a zoo dataset (hnn zoo build)")
    parser.add_argument("--checkpoint", action="append", type=Path, default=[], help="a checkpoint with a WL branch")
    parser.add_argument("--every", type=int, default=3, help="take every N-th model of the zoo")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from hnn.errors import HnnError
    from hnn.hasher.runtime import load
    from hnn.zoo.dataset import dataset_graphs, source_of

    try:
        records, graphs = dataset_graphs(args.zoo, "merged")
        checkpoints = [load(path) for path in args.checkpoint]
    except HnnError as exc:
        raise SystemExit(f"wl_branch: {exc}") from None
    if any(not checkpoint.wl_bins for checkpoint in checkpoints):
        raise SystemExit("wl_branch: every --checkpoint must have a WL branch (hnn train --wl-bins)")
    by_source: dict[str, list[tuple[dict, object]]] = {}
    for record, graph in zip(records, graphs):
        by_source.setdefault(source_of(record), []).append((record, graph))
    sources = sorted(by_source)[::args.every]
    originals = {source: next(graph for record, graph in by_source[source] if "index" not in record)
                 for source in sources}
    result = {"models": len(sources), "deletion": deletion(by_source, originals),
              "share": {str(path): share(checkpoint, list(originals.values()))
                        for path, checkpoint in zip(args.checkpoint, checkpoints)}}
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"{result['models']} models of {args.zoo}; bits of 64 that differ, median")
    for rounds, figures in result["deletion"].items():
        print(f"- {rounds} WL round(s): model and its augmentation {figures['augmentation']}, "
              f"two models {figures['different']}")
    for path, figures in result["share"].items():
        print(f"- {path}: logit spread FC5 {figures['gcn_spread']:.1f}, WL branch {figures['wl_spread']:.1f}; "
              f"bits following FC5 alone {figures['follow_gcn']:.3f}, the branch alone {figures['follow_wl']:.3f}")


def deletion(by_source: dict, originals: dict) -> dict:
    from hnn.hasher.bits import hamming_matrix
    from hnn.hasher.structure import relative_wl_simhash

    figures = {}
    for rounds in (1, 2, 3):
        codes = {source: relative_wl_simhash(graph, 64, rounds) for source, graph in originals.items()}
        augmentation = [int(np.count_nonzero(relative_wl_simhash(graph, 64, rounds) != codes[source]))
                        for source in originals for record, graph in by_source[source] if "index" in record]
        stacked = np.array(list(codes.values()))
        distances = hamming_matrix(stacked, stacked)
        different = distances[np.triu_indices(len(stacked), k=1)]
        figures[rounds] = {"augmentation": float(np.median(augmentation)), "different": float(np.median(different))}
    return figures


def share(checkpoint, graphs: list) -> dict:
    from hnn.hasher.numpy_model import forward
    from hnn.hasher.runtime import to_hashable_graph

    parts = [forward(checkpoint.arrays, to_hashable_graph(graph, checkpoint), checkpoint.vocabulary,
                     size_features=checkpoint.size_features, sizes=checkpoint.sizes, wl_bins=checkpoint.wl_bins)
             for graph in graphs]
    gcn = np.array([part["gcn_logits"] for part in parts])
    wl = np.array([part["wl_logits"] for part in parts])
    total = gcn + wl > 0
    return {"gcn_spread": float(gcn.std()), "wl_spread": float(wl.std()),
            "follow_gcn": float(((gcn > 0) == total).mean()), "follow_wl": float(((wl > 0) == total).mean())}


if __name__ == "__main__":
    main()
