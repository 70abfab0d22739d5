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
    """Hamming distance, similarity (1 - distance / Q) and verdict of two models."""
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
