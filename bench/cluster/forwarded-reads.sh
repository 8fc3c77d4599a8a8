#!/usr/bin/env bash
# Measures what forwarding adds to a personalization read (docs/cluster.md#any-instance-answers):
#   bench/cluster/forwarded-reads.sh [EVENTS] [VISITORS]
# Fills a topic of 8 partitions (ecrm-load kafka-produce), lets instance A drain it alone, and
# runs `ecrm-load personalize` against A: every read is local. Then instance B joins the group,
# takes half the partitions (restoring them from the changelog), and the same load runs against A
# again: about half of the reads are now forwarded to B. Prints both runs and A's forwarding
# metrics. Starts a broker (scripts/kafka.sh) unless KAFKA_DIR names a running one. Needs
# build/ecrm-load (make build).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
events="${1:-200000}"
visitors="${2:-20000}"
work="$(mktemp -d /tmp/ecrm-fwd.XXXXXX)"
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
topic="fwd.$(date +%s%N)"
"$root/scripts/kafka.sh" create-topic "$topic" 8 --dir "$kdir" 2>/dev/null
"$root/build/ecrm-load" kafka-produce --kafka-brokers "$brokers" --kafka-topic "$topic" \
  --events "$events" --visitors "$visitors" >/dev/null
port_a=$((20000 + RANDOM % 10000))
port_b=$((port_a + 1))
start() {  # NAME PORT
  "${ECRM_BIN:-$root/build/ecrm}" serve --data-dir "$work/$1" --http-addr "127.0.0.1:$2" \
    --advertised-http-addr "127.0.0.1:$2" --instance-id "$1" --read-key rk --admin-token at \
    --kafka-brokers "$brokers" --kafka-topic "$topic" --kafka-dlq-topic "$topic.dlq" \
    --kafka-group "fwd-$topic" >"$work/$1.log" 2>&1 &
  pids+=($!)
}
active() {  # PORT: partitions active there
  curl -s -H 'Authorization: Bearer at' "http://127.0.0.1:$1/v1/cluster" |
    grep -o '"state":"active"' | wc -l
}
start a "$port_a"
"$root/build/ecrm-load" watch --target "127.0.0.1:$port_a" --events "$events" --seconds 300 >/dev/null
load() {
  "$root/build/ecrm-load" personalize --target "127.0.0.1:$port_a" --read-key rk --connections 4 \
    --seconds "${SECONDS_PER_RUN:-10}" --visitors "$visitors" --server-pid "${pids[0]}"
}
echo "== A alone: every read local"
load
start b "$port_b"
for _ in $(seq 120); do
  [ "$(active "$port_a")" = 4 ] && [ "$(active "$port_b")" = 4 ] &&
    curl -sf "http://127.0.0.1:$port_b/readyz" >/dev/null && break
  sleep 0.5
done
sleep 3  # A's view of the owners refreshes every 2 s
echo "== A and B: about half of A's reads forwarded to B"
load
echo "A's forwarding (ecrm_http_forwarded_total, ecrm_http_forward_seconds):"
curl -s "http://127.0.0.1:$port_a/metrics" | grep -E '^ecrm_http_forward(ed_total|_seconds_(sum|count))' | sed 's/^/  /'
