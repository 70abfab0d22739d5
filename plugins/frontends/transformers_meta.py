"""A transformers model exported without its weights in memory: the bounded-memory path.

A model too large to build in memory (transformers_frontend.IN_MEMORY_PARAMETERS) is built with
its large parameters on torch's meta device (shapes, no storage) and exported from there by the
dynamo exporter, which traces with shapes alone; the TorchScript exporter runs the model and
cannot. The ONNX graph it gives has hollow large weights (hnn.weight_store) and a store that
reads each one from its checked byte range of the folder's safetensors when the weight marks and
the fingerprint ask for it, one tensor at a time. Small tensors (norm scales, biases, buffers
such as rotary frequencies and position ids) are real: built on the CPU as transformers
initialises them, then replaced by the checkpoint's values where it has them.

So the memory is the graph, the small tensors and one weight at a time, whatever the weights
add up to; a config without weights (or a spec) gives the graph alone.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from math import prod
from pathlib import Path

import numpy as np

from hnn.errors import InputError, summary
from hnn.plugins.frontends.hf_folder import ModelFolder, TensorEntry, numpy_dtype
from hnn.weight_store import HOLLOW_ABOVE, WeightedModel, WeightStore, hollow

_WRAPPER_PREFIX = "model."  # the traceable wrapper holds the model as its attribute `model`


def export_from_meta(model_class, config, folder: ModelFolder | None, traceable) -> WeightedModel:
    """The model's ONNX graph (large weights hollow) and a store of the folder's weights for them.

    ``traceable(model)``: the wrapped module and its trigger inputs (transformers_frontend._traceable).
    """
    import onnx
    import onnx_ir
    import torch

    from hnn.plugins.frontends.pytorch_frontend import OPSET

    with _large_parameters_on_meta(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = model_class(config).eval()
        except Exception as exc:
            raise InputError(f"{model_class.__name__} does not build from this config: {summary(exc)}") from None
    small = {name: tensor.detach().numpy().copy() for name, tensor in _named_tensors(model)
             if tensor.device.type == "cpu"}
    model.to("meta")
    wrapped, inputs = traceable(model)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(wrapped, tuple(t.to("meta") for t in inputs), dynamo=True, optimize=False,
                                        verbose=False, opset_version=OPSET)
    except Exception as exc:
        raise InputError(f"torch ONNX export (dynamo, from the meta device) failed: {summary(exc)}") from None
    checkpoint = _checkpoint_tensors(folder)
    aliases = _aliases(model)
    prefix = getattr(model, "base_model_prefix", "")
    store = WeightStore()
    tensors = []
    for value in list(program.model.graph.initializers.values()):
        name = value.name
        module_name = name.removeprefix(_WRAPPER_PREFIX)
        shape = tuple(int(d) for d in value.shape)
        data_type = int(value.dtype)
        found = _find(module_name, aliases, checkpoint, prefix)
        if found is not None and tuple(found[1].shape) != shape:
            raise InputError(f"{found[0].name}: tensor {found[1].name!r} has shape {list(found[1].shape)}, "
                             f"where {model_class.__name__} of this config has {list(shape)}")
        if prod(shape) > HOLLOW_ABOVE:
            tensors.append(hollow(name, data_type, shape))
            if found is not None:
                _add_to_store(store, name, *found)
        else:
            array = _read_entry(*found) if found is not None else small.get(module_name)
            if array is None:  # a small tensor neither initialised on the CPU nor stored: as transformers would zero it
                array = np.zeros(shape, onnx.helper.tensor_dtype_to_np_dtype(data_type))
            tensors.append(onnx.numpy_helper.from_array(
                array.astype(onnx.helper.tensor_dtype_to_np_dtype(data_type), copy=False).reshape(shape), name))
        value.const_value = None  # serialised below, as hollow or small tensors
    with _quiet_logger("onnx_ir"):  # "initializer has no constant value set": the values come next
        proto = onnx_ir.to_proto(program.model)
    proto.graph.initializer.extend(tensors)
    return WeightedModel(proto, store)


@contextmanager
def _quiet_logger(name: str):
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextmanager
def _large_parameters_on_meta():
    """Parameters above HOLLOW_ABOVE elements are moved to the meta device as modules register them.

    torch.empty reserves address space without touching it, so the moment a parameter exists on the
    CPU before it moves costs no resident memory; its initialisation then runs on the meta device
    (nothing). Buffers and small parameters stay on the CPU, initialised as transformers does."""
    import torch

    original = torch.nn.Module.register_parameter

    def register(module, name, parameter):
        original(module, name, parameter)
        if parameter is not None and parameter.numel() > HOLLOW_ABOVE and parameter.device.type != "meta":
            module._parameters[name] = torch.nn.Parameter(parameter.to("meta"), requires_grad=parameter.requires_grad)

    torch.nn.Module.register_parameter = register
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = original


def _named_tensors(model):
    yield from model.named_parameters()
    yield from model.named_buffers()


def _aliases(model) -> dict[str, list[str]]:
    """Every name of each parameter (tied weights have several: the exporter keeps one of them)."""
    names: dict[int, list[str]] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(parameter), []).append(name)
    return {name: group for group in names.values() for name in group}


def _checkpoint_tensors(folder: ModelFolder | None) -> dict[str, tuple[Path, TensorEntry]]:
    """Tensor name -> (shard, its header entry), as hf_folder.read_folder checked them."""
    if folder is None:
        return {}
    return {entry.name: (shard, entry) for shard, entries in zip(folder.safetensors, folder.headers, strict=True)
            for entry in entries}


def _find(name: str, aliases: dict, checkpoint: dict, prefix: str):
    """The checkpoint tensor of a module parameter: by its name or a tied alias, with or without the base
    model's prefix (a base model's checkpoint in a model with a head, and the other way round)."""
    for candidate in aliases.get(name, [name]):
        for key in (candidate, f"{prefix}.{candidate}",
                    candidate[len(prefix) + 1:] if prefix and candidate.startswith(prefix + ".") else None):
            if key in checkpoint:
                return checkpoint[key]
    return None


def _add_to_store(store: WeightStore, name: str, shard: Path, entry: TensorEntry) -> None:
    # read_header checked that the entry's byte span is its shape times its dtype, inside the file
    store.add_file_range(name, shard, entry.data_start + entry.begin, numpy_dtype(entry, shard), entry.shape)


def _read_entry(shard: Path, entry: TensorEntry) -> np.ndarray:
    single = WeightStore()
    _add_to_store(single, entry.name, shard, entry)
    return single.read(entry.name)
