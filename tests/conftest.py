import os
import subprocess
import sys
from pathlib import Path

import pytest

# Installed third-party plugins must not change what the tests see.
os.environ["HNN_NO_THIRD_PARTY_PLUGINS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HNN = str(Path(sys.executable).with_name("hnn"))
CORPUS_FOLDER = Path(__file__).parent / "corpus"


def make_bad_input_corpus(folder, framework_cases: bool = True) -> dict:
    """The generated bad-input corpus (tests/corpus/make_corpus.py) written into ``folder``:
    case name -> (path, a fragment of the error it must be refused with)."""
    sys.path.insert(0, str(CORPUS_FOLDER))
    try:
        from make_corpus import make_corpus
    finally:
        sys.path.pop(0)
    return make_corpus(folder, framework_cases=framework_cases)


def run_hnn(*args, env=None, cwd=None) -> subprocess.CompletedProcess:
    """Run the installed `hnn` console script as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([HNN, *map(str, args)], capture_output=True, text=True, env=full_env, cwd=cwd,
                          timeout=600)


@pytest.fixture
def hnn_cli():
    return run_hnn
