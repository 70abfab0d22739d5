"""Copies of torchvision models as a pirate would make them in PyTorch, exported to ONNX.

Each function takes a torchvision model name and returns ONNX models keyed by
the transformation, or leaves out what does not apply to that architecture
(torchvision builds some models from a configuration, which is what makes a
block more or less, or narrower channels, a one-line change; others are not
configurable, and are reported as not covered rather than hacked).

- free rewrites: the other exporter (dynamo), BatchNorm folded (eval-mode
  export), fp16 weights, fresh weights (a fine-tuned copy has the same
  structure and other values), another classifier head on the original's backbone;
- structural: one block added or removed in the third stage; channel widths
  pruned uniformly by 10, 30 and 50% (structured pruning keeps the topology and
  narrows every layer). Each copy keeps the original's weights wherever it has
  the layer (matched by parameter name): a pruned weight keeps a scattered subset
  of its channels, the same subset for every dimension of one size (so a layer's
  kept output channels are its successor's kept inputs), as a magnitude pruner
  keeps the strongest channels rather than the first ones;
- what a pirate does after pruning: the copy pruned by 30% with every weight
  moved slightly (fine-tuned: no value stays bit for bit), and the model built
  30% narrower with new weights (what the benchmark measured before the copies
  kept their weights: a sibling of the original rather than a copy of it).
"""

from __future__ import annotations

import copy
import io
import random
import warnings
import zlib

import onnx

PRUNE_SHARES = (0.1, 0.3, 0.5)


# torchvision's configurations of the paper's configurable families, as its builders take them.
DENSENETS = {"densenet121": (32, (6, 12, 24, 16), 64), "densenet161": (48, (6, 12, 36, 24), 96),
             "densenet201": (32, (6, 12, 48, 32), 64)}  # growth rate, block depths, initial features
VGG_CONFIGS = {"vgg11": "A", "vgg13": "B", "vgg16": "D"}
SHUFFLENET_CHANNELS = {"shufflenet_v2_x0_5": [24, 48, 96, 192, 1024],
                       "shufflenet_v2_x1_5": [24, 176, 352, 704, 1024],
                       "shufflenet_v2_x2_0": [24, 244, 488, 976, 2048]}


def seed_of(name: str) -> int:
    """Each model's own seed, as independently trained models have their own values. One seed for
    all would not do: torch draws every model's weights from one stream, so two architectures
    seeded alike share long runs of it (vgg11 and vgg13 share 125 of 128 weight marks)."""
    return zlib.crc32(name.encode()) * 2  # even: the seed + 1 of "fresh weights" is no other model's


def input_shape(name: str) -> list[int]:
    return [1, 3, 299, 299] if name == "inception_v3" else [1, 3, 224, 224]


def _export_raw(module, shape, dtype=None, training=None) -> onnx.ModelProto:
    """torch.onnx.export with the options hnn's own front-end does not use (eval-mode folding, fp16 input)."""
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.zeros(*shape, dtype=dtype or torch.float32),), buffer,
                          dynamo=False, opset_version=18, training=training or torch.onnx.TrainingMode.PRESERVE)
    return onnx.load_model_from_string(buffer.getvalue())


def free_variants(name: str) -> dict[str, onnx.ModelProto]:
    """'original' and the copies a pirate gets without touching the architecture."""
    import torch
    import torchvision

    from hnn.plugins.frontends.pytorch_frontend import export_module

    shape = input_shape(name)
    torch.manual_seed(seed_of(name))
    module = getattr(torchvision.models, name)()
    variants = {"original": export_module(module, shape)}
    variants["dynamo exporter"] = export_module(module, shape, "dynamo")
    variants["BatchNorm folded"] = _export_raw(module, shape, training=torch.onnx.TrainingMode.EVAL)
    torch.manual_seed(seed_of(name) + 1)
    variants["fresh weights"] = export_module(getattr(torchvision.models, name)(), shape)
    variants["10-class head"] = export_module(_with_head(copy.deepcopy(module), 10), shape)  # backbone kept
    variants["fp16 weights"] = _export_raw(getattr(torchvision.models, name)().half(), shape, dtype=torch.float16)
    return variants


