#!/usr/bin/env bash
# Quickstart: set up .venv, start a 2-node local Ray pool, run the example learning-rate sweep
# (jobs/lr_search.yaml: 12 trials of jobs/train_digits.py, 2 at a time, losers stopped early),
# show its progress and results (best trial first, plus a plot), and delete the pool.
# About a minute or two on two cores. `bash scripts/quickstart.sh hello` runs the hello job instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. "${ORCH_VENV:-.venv}/bin/activate"
export ORCH_CONFIG_DIR=.   # the repo root: jobs/ resolves, and the sweep's workdir is the repo
trap 'orch pool delete local -y --force -q >/dev/null 2>&1 || true' EXIT
orch pool create templates/pool.yaml
if [ "${1:-sweep}" = hello ]; then
  orch jobs add templates/hello.yaml --tail
  orch jobs show hello
  exit 0
fi
orch sweep jobs/lr_search.yaml --tail
orch sweep status lr-search
orch sweep results lr-search --plot "${TMPDIR:-/tmp}/lr_search.png"
