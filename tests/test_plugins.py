"""Third-party front-ends through the real entry-point mechanism, and the plugin docs."""

import inspect
import json
import re
from pathlib import Path

import pytest
from conftest import run_hnn

from hnn.plugins import hookspecs

TOY_PLUGIN = '''
"""A made-up framework, "toyfw": a JSON list of dense layer widths, converted to ONNX."""
import json
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from hnn.plugins import hookimpl
from hnn.errors import InputError
from hnn.plugins.frontend import Frontend


class ToyFrontend(Frontend):
    name = "toyfw"
    package = "hnn-toyfw"
    description = "toy dense networks (.toy JSON)"

    def claims(self, source):
        return isinstance(source, str) and source.endswith(".toy")

    def to_onnx(self, source, options):
        try:
            widths = json.loads(Path(source).read_text())["widths"]
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"{source}: not a toy model ({exc})")
        nodes, inits, previous = [], [], "x"
        for i, (n_in, n_out) in enumerate(zip(widths, widths[1:])):
            inits += [numpy_helper.from_array(np.ones((n_in, n_out), np.float32), f"w{i}"),
                      numpy_helper.from_array(np.ones(n_out, np.float32), f"b{i}")]
            nodes += [helper.make_node("MatMul", [previous, f"w{i}"], [f"m{i}"]),
                      helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"]),
                      helper.make_node("Relu", [f"a{i}"], [f"r{i}"])]
            previous = f"r{i}"
        graph = helper.make_graph(nodes, "toy", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, widths[0]])],
                                  [helper.make_tensor_value_info(previous, TensorProto.FLOAT, None)], inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@hookimpl
def hnn_register_frontends(register):
    register(ToyFrontend())
'''


@pytest.fixture
def installed_toy_plugin(tmp_path):
    """A plugin distribution on PYTHONPATH with an entry point in group `hnn`, as pip would leave it."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "hnn_toyfw.py").write_text(TOY_PLUGIN)
    dist_info = site / "hnn_toyfw-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: hnn-toyfw\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text("[hnn]\ntoyfw = hnn_toyfw\n")
    model = tmp_path / "net.toy"
    model.write_text(json.dumps({"widths": [8, 16, 4]}))
    env = {"PYTHONPATH": str(site), "HNN_NO_THIRD_PARTY_PLUGINS": ""}
    return model, env


def test_third_party_front_end_is_found_through_entry_points(installed_toy_plugin):
    model, env = installed_toy_plugin
    result = run_hnn("ingest", model, "--framework", "toyfw", "--json", env=env)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["framework"] == "toyfw"
    assert summary["ops"] == {"Gemm": 2, "Relu": 2}
    assert summary["params"] == 8 * 16 + 16 + 16 * 4 + 4

    detected = run_hnn("ingest", model, "--json", env=env)
    assert json.loads(detected.stdout)["framework"] == "toyfw"

    listing = run_hnn("frameworks", "--json", env=env)
    rows = {row["name"]: row for row in json.loads(listing.stdout)}
    assert rows["toyfw"]["version"] == "0.1" and rows["toyfw"]["plugin"] == "toyfw"


def test_third_party_plugins_stay_out_when_disabled(installed_toy_plugin):
    model, env = installed_toy_plugin
    result = run_hnn("ingest", model, "--framework", "toyfw", env={**env, "HNN_NO_THIRD_PARTY_PLUGINS": "1"})
    assert result.returncode == 2
    assert "unknown framework 'toyfw'" in result.stderr


def test_plugin_registered_in_process_is_used_and_can_be_removed():
    from onnx import helper
    from onnx_builders import model as build_model

    from hnn.ingest.pipeline import ingest
    from hnn.plugins import hookimpl
    from hnn.plugins.frontend import Frontend
    from hnn.plugins.manager import frontends, get_plugin_manager

    class TinyFrontend(Frontend):
        name = "tiny"

        def to_onnx(self, source, options):
            return build_model([helper.make_node("Sigmoid", ["x"], ["y"])], [("x", [1, 3])], ["y"])

    class Plugin:
        @hookimpl
        def hnn_register_frontends(self, register):
            register(TinyFrontend())

    manager = get_plugin_manager()
    plugin = Plugin()
    manager.register(plugin, name="tiny-test-plugin")
    try:
        assert frontends()["tiny"][1] == "tiny-test-plugin"
        assert [node.op for node in ingest("anything", framework="tiny").nodes] == ["Sigmoid"]
    finally:
        manager.unregister(plugin)
    assert "tiny" not in frontends()


def test_every_hook_is_documented_with_its_signature():
    docs = (Path(__file__).resolve().parent.parent / "docs" / "plugins.md").read_text()
    hooks = [name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("hnn_")]
    assert hooks
    for name in hooks:
        parameters = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        assert re.search(rf"{name}\({re.escape(parameters)}\)", docs), f"{name}({parameters}) missing from docs"


def test_a_folder_with_a_config_is_the_transformers_front_ends_unless_it_is_a_saved_model(tmp_path):
    from hnn.plugins.manager import select_frontend

    (tmp_path / "config.json").write_text("{}")
    assert select_frontend(str(tmp_path), None).name == "transformers"
    (tmp_path / "saved_model.pb").write_bytes(b"")
    assert select_frontend(str(tmp_path), None).name == "tensorflow"
