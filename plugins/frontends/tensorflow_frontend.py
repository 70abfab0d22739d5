"""Front-end for TensorFlow SavedModel directories, converted by tf2onnx.

Unless the user trusts the folder, every TensorFlow op in it is checked against
an allow-list first (:mod:`hnn.ingest.savedmodel_policy`). tf2onnx runs in a child process (``python -m tf2onnx.convert``): TensorFlow's
memory and log output stay out of the caller, and a crash in the converter
becomes an error message here.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import onnx

from hnn.errors import InputError
from hnn.isolation import clean_environment, die_with_parent, python_command
from hnn.plugins.frontend import ConvertOptions, Frontend, installed_version
from hnn.plugins.frontends.savedmodel_policy import check_saved_model
from hnn.plugins.hookspecs import hookimpl

OPSET = 17
TIMEOUT_S = 600


def is_saved_model(source: Any) -> bool:
    return isinstance(source, (str, Path)) and (Path(source) / "saved_model.pb").is_file()


class TensorFlowFrontend(Frontend):
    name = "tensorflow"
    package = "tensorflow-cpu"
    description = "SavedModel directories (via tf2onnx)"

    def claims(self, source: Any) -> bool:
        return is_saved_model(source)

    def version(self) -> str | None:
        return installed_version(self.package, "tensorflow")  # the CPU wheel, or the full one

    def to_onnx(self, source: Any, options: ConvertOptions) -> onnx.ModelProto:
        folder = Path(source)
        if not folder.exists():
            raise InputError(f"{folder}: no such directory")
        if not is_saved_model(folder):
            raise InputError(f"{folder}: not a SavedModel directory (no saved_model.pb)")
        if not options.trust:
            check_saved_model(folder)  # before tf2onnx loads and traces anything
        target = Path(options.workdir) / "model.onnx"
        command = python_command("-m", "tf2onnx.convert", "--saved-model", str(folder.resolve()),
                                 "--output", str(target.resolve()), "--opset", str(OPSET))
        try:
            # Isolated like the worker (hnn.isolation): nothing from the SavedModel's folder or ours imports.
            result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S,
                                    env=clean_environment(TF_CPP_MIN_LOG_LEVEL="3"), cwd=options.workdir,
                                    preexec_fn=die_with_parent)
        except subprocess.TimeoutExpired:
            raise InputError(f"{folder}: tf2onnx did not finish within {TIMEOUT_S} s") from None
        if result.returncode != 0 or not target.exists():
            lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
            raise InputError(f"{folder}: tf2onnx failed: {lines[-1] if lines else 'exit ' + str(result.returncode)}")
        return onnx.load(str(target))


@hookimpl
def hnn_register_frontends(register):
    register(TensorFlowFrontend())
