"""Graphs as tensors, and many graphs as one disjoint-union batch (what GCNConv consumes)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hnn.hasher.features import node_features, undirected_edge_index, wl_vector
from hnn.ingest.ir import Graph


@dataclass(frozen=True)
class GraphTensors:
    x: torch.Tensor  # [N, F] float32
    edge_index: torch.Tensor  # [2, E] int64
    wl: torch.Tensor | None = None  # [wl_bins] float32, for a model with a WL branch


def to_tensors(graph: Graph, vocabulary: list[str], size_features: bool = False,
               sizes: str = "absolute", wl_bins: int = 0) -> GraphTensors:
    return GraphTensors(torch.from_numpy(node_features(graph, vocabulary, size_features, sizes)),
                        torch.from_numpy(undirected_edge_index(graph)),
                        torch.from_numpy(wl_vector(graph, wl_bins)) if wl_bins else None)


def collate(items: list[GraphTensors], device: torch.device | str = "cpu"):
    """(x, edge_index, batch, num_graphs, wl) of the disjoint union of ``items``; ``wl`` [B, bins] or None."""
    offsets = torch.tensor([0] + [item.x.shape[0] for item in items[:-1]]).cumsum(0)
    x = torch.cat([item.x for item in items])
    edge_index = torch.cat([item.edge_index + offset for item, offset in zip(items, offsets)], dim=1)
    batch = torch.repeat_interleave(torch.arange(len(items)), torch.tensor([item.x.shape[0] for item in items]))
    wl = torch.stack([item.wl for item in items]).to(device) if items[0].wl is not None else None
    return x.to(device), edge_index.to(device), batch.to(device), len(items), wl
