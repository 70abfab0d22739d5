"""Time of one HNN-Net training step: GCNConv's own propagation against the one shared propagation matrix.

HNN-Net's forward (hnn.hasher.model) applies each GCN layer's weights to one sparse matrix built
per batch (hnn.hasher.layers.normalized_adjacency); GCNConv's forward rebuilds that normalisation in
every layer and propagates by gathering and scattering each edge's message. This script times a
step (forward, backward, Adam; deterministic algorithms, as `hnn train` sets on the CPU) both
ways on random batches of a built zoo's graphs, the two alternating step by step on the same
batches and the same model, one thread, and prints the medians and their ratio. The loss is
the sum of the codes, not `hnn train`'s pair loss (the same for both ways, and what differs
between them is the GCN layers), so the step is a part of a training step's time.

    .venv/bin/python benchmarks/train_step.py --data data/training [--steps 40] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings


def gcnconv_forward(model, x, edge_index, batch, num_graphs, wl=None):
    """HNN-Net's forward as it was before the shared matrix: each layer calls GCNConv itself."""
    import torch

    pooled = []
    for conv, pool in zip(model.convs, model.pools):
        x = torch.relu(conv(x, edge_index))
        pooled.append(pool(x, batch, num_graphs))
    h = torch.cat(pooled, dim=-1)
    for fc in model.fcs:
        h = torch.relu(fc(h))
    return torch.sigmoid(model.code_layer(h))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="data/training", help="a built zoo (hnn zoo build)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import numpy as np
    import torch

    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)
    from hnn.hasher.batching import collate, to_tensors
    from hnn.hasher.features import build_vocabulary, feature_width
    from hnn.hasher.model import HNNNet, HNNNetConfig
    from hnn.zoo.dataset import dataset_graphs

    _, graphs = dataset_graphs(args.data, "merged")
    if len(graphs) < args.batch_size:
        raise SystemExit(f"train_step: {args.data} has {len(graphs)} graphs, fewer than a batch of {args.batch_size}")
    vocabulary = build_vocabulary(graphs)
    tensors = [to_tensors(graph, vocabulary, sizes="resolution") for graph in graphs]
    torch.manual_seed(0)
    model = HNNNet(HNNNetConfig(in_channels=feature_width(vocabulary), bits=64, sizes="resolution"))
    optimiser = torch.optim.Adam(model.parameters())
    rng = np.random.default_rng(0)
    ways = {"gcnconv": lambda *batch: gcnconv_forward(model, *batch),
            "shared matrix": lambda *batch: model(*batch)["code"]}
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    for step in range(args.steps + 2):
        batch = collate([tensors[i] for i in rng.choice(len(tensors), args.batch_size, replace=False)])
        for name, forward in ways.items():
            started = time.perf_counter()
            loss = forward(*batch).sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if step >= 2:  # the first steps warm the allocator
                seconds[name].append(time.perf_counter() - started)
    medians = {name: float(np.median(values)) * 1000 for name, values in seconds.items()}
    result = {"graphs": len(graphs), "steps": args.steps, "batch_size": args.batch_size,
              "median_ms": {name: round(value, 1) for name, value in medians.items()},
              "speedup": round(medians["gcnconv"] / medians["shared matrix"], 2)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['graphs']} graphs, {args.steps} steps of {args.batch_size}: "
              + ", ".join(f"{name} {value} ms" for name, value in result["median_ms"].items())
              + f" (median); speedup {result['speedup']}x")


if __name__ == "__main__":
    main()
