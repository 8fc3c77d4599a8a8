#!/usr/bin/env bash
# Single-node Apache Kafka 4.x broker (KRaft, combined broker+controller) for tests.
#
# Jars come from Maven Central through Maven (tests/kafka/pom.xml); no docker,
# no tarball download. Everything binds to 127.0.0.1 only.
#
#   scripts/kafka.sh start          [--dir DIR]  fresh broker; prints KAFKA_BROKERS=127.0.0.1:P
#                                                and KAFKA_SECURE_BROKERS=127.0.0.1:Q (SASL_SSL)
#   scripts/kafka.sh stop           [--dir DIR]  SIGTERM, wait <= 20 s, then SIGKILL
#   scripts/kafka.sh kill           [--dir DIR]  SIGKILL at once (simulated crash)
#   scripts/kafka.sh restart-broker [--dir DIR]  start again, same ports and data, no reformat
#   scripts/kafka.sh create-topic NAME PARTITIONS [--dir DIR]   (idempotent)
#   scripts/kafka.sh status         [--dir DIR]  prints KAFKA_BROKERS=... and exits 0 if answering
#
# DIR defaults to ${TMPDIR:-/tmp}/ecrm-kafka. Files in DIR: server.properties,
# log4j2.properties, classpath-<version>.txt (cached Maven classpath), logs/
# (Kafka data), kafka.log (broker log), tools.log, mvn.log, kafka.pid, brokers.
# The classpath is also cached in ${XDG_CACHE_HOME:-~/.cache}/ecrm-kafka
# (override: ECRM_KAFKA_CACHE) so a fresh DIR skips Maven; jars stay in ~/.m2.
#
# The broker also has a SASL_SSL listener (as managed Kafka services have): TLS with a
# certificate signed by a CA made at start (DIR/ssl/ca.crt), SASL PLAIN (user ecrm) and
# SCRAM-SHA-512 (user ecrm-scram); DIR/secure.env has the address, the CA and the credentials.
#
# Only the KAFKA_BROKERS and KAFKA_SECURE_BROKERS lines go to stdout; progress and errors go to
# stderr.
# Environment: KAFKA_VERSION (overrides the pom's kafka.version),
# KAFKA_HEAP_OPTS (default -Xmx512m -Xms128m), KAFKA_JVM_OPTS (extra JVM flags),
# KAFKA_START_TIMEOUT (seconds, default 60).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
POM="$REPO_ROOT/tests/kafka/pom.xml"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-60}"
STOP_TIMEOUT=20

log() { echo "kafka.sh: $*" >&2; }
die() { echo "kafka.sh: error: $*" >&2; exit 1; }

usage() {
  sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# ---------------------------------------------------------------- arguments
[[ $# -ge 1 ]] || usage
CMD="$1"; shift
DIR="${TMPDIR:-/tmp}/ecrm-kafka"
POSITIONAL=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dir) [[ $# -ge 2 ]] || die "--dir needs a value"; DIR="$2"; shift 2 ;;
    --dir=*) DIR="${1#--dir=}"; shift ;;
    -h|--help) usage ;;
    *) POSITIONAL+=("$1"); shift ;;
  esac
done
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"

PID_FILE="$DIR/kafka.pid"
BROKERS_FILE="$DIR/brokers"
PROPS="$DIR/server.properties"
LOG4J="$DIR/log4j2.properties"
KAFKA_LOG="$DIR/kafka.log"
DATA_DIR="$DIR/logs"

need() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found in PATH${2:+ ($2)}"; }

# ---------------------------------------------------------------- helpers
# PID of our broker if it is alive (and really is a kafka.Kafka on our config).
running_pid() {
  [[ -s "$PID_FILE" ]] || return 1
  local pid; pid="$(cat "$PID_FILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # Guard against PID reuse: the command line must name our server.properties.
  if [[ -r "/proc/$pid/cmdline" ]]; then
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF "$PROPS" || return 1
  fi
  echo "$pid"
}

answering() {  # answering HOST:PORT
  # Cheap TCP probe first (kcat waits its whole timeout on a closed port).
  (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null || return 1
  timeout 10 kcat -b "$1" -L -m 5 >/dev/null 2>&1
}

wait_gone() {  # wait_gone PID SECONDS -> 0 if gone
  local pid="$1" deadline=$((SECONDS + $2))
  while kill -0 "$pid" 2>/dev/null; do
    (( SECONDS < deadline )) || return 1
    sleep 0.2
  done
  return 0
}

port_in_use() {  # port_in_use PORT
  if command -v ss >/dev/null 2>&1; then
    [[ -n "$(ss -Htan "( sport = :$1 )" 2>/dev/null)" ]]
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}

# Random free loopback port below the Linux ephemeral range (32768+), so it
# cannot collide with outgoing connections' source ports.
pick_port() {  # pick_port [EXCLUDE]
  local p i
  for i in $(seq 1 200); do
    p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 12000 ))
    [[ "$p" != "${1:-}" ]] || continue
    port_in_use "$p" || { echo "$p"; return 0; }
  done
  die "could not find a free port on 127.0.0.1"
}

