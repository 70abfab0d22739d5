"""Whether a change moved what hnn computes: the IR digest, weight marks and fingerprint of fixed models.

    .venv/bin/python benchmarks/hash_stability.py --cache DIR --out before.json      # at the old commit
    .venv/bin/python benchmarks/hash_stability.py --cache DIR --compare before.json  # at the new one

Torchvision models (seeded random weights, 64x64 input) are exported by TorchScript to
``DIR/NAME.onnx``, and each is also quantized by onnxruntime (int8 dynamic) to
``DIR/NAME_int8.onnx``; both are made once and reused, so both commits hash the same files.
Each file is ingested as ``hnn hash`` does (the ONNX front-end, no onnxsim). With ``--compare``,
one line per file says which of the three parts are equal to the earlier run's.
A refactoring of the ingest or provenance code should leave all three equal.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

MODELS = ("resnet18", "mobilenet_v3_small", "squeezenet1_1", "shufflenet_v2_x0_5")


def model_files(cache: Path) -> list[Path]:
    files = []
    for name in MODELS:
        path = cache / f"{name}.onnx"
        quantized = cache / f"{name}_int8.onnx"
        if not (path.exists() and quantized.exists()):
            import torch
            import torchvision
            from onnxruntime.quantization import quantize_dynamic

            torch.manual_seed(0)
            model = getattr(torchvision.models, name)().eval()
            torch.onnx.export(model, (torch.zeros(1, 3, 64, 64),), str(path), dynamo=False, opset_version=17)
            quantize_dynamic(str(path), str(quantized))
        files += [path, quantized]
    return files


def hashes(files: list[Path]) -> dict:
    from hnn.ingest.pipeline import ingest

    found = {}
    for path in files:
        graph = ingest(str(path), simplify=False)
        fingerprint = graph.meta.provenance
        found[path.name] = {"digest": graph.digest(), "marks": graph.meta.weight_marks,
                            "fingerprint": fingerprint.to_dict()["data"] if fingerprint is not None else None}
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True, help="folder for the model files (made once)")
    parser.add_argument("--out", type=Path, help="write the hashes here")
    parser.add_argument("--compare", type=Path, help="an earlier run's --out file")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    warnings.simplefilter("ignore")
    found = hashes(model_files(args.cache))
    if args.out:
        args.out.write_text(json.dumps(found, indent=1))
    if args.compare:
        before = json.loads(args.compare.read_text())
        moved = 0
        for name, now in found.items():
            parts = {part: before.get(name, {}).get(part) == value for part, value in now.items()}
            moved += not all(parts.values())
            print(name, " ".join(f"{part} {'equal' if same else 'CHANGED'}" for part, same in parts.items()))
        print(f"{len(found) - moved} of {len(found)} files hash as before")
        sys.exit(1 if moved else 0)


if __name__ == "__main__":
    main()
