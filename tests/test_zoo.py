"""Zoo datasets: build from a model list, resume, augmentation, splits, corrupted files."""

import json

import pytest
from conftest import run_hnn

from hnn.errors import InputError, UsageError
from hnn.zoo.augment import delete_nodes
from hnn.zoo.build import build, load_dataset_graph, load_manifest
from hnn.zoo.splits import split

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def small_zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    listing = root / "models.txt"
    listing.write_text("# spec family\ntorchvision.models:squeezenet1_1 squeezenet\n"
                       "torchvision.models:resnet18 resnet\n")
    data = build(str(listing), root / "data", augmentations=3, seed=5)
    return root, listing, data


def test_build_writes_ir_files_augmentations_manifest_and_summary(small_zoo):
    root, _, data = small_zoo
    out = root / "data"
    assert [m["name"] for m in data["models"]] == ["squeezenet1_1", "resnet18"]
    assert len(data["augmented"]) == 6
    resnet = data["models"][1]
    assert resnet["family"] == "resnet" and resnet["nodes"] == {"raw": 68, "merged": 39}
    assert resnet["params"] == 11689512
    for record in data["models"] + data["augmented"]:
        for kind in ("raw", "merged"):
            graph = load_dataset_graph(out, record["files"][kind])
            assert graph.digest() == record["digest"][kind]
    aug = data["augmented"][3]
    assert aug["source"] == "resnet18" and aug["nodes"]["raw"] == 68 - 7  # ceil(10% of 68) deleted
    assert "resnet18" in (out / "README.md").read_text()
    assert load_manifest(out)["models"] == data["models"]


def test_build_resumes_without_redoing_finished_models(small_zoo):
    root, listing, data = small_zoo
    out = root / "data"
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["models"] = manifest["models"][:1]  # as if interrupted after the first model
    (out / "manifest.json").write_text(json.dumps(manifest))
    before = (out / "raw" / "squeezenet1_1.json").stat().st_mtime_ns
    resumed = build(str(listing), out, augmentations=3, seed=5)
    assert [m["name"] for m in resumed["models"]] == ["squeezenet1_1", "resnet18"]
    assert (out / "raw" / "squeezenet1_1.json").stat().st_mtime_ns == before
    assert resumed["augmented"] == data["augmented"]


def test_a_longer_list_converts_only_what_it_adds_and_a_shorter_one_drops_the_rest(small_zoo, tmp_path):
    import shutil

    root, listing, data = small_zoo
    out = shutil.copytree(root / "data", tmp_path / "data")  # the module's dataset stays as it is
    before = {name: (out / "raw" / f"{name}.json").stat().st_mtime_ns for name in ("squeezenet1_1", "resnet18")}
    longer = tmp_path / "longer.txt"
    longer.write_text(listing.read_text() + "torchvision.models:alexnet alexnet\n")
    grown = build(str(longer), out, augmentations=3, seed=5)
    assert [m["name"] for m in grown["models"]] == ["squeezenet1_1", "resnet18", "alexnet"]
    assert grown["preset"] == str(longer) and len(grown["augmented"]) == 9
    assert all((out / "raw" / f"{name}.json").stat().st_mtime_ns == mtime for name, mtime in before.items())
    shorter = tmp_path / "shorter.txt"
    shorter.write_text("torchvision.models:resnet18 resnet\n")
    kept = build(str(shorter), out, augmentations=3, seed=5)
    assert [m["name"] for m in kept["models"]] == ["resnet18"]
    assert {a["source"] for a in kept["augmented"]} == {"resnet18"}
    with pytest.raises(UsageError, match="other settings"):
        build(str(shorter), out, augmentations=2, seed=5)


