"""The verdict policy: what a code distance, a shared topology and the weights mean.

Three answers, of different strength:

- ``derived``: the weights come from a known model (hnn.provenance's test, or
  exact weight values shared: weight marks). The one accusation.
- ``same-architecture``: the structure matches (the code within the suspect
  threshold, or the same topology) and the weights do not say derived: another
  model of a known architecture, or a copy whose weights no longer tell (a lead,
  not an accusation).
- ``new`` (`hnn check`) / ``different`` (`hnn compare`): neither.

Until hnn 0.2 the answers were ``match`` / ``suspect`` by the code alone: an
independent model of an indexed architecture was a ``match``. The exit codes of
`hnn check` keep their order of severity: 4 derived, 3 same-architecture, 0 new.
"""

from __future__ import annotations

from hnn.ingest.weights import MARKS

# Verdict thresholds as a share of the code's bits, used when the checkpoint holds none.
# `hnn train` stores thresholds measured on its validation set in the checkpoint instead.
DEFAULT_MATCH_SHARE = 1 / 16
DEFAULT_SUSPECT_SHARE = 1 / 4
# Weight marks two models must share (of MARKS) to be called derived: a pruned copy keeps most of its
# original's values (30% pruned: 41 or more, benchmarks/evasion.py), two independently initialised
# models share none (exact pairs of neighbouring float32 values: a chance pair is about 2^-64).
SHARED_SUSPECT = 8

DERIVED = "derived"
SAME_ARCHITECTURE = "same-architecture"
NEW = "new"
DIFFERENT = "different"
CHECK_EXIT_CODES = {NEW: 0, SAME_ARCHITECTURE: 3, DERIVED: 4}


def thresholds(checkpoint) -> dict[str, int]:
    """Hamming distances at or below which two codes of ``checkpoint`` are near (``match``) or close
    (``suspect``): the structural thresholds, reported beside the verdict."""
    stored = checkpoint.meta.get("thresholds")
    if stored:
        return {"match": int(stored["match"]), "suspect": int(stored["suspect"])}
    return {"match": int(checkpoint.bits * DEFAULT_MATCH_SHARE), "suspect": int(checkpoint.bits * DEFAULT_SUSPECT_SHARE)}


def verdict(distance: int, limits: dict[str, int], same_topology: bool = False, shared_marks: int = 0,
            derived: bool = False) -> str:
    """``derived`` when the provenance test says so (``derived``) or the two share SHARED_SUSPECT weight
    marks; else ``same-architecture`` when the code is within the suspect threshold or the topology is
    the same (one architecture at other widths: what structured pruning or widening makes of a model
    moves its code, not its topology); else ``different``."""
    if derived or shared_marks >= SHARED_SUSPECT:
        return DERIVED
    if distance <= limits["suspect"] or same_topology:
        return SAME_ARCHITECTURE
    return DIFFERENT


def check_verdict(distance: int | None, limits: dict[str, int], same_topology: bool, shared_marks: int,
                  derived: bool = False) -> str:
    """The verdict of `hnn check`: :func:`verdict`, with ``new`` for ``different`` and for an empty index."""
    if distance is None:
        return NEW
    said = verdict(distance, limits, same_topology, shared_marks, derived)
    return NEW if said == DIFFERENT else said


def weight_sharing(count: int) -> dict:
    """What `hnn compare` and `hnn index query` report of two models that share ``count`` weight
    marks (JSON-ready)."""
    return {"shared_marks": count, "shared_weights": round(count / MARKS, 3), "shares_weights": count >= SHARED_SUSPECT}
