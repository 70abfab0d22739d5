"""Exact Hamming search over packed codes in memory: faiss's IndexBinaryFlat, or numpy.

Measured by benchmarks/search.py (one core, 64-bit codes): top-10 over 10^6 codes
took 0.6 ms with faiss's IndexBinaryFlat and 6.4 ms with the numpy search below,
so :func:`packed_codes` uses faiss when it is installed (requirements.txt pins it)
and numpy otherwise. Both are exact and return (id, distance) nearest first.

The index (hnn.index.store) does not use either searcher for its queries: a ranked
query needs the k nearest *and* every entry tied with the k-th, which is one pass
of numpy distances and :func:`smallest`, where faiss takes a search and a range
search, and its range search is slow when many codes are equal (a hub's fine-tunes
of one architecture share theirs). On benchmarks/index_scale.py's 10^6 entries of
1000 architectures: faiss's top-5 took 1.0 ms and the range search for the entries
tied with the 5th 17 ms; the one numpy pass, 2.6 ms for both.

The numpy search (``bitwise_count`` over uint64 words):

Codes of Q bits are packed into ceil(Q/64) uint64 words per code; a query XORs
its words with every code's and counts bits, then keeps the k smallest
(a histogram of the distances gives the k-th smallest in one pass) or those
within a radius. Ties are
broken by entry id, so results are reproducible. benchmarks/search.py compares
this with faiss's IndexBinaryFlat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hnn.hasher.bits import to_bytes, to_words


@dataclass
class PackedCodes:
    words: np.ndarray  # uint64 [n, w]
    ids: np.ndarray  # int64 [n]

    @classmethod
    def from_bits(cls, bits: np.ndarray, ids: np.ndarray | None = None) -> "PackedCodes":
        words = to_words(bits) if len(bits) else np.zeros((0, 1), dtype=np.uint64)
        return cls(words, np.arange(len(words)) if ids is None else np.asarray(ids))

    def distances(self, query: np.ndarray) -> np.ndarray:
        packed = to_words(query)[0]
        if self.words.shape[1] == 1:  # the common case (Q <= 64): one word, no reduction
            return np.bitwise_count(self.words[:, 0] ^ packed[0])
        return np.bitwise_count(self.words ^ packed).sum(axis=1, dtype=np.uint32)

    def top_k(self, query: np.ndarray, k: int) -> list[tuple[int, int]]:
        """(id, distance) of the k nearest codes, nearest first, ties by id.

        Distances are small integers (0..Q), so a histogram finds the k-th smallest
        distance in one pass; only codes at or below it are sorted.
        """
        distances = self.distances(query)
        k = min(k, len(distances))
        if k <= 0:
            return []
        cumulative = np.cumsum(np.bincount(distances))
        kth = int(np.searchsorted(cumulative, k))
        candidates = np.flatnonzero(distances <= kth)
        order = np.lexsort((self.ids[candidates], distances[candidates]))[:k]
        chosen = candidates[order]
        return [(int(self.ids[i]), int(distances[i])) for i in chosen]

    def within(self, query: np.ndarray, radius: int) -> list[tuple[int, int]]:
        """(id, distance) of every code within ``radius``, nearest first, ties by id."""
        distances = self.distances(query)
        hits = np.flatnonzero(distances <= radius)
        order = np.lexsort((self.ids[hits], distances[hits]))
        return [(int(self.ids[hits[i]]), int(distances[hits[i]])) for i in order]

    @property
    def nbytes(self) -> int:
        return self.words.nbytes + self.ids.nbytes


class FaissCodes:
    """The same interface over faiss.IndexBinaryFlat (codes padded to whole bytes)."""

    def __init__(self, bits: np.ndarray, ids: np.ndarray):
        import faiss

        bits = np.atleast_2d(bits).astype(bool)
        self.width = ((bits.shape[1] + 7) // 8) * 8
        self.index = faiss.IndexBinaryFlat(self.width)
        if len(bits):
            self.index.add(self._bytes(bits))
        self.ids = np.asarray(ids)

    def _bytes(self, bits: np.ndarray) -> np.ndarray:
        padded = np.zeros((len(bits), self.width), dtype=bool)
        padded[:, : bits.shape[1]] = bits
        return to_bytes(padded)

    def top_k(self, query: np.ndarray, k: int) -> list[tuple[int, int]]:
        k = min(k, self.index.ntotal)
        if k <= 0:
            return []
        distances, positions = self.index.search(self._bytes(np.atleast_2d(query)), k)
        pairs = sorted((int(d), int(self.ids[p])) for d, p in zip(distances[0], positions[0]))
        return [(entry_id, distance) for distance, entry_id in pairs]

    def within(self, query: np.ndarray, radius: int) -> list[tuple[int, int]]:
        _, distances, positions = self.index.range_search(self._bytes(np.atleast_2d(query)), radius + 1)
        pairs = sorted((int(d), int(self.ids[p])) for d, p in zip(distances, positions))
        return [(entry_id, distance) for distance, entry_id in pairs]

    @property
    def nbytes(self) -> int:
        return self.index.ntotal * self.width // 8 + self.ids.nbytes


def packed_codes(bits: np.ndarray, ids: np.ndarray, backend: str = "auto"):
    """A searcher over the codes: faiss when installed (or asked for), else numpy."""
    if backend in ("auto", "faiss"):
        try:
            return FaissCodes(bits, ids)
        except ImportError:
            if backend == "faiss":
                raise
    return PackedCodes.from_bits(bits, ids)
