"""Front-end for Hugging Face transformers: model folders, model objects and class specs.

- A folder as ``save_pretrained`` writes it (``config.json`` with ``model.safetensors``,
  sharded or not, or a config alone): checked by :mod:`hf_folder` first, then the
  architecture is built from the config through transformers' own classes and the
  safetensors weights are loaded into it. Pickled weights (``pytorch_model.bin``) load
  only with ``--trust``; a config that asks for remote code is refused (hnn never imports
  a Python file from a folder); nothing is downloaded.
- A ``transformers.PreTrainedModel`` given to ``hnn.ingest``.
- A spec ``transformers:BertForMaskedLM[:key=value,...]``: the class built from its default
  config with those overrides, with random weights (like torchvision specs).

The model is exported through the PyTorch front-end's exporters, with a fixed trigger: for
text a batch of one sequence of ``TEXT_LENGTH`` token ids and its attention mask (without the
mask transformers builds one with ``aten::diff``, which the TorchScript exporter cannot
export), for vision one image of the config's size, for speech the config's frame count.
No key-value cache is exported: a cache changes the graph, not the architecture.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from hnn.errors import InputError, UntrustedInputError, UsageError, summary
from hnn.plugins.frontend import ConvertOptions, Frontend, is_spec, parse_spec
from hnn.plugins.frontends.hf_folder import SAFETENSORS, ModelFolder, is_model_folder, read_folder
from hnn.plugins.hookspecs import hookimpl

TEXT_LENGTH = 128  # hnn.ingest.onnx_prepare.DEFAULT_TOKENS is the same: an ONNX export with dynamic axes hashes alike
# Models up to this many parameters are built in memory with their weights (float32, about 17 bytes
# a parameter at the peak) and exported by the exporter asked for; larger ones take the
# bounded-memory path (transformers_meta: the dynamo exporter from the meta device, the weights
# read one tensor at a time), whose memory does not grow with the weights.
IN_MEMORY_PARAMETERS = 100_000_000


class TransformersFrontend(Frontend):
    name = "transformers"
    package = "transformers"
    exports_with_input_shape = True
    description = ("Hugging Face folders (config.json + safetensors, sharded or not), PreTrainedModel objects, "
                   "specs transformers:BertModel[:num_hidden_layers=4,...]")

    suffixes = (".safetensors",)
    spec_roots = ("transformers",)
    object_class = "transformers:PreTrainedModel"

    def claims(self, source: Any) -> bool:
        # A SavedModel folder may carry a config.json of its own: it stays the TensorFlow front-end's.
        return super().claims(source) or (isinstance(source, (str, Path)) and is_model_folder(source)
                                          and not (Path(source) / "saved_model.pb").exists())

    def to_onnx(self, source: Any, options: ConvertOptions) -> onnx.ModelProto:
        from hnn.plugins.frontends.pytorch_frontend import export_with_inputs

        exporter = options.exporter or "torchscript"
        _quiet()
        if is_spec(source):
            model = _build_from_spec(source)
        elif isinstance(source, (str, Path)):
            model = _load_folder(_model_folder(Path(source)), options.trust)
        else:
            model = source
        if isinstance(model, _TooLarge):
            from hnn.plugins.frontends.transformers_meta import export_from_meta

            if options.exporter not in (None, "dynamo"):
                raise UsageError(f"{model.model_class.__name__} of this config has {model.parameters:,} parameters: "
                                 "over the in-memory limit, it is exported from the meta device, which only the "
                                 "dynamo exporter can do")
            return export_from_meta(model.model_class, model.config, model.folder,
                                    lambda meta_model: _traceable(meta_model, options.input_shape))
        wrapped, inputs = _traceable(model, options.input_shape)
        return export_with_inputs(wrapped, inputs, exporter)


def _model_folder(path: Path) -> ModelFolder:
    """The folder to read: the path itself, or the folder of a ``.safetensors`` file with a config beside it."""
    if path.is_file() and path.name.lower().endswith(".safetensors"):
        if not is_model_folder(path.parent):
            raise InputError(f"{path}: weights without a config.json beside them: the tensors alone do not say "
                             "the architecture, so they have no code; `hnn check` and `hnn compare` test where "
                             "they come from, and the folder save_pretrained wrote (config.json and weights) hashes")
        folder = read_folder(path.parent)
        if path.resolve() not in {shard.resolve() for shard in folder.safetensors}:
            raise InputError(f"{path}: not the folder's weights ({SAFETENSORS} or the shards its index lists)")
        return folder
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    return read_folder(path)


def _config(data: dict):
    """A transformers config object from a checked config dict (its own class, no remote code)."""
    from transformers import CONFIG_MAPPING

    model_type = data["model_type"]
    if model_type not in CONFIG_MAPPING:
        raise InputError(f"model_type {model_type!r} is not one transformers {_version()} knows")
    try:
        config = CONFIG_MAPPING[model_type].from_dict({k: v for k, v in data.items() if k != "model_type"})
    except Exception as exc:
        raise InputError(f"the {model_type} config does not build: {summary(exc)}") from None
    return config


def _model_class(config, architectures: list[str] | None):
    """The class to build: the config's first architecture when transformers has it, else the base model."""
    import transformers
    from transformers import AutoModel, PreTrainedModel

    if architectures:
        found = getattr(transformers, architectures[0], None)  # transformers' own namespace: never a folder's file
        if not (isinstance(found, type) and issubclass(found, PreTrainedModel)):
            raise InputError(f"architecture {architectures[0]!r} is not a model class of transformers {_version()}")
        return found
    try:
        return AutoModel._model_mapping[type(config)]
    except KeyError:
        raise InputError(f"transformers {_version()} has no model class for {config.model_type!r}") from None


