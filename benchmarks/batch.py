"""Batch hashing of a model store (`hnn index add-store`): the sequential loop, the local process pool
and Ray, on the same store, each into a fresh index, in one run.

    .venv/bin/python benchmarks/batch.py [--models 200] [--workers N] [--engines sequential,local,ray] [--json]

The store is ``--models`` small ONNX models generated here (MLPs of three
depths and two small convolutional nets, each with its own random weights, so
every one is a distinct entry), in a temporary folder. Each engine runs
hnn.batch.run.add_store, what the command runs: content digest, conversion in
hnn's sandboxed worker (a fresh process forked from each worker's warm fork server, the default
limits), hash, one writer. Prints
the wall time of each, models/s, the speed-up over sequential, and what Ray adds:
its start-up (``ray.init`` of a local instance; and init + shutdown measured
alone, with no task) and its per-model overhead over the local pool,
``(Ray wall - local wall) / models``, with and without that fixed cost. The load
average before and after is printed too: on a shared machine it says how much of
the CPUs the run had.
A last run of the first engine on its own index checks resuming: every model skipped.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ARCHITECTURES = ("mlp2", "mlp3", "mlp4", "conv1", "conv2")


def _model(nodes, inputs, weights) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "bench", [helper.make_tensor_value_info("x", TensorProto.FLOAT, inputs)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=weights)
    built = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    built.ir_version = 8
    return built


def make_model(architecture: str, seed: int) -> onnx.ModelProto:
    """One small model of ``architecture`` with random weights of ``seed``."""
    rng = np.random.default_rng(seed)

    def tensor(name, *shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    if architecture.startswith("mlp"):
        widths = [32, *[64] * (int(architecture[3:]) - 1), 10]
        nodes, weights, current = [], [], "x"
        for layer, (width_in, width_out) in enumerate(itertools.pairwise(widths)):
            weights += [tensor(f"w{layer}", width_in, width_out), tensor(f"b{layer}", width_out)]
            nodes += [helper.make_node("MatMul", [current, f"w{layer}"], [f"m{layer}"]),
                      helper.make_node("Add", [f"m{layer}", f"b{layer}"], [f"a{layer}"]),
                      helper.make_node("Relu", [f"a{layer}"], [f"r{layer}"])]
            current = f"r{layer}"
        nodes[-1].output[0] = "y"
        return _model(nodes, [1, 32], weights)
    blocks = int(architecture[4:])
    nodes, weights, current, channels = [], [], "x", 3
    for block in range(blocks):
        weights += [tensor(f"k{block}", 16, channels, 3, 3), tensor(f"c{block}", 16)]
        nodes += [helper.make_node("Conv", [current, f"k{block}", f"c{block}"], [f"v{block}"], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"v{block}"], [f"r{block}"])]
        current, channels = f"r{block}", 16
    weights.append(tensor("fc", 16, 10))
    nodes += [helper.make_node("GlobalAveragePool", [current], ["g"]),
              helper.make_node("Flatten", ["g"], ["f"]), helper.make_node("MatMul", ["f", "fc"], ["y"])]
    return _model(nodes, [1, 3, 16, 16], weights)


def make_store(folder: Path, count: int) -> None:
    for number in range(count):
        architecture = ARCHITECTURES[number % len(ARCHITECTURES)]
        sub = folder / architecture
        sub.mkdir(parents=True, exist_ok=True)
        onnx.save(make_model(architecture, number), str(sub / f"{architecture}_{number:04d}.onnx"))


def run(engine: str, index: Path, store: Path, workers: int) -> dict:
    from hnn.batch.run import add_store

    start = time.perf_counter()
    done = add_store(index, store, engine=engine, workers=None if engine == "sequential" else workers)
    wall = time.perf_counter() - start
    summary = done["summary"]
    assert not done["failures"], done["failures"][:3]
    return {"engine": engine, "workers": summary["workers"], "wall_s": round(wall, 2),
            "startup_s": round(summary["startup_seconds"], 2), "added": summary["added"],
            "skipped": summary["skipped"], "models_per_s": round(summary["models"] / wall, 2)}


def fixed_cost(engine: str, workers: int) -> float:
    """Seconds to start an engine and stop it with nothing to run (Ray: ``ray.init`` of a local
    instance and ``ray.shutdown``; the pool: its processes start only with the first task)."""
    from hnn.batch.engines import make_engine
    from hnn.batch.tasks import KnownDigests, TaskContext, hash_task

    start = time.perf_counter()
    runner = make_engine(engine, workers)
    runner.start(TaskContext(KnownDigests()))
    list(runner.run(hash_task, []))
    runner.close()
    return round(time.perf_counter() - start, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--engines", default="sequential,local,ray")
    parser.add_argument("--json", action="store_true", help="Print the rows as JSON.")
    args = parser.parse_args()
    engines = args.engines.split(",")

    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "store"
        make_store(store, args.models)
        load_before = os.getloadavg()[0]
        rows = [run(engine, Path(folder) / f"{engine}.db", store, args.workers) for engine in engines]
        load_after = os.getloadavg()[0]
        for row in rows:
            assert row["added"] == args.models, row  # every model a distinct entry
        resumed = run(engines[0], Path(folder) / f"{engines[0]}.db", store, args.workers)
        assert resumed["added"] == 0 and resumed["skipped"] == args.models, resumed

    by_engine = {row["engine"]: row for row in rows}
    base = by_engine.get("sequential")
    for row in rows:
        row["speedup"] = round(base["wall_s"] / row["wall_s"], 2) if base else None
    extra = {"models": args.models, "cpus": os.cpu_count(), "resume_wall_s": resumed["wall_s"],
             "load_average_before": round(load_before, 2), "load_average_after": round(load_after, 2)}
    if "ray" in by_engine and "local" in by_engine:
        ray, local = by_engine["ray"], by_engine["local"]
        extra["ray_start_and_stop_s"] = fixed_cost("ray", args.workers)
        extra["ray_overhead_ms_per_model"] = round(1000 * (ray["wall_s"] - local["wall_s"]) / args.models, 1)
        extra["ray_overhead_ms_per_model_without_start_and_stop"] = round(
            1000 * (ray["wall_s"] - extra["ray_start_and_stop_s"] - local["wall_s"]) / args.models, 1)
    if args.json:
        print(json.dumps({"rows": rows, **extra}))
        return
    print(f"{args.models} models, {os.cpu_count()} CPUs, load average {extra['load_average_before']} before, "
          f"{extra['load_average_after']} after")
    print(f"{'engine':<11} {'workers':>7} {'wall s':>8} {'start-up s':>10} {'models/s':>9} {'speed-up':>9}")
    for row in rows:
        speedup = f"{row['speedup']:.2f}x" if row["speedup"] else "-"
        print(f"{row['engine']:<11} {row['workers']:>7} {row['wall_s']:>8.1f} {row['startup_s']:>10.2f} "
              f"{row['models_per_s']:>9.2f} {speedup:>9}")
    print(f"resume ({engines[0]}, every model skipped): {resumed['wall_s']:.1f} s")
    if "ray_start_and_stop_s" in extra:
        print(f"Ray: ray.init {by_engine['ray']['startup_s']:.2f} s, init + shutdown with no task "
              f"{extra['ray_start_and_stop_s']:.2f} s; over the local pool {extra['ray_overhead_ms_per_model']:+.1f} "
              f"ms/model, {extra['ray_overhead_ms_per_model_without_start_and_stop']:+.1f} ms/model without "
              f"init and shutdown")


if __name__ == "__main__":
    main()
