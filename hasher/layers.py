"""Attention pooling of SimGNN, written the PyTorch Geometric way."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

with warnings.catch_warnings():  # torch_geometric's import warns about torch.jit deprecations
    warnings.simplefilter("ignore")
    from torch_geometric.utils import scatter


class AttentionPooling(nn.Module):
    r"""Graph-level attention pooling from SimGNN (Bai et al., WSDM 2019), used per GCN layer by HNN-Net.

    For the node embeddings :math:`u_i` of one graph,

    .. math::
        c = \tanh\Big(\big(\tfrac{1}{N}\textstyle\sum_i u_i\big) W\Big), \qquad
        a_i = \sigma(u_i^\top c), \qquad
        h = \textstyle\sum_i a_i u_i .

    Args:
        channels (int): size of each node embedding.

    Shapes:
        - **input:** node embeddings :math:`(N, F)`, batch vector :math:`(N,)` assigning nodes to graphs
        - **output:** graph embeddings :math:`(B, F)`
    """

    def __init__(self, channels: int):
        super().__init__()
        if channels <= 0:
            raise ValueError(f"{self.__class__.__name__}: channels must be positive, got {channels}")
        self.channels = channels
        self.weight = nn.Parameter(torch.empty(channels, channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.weight)

    def forward(self, x: Tensor, batch: Tensor, size: int | None = None) -> Tensor:
        size = int(batch.max()) + 1 if size is None else size
        mean = scatter(x, batch, dim=0, dim_size=size, reduce="mean")
        context = torch.tanh(mean @ self.weight)
        attention = torch.sigmoid((x * context[batch]).sum(dim=-1, keepdim=True))
        return scatter(attention * x, batch, dim=0, dim_size=size, reduce="sum")

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels})"
