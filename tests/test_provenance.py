"""Provenance (hnn.provenance): copies are derived from their original, independent models are not.

Small real models: a CNN exported by torch, its copies made the way copiers make them
(optimizer steps, onnxruntime's int8 quantizers, fp16 initializers, a function-preserving
permutation and rescaling checked with onnxruntime), and independent initialisations.
"""

import base64
import copy
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from scipy.stats import kstest, norm

from hnn.errors import IRFormatError
from hnn.ingest.ir import Graph
from hnn.ingest.pipeline import onnx_to_ir
from hnn.provenance.evidence import compare
from hnn.provenance.fingerprint import Fingerprint, fingerprint

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
from hnn.plugins.frontends.pytorch_frontend import export_module

SHAPE = [1, 3, 16, 16]


def cnn(seed: int) -> "torch.nn.Module":
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(),
        torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.BatchNorm2d(64), torch.nn.ReLU(),
        torch.nn.Conv2d(64, 64, 3, padding=1), torch.nn.BatchNorm2d(64), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()


def exported(module) -> onnx.ModelProto:
    return export_module(module.eval(), SHAPE)


def fine_tuned(module, steps: int = 60, seed: int = 0):
    """``steps`` of SGD with momentum on every layer, on a task with a real gradient."""
    module = copy.deepcopy(module).train()
    generator = torch.Generator().manual_seed(seed)
    teacher = torch.randn(3 * 16 * 16, 10, generator=generator)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.01, momentum=0.9)
    for _ in range(steps):
        images = torch.randn(8, *SHAPE[1:], generator=generator)
        loss = torch.nn.functional.cross_entropy(module(images), (images.flatten(1) @ teacher).argmax(1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return module.eval()


def outputs(model: onnx.ModelProto, image: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: image})[0]


def permuted_and_rescaled(module, rescale: bool):
    """The same function with the hidden units of the first two conv layers reordered (and, with
    ``rescale``, multiplied by positive factors that the next layer divides out: ReLU lets it)."""
    module = copy.deepcopy(module)
    generator = torch.Generator().manual_seed(9)
    with torch.no_grad():
        for conv, bn, following in ((module[0], module[1], module[3]), (module[3], module[4], module[6])):
            order = torch.randperm(conv.out_channels, generator=generator)
            for tensor in (conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var):
                tensor.copy_(tensor[order])
            following.weight.copy_(following.weight[:, order])
            if rescale:
                factors = torch.empty(conv.out_channels).uniform_(0.25, 4.0, generator=generator)
                bn.weight.mul_(factors)
                bn.bias.mul_(factors)
                following.weight.div_(factors[None, :, None, None])
    return module


def int8(model: onnx.ModelProto, tmp_path, form: str) -> onnx.ModelProto:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    source, target = tmp_path / "float.onnx", tmp_path / f"{form}.onnx"
    onnx.save(model, str(source))
    if form == "dynamic":
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    else:
        name = model.graph.input[0].name
        images = iter([{name: np.random.default_rng(i).standard_normal(SHAPE).astype(np.float32)} for i in range(4)])

        class Images(CalibrationDataReader):
            def get_next(self):
                return next(images, None)

        quantize_static(str(source), str(target), Images(), quant_format=QuantFormat.QDQ)
    return onnx.load(str(target))


def fp16_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """Every float initializer stored as float16, read through a Cast: what fp16 converters write."""
    model = copy.deepcopy(model)
    casts = []
    for tensor in model.graph.initializer:
        if tensor.data_type == TensorProto.FLOAT:
            values = numpy_helper.to_array(tensor).astype(np.float16)
            half_name = tensor.name + "_fp16"
            tensor.CopyFrom(numpy_helper.from_array(values, half_name))
            casts.append(helper.make_node("Cast", [half_name], [half_name[:-5]], to=TensorProto.FLOAT))
    nodes = casts + list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


@pytest.fixture(scope="module")
def original():
    return cnn(0)


@pytest.fixture(scope="module")
def original_fingerprint(original):
    return fingerprint(exported(original))


def test_a_fine_tuned_copy_is_derived_and_an_independent_fine_tuned_model_is_not(original, original_fingerprint):
    copy_evidence = compare(original_fingerprint, fingerprint(exported(fine_tuned(original))))
    assert copy_evidence.derived and copy_evidence.p_value < 1e-12
    independent = fine_tuned(cnn(1))  # the same recipe on another initialisation
    assert not compare(original_fingerprint, fingerprint(exported(independent))).derived
    assert not compare(original_fingerprint, fingerprint(exported(cnn(2)))).derived


@pytest.mark.parametrize("form", ["dynamic", "qdq"])
def test_an_int8_copy_is_derived(original, original_fingerprint, tmp_path, form):
    quantized = int8(exported(original), tmp_path, form)
    assert any(node.op_type in ("DequantizeLinear", "ConvInteger", "MatMulInteger") for node in quantized.graph.node)
    evidence = compare(original_fingerprint, fingerprint(quantized))
    assert evidence.derived and evidence.positional.similarity > 0.9


def test_fp16_weights_are_read_as_the_original(original, original_fingerprint):
    half = fp16_initializers(exported(original))
    assert any(t.data_type == TensorProto.FLOAT16 for t in half.graph.initializer)
    evidence = compare(original_fingerprint, fingerprint(half))
    assert evidence.derived and evidence.anchored.similarity > 0.99


@pytest.mark.parametrize("rescale", [False, True])
def test_a_permuted_or_rescaled_copy_computes_the_same_and_is_derived(original, original_fingerprint, rescale):
    model = exported(permuted_and_rescaled(original, rescale))
    image = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    np.testing.assert_allclose(outputs(model, image), outputs(exported(original), image), rtol=1e-3, atol=1e-4)
    evidence = compare(original_fingerprint, fingerprint(model))
    # Reordered units defeat the positional test on those layers; the anchored one does not care.
    assert evidence.derived and evidence.anchored.similarity > 0.99 and evidence.anchored.z >= 8


def test_p_values_of_independent_models_are_roughly_uniform():
    prints = [fingerprint(exported(cnn(seed))) for seed in range(10, 19)]
    pairs = [compare(a, b) for i, a in enumerate(prints) for b in prints[i + 1:]]  # 36 pairs
    assert not any(evidence.derived for evidence in pairs)
    for part in ("positional", "anchored"):
        p_values = np.array([norm.sf(getattr(evidence, part).z) for evidence in pairs])
        # Uniform on [0, 1] under the null: a KS test that would reject a p-value stuck near 0 or 1.
        assert kstest(p_values, "uniform").pvalue > 0.001, (part, np.round(np.sort(p_values), 3))
        assert (p_values < 0.01).mean() <= 0.1


def with_weights(model: onnx.ModelProto, values) -> onnx.ModelProto:
    model = copy.deepcopy(model)
    for tensor in model.graph.initializer:
        if tensor.data_type == TensorProto.FLOAT:
            array = numpy_helper.to_array(tensor)
            tensor.CopyFrom(numpy_helper.from_array(np.full_like(array, values), tensor.name))
    return model


@pytest.mark.parametrize("value", [np.nan, np.inf, 0.5])
def test_nan_inf_or_constant_weights_are_never_derived(original, original_fingerprint, value):
    hostile = fingerprint(with_weights(exported(original), value))
    # No fingerprint at all, or one without evidence: not derived, even from itself.
    assert hostile is None or not (compare(original_fingerprint, hostile).derived or compare(hostile, hostile).derived)


def test_a_huge_declared_shape_is_skipped_not_read():
    weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1 << 20, 1 << 20])  # declared, no data
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1 << 20])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1 << 20])], [weight])
    assert fingerprint(helper.make_model(graph)) is None


