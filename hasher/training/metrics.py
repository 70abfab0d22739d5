"""Retrieval metrics over Hamming rankings (docs/evaluation.md defines them).

Training keeps the checkpoint that scores best on them, and `hnn eval` reports them.

For each query, the database is ranked by Hamming distance to the query's code;
ties keep database order (a stable sort), so results are reproducible. With
``relevant[q, d]`` telling whether database item d is relevant to query q:

* precision@k = relevant items in the top k / k
* recall@k = relevant items in the top k / relevant items in the database
* F1@k = harmonic mean of the two, per query, then averaged over queries (macro)
* AP = mean of precision@rank over the ranks of all relevant items; mAP its mean
* top-1 accuracy = share of queries whose first result is relevant
* R-precision = precision at k = R, the number of relevant items of that query (where
  precision, recall and F1 coincide); free of the recall ceiling a fixed k imposes when a
  query has more than k relevant items (a family of 3 models has 27 at the paper's split)

Queries with no relevant item in the database are skipped (and counted).
"""

from __future__ import annotations

import numpy as np


def retrieval_metrics(distances: np.ndarray, relevant: np.ndarray, k: int) -> dict:
    """Mean precision, recall, F1 at k, mAP and top-1 accuracy over queries with a relevant item."""
    order = np.argsort(distances, axis=1, kind="stable")
    ranked = np.take_along_axis(relevant, order, axis=1)
    has_relevant = ranked.any(axis=1)
    ranked = ranked[has_relevant]
    if not len(ranked):
        return {"queries": 0, "skipped": int((~has_relevant).sum())}
    total_relevant = ranked.sum(axis=1)
    hits_at_k = ranked[:, :k].sum(axis=1)
    precision = hits_at_k / k
    recall = hits_at_k / total_relevant
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0)
    cumulative = ranked.cumsum(axis=1)
    ranks = np.arange(1, ranked.shape[1] + 1)
    average_precision = (ranked * cumulative / ranks).sum(axis=1) / total_relevant
    r_precision = cumulative[np.arange(len(ranked)), total_relevant - 1] / total_relevant
    return {
        "queries": int(len(ranked)),
        "skipped": int((~has_relevant).sum()),
        "precision": float(precision.mean()),
        "recall": float(recall.mean()),
        "f1": float(f1.mean()),
        "map": float(average_precision.mean()),
        "top1": float(ranked[:, 0].mean()),
        "r_precision": float(r_precision.mean()),
    }
