"""Merge rules: compile rule files into :class:`Rule` objects and apply them to an IR graph.

A rule is a chain of elements; each element accepts one node by op type
(alternatives allowed), may be optional, and may require attribute values.
Matching semantics (docs/rules.md, tested in tests/test_rules.py):

* A chain follows data edges. Each member but the last must feed nothing but
  the next member (exactly one successor), and each member but the first must
  be fed by nothing but the previous member (exactly one predecessor). So a
  tensor that also feeds a skip connection ends the chain there.
* Every candidate match of every rule is collected; matches are then taken
  greedily, longest first, then by the rule's position in its file (files in
  the order given), then by the id of the first member. A candidate that
  overlaps a taken match is dropped: matches never overlap.
* The result depends only on the graph, never on the order nodes are stored in.

A merged node takes the rule's name as op, the first member's attributes,
the last member's output shape, the sums of the members' FLOPs and
parameters, and ``members`` listing the merged ops. Edges into and out of the
chain attach to it; no self-loops or duplicate edges arise.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from hnn.ingest.ir import Graph
from hnn.ingest.workgraph import WorkGraph, WorkNode, from_ir, to_ir


@dataclass(frozen=True)
class Element:
    """One position in a chain: the ops it accepts, whether it may be absent, required attributes.

    ``attrs`` maps an attribute name to an int, or to the string ``"channels"``:
    equal to the node's output channel count (depthwise Conv: ``group: channels``).
    """

    ops: tuple[str, ...]
    optional: bool = False
    attrs: tuple[tuple[str, int | str], ...] = ()

    def mismatch(self, node: WorkNode) -> str | None:
        """Why ``node`` does not fit here, or None when it does."""
        if node.op not in self.ops:
            return f"op {node.op} is not {'|'.join(self.ops)}"
        for name, wanted in self.attrs:
            if wanted == "channels":
                shape = node.output_shape
                wanted = shape[1] if shape and len(shape) > 1 else None
            if node.attrs.get(name) != wanted:
                return f"attribute {name}={node.attrs.get(name)!r}, rule wants {wanted!r}"
        return None

    def __str__(self) -> str:
        text = "|".join(self.ops)
        if self.attrs:
            text += "[" + ",".join(f"{k}={v}" for k, v in self.attrs) + "]"
        return text + ("?" if self.optional else "")


@dataclass(frozen=True)
class Rule:
    """A named chain pattern; ``source`` says which file (and rule set) it came from."""

    name: str
    chain: tuple[Element, ...]
    source: str = ""

    def matches_at(self, graph: WorkGraph, start: int) -> Iterator[list[int]]:
        """Every way the chain can match with its first present member at node ``start``."""
        yield from self._extend(graph, 0, start, [])

    def _extend(self, graph: WorkGraph, index: int, key: int | None, matched: list[int]) -> Iterator[list[int]]:
        if index == len(self.chain):
            if matched:
                yield matched
            return
        element = self.chain[index]
        if key is not None and element.mismatch(graph.nodes[key]) is None and _linked(graph, matched, key):
            node = graph.nodes[key]
            following = next(iter(node.succs)) if len(node.succs) == 1 else None
            yield from self._extend(graph, index + 1, following, [*matched, key])
        if element.optional:
            yield from self._extend(graph, index + 1, key, matched)

    def __str__(self) -> str:
        return f"{self.name}: " + " -> ".join(str(e) for e in self.chain)


def _linked(graph: WorkGraph, matched: list[int], key: int) -> bool:
    """The previous member feeds only ``key`` and ``key`` is fed only by it."""
    if not matched:
        return True
    previous = graph.nodes[matched[-1]]
    return previous.succs == {key} and graph.nodes[key].preds == {matched[-1]} and not previous.is_output


@dataclass
class RuleSet:
    """Rules in priority order (file order; files in the order given)."""

    name: str
    rules: list[Rule] = field(default_factory=list)

    def digest(self) -> str:
        """SHA-256 of the rules as written: a checkpoint records it to say which merging it expects."""
        import hashlib

        return hashlib.sha256("\n".join(str(rule) for rule in self.rules).encode()).hexdigest()

    def apply(self, graph: Graph) -> tuple[Graph, dict[str, int]]:
        """The merged graph and how many times each rule matched."""
        work, key_of_id = from_ir(graph)
        counts = {rule.name: 0 for rule in self.rules}
        id_rank = {key: _id_rank(node_id) for node_id, key in key_of_id.items()}
        candidates = []
        for priority, rule in enumerate(self.rules):
            for start in work.nodes:
                for members in rule.matches_at(work, start):
                    candidates.append((-len(members), priority, id_rank[members[0]], members, rule))
        candidates.sort(key=lambda c: c[:3])
        taken: set[int] = set()
        for _, _, _, members, rule in candidates:
            if taken.intersection(members):
                continue
            taken.update(members)
            merge_chain(work, members, rule.name)
            counts[rule.name] += 1
        meta = replace(graph.meta, rules=[*graph.meta.rules, self.name])
        return to_ir(work, meta), counts


def _id_rank(node_id: str) -> tuple[int, str]:
    digits = node_id[1:]
    return (int(digits), node_id) if digits.isdigit() else (10**12, node_id)


def merge_chain(work: WorkGraph, members: list[int], name: str) -> None:
    """Replace a linked chain by its first node, renamed, carrying the sums of the members."""
    head = work.nodes[members[0]]
    tail = work.nodes[members[-1]]
    head.members = [m for key in members for m in (work.nodes[key].members or [work.nodes[key].op])]
    head.op = name
    head.flops = sum(work.nodes[key].flops for key in members)
    head.params = sum(work.nodes[key].params for key in members)
    head.output_shape = tail.output_shape
    head.is_output = tail.is_output
    head.succs = set(tail.succs)
    for key in members[1:]:
        work.nodes.pop(key)
    for succ in head.succs:
        work.nodes[succ].preds -= set(members[1:])
        work.nodes[succ].preds.add(head.key)
