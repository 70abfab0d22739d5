"""What ``hnn index`` and ``hnn check`` do, for library users too: hash models and use an index."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from hnn.errors import HnnError
from hnn.hasher.api import code_to_hex, hash_graphs, load, thresholds, to_hashable_graph, verdict, weight_sharing
from hnn.hasher.index import DuplicateEntry, Index
from hnn.hasher.structure import compare_structures, structure_of

# A platform asks "is this a copy?": only these verdicts. `different` in `hnn compare` is `new` here.
NEW = "new"


def _hash(model: str, checkpoint, **ingest_options):
    """The merged graph, its perceptual code and its structure (hnn.hasher.structure)."""
    graph = to_hashable_graph(model, checkpoint, **ingest_options)
    return graph, hash_graphs([graph], checkpoint)[0], structure_of(graph)


def add_models(index_path: str | Path, models: list[str], label: str | None = None, checkpoint=None,
               bits: int | None = None, progress: Callable | None = None, **ingest_options) -> list[dict]:
    """Hash and add each model in its own transaction; a failure is reported and the rest go on."""
    loaded = load(checkpoint, bits)
    results = []
    with Index(index_path, create=True) as index:
        index.check_compatible(loaded.digest, loaded.bits)
        for position, model in enumerate(models):
            if progress:
                progress(position, len(models), Path(model).name)
            try:
                graph, code, structure = _hash(model, loaded, **ingest_options)
                entry = index.add(name=Path(model).name if Path(model).exists() else model, source=str(model),
                                  framework=graph.meta.framework, code=code, checkpoint_digest=loaded.digest,
                                  ir_digest=graph.digest(), label=label, structure=structure,
                                  weight_marks=graph.meta.weight_marks)
                results.append({"model": model, "status": "added", "id": entry.id, "hash": code_to_hex(code)})
            except DuplicateEntry as duplicate:
                results.append({"model": model, "status": "duplicate", "id": duplicate.existing.id,
                                "reason": str(duplicate)})
            except HnnError as exc:
                results.append({"model": model, "status": "failed", "reason": str(exc)})
        if progress:
            progress(len(models), len(models), "")
    return results


def query_model(index_path: str | Path, model: str, k: int = 10, radius: int | None = None, checkpoint=None,
                **ingest_options) -> dict:
    with Index(index_path) as index:
        bits = index.meta("bits")
        loaded = load(checkpoint, int(bits) if bits and checkpoint is None else None)
        index.check_compatible(loaded.digest, loaded.bits)
        graph, code, structure = _hash(model, loaded, **ingest_options)
        marks = graph.meta.weight_marks
        shared = index.shared_marks(marks)
        neighbours = [{**entry.to_dict(), "distance": distance, **compare_structures(structure, entry.structure),
                       **weight_sharing(shared.get(entry.id, 0))}
                      for entry, distance in index.query(code, k, radius, structure=structure, shared=shared)]
        nearest = index.query(code, k=1)  # by the code alone: the verdict's distance
    return {"model": model, "hash": code_to_hex(code), "structure": code_to_hex(structure.code),
            "topology": structure.topology,
            "bits": loaded.bits, "neighbours": neighbours, "nearest_distance": nearest[0][1] if nearest else None,
            "thresholds": thresholds(loaded)}


def check_model(index_path: str | Path, model: str, k: int = 5, checkpoint=None, **ingest_options) -> dict:
    """The nearest known models and a verdict: ``match``, ``suspect`` or ``new``.

    By the perceptual code's smallest distance to any entry, at least ``suspect`` when an entry
    has the model's topology, and by the most weight marks it shares with an entry
    (:func:`hnn.hasher.api.verdict`).
    """
    result = query_model(index_path, model, k=k, checkpoint=checkpoint, **ingest_options)
    same_topology = any(hit["same_topology"] for hit in result["neighbours"])
    # The entry sharing the most weights ranks first (hnn.hasher.structure.ranking_distance).
    shared = max((hit["shared_marks"] for hit in result["neighbours"]), default=0)
    if result["nearest_distance"] is None:
        return {**result, "same_topology": False, "verdict": NEW}
    said = verdict(result["nearest_distance"], result["thresholds"], same_topology, shared)
    return {**result, "same_topology": same_topology, "verdict": NEW if said == "different" else said}
