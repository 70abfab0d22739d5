"""The fuzz targets on fixed, seeded samples of mutated real models: no input may escape as a traceback.

scripts/fuzz.py runs the same targets (onnx, keras, savedmodel) coverage-guided for as long as
you like; this keeps what they found fixed (every finding also became a case in tests/corpus or
a rule of the check it passed).
"""

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fuzz"))

from onnx_target import mutate, run_one, seed_models  # noqa: E402

pytestmark = pytest.mark.slow  # end to end: subprocesses, frameworks (the quick loop skips it)

MUTANTS = 2000


def test_seed_models_ingest_cleanly(tmp_path):
    from hnn.ingest.pipeline import ingest

    for index, seed in enumerate(seed_models()):
        (tmp_path / f"seed{index}.onnx").write_bytes(seed)
        assert ingest(tmp_path / f"seed{index}.onnx", framework="onnx", simplify=False).nodes


def test_mutated_models_end_in_an_ir_or_a_one_line_error(tmp_path):
    rng = random.Random(20261123)
    seeds = seed_models()
    findings = {}
    for _ in range(MUTANTS):
        data = mutate(rng.choice(seeds), rng)
        finding = run_one(data, tmp_path)
        if finding is not None:
            findings.setdefault(finding.signature, finding.message)
    assert findings == {}


def test_the_mutator_changes_models_and_keeps_most_of_them_parseable():
    import onnx

    rng = random.Random(1)
    seed = seed_models()[1]
    mutants = [mutate(seed, rng) for _ in range(200)]
    assert sum(m != seed for m in mutants) > 150
    parseable = 0
    for mutant in mutants:
        try:
            onnx.load_model_from_string(mutant)
            parseable += 1
        except Exception:
            pass
    assert parseable > 100  # structure-aware: most mutants reach the code past the parser


def _seeded_findings(target, mutants: int, workdir, seed: int) -> dict:
    rng = random.Random(seed)
    seeds = target.seed_inputs()
    assert all(target.run_one(data, workdir) is None for data in seeds)  # the seeds themselves are fine
    findings = {}
    for _ in range(mutants):
        finding = target.run_one(target.mutate(rng.choice(seeds), rng), workdir)
        if finding is not None:
            findings.setdefault(finding.signature, finding.message)
    return findings


def test_mutated_keras_files_load_in_safe_mode_or_give_a_one_line_error(tmp_path):
    import keras_target

    assert _seeded_findings(keras_target, 150, tmp_path, seed=20261201) == {}


def test_mutated_saved_models_never_pass_a_file_op_and_never_crash_the_check(tmp_path):
    import savedmodel_target

    assert _seeded_findings(savedmodel_target, 3000, tmp_path, seed=20261201) == {}
