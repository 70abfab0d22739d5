"""What ``hnn index`` and ``hnn check`` do, for library users too: hash models and use an index."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

from hnn.errors import HnnError, printable
from hnn.hasher.bits import to_hex
from hnn.hasher.runtime import hash_with, load
from hnn.hasher.structure import compare_structures
from hnn.index.contents import content_digest
from hnn.index.derivation import derivation_evidence, describe, weights_evidence
from hnn.index.store import DuplicateEntry, Index, IndexBusy
from hnn.index.verdicts import DERIVED, NEW, check_verdict, thresholds, weight_sharing
from hnn.ingest.forkserver import WarmWorkers


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

    # Many models: one warm fork server for the run (hnn.ingest.forkserver), each conversion still a
    # fresh limited process, without a new interpreter's imports each time.
    files = sum(1 for model in models if Path(model).exists())  # specs build in this process: no worker
    workers = WarmWorkers() if files > 1 and not ingest_options.get("trust") else None
    if workers is not None:
        ingest_options = {**ingest_options, "worker": workers}
    with Index(index_path, create=True) as index, workers or nullcontext():
        index.check_compatible(loaded.digest, loaded.bits)
        for position, model in enumerate(models):
            if progress:
                progress(position, len(models), printable(Path(model).name))
            try:
                record(add_one(index, loaded, model, label, **ingest_options))
            except IndexBusy as busy:
                for rest in [model, *models[position + 1:]]:
                    record({"model": printable(str(rest)), "status": "failed", "reason": f"not added: {busy}"})
                break
        if progress:
            progress(len(models), len(models), "")
    return results


def add_one(index: Index, loaded, model: str, label: str | None = None, **ingest_options) -> dict:
    """Hash ``model`` and add it to the open ``index``: its result as `hnn index add --json` says it
    (``added``, ``duplicate`` or ``failed`` with the one-line reason). A file or folder whose content
    digest the index holds already is a duplicate at once, without converting it."""
    shown = printable(str(model))
    try:
        content = content_digest(model) if Path(model).exists() else None
        known = index.content_entry(content) if content else None
        if known is not None:
            return duplicate_result(shown, known, "same content")
        hashed = hash_with(loaded, model, **ingest_options)
    except HnnError as exc:
        return {"model": shown, "status": "failed", "reason": str(exc)}
    return add_hashed(index, loaded, hashed, shown, printable(Path(model).name) if content else shown, label, content)


def add_hashed(index: Index, loaded, hashed, model: str, name: str, label: str | None = None,
               content: str | None = None) -> dict:
    """Add a model already hashed (``hashed``: hnn.hasher.runtime.HashResult) under ``name``; the
    result as :func:`add_one` gives it. IndexBusy is raised: the caller decides what a busy index stops."""
    try:
        entry = index.add(name=name, source=model, framework=hashed.framework, code=hashed.code,
                          checkpoint_digest=loaded.digest, ir_digest=hashed.ir_digest, label=label,
                          structure=hashed.structure, weight_marks=hashed.weight_marks,
                          fingerprint=hashed.fingerprint, content_digest=content)
    except DuplicateEntry as duplicate:
        return duplicate_result(model, duplicate.existing)
    except IndexBusy:
        raise
    except HnnError as exc:
        return {"model": model, "status": "failed", "reason": str(exc)}
    return {"model": model, "status": "added", "id": entry.id, "hash": hashed.hash}


def duplicate_result(model: str, existing, why: str | None = None) -> dict:
    reason = f"already indexed as #{existing.id} ({existing.name})" + (f": {why}" if why else "")
    return {"model": model, "status": "duplicate", "id": existing.id, "reason": reason}


def query_model(index_path: str | Path, model: str, k: int = 10, radius: int | None = None, checkpoint=None,
                **ingest_options) -> dict:
    """The entries nearest ``model``: those it derives from first (strongest evidence first), then
    the others ranked as hnn.index.ranking says; each with what it shares with the model and, where
    both have a fingerprint, the provenance test's result."""
    with Index(index_path) as index:
        loaded = _loaded_for(index, checkpoint)
        return query_hashed(index, loaded, hash_with(loaded, model, **ingest_options), model, k, radius)


def _loaded_for(index: Index, checkpoint):
    """The checkpoint to hash queries of ``index`` with: the given one, else the shipped one of its bit count."""
    bits = index.bit_count()
    loaded = load(checkpoint, bits if bits and checkpoint is None else None)
    index.check_compatible(loaded.digest, loaded.bits)
    return loaded