def test_a_fingerprint_survives_ir_json_and_a_crafted_one_is_a_one_line_error(original):
    text = onnx_to_ir(exported(original)).to_json()
    graph = Graph.from_dict(json.loads(text))
    assert graph.meta.provenance is not None and compare(graph.meta.provenance, graph.meta.provenance).derived
    raw = bytes(graph.meta.provenance.to_bytes())
    for damage in (raw[:-1], raw[:8] + b"\xff" * (len(raw) - 8), b"x"):
        crafted = text.replace(graph.meta.provenance.to_dict()["data"], base64.b64encode(damage).decode())
        with pytest.raises(IRFormatError, match="meta.provenance") as caught:
            Graph.from_dict(json.loads(crafted))
        assert "\n" not in str(caught.value)


def test_fingerprint_bytes_refuse_non_finite_scales(original_fingerprint):
    raw = bytearray(original_fingerprint.to_bytes())
    grams = len(original_fingerprint.grams)
    scales_at = len(raw) - grams * (4 + 276)
    raw[scales_at:scales_at + 4] = np.float32(np.nan).tobytes()
    with pytest.raises(ValueError, match="scale"):
        Fingerprint.from_bytes(bytes(raw))


def test_the_index_finds_the_original_among_independents_and_survives_a_damaged_fingerprint(
        original, original_fingerprint, tmp_path):
    import sqlite3

    from hnn.index.derivation import derivation_evidence
    from hnn.index.store import Index

    code = np.zeros(64, dtype=bool)  # one architecture: every entry ties by code
    path = tmp_path / "i.db"
    with Index(path, create=True) as index:
        for seed in (3, 4):  # one IR, each its own weights (own marks)
            index.add(f"independent{seed}", "x", "onnx", code, "ck", "d", weight_marks=[seed],
                      fingerprint=fingerprint(exported(cnn(seed))))
        index.add("original", "x", "onnx", code, "ck", "d", weight_marks=[1], fingerprint=original_fingerprint)
        index.add("no weights", "x", "onnx", code, "ck", "d-other")
    upload = fingerprint(exported(fine_tuned(original, seed=5)))
    with Index(path) as index:
        evidence = derivation_evidence(index, upload, [4])  # the structural neighbours shown, here the weightless one
        assert {entry_id for entry_id, said in evidence.items() if said.derived} == {3} and set(evidence) == {1, 2, 3}
    db = sqlite3.connect(path)
    db.execute("UPDATE fingerprints SET data = ? WHERE entry = 3", (b"\x01\x00" * 7,))  # crafted bytes, right probe
    db.commit()
    db.close()
    with Index(path) as index:
        assert not any(said.derived for said in derivation_evidence(index, upload, []).values())


