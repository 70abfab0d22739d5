"""Bare weights: does the weights-only test tell copies of a known model from independent models?

    .venv/bin/python benchmarks/weights_only.py [--families a,b] [--steps 50] [--json out.json]
    .venv/bin/python benchmarks/weights_only.py --memory [--work DIR]

For each transformer family of the zoo (hnn.zoo.transformer_presets, size 2 layers x 128, random
initialisation, a seed of its own per family), an original saved with save_pretrained, and bare
``model.safetensors`` uploads (no config.json): the original's own file, fp16 and bf16 copies, a
fine-tune (Adam, --steps steps at lr 1e-4 on random inputs: a light one) and a hard fine-tune (lr
1e-3), 30% magnitude pruning, and the feed-forward units of every block permuted (the function
unchanged; the permuted tensors tell nothing, the others still do); negatives: two independent
models of the family's config.

Every original's folder is added to one index (its fingerprint made from the graph, as `hnn index
add` does); every upload is checked against it (hnn.index.registry.check_weights: candidates by
probe, then the unordered positional test). Reported per kind of upload: the share called derived
from its own original (top-1 of `hnn check`), the median z against it, and for negatives how many
are called derived from any entry, with the null z's mean, spread and largest (against the
original of their own config: the hardest negative). No threshold is fitted here: DERIVED_Z was
fixed before this test existed.

``--memory`` writes a Llama-shaped file of about 1.1 B parameters as fp16 (2.2 GB: hidden 2048, 16
layers, feed-forward 8192, vocabulary 32000), then reads its fingerprint in a child process and
reports the child's peak resident memory and time (the file is written tensor by tensor, so the
benchmark itself stays small too).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZE = (2, 128, 4)


def build(family, seed: int):
    import torch
    import transformers

    from hnn.zoo.transformer_presets import overrides

    model_class = getattr(transformers, family.model_class)
    torch.manual_seed(seed)
    return model_class(model_class.config_class(**overrides(family, *SIZE))).eval()


def fine_tune(model, steps: int, lr: float):
    """Adam on the mean square of the model's first output, from random inputs of its kind (a stand-in
    task: what matters here is how far the weights move, not what they learn)."""
    import torch

    tuned = type(model)(model.config)
    tuned.load_state_dict(model.state_dict())
    tuned.train()
    optimizer = torch.optim.Adam(tuned.parameters(), lr=lr)
    inputs = random_inputs(tuned)
    for _ in range(steps):
        optimizer.zero_grad()
        out = tuned(**inputs)
        first = next(value for value in out.values() if isinstance(value, torch.Tensor) and value.is_floating_point())
        first.pow(2).mean().backward()
        optimizer.step()
    return tuned.eval()


def random_inputs(model) -> dict:
    """A batch of two random inputs of the model's kind: tokens, images, log-mel frames or waveforms."""
    import torch

    config, generator = model.config, torch.Generator().manual_seed(1)
    name = model.main_input_name
    if name == "pixel_values":
        inputs = {name: torch.randn(2, config.num_channels, config.image_size, config.image_size, generator=generator)}
    elif name == "input_features":
        inputs = {name: torch.randn(2, config.num_mel_bins, 2 * config.max_source_positions, generator=generator)}
    elif name == "input_values":
        inputs = {name: torch.randn(2, 16000, generator=generator)}
    else:
        inputs = {name: torch.randint(0, min(config.vocab_size, 1000), (2, 16), generator=generator)}
    if config.is_encoder_decoder:
        inputs["decoder_input_ids"] = torch.randint(0, min(config.vocab_size, 1000), (2, 8), generator=generator)
    return inputs


def pruned(model, share: float = 0.3):
    import torch

    copy = type(model)(model.config)
    copy.load_state_dict(model.state_dict())
    with torch.no_grad():
        for parameter in copy.parameters():
            if parameter.dim() >= 2:
                cut = parameter.abs().flatten().kthvalue(max(1, int(share * parameter.numel()))).values
                parameter[parameter.abs() <= cut] = 0.0
    return copy


