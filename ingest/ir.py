"""The canonical graph IR: what every front-end's model becomes, and what the hasher reads.

A :class:`Graph` is a directed acyclic data-flow graph of layer-level
:class:`Node` objects plus :class:`GraphMeta`. Node ids (``n0``, ``n1``, ...)
are assigned by :mod:`hnn.ingest.ordering` from the graph's structure alone,
so renaming every tensor of a model, or exporting it with another exporter,
leaves them unchanged.

The IR is saved as versioned JSON (``FORMAT``/``VERSION`` below) and
validated on load: a hand-edited or truncated file gives an
:class:`~hnn.errors.IRFormatError` naming the file and the field at fault.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hnn.errors import IRFormatError, read_user_text
from hnn.ingest.toposort import topological_order
from hnn.ingest.weights import MARKS as MAX_WEIGHT_MARKS
from hnn.provenance.fingerprint import Fingerprint

FORMAT = "hnn-ir"
VERSION = 1

# Attributes kept on a node: the few that describe a layer's shape, with ONNX
# defaults filled in so that exporters that omit a default agree with those that write it.
CANONICAL_ATTRIBUTES = ("kernel_shape", "strides", "dilations", "group")


@dataclass(frozen=True)
class Node:
    """One layer-level operation.

    Args:
        id: stable id, ``n<k>`` in canonical order.
        op: ONNX op type (``Conv``, ``Gemm``, ...) or, after merging, a rule's name.
        attrs: canonical attributes (see ``CANONICAL_ATTRIBUTES``), lists of ints or ints.
        output_shape: shape of the first output for the trigger input; None if unknown.
        flops: floating-point operations for the trigger input (docs/ir.md gives the formulas).
        params: learnable parameters (elements of the weights the node consumes).
        members: for a node made by a merge rule, the ops it replaced, in order; else empty.
    """

    id: str
    op: str
    attrs: dict[str, Any] = field(default_factory=dict)
    output_shape: list[int] | None = None
    flops: int = 0
    params: int = 0
    members: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "id": self.id,
            "op": self.op,
            "attrs": self.attrs,
            "output_shape": self.output_shape,
            "flops": self.flops,
            "params": self.params,
        }
        if self.members:
            data["members"] = self.members
        return data


@dataclass(frozen=True)
class GraphMeta:
    """Where a graph came from and how it was made.

    Args:
        framework: front-end that produced the ONNX model (``onnx``, ``pytorch``, ...).
        source: what the user passed (a path or a ``module:factory`` spec).
        input_shapes: trigger input shape per graph input name.
        opset: default-domain opset of the ONNX model.
        producer: ``producer_name producer_version`` from the ONNX model.
        hnn_version: version of hnn that wrote the IR.
        rules: names of the merge rule sets applied, empty for raw data.
        weight_marks: a sample of the model's weight values (hnn.ingest.weights), empty when
            it has none or the IR was written before hnn kept them.
        provenance: the fingerprint of the model's weights (hnn.provenance), None when it has no
            weight layer or the IR was written before hnn made them.
    """

    framework: str
    source: str = ""
    input_shapes: dict[str, list[int]] = field(default_factory=dict)
    opset: int | None = None
    producer: str = ""
    hnn_version: str = ""
    rules: list[str] = field(default_factory=list)
    weight_marks: list[int] = field(default_factory=list)
    provenance: Fingerprint | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {
            "framework": self.framework,
            "source": self.source,
            "input_shapes": self.input_shapes,
            "opset": self.opset,
            "producer": self.producer,
            "hnn_version": self.hnn_version,
            "rules": self.rules,
        }
        if self.weight_marks:  # absent rather than empty: IR files without weights read as before
            data["weight_marks"] = self.weight_marks
        if self.provenance is not None:
            data["provenance"] = self.provenance.to_dict()
        return data


@dataclass(frozen=True)
class Graph:
    """A canonical model graph: nodes in canonical order and directed edges between their ids."""

    nodes: list[Node]
    edges: list[tuple[str, str]]
    meta: GraphMeta

    @property
    def total_flops(self) -> int:
        return sum(node.flops for node in self.nodes)

    @property
    def total_params(self) -> int:
        return sum(node.params for node in self.nodes)

    def op_histogram(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self.nodes:
            counts[node.op] = counts.get(node.op, 0) + 1
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))

    def summary(self) -> dict[str, Any]:
        """What ``hnn ingest --json`` prints: sizes, totals and the op histogram."""
        return {
            "source": self.meta.source,
            "framework": self.meta.framework,
            "nodes": len(self.nodes),
            "edges": len(self.edges),
            "flops": self.total_flops,
            "params": self.total_params,
            "ops": self.op_histogram(),
            "input_shapes": self.meta.input_shapes,
            "rules": self.meta.rules,
            "digest": self.digest(),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "meta": self.meta.to_dict(),
            "nodes": [node.to_dict() for node in self.nodes],
            "edges": [list(edge) for edge in self.edges],
        }

    def digest(self) -> str:
        """SHA-256 of nodes and edges (not metadata): equal digests mean equal graphs."""
        body = {"nodes": [n.to_dict() for n in self.nodes], "edges": [list(e) for e in self.edges]}
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def to_json_file(self, path: str | Path) -> None:
        """Write atomically: a crash mid-write never leaves a truncated IR behind."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.to_json() + "\n")
        tmp.replace(path)

    @classmethod
    def from_dict(cls, data: Any, origin: str = "IR") -> Graph:
        return _GraphValidator(origin).graph(data)

    @classmethod
    def from_json_file(cls, path: str | Path) -> Graph:
        text = read_user_text(path, IRFormatError)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise IRFormatError(
                f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
                "the file may be truncated"
            ) from None
        except RecursionError:
            raise IRFormatError(f"{path}: nested too deeply to be an IR file") from None
        return cls.from_dict(data, origin=str(path))


