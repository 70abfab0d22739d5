"""The transformers front-end: Hugging Face folders (plain, sharded), model objects, class specs, and the
folders a hostile upload may hold. Models are built from small configs; nothing is downloaded."""

import json
import struct

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from hnn.hasher.runtime import hash_model  # noqa: E402

pytestmark = pytest.mark.slow  # end to end: torch exports, subprocesses

SMALL_BERT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64, "vocab_size": 500}
SMALL_LLAMA = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 64, "vocab_size": 500}


SMALL_GPT2 = {"n_embd": 32, "n_layer": 2, "n_head": 4, "vocab_size": 500, "bos_token_id": 0, "eos_token_id": 0}
EXPORTER_CASES = {
    "bert": lambda: transformers.BertForMaskedLM(transformers.BertConfig(**SMALL_BERT)),
    "gpt2": lambda: transformers.GPT2LMHeadModel(transformers.GPT2Config(**SMALL_GPT2)),
    "llama": lambda: transformers.LlamaForCausalLM(transformers.LlamaConfig(**SMALL_LLAMA)),
}


def _bert():
    torch.manual_seed(0)
    return transformers.BertForMaskedLM(transformers.BertConfig(**SMALL_BERT)).eval()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small BERT saved whole and in shards, and the object itself."""
    folder = tmp_path_factory.mktemp("hf")
    model = _bert()
    model.save_pretrained(folder / "bert")
    model.save_pretrained(folder / "bert_sharded", max_shard_size="40KB")
    return folder, model


def _single_line_error(result, *fragments):
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hnn: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def test_folder_sharded_folder_and_object_hash_alike(saved):
    folder, model = saved
    assert len(list((folder / "bert_sharded").glob("*.safetensors"))) > 1  # really sharded
    whole, sharded, obj = (hash_model(source) for source in (str(folder / "bert"), str(folder / "bert_sharded"), model))
    assert whole.framework == sharded.framework == obj.framework == "transformers"
    assert whole.hash == sharded.hash == obj.hash
    assert whole.structure.topology == sharded.structure.topology == obj.structure.topology
    # the weights were read: the fingerprint and marks are the model's, equal from both folders
    assert whole.fingerprint is not None and whole.fingerprint == sharded.fingerprint
    assert whole.weight_marks == sharded.weight_marks == obj.weight_marks


@pytest.mark.parametrize("name", sorted(EXPORTER_CASES))
def test_both_torch_exporters_give_identical_ir_and_code(name):
    """TorchScript and dynamo write attention, norms, the qkv split and the mask differently; the IR is one."""
    torch.manual_seed(0)
    model = EXPORTER_CASES[name]().eval()
    torchscript, dynamo = (hash_model(model, exporter=exporter) for exporter in ("torchscript", "dynamo"))
    assert torchscript.ir_digest == dynamo.ir_digest
    assert torchscript.hash == dynamo.hash and torchscript.structure.topology == dynamo.structure.topology



@pytest.mark.parametrize("name", sorted(EXPORTER_CASES))
def test_onnxsim_leaves_the_ir_as_it_is(name):
    """`hnn hash` reads a model without onnxsim, the zoo and `hnn ingest` with it: one IR either way
    (onnxsim merges the per-layer mask Where, folds the position and token-type embedding lookups
    and concatenates the q, k and v projections)."""
    from hnn.ingest.pipeline import ingest

    torch.manual_seed(0)
    model = EXPORTER_CASES[name]().eval()
    assert ingest(model, simplify=True).digest() == ingest(model, simplify=False).digest()

@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_a_decoder_exported_with_a_kv_cache_has_the_layer_graph_of_one_without(name, tmp_path):
    """A decoder exported for decoding takes its past keys and values as inputs and concatenates them
    to the new ones: the same layer graph as the export without a cache (one topology, the same ops);
    the attention's sizes are those of the longer key sequence, as for any other sequence length."""
    from collections import Counter

    from hnn.ingest.pipeline import ingest

    torch.manual_seed(0)
    model = EXPORTER_CASES[name]().eval()
    config = model.config
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = config.hidden_size // config.num_attention_heads
    tokens = torch.randint(0, 500, (1, 8))

    class WithPast(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, tokens, *past):
            cache = transformers.DynamicCache(config=config)
            for layer in range(config.num_hidden_layers):
                cache.update(past[2 * layer], past[2 * layer + 1], layer)
            out = self.inner(input_ids=tokens, past_key_values=cache, use_cache=True)
            return (out.logits, *(t for layer in out.past_key_values.layers for t in (layer.keys, layer.values)))

    class WithoutCache(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, tokens):
            return self.inner(input_ids=tokens, use_cache=False).logits

    past = [torch.randn(1, heads, 5, head_dim) for _ in range(2 * config.num_hidden_layers)]
    torch.onnx.export(WithPast(model).eval(), (tokens, *past), tmp_path / "past.onnx", dynamo=True, opset_version=18)
    torch.onnx.export(WithoutCache(model).eval(), (tokens,), tmp_path / "plain.onnx", dynamo=True, opset_version=18)
    with_past, plain = (ingest(tmp_path / f"{file}.onnx", simplify=False) for file in ("past", "plain"))
    assert Counter(node.op for node in with_past.nodes) == Counter(node.op for node in plain.nodes)
    assert hash_model(with_past).structure.topology == hash_model(plain).structure.topology


