"""Robustness of the hash against the rewrites a pirate gets for free.

    .venv/bin/python benchmarks/evasion.py [--models resnet18,vgg16,...] [--bits 64]

For every model of the paper's set, each transformation below makes a copy;
the copy is hashed with the shipped checkpoint and looked up among the
originals of all models. Reported per transformation: Hamming distance to the
original (median, max) and top-1 accuracy (the original is strictly the
nearest; a tie with another model counts as a miss), next to the distances
between different models.

Transformations: rename every node and tensor; insert Identity and Dropout;
upgrade the opset (onnx.version_converter); the other torch exporter (dynamo);
BatchNorm folded into Conv (torch's eval-mode export); fresh weights; another
classifier head (10 classes).
"""

from __future__ import annotations

import argparse
import copy
import statistics
from collections import defaultdict

import numpy as np
import onnx
from onnx import helper

PAPER_MODELS = ["vgg11", "vgg13", "vgg16", "resnet18", "resnet34", "resnet101", "mnasnet0_75", "mnasnet1_0",
                "mnasnet1_3", "densenet121", "densenet161", "densenet201", "squeezenet1_0", "squeezenet1_1",
                "shufflenet_v2_x0_5", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0", "alexnet", "inception_v3",
                "mobilenet_v2", "googlenet"]


def rename_everything(model: onnx.ModelProto) -> onnx.ModelProto:
    model = copy.deepcopy(model)
    graph = model.graph
    keep = {v.name for v in [*graph.input, *graph.output]}
    names: dict[str, str] = {}

    def rename(name: str) -> str:
        return name if not name or name in keep else names.setdefault(name, f"x{len(names)}")

    for init in graph.initializer:
        init.name = rename(init.name)
    for index, node in enumerate(graph.node):
        node.name = f"n{index}"
        node.input[:] = [rename(n) for n in node.input]
        node.output[:] = [rename(n) for n in node.output]
    for value in graph.value_info:
        value.name = rename(value.name)
    return model


def insert_noops(model: onnx.ModelProto) -> onnx.ModelProto:
    """An Identity and a Dropout after every fifth node's first output."""
    model = copy.deepcopy(model)
    nodes = []
    for index, node in enumerate(model.graph.node):
        nodes.append(node)
        if index % 5 == 0 and node.output and node.output[0] not in {o.name for o in model.graph.output}:
            original = node.output[0]
            node.output[0] = f"{original}__pre"
            nodes.append(helper.make_node("Identity", [f"{original}__pre"], [f"{original}__mid"]))
            nodes.append(helper.make_node("Dropout", [f"{original}__mid"], [original]))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def upgrade_opset(model: onnx.ModelProto) -> onnx.ModelProto:
    from onnx import version_converter

    return version_converter.convert_version(model, 21)


def torch_variants(name: str) -> dict[str, onnx.ModelProto]:
    import torch
    import torchvision

    from hnn.plugins.frontends.pytorch_frontend import export_module

    shape = [1, 3, 299, 299] if name == "inception_v3" else [1, 3, 224, 224]
    torch.manual_seed(0)
    module = getattr(torchvision.models, name)()
    variants = {"original": export_module(module, shape)}
    variants["dynamo exporter"] = export_module(module, shape, "dynamo")
    buffer_module = module.eval()
    import io

    buffer = io.BytesIO()
    import warnings

    warnings.simplefilter("ignore")
    torch.onnx.export(buffer_module, (torch.zeros(*shape),), buffer, dynamo=False, opset_version=18,
                      training=torch.onnx.TrainingMode.EVAL)  # eval mode: BatchNorm folded into Conv
    variants["BatchNorm folded"] = onnx.load_model_from_string(buffer.getvalue())
    torch.manual_seed(1)
    variants["fresh weights"] = export_module(getattr(torchvision.models, name)(), shape)
    headed = getattr(torchvision.models, name)()
    layers = [(n, m) for n, m in headed.named_modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    last_name, last = layers[-1]  # the classifier: a Linear, or SqueezeNet's 1x1 Conv
    replacement = (torch.nn.Linear(last.in_features, 10) if isinstance(last, torch.nn.Linear)
                   else torch.nn.Conv2d(last.in_channels, 10, last.kernel_size))
    parent = headed.get_submodule(last_name.rsplit(".", 1)[0]) if "." in last_name else headed
    setattr(parent, last_name.rsplit(".", 1)[-1], replacement)
    variants["10-class head"] = export_module(headed, shape)
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(PAPER_MODELS))
    parser.add_argument("--bits", type=int, default=64)
    args = parser.parse_args()

    from hnn.hasher.api import hash_graphs, load, to_hashable_graph
    from hnn.ingest.pipeline import onnx_to_ir

    checkpoint = load(bits=args.bits)

    def code(model: onnx.ModelProto) -> np.ndarray:
        graph = onnx_to_ir(model, framework="onnx", simplify=False)
        return hash_graphs([to_hashable_graph(graph, checkpoint)], checkpoint)[0]

    names = args.models.split(",")
    originals, copies = {}, defaultdict(dict)
    for name in names:
        variants = torch_variants(name)
        base = variants.pop("original")
        originals[name] = code(base)
        variants["renamed"] = rename_everything(base)
        variants["Identity + Dropout inserted"] = insert_noops(base)
        variants["opset 18 -> 21"] = upgrade_opset(base)
        for kind, model in variants.items():
            try:
                copies[kind][name] = code(model)
            except Exception as exc:  # a transformation a converter cannot take is reported, not fatal
                print(f"{name}: {kind}: failed ({type(exc).__name__}: {str(exc).splitlines()[0][:80]})")
    matrix = np.array([originals[n] for n in names])
    between = [int((matrix[i] != matrix[j]).sum()) for i in range(len(names)) for j in range(i + 1, len(names))]
    print(f"{len(names)} models, {args.bits} bits. Distances between different models: min {min(between)}, "
          f"median {statistics.median(between)}, max {max(between)}")
    print(f"{'transformation':<30} {'median d':>8} {'max d':>6} {'top-1':>7}")
    for kind, codes in copies.items():
        distances, hits = [], 0
        for name, copy_code in codes.items():
            to_all = (matrix != copy_code).sum(axis=1)
            own = to_all[names.index(name)]
            others = np.delete(to_all, names.index(name))
            distances.append(int(own))
            hits += own < others.min()
        print(f"{kind:<30} {statistics.median(distances):>8} {max(distances):>6} {hits / len(codes):>7.2f}")


if __name__ == "__main__":
    main()
