{{/* Chart name, or nameOverride. */}}
{{- define "sluice.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of every object's name: the release name, plus the chart name unless it is already in it. */}}
{{- define "sluice.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "sluice.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "sluice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component; call with (list $ "webhook"). */}}
{{- define "sluice.selectorLabels" -}}
{{- $ := index . 0 }}
app.kubernetes.io/name: {{ include "sluice.name" $ }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "sluice.webhook.name" -}}
{{ include "sluice.fullname" . }}-webhook
{{- end }}

{{- define "sluice.scheduler.name" -}}
{{ include "sluice.fullname" . }}-scheduler
{{- end }}

{{/* Secret holding the webhook's serving certificate (either mode). */}}
{{- define "sluice.certSecret" -}}
{{ include "sluice.fullname" . }}-webhook-cert
{{- end }}

{{/* DNS names the API server uses to reach the webhook Service. */}}
{{- define "sluice.webhook.dnsNames" -}}
{{- $svc := include "sluice.webhook.name" . -}}
{{ $svc }}.{{ .Release.Namespace }}.svc,{{ $svc }}.{{ .Release.Namespace }}.svc.cluster.local
{{- end }}

{{/* Username the manager's requests carry (its ServiceAccount). */}}
{{- define "sluice.webhook.username" -}}
system:serviceaccount:{{ .Release.Namespace }}:{{ include "sluice.webhook.name" . }}
{{- end }}

{{/* Lease the elected manager holds; fixed in cmd/webhook. */}}
{{- define "sluice.webhook.lease" -}}
sluice-controller.sluice.dev
{{- end }}

{{- define "sluice.image" -}}
{{- $img := index . 0 }}{{- $chart := index . 1 -}}
{{ $img.repository }}:{{ default $chart.AppVersion $img.tag }}
{{- end }}

{{/*
Container securityContext of both components: non-root (distroless's
nonroot user), read-only root filesystem, no privilege escalation, no
capabilities, RuntimeDefault seccomp.
*/}}
{{- define "sluice.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "sluice.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Webhook client configuration for one handler path; call with (list $ "/mutate-batch-v1-job").
*/}}
{{- define "sluice.webhook.clientConfig" -}}
{{- $ := index . 0 }}{{- $path := index . 1 -}}
{{- if $.Values.webhook.url }}
url: {{ printf "%s%s" (trimSuffix "/" $.Values.webhook.url) $path | quote }}
{{- else }}
service:
  name: {{ include "sluice.webhook.name" $ }}
  namespace: {{ $.Release.Namespace }}
  path: {{ $path | quote }}
  port: 443
{{- end }}
{{- end }}

{{/*
Scoping shared by every sluice webhook: only objects labelled
sluice.dev/pipeline, never in kube-system, the release namespace or
webhook.excludedNamespaces; refused (not let through) while the webhook is
unreachable.
*/}}
{{- define "sluice.webhook.scope" -}}
objectSelector:
  matchExpressions:
  - key: sluice.dev/pipeline
    operator: Exists
namespaceSelector:
  matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values:
    {{- range uniq (concat (list "kube-system" .Release.Namespace) .Values.webhook.excludedNamespaces) }}
    - {{ . | quote }}
    {{- end }}
failurePolicy: Fail
sideEffects: None
admissionReviewVersions: ["v1"]
timeoutSeconds: {{ .Values.webhook.timeoutSeconds }}
{{- end }}

{{/* CEL: the object is not a pod controlled by a Job (those were admitted through the Job's template). */}}
{{- define "sluice.cel.notJobPod" -}}
!has(object.metadata.ownerReferences) || !object.metadata.ownerReferences.exists(r, r.kind == 'Job' && has(r.controller) && r.controller)
{{- end }}

{{/*
The container's KUBERNETES_SERVICE_HOST and _PORT from apiServer, when set.
*/}}
{{- define "sluice.apiServerEnv" -}}
{{- $host := .Values.apiServer.host | toString }}
{{- $port := .Values.apiServer.port | toString }}
{{- if or $host $port }}
{{- if not (and $host $port) }}
{{- fail "apiServer.host and apiServer.port go together: set both, or neither for the in-cluster default" }}
{{- end -}}
env:
- name: KUBERNETES_SERVICE_HOST
  value: {{ $host | quote }}
- name: KUBERNETES_SERVICE_PORT
  value: {{ $port | quote }}
{{- end }}
{{- end }}
