"""Wall time of ingestion: ONNX-to-IR per model, the weight marks within it, and each front-end on resnet18.

    .venv/bin/python benchmarks/ingest.py [--repeats 3]

Prints medians over --repeats runs (after one warm-up run that pays for imports).
ONNX-to-IR is timed on ONNX files exported once up front, with and without onnxsim; the
weight marks (hnn.ingest.weights, part of ONNX-to-IR) alone on the same models and on vgg16,
the largest weights of the paper's set.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from timing import median_seconds  # benchmarks/timing.py, beside this script

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from hnn.plugins.frontends.tf_import import import_keras

    keras = import_keras()
    import numpy as np
    import onnx
    import torchvision

    from hnn.ingest.pipeline import ingest, onnx_to_ir
    from hnn.ingest.weights import weight_marks
    from hnn.plugins.frontends.pytorch_frontend import export_module

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("resnet18", "resnet50", "mobilenet_v2"):
            path = Path(tmp) / f"{name}.onnx"
            onnx.save(export_module(getattr(torchvision.models, name)(), [1, 3, 224, 224]), str(path))
            model = onnx.load(str(path))
            nodes = len(onnx_to_ir(model).nodes)
            for simplify in (True, False):
                seconds = median_seconds(lambda: onnx_to_ir(onnx.load(str(path)), simplify=simplify), args.repeats)
                rows.append((f"onnx-to-ir {name} ({nodes} IR nodes)", "onnxsim" if simplify else "no simplify",
                             seconds))
        for name in ("resnet18", "resnet50", "mobilenet_v2", "vgg16"):
            module = getattr(torchvision.models, name)()
            model = export_module(module, [1, 3, 224, 224])
            values = sum(parameter.numel() for parameter in module.parameters())
            rows.append((f"weight marks {name}", f"{values / 1e6:.1f}M parameters",
                         median_seconds(lambda: weight_marks(model), args.repeats)))
            del module, model

        rows.append(("front-end pytorch resnet18", "torchscript exporter",
                     median_seconds(lambda: ingest("torchvision.models:resnet18"), args.repeats)))
        rows.append(("front-end pytorch resnet18", "dynamo exporter",
                     median_seconds(lambda: ingest("torchvision.models:resnet18", exporter="dynamo"), args.repeats)))
        rows.append(("front-end onnx resnet18", "file",
                     median_seconds(lambda: ingest(str(Path(tmp) / "resnet18.onnx")), args.repeats)))

        keras_resnet = keras.applications.ResNet50(weights=None)
        keras_resnet(np.zeros((1, 224, 224, 3), "float32"))
        keras_path = Path(tmp) / "resnet50.keras"
        keras_resnet.save(keras_path)
        rows.append(("front-end keras ResNet50", ".keras file",
                     median_seconds(lambda: ingest(str(keras_path)), args.repeats)))
        saved = Path(tmp) / "resnet50_saved"
        keras_resnet.export(str(saved), format="tf_saved_model", verbose=False)
        rows.append(("front-end tensorflow ResNet50", "SavedModel (tf2onnx subprocess)",
                     median_seconds(lambda: ingest(str(saved)), max(1, args.repeats // 2))))
        del torchvision

    print(f"{'what':<44} {'how':<32} median s")
    for what, how, seconds in rows:
        print(f"{what:<44} {how:<32} {seconds:8.3f}")


if __name__ == "__main__":
    main()