kafka_version() {
  if [[ -n "${KAFKA_VERSION:-}" ]]; then echo "$KAFKA_VERSION"; return; fi
  sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -n1
}

# Resolve (and cache under DIR) the Java classpath; sets CP.
resolve_classpath() {
  need java "install a JDK 17+"
  [[ -f "$POM" ]] || die "missing $POM"
  local ver cpfile
  ver="$(kafka_version)"
  [[ -n "$ver" ]] || die "cannot read kafka.version from $POM"
  cpfile="$DIR/classpath-$ver.txt"
  # Second-level cache shared by all DIRs, keyed by pom content + version, so
  # a fresh DIR does not pay for a Maven run (~3-5 s) every time.
  local key shared_dir shared
  key="$( { cat "$POM"; echo "$ver"; } | sha256sum | cut -c1-16)"
  shared_dir="${ECRM_KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ecrm-kafka}"
  shared="$shared_dir/classpath-$ver-$key.txt"
  if [[ ! ( -s "$cpfile" && "$cpfile" -nt "$POM" ) && -s "$shared" ]]; then
    cp "$shared" "$cpfile"
  fi
  if [[ -s "$cpfile" && "$cpfile" -nt "$POM" ]]; then
    CP="$(cat "$cpfile")"
    local jar ok=1 jars=()
    IFS=':' read -r -a jars <<< "$CP"
    for jar in "${jars[@]}"; do [[ -f "$jar" ]] || { ok=0; break; }; done
    if (( ok )); then return 0; fi
    log "cached classpath refers to missing jars; resolving again"
    rm -f "$shared"
  fi
  export MAVEN_OPTS="${MAVEN_OPTS:--XX:TieredStopAtLevel=1 -XX:+UseSerialGC}"
  need mvn "install Maven 3.8+"
  local mvn_args=(-B -Dstyle.color=never -f "$POM" dependency:build-classpath "-Dmdep.outputFile=$cpfile.tmp")
  [[ -n "${KAFKA_VERSION:-}" ]] && mvn_args+=("-Dkafka.version=$KAFKA_VERSION")
  rm -f "$cpfile.tmp"
  # Warm ~/.m2: offline is fast and touches no network. Cold: go online.
  if ! mvn -o -q "${mvn_args[@]}" >"$DIR/mvn.log" 2>&1; then
    log "resolving Kafka $ver jars from Maven Central (first run downloads ~60 MB)..."
    if ! mvn "${mvn_args[@]}" 2>&1 | tee "$DIR/mvn.log" | grep --line-buffered -E '(Downloaded from .*\.jar|\[ERROR\])' >&2; then
      :
    fi
    [[ -s "$cpfile.tmp" ]] || die "Maven could not resolve Kafka $ver (see $DIR/mvn.log)"
  fi
  [[ -s "$cpfile.tmp" ]] || die "Maven produced no classpath (see $DIR/mvn.log)"
  mv "$cpfile.tmp" "$cpfile"
  CP="$(cat "$cpfile")"
  if mkdir -p "$shared_dir" 2>/dev/null; then
    cp "$cpfile" "$shared.$$" 2>/dev/null && mv -f "$shared.$$" "$shared" 2>/dev/null || true
  fi
}

