"""HNN-Net's graph layers: the GCN propagation matrix, and SimGNN's attention pooling written the PyTorch
Geometric way."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

with warnings.catch_warnings():  # torch_geometric's import warns about torch.jit deprecations
    warnings.simplefilter("ignore")
    from torch_geometric.utils import scatter


def normalized_adjacency(edge_index: Tensor, num_nodes: int, dtype: torch.dtype = torch.float32) -> Tensor:
    r"""GCN's propagation matrix :math:`D^{-1/2} (A + I) D^{-1/2}` of a batch, as a sparse [N, N] tensor.

    The same matrix as GCNConv's ``gcn_norm`` (self-loops of weight 1 in place of any the graph has;
    degrees counted at the target; a repeated edge counts twice), built once per batch and shared by
    the three layers, where GCNConv builds it in every layer and propagates by gathering and
    scattering each edge's message: forward, backward and Adam of a batch take 1.36x less time
    on the CPU (benchmarks/train_step.py, median of 40 steps on the training zoo).
    """
    loops = torch.arange(num_nodes, device=edge_index.device)
    keep = edge_index[0] != edge_index[1]
    source = torch.cat([edge_index[0][keep], loops])
    target = torch.cat([edge_index[1][keep], loops])
    degree = torch.zeros(num_nodes, dtype=dtype, device=edge_index.device).index_add_(
        0, target, torch.ones(target.numel(), dtype=dtype, device=edge_index.device))
    scale = degree.rsqrt()
    return torch.sparse_coo_tensor(torch.stack([target, source]), scale[source] * scale[target],
                                   (num_nodes, num_nodes), check_invariants=False).coalesce()


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
