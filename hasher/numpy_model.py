"""HNN-Net's forward pass in numpy, for hashing without importing torch.

``import torch`` alone takes 3-5 s here, too slow for ``hnn check`` on one
uploaded model. This module computes exactly what :class:`hnn.hasher.model.HNNNet`
computes in eval mode (tests/test_hasher.py checks the two agree) from the
checkpoint's arrays:

* GCNConv: ``X' = D^-1/2 (A + I) D^-1/2 X W^T + b`` with D the degrees including
  the self-loops, then ReLU;
* attention pooling per layer, concatenation, FC1-FC4 with ReLU, FC5 (plus, with ``wl_bins``,
  the projected WL vector) and sigmoid.
"""

from __future__ import annotations

import numpy as np

from hnn.hasher.features import node_features, undirected_edge_index, wl_vector
from hnn.ingest.ir import Graph


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * x))  # the same function, without overflow for large |x|


def gcn_layer(x: np.ndarray, edge_index: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    src = np.concatenate([edge_index[0], np.arange(n)])
    dst = np.concatenate([edge_index[1], np.arange(n)])
    degree = np.bincount(dst, minlength=n).astype(np.float32)
    norm = 1 / np.sqrt(degree[src] * degree[dst])
    h = x @ weight.T
    out = np.zeros((n, h.shape[1]), dtype=h.dtype)
    np.add.at(out, dst, h[src] * norm[:, None])
    return out + bias


def attention_pool(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    context = np.tanh(x.mean(axis=0) @ weight)
    attention = _sigmoid(x @ context)
    return (attention[:, None] * x).sum(axis=0)


def forward(arrays: dict[str, np.ndarray], graph: Graph, vocabulary: list[str], layers: int = 3,
            fcs: int = 4, size_features: bool = False, sizes: str = "absolute", wl_bins: int = 0
            ) -> dict[str, np.ndarray]:
    """Embedding (FC3) and code (sigmoid of FC5) of one graph; with ``wl_bins``, FC5's logits
    (``gcn_logits``) and the WL branch's (``wl_logits``) as well."""
    x = node_features(graph, vocabulary, size_features, sizes)
    edge_index = undirected_edge_index(graph)
    pooled = []
    for layer in range(layers):
        x = _relu(gcn_layer(x, edge_index, arrays[f"convs.{layer}.lin.weight"], arrays[f"convs.{layer}.bias"]))
        pooled.append(attention_pool(x, arrays[f"pools.{layer}.weight"]))
    h = np.concatenate(pooled)
    embedding = None
    for index in range(fcs):
        h = _relu(arrays[f"fcs.{index}.weight"] @ h + arrays[f"fcs.{index}.bias"])
        if index == 2:
            embedding = h
    logits = arrays["code_layer.weight"] @ h + arrays["code_layer.bias"]
    out = {"embedding": embedding}
    if wl_bins:  # the two parts apart too, for benchmarks/wl_branch.py
        out["gcn_logits"], out["wl_logits"] = logits, arrays["wl_layer.weight"] @ wl_vector(graph, wl_bins)
        logits = logits + out["wl_logits"]
    out["code"] = _sigmoid(logits)
    return out
