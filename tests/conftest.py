import os
import subprocess
import sys
from pathlib import Path

import pytest

# Installed third-party plugins must not change what the tests see.
os.environ["HNN_NO_THIRD_PARTY_PLUGINS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HNN = str(Path(sys.executable).with_name("hnn"))


def run_hnn(*args, env=None, cwd=None) -> subprocess.CompletedProcess:
    """Run the installed `hnn` console script as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([HNN, *map(str, args)], capture_output=True, text=True, env=full_env, cwd=cwd,
                          timeout=600)


@pytest.fixture
def hnn_cli():
    return run_hnn
