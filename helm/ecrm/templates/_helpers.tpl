{{/*
Names, labels and the pieces of ecrm's configuration that several templates share.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "ecrm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's name for its objects: fullnameOverride, else RELEASE-NAME (the release name
alone when it already contains the chart name). */}}
{{- define "ecrm.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The headless Service that gives each instance its DNS name. */}}
{{- define "ecrm.headlessName" -}}
{{- printf "%s-headless" (include "ecrm.fullname" . | trunc 54 | trimSuffix "-") -}}
{{- end -}}

{{- define "ecrm.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that never change for a release: selectors and volume claim templates (both
immutable in a StatefulSet). */}}
{{- define "ecrm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ecrm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ecrm.labels" -}}
helm.sh/chart: {{ include "ecrm.chart" . }}
{{ include "ecrm.selectorLabels" . }}
app.kubernetes.io/version: {{ include "ecrm.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "ecrm.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end -}}

{{- define "ecrm.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (include "ecrm.imageTag" .) -}}
{{- end -}}
{{- end -}}

{{- define "ecrm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ecrm.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "ecrm.secretName" -}}
{{- default (include "ecrm.fullname" .) .Values.auth.existingSecret -}}
{{- end -}}

{{/* Where the Secret's keys are mounted, and the Kafka TLS files. */}}
{{- define "ecrm.secretsDir" -}}/etc/ecrm/secrets{{- end -}}
{{- define "ecrm.kafkaTlsDir" -}}/etc/ecrm/kafka{{- end -}}

{{/* The keys of the Secret that ecrm reads, one per line: from existingSecretKeys, or those the
chart's Secret has; kafka-password whenever SASL is on. */}}
{{- define "ecrm.secretKeys" -}}
{{- $keys := list -}}
{{- if .Values.auth.existingSecret -}}
{{- $keys = .Values.auth.existingSecretKeys -}}
{{- else -}}
{{- if .Values.auth.adminToken }}{{ $keys = append $keys "admin-token" }}{{ end -}}
{{- if .Values.auth.writeKeys }}{{ $keys = append $keys "write-keys" }}{{ end -}}
{{- if .Values.auth.browserWriteKeys }}{{ $keys = append $keys "browser-write-keys" }}{{ end -}}
{{- if .Values.auth.readKeys }}{{ $keys = append $keys "read-keys" }}{{ end -}}
{{- if .Values.auth.identitySecret }}{{ $keys = append $keys "identity-secret" }}{{ end -}}
{{- end -}}
{{- if and .Values.kafka.sasl.enabled (not (has "kafka-password" $keys)) -}}
{{- $keys = append $keys "kafka-password" -}}
{{- end -}}
{{- join "\n" $keys -}}
{{- end -}}

{{/* The flag that reads each key's file. */}}
{{- define "ecrm.secretFlags" -}}
{{- $flags := dict "admin-token" "--admin-token-file" "write-keys" "--write-keys-file" "browser-write-keys" "--browser-write-keys-file" "read-keys" "--read-keys-file" "identity-secret" "--identity-secret-file" -}}
{{- range splitList "\n" (include "ecrm.secretKeys" .) }}
{{- if hasKey $flags . }}
- {{ get $flags . }}
- {{ include "ecrm.secretsDir" $ }}/{{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* kafka_properties: derived from kafka.sasl and kafka.tls, then kafka.properties. */}}
{{- define "ecrm.kafkaProperties" -}}
{{- $k := .Values.kafka -}}
{{- $p := dict -}}
{{- if and $k.sasl.enabled $k.tls.enabled -}}
{{- $_ := set $p "security.protocol" "SASL_SSL" -}}
{{- else if $k.sasl.enabled -}}
{{- $_ := set $p "security.protocol" "SASL_PLAINTEXT" -}}
{{- else if $k.tls.enabled -}}
{{- $_ := set $p "security.protocol" "SSL" -}}
{{- end -}}
{{- if $k.sasl.enabled -}}
{{- $_ := set $p "sasl.mechanism" $k.sasl.mechanism -}}
{{- $_ := set $p "sasl.username" $k.sasl.username -}}
{{- end -}}
{{- if $k.tls.enabled -}}
{{- if $k.tls.secretName -}}
{{- $_ := set $p "ssl.ca.location" (printf "%s/ca.crt" (include "ecrm.kafkaTlsDir" .)) -}}
{{- if $k.tls.certKey -}}
{{- $_ := set $p "ssl.certificate.location" (printf "%s/tls.crt" (include "ecrm.kafkaTlsDir" .)) -}}
{{- $_ := set $p "ssl.key.location" (printf "%s/tls.key" (include "ecrm.kafkaTlsDir" .)) -}}
{{- end -}}
{{- else -}}
{{- $_ := set $p "ssl.ca.location" "/etc/ssl/certs/ca-certificates.crt" -}}
{{- end -}}
{{- end -}}
{{- range $key, $value := $k.properties -}}
{{- $_ := set $p $key (toString $value) -}}
{{- end -}}
{{- toYaml $p -}}
{{- end -}}

{{- define "ecrm.kafkaPropertyFiles" -}}
{{- $p := dict -}}
{{- if .Values.kafka.sasl.enabled -}}
{{- $_ := set $p "sasl.password" (printf "%s/kafka-password" (include "ecrm.secretsDir" .)) -}}
{{- end -}}
{{- range $key, $value := .Values.kafka.propertyFiles -}}
{{- $_ := set $p $key $value -}}
{{- end -}}
{{- toYaml $p -}}
{{- end -}}

{{/* ecrm.yaml: the operator's config, then the keys the chart owns. */}}
{{- define "ecrm.configFile" -}}
{{- $c := deepCopy .Values.config -}}
{{- $_ := set $c "data_dir" "/var/lib/ecrm" -}}
{{- if .Values.kafka.brokers -}}
{{- $_ := set $c "kafka_brokers" .Values.kafka.brokers -}}
{{- $_ := set $c "kafka_topic" .Values.kafka.topic -}}
{{- $_ := set $c "kafka_group" .Values.kafka.group -}}
{{- $props := include "ecrm.kafkaProperties" . | fromYaml -}}
{{- if $props }}{{ $_ := set $c "kafka_properties" $props }}{{ end -}}
{{- $files := include "ecrm.kafkaPropertyFiles" . | fromYaml -}}
{{- if $files }}{{ $_ := set $c "kafka_property_files" $files }}{{ end -}}
{{- end -}}
{{- toYaml $c -}}
{{- end -}}

{{/* Refuses values that render but cannot run, with a message naming the value. The schema
(values.schema.json) checks each value alone; these checks span several. */}}
{{- define "ecrm.validate" -}}
{{- $v := .Values -}}
{{- $k := $v.kafka -}}
{{- if and (gt (int $v.replicas) 1) (not $k.brokers) -}}
{{- fail (printf "replicas: %d instances need Kafka: set kafka.brokers (without it ecrm runs embedded, and only one instance can)" (int $v.replicas)) -}}
{{- end -}}
{{- if and $k.brokers (gt (int $v.replicas) (int $k.partitions)) -}}
{{- fail (printf "replicas: %d is more than kafka.partitions (%d): an instance beyond the events topic's partition count would get no partition" (int $v.replicas) (int $k.partitions)) -}}
{{- end -}}
{{- if and (not $k.brokers) (or $k.sasl.enabled $k.tls.enabled $k.properties $k.propertyFiles) -}}
{{- fail "kafka.sasl, kafka.tls, kafka.properties and kafka.propertyFiles need kafka.brokers" -}}
{{- end -}}
{{- if and $k.sasl.enabled (not $k.sasl.username) -}}
{{- fail "kafka.sasl.username: required when kafka.sasl.enabled is true" -}}
{{- end -}}
{{- if and (or $k.tls.certKey $k.tls.keyKey) (not (and $k.tls.certKey $k.tls.keyKey $k.tls.secretName)) -}}
{{- fail "kafka.tls.certKey and kafka.tls.keyKey: give both, with kafka.tls.secretName, for mutual TLS" -}}
{{- end -}}
{{- if $v.auth.existingSecret -}}
{{- $keys := $v.auth.existingSecretKeys -}}
{{- if not (has "admin-token" $keys) -}}
{{- fail (printf "auth.existingSecretKeys: must list admin-token (the Secret %s must hold the admin token)" $v.auth.existingSecret) -}}
{{- end -}}
{{- if not (or (has "write-keys" $keys) (has "browser-write-keys" $keys)) -}}
{{- fail (printf "auth.existingSecretKeys: must list write-keys or browser-write-keys (the Secret %s must hold the write keys)" $v.auth.existingSecret) -}}
{{- end -}}
{{- else -}}
{{- if not $v.auth.adminToken -}}
{{- fail "auth.adminToken: required (every instance needs the same admin token), or name a Secret that holds it in auth.existingSecret" -}}
{{- end -}}
{{- if not (or $v.auth.writeKeys $v.auth.browserWriteKeys) -}}
{{- fail "auth.writeKeys (or auth.browserWriteKeys): required (every instance needs the same write keys), or name a Secret that holds them in auth.existingSecret" -}}
{{- end -}}
{{- if and $k.sasl.enabled (not $k.sasl.password) -}}
{{- fail "kafka.sasl.password: required when kafka.sasl.enabled is true, or put it under the key kafka-password of auth.existingSecret" -}}
{{- end -}}
{{- end -}}
{{- end -}}
