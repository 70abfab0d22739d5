"""Provenance across the Keras and TensorFlow paths: one Keras model, saved as `.keras` and exported as a
SavedModel, fine-tuned, and an independent model of the same architecture, each through `hnn ingest`.

    .venv/bin/python benchmarks/provenance_keras.py [--arch MobileNetV2] [--epochs 3]

The models are built in a child process of Keras alone (TensorFlow and torch in one process can crash);
each file is ingested by the CLI (the Keras front-end and the SavedModel front-end, each in hnn's
worker), and the fingerprints in the IR files are compared with hnn.provenance.evidence.
Prints the evidence of each pair against the `.keras` original.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

BUILD = """
import sys
import keras, numpy as np
arch, epochs, folder = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def model(seed):
    keras.utils.set_random_seed(seed)
    return getattr(keras.applications, arch)(weights=None, input_shape=(32, 32, 3), classes=10)
original = model(0)
original.save(f"{folder}/original.keras")
original.export(f"{folder}/original_savedmodel", verbose=False)
tuned = model(0)
rng = np.random.default_rng(0)
images = rng.standard_normal((64, 32, 32, 3)).astype("float32")
tuned.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy")
tuned.fit(images, rng.integers(0, 10, 64), epochs=epochs, batch_size=8, verbose=0)
tuned.export(f"{folder}/fine_tuned_savedmodel", verbose=False)
model(1).save(f"{folder}/independent.keras")
"""
MODELS = ("original.keras", "original_savedmodel", "fine_tuned_savedmodel", "independent.keras")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="MobileNetV2")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    from hnn.ingest.ir import Graph
    from hnn.provenance.evidence import compare

    hnn = str(Path(sys.executable).with_name("hnn"))
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, "-c", BUILD, args.arch, str(args.epochs), folder], check=True,
                       capture_output=True)
        prints = {}
        for name in MODELS:
            ir = Path(folder) / f"{name}.json"
            subprocess.run([hnn, "ingest", str(Path(folder) / name), "-o", str(ir)], check=True, capture_output=True)
            prints[name] = Graph.from_json_file(ir).meta.provenance
    print(f"{args.arch}: each against original.keras")
    print(f"{'model':>24} {'derived':>8} {'z':>8} {'positional z':>13} {'anchored z':>11} {'layers':>7}")
    for name in MODELS[1:]:
        said = compare(prints["original.keras"], prints[name])
        print(f"{name:>24} {said.derived!s:>8} {said.z:>8.1f} {said.positional.z:>13.1f} {said.anchored.z:>11.1f} "
              f"{said.positional.layers_compared:>7}")


if __name__ == "__main__":
    main()
