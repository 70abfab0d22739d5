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


# A residual CNN in Keras, exported by Keras itself (model.export) under the backend of the child's
# KERAS_BACKEND: one backend per process, as Keras fixes it at import.
KERAS_EXPORT_CHILD = """
import sys
import numpy as np
import keras
L = keras.layers
inputs = keras.Input((32, 32, 3))
x = L.ReLU()(L.BatchNormalization()(L.Conv2D(8, 3, padding="same", use_bias=False)(inputs)))
y = L.BatchNormalization()(L.Conv2D(8, 3, padding="same")(x))
x = L.MaxPooling2D(2)(L.ReLU()(L.Add()([x, y])))
new = L.Conv2D(8, 1)(L.ReLU()(L.BatchNormalization()(x)))  # DenseNet's layers: norm first, no conv absorbs it
grown = L.Concatenate()([x, new])
x = L.Concatenate()([grown, L.Conv2D(8, 1)(L.ReLU()(L.BatchNormalization()(grown)))])
outputs = L.Dense(10)(L.GlobalAveragePooling2D()(x))
model = keras.Model(inputs, outputs)
model(np.zeros((1, 32, 32, 3), "float32"))
model.export(sys.argv[1], format="onnx", verbose=False)
"""


class TorchResidualCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        from torch import nn

        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.branch = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.pool = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2))
        self.dense = nn.ModuleList(nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, 8, 1)) for c in (8, 16))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(24, 10))

    def forward(self, x):
        x = self.stem(x)
        features = [self.pool(x + self.branch(x))]
        for layer in self.dense:  # torchvision's DenseNet: each layer reads the concatenation of all before it
            features.append(layer(torch.cat(features, 1)))
        return self.head(torch.cat(features, 1))


def test_keras_exports_from_the_tensorflow_and_torch_backends_hash_as_the_torch_model(tmp_path, hnn_cli):
    """Keras 3's torch backend writes Transposes and Casts around each convolution and its bias and
    BatchNorm as Add, Sub, Mul, Add, tf2onnx a lone BatchNorm as a Mul, and Keras grows a DenseNet's
    features one Concat at a time: the IR is still one, that of the same network written in torch."""
    import json
    import os
    import subprocess
    import sys

    hashes = {}
    for backend in ("tensorflow", "torch"):
        path = tmp_path / f"{backend}.onnx"
        env = {**os.environ, "KERAS_BACKEND": backend}
        subprocess.run([sys.executable, "-c", KERAS_EXPORT_CHILD, str(path)], env=env, check=True,
                       capture_output=True, timeout=600)
        result = hnn_cli("hash", path, "--json")
        assert result.returncode == 0, result.stderr
        hashes[backend] = json.loads(result.stdout)
    torch_path = tmp_path / "torch_model.json"
    ingest(TorchResidualCNN().eval(), input_shape=[1, 3, 32, 32]).to_json_file(torch_path)
    from_torch = json.loads(hnn_cli("hash", torch_path, "--json").stdout)
    for key in ("topology", "structure", "hash", "nodes"):
        assert hashes["tensorflow"][key] == hashes["torch"][key] == from_torch[key], key


KERAS_APPLICATION_EXPORT_CHILD = """
import sys
import numpy as np
import keras
model = keras.applications.MobileNetV3Small(weights=None, input_shape=(224, 224, 3))
model(np.zeros((1, 224, 224, 3), "float32"))
model.export(sys.argv[1], format="onnx", verbose=False)
"""


def test_a_keras_application_exported_under_each_backend_hashes_as_its_torchvision_counterpart(tmp_path, hnn_cli):
    """MobileNetV3Small (hard-swish, squeeze-and-excitation on 1 x 1 maps, channels-last BatchNorms)
    from Keras's own export under TensorFlow and under torch: the topology and code of torchvision's."""
    import json
    import os
    import subprocess
    import sys

    import torchvision

    codes = {}
    for backend in ("tensorflow", "torch"):
        path = tmp_path / f"{backend}.onnx"
        subprocess.run([sys.executable, "-c", KERAS_APPLICATION_EXPORT_CHILD, str(path)], check=True,
                       env={**os.environ, "KERAS_BACKEND": backend}, capture_output=True, timeout=900)
        result = hnn_cli("hash", path, "--json")
        assert result.returncode == 0, result.stderr
        codes[backend] = json.loads(result.stdout)
    reference = tmp_path / "torchvision.json"
    ingest(torchvision.models.mobilenet_v3_small().eval(), input_shape=[1, 3, 224, 224]).to_json_file(reference)
    from_torchvision = json.loads(hnn_cli("hash", reference, "--json").stdout)
    for key in ("topology", "hash", "nodes"):
        assert codes["tensorflow"][key] == codes["torch"][key] == from_torchvision[key], key
