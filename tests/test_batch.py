"""`hnn index add-store`: a whole store hashed on a process pool or Ray, one writer, resumable by content digest."""

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx_builders as build
import pytest
from conftest import make_bad_input_corpus, run_hnn
from onnx import helper, numpy_helper

from hnn.batch.engines import LocalEngine, RayEngine, make_engine
from hnn.batch.store import Claims, open_store, walk
from hnn.batch.tasks import KnownDigests, TaskContext, hash_task
from hnn.errors import InputError, UsageError
from hnn.index.contents import content_digest
from hnn.index.store import Index


def mlp(seed: int, widths: list[int]):
    """MatMul-Relu layers of these widths with random weights of ``seed``: one architecture per
    widths list, one entry per seed (the weight marks tell the seeds apart)."""
    rng = np.random.default_rng(seed)
    nodes, weights, tensor = [], [], "x"
    for layer, (width_in, width_out) in enumerate(itertools.pairwise(widths)):
        weights.append(numpy_helper.from_array(rng.standard_normal((width_in, width_out)).astype(np.float32),
                                               f"w{layer}"))
        nodes += [helper.make_node("MatMul", [tensor, f"w{layer}"], [f"m{layer}"]),
                  helper.make_node("Relu", [f"m{layer}"], [f"r{layer}"])]
        tensor = f"r{layer}"
    nodes[-1].output[0] = "y"
    return build.model(nodes, [("x", [1, widths[0]])], ["y"], weights)


