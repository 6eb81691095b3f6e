#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv with everything orch and its
# tests need. Safe to re-run. torch is pinned first: an unpinned torch pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${ORCH_VENV:-.venv}
PYTHON=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
export PIP_DISABLE_PIP_VERSION_CHECK=1
pip install -q "torch==2.13.0"
pip install -q -e ".[dev]"
echo "orch installed in $VENV ($(python -c 'import orchestrator; print(orchestrator.__version__)'))"
