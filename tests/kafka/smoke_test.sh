#!/usr/bin/env bash
# Smoke test for scripts/kafka.sh: start a real KRaft broker, create a topic,
# produce/consume 100 keyed messages with kcat, crash the broker (SIGKILL),
# restart it on the same ports/data, check the messages survived, stop it.
# Exit 0 on success, non-zero with a message on failure (CTest-friendly).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA="$SCRIPT_DIR/../../scripts/kafka.sh"
TOPIC=smoke
N=100

command -v kcat >/dev/null || { echo "smoke_test: kcat not installed (apt-get install kcat)" >&2; exit 1; }

DIR="$(mktemp -d "${TMPDIR:-/tmp}/ecrm-kafka-smoke.XXXXXX")"
t0=$SECONDS
ok=0
cleanup() {
  "$KAFKA" stop --dir "$DIR" >/dev/null 2>&1 || true
  if (( ok )); then rm -rf "$DIR"; else echo "smoke_test: FAILED; broker files kept in $DIR" >&2; fi
}
trap cleanup EXIT

fail() { echo "smoke_test: FAIL: $*" >&2; exit 1; }
step() { echo "smoke_test: [$((SECONDS - t0))s] $*" >&2; }

count_messages() {  # count messages in $TOPIC from the beginning
  timeout 30 kcat -C -b "$BROKERS" -t "$TOPIC" -o beginning -e -q -f '%k=%s\n' 2>"$DIR/kcat.err" \
    | grep -c '^k[0-9]*=v[0-9]*$' || true
}

step "starting broker in $DIR"
out="$("$KAFKA" start --dir "$DIR")" || fail "kafka.sh start failed"
[[ "$(printf '%s\n' "$out" | wc -l)" -eq 1 && "$out" == KAFKA_BROKERS=127.0.0.1:* ]] \
  || fail "start must print exactly one KAFKA_BROKERS= line, got: $out"
BROKERS="${out#KAFKA_BROKERS=}"
[[ "$(cat "$DIR/brokers")" == "$BROKERS" ]] || fail "$DIR/brokers does not match $BROKERS"
[[ -s "$DIR/kafka.pid" ]] || fail "$DIR/kafka.pid missing"

# Idempotent start: same address, no second broker.
again="$("$KAFKA" start --dir "$DIR")" || fail "second start failed"
[[ "$again" == "$out" ]] || fail "second start printed '$again', expected '$out'"

step "creating topic $TOPIC (4 partitions)"
"$KAFKA" create-topic "$TOPIC" 4 --dir "$DIR" 2>/dev/null || fail "create-topic failed"
"$KAFKA" create-topic "$TOPIC" 4 --dir "$DIR" 2>/dev/null || fail "create-topic is not idempotent"
parts="$(kcat -b "$BROKERS" -L -t "$TOPIC" | grep -c 'partition [0-9]*, leader 1')" || true
[[ "$parts" -eq 4 ]] || fail "expected 4 partitions, metadata shows $parts"

step "producing $N keyed messages"
for i in $(seq 1 "$N"); do echo "k$i:v$i"; done \
  | kcat -P -b "$BROKERS" -t "$TOPIC" -K: -X acks=all 2>"$DIR/kcat-produce.err" \
  || fail "kcat produce failed: $(cat "$DIR/kcat-produce.err")"

got="$(count_messages)"
[[ "$got" -eq "$N" ]] || fail "consumed $got messages before crash, expected $N ($(cat "$DIR/kcat.err"))"
step "consumed $got messages"

step "killing broker (SIGKILL)"
"$KAFKA" kill --dir "$DIR" 2>/dev/null || fail "kafka.sh kill failed"
if (exec 3<>"/dev/tcp/${BROKERS%:*}/${BROKERS##*:}") 2>/dev/null; then fail "broker port still open after kill"; fi

step "restarting broker on the same ports"
out2="$("$KAFKA" restart-broker --dir "$DIR")" || fail "kafka.sh restart-broker failed"
[[ "$out2" == "$out" ]] || fail "restart-broker printed '$out2', expected '$out'"

got="$(count_messages)"
[[ "$got" -eq "$N" ]] || fail "consumed $got messages after restart, expected $N ($(cat "$DIR/kcat.err"))"
step "consumed $got messages after restart"

step "stopping broker"
"$KAFKA" stop --dir "$DIR" 2>/dev/null || fail "kafka.sh stop failed"
[[ ! -e "$DIR/kafka.pid" ]] || fail "kafka.pid left behind after stop"
"$KAFKA" stop --dir "$DIR" 2>/dev/null || fail "stop with nothing running must exit 0"

ok=1
step "PASS"
echo "1 passed, 0 failed"
