"""Front-end for PyTorch: ``nn.Module`` objects, ``module:factory`` specs, and model files.

Export keeps BatchNormalization as its own node (TorchScript exporter with
``training=PRESERVE`` on a module in eval mode; dynamo exporter with
``optimize=False``), so the Conv-BN merge rules see it; docs/ir.md explains why.

Files: TorchScript archives and ``.pt2`` programs can run code or load native
libraries when loaded, and a pickle can run anything; they load only with
``trust=True``. Without it, a pickle is opened with ``torch.load(weights_only=True)``,
which only tells a bare state_dict (weights without an architecture) apart.
"""

from __future__ import annotations

import io
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import onnx

from hnn.errors import InputError, UntrustedInputError, UsageError, first_line, summary
from hnn.plugins.frontend import ConvertOptions, Frontend, is_spec, resolve_spec
from hnn.plugins.frontends.archives import check_zip_archive
from hnn.plugins.hookspecs import hookimpl
from hnn.stdio import stdout_to_stderr

SUFFIXES = (".pt", ".pth", ".pt2", ".ts", ".torchscript")
SPEC_ROOTS = ("torch", "torchvision", "timm")
DEFAULT_INPUT_SHAPE = [1, 3, 224, 224]
# Architectures whose factories need another input size than DEFAULT_INPUT_SHAPE.
INPUT_SHAPE_OF_SPEC = {"torchvision.models:inception_v3": [1, 3, 299, 299]}
EXPORTERS = ("torchscript", "dynamo")
OPSET = 18


class PyTorchFrontend(Frontend):
    name = "pytorch"
    package = "torch"
    exports_with_input_shape = True
    description = "nn.Module objects, module:factory specs (torchvision.models:resnet18), TorchScript/.pt2 with --trust"

    suffixes = SUFFIXES
    spec_roots = SPEC_ROOTS
    object_class = "torch:nn.Module"

    def to_onnx(self, source: Any, options: ConvertOptions) -> onnx.ModelProto:
        import torch

        exporter = options.exporter or "torchscript"
        if exporter not in EXPORTERS:
            raise UsageError(f"unknown pytorch exporter {exporter!r}; choose from {', '.join(EXPORTERS)}")
        if isinstance(source, torch.nn.Module):
            module, shape = source, options.input_shape or DEFAULT_INPUT_SHAPE
        elif is_spec(source):
            module = _build_from_spec(source)
            shape = options.input_shape or INPUT_SHAPE_OF_SPEC.get(source, DEFAULT_INPUT_SHAPE)
        else:
            module = _load_file(Path(source), options.trust)
            shape = options.input_shape or DEFAULT_INPUT_SHAPE
        return export_module(module, shape, exporter)


def _build_from_spec(spec: str):
    import torch

    factory, keywords = resolve_spec(spec)
    try:
        with warnings.catch_warnings():  # torchvision warns about init defaults; nothing for our user
            warnings.simplefilter("ignore")
            model = factory(**keywords)  # torchvision factories build without weights by default
    except Exception as exc:
        raise InputError(f"{spec}: calling the factory failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(model, torch.nn.Module):
        raise InputError(f"{spec}: the factory returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _archive_kind(path: Path) -> str:
    """'torchscript', 'pt2' or 'pickle', from the zip layout torch writes."""
    if not zipfile.is_zipfile(path):
        return "pickle"  # the legacy (pre-1.6) torch.save format is a bare pickle
    names = check_zip_archive(path)
    if any(name.endswith("archive_format") or "/models/" in name for name in names) or path.suffix == ".pt2":
        return "pt2"
    if any("/code/" in name for name in names):
        return "torchscript"
    return "pickle"


def _load_file(path: Path, trust: bool):
    import torch

    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory; the pytorch front-end reads files and module:factory specs")
    kind = _archive_kind(path)
    if kind in ("torchscript", "pt2") and not trust:
        raise UntrustedInputError(
            f"{path}: a {'TorchScript archive' if kind == 'torchscript' else 'torch.export .pt2 archive'} "
            "can run code or load native libraries when loaded; pass --trust only if you trust its author"
        )
    try:
        if kind == "torchscript":
            return torch.jit.load(str(path), map_location="cpu")
        if kind == "pt2":
            return torch.export.load(str(path)).module()
        if trust:
            loaded = torch.load(str(path), map_location="cpu", weights_only=False)
        else:
            loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        message = first_line(exc) or type(exc).__name__
        if kind == "pickle" and not trust and "weights_only" in str(exc):
            raise UntrustedInputError(
                f"{path}: holds pickled objects beyond plain tensors (e.g. a whole nn.Module); unpickling "
                "them can run code; pass --trust only if you trust its author"
            ) from None
        raise InputError(f"{path}: cannot load as a PyTorch file: {message}") from None
    if isinstance(loaded, torch.nn.Module):
        return loaded
    if isinstance(loaded, Mapping):
        raise InputError(
            f"{path}: holds only weights (a state_dict), not an architecture; "
            "hash the architecture instead, e.g. `hnn ingest torchvision.models:resnet18`"
        )
    raise InputError(f"{path}: holds a {type(loaded).__name__}, not a torch.nn.Module")


def _example_inputs(shape):
    import torch

    shapes = list(shape.values()) if isinstance(shape, dict) else [shape]
    return tuple(torch.zeros(*dims) for dims in shapes)


def export_module(module, shape, exporter: str = "torchscript") -> onnx.ModelProto:
    """Export an nn.Module in eval mode with BatchNormalization kept, traced with zeros of ``shape``."""
    return export_with_inputs(module, _example_inputs(shape), exporter)


def export_with_inputs(module, args: tuple, exporter: str = "torchscript") -> onnx.ModelProto:
    """Export an nn.Module traced with the tensors ``args``, in eval mode; restores its training flag."""
    import torch

    was_training = module.training
    module.eval()
    try:
        # Gradients stay enabled: under no_grad, nn.MultiheadAttention (ViT) takes a fused fast
        # path that no ONNX exporter supports. stdout goes to stderr: the TorchScript exporter
        # prints whole graphs to stdout on failure, which would corrupt `--json` output.
        with warnings.catch_warnings(), stdout_to_stderr():
            warnings.simplefilter("ignore")
            if exporter == "dynamo":
                program = torch.onnx.export(module, args, dynamo=True, optimize=False, verbose=False,
                                            opset_version=OPSET)
                return program.model_proto
            buffer = io.BytesIO()
            torch.onnx.export(module, args, buffer, dynamo=False, opset_version=OPSET,
                              training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=True)
            return onnx.load_model_from_string(buffer.getvalue())
    except Exception as exc:
        raise InputError(f"torch ONNX export ({exporter}) failed: {summary(exc)}") from None
    finally:
        module.train(was_training)


@hookimpl
def hnn_register_frontends(register):
    register(PyTorchFrontend())
