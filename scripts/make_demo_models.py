"""Writes the uploads the README's main job checks, into the folder given (default demo/):

* resnet18_copy.onnx: torchvision resnet18 with another classifier head (10 classes),
  an Identity and a Dropout inserted, fresh random weights, exported by the dynamo
  exporter (the index holds the TorchScript export): a pirated copy.
* efficientnet_b0.onnx: an architecture the index does not hold: a new model.
"""

import sys
from pathlib import Path

import onnx
import torch
import torchvision

from hnn.plugins.frontends.pytorch_frontend import export_module


def pirated_resnet18() -> torch.nn.Module:
    torch.manual_seed(1)
    model = torchvision.models.resnet18()
    model.fc = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Identity(), torch.nn.Linear(512, 10))
    return model


if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "demo")
    folder.mkdir(exist_ok=True)
    onnx.save(export_module(pirated_resnet18(), [1, 3, 224, 224], exporter="dynamo"), str(folder / "resnet18_copy.onnx"))
    onnx.save(export_module(torchvision.models.efficientnet_b0(), [1, 3, 224, 224]), str(folder / "efficientnet_b0.onnx"))
    print(f"wrote {folder}/resnet18_copy.onnx and {folder}/efficientnet_b0.onnx")
