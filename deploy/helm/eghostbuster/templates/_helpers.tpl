{{/* The chart's name, and the release's full name (63 characters at most). */}}
{{- define "eghostbuster.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "eghostbuster.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "eghostbuster.selectorLabels" -}}
app.kubernetes.io/name: {{ include "eghostbuster.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "eghostbuster.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "eghostbuster.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* An image by digest: REPOSITORY@sha256:HEX, never a tag. */}}
{{- define "eghostbuster.imageByDigest" -}}
{{- $what := index . 0 -}}
{{- $img := index . 1 -}}
{{- if not (regexMatch "^sha256:[0-9a-f]{64}$" ($img.digest | default "")) -}}
{{- fail (printf "%s.digest must be an image digest (sha256: and 64 hex digits): the chart pulls images by digest, never by tag" $what) -}}
{{- end -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- end }}

{{/* The agent's command line, after "run". */}}
{{- define "eghostbuster.args" -}}
{{- $v := .Values -}}
{{- if and (not $v.locks.enabled) (not $v.sockets.enabled) -}}
{{- fail "locks.enabled and sockets.enabled are both false: nothing to watch" -}}
{{- end -}}
{{- range $v.scope.paths }}
- --path={{ . }}
{{- end }}
{{- range $v.scope.include }}
- --include={{ . }}
{{- end }}
{{- range $v.scope.exclude }}
- --exclude={{ . }}
{{- end }}
{{- if $v.dryRun }}
- --dry-run
{{- end }}
{{- if $v.locks.enabled }}
- --max-locks={{ $v.locks.maxLocks }}
- --max-owners={{ $v.locks.maxOwners }}
{{- else }}
- --no-locks
{{- end }}
{{- if $v.sockets.enabled }}
- --close-wait-timeout={{ $v.sockets.closeWaitTimeout }}
- --socket-destroy={{ $v.sockets.destroy }}
{{- range $v.sockets.ports }}
- --port={{ . }}
{{- end }}
{{- range $v.sockets.excludePorts }}
- --exclude-port={{ . }}
{{- end }}
{{- else }}
- --no-sockets
{{- end }}
- --pin-dir={{ $v.pinDir }}
{{- if $v.metrics.enabled }}
- --metrics-listen={{ $v.metrics.host }}:{{ $v.metrics.port }}
{{- end }}
{{- range $v.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}
