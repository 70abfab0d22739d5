"""Quantized and fp16 copies of a model canonicalize to their float original's IR (hnn.ingest.dequantize).

Each form is made the way a user would make it: onnxruntime.quantization's dynamic, static QDQ and
static QOperator quantizers (QOperator after its ``quant_pre_process``, which folds BatchNormalization
into the convolutions: that form's original is the pre-processed float model), and fp16 weights read
through Cast nodes, or a whole fp16 graph.
"""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hnn.errors import InputError
from hnn.hasher.runtime import hash_model
from hnn.hasher.structure import structure_of
from hnn.ingest.dequantize import float_graph
from hnn.ingest.ir import Graph
from hnn.ingest.pipeline import onnx_to_ir

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
ort = pytest.importorskip("onnxruntime")
quantization = pytest.importorskip("onnxruntime.quantization")
from hnn.plugins.frontends.pytorch_frontend import export_module

SHAPE = [1, 3, 32, 32]
# form -> the float model it was made from
FORMS = {"dynamic": "float", "qdq": "float", "qdq_per_channel": "float", "qoperator": "preprocessed",
         "qoperator_unprocessed": "float", "fp16_weights": "float", "fp16_graph": "float"}


class RandomImages(quantization.CalibrationDataReader):
    def __init__(self, input_name: str, count: int = 4):
        rng = np.random.default_rng(0)
        self.batches = iter([{input_name: rng.standard_normal(SHAPE).astype(np.float32)} for _ in range(count)])

    def get_next(self):
        return next(self.batches, None)


