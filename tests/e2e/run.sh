#!/usr/bin/env bash
# End-to-end tests of ecrm with Node's built-in test runner.
#   tests/e2e/run.sh [path/to/ecrm]     (default: build/ecrm of this repo)
# Needs node >= 20, npm, and promtool (Debian package "prometheus") for metrics.test.mjs.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

bin="${1:-$here/../../build/ecrm}"
case "$bin" in
  /*) ;;
  *) bin="$(pwd)/$bin" ;;
esac
if [[ ! -x "$bin" ]]; then
  echo "run.sh: ecrm binary not found or not executable: $bin" >&2
  exit 2
fi
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

# Install the test dependencies when node_modules is missing or does not match package-lock.json.
lock_hash="$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)"
stamp="$here/node_modules/.ecrm-lock-sha256"
if [[ ! -d "$here/node_modules" || ! -f "$stamp" || "$(cat "$stamp")" != "$lock_hash" ]]; then
  (cd "$here" && npm ci --no-audit --no-fund)
  echo "$lock_hash" > "$stamp"
fi

cd "$repo"
shopt -s nullglob
files=(tests/e2e/*.test.mjs)
if [[ ${#files[@]} -eq 0 ]]; then
  echo "run.sh: no tests/e2e/*.test.mjs files" >&2
  exit 2
fi
set +e
ECRM_BIN="$bin" node --test --test-concurrency=1 "${files[@]}"
rc=$?
exit $rc