@dataclass(frozen=True)
class _TooLarge:
    """A model over IN_MEMORY_PARAMETERS: what the bounded-memory path needs to export it."""

    model_class: type
    config: Any
    folder: ModelFolder | None
    parameters: int


def _build(model_class, config, folder: ModelFolder | None = None, safetensors: bool = True):
    """The model, its size checked on the meta device first (nothing allocated), weights loaded when the
    folder has them; a :class:`_TooLarge` for a model the bounded-memory path exports."""
    import torch

    weights_folder = folder.path if folder is not None else None
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            probe = model_class(config)
        except Exception as exc:
            raise InputError(f"{model_class.__name__} does not build from this config: {summary(exc)}") from None
    parameters = sum(p.numel() for p in probe.parameters())
    if parameters > IN_MEMORY_PARAMETERS:
        if folder is not None and not safetensors:
            raise InputError(f"{model_class.__name__} of this config has {parameters:,} parameters: over "
                             f"{IN_MEMORY_PARAMETERS:,}, hnn reads weights one tensor at a time, from safetensors only")
        return _TooLarge(model_class, config, folder, parameters)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if weights_folder is None:
                return model_class(config).eval()
            return model_class.from_pretrained(
                str(weights_folder), config=config, local_files_only=True, use_safetensors=safetensors,
                trust_remote_code=False, dtype=torch.float32).eval()
        except Exception as exc:
            raise InputError(f"{model_class.__name__}: cannot load the weights: {summary(exc)}") from None


def _load_folder(folder: ModelFolder, trust: bool):
    if not folder.safetensors and folder.pickled and not trust:
        raise UntrustedInputError(f"{folder.pickled[0]}: pickled weights can run code when loaded; "
                                  "pass --trust only if you trust its author (safetensors need no trust)")
    config = _config(folder.config)
    has_weights = bool(folder.safetensors or (trust and folder.pickled))
    # Safetensors whenever the folder has them, trusted or not: the pickle is read only when it is all there is.
    return _build(_model_class(config, folder.config.get("architectures")), config,
                  folder if has_weights else None, safetensors=bool(folder.safetensors))


