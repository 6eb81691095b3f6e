#!/usr/bin/env bash
# Set up everything the tests need (venv, Azurite, Horovod built from source, cached in
# ~/.cache/orch) and run the whole test suite, slow real-cluster tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. "${ORCH_VENV:-.venv}/bin/activate"
bash scripts/install_azurite.sh
bash scripts/build_horovod.sh
python -m pytest -q "$@"
