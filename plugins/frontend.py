"""What a front-end plugin registers: a :class:`Frontend` that turns a model into ONNX.

A front-end never imports its framework at module level: ``hnn --help`` and
ONNX-only work must not pay for torch or TensorFlow. It imports inside
:meth:`Frontend.to_onnx`.
"""

from __future__ import annotations

import importlib.metadata
import operator
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

# package.module:factory, optionally followed by :key=value,key=value (keyword arguments of the factory,
# or config overrides for a front-end that builds from a config).
SPEC_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*(:[A-Za-z_]\w*=[^,=]*(,[A-Za-z_]\w*=[^,=]*)*)?$")


# Factory keywords that load or download weights (torchvision's weights=, timm's pretrained=, ...).
FETCHING_KEYWORDS = ("weight", "pretrained", "checkpoint", "url", "path", "file", "hub", "download")


def is_spec(source: Any) -> bool:
    """True for ``package.module:factory[:key=value,...]`` strings that are not existing paths."""
    return isinstance(source, str) and bool(SPEC_PATTERN.match(source)) and not Path(source).exists()


def spec_module(source: str) -> str:
    return source.partition(":")[0]


def parse_spec(source: str) -> tuple[str, str, dict[str, Any]]:
    """(module, attribute, keyword arguments) of a spec: ``timm:resnet18:num_classes=10`` gives
    ``("timm", "resnet18", {"num_classes": 10})``. Values are JSON literals (numbers, true, false,
    null, quoted strings); anything else is taken as a plain string."""
    import json

    module, _, rest = source.partition(":")
    attribute, _, arguments = rest.partition(":")
    keywords: dict[str, Any] = {}
    for pair in filter(None, arguments.split(",")):
        key, _, text = pair.partition("=")
        try:
            keywords[key] = json.loads(text)
        except ValueError:
            keywords[key] = text
    return module, attribute, keywords


def resolve_spec(spec: str) -> tuple[Any, dict[str, Any]]:
    """The factory a spec names (imported from installed code) and the keyword arguments it gives."""
    import importlib

    from hnn.errors import InputError

    module_name, attribute, keywords = parse_spec(spec)
    fetching = [key for key in keywords if any(word in key.lower() for word in FETCHING_KEYWORDS)]
    if fetching:
        raise InputError(f"{spec}: {', '.join(fetching)}: a spec builds an architecture without weights, "
                         "and hnn downloads nothing; hash a weights file or folder instead")
    # A factory may be any installed callable, and a manifest of `hnn index add-store` may list specs:
    # strings would let one name a command or a folder (`subprocess:run:args=...`, `torch.hub:load` of a
    # local hubconf). Sizes and switches are numbers and booleans.
    worded = [key for key, value in keywords.items() if not (value is None or isinstance(value, (bool, int, float)))]
    if worded:
        raise InputError(f"{spec}: {', '.join(worded)}: a spec's keyword arguments are numbers, true, false "
                         "or null")
    try:
        factory = importlib.import_module(module_name)
        for part in attribute.split("."):
            factory = getattr(factory, part)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"{spec}: cannot find the factory ({exc})") from None
    return factory, keywords


@dataclass(frozen=True)
class ConvertOptions:
    """Options a front-end receives with each model.

    Args:
        input_shape: trigger input shape from ``--input-shape`` (a list for the only input,
            a dict name -> shape for several), or None for the front-end's default.
        trust: the user vouches for the file: formats that can run code when loaded
            (pickle, TorchScript, ``.pt2``) may be loaded.
        exporter: front-end specific exporter choice (pytorch: ``torchscript`` or ``dynamo``),
            None for the default.
        workdir: a private temporary folder the front-end may write to; deleted afterwards.
    """

    input_shape: list[int] | dict[str, list[int]] | None = None
    trust: bool = False
    exporter: str | None = None
    workdir: Path = field(default_factory=Path)


class Frontend:
    """Base class of front-ends. Subclasses set the class attributes and implement two methods.

    Attributes:
        name: the value of ``--framework`` that selects this front-end.
        package: distribution whose version ``hnn frameworks`` shows.
        description: one line for ``hnn frameworks``.
        exports_with_input_shape: True when ``to_onnx`` applies ``options.input_shape`` itself
            (it traces the model with it); otherwise the pipeline applies it to the ONNX inputs.
        suffixes: file name endings (lower case) that the default :meth:`claims` recognises.
        spec_roots: top-level packages of the ``module:factory`` specs it recognises.
        object_class: ``"module:Class"`` of the in-memory models it recognises
            (``"torch:nn.Module"``); checked only once that module is imported.
    """

    name: str = ""
    package: str = ""
    description: str = ""
    exports_with_input_shape: bool = False
    suffixes: tuple[str, ...] = ()
    spec_roots: tuple[str, ...] = ()
    object_class: str = ""

    def claims(self, source: Any) -> bool:
        """Whether this front-end recognises ``source`` without importing its framework.

        ``source`` is a path string, a ``module:factory`` spec, or a Python object
        (from the library API). Used when ``--framework`` is not given. By default: an
        instance of ``object_class``, a spec under ``spec_roots``, or a path ending in one
        of ``suffixes``; override it for anything else (a folder layout, file contents).
        """
        if self.object_class and self._is_model_object(source):
            return True
        if is_spec(source):
            return spec_module(source).split(".")[0] in self.spec_roots
        return bool(self.suffixes) and isinstance(source, (str, Path)) and str(source).lower().endswith(self.suffixes)

    def _is_model_object(self, source: Any) -> bool:
        module_name, _, class_path = self.object_class.partition(":")
        module = sys.modules.get(module_name)  # never imported here: an unloaded framework made no object
        return module is not None and isinstance(source, operator.attrgetter(class_path)(module))

    def to_onnx(self, source: Any, options: ConvertOptions) -> onnx.ModelProto:
        """Convert ``source`` to an ONNX model; raise :class:`hnn.errors.InputError` on bad input."""
        raise NotImplementedError

    def version(self) -> str | None:
        """Installed version of ``package``, or None when it is not installed."""
        return installed_version(self.package)


def installed_version(*packages: str) -> str | None:
    """Version of the first of ``packages`` that is installed, or None."""
    for package in packages:
        if not package:
            continue
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None
