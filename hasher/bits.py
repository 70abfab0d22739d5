"""Binary codes as bytes, words and hex: the one place that packs bits.

A code is a bool array of Q bits, first bit most significant. The index stores
it as bytes (:func:`to_bytes`), the in-memory search as uint64 words
(:func:`to_words`), the CLI and JSON show it as hex (:func:`to_hex`), and the
evaluation and ranking compare many codes at once (:func:`hamming_matrix`).
"""

from __future__ import annotations

import numpy as np


def to_bytes(codes: np.ndarray) -> np.ndarray:
    """Bool codes [..., Q] -> uint8 [..., ceil(Q/8)], big-endian bit order, zero-padded."""
    return np.packbits(np.asarray(codes).astype(bool), axis=-1)


def from_bytes(packed: np.ndarray | bytes, bits: int) -> np.ndarray:
    """The inverse of :func:`to_bytes`: uint8 [..., ceil(Q/8)] (or one code's bytes) -> bool [..., bits]."""
    if isinstance(packed, (bytes, bytearray, memoryview)):
        packed = np.frombuffer(packed, dtype=np.uint8)
    return np.unpackbits(packed, axis=-1)[..., :bits].astype(bool)


def to_words(codes: np.ndarray) -> np.ndarray:
    """Bool codes [n, Q] -> uint64 [n, ceil(Q/64)] (big-endian bit order within each word)."""
    codes = np.atleast_2d(codes).astype(bool)
    n, q = codes.shape
    width = (q + 63) // 64
    padded = np.zeros((n, width * 64), dtype=bool)
    padded[:, :q] = codes
    return to_bytes(padded).view(">u8").astype(np.uint64).reshape(n, width)


def to_hex(code: np.ndarray) -> str:
    """One code as ceil(Q/4) hex digits."""
    value = 0
    for bit in np.asarray(code).astype(int):
        value = (value << 1) | int(bit)
    return f"{value:0{(len(code) + 3) // 4}x}"


def hamming_matrix(queries: np.ndarray, database: np.ndarray) -> np.ndarray:
    """Hamming distances [nq, nd] between 0/1 code matrices."""
    q, d = to_bytes(queries), to_bytes(database)
    return np.bitwise_count(q[:, None, :] ^ d[None, :, :]).sum(-1)
