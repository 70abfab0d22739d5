"""Front-end for ONNX files: they are already the common format."""

from __future__ import annotations

from typing import Any

import onnx

from hnn.plugins.frontend import ConvertOptions, Frontend
from hnn.plugins.frontends.onnx_files import load_onnx_weighted
from hnn.plugins.hookspecs import hookimpl
from hnn.weight_store import WeightedModel


class OnnxFrontend(Frontend):
    name = "onnx"
    package = "onnx"
    description = ".onnx files (external data only from the model's own folder)"

    suffixes = (".onnx",)
    object_class = "onnx:ModelProto"

    def to_onnx(self, source: Any, options: ConvertOptions) -> onnx.ModelProto | WeightedModel:
        if isinstance(source, onnx.ModelProto):
            return source
        return load_onnx_weighted(source)


@hookimpl
def hnn_register_frontends(register):
    register(OnnxFrontend())

