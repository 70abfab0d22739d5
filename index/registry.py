"""What ``hnn index`` and ``hnn check`` do, for library users too: hash models and use an index."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from hnn.errors import HnnError
from hnn.hasher.bits import to_hex
from hnn.hasher.runtime import hash_with, load
from hnn.hasher.structure import compare_structures
from hnn.index.store import DuplicateEntry, Index
from hnn.index.verdicts import check_verdict, thresholds, weight_sharing


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
                hashed = hash_with(loaded, model, **ingest_options)
                entry = index.add(name=Path(model).name if Path(model).exists() else model, source=str(model),
                                  framework=hashed.framework, code=hashed.code, checkpoint_digest=loaded.digest,
                                  ir_digest=hashed.ir_digest, label=label, structure=hashed.structure,
                                  weight_marks=hashed.weight_marks)
                results.append({"model": model, "status": "added", "id": entry.id, "hash": hashed.hash})
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
    """The entries nearest ``model``, ranked as hnn.index.ranking says, with what each shares with it."""
    with Index(index_path) as index:
        bits = index.meta("bits")
        loaded = load(checkpoint, int(bits) if bits and checkpoint is None else None)
        index.check_compatible(loaded.digest, loaded.bits)
        hashed = hash_with(loaded, model, **ingest_options)
        shared = index.shared_marks(hashed.weight_marks)
        neighbours = [{**entry.to_dict(), "distance": distance, **compare_structures(hashed.structure, entry.structure),
                       **weight_sharing(shared.get(entry.id, 0))}
                      for entry, distance in index.query(hashed.code, k, radius, structure=hashed.structure,
                                                         shared=shared)]
        nearest = index.query(hashed.code, k=1)  # by the code alone: the verdict's distance
    return {"model": model, "hash": hashed.hash, "structure": to_hex(hashed.structure.code),
            "topology": hashed.structure.topology,
            "bits": loaded.bits, "neighbours": neighbours, "nearest_distance": nearest[0][1] if nearest else None,
            "thresholds": thresholds(loaded)}


def check_model(index_path: str | Path, model: str, k: int = 5, checkpoint=None, **ingest_options) -> dict:
    """The nearest known models and a verdict: ``match``, ``suspect`` or ``new``.

    By the perceptual code's smallest distance to any entry, at least ``suspect`` when an entry
    has the model's topology, and by the most weight marks it shares with an entry
    (:func:`hnn.index.verdicts.check_verdict`).
    """
    result = query_model(index_path, model, k=k, checkpoint=checkpoint, **ingest_options)
    if result["nearest_distance"] is None:
        return {**result, "same_topology": False, "verdict": check_verdict(None, result["thresholds"], False, 0)}
    same_topology = any(hit["same_topology"] for hit in result["neighbours"])
    # The entry sharing the most weights ranks first (hnn.index.ranking).
    shared = max((hit["shared_marks"] for hit in result["neighbours"]), default=0)
    return {**result, "same_topology": same_topology,
            "verdict": check_verdict(result["nearest_distance"], result["thresholds"], same_topology, shared)}
