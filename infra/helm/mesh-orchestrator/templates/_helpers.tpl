{{/* Chart name, truncated to the 63 characters Kubernetes allows in a label. */}}
{{- define "mesh.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release fullname; the -http / -worker suffixes are added by the templates (hence 56). */}}
{{- define "mesh.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 56 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 56 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 56 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "mesh.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mesh.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mesh.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mesh.labels" -}}
helm.sh/chart: {{ include "mesh.chart" . }}
{{ include "mesh.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mesh-orchestrator
{{- end }}

{{- define "mesh.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mesh.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mesh.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* PUBLIC_BASE_URL: publicBaseUrl, else https://<ingress.host>. */}}
{{- define "mesh.publicBaseUrl" -}}
{{- if .Values.publicBaseUrl }}
{{- .Values.publicBaseUrl | trimSuffix "/" }}
{{- else if and .Values.ingress.enabled .Values.ingress.host }}
{{- printf "https://%s" .Values.ingress.host }}
{{- else }}
{{- fail "set ingress.host (PUBLIC_BASE_URL is https://<ingress.host>) or publicBaseUrl: approval links need the public origin" }}
{{- end }}
{{- end }}

{{/* The Durable Task Scheduler endpoint (durable.backend=durableTaskScheduler). */}}
{{- define "mesh.schedulerEndpoint" -}}
{{- $e := required "durable.scheduler.endpoint is required with durable.backend=durableTaskScheduler (Bicep output durableSchedulerEndpoint)" .Values.durable.scheduler.endpoint }}
{{- if not (hasPrefix "https://" $e) }}
{{- fail (printf "durable.scheduler.endpoint must be https://<name>.<region>.durabletask.io, got %q" $e) }}
{{- end }}
{{- $e | trimSuffix "/" }}
{{- end }}

{{/*
Pod scheduling both Deployments share: spread over zones (hard: a zone outage must not take every pod) and over nodes
(soft). Call with (dict "root" $ "component" "http|worker").
*/}}
{{- define "mesh.topologySpread" -}}
{{- if .root.Values.topologySpread.enabled }}
topologySpreadConstraints:
  - maxSkew: {{ .root.Values.topologySpread.maxSkew }}
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: {{ .root.Values.topologySpread.zoneWhenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "mesh.selectorLabels" .root | nindent 8 }}
        app.kubernetes.io/component: {{ .component }}
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "mesh.selectorLabels" .root | nindent 8 }}
        app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end }}

{{/* prometheus.io scrape annotations (metrics.podAnnotations). */}}
{{- define "mesh.scrapeAnnotations" -}}
{{- if .Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.containerPort | quote }}
prometheus.io/path: {{ .Values.metrics.path | quote }}
{{- end }}
{{- end }}

{{/* Task hub queue names (Durable Functions Azure Storage backend): lower-cased hub name + suffix. */}}
{{- define "mesh.hubQueuePrefix" -}}
{{- .Values.durable.hubName | lower }}
{{- end }}

{{/*
The admission queue's Service Bus namespace, fully qualified (<name>.servicebus.windows.net): the value of
ServiceBusConnection__fullyQualifiedNamespace. A URL (https://...:443/) or a bare name is refused here rather than
failing at runtime.
*/}}
{{- define "mesh.serviceBusFqns" -}}
{{- $fqns := required "azure.serviceBusNamespace is required (<name>.servicebus.windows.net)" .Values.azure.serviceBusNamespace }}
{{- if or (not (contains "." $fqns)) (contains "/" $fqns) (contains ":" $fqns) }}
{{- fail (printf "azure.serviceBusNamespace must be the fully qualified namespace <name>.servicebus.windows.net, got %q" $fqns) }}
{{- end }}
{{- $fqns }}
{{- end }}

{{/* The namespace's name alone (its first label): what KEDA's azure-servicebus trigger takes as `namespace`. */}}
{{- define "mesh.serviceBusName" -}}
{{- include "mesh.serviceBusFqns" . | splitList "." | first }}
{{- end }}

{{/*
Env entries that restrict a Deployment to a list of functions (the host.json "functions" array).
Call with (dict "functions" <list> "role" "http|worker").
*/}}
{{- define "mesh.functionsEnv" -}}
{{- if not .functions }}
{{- fail (printf "functions.%s must list the function names the -%s Deployment loads" .role .role) }}
{{- end }}
{{- range $i, $name := .functions }}
- name: AzureFunctionsJobHost__functions__{{ $i }}
  value: {{ $name | quote }}
{{- end }}
{{- end }}

{{/* The pod spec parts both Deployments share. */}}
{{- define "mesh.podCommon" -}}
serviceAccountName: {{ include "mesh.serviceAccountName" . }}
{{- if eq .Values.hostKeys.storage "kubernetes" }}
# The host reads and updates its keys in the hostKeys Secret through the Kubernetes API, with this token (the Role
# in rbac-hostkeys.yaml allows that one Secret only).
automountServiceAccountToken: true
{{- else }}
# The workload identity webhook projects its own token; the Kubernetes API token is not needed.
automountServiceAccountToken: false
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
volumes:
  - name: host-secrets
    emptyDir:
      sizeLimit: {{ .Values.scratch.secretsSizeLimit }}
  - name: tmp
    emptyDir:
      sizeLimit: {{ .Values.scratch.tmpSizeLimit }}
{{- end }}

{{/* The container parts both Deployments share (image, env, security, writable mounts). */}}
{{- define "mesh.containerCommon" -}}
image: {{ include "mesh.image" . | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
ports:
  - name: http
    containerPort: {{ .Values.containerPort }}
    protocol: TCP
envFrom:
  - configMapRef:
      name: {{ include "mesh.fullname" . }}-settings
securityContext:
  {{- toYaml .Values.containerSecurityContext | nindent 2 }}
volumeMounts:
  - name: host-secrets
    mountPath: /azure-functions-host/Secrets
  - name: tmp
    mountPath: /tmp
{{- end }}