def _with_head(module, classes: int):
    import torch

    layers = [(n, m) for n, m in module.named_modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    last_name, last = layers[-1]  # the classifier: a Linear, or SqueezeNet's 1x1 Conv
    replacement = (torch.nn.Linear(last.in_features, classes) if isinstance(last, torch.nn.Linear)
                   else torch.nn.Conv2d(last.in_channels, classes, last.kernel_size))
    parent = module.get_submodule(last_name.rsplit(".", 1)[0]) if "." in last_name else module
    setattr(parent, last_name.rsplit(".", 1)[-1], replacement)
    return module


def structural_variants(name: str) -> dict[str, onnx.ModelProto]:
    """'block added', 'block removed' and 'pruned N%' copies, for the architectures that allow them,
    each with the weights of the original (free_variants' seed, seed_of); and the copy pruned by 30% then
    fine-tuned, and the model built 30% narrower with new weights."""
    import torch
    import torchvision

    from hnn.plugins.frontends.pytorch_frontend import export_module

    torch.manual_seed(seed_of(name))
    original = getattr(torchvision.models, name)()
    builders = {**_depth_builders(name), **_width_builders(name)}
    copies = {kind: inherit_weights(build(), original) for kind, build in builders.items()}
    if "pruned 30%" in builders:
        copies["pruned 30%, fine-tuned"] = _fine_tuned(inherit_weights(builders["pruned 30%"](), original))
        copies["narrowed 30%, new weights"] = builders["pruned 30%"]()
    return {kind: export_module(module, input_shape(name)) for kind, module in copies.items()}


def inherit_weights(derived, original):
    """``derived`` with the original's weights in every parameter and buffer the two share by name,
    narrowed to its shape by keeping _kept_channels of each narrower dimension."""
    import torch

    theirs = original.state_dict()
    with torch.no_grad():
        for name, mine in derived.state_dict().items():
            source = theirs.get(name)
            if source is None or source.dim() != mine.dim() or any(m > s for m, s in zip(mine.shape, source.shape)):
                continue  # a layer the copy added, or one that grew: its own weights
            for axis, size in enumerate(mine.shape):
                if size < source.shape[axis]:
                    source = source.index_select(axis, torch.tensor(_kept_channels(source.shape[axis], size)))
            mine.copy_(source)
    return derived


def _kept_channels(before: int, after: int) -> list[int]:
    """Which ``after`` of ``before`` channels a pruning keeps: scattered, and the same for every
    dimension of this size (stable across runs: random.Random seeded with a string)."""
    return sorted(random.Random(f"{before}->{after}").sample(range(before), after))


def _fine_tuned(module, relative_step: float = 1e-3):
    """Every floating-point weight moved by a relative ~0.1%: what a short fine-tuning does to its bits."""
    import torch

    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for tensor in module.state_dict().values():
            if tensor.is_floating_point():
                tensor.mul_(1 + relative_step * torch.randn(tensor.shape, generator=generator))
    return module


def _depth_builders(name: str) -> dict:
    """Constructors of the model with one block more and one less, in its third stage."""
    from torchvision.models import densenet, mobilenetv2, resnet, shufflenetv2, vgg

    def stage3(depths, delta):
        depths = list(depths)
        depths[2] += delta
        return depths

    resnets = {"resnet18": (resnet.BasicBlock, [2, 2, 2, 2]), "resnet34": (resnet.BasicBlock, [3, 4, 6, 3]),
               "resnet50": (resnet.Bottleneck, [3, 4, 6, 3]), "resnet101": (resnet.Bottleneck, [3, 4, 23, 3])}
    builders = {}
    for kind, delta in (("block added", 1), ("block removed", -1)):
        if name in MORE_DEPTH_BUILDERS:
            builders[kind] = lambda d=delta: MORE_DEPTH_BUILDERS[name](d)
        elif name in resnets:
            block, depths = resnets[name]
            builders[kind] = lambda b=block, d=stage3(depths, delta): resnet.ResNet(b, d)
        elif name in DENSENETS:
            growth, blocks, initial = DENSENETS[name]
            builders[kind] = lambda g=growth, b=tuple(stage3(blocks, delta)), i=initial: densenet.DenseNet(g, b, i)
        elif name in VGG_CONFIGS:
            builders[kind] = lambda c=_vgg_cfg_with_block(vgg.cfgs[VGG_CONFIGS[name]], delta): vgg.VGG(vgg.make_layers(c))
        elif name in SHUFFLENET_CHANNELS:
            builders[kind] = lambda d=stage3([4, 8, 4, 0], delta)[:3], c=SHUFFLENET_CHANNELS[name]: \
                shufflenetv2.ShuffleNetV2(d, c)
        elif name == "mobilenet_v2":
            setting = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2],
                       [6, 320, 1, 1]]
            setting[3][2] += delta
            builders[kind] = lambda s=setting: mobilenetv2.MobileNetV2(inverted_residual_setting=s)
    return builders


def _vgg_cfg_with_block(cfg: list, delta: int) -> list:
    """A conv layer more or less in VGG's fourth block (between its third and fourth pooling)."""
    cfg = list(cfg)
    pools = [i for i, item in enumerate(cfg) if item == "M"]
    position = pools[3]  # the fourth "M": the end of the fourth block
    if delta > 0:
        cfg.insert(position, cfg[position - 1])
    else:
        del cfg[position - 1]
    return cfg


