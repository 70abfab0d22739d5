"""Training HNN-Net on a zoo dataset.

Each step takes a batch of training graphs, embeds them once, and applies the
loss to every pair in the batch with the pairs' cached GED (so a batch of 32
graphs gives 496 pairs). Adam, the paper's learning rate. Every few epochs the
model hashes a validation set carved out of the training split (the last
training augmentation of each model, never trained on) against the rest, and
the checkpoint with the best source-model mAP is kept. On the CPU a fixed seed
gives the same checkpoint.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hnn.errors import UsageError
from hnn.hasher.bits import hamming_matrix
from hnn.hasher.runtime import embed, pick_device
from hnn.hasher.training.config import TrainConfig
from hnn.zoo.dataset import source_of

log = logging.getLogger("hnn.train")


@dataclass
class Prepared:
    """A dataset ready for training: tensors, labels, GED, splits by index."""

    names: list[str]
    records: list[dict]
    tensors: list
    family_index: np.ndarray
    families: list[str]
    vocabulary: list[str]
    ged: np.ndarray
    train: np.ndarray
    validation: np.ndarray
    rules: str
    rules_digest: str
    graphs: list  # the IR graphs behind ``tensors`` (the width augmentation rescales them)


def prepare(data_dir: str | Path, config: TrainConfig, progress=None) -> Prepared:
    from hnn.hasher.batching import to_tensors
    from hnn.hasher.features import build_vocabulary
    from hnn.zoo.build import load_manifest
    from hnn.zoo.dataset import dataset_graphs, pairwise_ged
    from hnn.zoo.splits import split

    manifest = load_manifest(data_dir)
    records, graphs = dataset_graphs(data_dir, config.kind)
    names = [r["name"] for r in records]
    position = {name: i for i, name in enumerate(names)}
    train_names = split(manifest, config.split)["train"]
    train = [position[name] for name in train_names]
    # validation: each training model's highest-numbered training augmentation
    last = {}
    for i in train:
        record = records[i]
        if "index" in record:
            key = record["source"]
            if key not in last or record["index"] > records[last[key]]["index"]:
                last[key] = i
    validation = sorted(last.values())
    train = [i for i in train if i not in set(validation)]
    vocabulary = build_vocabulary([graphs[i] for i in train])
    families = sorted({records[i]["family"] for i in train})
    family_of = {f: k for k, f in enumerate(families)}
    _, matrix, _ = pairwise_ged(data_dir, kind=config.kind, cap=config.cap, progress=progress,
                                loaded=(records, graphs))
    return Prepared(
        names=names, records=records,
        tensors=[to_tensors(g, vocabulary, config.size_features, config.sizes, config.wl_bins) for g in graphs],
        family_index=np.array([family_of.get(r["family"], -1) for r in records]), families=families,
        vocabulary=vocabulary, ged=matrix.astype(np.float32), train=np.array(train),
        validation=np.array(validation), rules=manifest["rules"], rules_digest=manifest.get("rules_digest", ""),
        graphs=graphs,
    )


def width_scaled(graph, factor: float):
    """``graph`` with every node's FLOPs and parameters times ``factor`` (a width change's cost)."""
    from dataclasses import replace

    return replace(graph, nodes=[replace(node, flops=int(node.flops * factor), params=int(node.params * factor))
                                 for node in graph.nodes])


def batch_tensors(data: Prepared, index: np.ndarray, config: TrainConfig, rng: np.random.Generator) -> list:
    """The batch's tensors; with ``config.width_jitter``, half of them width-scaled (see TrainConfig)."""
    if not config.width_jitter:
        return [data.tensors[i] for i in index]
    from hnn.hasher.batching import to_tensors

    tensors = []
    for i in index:
        if rng.random() < 0.5:
            width = rng.uniform(1 - config.width_jitter, 1)
            tensors.append(to_tensors(width_scaled(data.graphs[i], width ** 2), data.vocabulary,
                                      config.size_features, config.sizes, config.wl_bins))
        else:
            tensors.append(data.tensors[i])
    return tensors


def validation_score(model, data: Prepared, device) -> dict:
    """Source-model and family mAP of validation queries against the rest of the training split."""
    from hnn.hasher.training.metrics import retrieval_metrics

    codes = embed(model, [data.tensors[i] for i in [*data.validation, *data.train]], device)["code"] > 0.5
    queries, database = codes[: len(data.validation)], codes[len(data.validation):]
    distances = hamming_matrix(queries, database)
    sources = np.array([source_of(r) for r in data.records])
    source_relevant = sources[data.validation][:, None] == sources[data.train][None, :]
    family_relevant = data.family_index[data.validation][:, None] == data.family_index[data.train][None, :]
    return {"source": retrieval_metrics(distances, source_relevant, k=10),
            "family": retrieval_metrics(distances, family_relevant, k=10)}


# Verdict thresholds: the largest Hamming distance at which at most this share of validation
# pairs of *different* source models would be called a match / suspect.
MATCH_FALSE_POSITIVES = 0.001
SUSPECT_FALSE_POSITIVES = 0.05