def query_hashed(index: Index, loaded, hashed, model: str, k: int = 10, radius: int | None = None) -> dict:
    """:func:`query_model` for a model already hashed, in an open index (what a service calls)."""
    shared = index.shared_marks(hashed.weight_marks)
    found = index.query(hashed.code, k, radius, structure=hashed.structure, shared=shared)
    evidence = derivation_evidence(index, hashed.fingerprint, [entry.id for entry, _ in found])
    listed = {entry.id for entry, _ in found}
    derived = sorted((entry_id for entry_id, said in evidence.items() if said.derived),
                     key=lambda entry_id: -evidence[entry_id].z)
    extra = [index.get(entry_id) for entry_id in derived if entry_id not in listed]
    found += [(entry, int((entry.code != hashed.code).sum())) for entry in extra]
    order = {entry_id: position for position, entry_id in enumerate(derived)}
    found.sort(key=lambda hit: order.get(hit[0].id, len(order)))  # stable: the ranking's order after them
    if radius is None:
        found = found[:k]
    neighbours = [{**entry.to_dict(), "distance": distance, **compare_structures(hashed.structure, entry.structure),
                   **weight_sharing(shared.get(entry.id, 0)),
                   "provenance": describe(evidence[entry.id]) if entry.id in evidence else None}
                  for entry, distance in found]
    nearest = index.query(hashed.code, k=1)  # by the code alone: the verdict's distance
    return {"model": model, "hash": hashed.hash, "structure": to_hex(hashed.structure.code),
            "topology": hashed.structure.topology, "fingerprint": hashed.fingerprint is not None,
            "bits": loaded.bits, "neighbours": neighbours, "nearest_distance": nearest[0][1] if nearest else None,
            "family": index.family(hashed.code, hashed.structure.signature(index.pattern_kind)),
            "thresholds": thresholds(loaded)}


def check_model(index_path: str | Path, model: str, k: int = 5, checkpoint=None, **ingest_options) -> dict:
    """The nearest known models and a verdict: ``derived``, ``same-architecture`` or ``new``
    (:func:`hnn.index.verdicts.check_verdict`), and ``derived_from``: the entry the weights come
    from (the strongest evidence), or None. A bare ``.safetensors`` file (no config.json beside it)
    is checked by its weights alone: :func:`check_weights`."""
    from hnn.provenance.weights_only import is_bare_weights

    if is_bare_weights(model):
        return check_weights(index_path, model, k)
    with Index(index_path) as index:
        loaded = _loaded_for(index, checkpoint)
        return check_hashed(index, loaded, hash_with(loaded, model, **ingest_options), model, k)


def check_hashed(index: Index, loaded, hashed, model: str, k: int = 5) -> dict:
    """:func:`check_model` for a model already hashed, in an open index (what a service calls)."""
    result = query_hashed(index, loaded, hashed, model, k=k)
    if result["nearest_distance"] is None:
        return {**result, "same_topology": False, "derived_from": None,
                "verdict": check_verdict(None, result["thresholds"], False, 0)}
    same_topology = any(hit["same_topology"] for hit in result["neighbours"])
    # The entry sharing the most weights ranks first (hnn.index.ranking).
    shared = max((hit["shared_marks"] for hit in result["neighbours"]), default=0)
    source = next((hit for hit in result["neighbours"] if _derived(hit)), None)
    return {**result, "same_topology": same_topology,
            "derived_from": None if source is None else {"id": source["id"], "name": source["name"],
                                                          "label": source["label"], "provenance": source["provenance"],
                                                          "shared_marks": source["shared_marks"]},
            "verdict": check_verdict(result["nearest_distance"], result["thresholds"], same_topology, shared,
                                     derived=source is not None)}


def check_weights(index_path: str | Path, model: str, k: int = 5) -> dict:
    """:func:`check_model` for a bare weights file: ``derived`` when its tensors' positional sketches
    say its weights come from an entry's (hnn.provenance.weights_only), else ``new``; the entries
    tested, strongest evidence first. Nothing here needs a checkpoint: there is no code to make."""
    from hnn.provenance.weights_only import read_weights_file

    weights = read_weights_file(model)
    with Index(index_path) as index:
        return check_weights_in(index, weights, model, k)


def check_weights_in(index: Index, weights, model: str, k: int = 5) -> dict:
    """:func:`check_weights` of a read weights file (hnn.provenance.weights_only.WeightsFile) in an open
    index (what a service calls), reported as ``model``."""
    from hnn.provenance.weights_only import CANNOT_TELL

    evidence = weights_evidence(index, weights.fingerprint)
    tested = sorted(evidence, key=lambda entry_id: (-evidence[entry_id].z, entry_id))[:k]
    neighbours = [{**index.get(entry_id).to_dict(), "provenance": describe(evidence[entry_id])}
                  for entry_id in tested]
    source = next((hit for hit in neighbours if hit["provenance"]["derived"]), None)
    return {"model": model, "weights_only": True, "cannot_tell": CANNOT_TELL, "weights": weights.to_dict(),
            "hash": None, "structure": None, "topology": None, "fingerprint": weights.fingerprint is not None,
            "neighbours": neighbours, "family": None,
            "derived_from": None if source is None else {"id": source["id"], "name": source["name"],
                                                          "label": source["label"], "provenance": source["provenance"]},
            "verdict": DERIVED if source is not None else NEW}


def _derived(hit: dict) -> bool:
    return bool(hit["provenance"] and hit["provenance"]["derived"]) or hit["shares_weights"]
