"""The ingestion pipeline: any model -> ONNX (front-end) -> prepared ONNX -> canonical IR."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import onnx

from hnn._version import __version__
from hnn.errors import InputError
from hnn.ingest.canonicalize import canonicalize
from hnn.ingest.dequantize import float_graph
from hnn.ingest.extract import extract
from hnn.ingest.ir import Graph, GraphMeta
from hnn.ingest.onnx_prepare import (
    check_text_fields,
    parse_input_shape,
    prepare,
    resolve_trigger_shapes,
)
from hnn.ingest.weights import weight_marks
from hnn.ingest.workgraph import to_ir
from hnn.provenance.fingerprint import fingerprint
from hnn.weight_store import WeightedModel, WeightStore

log = logging.getLogger("hnn.ingest")

EXAMPLE_MODEL = Path(__file__).parent / "examples" / "small_cnn.onnx"


def onnx_to_ir(
    model: onnx.ModelProto,
    framework: str = "onnx",
    source: str = "",
    input_shape: list[int] | dict[str, list[int]] | str | None = None,
    simplify: bool = True,
    weights: WeightStore | None = None,
) -> Graph:
    """Canonical IR of an ONNX model: fix the trigger input, simplify, extract, canonicalize.

    The weight marks and the provenance fingerprint are taken from the model as given: onnxsim
    folds some weights into others, which would change their values. ``weights``: the values of
    the model's hollow tensors, when a front-end kept its large weights out of the graph
    (hnn.weight_store). onnxsim never sees weight values anyway (onnx_prepare gives each
    weight a constant of its own), so a hollow graph simplifies as a full one does.
    """
    check_text_fields(model)
    if isinstance(input_shape, str):
        input_shape = parse_input_shape(input_shape)
    shapes = resolve_trigger_shapes(model, input_shape)
    log.info("trigger input: %s; %s", shapes, "simplifying with onnxsim" if simplify else "not simplifying")
    prepared = prepare(float_graph(model), shapes, simplify=simplify)
    work = extract(prepared)
    log.info("extracted %d data nodes from %d ONNX nodes", len(work.nodes), len(prepared.graph.node))
    canonicalize(work)
    opset = next((o.version for o in prepared.opset_import if o.domain in ("", "ai.onnx")), None)
    meta = GraphMeta(
        framework=framework,
        source=source,
        input_shapes=shapes,
        opset=opset,
        producer=f"{model.producer_name} {model.producer_version}".strip(),
        hnn_version=__version__,
        weight_marks=weight_marks(model, weights=weights),
        provenance=fingerprint(model, weights),
    )
    return to_ir(work, meta)


def ingest(
    source: Any,
    framework: str | None = None,
    input_shape: list[int] | dict[str, list[int]] | str | None = None,
    trust: bool = False,
    exporter: str | None = None,
    simplify: bool = True,
) -> Graph:
    """Convert a model of any installed framework to canonical IR.

    Args:
        source: a path (``.onnx``, ``.keras``, a SavedModel folder, ...), a ``module:factory``
            spec, or a framework object (``torch.nn.Module``, ``keras.Model``, ``onnx.ModelProto``).
        framework: front-end name; None detects it from the source.
        input_shape: trigger input shape (``"1,3,224,224"`` or a list), None for the model's own.
        trust: allow formats that can run code when loaded (pickle, TorchScript, ``.pt2``).
        exporter: front-end specific exporter (pytorch: ``torchscript`` or ``dynamo``).
        simplify: run onnxsim before extraction.
    """
    from hnn.plugins.frontend import ConvertOptions
    from hnn.plugins.manager import select_frontend

    if isinstance(input_shape, str):
        input_shape = parse_input_shape(input_shape)
    frontend = select_frontend(source, framework)
    log.info("framework: %s; converting to ONNX", frontend.name)
    with tempfile.TemporaryDirectory(prefix="hnn-") as workdir:
        options = ConvertOptions(input_shape=input_shape, trust=trust, exporter=exporter, workdir=Path(workdir))
        model = frontend.to_onnx(source, options)
    weights = None
    if isinstance(model, WeightedModel):
        model, weights = model.model, model.weights
    # A front-end that exports with the trigger shape itself has already used it.
    onnx_shape = None if frontend.exports_with_input_shape else input_shape
    label = source if isinstance(source, (str, Path)) else type(source).__name__
    try:
        return onnx_to_ir(model, framework=frontend.name, source=str(label), input_shape=onnx_shape,
                          simplify=simplify, weights=weights)
    except InputError as exc:
        if not isinstance(source, (str, Path)) or str(source) in str(exc):
            raise
        raise type(exc)(f"{Path(source).name}: {exc}") from None  # name the file, as the worker does


def ingest_safely(source: Any, trust: bool = False, limits=None, worker=None, **options) -> Graph:
    """:func:`ingest`, in a resource-limited worker process unless the input is trusted.

    Files and folders a user has not marked trusted (``trust=False``) convert in
    :mod:`hnn.ingest.worker`. Installed code (``module:factory`` specs) and objects
    already in memory convert here. ``worker``: how the worker starts (hnn.ingest.worker's
    ``launcher``; a service passes its :class:`hnn.ingest.forkserver.WarmWorkers`).
    """
    from hnn.plugins.frontend import is_spec

    if trust or not isinstance(source, (str, Path)) or is_spec(str(source)):
        return ingest(source, trust=trust, **options)
    from hnn.ingest.worker import Limits, ingest_in_worker
    from hnn.plugins.manager import select_frontend

    # Usage errors here, before a process starts; the worker then uses this front-end by name.
    frontend = select_frontend(source, options.get("framework"))
    return ingest_in_worker(str(source), {**options, "framework": frontend.name}, limits or Limits(), launcher=worker)
