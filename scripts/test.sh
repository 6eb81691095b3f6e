#!/usr/bin/env bash
# Set up everything the tests need (Open MPI, Chromium, venv, Azurite, Horovod built from source,
# cached in ~/.cache/orch) and run the whole test suite, slow real-cluster tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
# System packages: Open MPI's mpirun, and Chromium for the dashboard's browser tests (driven by
# Playwright through /usr/bin/chromium; no browser is downloaded at run time).
missing=""
command -v mpirun >/dev/null 2>&1 || missing="$missing openmpi-bin"
[ -x /usr/bin/chromium ] || missing="$missing chromium"
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    # shellcheck disable=SC2086
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    echo "test.sh: the tests need:$missing (Debian/Ubuntu: apt-get install$missing)" >&2
    exit 1
  fi
fi
if ! command -v prlimit >/dev/null 2>&1; then  # the hostile-input tests run orch under a memory limit
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq util-linux >/dev/null
  else
    echo "test.sh: the tests need prlimit (Debian/Ubuntu: apt-get install util-linux)" >&2
    exit 1
  fi
fi
bash scripts/setup.sh
# shellcheck disable=SC1091
. "${ORCH_VENV:-.venv}/bin/activate"
bash scripts/install_azurite.sh
bash scripts/build_horovod.sh
python -m pytest -q "$@"
