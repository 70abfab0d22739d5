"""Writes the uploads the README's main job checks, into the folder given (default demo/):

* resnet18_copy.onnx: torchvision resnet18 with another classifier head (10 classes),
  an Identity and a Dropout inserted, fresh random weights, exported by the dynamo
  exporter (the index holds the TorchScript export): a pirated copy.
* efficientnet_b0.onnx: an architecture the index does not hold: a new model.
* mnasnet1_0_owned.onnx: a user's own mnasnet1_0 (its own weights), which the demo adds to
  the index beside torchvision's; mnasnet1_0_owned_pruned.onnx: that model with every layer
  pruned by 30% and the rest of its weights kept (the evasion benchmark's pruning). Without its
  weights it would look like mnasnet0_75, which is nearer it in every layer's width.
"""

import sys
from pathlib import Path

import onnx
import torch
import torchvision

from hnn.plugins.frontends.pytorch_frontend import export_module

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from torch_edits import inherit_weights  # noqa: E402


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
    torch.manual_seed(2)
    owned = torchvision.models.mnasnet1_0()
    onnx.save(export_module(owned, [1, 3, 224, 224]), str(folder / "mnasnet1_0_owned.onnx"))
    pruned = inherit_weights(torchvision.models.mnasnet.MNASNet(0.7), owned)
    onnx.save(export_module(pruned, [1, 3, 224, 224]), str(folder / "mnasnet1_0_owned_pruned.onnx"))
    print(f"wrote the uploads to {folder}/")