def conv(seed: int, channels: int):
    rng = np.random.default_rng(seed)
    weights = [numpy_helper.from_array(rng.standard_normal((channels, 3, 3, 3)).astype(np.float32), "k"),
               numpy_helper.from_array(rng.standard_normal(channels).astype(np.float32), "b")]
    nodes = [helper.make_node("Conv", ["x", "k", "b"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["y"])]
    return build.model(nodes, [("x", [1, 3, 8, 8])], ["y"], weights)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    return folder, make_bad_input_corpus(folder, framework_cases=False)


GOOD = {"a.onnx": mlp(0, [8, 16, 4]), "b.onnx": mlp(1, [8, 16, 4]), "sub/c.onnx": mlp(2, [8, 32, 16, 4]),
        "sub/deeper/d.onnx": conv(3, 4), "sub/deeper/e.onnx": conv(4, 8)}
COPY = "sub/copy_of_a.onnx"  # the bytes of a.onnx under another name


def make_store(root: Path, corpus) -> dict:
    """A store of the good models, a copy of one, bad files (the reason each must fail with), and
    files that are not models: returns what a run must find."""
    folder, cases = corpus
    for name, model in GOOD.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        build.save(model, root / name)
    shutil.copy(root / "a.onnx", root / COPY)
    whole = (root / "b.onnx").read_bytes()
    (root / "cut.onnx").write_bytes(whole[:len(whole) // 2])  # a truncated model
    bad = {"cut.onnx": "not a valid ONNX model"}
    for case, where in (("random_bytes", "random_bytes.onnx"), ("cycle", "sub/cycle.onnx"),
                        ("pickle_canary", "sub/deeper/pickle_canary.pt")):
        shutil.copy(cases[case][0], root / where)
        bad[where] = cases[case][1]
    (root / "notes.txt").write_text("not a model")
    (root / "sub" / "weights.bin").write_bytes(b"\0" * 64)
    outside = root.parent / "outside.onnx"  # a model outside the store, linked from inside
    build.save(mlp(9, [8, 8]), outside)
    os.symlink(outside, root / "link_out.onnx")
    return {"good": set(GOOD), "bad": bad, "ignored": 3, "canary": folder / "CANARY_CREATED"}


def add_store(index, store, *options):
    result = run_hnn("index", "add-store", index, store, "--json", *options)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines and "summary" in lines[-1], result.stdout + result.stderr
    return result, lines[:-1], lines[-1]


def relative(result: dict, root: Path) -> str:
    return Path(result["model"]).relative_to(root).as_posix()


def check_first_run(tmp_path, corpus, *engine):
    root = tmp_path / "store"
    root.mkdir()
    expected = make_store(root, corpus)
    index = tmp_path / "models.db"
    result, rows, final = add_store(index, root, *engine)
    assert result.returncode == 1, result.stderr
    by_model = {relative(row, root): row for row in rows}
    assert len(by_model) == len(rows) == len(GOOD) + 1 + len(expected["bad"])  # every model once, nothing else
    for name, reason in expected["bad"].items():
        assert by_model[name]["status"] == "failed" and reason in by_model[name]["reason"], by_model[name]
    twins = [by_model["a.onnx"], by_model[COPY]]  # one is added; the other finds its content indexed
    assert sorted(row["status"] for row in twins) == ["added", "skipped"]
    assert twins[0]["id"] == twins[1]["id"]
    assert all(by_model[name]["status"] == "added" for name in GOOD if name != "a.onnx")
    with Index(index) as opened:
        entries = opened.entries()
        names = sorted(entry.name for entry in entries)
        assert len(entries) == len(GOOD) and len({entry.id for entry in entries}) == len(GOOD)
        assert names in (sorted(GOOD), sorted({*GOOD} - {"a.onnx"} | {COPY}))
        assert content_digest(root / COPY) in opened.content_digests()
    summary = final["summary"]
    assert {key: summary[key] for key in ("models", "added", "duplicate", "skipped", "failed", "ignored")} == {
        "models": len(rows), "added": len(GOOD), "duplicate": 0, "skipped": 1, "failed": len(expected["bad"]),
        "ignored": expected["ignored"]}
    assert sorted(Path(failure["model"]).relative_to(root).as_posix() for failure in final["failures"]) == sorted(
        expected["bad"])
    assert not expected["canary"].exists()
    return root, index, names, expected


@pytest.mark.slow
def test_a_store_on_a_local_ray_instance_is_indexed_once_and_a_rerun_adds_nothing(tmp_path, corpus):
    pytest.importorskip("ray")
    engine = ("--engine", "ray", "--workers", "2")
    root, index, names, expected = check_first_run(tmp_path, corpus, *engine)
    again, rows, final = add_store(index, root, *engine)  # a rerun: nothing converted again but the failures
    assert again.returncode == 1
    statuses = {relative(row, root): row["status"] for row in rows}
    assert statuses == {**dict.fromkeys([*GOOD, COPY], "skipped"), **dict.fromkeys(expected["bad"], "failed")}
    assert final["summary"]["added"] == 0 and final["summary"]["skipped"] == len(GOOD) + 1
    with Index(index) as opened:
        assert sorted(entry.name for entry in opened.entries()) == names


@pytest.mark.slow
def test_a_store_on_the_local_pool_is_indexed_once_and_the_text_output_lists_the_failures(tmp_path, corpus):
    root, index, names, _ = check_first_run(tmp_path, corpus, "--engine", "local", "--workers", "2")
    text = run_hnn("index", "add-store", index, root, "--workers", "2")  # a rerun (the default engine: local)
    assert text.returncode == 1
    with Index(index) as opened:
        assert sorted(entry.name for entry in opened.entries()) == names  # nothing added
    lines = text.stdout.splitlines()
    assert sorted(line.split("  ")[1].split(":")[0] for line in lines[:-1]) == sorted(
        str(root / name) for name in [*GOOD, COPY])
    assert all(line.startswith("skipped  ") and line.endswith("same content") for line in lines[:-1])
    assert lines[-1].startswith(f"{len(GOOD) + 5} models: 0 added, 0 duplicate, {len(GOOD) + 1} skipped, 4 failed; "
                                "3 other files ignored (local, 2 workers")
    errors = text.stderr.splitlines()
    listed = errors[errors.index("hnn: 4 of 10 models failed:") + 1:]
    assert len(listed) == 4 and all(line.startswith(f"  {root}/") for line in listed)
    assert any("cycle.onnx" in line and "cycle" in line.split("cycle.onnx", 1)[1] for line in listed)


@pytest.mark.slow
def test_a_manifest_lists_paths_and_json_lines_relative_to_its_folder(tmp_path):
    models = tmp_path / "data"
    (models / "deep").mkdir(parents=True)
    build.save(mlp(20, [4, 8, 2]), models / "one.onnx")
    build.save(mlp(21, [4, 8, 2]), models / "deep" / "two.onnx")
    elsewhere = tmp_path / "elsewhere.onnx"
    build.save(conv(22, 2), elsewhere)
    manifest = models / "list.txt"
    manifest.write_text("\n".join([
        "# the models of the nightly crawl", "", "one.onnx", "  deep/two.onnx  ",
        json.dumps({"path": str(elsewhere), "label": "vision"}), "missing.onnx", "one.onnx"]) + "\n")
    index = tmp_path / "models.db"
    result, rows, final = add_store(index, manifest, "--engine", "sequential", "--label", "crawl")
    assert result.returncode == 1, result.stderr
    assert [(Path(row["model"]).name, row["status"]) for row in rows] == [
        ("one.onnx", "added"), ("two.onnx", "added"), ("elsewhere.onnx", "added"), ("missing.onnx", "failed"),
        ("one.onnx", "skipped")]  # sequential: in the manifest's order
    assert "missing.onnx" in rows[3]["reason"]
    with Index(index) as opened:
        assert [(entry.name, entry.label) for entry in opened.entries()] == [
            ("one.onnx", "crawl"), ("deep/two.onnx", "crawl"), ("elsewhere.onnx", "vision")]
    assert final["summary"]["engine"] == "sequential" and final["summary"]["models"] == 5
    assert final["failures"] == [{"model": rows[3]["model"], "reason": rows[3]["reason"]}]
    manifest.write_text("one.onnx\n")  # a manifest without failures: exit 0
    again, rows, _ = add_store(index, manifest, "--engine", "local", "--workers", "1")
    assert again.returncode == 0 and [row["status"] for row in rows] == ["skipped"]


def test_a_malformed_manifest_line_is_a_usage_error_naming_the_line(tmp_path):
    manifest = tmp_path / "list.txt"
    for line, message in (('{"label": "x"}', 'needs "path"'), ("{not json", "not a JSON object"),
                          ('{"path": "a.onnx", "owner": "x"}', "unknown key 'owner'")):
        manifest.write_text(f"# models\n{line}\n")
        with pytest.raises(UsageError, match=f"line 2: .*{message}"):
            open_store(manifest)
    manifest.write_bytes(b"\xff\xfe")
    with pytest.raises(UsageError, match="UTF-8"):
        open_store(manifest)
    with pytest.raises(InputError, match="no such store"):
        open_store(tmp_path / "nothing")
    build.save(mlp(0, [2, 2]), tmp_path / "m.onnx")
    with pytest.raises(UsageError, match="is a model, not a store"):
        open_store(tmp_path / "m.onnx")


def test_the_walk_is_sorted_keeps_claimed_folders_whole_and_follows_no_link(tmp_path):
    root = tmp_path / "store"
    (root / "b" / "saved").mkdir(parents=True)
    (root / "b" / "saved" / "saved_model.pb").write_bytes(b"")  # a SavedModel folder: claimed by TensorFlow's front-end
    build.save(mlp(0, [2, 2]), root / "b" / "saved" / "inside.onnx")  # part of that model, not a model of its own
    build.save(mlp(1, [2, 2]), root / "b" / "z.onnx")
    build.save(mlp(2, [2, 2]), root / "a.onnx")
    (root / "a.keras").write_bytes(b"")
    (root / "notes.md").write_text("")
    outside = tmp_path / "outside"
    outside.mkdir()
    build.save(mlp(3, [2, 2]), outside / "secret.onnx")
    os.symlink(outside, root / "linked_folder")
    os.symlink(outside / "secret.onnx", root / "linked.onnx")
    os.mkfifo(root / "pipe.onnx")
    found = walk(root, Claims())
    assert [item.name for item in found.items] == ["a.keras", "a.onnx", "b/saved", "b/z.onnx"]
    assert found.ignored == 4  # notes.md, the two links, the FIFO
    only_onnx = walk(root, Claims("onnx"))  # --framework onnx: the others are ignored, the SavedModel still whole
    assert [item.name for item in only_onnx.items] == ["a.onnx", "b/z.onnx"] and only_onnx.ignored == 6
    with pytest.raises(UsageError, match="unknown framework"):
        Claims("caffe")


def test_known_digests_hold_exactly_the_digests_given(tmp_path):
    files = []
    for number in range(50):
        path = tmp_path / f"f{number}"
        path.write_bytes(bytes([number]) * number)
        files.append(content_digest(path))
    known = KnownDigests(files[:40] + ["sha256:nothex", "md5:00"])
    assert len(known) == 40
    assert all(digest in known for digest in files[:40]) and not any(digest in known for digest in files[40:])
    assert "sha256:" + "00" * 32 not in KnownDigests() and "junk" not in known


def crash_on_a_marked_file(model: str, context: TaskContext):
    """A task whose process dies (SIGKILL, as the out-of-memory killer kills) on files named crash*."""
    if Path(model).name.startswith("crash"):
        os.kill(os.getpid(), signal.SIGKILL)
    return hash_task(model, context)


def crash_store(tmp_path) -> list[str]:
    models = []
    for number in range(5):
        models.append(str(build.save(mlp(30 + number, [4, 4]), tmp_path / f"m{number}.onnx")))
    models.insert(2, str(build.save(mlp(40, [4, 4]), tmp_path / "crash.onnx")))
    return models


def outcomes_of(engine, models):
    from hnn.ingest.worker import Limits

    engine.start(TaskContext(KnownDigests(), ingest={"limits": Limits(timeout=60)}))
    try:
        return dict(engine.run(crash_on_a_marked_file, enumerate(models)))
    finally:
        engine.close()


@pytest.mark.slow
def test_a_pool_worker_that_dies_fails_only_its_own_model(tmp_path, monkeypatch):
    # The pool's spawned processes import the task by its module's name (tests.test_batch, under
    # pytest's importlib mode): the repository's root on sys.path, which they inherit, finds it.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent))
    models = crash_store(tmp_path)
    outcomes = outcomes_of(LocalEngine(workers=2, window=4), models)
    assert sorted(outcomes) == list(range(len(models)))
    failed = [Path(models[key]).name for key, outcome in outcomes.items() if outcome.failed]
    assert failed == ["crash.onnx"] and "worker process died" in outcomes[2].reason
    assert all(outcome.hashed is not None for key, outcome in outcomes.items() if key != 2)


@pytest.mark.slow
def test_a_ray_worker_that_dies_fails_only_its_own_model(tmp_path):
    ray = pytest.importorskip("ray")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the task is this test module's
    models = crash_store(tmp_path)
    outcomes = outcomes_of(RayEngine(workers=2), models)
    failed = [Path(models[key]).name for key, outcome in outcomes.items() if outcome.failed]
    assert failed == ["crash.onnx"] and "its Ray task failed" in outcomes[2].reason
    assert "\n" not in outcomes[2].reason
    assert all(outcome.hashed is not None for key, outcome in outcomes.items() if key != 2)


def test_engine_options_are_checked_and_a_missing_ray_is_one_line(tmp_path):
    with pytest.raises(UsageError, match="needs --engine ray"):
        make_engine("local", address="auto")
    with pytest.raises(UsageError, match="choose local, ray, sequential"):
        make_engine("dask")
    build.save(mlp(0, [2, 2]), tmp_path / "m.onnx")
    snippet = ("import sys; sys.modules['ray'] = None\nfrom hnn.cli import main\n"
               f"main(['index', 'add-store', {str(tmp_path / 'i.db')!r}, {str(tmp_path)!r}, '--engine', 'ray'])")
    result = subprocess.run([sys.executable, "-c", snippet], check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr == "hnn: --engine ray needs Ray: pip install 'hnn[ray]'\n"
    assert not (tmp_path / "i.db").exists()


def test_help_does_not_import_ray():
    snippet = ("import sys\nfrom hnn.cli import main\nfor args in (['--help'], ['index', 'add-store', '--help']):\n"
               "    try:\n        main(args)\n    except SystemExit:\n        pass\nprint('RAY', 'ray' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", snippet], check=False, capture_output=True, text=True, timeout=120)
    assert "add-store" in result.stdout and result.stdout.splitlines()[-1] == "RAY False", result.stderr
