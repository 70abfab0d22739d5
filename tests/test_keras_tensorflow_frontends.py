"""Keras and TensorFlow front-ends on real Keras models and a real SavedModel."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hnn.errors import InputError  # noqa: E402
from hnn.ingest.pipeline import ingest  # noqa: E402
from hnn.plugins.frontends.tf_import import import_keras  # noqa: E402

pytestmark = pytest.mark.slow  # end to end: subprocesses, frameworks (the quick loop skips it)

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


def keras_convnext_block():
    inputs = keras.Input((16, 16, 8))
    x = keras.layers.Normalization(mean=[0.5] * 8, variance=[0.25] * 8)(inputs)  # built-in pre-processing
    x = keras.layers.Conv2D(8, 2, strides=2)(x)
    skip = x
    x = keras.layers.Conv2D(8, 7, padding="same", groups=8)(x)  # depthwise, as a grouped convolution
    x = keras.layers.LayerNormalization(epsilon=1e-6)(x)
    x = keras.layers.Dense(32)(x)
    x = keras.layers.Activation("gelu")(x)  # the exact (erf) GELU, as ConvNeXt
    x = keras.layers.Dense(8)(x)
    x = keras.layers.Add()([skip, x])
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))


class TorchConvNeXtBlock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        from torch import nn

        self.stem = nn.Conv2d(8, 8, 2, stride=2)
        self.depthwise = nn.Conv2d(8, 8, 7, padding=3, groups=8)
        self.norm = nn.LayerNorm(8, eps=1e-6)
        self.up, self.act, self.down = nn.Linear(8, 32), nn.GELU(), nn.Linear(32, 8)

    def forward(self, x):
        x = self.stem(x)
        y = self.depthwise(x).permute(0, 2, 3, 1)
        y = self.down(self.act(self.up(self.norm(y)))).permute(0, 3, 1, 2)
        return (x + y).mean((2, 3))


def test_keras_weights_ported_to_pytorch_keep_their_weight_marks():
    # Porting weights between frameworks (kernels HWIO -> OIHW, Dense (in, out) -> Linear (out, in))
    # is copying them: tf2onnx puts the kernels in ONNX's layout, and a matrix's marks do not
    # depend on which way it is stored.
    from hnn.ingest.weights import MARKS, shared_marks

    model = keras_small_cnn()
    ported = torch_small_cnn()
    kernel1, bias1, kernel2, bias2, dense, dense_bias = model.get_weights()
    with torch.no_grad():
        for layer, (kernel, bias) in zip((ported[0], ported[3]), ((kernel1, bias1), (kernel2, bias2))):
            layer.weight.copy_(torch.tensor(kernel).permute(3, 2, 0, 1))
            layer.bias.copy_(torch.tensor(bias))
        ported[7].weight.copy_(torch.tensor(dense).T)
        ported[7].bias.copy_(torch.tensor(dense_bias))
    from_keras = ingest(model).meta.weight_marks
    assert shared_marks(from_keras, ingest(ported, input_shape=[1, 3, 16, 16]).meta.weight_marks) == MARKS
    assert shared_marks(from_keras, ingest(torch_small_cnn(), input_shape=[1, 3, 16, 16]).meta.weight_marks) == 0


def test_convnext_block_from_keras_and_pytorch_gives_the_same_graph():
    # Keras writes the grouped convolution inside an XLA function, GELU with Erfc, LayerNorm
    # as eleven arithmetic nodes and adds its input normalisation; torch writes none of that.
    from_keras = ingest(keras_convnext_block())
    from_torch = ingest(TorchConvNeXtBlock(), input_shape=[1, 8, 16, 16])
    expected = ["Conv", "Conv", "LayerNormalization", "Gemm", "Gelu", "Gemm", "Add", "GlobalAveragePool"]
    assert [n.op for n in from_keras.nodes] == [n.op for n in from_torch.nodes] == expected
    assert from_keras.edges == from_torch.edges
    assert from_keras.nodes[1].attrs == from_torch.nodes[1].attrs and from_keras.nodes[1].attrs["group"] == 8
    assert from_keras.total_flops == pytest.approx(from_torch.total_flops, rel=0.05)


def keras_mobilenetv3_block():
    inputs = keras.Input((16, 16, 8))
    x = keras.layers.Rescaling(1 / 255)(inputs)  # built-in pre-processing
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation("hard_swish")(x)
    squeezed = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)  # squeeze-and-excitation
    squeezed = keras.layers.Conv2D(4, 1, activation="relu")(squeezed)
    squeezed = keras.layers.Conv2D(8, 1, activation="hard_sigmoid")(squeezed)
    x = keras.layers.Multiply()([x, squeezed])
    x = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
    x = keras.layers.Conv2D(10, 1)(x)  # the classifier as a 1x1 convolution, as Keras MobileNetV3
    return keras.Model(inputs, keras.layers.Flatten()(x))


class TorchMobileNetV3Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        from torch import nn

        self.depthwise = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8), nn.Hardswish())
        self.excite = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(8, 4, 1), nn.ReLU(), nn.Conv2d(4, 8, 1),
                                    nn.Hardsigmoid())
        self.classifier = nn.Linear(8, 10)

    def forward(self, x):
        x = self.depthwise(x)
        x = x * self.excite(x)
        return self.classifier(x.mean((2, 3)))


def test_mobilenetv3_block_from_keras_and_pytorch_gives_the_same_graph_but_batchnorm():
    # Keras writes hard-swish and hard-sigmoid out as Add/Clip/Mul, pools channels-last with
    # ReduceMean, and classifies with a 1x1 Conv; its export also folds BatchNormalization.
    from_keras = ingest(keras_mobilenetv3_block())
    from_torch = ingest(TorchMobileNetV3Block(), input_shape=[1, 8, 16, 16])
    torch_ops = [n.op for n in from_torch.nodes]
    assert torch_ops == ["Conv", "BatchNormalization", "HardSwish", "GlobalAveragePool", "Gemm", "Relu", "Gemm",
                         "HardSigmoid", "Mul", "GlobalAveragePool", "Gemm"]
    assert [n.op for n in from_keras.nodes] == [op for op in torch_ops if op != "BatchNormalization"]


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