write_log4j() {
  cat > "$LOG4J" <<'EOF'
# Written by scripts/kafka.sh. File name and level come from system properties.
status = warn
shutdownHook = disable
appender.file.type = File
appender.file.name = FILE
appender.file.append = true
appender.file.fileName = ${sys:ecrm.log.file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = ${sys:ecrm.log.level:-INFO}
rootLogger.appenderRef.file.ref = FILE
EOF
}

PLAIN_USER=ecrm
PLAIN_PASSWORD=ecrm-plain-password
SCRAM_USER=ecrm-scram
SCRAM_PASSWORD=ecrm-scram-password
SSL_DIR="$DIR/ssl"

# A CA and a broker certificate for 127.0.0.1 signed by it, as a PKCS12 keystore.
make_certificates() {
  need openssl
  rm -rf "$SSL_DIR"; mkdir -p "$SSL_DIR"
  (
    cd "$SSL_DIR"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=ecrm test CA" \
      -keyout ca.key -out ca.crt
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout broker.key -out broker.csr
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > san.ext
    openssl x509 -req -in broker.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
      -extfile san.ext -out broker.crt
    openssl pkcs12 -export -in broker.crt -inkey broker.key -certfile ca.crt -name broker \
      -passout pass:changeit -out broker.p12
  ) >"$DIR/ssl.log" 2>&1 || { cat "$DIR/ssl.log" >&2; die "making the test certificates failed"; }
}

write_secure_env() {  # write_secure_env SECURE_PORT
  cat > "$DIR/secure.env" <<EOF
KAFKA_SECURE_BROKERS=127.0.0.1:$1
KAFKA_CA=$SSL_DIR/ca.crt
KAFKA_PLAIN_USER=$PLAIN_USER
KAFKA_PLAIN_PASSWORD=$PLAIN_PASSWORD
KAFKA_SCRAM_USER=$SCRAM_USER
KAFKA_SCRAM_PASSWORD=$SCRAM_PASSWORD
EOF
}

write_props() {  # write_props BROKER_PORT CONTROLLER_PORT SECURE_PORT
  cat > "$PROPS" <<EOF
# Written by scripts/kafka.sh: single-node KRaft (combined broker+controller).
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$2
listeners=PLAINTEXT://127.0.0.1:$1,CONTROLLER://127.0.0.1:$2,SASL_SSL://127.0.0.1:$3
advertised.listeners=PLAINTEXT://127.0.0.1:$1,CONTROLLER://127.0.0.1:$2,SASL_SSL://127.0.0.1:$3
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$PLAIN_USER="$PLAIN_PASSWORD";
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PKCS12
ssl.keystore.location=$SSL_DIR/broker.p12
ssl.keystore.password=changeit
ssl.key.password=changeit
ssl.client.auth=none
log.dirs=$DATA_DIR
num.partitions=4
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
# After a crash (SIGKILL) the restarted broker is refused with
# DUPLICATE_BROKER_REGISTRATION until the old registration's session expires
# (default 9 s); shorter values make restart-broker take ~5 s instead of ~15 s.
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=500
EOF
}

java_tool() {  # java_tool MAINCLASS ARGS... (tool logs -> DIR/tools.log, WARN)
  java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
    "-Dlog4j2.configurationFile=$LOG4J" "-Decrm.log.file=$DIR/tools.log" -Decrm.log.level=WARN \
    -cp "$CP" "$@"
}

format_storage() {
  local cluster_id
  # A Kafka Uuid is 16 random bytes in unpadded base64url (22 chars).
  cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
  rm -rf "$DATA_DIR"
  log "formatting KRaft storage (cluster id $cluster_id)"
  if ! java_tool kafka.tools.StorageTool format --standalone --cluster-id="$cluster_id" -c "$PROPS" \
        --add-scram "SCRAM-SHA-512=[name=$SCRAM_USER,password=$SCRAM_PASSWORD]" \
        >"$DIR/format.log" 2>&1; then
    cat "$DIR/format.log" >&2
    die "kafka.tools.StorageTool format failed"
  fi
}

broker_addr() { sed -n 's/^listeners=PLAINTEXT:\/\/\([^,]*\),.*/\1/p' "$PROPS"; }

# Launch kafka.Kafka detached, then wait until it answers metadata requests.
# Returns 0 when up, 3 if it died with "Address already in use", 1 otherwise.
launch_and_wait() {
  local addr="$1"
  echo "===== $(date '+%F %T') scripts/kafka.sh launching broker on $addr =====" >> "$KAFKA_LOG"
  # shellcheck disable=SC2086
  setsid bash -c 'echo $$ > "$1"; shift; exec "$@"' _ "$PID_FILE" \
    java ${KAFKA_HEAP_OPTS:--Xmx512m -Xms128m} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
      -Djava.awt.headless=true ${KAFKA_JVM_OPTS:-} \
      "-Dlog4j2.configurationFile=$LOG4J" "-Decrm.log.file=$KAFKA_LOG" \
      -cp "$CP" kafka.Kafka "$PROPS" \
    </dev/null >>"$KAFKA_LOG" 2>&1 9>&- &
  local launcher=$! deadline=$((SECONDS + START_TIMEOUT)) pid=""
  while :; do
    if [[ -z "$pid" ]]; then
      if [[ -s "$PID_FILE" ]]; then
        pid="$(cat "$PID_FILE")"
      elif ! kill -0 "$launcher" 2>/dev/null && [[ ! -s "$PID_FILE" ]]; then
        log "could not launch java (see $KAFKA_LOG)"; tail -n 20 "$KAFKA_LOG" >&2; return 1
      fi
    fi
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      wait "$launcher" 2>/dev/null || true
      rm -f "$PID_FILE"
      if tail -n 200 "$KAFKA_LOG" | grep -q 'Address already in use'; then return 3; fi
      log "broker exited during startup; last lines of $KAFKA_LOG:"
      tail -n 30 "$KAFKA_LOG" >&2
      return 1
    fi
    if [[ -n "$pid" ]] && answering "$addr"; then
      echo "$addr" > "$BROKERS_FILE"
      return 0
    fi
    if (( SECONDS >= deadline )); then
      log "broker did not answer on $addr within ${START_TIMEOUT}s; killing it. Last lines of $KAFKA_LOG:"
      tail -n 30 "$KAFKA_LOG" >&2
      [[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null || true
      rm -f "$PID_FILE"
      return 1
    fi
    sleep 0.25
  done
}

# If our broker is alive, print its address and return 0 (waiting if it is
# still starting); return 1 if none runs.
already_running() {
  local pid addr
  pid="$(running_pid)" || return 1
  [[ -f "$PROPS" ]] || return 1
  addr="$(broker_addr)"
  local deadline=$((SECONDS + START_TIMEOUT))
  until answering "$addr"; do
    kill -0 "$pid" 2>/dev/null || return 1
    (( SECONDS < deadline )) || die "broker pid $pid from $DIR runs but does not answer on $addr"
    sleep 0.25
  done
  echo "$addr" > "$BROKERS_FILE"
  echo "KAFKA_BROKERS=$addr"
}

with_lock() {  # serialize commands that change DIR
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$DIR/.lock"
    flock -w 120 9 || die "timed out waiting for lock $DIR/.lock"
  fi
}

# ---------------------------------------------------------------- commands
cmd_start() {
  need kcat "apt-get install kcat"
  with_lock
  already_running && return 0
  if [[ -s "$PID_FILE" ]]; then log "removing stale state in $DIR"; fi
  rm -f "$PID_FILE" "$BROKERS_FILE"
  resolve_classpath
  write_log4j
  : > "$KAFKA_LOG"
  make_certificates
  local attempt bport cport sport rc
  for attempt in 1 2 3; do
    bport="$(pick_port)"
    cport="$(pick_port "$bport")"
    sport="$(pick_port "$cport")"
    [[ "$sport" != "$bport" ]] || sport="$(pick_port "$bport")"
    write_props "$bport" "$cport" "$sport"
    format_storage
    log "starting Kafka $(kafka_version) on 127.0.0.1:$bport (SASL_SSL 127.0.0.1:$sport, controller 127.0.0.1:$cport), log $KAFKA_LOG"
    rc=0; launch_and_wait "127.0.0.1:$bport" || rc=$?
    if (( rc == 0 )); then
      write_secure_env "$sport"
      echo "KAFKA_BROKERS=127.0.0.1:$bport"
      echo "KAFKA_SECURE_BROKERS=127.0.0.1:$sport"
      return 0
    fi
    (( rc == 3 )) || die "Kafka failed to start (see $KAFKA_LOG)"
    log "port collision (attempt $attempt); retrying with other ports"
  done
  die "Kafka failed to start: ports kept colliding"
}

cmd_restart_broker() {
  need kcat "apt-get install kcat"
  with_lock
  already_running && return 0
  [[ -f "$PROPS" && -f "$DATA_DIR/meta.properties" ]] \
    || die "no formatted broker in $DIR; run 'scripts/kafka.sh start --dir $DIR' first"
  rm -f "$PID_FILE"
  resolve_classpath
  write_log4j
  local addr rc attempt
  addr="$(broker_addr)"
  for attempt in $(seq 1 10); do
    log "restarting Kafka on $addr with existing data in $DATA_DIR"
    rc=0; launch_and_wait "$addr" || rc=$?
    if (( rc == 0 )); then
      echo "KAFKA_BROKERS=$addr"
      return 0
    fi
    (( rc == 3 )) || die "Kafka failed to restart on $addr (see $KAFKA_LOG)"
    # The old sockets may linger briefly after a crash; the ports are fixed.
    log "port still in use (attempt $attempt); retrying in 2 s"
    sleep 2
  done
  die "Kafka failed to restart on $addr: port stayed in use"
}

cmd_stop() {
  with_lock
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PID_FILE"; log "no broker running in $DIR"; return 0
  fi
  log "stopping broker pid $pid (SIGTERM)"
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_gone "$pid" "$STOP_TIMEOUT"; then
    log "broker did not stop within ${STOP_TIMEOUT}s; SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || die "pid $pid survived SIGKILL"
  fi
  rm -f "$PID_FILE"
}

cmd_kill() {
  with_lock
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PID_FILE"; log "no broker running in $DIR"; return 0
  fi
  log "killing broker pid $pid (SIGKILL)"
  kill -KILL "$pid" 2>/dev/null || true
  wait_gone "$pid" 10 || die "pid $pid survived SIGKILL"
  rm -f "$PID_FILE"
}

cmd_create_topic() {
  [[ ${#POSITIONAL[@]} -eq 2 ]] || die "usage: scripts/kafka.sh create-topic NAME PARTITIONS [--dir DIR]"
  local name="${POSITIONAL[0]}" parts="${POSITIONAL[1]}" addr
  [[ "$parts" =~ ^[1-9][0-9]*$ ]] || die "PARTITIONS must be a positive integer, got '$parts'"
  running_pid >/dev/null || die "no broker running in $DIR; run 'scripts/kafka.sh start --dir $DIR'"
  addr="$(broker_addr)"
  resolve_classpath
  [[ -f "$LOG4J" ]] || write_log4j
  if ! java_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$addr" \
        --create --if-not-exists --topic "$name" --partitions "$parts" --replication-factor 1 >&2; then
    die "creating topic '$name' failed (see $DIR/tools.log)"
  fi
}

cmd_status() {
  local pid addr
  pid="$(running_pid)" || { log "no broker running in $DIR"; return 1; }
  addr="$(broker_addr)"
  answering "$addr" || { log "broker pid $pid is not answering on $addr"; return 1; }
  echo "KAFKA_BROKERS=$addr"
}

case "$CMD" in
  start)          [[ ${#POSITIONAL[@]} -eq 0 ]] || usage; cmd_start ;;
  restart-broker) [[ ${#POSITIONAL[@]} -eq 0 ]] || usage; cmd_restart_broker ;;
  stop)           [[ ${#POSITIONAL[@]} -eq 0 ]] || usage; cmd_stop ;;
  kill)           [[ ${#POSITIONAL[@]} -eq 0 ]] || usage; cmd_kill ;;
  create-topic)   cmd_create_topic ;;
  status)         [[ ${#POSITIONAL[@]} -eq 0 ]] || usage; cmd_status ;;
  -h|--help|help) usage ;;
  *) log "unknown command '$CMD'"; usage ;;
esac
