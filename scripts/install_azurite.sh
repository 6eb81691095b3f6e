#!/usr/bin/env bash
# Install the Azurite storage emulator (pinned) into orch's cache, for the Azure tests.
#
# Target: ${ORCH_CACHE:-$HOME/.cache/orch}/azurite. Idempotent: does nothing when that
# folder already holds the pinned version. Needs node and npm on PATH.
# Prints the path of the azurite-blob executable on success.
set -euo pipefail

AZURITE_VERSION="3.37.0"
CACHE_DIR="${ORCH_CACHE:-$HOME/.cache/orch}"
TARGET="$CACHE_DIR/azurite"
BIN="$TARGET/node_modules/.bin/azurite-blob"
PACKAGE_JSON="$TARGET/node_modules/azurite/package.json"

installed_version() {
    [[ -f "$PACKAGE_JSON" ]] || return 1
    node -e 'process.stdout.write(require(process.argv[1]).version)' "$PACKAGE_JSON"
}

if [[ -x "$BIN" ]] && [[ "$(installed_version || true)" == "$AZURITE_VERSION" ]]; then
    echo "$BIN"
    exit 0
fi

for tool in node npm; do
    command -v "$tool" >/dev/null 2>&1 || { echo "install_azurite.sh: '$tool' is not on PATH" >&2; exit 1; }
done

mkdir -p "$TARGET"
# A private package.json keeps npm from walking up into some parent project.
[[ -f "$TARGET/package.json" ]] || echo '{"name": "orch-azurite", "private": true}' > "$TARGET/package.json"
npm install --prefix "$TARGET" --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION" >&2

if [[ ! -x "$BIN" ]]; then
    echo "install_azurite.sh: npm finished but $BIN is missing" >&2
    exit 1
fi
echo "$BIN"
