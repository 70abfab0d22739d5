#!/usr/bin/env bash
# Creates .venv (once) and installs hnn with every front-end and the test tools,
# at the versions in requirements.txt. Safe to run again: pip skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# This machine's pip configuration lists extra local indexes with gaps; pip warns once per
# missing package folder. Those lines say nothing about this install, so they are dropped.
quiet_pip() { .venv/bin/python -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
quiet_pip install --quiet --disable-pip-version-check --no-cache-dir -r requirements.txt
quiet_pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
