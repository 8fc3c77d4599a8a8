#!/usr/bin/env bash
# Checks the monitoring files against promtool and against a running ecrm:
#   1. promtool check rules helm/ecrm/files/alerts.yaml
#   2. promtool test rules tests/monitoring/alerts.test.yaml (every alert fires, and does not)
#   3. the rules' labels and annotations, their runbook anchors in docs/operations.md, and the
#      dashboard's structure; the dashboard's queries through `promtool check rules`
#   4. a real single-node broker (scripts/kafka.sh) and two ecrm instances in one consumer group
#      with --standby-replicas 1, so that the Kafka-mode and standby series exist; one event
#      through the collector; then every metric named in the alerts and the dashboard must be
#      exposed on /metrics, and each scrape must pass `promtool check metrics`.
# Prints every problem and exits 1 if there was one.
#
# Usage: tests/monitoring/run.sh path/to/ecrm
# Environment: PROMTOOL (default /usr/bin/promtool), KEEP=1 keeps the work dir (logs, scrapes).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
[ $# -ge 1 ] || { echo "usage: $0 path/to/ecrm" >&2; exit 2; }
bin="$(realpath "$1")"
promtool="${PROMTOOL:-/usr/bin/promtool}"
alerts="$root/helm/ecrm/files/alerts.yaml"
dashboard="$root/helm/ecrm/files/dashboard.json"
kafka_sh="$root/scripts/kafka.sh"
[ -x "$bin" ] || { echo "ecrm binary not found: $bin" >&2; exit 2; }
[ -x "$promtool" ] || { echo "$promtool not found: apt-get install prometheus, or set PROMTOOL" >&2; exit 2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/ecrm-monitoring.XXXXXX")"
pids=()
cleanup() {
  local pid i
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for i in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  bash "$kafka_sh" stop --dir "$work/kafka" >/dev/null 2>&1 || true
  if [ "${KEEP:-0}" = 1 ]; then echo "work dir kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

started=$SECONDS
failed=()
step() { printf '\n== %s\n' "$*"; }
fail() { failed+=("$1"); echo "FAILED: $1"; }

# ---------------------------------------------------------------- 1-3: files
step "promtool check rules $(basename "$alerts")"
"$promtool" check rules "$alerts" || fail "promtool check rules"

step "promtool test rules alerts.test.yaml"
"$promtool" test rules "$here/alerts.test.yaml" || fail "promtool test rules"

step "labels, annotations, runbook anchors, dashboard structure"
python3 "$here/monitoring_check.py" static "$alerts" "$dashboard" "$root/docs/operations.md" \
  "$work" || fail "static checks"
if [ -f "$work/dashboard-rules.yaml" ]; then
  "$promtool" check rules "$work/dashboard-rules.yaml" >"$work/dashboard-rules.out" 2>&1 ||
    { cat "$work/dashboard-rules.out"; fail "dashboard queries (promtool check rules)"; }
  grep -h 'SUCCESS' "$work/dashboard-rules.out" | sed 's/rules found/dashboard queries parse/' || true
fi
[ -f "$work/selectors.json" ] || { echo "no selectors to check"; exit 1; }

# ---------------------------------------------------------------- 4: a running ecrm
step "broker and two ecrm instances"
brokers="$(bash "$kafka_sh" start --dir "$work/kafka" | sed -n 's/^KAFKA_BROKERS=//p')"
[ -n "$brokers" ] || { echo "kafka broker did not start (log: $work/kafka/kafka.log)"; exit 1; }
bash "$kafka_sh" create-topic ecrm.events 2 --dir "$work/kafka" >/dev/null
echo "broker $brokers, topic ecrm.events with 2 partitions"

start_ecrm() {  # NAME: starts an instance with data dir $work/NAME
  mkdir -p "$work/$1"
  "$bin" serve --data-dir "$work/$1" --http-addr 127.0.0.1:0 --kafka-brokers "$brokers" \
    --instance-id "monitoring-$1" --standby-replicas 1 --workers 1 --http-threads 1 \
    --write-key sk_test --admin-token at_test --read-key rk_test \
    >"$work/$1/ecrm.log" 2>&1 &
  pids+=($!)
}
addr_of() {  # NAME: waits for the bound address in $work/NAME/ecrm.addr and prints it
  local i
  for i in $(seq 1 600); do
    if [ -s "$work/$1/ecrm.addr" ]; then head -n1 "$work/$1/ecrm.addr"; return 0; fi
    sleep 0.1
  done
  return 1
}
wait_ready() {  # ADDR NAME
  local i
  for i in $(seq 1 900); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$1/readyz")" = 200 ] && return 0
    sleep 0.1
  done
  echo "$2 ($1) not ready after 90 s; its log:"; tail -n 30 "$work/$2/ecrm.log"
  return 1
}
logs_and_exit() { for n in a b; do echo "--- $n"; tail -n 30 "$work/$n/ecrm.log" 2>/dev/null; done; exit 1; }

start_ecrm a
start_ecrm b
addr_a="$(addr_of a)" || { echo "instance a did not start"; logs_and_exit; }
addr_b="$(addr_of b)" || { echo "instance b did not start"; logs_and_exit; }
wait_ready "$addr_a" a || logs_and_exit
wait_ready "$addr_b" b || logs_and_exit
echo "a on $addr_a, b on $addr_b: ready after $((SECONDS - started)) s"

code="$(curl -s -o "$work/track.out" -w '%{http_code}' -u sk_test: -H 'Content-Type: application/json' \
  -d '{"anonymousId":"monitoring-1","messageId":"monitoring-1","event":"Product Viewed","properties":{"product_id":"1","category":"Monitoring"}}' \
  "http://$addr_a/v1/track")"
[ "$code" = 200 ] || { echo "POST /v1/track answered $code: $(cat "$work/track.out")"; logs_and_exit; }
curl -s -o /dev/null -H 'Authorization: Bearer rk_test' "http://$addr_b/v1/personalize/anonymous_id:monitoring-1" || true

step "every metric in the alerts and the dashboard is exposed"
# Lag and standby series appear once partitions are assigned and the standby placement is seen
# (every 2 s): scrape until nothing is missing, for at most 30 s.
for i in $(seq 1 30); do
  curl -sf "http://$addr_a/metrics" >"$work/metrics-a.txt" || true
  curl -sf "http://$addr_b/metrics" >"$work/metrics-b.txt" || true
  python3 "$here/monitoring_check.py" live "$work/selectors.json" "$work/metrics-a.txt" \
    "$work/metrics-b.txt" >"$work/live.out" 2>&1 && break
  sleep 1
done
cat "$work/live.out"
grep -q '^MISSING:' "$work/live.out" && fail "metrics not exposed"
grep -q 'matches no exposed series' "$work/live.out" && fail "selectors that match no series"

step "promtool check metrics"
for n in a b; do
  if "$promtool" check metrics <"$work/metrics-$n.txt" >"$work/lint-$n.out" 2>&1; then
    echo "instance $n: $(grep -c '^# TYPE' "$work/metrics-$n.txt") metric families, no problems"
  else
    cat "$work/lint-$n.out"; fail "promtool check metrics (instance $n)"
  fi
done

printf '\n%s s in all\n' "$((SECONDS - started))"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED:'; printf ' [%s]' "${failed[@]}"; printf '\n'
  exit 1
fi
echo "PASSED"
