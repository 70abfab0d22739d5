"""The `hnn` command as a user runs it: output, --json, and one-line errors on bad input."""

import json

import pytest
from conftest import run_hnn


def assert_one_line_error(result, *fragments, code=None):
    assert result.returncode != 0
    if code is not None:
        assert result.returncode == code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hnn: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_ingest_without_a_model_uses_the_bundled_example_and_writes_ir(tmp_path):
    out = tmp_path / "example.json"
    result = run_hnn("ingest", "--json", "--no-merge", "-o", out)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["nodes"] == 12 and summary["edges"] == 12
    assert summary["ops"]["Conv"] == 3
    assert json.loads(out.read_text())["format"] == "hnn-ir"


def test_ingest_merges_with_the_shipped_checkpoints_rules_by_default_so_its_output_hashes(tmp_path):
    result = run_hnn("ingest", "--json", "-o", tmp_path / "m.json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    # stem and block Conv-BN-ReLU, block Conv-BN; the residual Add, ReLU, pool and head stay
    assert summary["ops"] == {"ConvAct": 2, "ConvUnit": 1, "Add": 1, "Relu": 1, "GlobalAveragePool": 1, "Gemm": 1}
    assert summary["rules"] == ["agnostic"]
    assert run_hnn("hash", tmp_path / "m.json").returncode == 0


def test_ingest_with_the_paper_rules():
    summary = json.loads(run_hnn("ingest", "--json", "--rules", "paper").stdout)
    assert summary["ops"] == {"ConvBnRelu": 2, "ConvBn": 1, "Add": 1, "Relu": 1, "GlobalAveragePool": 1, "Gemm": 1}
    assert summary["rules"] == ["paper"]


def test_truncated_onnx(tmp_path):
    from hnn.ingest.pipeline import EXAMPLE_MODEL

    path = tmp_path / "cut.onnx"
    path.write_bytes(EXAMPLE_MODEL.read_bytes()[:3000])
    assert_one_line_error(run_hnn("ingest", path), "cut.onnx", "not", code=1)


def test_text_file_named_onnx(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("this is not a model\n" * 20)
    assert_one_line_error(run_hnn("ingest", path), "notes.onnx", code=1)


def test_missing_path():
    assert_one_line_error(run_hnn("ingest", "/no/such/model.onnx"), "no such file", code=1)


def test_unknown_framework_is_a_usage_error(tmp_path):
    assert_one_line_error(run_hnn("ingest", "x.onnx", "--framework", "caffe"), "unknown framework 'caffe'", code=2)


def test_undetectable_source_asks_for_framework():
    assert_one_line_error(run_hnn("ingest", "mystery.bin"), "--framework", code=2)


def test_an_unknown_option_is_a_usage_error_not_a_traceback():
    result = run_hnn("hash", "--no-such-option", "x")
    assert result.returncode == 2 and "No such option" in result.stderr and "Traceback" not in result.stderr


def test_bad_input_shape_is_a_usage_error():
    from hnn.ingest.pipeline import EXAMPLE_MODEL

    assert_one_line_error(run_hnn("ingest", EXAMPLE_MODEL, "--input-shape", "1,three"), "--input-shape", code=2)


def test_state_dict_only_pt_file(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "weights.pt"
    torch.save({"conv.weight": torch.zeros(4, 3, 3, 3)}, path)
    assert_one_line_error(run_hnn("ingest", path), "state_dict", "architecture", code=1)


def test_bad_ir_json_through_library_is_reported_with_file_name(tmp_path):
    from hnn.errors import IRFormatError
    from hnn.ingest.ir import Graph

    path = tmp_path / "model.json"
    path.write_text('{"format": "hnn-ir", "version": 1, "meta": {"framework": "onnx"}, "nodes": [{"id": 1}]')
    with pytest.raises(IRFormatError, match="model.json"):
        Graph.from_json_file(path)


def test_frameworks_lists_built_ins_with_versions():
    result = run_hnn("frameworks", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert {"onnx", "pytorch", "tensorflow", "keras"} <= set(rows)
    assert rows["onnx"]["version"]


def test_onnx_only_work_does_not_import_heavy_frameworks():
    # onnxsim 0.8 imports torch itself, so the fast path is ingestion without simplification.
    import subprocess
    import sys

    code = (
        "import sys; from hnn.ingest.pipeline import ingest, EXAMPLE_MODEL; ingest(str(EXAMPLE_MODEL), simplify=False);"
        "import hnn.cli; from hnn.plugins.manager import frontends; frontends();"
        "print(sorted(m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