def permuted(model):
    """Every Linear pair (a -> b) where b reads a's output directly: a's output units and b's inputs
    reordered alike (the function is unchanged, every weight moved)."""
    import torch

    copy = type(model)(model.config)
    copy.load_state_dict(model.state_dict())
    linears = [module for module in copy.modules() if isinstance(module, torch.nn.Linear)]
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for first, second in zip(linears, linears[1:]):
            if second.in_features == first.out_features and first.out_features != first.in_features:
                order = torch.randperm(first.out_features, generator=generator)
                first.weight.copy_(first.weight[order])
                if first.bias is not None:
                    first.bias.copy_(first.bias[order])
                second.weight.copy_(second.weight[:, order])
    return copy


def bare_upload(model, folder: Path) -> Path:
    """The model's model.safetensors alone, as an upload without its config."""
    saved = folder / "saved"
    model.save_pretrained(saved)
    upload = folder / "upload" / "model.safetensors"
    upload.parent.mkdir(parents=True)
    shutil.copy(saved / "model.safetensors", upload)
    shutil.rmtree(saved)
    return upload


def provenance_run(args) -> dict:
    import torch

    from hnn.index.registry import add_models, check_weights
    from hnn.provenance.evidence import DERIVED_Z
    from hnn.zoo.transformer_presets import FAMILIES

    torch.set_num_threads(1)
    families = [family for family in FAMILIES if not args.families or family.name in args.families.split(",")]
    work = Path(tempfile.mkdtemp(prefix="hnn-weights-only-"))
    uploads: list[tuple[str, str, Path]] = []  # (family, kind, path)
    originals = []
    started = time.time()
    for family in families:
        # Seeds of their own per family: two families of equal shapes (BERT and ELECTRA) built from one seed
        # start from the same weights, which the test rightly calls derived.
        seed = 100 * (FAMILIES.index(family) + 1)
        try:
            original = build(family, seed)
        except Exception as exc:  # a family this transformers cannot build at this size
            print(f"{family.name}: not built ({str(exc).splitlines()[0][:100]})", file=sys.stderr)
            continue
        original.save_pretrained(work / family.name)
        originals.append(family.name)
        made = {"copy": original, "fp16": _cast(original, torch.float16), "bf16": _cast(original, torch.bfloat16),
                "fine-tuned": fine_tune(original, args.steps, 1e-4),
                "hard fine-tune": fine_tune(original, args.steps, 1e-3),
                "pruned 30%": pruned(original), "FFN units permuted": permuted(original)}
        made.update({f"independent {other}": build(family, seed + other) for other in (1, 2)})
        for kind, model in made.items():
            uploads.append((family.name, kind, bare_upload(model, work / "uploads" / family.name / kind)))
        print(f"{family.name}: built ({time.time() - started:.0f} s)", file=sys.stderr)
    index = work / "index.db"
    added = add_models(index, [str(work / name) for name in originals])
    failed = [result for result in added if result["status"] != "added"]
    if failed:
        raise SystemExit(f"not indexed: {failed}")
    rows: dict[str, list] = {}
    for family, kind, path in uploads:
        result = check_weights(index, str(path), k=len(originals))
        own = next((hit for hit in result["neighbours"] if hit["name"] == family), None)
        row = {"family": family, "derived_from": (result["derived_from"] or {}).get("name"),
               # the positional test's z: the evidence's own z is the larger of it and the anchored test's,
               # which bare weights do not have (0), so it would floor the null at 0
               "z_own": None if own is None else own["provenance"]["positional"]["z"],
               "z_max": max((hit["provenance"]["positional"]["z"] for hit in result["neighbours"]), default=None)}
        rows.setdefault(kind if not kind.startswith("independent") else "independent", []).append(row)
    summary = {}
    for kind, found in rows.items():
        own_z = [row["z_own"] for row in found if row["z_own"] is not None]
        if kind == "independent":
            called = sum(row["derived_from"] is not None for row in found)
            summary[kind] = {"uploads": len(found), "called_derived": called,
                             "z_mean": round(statistics.mean(own_z), 2), "z_sd": round(statistics.pstdev(own_z), 2),
                             "z_max": round(max(own_z), 2)}
        else:
            summary[kind] = {"uploads": len(found), "top1": round(sum(row["derived_from"] == row["family"]
                                                                      for row in found) / len(found), 3),
                             "z_median": round(statistics.median(own_z), 1) if own_z else None,
                             "missed": [row["family"] for row in found if row["derived_from"] != row["family"]]}
    shutil.rmtree(work, ignore_errors=True)
    return {"families": originals, "steps": args.steps, "derived_z": DERIVED_Z, "summary": summary, "rows": rows,
            "seconds": round(time.time() - started)}