def test_copier_variants_are_graphs_of_their_source_and_more_variants_convert_only_those(small_zoo, tmp_path):
    import shutil

    from hnn.zoo.dataset import dataset_graphs, pairwise_ged

    root, listing, data = small_zoo
    out = shutil.copytree(root / "data", tmp_path / "data")
    squeeze = tmp_path / "squeeze.txt"
    squeeze.write_text("torchvision.models:squeezenet1_1 squeezenet\n")
    built = build(str(squeeze), out, augmentations=3, seed=5, variants=("head", "resolution"))
    by_name = {v["name"]: v for v in built["variants"]}
    assert set(by_name) == {"squeezenet1_1~head", "squeezenet1_1~resolution"}
    assert {v["source"] for v in built["variants"]} == {"squeezenet1_1"}
    assert by_name["squeezenet1_1~head"]["constructor"].endswith(":num_classes=10")
    assert list(by_name["squeezenet1_1~resolution"]["input_shapes"].values()) == [[1, 3, 256, 256]]
    head = load_dataset_graph(out, by_name["squeezenet1_1~head"]["files"]["raw"])
    original = load_dataset_graph(out, built["models"][0]["files"]["raw"])
    assert [n.op for n in head.nodes] == [n.op for n in original.nodes] and head.total_params < original.total_params
    # training sees them as copies of their source: they follow it through a split
    assert {"squeezenet1_1~head", "squeezenet1_1~resolution"} <= set(split(built, "families=squeezenet")["test"])
    names, matrix, _ = pairwise_ged(out, loaded=dataset_graphs(out))
    assert len(names) == 1 + 3 + 2 and matrix.shape == (6, 6)
    # a copy is at GED 0 from its source, though the estimate would count each FLOPs bucket
    # a new resolution moves as an edit
    at = {name: i for i, name in enumerate(names)}
    assert matrix[at["squeezenet1_1"], at["squeezenet1_1~resolution"]] == 0
    assert matrix[at["squeezenet1_1"], at["squeezenet1_1~head"]] == 0
    mtime = (out / "raw" / "squeezenet1_1~head.json").stat().st_mtime_ns
    grown = build(str(squeeze), out, augmentations=3, seed=5, variants=("head", "resolution", "dynamo"))
    assert len(grown["variants"]) == 3 and (out / "raw" / "squeezenet1_1~head.json").stat().st_mtime_ns == mtime
    assert [v["name"] for v in build(str(squeeze), out, augmentations=3, seed=5, variants=("dynamo",))["variants"]] \
        == ["squeezenet1_1~dynamo"]


def test_unknown_variant_is_a_usage_error():
    from hnn.zoo.variants import parse_variants

    assert parse_variants("dynamo,head") == ("head", "dynamo")
    with pytest.raises(UsageError, match="unknown variant.*blur"):
        parse_variants("head,blur")


def test_reusing_raw_ir_remerges_with_other_rules_without_converting_again(small_zoo, tmp_path, monkeypatch):
    import hnn.zoo.build as zoo

    root, listing, data = small_zoo
    monkeypatch.setattr(zoo, "_convert", lambda *a, **k: pytest.fail("converted a model it could reuse"))
    remerged = build(str(listing), tmp_path / "agnostic", rule_files=["agnostic"], augmentations=3, seed=5,
                     reuse_raw=root / "data")
    assert [m["digest"]["raw"] for m in remerged["models"]] == [m["digest"]["raw"] for m in data["models"]]
    assert remerged["rules"] == "agnostic"
    resnet = load_dataset_graph(tmp_path / "agnostic", remerged["models"][1]["files"]["merged"])
    assert "ConvAct" in {node.op for node in resnet.nodes}


def test_torchvision_lines_of_a_list_get_the_preset_input_shape(tmp_path):
    from hnn.zoo.presets import list_file_preset

    listing = tmp_path / "models.txt"
    listing.write_text("torchvision.models:inception_v3 inception\ntorchvision.models:resnet18 resnet r18\n")
    inception, resnet = list_file_preset(listing)
    assert inception.input_shape == [1, 3, 299, 299] and resnet.input_shape == [1, 3, 224, 224]
    assert resnet.name == "r18" and resnet.framework == "pytorch"


def test_failed_model_is_reported_and_skipped(tmp_path):
    listing = tmp_path / "models.txt"
    listing.write_text("torchvision.models:no_such_net broken\n")
    data = build(str(listing), tmp_path / "data", augmentations=1)
    assert data["models"] == [] and data["failed"][0]["name"] == "no_such_net"
    assert "cannot find the factory" in data["failed"][0]["reason"]