def measured_thresholds(model, data: Prepared, device) -> dict:
    """Verdict thresholds from validation-vs-training Hamming distances (see the constants above)."""
    codes = embed(model, [data.tensors[i] for i in [*data.validation, *data.train]], device)["code"] > 0.5
    distances = hamming_matrix(codes[: len(data.validation)], codes[len(data.validation):])
    sources = np.array([source_of(r) for r in data.records])
    same = sources[data.validation][:, None] == sources[data.train][None, :]
    different = np.sort(distances[~same])

    def largest_below(rate: float) -> int:
        allowed = int(np.floor(rate * len(different)))
        return int(different[allowed]) - 1 if allowed < len(different) else int(different[-1])

    same_distances = distances[same]
    return {"match": max(largest_below(MATCH_FALSE_POSITIVES), 0),
            "suspect": max(largest_below(SUSPECT_FALSE_POSITIVES), 0),
            "same_source_median": float(np.median(same_distances)) if len(same_distances) else None,
            "different_source_median": float(np.median(different)) if len(different) else None}


def train(data_dir: str | Path, config: TrainConfig, output: str | Path | None = None, progress=None) -> dict:
    """Train, keep the best validation checkpoint (written to ``output``), return the history."""
    import torch

    from hnn.hasher.batching import collate
    from hnn.hasher.checkpoint import save_checkpoint
    from hnn.hasher.features import feature_width
    from hnn.hasher.model import HNNNet, HNNNetConfig
    from hnn.hasher.training.losses import LossWeights, pair_loss

    if config.topology not in ("embedding", "code"):
        raise UsageError(f"--topology {config.topology!r}: choose embedding or code")
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    rng = np.random.default_rng(config.seed)
    data = prepare(data_dir, config)
    if len(data.train) < 2:
        raise UsageError(f"{data_dir}: the {config.split} split leaves fewer than 2 training graphs")
    # Source ids: the training split's models first, so that the source head has one class per
    # model it trains on (held-out models get ids past the head's width and never reach it).
    train_sources = sorted({source_of(data.records[i]) for i in data.train})
    source_names = train_sources + sorted({source_of(r) for r in data.records} - set(train_sources))
    source_id = {name: i for i, name in enumerate(source_names)}
    source_ids = torch.tensor([source_id[source_of(r)] for r in data.records], device=device)
    width = feature_width(data.vocabulary, config.size_features, config.sizes)
    model = HNNNet(HNNNetConfig(in_channels=width, bits=config.bits,
                                families=len(data.families) if config.beta else 0,
                                sources=len(train_sources) if config.source_beta else 0,
                                size_features=config.size_features,
                                sizes=config.sizes, wl_bins=config.wl_bins,
                                wl_init=config.wl_init)).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    weights = LossWeights(alpha=config.alpha, beta=config.beta, gamma=config.gamma, cap=config.cap,
                          topology=config.topology, same_source_shrink=config.same_source_shrink,
                          source_margin=config.source_margin, source_beta=config.source_beta,
                          decorrelation=config.decorrelation)
    ged = torch.from_numpy(data.ged).to(device)
    families = torch.from_numpy(data.family_index).to(device)
    history, best, best_state = [], -1.0, None
    started = time.perf_counter()
    steps_per_epoch = int(np.ceil(len(data.train) / config.batch_size))
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = rng.permutation(data.train)
        parts_sum: dict[str, float] = {}
        for step in range(steps_per_epoch):
            index = order[step * config.batch_size:(step + 1) * config.batch_size]
            if len(index) < 2:
                continue
            out = model(*collate(batch_tensors(data, index, config, rng), device))
            selector = torch.from_numpy(index).to(device)
            loss, parts = pair_loss(out, ged[selector][:, selector], families[selector], weights,
                                    sources=source_ids[selector])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            for key, value in parts.items():
                parts_sum[key] = parts_sum.get(key, 0.0) + value / steps_per_epoch
        record = {"epoch": epoch, **{k: round(v, 4) for k, v in parts_sum.items()},
                  "seconds": round(time.perf_counter() - started, 1)}
        if epoch % config.validate_every == 0 or epoch == config.epochs:
            score = validation_score(model, data, device)
            record["val_source_map"] = round(score["source"]["map"], 4)
            record["val_family_map"] = round(score["family"]["map"], 4)
            if score["source"]["map"] > best:
                best = score["source"]["map"]
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                record["best"] = True
        history.append(record)
        if progress:
            progress(epoch, config.epochs, record)
    model.load_state_dict(best_state)
    limits = measured_thresholds(model, data, device)
    model.cpu()
    if output is not None:
        save_checkpoint(
            output, model, data.vocabulary, data.families, rules=data.rules, rules_digest=data.rules_digest,
            meta={"train_config": asdict(config), "data": str(data_dir), "best_val_source_map": best,
                  "history": history, "thresholds": limits},
        )
    return {"history": history, "best_val_source_map": best, "thresholds": limits,
            "seconds": round(time.perf_counter() - started, 1), "model": model, "data": data}
