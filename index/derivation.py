"""Which index entries is a query derived from? Candidates by probe, then the exact provenance test.

The structural search finds an upload's architecture; among the entries of that
architecture (a hub may hold thousands of fine-tunes of one base) the probes
(hnn.provenance.probe, one per entry, kept in memory by the index) pick the few whose
weights look related (the PROBE_CANDIDATES best by each kind of score), and only those,
with the structural neighbours, get the pairwise test of hnn.provenance.evidence.
"""

from __future__ import annotations

from hnn.provenance.evidence import Evidence, Query
from hnn.provenance.fingerprint import Fingerprint
from hnn.provenance.probe import best_for_tensors, best_probes, probe

# Entries tested per probe kind (positional, anchored), beside the structural neighbours.
PROBE_CANDIDATES = 4
# Entries tested for bare weights, which have no structural neighbours and no anchored probe.
WEIGHTS_CANDIDATES = 8


def derivation_evidence(index, fingerprint: Fingerprint | None, neighbour_ids) -> dict[int, Evidence]:
    """{entry id: the evidence that the query derives from it} for the candidates that have a fingerprint."""
    if fingerprint is None:
        return {}
    candidates = {int(entry_id) for entry_id in neighbour_ids}
    ids, probes = index.probes()
    if len(ids):
        for best in best_probes(probe(fingerprint), probes, PROBE_CANDIDATES):
            candidates.update(int(entry_id) for entry_id in ids[best])
    return _tested(index, fingerprint, candidates)


def weights_evidence(index, fingerprint: Fingerprint | None) -> dict[int, Evidence]:
    """{entry id: the evidence that bare weights (an unordered fingerprint) derive from it} for the
    WEIGHTS_CANDIDATES entries whose probe sketches come nearest the weights' own."""
    if fingerprint is None:
        return {}
    ids, probes = index.probes()
    nearest = best_for_tensors(fingerprint, probes, WEIGHTS_CANDIDATES)
    return _tested(index, fingerprint, {int(ids[best]) for best in nearest})


def _tested(index, fingerprint: Fingerprint, candidates: set[int]) -> dict[int, Evidence]:
    """The exact test of the query against each candidate that has a fingerprint."""
    query = Query(fingerprint)  # prepared once for all the candidates
    return {entry_id: query.against(stored) for entry_id, stored in index.fingerprints(candidates).items()}


def describe(evidence: Evidence) -> dict:
    """What the JSON says of one tested pair: derived or not, the p-value, and the test that decided."""
    strongest = "positional" if evidence.strongest is evidence.positional else "anchored"
    return {**evidence.to_dict(), "test": strongest}
