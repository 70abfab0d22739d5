"""HNN-Net (Zhu et al., Symmetry 2022): GCN layers, attention pooling, fully connected hash layers."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

with warnings.catch_warnings():  # torch_geometric's import warns about torch.jit deprecations
    warnings.simplefilter("ignore")
    from torch_geometric.nn import GCNConv

from hnn.hasher.layers import AttentionPooling, normalized_adjacency


@dataclass(frozen=True)
class HNNNetConfig:
    """Architecture of HNN-Net; the defaults are the paper's.

    Args:
        in_channels: node feature width (vocabulary size + 22).
        bits: hash length Q.
        families: number of family classes of the classification head (0: no head).
        gcn: output widths of the GCN layers.
        fc: widths of FC1..FC4; FC3 is the embedding the topology loss constrains.
        size_features: the node features end with the graph's size (not in the paper).
        wl_bins: width of the graph's WL vector (hnn.hasher.features.wl_vector) that a linear
            projection adds to the code layer's input (0: none, as in the paper).
    """

    in_channels: int
    bits: int = 32
    families: int = 0
    gcn: tuple[int, ...] = (256, 128, 64)
    fc: tuple[int, ...] = (348, 256, 256, 128)
    size_features: bool = False  # in_channels includes the 3 graph-size columns (hnn.hasher.features)
    sizes: str = "absolute"  # how node sizes are bucketed (hnn.hasher.features.SIZES)
    sources: int = 0  # source-model classes of a second head on FC3 (0: none; not in the paper)
    wl_bins: int = 0
    wl_init: float = 1.0  # standard deviation of the WL projection at initialisation

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "HNNNetConfig":
        return cls(**{**data, "gcn": tuple(data["gcn"]), "fc": tuple(data["fc"])})


class HNNNet(nn.Module):
    r"""Graph to Q-bit code.

    3 x GCN (256, 128, 64) with ReLU -> attention pooling of each layer's node
    embeddings -> concat (448) -> FC1 348 -> FC2 256 -> FC3 256 (embedding)
    -> FC4 128 -> FC5 Q -> sigmoid. A bit is 1 where the sigmoid output is above
    0.5. The classification head maps the FC3 embedding to family logits.

    Shapes:
        - **input:** node features :math:`(N, F_{in})`, edge index :math:`(2, E)`, batch :math:`(N,)`,
          with ``wl_bins`` the graphs' WL vectors :math:`(B, wl\_bins)`
        - **output:** dict with ``embedding`` :math:`(B, 256)`, ``code`` :math:`(B, Q)` in (0, 1),
          ``logits`` :math:`(B, families)` when there is a head
    """

    def __init__(self, config: HNNNetConfig):
        super().__init__()
        if config.bits <= 0 or config.in_channels <= 0:
            raise ValueError(f"{self.__class__.__name__}: bits and in_channels must be positive, got {config}")
        self.config = config
        widths = (config.in_channels, *config.gcn)
        # GCNConv holds each layer's weight and bias (the checkpoint's names: convs.K.lin.weight,
        # convs.K.bias); forward applies them to the batch's one propagation matrix.
        self.convs = nn.ModuleList(GCNConv(a, b) for a, b in zip(widths, widths[1:]))
        self.pools = nn.ModuleList(AttentionPooling(width) for width in config.gcn)
        fc_widths = (sum(config.gcn), *config.fc)
        self.fcs = nn.ModuleList(nn.Linear(a, b) for a, b in zip(fc_widths, fc_widths[1:]))
        self.code_layer = nn.Linear(config.fc[-1], config.bits)
        self.embedding_index = 2  # FC3
        self.classifier = nn.Linear(config.fc[self.embedding_index], config.families) if config.families else None
        self.source_classifier = (nn.Linear(config.fc[self.embedding_index], config.sources)
                                  if config.sources else None)
        # The WL branch (not in the paper): a projection of the unit WL vector straight into FC5's
        # logits, started as SimHash's random hyperplanes (standard normal times wl_init: logits of
        # about that spread), so that training begins from WL-SimHash's separation.
        self.wl_layer = nn.Linear(config.wl_bins, config.bits, bias=False) if config.wl_bins else None
        self._reset_wl_layer()

    def _reset_wl_layer(self) -> None:
        if self.wl_layer is not None:
            nn.init.normal_(self.wl_layer.weight, std=self.config.wl_init)

    def reset_parameters(self) -> None:
        for module in [*self.convs, *self.pools, *self.fcs, self.code_layer, self.classifier,
                       self.source_classifier]:
            if module is not None:
                module.reset_parameters()
        self._reset_wl_layer()

    def forward(self, x: Tensor, edge_index: Tensor, batch: Tensor, num_graphs: int | None = None,
                wl: Tensor | None = None) -> dict:
        num_graphs = int(batch.max()) + 1 if num_graphs is None else num_graphs
        propagation = normalized_adjacency(edge_index, x.shape[0], x.dtype)
        pooled = []
        for conv, pool in zip(self.convs, self.pools):
            x = torch.relu(torch.sparse.mm(propagation, conv.lin(x)) + conv.bias)
            pooled.append(pool(x, batch, num_graphs))
        h = torch.cat(pooled, dim=-1)
        embedding = None
        for index, fc in enumerate(self.fcs):
            h = torch.relu(fc(h))
            if index == self.embedding_index:
                embedding = h
        logits = self.code_layer(h)
        if self.wl_layer is not None:
            if wl is None:
                raise ValueError(f"{self.__class__.__name__}: this model reads WL vectors (wl_bins="
                                 f"{self.config.wl_bins}); build the tensors with to_tensors(..., wl_bins=...)")
            logits = logits + self.wl_layer(wl)
        out = {"embedding": embedding, "code": torch.sigmoid(logits)}
        if self.classifier is not None:
            out["logits"] = self.classifier(embedding)
        if self.source_classifier is not None:
            out["source_logits"] = self.source_classifier(embedding)
        return out

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(in_channels={self.config.in_channels}, bits={self.config.bits}, "
                f"families={self.config.families}, gcn={list(self.config.gcn)}, fc={list(self.config.fc)})")
