"""Bare weights (a .safetensors file with no config.json): provenance from the tensors alone.

A platform sees weights uploaded without their config. They have no graph, so no code; what
hnn check and hnn compare can still say is whether the weights come from a known model's.
Models are built from small configs; nothing is downloaded."""

import json
import math
import shutil
import struct

import numpy as np
import pytest

from hnn.provenance.evidence import DERIVED_Z, compare
from hnn.provenance.fingerprint import Fingerprint
from hnn.provenance.weights_only import is_bare_weights, read_weights_file

safetensors_numpy = pytest.importorskip("safetensors.numpy")


def _random_file(path, seed: int, shapes: dict) -> None:
    rng = np.random.default_rng(seed)
    safetensors_numpy.save_file({name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()},
                                str(path))


LLAMA_SHAPES = {f"model.layers.{i}.{name}": shape for i in range(3)
                for name, shape in (("self_attn.q_proj.weight", (64, 64)), ("self_attn.k_proj.weight", (32, 64)),
                                    ("mlp.up_proj.weight", (128, 64)), ("mlp.down_proj.weight", (64, 128)),
                                    ("input_layernorm.weight", (64,)))}
LLAMA_SHAPES["model.embed_tokens.weight"] = (500, 64)


def test_what_the_names_and_shapes_of_bare_weights_show(tmp_path):
    _random_file(tmp_path / "model.safetensors", 0, LLAMA_SHAPES)
    assert is_bare_weights(tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text("{}")
    assert not is_bare_weights(tmp_path / "model.safetensors")  # a folder's weights: the folder is read
    weights = read_weights_file(tmp_path / "model.safetensors")
    assert weights.tensors == 16 and weights.blocks == {"model.layers": 3}
    assert weights.parameters == sum(math.prod(shape) for shape in LLAMA_SHAPES.values())
    assert weights.sketched == 13  # every 2-D tensor; the layer norms are too small to tell
    assert not weights.fingerprint.ordered and len(weights.fingerprint.grams) == 0
    # every 2-D tensor is sketched as stored and transposed: one tensor, two layouts
    assert len(weights.fingerprint.shapes) == 2 * 13
    again = Fingerprint.from_bytes(weights.fingerprint.to_bytes())
    assert again == weights.fingerprint and np.array_equal(again.tensors, weights.fingerprint.tensors)


def test_a_copy_is_derived_and_independent_weights_are_not(tmp_path):
    """Exact copies, copies with noise and in fp16, and 30 pairs of independent weights of one shape set:
    the null's z stays near 0 (the best of many candidates is corrected for how many it was chosen from)."""
    _random_file(tmp_path / "a.safetensors", 0, LLAMA_SHAPES)
    original = read_weights_file(tmp_path / "a.safetensors").fingerprint
    rng = np.random.default_rng(7)
    noisy = {name: (rng.standard_normal(shape) * (1.0 if len(shape) > 1 else 0.0) * 0.3).astype(np.float32)
             for name, shape in LLAMA_SHAPES.items()}
    loaded = safetensors_numpy.load_file(str(tmp_path / "a.safetensors"))
    safetensors_numpy.save_file({name: (loaded[name] + noisy[name]).astype(np.float16) for name in loaded},
                                str(tmp_path / "tuned.safetensors"))
    tuned = read_weights_file(tmp_path / "tuned.safetensors").fingerprint
    assert compare(original, original).z > 30
    assert compare(tuned, original).derived and compare(original, tuned).derived
    nulls = []
    for seed in range(1, 31):
        _random_file(tmp_path / "b.safetensors", seed, LLAMA_SHAPES)
        nulls.append(compare(read_weights_file(tmp_path / "b.safetensors").fingerprint, original).z)
    assert max(nulls) < DERIVED_Z
    assert abs(float(np.mean(nulls))) < 1.0 and float(np.std(nulls)) < 2.0, nulls


def test_copies_of_one_tensor_count_once(tmp_path):
    """A file of 64 copies of one random tensor, against a model of 8 independent layers of that shape:
    each copy would find the same best layer, and their z's add up to `derived` (4 of 40 such files
    before the copies counted once)."""
    from hnn.provenance.fingerprint import FEATURES

    rng = np.random.default_rng(0)
    found = []
    for trial in range(30):
        tensor = rng.standard_normal((64, 96)).astype(np.float32)
        copies = {f"layers.{i}.weight": tensor for i in range(64)}
        safetensors_numpy.save_file(copies, str(tmp_path / "copies.safetensors"))
        upload = read_weights_file(tmp_path / "copies.safetensors")
        assert upload.sketched == 64
        other = Fingerprint(np.zeros((0, FEATURES), np.float32), ((64, 96),) * 8,
                            rng.integers(0, 256, (8, 64)).astype(np.uint8))  # 8 independent layers
        test = compare(upload.fingerprint, other).positional
        assert test.layers_compared == 1  # the copies are one tensor
        found.append(test.z)
    assert max(found) < DERIVED_Z and abs(float(np.mean(found))) < 1.0, found


@pytest.mark.parametrize("case, fragment", [
    ("truncated", "truncated"),
    ("offsets", "offsets"),
    ("header length", "header declares"),
    ("not safetensors", "header"),
    ("header too large", "header declares"),
    ("nested header", "not JSON"),
    ("huge dimension", "bad shape"),
    ("too many dimensions", "bad shape"),
])
def test_hostile_bare_weights_get_one_line_errors(tmp_path, hnn_cli, case, fragment):
    weights = tmp_path / "up" / "model.safetensors"
    weights.parent.mkdir()
    _random_file(weights, 0, LLAMA_SHAPES)
    raw = weights.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    if case == "truncated":
        weights.write_bytes(raw[:-100])
    elif case == "offsets":
        header = json.loads(raw[8:8 + length])
        first = next(name for name in header if name != "__metadata__")
        header[first]["data_offsets"] = [header[first]["data_offsets"][0] + 4, header[first]["data_offsets"][1] + 4]
        text = json.dumps(header).encode()
        weights.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + length:])
    elif case == "header length":
        weights.write_bytes(struct.pack("<Q", 10**12) + raw[8:])
    elif case == "not safetensors":
        weights.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8)
    elif case == "header too large":  # within the format's own 100 MB, over what is parsed in-process
        text = json.dumps({"__metadata__": {"pad": "x" * (17 * 1024**2)}}).encode()
        weights.write_bytes(struct.pack("<Q", len(text)) + text)
    elif case == "nested header":  # deeper than Python's JSON parser recurses
        text = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        weights.write_bytes(struct.pack("<Q", len(text)) + text)
    elif case in ("huge dimension", "too many dimensions"):
        shape = [0, 2**64] if case == "huge dimension" else [1] * 300
        text = json.dumps({"w": {"dtype": "F32", "shape": shape, "data_offsets": [0, 0]}}).encode()
        weights.write_bytes(struct.pack("<Q", len(text)) + text)
    index = tmp_path / "index.db"
    for command in (("check", index, weights), ("compare", weights, weights)):
        result = hnn_cli(*command)
        assert result.returncode not in (0, 3, 4), result.stdout
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("hnn: ") and fragment in lines[0], result.stderr
    assert not index.exists()  # a check writes nothing


