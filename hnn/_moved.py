"""Import paths of hnn 0.1's first layout, kept for one release (issue 16 moved them).

Each old module name imports as a thin module that hands out what moved: a whole
module (``"hnn.hasher.index": "hnn.index.store"``), or, for modules split apart,
each name from its new home (``"code_to_hex": "hnn.hasher.bits:to_hex"``).
Importing one warns (DeprecationWarning) with the new path. tests/test_layout.py
imports every entry. New code imports the new paths.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings

_RUNTIME = "hnn.hasher.runtime"
_VERDICTS = "hnn.index.verdicts"

MOVED: dict[str, str | dict[str, str]] = {
    "hnn.hasher.index": "hnn.index.store",
    "hnn.hasher.search": "hnn.index.search",
    "hnn.hasher.registry": "hnn.index.registry",
    "hnn.hasher.dataset": "hnn.zoo.dataset",
    "hnn.hasher.ged": "hnn.zoo.ged",
    "hnn.hasher.losses": "hnn.hasher.training.losses",
    "hnn.ingest.augment": "hnn.zoo.augment",
    "hnn.ingest.splits": "hnn.zoo.splits",
    "hnn.ingest.archives": "hnn.plugins.frontends.archives",
    "hnn.ingest.savedmodel_policy": "hnn.plugins.frontends.savedmodel_policy",
    "hnn.plugins.builtin_rules": "hnn.rules.plugin",
    "hnn.hasher.api": {
        "HashResult": f"{_RUNTIME}:HashResult", "load": f"{_RUNTIME}:load", "hash_model": f"{_RUNTIME}:hash_model",
        "hash_graphs": f"{_RUNTIME}:hash_graphs", "to_hashable_graph": f"{_RUNTIME}:to_hashable_graph",
        "code_to_hex": "hnn.hasher.bits:to_hex", "compare": "hnn.index.compare:compare",
        "thresholds": f"{_VERDICTS}:thresholds", "verdict": f"{_VERDICTS}:verdict",
        "weight_sharing": f"{_VERDICTS}:weight_sharing",
        "DEFAULT_MATCH_SHARE": f"{_VERDICTS}:DEFAULT_MATCH_SHARE",
        "DEFAULT_SUSPECT_SHARE": f"{_VERDICTS}:DEFAULT_SUSPECT_SHARE",
    },
    "hnn.hasher.train": {
        "TrainConfig": "hnn.hasher.training.config:TrainConfig",
        "DEFAULT_CONFIG": "hnn.hasher.training.config:DEFAULT_CONFIG",
        "train": "hnn.hasher.training.loop:train", "prepare": "hnn.hasher.training.loop:prepare",
        "Prepared": "hnn.hasher.training.loop:Prepared", "embed": f"{_RUNTIME}:embed",
        "pick_device": f"{_RUNTIME}:pick_device", "source_of": "hnn.zoo.dataset:source_of",
    },
    "hnn.hasher.evaluate": {
        "METHODS": "hnn.evaluation.methods:METHODS", "method_codes": "hnn.evaluation.methods:method_codes",
        "evaluate": "hnn.evaluation.protocol:evaluate", "score": "hnn.evaluation.protocol:score",
        "summarise": "hnn.evaluation.protocol:summarise", "write_report": "hnn.evaluation.report:write_report",
    },
    "hnn.hasher.metrics": {
        "hamming_matrix": "hnn.hasher.bits:hamming_matrix", "pack_bits": "hnn.hasher.bits:to_bytes",
        "retrieval_metrics": "hnn.hasher.training.metrics:retrieval_metrics",
    },
    "hnn.hasher.baselines": {
        name: f"hnn.hasher.structure:{name}" for name in ("wl_features", "wl_simhash", "simhash", "ITERATIONS")
    },
    "hnn.ingest.zoo": {
        **{name: f"hnn.zoo.build:{name}" for name in ("build", "build_one", "load_manifest", "load_dataset_graph",
                                                      "Manifest", "KINDS", "FORMAT", "VERSION", "AUGMENTATIONS")},
        **{name: f"hnn.zoo.presets:{name}" for name in ("ZooEntry", "PAPER_MODELS", "PRESETS", "resolve_preset",
                                                        "list_file_preset", "paper_preset", "torchvision_preset",
                                                        "keras_preset")},
    },
    "hnn.ingest.onnx_model": {
        "load_onnx_file": "hnn.plugins.frontends.onnx_files:load_onnx_file",
        "MAX_ONNX_BYTES": "hnn.plugins.frontends.onnx_files:MAX_ONNX_BYTES",
        "stdout_to_stderr": "hnn.stdio:stdout_to_stderr",
        **{name: f"hnn.ingest.onnx_prepare:{name}" for name in ("prepare", "parse_input_shape",
                                                                "resolve_trigger_shapes", "check_text_fields",
                                                                "graph_inputs")},
    },
}


def resolve(target: str):
    """The object a ``"module:name"`` target names, or the module a plain target names."""
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute) if attribute else module


class _MovedModule(types.ModuleType):
    def __init__(self, name: str, target: str | dict[str, str]):
        super().__init__(name, f"moved: import {target if isinstance(target, str) else 'the modules in hnn._moved'}")
        self._target = target

    def __getattr__(self, attribute: str):
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        if isinstance(self._target, str):
            return getattr(resolve(self._target), attribute)
        if attribute not in self._target:
            raise AttributeError(f"{self.__name__}.{attribute}: not kept at the old path; see hnn._moved")
        return resolve(self._target[attribute])


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(name, self)

    def create_module(self, spec):
        target = MOVED[spec.name]
        new = target if isinstance(target, str) else "the modules listed in hnn._moved"
        warnings.warn(f"{spec.name} moved to {new}; the old path goes in the next release",
                      DeprecationWarning, stacklevel=2)
        return _MovedModule(spec.name, target)

    def exec_module(self, module) -> None:
        pass


def install() -> None:
    """Let the old paths import (once per process)."""
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
