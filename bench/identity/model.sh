#!/usr/bin/env bash
# The long form of the identity reference-model test (tests/profiler/identity_model_test.cc):
# 100,000 histories of each kind by default, with no time limit. `make test` runs about a minute.
#   bench/identity/model.sh [HISTORIES] [SEED]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${ECRM_MODEL_BIN:-$here/../../build/tests/identity_model_test}"
if [[ ! -x "$bin" ]]; then
  echo "model.sh: $bin not found; run 'make build' first" >&2
  exit 2
fi
ECRM_MODEL_HISTORIES="${1:-100000}" ECRM_MODEL_SEED="${2:-1}" ECRM_MODEL_SECONDS=86400 exec "$bin"
