#!/usr/bin/env bash
# Measures the Kafka drain: events/s from a pre-filled topic to durable profiles.
#   bench/load/kafka-drain.sh [EVENTS] [PARTITIONS]
# Starts a broker (scripts/kafka.sh) unless KAFKA_DIR names a running one, fills a fresh topic once with
# `ecrm-load kafka-produce`, then starts `ecrm serve --role processor` on an empty data dir and
# times it with `ecrm-load watch` (which also reports ecrm's CPU per event). Extra ecrm flags can
# be given in ECRM_FLAGS; ECRM_BIN runs another ecrm binary; LOAD_FLAGS go to `ecrm-load kafka-produce`
# (e.g. "--visitors 1000000 --zipf 0" for a million profiles). RESTORE=1 then also measures a
# restore (docs/cluster.md): ecrm stops, and a second one with the same instance id starts on an
# empty data dir and restores every partition from the changelog. Needs build/ecrm-load (make build).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
events="${1:-1000000}"
partitions="${2:-8}"
work="$(mktemp -d /tmp/ecrm-drain.XXXXXX)"
started_broker=0
cleanup() {
  [ -n "${pid:-}" ] && kill -9 "$pid" 2>/dev/null || true
  if [ "$started_broker" = 1 ]; then "$root/scripts/kafka.sh" stop --dir "$kdir" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
# KAFKA_DIR: the scripts/kafka.sh directory of an already running broker; else one is started.
kdir="${KAFKA_DIR:-}"
if [ -z "$kdir" ]; then
  kdir="$work/kafka"
  "$root/scripts/kafka.sh" start --dir "$kdir" >/dev/null
  started_broker=1
fi
KAFKA_BROKERS="$("$root/scripts/kafka.sh" status --dir "$kdir" | sed -n 's/^KAFKA_BROKERS=//p')"
topic="drain.$(date +%s%N)"
"$root/scripts/kafka.sh" create-topic "$topic" "$partitions" --dir "$kdir" 2>/dev/null
"$root/scripts/kafka.sh" create-topic "$topic.dlq" 1 --dir "$kdir" 2>/dev/null
# shellcheck disable=SC2086
"$root/build/ecrm-load" kafka-produce --kafka-brokers "$KAFKA_BROKERS" --kafka-topic "$topic" --events "$events" ${LOAD_FLAGS:-}
port=$((20000 + RANDOM % 20000))
# shellcheck disable=SC2086
${PERF_OUT:+perf record -F 999 -g -o "$PERF_OUT" --} "${ECRM_BIN:-$root/build/ecrm}" serve --data-dir "$work/data" --http-addr "127.0.0.1:$port" --role processor \
  --kafka-brokers "$KAFKA_BROKERS" --kafka-topic "$topic" --kafka-dlq-topic "$topic.dlq" \
  --kafka-group "drain-$topic" ${ECRM_FLAGS:-} >"$work/ecrm.log" 2>&1 &
pid=$!
# PERF_OUT=file: ecrm runs under `perf record -g`; measure the ecrm child, not perf.
if [ -n "${PERF_OUT:-}" ]; then
  perf_pid=$pid
  for _ in $(seq 50); do pid="$(pgrep -P "$perf_pid" || true)"; [ -n "$pid" ] && break; sleep 0.1; done
fi
thread_cpu() {  # "name seconds" per thread of ecrm, from /proc
  for t in /proc/"$pid"/task/*; do
    awk -v tck="$(getconf CLK_TCK)" '{ n = $2; sub(/^.*\) /, ""); split($0, f, " ");
      print n, (f[12] + f[13]) / tck }' "$t/stat" 2>/dev/null
  done | sort | awk '{ cpu[$1] += $2 } END { for (n in cpu) printf "%s %.2f\n", n, cpu[n] }'
}
"$root/build/ecrm-load" watch --target "127.0.0.1:$port" --events "$events" --seconds 300 --server-pid "$pid"
echo "What the pipeline waited on (ecrm metrics at the end):"
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^ecrm_(changelog_(records|commits)_total|changelog_commit_seconds_(sum|count)|kafka_submit_retries_total|kafka_consumer_pauses_total|store_batches_total|rocksdb_stall_micros|rocksdb_bytes_written|rocksdb_live_sst_bytes|profiles_written_total|profiles_created_total|events_duplicate_total)' | sed 's/^/  /' || true
echo "ecrm peak memory: $(awk '/VmHWM/ {printf "%.0f MB", $2 / 1024}' /proc/"$pid"/status)"
echo "CPU seconds per thread (the whole run):"
thread_cpu | sort -k2 -rn | head -8 | sed 's/^/  /'
if [ -n "${perf_pid:-}" ]; then kill -INT "$pid"; wait "$perf_pid" || true; pid=""; fi
if [ "${RESTORE:-0}" = 1 ] && [ -n "$pid" ]; then
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  # shellcheck disable=SC2086
  "${ECRM_BIN:-$root/build/ecrm}" serve --data-dir "$work/data2" --http-addr "127.0.0.1:$port" --role processor \
    --kafka-brokers "$KAFKA_BROKERS" --kafka-topic "$topic" --kafka-dlq-topic "$topic.dlq" \
    --kafka-group "drain-$topic" ${ECRM_FLAGS:-} >"$work/ecrm2.log" 2>&1 &
  pid=$!
  for _ in $(seq 1200); do
    grep -q "restored .* partitions" "$work/ecrm2.log" && break
    sleep 0.1
  done
  echo "restore (a second instance, empty data dir):"
  grep -o "restored .*" "$work/ecrm2.log" | sed 's/^/  /'
  awk '/restored .* records in/ { for (i = 1; i <= NF; i++) { if ($i == "records" && $(i+1) == "in") { n = $(i-1); sub(/\(/, "", n); t = $(i+2) } }
       printf "  %.0f records/s\n", n / t }' "$work/ecrm2.log"
  echo "  restore peak memory: $(awk '/VmHWM/ {printf "%.0f MB", $2 / 1024}' /proc/"$pid"/status)"
fi
