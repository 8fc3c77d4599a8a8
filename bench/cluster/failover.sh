#!/usr/bin/env bash
# Measures a failover with and without a standby copy (docs/cluster.md#standby-replicas):
#   bench/cluster/failover.sh [EVENTS] [VISITORS]
# Fills a topic of 8 partitions (ecrm-load kafka-produce). Two instances A and B drain it, then A
# is killed with -9, and B takes A's partitions over. Once with --standby-replicas 1 (B tails the
# changelog of A's partitions and restores only what it had not read) and once with 0 (B restores
# A's partitions from the changelog's start). Prints, for each: the time from the kill until B
# serves every partition (the 10 s session timeout is most of it), and the changelog records B's
# restore read and how long it took. Starts a broker (scripts/kafka.sh) unless KAFKA_DIR names a
# running one. ZIPF (default 0: every visitor equally likely, so most events make a new profile)
# shapes the visitors. Needs build/ecrm-load (make build).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
events="${1:-400000}"
visitors="${2:-200000}"
work="$(mktemp -d /tmp/ecrm-failover.XXXXXX)"
started_broker=0
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  if [ "$started_broker" = 1 ]; then "$root/scripts/kafka.sh" stop --dir "$kdir" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
kdir="${KAFKA_DIR:-}"
if [ -z "$kdir" ]; then
  kdir="$work/kafka"
  "$root/scripts/kafka.sh" start --dir "$kdir" >/dev/null
  started_broker=1
fi
brokers="$("$root/scripts/kafka.sh" status --dir "$kdir" | sed -n 's/^KAFKA_BROKERS=//p')"
topic="failover.$(date +%s%N)"
"$root/scripts/kafka.sh" create-topic "$topic" 8 --dir "$kdir" 2>/dev/null
"$root/build/ecrm-load" kafka-produce --kafka-brokers "$brokers" --kafka-topic "$topic" \
  --events "$events" --visitors "$visitors" --zipf "${ZIPF:-0}" >/dev/null
now() { date +%s.%N; }
cluster() { curl -s -H 'Authorization: Bearer at' "http://127.0.0.1:$1/v1/cluster"; }
count() { cluster "$1" | grep -o "\"state\":\"$2\"" | wc -l; }
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
lagging() {  # PORT: partitions active there with a lag (or none measured yet), or standbys behind
  cluster "$1" | grep -oE '"(lag|standby_lag)":-?[0-9]+' | grep -vc ':0$' || true
}
applied() { awk -v a="$(metric "$1" ecrm_events_applied_total)" -v b="$(metric "$2" ecrm_events_applied_total)" 'BEGIN {print a + b}'; }
stop9() { { kill -9 "$1" && wait "$1"; } 2>/dev/null || true; }
for standby in 1 0; do
  group="fo-$standby-$topic"
  port_a=$((20000 + RANDOM % 10000))
  port_b=$((port_a + 1))
  start() {  # NAME PORT
    "${ECRM_BIN:-$root/build/ecrm}" serve --data-dir "$work/$group/$1" --http-addr "127.0.0.1:$2" \
      --advertised-http-addr "127.0.0.1:$2" --instance-id "$1" --read-key rk --admin-token at \
      --kafka-brokers "$brokers" --kafka-topic "$topic" --kafka-dlq-topic "$topic.dlq" \
      --kafka-group "$group" --kafka-profiles-topic '' --standby-replicas "$standby" \
      >"$work/$group-$1.log" 2>&1 &
    pids+=($!)
  }
  start a "$port_a"
  start b "$port_b"
  pid_a=${pids[-2]}
  for _ in $(seq 600); do
    [ "$(count "$port_a" active)" = 4 ] && [ "$(count "$port_b" active)" = 4 ] &&
      [ "$(applied "$port_a" "$port_b")" -ge "$events" ] &&
      [ "$(lagging "$port_a")" = 0 ] && [ "$(lagging "$port_b")" = 0 ] && break
    sleep 1
  done
  [ "$standby" = 1 ] && for _ in $(seq 120); do
    [ "$(count "$port_b" standby)" = 4 ] && [ "$(lagging "$port_b")" = 0 ] && break
    sleep 0.5
  done
  sleep 2
  records_before=$(metric "$port_b" ecrm_changelog_restored_records_total)
  seconds_before=$(metric "$port_b" ecrm_changelog_restore_seconds_sum)
  killed=$(now)
  stop9 "$pid_a"
  until [ "$(count "$port_b" active)" = 8 ] && curl -sf "http://127.0.0.1:$port_b/readyz" >/dev/null; do
    sleep 0.05
  done
  served=$(now)
  records=$(awk -v a="$records_before" -v b="$(metric "$port_b" ecrm_changelog_restored_records_total)" 'BEGIN {print b - a}')
  seconds=$(awk -v a="$seconds_before" -v b="$(metric "$port_b" ecrm_changelog_restore_seconds_sum)" 'BEGIN {printf "%.3f", b - a}')
  printf '== --standby-replicas %s: B serves all 8 partitions %.2f s after the kill; its restore read %s changelog records in %s s\n' \
    "$standby" "$(awk -v a="$killed" -v b="$served" 'BEGIN {print b - a}')" "$records" "$seconds"
  [ "$standby" = 1 ] && echo "   B had tailed $(metric "$port_b" ecrm_standby_records_total) changelog records as a standby"
  stop9 "${pids[-1]}"
done
