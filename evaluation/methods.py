"""The methods `hnn eval` compares: HNN-Net variants, GHashing, WL-SimHash, and the index's ranking.

docs/evaluation.md describes each. A method gives bool codes for every graph of a
dataset; ``hnn-index`` also ranks as the index does (its structures, hnn.index.ranking).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from hnn.errors import UsageError
from hnn.hasher.training.config import DEFAULT_CONFIG, TrainConfig

METHODS: dict[str, TrainConfig | None] = {
    "hnn": DEFAULT_CONFIG,
    "hnn-noclass": replace(DEFAULT_CONFIG, beta=0.0, source_beta=0.0),  # no classification head at all
    "hnn-paper": TrainConfig(topology="embedding"),
    "ghashing": replace(DEFAULT_CONFIG, beta=0.0, same_source_shrink=1.0, source_margin=0.0, source_beta=0.0),
    "wl-simhash": None,
    "hnn+wl": DEFAULT_CONFIG,  # half the bits from HNN-Net, half from WL-SimHash, concatenated
    "hnn-size": replace(DEFAULT_CONFIG, size_features=True),  # graph size on every node (not in the paper)
    # The WL branch (hnn.hasher.model; not in the paper): the graph's WL vector projected into the code
    # layer, its projection started at the spread the name gives (`hnn train --wl-bins 1024 --wl-init S`);
    # wl3-ratios with `--sizes ratios` too. docs/RESULTS.md ("A WL branch") measures the trade.
    **{f"hnn-wl{spread}": replace(DEFAULT_CONFIG, wl_bins=1024, wl_init=float(spread)) for spread in (3, 5, 10, 30)},
    "hnn-wl3-ratios": replace(DEFAULT_CONFIG, wl_bins=1024, wl_init=3.0, sizes="ratios"),
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
        from hnn.hasher.structure import wl_simhash

        return np.array([wl_simhash(graph, bits) for graph in graphs], dtype=bool)
    from hnn.hasher.runtime import embed
    from hnn.hasher.training.loop import train

    config = replace(METHODS[method], bits=bits, kind=kind, split=split, seed=seed, epochs=epochs, device="cpu")
    result = train(data_dir, config)
    return embed(result["model"], result["data"].tensors, "cpu")["code"] > 0.5