def test_an_onnx_export_with_dynamic_axes_hashes_as_its_folder(saved, tmp_path):
    """What a hub holds beside the folder: model.onnx with a dynamic batch and sequence. hnn reads the
    sequence as its own 128 tokens (no --input-shape needed), so the file and the folder get one code."""
    folder, model = saved

    class Encoder(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, ids, mask):
            return self.inner(input_ids=ids, attention_mask=mask).logits

    path = tmp_path / "model.onnx"
    torch.onnx.export(Encoder(model).eval(), (torch.randint(0, 500, (2, 16)), torch.ones(2, 16, dtype=torch.long)),
                      str(path), dynamo=False, opset_version=17, input_names=["input_ids", "attention_mask"],
                      dynamic_axes={name: {0: "batch", 1: "sequence"} for name in ("input_ids", "attention_mask")})
    exported, whole = hash_model(str(path)), hash_model(str(folder / "bert"))
    assert exported.hash == whole.hash and exported.structure.topology == whole.structure.topology


def _preset_spec(family):
    from hnn.zoo.transformer_presets import models

    return next(spec for _, fam, spec in models() if fam == family)


def test_both_exporters_agree_on_a_spec_with_two_norms_of_one_input():
    """GPT-NeoX's parallel attention and MLP norm one input twice; TorchScript merged the two norms while
    a fresh model's weights were equal (specs now get a little noise)."""
    torchscript, dynamo = (hash_model(_preset_spec("gpt_neox"), exporter=e) for e in ("torchscript", "dynamo"))
    assert torchscript.ir_digest == dynamo.ir_digest and torchscript.hash == dynamo.hash


def test_dynamos_nan_guard_after_unmasked_attention_is_not_structure():
    """dynamo writes Where(IsNaN(x), 0, x) after a ViT's softmax, TorchScript does not: one IR (as
    `hnn ingest` and the zoo make it, simplified), and one code."""
    from hnn.ingest.pipeline import ingest

    spec = _preset_spec("vit")
    torchscript, dynamo = (ingest(spec, exporter=e) for e in ("torchscript", "dynamo"))
    assert torchscript.digest() == dynamo.digest()
    assert not {"IsNaN", "Where"} & {node.op for node in dynamo.nodes}
    assert hash_model(torchscript).hash == hash_model(dynamo).hash


def test_the_family_answer_tells_a_deit_from_the_vit_of_its_op_graph(tmp_path):
    """A DeiT is a ViT with a second learned token: one op graph (the op-only pattern is one), and the
    code of a ViT of the DeiT's size is nearer than a DeiT of another size. The relative sizes (a
    token concatenation of 2 vectors, not 1) name the DeiT's family (hnn.hasher.relative_sizes)."""
    from hnn.hasher.structure import op_pattern
    from hnn.index.store import Index
    from hnn.ingest.pipeline import ingest
    from hnn.zoo.transformer_presets import FAMILIES, spec

    family = {f.name: f for f in FAMILIES}
    graphs = {(name, layers, width): ingest(spec(family[name], layers, width, 4))
              for name, layers, width in (("vit", 2, 128), ("deit", 4, 256), ("deit", 2, 128))}
    assert op_pattern(graphs["vit", 2, 128], kind="ops") == op_pattern(graphs["deit", 2, 128], kind="ops")
    assert op_pattern(graphs["vit", 2, 128]) != op_pattern(graphs["deit", 2, 128])
    hashed = {key: hash_model(graph) for key, graph in graphs.items()}
    with Index(tmp_path / "i.db", create=True) as index:
        for (name, layers, width) in (("vit", 2, 128), ("deit", 4, 256)):
            result = hashed[name, layers, width]
            index.add(f"{name}-{layers}x{width}", "spec", "transformers", result.code, "ck",
                      result.ir_digest, label=name, structure=result.structure)
        query = hashed["deit", 2, 128]
        assert index.family(query.code, query.structure.signature(index.pattern_kind))["label"] == "deit"


