#!/usr/bin/env bash
# Quickstart: set up .venv, start a 2-node local Ray pool, run the example job and follow it,
# show the results, and delete the pool.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. "${ORCH_VENV:-.venv}/bin/activate"
export ORCH_CONFIG_DIR=templates
trap 'orch pool delete local -y --force -q >/dev/null 2>&1 || true' EXIT
orch pool create
orch jobs add templates/hello.yaml --tail
orch jobs show hello
