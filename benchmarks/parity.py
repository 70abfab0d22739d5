"""What `hnn` answers for the README demo's models, as one JSON document, to compare two versions.

A refactoring must not change a code, a verdict or a ranking. Run the demo once
(`OUT=DIR bash scripts/demo.sh`), then this script on that folder with the old
code and with the new, and compare the two files:

    python benchmarks/parity.py DIR > before.json      # on the old commit
    python benchmarks/parity.py DIR > after.json       # on the new one
    python benchmarks/parity.py --diff before.json after.json

It records `hnn hash --json` at 16, 32 and 64 bits for the 21 indexed
torchvision models and the demo's four uploads, `hnn check --json` and
`hnn index query --json -k 10` of each upload against the demo's index, and
`hnn compare --json` of resnet18 and a user's own resnet18. Times of entry creation
and the folder's own path are left out: they differ between runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HNN = str(Path(sys.executable).with_name("hnn"))
PAPER_MODELS = ("vgg11 vgg13 vgg16 resnet18 resnet34 resnet101 mnasnet0_75 mnasnet1_0 mnasnet1_3 densenet121 "
                "densenet161 densenet201 squeezenet1_0 squeezenet1_1 shufflenet_v2_x0_5 shufflenet_v2_x1_5 "
                "shufflenet_v2_x2_0 alexnet inception_v3 mobilenet_v2 googlenet").split()
UPLOADS = ("resnet18_own.onnx", "efficientnet_b0.onnx", "mnasnet1_0_owned.onnx", "mnasnet1_0_owned_pruned.onnx",
           "mnasnet1_0_owned_tuned_int8.onnx")
VOLATILE = ("added",)


def _run(*args: str) -> tuple[int, str]:
    done = subprocess.run([HNN, *args], capture_output=True, text=True)
    if done.returncode not in (0, 3, 4):
        raise SystemExit(f"hnn {' '.join(args)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.returncode, done.stdout


def _scrub(value, folder: str):
    if isinstance(value, dict):
        return {k: _scrub(v, folder) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_scrub(v, folder) for v in value]
    if isinstance(value, str):
        return value.replace(folder, "<demo>")
    return value


def snapshot(folder: Path) -> dict:
    uploads = [str(folder / name) for name in UPLOADS]
    models = [f"torchvision.models:{name}" for name in PAPER_MODELS] + uploads
    out: dict = {"hash": {}, "check": {}, "query": {}}
    for bits in (16, 32, 64):
        _, text = _run("hash", *models, "--bits", str(bits), "--json")
        out["hash"][bits] = [json.loads(line) for line in text.splitlines()]
    for upload in uploads:
        code, text = _run("check", str(folder / "models.db"), upload, "--json")
        out["check"][Path(upload).name] = {"exit": code, **json.loads(text)}
        _, text = _run("index", "query", str(folder / "models.db"), upload, "-k", "10", "--json")
        out["query"][Path(upload).name] = json.loads(text)
    _, text = _run("compare", "torchvision.models:resnet18", uploads[0], "--json")
    out["compare"] = json.loads(text)
    return _scrub(out, str(folder))


def diff(before: dict, after: dict, where: str = "") -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        return [line for key in sorted(set(before) | set(after), key=str)
                for line in diff(before.get(key), after.get(key), f"{where}.{key}")]
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [line for i, (a, b) in enumerate(zip(before, after)) for line in diff(a, b, f"{where}[{i}]")]
    return [] if before == after else [f"{where}: {before!r} -> {after!r}"]


if __name__ == "__main__":
    if sys.argv[1:2] == ["--diff"]:
        changes = diff(*(json.loads(Path(p).read_text()) for p in sys.argv[2:4]))
        print("\n".join(changes) or "identical")
        sys.exit(1 if changes else 0)
    print(json.dumps(snapshot(Path(sys.argv[1]).resolve()), indent=1, sort_keys=True))
