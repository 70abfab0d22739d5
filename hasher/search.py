"""Exact Hamming search over packed codes in memory (numpy ``bitwise_count`` over uint64 words).

Codes of Q bits are packed into ceil(Q/64) uint64 words per code; a query XORs
its words with every code's and counts bits, then keeps the k smallest
(``argpartition``, then a sort of those k) or those within a radius. Ties are
broken by entry id, so results are reproducible. benchmarks/search.py compares
this with faiss's IndexBinaryFlat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def pack_words(bits: np.ndarray) -> np.ndarray:
    """Bool [n, Q] -> uint64 [n, ceil(Q/64)] (big-endian bit order within each word)."""
    bits = np.atleast_2d(bits).astype(bool)
    n, q = bits.shape
    width = (q + 63) // 64
    padded = np.zeros((n, width * 64), dtype=bool)
    padded[:, :q] = bits
    as_bytes = np.packbits(padded, axis=1)  # [n, width * 8], big-endian bits
    return as_bytes.view(">u8").astype(np.uint64).reshape(n, width)


@dataclass
class PackedCodes:
    words: np.ndarray  # uint64 [n, w]
    ids: np.ndarray  # int64 [n]

    @classmethod
    def from_bits(cls, bits: np.ndarray, ids: np.ndarray | None = None) -> "PackedCodes":
        words = pack_words(bits) if len(bits) else np.zeros((0, 1), dtype=np.uint64)
        return cls(words, np.arange(len(words)) if ids is None else np.asarray(ids))

    def distances(self, query: np.ndarray) -> np.ndarray:
        packed = pack_words(query)[0]
        if self.words.shape[1] == 1:  # the common case (Q <= 64): one word, no reduction
            return np.bitwise_count(self.words[:, 0] ^ packed[0])
        return np.bitwise_count(self.words ^ packed).sum(axis=1, dtype=np.uint32)

    def top_k(self, query: np.ndarray, k: int) -> list[tuple[int, int]]:
        """(id, distance) of the k nearest codes, nearest first, ties by id."""
        distances = self.distances(query)
        k = min(k, len(distances))
        if k <= 0:
            return []
        if k < len(distances):
            candidates = np.argpartition(distances, k - 1)[:k]
            # everything tied with the k-th distance competes on id
            kth = distances[candidates].max()
            candidates = np.flatnonzero(distances <= kth)
        else:
            candidates = np.arange(len(distances))
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