class _GraphValidator:
    """Turns parsed JSON into a Graph, or raises naming the first field at fault."""

    def __init__(self, origin: str):
        self.origin = origin

    def fail(self, where: str, problem: str) -> IRFormatError:
        return IRFormatError(f"{self.origin}: {where}: {problem}")

    def expect(self, value: Any, kind: type | tuple, where: str, what: str) -> Any:
        # bool is an int subclass in Python; a count of True is never meant.
        if isinstance(value, bool) and kind in (int, (int, float)):
            raise self.fail(where, f"expected {what}, got {value!r}")
        if not isinstance(value, kind):
            raise self.fail(where, f"expected {what}, got {type(value).__name__} {value!r:.40}")
        return value

    def count(self, value: Any, where: str) -> int:
        self.expect(value, int, where, "a non-negative integer")
        if value < 0:
            raise self.fail(where, f"expected a non-negative integer, got {value}")
        return value

    def shape(self, value: Any, where: str) -> list[int] | None:
        if value is None:
            return None
        self.expect(value, list, where, "a list of integers or null")
        return [self.count(dim, f"{where}[{i}]") for i, dim in enumerate(value)]

    def graph(self, data: Any) -> Graph:
        self.expect(data, dict, "top level", "a JSON object")
        if data.get("format") != FORMAT:
            raise self.fail("format", f"expected {FORMAT!r}, got {data.get('format')!r}: not an hnn IR file")
        version = data.get("version")
        self.expect(version, int, "version", "an integer")
        if version > VERSION:
            raise self.fail("version", f"IR version {version} is newer than this hnn reads ({VERSION}); upgrade hnn")
        unknown = set(data) - {"format", "version", "meta", "nodes", "edges"}
        if unknown:
            raise self.fail("top level", f"unknown field(s) {sorted(unknown)}")
        meta = self.meta(data.get("meta"))
        nodes_data = self.expect(data.get("nodes"), list, "nodes", "a list")
        nodes = [self.node(item, f"nodes[{i}]") for i, item in enumerate(nodes_data)]
        ids = set()
        for i, node in enumerate(nodes):
            if node.id in ids:
                raise self.fail(f"nodes[{i}].id", f"duplicate id {node.id!r}")
            ids.add(node.id)
        edges = self.edges(data.get("edges"), ids)
        graph = Graph(nodes=nodes, edges=edges, meta=meta)
        self.acyclic(graph)
        return graph

    def meta(self, data: Any) -> GraphMeta:
        self.expect(data, dict, "meta", "an object")
        unknown = set(data) - set(GraphMeta.__dataclass_fields__)
        if unknown:
            raise self.fail("meta", f"unknown field(s) {sorted(unknown)}")
        framework = self.expect(data.get("framework"), str, "meta.framework", "a string")
        input_shapes = self.expect(data.get("input_shapes", {}), dict, "meta.input_shapes", "an object")
        shapes = {
            self.expect(name, str, "meta.input_shapes", "string keys"): self.shape(shape, f"meta.input_shapes.{name}")
            for name, shape in input_shapes.items()
        }
        opset = data.get("opset")
        if opset is not None:
            self.count(opset, "meta.opset")
        rules = self.expect(data.get("rules", []), list, "meta.rules", "a list")
        for i, rule in enumerate(rules):
            self.expect(rule, str, f"meta.rules[{i}]", "a string")
        marks = self.expect(data.get("weight_marks", []), list, "meta.weight_marks", "a list")
        if len(marks) > MAX_WEIGHT_MARKS:
            raise self.fail("meta.weight_marks", f"{len(marks)} marks, more than the {MAX_WEIGHT_MARKS} hnn makes")
        for i, mark in enumerate(marks):
            if self.count(mark, f"meta.weight_marks[{i}]") >= 1 << 63:
                raise self.fail(f"meta.weight_marks[{i}]", "more than 63 bits")
        provenance = None
        if data.get("provenance") is not None:
            try:
                provenance = Fingerprint.from_dict(data["provenance"])
            except ValueError as exc:
                raise self.fail("meta.provenance", str(exc)) from None
        return GraphMeta(
            framework=framework,
            source=self.expect(data.get("source", ""), str, "meta.source", "a string"),
            input_shapes=shapes,
            opset=opset,
            producer=self.expect(data.get("producer", ""), str, "meta.producer", "a string"),
            hnn_version=self.expect(data.get("hnn_version", ""), str, "meta.hnn_version", "a string"),
            rules=rules,
            weight_marks=marks,
            provenance=provenance,
        )

    def node(self, data: Any, where: str) -> Node:
        self.expect(data, dict, where, "an object")
        unknown = set(data) - set(Node.__dataclass_fields__)
        if unknown:
            raise self.fail(where, f"unknown field(s) {sorted(unknown)}")
        for required in ("id", "op"):
            if required not in data:
                raise self.fail(where, f"missing field {required!r}")
        node_id = self.expect(data["id"], str, f"{where}.id", "a string")
        op = self.expect(data["op"], str, f"{where}.op", "a string")
        if not op:
            raise self.fail(f"{where}.op", "empty op name")
        attrs = self.expect(data.get("attrs", {}), dict, f"{where}.attrs", "an object")
        for name, value in attrs.items():
            if isinstance(value, list):
                for i, item in enumerate(value):
                    self.expect(item, int, f"{where}.attrs.{name}[{i}]", "an integer")
            else:
                self.expect(value, int, f"{where}.attrs.{name}", "an integer or a list of integers")
        members = self.expect(data.get("members", []), list, f"{where}.members", "a list")
        for i, member in enumerate(members):
            self.expect(member, str, f"{where}.members[{i}]", "a string")
        return Node(
            id=node_id,
            op=op,
            attrs=attrs,
            output_shape=self.shape(data.get("output_shape"), f"{where}.output_shape"),
            flops=self.count(data.get("flops", 0), f"{where}.flops"),
            params=self.count(data.get("params", 0), f"{where}.params"),
            members=members,
        )

    def edges(self, data: Any, ids: set[str]) -> list[tuple[str, str]]:
        self.expect(data, list, "edges", "a list")
        edges = []
        seen = set()
        for i, item in enumerate(data):
            where = f"edges[{i}]"
            if not (isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)):
                raise self.fail(where, f"expected [source id, target id], got {item!r:.60}")
            src, dst = item
            for end in (src, dst):
                if end not in ids:
                    raise self.fail(where, f"unknown node id {end!r}")
            if src == dst:
                raise self.fail(where, f"self-loop on {src!r}")
            if (src, dst) in seen:
                raise self.fail(where, f"duplicate edge {src!r} -> {dst!r}")
            seen.add((src, dst))
            edges.append((src, dst))
        return edges

    def acyclic(self, graph: Graph) -> None:
        successors: dict[str, list[str]] = {node.id: [] for node in graph.nodes}
        for src, dst in graph.edges:
            successors[src].append(dst)
        if len(topological_order(successors, successors)) != len(graph.nodes):
            raise self.fail("edges", "the graph has a cycle; a model's data-flow graph must be acyclic")