def _cast(model, dtype):
    copy = type(model)(model.config)
    copy.load_state_dict(model.state_dict())
    return copy.to(dtype)


LLAMA_1B = {"hidden": 2048, "layers": 16, "feed_forward": 8192, "vocabulary": 32000, "kv": 512}


def write_llama_file(path: Path) -> int:
    """A Llama-shaped fp16 safetensors file written one tensor at a time; its parameter count."""
    import numpy as np

    h, f, v, kv = LLAMA_1B["hidden"], LLAMA_1B["feed_forward"], LLAMA_1B["vocabulary"], LLAMA_1B["kv"]
    shapes = {"model.embed_tokens.weight": (v, h), "lm_head.weight": (v, h), "model.norm.weight": (h,)}
    for i in range(LLAMA_1B["layers"]):
        prefix = f"model.layers.{i}."
        shapes.update({prefix + "self_attn.q_proj.weight": (h, h), prefix + "self_attn.k_proj.weight": (kv, h),
                       prefix + "self_attn.v_proj.weight": (kv, h), prefix + "self_attn.o_proj.weight": (h, h),
                       prefix + "mlp.gate_proj.weight": (f, h), prefix + "mlp.up_proj.weight": (f, h),
                       prefix + "mlp.down_proj.weight": (h, f), prefix + "input_layernorm.weight": (h,),
                       prefix + "post_attention_layernorm.weight": (h,)})
    header, offset = {}, 0
    for name, shape in shapes.items():
        size = 2 * int(np.prod(shape))
        header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header).encode()
    rng = np.random.default_rng(0)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(text)) + text)
        for shape in shapes.values():
            handle.write((rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16).tobytes())
    return sum(int(np.prod(shape)) for shape in shapes.values())


def memory_run(args) -> dict:
    work = Path(args.work or tempfile.mkdtemp(prefix="hnn-weights-only-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    path = work / "model.safetensors"
    started = time.time()
    parameters = write_llama_file(path)
    written = time.time() - started
    child = ("import resource, sys, time; from hnn.provenance.weights_only import read_weights_file; "
             "t = time.time(); w = read_weights_file(sys.argv[1]); t = time.time() - t; "
             "print(w.sketched, w.parameters, round(t, 2), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    # Drop the page cache's copy of the file where that is allowed, so the read is a cold one.
    subprocess.run(["sh", "-c", "sync; echo 1 > /proc/sys/vm/drop_caches"], capture_output=True)
    out = subprocess.run([sys.executable, "-c", child, str(path)], capture_output=True, text=True, check=True).stdout
    sketched, counted, seconds, peak_kb = out.split()
    result = {"parameters": parameters, "file_bytes": path.stat().st_size, "write_s": round(written, 1),
              "sketched_tensors": int(sketched), "read_s": float(seconds), "peak_rss_mib": round(int(peak_kb) / 1024)}
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", help="comma-separated family names (default: every family)")
    parser.add_argument("--steps", type=int, default=50, help="fine-tuning steps")
    parser.add_argument("--memory", action="store_true", help="the 1.1 B-parameter file's peak memory instead")
    parser.add_argument("--work", help="with --memory: keep the file here")
    parser.add_argument("--json", help="write the result here too")
    args = parser.parse_args()
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    result = memory_run(args) if args.memory else provenance_run(args)
    if not args.memory:
        print(f"{'upload':<16} {'uploads':>7}  result")
        for kind, said in result["summary"].items():
            print(f"{kind:<16} {said['uploads']:>7}  " + ", ".join(f"{key} {value}" for key, value in said.items()
                                                                  if key != "uploads"))
    else:
        print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
