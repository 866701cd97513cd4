{{/* Names */}}
{{- define "cairn.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cairn.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "cairn.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The name of a role's objects: (dict "root" $ "role" "collector") */}}
{{- define "cairn.roleName" -}}
{{- printf "%s-%s" (include "cairn.fullname" .root) .role -}}
{{- end -}}

{{/* Labels: (dict "root" $ "role" "collector") */}}
{{- define "cairn.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cairn.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .role }}
{{- end -}}

{{- define "cairn.labels" -}}
{{ include "cairn.selectorLabels" . }}
helm.sh/chart: {{ include "cairn.chart" .root }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: cairn
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "cairn.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The mode, checked. */}}
{{- define "cairn.distributed" -}}
{{- if eq .Values.mode "distributed" -}}true
{{- else if ne .Values.mode "single" -}}
{{- fail (printf "mode must be `distributed` or `single`, not %q" .Values.mode) -}}
{{- end -}}
{{- end -}}

{{/* A memory quantity (512Mi, 4Gi, 1.5Gi, 2G, 4294967296) in whole MiB. */}}
{{- define "cairn.mib" -}}
{{- $q := . -}}
{{- if or (kindIs "float64" $q) (kindIs "int" $q) (kindIs "int64" $q) -}}
{{- $q = printf "%d" (int64 $q) -}}
{{- end -}}
{{- $q = toString $q -}}
{{- $units := dict "Ki" 0.0009765625 "Mi" 1.0 "Gi" 1024.0 "Ti" 1048576.0 "k" 0.00095367431640625 "M" 0.95367431640625 "G" 953.67431640625 "T" 953674.31640625 -}}
{{- $m := regexFindAll "^([0-9]+(\\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$" $q 1 -}}
{{- if not $m -}}
{{- fail (printf "cannot read the memory quantity %q" $q) -}}
{{- end -}}
{{- $number := regexReplaceAll "(Ki|Mi|Gi|Ti|k|M|G|T)$" $q "" -}}
{{- $unit := trimPrefix $number $q -}}
{{- if $unit -}}
{{- mulf (float64 $number) (get $units $unit) | floor | int64 -}}
{{- else -}}
{{- divf (float64 $number) 1048576.0 | floor | int64 -}}
{{- end -}}
{{- end -}}

{{/* A share of a role's memory limit (else request) as a Cairn size: (dict "resources" r "percent" 60) */}}
{{- define "cairn.memoryShare" -}}
{{- $memory := "" -}}
{{- with .resources -}}
{{- if and .limits .limits.memory -}}
{{- $memory = .limits.memory -}}
{{- else if and .requests .requests.memory -}}
{{- $memory = .requests.memory -}}
{{- end -}}
{{- end -}}
{{- if $memory -}}
{{- $mib := include "cairn.mib" $memory | int64 -}}
{{- $share := div (mul $mib .percent) 100 -}}
{{- if lt $share 16 -}}
{{- fail (printf "memory %v is too small for Cairn" $memory) -}}
{{- end -}}
{{- printf "%dMiB" $share -}}
{{- end -}}
{{- end -}}

{{/* A duration (30s, 1m30s, 2m, 500ms) in whole seconds, rounded up. */}}
{{- define "cairn.seconds" -}}
{{- $d := toString . -}}
{{- if not (regexMatch "^([0-9]+(ms|s|m|h))+$" $d) -}}
{{- fail (printf "cannot read the duration %q (use ms, s, m or h, e.g. 30s or 1m30s)" $d) -}}
{{- end -}}
{{- $ms := 0 -}}
{{- range regexFindAll "[0-9]+(ms|s|m|h)" $d -1 -}}
{{- $n := regexFind "^[0-9]+" . | int -}}
{{- $u := trimPrefix (regexFind "^[0-9]+" .) . -}}
{{- $ms = add $ms (mul $n (get (dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000) $u)) -}}
{{- end -}}
{{- div (add $ms 999) 1000 -}}
{{- end -}}

{{/* Fails unless a pod's grace period outlasts its preStop sleep and shutdown timeout. */}}
{{- define "cairn.checkGrace" -}}
{{- $shutdown := include "cairn.seconds" .shutdownTimeout | int -}}
{{- $needed := add $shutdown (.preStopSleepSeconds | int) -}}
{{- if le (.terminationGracePeriodSeconds | int) $needed -}}
{{- fail (printf "%s.terminationGracePeriodSeconds (%v) must exceed preStopSleepSeconds + shutdownTimeout (%d s): the pod would be killed while draining its write-ahead log" .role .terminationGracePeriodSeconds $needed) -}}
{{- end -}}
{{- end -}}

{{/* The S3 Secret's name, or nothing when the pods use their own identity. */}}
{{- define "cairn.s3Secret" -}}
{{- if .Values.store.s3.existingSecret -}}
{{- .Values.store.s3.existingSecret -}}
{{- else if or .Values.store.s3.accessKeyId .Values.store.s3.secretAccessKey -}}
{{- printf "%s-s3" (include "cairn.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "cairn.pgSecret" -}}
{{- default (printf "%s-pg" (include "cairn.fullname" .)) .Values.pg.existingSecret -}}
{{- end -}}

{{- define "cairn.storeUrl" -}}
{{- if .Values.store.url -}}
{{- if not (regexMatch "^(s3|gs|az|file|memory)://" .Values.store.url) -}}
{{- fail (printf "store.url must be a URL such as s3://bucket/prefix, not %q" .Values.store.url) -}}
{{- end -}}
{{- .Values.store.url -}}
{{- else if eq .Values.mode "single" -}}
/var/lib/cairn/store
{{- else -}}
{{- fail "store.url is required in distributed mode: the bucket every role shares, e.g. s3://cairn/spans (or set mode: single)" -}}
{{- end -}}
{{- end -}}

{{/* The collector's acknowledgement mode: (dict "ack" a "persistence" bool) */}}
{{- define "cairn.collectorAck" -}}
{{- $c := .Values.collector -}}
{{- $ack := default (ternary "wal" "stored" $c.persistence.enabled) $c.ack -}}
{{- if not (has $ack (list "wal" "stored")) -}}
{{- fail (printf "collector.ack must be `wal` or `stored`, not %q" $ack) -}}
{{- end -}}
{{- if and (eq $ack "stored") $c.persistence.enabled -}}
{{- fail "collector.ack `stored` keeps no write-ahead log: set collector.persistence.enabled to false" -}}
{{- end -}}
{{- $ack -}}
{{- end -}}

{{/* Environment every Cairn container has. */}}
{{- define "cairn.commonEnv" -}}
{{ include "cairn.storeEnv" . }}
{{- if .Values.config }}
- name: CAIRN_CONFIG
  value: /etc/cairn/config.toml
{{- end }}
{{- end -}}

{{/* The store, logging and temporary directory: the environment of the Ballista roles, which
read no config file (its keys are the other roles' settings). */}}
{{- define "cairn.storeEnv" -}}
- name: CAIRN_STORE
  value: {{ include "cairn.storeUrl" . | quote }}
- name: CAIRN_LOG
  value: {{ .Values.log | quote }}
{{- with .Values.store.s3.region }}
- name: AWS_REGION
  value: {{ . | quote }}
{{- end }}
{{- with .Values.store.s3.endpoint }}
- name: AWS_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- if .Values.store.s3.allowHttp }}
- name: AWS_ALLOW_HTTP
  value: "true"
{{- end }}
{{- with include "cairn.s3Secret" . }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.store.s3.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.store.s3.secretAccessKeyKey }}
{{- end }}
- name: TMPDIR
  value: /tmp
{{- end -}}

{{/* Whether the Ballista scheduler and executors run (distributed mode only). */}}
{{- define "cairn.ballista" -}}
{{- if .Values.ballista.enabled -}}
{{- if ne (include "cairn.distributed" .) "true" -}}
{{- fail "ballista.enabled needs mode `distributed`: its executors read a bucket the roles share" -}}
{{- end -}}
true
{{- end -}}
{{- end -}}

{{/* The scheduler's address as queriers and executors reach it. */}}
{{- define "cairn.schedulerAddr" -}}
{{- printf "%s:%d" (include "cairn.roleName" (dict "root" . "role" "scheduler")) (.Values.ballista.scheduler.port | int) -}}
{{- end -}}

{{/* Retention settings (compactor, serve). */}}
{{- define "cairn.retentionEnv" -}}
{{- with .Values.retention.default }}
- name: CAIRN_RETENTION
  value: {{ . | quote }}
{{- end }}
{{- if .Values.retention.tenants }}
{{- $pairs := list }}
{{- range $tenant, $keep := .Values.retention.tenants }}
{{- $pairs = append $pairs (printf "%s=%s" $tenant $keep) }}
{{- end }}
- name: CAIRN_TENANT_RETENTION
  value: {{ join "," $pairs | quote }}
{{- end }}
{{- end -}}

{{/* Pod enrichment settings (collector, serve). */}}
{{- define "cairn.kubeEnv" -}}
{{- $k := .Values.collector.kube -}}
- name: CAIRN_KUBE
  value: {{ ternary "on" "off" $k.enabled | quote }}
{{- if $k.enabled }}
{{- with $k.namespace }}
- name: CAIRN_KUBE_NAMESPACE
  value: {{ . | quote }}
{{- end }}
- name: CAIRN_KUBE_ASSOCIATION
  value: {{ join "," $k.association | quote }}
{{- with $k.labels }}
- name: CAIRN_KUBE_LABELS
  value: {{ join "," . | quote }}
{{- end }}
{{- with $k.annotations }}
- name: CAIRN_KUBE_ANNOTATIONS
  value: {{ join "," . | quote }}
{{- end }}
{{- with $k.sandboxKeys }}
- name: CAIRN_KUBE_SANDBOX_KEYS
  value: {{ join "," . | quote }}
{{- end }}
{{- if $k.sandboxes }}
- name: CAIRN_KUBE_SANDBOXES
  value: "true"
{{- end }}
- name: CAIRN_KUBE_POD_WAIT
  value: {{ $k.podWait | quote }}
{{- end }}
{{- end -}}

{{/* The Postgres listener (query, serve). */}}
{{- define "cairn.pgEnv" -}}
{{- if .Values.pg.enabled }}
- name: CAIRN_PG_ADDR
  value: "0.0.0.0:5433"
- name: CAIRN_PG_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "cairn.pgSecret" . }}
      key: {{ .Values.pg.passwordKey }}
{{- else }}
- name: CAIRN_PG_ADDR
  value: "off"
{{- end }}
{{- end -}}

{{/* Pod-level settings shared by every role: (dict "root" $ "role" "collector" "values" .Values.collector) */}}
{{- define "cairn.podCommon" -}}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
enableServiceLinks: false
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Pod template metadata: (dict "root" $ "role" "collector") */}}
{{- define "cairn.podMetadata" -}}
labels:
  {{- include "cairn.labels" . | nindent 2 }}
  {{- with .root.Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
annotations:
  checksum/config: {{ include (print .root.Template.BasePath "/configmap.yaml") .root | sha256sum }}
  {{- with .root.Values.podAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{/* The config file's volume and mount, when there is a config. */}}
{{- define "cairn.configVolume" -}}
{{- if .Values.config }}
- name: config
  configMap:
    name: {{ include "cairn.fullname" . }}-config
{{- end }}
{{- end -}}
{{- define "cairn.configMount" -}}
{{- if .Values.config }}
- name: config
  mountPath: /etc/cairn
  readOnly: true
{{- end }}
{{- end -}}

{{/* HTTP probes on a named container port: (dict "port" "http" "startup" startupProbeValues) */}}
{{- define "cairn.probes" -}}
{{- with .startup }}
startupProbe:
  httpGet:
    path: /live
    port: {{ $.port }}
  periodSeconds: {{ .periodSeconds }}
  failureThreshold: {{ .failureThreshold }}
{{- end }}
readinessProbe:
  httpGet:
    path: /ready
    port: {{ .port }}
  periodSeconds: 5
  failureThreshold: 2
livenessProbe:
  httpGet:
    path: /live
    port: {{ .port }}
  {{- if not .startup }}
  initialDelaySeconds: 10
  {{- end }}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 6
{{- end -}}

{{- define "cairn.serviceAccountName" -}}
{{- printf "%s-%s" (include "cairn.fullname" .root) .role -}}
{{- end -}}

{{- define "cairn.leaseName" -}}
{{- default (printf "%s-compactor" (include "cairn.fullname" .)) .Values.compactor.leaseName -}}
{{- end -}}
