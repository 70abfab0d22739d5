"""The models benchmarks/provenance.py measures: originals, derivatives and negatives, all as ONNX ModelProtos.

Every model is built from code with a seeded random initialisation (nothing is downloaded). Per
architecture: an original (seed 0 of the architecture), one derivative per transformation (TRANSFORMATIONS)
and the negatives (NEGATIVES): independent models of the same architecture from seeds 1..4, and seeds 5, 6
fine-tuned with the exact recipe of the `finetune` derivative (same optimizer, steps and batches), so that
"fine-tuned like the copies" alone cannot look like a copy.

"Seed k of an architecture" is ``crc32(name) * 16 + k``, not ``k``: torch draws every model's weights from
one stream, so two architectures seeded alike can share layers bit for bit (benchmarks/torch_edits.py: vgg11
and vgg13 share 125 of 128 weight marks), and a cross-architecture negative would then be a copy.

Fine-tuning is on a synthetic task with a real gradient: random images, labelled by a fixed random linear
function of the image (argmax over classes).
"""

from __future__ import annotations

import copy
import io
import tempfile
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

IMAGE = (3, 32, 32)
BATCH = 8
CLASSES = 10
TRANSFER_CLASSES = 5
OPSET = 17
TASK_SEED = 12345  # the labelling function, the same for every model
FINETUNE_SEED = 777  # the batches of `finetune`, and of the fine-tuned negatives (the same batches)
PRUNE_SHARE = 0.3
RESCALE_RANGE = (0.25, 4.0)
# A function-preserving edit is accepted when onnxruntime's outputs move less than this.
PRESERVED_ATOL = 1e-4

TRANSFORMATIONS = ("finetune", "finetune_adam", "transfer", "fp16", "bf16", "int8_dynamic", "int8_qdq",
                   "int8_qoperator", "prune_unstructured", "prune_structured", "prune_channels", "block_removed",
                   "block_added", "permuted", "rescaled", "bn_folded", "reexport")
INDEPENDENT_SEEDS = (1, 2, 3, 4)
FINETUNED_NEGATIVE_SEEDS = (5, 6)
NEGATIVES = tuple(f"independent_{s}" for s in INDEPENDENT_SEEDS) + tuple(
    f"independent_{s}_finetuned" for s in FINETUNED_NEGATIVE_SEEDS)


@dataclass(frozen=True)
class Steps:
    """Optimizer steps of each training recipe (the full run's defaults are the benchmark's spec)."""

    finetune: int = 200  # finetune and the fine-tuned negatives
    adam: int = 200  # finetune_adam
    transfer: int = 100
    prune: int = 100  # fine-tuning after each pruning


def _torchvision(name: str, **options) -> Callable[[int], object]:
    def build(classes: int):
        import torchvision

        return getattr(torchvision.models, name)(weights=None, num_classes=classes, **options)
    return build


def _timm(name: str, **options) -> Callable[[int], object]:
    def build(classes: int):
        import timm

        return timm.create_model(name, pretrained=False, num_classes=classes, **options)
    return build


def _small_vit(classes: int):
    import torchvision

    return torchvision.models.VisionTransformer(image_size=32, patch_size=4, num_layers=4, num_heads=4,
                                                hidden_dim=128, mlp_dim=256, num_classes=classes)


ARCHITECTURES: dict[str, Callable[[int], object]] = {
    "resnet18": _torchvision("resnet18"),
    "resnet50": _torchvision("resnet50"),
    "mobilenet_v2": _torchvision("mobilenet_v2"),
    "mobilenet_v3_small": _torchvision("mobilenet_v3_small"),
    "efficientnet_b0": _torchvision("efficientnet_b0"),
    "mnasnet0_5": _torchvision("mnasnet0_5"),
    "shufflenet_v2_x0_5": _torchvision("shufflenet_v2_x0_5"),
    "densenet121": _torchvision("densenet121"),
    "regnet_y_400mf": _torchvision("regnet_y_400mf"),
    "squeezenet1_1": _torchvision("squeezenet1_1"),
    "googlenet": _torchvision("googlenet", aux_logits=False, init_weights=True),
    "convnext_tiny": _torchvision("convnext_tiny"),
    "vit_small_tv": _small_vit,
    "timm_resnet26d": _timm("resnet26d"),
    "timm_seresnext26d": _timm("seresnext26d_32x4d"),
    "timm_vit_tiny": _timm("vit_tiny_patch16_224", img_size=32, patch_size=4),
}


