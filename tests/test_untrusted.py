"""Untrusted input: the generated bad-input corpus, worker limits, and what reaches the worker."""


import pytest
from conftest import make_bad_input_corpus, run_hnn

from hnn.ingest.pipeline import EXAMPLE_MODEL

pytestmark = pytest.mark.slow  # end to end: subprocesses, frameworks (the quick loop skips it)



@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    return folder, make_bad_input_corpus(folder)


CASES = ["pickle_canary", "random_bytes", "truncated", "external_dotdot", "external_absolute", "external_symlink",
         "cycle", "huge_declared_tensor", "zip_bomb", "torchscript", "keras_lambda", "keras_unknown_class", "savedmodel_writefile",
         "savedmodel_nested_readfile", "duplicate_outputs", "dangling_input", "op_type_not_utf8",
         "attribute_wrong_kind", "unknown_data_type", "raw_data_size_mismatch", "typed_field_mismatch",
         "recursive_function", "raw_string_tensor", "tensor_name_not_utf8", "keras_many_members", "zip_future_version", "zip_name_not_utf8", "branch_name_not_utf8", "cycle_through_if",
         "duplicate_initializer", "duplicate_input", "duplicate_output",
         "savedmodel_saver_top_level_save", "savedmodel_restore_other_path", "savedmodel_restore_writes"]


@pytest.mark.parametrize("case", CASES)
def test_each_bad_file_is_rejected_with_its_reason_in_one_line(corpus, case):
    folder, cases = corpus
    path, expected = cases[case]
    result = run_hnn("ingest", path)
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hnn: ") and expected in lines[0], result.stderr
    assert path.name in lines[0]
    assert not (folder / "CANARY_CREATED").exists()


def test_the_saved_model_allow_list_passes_a_real_keras_export(tmp_path):
    from hnn.plugins.frontends.savedmodel_policy import check_saved_model
    from hnn.plugins.frontends.tf_import import import_keras

    keras = import_keras()
    layers = keras.layers
    model = keras.Sequential([keras.Input((16, 16, 3)), layers.Conv2D(8, 3), layers.BatchNormalization(),
                              layers.ReLU(), layers.DepthwiseConv2D(3), layers.GlobalAveragePooling2D(),
                              layers.Dense(4), layers.Softmax()])
    model.export(str(tmp_path / "saved"), verbose=False)  # its save/restore functions hold SaveV2/RestoreV2
    check_saved_model(tmp_path / "saved")  # raises if anything in a real export is off the list


def test_archive_entries_may_not_point_outside_the_archive(tmp_path):
    import zipfile

    from hnn.errors import InputError
    from hnn.plugins.frontends.archives import check_zip_archive

    path = tmp_path / "escape.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("../../outside.txt", "x")
    with pytest.raises(InputError, match="points outside the archive"):
        check_zip_archive(path)


@pytest.mark.parametrize("case, op", [("nested_if", "If"), ("nested_loop", "Loop")])
def test_deeply_nested_subgraphs_finish_cleanly(corpus, case, op):
    _, cases = corpus
    result = run_hnn("ingest", cases[case][0], "--json")
    assert result.returncode == 0 and f'"{op}": 1' in result.stdout


def test_hashing_bad_files_keeps_the_good_ones(corpus):
    _, cases = corpus
    result = run_hnn("hash", EXAMPLE_MODEL, cases["cycle"][0], cases["random_bytes"][0])
    assert result.returncode == 1
    assert len(result.stdout.splitlines()) == 1 and len(result.stderr.strip().splitlines()) == 2


def test_memory_limit_rejects_instead_of_exhausting_the_machine(tmp_path):
    # A model whose 320 MB weight cannot be read within 500 MiB of address space, on top of the
    # worker's own (Python, numpy, onnx: about 270 MiB measured here). A limit that a small model
    # only just crosses would test the machine's libraries, not hnn.
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.zeros((80_000_000, 1), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "big",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 80_000_000])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [weight])
    path = tmp_path / "big.onnx"
    onnx.save(helper.make_model(graph), str(path))
    result = run_hnn("ingest", path, "--max-memory", "500M")
    assert result.returncode == 1
    assert result.stderr.strip() == "hnn: big.onnx: rejected: exceeded the 500 MiB memory limit"


def test_time_limit_kills_the_worker():
    result = run_hnn("ingest", EXAMPLE_MODEL, "--timeout", "0.05")
    assert result.returncode == 1 and "rejected: exceeded the 0.05 s time limit" in result.stderr


def test_trusted_files_convert_in_process_and_bad_limits_are_usage_errors():
    assert run_hnn("ingest", EXAMPLE_MODEL, "--trust", "--timeout", "0.05").returncode == 0
    assert run_hnn("ingest", EXAMPLE_MODEL, "--max-memory", "lots").returncode == 2


def test_secrets_in_the_environment_do_not_reach_the_worker(monkeypatch):
    from hnn.ingest.worker import _environment

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hunter2")
    monkeypatch.setenv("HF_TOKEN", "hunter3")
    env = _environment()
    assert "AWS_SECRET_ACCESS_KEY" not in env and "HF_TOKEN" not in env and "PATH" in env


def test_a_worker_that_the_dynamic_loader_stopped_is_reported_as_a_memory_refusal():
    """Exit 127 is ld.so's: under a tight memory limit, binding a symbol or loading a library can fail
    before Python sees a MemoryError (seen with --max-memory 100M in the fork server's child)."""
    from hnn.ingest.worker import Limits, _failure

    error = _failure(127, "", "m.onnx", "m.onnx", "m.onnx", Limits(max_memory=100 * 2**20))
    assert str(error).startswith("m.onnx: rejected:") and "memory limit" in str(error)
    assert "exit 3" in str(_failure(3, "", "m.onnx", "m.onnx", "m.onnx", Limits()))
