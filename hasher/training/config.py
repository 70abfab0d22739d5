"""Training configuration: the paper's settings, hnn's defaults, and what `hnn train` may change."""

from __future__ import annotations

from dataclasses import dataclass, replace

from hnn.errors import UsageError
from hnn.hasher.features import SIZES


@dataclass(frozen=True)
class TrainConfig:
    bits: int = 32
    epochs: int = 60
    batch_size: int = 32
    lr: float = 1e-3
    alpha: float = 10.0
    beta: float = 10.0
    gamma: float = 0.2
    cap: int = 100
    topology: str = "embedding"
    kind: str = "merged"
    split: str = "paper"
    seed: int = 0
    device: str = "auto"
    validate_every: int = 5
    same_source_shrink: float = 1.0
    source_margin: float = 0.0
    size_features: bool = False
    # How node sizes are bucketed (hnn.hasher.features.SIZES): absolute, as in the paper, or
    # resolution (FLOPs as at 224x224 input), relative (to the graph's median node), ratios (each
    # layer's size over its input's instead of buckets) or resolution+ratios (both).
    sizes: str = "absolute"
    # Training augmentation (not in the paper): a graph in a batch is, with probability 1/2,
    # seen with every node's FLOPs and parameters scaled by s^2, s uniform in
    # [1 - width_jitter, 1] (the cost of channels pruned by a share 1 - s), as the same source.
    width_jitter: float = 0.0
    # L_source (not in the paper): cross-entropy of each graph's source model, from a second
    # head on FC3, so that the embedding separates sibling architectures (resnet18 / resnet34).
    source_beta: float = 0.0
    # L_decor (not in the paper; hnn.hasher.training.losses): decorrelates the code's bits over
    # each batch, against codes whose bits move together (crowding).
    decorrelation: float = 0.0
    # The WL branch (not in the paper; hnn.hasher.model): the graph's WL vector of this many
    # slots, projected into the code layer (0: none).
    wl_bins: int = 0
    wl_init: float = 1.0


# What `hnn train` uses: the code-form topology loss with source-aware targets and the
# source-model head, measured best on the paper split's validation set (docs/hasher.md
# has the comparison).
DEFAULT_CONFIG = TrainConfig(topology="code", same_source_shrink=0.25, source_margin=0.5, source_beta=10.0)


def configure(bits: int = 32, epochs: int = 100, device: str = "auto", seed: int = 0, split: str = "paper",
              kind: str = "merged", topology: str = "code", with_class: bool = True,
              source_weight: float | None = None, size_features: bool = False,
              width_jitter: float = 0.0, sizes: str = "absolute", decorrelation: float = 0.0,
              wl_bins: int = 0, wl_init: float = 1.0) -> TrainConfig:
    """DEFAULT_CONFIG with what `hnn train` lets a user choose; ``with_class=False`` drops both
    classification heads (L_class and L_source), ``source_weight`` None keeps the default's."""
    if sizes not in SIZES:
        raise UsageError(f"unknown sizes {sizes!r}; choose from {', '.join(SIZES)}")
    if wl_init != 1.0 and not wl_bins:
        raise UsageError("--wl-init sets the WL branch's initial spread: it needs --wl-bins")
    source_beta = DEFAULT_CONFIG.source_beta if source_weight is None else source_weight
    return replace(DEFAULT_CONFIG, bits=bits, epochs=epochs, device=device, seed=seed, split=split, kind=kind,
                   topology=topology, beta=DEFAULT_CONFIG.beta if with_class else 0.0,
                   source_beta=source_beta if with_class else 0.0, size_features=size_features,
                   width_jitter=width_jitter, sizes=sizes, decorrelation=decorrelation, wl_bins=wl_bins,
                   wl_init=wl_init)