def arch_seed(arch: str, k: int) -> int:
    return zlib.crc32(arch.encode()) * 16 + k


def build(arch: str, k: int, classes: int = CLASSES):
    """Model k of an architecture (0: the original), freshly initialised from its own seed."""
    import torch

    torch.manual_seed(arch_seed(arch, k))
    return ARCHITECTURES[arch](classes).eval()


# ---------------------------------------------------------------------------------------------------- training
class SyntheticTask:
    """Random images labelled by a fixed random linear map of the pixels: learnable, so gradients are real."""

    def __init__(self, classes: int):
        import torch

        generator = torch.Generator().manual_seed(TASK_SEED + classes)
        self.labeller = torch.randn(int(np.prod(IMAGE)), classes, generator=generator)

    def batches(self, steps: int, seed: int):
        import torch

        generator = torch.Generator().manual_seed(seed)
        for _ in range(steps):
            images = torch.randn(BATCH, *IMAGE, generator=generator)
            yield images, (images.flatten(1) @ self.labeller).argmax(1)


def fine_tune(module, steps: int, seed: int = FINETUNE_SEED, optimizer: str = "sgd", classes: int = CLASSES):
    """All layers trained ``steps`` steps (SGD lr 0.01 momentum 0.9, or Adam lr 1e-4); the module, in eval mode."""
    import torch

    torch.manual_seed(seed)  # dropout and stochastic depth draw from the global stream
    parameters = [p for p in module.parameters() if p.requires_grad]
    opt = (torch.optim.SGD(parameters, lr=0.01, momentum=0.9) if optimizer == "sgd"
           else torch.optim.Adam(parameters, lr=1e-4))
    module.train()
    for images, labels in SyntheticTask(classes).batches(steps, seed):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(module(images), labels)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss diverged to {float(loss)}")
        loss.backward()
        opt.step()
    return module.eval()


# ---------------------------------------------------------------------------------------------------- export
def _example_input():
    import torch

    return torch.randn(1, *IMAGE, generator=torch.Generator().manual_seed(0))


def to_onnx(module, **options) -> onnx.ModelProto:
    """The TorchScript exporter in eval mode (which folds BatchNorm into the convolution before it)."""
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (_example_input(),), buffer, dynamo=False, opset_version=OPSET, **options)
    return onnx.load_model_from_string(buffer.getvalue())


def with_batchnorm_kept(module) -> onnx.ModelProto:
    """TrainingMode.PRESERVE on an eval module keeps BatchNormalization nodes (EVAL, the default, folds them)."""
    import torch

    return to_onnx(module, training=torch.onnx.TrainingMode.PRESERVE)


def reexported(module) -> tuple[onnx.ModelProto, str]:
    """The same weights through the other exporter (dynamo, opset 18: it has no opset-17 implementations);
    onnxsim on the TorchScript export where dynamo fails."""
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module.eval(), (_example_input(),), dynamo=True, opset_version=18,
                                        verbose=False)
        return program.model_proto, "dynamo exporter"
    except Exception as exc:  # noqa: BLE001 - any exporter failure falls back
        import onnxsim

        simplified, _checked = onnxsim.simplify(to_onnx(module))
        return simplified, f"onnxsim (dynamo failed: {type(exc).__name__})"


# ---------------------------------------------------------------------------------------------------- torch-side edits
def _weight_layers(module) -> list:
    import torch

    return [m for m in module.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]


def with_new_head(module, classes: int, seed: int):
    """The classifier (the last Linear, or SqueezeNet's last 1x1 Conv, with CLASSES outputs) replaced by a fresh one."""
    import torch

    torch.manual_seed(seed)
    heads = [(name, m) for name, m in module.named_modules()
             if (isinstance(m, torch.nn.Linear) and m.out_features == CLASSES)
             or (isinstance(m, torch.nn.Conv2d) and m.out_channels == CLASSES)]
    name, old = heads[-1]
    new = (torch.nn.Linear(old.in_features, classes) if isinstance(old, torch.nn.Linear)
           else torch.nn.Conv2d(old.in_channels, classes, old.kernel_size))
    parent = module.get_submodule(name.rsplit(".", 1)[0]) if "." in name else module
    setattr(parent, name.rsplit(".", 1)[-1], new)
    return module


