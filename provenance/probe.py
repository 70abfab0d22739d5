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
An index keeps its probes as :class:`ProbeColumns` (each part's words contiguous), and
:func:`best_probes` picks the candidates from them; the anchored part is scanned for every entry,
the positional one only for the entries of the query's layer sequence (grouped apart: at 10^6
entries, the 133,593 of one sequence took 32 ms gathered from every entry's row, 4 ms as a group).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from hnn.provenance.fingerprint import _SEED, _SKETCH_BYTES, FEATURES, SKETCH_BITS, Fingerprint
from hnn.provenance.selection import smallest

PROBE_LAYERS = 4  # 4 x 64 bytes: the probes of 10,000 entries are read on every query (about 3 MB)
ANCHORED_BITS = 256
_DIGEST_BYTES = 8
PROBE_BYTES = _DIGEST_BYTES + ANCHORED_BITS // 8 + PROBE_LAYERS * _SKETCH_BYTES
# As 64-bit words (every part is a whole number of them): the digest (one word), the anchored signs, the sketches.
PROBE_WORDS = PROBE_BYTES // 8
ANCHORED_WORDS = ANCHORED_BITS // 64
_AT = 1 + ANCHORED_WORDS  # where the positional words start
_POSITIONAL_BITS = PROBE_LAYERS * SKETCH_BITS


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
    same_sequence = words[:, 0] == query[0]
    anchored = ANCHORED_BITS - np.bitwise_count(words[:, 1:_AT] ^ query[1:_AT]).sum(axis=1, dtype=np.int64)
    positional = np.full(len(words), -np.inf)
    # Only the entries of the query's layer sequence have a positional score.
    differing = np.bitwise_count(words[same_sequence, _AT:] ^ query[_AT:]).sum(axis=1, dtype=np.int64)
    positional[same_sequence] = (_POSITIONAL_BITS / 2 - differing) / np.sqrt(_POSITIONAL_BITS / 4)
    return positional, anchored


@dataclass(frozen=True)
class ProbeColumns:
    """The probes of many entries, split into their parts as 64-bit words and laid out for one
    query's scan: the digests (n), the anchored signs (ANCHORED_WORDS rows of n: a row per word, so
    that the scan of every entry reads contiguous memory), and the positional sketches grouped by
    layer sequence (``sequences``: digest -> the positions of its probes, ascending, and their
    sketches as POSITIONAL_WORDS rows of as many: only the query's group is read, contiguously)."""

    digests: np.ndarray  # uint64 [n]
    anchored: np.ndarray  # uint64 [ANCHORED_WORDS, n]
    sequences: Mapping[int, tuple[np.ndarray, np.ndarray]]  # digest -> (int64 [m], uint64 [POSITIONAL_WORDS, m])

    @classmethod
    def of(cls, probes: np.ndarray) -> ProbeColumns:
        """From probes as uint8 rows (n, PROBE_BYTES)."""
        words = np.ascontiguousarray(probes, dtype=np.uint8).view(np.uint64).reshape(len(probes), PROBE_WORDS)
        digests = words[:, 0].copy()
        return cls(digests, np.ascontiguousarray(words[:, 1:_AT].T), by_sequence(digests, words[:, _AT:]))

    def __len__(self) -> int:
        return len(self.digests)


def by_sequence(digests: np.ndarray, positional: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Positional sketches (n, POSITIONAL_WORDS) grouped by digest, as ProbeColumns.sequences holds them."""
    order = np.argsort(digests, kind="stable")
    ordered, rows = digests[order], positional[order]  # one gather, then each group's rows are contiguous
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if len(order) else np.zeros(0, np.int64)
    ends = np.r_[starts[1:], len(order)].astype(np.int64)
    return {int(ordered[start]): (order[start:end].copy(), np.ascontiguousarray(rows[start:end].T))
            for start, end in zip(starts, ends)}


def best_probes(query: bytes, probes: ProbeColumns, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the ``count`` probes best by the positional score and of the ``count`` best by
    the anchored agreement, best first, ties by position: what the first ``count`` of a stable
    descending sort of :func:`probe_scores` are, less those of another layer sequence (no score)."""
    words = np.frombuffer(query, np.uint64)
    anchored = differing_bits(probes.anchored, words[1:_AT])  # differing signs: fewer is better
    sequence = probes.sequences.get(int(words[0]))
    if sequence is None:  # no entry of the query's layer sequence: none has a positional score
        return np.zeros(0, np.int64), smallest(anchored, count)
    positions, sketches = sequence
    return positions[smallest(differing_bits(sketches, words[_AT:]), count)], smallest(anchored, count)


# Entries scanned at once: a chunk's temporaries (8 bytes an entry) stay in the cache, and are allocated
# once per scan, not once per word (a new array of 10^6 words costs its page faults each time).
_SCAN_CHUNK = 16384


def differing_bits(rows: np.ndarray, words: np.ndarray) -> np.ndarray:
    """uint16 [n]: the bits in which each column of ``rows`` (uint64 [W, n]) differs from ``words`` (uint64 [W])."""
    total = np.zeros(rows.shape[1], np.uint16)
    width = min(_SCAN_CHUNK, rows.shape[1])
    xor, counts = np.empty(width, np.uint64), np.empty(width, np.uint8)
    for start in range(0, rows.shape[1], _SCAN_CHUNK):
        end = min(start + _SCAN_CHUNK, rows.shape[1])
        span, out = slice(start, end), total[start:end]
        for row, word in enumerate(words):
            np.bitwise_xor(rows[row, span], word, out=xor[:end - start])
            np.bitwise_count(xor[:end - start], out=counts[:end - start])
            np.add(out, counts[:end - start], out=out)
    return total


def best_for_tensors(fingerprint: Fingerprint, probes: ProbeColumns, count: int) -> np.ndarray:
    """Positions of the ``count`` probes whose positional sketches come nearest any sketch of an
    unordered fingerprint (bare weights, hnn.provenance.weights_only), best first: its tensors have
    no layer sequence to group the probes by, so every probe's every sketch is compared with every
    one of the query's (a scan of entries x PROBE_LAYERS x the query's sketches; a copy's probe
    sketches are among its original's tensors', an independent model's agree in about half)."""
    queries = np.ascontiguousarray(fingerprint.sketches, dtype=np.uint8).view(np.uint64)  # (rows, words)
    if not len(probes) or not len(queries):
        return np.zeros(0, np.int64)
    positions = np.concatenate([group for group, _ in probes.sequences.values()])
    sketches = np.concatenate([words for _, words in probes.sequences.values()], axis=1)  # [POSITIONAL_WORDS, n]
    words_per_sketch = SKETCH_BITS // 64
    nearest = np.full(len(probes), SKETCH_BITS, np.int64)
    for start in range(0, len(positions), _TENSOR_SCAN_CHUNK):
        span = slice(start, start + _TENSOR_SCAN_CHUNK)
        best = np.full(len(positions[span]), SKETCH_BITS, np.int64)
        for slot in range(PROBE_LAYERS):
            theirs = sketches[slot * words_per_sketch:(slot + 1) * words_per_sketch, span].T  # (chunk, words)
            differing = np.bitwise_count(queries[:, None, :] ^ theirs[None, :, :]).sum(axis=2, dtype=np.int64)
            np.minimum(best, differing.min(axis=0), out=best)
        nearest[positions[span]] = best
    return smallest(nearest, count)


# Entries compared at once with an unordered query's sketches: (query sketches x chunk x 8) words of temporaries.
_TENSOR_SCAN_CHUNK = 512


def _probe_layers(count: int) -> np.ndarray:
    return np.linspace(0, count - 1, PROBE_LAYERS).round().astype(int)


@lru_cache(maxsize=1)
def _hyperplanes() -> np.ndarray:  # drawn once: 0.9 ms a probe otherwise (an add, a query)
    return np.random.default_rng([_SEED, ANCHORED_BITS]).standard_normal((ANCHORED_BITS, FEATURES))