def _width_builders(name: str) -> dict:
    """Constructors of the model with every layer narrowed by 10, 30 and 50%."""
    from torchvision.models import densenet, mnasnet, mobilenetv2, shufflenetv2, vgg

    alphas = {"mnasnet0_75": 0.75, "mnasnet1_0": 1.0, "mnasnet1_3": 1.3}
    builders = {}
    for share in PRUNE_SHARES:
        keep = 1 - share
        kind = f"pruned {share:.0%}"
        if name in MORE_WIDTH_BUILDERS:
            builders[kind] = lambda k=keep: MORE_WIDTH_BUILDERS[name](k)
        elif name == "mobilenet_v2":
            builders[kind] = lambda k=keep: mobilenetv2.MobileNetV2(width_mult=k)
        elif name in alphas:
            builders[kind] = lambda a=alphas[name] * keep: mnasnet.MNASNet(a)
        elif name in DENSENETS:
            growth, blocks, initial = DENSENETS[name]
            builders[kind] = lambda g=round(growth * keep), b=blocks, i=round(initial * keep): densenet.DenseNet(g, b, i)
        elif name in SHUFFLENET_CHANNELS:
            channels = [c if i in (0,) else _even(c * keep) for i, c in enumerate(SHUFFLENET_CHANNELS[name])]
            builders[kind] = lambda c=channels: shufflenetv2.ShuffleNetV2([4, 8, 4], c)
        elif name in VGG_CONFIGS:
            builders[kind] = lambda c=vgg.cfgs[VGG_CONFIGS[name]], k=keep: _narrow_vgg(c, k)
    return builders


def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)  # ShuffleNet splits channels in two


def _narrow_vgg(cfg: list, keep: float):
    import torch
    from torchvision.models import vgg

    narrowed = [item if item == "M" else max(1, round(item * keep)) for item in cfg]
    model = vgg.VGG(vgg.make_layers(narrowed))
    hidden = round(4096 * keep)
    model.classifier = torch.nn.Sequential(
        torch.nn.Linear(narrowed[-2] * 7 * 7, hidden), torch.nn.ReLU(True), torch.nn.Dropout(),
        torch.nn.Linear(hidden, hidden), torch.nn.ReLU(True), torch.nn.Dropout(), torch.nn.Linear(hidden, 1000))
    return model


# Architectures beyond the paper's set whose torchvision builders take a configuration.
def _efficientnet_b0(delta: int = 0, keep: float = 1.0):
    from torchvision.models import efficientnet

    setting, last = efficientnet._efficientnet_conf("efficientnet_b0", width_mult=keep, depth_mult=1.0)
    setting[3].num_layers += delta
    return efficientnet.EfficientNet(setting, 0.2, last_channel=last)


def _mobilenet_v3_large(delta: int = 0, keep: float = 1.0):
    from torchvision.models import mobilenetv3

    setting, last = mobilenetv3._mobilenet_v3_conf("mobilenet_v3_large", width_mult=keep)
    setting = list(setting)
    if delta > 0:
        setting.insert(5, copy.copy(setting[5]))  # a repeat of a stride-1 block: same shapes in and out
    elif delta < 0:
        del setting[5]
    return mobilenetv3.MobileNetV3(setting, last)


def _convnext_tiny(delta: int = 0, keep: float = 1.0):
    from torchvision.models import convnext

    widths = [max(8, round(c * keep / 8) * 8) for c in (96, 192, 384, 768)]
    depths = [3, 3, 9 + delta, 3]
    setting = [convnext.CNBlockConfig(widths[i], widths[i + 1] if i < 3 else None, depths[i]) for i in range(4)]
    return convnext.ConvNeXt(setting)


def _resnet50_pruned(keep: float):
    from torchvision.models import resnet

    # Structured pruning of the bottlenecks' inner convolutions (the residual width stays).
    return resnet.ResNet(resnet.Bottleneck, [3, 4, 6, 3], width_per_group=max(8, round(64 * keep)))


MORE_DEPTH_BUILDERS = {"efficientnet_b0": _efficientnet_b0, "mobilenet_v3_large": _mobilenet_v3_large,
                       "convnext_tiny": _convnext_tiny}
MORE_WIDTH_BUILDERS = {"efficientnet_b0": lambda keep: _efficientnet_b0(keep=keep),
                       "mobilenet_v3_large": lambda keep: _mobilenet_v3_large(keep=keep),
                       "convnext_tiny": lambda keep: _convnext_tiny(keep=keep), "resnet50": _resnet50_pruned}
