"""Writes the uploads the README's main job checks, into the folder given (default demo/):

* resnet18_own.onnx: a user's own resnet18 (fresh random weights, another classifier head of
  10 classes, an Identity and a Dropout inserted, exported by the dynamo exporter; the index
  holds torchvision's, exported by TorchScript): the same architecture, not a copy.
* efficientnet_b0.onnx: an architecture the index does not hold: a new model.
* mnasnet1_0_owned.onnx: a user's own mnasnet1_0 (its own weights), which the demo adds to
  the index beside torchvision's; mnasnet1_0_owned_pruned.onnx: that model with every layer
  pruned by 30% and the rest of its weights kept (the evasion benchmark's pruning). Without its
  weights it would look like mnasnet0_75, which is nearer it in every layer's width.
* mnasnet1_0_owned_tuned_int8.onnx: that model fine-tuned (every layer, a few SGD steps) and
  then quantized to int8 by onnxruntime (quantize_dynamic): a copy with no weight value left.
"""

import sys
from pathlib import Path

import onnx
import torch
import torchvision

from hnn.plugins.frontends.pytorch_frontend import export_module

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from torch_edits import inherit_weights


def fine_tuned(model: torch.nn.Module, steps: int = 20) -> torch.nn.Module:
    """``model`` after ``steps`` SGD steps on random images (a real gradient: labels from their mean)."""
    generator = torch.Generator().manual_seed(3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    for _ in range(steps):
        images = torch.randn(2, 3, 224, 224, generator=generator)
        labels = (images.mean(dim=(1, 2, 3)) > 0).long()
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
    return model.eval()


def quantized_int8(model: onnx.ModelProto, folder: Path) -> onnx.ModelProto:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source, target = folder / "float.tmp.onnx", folder / "int8.tmp.onnx"
    onnx.save(model, str(source))
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    quantized = onnx.load(str(target))
    source.unlink()
    target.unlink()
    return quantized


def own_resnet18() -> torch.nn.Module:
    torch.manual_seed(1)
    model = torchvision.models.resnet18()
    model.fc = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Identity(), torch.nn.Linear(512, 10))
    return model


if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "demo")
    folder.mkdir(exist_ok=True)
    onnx.save(export_module(own_resnet18(), [1, 3, 224, 224], exporter="dynamo"), str(folder / "resnet18_own.onnx"))
    onnx.save(export_module(torchvision.models.efficientnet_b0(), [1, 3, 224, 224]), str(folder / "efficientnet_b0.onnx"))
    torch.manual_seed(2)
    owned = torchvision.models.mnasnet1_0()
    onnx.save(export_module(owned, [1, 3, 224, 224]), str(folder / "mnasnet1_0_owned.onnx"))
    pruned = inherit_weights(torchvision.models.mnasnet.MNASNet(0.7), owned)
    onnx.save(export_module(pruned, [1, 3, 224, 224]), str(folder / "mnasnet1_0_owned_pruned.onnx"))
    tuned = export_module(fine_tuned(owned), [1, 3, 224, 224])
    onnx.save(quantized_int8(tuned, folder), str(folder / "mnasnet1_0_owned_tuned_int8.onnx"))
    print(f"wrote the uploads to {folder}/")