def test_hnn_hash_reads_a_dynamo_vit_as_the_torchscript_one():
    """What `hnn hash` does (no onnxsim): dynamo's computed all-zero attention mask is added as zero
    (hnn.ingest.uniform_constants), so both exporters give one IR without simplification too."""
    from hnn.ingest.pipeline import ingest

    spec = _preset_spec("vit")
    torchscript, dynamo = (ingest(spec, exporter=e, simplify=False) for e in ("torchscript", "dynamo"))
    assert torchscript.digest() == dynamo.digest()


def test_the_structure_does_not_depend_on_weight_values(saved):
    """A fresh model's zero biases and unit norm scales are not a different architecture from trained ones."""
    _, model = saved
    trained = _bert()
    with torch.no_grad():
        for parameter in trained.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    assert hash_model(trained).ir_digest == hash_model(model).ir_digest


def test_weights_decide_provenance_not_structure(saved, tmp_path, hnn_cli):
    """Another BERT of the same config, trained apart, is the same architecture but not derived."""
    folder, _ = saved
    torch.manual_seed(1)
    transformers.BertForMaskedLM(transformers.BertConfig(**SMALL_BERT)).save_pretrained(tmp_path / "other")
    same = hnn_cli("compare", folder / "bert", folder / "bert_sharded", "--json")
    other = hnn_cli("compare", folder / "bert", tmp_path / "other", "--json")
    assert same.returncode == 0 and other.returncode == 0, same.stderr + other.stderr
    assert json.loads(same.stdout)["provenance"]["derived"] is True
    assert json.loads(other.stdout)["provenance"]["derived"] is False
    assert json.loads(other.stdout)["distance"] == 0