def calibrated(module):
    """``module`` with BatchNorm statistics of random images: activations of unit scale, as in a trained
    network (a fresh one's vanish with depth, and no ReLU6 of mobilenet_v2 would reach 6)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, torch.nn.BatchNorm2d):
                layer.momentum = None  # a plain average over the batches
        module.train()
        module(torch.randn(8, *SHAPE[1:]))
    return module.eval()


def fp16_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """Float initializers stored as FLOAT16, each read through a Cast to FLOAT in front of the nodes."""
    half = onnx.ModelProto()
    half.CopyFrom(model)
    casts = []
    for init in half.graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            name = init.name
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), name + "_fp16"))
            casts.append(helper.make_node("Cast", [name + "_fp16"], [name], to=TensorProto.FLOAT))
    nodes = casts + list(half.graph.node)
    del half.graph.node[:]
    half.graph.node.extend(nodes)
    return half


def fp16_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """The whole graph in fp16: initializers, Constant nodes, graph inputs and outputs."""
    half = onnx.ModelProto()
    half.CopyFrom(model)
    for init in half.graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name))
    for node in half.graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == TensorProto.FLOAT:
                attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float16)))
    for value in [*half.graph.input, *half.graph.output]:
        value.type.tensor_type.elem_type = TensorProto.FLOAT16
    del half.graph.value_info[:]
    return half


# What each architecture is made into: all forms for resnet18, the four kinds for mobilenet_v2 (time).
FORMS_OF = {"resnet18": list(FORMS), "mobilenet_v2": ["dynamic", "qdq", "qoperator", "fp16_weights"]}
CASES = [(arch, form) for arch, forms in FORMS_OF.items() for form in forms]
# Per-channel weights change weight values only, which the IR does not hold: the numeric test covers them.
IR_CASES = [case for case in CASES if case[1] != "qdq_per_channel"]
# mobilenet_v2's own paths are its ReLU6s and depthwise convolutions; dynamic and fp16 rewrites are resnet18's.
NUMERIC_CASES = [case for case in CASES if case[0] == "resnet18" or case[1] in ("qdq", "qoperator")]


class Family:
    """A float model, its pre-processed twin and its quantized and fp16 forms, with rewrites and IRs made once."""

    def __init__(self, arch: str, models: dict[str, onnx.ModelProto]):
        self.arch, self.models = arch, models
        self._floats: dict[str, onnx.ModelProto] = {}
        self._irs: dict[tuple[str, bool], Graph] = {}

    def float_graph(self, form: str) -> onnx.ModelProto:
        if form not in self._floats:
            self._floats[form] = float_graph(self.models[form])
        return self._floats[form]

    def ir(self, form: str, simplify: bool = False) -> Graph:
        """The IR as ``hnn hash`` and ``hnn index`` make it (without onnxsim), or as ``hnn ingest`` does."""
        if (form, simplify) not in self._irs:
            self._irs[form, simplify] = onnx_to_ir(self.models[form], simplify=simplify)
        return self._irs[form, simplify]


def _make_family(arch: str, folder) -> Family:
    from onnxruntime.quantization import QuantFormat, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    forms = FORMS_OF[arch]
    # Seeded: which activations the quantizer's ranges show as fused depends on the weights (an Add whose
    # calibration outputs happen to be all non-negative gets a Relu back that it never had), so the
    # figures of an unseeded model varied between runs.
    torch.manual_seed(0)
    model = export_module(calibrated(getattr(torchvision.models, arch)(num_classes=10)), SHAPE)
    paths = {name: folder / f"{arch}_{name}.onnx" for name in ["float", "preprocessed", *FORMS]}
    onnx.save(model, paths["float"])
    images = model.graph.input[0].name
    quantize_dynamic(paths["float"], paths["dynamic"])
    quantize_static(paths["float"], paths["qdq"], RandomImages(images), quant_format=QuantFormat.QDQ)
    if "qdq_per_channel" in forms:
        quantize_static(paths["float"], paths["qdq_per_channel"], RandomImages(images),
                        quant_format=QuantFormat.QDQ, per_channel=True)
    if "qoperator_unprocessed" in forms:
        quantize_static(paths["float"], paths["qoperator_unprocessed"], RandomImages(images),
                        quant_format=QuantFormat.QOperator)
    quant_pre_process(paths["float"], paths["preprocessed"])
    quantize_static(paths["preprocessed"], paths["qoperator"], RandomImages(images), quant_format=QuantFormat.QOperator)
    models = {name: onnx.load(path) for name, path in paths.items() if path.exists()}
    models["fp16_weights"], models["fp16_graph"] = fp16_weights(model), fp16_graph(model)
    return Family(arch, models)


@pytest.fixture(scope="module")
def families(tmp_path_factory):
    """``families(arch)``: the float model and its forms, made once per architecture for the module."""
    ort.set_default_logger_severity(3)  # onnxruntime warns about every initializer the quantizer orphaned
    folder, made = tmp_path_factory.mktemp("forms"), {}

    def family(arch: str) -> Family:
        if arch not in made:
            made[arch] = _make_family(arch, folder)
        return made[arch]

    return family


@pytest.mark.parametrize("arch, form", IR_CASES)
def test_each_form_has_its_float_originals_ir(families, arch, form):
    family = families(arch)
    original, copy = family.ir(FORMS[form]), family.ir(form)
    assert structure_of(copy).topology == structure_of(original).topology
    assert copy.digest() == original.digest()  # same nodes, shapes, FLOPs and parameters
    assert hash_model(copy).hash == hash_model(original).hash


def test_onnxsim_keeps_the_forms_together(families):
    """``hnn ingest`` simplifies with onnxsim before extraction: the rewrite comes first, so the same holds."""
    family = families("resnet18")
    assert family.ir("qoperator", simplify=True).digest() == family.ir("preprocessed", simplify=True).digest()


@pytest.mark.parametrize("arch", FORMS_OF)
def test_the_ops_are_the_float_ones_with_the_fused_activations_back(families, arch):
    family = families(arch)
    activation = "Relu" if family.arch == "resnet18" else "Clip"
    for form in ("qdq", "qoperator"):
        ops = [node.op_type for node in family.float_graph(form).graph.node]
        original = [node.op_type for node in family.models[FORMS[form]].graph.node]
        assert ops.count(activation) == original.count(activation), form
        assert not {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QGemm", "QLinearAdd"} & set(ops), form


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # as written, and sooner
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _constant(model: onnx.ModelProto, name: str) -> np.ndarray | None:
    """The value of a tensor that is an initializer or an Identity of one (TorchScript shares weights so)."""
    inits = {init.name: init for init in model.graph.initializer}
    identities = {node.output[0]: node.input[0] for node in model.graph.node if node.op_type == "Identity"}
    name = identities.get(name, name)
    return numpy_helper.to_array(inits[name]) if name in inits else None


LAYERS = ("Conv", "Gemm", "BatchNormalization")


def _layer_name(node: onnx.NodeProto) -> str:
    """The float layer's node name: the quantizers name theirs ``<name>_quant`` (``<name>_MatMul_quant`` for a Gemm)."""
    return node.name.removesuffix("_quant").removesuffix("_MatMul")


