"""What ``hnn index`` and ``hnn check`` do, for library users too: hash models and use an index."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from hnn.errors import HnnError
from hnn.hasher.api import code_to_hex, hash_graphs, load, thresholds, to_hashable_graph
from hnn.hasher.index import DuplicateEntry, Index
from hnn.hasher.structure import structure_code, structure_distance

# A platform asks "is this a copy?": only these verdicts. `different` in `hnn compare` is `new` here.
NEW = "new"


def _hash(model: str, checkpoint, **ingest_options):
    """The merged graph, its perceptual code and its structure code (the tie-break)."""
    graph = to_hashable_graph(model, checkpoint, **ingest_options)
    return graph, hash_graphs([graph], checkpoint)[0], structure_code(graph)


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
                                  ir_digest=graph.digest(), label=label, structure=structure)
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
        _, code, structure = _hash(model, loaded, **ingest_options)
        neighbours = [{**entry.to_dict(), "distance": distance,
                       "structure_distance": structure_distance(structure, entry.structure)}
                      for entry, distance in index.query(code, k, radius, structure=structure)]
    return {"model": model, "hash": code_to_hex(code), "structure": code_to_hex(structure), "bits": loaded.bits,
            "neighbours": neighbours,
            "thresholds": thresholds(loaded)}


def check_model(index_path: str | Path, model: str, k: int = 5, checkpoint=None, **ingest_options) -> dict:
    """The nearest known models and a verdict: ``match``, ``suspect`` or ``new``."""
    result = query_model(index_path, model, k=k, checkpoint=checkpoint, **ingest_options)
    nearest = result["neighbours"][0]["distance"] if result["neighbours"] else None
    limits = result["thresholds"]
    if nearest is not None and nearest <= limits["match"]:
        verdict = "match"
    elif nearest is not None and nearest <= limits["suspect"]:
        verdict = "suspect"
    else:
        verdict = NEW
    return {**result, "verdict": verdict}
