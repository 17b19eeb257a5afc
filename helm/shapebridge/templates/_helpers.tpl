{{- define "shapebridge.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "shapebridge.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "shapebridge.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The config file shapebridge serves with: the chart's settings, with extraConfig merged over
them. */}}
{{- define "shapebridge.config" -}}
{{- $keys := list -}}
{{- range .Values.auth.jwt.keys -}}
{{- $key := dict "algorithm" .algorithm -}}
{{- $file := printf "/etc/shapebridge/jwt/%s" .file -}}
{{- if eq .algorithm "HS256" -}}
{{- $_ := set $key "secret_file" $file -}}
{{- else -}}
{{- $_ := set $key "public_key_file" $file -}}
{{- end -}}
{{- with .keyId -}}
{{- $_ := set $key "key_id" . -}}
{{- end -}}
{{- $keys = append $keys $key -}}
{{- end -}}
{{- $jwt := dict "keys" $keys -}}
{{- with .Values.auth.jwt.issuer -}}
{{- $_ := set $jwt "issuer" . -}}
{{- end -}}
{{- with .Values.auth.jwt.audience -}}
{{- $_ := set $jwt "audience" . -}}
{{- end -}}
{{- $replication := dict "slot" .Values.replication.slot
                         "publication" .Values.replication.publication
                         "heartbeat_interval_ms" (int .Values.replication.heartbeatIntervalMs) -}}
{{- with .Values.replication.tables -}}
{{- $_ := set $replication "tables" . -}}
{{- end -}}
{{- $config := dict
    "postgres" (dict "dsn" .Values.postgres.dsn)
    "replication" $replication
    "metrics" (dict "listen" (printf "0.0.0.0:%d" (int .Values.service.metricsPort))) -}}
{{- if eq .Values.mode "kafka" -}}
{{/* The replicator role: `replicate` streams the slot into the change topic and, with shapes,
     publishes their logs on the shape topic. */}}
{{- $kafka := dict "bootstrap_servers" .Values.kafka.bootstrapServers
                   "topic_prefix" .Values.kafka.topicPrefix
                   "partitions" (int .Values.kafka.partitions)
                   "replication_factor" (int .Values.kafka.replicationFactor) -}}
{{- with .Values.kafka.properties -}}
{{- $_ := set $kafka "properties" . -}}
{{- end -}}
{{- $_ := set $config "log" (dict "backend" "kafka") -}}
{{- $_ := set $config "kafka" $kafka -}}
{{- with .Values.shapes -}}
{{- $_ := set $config "shapes" . -}}
{{- end -}}
{{- if .Values.servers.enabled -}}
{{/* Server nodes: `serve` follows the shape topic and serves clients. */}}
{{- $_ := set $config "server" (dict "listen" (printf "0.0.0.0:%d" (int .Values.service.grpcPort))) -}}
{{- $_ := set $config "auth" (dict "jwt" $jwt) -}}
{{- with .Values.writeback -}}
{{- $_ := set $config "writeback" . -}}
{{- end -}}
{{- end -}}
{{- else -}}
{{- $_ := set $config "log" (dict "backend" "embedded" "dir" "/var/lib/shapebridge/log") -}}
{{- $_ := set $config "server" (dict "listen" (printf "0.0.0.0:%d" (int .Values.service.grpcPort))) -}}
{{- $_ := set $config "auth" (dict "jwt" $jwt) -}}
{{- $_ := set $config "shapes" .Values.shapes -}}
{{- with .Values.writeback -}}
{{- $_ := set $config "writeback" . -}}
{{- end -}}
{{- end -}}
{{- toYaml (mustMergeOverwrite $config (deepCopy .Values.extraConfig)) -}}
{{- end -}}
