"""Keras and TensorFlow front-ends on real Keras models and a real SavedModel."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hnn.errors import InputError  # noqa: E402
from hnn.ingest.pipeline import ingest  # noqa: E402
from hnn.plugins.frontends.keras_frontend import import_keras  # noqa: E402

keras = import_keras()  # imports in the order that does not crash (see its docstring)


def keras_small_cnn():
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def torch_small_cnn():
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )


def test_same_cnn_from_pytorch_and_keras_gives_the_same_op_sequence():
    from_keras = ingest(keras_small_cnn())
    from_torch = ingest(torch_small_cnn(), input_shape=[1, 3, 16, 16])
    assert [n.op for n in from_keras.nodes] == [n.op for n in from_torch.nodes] == [
        "Conv", "Relu", "MaxPool", "Conv", "Relu", "GlobalAveragePool", "Gemm"]
    assert from_keras.edges == from_torch.edges
    assert [n.attrs for n in from_keras.nodes] == [n.attrs for n in from_torch.nodes]
    assert from_keras.meta.framework == "keras"


def test_keras_application_mobilenetv2_parameters_are_its_kernels():
    graph = ingest("keras.applications:MobileNetV2")
    model = keras.applications.MobileNetV2(weights=None)
    kernels = sum(int(np.prod(w.shape)) for w in model.trainable_weights if w.path.endswith("kernel"))
    # Keras's ONNX export folds each BatchNormalization into the preceding convolution's
    # kernel and drops additions of all-zero biases (freshly initialised), so what is left
    # is exactly the kernels; Keras's own count adds BN gamma/beta and the dense bias.
    assert graph.total_params == kernels
    assert "BatchNormalization" not in graph.op_histogram()
    assert graph.op_histogram()["Conv"] == 52


def test_keras_file_loads_in_safe_mode_and_lambda_layers_are_refused(tmp_path):
    model = keras_small_cnn()
    path = tmp_path / "cnn.keras"
    model.save(path)
    assert [n.op for n in ingest(str(path)).nodes][:3] == ["Conv", "Relu", "MaxPool"]

    inputs = keras.Input((4,))
    lambda_model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs))
    lambda_path = tmp_path / "lambda.keras"
    lambda_model.save(lambda_path)
    with pytest.raises(InputError, match="safe mode"):
        ingest(str(lambda_path))


def test_savedmodel_directory_through_tensorflow_front_end(tmp_path):
    model = keras_small_cnn()
    model(np.zeros((1, 16, 16, 3), "float32"))
    folder = tmp_path / "saved"
    model.export(str(folder), format="tf_saved_model", verbose=False)
    graph = ingest(str(folder))
    assert graph.meta.framework == "tensorflow"
    assert [n.op for n in graph.nodes] == ["Conv", "Relu", "MaxPool", "Conv", "Relu", "GlobalAveragePool", "Gemm"]
