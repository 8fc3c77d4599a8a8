#!/usr/bin/env bash
# Offline tests of the Helm chart helm/ecrm: no cluster, no network once the tools are cached.
#
#   tests/helm/run.sh [ECRM]   # exits 1 if any check fails, naming it; ends with "helm: N passed, M failed"
#
# 1. helm lint --strict with the default values (plus the keys they must be given) and with each
#    set in tests/helm/values/.
# 2. helm template of each set, decoded strictly into the Kubernetes API Go types and checked for
#    consistency by tests/helm/decode (selectors, named ports, volumes, Secret keys).
# 3. Assertions on the rendered objects (the decoder's flattened "Kind/name path=value" lines).
# 4. Bad values that must fail, with a message naming the value.
# 5. With the ecrm binary given: ecrm started from each rendered pod's args, config and secrets
#    (tests/helm/run_rendered.py): embedded sets become ready and take the Secret's keys; Kafka
#    sets stay alive and not ready while their (absent) brokers do not answer.
#
# Tools, cached outside the tree: helm (scripts/install-helm.sh, a few minutes once) and the
# decoder, built once into $ECRM_CACHE_DIR/helm-decode-<hash of its sources and of Go>/ (about
# 15 s). With both cached the run takes a few seconds.

# Patterns hold a literal $ on purpose, and sed indents multi-line messages:
# shellcheck disable=SC2016,SC2001
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
ecrm_bin="${1:+$(realpath "$1")}"
repo="$(cd "$here/../.." && pwd)"
chart="$repo/helm/ecrm"
values="$here/values"
cache="${ECRM_CACHE_DIR:-${HOME:-/root}/.cache/ecrm}"

helm="$("$repo/scripts/install-helm.sh")" || { echo "helm: FAIL: cannot install helm"; exit 1; }