def test_a_dequantize_with_a_mismatched_per_channel_scale_gives_no_fingerprint_not_a_crash():
    weight = numpy_helper.from_array(np.ones((8, 64), dtype=np.int8), "w_q")
    scale = numpy_helper.from_array(np.ones(5, dtype=np.float32), "w_scale")  # 5 scales for 8 channels
    nodes = [helper.make_node("DequantizeLinear", ["w_q", "w_scale"], ["w"], axis=0),
             helper.make_node("MatMul", ["x", "w"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])], [weight, scale])
    assert fingerprint(helper.make_model(graph)) is None


def test_the_probe_candidates_are_the_best_scores_of_every_probe_ties_by_position():
    from hnn.provenance.probe import PROBE_BYTES, ProbeColumns, best_probes, probe_scores

    rng = np.random.default_rng(0)
    for size in (1, 3, 40, 500):
        probes = rng.integers(0, 256, (size, PROBE_BYTES), dtype=np.uint8)
        probes[:, :8] = rng.integers(0, 3, size)[:, None]  # three layer sequences
        probes[rng.random(size) < 0.3] = probes[0]  # ties
        noise = (rng.random(PROBE_BYTES) < 0.05).astype(np.uint8)  # the lowest bit of some bytes flipped
        query = bytes(probes[0, :8]) + bytes(probes[int(rng.integers(0, size))] ^ noise)[8:]
        positional, anchored = probe_scores(query, probes)
        differing = np.unpackbits(probes[:, 40:] ^ np.frombuffer(query, np.uint8)[40:], axis=1).sum(axis=1, dtype=np.int64)
        same = (probes[:, :8] == probes[0, :8]).all(axis=1)
        assert np.allclose(positional, np.where(same, (1024 - differing) / np.sqrt(512), -np.inf))  # 2048 bits
        for count in (1, 4, 600):
            by_position, by_anchor = best_probes(query, ProbeColumns.of(probes), count)
            expected = [i for i in np.argsort(-positional, kind="stable")[:count] if np.isfinite(positional[i])]
            assert by_position.tolist() == expected
            assert by_anchor.tolist() == np.argsort(-anchored, kind="stable")[:count].tolist()
