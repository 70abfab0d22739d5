"""Keras applications exported by Keras itself under each backend, as queries against torchvision models.

    .venv/bin/python benchmarks/keras_backends.py --torchvision data/default --exports data/keras_exports \
        [--backends tensorflow,torch] [--models ResNet50,DenseNet121] [--bits 64] [--checkpoint C]

Keras 3 writes ONNX with ``model.export(path, format="onnx")`` through the backend it runs on:
tf2onnx under TensorFlow, torch.onnx under torch (Transposes and Casts around every convolution,
bias and inference BatchNorm written out as Add, Sub, Mul, Add). Each export runs in a child
process with ``KERAS_BACKEND`` set (one framework per process); the files are kept under
``--exports/<backend>/`` and reused. Each file is hashed as ``hnn hash`` hashes it (the untrusted
worker, no onnxsim) and scored as benchmarks/cross_framework.py scores: family top-1 by the code
(expected, strict) and by the index ranking, per backend. The last lines say which models get
the same topology digest from every backend.

Default models: DEFAULT_MODELS below, of families the torchvision database also has. A backend
that does not import (JAX where it is not installed) is reported and skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from cross_framework import originals, score_family_retrieval  # beside this script

# Builds one application without weights, calls it once (export needs a built model) and exports it.
EXPORT_CHILD = """
import sys
import numpy as np
import keras
name, path = sys.argv[1], sys.argv[2]
kwargs = {"input_shape": (224, 224, 3)} if name.startswith("MobileNetV3") else {}
model = getattr(keras.applications, name)(weights=None, **kwargs)
model(np.zeros((1,) + tuple(model.input_shape[1:]), dtype="float32"))
model.export(path, format="onnx", verbose=False)
"""


def export(name: str, backend: str, path: Path, timeout: float, retry: bool) -> str | None:
    """Write ``path`` unless it exists; None on success, else the last line of the child's error.

    A failure is kept beside the file (``NAME.failed``) and reported again without a new try,
    unless ``retry``: an export that failed (Keras's own exporter, or memory) fails the same way.
    """
    failed = path.with_suffix(".failed")
    if path.exists():
        return None
    if failed.exists() and not retry:
        return failed.read_text().strip() + " (an earlier try; --retry to try again)"
    error = _run_export(name, backend, path, timeout)
    if error:
        failed.write_text(error + "\n")
    else:
        failed.unlink(missing_ok=True)
    return error


def _run_export(name: str, backend: str, path: Path, timeout: float) -> str | None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".partial.onnx")
    env = {**os.environ, "KERAS_BACKEND": backend, "CUDA_VISIBLE_DEVICES": ""}
    try:
        result = subprocess.run([sys.executable, "-c", EXPORT_CHILD, name, str(partial)], env=env,
                                capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"export took over {timeout:.0f} s"
    if result.returncode != 0 or not partial.exists():
        if result.returncode < 0:  # killed: the kernel's OOM killer, mostly (VGG16 through tf2onnx)
            return f"killed by signal {-result.returncode}"
        errors = [line for line in result.stderr.splitlines() if "Error" in line or "error" in line]
        lines = errors or [line for line in result.stderr.splitlines() if line.strip()]
        return lines[-1].strip() if lines else f"exit code {result.returncode}"
    partial.replace(path)
    return None


# The default queries: up to three applications per family that torchvision also has, the smaller
# ones (an export of the largest takes minutes); ``--models all`` takes every one.
DEFAULT_MODELS = (
    "ConvNeXtTiny", "ConvNeXtSmall", "DenseNet121", "DenseNet169", "DenseNet201", "EfficientNetB0",
    "EfficientNetB1", "EfficientNetV2B0", "InceptionV3", "MobileNetV2", "MobileNetV3Small", "MobileNetV3Large",
    "ResNet50", "ResNet101", "ResNet50V2", "VGG16",
)
# Lists the applications in a child: importing Keras here would import a framework into this process.
LIST_CHILD = """
import json
from hnn.zoo.presets import keras_preset
print(json.dumps([[entry.name.removeprefix("keras_"), entry.family] for entry in keras_preset()]))
"""


def applications(backend: str) -> list[tuple[str, str]]:
    """(name, family) of every Keras application hnn's Keras preset knows."""
    env = {**os.environ, "KERAS_BACKEND": backend, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, "-c", LIST_CHILD], env=env, capture_output=True, text=True, check=True)
    return [tuple(pair) for pair in json.loads(result.stdout.strip().splitlines()[-1])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torchvision", type=Path, required=True, help="zoo of the torchvision database")
    parser.add_argument("--exports", type=Path, required=True, help="folder for the exported ONNX files")
    parser.add_argument("--backends", default="tensorflow,torch")
    parser.add_argument("--models", default=None,
                        help="comma-separated application names, or all (default: DEFAULT_MODELS)")
    parser.add_argument("--bits", type=int, default=None)
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per export")
    parser.add_argument("--retry", action="store_true", help="try again the exports that failed before")
    args = parser.parse_args()

    from hnn.errors import HnnError
    from hnn.hasher.runtime import load
    from hnn.hasher.structure import structure_of
    from hnn.ingest.pipeline import ingest_safely

    try:
        checkpoint, database = load(args.checkpoint, args.bits), originals(args.torchvision)
    except HnnError as exc:
        raise SystemExit(f"keras_backends: {exc}") from None
    families = {family for _, family, _ in database}
    wanted = DEFAULT_MODELS if args.models is None else args.models.split(",")
    known = applications(args.backends.split(",")[0])
    unknown = sorted(set(wanted) - {name for name, _ in known} - {"all"})
    if unknown:
        raise SystemExit(f"keras_backends: not a Keras application of the preset: {', '.join(unknown)}")
    models = [(name, family) for name, family in known
              if family in families and (args.models == "all" or name in wanted)]
    digests: dict[str, dict[str, str]] = {}
    for backend in args.backends.split(","):
        queries, started = [], time.monotonic()
        for number, (name, family) in enumerate(models, 1):
            path = args.exports / backend / f"{name}.onnx"
            error = export(name, backend, path, args.timeout, args.retry)
            if error:
                print(f"[{backend} {number}/{len(models)}] {name}: not exported: {error}", flush=True)
                if "No module named" in error:
                    break  # the backend is not installed
                continue
            try:
                graph = ingest_safely(str(path), simplify=False)
            except HnnError as exc:  # a file hnn refuses is reported, and the others still scored
                print(f"[{backend} {number}/{len(models)}] {name}: not converted: {exc}", flush=True)
                continue
            queries.append((f"{name}[{backend}]", family, graph))
            digests.setdefault(name, {})[backend] = structure_of(graph).topology
            print(f"[{backend} {number}/{len(models)}] {name}: {len(graph.nodes)} nodes "
                  f"({time.monotonic() - started:.0f} s)", flush=True)
        if not queries:
            print(f"{backend}: no exports to score")
            continue
        figures = score_family_retrieval(queries, database, checkpoint)
        print(f"{backend}: top-1 family accuracy of Keras model.export queries vs torchvision database "
              f"({checkpoint.bits} bits, {len(queries)} queries): expected {figures['expected']:.2f}, "
              f"strict {figures['strict']:.2f}, index ranking {figures['index']:.2f}", flush=True)
    every = [name for name, seen in digests.items() if len(seen) == len(args.backends.split(","))]
    same = [name for name in every if len(set(digests[name].values())) == 1]
    print(f"one topology digest from every backend: {len(same)} of {len(every)} models exported by all")
    for name in sorted(set(every) - set(same)):
        print(f"  differs: {name}")


if __name__ == "__main__":
    main()
