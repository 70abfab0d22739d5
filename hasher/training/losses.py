"""HNN-Net's loss on every pair of a batch: alpha L_topo + beta L_class + gamma L_quant.

* ``L_topo``, the paper's form (``topology="embedding"``):
  ``(||FC3(M1) - FC3(M2)||^2 - min(GED(M1, M2), R))^2``.
  GHashing's form (``topology="code"``): on the centred code outputs
  ``c = FC5 - 0.5``, whose squared distance equals the Hamming distance once the
  outputs saturate: ``(||c1 - c2||^2 / Q - 0.5 min(GED, R) / R)^2``, i.e. the share
  of differing bits should be half the capped, normalised GED (a GED of R or more:
  half the bits differ, as between unrelated random codes). This trains the code
  distances themselves; the paper's form only shapes FC3 and leaves the codes to
  FC4/FC5, which the quantisation loss alone drives (measured: codes collapse).
  Pairs of unknown GED (a negative entry: hnn.zoo.ged.UNKNOWN) are left out of it.
* ``L_class``: cross-entropy of each graph's family label.
* ``L_quant``: ``-(||FC5(M1) - 0.5||_1 + ||FC5(M2) - 0.5||_1)``, pushing outputs away
  from 0.5; taken per graph (each graph of a batch is in many pairs). In the code
  form it is divided by Q like L_topo: at full Q scale it outweighs L_topo, drives
  every output to 0 or 1 in the first epoch, and the saturated sigmoids stop learning
  (measured: validation mAP stuck at 0.13).

* ``L_decor`` (not in the paper; ``decorrelation`` weight, off by default): the mean squared
  off-diagonal correlation between the code's bits over the batch. Codes whose bits move
  together have fewer distinct values than bits: the shipped 64-bit checkpoint gives its 122
  training models 110 distinct codes, of an effective dimension of about 19
  (benchmarks/code_crowding.py; docs/RESULTS.md, "Decorrelated bits"). Pushing the bits apart
  is the usual remedy in learned hashing for such crowding; measured, it did not cure this one.

Each term is switched off by a zero weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

# In the code form, a GED of R or more asks for half of the bits to differ: what two
# unrelated random codes show, and the most a set of many codes can keep pairwise.
CODE_TARGET_SCALE = 0.5


@dataclass(frozen=True)
class LossWeights:
    alpha: float = 10.0
    beta: float = 10.0
    gamma: float = 0.2
    cap: float = 100.0
    topology: str = "embedding"
    same_source_shrink: float = 1.0
    source_margin: float = 0.0
    source_beta: float = 0.0
    decorrelation: float = 0.0


def bit_correlation_loss(code: Tensor) -> Tensor:
    """Mean squared off-diagonal Pearson correlation between the columns (bits) of ``code`` [B, Q]."""
    centred = code - code.mean(0, keepdim=True)
    scaled = centred / (centred.norm(dim=0, keepdim=True) + 1e-6)
    correlation = scaled.T @ scaled
    off_diagonal = correlation - torch.diag(torch.diagonal(correlation))
    bits = code.shape[1]
    return (off_diagonal ** 2).sum() / (bits * (bits - 1))


def pair_loss(out: dict, ged: Tensor, families: Tensor | None, weights: LossWeights,
              sources: Tensor | None = None) -> tuple[Tensor, dict]:
    """Total loss over all pairs of the batch and its parts (floats, for progress display).

    Args:
        out: HNNNet output for B graphs.
        ged: [B, B] GED between the batch's graphs.
        families: [B] family indices, or None without a classification head.
    """
    code = out["code"]
    bits = code.shape[1]
    rows, cols = torch.triu_indices(len(code), len(code), offset=1)
    estimated = ged[rows, cols] >= 0  # a negative GED is unknown (hnn.zoo.ged.UNKNOWN): no L_topo term
    rows, cols = rows[estimated], cols[estimated]
    target = ged[rows, cols].clamp(max=weights.cap)
    if weights.topology == "code":
        centred = code - 0.5
        distance = ((centred[rows] - centred[cols]) ** 2).sum(-1) / bits
        target = target / weights.cap
        if sources is not None and weights.source_margin:
            same = sources[rows] == sources[cols]
            target = torch.where(same, target * weights.same_source_shrink,
                                 target.clamp(min=weights.source_margin))
        target = target * CODE_TARGET_SCALE
    else:
        embedding = out["embedding"]
        distance = ((embedding[rows] - embedding[cols]) ** 2).sum(-1)
    topo = ((distance - target) ** 2).mean() if len(rows) else code.sum() * 0
    quant = -(code - 0.5).abs().sum(-1).mean()
    if weights.topology == "code":
        quant = quant / bits  # on the same per-bit scale as the code-form L_topo
    total = weights.alpha * topo + weights.gamma * quant
    parts = {"topo": float(topo.detach()), "quant": float(quant.detach())}
    if weights.beta and families is not None and "logits" in out:
        klass = torch.nn.functional.cross_entropy(out["logits"], families)
        total = total + weights.beta * klass
        parts["class"] = float(klass.detach())
    if weights.source_beta and sources is not None and "source_logits" in out:
        source_class = torch.nn.functional.cross_entropy(out["source_logits"], sources)
        total = total + weights.source_beta * source_class
        parts["source_class"] = float(source_class.detach())
    if weights.decorrelation and len(code) > 2:
        decor = bit_correlation_loss(code)
        total = total + weights.decorrelation * decor
        parts["decor"] = float(decor.detach())
    parts["total"] = float(total.detach())
    return total, parts