def pruned_unstructured(module, steps: int):
    """Global L1 unstructured pruning of 30% of all conv and linear weights, fine-tuned with the mask on
    (the pruned weights stay zero), then made permanent."""
    import torch
    from torch.nn.utils import prune

    # An attention's output projection is read as a tensor by F.multi_head_attention_forward, never called, so the
    # pruning hook would not recompute its masked weight each step: left out.
    skipped = {id(m.out_proj) for m in module.modules() if isinstance(m, torch.nn.MultiheadAttention)}
    targets = [(m, "weight") for m in _weight_layers(module) if id(m) not in skipped]
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=PRUNE_SHARE)
    fine_tune(module, steps)
    for m, name in targets:
        prune.remove(m, name)
    return module


def pruned_structured(module, steps: int):
    """30% of every convolution's output channels zeroed by L2 norm (ln_structured, dim 0), fine-tuned with the
    mask on, made permanent."""
    import torch
    from torch.nn.utils import prune

    convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d) and m.out_channels > 1]
    for conv in convs:
        prune.ln_structured(conv, "weight", amount=PRUNE_SHARE, n=2, dim=0)
    fine_tune(module, steps)
    for conv in convs:
        prune.remove(conv, "weight")
    return module


def channels_removed(module, steps: int):
    """torchvision ResNet with BasicBlocks: each block's inner width cut by 30% for real (conv1's strongest 70%
    of filters kept, with their bn1 entries and conv2's matching input channels), then fine-tuned."""
    import torch
    from torchvision.models.resnet import BasicBlock

    blocks = [m for m in module.modules() if isinstance(m, BasicBlock)]
    if not blocks:
        raise NotImplementedError("only ResNets of BasicBlocks")
    with torch.no_grad():
        for block in blocks:
            conv1, bn1, conv2 = block.conv1, block.bn1, block.conv2
            width = conv1.out_channels
            keep = conv1.weight.flatten(1).norm(dim=1).argsort(descending=True)[:round(width * (1 - PRUNE_SHARE))]
            keep = keep.sort().values
            narrow1 = torch.nn.Conv2d(conv1.in_channels, len(keep), 3, conv1.stride, 1, bias=False)
            narrow1.weight.copy_(conv1.weight[keep])
            norm = torch.nn.BatchNorm2d(len(keep))
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(norm, name).copy_(getattr(bn1, name)[keep])
            narrow2 = torch.nn.Conv2d(len(keep), conv2.out_channels, 3, 1, 1, bias=False)
            narrow2.weight.copy_(conv2.weight[:, keep])
            block.conv1, block.bn1, block.conv2 = narrow1, norm, narrow2
    return fine_tune(module, steps)


def _residual_marked(block) -> bool:
    """Does the block say it adds its input back (the attribute each library uses)?"""
    for flag in ("use_res_connect", "apply_residual", "has_skip"):
        if hasattr(block, flag):
            return bool(getattr(block, flag))
    for projection in ("downsample", "proj"):  # ResNet / RegNet blocks: a shortcut without projection
        if hasattr(block, projection):
            return getattr(block, projection) is None
    return type(block).__name__ in ("EncoderBlock", "CNBlock", "Block")


def removable_blocks(module) -> tuple[list[tuple[object, int]], bool]:
    """(parent Sequential, index) of the blocks whose input and output shapes agree, in forward order, and
    whether they are residual ones. Residual blocks when the model has them; otherwise any block of two or more
    weight layers that keeps the shape (SqueezeNet's Fire, ShuffleNet's stride-1 units), innermost ones."""
    import torch

    shapes, order, hooks = {}, [], []

    def record(child):
        def hook(_module, inputs, output):
            if isinstance(inputs[0], torch.Tensor) and isinstance(output, torch.Tensor):
                shapes[id(child)] = (tuple(inputs[0].shape), tuple(output.shape))
                order.append(id(child))
        return hook

    places = {}
    for parent in module.modules():
        if isinstance(parent, torch.nn.Sequential):
            for index, child in enumerate(parent):
                if len(_weight_layers(child)) >= 2:
                    places[id(child)] = (parent, index, child)
                    hooks.append(child.register_forward_hook(record(child)))
    with torch.no_grad():
        module.eval()(_example_input())
    for hook in hooks:
        hook.remove()
    same = [places[i] for i in dict.fromkeys(order) if shapes[i][0] == shapes[i][1]]
    residual = [(parent, index) for parent, index, child in same if _residual_marked(child)]
    if residual:
        return residual, True
    inner = [(parent, index) for parent, index, child in same
             if not any(other is not child and any(other is m for m in child.modules()) for _, _, other in same)]
    return inner, False


def _reinitialised(block, seed: int):
    import torch

    torch.manual_seed(seed)
    for m in block.modules():
        reset = getattr(m, "reset_parameters", None) or getattr(m, "_reset_parameters", None)  # the latter: attention
        if reset is not None:
            reset()
    return block


