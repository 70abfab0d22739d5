"""What ``hnn index`` and ``hnn check`` do, for library users too: hash models and use an index."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from hnn.errors import HnnError, printable
from hnn.hasher.bits import to_hex
from hnn.hasher.runtime import hash_with, load
from hnn.hasher.structure import compare_structures
from hnn.index.store import DuplicateEntry, Index, IndexBusy
from hnn.index.verdicts import check_verdict, thresholds, weight_sharing


def add_models(index_path: str | Path, models: list[str], label: str | None = None, checkpoint=None,
               bits: int | None = None, progress: Callable | None = None, report: Callable[[dict], None] | None = None,
               **ingest_options) -> list[dict]:
    """Hash and add each model in its own transaction; a model that fails is reported and the rest
    go on. ``report`` gets each result as soon as it is known, so every committed entry is
    reported even when a later one stops the run (an index busy for too long stops it: the
    models not tried are reported as failed)."""
    loaded = load(checkpoint, bits)
    results: list[dict] = []

    def record(result: dict) -> None:
        results.append(result)
        if report:
            report(result)

    with Index(index_path, create=True) as index:
        index.check_compatible(loaded.digest, loaded.bits)
        for position, model in enumerate(models):
            shown = printable(str(model))
            if progress:
                progress(position, len(models), printable(Path(model).name))
            try:
                hashed = hash_with(loaded, model, **ingest_options)
                entry = index.add(name=printable(Path(model).name) if Path(model).exists() else shown, source=shown,
                                  framework=hashed.framework, code=hashed.code, checkpoint_digest=loaded.digest,
                                  ir_digest=hashed.ir_digest, label=label, structure=hashed.structure,
                                  weight_marks=hashed.weight_marks)
                record({"model": shown, "status": "added", "id": entry.id, "hash": hashed.hash})
            except DuplicateEntry as duplicate:
                record({"model": shown, "status": "duplicate", "id": duplicate.existing.id, "reason": str(duplicate)})
            except IndexBusy as busy:
                for rest in [model, *models[position + 1:]]:
                    record({"model": printable(str(rest)), "status": "failed", "reason": f"not added: {busy}"})
                break
            except HnnError as exc:
                record({"model": shown, "status": "failed", "reason": str(exc)})
        if progress:
            progress(len(models), len(models), "")
    return results


def query_model(index_path: str | Path, model: str, k: int = 10, radius: int | None = None, checkpoint=None,
                **ingest_options) -> dict:
    """The entries nearest ``model``, ranked as hnn.index.ranking says, with what each shares with it."""
    with Index(index_path) as index:
        bits = index.bit_count()
        loaded = load(checkpoint, bits if bits and checkpoint is None else None)
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
