"""Ingestion: a model of any framework, as ONNX from its front-end, to one canonical graph IR.

:mod:`hnn.ingest.pipeline` runs the stage (in the limited worker of
:mod:`hnn.ingest.worker` for untrusted files): :mod:`~hnn.ingest.onnx_prepare` fixes
the trigger input and infers shapes, :mod:`~hnn.ingest.extract` builds the layer
graph (:mod:`~hnn.ingest.workgraph`) with FLOPs (:mod:`~hnn.ingest.flops`) and
parameters, :mod:`~hnn.ingest.canonicalize` makes it exporter-independent,
:mod:`~hnn.ingest.ordering` gives canonical ids, and :mod:`hnn.ingest.ir` is the
result; :mod:`~hnn.ingest.weights` samples the weights (weight marks).
"""

import sys
import types

from hnn.ingest.ir import Graph, GraphMeta, Node

__all__ = ["Graph", "GraphMeta", "Node"]


class _CallablePackage(types.ModuleType):
    """``hnn.ingest(model)`` is the library's entry point, and ``hnn.ingest`` is also this package: once
    the package is imported, Python rebinds the attribute ``hnn.ingest`` to it, so the package itself
    answers the call the function :func:`hnn.ingest` answered before."""

    def __call__(self, source, **options):
        from hnn.ingest.pipeline import ingest

        return ingest(source, **options)


sys.modules[__name__].__class__ = _CallablePackage