def _layer_weights(model: onnx.ModelProto) -> dict[str, list[np.ndarray]]:
    """Parameters of each Conv, BatchNormalization and dense layer by name, a dense weight as [in, out]; a
    MatMul + bias Add counts as the Gemm it was. (By name: the quantizers store independent branches in
    another order.)"""
    layers, consumers = {}, {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    for node in model.graph.node:
        if node.op_type in LAYERS:
            values = [_constant(model, name) for name in node.input[1:]]
            if node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute):
                values[0] = values[0].T
            layers[_layer_name(node)] = values
        elif node.op_type == "MatMul" and _constant(model, node.input[1]) is not None:
            (add,) = consumers[node.output[0]]
            layers[_layer_name(node)] = [_constant(model, node.input[1]), _constant(model, add.input[1])]
    return layers


def _with_weights(reference: onnx.ModelProto, layers: dict[str, list[np.ndarray]]) -> onnx.ModelProto:
    """``reference`` with the parameters of its layers replaced by those of ``layers``."""
    model = onnx.ModelProto()
    model.CopyFrom(reference)
    targets = [node for node in model.graph.node if node.op_type in LAYERS]
    assert sorted(_layer_name(node) for node in targets) == sorted(layers)
    for k, node in enumerate(targets):
        values = layers[_layer_name(node)]
        if node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute):
            values = [values[0].T, *values[1:]]
        assert len(values) == len(node.input) - 1, f"{node.name}: bias lost or gained"
        for position, value in enumerate(values, start=1):
            name = f"substituted_{k}_{position}"  # a fresh name: the original may share its tensor
            model.graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), name))
            node.input[position] = name
    return model


def _assert_computes_with_dequantized_weights(rewritten: onnx.ModelProto, reference: onnx.ModelProto,
                                              step_per_max: float = 127) -> None:
    """``rewritten`` is valid ONNX, its weights are within half a quantization step (max / ``step_per_max``) of
    ``reference``'s, and it computes ``reference``'s function of its own weights, to float rounding: every
    activation, bias and pass-through op where it was."""
    onnx.checker.check_model(rewritten)
    layers, original_layers = _layer_weights(rewritten), _layer_weights(reference)
    assert sorted(layers) == sorted(original_layers)
    for name, (weight, *_) in layers.items():
        original = original_layers[name][0]
        if original.ndim == 1:
            continue  # a BatchNormalization's scale: QDQ gives back the exact value, fp16 its rounding
        step = np.abs(original).max() / step_per_max
        assert weight.shape == original.shape and np.abs(weight - original).max() <= step * 0.51, name
    x = np.random.default_rng(1).standard_normal(_input_shape(reference)).astype(np.float32)
    expected = _run(_with_weights(reference, layers), x)
    np.testing.assert_allclose(_run(rewritten, x), expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())


def _input_shape(model: onnx.ModelProto) -> list[int]:
    return [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]


