#!/usr/bin/env bash
# Runs the Kafka-mode tests against a real single-node broker: starts it (scripts/kafka.sh), runs
# the node tests, stops it. Usage: tests/kafka/run.sh [path/to/ecrm]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="$(realpath "${1:-$root/build/ecrm}")"
dir="$(mktemp -d "${TMPDIR:-/tmp}/ecrm-kafka-test.XXXXXX")"
cleanup() { bash "$root/scripts/kafka.sh" stop --dir "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT
brokers="$(bash "$root/scripts/kafka.sh" start --dir "$dir" | sed -n 's/^KAFKA_BROKERS=//p')"
[ -n "$brokers" ] || { echo "kafka broker did not start" >&2; exit 1; }
# The node helpers (and their packages) are shared with the e2e tests; kafkajs is this folder's own.
if [ ! -d "$root/tests/e2e/node_modules" ]; then
  (cd "$root/tests/e2e" && npm ci --no-audit --no-fund --silent)
fi
if [ ! -d "$here/node_modules/kafkajs" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --silent)
fi
KAFKA_BROKERS="$brokers" KAFKA_DIR="$dir" ECRM_BIN="$bin" \
  node --test --test-concurrency=1 "$here/kafka.test.mjs" "$here/secure.test.mjs"
