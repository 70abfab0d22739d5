"""Fuzz the ONNX-to-IR path with atheris for a given time; report executions and findings.

    .venv/bin/python scripts/fuzz_onnx.py --minutes 10 [--simplify] [--findings fuzz-findings]

Coverage-guided (libFuzzer through atheris, hnn's modules instrumented), with
the structure-aware mutator of tests/fuzz/onnx_target.py over real models.
A Python exception other than hnn's one-line errors is a finding: its input is
saved under --findings as <signature>.onnx, once per distinct signature, and
fuzzing goes on. A native crash, a per-input timeout or an out-of-memory stops
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


def fuzz_child(seconds: int, findings: Path, scratch: Path, simplify: bool) -> None:
    """One libFuzzer run (this process): stops at the time limit or at a native crash.

    libFuzzer ends the process with exit(), past any ``finally``: so the counters go to
    ``scratch/stats.json`` every few seconds, and the parent removes ``scratch`` afterwards.
    """
    import random

    import atheris

    with atheris.instrument_imports(include=["hnn"]):
        from onnx_target import mutate, run_one, seed_models

        import hnn.ingest.pipeline  # noqa: F401 - instrumented for coverage

    import logging

    logging.disable(logging.CRITICAL)  # shape-inference warnings for every mutant would drown the report
    seen = {path.stem for path in findings.glob("*.onnx")}
    stats = {"executions": 0, "findings": 0}
    stats_path, workdir, seed_dir = scratch / "stats.json", scratch / "work", scratch / "seeds"
    workdir.mkdir()
    seed_dir.mkdir()
    last_write = time.monotonic()

    def test_one_input(data: bytes) -> None:
        nonlocal last_write
        finding = run_one(data, workdir, simplify=simplify)
        stats["executions"] += 1
        if finding is not None:
            name = "".join(c if c.isalnum() else "_" for c in finding.signature)
            if name not in seen:
                seen.add(name)
                stats["findings"] += 1
                (findings / f"{name}.onnx").write_bytes(data)
                with open(findings / "findings.jsonl", "a") as log:
                    log.write(json.dumps({"signature": finding.signature, "message": finding.message}) + "\n")
                print(f"finding: {finding.signature}: {finding.message}", file=sys.stderr, flush=True)
        if time.monotonic() - last_write > 2:
            stats_path.write_text(json.dumps(stats))
            last_write = time.monotonic()

    def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
        return mutate(data, random.Random(seed))[:max_size]

    for index, seed in enumerate(seed_models()):
        (seed_dir / f"seed{index}.onnx").write_bytes(seed)
    args = [sys.argv[0], str(seed_dir), f"-max_total_time={seconds}", f"-artifact_prefix={findings}/",
            "-max_len=1000000", "-rss_limit_mb=4096", "-timeout=30", "-print_final_stats=1"]
    atheris.Setup(args, test_one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--simplify", action="store_true", help="run onnxsim too, as hnn ingest does by default")
    parser.add_argument("--findings", type=Path, default=Path("fuzz-findings"))
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.findings.mkdir(parents=True, exist_ok=True)
    if args.child is not None:
        fuzz_child(args.child, args.findings.resolve(), args.scratch, args.simplify)
        return

    deadline = time.monotonic() + args.minutes * 60
    executions, runs, stops = 0, 0, []
    while (left := int(deadline - time.monotonic())) > 5:
        scratch = Path(tempfile.mkdtemp(prefix="hnn-fuzz-"))
        stats = scratch / "stats.json"
        command = [sys.executable, __file__, "--child", str(left), "--scratch", str(scratch),
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
    print(f"{executions} executions in {args.minutes:g} min ({runs} fuzzing process(es)); "
          f"{count} distinct Python finding(s), {len(stops)} native crash/timeout/oom stop(s); "
          f"inputs saved under {args.findings}/")
    sys.exit(1 if count or stops else 0)


if __name__ == "__main__":
    main()
