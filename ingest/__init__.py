"""Ingestion: models of any framework to one canonical graph IR.

:mod:`hnn.ingest.ir` defines the IR; :func:`hnn.ingest.pipeline.ingest` makes
it; the passes in :mod:`hnn.ingest.canonicalize` make it exporter-independent.
"""

from hnn.ingest.ir import Graph, GraphMeta, Node

__all__ = ["Graph", "GraphMeta", "Node"]