@pytest.mark.parametrize("arch, form", NUMERIC_CASES)
def test_the_float_graph_computes_the_original_with_dequantized_weights(families, arch, form):
    family = families(arch)
    # int8 weights are symmetric, a step of max / 127; fp16 rounds by 2^-11 of a value at most
    _assert_computes_with_dequantized_weights(family.float_graph(form), family.models[FORMS[form]],
                                              1024 if form.startswith("fp16") else 127)


class SiluConcatPool(torch.nn.Module):
    """The QOperator ops the two torchvision models do not have: QLinearSigmoid, QLinearMul, QLinearConcat,
    QLinearAveragePool (and a Relu fused into the QLinearConv before the Concat)."""

    def __init__(self):
        super().__init__()
        self.conv, self.pointwise = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(8, 8, 1)
        self.pool, self.fc = torch.nn.AvgPool2d(2), torch.nn.Linear(16 * 16 * 16, 10)

    def forward(self, x):
        a = self.conv(x)
        b = a * torch.sigmoid(a)
        return self.fc(self.pool(torch.cat([b, torch.relu(self.pointwise(b))], 1)).flatten(1))


@pytest.mark.parametrize("quant_format", ["QOperator", "QDQ"])
def test_sigmoid_mul_concat_and_average_pool_come_back(tmp_path, quant_format):
    from onnxruntime.quantization import QuantFormat, quantize_static

    torch.manual_seed(0)
    model = export_module(SiluConcatPool(), SHAPE)
    onnx.save(model, tmp_path / "float.onnx")
    quantize_static(tmp_path / "float.onnx", tmp_path / "int8.onnx", RandomImages(model.graph.input[0].name),
                    quant_format=getattr(QuantFormat, quant_format))
    quantized = onnx.load(tmp_path / "int8.onnx")
    if quant_format == "QOperator":
        assert {"QLinearSigmoid", "QLinearMul", "QLinearConcat", "QLinearAveragePool", "QGemm"} <= {
            node.op_type for node in quantized.graph.node}
    _assert_computes_with_dequantized_weights(float_graph(quantized), model)
    assert onnx_to_ir(quantized, simplify=False).digest() == onnx_to_ir(model, simplify=False).digest()


def test_a_model_with_nothing_quantized_is_returned_as_it_is():
    model = export_module(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()), SHAPE)
    assert float_graph(model) is model


# --- untrusted input: malformed quantized nodes --------------------------------------------------


