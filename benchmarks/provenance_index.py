"""Latency of the provenance lookup among many entries of one architecture, on a real index file.

    .venv/bin/python benchmarks/provenance_index.py [--same 1000,10000] [--queries 20]

A hub holds tens of thousands of fine-tunes of one base: one IR, one code, one topology, each
with its own weights. The index holds ``--same`` entries of resnet18 (CIFAR-sized, 10 classes):
one is a real original (seeded torchvision init, exported to ONNX); the others have synthetic
fingerprints of independent models (random positional sketches and Gram values with the
original's layer shapes: what an independent model's look like to the test). The queries are
real copies of the original: fine-tuned (every layer, 100 SGD steps) and with its hidden units
permuted. What is timed is what `hnn check` does after hashing the upload: the structural query
(k = 10) and the provenance lookup (probes of every entry, then the exact test on the candidates),
on a freshly opened index (the probes read from the file) and warm.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def real_fingerprints():
    """The original's fingerprint and two copies': fine-tuned, and with hidden units permuted."""
    import torch
    import torchvision

    from hnn.plugins.frontends.pytorch_frontend import export_module
    from hnn.provenance.fingerprint import fingerprint

    torch.manual_seed(0)
    original = torchvision.models.resnet18(num_classes=10).eval()
    tuned = copy.deepcopy(original).train()
    generator = torch.Generator().manual_seed(1)
    optimizer = torch.optim.SGD(tuned.parameters(), lr=0.01, momentum=0.9)
    for _ in range(100):
        images = torch.randn(8, 3, 32, 32, generator=generator)
        loss = torch.nn.functional.cross_entropy(tuned(images), (images.mean(dim=(1, 2, 3)) > 0).long())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    permuted = copy.deepcopy(original)
    with torch.no_grad():
        for block in [*permuted.layer1, *permuted.layer2, *permuted.layer3, *permuted.layer4]:
            order = torch.randperm(block.conv1.out_channels, generator=generator)
            block.conv1.weight.copy_(block.conv1.weight[order])
            for tensor in (block.bn1.weight, block.bn1.bias, block.bn1.running_mean, block.bn1.running_var):
                tensor.copy_(tensor[order])
            block.conv2.weight.copy_(block.conv2.weight[:, order])
    shape = [1, 3, 32, 32]
    return {name: fingerprint(export_module(model.eval(), shape))
            for name, model in (("original", original), ("fine-tuned", tuned), ("permuted", permuted))}


def synthetic_independent(base, rng):
    """A fingerprint with ``base``'s layer shapes and independent values: random signs, Grams of the same spread."""
    from hnn.provenance.fingerprint import Fingerprint

    grams = rng.standard_normal(base.grams.shape).astype(np.float32) * base.grams.std(axis=1, keepdims=True)
    sketches = rng.integers(0, 256, base.sketches.shape, dtype=np.uint8)
    return Fingerprint(grams, base.shapes, sketches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--same", default="1000,10000")
    parser.add_argument("--queries", type=int, default=20)
    args = parser.parse_args()

    from hnn.hasher.structure import STRUCTURE_BITS, Structure
    from hnn.index.derivation import derivation_evidence
    from hnn.index.store import Index

    rng = np.random.default_rng(0)
    prints = real_fingerprints()
    architecture = Structure(rng.random(STRUCTURE_BITS) < 0.5, "resnet18", np.array([10.0, 20.0]))
    code = rng.random(64) < 0.5
    print(f"{'same architecture':>18} {'query':>11} {'cold ms':>8} {'warm ms':>8} {'top-1':>6} {'add s':>6}")
    for same in (int(size) for size in args.same.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "models.db"
            original_at = int(rng.integers(0, same))
            start = time.perf_counter()
            with Index(path, create=True) as index:
                for number in range(same):
                    stored = prints["original"] if number == original_at else synthetic_independent(prints["original"], rng)
                    index.add(f"m{number}", "x", "onnx", code, "ck", "d-resnet18", structure=architecture,
                              weight_marks=[int(m) for m in rng.integers(0, 1 << 62, 128)], fingerprint=stored)
            added = time.perf_counter() - start
            for name in ("fine-tuned", "permuted"):
                cold, warm, first = [], [], []
                for _ in range(args.queries):
                    start = time.perf_counter()
                    with Index(path) as index:
                        found = index.query(code, k=10, structure=architecture, shared={})
                        evidence = derivation_evidence(index, prints[name], [entry.id for entry, _ in found])
                        cold.append((time.perf_counter() - start) * 1000)
                        start = time.perf_counter()
                        found = index.query(code, k=10, structure=architecture, shared={})
                        evidence = derivation_evidence(index, prints[name], [entry.id for entry, _ in found])
                        warm.append((time.perf_counter() - start) * 1000)
                    best = max(evidence, key=lambda entry_id: evidence[entry_id].z)
                    first.append(best == original_at + 1 and evidence[best].derived)
                print(f"{same:>18} {name:>11} {statistics.median(cold):>8.1f} {statistics.median(warm):>8.1f} "
                      f"{np.mean(first):>6.2f} {added:>6.1f}")


if __name__ == "__main__":
    main()
