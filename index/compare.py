"""``hnn compare``: two models' code distance, structures, shared weights, provenance test and verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hnn.hasher.runtime import hash_with, load
from hnn.hasher.structure import compare_structures
from hnn.index.derivation import describe
from hnn.index.verdicts import thresholds, verdict, weight_sharing
from hnn.ingest.weights import shared_marks
from hnn.provenance.evidence import compare as compare_fingerprints


def compare(a: Any, b: Any, checkpoint: str | Path | None = None, bits: int | None = None,
            **ingest_options) -> dict:
    """Hamming distance, similarity (1 - distance / Q) and verdict of two models; of a bare weights
    file and another model (or two such files), the provenance test alone (:func:`compare_weights`)."""
    from hnn.provenance.weights_only import is_bare_weights

    if is_bare_weights(a) or is_bare_weights(b):
        return compare_weights(a, b, checkpoint, bits, **ingest_options)
    loaded = load(checkpoint, bits)
    first = hash_with(loaded, a, **ingest_options)
    second = hash_with(loaded, b, **ingest_options)
    distance = int((first.code != second.code).sum())
    limits = thresholds(loaded)
    structures = compare_structures(first.structure, second.structure)
    weights = weight_sharing(shared_marks(first.weight_marks, second.weight_marks))
    evidence = None
    if first.fingerprint is not None and second.fingerprint is not None:
        evidence = compare_fingerprints(first.fingerprint, second.fingerprint)
    return {"a": first.to_dict(), "b": second.to_dict(), "distance": distance, **structures, **weights,
            "similarity": round(1 - distance / loaded.bits, 4),
            "provenance": None if evidence is None else describe(evidence),
            "verdict": verdict(distance, limits, structures["same_topology"], weights["shared_marks"],
                               derived=evidence is not None and evidence.derived),
            "thresholds": limits}


def compare_weights(a: Any, b: Any, checkpoint: str | Path | None = None, bits: int | None = None,
                    **ingest_options) -> dict:
    """``derived`` or ``different`` by the provenance test alone, where one side (or both) is bare weights:
    a file of tensors has no graph, so no code, distance or topology to compare."""
    from hnn.index.verdicts import DERIVED, DIFFERENT
    from hnn.provenance.weights_only import CANNOT_TELL, is_bare_weights, read_weights_file

    sides, fingerprints = [], []
    for model in (a, b):
        if is_bare_weights(model):
            weights = read_weights_file(model)
            sides.append({"model": str(model), "framework": "safetensors", **weights.to_dict()})
            fingerprints.append(weights.fingerprint)
        else:
            hashed = hash_with(load(checkpoint, bits), model, **ingest_options)
            sides.append(hashed.to_dict())
            fingerprints.append(hashed.fingerprint)
    evidence = None if None in fingerprints else compare_fingerprints(*fingerprints)
    return {"a": sides[0], "b": sides[1], "weights_only": True, "cannot_tell": CANNOT_TELL,
            "provenance": None if evidence is None else describe(evidence),
            "verdict": DERIVED if evidence is not None and evidence.derived else DIFFERENT}
