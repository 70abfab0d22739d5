"""Hashing models with a checkpoint: the library API behind ``hnn hash`` and ``hnn compare``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from hnn.errors import InputError, UsageError
from hnn.hasher.structure import Structure, compare_structures, structure_of
from hnn.ingest.ir import Graph
from hnn.ingest.weights import MARKS, SHARED_MATCH, SHARED_SUSPECT, shared_marks

# Verdict thresholds as a share of the code's bits, used when the checkpoint holds none.
# `hnn train` stores thresholds measured on its validation set in the checkpoint instead.
DEFAULT_MATCH_SHARE = 1 / 16
DEFAULT_SUSPECT_SHARE = 1 / 4


@dataclass(frozen=True)
class HashResult:
    model: str
    framework: str
    bits: int
    hash: str
    nodes: int
    code: np.ndarray
    structure: Structure
    weight_marks: list[int]

    def to_dict(self) -> dict:
        return {"model": self.model, "framework": self.framework, "bits": self.bits, "hash": self.hash,
                "structure": code_to_hex(self.structure.code), "topology": self.structure.topology,
                "nodes": self.nodes}


def code_to_hex(code: np.ndarray) -> str:
    """Bits (first bit most significant) as hex, ceil(Q/4) digits."""
    value = 0
    for bit in code.astype(int):
        value = (value << 1) | int(bit)
    return f"{value:0{(len(code) + 3) // 4}x}"


def hex_to_code(text: str, bits: int) -> np.ndarray:
    try:
        value = int(text, 16)
    except ValueError:
        raise UsageError(f"{text!r} is not a hex hash") from None
    if value >> bits:
        raise UsageError(f"hash {text!r} has more than {bits} bits")
    return np.array([(value >> (bits - 1 - i)) & 1 for i in range(bits)], dtype=bool)


@lru_cache(maxsize=4)
def _load(path: str):
    from hnn.hasher.checkpoint import load_checkpoint

    return load_checkpoint(path)


def load(checkpoint: str | Path | None = None, bits: int | None = None):
    """The checkpoint at ``checkpoint``, else the shipped one for ``bits``; loaded once per process."""
    from hnn.hasher.checkpoint import default_checkpoint

    path = Path(checkpoint) if checkpoint else default_checkpoint(bits)
    loaded = _load(str(path.resolve()))
    if bits is not None and loaded.bits != bits:
        raise UsageError(f"{path}: the checkpoint makes {loaded.bits}-bit codes, not {bits}")
    return loaded


def to_hashable_graph(source: Any, checkpoint, **ingest_options) -> Graph:
    """IR merged with the checkpoint's rules, from an IR file or anything ``hnn ingest`` reads."""
    from hnn.rules import combine, load_rule_sets

    if isinstance(source, Graph):
        graph = source
    elif isinstance(source, (str, Path)) and str(source).endswith(".json"):
        graph = Graph.from_json_file(source)
    else:
        from hnn.ingest.pipeline import ingest_safely

        # Without onnxsim: it imports torch (4 s), and extraction folds the same constants
        # itself (tests/test_pytorch_frontend.py checks the IR is the same either way).
        graph = ingest_safely(source, **{"simplify": False, **ingest_options})
    if graph.meta.rules:
        if graph.meta.rules != [checkpoint.rules]:
            raise InputError(f"{graph.meta.source or source}: merged with rules {graph.meta.rules}, but the "
                             f"checkpoint expects {checkpoint.rules!r}; ingest it with --no-merge")
        return graph
    merged, _ = combine(load_rule_sets([checkpoint.rules])).apply(graph)
    return merged


def hash_graphs(graphs: list[Graph], checkpoint, device: str = "cpu") -> np.ndarray:
    """Bool codes [len(graphs), Q]: numpy on the CPU (no torch import), torch batches on a GPU."""
    if device == "cpu":
        from hnn.hasher.numpy_model import forward

        return np.array([forward(checkpoint.arrays, graph, checkpoint.vocabulary,
                                 size_features=checkpoint.size_features)["code"] > 0.5 for graph in graphs],
                        dtype=bool).reshape(len(graphs), checkpoint.bits)
    from hnn.hasher.batching import to_tensors
    from hnn.hasher.train import embed, pick_device

    torch_device = pick_device(device)
    tensors = [to_tensors(graph, checkpoint.vocabulary, checkpoint.size_features) for graph in graphs]
    return embed(checkpoint.torch_model(str(torch_device)), tensors, torch_device)["code"] > 0.5


def hash_model(source: Any, checkpoint: str | Path | None = None, bits: int | None = None,
               **ingest_options) -> HashResult:
    """Q-bit perceptual hash of one model (path, spec, framework object, IR file or Graph)."""
    loaded = load(checkpoint, bits)
    graph = to_hashable_graph(source, loaded, **ingest_options)
    code = hash_graphs([graph], loaded)[0]
    return HashResult(model=str(source) if isinstance(source, (str, Path)) else type(source).__name__,
                      framework=graph.meta.framework, bits=loaded.bits, hash=code_to_hex(code),
                      nodes=len(graph.nodes), code=code, structure=structure_of(graph),
                      weight_marks=graph.meta.weight_marks)


def thresholds(checkpoint) -> dict[str, int]:
    """Hamming distances at or below which two codes are a ``match``, or ``suspect``."""
    stored = checkpoint.meta.get("thresholds")
    if stored:
        return {"match": int(stored["match"]), "suspect": int(stored["suspect"])}
    return {"match": int(checkpoint.bits * DEFAULT_MATCH_SHARE), "suspect": int(checkpoint.bits * DEFAULT_SUSPECT_SHARE)}


def verdict(distance: int, limits: dict[str, int], same_topology: bool = False, shared_marks: int = 0) -> str:
    """``match`` or ``suspect`` by the code's distance against the thresholds, else ``different``;
    at least ``suspect`` for two graphs of one topology (one architecture at other widths: what
    structured pruning or widening makes of a model moves its code, not its topology), and for
    two models that share weights (hnn.ingest.weights: SHARED_SUSPECT marks); ``match`` for
    SHARED_MATCH shared marks, a quarter of the weights: a copy, however its layers were cut."""
    if distance <= limits["match"] or shared_marks >= SHARED_MATCH:
        return "match"
    if distance <= limits["suspect"] or same_topology or shared_marks >= SHARED_SUSPECT:
        return "suspect"
    return "different"


def compare(a: Any, b: Any, checkpoint: str | Path | None = None, bits: int | None = None,
            **ingest_options) -> dict:
    """Hamming distance, similarity (1 - distance / Q) and verdict of two models."""
    loaded = load(checkpoint, bits)
    first = hash_model(a, checkpoint, bits, **ingest_options)
    second = hash_model(b, checkpoint, bits, **ingest_options)
    distance = int((first.code != second.code).sum())
    limits = thresholds(loaded)
    structures = compare_structures(first.structure, second.structure)
    weights = weight_sharing(shared_marks(first.weight_marks, second.weight_marks))
    return {"a": first.to_dict(), "b": second.to_dict(), "distance": distance, **structures, **weights,
            "similarity": round(1 - distance / loaded.bits, 4),
            "verdict": verdict(distance, limits, structures["same_topology"], weights["shared_marks"]),
            "thresholds": limits}


def weight_sharing(count: int) -> dict:
    """What `hnn compare` and `hnn index query` report of two models that share ``count`` weight
    marks (JSON-ready)."""
    return {"shared_marks": count, "shared_weights": round(count / MARKS, 3), "shares_weights": count >= SHARED_SUSPECT}
