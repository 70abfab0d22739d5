"""Hook specifications of hnn plugins.

A plugin is a module or object with functions decorated by
``hnn.plugins.hookimpl`` whose names match the specifications below. Hooks
receive a ``register`` callback and call it once per thing they contribute;
none of them is ``firstresult``: every plugin's contributions are collected.
docs/plugins.md documents each hook (a test keeps the two in step).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import pluggy

if TYPE_CHECKING:
    from hnn.plugins.frontend import Frontend

hookspec = pluggy.HookspecMarker("hnn")
hookimpl = pluggy.HookimplMarker("hnn")


@hookspec
def hnn_register_frontends(register: Callable[["Frontend"], None]) -> None:
    """Contribute model front-ends.

    Args:
        register: call ``register(frontend)`` with a :class:`hnn.plugins.frontend.Frontend`
            instance for each framework the plugin converts to ONNX. A front-end whose
            ``name`` is already registered raises an error naming both plugins.
    """


@hookspec
def hnn_register_rule_files(register: Callable[[str], None]) -> None:
    """Contribute merge-rule files.

    Args:
        register: call ``register(path)`` with the path of a YAML or TOML rule file
            (docs/rules.md) for each rule set the plugin ships. ``hnn rules show`` lists
            them with the plugin's name; ``hnn ingest --rules NAME`` selects one by its
            rule-set name.
    """
