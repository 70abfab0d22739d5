"""The one topological sort (Kahn's algorithm) that ONNX nodes, work graphs and IR files share."""

from __future__ import annotations

from typing import Hashable, Iterable, Mapping, TypeVar

Key = TypeVar("Key", bound=Hashable)


def topological_order(keys: Iterable[Key], successors: Mapping[Key, Iterable[Key]]) -> list[Key]:
    """``keys`` with every key after all keys that lead to it; a cycle leaves its keys out.

    Deterministic: of the keys ready at the start, the one earliest in ``keys`` comes first, and
    keys made ready go before those that were ready already (depth first); ``successors`` lists
    each successor once. Callers detect a cycle by a shorter result.
    """
    keys = list(keys)
    indegree = dict.fromkeys(keys, 0)
    for key in keys:
        for successor in successors[key]:
            indegree[successor] += 1
    ready = [key for key in reversed(keys) if indegree[key] == 0]
    order = []
    while ready:
        key = ready.pop()
        order.append(key)
        for successor in successors[key]:
            indegree[successor] -= 1
            if indegree[successor] == 0:
                ready.append(successor)
    return order
