"""Regenerate ingest/examples/small_cnn.onnx, the bundled example of `hnn ingest`.

A small CNN (Conv-BN-ReLU blocks, a residual add, global pooling, a dense head)
exported by torch's TorchScript exporter through hnn's own PyTorch front-end,
with BatchNormalization kept. Weights are seeded, so reruns write the same graph.

    .venv/bin/python scripts/make_example.py
"""

from pathlib import Path

import onnx
import torch
from torch import nn

from hnn.plugins.frontends.pytorch_frontend import export_module


class SmallCNN(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.block = nn.Sequential(
            nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(16, classes)

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(x + self.block(x))
        return self.head(torch.flatten(self.pool(x), 1))


if __name__ == "__main__":
    torch.manual_seed(0)
    target = Path(__file__).resolve().parent.parent / "ingest" / "examples" / "small_cnn.onnx"
    model = export_module(SmallCNN(), [1, 3, 32, 32])
    model.producer_name = "hnn scripts/make_example.py"
    onnx.save(model, str(target))
    print(f"wrote {target} ({target.stat().st_size} bytes)")