@pytest.mark.slow
def test_bare_weights_are_checked_against_an_index_of_folders(tmp_path, hnn_cli):
    """The index holds Hugging Face folders (their fingerprints come from the graph); the uploads are bare
    model.safetensors files: a copy of each (GPT-2 stores its Conv1D weights (in, out), the graph has
    them (out, in)), a fine-tuned bf16 copy, and an independent model of an indexed config."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    configs = {
        "llama": transformers.LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                          num_key_value_heads=2, intermediate_size=128, vocab_size=500),
        "gpt2": transformers.GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=500, bos_token_id=0, eos_token_id=0),
        "bert": transformers.BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                        intermediate_size=128, vocab_size=500),
    }
    models = {}
    for seed, (name, config) in enumerate(configs.items()):
        torch.manual_seed(seed)
        models[name] = transformers.AutoModel.from_config(config)
        models[name].save_pretrained(tmp_path / name)
    index = tmp_path / "index.db"
    added = hnn_cli("index", "add", index, *(tmp_path / name for name in configs))
    assert added.returncode == 0, added.stderr

    def bare(name: str, model) -> str:
        model.save_pretrained(tmp_path / "saved" / name)
        upload = tmp_path / "uploads" / name / "model.safetensors"
        upload.parent.mkdir(parents=True)
        shutil.copy(tmp_path / "saved" / name / "model.safetensors", upload)
        return str(upload)

    tuned = transformers.AutoModel.from_config(configs["llama"])
    tuned.load_state_dict(models["llama"].state_dict())
    optimizer = torch.optim.Adam(tuned.parameters(), lr=1e-3)
    for _ in range(20):
        optimizer.zero_grad()
        tuned(input_ids=torch.randint(0, 500, (4, 16))).last_hidden_state.pow(2).mean().backward()
        optimizer.step()
    torch.manual_seed(99)
    uploads = {**{name: bare(name, model) for name, model in models.items()},
               "tuned": bare("tuned", tuned.to(torch.bfloat16)),
               "independent": bare("independent", transformers.AutoModel.from_config(configs["llama"]))}
    expected = {"llama": "llama", "gpt2": "gpt2", "bert": "bert", "tuned": "llama", "independent": None}
    for upload, source in expected.items():
        result = hnn_cli("check", index, uploads[upload], "--json")
        said = json.loads(result.stdout)
        assert said["weights_only"] and said["hash"] is None
        if source is None:
            assert result.returncode == 0 and said["verdict"] == "new" and said["derived_from"] is None, said
        else:
            assert result.returncode == 4 and said["derived_from"]["name"] == source, (upload, said)
    line = hnn_cli("check", index, uploads["tuned"])
    assert line.stdout.startswith("derived: ") and "from #1 llama" in line.stdout and "weights only" in line.stdout
    # two bare files: the provenance test alone
    both = json.loads(hnn_cli("compare", uploads["tuned"], uploads["llama"], "--json").stdout)
    assert both["verdict"] == "derived" and both["a"]["framework"] == "safetensors"
    apart = json.loads(hnn_cli("compare", uploads["independent"], tmp_path / "llama", "--json").stdout)
    assert apart["verdict"] == "different" and apart["provenance"]["z"] < DERIVED_Z