def with_block_edited(module, add: bool, seed: int) -> tuple[object, str]:
    """The middle shape-preserving block removed, or a re-initialised copy of it inserted after it."""
    blocks, residual = removable_blocks(module)
    if not blocks:
        raise NotImplementedError("no block of two or more weight layers keeps its input's shape")
    parent, index = blocks[len(blocks) // 2]
    label = f"{type(parent[index]).__name__} #{len(blocks) // 2} of {len(blocks)}"
    label += "" if residual else " (not residual)"
    # Sequential.insert and del renumber their keys, and torchvision's ViT names its blocks: rebuilt by hand.
    children = list(parent._modules.items())
    if add:
        name, block = children[index]
        children.insert(index + 1, (f"{name}_added", _reinitialised(copy.deepcopy(block), seed)))
    else:
        del children[index]
    parent._modules.clear()
    parent._modules.update(children)
    return module, label


# ---------------------------------------------------------------------------------------------------- ONNX-side edits
def with_low_precision_weights(model: onnx.ModelProto, data_type: int) -> onnx.ModelProto:
    """Every float initializer stored as FLOAT16 or BFLOAT16, with a Cast back to float where it was read."""
    import ml_dtypes

    dtype = np.float16 if data_type == TensorProto.FLOAT16 else ml_dtypes.bfloat16
    model = copy.deepcopy(model)
    graph = model.graph
    kept, casts = [], []
    for tensor in graph.initializer:
        if tensor.data_type != TensorProto.FLOAT:
            kept.append(tensor)
            continue
        low = numpy_helper.from_array(numpy_helper.to_array(tensor).astype(dtype), f"{tensor.name}__lowp")
        kept.append(low)
        casts.append(helper.make_node("Cast", [low.name], [tensor.name], to=TensorProto.FLOAT))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol: 8 seeded random inputs."""

    def __init__(self, input_name: str):
        rng = np.random.default_rng(1)
        self._batches = iter([{input_name: rng.standard_normal((1, *IMAGE)).astype(np.float32)} for _ in range(8)])

    def get_next(self):
        return next(self._batches, None)


def quantized(model: onnx.ModelProto, mode: str) -> onnx.ModelProto:
    """onnxruntime.quantization: 'dynamic' (QInt8 weights), or static 'qdq' / 'qoperator' after quant_pre_process."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    with tempfile.TemporaryDirectory() as folder:
        source, prepared, target = (str(Path(folder) / n) for n in ("model.onnx", "prepared.onnx", "int8.onnx"))
        onnx.save(_identities_inlined(model), source)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if mode == "dynamic":
                quantize_dynamic(source, target, weight_type=QuantType.QInt8)
            else:
                prepared = _prepared(source, prepared)
                quantize_static(prepared, target, _Calibration(model.graph.input[0].name),
                                quant_format=QuantFormat.QDQ if mode == "qdq" else QuantFormat.QOperator,
                                weight_type=QuantType.QInt8, activation_type=QuantType.QInt8)
        return onnx.load(target)


def _identities_inlined(model: onnx.ModelProto) -> onnx.ModelProto:
    """Identity nodes of initializers replaced by copies of them: the TorchScript exporter shares equal tensors
    (timm's zero-initialised last BatchNorm of each block folds to all-zero convolutions) through Identity, and
    quantize_dynamic wants every weight to be an initializer."""
    model = copy.deepcopy(model)
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    kept = []
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in initializers:
            copied = onnx.TensorProto()
            copied.CopyFrom(initializers[node.input[0]])
            copied.name = node.output[0]
            graph.initializer.append(copied)
        else:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    return model


def _prepared(source: str, target: str) -> str:
    """quant_pre_process's output (QOperator fails without it: a NoneType bias on resnet18); its symbolic shape
    inference fails on the ViTs' Reshape, where onnx's own shape inference is used instead."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(source, target)
    except Exception:  # noqa: BLE001 - an AssertionError from the symbolic shape inference
        quant_pre_process(source, target, skip_symbolic_shape=True)
    return target


def run(model: onnx.ModelProto, inputs: np.ndarray) -> np.ndarray:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2
    options.log_severity_level = 3
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: inputs})[0]


def test_input() -> np.ndarray:
    return np.random.default_rng(2).standard_normal((1, *IMAGE)).astype(np.float32)


# The channel spaces of an ONNX graph. A *space* is a set of tensors that share one channel order: the outputs
# of the weight layers that write it (sources), whatever carries it channel by channel (activations, pools,
# residual adds, depthwise convolutions, an SE block's gate), up to the weight layers that read it (sinks).
# Permuting the space's channels (the sources' output rows, the depthwise weights, channel-wise constants, the
# sinks' input columns) leaves the function as it was; where every op in it is positively homogeneous (ReLU,
# pools, adds), so does scaling each channel by a positive factor and its readers by the inverse.
_UNARY = {"Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "LeakyRelu", "Elu", "Selu", "Softplus",
          "Erf", "Identity", "Dropout", "Neg", "Abs", "Gelu"}
_HOMOGENEOUS_UNARY = {"Relu", "LeakyRelu", "Identity", "Dropout"}  # f(s x) = s f(x) for s > 0
_POOLS = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"}
_GLOBAL_POOLS = {"GlobalAveragePool", "GlobalMaxPool"}
_BINARY = {"Add", "Sub", "Mul", "Div"}


class _NotASpace(Exception):
    pass


@dataclass
class _Space:
    channels: int
    layout: dict  # tensor -> "nchw" (channels on axis 1) or "last"
    edits: list  # (node index, input index, axis, role): role "out" (source), "in" (sink), "bias" (scaled with out)


class ChannelSpaces:
    """The channel spaces of a float ONNX graph (see above), found without running it."""

    def __init__(self, model: onnx.ModelProto, homogeneous: bool):
        self.model = model
        self.homogeneous = homogeneous
        graph = model.graph
        self.constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant":
                self.constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
            elif node.op_type == "Identity" and node.input[0] in self.constants:
                self.constants[node.output[0]] = self.constants[node.input[0]]
        self.producer = {out: i for i, node in enumerate(graph.node) for out in node.output}
        self.consumers: dict[str, list[int]] = {}
        for i, node in enumerate(graph.node):
            for name in node.input:
                self.consumers.setdefault(name, []).append(i)
        self.boundary = {v.name for v in graph.input} | {v.name for v in graph.output}

    def find(self) -> list[_Space]:
        spaces, claimed = [], set()
        for i, node in enumerate(self.model.graph.node):
            if self._weight(node) is None or node.output[0] in claimed:
                continue
            if node.op_type == "Conv" and self._attr(node, "group", 1) != 1:
                continue
            try:
                space = self._grow(node.output[0], "nchw" if node.op_type == "Conv" else "last")
            except _NotASpace:
                continue
            claimed |= set(space.layout)
            spaces.append(space)
        return spaces

    def _weight(self, node):
        if node.op_type in ("Conv", "Gemm", "MatMul") and len(node.input) > 1 and node.input[1] in self.constants:
            weight = self.constants[node.input[1]]
            if weight.dtype == np.float32 and weight.ndim == (4 if node.op_type == "Conv" else 2):
                return weight
        return None

    @staticmethod
    def _attr(node, name, default):
        for attribute in node.attribute:
            if attribute.name == name:
                return helper.get_attribute_value(attribute)
        return default

    def _grow(self, seed: str, layout: str) -> _Space:
        space = _Space(channels=-1, layout={}, edits=[])
        queue = [(seed, layout)]
        seen_nodes = set()
        while queue:
            tensor, layout = queue.pop()
            if tensor in space.layout:
                if space.layout[tensor] != layout:
                    raise _NotASpace
                continue
            if tensor in self.boundary or tensor in self.constants or tensor not in self.producer:
                raise _NotASpace
            space.layout[tensor] = layout
            producer = self.producer[tensor]
            if producer not in seen_nodes:
                seen_nodes.add(producer)
                queue += self._from_producer(space, producer, tensor, layout)
            for consumer in self.consumers.get(tensor, []):
                if consumer not in seen_nodes:
                    seen_nodes.add(consumer)
                    queue += self._from_consumer(space, consumer, tensor, layout)
        return space

    def _set_channels(self, space: _Space, count: int):
        if space.channels not in (-1, count):
            raise _NotASpace
        space.channels = count

    def _weight_axes(self, node) -> tuple[int, int]:
        """(output axis, input axis) of a weight layer's weight."""
        if node.op_type == "Conv":
            return 0, 1
        if node.op_type == "Gemm":
            if self._attr(node, "transA", 0):
                raise _NotASpace
            return (0, 1) if self._attr(node, "transB", 0) else (1, 0)
        return 1, 0  # MatMul(x, W): W is (in, out)

    def _is_depthwise(self, node) -> bool:
        weight = self._weight(node)
        return (node.op_type == "Conv" and weight is not None and weight.shape[1] == 1
                and self._attr(node, "group", 1) == weight.shape[0] > 1)

    def _from_producer(self, space: _Space, index: int, tensor: str, layout: str) -> list:
        node = self.model.graph.node[index]
        weight = self._weight(node)
        if weight is not None and not self._is_depthwise(node):  # a source: its output rows
            if node.op_type == "Conv" and self._attr(node, "group", 1) != 1:
                raise _NotASpace
            if layout != ("nchw" if node.op_type == "Conv" else "last"):
                raise _NotASpace
            out_axis, _ = self._weight_axes(node)
            self._set_channels(space, weight.shape[out_axis])
            space.edits.append((index, 1, out_axis, "out"))
            bias_at = 2 if node.op_type in ("Conv", "Gemm") else None
            if bias_at is not None and len(node.input) > bias_at and node.input[bias_at]:
                if self.constants.get(node.input[bias_at], np.zeros(0)).shape != (space.channels,):
                    raise _NotASpace
                space.edits.append((index, bias_at, 0, "bias"))
            return []
        return self._through(space, index, layout)

    def _from_consumer(self, space: _Space, index: int, tensor: str, layout: str) -> list:
        node = self.model.graph.node[index]
        weight = self._weight(node)
        if weight is not None and not self._is_depthwise(node):  # a sink: its input columns
            if node.input[0] != tensor or (node.op_type == "Conv" and self._attr(node, "group", 1) != 1):
                raise _NotASpace
            if layout != ("nchw" if node.op_type == "Conv" else "last"):
                raise _NotASpace
            _, in_axis = self._weight_axes(node)
            self._set_channels(space, weight.shape[in_axis])
            space.edits.append((index, 1, in_axis, "in"))
            return []
        return self._through(space, index, layout)

    def _through(self, space: _Space, index: int, layout: str) -> list:
        """A node that carries the space channel by channel: its other data inputs and its outputs join it."""
        node = self.model.graph.node[index]
        op = node.op_type
        data = [n for n in node.input if n and n not in self.constants]
        if self._is_depthwise(node):
            self._set_channels(space, self._weight(node).shape[0])
            space.edits.append((index, 1, 0, "depthwise"))
            if len(node.input) > 2 and node.input[2]:
                space.edits.append((index, 2, 0, "bias"))
            return [(node.input[0], "nchw"), (node.output[0], "nchw")]
        if op in _UNARY and len(data) == 1:
            if self.homogeneous and op not in _HOMOGENEOUS_UNARY:
                raise _NotASpace
            if any(self.constants[n].size != 1 for n in node.input[1:] if n):  # Clip's bounds
                raise _NotASpace
            return [(data[0], layout), (node.output[0], layout)]
        if op in _POOLS and layout == "nchw":
            return [(data[0], layout), (node.output[0], layout)]
        if op == "ReduceMean" and len(node.input) == 1:  # over space only (opset 17 has the axes as an attribute)
            axes = sorted(self._attr(node, "axes", None) or [1])
            if axes != [2, 3]:
                raise _NotASpace
            return [(data[0], "nchw"), (node.output[0], "nchw" if self._attr(node, "keepdims", 1) else "last")]
        if op == "Flatten" and self._attr(node, "axis", 1) == 1:
            pooled = self.producer.get(node.input[0])
            before = self.model.graph.node[pooled] if pooled is not None else None
            if before is None or not (before.op_type in _GLOBAL_POOLS or before.op_type == "ReduceMean"):
                raise _NotASpace  # only where the spatial size is 1 do the flattened features keep the channel order
            return [(node.input[0], "nchw"), (node.output[0], "last")]
        if op in _BINARY:
            return self._binary(space, index, layout, data)
        raise _NotASpace

    def _binary(self, space: _Space, index: int, layout: str, data: list) -> list:
        node = self.model.graph.node[index]
        op = node.op_type
        # Rescaled: s*x + s*y and x*c scale with s; x*y, x/y and x + c (a scalar c) do not.
        if self.homogeneous and (op in ("Mul", "Div") and len(data) != 1 or op == "Div" and node.input[0] not in data):
            raise _NotASpace
        for position, name in enumerate(node.input):
            if name in self.constants:
                value = self.constants[name]
                if value.size == 1:
                    if self.homogeneous and op in ("Add", "Sub") and np.any(value):
                        raise _NotASpace
                    continue
                axis = self._channel_axis(value, layout)
                space.edits.append((index, position, axis, "bias" if op in ("Add", "Sub") else "const"))
        return [(n, layout) for n in data] + [(node.output[0], layout)]

    def _channel_axis(self, value: np.ndarray, layout: str) -> int:
        """The axis of a broadcast constant that lines up with the channels; the rest must be of size 1."""
        axis = value.ndim - (3 if layout == "nchw" else 1)
        if axis < 0 or any(size != 1 for i, size in enumerate(value.shape) if i != axis):
            raise _NotASpace
        return axis


def function_preserving(model: onnx.ModelProto, homogeneous: bool, seed: int) -> tuple[onnx.ModelProto, dict]:
    """The model with every channel space permuted (homogeneous=False) or rescaled by positive factors in
    RESCALE_RANGE (homogeneous=True), checked with onnxruntime; and what was done."""
    spaces = ChannelSpaces(model, homogeneous).find()
    rng = np.random.default_rng(seed)
    edits = [(space, rng.permutation(space.channels) if not homogeneous
              else rng.uniform(*RESCALE_RANGE, space.channels)) for space in spaces]
    kept = edits
    if edits and _preserves(model, edits, homogeneous) >= PRESERVED_ATOL:  # leave out the spaces that break it
        kept = [e for e in edits if _preserves(model, [e], homogeneous) < PRESERVED_ATOL]
    if not kept:
        raise NotImplementedError("no channel space found" + (" with only ReLU between" if homogeneous else ""))
    edited = _apply(model, kept, homogeneous)
    inputs = test_input()
    difference = float(np.abs(run(edited, inputs) - run(model, inputs)).max())
    probe_difference = _preserves(model, kept, homogeneous)
    if max(difference, probe_difference) >= PRESERVED_ATOL:
        raise ArithmeticError(f"outputs moved by {difference:.2g} (relative, random weights: {probe_difference:.2g})")
    sources = sum(1 for space, _ in kept for e in space.edits if e[3] == "out")
    return edited, {"spaces": len(kept), "source_layers": sources, "channels": sum(s.channels for s, _ in kept),
                    "dropped_spaces": len(edits) - len(kept), "max_abs_diff": difference,
                    "probe_relative_diff": probe_difference}


def _preserves(model: onnx.ModelProto, edits: list, homogeneous: bool) -> float:
    """The relative change of the outputs that ``edits`` make, measured on the model with random weights: an
    edit is right or wrong whatever the weights, and a random-initialised model's outputs may be all zero
    (torchvision's ViT starts with a zero head) or vanishingly small (MobileNetV2: 1e-10), where an absolute
    difference says nothing."""
    probe = copy.deepcopy(model)
    rng = np.random.default_rng(3)
    for tensor in probe.graph.initializer:
        if tensor.data_type == TensorProto.FLOAT and len(tensor.dims) >= 2:
            fan_in = int(np.prod(tensor.dims[1:])) if len(tensor.dims) == 4 else int(max(tensor.dims))
            values = rng.standard_normal(tuple(tensor.dims)) * np.sqrt(2.0 / fan_in)
            tensor.CopyFrom(numpy_helper.from_array(values.astype(np.float32), tensor.name))
    inputs = test_input()
    expected = run(probe, inputs)
    moved = np.abs(run(_apply(probe, edits, homogeneous), inputs) - expected).max()
    return float(moved / max(float(np.abs(expected).max()), 1e-30))


def _apply(model: onnx.ModelProto, edits: list, homogeneous: bool) -> onnx.ModelProto:
    """Each edited (node, input) gets its own copy of the constant (the exporter shares identical ones)."""
    model = copy.deepcopy(model)
    graph = model.graph
    constants = ChannelSpaces(model, homogeneous).constants
    private: dict[tuple[int, int], np.ndarray] = {}
    for space, factor in edits:
        for index, position, axis, role in space.edits:
            key = (index, position)
            value = private.get(key)
            if value is None:
                value = private[key] = constants[graph.node[index].input[position]].copy()
            private[key] = _edited(value, axis, role, factor, homogeneous)
    for (index, position), value in private.items():
        node = graph.node[index]
        name = f"{node.input[position]}__edit{index}_{position}"
        graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), name))
        node.input[position] = name
    used = {name for node in graph.node for name in node.input}
    kept = [tensor for tensor in graph.initializer if tensor.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return model


def _edited(value: np.ndarray, axis: int, role: str, factor: np.ndarray, homogeneous: bool) -> np.ndarray:
    if not homogeneous:
        return np.take(value, factor, axis=axis)
    shape = [1] * value.ndim
    shape[axis] = -1
    factor = factor.reshape(shape)
    if role in ("out", "bias"):
        return value * factor
    if role == "in":
        return value / factor
    return value  # a depthwise weight or a multiplier: the scale passes through it


# ---------------------------------------------------------------------------------------------------- the family
@dataclass
class Built:
    role: str  # "original", "derivative" or "negative"
    name: str  # the transformation, or the negative's name
    model: onnx.ModelProto | None
    note: str = ""  # how it was made, or why it was skipped (model None)


def family(arch: str, steps: Steps) -> Iterator[Built]:
    """The original, its derivatives (TRANSFORMATIONS) and the negatives of one architecture, one at a time
    (a caller keeps the fingerprints, not the models)."""
    original = build(arch, 0)
    original_onnx = to_onnx(original)
    yield Built("original", "original", original_onnx)
    for kind in TRANSFORMATIONS:
        try:
            model, note = _derivative(kind, arch, original, original_onnx, steps)
        except NotImplementedError as exc:
            yield Built("derivative", kind, None, f"not applicable: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - a failing transformation is reported, not fatal
            message = (str(exc).splitlines() or [""])[0][:160]
            yield Built("derivative", kind, None, f"failed: {type(exc).__name__}: {message}")
            continue
        yield Built("derivative", kind, model, note)
    for seed in INDEPENDENT_SEEDS:
        yield Built("negative", f"independent_{seed}", to_onnx(build(arch, seed)), f"seed {seed}")
    for seed in FINETUNED_NEGATIVE_SEEDS:
        tuned = fine_tune(build(arch, seed), steps.finetune)
        yield Built("negative", f"independent_{seed}_finetuned", to_onnx(tuned),
                    f"seed {seed}, then the finetune recipe ({steps.finetune} SGD steps, the same batches)")


def _derivative(kind: str, arch: str, original, original_onnx: onnx.ModelProto,
                steps: Steps) -> tuple[onnx.ModelProto, str]:
    fresh = copy.deepcopy(original)
    if kind == "finetune":
        return to_onnx(fine_tune(fresh, steps.finetune)), f"{steps.finetune} SGD steps, lr 0.01, momentum 0.9"
    if kind == "finetune_adam":
        return to_onnx(fine_tune(fresh, steps.adam, optimizer="adam")), f"{steps.adam} Adam steps, lr 1e-4"
    if kind == "transfer":
        tuned = fine_tune(with_new_head(fresh, TRANSFER_CLASSES, seed=11), steps.transfer, classes=TRANSFER_CLASSES)
        return to_onnx(tuned), f"new {TRANSFER_CLASSES}-class head, all layers {steps.transfer} SGD steps"
    if kind == "fp16":
        return with_low_precision_weights(original_onnx, TensorProto.FLOAT16), "FLOAT16 initializers + Cast"
    if kind == "bf16":
        return with_low_precision_weights(original_onnx, TensorProto.BFLOAT16), "BFLOAT16 initializers + Cast"
    if kind.startswith("int8_"):
        return quantized(original_onnx, kind.removeprefix("int8_")), kind
    if kind == "prune_unstructured":
        return to_onnx(pruned_unstructured(fresh, steps.prune)), f"global L1 30%, {steps.prune} steps with the mask"
    if kind == "prune_structured":
        return to_onnx(pruned_structured(fresh, steps.prune)), f"L2 30% of conv filters, {steps.prune} steps"
    if kind == "prune_channels":
        return to_onnx(channels_removed(fresh, steps.prune)), f"BasicBlock width -30% for real, {steps.prune} steps"
    if kind in ("block_removed", "block_added"):
        edited, label = with_block_edited(fresh, add=kind == "block_added", seed=13)
        return to_onnx(edited), label
    if kind in ("permuted", "rescaled"):
        edited, info = function_preserving(original_onnx, homogeneous=kind == "rescaled", seed=17)
        return edited, ", ".join(f"{k} {v:.2g}" if isinstance(v, float) else f"{k} {v}" for k, v in info.items())
    if kind == "bn_folded":
        kept = with_batchnorm_kept(fresh)
        count = sum(node.op_type == "BatchNormalization" for node in kept.graph.node)
        before = sum(node.op_type == "BatchNormalization" for node in original_onnx.graph.node)
        if count == before:
            raise NotImplementedError("no BatchNorm that the exporter folds")
        return kept, f"the original keeps {count} BatchNormalization nodes (folded export: {before})"
    if kind == "reexport":
        return reexported(fresh)
    raise ValueError(kind)