def _qlinear_conv_model(edit=None) -> onnx.ModelProto:
    """x -> QuantizeLinear -> QLinearConv (4 filters 3x3) -> DequantizeLinear -> y; ``edit`` mangles it."""
    rng = np.random.default_rng(0)
    inits = {
        "x_scale": np.array(0.02, np.float32), "x_zero": np.array(128, np.uint8),
        "w": rng.integers(-127, 127, (4, 3, 3, 3)).astype(np.int8), "w_scale": np.full(4, 0.01, np.float32),
        "w_zero": np.zeros(4, np.int8), "y_scale": np.array(0.05, np.float32), "y_zero": np.array(0, np.uint8),
        "b": rng.integers(-100, 100, 4).astype(np.int32),
    }
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["xq"]),
        helper.make_node("QLinearConv", ["xq", "x_scale", "x_zero", "w", "w_scale", "w_zero", "y_scale", "y_zero",
                                         "b"], ["yq"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("DequantizeLinear", ["yq", "y_scale", "y_zero"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "q", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    if edit is not None:
        edit(model)
    return model


def _conv(model):
    return next(node for node in model.graph.node if node.op_type == "QLinearConv")


def _scale_as_graph_input(model):
    del model.graph.initializer[[i.name for i in model.graph.initializer].index("w_scale")]
    model.graph.input.append(helper.make_tensor_value_info("w_scale", TensorProto.FLOAT, [4]))


def _drop_inputs(model):
    del _conv(model).input[4:]


def _int_scale(model):
    init = next(i for i in model.graph.initializer if i.name == "w_scale")
    init.CopyFrom(numpy_helper.from_array(np.full(4, 3, np.int32), "w_scale"))


def _wrong_channel_count(model):
    init = next(i for i in model.graph.initializer if i.name == "w_scale")
    init.CopyFrom(numpy_helper.from_array(np.full(5, 0.01, np.float32), "w_scale"))


def _float_group(model):
    _conv(model).attribute.append(helper.make_attribute("group", 1.5))


def _external_weight(model):
    init = next(i for i in model.graph.initializer if i.name == "w")
    init.ClearField("raw_data")
    init.data_location = TensorProto.EXTERNAL
    init.external_data.add(key="location", value="../../../../etc/passwd")


def _truncated_weight(model):
    init = next(i for i in model.graph.initializer if i.name == "w")
    init.raw_data = init.raw_data[:7]


def _string_zero_point(model):
    init = next(i for i in model.graph.initializer if i.name == "w_zero")
    init.CopyFrom(helper.make_tensor("w_zero", TensorProto.STRING, [4], [b"a", b"b", b"c", b"d"]))


MALFORMED = {"scale not a constant": _scale_as_graph_input, "inputs missing": _drop_inputs,
             "int scale": _int_scale, "scale per 5 channels of 4": _wrong_channel_count, "float group": _float_group,
             "weight in an external file": _external_weight, "weight data truncated": _truncated_weight,
             "string zero point": _string_zero_point}


def test_a_well_formed_qlinear_conv_becomes_a_conv_with_its_dequantized_weights_and_relu():
    model = _qlinear_conv_model()
    rewritten = float_graph(model)
    onnx.checker.check_model(rewritten)
    assert [node.op_type for node in rewritten.graph.node] == ["Conv", "Relu"]  # y's zero point: uint8's minimum
    values = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    weight = values["w"].astype(np.float32) * values["w_scale"].reshape(4, 1, 1, 1)
    bias = values["b"] * values["x_scale"] * values["w_scale"]
    conv = helper.make_graph(
        [helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])],
        "float", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias.astype(np.float32), "B")])
    x = np.random.default_rng(2).standard_normal([1, 3, 8, 8]).astype(np.float32)
    expected = _run(helper.make_model(conv, opset_imports=[helper.make_opsetid("", 13)]), x)
    np.testing.assert_allclose(_run(rewritten, x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("edit", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_quantized_node_is_left_as_it_is_or_refused_in_one_line(edit):
    model = _qlinear_conv_model(edit)
    try:
        rewritten = float_graph(model)
    except InputError as exc:
        assert "\n" not in str(exc)
    else:
        assert "QLinearConv" in [node.op_type for node in rewritten.graph.node]  # left quantized
    if edit is _external_weight:
        return  # the pipeline's own weight readers are not this test's subject
    try:
        graph = onnx_to_ir(model, simplify=False)
    except InputError as exc:
        assert "\n" not in str(exc)
    else:
        assert "QLinearConv" in [node.op for node in graph.nodes]


def test_the_work_is_linear_in_the_nodes():
    """20,000 Casts between float and fp16 in a row (a chain of renames as long): one pass each, no quadratic walk."""
    import time

    nodes, previous = [], "x"
    for i in range(20_000):
        to = TensorProto.FLOAT16 if i % 2 == 0 else TensorProto.FLOAT
        nodes.append(helper.make_node("Cast", [previous], [f"t{i}"], to=to))
        previous = f"t{i}"
    nodes.append(helper.make_node("Relu", [previous], ["y"]))
    graph = helper.make_graph(nodes, "casts", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    start = time.perf_counter()
    rewritten = float_graph(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert time.perf_counter() - start < 10  # about 1 s; a walk along the chain per Cast would take hours
    assert [(node.op_type, list(node.input), list(node.output)) for node in rewritten.graph.node] == [
        ("Relu", ["x"], ["y"])]
