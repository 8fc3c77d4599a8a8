#!/usr/bin/env bash
# The crash soak (issue 13): clients that resend every unacknowledged batch byte for byte, 100
# random kill -9s of the release binary while merges are in flight, then exact counts, whole
# identity graphs and `ecrm check` on the data dir. `make test` runs the short form (6 kills) of
# the same test, tests/e2e/identity_crash.test.mjs.
#   bench/crash/soak.sh [kills=100] [groups=30000]     (ECRM_BIN overrides build/ecrm)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
kills="${1:-100}"
groups="${2:-30000}"
bin="${ECRM_BIN:-$repo/build/ecrm}"
[[ -x "$bin" ]] || { echo "soak.sh: no ecrm binary at $bin (make build)" >&2; exit 2; }
(cd "$repo/tests/e2e" && [[ -d node_modules ]] || npm ci --no-audit --no-fund >/dev/null)
cd "$repo"
ECRM_BIN="$bin" ECRM_E2E_KILLS="$kills" ECRM_E2E_GROUPS="$groups" \
  node --test --test-reporter=spec tests/e2e/identity_crash.test.mjs
