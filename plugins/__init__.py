"""Plugin system (pluggy): front-ends that turn a framework's models into ONNX.

* :mod:`hnn.plugins.hookspecs` documents the hooks a plugin may implement.
* :mod:`hnn.plugins.manager` holds the one plugin manager and loads plugins lazily.
* :mod:`hnn.plugins.frontend` defines :class:`Frontend`, what a front-end plugin registers.
* :mod:`hnn.plugins.frontends` holds the built-in front-ends, registered like any third-party one,
  with the safety checks only they use (archives, the SavedModel policy, safe ONNX file reading).

docs/plugins.md shows how to write a plugin.
"""

from hnn.plugins.hookspecs import hookimpl

__all__ = ["hookimpl"]
