"""Front-end for Keras 3: ``.keras``/``.h5`` files, ``keras.applications:MobileNetV2`` specs, Model objects.

Files load with ``safe_mode=True``: Lambda layers (arbitrary Python) and
unknown classes are refused. The model is called once on a zero input (Keras
refuses to export a model that was never called) and exported through
Keras's own ONNX export (tf2onnx under the TensorFlow backend). That export
folds BatchNormalization into the preceding convolution: docs/ir.md says what
this means for the IR.

Known limit: with the TensorFlow backend, exporting very large models (VGG16,
138 M parameters) was measured to exceed 24 GiB of memory.
"""

from __future__ import annotations

import contextlib
import inspect
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import onnx

from hnn.errors import InputError, first_line
from hnn.plugins.frontend import ConvertOptions, Frontend, is_spec, resolve_spec
from hnn.plugins.frontends.archives import check_zip_archive
from hnn.plugins.frontends.tf_import import import_keras, import_tensorflow
from hnn.plugins.hookspecs import hookimpl

SUFFIXES = (".keras", ".h5", ".hdf5")


class KerasFrontend(Frontend):
    name = "keras"
    package = "keras"
    exports_with_input_shape = True
    description = ".keras/.h5 files (safe_mode), keras.applications:Name specs, keras.Model objects"
    suffixes = SUFFIXES
    spec_roots = ("keras",)
    object_class = "keras:Model"

    def to_onnx(self, source: Any, options: ConvertOptions) -> onnx.ModelProto:
        keras = import_keras()
        if isinstance(source, keras.Model):
            model = source
        elif is_spec(source):
            model = _build_from_spec(source, options.input_shape)
        else:
            model = _load_file(Path(source), options.trust)
        return export_model(model, options.input_shape, options.workdir)


def _build_from_spec(spec: str, input_shape):
    keras = import_keras()
    factory, kwargs = resolve_spec(spec)
    parameters = inspect.signature(factory).parameters
    if "weights" in parameters:
        kwargs["weights"] = None  # architecture only: nothing is downloaded
    if input_shape is not None and isinstance(input_shape, list) and "input_shape" in parameters:
        kwargs["input_shape"] = tuple(input_shape[1:])
    try:
        model = factory(**kwargs)
    except Exception as exc:
        raise InputError(f"{spec}: calling the factory failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(model, keras.Model):
        raise InputError(f"{spec}: the factory returned {type(model).__name__}, not a keras.Model")
    return model


def _load_file(path: Path, trust: bool = False):
    """Load a Keras file; only a trusted one may hold Lambda layers or unknown classes."""
    keras = import_keras()
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if zipfile.is_zipfile(path):  # .keras files are zip archives; .h5 files are HDF5
        check_zip_archive(path)
    try:
        return keras.saving.load_model(str(path), compile=False, safe_mode=not trust)
    except Exception as exc:
        message = first_line(exc) or type(exc).__name__
        raise InputError(f"{path}: cannot load as a Keras model{'' if trust else ' (safe mode)'}: {message}") from None


def _trigger_shapes(model, input_shape) -> list[list[int]]:
    declared = model.inputs
    if isinstance(input_shape, dict):
        return list(input_shape.values())
    if input_shape is not None:
        return [input_shape]
    shapes = []
    for tensor in declared:
        dims = list(tensor.shape)
        if any(d is None for d in dims[1:]):
            raise InputError(f"input {tensor.name!r} has dynamic dimensions {dims}; pass --input-shape")
        shapes.append([1, *dims[1:]])
    return shapes


def export_model(model, input_shape, workdir: Path) -> onnx.ModelProto:
    import numpy as np

    shapes = _trigger_shapes(model, input_shape)
    zeros = [np.zeros(shape, dtype="float32") for shape in shapes]
    try:
        model(zeros[0] if len(zeros) == 1 else zeros)
    except Exception as exc:
        raise InputError(f"calling the Keras model on an input of shape {shapes} failed: {exc}") from None
    folder = Path(workdir) if str(workdir) not in ("", ".") else Path(tempfile.mkdtemp(prefix="hnn-keras-"))
    target = folder / "model.onnx"
    try:
        with warnings.catch_warnings(), _traceable_backend_ops():
            warnings.simplefilter("ignore")  # tf2onnx's numpy-2 shims warn; nothing for the user
            model.export(str(target), format="onnx", verbose=False)
    except Exception as exc:
        message = first_line(exc) or type(exc).__name__
        raise InputError(f"Keras ONNX export failed: {message}") from None
    return onnx.load(str(target))


@contextlib.contextmanager
def _traceable_backend_ops():
    """While exporting, trace two Keras TensorFlow-backend ops in a form tf2onnx converts.

    Export only traces the model, never runs it, so these forms need not run on a CPU:

    - Grouped convolutions (ConvNeXt's depthwise 7x7, ResNeXt, RegNet): Keras wraps
      each in a nested ``tf.function(jit_compile=True)`` because TensorFlow cannot run
      it on a CPU without XLA. tf2onnx cannot see into that function: it stays a
      ``StatefulPartitionedCall`` node (Keras ConvNeXtTiny exported 4 of its 22 Conv
      nodes). Traced as a plain ``tf.nn.convolution``, it becomes an ONNX Conv with
      ``group`` set.
    - Exact GELU: TensorFlow writes it with ``Erfc``, which tf2onnx leaves as an op
      ONNX does not have, so shape inference (and every FLOPs count after the first
      GELU) stops there. Traced as 0.5 x (1 + erf(x / sqrt 2)), the same function,
      it becomes ONNX Erf.

    Outside this block the backend is untouched; on another Keras layout nothing is changed.
    """
    try:
        from keras.src.backend.tensorflow import nn as backend_nn

        keras_conv, keras_gelu = backend_nn.conv, backend_nn.gelu
    except (ImportError, AttributeError):  # another Keras layout: export as it comes
        yield
        return
    tf = import_tensorflow()

    def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
        data_format = backend_nn.backend.standardize_data_format(data_format)
        channels = inputs.shape[-1] if data_format == "channels_last" else inputs.shape[1]
        if channels == kernel.shape[-2] or len(inputs.shape) == 5:  # not grouped: Keras's own path
            return keras_conv(inputs, kernel, strides, padding, data_format, dilation_rate)
        return tf.nn.convolution(inputs, kernel, strides, padding.upper(),
                                 data_format=backend_nn._convert_data_format(data_format, len(inputs.shape)),
                                 dilations=dilation_rate)

    def gelu(x, approximate=True):
        if approximate:  # the tanh form converts as it is
            return keras_gelu(x, approximate=True)
        x = backend_nn.convert_to_tensor(x)
        return 0.5 * x * (1.0 + tf.math.erf(x / tf.cast(tf.sqrt(2.0), x.dtype)))

    backend_nn.conv, backend_nn.gelu = conv, gelu
    try:
        yield
    finally:
        backend_nn.conv, backend_nn.gelu = keras_conv, keras_gelu


@hookimpl
def hnn_register_frontends(register):
    register(KerasFrontend())
