"""Fuzz an untrusted-input path with atheris for a given time; report executions and findings.

    .venv/bin/python scripts/fuzz.py --target onnx|keras|savedmodel --minutes 10 [--simplify] [--findings DIR]

Coverage-guided (libFuzzer through atheris, hnn's modules instrumented), with
the structure-aware mutator of the target (tests/fuzz/<target>_target.py) over
real models: ``onnx``, ONNX to IR; ``keras``, the archive check and the safe-mode
load of a ``.keras`` file; ``savedmodel``, the allow-list check of a
``saved_model.pb``. A Python exception other than hnn's one-line errors is a
finding (and, per target, what must never happen: code run, a dangerous op let
through): its input is saved under --findings as <signature><suffix>, once per
distinct signature, and fuzzing goes on. A native crash, a per-input timeout or an out-of-memory stops
libFuzzer, which saves the input there too (crash-*, timeout-*, oom-*); this
script then starts a fresh fuzzing process until the time is up. Every finding
should become a case in tests/corpus/make_corpus.py, and be fixed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fuzz"))


TARGETS = ("onnx", "keras", "savedmodel")
# The fuzzing process's own address-space limit: a mutant asking for a 10^12-unit layer gets a
# MemoryError, as in the worker, instead of taking the machine's memory.
CHILD_MEMORY_BYTES = 8 * 1024**3


def fuzz_child(target: str, seconds: int, findings: Path, scratch: Path, simplify: bool) -> None:
    """One libFuzzer run (this process): stops at the time limit or at a native crash.

    libFuzzer ends the process with exit(), past any ``finally``: so the counters go to
    ``scratch/stats.json`` every few seconds, and the parent removes ``scratch`` afterwards.
    """
    import importlib
    import random
    import resource

    import atheris

    resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY_BYTES, CHILD_MEMORY_BYTES))
    with atheris.instrument_imports(include=["hnn"]):
        module = importlib.import_module(f"{target}_target")

        import hnn.ingest.pipeline  # noqa: F401 - instrumented for coverage
        import hnn.plugins.frontends.keras_frontend  # noqa: F401
        import hnn.plugins.frontends.savedmodel_policy  # noqa: F401
    mutate, seed_inputs, suffix = module.mutate, module.seed_inputs, module.SUFFIX
    run_one = module.run_one if target != "onnx" else lambda data, work: module.run_one(data, work, simplify=simplify)

    import logging

    logging.disable(logging.CRITICAL)  # shape-inference warnings for every mutant would drown the report
    seen = {path.stem for path in findings.glob(f"*{suffix}")}
    stats = {"executions": 0, "findings": 0}
    stats_path, workdir, seed_dir = scratch / "stats.json", scratch / "work", scratch / "seeds"
    workdir.mkdir()
    seed_dir.mkdir()
    last_write = time.monotonic()

    def test_one_input(data: bytes) -> None:
        nonlocal last_write
        finding = run_one(data, workdir)
        stats["executions"] += 1
        if finding is not None:
            name = "".join(c if c.isalnum() else "_" for c in finding.signature)
            if name not in seen:
                seen.add(name)
                stats["findings"] += 1
                (findings / f"{name}{suffix}").write_bytes(data)
                with open(findings / "findings.jsonl", "a") as log:
                    log.write(json.dumps({"signature": finding.signature, "message": finding.message}) + "\n")
                print(f"finding: {finding.signature}: {finding.message}", file=sys.stderr, flush=True)
        if time.monotonic() - last_write > 2:
            stats_path.write_text(json.dumps(stats))
            last_write = time.monotonic()

    def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
        return mutate(data, random.Random(seed))[:max_size]

    for index, seed in enumerate(seed_inputs()):
        (seed_dir / f"seed{index}{suffix}").write_bytes(seed)
    args = [sys.argv[0], str(seed_dir), f"-max_total_time={seconds}", f"-artifact_prefix={findings}/",
            "-max_len=1000000", "-rss_limit_mb=4096", "-timeout=30", "-print_final_stats=1"]
    atheris.Setup(args, test_one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=TARGETS, default="onnx")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--simplify", action="store_true", help="run onnxsim too, as hnn ingest does by default")
    parser.add_argument("--findings", type=Path, default=Path("fuzz-findings"))
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.findings.mkdir(parents=True, exist_ok=True)
    if args.child is not None:
        fuzz_child(args.target, args.child, args.findings.resolve(), args.scratch, args.simplify)
        return

    deadline = time.monotonic() + args.minutes * 60
    executions, runs, stops = 0, 0, []
    while (left := int(deadline - time.monotonic())) > 5:
        scratch = Path(tempfile.mkdtemp(prefix="hnn-fuzz-"))
        stats = scratch / "stats.json"
        command = [sys.executable, __file__, "--target", args.target, "--child", str(left), "--scratch", str(scratch),
                   "--findings", str(args.findings)] + (["--simplify"] if args.simplify else [])
        result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        runs += 1
        try:  # written every 2 s: the count is a lower bound
            executions += json.loads(stats.read_text()).get("executions", 0)
        except (OSError, json.JSONDecodeError):
            pass
        shutil.rmtree(scratch, ignore_errors=True)
        reasons = [line for line in result.stderr.splitlines() if "ERROR: libFuzzer" in line or "finding:" in line]
        stops.extend(line for line in reasons if "libFuzzer" in line)
        if result.returncode != 0 and not any("libFuzzer" in line for line in reasons):
            tail = [line for line in result.stderr.splitlines() if line.strip()][-3:]
            reasons.append(f"fuzzing process exited {result.returncode}: " + " | ".join(tail))
            stops.append(reasons[-1])
        for line in reasons:
            print(line, flush=True)
        if result.returncode == 0:
            break  # reached the time limit
    python_findings = (args.findings / "findings.jsonl")
    count = len(python_findings.read_text().splitlines()) if python_findings.exists() else 0
    print(f"{args.target}: {executions} executions in {args.minutes:g} min ({runs} fuzzing process(es)); "
          f"{count} distinct Python finding(s), {len(stops)} native crash/timeout/oom stop(s); "
          f"inputs saved under {args.findings}/")
    sys.exit(1 if count or stops else 0)


if __name__ == "__main__":
    main()