go="${GO:-/usr/local/go/bin/go}"
[ -x "$go" ] || go="$(command -v go)" || { echo "helm: FAIL: Go is needed once to build tests/helm/decode"; exit 1; }
hash="$( (cd "$here/decode" && cat go.mod go.sum ./*.go && "$go" version) | sha256sum | cut -c1-16)"
decode="$cache/helm-decode-$hash/decode"
if [ ! -x "$decode" ]; then
  echo "helm: building the decoder into $(dirname "$decode") (once)" >&2
  mkdir -p "$cache"
  tmp_build="$(mktemp -d "$cache/.helm-decode.XXXXXX")"
  if ! (cd "$here/decode" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" \
    "$go" build -trimpath -o "$tmp_build/decode" .); then
    rm -rf "$tmp_build"
    echo "helm: FAIL: cannot build tests/helm/decode"
    exit 1
  fi
  mv -T "$tmp_build" "$(dirname "$decode")" 2>/dev/null || rm -rf "$tmp_build"
  # Builds of older sources.
  find "$cache" -maxdepth 1 -name 'helm-decode-*' ! -name "helm-decode-$hash" -exec rm -rf {} +
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
ok() { passed=$((passed + 1)); }
bad() {
  failed=$((failed + 1))
  echo "FAIL: $*"
}

# The keys the default values lack (the chart refuses to render without them).
keys=(--set auth.adminToken=at_test --set 'auth.writeKeys={sk_test}')
render() { "$helm" template ecrm "$chart" --namespace shop "$@"; }

# --- 1 and 2: lint, render, decode ---------------------------------------------------------------
# set NAME, then helm's value arguments.
sets=()
add_set() {
  local name="$1"
  shift
  sets+=("$name")
  local out
  if out="$("$helm" lint --strict "$chart" --namespace shop "$@" 2>&1)"; then ok; else
    bad "lint --strict $name:"
    echo "$out" | sed 's/^/    /'
  fi
  if ! render "$@" > "$work/$name.yaml" 2> "$work/$name.err"; then
    bad "template $name:"
    sed 's/^/    /' "$work/$name.err"
    : > "$work/$name.flat"
    return
  fi
  if out="$("$decode" -flat "$work/$name.flat" < "$work/$name.yaml" 2>&1)"; then ok; else
    bad "decode $name:"
    echo "$out" | sed 's/^/    /'
  fi
}
add_set default "${keys[@]}"
add_set single -f "$values/single.yaml"
add_set cluster -f "$values/cluster-sasl-monitoring.yaml"
add_set existing -f "$values/existing-secret.yaml"

# --- 3: assertions -------------------------------------------------------------------------------
# has SET LINE: the rendered SET has exactly this line. lacks SET REGEX: no line matches.
# matches SET REGEX: some line matches.
has() {
  if grep -Fxq -- "$2" "$work/$1.flat"; then ok; else bad "$1: no line '$2'"; fi
}
matches() {
  if grep -Eq -- "$2" "$work/$1.flat"; then ok; else bad "$1: no line matches /$2/"; fi
}
lacks() {
  if ! grep -Eq -- "$2" "$work/$1.flat"; then ok; else
    bad "$1: unexpected line(s) matching /$2/:"
    grep -E -- "$2" "$work/$1.flat" | head -3 | cut -c1-200 | sed 's/^/    /'
  fi
}

sts=StatefulSet/ecrm
pod="$sts spec.template.spec"
ctr="$pod.containers[0]"
cfg='ConfigMap/ecrm data["ecrm.yaml"]>'

# Every set: the pod's shape.
for s in "${sets[@]}"; do
  p="$pod" c="$ctr" st="$sts"
  if [ "$s" = existing ]; then
    st=StatefulSet/profiles p="StatefulSet/profiles spec.template.spec" c="StatefulSet/profiles spec.template.spec.containers[0]"
  fi
  has "$s" "$st spec.podManagementPolicy=Parallel"
  has "$s" "$p.terminationGracePeriodSeconds=60"
  has "$s" "$p.securityContext.runAsNonRoot=true"
  has "$s" "$p.securityContext.runAsUser=65532"
  has "$s" "$p.securityContext.fsGroup=65532"
  has "$s" "$p.securityContext.seccompProfile.type=RuntimeDefault"
  has "$s" "$p.automountServiceAccountToken=false"
  has "$s" "$c.securityContext.readOnlyRootFilesystem=true"
  has "$s" "$c.securityContext.allowPrivilegeEscalation=false"
  has "$s" "$c.securityContext.capabilities.drop[0]=ALL"
  has "$s" "$c.image=ecrm:0.1.0"
  has "$s" "$c.imagePullPolicy=IfNotPresent"
  has "$s" "$c.ports[0].name=http"
  has "$s" "$c.ports[0].containerPort=8080"
  has "$s" "$c.startupProbe.httpGet.path=/healthz"
  has "$s" "$c.livenessProbe.httpGet.path=/healthz"
  has "$s" "$c.readinessProbe.httpGet.path=/readyz"
  matches "$s" "^$st spec\.template\.spec\.containers\[0\]\.startupProbe\.failureThreshold=([3-9][0-9]|[0-9]{3,})$"
  matches "$s" "args\(joined\)=serve --config /etc/ecrm/ecrm.yaml --http-addr 0\.0\.0\.0:8080 --instance-id \\\$\(POD_NAME\) --advertised-http-addr \\\$\(POD_NAME\)\.[a-z-]+-headless\.\\\$\(POD_NAMESPACE\)\.svc\.cluster\.local:8080 "
  matches "$s" "args\(joined\)=.* --admin-token-file /etc/ecrm/secrets/admin-token( |$)"
  matches "$s" "args\(joined\)=.* --write-keys-file /etc/ecrm/secrets/write-keys( |$)"
  has "$s" "$c.env[0].name=POD_NAME"
  has "$s" "$c.env[0].valueFrom.fieldRef.fieldPath=metadata.name"
  matches "$s" "containers\[0\]\.volumeMounts\[[0-9]+\]\.mountPath=/var/lib/ecrm$"
  matches "$s" "containers\[0\]\.volumeMounts\[[0-9]+\]\.mountPath=/etc/ecrm/ecrm.yaml$"
  matches "$s" "containers\[0\]\.volumeMounts\[[0-9]+\]\.mountPath=/etc/ecrm/secrets$"
  matches "$s" "containers\[0\]\.resources\.limits\.memory="
  matches "$s" "containers\[0\]\.resources\.requests\.cpu="
  matches "$s" "spec\.template\.spec\.topologySpreadConstraints\[0\]\.topologyKey=kubernetes\.io/hostname$"
  matches "$s" "spec\.template\.metadata\.annotations\[\"checksum/config\"\]=[0-9a-f]{64}$"
  matches "$s" "spec\.volumeClaimTemplates\[0\]\.spec\.resources\.requests\.storage="
  matches "$s" "^PodDisruptionBudget/[a-z-]+ spec\.maxUnavailable=1$"
  matches "$s" "^Service/[a-z-]+-headless spec\.clusterIP=None$"
  matches "$s" "^Service/[a-z-]+-headless spec\.publishNotReadyAddresses=true$"
  matches "$s" "metadata\.labels\[\"helm\.sh/chart\"\]=ecrm-0\.1\.0$"
  matches "$s" "metadata\.labels\[\"app\.kubernetes\.io/managed-by\"\]=Helm$"
  matches "$s" "^ConfigMap/[a-z-]+ data\[\"ecrm\.yaml\"\]>data_dir=/var/lib/ecrm$"
  # Keys and tokens never go into the ConfigMap.
  lacks "$s" "^ConfigMap/[a-z-]+ data\[\"ecrm\.yaml\"\]>(admin_token|write_keys|browser_write_keys|read_keys)"
  # The claim template carries only the labels that never change (it cannot be updated).
  lacks "$s" "volumeClaimTemplates\[0\]\.metadata\.labels\[\"(helm\.sh/chart|app\.kubernetes\.io/version)\"\]"
done

# Defaults: one instance, embedded, nothing of monitoring.
has default "$sts spec.replicas=1"
has default "$sts spec.volumeClaimTemplates[0].spec.resources.requests.storage=10Gi"
has default "${cfg}log_format=json"
lacks default "^(PrometheusRule|ServiceMonitor)/"
lacks default "^ConfigMap/ecrm-dashboard "
lacks default "kafka_"

# single: embedded, every kind of key from the chart's Secret.
has single "$sts spec.replicas=1"
has single "${cfg}partitions=16"
has single "${cfg}log_format=text"
has single "${cfg}sync_writes=true"
has single "$sts spec.volumeClaimTemplates[0].spec.storageClassName=fast-ssd"
has single 'Secret/ecrm data.browser-write-keys>=wk_single_a\nwk_single_b\n'
has single 'Secret/ecrm data.admin-token>=at_single_admin\n'
matches single "args\(joined\)=.* --browser-write-keys-file /etc/ecrm/secrets/browser-write-keys( |$)"
matches single "args\(joined\)=.* --read-keys-file /etc/ecrm/secrets/read-keys( |$)"
matches single "args\(joined\)=.* --identity-secret-file /etc/ecrm/secrets/identity-secret( |$)"
lacks single "^PrometheusRule/"
lacks single "kafka"

# cluster: three instances on SASL_SSL with a CA, standby copies, monitoring.
has cluster "$sts spec.replicas=3"
has cluster "${cfg}kafka_brokers=kafka-0.kafka.data:9093,kafka-1.kafka.data:9093,kafka-2.kafka.data:9093"
has cluster "${cfg}kafka_topic=shop.events"
has cluster "${cfg}kafka_group=shop-ecrm"
has cluster "${cfg}standby_replicas=1"
has cluster "${cfg}kafka_properties[\"security.protocol\"]=SASL_SSL"
has cluster "${cfg}kafka_properties[\"sasl.mechanism\"]=SCRAM-SHA-512"
has cluster "${cfg}kafka_properties[\"sasl.username\"]=ecrm"
has cluster "${cfg}kafka_properties[\"ssl.ca.location\"]=/etc/ecrm/kafka/ca.crt"
has cluster "${cfg}kafka_properties[\"socket.keepalive.enable\"]=true"
has cluster "${cfg}kafka_property_files[\"sasl.password\"]=/etc/ecrm/secrets/kafka-password"
has cluster 'Secret/ecrm data.kafka-password>=kafka-secret-password'
lacks cluster "^ConfigMap/.*kafka-secret-password"
lacks cluster "^StatefulSet/.*kafka-secret-password"
matches cluster "^$sts spec\.template\.spec\.volumes\[[0-9]+\]\.secret\.items\[[0-9]+\]\.key=kafka-password$"
matches cluster "^$sts spec\.template\.spec\.volumes\[[0-9]+\]\.secret\.secretName=kafka-cluster-ca$"
matches cluster "containers\[0\]\.volumeMounts\[[0-9]+\]\.mountPath=/etc/ecrm/kafka$"
matches cluster "spec\.template\.metadata\.annotations\[\"checksum/secret\"\]=[0-9a-f]{64}$"
has cluster "$sts spec.persistentVolumeClaimRetentionPolicy.whenScaled=Delete"
has cluster "ServiceMonitor/ecrm metadata.labels.release=kube-prometheus-stack"
has cluster "ServiceMonitor/ecrm spec.endpoints[0].path=/metrics"
has cluster "ServiceMonitor/ecrm spec.selector.matchLabels[\"app.kubernetes.io/component\"]=instances"
has cluster "ServiceMonitor/ecrm spec.endpoints[0].relabelings[0].replacement=ecrm"
has cluster "PrometheusRule/ecrm metadata.labels.release=kube-prometheus-stack"
matches cluster "^PrometheusRule/ecrm spec\.groups\[0\]\.rules\[0\]\.alert=Ecrm"
has cluster 'ConfigMap/ecrm-dashboard metadata.labels.grafana_dashboard=1'
has cluster 'ConfigMap/ecrm-dashboard metadata.annotations.grafana_folder=Shop'
matches cluster '^ConfigMap/ecrm-dashboard data\["ecrm\.json"\]>title='
# Every alert of files/alerts.yaml is in the PrometheusRule, its {{ $labels }} left for Prometheus.
want_alerts="$(grep -cE '^[[:space:]]*-[[:space:]]+alert:' "$chart/files/alerts.yaml")"
got_alerts="$(grep -cE '^PrometheusRule/ecrm spec\.groups\[[0-9]+\]\.rules\[[0-9]+\]\.alert=' "$work/cluster.flat")"
if [ "$want_alerts" -gt 0 ] && [ "$want_alerts" = "$got_alerts" ]; then ok; else
  bad "cluster: the PrometheusRule has $got_alerts alerts, files/alerts.yaml $want_alerts"
fi
if grep -q '{{ \$labels' "$chart/files/alerts.yaml"; then
  matches cluster '^PrometheusRule/ecrm .*annotations\.(summary|description)=.*\{\{ \$labels\.'
fi

# existing: the operator's Secret, mutual TLS, names from fullnameOverride.
e=StatefulSet/profiles
ecfg='ConfigMap/profiles data["ecrm.yaml"]>'
has existing "$e spec.replicas=2"
has existing "$e spec.serviceName=profiles-headless"
lacks existing "^Secret/"
matches existing "^$e spec\.template\.spec\.volumes\[[0-9]+\]\.secret\.secretName=ecrm-credentials$"
matches existing "^$e spec\.template\.spec\.volumes\[[0-9]+\]\.secret\.items\[[0-9]+\]\.key=identity-secret$"
lacks existing "secret\.items\[[0-9]+\]\.key=kafka-password$"
lacks existing "checksum/secret"
matches existing "args\(joined\)=.* --browser-write-keys-file /etc/ecrm/secrets/browser-write-keys( |$)"
matches existing "args\(joined\)=.*profiles-headless"
has existing "${ecfg}kafka_properties[\"security.protocol\"]=SSL"
has existing "${ecfg}kafka_properties[\"ssl.certificate.location\"]=/etc/ecrm/kafka/tls.crt"
has existing "${ecfg}kafka_properties[\"ssl.key.location\"]=/etc/ecrm/kafka/tls.key"
matches existing "secret\.items\[[0-9]+\]\.key=user\.crt$"
lacks existing "kafka_property_files"
has existing "$e spec.template.metadata.annotations[\"example.com/team\"]=shop"
has existing "$e spec.template.spec.topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule"

# The chart speaks ecrm's language: every key it writes into ecrm.yaml, every config key the
# schema allows, and every flag in the pods' args is one that ecrm's parser (app/config.cc) knows.
ecrm_keys="$(grep -oE 'add\("--[a-z-]+", "[a-z_]+"' "$repo/app/config.cc" | sed -E 's/.*"([a-z_]+)"$/\1/')
kafka_properties
kafka_property_files"
if [ "$(wc -l <<<"$ecrm_keys")" -lt 20 ]; then
  bad "cannot read ecrm's config keys from app/config.cc (add(\"--flag\", \"key\", ...) calls)"
fi
used_keys="$(cat "$work"/*.flat | sed -nE 's/^ConfigMap\/[a-z-]+ data\["ecrm\.yaml"\]>([a-z_]+).*/\1/p' | sort -u)"
schema_keys="$(awk '/^    "config": \{/ {on = 1; next} on && /^    \}/ {exit}
  on && /^        "[a-z_]+": \{/ {gsub(/[" :{]/, ""); print}' "$chart/values.schema.json")"
[ -n "$schema_keys" ] || bad "cannot read the config keys of values.schema.json"
for key in $used_keys $schema_keys; do
  if grep -qx -- "$key" <<<"$ecrm_keys"; then ok; else bad "config key $key is not one of ecrm's (app/config.cc)"; fi
done
flags="$(sed -n 's/.*args(joined)=//p' "$work"/*.flat | grep -oE -- '(^| )--[a-z-]+' | tr -d ' ' | sort -u)"
[ -n "$flags" ] || bad "no flag found in the pods' args"
for flag in $flags; do
  if grep -qF -- "\"$flag\"" "$repo/app/config.cc"; then ok; else bad "flag $flag is not one of ecrm serve's (app/config.cc)"; fi
done

# The checksums roll the pods on a change of the config or of the Secret, and only then.
sum_of() { # KIND values...: the checksum annotation's value
  local kind="$1"
  shift
  render "$@" 2>/dev/null | sed -n "s/^ *checksum\/$kind: //p"
}
c0="$(sum_of config "${keys[@]}")" s0="$(sum_of secret "${keys[@]}")"
c1="$(sum_of config "${keys[@]}" --set config.log_level=debug)" s1="$(sum_of secret "${keys[@]}" --set config.log_level=debug)"
c2="$(sum_of config "${keys[@]}" --set auth.adminToken=at_other)" s2="$(sum_of secret "${keys[@]}" --set auth.adminToken=at_other)"
if [ -n "$c0" ] && [ -n "$s0" ] && [ "$c0" != "$c1" ] && [ "$s0" = "$s1" ] && [ "$c0" = "$c2" ] && [ "$s0" != "$s2" ]; then ok; else
  bad "checksums: a config change must change only checksum/config, a key change only checksum/secret ($c0 $c1 $c2 / $s0 $s1 $s2)"
fi

# The decoder itself fails on what it must catch (else every check above could pass vacuously).
decoder_rejects() { # NAME SED-EXPR EXPECTED-TEXT
  local out
  if out="$(sed "$2" "$work/default.yaml" | "$decode" 2>&1)"; then
    bad "decoder accepted $1"
  elif grep -qF -- "$3" <<<"$out"; then ok; else
    bad "decoder's message for $1 lacks '$3': $out"
  fi
}
decoder_rejects "a field in the wrong case" 's/^  serviceName:/  servicename:/' 'StatefulSet/ecrm: unknown field "spec.servicename"'
decoder_rejects "an unknown field" 's/^  podManagementPolicy:/  podManagementPolicies:/' 'unknown field "spec.podManagementPolicies"'
decoder_rejects "a wrong type" 's/^  replicas: 1$/  replicas: "one"/' 'StatefulSet/ecrm'
decoder_rejects "a Secret key the Secret lacks" 's/- key: write-keys/- key: write-key/' 'Secret "ecrm" has no key "write-key"'
decoder_rejects "a probe on an unknown port" 's/port: http$/port: web/' 'no container port named "web"'

# NOTES.txt (helm template leaves it out): rendered through a copy of the chart with one more
# template that includes it.
mkdir -p "$work/notes-chart"
cp -r "$chart" "$work/notes-chart/ecrm"
printf '%s\n' 'notes: |' '{{ include "ecrm/templates/NOTES.txt" . | indent 2 }}' \
  > "$work/notes-chart/ecrm/templates/zz-notes.yaml"
notes_of() {
  "$helm" template ecrm "$work/notes-chart/ecrm" --namespace shop --show-only templates/zz-notes.yaml "$@" 2>&1 |
    sed -n '/^notes: |$/,$p' | sed '1d; s/^  //'
}
for s in default cluster; do
  if [ "$s" = default ]; then notes="$(notes_of "${keys[@]}")"; else notes="$(notes_of -f "$values/cluster-sasl-monitoring.yaml")"; fi
  for want in "kubectl -n shop port-forward svc/ecrm 8080:8080" "curl http://127.0.0.1:8080/healthz" \
    "curl http://127.0.0.1:8080/readyz" 'curl -H "Authorization: Bearer $AT" http://127.0.0.1:8080/v1/cluster' \
    "get secret ecrm -o jsonpath='{.data.admin-token}'"; do
    if grep -qF -- "$want" <<<"$notes"; then ok; else bad "NOTES.txt ($s) lacks '$want'"; fi
  done
done
if grep -qF -- "--partitions 12" <<<"$notes"; then ok; else bad "NOTES.txt (cluster) does not say to create the topic with 12 partitions"; fi

# --- 4: bad values -------------------------------------------------------------------------------
# refuses NAME EXPECTED-TEXT values...: helm template fails, and its message has the text.
refuses() {
  local name="$1" want="$2"
  shift 2
  local out
  if out="$(render "$@" 2>&1 >/dev/null)"; then
    bad "bad values accepted: $name"
  elif grep -qF -- "$want" <<<"$out"; then ok; else
    bad "bad values '$name': the message lacks '$want':"
    echo "$out" | sed 's/^/    /'
  fi
}
refuses "replicas 0" "'/replicas': minimum" "${keys[@]}" --set replicas=0
refuses "replicas 9 on 8 partitions" "replicas: 9 is more than kafka.partitions (8)" \
  "${keys[@]}" --set replicas=9 --set kafka.partitions=8 --set kafka.brokers=k:9092
refuses "replicas 3 without Kafka" "set kafka.brokers" "${keys[@]}" --set replicas=3
refuses "persistence.size lots" "'/persistence/size': 'lots' does not match" "${keys[@]}" --set persistence.size=lots
refuses "an unknown top-level key" "additional properties 'replicaCount' not allowed" "${keys[@]}" --set replicaCount=3
refuses "an unknown config key" "additional properties 'http_adr' not allowed" "${keys[@]}" --set config.http_adr=x
refuses "a token in the ConfigMap" "additional properties 'admin_token' not allowed" "${keys[@]}" --set config.admin_token=x
refuses "log_format xml" "'/config/log_format': value must be one of 'text', 'json'" "${keys[@]}" --set config.log_format=xml
refuses "a wrong type" "'/config/workers'" "${keys[@]}" --set config.workers=many
refuses "kafka.brokers without a port" "'/kafka/brokers'" "${keys[@]}" --set kafka.brokers=kafka
refuses "no secrets and no existingSecret" "auth.adminToken: required" 
refuses "no write key" "auth.writeKeys (or auth.browserWriteKeys): required" --set auth.adminToken=at_x
refuses "SASL without a password" "kafka.sasl.password: required" \
  "${keys[@]}" --set kafka.brokers=k:9092 --set kafka.sasl.enabled=true --set kafka.sasl.username=u
refuses "SASL without Kafka" "need kafka.brokers" "${keys[@]}" --set kafka.sasl.enabled=true --set kafka.sasl.username=u
refuses "an existingSecret without the admin token" "auth.existingSecretKeys: must list admin-token" \
  --set auth.existingSecret=mine --set 'auth.existingSecretKeys={write-keys}'
refuses "a key kind that does not exist" "'/auth/existingSecretKeys/0'" \
  --set auth.existingSecret=mine --set 'auth.existingSecretKeys={admin-tokens}'
refuses "a client certificate without its key" "kafka.tls.certKey and kafka.tls.keyKey" \
  "${keys[@]}" --set kafka.brokers=k:9092 --set kafka.tls.enabled=true --set kafka.tls.secretName=s --set kafka.tls.certKey=tls.crt
refuses "a Kafka property ecrm sets itself" "invalid propertyName 'group.id'" \
  "${keys[@]}" --set kafka.brokers=k:9092 --set 'kafka.properties.group\.id=x'
refuses "a pull policy that does not exist" "'/image/pullPolicy'" "${keys[@]}" --set image.pullPolicy=Sometimes

# --- the real binary started as each rendered pod would start it --------------------------------
# (with the ecrm binary as the first argument, as ctest passes it)
if [ -n "${ecrm_bin:-}" ]; then
  for name in "${sets[@]}"; do
    [ -s "$work/$name.yaml" ] || continue
    if out="$(python3 "$here/run_rendered.py" "$ecrm_bin" "$work/$name.yaml" "$name" 2>&1)"; then ok; else
      bad "ecrm started from the rendered $name:"
      echo "$out" | sed 's/^/    /'
    fi
  done
fi

echo "helm: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