def test_folder_is_detected_without_framework_and_converts_in_the_worker(saved, hnn_cli):
    folder, _ = saved
    result = hnn_cli("hash", folder / "bert", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["framework"] == "transformers"
    assert result.stderr.strip() == ""  # no progress bars or advice from transformers
    beside = hnn_cli("hash", folder / "bert" / "model.safetensors", "--json")  # the weights file of a folder
    assert json.loads(beside.stdout)["hash"] == json.loads(result.stdout)["hash"]


def test_spec_with_config_overrides_builds_offline(hnn_cli):
    overrides = ",".join(f"{key}={value}" for key, value in SMALL_LLAMA.items())
    result = hnn_cli("hash", f"transformers:LlamaForCausalLM:{overrides}", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["framework"] == "transformers"


def test_a_model_too_large_for_memory_needs_the_exporter_that_traces_without_weights(hnn_cli):
    # Llama's default config has 6.7 B parameters: exported from the meta device, by dynamo alone.
    _single_line_error(hnn_cli("ingest", "transformers:LlamaForCausalLM", "--exporter", "torchscript"),
                       "parameters", "dynamo")


@pytest.mark.parametrize("name", sorted(EXPORTER_CASES))
def test_the_bounded_memory_path_hashes_a_folder_as_the_model_in_memory(name, tmp_path, monkeypatch):
    """Weights read one tensor at a time from safetensors (plain and sharded), the graph exported from the
    meta device: the same IR and weight marks as the model built whole with its weights, and the same
    fingerprint as its dynamo export (the bounded path's exporter; GPT-2's Conv1D layers are laid out
    differently by TorchScript, which the fingerprint's walk still tells apart)."""
    from hnn.ingest.pipeline import ingest
    from hnn.plugins.frontends import transformers_frontend

    torch.manual_seed(0)
    model = EXPORTER_CASES[name]().eval()
    model.save_pretrained(tmp_path / "whole")
    model.save_pretrained(tmp_path / "sharded", max_shard_size="40KB")
    default = ingest(str(tmp_path / "whole"), simplify=False)
    in_memory = ingest(str(tmp_path / "whole"), simplify=False, exporter="dynamo")
    monkeypatch.setattr(transformers_frontend, "IN_MEMORY_PARAMETERS", 0)
    for folder in ("whole", "sharded"):
        bounded = ingest(str(tmp_path / folder), simplify=False)
        assert bounded.digest() == in_memory.digest() == default.digest()
        assert bounded.meta.weight_marks and bounded.meta.weight_marks == default.meta.weight_marks
        assert bounded.meta.provenance is not None and bounded.meta.provenance == in_memory.meta.provenance


def test_the_bounded_memory_path_refuses_weights_of_another_shape(tmp_path, monkeypatch):
    from safetensors.torch import load_file, save_file

    from hnn.errors import InputError
    from hnn.ingest.pipeline import ingest
    from hnn.plugins.frontends import transformers_frontend

    EXPORTER_CASES["llama"]().save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    name = next(key for key in tensors if key.endswith("mlp.up_proj.weight"))
    tensors[name] = tensors[name][:-1].contiguous()
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    monkeypatch.setattr(transformers_frontend, "IN_MEMORY_PARAMETERS", 0)
    with pytest.raises(InputError, match="has shape") as caught:
        ingest(str(tmp_path))
    assert "\n" not in str(caught.value)


def _copy(source, target):
    target.mkdir()
    for path in source.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    return target


def test_remote_code_is_refused(saved, tmp_path, hnn_cli):
    folder = _copy(saved[0] / "bert", tmp_path / "remote")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    marker = tmp_path / "ran"
    (folder / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    for extra in ((), ("--trust",)):  # hnn never imports a folder's Python files, trusted or not
        _single_line_error(hnn_cli("hash", folder, *extra), "remote code")
    assert not marker.exists()


def _lying_header(source, target, change):
    raw = source.read_bytes()
    length = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + length])
    change(header[next(name for name in header if name != "__metadata__")])
    encoded = json.dumps(header).encode()
    target.write_bytes(struct.pack("<Q", len(encoded)) + encoded + raw[8 + length:])


@pytest.mark.parametrize("case, fragment", [
    ("truncated", "truncated"),
    ("shape", "offsets span"),
    ("offsets", "offsets"),
    ("header length", "header declares"),
    ("config not json", "not JSON"),
    ("no model_type", "model_type"),
    ("shard outside", "not a file name inside the model folder"),
    ("bare weights", "without a config.json"),
    ("pickled weights", "--trust"),
    ("unknown architecture", "not a model class"),
])
def test_hostile_folders_get_one_line_errors(saved, tmp_path, hnn_cli, case, fragment):
    bert, sharded = saved[0] / "bert", saved[0] / "bert_sharded"
    folder = _copy(sharded if case == "shard outside" else bert, tmp_path / "model")
    weights = folder / "model.safetensors"
    config = json.loads((folder / "config.json").read_text())
    if case == "truncated":
        weights.write_bytes(weights.read_bytes()[:-1000])
    elif case == "shape":
        _lying_header(bert / "model.safetensors", weights, lambda entry: entry.update(shape=[7, *entry["shape"]]))
    elif case == "offsets":
        _lying_header(bert / "model.safetensors", weights,
                      lambda entry: entry.update(data_offsets=[entry["data_offsets"][0] + 4, entry["data_offsets"][1] + 4]))
    elif case == "header length":
        weights.write_bytes(struct.pack("<Q", 10**12) + weights.read_bytes()[8:])
    elif case == "config not json":
        (folder / "config.json").write_text("{'model_type': 'bert'")
    elif case == "no model_type":
        (folder / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k != "model_type"}))
    elif case == "shard outside":
        index = folder / "model.safetensors.index.json"
        data = json.loads(index.read_text())
        first = next(iter(data["weight_map"]))
        data["weight_map"][first] = "../../bert/model.safetensors"
        index.write_text(json.dumps(data))
    elif case == "bare weights":
        (folder / "config.json").unlink()
        folder = weights
    elif case == "pickled weights":
        from safetensors.torch import load_file

        torch.save(load_file(str(weights)), folder / "pytorch_model.bin")
        weights.unlink()
    elif case == "unknown architecture":
        (folder / "config.json").write_text(json.dumps({**config, "architectures": ["os.system"]}))
    _single_line_error(hnn_cli("hash", folder), fragment)


def test_pickled_weights_load_with_trust(saved, tmp_path, hnn_cli):
    from safetensors.torch import load_file

    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "config.json").write_bytes((saved[0] / "bert" / "config.json").read_bytes())
    torch.save(load_file(str(saved[0] / "bert" / "model.safetensors")), folder / "pytorch_model.bin")
    trusted = hnn_cli("hash", folder, "--trust", "--json")
    plain = hnn_cli("hash", saved[0] / "bert", "--json")
    assert trusted.returncode == 0, trusted.stderr
    assert json.loads(trusted.stdout)["hash"] == json.loads(plain.stdout)["hash"]


def test_spec_keywords_that_would_fetch_weights_are_refused(hnn_cli):
    _single_line_error(hnn_cli("hash", "torchvision.models:resnet18:weights=IMAGENET1K_V1"), "downloads nothing")


def test_spec_keyword_arguments_that_are_words_are_refused(hnn_cli, tmp_path):
    """A factory may be any installed callable: a string argument could name a command or a folder."""
    marker = tmp_path / "ran"
    result = hnn_cli("hash", f"subprocess:run:args=touch {marker},shell=true", "--framework", "pytorch")
    _single_line_error(result, "numbers, true, false or null")
    assert not marker.exists()
