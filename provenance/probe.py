"""A probe: a few hundred bytes of a fingerprint that find its candidates among many entries fast.

An index may hold tens of thousands of fine-tunes of one base model, all of one
architecture; the structural ranking ties them all, and the exact test
(hnn.provenance.evidence) costs milliseconds a pair. The probe narrows them:

- *positional*: the sketches of ``PROBE_LAYERS`` layers spread evenly over the
  layer sequence, with a digest of the sequence's shapes. Between two models of
  one layer sequence, the sketches' agreement is the positional test on those
  layers; across sequences it is not computed.
- *anchored*: ``ANCHORED_BITS`` signs of random projections of the model's mean
  (standardised) Gram: a copy whose units were reordered keeps it.

The candidates of a query are the entries best by either, and only those get the exact test.
"""

from __future__ import annotations

import hashlib

import numpy as np

from hnn.provenance.fingerprint import _SEED, _SKETCH_BYTES, FEATURES, SKETCH_BITS, Fingerprint

PROBE_LAYERS = 4  # 4 x 64 bytes: the probes of 10,000 entries are read on every query (about 3 MB)
ANCHORED_BITS = 256
_DIGEST_BYTES = 8
PROBE_BYTES = _DIGEST_BYTES + ANCHORED_BITS // 8 + PROBE_LAYERS * _SKETCH_BYTES


def probe(fingerprint: Fingerprint) -> bytes:
    """PROBE_BYTES: the shapes digest, the anchored signs, the positional sketches (zeros where missing)."""
    digest = hashlib.blake2b(repr(fingerprint.shapes).encode(), digest_size=_DIGEST_BYTES).digest()
    anchored = np.zeros(ANCHORED_BITS // 8, np.uint8)
    if len(fingerprint.grams):
        grams = fingerprint.grams - fingerprint.grams.mean(axis=1, keepdims=True)
        norms = np.linalg.norm(grams, axis=1, keepdims=True)
        mean = (grams / np.where(norms > 0, norms, 1.0)).mean(axis=0)
        anchored = np.packbits(_hyperplanes() @ mean > 0)
    positional = np.zeros((PROBE_LAYERS, _SKETCH_BYTES), np.uint8)
    if len(fingerprint.sketches):
        positional[:] = fingerprint.sketches[_probe_layers(len(fingerprint.sketches))]
    return digest + anchored.tobytes() + positional.tobytes()


def probe_scores(query: bytes, probes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Of ``probes`` (n, PROBE_BYTES uint8) against ``query``: the positional z (-inf for another layer
    sequence) and the anchored signs' agreement (ANCHORED_BITS for the same, about half for unrelated)."""
    # As 64-bit words (every part is a whole number of them): one XOR and one popcount per word.
    words = np.ascontiguousarray(probes).view(np.uint64)
    query = np.frombuffer(query, np.uint64)
    digest, at = _DIGEST_BYTES // 8, (_DIGEST_BYTES + ANCHORED_BITS // 8) // 8
    same_sequence = words[:, 0] == query[0] if digest == 1 else np.all(words[:, :digest] == query[:digest], axis=1)
    anchored = ANCHORED_BITS - np.bitwise_count(words[:, digest:at] ^ query[digest:at]).sum(axis=1, dtype=np.int64)
    differing = np.bitwise_count(words[:, at:] ^ query[at:]).sum(axis=1, dtype=np.int64)
    bits = PROBE_LAYERS * SKETCH_BITS
    positional = np.where(same_sequence, (bits / 2 - differing) / np.sqrt(bits / 4), -np.inf)
    return positional, anchored


def _probe_layers(count: int) -> np.ndarray:
    return np.linspace(0, count - 1, PROBE_LAYERS).round().astype(int)


def _hyperplanes() -> np.ndarray:
    return np.random.default_rng([_SEED, ANCHORED_BITS]).standard_normal((ANCHORED_BITS, FEATURES))
