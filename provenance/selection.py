"""Picking the few smallest of many scores, as a stable argsort would, without sorting them all.

Used where one query scores every entry of an index: the probe scan (hnn.provenance.probe) and
the index's ranked query (hnn.index.store). Here, at the lowest stage that needs it.
"""

from __future__ import annotations

import numpy as np


def smallest(values: np.ndarray, count: int) -> np.ndarray:
    """Positions of the ``count`` smallest of ``values``, smallest first, ties by position: the first
    ``count`` of a stable argsort, without sorting the rest (the ``count``-th smallest value by a
    histogram or a partition, then a sort of the ``count`` chosen)."""
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    if len(values) <= count:
        return np.argsort(values, kind="stable")
    if count == 1:
        return np.array([np.argmin(values)])  # the first of the smallest
    if values.dtype == np.uint8:  # Hamming distances: many ties, which a partition is slow on (7 ms at 10^6)
        lowest, taken, kth = int(values.min()), 0, None
        for value in range(lowest, lowest + 4):  # the count-th smallest is most often a step or two up
            taken += int(np.count_nonzero(values == value))
            if taken >= count:
                kth = value
                break
        if kth is None:
            kth = int(np.searchsorted(np.cumsum(np.bincount(values)), count))
    else:
        kth = np.partition(values, count - 1)[count - 1]
    below = np.flatnonzero(values < kth)
    chosen = np.concatenate([below, np.flatnonzero(values == kth)[:count - len(below)]])
    return chosen[np.argsort(values[chosen], kind="stable")]
