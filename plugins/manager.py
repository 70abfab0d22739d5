"""The plugin manager: built-in front-ends, then installed third-party plugins.

Third-party plugins are found through the ``hnn`` entry-point group. Setting
``HNN_NO_THIRD_PARTY_PLUGINS=1`` keeps them out (the test suite does, so an
installed plugin cannot change its results).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import pluggy

from hnn.errors import HnnError, UsageError
from hnn.plugins import hookspecs
from hnn.plugins.frontend import Frontend

ENTRY_POINT_GROUP = "hnn"
DEFAULT_PLUGINS = (
    "hnn.plugins.frontends.onnx_frontend",
    "hnn.plugins.frontends.transformers_frontend",  # before pytorch: its models are torch modules too
    "hnn.plugins.frontends.pytorch_frontend",
    "hnn.plugins.frontends.tensorflow_frontend",
    "hnn.plugins.frontends.keras_frontend",
    "hnn.rules.plugin",  # by name: the rules stage registers its own files, and imports this module
)

_manager: pluggy.PluginManager | None = None


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, loading plugins on first use."""
    global _manager
    if _manager is None:
        manager = pluggy.PluginManager("hnn")
        manager.add_hookspecs(hookspecs)
        for module_name in DEFAULT_PLUGINS:
            manager.register(importlib.import_module(module_name), name=module_name)
        if not os.environ.get("HNN_NO_THIRD_PARTY_PLUGINS"):
            try:
                manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
            except Exception as exc:  # a broken third-party plugin must not take hnn down
                raise HnnError(f"cannot load a plugin of entry-point group {ENTRY_POINT_GROUP!r}: {exc}") from None
        # A misspelt hook name in any plugin fails here instead of being silently ignored.
        manager.check_pending()
        _manager = manager
    return _manager


def frontends() -> dict[str, tuple[Frontend, str]]:
    """Registered front-ends by name, each with the name of the plugin that registered it."""
    manager = get_plugin_manager()
    found: dict[str, tuple[Frontend, str]] = {}
    for impl in manager.hook.hnn_register_frontends.get_hookimpls():
        def register(frontend: Frontend, plugin: str = impl.plugin_name) -> None:
            if not isinstance(frontend, Frontend) or not frontend.name:
                raise HnnError(f"plugin {plugin} registered {frontend!r}, which is not a named Frontend")
            if frontend.name in found:
                raise HnnError(f"front-end {frontend.name!r} registered by both {found[frontend.name][1]} and {plugin}")
            found[frontend.name] = (frontend, plugin)

        impl.function(register=register)
    return found


def rule_files() -> list[tuple[str, str]]:
    """(path, plugin name) of every rule file contributed through ``hnn_register_rule_files``."""
    found = []
    for impl in get_plugin_manager().hook.hnn_register_rule_files.get_hookimpls():
        impl.function(register=lambda path, plugin=impl.plugin_name: found.append((str(path), plugin)))
    return found


def select_frontend(source: Any, framework: str | None) -> Frontend:
    """The front-end named by ``--framework``, else the first (built-ins first) that claims the source."""
    available = frontends()
    if framework is not None:
        if framework not in available:
            raise UsageError(f"unknown framework {framework!r}; installed: {', '.join(sorted(available))}")
        return available[framework][0]
    for frontend, _ in available.values():
        if frontend.claims(source):
            return frontend
    raise UsageError(
        f"cannot tell the framework of {str(source)!r:.80}; pass --framework ({', '.join(sorted(available))})"
    )
