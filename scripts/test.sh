#!/usr/bin/env bash
# Set up everything the tests need (venv, Azurite, Horovod built from source, cached in
# ~/.cache/orch) and run the whole test suite, slow real-cluster tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v mpirun >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openmpi-bin >/dev/null
  else
    echo "test.sh: the tests need Open MPI's mpirun (Debian/Ubuntu: apt-get install openmpi-bin)" >&2
    exit 1
  fi
fi
bash scripts/setup.sh
# shellcheck disable=SC1091
. "${ORCH_VENV:-.venv}/bin/activate"
bash scripts/install_azurite.sh
bash scripts/build_horovod.sh
python -m pytest -q "$@"