def test_corrupted_ir_file_error_names_it(small_zoo):
    root, _, data = small_zoo
    out = root / "data"
    victim = out / data["augmented"][0]["files"]["raw"]
    original = victim.read_text()
    victim.write_text(original[: len(original) // 2])
    try:
        with pytest.raises(InputError, match=victim.name):
            load_dataset_graph(out, data["augmented"][0]["files"]["raw"])
    finally:
        victim.write_text(original)


def test_augmentation_is_reproducible_and_counts_its_edits(small_zoo):
    root, _, data = small_zoo
    graph = load_dataset_graph(root / "data", "raw/resnet18.json")
    first, edits = delete_nodes(graph, seed="s")
    again, _ = delete_nodes(graph, seed="s")
    other, _ = delete_nodes(graph, seed="t")
    assert first == again and first != other
    removed_edges = len(graph.edges) - len(first.edges)
    assert edits == (len(graph.nodes) - len(first.nodes)) + removed_edges


def test_splits_hold_out_what_they_say():
    manifest = {
        "models": [{"name": f"m{i}", "family": f"f{i // 2}"} for i in range(10)],
        "augmented": [{"name": f"m{i}~aug{k}", "source": f"m{i}", "index": k} for i in range(10) for k in range(10)],
    }
    paper = split(manifest, "paper")
    assert len(paper["test"]) == 20 and all(name.endswith(("aug8", "aug9")) for name in paper["test"])
    models = split(manifest, "models")
    held = {name.split("~")[0] for name in models["test"]}
    assert held == {"m4", "m9"} and not any(name.split("~")[0] in held for name in models["train"])
    families = split(manifest, "families")
    assert {name.split("~")[0] for name in families["test"]} == {"m8", "m9"}  # family f4
    named = split(manifest, "families=f0,f3")
    assert {name.split("~")[0] for name in named["test"]} == {"m0", "m1", "m6", "m7"}
    assert not any(name.split("~")[0] in {"m0", "m1", "m6", "m7"} for name in named["train"])
    with pytest.raises(UsageError, match="no family f9"):
        split(manifest, "families=f0,f9")


def test_cli_zoo_build_bad_preset_is_one_line_usage_error(tmp_path):
    result = run_hnn("zoo", "build", "--preset", "nonsense", "-o", tmp_path / "d")
    assert result.returncode == 2 and "unknown preset 'nonsense'" in result.stderr
    result = run_hnn("zoo", "build", "--variants", "head,blur", "-o", tmp_path / "d")
    assert result.returncode == 2
    assert result.stderr.strip() == "hnn: unknown variant(s) blur; choose from head, resolution, dynamo"
    assert not (tmp_path / "d").exists()
    result = run_hnn("zoo", "ged", tmp_path)
    assert result.returncode == 1 and "manifest" in result.stderr


def test_eval_with_the_non_learned_baseline_writes_tables_and_plots(small_zoo, tmp_path):
    from hnn.evaluation.protocol import evaluate
    from hnn.evaluation.report import write_report

    root, _, _ = small_zoo
    results = evaluate(root / "data", split="models", bits_list=(16, 64), methods=("wl-simhash",),
                       kinds=("merged",))
    assert [(r["bits"], r["method"]) for r in results["summary"]] == [(16, "wl-simhash"), (64, "wl-simhash")]
    run = results["runs"][1]
    assert 0 <= run["family"]["precision"] <= 1 and run["source"]["queries"] > 0
    assert set(run["held_out_own_variants_in_top10"]) == {"resnet18"}  # the model held out of 2
    files = write_report(results, tmp_path / "report")
    assert {f.name for f in files} == {"results.json", "results.md", "metrics_vs_bits.png", "precision_recall.png",
                                       "hamming_histogram.png"}
    assert "wl-simhash" in (tmp_path / "report" / "results.md").read_text()


def test_training_on_a_small_zoo_is_deterministic_and_writes_a_loadable_checkpoint(small_zoo, tmp_path):
    pytest.importorskip("torch_geometric")
    from dataclasses import replace

    import numpy as np

    from hnn.hasher.checkpoint import load_checkpoint
    from hnn.hasher.runtime import hash_model
    from hnn.hasher.training.config import DEFAULT_CONFIG
    from hnn.hasher.training.loop import train

    root, _, _ = small_zoo
    config = replace(DEFAULT_CONFIG, bits=16, epochs=2, batch_size=4, validate_every=1, device="cpu")
    first = train(root / "data", config, output=tmp_path / "a.npz")
    second = train(root / "data", config, output=tmp_path / "b.npz")
    assert [h["total"] for h in first["history"]] == [h["total"] for h in second["history"]]
    a, b = load_checkpoint(tmp_path / "a.npz"), load_checkpoint(tmp_path / "b.npz")
    assert max(float(np.abs(a.arrays[k] - b.arrays[k]).max()) for k in a.arrays) == 0
    assert a.bits == 16 and a.families == ["resnet", "squeezenet"] and "thresholds" in a.meta
    # the default trains a source-model head too: one class per training model
    assert a.config["sources"] == 2 and all("source_class" in h for h in first["history"])
    result = hash_model(str(root / "data" / "raw" / "resnet18.json"), checkpoint=tmp_path / "a.npz")
    assert result.bits == 16 and len(result.hash) == 4


def test_a_checkpoint_trained_with_a_wl_branch_hashes_alike_with_numpy_and_torch(small_zoo, tmp_path):
    pytest.importorskip("torch_geometric")
    from dataclasses import replace

    import numpy as np

    from hnn.hasher.batching import to_tensors
    from hnn.hasher.checkpoint import load_checkpoint
    from hnn.hasher.runtime import embed, hash_graphs, to_hashable_graph
    from hnn.hasher.training.config import DEFAULT_CONFIG
    from hnn.hasher.training.loop import train
    from hnn.ingest.ir import Graph

    root, _, _ = small_zoo
    config = replace(DEFAULT_CONFIG, bits=16, epochs=2, batch_size=4, validate_every=1, device="cpu",
                     wl_bins=64, wl_init=10.0)
    train(root / "data", config, output=tmp_path / "wl.npz")
    checkpoint = load_checkpoint(tmp_path / "wl.npz")
    assert checkpoint.wl_bins == 64 and checkpoint.arrays["wl_layer.weight"].shape == (16, 64)
    graph = to_hashable_graph(Graph.from_json_file(root / "data" / "raw" / "resnet18.json"), checkpoint)
    torch_code = embed(checkpoint.torch_model(), [to_tensors(graph, checkpoint.vocabulary, checkpoint.size_features,
                                                             checkpoint.sizes, checkpoint.wl_bins)], "cpu")["code"]
    assert np.array_equal(hash_graphs([graph], checkpoint)[0], torch_code[0] > 0.5)


@pytest.mark.slow
def test_every_transformer_family_of_the_preset_builds_offline():
    """The smallest size of each family of the transformers preset converts (random weights, no download)."""
    pytest.importorskip("transformers")
    from hnn.ingest.pipeline import ingest
    from hnn.zoo.presets import resolve_preset
    from hnn.zoo.transformer_presets import FAMILIES, SIZES

    entries = resolve_preset("transformers")
    assert len(entries) == len(FAMILIES) * len(SIZES) and len({entry.name for entry in entries}) == len(entries)
    smallest = [entry for entry in entries if entry.name.endswith(f"-{SIZES[0][0]}x{SIZES[0][1]}")]
    for entry in smallest:
        graph = ingest(entry.constructor, framework=entry.framework)
        assert graph.meta.framework == "transformers" and len(graph.nodes) > 20, entry.name


def test_the_training_preset_holds_out_families_and_a_size_that_the_transformers_preset_has():
    """A checkpoint trained on it never sees what benchmarks/transformer_retrieval.py scores as unseen."""
    from hnn.zoo.presets import resolve_preset
    from hnn.zoo.transformer_presets import HELD_OUT_SIZES, held_out_families, model_name

    training = {entry.name: entry for entry in resolve_preset("training")}
    evaluation = {entry.name: entry for entry in resolve_preset("transformers")}
    held_families = set(held_out_families())
    held_sizes = {model_name(entry.family, layers, width) for entry in evaluation.values()
                  for layers, width, _ in HELD_OUT_SIZES}
    assert held_families and held_sizes <= set(evaluation)
    transformers_trained = [entry for entry in training.values() if entry.framework == "transformers"]
    assert transformers_trained and {entry.name for entry in transformers_trained} < set(evaluation)
    assert not any(entry.family in held_families or entry.name in held_sizes for entry in transformers_trained)
    assert any(entry.constructor.startswith("torchvision.models:") for entry in training.values())


def test_the_wide_preset_adds_timm_families_that_the_generalization_database_does_not_hold():
    """The shipped checkpoints train on `wide` (and transformers); benchmarks/generalization.py scores its timm
    models as unseen."""
    import importlib.util
    from pathlib import Path

    from hnn.zoo.presets import TRAINING_CNNS, list_file_preset, resolve_preset

    spec = importlib.util.spec_from_file_location(
        "generalization", Path(__file__).parents[1] / "benchmarks" / "generalization.py")
    generalization = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generalization)
    wide = resolve_preset("wide")
    torchvision = list_file_preset(TRAINING_CNNS)
    assert wide[:len(torchvision)] == torchvision and len({entry.name for entry in wide}) == len(wide)
    timm = wide[len(torchvision):]
    assert len(timm) >= 40 and all(entry.constructor.startswith("timm.models.") for entry in timm)
    architectures = {entry.constructor.split(":")[1] for entry in timm}
    assert not architectures & (set(generalization.TIMM_DATABASE) | set(generalization.TIMM_WIDTHS))
    torchvision_families = {entry.family for entry in torchvision}
    assert not ({entry.family for entry in timm} & set(generalization.TIMM_DATABASE.values())) - torchvision_families
    # the held-out suite: architectures and families none of the rest has
    held_out = set(generalization.TIMM_HELD_OUT) | set(generalization.TIMM_HELD_OUT_WIDTHS)
    assert not held_out & (architectures | set(generalization.TIMM_DATABASE) | set(generalization.TIMM_WIDTHS))
    assert not set(generalization.TIMM_HELD_OUT.values()) & ({entry.family for entry in wide}
                                                            | set(generalization.TIMM_DATABASE.values()))
    originals = set(generalization.TIMM_DATABASE) | set(generalization.TIMM_HELD_OUT)
    assert set(generalization.TIMM_HELD_OUT_WIDTHS.values()) <= originals