def _build_from_spec(spec: str):
    import transformers
    from transformers import PreTrainedModel

    _, name, overrides = parse_spec(spec)
    model_class = getattr(transformers, name, None)
    if not (isinstance(model_class, type) and issubclass(model_class, PreTrainedModel)):
        raise InputError(f"{spec}: {name!r} is not a model class of transformers {_version()}")
    try:
        config = model_class.config_class(**overrides)
    except Exception as exc:
        raise InputError(f"{spec}: the config does not build: {summary(exc)}") from None
    model = _build(model_class, config)
    return model if isinstance(model, _TooLarge) else _without_equal_weights(model)


def _without_equal_weights(model):
    """A freshly initialised model with a little noise on every weight, as training leaves them.

    Its norms start as ones and its biases as zeros, and torch's TorchScript exporter merges
    initializers of equal values, after which two norms of one input (GPT-NeoX's parallel
    attention and MLP) become one node: a spec's graph would then not be the graph of the
    trained models of its architecture. Only specs get this: their weights are random anyway."""
    import torch

    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype) * 1e-3)
    return model


def _quiet() -> None:
    """No progress bars or advice on stderr: hnn reports its own progress, and `--json` callers read stderr lines."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def _version() -> str:
    import transformers

    return transformers.__version__


def _traceable(model, input_shape):
    """A module whose forward takes plain tensors and returns one, and the inputs to trace it with."""
    import torch

    config = model.config
    main = getattr(model, "main_input_name", "input_ids")
    if isinstance(input_shape, dict):
        raise UsageError("the transformers front-end takes one --input-shape (for its main input)")
    if main == "input_ids":
        shape = input_shape or [1, TEXT_LENGTH]
        inputs = {"input_ids": torch.zeros(*shape, dtype=torch.long), "attention_mask": torch.ones(*shape, dtype=torch.long)}
    elif main == "pixel_values":
        size = getattr(config, "image_size", 224)
        size = size if isinstance(size, (list, tuple)) else (size, size)
        shape = input_shape or [1, getattr(config, "num_channels", 3), *size]
        inputs = {"pixel_values": torch.zeros(*shape)}
    elif main == "input_features":
        shape = input_shape or [1, getattr(config, "num_mel_bins", 80), 2 * getattr(config, "max_source_positions", 1500)]
        inputs = {"input_features": torch.zeros(*shape)}
    elif main == "input_values":
        inputs = {"input_values": torch.zeros(*(input_shape or [1, 16000]))}
    else:
        raise InputError(f"{type(model).__name__}: hnn does not know how to feed its input {main!r}")
    if getattr(config, "is_encoder_decoder", False):
        length = min(TEXT_LENGTH, inputs[main].shape[-1])
        inputs["decoder_input_ids"] = torch.zeros(1, length, dtype=torch.long)
        if "decoder_attention_mask" in inspect.signature(model.forward).parameters:  # as for the encoder: no aten::diff
            inputs["decoder_attention_mask"] = torch.ones(1, length, dtype=torch.long)
    return _wrapped(model, list(inputs)), tuple(inputs.values())


def _forward_keywords(model) -> dict:
    """No cache (a cache changes the graph, not the architecture), a tuple out: when forward takes them."""
    parameters = inspect.signature(model.forward).parameters
    return {key: value for key, value in (("use_cache", False), ("return_dict", False)) if key in parameters}


def _wrapped(model, names: list[str]):
    """``model`` as a torch module whose forward takes the named tensors in order and returns its first output."""
    import torch

    keywords = _forward_keywords(model)

    class Traceable(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *tensors):
            output = self.model(**dict(zip(names, tensors)), **keywords)
            return output[0] if isinstance(output, (tuple, list)) else output.to_tuple()[0]

    return Traceable()


@hookimpl
def hnn_register_frontends(register):
    register(TransformersFrontend())
