"""The verdict policy: what a code distance, a shared topology and shared weights mean.

`hnn compare` says ``match``, ``suspect`` or ``different`` of two models; `hnn check`
says ``match``, ``suspect`` or ``new`` of an upload against the index (a platform
asks "is this a copy?", so ``different`` is ``new`` there). Both come from
:func:`verdict` with the thresholds of :func:`thresholds`.
"""

from __future__ import annotations

from hnn.ingest.weights import MARKS

# Verdict thresholds as a share of the code's bits, used when the checkpoint holds none.
# `hnn train` stores thresholds measured on its validation set in the checkpoint instead.
DEFAULT_MATCH_SHARE = 1 / 16
DEFAULT_SUSPECT_SHARE = 1 / 4
# Weight marks two models must share (of MARKS) to be at least `suspect` / a `match`: a pruned
# copy keeps most of its original's values (30% pruned: 41 or more, benchmarks/evasion.py), two
# independently initialised models share none.
SHARED_SUSPECT = 8
SHARED_MATCH = 32

NEW = "new"
CHECK_EXIT_CODES = {NEW: 0, "suspect": 3, "match": 4}


def thresholds(checkpoint) -> dict[str, int]:
    """Hamming distances at or below which two codes of ``checkpoint`` are a ``match``, or ``suspect``."""
    stored = checkpoint.meta.get("thresholds")
    if stored:
        return {"match": int(stored["match"]), "suspect": int(stored["suspect"])}
    return {"match": int(checkpoint.bits * DEFAULT_MATCH_SHARE), "suspect": int(checkpoint.bits * DEFAULT_SUSPECT_SHARE)}


def verdict(distance: int, limits: dict[str, int], same_topology: bool = False, shared_marks: int = 0) -> str:
    """``match`` or ``suspect`` by the code's distance against the thresholds, else ``different``;
    at least ``suspect`` for two graphs of one topology (one architecture at other widths: what
    structured pruning or widening makes of a model moves its code, not its topology), and for
    two models that share SHARED_SUSPECT weight marks; ``match`` for SHARED_MATCH shared marks,
    a quarter of the weights: a copy, however its layers were cut."""
    if distance <= limits["match"] or shared_marks >= SHARED_MATCH:
        return "match"
    if distance <= limits["suspect"] or same_topology or shared_marks >= SHARED_SUSPECT:
        return "suspect"
    return "different"


def check_verdict(distance: int | None, limits: dict[str, int], same_topology: bool, shared_marks: int) -> str:
    """The verdict of `hnn check`: :func:`verdict`, with ``new`` for ``different`` and for an empty index."""
    if distance is None:
        return NEW
    said = verdict(distance, limits, same_topology, shared_marks)
    return NEW if said == "different" else said


def weight_sharing(count: int) -> dict:
    """What `hnn compare` and `hnn index query` report of two models that share ``count`` weight
    marks (JSON-ready)."""
    return {"shared_marks": count, "shared_weights": round(count / MARKS, 3), "shares_weights": count >= SHARED_SUSPECT}
