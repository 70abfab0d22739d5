"""Hashing speed: HNN-Net forward per graph (numpy, and torch one at a time and batched, CPU),
and `hnn check` end to end on an ONNX file (process start included), medians.

    .venv/bin/python benchmarks/hash.py [--data data/paper] [--repeats 5]

Without --data, uses the merged IRs of a few torchvision models ingested on the spot.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from timing import median_seconds  # benchmarks/timing.py, beside this script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import onnx
    import torch
    import torchvision

    from hnn.hasher.batching import to_tensors
    from hnn.hasher.runtime import embed, hash_graphs, load, to_hashable_graph
    from hnn.plugins.frontends.pytorch_frontend import export_module

    checkpoint = load()
    if args.data:
        from hnn.zoo.dataset import dataset_graphs

        graphs = dataset_graphs(args.data, "merged")[1]
    else:
        graphs = [to_hashable_graph(f"torchvision.models:{name}", checkpoint)
                  for name in ("resnet18", "resnet50", "mobilenet_v2", "densenet121", "vgg16")]
    nodes = statistics.median(len(g.nodes) for g in graphs)
    numpy_each = median_seconds(lambda: [hash_graphs([g], checkpoint) for g in graphs], args.repeats) / len(graphs)
    model = checkpoint.torch_model("cpu")
    tensors = [to_tensors(g, checkpoint.vocabulary) for g in graphs]
    torch.set_num_threads(2)
    torch_each = median_seconds(lambda: [embed(model, [t], "cpu") for t in tensors], args.repeats) / len(graphs)
    torch_batch = median_seconds(lambda: embed(model, tensors, "cpu", batch_size=64), args.repeats) / len(graphs)
    print(f"{len(graphs)} graphs, median {nodes:.0f} nodes, {checkpoint.bits} bits")
    print(f"numpy forward, one at a time: {numpy_each * 1000:.2f} ms/graph ({1 / numpy_each:.0f} graphs/s)")
    print(f"torch forward, one at a time: {torch_each * 1000:.2f} ms/graph ({1 / torch_each:.0f} graphs/s)")
    print(f"torch forward, batches of 64: {torch_batch * 1000:.2f} ms/graph ({1 / torch_batch:.0f} graphs/s)")

    with tempfile.TemporaryDirectory() as tmp:
        index, upload = Path(tmp) / "models.db", Path(tmp) / "upload.onnx"
        onnx.save(export_module(torchvision.models.resnet50(), [1, 3, 224, 224]), str(upload))
        hnn = str(Path(sys.executable).with_name("hnn"))
        subprocess.run([hnn, "index", "add", str(index), "torchvision.models:resnet18", "torchvision.models:resnet50"],
                       check=True, capture_output=True)
        check = median_seconds(lambda: subprocess.run([hnn, "check", str(index), str(upload)], capture_output=True),
                               args.repeats)
        print(f"hnn check on a resnet50 ONNX file, end to end: median {check:.2f} s over {args.repeats} runs")


if __name__ == "__main__":
    main()
