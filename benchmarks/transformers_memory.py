"""Peak memory of hashing Hugging Face folders, against the size of their weights.

    .venv/bin/python benchmarks/transformers_memory.py [--sizes 20,60,120] [--config-only 7000] [--dtype float16] [--json]

For each size (millions of parameters, roughly), a Llama-shaped model is built from a config
(random weights), written with ``save_pretrained`` as safetensors in ``--dtype`` into a temporary
folder, and hashed by ``hnn hash FOLDER --json`` as a user would (the untrusted path: the
sandboxed worker, at ``--max-memory``, 16G by default so that the figure is measured rather than
refused). Reported per size: parameters, bytes on disk, wall time, and the peak resident memory
of the largest process (the worker), read with ``getrusage(RUSAGE_CHILDREN)`` in a wrapper
process started per run; and its ratio to the weights on disk. ``--config-only 7000`` hashes
configs without weights (the graph alone). The issue's goals (issue 19): a 1B-parameter model in
fp16 (about 2 GB) within 3 GiB, a 7B config's graph within 2 GiB. Models over 100 M parameters
take the bounded-memory path (plugins/frontends/transformers_meta.py), smaller ones are built in
memory with their weights.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HNN = str(Path(sys.executable).with_name("hnn"))
# Width and depth per size: a Llama of width d and L layers has about 12 L d^2 + 2 V d parameters.
VOCAB = 32000


def llama_config(millions: float):
    import transformers

    for width in (256, 512, 768, 1024, 1536, 2048, 4096):
        layers = max(2, round((millions * 1e6 - 2 * VOCAB * width) / (12 * width * width)))
        if layers <= 2 * width // 64:
            break
    return transformers.LlamaConfig(hidden_size=width, num_hidden_layers=layers, num_attention_heads=width // 64,
                                    num_key_value_heads=width // 64, intermediate_size=int(width * 8 / 3) // 64 * 64,
                                    vocab_size=VOCAB)


def write_config(millions: float, folder: Path) -> int:
    """A config alone (no weights), as a user hashing an architecture would save it; its parameter count."""
    import torch
    import transformers

    config = llama_config(millions)
    config.save_pretrained(folder)
    with torch.device("meta"):
        return sum(p.numel() for p in transformers.LlamaForCausalLM(config).parameters())


def write_model(millions: float, dtype: str, folder: Path) -> int:
    import torch
    import transformers

    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(llama_config(millions)).to(getattr(torch, dtype))
    model.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def peak_of(command: list[str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """(peak resident MB of the largest descendant, seconds, the result) of a command run in a fresh wrapper."""
    wrapper = ("import json, resource, subprocess, sys, time; t = time.perf_counter(); "
               "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
               "print(json.dumps({'rc': r.returncode, 's': time.perf_counter() - t, "
               "'peak_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, 'err': r.stderr[-400:]}))")
    result = subprocess.run([sys.executable, "-c", wrapper, *command], capture_output=True, text=True, check=True)
    report = json.loads(result.stdout)
    return report["peak_kb"] / 1024, report["s"], report


def hash_row(path: Path, on_disk: int, max_memory: str) -> dict:
    """``hnn hash PATH`` through the worker: its peak, time and outcome, as a table row (also on stderr)."""
    peak_mb, seconds, report = peak_of([HNN, "hash", str(path), "--json", "--max-memory", max_memory])
    row = {"disk_mb": round(on_disk / 2**20), "peak_mb": round(peak_mb),
           "peak_over_disk": round(peak_mb * 2**20 / max(on_disk, 1), 2), "seconds": round(seconds, 1),
           "ok": report["rc"] == 0, "error": "" if report["rc"] == 0 else report["err"].strip()}
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20,60,120", help="millions of parameters, comma-separated")
    parser.add_argument("--config-only", default="", help="millions of parameters of configs hashed without weights")
    parser.add_argument("--dtype", default="float16", choices=("float16", "bfloat16", "float32"))
    parser.add_argument("--max-memory", default="16G")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    runs = [(float(size), False) for size in args.sizes.split(",") if size]
    runs += [(float(size), True) for size in args.config_only.split(",") if size]
    for millions, config_only in runs:
        with tempfile.TemporaryDirectory(prefix="hnn-tfmem-") as folder:
            model = Path(folder) / "model"
            parameters = write_config(millions, model) if config_only else write_model(millions, args.dtype, model)
            rows.append({"parameters": parameters, "weights": not config_only,
                         **hash_row(model, sum(path.stat().st_size for path in model.iterdir()), args.max_memory)})
    if args.json:
        print(json.dumps({"dtype": args.dtype, "max_memory": args.max_memory, "rows": rows}, indent=1))
        return
    print(f"{'parameters':>14} {'weights':>7} {'on disk MB':>10} {'peak MB':>8} {'peak/disk':>9} {'s':>6}  ok")
    for row in rows:
        print(f"{row['parameters']:>14,} {row['weights']!s:>7} {row['disk_mb']:>10} {row['peak_mb']:>8} "
              f"{row['peak_over_disk']:>9} "
              f"{row['seconds']:>6}  {row['ok']} {row['error'][:120]}")


if __name__ == "__main__":
    main()
