"""Hashing models with a checkpoint: the library behind ``hnn hash`` and every command that hashes.

A model becomes its merged IR (:func:`to_hashable_graph`: the checkpoint's rules),
then a Q-bit code (:func:`hash_graphs`: the numpy forward pass on the CPU, which
needs no torch, or torch batches on a GPU), beside its structure
(hnn.hasher.structure) and weight marks (hnn.ingest.weights).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from hnn.errors import InputError, UsageError
from hnn.hasher import bits as code_bits
from hnn.hasher.structure import Structure, structure_of
from hnn.ingest.ir import Graph
from hnn.provenance.fingerprint import Fingerprint


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
    ir_digest: str
    fingerprint: Fingerprint | None = None

    def to_dict(self) -> dict:
        """What `hnn hash --json` prints."""
        return {"model": self.model, "framework": self.framework, "bits": self.bits, "hash": self.hash,
                "structure": code_bits.to_hex(self.structure.code), "topology": self.structure.topology,
                "nodes": self.nodes}


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


def pick_device(name: str):
    """The torch device for ``auto`` (a GPU where there is one), ``cpu`` or ``cuda``."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA GPU is available here")
    if name not in ("cpu", "cuda"):
        raise UsageError(f"--device {name!r}: choose auto, cpu or cuda")
    return torch.device(name)


def embed(model, tensors: list, device, batch_size: int = 64) -> dict:
    """Model outputs (``code``, ``embedding``) for many graphs, batched, without gradients."""
    import torch

    from hnn.hasher.batching import collate

    outputs = {"code": [], "embedding": []}
    model.eval()
    with torch.no_grad():
        for start in range(0, len(tensors), batch_size):
            out = model(*collate(tensors[start:start + batch_size], device))
            outputs["code"].append(out["code"].cpu())
            outputs["embedding"].append(out["embedding"].cpu())
    return {key: torch.cat(value).numpy() for key, value in outputs.items()}


def hash_graphs(graphs: list[Graph], checkpoint, device: str = "cpu") -> np.ndarray:
    """Bool codes [len(graphs), Q]: numpy on the CPU (no torch import), torch batches on a GPU."""
    if device == "cpu":
        from hnn.hasher.numpy_model import forward

        return np.array([forward(checkpoint.arrays, graph, checkpoint.vocabulary,
                                 size_features=checkpoint.size_features,
                                 sizes=checkpoint.sizes, wl_bins=checkpoint.wl_bins)["code"] > 0.5
                                 for graph in graphs],
                        dtype=bool).reshape(len(graphs), checkpoint.bits)
    from hnn.hasher.batching import to_tensors

    torch_device = pick_device(device)
    tensors = [to_tensors(graph, checkpoint.vocabulary, checkpoint.size_features, checkpoint.sizes,
                          checkpoint.wl_bins) for graph in graphs]
    return embed(checkpoint.torch_model(str(torch_device)), tensors, torch_device)["code"] > 0.5


def hash_with(checkpoint, source: Any, **ingest_options) -> HashResult:
    """:func:`hash_model` with a loaded checkpoint (what the index's commands share)."""
    graph = to_hashable_graph(source, checkpoint, **ingest_options)
    code = hash_graphs([graph], checkpoint)[0]
    return HashResult(model=str(source) if isinstance(source, (str, Path)) else type(source).__name__,
                      framework=graph.meta.framework, bits=checkpoint.bits, hash=code_bits.to_hex(code),
                      nodes=len(graph.nodes), code=code, structure=structure_of(graph),
                      weight_marks=graph.meta.weight_marks, ir_digest=graph.digest(),
                      fingerprint=graph.meta.provenance)


def hash_model(source: Any, checkpoint: str | Path | None = None, bits: int | None = None,
               **ingest_options) -> HashResult:
    """Q-bit perceptual hash of one model (path, spec, framework object, IR file or Graph)."""
    return hash_with(load(checkpoint, bits), source, **ingest_options)
