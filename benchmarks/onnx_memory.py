"""Peak memory of hashing a large ONNX file, inline weights and external data (issue 19's vgg16_bn goal).

    .venv/bin/python benchmarks/onnx_memory.py [--model vgg16_bn] [--max-memory 4G] [--json]

A torchvision model (random weights) is exported by the TorchScript exporter to a temporary
``.onnx`` file with its weights inline, and again with them as external data beside it
(``onnx.save(..., save_as_external_data=True)``). Each is hashed by ``hnn hash FILE --json`` as a
user would: the untrusted path, the sandboxed worker, at ``--max-memory`` (4G is the worker's
default limit, so a refusal there is the figure). Reported per file: bytes on disk, wall time,
the peak resident memory of the largest process (the worker), and its ratio to the file.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from transformers_memory import hash_row


def export(name: str, folder: Path) -> tuple[Path, Path]:
    import onnx
    import torch
    import torchvision

    torch.manual_seed(0)
    model = getattr(torchvision.models, name)().eval()
    inline = folder / f"{name}.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, 224, 224),), str(inline), dynamo=False, opset_version=17)
    external_folder = folder / "external"
    external_folder.mkdir()
    external = external_folder / f"{name}.onnx"
    onnx.save(onnx.load(str(inline)), str(external), save_as_external_data=True, location=f"{name}.weights")
    return inline, external


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vgg16_bn", help="a torchvision model name")
    parser.add_argument("--max-memory", default="4G")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="hnn-onnxmem-") as folder:
        for kind, path in zip(("inline", "external data"), export(args.model, Path(folder))):
            on_disk = sum(p.stat().st_size for p in path.parent.iterdir() if p.is_file())
            rows.append({"file": kind, **hash_row(path, on_disk, args.max_memory)})
    if args.json:
        print(json.dumps({"model": args.model, "max_memory": args.max_memory, "rows": rows}, indent=1))
        return
    print(f"{args.model}, worker limit {args.max_memory}")
    print(f"{'file':>14} {'on disk MB':>10} {'peak MB':>8} {'peak/disk':>9} {'s':>6}  ok")
    for row in rows:
        print(f"{row['file']:>14} {row['disk_mb']:>10} {row['peak_mb']:>8} {row['peak_over_disk']:>9} "
              f"{row['seconds']:>6}  {row['ok']} {row['error'][:120]}")


if __name__ == "__main__":
    main()
